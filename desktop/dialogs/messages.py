"""Error dialogs that say what went wrong and what to do next, and the crash guard.

`show_error` opens a non-blocking (window-modal) message box, so it is safe from any slot
and never nests an event loop. `install_excepthook` routes every uncaught exception (GUI
thread or worker threads) to such a dialog instead of letting the app die.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType

from PySide6.QtCore import QObject, Qt, QThread, Signal
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from stemwright.models import errors

#: Open dialogs are kept referenced here until closed (Qt would otherwise delete them).
_OPEN: list[QMessageBox] = []
MAX_OPEN = 3


def next_step(exc: BaseException) -> str:
    """A short "what to do next" for an exception, by type and message."""
    text = str(exc).lower()
    if isinstance(exc, errors.UnsupportedFormatError):
        return ("Stemwright reads WAV, FLAC, AIFF, OGG, MP3, M4A and most video soundtracks. "
                "Convert the file to WAV or FLAC in another program, or pick another file.")
    if isinstance(exc, errors.AudioError):
        return ("Check that the file plays in another player and is not still being copied "
                "or downloaded, then open it again.")
    if isinstance(exc, errors.OfflineError):
        return ("Connect to the internet and press Download again, or use the Classic model, "
                "which works offline.")
    if isinstance(exc, errors.ChecksumError):
        return "The download was damaged on the way. Press Download to fetch it again."
    if isinstance(exc, errors.OutputExistsError):
        return "Choose another folder, or allow overwriting in the export options."
    if isinstance(exc, MemoryError) or (isinstance(exc, errors.ModelError)
                                        and "memory" in text):
        return ("Open Advanced and choose a shorter segment, close other programs, or "
                "separate on the CPU.")
    if isinstance(exc, errors.ModelError):
        return "Pick another model in the Separation panel, or download this one first."
    if isinstance(exc, errors.StemwrightError):
        return "Check the settings and try again."
    if isinstance(exc, PermissionError):
        return "You do not have permission for that file or folder; choose another location."
    if isinstance(exc, FileNotFoundError):
        return "The file was moved or deleted. Open it again from its new location."
    if isinstance(exc, OSError):
        return "Check the file or folder is reachable (disk connected, enough free space)."
    return ("This is a bug in Stemwright. Your song and stems are still open; you can keep "
            "working or export them. The details below help us fix it.")


def show_error(parent: QWidget | None, title: str, message: str, hint: str = "",
               details: str = "") -> QMessageBox:
    """Open an error dialog (non-blocking) and return it."""
    for box in _OPEN:  # the same error again (e.g. from every repaint): one dialog is enough
        if box.text() == message and box.windowTitle() == title:
            return box
    while len(_OPEN) >= MAX_OPEN:  # never bury the user under a cascade of dialogs
        old = _OPEN.pop(0)
        old.close()
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle(title)
    box.setText(message)
    if hint:
        box.setInformativeText(hint)
    if details:
        box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.setWindowModality(Qt.WindowModality.WindowModal if parent is not None
                          else Qt.WindowModality.ApplicationModal)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    _OPEN.append(box)
    box.finished.connect(lambda *_: _OPEN.remove(box) if box in _OPEN else None)
    box.open()
    return box


def show_exception(parent: QWidget | None, exc: BaseException, title: str = "Stemwright",
                   context: str = "") -> QMessageBox:
    """Error dialog for `exc`: its message, the next step, and a traceback for bugs."""
    user_facing = isinstance(exc, errors.StemwrightError | OSError | MemoryError)
    message = str(exc) or type(exc).__name__
    if context:
        message = f"{context}\n\n{message}"
    elif not user_facing:
        message = f"Something went wrong: {type(exc).__name__}: {message}"
    details = "" if user_facing else "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__))
    return show_error(parent, title, message, next_step(exc), details)


def open_dialogs() -> list[QMessageBox]:
    """Error dialogs currently open (for tests and for closing on exit)."""
    return list(_OPEN)


class _Relay(QObject):
    """Carries exceptions from any thread to the GUI thread."""

    raised = Signal(object)


_relay: _Relay | None = None


def _no_parent() -> QWidget | None:
    return None


_parent_getter: Callable[[], QWidget | None] = _no_parent


def _handle_on_gui_thread(exc: BaseException) -> None:
    try:
        show_exception(_parent_getter(), exc, "Unexpected error")
    except Exception:  # noqa: BLE001 - the guard itself must never raise
        traceback.print_exc()


def handle_exception(exc_type: type[BaseException], exc: BaseException,
                     tb: TracebackType | None) -> None:
    """sys.excepthook replacement: print, then show a dialog; Ctrl+C still quits."""
    if issubclass(exc_type, KeyboardInterrupt):
        app = QApplication.instance()
        if app is not None:
            app.quit()
        return
    traceback.print_exception(exc_type, exc, tb, file=sys.stderr)
    if exc.__traceback__ is None and tb is not None:
        exc = exc.with_traceback(tb)
    app = QApplication.instance()
    if app is None or _relay is None:
        return
    if QThread.currentThread() is app.thread():
        _handle_on_gui_thread(exc)
    else:
        _relay.raised.emit(exc)


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        handle_exception(args.exc_type, args.exc_value, args.exc_traceback)


def install_excepthook(parent_getter: Callable[[], QWidget | None] | None = None) -> None:
    """Show uncaught exceptions in a dialog instead of crashing (needs a QApplication)."""
    global _relay, _parent_getter
    if parent_getter is not None:
        _parent_getter = parent_getter
    if _relay is None:
        _relay = _Relay()
        _relay.raised.connect(_handle_on_gui_thread, Qt.ConnectionType.QueuedConnection)
    sys.excepthook = handle_exception
    threading.excepthook = _thread_hook
