"""Separation from a stream of blocks, in memory that does not grow with the song.

`separate_stream` reads the song block by block, runs the model chunk by chunk as the
input arrives, and hands each region of finished stems to a sink (a file writer) as soon
as no later chunk can change it, then forgets it. What it holds at any time: the input
one chunk ahead, the overlap-add accumulators of the chunks in flight, and a little of
the input-rate mix for the residual: megabytes, for a 5-minute song or a 5-hour one.

The stems are those of `Separator.separate` on the whole song: the same chunk grid,
padding with real neighbouring audio, cross-fade weights and float32 operations in the
same order (bags of models: each network's accumulator normalised and weighted, then
summed, as `_infer_once` does), the same resampler (soxr's streaming interface gives
the whole-signal result), and the same residual into "other". One difference: a
standardising model's mean and std come from a first pass over the stream, summed in
float64, where `prepare` uses numpy's float32 mean (about 1e-7 relative).

Models that run their own inference loop (community RoFormers) or are chains of models
(recipes) do not stream: `streams(sep)` says which do.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import soxr
import torch

from ..audio import channels as chan
from ..audio.resample import resampled_length
from ..errors import AudioError
from ..progress import CancelCheck, ProgressCallback, ProgressTracker, check_cancel
from .chunking import ChunkPlan, center_trim
from .separator import (
    PartialCallback,
    RegionEmitter,
    Separator,
    standardisation,
    standardise,
)

#: Blocks read ahead of the model, and regions queued for the writer, at most.
PREFETCH_BLOCKS = 4


def streams(sep: object) -> bool:
    """True when `sep` separates through the base class's chunked inference, so a
    stream gives the same stems as the whole song."""
    if not isinstance(sep, Separator):
        return False
    cls = type(sep)
    return (cls.separate is Separator.separate and cls._infer is Separator._infer
            and cls._infer_once is Separator._infer_once
            and cls.prepare is Separator.prepare
            and cls.restore is Separator.restore)


@dataclass
class StreamSummary:
    """What a streamed separation reports besides the stems it wrote."""

    model: str
    samplerate: int
    length: int  # input-rate samples
    unavailable: tuple[str, ...]
    residual_db: float | None
    residual_in_other: bool
    notes: list[str] = field(default_factory=list)


BlockSource = Callable[[], Iterable[np.ndarray]]


def separate_stream(sep: Separator, source: BlockSource, samplerate: int,
                    sink: PartialCallback, *, frames_hint: int | None = None,
                    progress: ProgressCallback | None = None,
                    cancel: CancelCheck | None = None,
                    residual_to_other: bool = True) -> StreamSummary:
    """Separate the song that `source()` yields as float32 [C, n] blocks at `samplerate`;
    `sink(PartialStems)` gets the canonical stems region by region, in order, tiling the
    song. `frames_hint` (the header's length, may be approximate) sizes the progress.

    `source` is called twice for a standardising model (once for its mean and std).
    AudioError for an empty or too short stream; Cancelled when `cancel()` turns True.
    """
    if not streams(sep):
        raise ValueError(f"{sep.name} cannot separate a stream")
    samplerate = int(samplerate)
    state = _stats(sep, source, samplerate, cancel) if sep.standardise_ddof is not None \
        else None
    inp = _Input(sep, source, samplerate, state)
    writer = _Writer(sink)
    emitter = RegionEmitter(sep, writer.put, inp.reference, 0, samplerate, state,
                            residual_to_other)
    seconds = (frames_hint or 0) / samplerate
    try:
        _run(sep, inp, emitter, progress, cancel, frames_hint, seconds)
        writer.finish()
    finally:
        writer.close()
        inp.close()
    notes: list[str] = []
    in_other = residual_to_other and "other" in emitter.groups
    if residual_to_other and not in_other:
        notes.append("model has no 'other' stem: the residual was not folded in")
    return StreamSummary(sep.name, samplerate, inp.length or 0, sep.mapping.unavailable,
                         emitter.residual_db, in_other, notes)


def _stats(sep: Separator, source: BlockSource, samplerate: int,
           cancel: CancelCheck | None) -> tuple[float, float]:
    """Mean and std of the mono model input over the whole stream (first pass)."""
    resampler = _Resampler(samplerate, sep.samplerate)
    total = total_sq = 0.0
    count = 0
    for block in source():
        check_cancel(cancel)
        mono = resampler(chan.to_stereo(block), last=False).mean(axis=0, dtype=np.float64)
        total += float(mono.sum())
        total_sq += float(np.dot(mono, mono))
        count += mono.size
    tail = resampler(np.zeros((2, 0), np.float32), last=True).mean(axis=0, dtype=np.float64)
    total += float(tail.sum())
    total_sq += float(np.dot(tail, tail))
    count += tail.size
    if count == 0:
        raise AudioError("the audio is empty (zero samples)")
    mean = total / count
    ddof = sep.standardise_ddof or 0
    var = (total_sq - count * mean * mean) / max(count - ddof, 1)
    return standardisation(mean, math.sqrt(max(var, 0.0)) if count > 1 else 0.0)


class _Resampler:
    """soxr's streaming resampler on [2, n] blocks (identity at equal rates)."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.stream = None
        if rate_in != rate_out:
            self.stream = soxr.ResampleStream(rate_in, rate_out, 2, dtype="float32",
                                              quality="VHQ")

    def __call__(self, x: np.ndarray, last: bool) -> np.ndarray:
        if self.stream is None:
            return x
        chunk = np.ascontiguousarray(x.T, dtype=np.float32)
        return np.ascontiguousarray(self.stream.resample_chunk(chunk, last=last).T)


class _Input:
    """The stream, read ahead in a thread: model-rate (prepared) stereo, and the
    input-rate mix for the residual, each held from the first sample still needed."""

    def __init__(self, sep: Separator, source: BlockSource, samplerate: int,
                 state: tuple[float, float] | None) -> None:
        self.rate_in, self.rate_model = samplerate, sep.samplerate
        self.state = state
        self.resampler = _Resampler(samplerate, sep.samplerate)
        self.blocks = _prefetch(source)
        self.model = _Window(2)
        self.ref: _Window | None = None  # channels known at the first block
        self.length: int | None = None  # input-rate samples, once the stream ended
        self.model_length: int | None = None
        self.read = 0  # input-rate samples read

    @property
    def ended(self) -> bool:
        return self.model_length is not None

    def pull(self) -> None:
        """Read one more block (or learn that the stream ended)."""
        block = next(self.blocks, None)
        if block is None:
            self._finish()
            return
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[-1] == 0:
            return
        if not np.isfinite(block).all():
            raise AudioError("the audio contains NaN or infinite samples")
        if self.ref is None:
            self.ref = _Window(block.shape[0] if block.shape[0] <= 2 else 2)
        ref = block if block.shape[0] <= 2 else chan.downmix_to_stereo(block)
        self.ref.append(ref)
        self.read += block.shape[-1]
        self._append_model(self.resampler(chan.to_stereo(block), last=False))

    def _append_model(self, x: np.ndarray) -> None:
        if x.shape[-1]:
            self.model.append(standardise(x, self.state) if self.state is not None else x)

    def _finish(self) -> None:
        if self.read == 0:
            raise AudioError("the audio is empty (zero samples)")
        self._append_model(self.resampler(np.zeros((2, 0), np.float32), last=True))
        self.length = self.read
        self.model_length = resampled_length(self.read, self.rate_in, self.rate_model)
        if self.model_length == 0:
            raise AudioError("the audio is too short for the model (fewer samples than one "
                             "at its rate); choose a longer file")
        self.model.fit(self.model_length, self.state)

    def ensure(self, end: int) -> None:
        """Read until model-rate samples up to `end` are in (or the stream ended)."""
        while not self.ended and self.model.end < end:
            self.pull()

    def reference(self, a: int, b: int) -> np.ndarray:
        while self.ref is None or (self.ref.end < b and not self.ended):
            self.pull()
        out = self.ref.slice(a, b)
        self.ref.drop_before(b)
        return out

    def close(self) -> None:
        close = getattr(self.blocks, "close", None)
        if close is not None:
            close()


class _Window:
    """A growing [*lead, n] buffer addressed by absolute sample index, from `start`."""

    def __init__(self, *lead: int) -> None:
        self.data = np.zeros((*lead, 0), np.float32)
        self.start = 0
        self.used = 0

    @property
    def end(self) -> int:
        return self.start + self.used

    def append(self, x: np.ndarray) -> None:
        n = x.shape[-1]
        if self.used + n > self.data.shape[-1]:
            grown = np.zeros((*self.data.shape[:-1], max(2 * (self.used + n), 1 << 16)),
                             np.float32)
            grown[..., :self.used] = self.data[..., :self.used]
            self.data = grown
        self.data[..., self.used:self.used + n] = x
        self.used += n

    def extend_to(self, end: int) -> None:
        """Zeros up to `end` (accumulators about to be added into)."""
        if end > self.end:
            self.append(np.zeros((*self.data.shape[:-1], end - self.end), np.float32))

    def fit(self, length: int, state: tuple[float, float] | None) -> None:
        """Cut or pad to `length` samples in all (the whole-song resampler's length); a
        padded sample is the standardised zero, as `prepare` of a zero-padded song."""
        if length < self.end:
            self.used = max(0, length - self.start)
        elif length > self.end:
            pad = np.zeros((*self.data.shape[:-1], length - self.end), np.float32)
            self.append(standardise(pad, state) if state is not None else pad)

    def view(self, a: int, b: int) -> np.ndarray:
        """The held samples [a, b) themselves (to add into); all must be held."""
        if a < self.start or b > self.end:
            raise RuntimeError("streaming window: samples outside the held range")
        return self.data[..., a - self.start:b - self.start]

    def slice(self, a: int, b: int) -> np.ndarray:
        """A copy of samples [a, b), zeros outside [0, end); dropped samples are an error."""
        if max(a, 0) < self.start and b > self.start:
            raise RuntimeError("streaming window: samples needed again after being dropped")
        out = np.zeros((*self.data.shape[:-1], b - a), np.float32)
        lo, hi = max(a, self.start), min(b, self.end)
        if hi > lo:
            out[..., lo - a:hi - a] = self.data[..., lo - self.start:hi - self.start]
        return out

    def drop_before(self, index: int) -> None:
        """Forget samples before `index` (moving the rest down when that frees much)."""
        k = min(max(0, index - self.start), self.used)
        if k and (k >= self.used // 2 or k >= 1 << 20):
            self.data[..., :self.used - k] = self.data[..., k:self.used]
            self.used -= k
            self.start += k


class _Writer:
    """Hands regions to `sink` in a thread, in order, up to PREFETCH_BLOCKS behind the
    model (writing overlaps the next chunks); the sink's error is raised at the next
    region or at `finish()`."""

    def __init__(self, sink: PartialCallback) -> None:
        self.sink = sink
        self.queue: queue.Queue = queue.Queue(maxsize=PREFETCH_BLOCKS)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="stemwright-writer",
                                       daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            part = self.queue.get()
            if part is None:
                return
            if self.error is None:
                try:
                    self.sink(part)
                except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                    self.error = exc

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, part) -> None:
        self._raise()
        self.queue.put(part)

    def finish(self) -> None:
        """Wait until every region is written; raise the sink's error if any."""
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def close(self) -> None:
        """Stop after a failure or cancel: what is queued is dropped, not written."""
        if not self.thread.is_alive():
            return
        self.error = self.error or RuntimeError("stopped")
        while self.thread.is_alive():
            try:
                self.queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        self.thread.join(timeout=30)


def _prefetch(source: BlockSource) -> Iterator[np.ndarray]:
    """`source()`'s blocks, read by a thread up to PREFETCH_BLOCKS ahead (decoding
    overlaps the model); its errors are raised where the block would have been."""
    q: queue.Queue = queue.Queue(maxsize=PREFETCH_BLOCKS)
    stop = threading.Event()
    done = object()

    def read() -> None:
        try:
            for block in source():
                while not stop.is_set():
                    try:
                        q.put(block, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=read, name="stemwright-reader", daemon=True)
    thread.start()

    def blocks() -> Iterator[np.ndarray]:
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join(timeout=5)
    return blocks()


def _run(sep: Separator, inp: _Input, emitter: RegionEmitter,
         progress: ProgressCallback | None, cancel: CancelCheck | None,
         frames_hint: int | None, seconds: float) -> None:
    """The chunk loop of `run_chunked`, over a stream, all passes per chunk."""
    passes = sep.passes()
    n_src = len(sep.mapping.native)
    segment = int(sep.segment * sep.samplerate)
    grid = ChunkPlan.make(segment, segment, sep.overlap)
    stride, weight = grid.stride, grid.weight
    valid = [p.valid_length or (lambda n: n) for p in passes]
    pass_weights = [None if p.weights is None else np.asarray(p.weights, np.float32)
                    for p in passes]
    totals = np.zeros(n_src, dtype=np.float64)
    for p in passes:
        totals += np.ones(n_src) if p.weights is None else np.asarray(p.weights, float)
    divide = len(passes) > 1 or bool(np.any(totals != 1.0))
    scale = np.maximum(totals, 1e-12).astype(np.float32)[:, None, None]
    hint = resampled_length(frames_hint, inp.rate_in, sep.samplerate) if frames_hint else 0
    tracker = ProgressTracker(progress, max(1, math.ceil(hint / stride)), seconds)
    tracker.report()

    widest = max(v(segment) for v in valid)
    acc = [_Window(n_src, 2) for _ in passes]  # overlap-add accumulators, one per pass
    sum_weight = _Window()
    final_start = 0
    offset = 0
    while True:
        check_cancel(cancel)
        inp.ensure(offset + segment + widest)
        length = inp.model_length
        if length is not None and offset >= length:
            break
        first_len = segment if length is None else min(segment, length - offset)
        batch = [offset]
        while len(batch) < sep.batch_size:
            nxt = batch[-1] + stride
            inp.ensure(nxt + segment + widest)
            length = inp.model_length
            if length is not None and (nxt >= length
                                       or min(segment, length - nxt) != first_len):
                break
            batch.append(nxt)
        for w in (*acc, sum_weight):
            w.extend_to(batch[-1] + first_len)
        w_chunk = weight[:first_len]
        for p, a, v in zip(passes, acc, valid, strict=True):
            target = v(first_len)
            x = np.stack([inp.model.slice(o - (target - first_len) // 2,
                                          o - (target - first_len) // 2 + target)
                          for o in batch])
            with torch.inference_mode():
                y = p.forward(torch.from_numpy(x).to(device=sep.device, dtype=torch.float32))
                y = center_trim(y, first_len).float().cpu().numpy()
            if y.shape[1] != n_src:
                raise ValueError(f"model returned {y.shape[1]} sources, expected {n_src}")
            for o, chunk_out in zip(batch, y, strict=True):
                a.view(o, o + first_len)[...] += np.multiply(chunk_out, w_chunk,
                                                             out=chunk_out)
        for o in batch:
            sum_weight.view(o, o + first_len)[...] += w_chunk
        offset = batch[-1] + stride
        tracker.advance(len(batch))
        length = inp.model_length
        final_end = offset if length is None or offset < length else length
        if final_end > final_start:
            sw = sum_weight.view(final_start, final_end)
            region = None
            for a, pw in zip(acc, pass_weights, strict=True):
                part = a.view(final_start, final_end) / sw
                if pw is not None:
                    part *= pw[:, None, None]
                region = part if region is None else region + part
            if divide:
                region /= scale
            emitter.channels = inp.ref.data.shape[0]
            emitter.length, emitter.model_length = inp.length, inp.model_length
            emitter(region, final_start)
            final_start = final_end
            for w in (*acc, sum_weight):
                w.drop_before(final_start)
            inp.model.drop_before(max(0, offset - 2 * widest))
    if emitter.done != inp.length:
        raise RuntimeError("streaming separation did not cover the whole song")


__all__ = ["BlockSource", "PREFETCH_BLOCKS", "StreamSummary", "separate_stream", "streams"]
