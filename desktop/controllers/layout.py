"""The main window's layout between sessions: geometry, dock sizes and the views' splitter,
kept in `Settings`; first start sizes the docks for the screen."""

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
        window.resizeDocks([window.mixer_dock], [360 if tall else 300], Qt.Orientation.Vertical)
        window.resizeDocks([window.separation_dock], [330], Qt.Orientation.Horizontal)
    splitter = settings.splitter_state()
    if splitter is not None:
        window.splitter.restoreState(splitter)


def save_layout(window: MainWindow) -> None:
    """Remember the geometry, docks and splitter for the next start."""
    window.settings.save_window(QByteArray(window.saveGeometry()),
                                QByteArray(window.saveState()),
                                QByteArray(window.splitter.saveState()))
