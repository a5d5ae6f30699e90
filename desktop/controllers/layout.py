"""The main window's layout between sessions: geometry, dock sizes and the views' splitter,
kept in `Settings`; first start sizes the docks for the screen, and a window saved on a
bigger screen is brought back inside this one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, Qt

if TYPE_CHECKING:
    from ..main_window import MainWindow


def restore_layout(window: MainWindow) -> None:
    """Put back the saved geometry, docks and splitter, or size the docks on first start."""
    settings = window.settings
    geometry = settings.window_geometry()
    if geometry is not None:
        window.restoreGeometry(geometry)
    state = settings.window_state()
    if state is not None:
        window.restoreState(state)
    else:
        tall = window.height() >= 940
        mixer = max(window.mixer_panel.minimumHeight() + 24, 360 if tall else 300)
        window.resizeDocks([window.mixer_dock], [mixer], Qt.Orientation.Vertical)
        window.resizeDocks([window.separation_dock], [330], Qt.Orientation.Horizontal)
    splitter = settings.splitter_state()
    if splitter is not None:
        window.splitter.restoreState(splitter)
    else:  # the lanes get most of the room; the spectrogram a quarter (the user drags it)
        total = max(window.splitter.height(), 300)
        spectrogram = min(max(int(total * 0.28), 90), 260)
        window.splitter.setSizes([total - spectrogram, spectrogram])
    fit_screen(window)


def fit_screen(window: MainWindow) -> None:
    """Keep the window inside the screen's available area (a geometry saved on a bigger
    screen, or a screen smaller than the default size)."""
    screen = window.screen()
    if screen is None:
        return
    area = screen.availableGeometry()
    width, height = min(window.width(), area.width()), min(window.height(), area.height())
    if (width, height) != (window.width(), window.height()):
        window.resize(max(width, window.minimumSizeHint().width()),
                      max(height, window.minimumSizeHint().height()))


def save_layout(window: MainWindow) -> None:
    """Remember the geometry, docks and splitter for the next start."""
    window.settings.save_window(QByteArray(window.saveGeometry()),
                                QByteArray(window.saveState()),
                                QByteArray(window.splitter.saveState()))
