"""MDX23C: the TFC-TDF v3 U-Net, laid out exactly like the community checkpoints.

Kim and Kim's TFC-TDF U-Net (KUIELab), third version, as it won the Sound Demixing
Challenge 2023 ("MDX23C"). UVR, python-audio-separator and ZFTurbo's
Music-Source-Separation-Training (MSST) run it from `models/mdx23c_tfc_tdf_v3.py`, whose
`TFC_TDF_net(config)` reads the whole YAML config; its checkpoints are plain state dicts.
`TFCTDFNet` here takes the same settings as keyword arguments (see `roformer_backend`,
which reads them from the YAML) and reproduces that code's parameter names, shapes and
forward computation for inference, so those files load with `strict=True` and separate
identically (tests/test_mdx23c.py compares with the reference's output).

    mix [B, 2, L] -> STFT (hann, center), first dim_f bins, (re, im) per channel
    -> [B, 4, dim_f, T] -> sub-bands stacked as channels [B, 4k, dim_f/k, T]
    -> 1x1 conv -> [B, c, T, F]; U-Net: num_scales x (TFC-TDF blocks, strided conv),
    bottleneck, num_scales x (transposed conv, skip concat, TFC-TDF blocks)
    -> times the first conv's output -> 1x1 convs over (mix, features)
    -> [B, S, 4, dim_f, T] -> bins above dim_f zeroed, iSTFT -> [B, S, 2, L]

The network takes whole chunks of `valid_length` samples (T frames a multiple of
scale[0] ** num_scales); another length is zero-padded to the next one and cut back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Normalisations MSST's `get_norm` knows ("GroupNorm<groups>" too); others mean none.
NORMS = ("BatchNorm", "InstanceNorm", "GroupNorm")


def _norm_factory(norm: str) -> Callable[[int], nn.Module]:
    """A maker of the configured normalisation layer for `c` channels."""
    if norm == "BatchNorm":
        return nn.BatchNorm2d
    if norm == "InstanceNorm":
        return lambda c: nn.InstanceNorm2d(c, affine=True)
    if "GroupNorm" in norm:
        groups = int(norm.replace("GroupNorm", ""))
        return lambda c: nn.GroupNorm(num_groups=groups, num_channels=c)
    return lambda c: nn.Identity()


def _activation(act: str) -> nn.Module:
    """'gelu', 'relu' or 'elu<alpha>' (e.g. 'elu1.0'), as in MSST's configs."""
    if act == "gelu":
        return nn.GELU()
    if act == "relu":
        return nn.ReLU()
    if act.startswith("elu"):
        return nn.ELU(float(act[3:]))
    raise ValueError(f"unknown activation {act[:40]!r} (gelu, relu or elu<alpha>)")


def _unit(norm: Callable[[int], nn.Module], act: nn.Module, channels: int,
          layer: nn.Module) -> nn.Sequential:
    """norm -> activation -> layer (indices 0, 1, 2 as in the checkpoints)."""
    return nn.Sequential(norm(channels), act, layer)


class TFCTDFBlock(nn.Module):
    """One residual block: a 3x3 conv (time-frequency convolution), a bottlenecked
    linear map along frequency (time-distributed fully connected), a second 3x3 conv,
    and a 1x1 shortcut. x [B, in_c, T, F] -> [B, c, T, F]."""

    def __init__(self, in_c: int, c: int, f: int, bottleneck: int,
                 norm: Callable[[int], nn.Module], act: nn.Module) -> None:
        super().__init__()
        self.tfc1 = _unit(norm, act, in_c, nn.Conv2d(in_c, c, 3, 1, 1, bias=False))
        self.tdf = nn.Sequential(norm(c), act, nn.Linear(f, f // bottleneck, bias=False),
                                 norm(c), act, nn.Linear(f // bottleneck, f, bias=False))
        self.tfc2 = _unit(norm, act, c, nn.Conv2d(c, c, 3, 1, 1, bias=False))
        self.shortcut = nn.Conv2d(in_c, c, 1, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.shortcut(x)
        x = self.tfc1(x)
        x = x + self.tdf(x)
        return self.tfc2(x) + skip


class TFCTDF(nn.Module):
    """`count` TFC-TDF blocks in a row (state dict: `blocks.<i>.*`)."""

    def __init__(self, in_c: int, c: int, count: int, f: int, bottleneck: int,
                 norm: Callable[[int], nn.Module], act: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TFCTDFBlock(in_c if i == 0 else c, c, f, bottleneck, norm, act)
            for i in range(count))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class _Rescale(nn.Module):
    """norm -> activation -> strided (transposed) conv by `scale` (state dict: `conv.*`)."""

    def __init__(self, layer: nn.Module, in_c: int, norm: Callable[[int], nn.Module],
                 act: nn.Module) -> None:
        super().__init__()
        self.conv = _unit(norm, act, in_c, layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Level(nn.Module):
    """One encoder level (`tfc_tdf`, `downscale`) or decoder level (`upscale`,
    `tfc_tdf`): a bare container, so the keys are the checkpoints'."""


class TFCTDFNet(nn.Module):
    """MSST's `TFC_TDF_net` (MDX23C): mix [B, 2, L] -> sources [B, num_stems, 2, L].

    The settings are the YAML's `model:` section (num_channels is the first level's
    width) plus, from `audio:`, n_fft, hop_length, dim_f (the STFT bins kept) and
    audio_channels; num_stems is the number of outputs (one with a target_instrument).
    """

    def __init__(self, *, num_subbands: int, num_scales: int, scale: Sequence[int],
                 num_blocks_per_scale: int, num_channels: int, growth: int,
                 bottleneck_factor: int, n_fft: int, hop_length: int, dim_f: int,
                 num_stems: int, norm: str = "InstanceNorm", act: str = "gelu",
                 audio_channels: int = 2) -> None:
        super().__init__()
        if audio_channels != 2:
            raise ValueError("MDX23C separates stereo (audio num_channels 2) only")
        scale = tuple(scale)
        if len(scale) != 2 or min(scale) < 1:
            raise ValueError("scale must be two positive whole numbers (time, frequency)")
        if min(num_subbands, num_scales, num_blocks_per_scale, num_channels,
               bottleneck_factor, n_fft, hop_length, dim_f, num_stems) < 1 or growth < 0:
            raise ValueError("sizes must be positive")
        if dim_f > n_fft // 2 + 1:
            raise ValueError(f"dim_f {dim_f} exceeds the {n_fft // 2 + 1} bins of n_fft "
                             f"{n_fft}")
        if dim_f % (num_subbands * scale[1] ** num_scales):
            raise ValueError(f"dim_f {dim_f} is not divisible by num_subbands x "
                             f"scale[1]^num_scales = {num_subbands * scale[1] ** num_scales}")
        self.num_subbands = num_subbands
        self.num_stems = num_stems
        self.n_fft, self.hop_length, self.dim_f = n_fft, hop_length, dim_f
        self.frames_unit = scale[0] ** num_scales
        norm_of = _norm_factory(norm)
        act_mod = _activation(act)
        dim_c = num_subbands * audio_channels * 2  # (re, im) of each channel per sub-band
        c, f = num_channels, dim_f // num_subbands
        self.first_conv = nn.Conv2d(dim_c, c, 1, 1, 0, bias=False)
        self.encoder_blocks = nn.ModuleList()
        for _ in range(num_scales):
            level = _Level()
            level.tfc_tdf = TFCTDF(c, c, num_blocks_per_scale, f, bottleneck_factor, norm_of,
                                   act_mod)
            level.downscale = _Rescale(nn.Conv2d(c, c + growth, scale, scale, bias=False),
                                       c, norm_of, act_mod)
            f //= scale[1]
            c += growth
            self.encoder_blocks.append(level)
        self.bottleneck_block = TFCTDF(c, c, num_blocks_per_scale, f, bottleneck_factor,
                                       norm_of, act_mod)
        self.decoder_blocks = nn.ModuleList()
        for _ in range(num_scales):
            level = _Level()
            level.upscale = _Rescale(
                nn.ConvTranspose2d(c, c - growth, scale, scale, bias=False), c, norm_of,
                act_mod)
            f *= scale[1]
            c -= growth
            level.tfc_tdf = TFCTDF(2 * c, c, num_blocks_per_scale, f, bottleneck_factor,
                                   norm_of, act_mod)
            self.decoder_blocks.append(level)
        self.final_conv = nn.Sequential(
            nn.Conv2d(c + dim_c, c, 1, 1, 0, bias=False), act_mod,
            nn.Conv2d(c, num_stems * dim_c, 1, 1, 0, bias=False))
        # Not a parameter or buffer: the checkpoints hold no window.
        self._window = torch.hann_window(n_fft, periodic=True, device="cpu")

    def valid_length(self, length: int) -> int:
        """The smallest chunk length >= `length` the U-Net takes whole: hop x (T - 1)
        samples with T frames a multiple of scale[0] ** num_scales."""
        hops = -(-max(length, 1) // self.hop_length)  # ceil(length / hop)
        frames = -(-(hops + 1) // self.frames_unit) * self.frames_unit
        return self.hop_length * (frames - 1)

    def valid_chunk(self, length: int) -> int:
        """The largest chunk length <= `length` the U-Net takes whole (the smallest
        there is when `length` is below it)."""
        frames = (max(length, 0) // self.hop_length + 1) // self.frames_unit
        return self.hop_length * (max(frames, 1) * self.frames_unit - 1)

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, L] -> [B, 2C, dim_f, T]: (re, im) of each channel, the first dim_f bins."""
        b, c, length = x.shape
        spec = torch.stft(x.reshape(-1, length), self.n_fft, self.hop_length,
                          window=self._window.to(x.device), center=True, return_complex=True)
        spec = torch.view_as_real(spec).permute(0, 3, 1, 2)  # [B*C, 2, bins, T]
        return spec.reshape(b, c * 2, spec.shape[-2], spec.shape[-1])[..., :self.dim_f, :]

    def _istft(self, x: torch.Tensor) -> torch.Tensor:
        """[B, S, 4, dim_f, T] -> [B, S, 2, L]: bins above dim_f zeroed, inverse STFT."""
        x = x.float()  # as the reference's float32 padding promotes it under autocast
        b, s, c, f, t = x.shape
        bins = self.n_fft // 2 + 1
        x = torch.cat([x, x.new_zeros(b, s, c, bins - f, t)], dim=-2)
        x = x.reshape(-1, 2, bins, t).permute(0, 2, 3, 1)  # [B*S*2, bins, T, (re, im)]
        wave = torch.istft(x[..., 0] + x[..., 1] * 1j, self.n_fft, self.hop_length,
                           window=self._window.to(x.device), center=True)
        return wave.reshape(b, s, 2, -1)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix [B, 2, L] -> [B, num_stems, 2, L]."""
        length = mix.shape[-1]
        padded = self.valid_length(length)
        if padded != length:
            mix = F.pad(mix, (0, padded - length))
        k = self.num_subbands
        spec = self._stft(mix)  # [B, 4, dim_f, T]
        b, c, f, t = spec.shape
        spec = spec.reshape(b, c * k, f // k, t)  # sub-bands as channels
        first = x = self.first_conv(spec)  # [B, ch, F, T]
        x = x.transpose(-1, -2)  # [B, ch, T, F]: TDF layers act on F
        skips = []
        for level in self.encoder_blocks:
            x = level.tfc_tdf(x)
            skips.append(x)
            x = level.downscale(x)
        x = self.bottleneck_block(x)
        for level in self.decoder_blocks:
            x = level.upscale(x)
            x = level.tfc_tdf(torch.cat([x, skips.pop()], dim=1))
        x = x.transpose(-1, -2) * first  # [B, ch, F, T]
        x = self.final_conv(torch.cat([spec, x], dim=1))  # [B, S * 4k, F, T]
        x = x.reshape(b, -1, f, t)  # sub-bands back along frequency: [B, S * 4, dim_f, T]
        out = self._istft(x.reshape(b, self.num_stems, c, f, t))
        return out[..., :length]


__all__ = ["NORMS", "TFCTDF", "TFCTDFBlock", "TFCTDFNet"]
