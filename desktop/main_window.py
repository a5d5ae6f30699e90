"""Stemwright's main window: open a song, see it, separate it, play and remix the stems.

Everything slow (decoding, separating, downloading, spectrograms, envelopes) runs in
`workers`; the window only starts tasks and shows their results, so the event loop never
stalls. Stems appear as the model's chunks finish (`PartialSeparation`): lanes, mixer and
player take the finished part at once, the rest of each lane is shaded until it is done.
Playback, the mixer and the export dialog are separate components that the window wires
in when they are present (`playback`, `mixer_panel`, `export_dialog`).
"""

from __future__ import annotations

import gc
import math
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QStyle,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from stemwright.models.stems import STEM_IDS, get_stem
from stemwright.models.zoo import catalog as zoo

from .dialogs import messages as dialogs
from .dialogs.export import ExportDialog
from .engine.workers import (
    LoadedSong,
    LoadTask,
    PartialSeparation,
    RestoreSessionTask,
    SaveSessionTask,
    SeparatedSong,
    SeparateTask,
    SeparationOptions,
    SpectrogramTask,
    Task,
    WarmupTask,
    find_session,
)
from .panels.mixer import MixerPanel
from .panels.separation import SeparationPanel, format_duration
from .playback import Player
from .settings import Settings
from .views.spectrogram import Spectrogram, SpectrogramView
from .views.waveform import WaveformView, format_time

AUDIO_FILTER = ("Audio files (*.wav *.flac *.mp3 *.ogg *.oga *.opus *.m4a *.aac *.aif *.aiff "
                "*.wma *.mp4 *.mkv *.webm *.mov);;All files (*)")
PLAYHEAD_FPS = 30
STEP_MS = 8  # pause between the steps of a UI update split to keep the window responsive
APP_NAME = "Stemwright"

SHORTCUTS = (
    ("Space", "Play / pause"),
    ("Home / End", "Go to the start / end"),
    ("Click, drag", "Seek, scrub"),
    ("Shift+drag", "Draw a loop region"),
    ("L", "Loop on / off"),
    ("[ and ]", "Loop start / end at the playhead"),
    ("Ctrl+Up / Ctrl+Down", "Select the previous / next stem"),
    ("M / S", "Mute / solo the selected stem"),
    ("B", "A/B: original mixture or remix"),
    ("Ctrl+= / Ctrl+- / Ctrl+0", "Zoom in / out / whole song"),
    ("Wheel, Shift+wheel", "Zoom, scroll"),
    ("Left / Right", "Scroll (in the waveform)"),
    ("Ctrl+O", "Open a song"),
    ("Ctrl+Shift+O", "Open a multitrack song (its stems become references)"),
    ("Ctrl+R / Esc", "Separate / cancel"),
    ("Ctrl+E", "Export stems"),
)


class _NoPlayer(QObject):
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
        from stemwright.models.remix.mixer import MixerState
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


class _ShortcutPassThrough(QObject):
    """Event filter for number fields: the window's shortcuts (Space, M, S, B, L, Home...)
    win over them, as everywhere else in the docks; digits, arrows and editing keys still
    reach the field."""

    def __init__(self, shortcuts: set[int], parent: QObject) -> None:
        super().__init__(parent)
        self.shortcuts = shortcuts

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.ShortcutOverride:
            mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
            if (event.key() | mods.value) in self.shortcuts:
                event.ignore()  # not claimed: the shortcut map triggers the action
                return True
        return False


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
        self._tasks: set[Task] = set()
        self._spectrograms: dict[str, Spectrogram] = {}
        self._export_dialog = None
        self._session: dict | None = None  # a saved separation of the current song
        self._follow = True
        self._last_play_error = ""
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        if screen is not None and screen.width() > 1000:
            self.resize(min(1440, int(screen.width() * 0.9)),
                        min(960, int(screen.height() * 0.9)))
        else:
            self.resize(1280, 860)

        self.player = player if player is not None else self._make_player()
        self._build_views()
        self._build_docks()
        self._build_actions()
        self._build_menus_and_toolbar()
        self._build_status_bar()
        self._let_shortcuts_through()
        self._connect_player()

        self._playhead_timer = QTimer(self)
        self._playhead_timer.setInterval(int(1000 / PLAYHEAD_FPS))
        self._playhead_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._playhead_timer.timeout.connect(self._tick)
        self._restore_layout()
        self._update_actions()
        # Objects alive now (Qt bindings, torch, numpy, the window) never need collecting:
        # moving them out of the collector's reach keeps full collections short (~200 ms
        # otherwise, which would freeze the window).
        gc.freeze()
        if warm_up_engine:  # start the separation engine while the user picks a song
            QTimer.singleShot(1500, lambda: self._start(WarmupTask(self)))

    # -- construction -----------------------------------------------------------------
    def _make_player(self):
        try:
            return Player(self)
        except Exception as exc:  # noqa: BLE001 - no audio must never stop the app
            fallback = _NoPlayer()
            fallback.unavailable_reason = f"playback could not start ({exc})"
            return fallback

    def _build_views(self) -> None:
        self.waveform = WaveformView()
        self.spectrogram = SpectrogramView(log_frequency=self.settings.log_frequency())
        self.spectrogram.link_x(self.waveform.mix_vb)
        for view in (self.waveform, self.spectrogram.plot_widget):
            view.setAcceptDrops(False)
            view.viewport().setAcceptDrops(False)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("viewSplitter")
        self.splitter.addWidget(self.waveform)
        self.splitter.addWidget(self.spectrogram)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([560, 220])
        self.splitter.setChildrenCollapsible(False)
        self.spectrogram.setVisible(self.settings.show_spectrogram())
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self.views = central
        self.setCentralWidget(central)

        self.waveform.seekRequested.connect(self.seek)
        self.waveform.loopChanged.connect(self._loop_changed)
        self.waveform.stemSelected.connect(self._stem_selected)
        self.spectrogram.seekRequested.connect(self.seek)
        self.spectrogram.loopDragged.connect(self.waveform._loop_drag)
        self.spectrogram.sourceChanged.connect(self._spectrogram_source_changed)
        self.spectrogram.logFrequencyChanged.connect(self._log_frequency_changed)

    def _build_docks(self) -> None:
        self.panel = SeparationPanel(self.settings)
        self.panel.separateRequested.connect(self.separate)
        self.panel.cancelRequested.connect(self.cancel_separation)
        self.panel.modelsChanged.connect(self._update_actions)
        self.panel.restoreRequested.connect(self.restore_stems)
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
        self.mixer_panel.selectedStemChanged.connect(self._stem_selected_in_mixer)
        self.mixer_panel.abChanged.connect(self._ab_changed)  # panel's A/B and the B action

    def _action(self, text: str, slot, shortcut: str | QKeySequence | None = None,
                tip: str = "", icon: QStyle.StandardPixmap | None = None,
                checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(f"{tip} ({action.shortcut().toString()})"
                              if shortcut else tip)
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        sp = QStyle.StandardPixmap
        self.act_open = self._action("&Open...", self.open_dialog, QKeySequence.StandardKey.Open,
                                     "Open a song", sp.SP_DialogOpenButton)
        self.act_export = self._action("&Export stems...", self.export_stems, "Ctrl+E",
                                       "Export the stems or the remix", sp.SP_DialogSaveButton)
        self.act_close = self._action("&Close song", self.close_song, "Ctrl+W",
                                      "Close the current song")
        self.act_demo = self._action("Open the &demo song", self.open_demo, None,
                                     "A short synthesized song with all six instruments")
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_play = self._action("&Play / pause", self.toggle_play, "Space",
                                     "Play or pause", sp.SP_MediaPlay)
        self.act_stop = self._action("&Stop", self.stop, None, "Stop and go back",
                                     sp.SP_MediaStop)
        self.act_home = self._action("Go to &start", self.go_home, "Home",
                                     "Go to the start", sp.SP_MediaSkipBackward)
        self.act_end = self._action("Go to &end", self.go_end, "End")
        self.act_loop = self._action("&Loop", self.toggle_loop, "L",
                                     "Loop on/off (Shift+drag in a lane to draw one)",
                                     sp.SP_BrowserReload, checkable=True)
        self.act_loop_in = self._action("Loop start at playhead", self.loop_in, "[")
        self.act_loop_out = self._action("Loop end at playhead", self.loop_out, "]")
        self.act_follow = self._action("&Follow playhead", self._toggle_follow, "F",
                                       checkable=True)
        self.act_follow.setChecked(True)
        self.act_mute = self._action("&Mute selected stem", self.mute_selected, "M")
        self.act_solo = self._action("S&olo selected stem", self.solo_selected, "S")
        self.act_prev_stem = self._action("Select previous stem",
                                          lambda: self.select_adjacent_stem(-1), "Ctrl+Up")
        self.act_next_stem = self._action("Select next stem",
                                          lambda: self.select_adjacent_stem(1), "Ctrl+Down")
        self.act_ab = self._action("&A/B: hear the original mixture", self.toggle_ab, "B",
                                   "Switch between the original mixture and the remix",
                                   checkable=True)
        self.act_zoom_in = self._action("Zoom &in", lambda: self.waveform.zoom(2.0),
                                        QKeySequence.StandardKey.ZoomIn, "Zoom in",
                                        sp.SP_ArrowUp)
        self.act_zoom_in.setShortcuts([QKeySequence("Ctrl+="), QKeySequence("Ctrl++")])
        self.act_zoom_out = self._action("Zoom &out", lambda: self.waveform.zoom(0.5),
                                         QKeySequence.StandardKey.ZoomOut, "Zoom out",
                                         sp.SP_ArrowDown)
        self.act_zoom_fit = self._action("&Whole song", self.waveform.zoom_fit, "Ctrl+0",
                                         "Show the whole song", sp.SP_TitleBarMaxButton)
        self.act_spectrogram = self._action("S&pectrogram", self._toggle_spectrogram, None,
                                            checkable=True)
        self.act_spectrogram.setChecked(self.settings.show_spectrogram())
        self.act_log_freq = self._action("&Log frequency axis",
                                         lambda on: self.spectrogram.set_log_frequency(on),
                                         None, checkable=True)
        self.act_log_freq.setChecked(self.spectrogram.log_frequency())
        self.act_separate = self._action("&Separate", lambda: self.panel._separate_clicked(),
                                         "Ctrl+R", "Separate the song into stems",
                                         sp.SP_MediaSeekForward)
        self.act_cancel = self._action("&Cancel", self.cancel_all, "Esc",
                                       "Cancel loading or separating", sp.SP_BrowserStop)
        self.act_download = self._action("&Download selected model", self.panel.start_download)
        self.act_shortcuts = self._action("&Keyboard shortcuts", self.show_shortcuts, "F1")
        self.act_about = self._action("&About Stemwright", self.show_about)
        from .controllers.reference_lanes import MultitrackController

        self.multitrack = MultitrackController(self)  # multitrack songs, references, scores
        # scroll keys only act while the views have focus (lists and spin boxes keep theirs)
        for key, pages in (("Left", -0.25), ("Right", 0.25)):
            act = QAction(self.views)
            act.setShortcut(QKeySequence(key))
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            act.triggered.connect(lambda _c=False, p=pages: self.waveform.scroll(p))
            self.views.addAction(act)

    def _build_menus_and_toolbar(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.act_open)
        file_menu.addAction(self.multitrack.act_open)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        file_menu.addAction(self.act_demo)
        file_menu.addSeparator()
        file_menu.addAction(self.act_export)
        file_menu.addAction(self.act_close)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)

        view_menu = bar.addMenu("&View")
        for act in (self.act_zoom_in, self.act_zoom_out, self.act_zoom_fit):
            view_menu.addAction(act)
        view_menu.addSeparator()
        view_menu.addAction(self.act_follow)
        view_menu.addAction(self.act_spectrogram)
        view_menu.addAction(self.act_log_freq)
        view_menu.addAction(self.multitrack.act_references)
        view_menu.addSeparator()
        view_menu.addAction(self.separation_dock.toggleViewAction())
        view_menu.addAction(self.mixer_dock.toggleViewAction())

        play_menu = bar.addMenu("&Playback")
        for act in (self.act_play, self.act_stop, self.act_home, self.act_end):
            play_menu.addAction(act)
        play_menu.addSeparator()
        for act in (self.act_loop, self.act_loop_in, self.act_loop_out):
            play_menu.addAction(act)
        play_menu.addSeparator()
        for act in (self.act_prev_stem, self.act_next_stem, self.act_mute, self.act_solo,
                    self.act_ab):
            play_menu.addAction(act)

        sep_menu = bar.addMenu("&Separation")
        for act in (self.act_separate, self.act_cancel, self.act_download):
            sep_menu.addAction(act)
        sep_menu.addSeparator()
        sep_menu.addAction("&Fine-tune a model…", self.open_train_dialog)
        sep_menu.addSeparator()
        sep_menu.addAction(self.multitrack.act_errors)
        sep_menu.addAction(self.multitrack.act_evaluate)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.act_shortcuts)
        help_menu.addAction(self.act_about)

        tools = QToolBar("Main toolbar", self)
        tools.setObjectName("mainToolbar")
        tools.setMovable(False)
        tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tools.addAction(self.act_open)
        tools.addAction(self.act_export)
        tools.addSeparator()
        for act in (self.act_home, self.act_play, self.act_stop, self.act_loop):
            tools.addAction(act)
        tools.addSeparator()
        self.position_label = QLabel("0:00.0 / 0:00.0")
        self.position_label.setMinimumWidth(130)
        self.position_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.position_label.setStyleSheet("font-family: monospace; font-size: 13px; "
                                          "color: #e6e9ef; padding: 0 8px")
        tools.addWidget(self.position_label)
        tools.addSeparator()
        for act in (self.act_zoom_in, self.act_zoom_out, self.act_zoom_fit):
            tools.addAction(act)
        tools.addSeparator()
        tools.addAction(self.act_separate)
        self.toolbar = tools
        self.addToolBar(tools)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.song_label = QLabel("No song")
        self.task_progress = QProgressBar()
        self.task_progress.setRange(0, 1000)
        self.task_progress.setMaximumWidth(180)
        self.task_progress.setMaximumHeight(14)
        self.task_progress.setTextVisible(False)
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

    def _let_shortcuts_through(self) -> None:
        """Make every window shortcut work wherever the focus is in the docks: QActions
        on the window (WindowShortcut context) already do, except over number fields,
        which claim printable keys, Space and Home/End for themselves."""
        keys = {sc[0].toCombined() for act in self.actions() for sc in act.shortcuts()
                if act.shortcutContext() == Qt.ShortcutContext.WindowShortcut
                and sc.count() == 1}
        self._shortcut_filter = _ShortcutPassThrough(keys, self)
        for dock in (self.separation_dock, self.mixer_dock):
            if dock is None:
                continue
            for field in dock.findChildren(QAbstractSpinBox):
                field.installEventFilter(self._shortcut_filter)

    def _connect_player(self) -> None:
        for name, slot in (("positionChanged", self._position_changed),
                           ("stateChanged", self._state_changed),
                           ("errorOccurred", self._player_error),
                           ("notice", self._player_notice)):
            signal = getattr(self.player, name, None)
            if signal is not None:
                signal.connect(slot)

    # -- opening songs ----------------------------------------------------------------
    def open_dialog(self) -> None:
        """Ask for a file and open it."""
        path, _ = QFileDialog.getOpenFileName(self, "Open a song", self.settings.last_folder(),
                                              AUDIO_FILTER)
        if path:
            self.open_file(path)

    def open_demo(self) -> None:
        """Open the bundled demo song, a generated multitrack song, with its true stems
        as reference lanes (no mapping dialog: its metadata maps every track)."""
        from stemwright.models.errors import StemwrightError
        from stemwright.models.multitrack.folders import scan_folder
        from stemwright.resources import demo_song
        path = demo_song()
        try:
            songs = scan_folder(path).songs if (path / "mix.flac").is_file() else []
        except StemwrightError:
            songs = []
        if not songs:
            dialogs.show_error(self, "Demo song", "The demo song is not installed.",
                               "Open one of your own songs with File > Open.")
            return
        self.multitrack.load(songs[0])

    def open_file(self, path: str | Path) -> LoadTask | None:
        """Decode `path` in the background; the song replaces the current one when ready."""
        path = Path(path)
        from stemwright.resources import demo_song
        if path.is_dir() and path.resolve() == demo_song().resolve():
            self.open_demo()
            return None
        if path.is_dir():  # a multitrack song, or a folder of them
            self.multitrack.open_folder(path)
            return None
        if not self._confirm_discard(f"Open {path.name}"):
            return None
        task = LoadTask(path, self)
        task.succeeded.connect(lambda song, t=task: self._load_done(t, song))
        return self.start_load(task, f"Loading {path.name}...")

    def start_load(self, task, message: str):
        """Run a song-loading task (replacing any running one) with progress in the status
        bar; the caller connects `succeeded`."""
        if self.load_task is not None:
            self.load_task.cancel()
        self.load_task = task
        task.progressed.connect(lambda f, _e, _m, t=task: self._load_progress(t, f))
        task.failed.connect(lambda exc, t=task: self._load_failed(t, exc))
        task.cancelled.connect(lambda t=task: self._load_ended(t, "Loading cancelled."))
        self._start(task)
        self.statusBar().showMessage(message)
        self.task_progress.setValue(0)
        self.task_progress.setVisible(True)
        return task

    def _load_progress(self, task: LoadTask, fraction: float) -> None:
        if task is self.load_task:
            self.task_progress.setValue(int(fraction * 1000))

    def _load_ended(self, task: LoadTask, message: str) -> bool:
        if task is not self.load_task:
            return False
        self.load_task = None
        self.task_progress.setVisible(False)
        self.statusBar().showMessage(message, 5000)
        return True

    def _load_failed(self, task: LoadTask, exc: BaseException) -> None:
        if self._load_ended(task, "Could not open the song."):
            dialogs.show_exception(self, exc, "Could not open the song",
                                   context=f"{task.path.name} could not be opened.")

    def _load_done(self, task: LoadTask, song: LoadedSong) -> None:
        if not self._load_ended(task, f"Opened {song.path.name}"):
            return
        self._cancel_separation_silently()
        if hasattr(self.player, "clear_sources"):
            self.player.clear_sources()
        else:
            self.player.stop()
        self.song = song
        self.separated = None
        self.partial = None
        self.stems_saved = True
        self._spectrograms.clear()
        title = song.tags.get("title") if song.tags else None
        self.waveform.set_song(song.envelope, _lane_title(song, title))
        self.spectrogram.clear()
        self.spectrogram.set_sources([])
        self.spectrogram.set_duration(song.duration)
        self.spectrogram.set_loop(None)
        self.act_loop.setChecked(False)
        self.player.set_sources(song.data, None, song.samplerate)
        self._set_mixer_stems((), ())
        self.panel.set_song_loaded(True)
        self.settings.add_recent_file(song.path)
        self.setWindowTitle(f"{song.path.name} \u2014 {APP_NAME}")
        channels = {1: "mono", 2: "stereo"}.get(song.data.shape[0],
                                                 f"{song.data.shape[0]} channels")
        self.song_label.setText(f"{song.path.name}  \u00b7  {format_time(song.duration)}  "
                                f"\u00b7  {song.samplerate / 1000:g} kHz  \u00b7  {channels}")
        self._request_spectrogram(self.spectrogram.current_source())
        self._offer_session(song)
        self._tick()
        self._update_actions()
        self.songLoaded.emit(song)

    def close_song(self) -> None:
        """Close the current song (asks first if separated stems were never exported)."""
        if self.song is None or not self._confirm_discard("Close the song"):
            return
        self._cancel_separation_silently()
        self.player.stop()
        if hasattr(self.player, "clear_sources"):
            self.player.clear_sources()
        self.song = None
        self.separated = None
        self.partial = None
        self.stems_saved = True
        self._spectrograms.clear()
        self.waveform.clear()
        self.spectrogram.clear()
        self.spectrogram.set_sources([])
        self._set_mixer_stems((), ())
        self.panel.set_song_loaded(False)
        self.panel.offer_restore(None)
        self._session = None
        self.setWindowTitle(APP_NAME)
        self.song_label.setText("No song")
        self._update_actions()

    def _fill_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        recent = self.settings.recent_files()
        for i, path in enumerate(recent):
            act = menu.addAction(f"&{i + 1 if i < 9 else 0}  {Path(path).name}")
            act.setToolTip(path)
            act.setStatusTip(path)
            act.triggered.connect(lambda _c=False, p=path: self.open_file(p))
        if not recent:
            menu.addAction("No recent songs").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear list", self._clear_recent)

    def _clear_recent(self) -> None:
        self.settings.clear_recent_files()
        self._fill_recent_menu()

    # drag and drop
    @staticmethod
    def _dropped_file(event) -> str | None:
        mime = event.mimeData()
        if mime is None or not mime.hasUrls():
            return None
        for url in mime.urls():
            if isinstance(url, QUrl) and url.isLocalFile() and Path(url.toLocalFile()).exists():
                return url.toLocalFile()
        return None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if self._dropped_file(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if self._dropped_file(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        path = self._dropped_file(event)
        if path:
            event.acceptProposedAction()
            QTimer.singleShot(0, lambda: self.open_file(path))
        else:
            event.ignore()

    # -- separation -------------------------------------------------------------------
    def separate(self, options: SeparationOptions | None = None) -> SeparateTask | None:
        """Separate the current song in the background with the panel's (or given) options."""
        if self.song is None or self.separate_task is not None:
            return None
        options = options or self.panel.options()
        task = SeparateTask(self.song.data, self.song.samplerate, options, self)
        self.separate_task = task
        self.separationStarted.emit(task)
        task.progressed.connect(lambda f, eta, msg, t=task: self._separate_progress(t, f, eta,
                                                                                    msg))
        task.partialReady.connect(lambda p, t=task: self._separate_partial(t, p))
        task.succeeded.connect(lambda out, t=task: self._separate_done(t, out))
        task.failed.connect(lambda exc, t=task: self._separate_failed(t, exc))
        task.cancelled.connect(lambda t=task: self._separate_cancelled(t))
        self.panel.set_separating(True)
        self.task_progress.setValue(0)
        self.task_progress.setVisible(True)
        self._start(task)
        self._update_actions()
        return task

    def _separate_progress(self, task: SeparateTask, fraction: float, eta, message: str
                           ) -> None:
        if task is not self.separate_task:
            return
        self.panel.set_progress(fraction, eta, message)
        self.task_progress.setValue(int(fraction * 1000))

    def _separate_partial(self, task: SeparateTask, p: PartialSeparation) -> None:
        """Stems of the finished part arrived: show lanes, mixer and player at once (the
        player plays the buffers as they fill), then only move the pending shade."""
        song = self.song
        if task is not self.separate_task or song is None or task.mix is not song.data:
            return
        first = self.partial is not p
        self.partial = p
        self.waveform.set_pending(p.final_until_seconds)
        if not first:
            self.waveform.schedule_redraw()
            return
        title = _model_title(task.options.model)
        stems = tuple(s for s in STEM_IDS if s in p.stems)
        unavailable = tuple(p.unavailable)

        def lane(stem_id: str):
            def show() -> None:
                self.waveform.set_stem(stem_id, p.envelopes.get(stem_id),
                                       stem_id in unavailable, title)
            return show

        def playback() -> None:
            self.player.set_sources(song.data, p.stems, p.samplerate)

        def mixer() -> None:
            self._set_mixer_stems(stems, unavailable, None)
            if self.waveform.selected_stem() not in stems and stems:
                self._select(stems[0])
            self._update_actions()
            self.statusBar().showMessage("The first stems are ready: play and solo them "
                                         "while the rest is separated.", 5000)

        self._run_steps([lane(s) for s in STEM_IDS] + [playback, mixer],
                        lambda: self.song is song and self.partial is p)

    def _drop_partial(self) -> None:
        """Take back the stems shown while separating (cancelled or failed): the earlier
        separation comes back, or only the mixture."""
        if self.partial is None:
            return
        self.partial = None
        self.waveform.set_pending(None)
        if self.song is None:
            return
        if self.separated is not None:
            saved = self.stems_saved
            self._apply_separation(self.separated, "", on_disk=True, announce=False)
            self.stems_saved = saved
        else:
            self.waveform.clear_stems()
            self.player.set_sources(self.song.data, None, self.song.samplerate)
            self._set_mixer_stems((), ())
        self._update_actions()

    def _separate_ended(self, task: SeparateTask, message: str) -> bool:
        if task is not self.separate_task:
            return False
        self.separate_task = None
        self.task_progress.setVisible(False)
        self.panel.finish(message)
        self._update_actions()
        return True

    def _separate_cancelled(self, task: SeparateTask) -> None:
        if self._separate_ended(task, "Separation cancelled; nothing was changed."):
            self._drop_partial()

    def _separate_failed(self, task: SeparateTask, exc: BaseException) -> None:
        if self._separate_ended(task, "Separation failed."):
            self._drop_partial()
            self.separationFinished.emit(None)
            dialogs.show_exception(self, exc, "Separation failed",
                                   context=f"The model '{task.options.model}' could not "
                                           "separate this song.")

    def _separate_done(self, task: SeparateTask, out: SeparatedSong) -> None:
        if self.song is None or task.mix is not self.song.data:
            self._separate_ended(task, "")
            return
        result = out.result
        title = _model_title(result.model)
        summary = f"Separated with {title} in {format_duration(out.seconds)}."
        residual = result.residual_db
        if residual is not None and math.isfinite(residual) and residual > -60:
            summary += (f" What the model left unassigned ({residual:.0f} dB) was added to "
                        "Other." if result.residual_in_other
                        else f" {residual:.0f} dB of the song is in no stem.")
        for note in result.notes:
            summary += f"\n{note}"
        self._separate_ended(task, summary)
        self.panel.set_progress(1.0, None)
        self._apply_separation(out, summary, on_disk=False)

    def _apply_separation(self, out: SeparatedSong, summary: str, on_disk: bool,
                          announce: bool = True) -> None:
        """Show a separation: lanes, player, mixer, spectrogram sources; then keep its
        stems on disk (unless they came from there) and emit `separationFinished`
        (unless `announce` is off: an earlier separation shown again)."""
        result = out.result
        title = _model_title(result.model)
        self.separated = out
        self.partial = None
        self.waveform.set_pending(None)
        self.stems_saved = on_disk
        self.panel.offer_restore(None)
        for key in list(self._spectrograms):
            if key != "mix":
                del self._spectrograms[key]
        song = self.song
        stems, unavailable = tuple(result.stems), tuple(result.unavailable)

        # Applied in small steps, one per event-loop turn, so the window keeps drawing
        # and reacting while lanes, player and mixer take the stems in.
        def lane(stem_id: str):
            def show() -> None:
                self.waveform.set_stem(stem_id, out.envelopes.get(stem_id),
                                       stem_id in unavailable, title)
            return show

        def playback() -> None:
            self.player.set_sources(song.data, result.stems, result.samplerate)

        def mixer() -> None:
            self._set_mixer_stems(stems, unavailable, out.null_db)
            if not self.waveform.selected_stem() and stems:
                self._select(stems[0])

        def finish() -> None:
            self.spectrogram.set_sources([(s, get_stem(s).name) for s in stems])
            if self._loop_range() is not None:
                self.spectrogram.set_loop(self._loop_range())
            source = self.spectrogram.current_source()
            if source != "mix":
                self._request_spectrogram(source)
            self._update_actions()
            if not announce:
                return
            self.statusBar().showMessage(summary.split("\n")[0], 8000)
            if not on_disk:
                self._keep_stems(song, out)
            self.separationFinished.emit(out)

        self._run_steps([lane(s) for s in STEM_IDS] + [playback, mixer, finish],
                        lambda: self.song is song and self.separated is out)

    def _keep_stems(self, song: LoadedSong, out: SeparatedSong) -> None:
        """Write the stems to the session cache in the background."""
        task = SaveSessionTask(song.path, out, self)
        task.succeeded.connect(lambda _p, o=out: self._stems_kept(o))
        task.failed.connect(lambda exc: self.statusBar().showMessage(
            f"The stems could not be kept on disk ({exc}); export them to keep them.",
            10000))
        self._start(task)

    def _stems_kept(self, out: SeparatedSong) -> None:
        if self.separated is out:
            self.stems_saved = True
        self.stemsKept.emit(out)

    def restore_stems(self) -> RestoreSessionTask | None:
        """Bring back the stems of an earlier separation of the current song."""
        meta = self._session
        if self.song is None or meta is None or self.separate_task is not None:
            return None
        song = self.song
        task = RestoreSessionTask(meta, song.data.shape[-1], self)
        title = _model_title(meta.get("model", ""))
        task.succeeded.connect(lambda out: self._restored(song, out, title))
        task.failed.connect(lambda exc: dialogs.show_exception(
            self, exc, "Could not restore the stems",
            context="The stems kept from the earlier separation could not be read."))
        self.panel.offer_restore(None)
        self.statusBar().showMessage("Restoring the stems...")
        self._start(task)
        return task

    def _restored(self, song: LoadedSong, out: SeparatedSong, title: str) -> None:
        if self.song is not song:
            return
        summary = f"Restored the stems separated earlier with {title}."
        self.panel.finish(summary, 1.0)
        self._apply_separation(out, summary, on_disk=True)

    def _offer_session(self, song: LoadedSong) -> None:
        meta = find_session(song.path)
        if meta is None or int(meta.get("samplerate", 0)) != song.samplerate:
            self._session = None
            self.panel.offer_restore(None)
            return
        self._session = meta
        age = _age(time.time() - float(meta.get("created", time.time())))
        self.panel.offer_restore("Restore earlier stems")
        self.panel.status.setText(f"This song was separated {age} with "
                                  f"{_model_title(meta.get('model', ''))}: restore its stems "
                                  "instead of separating again.")

    def _run_steps(self, steps: list, still_valid) -> None:
        """Run `steps` a few ms apart while `still_valid()` holds (a real timer, not a
        posted call, so input, painting and other timers get their turn in between)."""
        if not steps or not still_valid():
            return
        steps[0]()
        if len(steps) > 1:
            QTimer.singleShot(STEP_MS, self, lambda: self._run_steps(steps[1:], still_valid))

    def cancel_separation(self) -> None:
        if self.separate_task is not None:
            self.separate_task.cancel()

    def _cancel_separation_silently(self) -> None:
        task, self.separate_task = self.separate_task, None
        if task is not None:
            task.cancel()
            self.task_progress.setVisible(False)
            self.panel.finish("Separation cancelled: another song was opened.")

    def cancel_all(self) -> None:
        """Esc: cancel loading and separating."""
        if self.load_task is not None:
            self.load_task.cancel()
        self.cancel_separation()
        if self.panel.downloading():
            self.panel.download_task.cancel()

    def _set_mixer_stems(self, stems: tuple[str, ...], unavailable: tuple[str, ...],
                         null_db: float | None = None) -> None:
        self.mixer_panel.set_stems(list(stems), list(unavailable), null_db)

    # -- spectrogram ------------------------------------------------------------------
    def _spectrogram_source_changed(self, key: str) -> None:
        self._request_spectrogram(key)

    def _request_spectrogram(self, key: str) -> None:
        if self.song is None or not self.spectrogram.isVisible() and key == "":
            return
        if key in self._spectrograms:
            self.spectrogram.set_spectrogram(self._spectrograms[key])
            return
        if key == "mix":
            signal = self.song.data
        elif self.separated is not None and key in self.separated.result.stems:
            signal = self.separated.result.stems[key]
        else:
            return
        if self.spec_task is not None:
            self.spec_task.cancel()
        task = SpectrogramTask(signal, self.song.samplerate, key, self)
        self.spec_task = task
        task.succeeded.connect(lambda spec, t=task: self._spectrogram_done(t, spec))
        task.failed.connect(lambda exc, t=task: self._spectrogram_failed(t, exc))
        self.spectrogram.set_busy("computing...")
        self._start(task)

    def _spectrogram_done(self, task: SpectrogramTask, spec: Spectrogram) -> None:
        if task is self.spec_task:
            self.spec_task = None
        if self.song is None or task.samplerate != self.song.samplerate:
            return
        self._spectrograms[spec.key] = spec
        if spec.key == self.spectrogram.current_source():
            self.spectrogram.set_spectrogram(spec)

    def _spectrogram_failed(self, task: SpectrogramTask, exc: BaseException) -> None:
        if task is self.spec_task:
            self.spec_task = None
            self.spectrogram.set_busy(f"spectrogram failed: {exc}")

    def _log_frequency_changed(self, on: bool) -> None:
        self.settings.set_log_frequency(on)
        self.act_log_freq.setChecked(on)

    def _toggle_spectrogram(self, on: bool) -> None:
        self.spectrogram.setVisible(on)
        self.settings.set_show_spectrogram(on)

    # -- transport --------------------------------------------------------------------
    def toggle_play(self) -> None:
        if self.song is None:
            return
        if not getattr(self.player, "available", False):
            reason = getattr(self.player, "unavailable_reason", "") or "no audio device"
            self.statusBar().showMessage(f"Playback is unavailable: {reason}. Everything "
                                         "else works.", 8000)
            return
        if hasattr(self.player, "toggle_play"):
            self.player.toggle_play()
        elif self.player.state() == "playing":
            self.player.pause()
        else:
            self.player.play()

    def stop(self) -> None:
        self.player.stop()
        self._tick()

    def seek(self, seconds: float) -> None:
        """Move the playhead (and playback) to `seconds`."""
        if self.song is None:
            return
        seconds = min(max(0.0, seconds), self.song.duration)
        self.player.seek(seconds)
        self.waveform.set_playhead(seconds)
        self.spectrogram.set_playhead(seconds)
        self._update_position_label(seconds)

    def go_home(self) -> None:
        start = 0.0
        loop = self._loop_range()
        if loop is not None and self.act_loop.isChecked() and self.player.position() > loop[0]:
            start = loop[0]
        self.seek(start)
        self.waveform.ensure_visible(start)

    def go_end(self) -> None:
        if self.song is not None:
            self.seek(self.song.duration)
            self.waveform.ensure_visible(self.song.duration)

    def _position_changed(self, seconds: float) -> None:
        if not self._playhead_timer.isActive():
            self._show_position(seconds)

    def _state_changed(self, state: str) -> None:
        playing = state == "playing"
        icon = QStyle.StandardPixmap.SP_MediaPause if playing else \
            QStyle.StandardPixmap.SP_MediaPlay
        self.act_play.setIcon(self.style().standardIcon(icon))
        self.act_play.setText("&Pause" if playing else "&Play")
        if playing:
            self._playhead_timer.start()
        else:
            self._playhead_timer.stop()
            # where playback stopped stays in view, even past the last timer tick's page
            self._show_position(self.player.position(), follow=self._follow)

    def _player_notice(self, message: str) -> None:
        self.statusBar().showMessage(message, 10000)

    def _player_error(self, message: str) -> None:
        self.statusBar().showMessage(message, 10000)
        if not getattr(self.player, "available", True):
            self.audio_notice.setText("\u26a0 No audio output: playback is off")
            self.audio_notice.setToolTip(self.player.unavailable_reason)

    def _tick(self) -> None:
        """Playhead timer (~30 fps): read the player's position and move the playheads."""
        self._show_position(self.player.position())

    def _show_position(self, seconds: float, follow: bool | None = None) -> None:
        """Move the playheads; page the view along while playing with Follow on."""
        self.waveform.set_playhead(seconds)
        self.spectrogram.set_playhead(seconds)
        if follow is None:
            follow = self._follow and self._playhead_timer.isActive()
        if follow:
            self.waveform.ensure_visible(seconds)
        self._update_position_label(seconds)

    def _update_position_label(self, seconds: float) -> None:
        total = self.song.duration if self.song is not None else 0.0
        self.position_label.setText(f"{format_time(seconds, 0.1)} / {format_time(total, 0.1)}")

    def _toggle_follow(self, on: bool) -> None:
        self._follow = bool(on)

    # -- loop -------------------------------------------------------------------------
    def _loop_range(self) -> tuple[float, float] | None:
        return self.waveform.loop()

    def _loop_changed(self, loop: tuple[float, float] | None) -> None:
        self.spectrogram.set_loop(loop)
        if loop is None:
            self.act_loop.setChecked(False)
            self.player.clear_loop()
        else:
            self.act_loop.setChecked(True)
            self.player.set_loop(*loop)

    def toggle_loop(self) -> None:
        """L: remove the loop, or create one from the playhead (a quarter of the view)."""
        if self.song is None:
            self.act_loop.setChecked(False)
            return
        if self.waveform.loop() is not None:
            self.waveform.clear_loop()
            return
        x0, x1 = self.waveform.view_range()
        start = self.player.position()
        if not x0 <= start < x1:
            start = x0
        end = min(self.song.duration, start + max(1.0, (x1 - x0) / 4))
        if end - start < 0.01:
            start = max(0.0, end - max(1.0, (x1 - x0) / 4))
        self.waveform.set_loop(start, end)

    def loop_in(self) -> None:
        if self.song is None:
            return
        pos = self.player.position()
        loop = self.waveform.loop()
        end = loop[1] if loop is not None and loop[1] > pos else min(
            self.song.duration, pos + 4.0)
        self.waveform.set_loop(pos, end)

    def loop_out(self) -> None:
        if self.song is None:
            return
        pos = self.player.position()
        loop = self.waveform.loop()
        start = loop[0] if loop is not None and loop[0] < pos else max(0.0, pos - 4.0)
        self.waveform.set_loop(start, pos)

    # -- stems: selection, mute, solo, A/B --------------------------------------------
    def _available_stems(self) -> list[str]:
        """Stems that can be selected, muted and soloed (also while separating)."""
        if self.partial is not None:
            stems = self.partial.stems
        elif self.separated is not None:
            stems = self.separated.result.stems
        else:
            return []
        return [s for s in STEM_IDS if s in stems]

    def _select(self, stem_id: str) -> None:
        self.waveform.select_stem(stem_id)
        self.mixer_panel.select_stem(stem_id)

    def _stem_selected(self, stem_id: str) -> None:
        self._select(stem_id)
        name = get_stem(stem_id).name
        self.statusBar().showMessage(f"{name} selected: M mutes, S solos it", 3000)

    def _stem_selected_in_mixer(self, stem_id: str) -> None:
        if stem_id in self._available_stems():
            self.waveform.select_stem(stem_id)

    def selected_stem(self) -> str:
        return self.waveform.selected_stem()

    def select_adjacent_stem(self, step: int) -> None:
        stems = self._available_stems()
        if not stems:
            return
        current = self.selected_stem()
        i = stems.index(current) + step if current in stems else 0
        self._stem_selected(stems[i % len(stems)])

    def _toggle_channel(self, what: str) -> None:
        stem_id = self.selected_stem()
        if stem_id not in self._available_stems():
            self.statusBar().showMessage("Separate the song and click a stem lane first.",
                                         4000)
            return
        panel_method = getattr(self.mixer_panel, f"toggle_{what}", None)
        if panel_method is not None:
            panel_method(stem_id)
        else:
            channel = self.player.mixer.channel(stem_id)
            self.player.set_channel(stem_id, **{what: not getattr(channel, what)})
        state = "on" if getattr(self.player.mixer.channel(stem_id), what) else "off"
        self.statusBar().showMessage(f"{get_stem(stem_id).name}: {what} {state}", 3000)

    def mute_selected(self) -> None:
        self._toggle_channel("mute")

    def solo_selected(self) -> None:
        self._toggle_channel("solo")

    def toggle_ab(self, on: bool | None = None) -> None:
        """B: hear the original mixture (on) or the remix of the stems (off)."""
        if on is None:
            on = self.player.mixer.source != "mix"
        panel_method = getattr(self.mixer_panel, "set_ab", None)
        if panel_method is not None:
            panel_method("mix" if on else "remix")
        else:
            self.player.set_ab("mix" if on else "remix")
        self.act_ab.setChecked(bool(on))
        self.statusBar().showMessage("Hearing the original mixture" if on
                                     else "Hearing the remix of the stems", 3000)

    def _ab_changed(self, source: str) -> None:
        """The mixer's A/B switch moved: keep the A/B action (B, Playback menu) in step."""
        self.act_ab.setChecked(source == "mix")

    # -- export -----------------------------------------------------------------------
    def open_train_dialog(self) -> None:
        """The fine-tune dialog; a model it trains is offered in the model selector."""
        from .dialogs.train import TrainDialog

        if getattr(self, "train_dialog", None) is None:
            self.train_dialog = TrainDialog(self)
            self.train_dialog.modelTrained.connect(
                lambda name: (self.panel.refresh_models(), self.panel.set_model(name)))
        self.train_dialog.show()
        self.train_dialog.raise_()

    def export_stems(self) -> None:
        """Open the export dialog for the separated stems."""
        if self.separated is None or self.song is None:
            self.statusBar().showMessage("Separate the song first, then export its stems.",
                                         5000)
            return
        if self.partial is not None:
            self.statusBar().showMessage("The song is still being separated: export its "
                                         "stems when it is done.", 5000)
            return
        result = self.separated.result
        dialog = ExportDialog(self, result.stems, result.samplerate, self.song.name,
                            self.player.mixer, self.settings.qsettings)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        exported = getattr(dialog, "exported", None)
        (exported if exported is not None else dialog.accepted).connect(self._exported)
        dialog.finished.connect(lambda _r: setattr(self, "_export_dialog", None))
        self._export_dialog = dialog
        dialog.open()

    def _exported(self, paths: list | None = None) -> None:
        self.stems_saved = True
        where = f" to {Path(paths[0]).parent}" if paths else ""
        self.statusBar().showMessage(f"Export finished{where}.", 8000)

    # -- helpers ----------------------------------------------------------------------
    def _start(self, task: Task) -> None:
        self._tasks.add(task)
        task.finished.connect(lambda t=task: self._task_finished(t))
        task.start()

    def _task_finished(self, task: Task) -> None:
        self._tasks.discard(task)
        task.deleteLater()

    def running_tasks(self) -> list[Task]:
        return [t for t in self._tasks if t.isRunning()]

    def _update_actions(self) -> None:
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

    def _confirm_discard(self, what: str) -> bool:
        if self.separate_task is not None:
            if not self.confirm(what, "A separation is running. Stop it and continue?"):
                return False
        if self.separated is not None and not self.stems_saved and self.song is not None:
            return self.confirm(what, f"The stems of \u201c{self.song.path.name}\u201d have "
                                "not been exported or saved yet. Discard them and continue?")
        return True

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>"
                       for k, v in SHORTCUTS)
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts",
                          f"<table>{rows}</table>", QMessageBox.StandardButton.Close, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        box.open()

    def show_about(self) -> None:
        from importlib.metadata import PackageNotFoundError, version
        try:
            ver = version("stemwright")
        except PackageNotFoundError:
            ver = "development"
        box = QMessageBox(QMessageBox.Icon.Information, f"About {APP_NAME}",
                          f"<b>{APP_NAME}</b> {ver}<br>Music source separation: vocals, drums, "
                          "bass, electric guitar, wind and other.<br>Models: "
                          + ", ".join(e.name for e in zoo.list_models()),
                          QMessageBox.StandardButton.Close, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        box.open()

    # -- layout persistence and closing -----------------------------------------------
    def _restore_layout(self) -> None:
        geometry = self.settings.window_geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)
        else:
            tall = self.height() >= 940
            self.resizeDocks([self.mixer_dock], [360 if tall else 300], Qt.Orientation.Vertical)
            self.resizeDocks([self.separation_dock], [330], Qt.Orientation.Horizontal)
        splitter = self.settings.splitter_state()
        if splitter is not None:
            self.splitter.restoreState(splitter)

    def save_layout(self) -> None:
        self.settings.save_window(QByteArray(self.saveGeometry()), QByteArray(self.saveState()),
                                  QByteArray(self.splitter.saveState()))

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self._confirm_discard("Quit"):
            event.ignore()
            return
        self.save_layout()
        self._playhead_timer.stop()
        try:
            self.player.close()
        except Exception:  # noqa: BLE001 - closing must always succeed
            pass
        self.panel.shutdown()
        if self.multitrack.evaluate_dialog is not None:
            self.multitrack.evaluate_dialog.shutdown()
        deadline = time.monotonic() + 5.0
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            task.wait(max(1, int((deadline - time.monotonic()) * 1000)))
        for box in dialogs.open_dialogs():
            box.close()
        event.accept()


def _model_title(name: str) -> str:
    try:
        return zoo.get_entry(name).title
    except Exception:  # noqa: BLE001 - a removed custom model still has a name
        return name


def _age(seconds: float) -> str:
    """"a moment ago", "5 minutes ago", "3 hours ago", "2 days ago"."""
    minutes = seconds / 60
    if minutes < 1:
        return "a moment ago"
    if minutes < 60:
        return f"{minutes:.0f} minute{'s' if round(minutes) != 1 else ''} ago"
    hours = minutes / 60
    if hours < 24:
        return f"{hours:.0f} hour{'s' if round(hours) != 1 else ''} ago"
    days = hours / 24
    return f"{days:.0f} day{'s' if round(days) != 1 else ''} ago"


def _lane_title(song: LoadedSong, title: str | None) -> str:
    artist = song.tags.get("artist") if song.tags else None
    if title and artist:
        return f"Mixture \u2014 {artist}: {title}"
    if title:
        return f"Mixture \u2014 {title}"
    return f"Mixture \u2014 {song.path.name}"
