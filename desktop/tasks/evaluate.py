"""The evaluation task of the Evaluate dialog: `models.evaluate.evaluate` in its own
Python process (`engine.serve_evaluation`), like separations, so a model holding the
interpreter lock can never stall the window and Cancel ends it at once; where no process
can be started it runs on the task's thread instead.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from typing import Any

from PySide6.QtCore import QObject, Signal

from stemwright.models.errors import Cancelled, StemwrightError
from stemwright.models.progress import Progress
from stemwright.models.zoo import catalog as zoo

from ..engine.child import EVALUATION_CHILD, start_child
from ..engine.protocol import recv_msg, send_msg
from ..engine.workers import Task


class EvaluateTask(Task):
    """Run `evaluate` (in a child process, or here when `in_process` or none can start);
    `songDone(SongResult)` per finished song, the `EvaluationReport` as the result."""

    title = "Evaluation"
    songDone = Signal(object)  # noqa: N815 - Qt signal naming

    def __init__(self, source: Any, models: list[str], oracles: list[str],
                 procedure: str = "adaptive", device: str = "auto",
                 parent: QObject | None = None, in_process: bool | None = None) -> None:
        super().__init__(parent)
        self.source, self.models, self.oracles = source, list(models), list(oracles)
        self.procedure, self.device = procedure, device
        if in_process is None:
            in_process = os.environ.get("STEMWRIGHT_SEPARATE_IN_PROCESS", "") not in ("", "0")
        self.in_process = in_process
        self.used_process = False
        self._proc: subprocess.Popen | None = None

    def cancel(self) -> None:
        super().cancel()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # ends the model at once; the worker sees the pipe close

    def _progress(self, p: Any) -> None:
        fraction = float(getattr(p, "fraction", 0.0))
        elapsed = time.monotonic() - self.started_at
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
        self.report(fraction, eta, getattr(p, "message", "") or "")

    def work(self) -> Any:
        self.report(0.0, None, "Starting")
        if not self.in_process:
            try:
                proc = start_child(EVALUATION_CHILD)
            except OSError as exc:
                print(f"stemwright: evaluation process unavailable ({exc}); using a thread",
                      file=sys.stderr)
            else:
                self.used_process = True
                return self._run_child(proc)
        from stemwright.models.evaluation.evaluate import evaluate

        return evaluate(self.source, self.models, self.oracles, procedure=self.procedure,
                        device=self.device, progress=self._progress, cancel=self.is_cancelled,
                        on_song=self.songDone.emit)

    def _run_child(self, proc: subprocess.Popen) -> Any:

        self._proc = proc
        try:
            if self.is_cancelled():
                raise Cancelled("evaluation cancelled")
            send_msg(proc.stdin, {"source": self.source, "models": self.models,
                                  "oracles": self.oracles, "procedure": self.procedure,
                                  "device": self.device})
            while True:
                msg = recv_msg(proc.stdout)
                if msg is None:
                    raise EOFError
                kind = msg.get("type")
                if kind == "progress":
                    self._progress(Progress(msg["fraction"], message=msg["message"]))
                elif kind == "song":
                    self.songDone.emit(msg["song"])
                elif kind == "report":
                    return msg["report"]
                elif kind == "error":
                    if msg.get("traceback"):
                        print(msg["traceback"], file=sys.stderr)
                    raise msg["exc"]
        except (OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            if self.is_cancelled():
                raise Cancelled("evaluation cancelled") from None
            code = proc.poll()
            why = f" (exit code {code})" if code is not None else ""
            raise StemwrightError(f"the evaluation process stopped unexpectedly{why}; the "
                                  "machine may be out of memory") from exc
        finally:
            self._proc = None
            if proc.poll() is None:
                proc.kill()
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except (OSError, ValueError):
                    pass
            proc.wait()


def installed_models() -> list[tuple[str, str]]:
    """(title, name) of the zoo models that can run now (installed or needing no files)."""

    out = []
    for entry in zoo.list_models():
        try:
            ready = not entry.needs_download or zoo.is_installed(entry.name)
        except Exception:  # noqa: BLE001 - a broken custom model is left out
            ready = False
        if ready:
            out.append((entry.title, entry.name))
    return out
