"""SCNet (Sparse Compression Network, Tong et al. 2024), laid out like the community
checkpoints.

SCNet is a U-Net over the complex spectrogram whose encoder splits the frequency axis into
three bands (low, mid, high) and compresses each with its own stride ("sparse"
down-sampling), with a dual-path LSTM stack at the bottleneck. The published weights
(starrytong's, ZFTurbo's SCNet / SCNet large on MUSDB18) are plain state dicts of
`models/scnet/scnet.py` in ZFTurbo's Music-Source-Separation-Training (MSST), configured by
the `model:` section of its YAML file (`sources`, `dims`, `nfft`, `band_SR`, ...). This
module keeps that code's parameter names, shapes and forward computation for inference, so
those files load with `strict=True` and separate identically (tests/test_scnet.py compares
with the reference's output).

    mix [B, C, L] -> right-pad so the STFT has an even frame count -> STFT (rectangular
    window, center, `normalized`) -> [B, 2C (channel-major re, im), F, T]
    encoder, per level: split F in three bands, strided conv per band (F shrinks), per band
    a conv module over T, GELU, bands joined along F, 3x3 conv; the joined bands kept as skip
    separation: dual-path BiLSTMs (along F, then T), the feature map alternately taken to
    and back from the frequency domain of T (rfft / irfft, 'ortho')
    decoder, per level: + skip, GLU conv, per band transposed conv back to the band's bins
    -> [B, S * 2C, F, T] -> iSTFT -> [B, S, C, L]

Unlike the RoFormers, SCNet's network outputs the separated spectrograms themselves, not
masks.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError

#: MSST's defaults (`configs/config_musdb18_scnet.yaml`, the paper's small SCNet).
DEFAULT_SOURCES: tuple[str, ...] = ("drums", "bass", "other", "vocals")


class Swish(nn.Module):
    """x * sigmoid(x), written out (not F.silu) to round exactly as the reference does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x.sigmoid()


def _conv_layer(channels: int, hidden: int, kernel: int) -> nn.Sequential:
    """One residual branch of a ConvolutionModule (state dict indices 0-6 as published)."""
    pad = kernel // 2
    return nn.Sequential(
        nn.GroupNorm(1, channels),
        nn.Conv1d(channels, hidden * 2, kernel, padding=pad),
        nn.GLU(dim=1),
        nn.Conv1d(hidden, hidden, kernel, padding=pad, groups=hidden),  # depthwise
        nn.GroupNorm(1, hidden),
        Swish(),
        nn.Conv1d(hidden, channels, 1),
    )


class ConvolutionModule(nn.Module):
    """`depth` residual conv branches over time: [N, C, T] -> [N, C, T]."""

    def __init__(self, channels: int, depth: int = 2, compress: float = 4,
                 kernel: int = 3) -> None:
        super().__init__()
        hidden = int(channels / compress)
        self.layers = nn.ModuleList(_conv_layer(channels, hidden, kernel)
                                    for _ in range(abs(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = x + layer(x)
        return x


def band_edges(n_freqs: int, fractions: Sequence[float]) -> list[tuple[int, int]]:
    """[start, end) bins of the low, mid and high bands of `n_freqs` bins (MSST's rounding:
    ceil of n * low, ceil of n * (low + mid))."""
    low, mid = fractions[0], fractions[1]
    a = math.ceil(n_freqs * low)
    b = math.ceil(n_freqs * (low + mid))
    return [(0, a), (a, b), (b, n_freqs)]


class SDLayer(nn.Module):
    """Sparse down-sampling: each band padded along F, then a (kernel, 1) conv of stride
    (stride, 1). [B, Cin, F, T] -> three [B, Cout, f_band, T], and the bands' input widths."""

    def __init__(self, channels_in: int, channels_out: int, fractions: Sequence[float],
                 strides: Sequence[int], kernels: Sequence[int]) -> None:
        super().__init__()
        self.fractions = tuple(fractions)
        self.strides = tuple(strides)
        self.kernels = tuple(kernels)
        self.convs = nn.ModuleList(
            nn.Conv2d(channels_in, channels_out, (k, 1), (s, 1))
            for s, k in zip(self.strides, self.kernels, strict=True))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[int]]:
        outputs, widths = [], []
        for conv, stride, kernel, (a, b) in zip(self.convs, self.strides, self.kernels,
                                                band_edges(x.shape[2], self.fractions),
                                                strict=True):
            band = x[:, :, a:b]
            n = b - a
            # stride 1: 'same' padding; otherwise up to a whole number of strides
            total = kernel - 1 if stride == 1 else (stride - n % stride) % stride
            band = F.pad(band, (0, 0, total // 2, total - total // 2))
            outputs.append(conv(band))
            widths.append(n)
        return outputs, widths


class SULayer(nn.Module):
    """Sparse up-sampling: each band's rows through a transposed (kernel, 1) conv, trimmed
    symmetrically back to the band's original width. [B, Cin, F', T] -> [B, Cout, F, T]."""

    def __init__(self, channels_in: int, channels_out: int, strides: Sequence[int],
                 kernels: Sequence[int]) -> None:
        super().__init__()
        self.convtrs = nn.ModuleList(
            nn.ConvTranspose2d(channels_in, channels_out, (k, 1), (s, 1))
            for s, k in zip(strides, kernels, strict=True))

    def forward(self, x: torch.Tensor, lengths: Sequence[int],
                widths: Sequence[int]) -> torch.Tensor:
        outputs = []
        start = 0
        for i, convtr in enumerate(self.convtrs):
            stop = start + lengths[i] if i < len(self.convtrs) - 1 else x.shape[2]
            out = convtr(x[:, :, start:stop])
            cut = abs(widths[i] - out.shape[2]) // 2
            outputs.append(out[:, :, cut:cut + widths[i]])
            start = stop
        return torch.cat(outputs, dim=2)


class SDBlock(nn.Module):
    """One encoder level: sparse down-sampling, a conv module per band (along T), GELU,
    bands joined along F, then a square conv. Returns (output, skip, band lengths after
    down-sampling, band widths before)."""

    def __init__(self, channels_in: int, channels_out: int, fractions: Sequence[float],
                 strides: Sequence[int], kernels: Sequence[int], depths: Sequence[int],
                 compress: float, conv_kernel: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.SDlayer = SDLayer(channels_in, channels_out, fractions, strides, kernels)
        self.conv_modules = nn.ModuleList(
            ConvolutionModule(channels_out, d, compress, conv_kernel) for d in depths)
        self.globalconv = nn.Conv2d(channels_out, channels_out, kernel_size, 1,
                                    (kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, list[int], list[int]]:
        bands, widths = self.SDlayer(x)
        processed = []
        for conv, band in zip(self.conv_modules, bands, strict=True):
            b, c, f, t = band.shape
            rows = band.permute(0, 2, 1, 3).reshape(b * f, c, t)  # each bin's time series
            rows = conv(rows).view(b, f, c, t).permute(0, 2, 1, 3)
            processed.append(F.gelu(rows))
        lengths = [band.shape[2] for band in processed]
        skip = torch.cat(processed, dim=2)
        return self.globalconv(skip), skip, lengths, widths


class FusionLayer(nn.Module):
    """Decoder input: (x + skip) duplicated along channels -> 3x3 conv -> GLU."""

    def __init__(self, channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels * 2, channels * 2, kernel_size, stride=stride,
                              padding=padding)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + skip
        return F.glu(self.conv(x.repeat(1, 2, 1, 1)), dim=1)


class DualPathRNN(nn.Module):
    """A BiLSTM along F (for every frame), then one along T (for every bin), each after a
    GroupNorm, projected back to `d_model` and added: [B, C, F, T] -> [B, C, F, T]."""

    def __init__(self, d_model: int, expand: int = 1) -> None:
        super().__init__()
        hidden = d_model * expand
        self.lstm_layers = nn.ModuleList(
            nn.LSTM(d_model, hidden, num_layers=1, bidirectional=True, batch_first=True)
            for _ in range(2))
        self.linear_layers = nn.ModuleList(nn.Linear(hidden * 2, d_model) for _ in range(2))
        self.norm_layers = nn.ModuleList(nn.GroupNorm(1, d_model) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        y = self.norm_layers[0](x).permute(0, 3, 2, 1).reshape(b * t, f, c)  # along F
        y = self.linear_layers[0](self.lstm_layers[0](y)[0])
        x = x + y.view(b, t, f, c).permute(0, 3, 2, 1)
        y = self.norm_layers[1](x).permute(0, 2, 3, 1).reshape(b * f, t, c)  # along T
        y = self.linear_layers[1](self.lstm_layers[1](y)[0])
        return x + y.view(b, f, t, c).permute(0, 3, 1, 2)


def _to_time_spectrum(x: torch.Tensor) -> torch.Tensor:
    """[B, C, F, T] -> [B, 2C, F, T // 2 + 1]: rfft along T ('ortho'), real then imag."""
    spec = torch.fft.rfft(x.float(), dim=3, norm="ortho")
    return torch.cat([spec.real, spec.imag], dim=1)


def _from_time_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `_to_time_spectrum` for an even frame count: [B, 2C, F, T'] -> [B, C, F,
    2(T' - 1)]."""
    x = x.float()
    half = x.shape[1] // 2
    return torch.fft.irfft(torch.complex(x[:, :half], x[:, half:]), dim=3, norm="ortho")


class SeparationNet(nn.Module):
    """`num_layers` dual-path RNNs; after each, the map goes to the frequency domain of T
    (even layers) or back (odd layers), so odd layers see twice the channels."""

    def __init__(self, channels: int, expand: int = 1, num_layers: int = 6) -> None:
        super().__init__()
        self.dp_modules = nn.ModuleList(
            DualPathRNN(channels * (2 if i % 2 else 1), expand) for i in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.dp_modules):
            x = layer(x)
            x = _from_time_spectrum(x) if i % 2 else _to_time_spectrum(x)
        return x


def _check(sources: Sequence[str], audio_channels: int, dims: Sequence[int], nfft: int,
           hop_size: int, win_size: int, band_SR: Sequence[float],
           band_stride: Sequence[int], band_kernel: Sequence[int], conv_depths: Sequence[int],
           compress: float, conv_kernel: int, num_dplayer: int, expand: int) -> None:
    """ValueError (one line) for settings SCNet cannot be built from or run with."""
    def whole(value: Any, lo: int, hi: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi

    def number(value: Any) -> bool:
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and math.isfinite(value))

    if (isinstance(sources, str) or not 1 <= len(sources) <= 64
            or not all(isinstance(s, str) and s for s in sources)
            or len(set(sources)) != len(sources)):
        raise ValueError("sources must be a list of 1-64 distinct names")
    if not whole(audio_channels, 1, 8):
        raise ValueError("audio_channels must be a whole number from 1 to 8")
    if not 2 <= len(dims) <= 16 or not all(whole(d, 1, 4096) for d in dims):
        raise ValueError("dims must be 2-16 channel counts from 1 to 4096")
    if dims[0] != 2 * audio_channels:
        raise ValueError(f"dims must start with 2 x audio_channels = {2 * audio_channels} "
                         f"(real and imaginary part of each channel), not {dims[0]}")
    if not whole(nfft, 16, 65536) or not whole(win_size, 2, nfft) or not whole(hop_size, 1,
                                                                                 win_size):
        raise ValueError("nfft must be 16-65536, win_size 2-nfft and hop_size 1-win_size")
    if any(len(v) != 3 for v in (band_SR, band_stride, band_kernel, conv_depths)):
        raise ValueError("band_SR, band_stride, band_kernel and conv_depths need three "
                         "values each (low, mid, high band)")
    if not all(number(r) and r > 0 for r in band_SR) or not band_SR[0] + band_SR[1] < 1:
        raise ValueError("band_SR must be three positive fractions of the bins (low, mid, "
                         "high), low + mid below 1")
    for stride, kernel in zip(band_stride, band_kernel, strict=True):
        if not whole(stride, 1, 256) or not whole(kernel, 1, 256) or (stride > 1
                                                                       and kernel < stride):
            raise ValueError("band_stride must be 1-256 and band_kernel 1-256, at least the "
                             "band's stride where the stride is above 1")
    if not all(whole(d, 0, 64) for d in conv_depths):
        raise ValueError("conv_depths must be whole numbers from 0 to 64")
    if not number(compress) or compress <= 0 or any(int(d / compress) < 1 for d in dims[1:]):
        raise ValueError("compress must be positive and leave every level at least one "
                         "hidden channel")
    if not whole(conv_kernel, 1, 63) or conv_kernel % 2 == 0:
        raise ValueError("conv_kernel must be an odd number from 1 to 63")
    if not whole(num_dplayer, 0, 64) or num_dplayer % 2:
        raise ValueError("num_dplayer must be an even number from 0 to 64 (every other "
                         "layer returns from the time-frequency domain)")
    if not whole(expand, 1, 64):
        raise ValueError("expand must be a whole number from 1 to 64")


class SCNet(nn.Module):
    """SCNet with MSST's constructor arguments (its YAML `model:` keys) and state dict."""

    def __init__(self, sources: Sequence[str] = DEFAULT_SOURCES, audio_channels: int = 2,
                 dims: Sequence[int] = (4, 32, 64, 128), nfft: int = 4096,
                 hop_size: int = 1024, win_size: int = 4096, normalized: bool = True,
                 band_SR: Sequence[float] = (0.175, 0.392, 0.433),
                 band_stride: Sequence[int] = (1, 4, 16),
                 band_kernel: Sequence[int] = (3, 4, 16),
                 conv_depths: Sequence[int] = (3, 2, 1), compress: float = 4,
                 conv_kernel: int = 3, num_dplayer: int = 6, expand: int = 1) -> None:
        super().__init__()
        _check(sources, audio_channels, dims, nfft, hop_size, win_size, band_SR, band_stride,
               band_kernel, conv_depths, compress, conv_kernel, num_dplayer, expand)
        self.sources = list(sources)
        self.audio_channels = audio_channels
        self.dims = list(dims)
        self.hop_length = hop_size
        self.stft_kwargs = dict(n_fft=nfft, hop_length=hop_size, win_length=win_size,
                                center=True, normalized=bool(normalized))
        self.win_size = win_size
        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in range(len(dims) - 1):
            self.encoder.append(SDBlock(dims[i], dims[i + 1], band_SR, band_stride,
                                        band_kernel, conv_depths, compress, conv_kernel))
            out = dims[i] * len(self.sources) if i == 0 else dims[i]
            # the deepest level first: decoder[0] undoes encoder[-1]
            self.decoder.insert(0, nn.Sequential(
                FusionLayer(dims[i + 1]), SULayer(dims[i + 1], out, band_stride, band_kernel)))
        self.separation_net = SeparationNet(dims[-1], expand, num_dplayer)

    @property
    def num_stems(self) -> int:
        return len(self.sources)

    def _padding(self, length: int) -> int:
        """Right padding (1 hop to 2 hops) giving a whole, odd number of hops, i.e. an even
        STFT frame count (the separation net's rfft / irfft round trip needs it)."""
        hop = self.hop_length
        pad = hop - length % hop
        if ((length + pad) // hop) % 2 == 0:
            pad += hop
        return pad

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """[B, C, L] -> [B, S, C, L]."""
        if mix.ndim != 3 or mix.shape[1] != self.audio_channels:
            raise ValueError(f"expected [batch, {self.audio_channels}, samples] audio, got "
                             f"{tuple(mix.shape)}")
        b, c, length = mix.shape
        pad = self._padding(length)
        # STFT and iSTFT in float32 also under fp16 autocast (torch does not cast them; the
        # decoder's half output would otherwise go to a ComplexHalf iSTFT). A no-op in
        # float32, where this is the reference's computation; its window is rectangular.
        x = F.pad(mix.float(), (0, pad)).reshape(b * c, -1)
        window = torch.ones(self.win_size, device=x.device)
        spec = torch.view_as_real(torch.stft(x, **self.stft_kwargs, window=window,
                                             return_complex=True))  # [B*C, F, T, 2]
        n_freqs, frames = spec.shape[1], spec.shape[2]
        x = spec.permute(0, 3, 1, 2).reshape(b, c * 2, n_freqs, frames)
        skips, lengths, widths = [], [], []
        for block in self.encoder:
            x, skip, band_lengths, band_widths = block(x)
            skips.append(skip)
            lengths.append(band_lengths)
            widths.append(band_widths)
        x = self.separation_net(x)
        for fusion, up in self.decoder:
            x = up(fusion(x, skips.pop()), lengths.pop(), widths.pop())
        # [B, S * C * 2, F, T], channels ordered (source, channel, re/im)
        x = x.float().reshape(-1, 2, n_freqs, frames).permute(0, 2, 3, 1).contiguous()
        audio = torch.istft(torch.view_as_complex(x), **self.stft_kwargs, window=window)
        return audio.reshape(b, len(self.sources), c, -1)[..., :length]


#: The `model:` keys of an MSST SCNet config (SCNet's constructor arguments).
SCNET_KEYS: frozenset[str] = frozenset((
    "sources", "audio_channels", "dims", "nfft", "hop_size", "win_size", "normalized",
    "band_SR", "band_stride", "band_kernel", "conv_depths", "compress", "conv_kernel",
    "num_dplayer", "expand"))


def check_scnet_config(model_section: Mapping[str, Any], name: str = "config") -> dict:
    """The validated constructor arguments of an MSST SCNet YAML `model:` section (lists
    kept as lists), without building anything; ModelError (one line, naming `name`) for an
    unknown key (SCNet Tran's `tran_*` named as such) or a bad value."""
    if not isinstance(model_section, Mapping):
        raise ModelError(f"{name}: the 'model:' section must be a mapping of settings")
    unknown = sorted(str(k) for k in model_section if k not in SCNET_KEYS)
    if any(k.startswith("tran_") for k in unknown):
        raise ModelError(f"{name}: an SCNet Tran config (tran_* settings); only plain SCNet "
                         "(MSST model type 'scnet') is supported")
    if unknown:
        raise ModelError(f"{name}: SCNet has no setting {', '.join(unknown)[:120]}; the "
                         "config was made for another model")
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in model_section.items()}
    full = {k: p.default for k, p in inspect.signature(SCNet).parameters.items()} | kwargs
    try:
        if not isinstance(full["normalized"], bool):
            raise ValueError("normalized must be true or false")
        for key in ("sources", "dims", "band_SR", "band_stride", "band_kernel",
                    "conv_depths"):
            if not isinstance(full[key], list | tuple):
                raise ValueError(f"{key} must be a list")
        _check(*(full[k] for k in ("sources", "audio_channels", "dims", "nfft", "hop_size",
                                   "win_size", "band_SR", "band_stride", "band_kernel",
                                   "conv_depths", "compress", "conv_kernel", "num_dplayer",
                                   "expand")))
    except ValueError as exc:
        raise ModelError(f"{name}: invalid SCNet setting: {exc}") from None
    return kwargs


def scnet_from_config(model_section: Mapping[str, Any], name: str = "config") -> SCNet:
    """SCNet built from an MSST YAML `model:` section (random weights; load a checkpoint's
    state dict into it); ModelError (one line) on a bad section."""
    return SCNet(**check_scnet_config(model_section, name))


__all__ = ["DEFAULT_SOURCES", "SCNET_KEYS", "SCNet", "band_edges", "check_scnet_config",
           "scnet_from_config"]
