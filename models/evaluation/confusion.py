"""Where each true stem's energy goes: the confusion matrix of a mask separator.

A mask model computes one mask per estimated stem from the mixture's STFT, M_j [C, F, T],
and its estimate is est_j = iSTFT(M_j X) with X = sum_i S_i. The map is linear in X, so
est_j is exactly sum_i iSTFT(M_j S_i): true stem i's part of estimate j is M_j S_i. The
confusion matrix holds, per true stem i, the share of its masked energy that lands in each
estimated stem j:

    share[i, j] = sum |M_j S_i|^2 / sum_j' sum |M_j' S_i|^2           (rows sum to one)

A perfect separator has the identity; a model that hears saxophones as voices puts wind's
energy in the vocals column. Only models that expose `stft` and `stft_masks` (MaskNet,
BandSplitNet) can be attributed exactly; for others the question has no linear answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn


def has_masks(model: nn.Module) -> bool:
    """Whether `model` exposes `stft` and `stft_masks`, so its confusion is exact."""
    return callable(getattr(model, "stft", None)) and \
        callable(getattr(model, "stft_masks", None))


def stem_energy_shares(model: nn.Module, stems: Mapping[str, np.ndarray],
                       frames: int = 2048) -> dict[str, dict[str, float]]:
    """{true stem: {estimated stem: share of its energy}} for one song.

    `stems`: the true stems, float32 [C, T] each at the model's rate (their sum is the
    mixture). The song is processed in blocks of `frames` STFT frames to bound memory.
    """
    if not has_masks(model):
        raise TypeError(f"{type(model).__name__} has no masks to attribute energy with")
    names = list(stems)
    sources = list(model.sources)
    mix = sum(np.asarray(s, dtype=np.float32) for s in stems.values())
    model.eval()
    energy = np.zeros((len(names), len(sources)), dtype=np.float64)
    with torch.no_grad():
        z = model.stft(torch.from_numpy(np.ascontiguousarray(mix))[None])  # [1, C, F, T]
        parts = [model.stft(torch.from_numpy(np.ascontiguousarray(stems[n],
                                                                  dtype=np.float32))[None])
                 for n in names]
        for t0 in range(0, z.shape[-1], frames):
            # the masks see the whole song's context only inside the block: blocks are long
            m = model.stft_masks(z[..., t0:t0 + frames])[0]  # [S, C, F, t]
            for i, p in enumerate(parts):
                mag2 = p[0, ..., t0:t0 + frames].abs().square()  # [C, F, t]
                energy[i] += (m.square() * mag2).sum(dim=(1, 2, 3)).double().numpy()
    out: dict[str, dict[str, float]] = {}
    for i, n in enumerate(names):
        total = energy[i].sum()
        out[n] = {s: float(energy[i, j] / total) if total > 0 else float("nan")
                  for j, s in enumerate(sources)}
    return out


def mean_shares(per_song: Sequence[Mapping[str, Mapping[str, float]]]
                ) -> dict[str, dict[str, float]]:
    """The mean over songs of each row (a true stem absent from a song does not count)."""
    rows: dict[str, list[Mapping[str, float]]] = {}
    for song in per_song:
        for stem, row in song.items():
            if all(np.isfinite(v) for v in row.values()):
                rows.setdefault(stem, []).append(row)
    return {stem: {j: float(np.mean([r[j] for r in rs])) for j in rs[0]}
            for stem, rs in rows.items()}


def markdown_table(shares: Mapping[str, Mapping[str, float]]) -> str:
    """The matrix as a markdown table of percentages (rows: true stems)."""
    cols = list(next(iter(shares.values())))
    lines = ["| true \\ estimated | " + " | ".join(cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for stem, row in shares.items():
        lines.append(f"| {stem} | " + " | ".join(f"{100 * row[c]:.0f}%" for c in cols) + " |")
    return "\n".join(lines)


__all__ = ["has_masks", "markdown_table", "mean_shares", "stem_energy_shares"]
