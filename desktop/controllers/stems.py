"""The stems of the window's song: which one is selected (lanes and mixer in step), muting
and soloing, and the stems the mixer shows.

One source of truth for mute and solo: the player's `MixerState`, edited through the
mixer panel's strips. The lanes' M/S buttons, the M and S shortcuts and the strips all go
through `toggle`, and `sync_lanes` paints that state on the lanes (muted or solo-silenced
lanes greyed, M/S lit) whenever the mixer changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stemwright.models.stems import STEM_IDS, get_stem

if TYPE_CHECKING:
    from ..main_window import MainWindow


class StemController:
    """Stem selection, mute and solo in the main window."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window

    def available(self) -> list[str]:
        """Stems that can be selected, muted and soloed (also while separating)."""
        w = self.window
        if w.partial is not None:
            stems = w.partial.stems
        elif w.separated is not None:
            stems = w.separated.result.stems
        else:
            return []
        return [s for s in STEM_IDS if s in stems]

    def connect(self) -> None:
        """Wire the lanes' M/S buttons and the mixer's changes (the window calls this once
        both exist)."""
        w = self.window
        w.waveform.muteClicked.connect(lambda s: self.toggle(s, "mute"))
        w.waveform.soloClicked.connect(lambda s: self.toggle(s, "solo"))
        w.mixer_panel.mixerChanged.connect(self.sync_lanes)

    def set_mixer_stems(self, stems: tuple[str, ...], unavailable: tuple[str, ...],
                        null_db: float | None = None) -> None:
        self.window.mixer_panel.set_stems(list(stems), list(unavailable), null_db)
        self.sync_lanes()

    def sync_lanes(self) -> None:
        """Show the mixer's mute and solo on the stem lanes (the mixer is the truth)."""
        w = self.window
        mixer = w.player.mixer
        stems = self.available()
        channels = {s: mixer.channel(s) for s in stems}
        any_solo = any(ch.solo and not ch.mute for ch in channels.values())
        for stem_id in STEM_IDS:
            ch = channels.get(stem_id)
            if ch is None:
                w.waveform.set_lane_mix_state(stem_id, False, False, False)
                continue
            silent = ch.mute or (any_solo and not ch.solo)
            w.waveform.set_lane_mix_state(stem_id, ch.mute, ch.solo, silent)

    def toggle(self, stem_id: str, what: str) -> None:
        """Flip `what` ("mute" or "solo") of `stem_id` in the mixer (a lane's M/S button);
        the mixer's strips and the lanes both show the result."""
        w = self.window
        if stem_id not in self.available():
            return
        panel_method = getattr(w.mixer_panel, f"toggle_{what}", None)
        if panel_method is not None and stem_id in w.mixer_panel.strips:
            panel_method(stem_id)
        else:
            channel = w.player.mixer.channel(stem_id)
            w.player.set_channel(stem_id, **{what: not getattr(channel, what)})
        self.sync_lanes()

    def select(self, stem_id: str) -> None:
        """Select `stem_id` in the lanes and the mixer."""
        self.window.waveform.select_stem(stem_id)
        self.window.mixer_panel.select_stem(stem_id)

    def stem_selected(self, stem_id: str) -> None:
        """A lane was clicked (or the selection moved with the keyboard)."""
        self.select(stem_id)
        self.window.reveal_lane(stem_id)  # the keyboard can select a lane out of view
        name = get_stem(stem_id).name
        self.window.statusBar().showMessage(f"{name} selected: M mutes, S solos it", 3000)

    def stem_selected_in_mixer(self, stem_id: str) -> None:
        if stem_id in self.available():
            self.window.waveform.select_stem(stem_id)
            self.window.reveal_lane(stem_id)

    def selected(self) -> str:
        return self.window.waveform.selected_stem()

    def select_adjacent(self, step: int) -> None:
        stems = self.available()
        if not stems:
            return
        current = self.selected()
        i = stems.index(current) + step if current in stems else 0
        self.stem_selected(stems[i % len(stems)])

    def _toggle_channel(self, what: str) -> None:
        w = self.window
        stem_id = self.selected()
        if stem_id not in self.available():
            w.statusBar().showMessage("Separate the song and click a stem lane first.", 4000)
            return
        self.toggle(stem_id, what)
        state = "on" if getattr(w.player.mixer.channel(stem_id), what) else "off"
        w.statusBar().showMessage(f"{get_stem(stem_id).name}: {what} {state}", 3000)

    def mute_selected(self) -> None:
        self._toggle_channel("mute")

    def solo_selected(self) -> None:
        self._toggle_channel("solo")
