"""Background work for the window: load audio, separate, download a model, compute a
spectrogram. Every task runs on its own QThread, reports progress through queued signals
(throttled to ~20 per second), can be cancelled, and delivers its result by signal.

The GUI thread never runs engine code: it only starts tasks and receives their signals.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal as _signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from stemwright.models.errors import Cancelled, StemwrightError

if TYPE_CHECKING:
    from ..views.spectrogram import Spectrogram
    from ..views.waveform import Envelope

PROGRESS_INTERVAL = 0.05  # seconds between progress signals
PARTIAL_INTERVAL = 0.1  # seconds between partial-result signals (no region is ever lost)


class Task(QThread):
    """A cancellable background job. Subclasses implement `work()` and call `report()`."""

    #: fraction 0..1, ETA seconds (or None), message
    progressed = Signal(float, object, str)
    succeeded = Signal(object)
    failed = Signal(object)  # the exception
    cancelled = Signal()

    title = "Working"

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cancel = threading.Event()
        self._last_report = 0.0
        self.started_at = 0.0
        self.outcome: str | None = None  # "ok" | "failed" | "cancelled" once done

    # -- called from the GUI thread ---------------------------------------------------
    def cancel(self) -> None:
        """Ask the task to stop at its next check; `cancelled` is emitted when it has."""
        self._cancel.set()

    # -- called from the worker thread ------------------------------------------------
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancel(self) -> None:
        if self._cancel.is_set():
            raise Cancelled(f"{self.title.lower()} cancelled")

    def report(self, fraction: float, eta: float | None = None, message: str = "") -> None:
        """Send progress to the GUI, at most every PROGRESS_INTERVAL unless it matters."""
        now = time.monotonic()
        if (message or fraction >= 1.0 or fraction <= 0.0
                or now - self._last_report >= PROGRESS_INTERVAL):
            self._last_report = now
            self.progressed.emit(float(min(max(fraction, 0.0), 1.0)), eta, message)

    def engine_progress(self, progress: object, lo: float = 0.0, hi: float = 1.0) -> None:
        """Adapter for engine callbacks (a `Progress`, or a bare fraction), mapped to lo..hi."""
        fraction = getattr(progress, "fraction", progress)
        try:
            fraction = float(fraction)
        except (TypeError, ValueError):
            return
        eta = getattr(progress, "eta_seconds", None)
        message = getattr(progress, "message", "") or ""
        self.report(lo + (hi - lo) * fraction, eta, message)

    def work(self) -> object:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self) -> None:
        self.started_at = time.monotonic()
        _lower_thread_priority()
        try:
            self.check_cancel()
            result = self.work()
            self.check_cancel()
        except Cancelled:
            self.outcome = "cancelled"
            self.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - delivered to the GUI as a dialog
            self.outcome = "failed"
            self.failed.emit(exc)
        else:
            self.outcome = "ok"
            self.succeeded.emit(result)

    def stop_and_wait(self, timeout_ms: int = 5000) -> bool:
        """Cancel and block until the thread ends (used when closing the window)."""
        self.cancel()
        return self.wait(timeout_ms)


def _lower_thread_priority(niceness: int = 10) -> None:
    """Let the GUI thread win the CPU over this worker (Linux: per-thread nice value)."""
    if sys.platform.startswith("linux") and hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
        except OSError:
            pass


# -- loading ---------------------------------------------------------------------------

@dataclass
class LoadedSong:
    """A decoded song and its waveform envelope."""

    path: Path
    data: np.ndarray  # float32 [C, T]
    samplerate: int
    envelope: Envelope
    tags: dict = field(default_factory=dict)
    info: object = None

    @property
    def duration(self) -> float:
        return self.data.shape[-1] / self.samplerate

    @property
    def name(self) -> str:
        """The song's name as `stemwright separate` names it ('a/mix.flac' -> 'a')."""
        from stemwright.models.remix.export import song_name

        return song_name(self.path)


class LoadTask(Task):
    """Decode an audio file and compute its min/max envelope."""

    title = "Loading"

    def __init__(self, path: str | Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)

    def work(self) -> LoadedSong:
        from stemwright.models.audio.io import load_audio

        from ..views.waveform import Envelope

        self.report(0.0, None, f"Opening {self.path.name}")
        audio = load_audio(str(self.path), progress=lambda p: self.engine_progress(p, 0, 0.9),
                           cancel=self.is_cancelled)
        self.check_cancel()
        data = np.ascontiguousarray(audio.data, dtype=np.float32)
        if data.ndim == 1:
            data = data[None, :]
        envelope = Envelope.compute(data, int(audio.samplerate), cancel=self.is_cancelled)
        self.report(1.0)
        return LoadedSong(self.path, data, int(audio.samplerate), envelope,
                          dict(getattr(audio, "tags", None) or {}),
                          getattr(audio, "info", None))


# -- separation ------------------------------------------------------------------------

@dataclass
class SeparationOptions:
    """What the user chose in the separation panel."""

    model: str
    device: str = "auto"
    segment: float | None = None  # None: the model's default
    overlap: float | None = None


@dataclass
class PartialSeparation:
    """Stems while they are being separated: full-length buffers filled region by region,
    with envelopes kept current. One object per separation; the worker fills it and
    `SeparateTask.partialReady` announces each new region.

    After `end` the stems are silent except "other", which holds the mixture until its
    region is separated: the remix plays the whole song on (stems where they are ready,
    the song itself after), and a soloed stem plays only its finished part. The buffers
    are written only by the worker thread and only after `end`, so the GUI and the audio
    callback can read them at any time; the envelopes show only the finished part.
    """

    stems: dict[str, np.ndarray]  # {stem id: float32 [C, T]}
    envelopes: dict[str, Envelope]
    unavailable: tuple[str, ...]
    samplerate: int
    length: int
    end: int = 0  # samples before this are final

    @property
    def final_until_seconds(self) -> float:
        return self.end / self.samplerate

    @property
    def complete(self) -> bool:
        return self.end >= self.length


@dataclass
class SeparatedSong:
    """A separation result plus the stems' envelopes, ready to draw."""

    result: object  # stemwright.models.separation.separator.SeparationResult
    envelopes: dict[str, Envelope]
    options: SeparationOptions
    seconds: float = 0.0  # wall time
    null_db: float | None = None  # mix - sum(stems) relative to the mix


class SeparateTask(Task):
    """Separate the song: in the engine process (`engine()`), or in this thread when
    `in_process` is set or the engine process cannot start.

    With `partial` set (the default), `partialReady(PartialSeparation)` is emitted as
    chunks finish (at most every PARTIAL_INTERVAL s), so the window can show and play the
    beginning of the song before the end is separated.
    """

    title = "Separation"
    partialReady = Signal(object)  # PartialSeparation

    def __init__(self, mix: np.ndarray, samplerate: int, options: SeparationOptions,
                 parent: QObject | None = None, in_process: bool | None = None,
                 partial: bool = True) -> None:
        super().__init__(parent)
        self.mix = mix
        self.samplerate = int(samplerate)
        self.options = options
        if in_process is None:
            in_process = os.environ.get("STEMWRIGHT_SEPARATE_IN_PROCESS", "") not in ("", "0")
        self.in_process = in_process
        self.used_engine_process = False
        self.partial_enabled = bool(partial)
        self.partial: PartialSeparation | None = None
        self.partial_regions = 0
        self._last_partial = 0.0

    # -- partial results (worker thread) ------------------------------------------------
    def _on_partial(self, region: object) -> None:
        """Write a finished region (`models.separator.PartialStems`) into the buffers."""
        from ..views.waveform import Envelope

        p = self.partial
        if p is None or region.start == 0:
            stems = {s: np.zeros((x.shape[0], region.length), dtype=np.float32)
                     for s, x in region.stems.items()}
            if "other" in stems:  # not separated yet = still all in "other"
                from stemwright.models.remix.mixer import as_stereo

                song = self.mix if self.mix.ndim == 2 else self.mix[None, :]
                other = stems["other"]
                if song.shape[0] != other.shape[0]:
                    song = as_stereo(song)
                if song.shape == other.shape:
                    other[...] = song
            p = PartialSeparation(stems, {s: Envelope.zeros(b, region.samplerate)
                                          for s, b in stems.items()},
                                  tuple(region.unavailable), int(region.samplerate),
                                  int(region.length))
            self.partial = p
        for stem_id, signal in region.stems.items():
            p.stems[stem_id][:, region.start:region.end] = signal
            p.envelopes[stem_id].update(region.start, region.end)
        p.end = int(region.end)
        self.partial_regions += 1
        now = time.monotonic()
        if self.partial_regions == 1 or p.complete or now - self._last_partial >= \
                PARTIAL_INTERVAL:
            self._last_partial = now
            self.partialReady.emit(p)

    def _receive_into(self, stem_id: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """The final stems overwrite the partial buffers (same values, no second copy)."""
        p = self.partial
        buf = p.stems.get(stem_id) if p is not None and p.complete else None
        return buf if buf is not None and buf.shape == tuple(shape) else None

    def cancel(self) -> None:
        super().cancel()
        if self.used_engine_process:
            engine().abort()  # stops the model at once; the engine restarts when needed

    def work(self) -> SeparatedSong:
        opts = self.options
        result = None
        if not self.in_process:
            try:
                engine().ensure_started()
            except OSError as exc:  # e.g. no Python interpreter next to a frozen app
                print(f"stemwright: separation engine unavailable ({exc}); using a thread",
                      file=sys.stderr)
            else:
                self.used_engine_process = True
                if self.is_cancelled():
                    raise Cancelled("separation cancelled")
                result = engine().separate(
                    self.mix, self.samplerate, opts,
                    progress=lambda p: self.engine_progress(p, 0.0, 0.97),
                    cancelled=self.is_cancelled,
                    partial=self._on_partial if self.partial_enabled else None,
                    receive_into=self._receive_into)
        if result is None:
            from stemwright.models.zoo import catalog as zoo

            self.report(0.0, None, f"Loading model {opts.model}")
            separator = zoo.load_separator(opts.model, device=opts.device,
                                           segment=opts.segment, overlap=opts.overlap)
            self.check_cancel()
            result = separator.separate(self.mix, self.samplerate,
                                        progress=lambda p: self.engine_progress(p, 0.0, 0.97),
                                        cancel=self.is_cancelled,
                                        partial=self._on_partial if self.partial_enabled
                                        else None)
        self.check_cancel()
        from ..views.waveform import Envelope

        self.report(0.97, None, "Drawing stems")
        envelopes = {}
        for stem_id, signal in result.stems.items():
            envelopes[stem_id] = Envelope.compute(signal, self.samplerate,
                                                  cancel=self.is_cancelled)
        null_db = None
        try:
            from stemwright.models.remix.mixer import null_test_db
            null_db = null_test_db(self.mix, result.stems)
        except (ImportError, ValueError):
            pass
        self.report(1.0)
        return SeparatedSong(result, envelopes, opts, time.monotonic() - self.started_at,
                             null_db)


# -- the separation engine process -----------------------------------------------------
#
# Models run in a child Python process. Its own interpreter lock means nothing a model
# does (a C extension holding the GIL, a first-time import of numba or librosa, which
# holds it for ~100 ms) can stall the window; a crash or an out-of-memory kill of the
# child is reported as an error while the app keeps running; and Cancel stops the model
# at once by ending the process. Messages are length-prefixed pickles over the child's
# stdin/stdout, audio travels as raw float32 bytes on the same pipes.

_HEADER = struct.Struct("<Q")
_IO_CHUNK = 1 << 23  # bytes per pipe read/write (each releases the GIL)
_CHILD_CODE = "from stemwright.desktop.engine.workers import engine_main; engine_main()"


def progress_sender(stream):
    """Engine progress callback for a child process: sends `progress` messages on `stream`,
    at most one per PROGRESS_INTERVAL (notices and the final report always go through)."""
    last = [0.0]

    def progress(p) -> None:
        now = time.monotonic()
        if p.message or p.fraction >= 1.0 or now - last[0] >= PROGRESS_INTERVAL:
            last[0] = now
            _send_msg(stream, {"type": "progress", "fraction": float(p.fraction),
                               "eta": p.eta_seconds, "message": p.message})
    return progress


def send_error(stream, exc: BaseException) -> None:
    """Report `exc` to the parent as an `error` message: the exception itself when it
    pickles (else a RuntimeError with its text), with a traceback unless it is one of
    Stemwright's own clear errors."""
    tb = "" if isinstance(exc, StemwrightError) else traceback.format_exc()
    try:
        pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - any pickling failure
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    _send_msg(stream, {"type": "error", "exc": exc, "traceback": tb})


def _send_msg(stream, message: dict) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_exact(stream, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            raise EOFError("the other side closed the pipe")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv_msg(stream) -> dict | None:
    head = stream.read(_HEADER.size)
    if not head:
        return None
    if len(head) < _HEADER.size:
        head += _read_exact(stream, _HEADER.size - len(head))
    (n,) = _HEADER.unpack(head)
    return pickle.loads(_read_exact(stream, n))


def _send_array(stream, array: np.ndarray) -> None:
    data = memoryview(np.ascontiguousarray(array, dtype=np.float32)).cast("B")
    for start in range(0, len(data), _IO_CHUNK):
        stream.write(data[start:start + _IO_CHUNK])
    stream.flush()


def _recv_array(stream, shape: tuple[int, ...], out: np.ndarray | None = None
                ) -> np.ndarray:
    """Read a float32 array of `shape` (into `out`, a C-contiguous float32 array, if given)."""
    usable = (out is not None and out.dtype == np.float32 and out.shape == tuple(shape)
              and out.flags.c_contiguous and out.flags.writeable)
    array = out if usable else np.empty(shape, dtype=np.float32)
    view = memoryview(array).cast("B")
    pos = 0
    while pos < len(view):
        n = stream.readinto(view[pos:pos + _IO_CHUNK])
        if not n:
            raise EOFError("the other side closed the pipe")
        pos += n
    return array


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
        env = dict(os.environ)
        paths = [p for p in sys.path if p and os.path.isdir(p)]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._proc = subprocess.Popen([sys.executable, "-c", _CHILD_CODE],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      env=env, close_fds=True)
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
                _send_msg(proc.stdin, {"cmd": "warmup"})
                while True:
                    msg = _recv_msg(proc.stdout)
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
        from stemwright.models.errors import ModelError
        from stemwright.models.progress import Progress
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
                _send_msg(proc.stdin, {"cmd": "separate", "shape": mix.shape,
                                       "samplerate": int(samplerate), "model": options.model,
                                       "device": options.device, "segment": options.segment,
                                       "overlap": options.overlap,
                                       "partial": partial is not None})
                _send_array(proc.stdin, mix)
                while True:
                    msg = _recv_msg(proc.stdout)
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
                        stems = {sid: _recv_array(proc.stdout, shape)
                                 for sid, shape in msg["stems"]}
                        if partial is not None:
                            partial(PartialStems(stems, msg["start"], msg["end"],
                                                 msg["length"], msg["samplerate"],
                                                 tuple(msg["unavailable"])))
                    elif kind == "result":
                        stems = {}
                        for sid, shape in msg["stems"]:
                            buf = receive_into(sid, shape) if receive_into else None
                            stems[sid] = _recv_array(proc.stdout, shape, out=buf)
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
                    _send_msg(proc.stdin, {"cmd": "quit"})
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


class WarmupTask(Task):
    """Start the engine process and import the models before the user asks (background)."""

    title = "Starting the separation engine"

    def cancel(self) -> None:
        super().cancel()
        engine().abort()  # only cancelled when the window closes

    def work(self) -> bool:
        return engine().warm_up()


def engine_main() -> None:
    """Entry point of the engine process: serve requests from stdin until EOF."""
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # Ctrl+C is the app's to handle
    try:
        os.nice(10)  # the window always wins the CPU over a running model
    except (AttributeError, OSError):
        pass
    proto_in = sys.stdin.buffer
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints from libraries go to stderr, not into the protocol
    sys.stdout = sys.stderr
    from stemwright.models.zoo import catalog as zoo

    cache: dict[tuple, object] = {}

    def load(model: str, device: str, segment, overlap):
        key = (model, device, segment, overlap)
        if key not in cache:
            cache.clear()
            cache[key] = zoo.load_separator(model, device=device, segment=segment,
                                            overlap=overlap)
        return cache[key]

    while True:
        msg = _recv_msg(proto_in)
        if msg is None or msg.get("cmd") == "quit":
            return
        if msg["cmd"] == "warmup":
            try:  # import and exercise the default model once (numba, librosa, ...)
                sep = load(zoo.DEFAULT_MODEL, "cpu", None, None)
                sep.separate(np.zeros((2, sep.samplerate), dtype=np.float32), sep.samplerate)
            except Exception:  # noqa: BLE001 - a real separation will report it
                traceback.print_exc()
            _send_msg(proto_out, {"type": "ready"})
            continue
        if msg["cmd"] != "separate":
            continue
        mix = _recv_array(proto_in, tuple(msg["shape"]))
        progress = progress_sender(proto_out)

        def partial(p) -> None:
            _send_msg(proto_out, {
                "type": "partial", "start": p.start, "end": p.end, "length": p.length,
                "samplerate": p.samplerate, "unavailable": tuple(p.unavailable),
                "stems": [(k, v.shape) for k, v in p.stems.items()]})
            for signal in p.stems.values():
                _send_array(proto_out, signal)

        try:
            separator = load(msg["model"], msg["device"], msg["segment"], msg["overlap"])
            result = separator.separate(mix, msg["samplerate"], progress=progress,
                                        partial=partial if msg.get("partial") else None)
        except BaseException as exc:  # noqa: BLE001 - sent to the app as a dialog
            send_error(proto_out, exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                return
            continue
        del mix
        _send_msg(proto_out, {
            "type": "result", "stems": [(k, v.shape) for k, v in result.stems.items()],
            "samplerate": result.samplerate, "model": result.model,
            "unavailable": tuple(result.unavailable), "residual_db": result.residual_db,
            "residual_in_other": result.residual_in_other, "notes": list(result.notes)})
        for signal in result.stems.values():
            _send_array(proto_out, signal)
        del result


# -- model download --------------------------------------------------------------------

class DownloadTask(Task):
    """Download a zoo model's files; progress in bytes."""

    title = "Download"

    def __init__(self, model: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model

    def _progress(self, done: int, total: int | None) -> None:
        if total:
            fraction = done / total
            elapsed = time.monotonic() - self.started_at
            eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
            self.report(min(fraction, 0.999), eta,
                        f"{done / 1e6:.1f} of {total / 1e6:.0f} MB")
        else:
            self.report(0.0, None, f"{done / 1e6:.1f} MB")

    def work(self) -> Path:
        from stemwright.models.zoo import catalog as zoo

        self.report(0.0, None, f"Connecting for {self.model}")
        folder = zoo.download_model(self.model, progress=self._progress,
                                    cancel=self.is_cancelled)
        self.report(1.0)
        return folder


# -- spectrogram -----------------------------------------------------------------------

class SpectrogramTask(Task):
    """Compute a spectrogram of one signal (the mixture or a stem)."""

    title = "Spectrogram"

    def __init__(self, signal: np.ndarray, samplerate: int, key: str,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.signal = signal
        self.samplerate = int(samplerate)
        self.key = key

    def work(self) -> Spectrogram:
        from ..views.spectrogram import compute_spectrogram

        spec = compute_spectrogram(self.signal, self.samplerate, cancel=self.is_cancelled,
                                   progress=lambda f: self.report(f))
        spec.key = self.key
        return spec


# -- sessions: separated stems kept on disk --------------------------------------------
#
# Separating can take minutes, so the stems of the last few separations are kept in the
# user cache (float32 .npy, written atomically in the background). Reopening a song offers
# its stems again at once, and a crash or a closed window never loses a separation.

MAX_SESSIONS = 3


def sessions_dir() -> Path:
    from stemwright.models.zoo import catalog as zoo

    return zoo.cache_dir() / "sessions"


def session_key(path: str | Path) -> str:
    """Identifies a song file by path, size and modification time."""
    import hashlib

    path = Path(path).resolve()
    stat = path.stat()
    raw = f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    return hashlib.sha1(raw).hexdigest()[:20]


def find_session(path: str | Path) -> dict | None:
    """The newest saved separation of the song at `path` (its meta data), or None."""
    import json

    try:
        folder = sessions_dir() / session_key(path)
    except OSError:
        return None
    found = []
    for meta_file in folder.glob("*/meta.json"):
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            continue
        if all((meta_file.parent / f"{s}.npy").is_file() for s in meta.get("stems", [])):
            meta["folder"] = str(meta_file.parent)
            found.append(meta)
    return max(found, key=lambda m: m.get("created", 0), default=None)


def _prune_sessions(keep: int = MAX_SESSIONS) -> None:
    import shutil

    runs = sorted(sessions_dir().glob("*/*/meta.json"), key=lambda p: p.stat().st_mtime,
                  reverse=True)
    for meta_file in runs[keep:]:
        shutil.rmtree(meta_file.parent, ignore_errors=True)
        try:
            meta_file.parent.parent.rmdir()  # the song's folder, once empty
        except OSError:
            pass


class SaveSessionTask(Task):
    """Write a separation's stems to the session cache (atomically)."""

    title = "Keeping the stems"

    def __init__(self, song_path: str | Path, out: SeparatedSong,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.song_path = Path(song_path)
        self.out = out

    def work(self) -> Path:
        import json
        import shutil

        result = self.out.result
        final = sessions_dir() / session_key(self.song_path) / result.model
        tmp = final.with_name(final.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for i, (stem_id, signal) in enumerate(result.stems.items()):
                self.check_cancel()
                np.save(tmp / f"{stem_id}.npy", np.asarray(signal, dtype=np.float32))
                self.report((i + 1) / len(result.stems))
            meta = {"song": str(self.song_path), "model": result.model,
                    "samplerate": result.samplerate, "stems": list(result.stems),
                    "unavailable": list(result.unavailable),
                    "residual_db": result.residual_db,
                    "residual_in_other": result.residual_in_other,
                    "notes": list(result.notes), "null_db": self.out.null_db,
                    "seconds": self.out.seconds, "created": time.time(),
                    "options": vars(self.out.options)}
            (tmp / "meta.json").write_text(json.dumps(meta, allow_nan=True))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _prune_sessions()
        return final


class RestoreSessionTask(Task):
    """Read a saved separation back (stems, envelopes) for the song it belongs to."""

    title = "Restoring the stems"

    def __init__(self, meta: dict, length: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.meta = meta
        self.length = int(length)

    def work(self) -> SeparatedSong:
        from stemwright.models.separation.separator import SeparationResult

        from ..views.waveform import Envelope

        meta = self.meta
        folder = Path(meta["folder"])
        stems = {}
        for i, stem_id in enumerate(meta["stems"]):
            self.check_cancel()
            signal = np.load(folder / f"{stem_id}.npy", allow_pickle=False)
            if signal.dtype != np.float32 or signal.ndim != 2 or \
                    signal.shape[-1] != self.length:
                raise StemwrightError("the saved stems do not match this song any more; "
                                      "separate it again")
            stems[stem_id] = signal
            self.report(0.8 * (i + 1) / len(meta["stems"]))
        result = SeparationResult(stems=stems, samplerate=int(meta["samplerate"]),
                                  model=meta["model"], unavailable=tuple(meta["unavailable"]),
                                  residual_db=meta.get("residual_db"),
                                  residual_in_other=bool(meta.get("residual_in_other")),
                                  notes=list(meta.get("notes", [])))
        envelopes = {s: Envelope.compute(v, result.samplerate, cancel=self.is_cancelled)
                     for s, v in stems.items()}
        options = SeparationOptions(**meta.get("options", {"model": meta["model"]}))
        self.report(1.0)
        return SeparatedSong(result, envelopes, options, float(meta.get("seconds", 0.0)),
                             meta.get("null_db"))
