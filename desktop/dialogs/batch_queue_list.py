"""The batch queue's list of songs (`QueueList`): one row per song with its state (a
progress bar while it runs, the one-line reason when it failed) and its output folder;
rows are dragged to reorder, and files or folders dropped on it are added."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QProgressBar,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)

from ..controllers.batch_state import (
    CANCELLED,
    DONE,
    FAILED,
    RUNNING,
    SKIPPED,
    WAITING,
    BatchQueue,
)

COLUMNS = ("#", "Song", "State", "Output folder")
STATE_TEXT = {WAITING: "Waiting", RUNNING: "Running", DONE: "Done",
              SKIPPED: "Skipped (already done)", FAILED: "Failed", CANCELLED: "Cancelled"}
STATE_COLOUR = {DONE: "#7fd47f", SKIPPED: "#9aa3b2", FAILED: "#ff7b72",
                CANCELLED: "#d8a657", RUNNING: "#6cb6ff"}

class QueueList(QTreeWidget):
    """The songs: drag a row to reorder, drop files or folders to add them."""

    pathsDropped = Signal(list)  # noqa: N815 - Qt signal naming
    reordered = Signal(list)  # the item ids in their new order

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(COLUMNS)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setAcceptDrops(True)
        self.setStyleSheet("QTreeWidget::item { padding: 3px 2px; }")
        header = self.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.resizeSection(1, 220)
        header.resizeSection(2, 260)

    @staticmethod
    def _paths(event) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if self._paths(event):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if self._paths(event):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = self._paths(event)
        if paths and event.source() is not self:
            event.acceptProposedAction()
            self.pathsDropped.emit(paths)
            return
        super().dropEvent(event)
        ids = self.ids()  # the new order; told after the drag has ended (rows redrawn)
        QTimer.singleShot(0, self, lambda: self.reordered.emit(ids))

    def ids(self, selected: bool = False) -> list[str]:
        """The item ids of the rows (only the selected ones), top to bottom."""
        rows = [self.topLevelItem(n) for n in range(self.topLevelItemCount())]
        return [r.data(0, Qt.ItemDataRole.UserRole) for r in rows
                if r.isSelected() or not selected]

    def fill(self, queue: BatchQueue) -> dict[str, QProgressBar]:
        """Show the queue's songs, keeping the selection; returns the running rows'
        progress bars by item id."""
        selected = set(self.ids(selected=True))
        self.clear()
        bars: dict[str, QProgressBar] = {}
        output = queue.settings.output or "."
        for n, item in enumerate(queue.items, 1):
            folder = str(item.folder(output))
            row = QTreeWidgetItem([str(n), item.name, "", folder])
            row.setData(0, Qt.ItemDataRole.UserRole, item.id)
            row.setFlags(Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
                         | Qt.ItemFlag.ItemIsDragEnabled)  # never a drop target: no nesting
            row.setToolTip(1, item.path)
            row.setToolTip(3, folder)
            text = STATE_TEXT.get(item.state, item.state)
            if item.state == FAILED and item.reason:
                text = f"Failed: {item.reason}"
            row.setText(2, text)
            if item.reason and item.state != CANCELLED:
                row.setToolTip(2, item.reason)
            if item.state in STATE_COLOUR:
                row.setForeground(2, QColor(STATE_COLOUR[item.state]))
            self.addTopLevelItem(row)
            if item.state == RUNNING:
                bar = QProgressBar()
                bar.setRange(0, 1000)
                bar.setValue(round(item.fraction * 1000))
                bar.setFormat("Running %p%")
                bar.setMaximumHeight(18)
                self.setItemWidget(row, 2, bar)
                bars[item.id] = bar
            row.setSelected(item.id in selected)
        return bars
