"""Open-Unmix models (umxhq, umxl) behind the Separator interface.

One OpenUnmix network per target, combined by `openunmix.model.Separator` (STFT,
per-target magnitude masks, multichannel Wiener filtering with the mixture phase).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from openunmix.model import OpenUnmix
from openunmix.model import Separator as UnmixSeparator

from ..stems import StemMapping
from .separator import ModelPass, Separator


class OpenUnmixSeparator(Separator):
    """Open-Unmix targets (e.g. vocals, drums, bass, other) with Wiener post-filtering."""

    default_segment = 30.0  # the BiLSTM sees 30 s of context per chunk
    min_segment = 4.0

    def __init__(self, targets: Mapping[str, OpenUnmix], name: str, niter: int = 1,
                 samplerate: int = 44100, **kwargs) -> None:
        self.name = name
        self.samplerate = samplerate
        self.mapping = StemMapping(tuple(targets))
        self.unmix = UnmixSeparator(dict(targets), niter=niter, residual=False,
                                    sample_rate=float(samplerate), n_fft=4096, n_hop=1024,
                                    nb_channels=2).eval()
        super().__init__(**kwargs)
        self.to(self.device)

    def to(self, device: torch.device) -> None:
        self.device = device
        self.unmix.to(device)

    def passes(self) -> list[ModelPass]:
        def forward(x: torch.Tensor) -> torch.Tensor:
            with self.autocast():
                return self.unmix(x).float()
        return [ModelPass(forward=forward)]
