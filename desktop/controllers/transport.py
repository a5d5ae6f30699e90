"""Playback in the main window: play/pause/stop/seek, the playhead timer that moves the
playheads, the loop region, A/B between the mixture and the remix, and `NoPlayer`, the
stand-in when audio output cannot start."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QStyle

from stemwright.models.remix.mixer import MixerState

from ..views.waveform import format_time

if TYPE_CHECKING:
    from ..main_window import MainWindow

PLAYHEAD_FPS = 30


class NoPlayer(QObject):
    """Stand-in when audio output cannot start (no PortAudio, no device): everything else,
    separation, the mixer and export included, still works; the reason shows in the
    transport and the mixer."""

    positionChanged = Signal(float)
    stateChanged = Signal(str)
    errorOccurred = Signal(str)
    notice = Signal(str)

    available = False
    unavailable_reason = "audio output is not available"

    def __init__(self) -> None:
        super().__init__()
        self.mixer = MixerState()
        self._pos = 0.0

    def output_devices(self) -> list[tuple[int, str]]:
        return []

    def output_device(self) -> int | None:
        return None

    def set_output_device(self, index: int | None) -> None: ...

    def set_master_db(self, db: float) -> None:
        self.mixer.master_db = float(db)

    def levels(self) -> dict[str, float]:
        return {"master": -math.inf}

    def set_sources(self, mix, stems, samplerate) -> None:
        self._pos = 0.0

    def clear_sources(self) -> None:
        self._pos = 0.0

    def play(self) -> None: ...

    def pause(self) -> None: ...

    def stop(self) -> None:
        self._pos = 0.0

    def toggle_play(self) -> None: ...

    def seek(self, seconds: float) -> None:
        self._pos = float(seconds)

    def set_loop(self, start_s: float, end_s: float) -> None: ...

    def clear_loop(self) -> None: ...

    def position(self) -> float:
        return self._pos

    def state(self) -> str:
        return "stopped"

    def set_channel(self, stem_id: str, **changes) -> None:
        ch = self.mixer.channel(stem_id)
        for key, value in changes.items():
            setattr(ch, key, value)

    def set_ab(self, source: str) -> None:
        self.mixer.source = source

    def close(self) -> None: ...


class TransportController:
    """The window's transport: the player, the playheads, the loop and A/B."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.follow = True
        self.timer = QTimer(window)
        self.timer.setInterval(int(1000 / PLAYHEAD_FPS))
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.tick)

    def connect_player(self) -> None:
        player = self.window.player
        for name, slot in (("positionChanged", self._position_changed),
                           ("stateChanged", self._state_changed),
                           ("errorOccurred", self._player_error),
                           ("notice", self._player_notice)):
            signal = getattr(player, name, None)
            if signal is not None:
                signal.connect(slot)

    # -- play, stop, seek -------------------------------------------------------------
    def toggle_play(self) -> None:
        w = self.window
        if w.song is None:
            return
        if not getattr(w.player, "available", False):
            reason = getattr(w.player, "unavailable_reason", "") or "no audio device"
            w.statusBar().showMessage(f"Playback is unavailable: {reason}. Everything "
                                      "else works.", 8000)
            return
        if hasattr(w.player, "toggle_play"):
            w.player.toggle_play()
        elif w.player.state() == "playing":
            w.player.pause()
        else:
            w.player.play()

    def stop(self) -> None:
        self.window.player.stop()
        self.tick()

    def seek(self, seconds: float) -> None:
        """Move the playhead (and playback) to `seconds`."""
        w = self.window
        if w.song is None:
            return
        seconds = min(max(0.0, seconds), w.song.duration)
        w.player.seek(seconds)
        w.waveform.set_playhead(seconds)
        w.spectrogram.set_playhead(seconds)
        self._update_position_label(seconds)

    def go_home(self) -> None:
        w = self.window
        start = 0.0
        loop = self.loop_range()
        if loop is not None and w.act_loop.isChecked() and w.player.position() > loop[0]:
            start = loop[0]
        self.seek(start)
        w.waveform.ensure_visible(start)

    def go_end(self) -> None:
        w = self.window
        if w.song is not None:
            self.seek(w.song.duration)
            w.waveform.ensure_visible(w.song.duration)

    def _position_changed(self, seconds: float) -> None:
        if not self.timer.isActive():
            self._show_position(seconds)

    def _state_changed(self, state: str) -> None:
        w = self.window
        playing = state == "playing"
        icon = QStyle.StandardPixmap.SP_MediaPause if playing else \
            QStyle.StandardPixmap.SP_MediaPlay
        w.act_play.setIcon(w.style().standardIcon(icon))
        w.act_play.setText("&Pause" if playing else "&Play")
        if playing:
            self.timer.start()
        else:
            self.timer.stop()
            # where playback stopped stays in view, even past the last timer tick's page
            self._show_position(w.player.position(), follow=self.follow)

    def _player_notice(self, message: str) -> None:
        self.window.statusBar().showMessage(message, 10000)

    def _player_error(self, message: str) -> None:
        w = self.window
        w.statusBar().showMessage(message, 10000)
        if not getattr(w.player, "available", True):
            w.audio_notice.setText("\u26a0 No audio output: playback is off")
            w.audio_notice.setToolTip(w.player.unavailable_reason)

    def tick(self) -> None:
        """Playhead timer (~30 fps): read the player's position and move the playheads."""
        self._show_position(self.window.player.position())

    def _show_position(self, seconds: float, follow: bool | None = None) -> None:
        """Move the playheads; page the view along while playing with Follow on."""
        w = self.window
        w.waveform.set_playhead(seconds)
        w.spectrogram.set_playhead(seconds)
        if follow is None:
            follow = self.follow and self.timer.isActive()
        if follow:
            w.waveform.ensure_visible(seconds)
        self._update_position_label(seconds)

    def _update_position_label(self, seconds: float) -> None:
        w = self.window
        total = w.song.duration if w.song is not None else 0.0
        w.position_label.setText(f"{format_time(seconds, 0.1)} / {format_time(total, 0.1)}")

    def toggle_follow(self, on: bool) -> None:
        self.follow = bool(on)

    # -- loop -------------------------------------------------------------------------
    def loop_range(self) -> tuple[float, float] | None:
        return self.window.waveform.loop()

    def loop_changed(self, loop: tuple[float, float] | None) -> None:
        w = self.window
        w.spectrogram.set_loop(loop)
        if loop is None:
            w.act_loop.setChecked(False)
            w.player.clear_loop()
        else:
            w.act_loop.setChecked(True)
            w.player.set_loop(*loop)

    def toggle_loop(self) -> None:
        """L: remove the loop, or create one from the playhead (a quarter of the view, on
        beats when snapping)."""
        w = self.window
        if w.song is None:
            w.act_loop.setChecked(False)
            return
        if w.waveform.loop() is not None:
            w.waveform.clear_loop()
            return
        x0, x1 = w.waveform.view_range()
        start = w.player.position()
        if not x0 <= start < x1:
            start = x0
        end = min(w.song.duration, start + max(1.0, (x1 - x0) / 4))
        if end - start < 0.01:
            start = max(0.0, end - max(1.0, (x1 - x0) / 4))
        snapped = w.waveform.snap_time(start), w.waveform.snap_time(end)  # on beats
        if snapped[1] - snapped[0] >= 0.01:
            start, end = snapped
        w.waveform.set_loop(start, end)

    def loop_in(self) -> None:
        w = self.window
        if w.song is None:
            return
        pos = w.player.position()
        loop = w.waveform.loop()
        end = loop[1] if loop is not None and loop[1] > pos else min(
            w.song.duration, pos + 4.0)
        w.waveform.set_loop(pos, end)

    def loop_out(self) -> None:
        w = self.window
        if w.song is None:
            return
        pos = w.player.position()
        loop = w.waveform.loop()
        start = loop[0] if loop is not None and loop[0] < pos else max(0.0, pos - 4.0)
        w.waveform.set_loop(start, pos)

    # -- A/B --------------------------------------------------------------------------
    def toggle_ab(self, on: bool | None = None) -> None:
        """B: hear the original mixture (on) or the remix of the stems (off)."""
        w = self.window
        if on is None:
            on = w.player.mixer.source != "mix"
        panel_method = getattr(w.mixer_panel, "set_ab", None)
        if panel_method is not None:
            panel_method("mix" if on else "remix")
        else:
            w.player.set_ab("mix" if on else "remix")
        w.act_ab.setChecked(bool(on))
        w.statusBar().showMessage("Hearing the original mixture" if on
                                  else "Hearing the remix of the stems", 3000)

    def ab_changed(self, source: str) -> None:
        """The mixer's A/B switch moved: keep the A/B action (B, Playback menu) in step."""
        self.window.act_ab.setChecked(source == "mix")
