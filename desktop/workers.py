"""Background work for the window: load audio, separate, download a model, compute a
spectrogram. Every task runs on its own QThread, reports progress through queued signals
(throttled to ~20 per second), can be cancelled, and delivers its result by signal.

The GUI thread never runs engine code: it only starts tasks and receives their signals.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from stemwright.models.errors import Cancelled

from .spectrogram_view import Spectrogram, compute_spectrogram
from .waveform_view import Envelope

PROGRESS_INTERVAL = 0.05  # seconds between progress signals


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
        if eta is not None and hi < 1.0 and fraction > 0:
            eta = None  # only the task knows the cost of its remaining phases
        self.report(lo + (hi - lo) * fraction, eta, message)

    def work(self) -> object:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self) -> None:
        self.started_at = time.monotonic()
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
        return self.path.stem


class LoadTask(Task):
    """Decode an audio file and compute its min/max envelope."""

    title = "Loading"

    def __init__(self, path: str | Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)

    def work(self) -> LoadedSong:
        from stemwright.models.audio_io import load_audio

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
class SeparatedSong:
    """A separation result plus the stems' envelopes, ready to draw."""

    result: object  # stemwright.models.separator.SeparationResult
    envelopes: dict[str, Envelope]
    options: SeparationOptions
    seconds: float = 0.0  # wall time
    null_db: float | None = None  # mix - sum(stems) relative to the mix


class SeparateTask(Task):
    """Load a separator and run it on the song, in this worker thread."""

    title = "Separation"

    def __init__(self, mix: np.ndarray, samplerate: int, options: SeparationOptions,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.mix = mix
        self.samplerate = int(samplerate)
        self.options = options

    def work(self) -> SeparatedSong:
        from stemwright.models import zoo

        opts = self.options
        self.report(0.0, None, f"Loading model {opts.model}")
        separator = zoo.load_separator(opts.model, device=opts.device, segment=opts.segment,
                                       overlap=opts.overlap)
        self.check_cancel()
        result = separator.separate(self.mix, self.samplerate,
                                    progress=lambda p: self.engine_progress(p, 0.0, 0.97),
                                    cancel=self.is_cancelled)
        self.check_cancel()
        self.report(0.97, None, "Drawing stems")
        envelopes = {}
        for stem_id, signal in result.stems.items():
            envelopes[stem_id] = Envelope.compute(signal, self.samplerate,
                                                  cancel=self.is_cancelled)
        null_db = None
        try:
            from stemwright.models.mixing import null_test_db
            null_db = null_test_db(self.mix, result.stems)
        except (ImportError, ValueError):
            pass
        self.report(1.0)
        return SeparatedSong(result, envelopes, opts, time.monotonic() - self.started_at,
                             null_db)


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
        from stemwright.models import zoo

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
