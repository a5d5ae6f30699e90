"""Demucs-family models (htdemucs, htdemucs_6s, htdemucs_ft) behind the Separator interface.

Inference matches `demucs.apply.apply_model(model, mix, shifts=0, split=True, ...)`: the
same chunk grid, padding and cross-fades (see chunking.py), optionally with demucs'
input normalisation (mean/std of the mono mix, as `demucs.separate` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import torch
from demucs.htdemucs import HTDemucs

from ..stems import DEMUCS_SIX_STEMS, FOUR_STEMS, StemMapping
from .separator import ModelPass, Separator


class DemucsSeparator(Separator):
    """One demucs network, or a bag of them with per-source weights."""

    def __init__(self, models: Sequence[torch.nn.Module], mapping: StemMapping, name: str,
                 weights: Sequence[Sequence[float]] | None = None, normalize: bool = True,
                 **kwargs) -> None:
        if not models:
            raise ValueError("at least one model is needed")
        first = models[0]
        for m in models:
            if list(m.sources) != list(first.sources) or m.samplerate != first.samplerate:
                raise ValueError("all models of a bag must share sources and sample rate")
        if list(first.sources) != list(mapping.native):
            raise ValueError(f"model sources {first.sources} differ from {mapping.native}")
        self.name = name
        self.mapping = mapping
        self.samplerate = int(first.samplerate)
        self.models = [m.eval() for m in models]
        self.weights = [tuple(float(v) for v in w) for w in weights] if weights else None
        self.normalize = normalize
        self.standardise_ddof = 1 if normalize else None  # mean/std of the mono mix
        hts = [float(m.segment) for m in models if isinstance(m, HTDemucs)]
        self.max_segment = min(hts) if hts else None
        # HTDemucs pads short chunks back to its training length: shrinking saves nothing.
        self.segment_shrinks_memory = not hts
        self.default_segment = float(min(float(m.segment) for m in models))
        super().__init__(**kwargs)
        self.to(self.device)

    def to(self, device: torch.device) -> None:
        self.device = device
        for m in self.models:
            m.to(device)

    def passes(self) -> list[ModelPass]:
        out = []
        for i, model in enumerate(self.models):
            out.append(ModelPass(forward=self._forward_fn(model),
                                 weights=self.weights[i] if self.weights else None,
                                 valid_length=self._valid_length_fn(model)))
        return out

    def _forward_fn(self, model: torch.nn.Module):
        def forward(x: torch.Tensor) -> torch.Tensor:
            with self.autocast():
                return model(x).float()
        return forward

    def _valid_length_fn(self, model: torch.nn.Module):
        if isinstance(model, HTDemucs):
            fixed = int(self.segment * self.samplerate)
            return lambda n: fixed
        if hasattr(model, "valid_length"):
            return model.valid_length
        return lambda n: n

#: Constructor arguments of the published architectures (read off their weight shapes), so
#: benchmarks and tests can build them with random weights and no download.
PUBLISHED_DEMUCS: dict[str, tuple[StemMapping, dict]] = {}


def _register_architectures() -> None:


    common = dict(samplerate=44100, segment=Fraction(39, 5), dconv_mode=3)
    PUBLISHED_DEMUCS["htdemucs"] = (FOUR_STEMS, dict(common, bottom_channels=512))
    PUBLISHED_DEMUCS["htdemucs_ft"] = PUBLISHED_DEMUCS["htdemucs"]
    PUBLISHED_DEMUCS["htdemucs_6s"] = (DEMUCS_SIX_STEMS, dict(common))


_register_architectures()


def random_demucs(name: str, seed: int = 0, **kwargs) -> DemucsSeparator:
    """`name`'s architecture with random weights: for speed/memory benchmarks only."""
    if name not in PUBLISHED_DEMUCS:
        raise KeyError(f"no demucs architecture called '{name}'")
    mapping, arch = PUBLISHED_DEMUCS[name]
    torch.manual_seed(seed)
    model = HTDemucs(sources=list(mapping.native), **arch)
    return DemucsSeparator([model], mapping, f"{name} (random weights)", **kwargs)
