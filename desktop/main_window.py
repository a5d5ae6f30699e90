"""Stemwright's main window: open a song, see it, separate it, play and remix the stems.

Everything slow (decoding, separating, downloading, spectrograms, envelopes) runs in
`workers`; the window only starts tasks and shows their results, so the event loop never
stalls. The window builds the widgets and wires them; the behaviour lives in
`controllers`: `songs` (open, close, recent files), `separation` (separate, cancel,
partial results, restore), `transport` (play, seek, loop, A/B), `stems` (selection, mute,
solo), `spectra` (the spectrogram) and `reference_lanes` (multitrack songs).

Stems appear as the model's chunks finish (`PartialSeparation`): lanes, mixer and
player take the finished part at once, the rest of each lane is shaded until it is done.
Playback, the mixer and the export dialog are separate components that the window wires
in when they are present (`playback`, `mixer_panel`, `export_dialog`).

Layout: the lanes scroll in their own area (`lane_scroll`), so however many lanes there
are (six stems, their references, error lanes) they never push the mixer or grow the
window, which fits a 1366x768 screen; the spectrogram sits under them in a splitter; the
mixer dock is kept tall enough for full strips (faders with dB readouts).
"""

from __future__ import annotations

import gc
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from .controllers.actions import build_actions, build_menus_and_toolbar
from .controllers.drag import StemDragController
from .controllers.export import ExportController
from .controllers.help import SHORTCUTS, HelpController
from .controllers.layout import apply_mixer_size, restore_layout, save_layout, size_splitter
from .controllers.reference_lanes import MultitrackController
from .controllers.separation import SeparationController
from .controllers.shortcuts import let_shortcuts_through
from .controllers.songs import APP_NAME, SongController
from .controllers.spectra import SpectrogramController
from .controllers.stems import StemController
from .controllers.tasks import TaskRunner
from .controllers.transport import NoPlayer, TransportController
from .dialogs import batch_queue
from .dialogs import messages as dialogs
from .engine.workers import (
    LoadedSong,
    LoadTask,
    PartialSeparation,
    RestoreSessionTask,
    SeparatedSong,
    SeparateTask,
    SeparationOptions,
    SpectrogramTask,
    Task,
    WarmupTask,
)
from .panels.mixer import MixerPanel
from .panels.separation import SeparationPanel
from .playback import Player
from .settings import Settings
from .views.spectrogram import SpectrogramView
from .views.waveform import LANE_HEIGHT, WaveformView

_NoPlayer = NoPlayer  # the name tests and older code use
LANES_MIN_HEIGHT = 110  # px: the lane area's shortest (it scrolls; the window never grows)
SPECTROGRAM_MIN_HEIGHT = 70
__all__ = ["APP_NAME", "SHORTCUTS", "MainWindow"]


class MainWindow(QMainWindow):
    """The application window."""

    songLoaded = Signal(object)  # LoadedSong
    stemsKept = Signal(object)  # SeparatedSong, once its stems are safe on disk
    separationFinished = Signal(object)  # SeparatedSong, or None when failed/cancelled
    separationStarted = Signal(object)  # SeparateTask

    def __init__(self, settings: Settings | None = None, player: object | None = None,
                 parent: QWidget | None = None, warm_up_engine: bool = False) -> None:
        super().__init__(parent)
        self.settings = settings if settings is not None else Settings()
        self.song: LoadedSong | None = None
        self.separated: SeparatedSong | None = None
        self.partial: PartialSeparation | None = None  # stems shown while separating
        self.stems_saved = True  # False while separated stems were never exported
        self.load_task: LoadTask | None = None
        self.separate_task: SeparateTask | None = None
        self.spec_task: SpectrogramTask | None = None
        self.tasks = TaskRunner()
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        if screen is not None and screen.height() < 900 and screen.width() > 1000:
            # a laptop screen: every pixel counts (the title bar and frame take ~32)
            self.resize(screen.width() - 16, screen.height() - 32)
        elif screen is not None and screen.width() > 1000:
            self.resize(min(1440, int(screen.width() * 0.9)),
                        min(960, int(screen.height() * 0.9)))
        else:
            self.resize(1280, 860)

        self.player = player if player is not None else self._make_player()
        # the behaviour lives in controllers; the window builds the widgets and wires them
        self.songs = SongController(self)
        self.separation = SeparationController(self)
        self.transport = TransportController(self)
        self.stems = StemController(self)
        self.spectra = SpectrogramController(self)
        self.exporter = ExportController(self)
        self.help = HelpController(self)
        self._build_views()
        self.drags = StemDragController(self)  # stems dragged out as files (a DAW)
        self._build_docks()
        build_actions(self)
        self.multitrack = MultitrackController(self)  # multitrack songs, references, scores
        build_menus_and_toolbar(self)
        self._build_status_bar()
        self._shortcut_filter = let_shortcuts_through(
            self, (self.separation_dock, self.mixer_dock))
        self.transport.connect_player()
        self.stems.connect()
        self.preferences_dialog = None
        # the stems kept on disk stay under the user's limit (the open song's are kept)
        self.stemsKept.connect(lambda _out: self.apply_cache_limit())
        restore_layout(self)
        apply_mixer_size(self, force=True)  # compact in a short window (a laptop's)
        self._shown_once = False
        self.update_actions()
        # Objects alive now (Qt bindings, torch, numpy, the window) never need collecting:
        # moving them out of the collector's reach keeps full collections short (~200 ms
        # otherwise, which would freeze the window).
        gc.freeze()
        if warm_up_engine:  # start the separation engine while the user picks a song
            QTimer.singleShot(1500, lambda: self.start_task(WarmupTask(self)))

    # -- construction -----------------------------------------------------------------
    def _make_player(self):
        try:
            return Player(self)
        except Exception as exc:  # noqa: BLE001 - no audio must never stop the app
            fallback = NoPlayer()
            fallback.unavailable_reason = f"playback could not start ({exc})"
            return fallback

    def _build_views(self) -> None:
        self.waveform = WaveformView()
        self.spectrogram = SpectrogramView(log_frequency=self.settings.log_frequency())
        self.spectrogram.link_x(self.waveform.mix_vb)
        for view in (self.waveform, self.spectrogram.plot_widget):
            view.setAcceptDrops(False)
            view.viewport().setAcceptDrops(False)
        self.waveform.set_lane_height(int(self.settings.value(
            "view/lane_height", LANE_HEIGHT, int) or LANE_HEIGHT))
        self.waveform.set_normalise(self.settings.value("view/normalise_lanes", True, bool)
                                    is not False)
        # the lanes scroll in their own area: they never push the mixer or grow the window
        self.lane_scroll = QScrollArea()
        self.lane_scroll.setObjectName("laneScroll")
        self.lane_scroll.setWidgetResizable(True)
        self.lane_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.lane_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.lane_scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.lane_scroll.setWidget(self.waveform)
        self.lane_scroll.setMinimumHeight(LANES_MIN_HEIGHT)
        self.lane_scroll.setStyleSheet("QScrollArea#laneScroll { background: #16181d; }")
        self.spectrogram.setMinimumHeight(SPECTROGRAM_MIN_HEIGHT)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("viewSplitter")
        self.splitter.addWidget(self.lane_scroll)
        self.splitter.addWidget(self.spectrogram)
        self.splitter.setStretchFactor(0, 1)  # a taller window gives the lanes the room
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setSizes([560, 220])
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setHandleWidth(6)
        self.spectrogram.setVisible(self.settings.show_spectrogram())
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self.views = central
        self.setCentralWidget(central)

        self.waveform.seekRequested.connect(self.transport.seek)
        self.waveform.loopChanged.connect(self.transport.loop_changed)
        self.waveform.stemSelected.connect(self.stems.stem_selected)
        self.spectrogram.seekRequested.connect(self.transport.seek)
        self.spectrogram.loopDragged.connect(self.waveform._loop_drag)
        self.spectrogram.sourceChanged.connect(self.spectra.request)
        self.spectrogram.logFrequencyChanged.connect(self.spectra.log_frequency_changed)

    def _build_docks(self) -> None:
        self.panel = SeparationPanel(self.settings)
        self.panel.separateRequested.connect(self.separation.separate)
        self.panel.cancelRequested.connect(self.separation.cancel)
        self.panel.modelsChanged.connect(self.update_actions)
        self.panel.restoreRequested.connect(self.separation.restore_stems)
        self.separation_dock = QDockWidget("Separation", self)
        self.separation_dock.setObjectName("separationDock")
        self.separation_dock.setWidget(self.panel)
        self.separation_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                         | QDockWidget.DockWidgetFeature.DockWidgetClosable
                                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.separation_dock)
        # the separation panel runs the full height; the mixer sits under the views
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)

        self.mixer_panel = MixerPanel(self.player)
        self.mixer_dock = QDockWidget("Mixer", self)
        self.mixer_dock.setObjectName("mixerDock")
        self.mixer_dock.setWidget(self.mixer_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.mixer_dock)
        # full strips (faders, meters, dB readouts) whatever the lanes: the dock never
        # gets shorter than that (the lanes scroll instead)
        self.mixer_panel.setMinimumHeight(self.mixer_panel.full_height_hint(1000))
        self.mixer_panel.selectedStemChanged.connect(self.stems.stem_selected_in_mixer)
        # the panel's A/B switch and the B action stay in step
        self.mixer_panel.abChanged.connect(self.transport.ab_changed)
        self.mixer_panel.slimRequested.connect(
            lambda on: self.set_mixer_size("compact" if on else "full"))

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.song_label = QLabel("No song")
        self.task_progress = QProgressBar()
        self.task_progress.setRange(0, 1000)
        self.task_progress.setMaximumWidth(180)
        self.task_progress.setMaximumHeight(16)
        self.task_progress.setTextVisible(True)  # progress in the status bar, not on lanes
        self.task_progress.setFormat("%p%")
        self.task_progress.setVisible(False)
        self.audio_notice = QLabel("")
        self.audio_notice.setStyleSheet("color: #f3a712; padding: 0 6px")
        self.audio_notice.setWordWrap(False)
        status.addWidget(self.song_label, 1)
        status.addPermanentWidget(self.task_progress)
        status.addPermanentWidget(self.audio_notice)
        if not getattr(self.player, "available", False):
            reason = getattr(self.player, "unavailable_reason", "") or "no audio device"
            self.audio_notice.setText("\u26a0 No audio output: playback is off")
            self.audio_notice.setToolTip("Playback is off; viewing, separating, the mixer "
                                         "and export all still work.\n" + reason)
            self.act_play.setToolTip(f"Playback unavailable: {reason}")

    # -- the public API (tests, app.py and the controllers use it) ---------------------
    def open_file(self, path: str | Path) -> LoadTask | None:
        """Decode `path` in the background; the song replaces the current one when ready."""
        return self.songs.open_file(path)

    def open_dialog(self) -> None:
        self.songs.open_dialog()

    def open_demo(self) -> None:
        self.songs.open_demo()

    def close_song(self) -> None:
        self.songs.close_song()

    def separate(self, options: SeparationOptions | None = None) -> SeparateTask | None:
        """Separate the current song in the background with the panel's (or given) options."""
        return self.separation.separate(options)

    def cancel_separation(self) -> None:
        self.separation.cancel()

    def restore_stems(self) -> RestoreSessionTask | None:
        return self.separation.restore_stems()

    def toggle_play(self) -> None:
        self.transport.toggle_play()

    def stop(self) -> None:
        self.transport.stop()

    def seek(self, seconds: float) -> None:
        """Move the playhead (and playback) to `seconds`."""
        self.transport.seek(seconds)

    def toggle_ab(self, on: bool | None = None) -> None:
        self.transport.toggle_ab(on)

    def selected_stem(self) -> str:
        return self.stems.selected()

    # -- lanes ------------------------------------------------------------------------
    def change_lane_height(self, steps: int) -> None:
        """Taller (steps > 0) or shorter lanes, a step of 16 px each."""
        self.waveform.set_lane_height(self.waveform.lane_height + 16 * steps)

    def _lane_height_changed(self, pixels: int) -> None:
        if self.lane_height_slider.value() != pixels:
            self.lane_height_slider.blockSignals(True)
            self.lane_height_slider.setValue(pixels)
            self.lane_height_slider.blockSignals(False)
        self.settings.set_value("view/lane_height", pixels)

    def set_mixer_size(self, size: str) -> None:
        """"auto" (compact in a short window), "full" or "compact" mixer strips;
        remembered."""
        self.settings.set_mixer_size(size)
        apply_mixer_size(self, force=True)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            if self.settings.splitter_state() is None:  # first start: now it has its size
                QTimer.singleShot(0, self, lambda: size_splitter(self))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        if hasattr(self, "mixer_size_actions"):  # built: "auto" follows the window
            apply_mixer_size(self)

    def set_snap(self, on: bool) -> None:
        """Loop edges snap to the song's beats (on) or go where they are dragged."""
        self.waveform.set_snap(on)
        self.settings.set_snap_to_beats(on)
        if self.act_snap.isChecked() != bool(on):
            self.act_snap.setChecked(bool(on))
        if on and self.song is not None and self.waveform.beat_grid is None:
            self.statusBar().showMessage("This song's beats are not known (yet): loop edges "
                                         "snap once its tempo is found.", 6000)

    def open_preferences(self) -> None:
        """Show the Preferences dialog (the session cache), non-modal."""
        from .dialogs.preferences import PreferencesDialog

        if self.preferences_dialog is None:
            self.preferences_dialog = PreferencesDialog(self)
            self.preferences_dialog.finished.connect(self._preferences_closed)
        self.preferences_dialog.refresh()
        self.preferences_dialog.show()
        self.preferences_dialog.raise_()

    def _preferences_closed(self, _result: int) -> None:
        dialog, self.preferences_dialog = self.preferences_dialog, None
        if dialog is not None:
            dialog.deleteLater()

    def apply_cache_limit(self) -> list[Path]:
        """Remove the oldest kept stems over the cache limit (never the open song's)."""
        from .controllers.cache import apply_limit

        try:
            return apply_limit(self)
        except OSError as exc:  # a cache that cannot be tidied never stops the app
            self.statusBar().showMessage(f"The stems cache could not be tidied: {exc}", 8000)
            return []

    def set_normalise(self, on: bool) -> None:
        """Each lane scaled to its own peak (on) or all to the mixture's (off)."""
        self.waveform.set_normalise(on)
        self.settings.set_value("view/normalise_lanes", bool(on))

    def reveal_lane(self, key: str) -> None:
        """Scroll the lane area so the lane `key` (a stem id) is in view (once the lanes'
        layout has settled: a selection can come with a change of lane height)."""
        QTimer.singleShot(0, self, lambda: self._reveal_now(key))

    def _reveal_now(self, key: str) -> None:
        self.waveform.settle()
        self.lane_scroll.setWidgetResizable(True)  # fits the view to its new minimum now
        self.waveform.ci.layout.activate()
        rect = self.waveform.lane_rect(key)
        if rect is not None:
            self.lane_scroll.ensureVisible(rect.center().x(), rect.center().y(), 0,
                                           rect.height() // 2 + 4)

    # drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if self.songs.dropped_file(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if self.songs.dropped_file(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        path = self.songs.dropped_file(event)
        if path:
            event.acceptProposedAction()
            QTimer.singleShot(0, lambda: self.open_file(path))
        else:
            event.ignore()

    # -- helpers ----------------------------------------------------------------------
    def start_task(self, task: Task) -> None:
        """Run `task`, keeping it alive (and cancellable on quit) until it finishes."""
        self.tasks.start(task)

    def running_tasks(self) -> list[Task]:
        return self.tasks.running()

    def update_actions(self) -> None:
        """Enable the actions that apply to the current song and stems."""
        has_song = self.song is not None
        for act in (self.act_play, self.act_stop, self.act_home, self.act_end, self.act_loop,
                    self.act_loop_in, self.act_loop_out, self.act_zoom_in, self.act_zoom_out,
                    self.act_zoom_fit, self.act_close):
            act.setEnabled(has_song)
        self.act_export.setEnabled(self.separated is not None and self.partial is None)
        self.act_separate.setEnabled(has_song and self.separate_task is None
                                     and self.panel.model_ready())
        has_stems = self.separated is not None or self.partial is not None
        for act in (self.act_mute, self.act_solo, self.act_prev_stem, self.act_next_stem,
                    self.act_ab):
            act.setEnabled(has_stems)
        self.act_ab.setChecked(self.player.mixer.source == "mix")
        self.multitrack.update_actions()

    def confirm(self, title: str, text: str) -> bool:
        """Ask a yes/no question (tests replace this)."""
        answer = QMessageBox.question(self, title, text,
                                      QMessageBox.StandardButton.Yes
                                      | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def confirm_discard(self, what: str) -> bool:
        """Ask before a running separation or unexported stems are thrown away."""
        if self.separate_task is not None:
            if not self.confirm(what, "A separation is running. Stop it and continue?"):
                return False
        if self.separated is not None and not self.stems_saved and self.song is not None:
            return self.confirm(what, f"The stems of \u201c{self.song.path.name}\u201d have "
                                "not been exported or saved yet. Discard them and continue?")
        return True

    # -- closing ---------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self.confirm_discard("Quit") or not batch_queue.may_quit(self):
            event.ignore()
            return
        save_layout(self)
        self.transport.timer.stop()
        try:
            self.player.close()
        except Exception:  # noqa: BLE001 - closing must always succeed
            pass
        self.panel.shutdown()
        if self.multitrack.evaluate_dialog is not None:
            self.multitrack.evaluate_dialog.shutdown()
        self.tasks.cancel_all(5.0)
        batch_queue.shutdown(self)
        for box in dialogs.open_dialogs():
            box.close()
        event.accept()
