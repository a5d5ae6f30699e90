"""Preferences: the session cache (separated stems kept on disk: its size, where it is,
its limit and a Clear button that asks first and keeps the open song's stems)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..controllers import cache
from ..engine.workers import sessions_dir
from ..settings import CACHE_LIMIT_MAX_MB, CACHE_LIMIT_MIN_MB

if TYPE_CHECKING:
    from ..main_window import MainWindow


class PreferencesDialog(QDialog):
    """The app's preferences (for now, the session cache)."""

    def __init__(self, window: MainWindow, parent: QWidget | None = None) -> None:
        super().__init__(parent if parent is not None else window)
        self.window_ = window
        self.setWindowTitle("Preferences")
        self.setMinimumWidth(480)
        outer = QVBoxLayout(self)

        box = QGroupBox("Separated stems kept on disk (session cache)", self)
        form = QFormLayout(box)
        intro = QLabel("Every separation is kept so that reopening a song restores its "
                       "stems at once. They are stored uncompressed (about 21 MB per stem "
                       "and minute): the oldest are removed first when the cache is over "
                       "its limit. The open song's stems are always kept.", box)
        intro.setWordWrap(True)
        intro.setStyleSheet("color: #9aa3b2")
        form.addRow(intro)
        self.size_label = QLabel(box)
        self.size_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("In use:", self.size_label)
        self.folder_label = QLabel(str(sessions_dir()), box)
        self.folder_label.setWordWrap(True)
        self.folder_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Folder:", self.folder_label)
        self.limit = QDoubleSpinBox(box)
        self.limit.setDecimals(1)
        self.limit.setSuffix(" GB")
        self.limit.setRange(CACHE_LIMIT_MIN_MB / 1024, CACHE_LIMIT_MAX_MB / 1024)
        self.limit.setSingleStep(0.5)
        self.limit.setValue(window.settings.cache_limit_mb() / 1024)
        self.limit.setToolTip("The most the kept stems may take; the oldest songs' stems "
                              "are removed first")
        self.limit.editingFinished.connect(self.apply_limit)
        form.addRow("Limit:", self.limit)
        buttons = QHBoxLayout()
        self.clear_button = QPushButton("Clear cache\u2026", box)
        self.clear_button.setToolTip("Remove every kept separation except the open song's")
        self.clear_button.clicked.connect(self.clear_cache)
        self.open_button = QPushButton("Open folder", box)
        self.open_button.clicked.connect(self._open_folder)
        buttons.addWidget(self.clear_button)
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        form.addRow(buttons)
        outer.addWidget(box)

        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self._close)
        outer.addWidget(close)
        self.refresh()

    # -- the cache ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Show the cache's size now."""
        found = cache.separations()
        songs = len({s.song_folder for s in found})
        runs = sum(not s.is_drag_renders for s in found)
        size = cache.cache_size()
        dragged = cache.dragged_size()
        dragged_text = (f"; {cache.format_size(dragged)} of it stems dragged into other "
                        "programs, kept whatever the limit" if dragged else "")
        self.size_label.setText(
            f"{cache.format_size(size)} in {songs} song{'s' if songs != 1 else ''} "
            f"({runs} separation{'s' if runs != 1 else ''}{dragged_text})")
        self.clear_button.setEnabled(bool(found))
        self.open_button.setEnabled(sessions_dir().is_dir())

    def apply_limit(self) -> None:
        """Keep the limit typed in and bring the cache under it now."""
        mb = int(round(self.limit.value() * 1024))
        settings = self.window_.settings
        if mb != settings.cache_limit_mb():
            settings.set_cache_limit_mb(mb)
            removed = cache.apply_limit(self.window_)
            if removed:
                self.window_.statusBar().showMessage(
                    f"Removed the stems of {len(removed)} older separation"
                    f"{'s' if len(removed) != 1 else ''} to stay under the limit.", 6000)
        self.refresh()

    def clear_cache(self) -> list:
        """Ask, then remove every kept separation but the open song's."""
        size = cache.format_size(cache.cache_size())
        keep = cache.open_song_folders(self.window_)
        kept = " The open song's stems are kept." if keep else ""
        dragged = (" Stems you dragged into a DAW are removed too: a project that plays "
                   "them from here (not a copy) will miss them." if cache.dragged_size()
                   else "")
        if not self.confirm("Clear the cache",
                            f"Remove the stems kept from earlier separations ({size})? "
                            f"Those songs will need separating again.{kept}{dragged}"):
            return []
        removed = cache.clear(keep)
        self.refresh()
        self.window_.statusBar().showMessage(
            f"Cleared the cache: {len(removed)} separation"
            f"{'s' if len(removed) != 1 else ''} removed.", 6000)
        return removed

    def confirm(self, title: str, text: str) -> bool:
        """Ask a yes/no question (tests replace this)."""
        answer = QMessageBox.question(self, title, text,
                                      QMessageBox.StandardButton.Yes
                                      | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _open_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(sessions_dir())))

    def _close(self) -> None:
        self.apply_limit()
        self.reject()


__all__ = ["PreferencesDialog"]
