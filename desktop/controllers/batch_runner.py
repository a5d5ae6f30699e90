"""Running the batch queue in the background: one song at a time, each on its own QThread
that hands the song to the batch process (`engine.serve_batch`, started once and kept
while the queue runs, so the model loads once), or runs it on the thread itself when no
process can be started or STEMWRIGHT_SEPARATE_IN_PROCESS is set.

The runner decides on the GUI thread, between songs, what runs next, so reordering,
removing, pausing and cancelling never race with the worker: the worker only reports
progress and the song's end.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import threading

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from stemwright.models.cli.batch import BatchError, Settings, Song, failure_text
from stemwright.models.errors import StemwrightError

from ..engine.child import start_child
from ..engine.protocol import recv_msg, send_msg
from ..engine.serve_batch import BATCH_CHILD, run_one
from .batch_state import CANCELLED, RUNNING, WAITING, BatchQueue

#: a song that does not stop this long after Cancel has its process ended
KILL_AFTER_MS = 10_000


class BatchProcess:
    """The runner's handle on the batch process (thread-safe writes; restartable)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._write = threading.Lock()

    def ensure_started(self) -> subprocess.Popen:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._proc = proc = start_child(BATCH_CHILD, unbuffered=True)
        return proc

    def send(self, message: dict) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise OSError("the batch process is not running")
        with self._write:
            send_msg(proc.stdin, message)

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(1.0)
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError, ValueError):
                stream.close()

    def shutdown(self, timeout: float = 2.0) -> None:
        """Ask the process to quit; kill it if it does not."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.send({"cmd": "quit"})
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        self.kill()


class SongTask(QThread):
    """Separate one song of the queue (in the batch process when given one)."""

    progressed = Signal(str, float)  # item id, fraction 0..1
    ended = Signal(str, str, str)  # item id, status, one line

    def __init__(self, item_id: str, song: Song, settings: Settings, skip_existing: bool,
                 process: BatchProcess | None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.item_id, self.song, self.settings = item_id, song, settings
        self.skip_existing = skip_existing
        self.process = process
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Stop at the model's next chunk (the files written so far are removed)."""
        self._cancel.set()
        if self.process is not None:
            with contextlib.suppress(OSError, ValueError):
                self.process.send({"cmd": "cancel", "id": self.item_id})

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def _progress(self, p: object) -> None:
        try:
            self.progressed.emit(self.item_id, float(getattr(p, "fraction", p)))
        except (TypeError, ValueError):
            pass

    def run(self) -> None:
        status, text = "failed", ""
        try:
            if self.process is not None:
                try:
                    self.process.ensure_started()
                except OSError:
                    self.process = None  # e.g. no interpreter next to a frozen app
            if self.process is None:
                status, text = run_one(self.song, self.settings, self.skip_existing,
                                       self._progress, self.is_cancelled)
            else:
                status, text = self._in_process()
        except Exception as exc:  # noqa: BLE001 - one bad song never stops the others
            status, text = "failed", failure_text(self.song, exc)
        self.ended.emit(self.item_id, status, text)

    def _in_process(self) -> tuple[str, str]:
        proc = self.process.ensure_started()
        try:
            self.process.send({"cmd": "song", "id": self.item_id, "song": self.song,
                               "settings": self.settings,
                               "skip_existing": self.skip_existing})
            if self.is_cancelled():
                self.process.send({"cmd": "cancel", "id": self.item_id})
            while True:
                msg = recv_msg(proc.stdout)
                if msg is None:
                    raise EOFError
                if msg.get("type") == "progress":
                    self.progressed.emit(self.item_id, float(msg["fraction"]))
                elif msg.get("type") == "end" and msg.get("id") == self.item_id:
                    return str(msg["status"]), str(msg["text"])
        except (OSError, EOFError, ValueError, pickle.UnpicklingError):
            code = proc.poll()
            self.process.kill()
            if self.is_cancelled():
                return "cancelled", "cancelled"
            why = f" (exit code {code})" if code is not None else ""
            return "failed", failure_text(self.song, StemwrightError(
                f"the separation process stopped unexpectedly{why}; the machine may be "
                "out of memory"))


class BatchRunner(QObject):
    """Runs the queue's waiting songs in order, one at a time, in the background."""

    changed = Signal()  # states changed: the window redraws and the queue is saved
    progressed = Signal(str)  # the running item's progress changed
    problem = Signal(str)  # the queue cannot start (e.g. settings that do not fit)
    finished = Signal()  # nothing more will start (all done, paused or cancelled)

    def __init__(self, queue: BatchQueue, parent: QObject | None = None,
                 in_process: bool | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        if in_process is None:
            in_process = os.environ.get("STEMWRIGHT_SEPARATE_IN_PROCESS", "") not in ("", "0")
        self.process = None if in_process else BatchProcess()
        self.task: SongTask | None = None
        self.active = False  # start the next song when this one ends
        self._requeue = False  # the song being stopped goes back to waiting

    # -- state --------------------------------------------------------------------------
    def running(self) -> bool:
        """A song is being separated now."""
        return self.task is not None

    def busy(self) -> bool:
        """A song runs, or the next one will start."""
        return self.task is not None or self.active

    # -- commands (GUI thread) -----------------------------------------------------------
    def start(self) -> None:
        """Start (or resume) running the waiting songs in order."""
        self.active = True
        self._next()

    def pause_after_current(self) -> None:
        """Let the running song finish; start nothing new."""
        self.active = False
        self.changed.emit()
        if self.task is None:
            self.finished.emit()

    def stop_now(self) -> None:
        """Stop the running song (it goes back to waiting) and start nothing new."""
        self.active = False
        if self.task is not None:
            self._requeue = True
            self._cancel_task()
        self.changed.emit()
        if self.task is None:
            self.finished.emit()

    def cancel_item(self, item_id: str) -> None:
        """Cancel one song: the running one stops, a waiting one will not run."""
        item = self.queue.get(item_id)
        if item is None:
            return
        if self.task is not None and self.task.item_id == item_id:
            self._requeue = False
            self._cancel_task()
        elif item.state == WAITING:
            item.state, item.reason = CANCELLED, "cancelled"
            self.changed.emit()

    def cancel_all(self) -> None:
        """Stop the running song and cancel every waiting one."""
        self.active = False
        for item in self.queue.items:
            if item.state == WAITING:
                item.state, item.reason = CANCELLED, "cancelled"
        if self.task is not None:
            self._requeue = False
            self._cancel_task()
        self.changed.emit()
        if self.task is None:
            self.finished.emit()

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop everything (the running song goes back to waiting) and end the process."""
        self.active = False
        task = self.task
        if task is not None:
            self._requeue = True
            task.cancel()
            if not task.wait(timeout_ms) and self.process is not None:
                self.process.kill()
                task.wait(2000)
            item = self.queue.get(task.item_id)
            if item is not None and item.state == RUNNING:
                item.state, item.fraction = WAITING, 0.0
            self.task = None
        if self.process is not None:
            self.process.shutdown(1.0)

    # -- internals ----------------------------------------------------------------------
    def _cancel_task(self) -> None:
        task = self.task
        task.cancel()

        def kill_if_stuck() -> None:
            if self.task is task and task.isRunning() and self.process is not None:
                self.process.kill()  # the worker sees the pipe close: cancelled

        QTimer.singleShot(KILL_AFTER_MS, self, kill_if_stuck)

    def _next(self) -> None:
        if self.task is not None or not self.active:
            return
        item = self.queue.next_waiting()
        if item is None:
            self.active = False
            self.changed.emit()
            self.finished.emit()
            return
        try:
            settings = self.queue.settings.to_batch()
            if not self.queue.settings.output:
                raise BatchError("choose an output folder first")
        except BatchError as exc:
            self.active = False
            self.problem.emit(" ".join(str(exc).split()))
            self.finished.emit()
            return
        item.state, item.reason, item.fraction = RUNNING, "", 0.0
        task = SongTask(item.id, item.song(self.queue.settings.output), settings,
                        self.queue.settings.skip_existing, self.process, self)
        task.progressed.connect(self._on_progress)
        task.ended.connect(self._on_ended)
        self.task = task
        task.start()
        self.changed.emit()

    def _on_progress(self, item_id: str, fraction: float) -> None:
        item = self.queue.get(item_id)
        if item is not None and item.state == RUNNING:
            item.fraction = min(max(fraction, 0.0), 1.0)
            self.progressed.emit(item_id)

    def _on_ended(self, item_id: str, status: str, text: str) -> None:
        task = self.task
        if task is not None and task.item_id == item_id:
            self.task = None
            task.wait(1000)  # it has emitted its last signal: ends at once
            task.deleteLater()
        item = self.queue.get(item_id)
        if item is not None:
            if status == CANCELLED and self._requeue:
                item.state, item.reason = WAITING, ""
            else:
                item.state, item.reason = status, text
            item.fraction = 1.0 if status != CANCELLED and not self._requeue else 0.0
        self._requeue = False
        self.changed.emit()
        if self.active:
            self._next()
        else:
            self.finished.emit()
