"""The Wavenet-based regression model for source separation (Lluis, Pons, Serra 2019).

A non-causal, non-autoregressive Wavenet that regresses the source waveforms directly:

    mix [B, C, L]
      -> 3x1 conv (no bias)                                        [B, k, L]
      -> N stacks x 10 residual layers, dilations 1, 2, ..., 512:
           dilated 3x1 conv k -> 2k, tanh(first half) * sigmoid(second half)
           1x1 conv k -> k + k: residual (added to the input) and skip output
      -> sum of the skips -> ReLU                                  [B, k, L]
      -> 3x1 conv k -> 2048 -> ReLU -> 3x1 conv 2048 -> 256         [B, 256, L]
      -> 1x1 conv 256 -> S' * C (with bias)                        [B, S', C, L]
      -> with `difference_output`, the last source is mix - sum(others)  [B, S, C, L]

"Non-causal" means every conv is centred ('same' padding), so the output at t sees
samples from t - R/2 to t + R/2 (R = receptive field). All convs but the last have no
bias, as in the authors' code. The paper is mono (C = 1); Stemwright feeds stereo
(C = 2) through the same network: only the input and output layers grow (by a few
hundred weights), so parameter counts stay those of the paper's Table 1:

    stacks / k    params (paper)   receptive field at 16 kHz
    1 / 512       25.7 M           2053 samples (128 ms)
    2 / 256       13.6 M           4099 (256 ms)
    3 / 128        6.3 M           6145 (384 ms)
    4 / 64         3.3 M           8191 (512 ms)   <- the paper's best, our default
    5 / 32         2.2 M           10237 (640 ms)

Trained at 16 kHz with MAE, Adam lr 1e-3, batch 10 (optionally minus 0.05 x a
dissimilarity term).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..stems import STEM_IDS

#: (stacks, filters) of the paper's five configurations (Table 1), and their sizes.
PAPER_CONFIGS: dict[str, tuple[int, int]] = {
    "1x512": (1, 512), "2x256": (2, 256), "3x128": (3, 128), "4x64": (4, 64), "5x32": (5, 32),
}
PAPER_PARAMS: dict[str, float] = {
    "1x512": 25.7e6, "2x256": 13.6e6, "3x128": 6.3e6, "4x64": 3.3e6, "5x32": 2.2e6,
}


class ResidualLayer(nn.Module):
    """Gated dilated conv with residual and skip outputs: [B, k, L] -> ([B, k, L], [B, k, L])."""

    def __init__(self, channels: int, skip_channels: int, dilation: int, kernel_size: int = 3):
        super().__init__()
        self.channels = channels
        self.dilated = nn.Conv1d(channels, 2 * channels, kernel_size, dilation=dilation,
                                 padding=dilation * (kernel_size - 1) // 2, bias=False)
        self.out = nn.Conv1d(channels, channels + skip_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        filt, gate = self.dilated(x).split(self.channels, dim=1)
        y = self.out(torch.tanh(filt) * torch.sigmoid(gate))
        res, skip = y[:, :self.channels], y[:, self.channels:]
        return x + res, skip


class WaveNet(nn.Module):
    """Non-causal Wavenet separator: mix [B, C, L] -> sources [B, S, C, L] (any L).

    Args:
        sources: names of the S output sources, in output order.
        audio_channels: C, 2 for stereo.
        stacks: N, how often the 10-layer dilation pattern repeats.
        channels: k, filters of the residual layers (residual and skip paths too).
        dilations: dilation pattern of one stack (default 1, 2, ..., 512).
        kernel_size: width of the dilated convs (3).
        final_channels: filters of the two 3x1 output convs (2048, 256).
        difference_output: predict S - 1 sources and take the last as mix minus them.
        samplerate: the rate the model is trained at (16 kHz in the paper).
    """

    def __init__(self, sources: Sequence[str] = STEM_IDS, audio_channels: int = 2,
                 stacks: int = 4, channels: int = 64, dilations: Sequence[int] | None = None,
                 kernel_size: int = 3, final_channels: Sequence[int] = (2048, 256),
                 difference_output: bool = True, samplerate: int = 16000) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd (non-causal, centred convs)")
        if len(final_channels) != 2:
            raise ValueError("final_channels must name the two output convs' widths")
        self.sources = list(sources)
        self.audio_channels = audio_channels
        self.samplerate = samplerate
        self.difference_output = bool(difference_output) and len(self.sources) > 1
        self.dilations = list(dilations) if dilations is not None else [2**i for i in range(10)]
        self.kernel_size = kernel_size
        self.stacks = stacks
        pad = (kernel_size - 1) // 2
        self.input = nn.Conv1d(audio_channels, channels, kernel_size, padding=pad, bias=False)
        self.layers = nn.ModuleList(
            ResidualLayer(channels, channels, d, kernel_size)
            for _ in range(stacks) for d in self.dilations)
        wide, narrow = final_channels
        self.final = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(channels, wide, 3, padding=1, bias=False),
            nn.ReLU(),
            nn.Conv1d(wide, narrow, 3, padding=1, bias=False),
        )
        self.n_predicted = len(self.sources) - int(self.difference_output)
        self.output = nn.Conv1d(narrow, self.n_predicted * audio_channels, 1)

    @property
    def receptive_field(self) -> int:
        """Samples of input that one output sample depends on."""
        k = self.kernel_size - 1
        return 1 + k + k * self.stacks * sum(self.dilations) + 2 + 2

    def valid_length(self, length: int) -> int:
        """Any length works (all convs are 'same'-padded)."""
        return length

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix [B, C, L] -> sources [B, S, C, L]."""
        batch, channels, length = mix.shape
        x = self.input(mix)
        skips = None
        for layer in self.layers:
            x, skip = layer(x)
            skips = skip if skips is None else skips + skip
        y = self.output(self.final(skips)).view(batch, self.n_predicted, channels, length)
        if self.difference_output:
            y = torch.cat([y, (mix - y.sum(dim=1)).unsqueeze(1)], dim=1)
        return y


def paper_wavenet(config: str = "4x64", **kwargs) -> WaveNet:
    """One of the paper's five configurations ("1x512" ... "5x32"), random weights."""
    stacks, channels = PAPER_CONFIGS[config]
    return WaveNet(stacks=stacks, channels=channels, **kwargs)


__all__ = ["PAPER_CONFIGS", "PAPER_PARAMS", "ResidualLayer", "WaveNet", "paper_wavenet"]
