"""Multitrack songs in the main window: reference lanes, scores, and error signals to hear.

`MultitrackController` adds to the window:

* File > Open multitrack song: a folder (or a folder of songs, then one) is checked in the
  mapping dialog (multitrack_dialog.py) and loaded as its six-class mixdown; the window
  separates that mixture like any song.
* Reference lanes: a thin lane under each stem lane holds the true stem the song was mixed
  from (View > Reference stems hides them).
* Scores: when a separation of such a song finishes, each stem is scored against its
  reference on a worker thread (BSS Eval v4 SDR, SI-SDR: `evaluate.score_stems`) and the
  result is written on the stem's lane.
* Errors (teaching): a stem's "Errors" button (or Separation > Listen to the errors of the
  selected stem) splits the separated stem into target + interference (what leaked in
  from the other stems) + artifacts (what no filtering of the references explains) with
  `evaluate.error_components`, on a worker thread, and shows the two error signals as
  lanes under the stem.

Reference and error lanes are listen-only: they are extra player sources whose mixer
channels are muted, so the remix, the mixer strips and the export (which take only the
separated stems) never include them. Their "Listen" button solos one of them (a reference
also before the song is separated); pressing it again (or starting another separation)
mutes it again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QColor, QKeySequence
from PySide6.QtWidgets import QFileDialog

from stemwright.models.stems import STEM_IDS, get_stem

from ..dialogs.multitrack import MappingDialog, MultitrackLoadTask, MultitrackSong
from ..engine.workers import Task
from ..views.waveform import BACKGROUND, Envelope

if TYPE_CHECKING:
    from stemwright.models.multitrack.folders import Song

    from ..engine.workers import SeparatedSong
    from ..main_window import MainWindow

REF, INTERF, ARTIF = "ref", "interf", "artif"  # lane / player source key prefixes
SLOTS = {REF: 1, INTERF: 2, ARTIF: 3}  # rows under the stem lane
ERROR_COLORS = {INTERF: "#e8795a", ARTIF: "#a98bd6"}
ERROR_TITLES = {INTERF: "interference", ARTIF: "artifacts"}
REF_HEIGHT = 28
ERROR_HEIGHT = 34
BUTTON_FILL = (38, 42, 52, 230)
BUTTON_ON = (61, 111, 182, 240)


def lane_key(kind: str, stem_id: str) -> str:
    """"ref:vocals", "interf:drums": the key of an extra lane and of its player source."""
    return f"{kind}:{stem_id}"


def dimmed(color: str, amount: float = 0.45) -> str:
    """`color` blended towards the lane background (references look like their stem, quieter)."""
    a, b = QColor(color), QColor(BACKGROUND)
    mix = [round(x * (1 - amount) + y * amount) for x, y in
           ((a.red(), b.red()), (a.green(), b.green()), (a.blue(), b.blue()))]
    return "#{:02x}{:02x}{:02x}".format(*mix)


def format_scores(score: Any) -> str:
    """"SDR 7.4 dB · SI-SDR 6.9 dB" (a dash for what could not be measured)."""
    def db(value: float) -> str:
        return f"{value:.1f} dB" if value is not None and math.isfinite(value) else "\u2013"

    text = f"SDR {db(score.sdr)} \u00b7 SI-SDR {db(score.si_sdr)}"
    if score.includes:
        names = ", ".join(get_stem(s).name.lower() for s in score.includes)
        text += f" (with {names})"
    return text


def energy_ratio_db(num: np.ndarray, den: np.ndarray) -> float:
    """10 log10(|num|^2 / |den|^2) over the whole track (inf when den is silent)."""
    n = float(np.sum(np.square(num, dtype=np.float64)))
    d = float(np.sum(np.square(den, dtype=np.float64)))
    if d == 0.0:
        return math.inf
    return -math.inf if n == 0.0 else 10.0 * math.log10(n / d)


class LaneButton(pg.TextItem):
    """A small clickable label in a lane's corner (a click never seeks)."""

    def __init__(self, text: str, callback, tip: str = "") -> None:
        super().__init__(text, color="#e6e9ef", anchor=(1, 0), fill=pg.mkBrush(*BUTTON_FILL),
                         border=pg.mkPen((90, 98, 114)))
        self.callback = callback
        self.on = False
        self.setZValue(40)
        self.setToolTip(tip)
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def set_state(self, text: str, on: bool) -> None:
        if self.toPlainText() == text and self.on == on:
            return
        self.on = on
        self.setText(text)
        self.fill = pg.mkBrush(*(BUTTON_ON if on else BUTTON_FILL))
        self.update()

    def mouseClickEvent(self, ev) -> None:  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.callback()

    def mouseDragEvent(self, ev) -> None:  # noqa: N802
        ev.ignore()


def _pin(button: LaneButton, vb: pg.ViewBox) -> None:
    """Keep `button` in the top right corner of `vb`."""
    button.setParentItem(vb)

    def place(*_args) -> None:
        button.setPos(vb.width() - 6, 2)

    vb.sigResized.connect(place)
    place()


def scan_root(song: Song) -> Path:
    """The folder `song` was found in by a scan (its key is relative to it)."""
    root = Path(song.folder)
    if song.key not in ("", "."):
        for _part in Path(song.key).parts:
            root = root.parent
    return root


# -- background work -------------------------------------------------------------------

class ScoreTask(Task):
    """Score separated stems against the references: {stem: evaluate.StemScore}."""

    title = "Scoring the stems"

    def __init__(self, references: dict[str, np.ndarray], estimates: dict[str, np.ndarray],
                 samplerate: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.references, self.estimates = references, estimates
        self.samplerate = int(samplerate)

    def work(self) -> dict[str, Any]:
        from stemwright.models.evaluation.evaluate import score_stems

        self.report(0.0, None, "Scoring the stems against the references")
        scores = score_stems(self.references, self.estimates, self.samplerate)
        self.report(1.0)
        return scores


@dataclass
class ErrorSignals:
    """A separated stem's BSS Eval error signals and their envelopes."""

    stem: str
    interf: np.ndarray
    artif: np.ndarray
    envelopes: dict[str, Envelope]
    sir_db: float  # whole track: (target + spatial) vs interference
    sar_db: float  # whole track: (target + spatial + interference) vs artifacts


class ErrorTask(Task):
    """`evaluate.error_components` of one stem, with envelopes."""

    title = "Computing the error signals"

    def __init__(self, mixdown: Any, result: Any, stem: str,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.mixdown, self.result, self.stem = mixdown, result, stem

    def work(self) -> ErrorSignals:
        from stemwright.models.evaluation.evaluate import error_components

        self.report(0.0, None, f"Splitting {get_stem(self.stem).name} into target, "
                               "interference and artifacts")
        d = error_components(self.mixdown, self.result, self.stem)
        self.check_cancel()
        sr = self.mixdown.samplerate
        interf = np.ascontiguousarray(d.e_interf, dtype=np.float32)
        artif = np.ascontiguousarray(d.e_artif, dtype=np.float32)
        clean = d.target + d.e_spat
        envelopes = {INTERF: Envelope.compute(interf, sr, cancel=self.is_cancelled),
                     ARTIF: Envelope.compute(artif, sr, cancel=self.is_cancelled)}
        self.report(1.0)
        return ErrorSignals(self.stem, interf, artif, envelopes,
                            energy_ratio_db(clean, interf),
                            energy_ratio_db(clean + interf, artif))


# -- the controller --------------------------------------------------------------------

class MultitrackController(QObject):
    """Multitrack songs, reference lanes, scores and error lanes in `window` (see the
    module docstring). The window calls `update_actions` whenever its state changes."""

    scoresShown = Signal(object)  # noqa: N815 - {stem: StemScore}, on the lanes
    errorsShown = Signal(str)  # noqa: N815 - stem id whose error lanes appeared

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.song: MultitrackSong | None = None
        self.scores: dict[str, Any] = {}
        self.scored: SeparatedSong | None = None  # the separation `scores` belong to
        self.errors: dict[str, ErrorSignals] = {}  # of the separation `scored`
        self.listening: str | None = None  # the extra source soloed now
        self.score_task: ScoreTask | None = None
        self.error_tasks: dict[str, ErrorTask] = {}
        self.dialog: MappingDialog | None = None
        self.evaluate_dialog = None
        self._buttons: dict[str, LaneButton] = {}  # lane key -> its button
        self._build_actions()
        window.songLoaded.connect(self._song_loaded)
        window.separationFinished.connect(self._separation_finished)
        started = getattr(window, "separationStarted", None)
        if started is not None:
            started.connect(self._separation_started)

    def _build_actions(self) -> None:
        w = self.window

        def action(text: str, slot, shortcut: str | None = None, tip: str = "",
                   checkable: bool = False) -> QAction:
            act = QAction(text, w)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
            act.setStatusTip(tip)
            act.setCheckable(checkable)
            act.triggered.connect(slot)
            w.addAction(act)
            return act

        self.act_open = action("Open &multitrack song\u2026", self.open_dialog, "Ctrl+Shift+O",
                               "Open a folder of instrument tracks: separate its mix and "
                               "compare the stems with the real ones")
        self.act_references = action("&Reference stems", self._toggle_references, None,
                                     "Show the real stems of a multitrack song under the "
                                     "separated ones", checkable=True)
        self.act_references.setChecked(True)
        self.act_errors = action("Listen to the &errors of the selected stem",
                                 lambda: self.toggle_errors(), None,
                                 "Split the selected stem into interference and artifacts "
                                 "against its reference, as lanes you can listen to")
        self.act_evaluate = action("E&valuate models\u2026", self.open_evaluate, None,
                                   "Score models and oracles on a folder of multitrack songs")

    # -- state ------------------------------------------------------------------------
    def current(self) -> MultitrackSong | None:
        """The multitrack song the window shows, or None."""
        song = self.window.song
        return song if isinstance(song, MultitrackSong) and song is self.song else None

    def _shown_separation(self) -> SeparatedSong | None:
        """The finished separation of the current multitrack song, if it is shown (and no
        other is under way)."""
        w = self.window
        if self.current() is None or w.partial is not None or w.separate_task is not None:
            return None
        return w.separated

    def valid_scores(self) -> dict[str, Any]:
        """The scores of the separation shown ({} while none is, or it is not scored yet)."""
        out = self._shown_separation()
        return self.scores if out is not None and out is self.scored else {}

    def update_actions(self) -> None:
        """Enable the actions and show the lane buttons that apply now (the window calls
        this whenever its state changes)."""
        self.act_references.setEnabled(self.current() is not None)
        self.act_errors.setEnabled(bool(self.valid_scores()))
        self._update_buttons()

    # -- opening ----------------------------------------------------------------------
    def open_dialog(self) -> None:
        """Ask for a folder, then open it."""
        folder = QFileDialog.getExistingDirectory(
            self.window, "Open a multitrack song (a song folder, or a folder of songs or "
            ".stem.mp4 files)",
            self.window.settings.last_folder())
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> MappingDialog:
        """Scan `folder` and show its songs and mapping; Open loads the chosen song."""
        if self.dialog is not None:
            self.dialog.close()
        dialog = MappingDialog(folder, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.songChosen.connect(self.load)
        dialog.finished.connect(lambda _r, d=dialog: self._dialog_closed(d))
        self.dialog = dialog
        dialog.open()
        return dialog

    def _dialog_closed(self, dialog: MappingDialog) -> None:
        if self.dialog is dialog:
            self.dialog = None

    def load(self, song: Song) -> MultitrackLoadTask | None:
        """Decode and mix `song` in the background; the window shows it when ready."""
        w = self.window
        if not w.confirm_discard(f"Open {song.name}"):
            return None
        task = MultitrackLoadTask(song, w)
        task.succeeded.connect(lambda s, t=task: self._loaded(t, s))
        return w.songs.start_load(task, f"Loading the multitrack song {song.name}\u2026")

    def _loaded(self, task: MultitrackLoadTask, song: MultitrackSong) -> None:
        self.song = song  # before the window announces it (songLoaded)
        self.window.songs.show_loaded(task, song)
        if self.window.song is not song:
            self.song = None

    def _song_loaded(self, song: object) -> None:
        self._reset()
        if not isinstance(song, MultitrackSong) or song is not self.song:
            self.song = None
            self.window.song_label.setToolTip("")
            self.update_actions()
            return
        self._show_references()
        w = self.window
        stems = ", ".join(get_stem(s).name.lower() for s in song.mixdown.stems)
        w.song_label.setText(f"{w.song_label.text()}  \u00b7  multitrack: {stems}")
        w.song_label.setToolTip("\n".join(song.notes))
        absent = [get_stem(s).name.lower() for s in song.mixdown.absent]
        note = f" No {', '.join(absent)} in this song." if absent else ""
        w.statusBar().showMessage(f"Opened {song.source.name} with its reference stems "
                                  f"(six-class mixdown).{note} Separate it to score the "
                                  "model against them.", 10000)
        self.update_actions()

    def _reset(self) -> None:
        """Forget scores and errors (another song, or a new separation)."""
        self._stop_listening(quiet=True)
        for task in [self.score_task, *self.error_tasks.values()]:
            if task is not None:
                task.cancel()
        self.score_task = None
        self.error_tasks.clear()
        self._drop_errors()
        self.scores, self.scored = {}, None
        self._update_buttons()

    # -- reference lanes ----------------------------------------------------------------
    def _show_references(self) -> None:
        song = self.current()
        view = self.window.waveform
        for stem_id in STEM_IDS:
            key = lane_key(REF, stem_id)
            if song is None or not self.act_references.isChecked() or \
                    stem_id not in song.references:
                view.remove_extra_lane(key)
                self._buttons.pop(key, None)
                continue
            stem = get_stem(stem_id)
            lane = view.set_extra_lane(key, stem_id, SLOTS[REF], f"{stem.name} \u00b7 reference",
                                       stem.color, song.references[stem_id], REF_HEIGHT)
            lane.curve.setPen(pg.mkPen(dimmed(stem.color), width=1))  # quieter than the stem
            self._add_listen_button(key, lane)
        self._update_buttons()

    def _toggle_references(self, on: bool) -> None:
        if not on and self.listening is not None and self.listening.startswith(REF):
            self._stop_listening()
        self._show_references()

    def _add_listen_button(self, key: str, lane: Any) -> None:
        old = self._buttons.get(key)
        if old is not None and shiboken6.isValid(old) and \
                old.parentItem() is lane.plot.getViewBox():
            return
        button = LaneButton("Listen", lambda k=key: self.toggle_listen(k),
                            "Solo this lane (it is never part of the remix)")
        _pin(button, lane.plot.getViewBox())
        self._buttons[key] = button

    # -- separation and scores ----------------------------------------------------------
    def _separation_started(self, _task: object = None) -> None:
        """Error signals belong to the stems shown: gone when new ones are coming. The
        scores stay (a cancelled separation brings the scored stems back)."""
        if self.current() is None:
            return
        self._stop_listening(quiet=True)
        for task in self.error_tasks.values():
            task.cancel()
        self.error_tasks.clear()
        self._drop_errors()
        self.update_actions()

    def _separation_finished(self, out: SeparatedSong | None) -> None:
        song = self.current()
        if song is None or out is None or self.window.separated is not out:
            return
        self._reset()
        result = out.result
        if any(x.shape[-1] != song.mixdown.length for x in result.stems.values()):
            self.window.statusBar().showMessage("The stems do not match the song's length: "
                                                "no scores against the references.", 8000)
            return
        task = ScoreTask(song.mixdown.stems, dict(result.stems), song.samplerate, self.window)
        self.score_task = task
        task.succeeded.connect(lambda scores, t=task, o=out: self._scored(t, o, scores))
        task.failed.connect(lambda exc, t=task: self._score_failed(t, exc))
        self.window.start_task(task)
        self.window.statusBar().showMessage("Scoring the stems against the reference "
                                            "stems\u2026", 5000)
        self._update_buttons()

    def _score_failed(self, task: ScoreTask, exc: BaseException) -> None:
        if task is self.score_task:
            self.score_task = None
            self.window.statusBar().showMessage(f"The stems could not be scored: {exc}",
                                                10000)

    def _scored(self, task: ScoreTask, out: SeparatedSong, scores: dict[str, Any]) -> None:
        if task is not self.score_task:
            return
        self.score_task = None
        song = self.current()
        if song is None or self._shown_separation() is not out:
            return
        self.scores, self.scored = scores, out
        view = self.window.waveform
        for stem_id in out.result.stems:
            envelope = out.envelopes.get(stem_id)
            if stem_id in scores:
                view.set_lane_info(stem_id, format_scores(scores[stem_id]), envelope)
                self._add_errors_button(stem_id)
            elif stem_id not in song.mixdown.stems:
                where = " (counted in Other's score)" if "other" in scores and \
                    stem_id != "other" else ""
                view.set_lane_info(stem_id, f"no reference in this song{where}", envelope)
        sdrs = [s.sdr for s in scores.values() if math.isfinite(s.sdr)]
        mean = f": mean SDR {np.mean(sdrs):.1f} dB" if sdrs else ""
        self.window.statusBar().showMessage(
            f"Scored against the reference stems{mean} (BSS Eval v4, median of 1 s "
            "windows). Press Errors on a stem to hear what leaked in and the artifacts.",
            12000)
        self._update_buttons()
        self.update_actions()
        self.scoresShown.emit(scores)

    def _add_errors_button(self, stem_id: str) -> None:
        key = f"stem:{stem_id}"
        if key not in self._buttons:
            lane = self.window.waveform._stem_lanes[stem_id]
            button = LaneButton("Errors", lambda s=stem_id: self.toggle_errors(s),
                                "Hear this stem's interference and artifacts")
            _pin(button, lane.plot.getViewBox())
            self._buttons[key] = button
        self._buttons[key].setVisible(True)

    # -- error signals ------------------------------------------------------------------
    def toggle_errors(self, stem_id: str | None = None) -> ErrorTask | None:
        """Show the error lanes of `stem_id` (default: the selected stem), or hide them."""
        w = self.window
        stem_id = stem_id or w.selected_stem()
        if not stem_id:
            w.statusBar().showMessage("Click a stem lane first, then ask for its errors.",
                                      6000)
            return None
        out = self._shown_separation()
        if out is None or self.scored is not out:
            w.statusBar().showMessage("Open a multitrack song and separate it first: the "
                                      "errors are measured against its reference stems.", 6000)
            return None
        if stem_id not in self.scores:
            name = get_stem(stem_id).name if stem_id in STEM_IDS else "this stem"
            w.statusBar().showMessage(f"{name} has no reference in this song to compare "
                                      "with; select another stem.", 6000)
            return None
        if stem_id in self.errors:
            self._drop_errors(stem_id)
            self._update_buttons()
            return None
        if stem_id in self.error_tasks:
            return self.error_tasks[stem_id]
        task = ErrorTask(self.song.mixdown, out.result, stem_id, w)
        self.error_tasks[stem_id] = task
        task.succeeded.connect(lambda e, t=task, o=out: self._errors_done(t, o, e))
        task.failed.connect(lambda exc, t=task: self._errors_failed(t, exc))
        w.start_task(task)
        w.statusBar().showMessage(f"Computing the error signals of "
                                  f"{get_stem(stem_id).name}\u2026", 5000)
        self._update_buttons()
        return task

    def _errors_failed(self, task: ErrorTask, exc: BaseException) -> None:
        if self.error_tasks.get(task.stem) is task:
            del self.error_tasks[task.stem]
            self.window.statusBar().showMessage(f"The error signals could not be computed: "
                                                f"{exc}", 10000)
            self._update_buttons()

    def _errors_done(self, task: ErrorTask, out: SeparatedSong, err: ErrorSignals) -> None:
        if self.error_tasks.get(err.stem) is not task:
            return
        del self.error_tasks[err.stem]
        if self._shown_separation() is not out or self.scored is not out:
            return
        self.errors[err.stem] = err
        view = self.window.waveform
        name = get_stem(err.stem).name
        for kind, ratio, metric in ((INTERF, err.sir_db, "SIR"), (ARTIF, err.sar_db, "SAR")):
            key = lane_key(kind, err.stem)
            lane = view.set_extra_lane(key, err.stem, SLOTS[kind],
                                       f"{name} \u00b7 {ERROR_TITLES[kind]}",
                                       ERROR_COLORS[kind], err.envelopes[kind], ERROR_HEIGHT)
            view.set_lane_info(key, f"whole-track {metric} {ratio:.1f} dB"
                               if math.isfinite(ratio) else "silent")
            self._add_listen_button(key, lane)
        self.window.statusBar().showMessage(
            f"{name}: interference is what of the other stems leaked in; artifacts are what "
            "no filtering of the references explains (musical noise, smearing). Press "
            "Listen on a lane to hear it alone.", 15000)
        self._update_buttons()
        self.errorsShown.emit(err.stem)

    def _drop_errors(self, stem_id: str | None = None) -> None:
        stems = [stem_id] if stem_id is not None else list(self.errors)
        for stem in stems:
            self.errors.pop(stem, None)
            for kind in (INTERF, ARTIF):
                key = lane_key(kind, stem)
                if self.listening == key:
                    self._stop_listening(quiet=True)
                self.window.waveform.remove_extra_lane(key)
                self._buttons.pop(key, None)

    # -- listening ----------------------------------------------------------------------
    def listen_sources(self) -> dict[str, np.ndarray]:
        """The listen-only player sources: references and error signals, by lane key."""
        song = self.current()
        if song is None:
            return {}
        out = {lane_key(REF, s): x for s, x in song.mixdown.stems.items()}
        for err in self.errors.values():
            out[lane_key(INTERF, err.stem)] = err.interf
            out[lane_key(ARTIF, err.stem)] = err.artif
        return out

    def can_listen(self) -> bool:
        """Listen-only sources can play now (a multitrack song, no separation under way)."""
        w = self.window
        return self.current() is not None and w.partial is None and w.separate_task is None

    def _install_sources(self) -> bool:
        """Make sure the player has the listen-only sources (muted) next to the separated
        stems, or alone before the song is separated."""
        song = self.current()
        if not self.can_listen():
            return False
        out = self.window.separated
        player = self.window.player
        extras = self.listen_sources()
        loaded = getattr(player, "stem_ids", None)
        if loaded is not None and all(k in loaded for k in extras):
            return True
        for key in extras:
            if key != self.listening:
                channel = player.mixer.channel(key)
                channel.mute, channel.solo = True, False
        stems = dict(out.result.stems) if out is not None else {}
        player.set_sources(song.data, {**stems, **extras}, song.samplerate)
        return True

    def toggle_listen(self, key: str) -> None:
        """Solo the listen-only source `key` alone, or back to the remix if it is."""
        w = self.window
        if self.listening == key:
            self._stop_listening()
            return
        if not self._install_sources():
            w.statusBar().showMessage("Wait for the separation to finish, then listen.", 6000)
            return
        self._stop_listening(quiet=True)
        w.player.set_channel(key, mute=False, solo=True)
        self.listening = key
        if w.player.mixer.source == "mix":
            w.toggle_ab(False)
        kind, stem = key.split(":", 1)
        what = "reference" if kind == REF else ERROR_TITLES[kind]
        w.statusBar().showMessage(f"Listening to the {get_stem(stem).name} {what} alone "
                                  "(Space plays). Press Listen again for the remix.", 8000)
        self._update_buttons()

    def _stop_listening(self, quiet: bool = False) -> None:
        key, self.listening = self.listening, None
        if key is None:
            return
        player = self.window.player
        if key in player.mixer.channels:
            if hasattr(player, "stem_ids") and key not in player.stem_ids:
                channel = player.mixer.channel(key)  # not loaded: no gains to push
                channel.mute, channel.solo = True, False
            else:
                player.set_channel(key, mute=True, solo=False)
        song, w = self.current(), self.window
        loaded = getattr(player, "stem_ids", ())
        if song is not None and loaded and all(":" in k for k in loaded):
            # only listen-only sources next to the song (not separated yet): the song alone
            player.set_sources(song.data, None, song.samplerate)
        if not quiet:
            self.window.statusBar().showMessage(
                "Back to the song." if w.separated is None else "Back to the remix of the "
                "stems.", 4000)
        self._update_buttons()

    def _update_buttons(self) -> None:
        # the view drops extra lanes (and their buttons) when another song is shown
        for key in [k for k, b in self._buttons.items() if not shiboken6.isValid(b)]:
            del self._buttons[key]
        listen = self.can_listen()
        scores = self.valid_scores()
        for key, button in self._buttons.items():
            if key.startswith("stem:"):
                stem = key[5:]
                button.setVisible(stem in scores)
                if stem in self.error_tasks:
                    button.set_state("Errors\u2026", False)
                else:
                    button.set_state("Hide errors" if stem in self.errors else "Errors",
                                     stem in self.errors)
                continue
            button.setVisible(listen)
            on = key == self.listening
            button.set_state("Listening" if on else "Listen", on)

    # -- evaluation -----------------------------------------------------------------------
    def open_evaluate(self) -> Any:
        """The Evaluate dialog (one per window), with this song's folder filled in."""
        from ..dialogs.evaluate import EvaluateDialog

        if self.evaluate_dialog is None:
            self.evaluate_dialog = EvaluateDialog(self.window, self.window.settings)
        song = self.current()
        if song is not None and song.source is not None and not self.evaluate_dialog.folder():
            self.evaluate_dialog.set_folder(scan_root(song.source))
        self.evaluate_dialog.show()
        self.evaluate_dialog.raise_()
        return self.evaluate_dialog


__all__ = ["MultitrackController", "LaneButton", "ScoreTask", "ErrorTask", "ErrorSignals",
           "lane_key", "format_scores", "dimmed", "REF", "INTERF", "ARTIF"]
