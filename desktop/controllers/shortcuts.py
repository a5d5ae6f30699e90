"""Keyboard shortcuts over the docks' number fields: the window's shortcuts (Space, M, S,
B, L, Home...) win over the spin boxes that would otherwise claim those keys."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QWidget


class ShortcutPassThrough(QObject):
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


def let_shortcuts_through(window: QWidget, docks) -> ShortcutPassThrough:
    """Make every window shortcut work wherever the focus is in `docks`: QActions on the
    window (WindowShortcut context) already do, except over number fields, which claim
    printable keys, Space and Home/End for themselves."""
    keys = {sc[0].toCombined() for act in window.actions() for sc in act.shortcuts()
            if act.shortcutContext() == Qt.ShortcutContext.WindowShortcut
            and sc.count() == 1}
    shortcut_filter = ShortcutPassThrough(keys, window)
    for dock in docks:
        if dock is None:
            continue
        for field in dock.findChildren(QAbstractSpinBox):
            field.installEventFilter(shortcut_filter)
    return shortcut_filter
