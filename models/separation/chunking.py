"""Chunked overlap-add inference: any song length, bounded accelerator memory.

The song stays in CPU RAM (or a disk-backed buffer for very long files); only the chunks
being processed move to the device. The chunk grid, centred padding with real neighbouring
audio, triangular cross-fade weights and centre trimming follow `demucs.apply.apply_model`
exactly, so a model run through this path gives the same result as through demucs itself.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..progress import CancelCheck, ProgressTracker, check_cancel

#: Buffers above this many bytes are kept in a temporary file on disk instead of RAM.
MEMMAP_THRESHOLD = int(os.environ.get("STEMWRIGHT_MEMMAP_BYTES", str(2 * 1024**3)))

#: A model forward pass: [B, C, L] -> [B, S, C, L], on the model's device.
ChunkForward = Callable[[torch.Tensor], torch.Tensor]

#: Called as chunks finish with the normalised sources [S, C, n] of a region that no later
#: chunk touches any more, and the region's first sample.
FinalRegionHook = Callable[[np.ndarray, int], None]


def allocate(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """Zeroed array; disk-backed (an anonymous temporary file) when it is very large."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if nbytes <= MEMMAP_THRESHOLD:
        return np.zeros(shape, dtype=dtype)
    handle = tempfile.TemporaryFile(prefix="stemwright-")
    handle.truncate(nbytes)
    return np.memmap(handle, dtype=dtype, mode="r+", shape=shape)


@dataclass(frozen=True)
class ChunkPlan:
    """Where the chunks of a `length`-sample signal start, and their cross-fade weight."""

    length: int
    segment_length: int
    stride: int
    offsets: tuple[int, ...]
    weight: np.ndarray  # [segment_length], float32, peak 1

    @classmethod
    def make(cls, length: int, segment_length: int, overlap: float,
             transition_power: float = 1.0) -> ChunkPlan:
        """Plan chunks of `segment_length` samples overlapping by `overlap` (0 <= overlap < 1)."""
        if not 0.0 <= overlap < 1.0:
            raise ValueError("overlap must be in [0, 1)")
        if transition_power < 1.0:
            raise ValueError("transition_power must be >= 1")
        segment_length = max(1, int(segment_length))
        stride = max(1, int((1 - overlap) * segment_length))
        # Triangle peaking mid-segment: with overlap <= 50% this is a linear cross-fade.
        half = segment_length // 2
        weight = np.concatenate([np.arange(1, half + 1),
                                 np.arange(segment_length - half, 0, -1)]).astype(np.float32)
        weight = (weight / weight.max()) ** transition_power
        return cls(length, segment_length, stride, tuple(range(0, length, stride)),
                   weight.astype(np.float32))


def padded_chunk(mix: np.ndarray, offset: int, length: int, target_length: int) -> np.ndarray:
    """`mix[:, offset:offset+length]` widened to `target_length`, centred, using real
    neighbouring audio where it exists and zeros beyond the signal's ends."""
    total = mix.shape[-1]
    delta = target_length - length
    start = offset - delta // 2
    end = start + target_length
    lo, hi = max(0, start), min(total, end)
    out = np.zeros((mix.shape[0], target_length), dtype=np.float32)
    out[:, lo - start:hi - start] = mix[:, lo:hi]
    return out


def center_trim(x: torch.Tensor, length: int) -> torch.Tensor:
    """Keep the central `length` samples of the last axis."""
    delta = x.shape[-1] - length
    if delta < 0:
        raise ValueError("model output is shorter than its chunk")
    return x[..., delta // 2: x.shape[-1] - (delta - delta // 2)]


def run_chunked(forward: ChunkForward, mix: np.ndarray, n_sources: int, plan: ChunkPlan,
                device: torch.device, valid_length: Callable[[int], int] = lambda n: n,
                out: np.ndarray | None = None, source_weights: np.ndarray | None = None,
                tracker: ProgressTracker | None = None, cancel: CancelCheck | None = None,
                batch_size: int = 1, dtype: torch.dtype = torch.float32,
                on_final: FinalRegionHook | None = None) -> np.ndarray:
    """Separate `mix` [C, T] chunk by chunk; returns [S, C, T] (added into `out` if given).

    `source_weights` [S] scales each source (bags of models); the cross-fade is normalised
    by the summed chunk weights, as demucs does. Checks `cancel` between chunks.

    `on_final(region, start)`, if given, is called after each batch of chunks with this
    pass's sources over the samples that are now final (everything before the next chunk's
    offset), normalised and weighted exactly as the returned result will be: a fresh
    [S, C, n] array, so memory stays bounded by one stride per call. It only reads the
    accumulators: the result is the same with or without it.
    """
    channels, length = mix.shape
    fresh = out is None
    if out is None:
        out = allocate((n_sources, channels, length))
    # A first pass accumulates straight into `out`; later passes (bags) need their own buffer.
    acc = out if fresh else allocate((n_sources, channels, length))
    sum_weight = np.zeros(length, dtype=np.float32)
    offsets = list(plan.offsets)
    final_start = 0  # samples before this were already reported to `on_final`
    i = 0
    while i < len(offsets):
        check_cancel(cancel)
        # Batch consecutive chunks of equal length (the last one may be shorter).
        first_len = min(plan.segment_length, length - offsets[i])
        batch = [offsets[i]]
        while (len(batch) < batch_size and i + len(batch) < len(offsets)
               and min(plan.segment_length, length - offsets[i + len(batch)]) == first_len):
            batch.append(offsets[i + len(batch)])
        target = valid_length(first_len)
        x = np.stack([padded_chunk(mix, o, first_len, target) for o in batch])
        with torch.inference_mode():
            y = forward(torch.from_numpy(x).to(device=device, dtype=dtype))
            y = center_trim(y, first_len).float().cpu().numpy()
        if y.shape[1] != n_sources:
            raise ValueError(f"model returned {y.shape[1]} sources, expected {n_sources}")
        w = plan.weight[:first_len]
        for o, chunk_out in zip(batch, y, strict=True):
            acc[..., o:o + first_len] += np.multiply(chunk_out, w, out=chunk_out)
            sum_weight[o:o + first_len] += w
        i += len(batch)
        if on_final is not None:
            final_end = offsets[i] if i < len(offsets) else length
            if final_end > final_start:
                region = acc[..., final_start:final_end] / sum_weight[final_start:final_end]
                if source_weights is not None:
                    region *= np.asarray(source_weights, dtype=np.float32)[:, None, None]
                on_final(region, final_start)
                final_start = final_end
        if tracker is not None:
            tracker.advance(len(batch))
    if sum_weight.min() <= 0:
        raise RuntimeError("chunk plan left samples uncovered")
    acc /= sum_weight
    if source_weights is not None:
        acc *= np.asarray(source_weights, dtype=np.float32)[:, None, None]
    if not fresh:
        out += acc
    return out
