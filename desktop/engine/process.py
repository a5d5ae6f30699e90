"""The window's handle on the separation engine process (`EngineProcess`, one per app:
`engine()`).

Models run in a child Python process. Its own interpreter lock means nothing a model
does (a C extension holding the GIL, a first-time import of numba or librosa, which
holds it for ~100 ms) can stall the window; a crash or an out-of-memory kill of the
child is reported as an error while the app keeps running; and Cancel stops the model
at once by ending the process. Messages are length-prefixed pickles over the child's
stdin/stdout, audio travels as raw float32 bytes on the same pipes.
"""

from __future__ import annotations

import atexit
import pickle
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import numpy as np

from stemwright.models.errors import Cancelled, ModelError
from stemwright.models.progress import Progress

from .child import SEPARATION_CHILD, start_child
from .protocol import recv_array, recv_msg, send_array, send_msg

if TYPE_CHECKING:
    from .workers import SeparationOptions


class EngineProcess:
    """The parent's handle on the separation engine process (thread-safe, restartable)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one conversation at a time
        self._proc: subprocess.Popen | None = None
        self._ready = False
        self._atexit = False

    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def ensure_started(self) -> None:
        """Start the process if needed (fast: it imports the engine on its own)."""
        if self.running():
            return
        self._proc = start_child(SEPARATION_CHILD, unbuffered=True)
        self._ready = False
        if not self._atexit:
            atexit.register(self.shutdown, 1.0)
            self._atexit = True

    def warm_up(self) -> bool:
        """Start the process and let it import the models (call from a worker thread)."""
        with self._lock:
            self.ensure_started()
            if self._ready:
                return True
            proc = self._proc
            try:
                send_msg(proc.stdin, {"cmd": "warmup"})
                while True:
                    msg = recv_msg(proc.stdout)
                    if msg is None:
                        return False
                    if msg.get("type") == "ready":
                        self._ready = True
                        return True
            except (OSError, EOFError, ValueError):
                return False

    def separate(self, mix: np.ndarray, samplerate: int, options: SeparationOptions,
                 progress, cancelled, partial=None, receive_into=None) -> object:
        """Run one separation in the process; returns a SeparationResult.

        `partial(PartialStems)` gets each finished region as the process sends it;
        `receive_into(stem_id, shape)` may return an array to read a final stem into.
        """
        from stemwright.models.separation.separator import PartialStems, SeparationResult

        mix = np.asarray(mix, dtype=np.float32)
        if mix.ndim == 1:
            mix = mix[None, :]
        with self._lock:
            if cancelled():
                raise Cancelled("separation cancelled")
            self.ensure_started()
            proc = self._proc
            try:
                send_msg(proc.stdin, {"cmd": "separate", "shape": mix.shape,
                                      "samplerate": int(samplerate), "model": options.model,
                                      "device": options.device, "segment": options.segment,
                                      "overlap": options.overlap,
                                      "partial": partial is not None})
                send_array(proc.stdin, mix)
                while True:
                    msg = recv_msg(proc.stdout)
                    if msg is None:
                        raise EOFError
                    kind = msg.get("type")
                    if kind == "ready":
                        self._ready = True
                    elif kind == "progress":
                        progress(Progress(msg["fraction"], 0.0, 0.0, msg["eta"],
                                          msg["message"]))
                    elif kind == "error":
                        exc = msg["exc"]
                        if msg.get("traceback"):
                            print(msg["traceback"], file=sys.stderr)
                        raise exc
                    elif kind == "partial":
                        stems = {sid: recv_array(proc.stdout, shape)
                                 for sid, shape in msg["stems"]}
                        if partial is not None:
                            partial(PartialStems(stems, msg["start"], msg["end"],
                                                 msg["length"], msg["samplerate"],
                                                 tuple(msg["unavailable"])))
                    elif kind == "result":
                        stems = {}
                        for sid, shape in msg["stems"]:
                            buf = receive_into(sid, shape) if receive_into else None
                            stems[sid] = recv_array(proc.stdout, shape, out=buf)
                        return SeparationResult(
                            stems=stems, samplerate=msg["samplerate"], model=msg["model"],
                            unavailable=tuple(msg["unavailable"]),
                            residual_db=msg["residual_db"],
                            residual_in_other=msg["residual_in_other"],
                            notes=list(msg["notes"]))
            except (OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
                if cancelled():
                    raise Cancelled("separation cancelled") from None
                code = proc.poll()
                self.abort()
                why = f" (exit code {code})" if code is not None else ""
                raise ModelError(
                    f"the separation engine stopped unexpectedly{why}. If this happens "
                    "again, choose a shorter segment under Advanced or separate on the "
                    "CPU; the machine may be out of memory.") from exc

    def abort(self) -> None:
        """Kill the process now (any thread); the next call starts a fresh one."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            try:
                proc.wait(0.5)  # SIGKILL is immediate; this only reaps the process
            except subprocess.TimeoutExpired:
                pass
        self._ready = False

    def shutdown(self, timeout: float = 2.0) -> None:
        """Ask the process to exit (kill it if it does not)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None and self._lock.acquire(timeout=0.2):
                try:
                    send_msg(proc.stdin, {"cmd": "quit"})
                finally:
                    self._lock.release()
            proc.wait(timeout)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(1.0)
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


_engine: EngineProcess | None = None


def engine() -> EngineProcess:
    """The app-wide separation engine process handle."""
    global _engine
    if _engine is None:
        _engine = EngineProcess()
    return _engine
