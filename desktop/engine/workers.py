"""Background work for the window: load audio, separate, download a model, compute a
spectrogram, keep and restore separations. Every task runs on its own QThread, reports
progress through queued signals (throttled to ~20 per second), can be cancelled, and
delivers its result by signal. Separations run in the engine process (`process`).

The GUI thread never runs engine code: it only starts tasks and receives their signals.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from stemwright.models.errors import Cancelled, StemwrightError
from stemwright.models.remix.mixer import as_stereo, null_test_db
from stemwright.models.zoo import catalog as zoo

from ..views.spectrogram_data import compute_spectrogram
from ..views.waveform_data import Envelope
from .process import engine
from .protocol import PROGRESS_INTERVAL

if TYPE_CHECKING:
    from ..views.spectrogram_data import Spectrogram

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
        p = self.partial
        if p is None or region.start == 0:
            stems = {s: np.zeros((x.shape[0], region.length), dtype=np.float32)
                     for s, x in region.stems.items()}
            if "other" in stems:  # not separated yet = still all in "other"

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
        self.report(0.97, None, "Drawing stems")
        envelopes = {}
        for stem_id, signal in result.stems.items():
            envelopes[stem_id] = Envelope.compute(signal, self.samplerate,
                                                  cancel=self.is_cancelled)
        null_db = None
        try:
            null_db = null_test_db(self.mix, result.stems)
        except (ImportError, ValueError):
            pass
        self.report(1.0)
        return SeparatedSong(result, envelopes, opts, time.monotonic() - self.started_at,
                             null_db)


class WarmupTask(Task):
    """Start the engine process and import the models before the user asks (background)."""

    title = "Starting the separation engine"

    def cancel(self) -> None:
        super().cancel()
        engine().abort()  # only cancelled when the window closes

    def work(self) -> bool:
        return engine().warm_up()


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

    return zoo.cache_dir() / "sessions"


def session_key(path: str | Path) -> str:
    """Identifies a song file by path, size and modification time."""

    path = Path(path).resolve()
    stat = path.stat()
    raw = f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    return hashlib.sha1(raw).hexdigest()[:20]


def find_session(path: str | Path) -> dict | None:
    """The newest saved separation of the song at `path` (its meta data), or None."""

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
