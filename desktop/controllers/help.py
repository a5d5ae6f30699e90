"""The Help menu's windows: the keyboard shortcuts and About."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from stemwright.models.zoo import catalog as zoo

from .songs import APP_NAME

if TYPE_CHECKING:
    from ..main_window import MainWindow

SHORTCUTS = (
    ("Space", "Play / pause"),
    ("Home / End", "Go to the start / end"),
    ("Click, drag", "Seek, scrub"),
    ("Shift+drag", "Draw a loop region (snaps to beats when Snap is on)"),
    ("Ctrl+Shift+drag", "Draw a loop region without snapping"),
    ("Shift while dragging a loop edge", "Place the edge freely (no snapping)"),
    ("L", "Loop on / off"),
    ("[ and ]", "Loop start / end at the playhead"),
    ("Ctrl+Up / Ctrl+Down", "Select the previous / next stem"),
    ("M / S", "Mute / solo the selected stem"),
    ("B", "A/B: original mixture or remix"),
    ("Ctrl+= / Ctrl+- / Ctrl+0", "Zoom in / out / whole song"),
    ("Wheel, Shift+wheel", "Zoom, scroll"),
    ("Ctrl+wheel on the lanes", "Taller or shorter lanes"),
    ("Left / Right", "Scroll (in the waveform)"),
    ("Ctrl+O", "Open a song"),
    ("Ctrl+,", "Preferences (the session cache and its size limit)"),
    ("Ctrl+Shift+O", "Open a multitrack song (its stems become references)"),
    ("Ctrl+R / Esc", "Separate / cancel"),
    ("Ctrl+E", "Export stems"),
    ("Ctrl+B", "Batch queue: separate many songs in the background"),
)


class HelpController:
    """Shows the Help menu's message boxes (non-modal, deleted on close)."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window

    def show_shortcuts(self) -> None:
        w = self.window
        rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>"
                       for k, v in SHORTCUTS)
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts",
                          f"<table>{rows}</table>", QMessageBox.StandardButton.Close, w)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        box.open()

    def show_about(self) -> None:

        w = self.window
        try:
            ver = version("stemwright")
        except PackageNotFoundError:
            ver = "development"
        box = QMessageBox(QMessageBox.Icon.Information, f"About {APP_NAME}",
                          f"<b>{APP_NAME}</b> {ver}<br>Music source separation: vocals, drums, "
                          "bass, electric guitar, wind and other.<br>Models: "
                          + ", ".join(e.name for e in zoo.list_models()),
                          QMessageBox.StandardButton.Close, w)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        box.open()
