"""The app-wide look that the palette alone cannot give: `VisibleChecks`, tick boxes that
show on the dark theme, set once for the whole app by `app.apply_theme` (every QCheckBox,
and the check boxes of list, table and tree rows)."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QProxyStyle, QStyle, QStyleOption, QWidget


class VisibleChecks(QProxyStyle):
    """Tick boxes drawn with a light outline (unticked) or filled with a tick (ticked):
    Fusion's outline on the dark theme is nearly black on black, so an unticked box is
    invisible and a list of models reads as plain text."""

    CHECKS = (QStyle.PrimitiveElement.PE_IndicatorCheckBox,
              QStyle.PrimitiveElement.PE_IndicatorItemViewItemCheck)

    def drawPrimitive(self, element: QStyle.PrimitiveElement, option: QStyleOption,  # noqa: N802
                      painter: QPainter, widget: QWidget | None = None) -> None:
        if element not in self.CHECKS:
            super().drawPrimitive(element, option, painter, widget)
            return
        state = option.state
        enabled = bool(state & QStyle.StateFlag.State_Enabled)
        side = min(option.rect.width(), option.rect.height()) - 2
        box = QRectF(option.rect.center().x() - side / 2 + 0.5,
                     option.rect.center().y() - side / 2 + 0.5, side, side)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        on = bool(state & QStyle.StateFlag.State_On)
        partly = bool(state & QStyle.StateFlag.State_NoChange)
        if on or partly:
            fill = QColor("#2f6fd0" if enabled else "#3a4252")
            painter.setPen(QPen(fill.lighter(130), 1.2))
            painter.setBrush(fill)
        else:
            painter.setPen(QPen(QColor("#a3acbb" if enabled else "#5a606c"), 1.5))
            painter.setBrush(QColor("#15171b"))
        painter.drawRoundedRect(box, 3, 3)
        mark = QPen(QColor("#ffffff" if enabled else "#9aa3b2"), max(1.6, side / 8))
        mark.setCapStyle(Qt.PenCapStyle.RoundCap)
        mark.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        painter.setPen(mark)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if on:
            path = QPainterPath(QPointF(box.left() + side * 0.22, box.top() + side * 0.52))
            path.lineTo(box.left() + side * 0.42, box.top() + side * 0.72)
            path.lineTo(box.left() + side * 0.78, box.top() + side * 0.30)
            painter.drawPath(path)
        elif partly:
            y = box.center().y()
            painter.drawLine(QPointF(box.left() + side * 0.25, y),
                             QPointF(box.right() - side * 0.25, y))
        painter.restore()


__all__ = ["VisibleChecks"]
