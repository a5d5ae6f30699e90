"""BandSplitNet: a small band-split mask network, in the family of BSRNN and BS-RoFormer,
sized to separate fast on a laptop CPU.

    mix [B, C, L] -> STFT X [B, C, F, T]                     (hann, n_fft 2048, hop 1024)
    compress  Z = X |X|^(p - 1)   (p = 0.3)                  [B, C, F, T] complex
    split     K = 32 bands on the mel scale; band k's bins of every channel, (re, im)
              -> LayerNorm -> Linear(2 C w_k -> D), its own per band
              + a learned band embedding                                 [B, D, K, T]
    `layers` x GridBlock on the band x frame grid (weights shared by all bands):
      frames: GroupNorm -> 1x1 conv (D -> 2D) -> GELU -> depthwise conv along frames
              (k=3, dilation 1, 2, 4, 8, ...) -> GELU -> 1x1 conv (2D -> D), residual
      bands:  the same along bands (k=3, dilation 1, 2, 4, ...), residual
    masks     per band: LayerNorm -> Linear(D -> 2D) -> GELU -> Linear(2D -> S C w_k)
              -> mask logits [B, S, C, F, T]; softmax over the S stems
    sources   iSTFT(mask * X)                                            [B, S, C, L]

Band-split models lead today's MUSDB18 tables (BSRNN, BS-RoFormer, SCNet): each band gets
its own input and output projection, so the low bands, where bass and kick sit a few bins
apart, get as many features as the wide bands at the top, and one sequence model shared
by every band then looks along time and across bands in turn. BSRNN does both with BiLSTMs
and BS-RoFormer with attention; both cost far more than the CPU budget (3 minutes of
stereo in under 9 s on 2 cores). Here both steps are dilated depthwise-separable
convolutions, which run in parallel over the whole grid; the receptive field in time is
finite, so chunked inference matches whole-song output closely. The masks are real and
sum to one over the stems (as in MaskNet), so the stems add up to the mix exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..stems import STEM_IDS
from .masknet import MaskNet


def band_edges(bins: int, bands: int, samplerate: int, min_width: int = 2) -> list[int]:
    """Bin edges [0, e_1, ..., bins] of `bands` bands evenly spaced on the mel scale,
    each at least `min_width` bins wide (fewer bands when the low ones would be too narrow).
    """
    if bands < 1 or bins < bands * min_width:
        raise ValueError(f"cannot split {bins} bins into {bands} bands of >= {min_width}")

    def mel(hz: float) -> float:
        return 2595.0 * math.log10(1.0 + hz / 700.0)

    top = mel(samplerate / 2)
    hz = [700.0 * (10 ** (top * i / bands / 2595.0) - 1.0) for i in range(bands + 1)]
    edges = [0]
    for f in hz[1:-1]:
        e = int(round(f / (samplerate / 2) * (bins - 1)))
        if e - edges[-1] >= min_width and bins - e >= min_width:
            edges.append(e)
    edges.append(bins)
    return edges


class GridBlock(nn.Module):
    """Two residual depthwise-separable conv steps on the band x frame grid, one along
    frames (dilated) and one along bands: [B, D, K, T] -> [B, D, K, T]."""

    def __init__(self, dim: int, time_dilation: int, band_dilation: int) -> None:
        super().__init__()
        self.time = self._step(dim, (1, 3), (0, time_dilation), (1, time_dilation))
        self.band = self._step(dim, (3, 1), (band_dilation, 0), (band_dilation, 1))

    @staticmethod
    def _step(dim: int, kernel: tuple[int, int], padding: tuple[int, int],
              dilation: tuple[int, int]) -> nn.Sequential:
        return nn.Sequential(
            nn.GroupNorm(1, dim), nn.Conv2d(dim, 2 * dim, 1), nn.GELU(),
            nn.Conv2d(2 * dim, 2 * dim, kernel, padding=padding, dilation=dilation,
                      groups=2 * dim), nn.GELU(), nn.Conv2d(2 * dim, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.time(x)
        return x + self.band(x)


class BandSplitNet(nn.Module):
    """Six-stem (or any `sources`) band-split soft-mask separator; see the module docstring.

    mix [B, C, L] -> sources [B, S, C, L], any length L.
    """

    def __init__(self, sources: Sequence[str] = STEM_IDS, audio_channels: int = 2,
                 n_fft: int = 2048, hop: int = 1024, bands: int = 32, dim: int = 48,
                 layers: int = 6, dilation_cycle: int = 4, band_dilation_cycle: int = 3,
                 compress: float = 0.3, samplerate: int = 44100) -> None:
        super().__init__()
        if n_fft % 2 or hop <= 0 or hop > n_fft:
            raise ValueError("n_fft must be even and 0 < hop <= n_fft")
        self.sources = list(sources)
        self.audio_channels = audio_channels
        self.samplerate = samplerate
        self.n_fft, self.hop = n_fft, hop
        self.bins = n_fft // 2 + 1
        self.compress = compress
        self.edges = band_edges(self.bins, bands, samplerate)
        self.widths = [b - a for a, b in zip(self.edges[:-1], self.edges[1:], strict=True)]
        self.dilations = [2 ** (i % dilation_cycle) for i in range(layers)]
        band_dilations = [2 ** (i % band_dilation_cycle) for i in range(layers)]
        # on the CPU even under a meta-device context (checkpoint validation): a meta
        # hann_window goes through torch._refs, which imports torch._dynamo (1-2 s)
        self.register_buffer("window", torch.hann_window(n_fft, device="cpu"),
                             persistent=False)
        s, c, k = len(self.sources), audio_channels, len(self.widths)
        self.split_norm = nn.ModuleList(nn.LayerNorm(2 * c * w) for w in self.widths)
        self.split = nn.ModuleList(nn.Linear(2 * c * w, dim) for w in self.widths)
        self.band_embedding = nn.Parameter(torch.zeros(dim, k, 1))
        self.blocks = nn.ModuleList(GridBlock(dim, d, e) for d, e in
                                    zip(self.dilations, band_dilations, strict=True))
        self.head_norm = nn.LayerNorm(dim)
        self.head = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, s * c * w))
            for w in self.widths)
        for h in self.head:  # start from equal masks (each stem 1/S of the mix)
            nn.init.zeros_(h[-1].weight)
            nn.init.zeros_(h[-1].bias)

    @property
    def receptive_field(self) -> int:
        """Input samples one output sample depends on."""
        frames = 1 + 2 * sum(self.dilations)
        return (frames - 1) * self.hop + self.n_fft

    # the STFT, its inverse and the masked forward pass are MaskNet's (the same attributes:
    # n_fft, hop, window; forward calls `stft_masks`)
    valid_length = MaskNet.valid_length
    stft = MaskNet.stft
    istft = MaskNet.istft
    forward = MaskNet.forward

    def stft_masks(self, z: torch.Tensor) -> torch.Tensor:
        """complex X [B, C, F, T] -> masks [B, S, C, F, T] (as MaskNet's)."""
        return self.masks(z)

    def masks(self, z: torch.Tensor) -> torch.Tensor:
        """complex X [B, C, F, T] -> masks [B, S, C, F, T] that sum to one over S."""
        b, c, f, t = z.shape
        s = len(self.sources)
        mag = z.abs()
        zc = z * (mag.clamp_min(1e-8) ** (self.compress - 1.0))
        feats = torch.view_as_real(zc).permute(0, 3, 1, 4, 2)  # [B, T, C, 2, F]
        bands = []
        for i, (a, e) in enumerate(zip(self.edges[:-1], self.edges[1:], strict=True)):
            x = feats[..., a:e].reshape(b, t, -1)  # [B, T, C*2*w]
            bands.append(self.split[i](self.split_norm[i](x)))
        h = torch.stack(bands, 1).permute(0, 3, 1, 2) + self.band_embedding  # [B, D, K, T]
        for block in self.blocks:
            h = block(h)
        h = self.head_norm(h.permute(0, 3, 2, 1))  # [B, T, K, D]
        logits = z.real.new_empty(b, t, s, c, f)
        for i, (a, e) in enumerate(zip(self.edges[:-1], self.edges[1:], strict=True)):
            logits[..., a:e] = self.head[i](h[:, :, i]).view(b, t, s, c, e - a)
        return torch.softmax(logits, dim=2).permute(0, 2, 3, 4, 1)


__all__ = ["BandSplitNet", "GridBlock", "band_edges"]
