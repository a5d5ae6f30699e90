"""Start the desktop app: `stemwright`, `stemwright gui [FILE]` or `python -m
stemwright.desktop [FILE]`."""

from __future__ import annotations

import signal
import sys

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

from stemwright.resources import resource_path

from .dialogs import messages as dialogs
from .engine.workers import engine
from .main_window import APP_NAME, MainWindow
from .settings import APPLICATION, ORGANIZATION
from .theme import VisibleChecks

#: the app's style, kept referenced while the app uses it
_STYLE: list[VisibleChecks] = []


def apply_theme(app: QApplication) -> None:
    """A dark Fusion theme that suits waveforms and spectrograms, with tick boxes that
    show on it (`VisibleChecks`) in every dialog, list and tree."""
    style = VisibleChecks(QStyleFactory.create("Fusion"))
    _STYLE[:] = [style]
    app.setStyle(style)
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#23262d",
        QPalette.ColorRole.WindowText: "#e6e9ef",
        QPalette.ColorRole.Base: "#1b1d22",
        QPalette.ColorRole.AlternateBase: "#262a31",
        QPalette.ColorRole.ToolTipBase: "#2d313a",
        QPalette.ColorRole.ToolTipText: "#e6e9ef",
        QPalette.ColorRole.Text: "#e6e9ef",
        QPalette.ColorRole.Button: "#2d313a",
        QPalette.ColorRole.ButtonText: "#e6e9ef",
        QPalette.ColorRole.BrightText: "#ff6b6b",
        QPalette.ColorRole.Highlight: "#2f6fd0",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#6ea8ff",
        QPalette.ColorRole.PlaceholderText: "#7d8594",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b7280"))
    app.setPalette(palette)
    pg.setConfigOptions(antialias=False, background="#16181d", foreground="#c8ccd4")


def _icon() -> QIcon | None:
    try:
        for name in ("stemwright.svg", "stemwright.png", "icon.svg", "icon.png"):
            path = resource_path(name)
            if path.is_file():
                return QIcon(str(path))
    except Exception:  # noqa: BLE001 - an icon is optional
        pass
    return None


def create_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once), named and themed."""
    app = QApplication.instance()
    if app is None:
        QApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName("stemwright")
    icon = _icon()
    if icon is not None:
        app.setWindowIcon(icon)
    apply_theme(app)
    return app


def run(path: str | None = None, argv: list[str] | None = None) -> int:
    """Open the main window (and `path`, if given); returns the exit code."""
    app = create_app(argv)
    window = MainWindow(warm_up_engine=True)
    dialogs.install_excepthook(lambda: window if window.isVisible() else None)
    window.show()
    if path:
        window.open_file(path)
    # stems kept from earlier separations stay under the user's cache limit
    QTimer.singleShot(3000, window, window.apply_cache_limit)
    # Ctrl+C in the terminal closes the window the normal way (asking about unsaved
    # stems); the idle timer lets Python notice the signal while Qt waits for events.
    previous = signal.signal(signal.SIGINT, lambda *_args: window.close())
    wake = QTimer()
    wake.start(250)
    wake.timeout.connect(lambda: None)
    try:
        return int(app.exec())
    finally:
        wake.stop()
        signal.signal(signal.SIGINT, previous)
        engine().shutdown()
