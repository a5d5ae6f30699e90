"""Training losses on separated waveforms, with absent targets masked out.

Every loss takes estimates and references [B, S, C, L] and a mask [B, S] (1 where the song
has that stem, 0 where it does not) and returns per-item terms [B, S]; `masked_mean`
averages the terms where the mask is 1, so an absent stem never pulls its output towards
silence. Available (`LOSSES`), combinable as "l1+mrstft" or "l1+0.5*mrstft":

* "l1": mean absolute error on the waveforms (Demucs, the Wavenet regression model);
* "mse": mean squared error;
* "sisdr": negative scale-invariant SDR (Conv-TasNet); items whose reference is silent in
  the segment are left out (SI-SDR is undefined there);
* "sdr": negative plain SDR with a small floor, defined for silent references too;
* "mrstft": multi-resolution STFT loss, spectral convergence + log-magnitude L1 at three
  resolutions (Yamamoto et al., Parallel WaveGAN).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch

EPS = 1e-8
Terms = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def l1_terms(est: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean |est - ref| per item: [B, S, C, L] x2 -> (terms [B, S], valid [B, S])."""
    terms = (est - ref).abs().mean(dim=(-2, -1))
    return terms, torch.ones_like(terms, dtype=torch.bool)


def mse_terms(est: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (est - ref)^2 per item: -> (terms [B, S], valid [B, S])."""
    terms = (est - ref).square().mean(dim=(-2, -1))
    return terms, torch.ones_like(terms, dtype=torch.bool)


def si_sdr_terms(est: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative SI-SDR in dB per item (channels and samples as one vector); items with a
    silent reference are marked invalid: -> (terms [B, S], valid [B, S])."""
    s = ref.flatten(-2)
    e = est.flatten(-2)
    energy = s.square().sum(-1)
    valid = energy > EPS * s.shape[-1] * 1e-4
    alpha = (e * s).sum(-1, keepdim=True) / (energy.unsqueeze(-1) + EPS)
    target = alpha * s
    ratio = (target.square().sum(-1) + EPS) / ((target - e).square().sum(-1) + EPS)
    return -10 * torch.log10(ratio), valid


def sdr_terms(est: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative SDR 10 log10((|s|^2 + eps) / (|s - est|^2 + eps)), eps relative to the
    length, so silent references ask for quiet estimates: -> (terms, valid) [B, S]."""
    s = ref.flatten(-2)
    eps = 1e-6 * s.shape[-1]
    num = s.square().sum(-1) + eps
    den = (s - est.flatten(-2)).square().sum(-1) + eps
    terms = -10 * torch.log10(num / den)
    return terms, torch.ones_like(terms, dtype=torch.bool)


class MultiResolutionSTFT:
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions.

    Defaults (FFT sizes 512/1024/2048, hops 1/4 of them) suit 44.1 kHz; sizes shrink for
    segments shorter than the largest window."""

    def __init__(self, ffts: Sequence[int] = (512, 1024, 2048)) -> None:
        self.ffts = tuple(int(n) for n in ffts)
        self._windows: dict[tuple[int, torch.device], torch.Tensor] = {}

    def _window(self, n: int, device: torch.device) -> torch.Tensor:
        key = (n, device)
        if key not in self._windows:
            self._windows[key] = torch.hann_window(n, device=device)
        return self._windows[key]

    def __call__(self, est: torch.Tensor, ref: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, S, C, L] x2 -> (terms [B, S], valid [B, S])."""
        shape = est.shape[:2]
        e = est.reshape(-1, est.shape[-1]).float()
        r = ref.reshape(-1, ref.shape[-1]).float()
        total = torch.zeros(shape, device=est.device)
        ffts = [n for n in self.ffts if n <= e.shape[-1]] or [max(16, e.shape[-1] // 2)]
        for n in ffts:
            window = self._window(n, est.device)
            spec_e = torch.stft(e, n, n // 4, window=window, return_complex=True).abs()
            spec_r = torch.stft(r, n, n // 4, window=window, return_complex=True).abs()
            spec_e = spec_e.reshape(*shape, -1)
            spec_r = spec_r.reshape(*shape, -1)
            conv = (spec_r - spec_e).norm(dim=-1) / (spec_r.norm(dim=-1) + 1e-5)
            logmag = (torch.log(spec_r + 1e-5) - torch.log(spec_e + 1e-5)).abs().mean(-1)
            total = total + conv + logmag
        total = total / len(ffts)
        return total, torch.ones_like(total, dtype=torch.bool)


LOSSES: dict[str, Callable[[], Terms]] = {
    "l1": lambda: l1_terms,
    "mse": lambda: mse_terms,
    "sisdr": lambda: si_sdr_terms,
    "sdr": lambda: sdr_terms,
    "mrstft": MultiResolutionSTFT,
}


def masked_sum(terms: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of terms where mask, count): terms, mask [B, S] -> two scalars. A distributed
    run sums both over the processes before dividing (see training.py)."""
    m = mask.to(terms.dtype)
    return (terms * m).sum(), m.sum()


def masked_mean(terms: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `terms` [B, S] where `mask` [B, S] is nonzero (0 when nothing is)."""
    total, count = masked_sum(terms, mask)
    return total / count.clamp(min=1.0)


class Loss:
    """A weighted sum of named losses, e.g. Loss("l1+0.5*mrstft").

    `terms(est, ref, mask)` returns (per-item terms [B, S], effective mask [B, S]): the
    mask with the items some part cannot score (silent references for SI-SDR) removed.
    """

    def __init__(self, spec: str = "l1", stem_weights: Sequence[float] | None = None) -> None:
        self.spec = spec.replace(" ", "")
        # one factor per stem [S] on every item's term (None: all 1)
        self.stem_weights = None if stem_weights is None else torch.tensor(stem_weights)
        self.parts: list[tuple[float, str, Terms]] = []
        for part in self.spec.split("+"):
            m = re.fullmatch(r"(?:([0-9.eE-]+)\*)?([a-z0-9]+)", part)
            if not m or m.group(2) not in LOSSES:
                raise ValueError(f"unknown loss '{part}' (use {', '.join(LOSSES)}, "
                                 "combined like l1+0.5*mrstft)")
            weight = float(m.group(1)) if m.group(1) else 1.0
            self.parts.append((weight, m.group(2), LOSSES[m.group(2)]()))

    def terms(self, est: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, S, C, L] x2, mask [B, S] -> (weighted terms [B, S], mask [B, S]).

        Each item's term is the weighted sum of the parts, times its stem's weight; the
        mask keeps the items every part can score."""
        est = est.float()
        ref = ref.float()
        total, keep = None, mask > 0
        for weight, _, fn in self.parts:
            t, valid = fn(est, ref)
            total = weight * t if total is None else total + weight * t
            keep = keep & valid
        if self.stem_weights is not None:
            total = total * self.stem_weights.to(total)
        return total, keep.to(est.dtype)

    def __call__(self, est: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor
                 ) -> torch.Tensor:
        """Masked mean loss (a scalar)."""
        terms, keep = self.terms(est, ref, mask)
        return masked_mean(terms, keep)

    def __repr__(self) -> str:
        return f"Loss({self.spec!r})"


__all__ = ["LOSSES", "Loss", "MultiResolutionSTFT", "l1_terms", "masked_mean", "masked_sum",
           "mse_terms", "sdr_terms", "si_sdr_terms"]
