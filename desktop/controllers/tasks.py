"""The window's background tasks: started here, kept alive until they finish, and
cancelled (then waited for, within a deadline) when the window closes."""

from __future__ import annotations

import time

from ..engine.workers import Task


class TaskRunner:
    """Starts tasks and holds them until they finish."""

    def __init__(self) -> None:
        self.tasks: set[Task] = set()

    def start(self, task: Task) -> None:
        self.tasks.add(task)
        task.finished.connect(lambda t=task: self._finished(t))
        task.start()

    def _finished(self, task: Task) -> None:
        self.tasks.discard(task)
        task.deleteLater()

    def running(self) -> list[Task]:
        return [t for t in self.tasks if t.isRunning()]

    def cancel_all(self, seconds: float = 5.0) -> None:
        """Cancel every task and wait for them, `seconds` at most in all."""
        deadline = time.monotonic() + seconds
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            task.wait(max(1, int((deadline - time.monotonic()) * 1000)))
