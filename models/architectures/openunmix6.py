"""Open-Unmix for six (or any) stems, trainable from scratch: `openunmix6` in the registry."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from openunmix.model import OpenUnmix
from openunmix.model import Separator as UnmixSeparator
from openunmix.utils import bandwidth_to_max_bin
from torch import nn

from ..stems import STEM_IDS


class OpenUnmixStems(nn.Module):
    """Open-Unmix for several stems: one `openunmix.model.OpenUnmix` per stem, combined by
    `openunmix.model.Separator` (STFT, magnitude masks, multichannel Wiener filter).

    mix [B, C, L] -> STFT |X| [B, C, F, T] -> per stem: normalise -> FC -> BN -> tanh ->
    3-layer BiLSTM (+ skip concat) -> FC-BN-ReLU -> FC-BN -> ReLU mask x |X| -> Wiener
    filter with the mixture STFT -> iSTFT -> sources [B, S, C, L].

    In training mode the Wiener step is skipped (`niter` 0: estimated magnitudes with the
    mixture phase, differentiable); in eval mode it runs `niter` EM iterations. Defaults
    are umxhq's: 4096/1024 STFT, hidden 512, 3 layers, 16 kHz bandwidth.
    """

    def __init__(self, sources: Sequence[str] = STEM_IDS, audio_channels: int = 2,
                 hidden_size: int = 512, nb_layers: int = 3, n_fft: int = 4096,
                 n_hop: int = 1024, bandwidth: float = 16000.0, niter: int = 1,
                 wiener_win_len: int = 300, samplerate: int = 44100) -> None:
        super().__init__()
        self.sources = list(sources)
        self.audio_channels = audio_channels
        self.samplerate = samplerate
        self.niter = niter
        self.n_fft, self.n_hop = n_fft, n_hop
        bins = n_fft // 2 + 1
        max_bin = int(bandwidth_to_max_bin(samplerate, n_fft, bandwidth))
        targets = {s: OpenUnmix(nb_bins=bins, nb_channels=audio_channels,
                                hidden_size=hidden_size, nb_layers=nb_layers,
                                max_bin=min(max(max_bin, 1), bins))
                   for s in self.sources}
        self.unmix = UnmixSeparator(targets, niter=niter, residual=False,
                                    sample_rate=float(samplerate), n_fft=n_fft, n_hop=n_hop,
                                    nb_channels=audio_channels,
                                    wiener_win_len=wiener_win_len)
        for p in (self.unmix.stft.window, self.unmix.istft.window):
            p.requires_grad_(False)

    @property
    def receptive_field(self) -> None:
        """The BiLSTM sees the whole input."""
        return None

    def valid_length(self, length: int) -> int:
        return length

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix [B, C, L] -> sources [B, S, C, L]."""
        # One source cannot be Wiener-filtered (openunmix refuses EM for a single target).
        use_em = not self.training and len(self.sources) > 1
        self.unmix.niter = self.niter if use_em else 0
        return self.unmix(mix)
