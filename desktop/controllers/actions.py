"""The main window's actions, menus and toolbar: what each command is called, its
shortcut and tip, and where it appears. The window owns the actions (`window.act_*`);
the controllers they call do the work."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QLabel, QSlider, QStyle, QToolBar

from ..dialogs.batch_queue import open_batch_queue
from ..views.waveform import LANE_HEIGHT_MAX, LANE_HEIGHT_MIN

if TYPE_CHECKING:
    from ..main_window import MainWindow


def action(window: MainWindow, text: str, slot, shortcut: str | QKeySequence | None = None,
            tip: str = "", icon: QStyle.StandardPixmap | None = None,
            checkable: bool = False) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(f"{tip} ({action.shortcut().toString()})"
                          if shortcut else tip)
    if icon is not None:
        action.setIcon(window.style().standardIcon(icon))
    action.setCheckable(checkable)
    action.triggered.connect(slot)
    window.addAction(action)
    return action

def build_actions(window: MainWindow) -> None:
    """Every QAction of the window, as `window.act_*` (shortcuts work window-wide)."""
    sp = QStyle.StandardPixmap
    window.act_open = action(window, "&Open...", window.songs.open_dialog,
                                 QKeySequence.StandardKey.Open, "Open a song",
                                 sp.SP_DialogOpenButton)
    window.act_export = action(window, "&Export stems...", window.exporter.export_stems, "Ctrl+E",
                                   "Export the stems or the remix", sp.SP_DialogSaveButton)
    window.act_close = action(window, "&Close song", window.songs.close_song, "Ctrl+W",
                                  "Close the current song")
    window.act_demo = action(window, "Open the &demo song", window.songs.open_demo, None,
                                 "A short synthesized song with all six instruments")
    window.act_batch = action(window, "&Batch queue\u2026", lambda: open_batch_queue(window),
                              "Ctrl+B", "Separate many songs one after another in the "
                              "background")
    window.act_quit = action(window, "&Quit", window.close, QKeySequence.StandardKey.Quit)
    window.mixer_size_group = QActionGroup(window)
    window.mixer_size_actions: dict[str, QAction] = {}
    for size, text, tip in (
            ("auto", "&Automatic", "Compact in a short window (a laptop's), full "
             "strips otherwise"),
            ("full", "&Full strips", "Vertical faders, meters, pan and dB readouts"),
            ("compact", "&Compact (one row)", "Horizontal faders with dB readouts in "
             "one row: more room for the lanes")):
        act = QAction(text, window)
        act.setCheckable(True)
        act.setStatusTip(tip)
        act.setChecked(size == window.settings.mixer_size())
        act.triggered.connect(lambda _c=False, s=size: window.set_mixer_size(s))
        window.mixer_size_group.addAction(act)
        window.mixer_size_actions[size] = act
    window.act_preferences = action(window,
        "&Preferences\u2026", window.open_preferences, "Ctrl+,",
        "The session cache (stems kept on disk): its size, limit and clearing")
    window.act_play = action(window, "&Play", window.transport.toggle_play, "Space",
                                 "Play or pause", sp.SP_MediaPlay)
    window.act_stop = action(window, "&Stop", window.transport.stop, None, "Stop and go back",
                                 sp.SP_MediaStop)
    window.act_home = action(window, "Go to &start", window.transport.go_home, "Home",
                                 "Go to the start", sp.SP_MediaSkipBackward)
    window.act_end = action(window, "Go to &end", window.transport.go_end, "End")
    window.act_loop = action(window, "&Loop", window.transport.toggle_loop, "L",
                                 "Loop on/off (Shift+drag in a lane to draw one)",
                                 sp.SP_BrowserReload, checkable=True)
    window.act_loop_in = action(window, "Loop start at playhead", window.transport.loop_in, "[")
    window.act_loop_out = action(window, "Loop end at playhead", window.transport.loop_out, "]")
    window.act_snap = action(window,
        "Snap loop to &beats", window.set_snap, None,
        "Loop edges snap to the song's beats once its tempo is found; hold Shift while "
        "dragging an edge to place it freely", checkable=True)
    window.act_snap.setIconText("Snap")
    window.act_snap.setChecked(window.settings.snap_to_beats())
    window.waveform.set_snap(window.act_snap.isChecked())
    window.act_follow = action(window, "&Follow playhead", window.transport.toggle_follow, "F",
                                   checkable=True)
    window.act_follow.setChecked(True)
    window.act_mute = action(window, "&Mute selected stem", window.stems.mute_selected, "M")
    window.act_solo = action(window, "S&olo selected stem", window.stems.solo_selected, "S")
    window.act_prev_stem = action(window, "Select previous stem",
                                      lambda: window.stems.select_adjacent(-1), "Ctrl+Up")
    window.act_next_stem = action(window, "Select next stem",
                                      lambda: window.stems.select_adjacent(1), "Ctrl+Down")
    window.act_ab = action(window, "&A/B: hear the original mixture",
                           window.transport.toggle_ab, "B",
                               "Switch between the original mixture and the remix",
                               checkable=True)
    window.act_zoom_in = action(window, "Zoom &in", lambda: window.waveform.zoom(2.0),
                                    QKeySequence.StandardKey.ZoomIn, "Zoom in",
                                    sp.SP_ArrowUp)
    window.act_zoom_in.setShortcuts([QKeySequence("Ctrl+="), QKeySequence("Ctrl++")])
    window.act_zoom_out = action(window, "Zoom &out", lambda: window.waveform.zoom(0.5),
                                     QKeySequence.StandardKey.ZoomOut, "Zoom out",
                                     sp.SP_ArrowDown)
    window.act_zoom_fit = action(window, "&Whole song", window.waveform.zoom_fit, "Ctrl+0",
                                     "Show the whole song", sp.SP_TitleBarMaxButton)
    window.act_taller = action(window, "&Taller lanes", lambda: window.change_lane_height(1),
                                   None, "Taller stem lanes (also Ctrl+wheel on the lanes)")
    window.act_shorter = action(window, "S&horter lanes",
                                    lambda: window.change_lane_height(-1), None,
                                    "Shorter stem lanes (also Ctrl+wheel on the lanes)")
    window.act_normalise = action(window,
        "&Normalise each lane", window.set_normalise, None,
        "Scale each lane to its own peak (its true level is in its header)",
        checkable=True)
    window.act_normalise.setChecked(window.waveform.normalise)
    window.act_spectrogram = action(window, "S&pectrogram", window.spectra.toggle, None,
                                        checkable=True)
    window.act_spectrogram.setChecked(window.settings.show_spectrogram())
    window.act_log_freq = action(window, "&Log frequency axis",
                                     lambda on: window.spectrogram.set_log_frequency(on),
                                     None, checkable=True)
    window.act_log_freq.setChecked(window.spectrogram.log_frequency())
    window.act_lane_spectra = action(window, "Lanes show spectro&grams",
                                         window.spectra.lanes_toggle, None,
                                         "Draw every lane as a spectrogram (log frequency) "
                                         "instead of a waveform", checkable=True)
    window.act_lane_spectra.setChecked(window.settings.lane_spectrograms())
    if window.act_lane_spectra.isChecked():
        window.spectra.lanes_toggle(True)
    window.act_separate = action(window, "&Separate", lambda: window.panel._separate_clicked(),
                                     "Ctrl+R", "Separate the song into stems",
                                     sp.SP_MediaSeekForward)
    window.act_cancel = action(window, "&Cancel", window.separation.cancel_all, "Esc",
                                   "Cancel loading or separating", sp.SP_BrowserStop)
    window.act_download = action(window, "&Download selected model", window.panel.start_download)
    window.act_shortcuts = action(window, "&Keyboard shortcuts", window.help.show_shortcuts, "F1")
    window.act_about = action(window, "&About Stemwright", window.help.show_about)
    # scroll keys only act while the views have focus (lists and spin boxes keep theirs)
    for key, pages in (("Left", -0.25), ("Right", 0.25)):
        act = QAction(window.views)
        act.setShortcut(QKeySequence(key))
        act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        act.triggered.connect(lambda _c=False, p=pages: window.waveform.scroll(p))
        window.views.addAction(act)

def build_menus_and_toolbar(window: MainWindow) -> None:
    """The menu bar and the toolbar, from the actions."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addAction(window.act_open)
    file_menu.addAction(window.multitrack.act_open)
    window.recent_menu = file_menu.addMenu("Open &recent")
    window.recent_menu.aboutToShow.connect(window.songs.fill_recent_menu)
    window.songs.fill_recent_menu()
    file_menu.addAction(window.act_demo)
    file_menu.addAction(window.act_batch)
    file_menu.addSeparator()
    file_menu.addAction(window.act_export)
    file_menu.addAction(window.act_close)
    file_menu.addSeparator()
    file_menu.addAction(window.act_preferences)
    file_menu.addAction(window.act_quit)

    view_menu = bar.addMenu("&View")
    for act in (window.act_zoom_in, window.act_zoom_out, window.act_zoom_fit):
        view_menu.addAction(act)
    view_menu.addSeparator()
    for act in (window.act_taller, window.act_shorter, window.act_normalise):
        view_menu.addAction(act)
    view_menu.addSeparator()
    view_menu.addAction(window.act_follow)
    view_menu.addAction(window.act_spectrogram)
    view_menu.addAction(window.act_log_freq)
    view_menu.addAction(window.act_lane_spectra)
    view_menu.addAction(window.multitrack.act_references)
    view_menu.addSeparator()
    view_menu.addAction(window.separation_dock.toggleViewAction())
    view_menu.addAction(window.mixer_dock.toggleViewAction())
    mixer_menu = view_menu.addMenu("Mi&xer strips")
    for act in window.mixer_size_actions.values():
        mixer_menu.addAction(act)

    play_menu = bar.addMenu("&Playback")
    for act in (window.act_play, window.act_stop, window.act_home, window.act_end):
        play_menu.addAction(act)
    play_menu.addSeparator()
    for act in (window.act_loop, window.act_loop_in, window.act_loop_out, window.act_snap):
        play_menu.addAction(act)
    play_menu.addSeparator()
    for act in (window.act_prev_stem, window.act_next_stem, window.act_mute, window.act_solo,
                window.act_ab):
        play_menu.addAction(act)

    sep_menu = bar.addMenu("&Separation")
    for act in (window.act_separate, window.act_cancel, window.act_download):
        sep_menu.addAction(act)
    sep_menu.addSeparator()
    sep_menu.addAction("&Fine-tune a model…", window.exporter.open_train_dialog)
    sep_menu.addSeparator()
    sep_menu.addAction(window.multitrack.act_errors)
    sep_menu.addAction(window.multitrack.act_evaluate)

    help_menu = bar.addMenu("&Help")
    help_menu.addAction(window.act_shortcuts)
    help_menu.addAction(window.act_about)

    tools = QToolBar("Main toolbar", window)
    tools.setObjectName("mainToolbar")
    tools.setMovable(False)
    tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    tools.addAction(window.act_open)
    tools.addAction(window.act_export)
    tools.addSeparator()
    for act in (window.act_home, window.act_play, window.act_stop, window.act_loop,
                window.act_snap):
        tools.addAction(act)
    tools.addSeparator()
    window.position_label = QLabel("0:00.0 / 0:00.0")
    window.position_label.setMinimumWidth(130)
    window.position_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    window.position_label.setStyleSheet("font-family: monospace; font-size: 13px; "
                                      "color: #e6e9ef; padding: 0 8px")
    tools.addWidget(window.position_label)
    tools.addSeparator()
    for act in (window.act_zoom_in, window.act_zoom_out, window.act_zoom_fit):
        tools.addAction(act)
    tools.addSeparator()
    lanes_label = QLabel("Lanes")
    lanes_label.setStyleSheet("color: #aab2bf; padding: 0 4px")
    tools.addWidget(lanes_label)
    window.lane_height_slider = QSlider(Qt.Orientation.Horizontal)
    window.lane_height_slider.setRange(LANE_HEIGHT_MIN, LANE_HEIGHT_MAX)
    window.lane_height_slider.setSingleStep(8)
    window.lane_height_slider.setPageStep(24)
    window.lane_height_slider.setFixedWidth(90)
    window.lane_height_slider.setValue(window.waveform.lane_height)
    window.lane_height_slider.setToolTip("Lane height (also Ctrl+wheel on the lanes)")
    window.lane_height_slider.valueChanged.connect(window.waveform.set_lane_height)
    window.waveform.laneHeightChanged.connect(window._lane_height_changed)
    tools.addWidget(window.lane_height_slider)
    tools.addSeparator()
    tools.addAction(window.act_separate)
    window.toolbar = tools
    window.addToolBar(tools)
    # short toolbar labels (the menus keep the full names): the toolbar fits 1366 px
    home = tools.widgetForAction(window.act_home)
    if home is not None:
        home.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    for act, short in ((window.act_zoom_in, "In"), (window.act_zoom_out, "Out"),
                       (window.act_zoom_fit, "Fit")):
        act.setIconText(short)
    # Play and Pause take the same room: the toolbar never shifts when playback starts
    play = tools.widgetForAction(window.act_play)
    if play is not None:
        widths = []
        for text in ("&Pause", "&Play"):
            window.act_play.setText(text)
            widths.append(play.sizeHint().width())
        play.setFixedWidth(max(widths))
        window.play_button = play
