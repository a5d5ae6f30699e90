"""One separator interface for every model, and the pipeline around the model.

`Separator.separate(mix, samplerate, progress, cancel)` takes a song at any rate and channel
count and returns canonical stems at the input's rate, length and channel layout. The
pipeline: channel layout -> resample to the model rate -> chunked overlap-add inference
(retrying with less memory on accelerator out-of-memory) -> native sources mapped onto the
six stems -> resample back -> residual `mix - sum(stems)` folded into "other" (optional).

With a `partial` callback, single-network models also report the stems of each region of
the song as soon as no later chunk can change it (`PartialStems`), so an app can show and
play the beginning of a song while the rest is still being separated.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import soxr
import torch

from ..audio import channels as chan
from ..audio.io import MAX_SAMPLERATE, MIN_SAMPLERATE
from ..audio.resample import fit_length, resample
from ..errors import AudioError, ModelError
from ..progress import CancelCheck, ProgressCallback, ProgressTracker
from ..stems import STEM_IDS, StemMapping
from .chunking import ChunkForward, ChunkPlan, FinalRegionHook, run_chunked
from .devices import (
    configure_cpu_threads,
    free_accelerator_memory,
    is_out_of_memory,
    resolve_device,
)


@dataclass
class SeparationResult:
    """Stems of one song: {stem id: float32 [C, T]} at the input's rate and length."""

    stems: dict[str, np.ndarray]
    samplerate: int
    model: str
    unavailable: tuple[str, ...]
    residual_db: float | None = None  # energy of mix - sum(stems), dB relative to the mix
    residual_in_other: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def length(self) -> int:
        return next(iter(self.stems.values())).shape[-1]

    def sum(self) -> np.ndarray:
        """Sum of all produced stems [C, T]."""
        total = None
        for stem in self.stems.values():
            total = stem.copy() if total is None else total + stem
        return total


@dataclass
class PartialStems:
    """The canonical stems of one finished region [start, end) of a song, sent while the
    separation goes on (input rate and channel layout, like the final result).

    Regions arrive in order and tile the song: the first starts at 0, each starts where
    the previous ended, and the last ends at `length`. Their samples are those of the final
    result (exactly, when no resampling is involved; within resampler rounding otherwise).
    """

    stems: dict[str, np.ndarray]  # {stem id: float32 [C, end - start]}
    start: int
    end: int
    length: int  # of the whole song, in samples
    samplerate: int
    unavailable: tuple[str, ...] = ()

    @property
    def final_until_seconds(self) -> float:
        """Everything before this time is final."""
        return self.end / self.samplerate


PartialCallback = Callable[[PartialStems], None]


@dataclass(frozen=True)
class ModelPass:
    """One network in a (possibly bagged) model: its forward and per-source weights."""

    forward: ChunkForward
    weights: tuple[float, ...] | None = None
    valid_length: object = None  # Callable[[int], int] | None


def standardisation(mean: float, std: float) -> tuple[float, float]:
    """The (mean, std) state a standardising `prepare` divides out; std 1 for silence."""
    return mean, (std if std > 1e-8 else 1.0)


def standardise(mix: np.ndarray, state: tuple[float, float]) -> np.ndarray:
    """(mix - mean) / std, float32: the same operations on a whole song or on a block."""
    mean, std = state
    return ((mix - mean) / std).astype(np.float32, copy=False)


def _power(x: np.ndarray) -> float:
    """Sum of squares accumulated in float64 (einsum casts as it goes: no float64 copy)."""
    flat = np.ravel(x)
    return float(np.einsum("i,i->", flat, flat, dtype=np.float64))


def energy_db(x: np.ndarray, reference: np.ndarray) -> float:
    """10 log10(|x|^2 / |reference|^2); -inf for exact silence."""
    num, den = _power(x), _power(reference)
    if num == 0.0:
        return -math.inf
    return 10 * math.log10(num / max(den, 1e-20))


class Separator(ABC):
    """Base of every model. Subclasses set `name`, `mapping`, `samplerate` and `passes()`."""

    name: str = "model"
    mapping: StemMapping
    samplerate: int = 44100
    default_segment: float = 10.0  # seconds
    max_segment: float | None = None  # models trained on a fixed length cannot exceed it
    min_segment: float = 1.0
    segment_shrinks_memory: bool = True  # False when the model pads short chunks back up
    default_overlap: float = 0.25
    #: None, or the ddof of the std with which `prepare` standardises the input by the mean
    #: and std of its mono mix (demucs: 1); streaming computes them in a first pass
    standardise_ddof: int | None = None

    def __init__(self, device: str | torch.device = "auto", segment: float | None = None,
                 overlap: float | None = None, half: bool = False, batch_size: int = 1,
                 threads: int | None = None) -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        if self.device.type == "cpu":
            configure_cpu_threads(threads)
        self.segment = float(segment) if segment is not None else self.default_segment
        if self.segment <= 0:
            raise ModelError("segment must be positive")
        if self.max_segment is not None and self.segment > self.max_segment:
            raise ModelError(f"{self.name}: segment {self.segment:g} s is longer than the "
                             f"{self.max_segment:g} s this model was trained on")
        self.overlap = self.default_overlap if overlap is None else float(overlap)
        if not 0.0 <= self.overlap < 1.0:
            raise ModelError("overlap must be at least 0 and below 1")
        self.half = bool(half) and self.device.type != "cpu"
        self.batch_size = max(1, int(batch_size))

    # -- what subclasses provide -------------------------------------------------------
    @abstractmethod
    def passes(self) -> list[ModelPass]:
        """The networks to run (one, or several for a bag of models)."""

    def to(self, device: torch.device) -> None:
        """Move model weights to `device` (subclasses with weights override)."""
        self.device = device

    def prepare(self, mix: np.ndarray) -> tuple[np.ndarray, object]:
        """Model-specific input normalisation; returns the input and state for `restore`.

        Here: when `standardise_ddof` is set, (mix - mean) / std with the mean and std of
        the mono mix (a silent mix keeps std 1)."""
        if self.standardise_ddof is None:
            return mix, None
        mono = mix.mean(axis=0)
        std = float(mono.std(ddof=self.standardise_ddof)) if mono.size > 1 else 0.0
        state = standardisation(float(mono.mean()), std)
        return standardise(mix, state), state

    def restore(self, sources: np.ndarray, state: object) -> np.ndarray:
        """Undo `prepare` on the separated sources [S, C, T] (in place is fine): `state` is
        None (nothing to undo) or the (mean, std) a standardising `prepare` divided out."""
        if state is None:
            return sources
        mean, std = state
        sources *= std
        sources += mean
        return sources

    @property
    def native_stems(self) -> tuple[str, ...]:
        return self.mapping.native

    def autocast(self):
        """Context for a forward pass: float16 autocast on GPU when `half` is set."""
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half)

    # -- the pipeline -------------------------------------------------------------------
    def separate(self, mix: np.ndarray, samplerate: int,
                 progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
                 residual_to_other: bool = True,
                 partial: PartialCallback | None = None) -> SeparationResult:
        """Separate `mix` [C, T] sampled at `samplerate` into canonical stems.

        `partial(PartialStems)` is called as chunks finish with the stems of the region
        that became final (single-network models only; bags report nothing early). It
        never changes the result.
        """
        mix = _validate_mix(mix, samplerate)
        reference = mix if mix.shape[0] <= 2 else chan.downmix_to_stereo(mix)
        out_channels = reference.shape[0]
        length = mix.shape[-1]
        notes: list[str] = []

        model_in = resample(chan.to_stereo(mix), samplerate, self.samplerate)
        if model_in.shape[-1] == 0:
            raise AudioError(f"the audio is too short for {self.name} (fewer samples than one "
                             f"at its {self.samplerate} Hz); choose a longer file")
        model_in, state = self.prepare(model_in)
        on_final = None
        if partial is not None:
            on_final = RegionEmitter(self, partial, _slicer(reference), out_channels,
                                     samplerate, state, residual_to_other,
                                     length=length, model_length=model_in.shape[-1])
        native = self._infer(model_in, progress, cancel, notes, length / samplerate,
                             on_final=on_final)
        del model_in
        native = self.restore(native, state)

        stems: dict[str, np.ndarray] = {}
        for stem_id in self.mapping.produced:
            idx = [i for i, s in enumerate(self.mapping.native)
                   if self.mapping.target_of(s) == stem_id]
            # A view when nothing changes: the native buffer becomes the output, no copy.
            signal = native[idx[0]] if len(idx) == 1 else native[idx].sum(axis=0)
            signal = fit_length(resample(signal, self.samplerate, samplerate), length)
            stems[stem_id] = chan.from_stereo(signal, out_channels).astype(np.float32,
                                                                          copy=False)
        del native

        residual = reference.astype(np.float32, copy=True)
        for signal in stems.values():
            residual -= signal
        residual_db = energy_db(residual, reference)
        in_other = False
        if residual_to_other:
            if "other" in stems:
                stems["other"] += residual
                in_other = True
            else:
                notes.append("model has no 'other' stem: the residual was not folded in")
        result = SeparationResult(stems=stems, samplerate=samplerate, model=self.name,
                                  unavailable=self.mapping.unavailable,
                                  residual_db=residual_db, residual_in_other=in_other,
                                  notes=notes)
        return result

    def _infer(self, mix: np.ndarray, progress: ProgressCallback | None,
               cancel: CancelCheck | None, notes: list[str], seconds: float,
               on_final: FinalRegionHook | None = None) -> np.ndarray:
        """Run every pass over `mix` [2, T], retrying with less memory on accelerator OOM.

        `on_final(native_region, start)` gets the finished regions of a single-pass model.
        """
        segment, batch = self.segment, self.batch_size
        while True:
            try:
                return self._infer_once(mix, segment, batch, progress, cancel, seconds,
                                        on_final)
            except Exception as exc:  # noqa: BLE001 - only OOM is handled, the rest re-raised
                if not is_out_of_memory(exc):
                    raise
                free_accelerator_memory(self.device)
                if batch > 1:
                    batch //= 2
                    msg = f"{self.device.type.upper()} out of memory: batch reduced to {batch}"
                elif self.segment_shrinks_memory and segment / 2 >= self.min_segment:
                    segment /= 2
                    msg = (f"{self.device.type.upper()} out of memory: segment reduced to "
                           f"{segment:.1f} s, retrying")
                elif self.device.type != "cpu":
                    self.half = False
                    self.to(torch.device("cpu"))
                    msg = "GPU out of memory even with the smallest settings: continuing on CPU"
                else:
                    raise ModelError("out of memory on the CPU; close other programs or "
                                     "use a smaller --segment") from exc
                notes.append(msg)
                if progress is not None:
                    ProgressTracker(progress, 1, seconds).report(msg)

    def _infer_once(self, mix: np.ndarray, segment: float, batch: int,
                    progress: ProgressCallback | None, cancel: CancelCheck | None,
                    seconds: float, on_final: FinalRegionHook | None = None) -> np.ndarray:
        passes = self.passes()
        length = mix.shape[-1]
        plan = ChunkPlan.make(length, int(segment * self.samplerate), self.overlap)
        tracker = ProgressTracker(progress, len(plan.offsets) * len(passes), seconds)
        tracker.report()
        n_src = len(self.mapping.native)
        out = None
        totals = np.zeros(n_src, dtype=np.float64)
        for p in passes:
            weights = np.ones(n_src) if p.weights is None else np.asarray(p.weights, float)
            hook = None
            if on_final is not None and len(passes) == 1:
                hook = _divided_by(on_final, weights)
            out = run_chunked(p.forward, mix, n_src, plan, self.device,
                        valid_length=p.valid_length or (lambda n: n), out=out,
                        source_weights=None if p.weights is None else weights,
                        tracker=tracker, cancel=cancel, batch_size=batch, on_final=hook)
            totals += weights
        if len(passes) > 1 or np.any(totals != 1.0):
            out /= np.maximum(totals, 1e-12).astype(np.float32)[:, None, None]
        return out


def _divided_by(hook: FinalRegionHook, totals: np.ndarray) -> FinalRegionHook:
    """`hook` fed regions divided by the summed pass weights, as `_infer_once` divides the
    whole result (the same float32 operations, so the same values)."""
    if not np.any(totals != 1.0):
        return hook
    scale = np.maximum(totals, 1e-12).astype(np.float32)[:, None, None]

    def divided(region: np.ndarray, start: int) -> None:
        region /= scale
        hook(region, start)
    return divided


def _slicer(reference: np.ndarray) -> Callable[[int, int], np.ndarray]:
    return lambda a, b: reference[:, a:b]


class RegionEmitter:
    """Turns finished native regions (model rate, [S, 2, n]) into `PartialStems`: restore,
    native -> canonical, streaming resample to the input rate, channel layout, residual
    into "other"; the same operations `separate` applies to the whole song.

    `reference(a, b)` gives the input-rate mix [channels, b - a] the residual is taken
    from. `length` and `model_length` (the song's length at the input and the model rate)
    may be set later, before the last region arrives (a stream learns them at its end).
    It also sums the energy of the residual and of the mix (`residual_db`).
    """

    def __init__(self, sep: Separator, callback: PartialCallback,
                 reference: Callable[[int, int], np.ndarray], channels: int,
                 samplerate: int, state: object, residual_to_other: bool,
                 length: int | None = None, model_length: int | None = None) -> None:
        self.sep = sep
        self.callback = callback
        self.reference = reference
        self.channels = int(channels)
        self.samplerate = int(samplerate)
        self.state = state
        self.residual_to_other = residual_to_other
        self.length = length
        self.model_length = model_length
        mapping = sep.mapping
        self.groups = {stem_id: [i for i, s in enumerate(mapping.native)
                                 if mapping.target_of(s) == stem_id]
                       for stem_id in mapping.produced}
        self._reset()

    def _reset(self) -> None:
        self.done = 0  # input-rate samples already reported
        self.residual_power = self.mix_power = 0.0
        self.streams = None
        if self.sep.samplerate != self.samplerate:  # continuous across regions, no seams
            self.streams = {s: soxr.ResampleStream(self.sep.samplerate, self.samplerate, 2,
                                                   dtype="float32", quality="VHQ")
                            for s in self.groups}

    @property
    def residual_db(self) -> float:
        """Energy of mix - sum(stems) over everything emitted, dB relative to the mix."""
        if self.residual_power == 0.0:
            return -math.inf
        return 10 * math.log10(self.residual_power / max(self.mix_power, 1e-20))

    def __call__(self, region: np.ndarray, start: int) -> None:
        if start == 0:
            self._reset()  # a retry (out of memory) starts the song again
        native = self.sep.restore(region, self.state)
        last = (self.model_length is not None
                and start + region.shape[-1] >= self.model_length)
        signals: dict[str, np.ndarray] = {}
        for stem_id, idx in self.groups.items():
            signal = native[idx[0]] if len(idx) == 1 else native[idx].sum(axis=0)
            if self.streams is not None:
                chunk = np.ascontiguousarray(signal.T, dtype=np.float32)
                signal = self.streams[stem_id].resample_chunk(chunk, last=last).T
            signals[stem_id] = signal
        n = min(s.shape[-1] for s in signals.values())
        if last:
            n = self.length - self.done
        elif self.length is not None:
            n = min(n, self.length - self.done)
        if n <= 0:
            return
        a, b = self.done, self.done + n
        stems = {s: chan.from_stereo(fit_length(x[:, :n], n), self.channels)
                 .astype(np.float32, copy=False) for s, x in signals.items()}
        mix = self.reference(a, b)
        residual = mix.astype(np.float32, copy=True)
        for signal in stems.values():
            residual -= signal
        self.residual_power += _power(residual)
        self.mix_power += _power(mix)
        if self.residual_to_other and "other" in stems:
            stems["other"] = stems["other"] + residual
        self.done = b
        self.callback(PartialStems(stems, a, b, self.length if self.length is not None
                                   else b, self.samplerate,
                                   tuple(self.sep.mapping.unavailable)))


class NumpySeparator(Separator):
    """Base of the training-free methods: numpy on the CPU, one chunk at a time.

    Subclasses implement `separate_chunk(audio [2, L]) -> [S, 2, L]` (native order). They
    run on the CPU whatever device is asked for: nothing in them would run on a GPU.
    """

    def __init__(self, device: str | torch.device = "cpu", segment: float | None = None,
                 overlap: float | None = None, half: bool = False, batch_size: int = 1,
                 threads: int | None = None) -> None:
        super().__init__("cpu", segment, overlap, False, batch_size, threads)

    @abstractmethod
    def separate_chunk(self, audio: np.ndarray) -> np.ndarray:
        """[2, L] -> [S, 2, L] in the mapping's native order."""

    def passes(self) -> list[ModelPass]:
        return [ModelPass(self._forward)]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        audio = x.detach().to("cpu", torch.float32).numpy()
        out = np.stack([self.separate_chunk(chunk) for chunk in audio])
        return torch.from_numpy(out).to(x.device)


def _validate_mix(mix: np.ndarray, samplerate: int) -> np.ndarray:
    mix = np.asarray(mix)
    if mix.ndim == 1:
        mix = mix[None, :]
    if mix.ndim != 2:
        raise AudioError(f"expected audio shaped [channels, samples], got {mix.shape}")
    if mix.shape[-1] == 0:
        raise AudioError("the audio is empty (zero samples)")
    if not MIN_SAMPLERATE <= int(samplerate) <= MAX_SAMPLERATE:
        raise AudioError(f"sample rate {samplerate} Hz is outside the supported "
                         f"{MIN_SAMPLERATE}-{MAX_SAMPLERATE} Hz")
    mix = mix.astype(np.float32, copy=False)
    if not np.isfinite(mix).all():
        raise AudioError("the audio contains NaN or infinite samples")
    return mix


__all__ = ["Separator", "SeparationResult", "ModelPass", "PartialStems", "PartialCallback",
           "RegionEmitter", "STEM_IDS", "energy_db", "standardisation", "standardise"]
