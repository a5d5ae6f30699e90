"""Wave-U-Net (Stoller, Ewert, Dixon 2018): a 1-D U-Net on the waveform.

    mix [B, C, L]                                      (L padded to a multiple of 2^D)
      down block i = 1..D:  conv(k=15) -> LeakyReLU     [B, F*i, L/2^(i-1)]  (kept as skip i)
                            decimate (keep every 2nd sample)
      bottleneck:           conv(k=15) -> LeakyReLU     [B, F*(D+1), L/2^D]
                            (+ optional BiLSTM, residual)
      up block i = D..1:    upsample x2 by linear interpolation
                            concat skip i -> conv(k=5) -> LeakyReLU   [B, F*i, L/2^(i-1)]
      concat the input mix -> 1x1 conv                 [B, S' * C, L]
      with `difference_output`, the last source is mix - sum(others)   [B, S, C, L]

Defaults are the paper's: D = 12 levels, F = 24 extra filters per level, down kernel 15,
up kernel 5 (10.2 M parameters; this implementation has 10.26 M in stereo). Down-sampling
is plain decimation and up-sampling linear interpolation (the even output samples are
the low-rate samples, the odd ones the mean of their neighbours), so no aliasing filter
is learned: the convs have to learn it. Convs are 'same'-padded here (the paper's best
variant used unpadded convs and a larger input; with chunked inference the chunk
context does that job), so any input length works: it is padded to a multiple of 2^D
and the output cropped back. The receptive field is 139 k samples (6.3 s at 22.05 kHz;
131 k of them from the convs alone, the rest from the interpolations); the original
model takes 147 k samples in for 16 k out (9.21 s / 1.02 s at 16 kHz).

`lstm_layers > 0` adds the BiLSTM bottleneck of the Wave-U-Net/Demucs follow-ups
(reported +~1 dB); the receptive field then is the whole input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..stems import STEM_IDS

PAPER_PARAMS = 10.2e6


def decimate(x: torch.Tensor) -> torch.Tensor:
    """[B, C, 2T] -> [B, C, T]: keep the even samples."""
    return x[..., ::2]


def upsample(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T] -> [B, C, 2T]: even samples are x, odd ones the mean of their neighbours
    (the last one repeats), so `decimate(upsample(x)) == x`."""
    nxt = torch.cat([x[..., 1:], x[..., -1:]], dim=-1)
    return torch.stack([x, 0.5 * (x + nxt)], dim=-1).flatten(-2)


class ConvAct(nn.Module):
    """'Same'-padded conv + LeakyReLU(0.2): [B, Cin, T] -> [B, Cout, T]."""

    def __init__(self, cin: int, cout: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x), 0.2)


class BLSTM(nn.Module):
    """Bidirectional LSTM over time with a linear projection back, added to the input:
    [B, C, T] -> [B, C, T]."""

    def __init__(self, channels: int, layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, channels, num_layers=layers, bidirectional=True,
                            batch_first=True)
        self.proj = nn.Linear(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x.transpose(1, 2))
        return x + self.proj(y).transpose(1, 2)


class WaveUNet(nn.Module):
    """Wave-U-Net separator: mix [B, C, L] -> sources [B, S, C, L] (any L).

    Args:
        sources: names of the S output sources, in output order.
        audio_channels: C, 2 for stereo.
        levels: D, number of down-sampling blocks (12).
        channels: F, filters added per level (24).
        down_kernel / up_kernel: conv widths of the down and up blocks (15, 5).
        lstm_layers: BiLSTM layers at the bottleneck (0: none, as in the paper).
        difference_output: predict S - 1 sources, the last is mix minus them.
        samplerate: the rate the model is trained at (22.05 kHz in the paper).
    """

    def __init__(self, sources: Sequence[str] = STEM_IDS, audio_channels: int = 2,
                 levels: int = 12, channels: int = 24, down_kernel: int = 15,
                 up_kernel: int = 5, lstm_layers: int = 0, difference_output: bool = True,
                 samplerate: int = 22050) -> None:
        super().__init__()
        if down_kernel % 2 != 1 or up_kernel % 2 != 1:
            raise ValueError("kernel sizes must be odd ('same' padding)")
        self.sources = list(sources)
        self.audio_channels = audio_channels
        self.samplerate = samplerate
        self.levels = levels
        self.down_kernel, self.up_kernel = down_kernel, up_kernel
        self.lstm_layers = lstm_layers
        self.difference_output = bool(difference_output) and len(self.sources) > 1
        self.n_predicted = len(self.sources) - int(self.difference_output)
        widths = [channels * (i + 1) for i in range(levels + 1)]  # F, 2F, ..., (D+1)F
        self.down = nn.ModuleList(
            ConvAct(audio_channels if i == 0 else widths[i - 1], widths[i], down_kernel)
            for i in range(levels))
        self.bottleneck = ConvAct(widths[levels - 1], widths[levels], down_kernel)
        self.lstm = BLSTM(widths[levels], lstm_layers) if lstm_layers else None
        # up block for level i takes the level below (widths[i + 1]) plus skip i (widths[i])
        self.up = nn.ModuleList(
            ConvAct(widths[i + 1] + widths[i], widths[i], up_kernel)
            for i in reversed(range(levels)))
        self.output = nn.Conv1d(widths[0] + audio_channels,
                                self.n_predicted * audio_channels, 1)

    @property
    def receptive_field(self) -> int | None:
        """Input samples one output sample depends on (None: the whole input, BiLSTM)."""
        if self.lstm is not None:
            return None
        d, u = self.down_kernel - 1, self.up_kernel - 1
        field = 1
        for i in range(self.levels):
            field += d * 2**i + u * 2**i + 2 ** (i + 1)  # down conv, up conv, interpolation
        return field + d * 2**self.levels

    def valid_length(self, length: int) -> int:
        """Smallest length >= `length` that decimates evenly D times."""
        step = 2**self.levels
        return -(-length // step) * step

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix [B, C, L] -> sources [B, S, C, L]."""
        batch, channels, length = mix.shape
        padded = self.valid_length(length)
        x = F.pad(mix, (0, padded - length))
        inp = x
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = decimate(x)
        x = self.bottleneck(x)
        if self.lstm is not None:
            x = self.lstm(x)
        for block in self.up:
            x = block(torch.cat([upsample(x), skips.pop()], dim=1))
        y = self.output(torch.cat([x, inp], dim=1))[..., :length]
        y = y.reshape(batch, self.n_predicted, channels, length)
        if self.difference_output:
            y = torch.cat([y, (mix - y.sum(dim=1)).unsqueeze(1)], dim=1)
        return y


__all__ = ["BLSTM", "PAPER_PARAMS", "WaveUNet", "decimate", "upsample"]
