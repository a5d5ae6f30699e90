"""Every trainable separation architecture, behind one registry and one separator.

Each architecture is a plain `nn.Module` taking a stereo mix [B, C=2, L] and returning the
sources [B, S, C, L] in the order of its `sources`, so the training engine, the
checkpoint format and the chunked inference path treat them all alike:

    name        model                                   domain        rate
    wavenet     Wavenet regression (Lluis et al.)       waveform      16 kHz
    waveunet    Wave-U-Net (Stoller et al.)             waveform      22.05 kHz
    convtasnet  Conv-TasNet + thesis encoders           waveform      44.1 kHz
    condtasnet  instrument-conditioned Conv-TasNet      waveform      44.1 kHz
    openunmix6  Open-Unmix, one network per stem        spectrogram   44.1 kHz
    masknet     STFT masks from dilated convs (fast CPU) spectrogram   44.1 kHz
    bandsplit   band-split masks, convs on bands x time  spectrogram   44.1 kHz
    htdemucs6   Hybrid Transformer Demucs, six stems    hybrid        44.1 kHz

`ARCHITECTURES[name]` holds the constructor, the literature's default configuration, a
tiny configuration for tests and demos, the native stems and the sample rate; every class
is in `zoo.checkpoint.LOADABLE_CLASSES` (a test keeps the two in step), so Stemwright
checkpoints of any of them load. `NeuralSeparator` runs any such module through the common
chunked path, widening each chunk by the model's receptive field (capped) so chunk borders do not
hurt; `separator_for(model, meta)` picks the right separator for a loaded checkpoint.
`train_steps` and `synth_batches` are the minimal training loop the tests and demos use
until the training engine lands.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from demucs.demucs import Demucs
from demucs.hdemucs import HDemucs
from demucs.htdemucs import HTDemucs
from torch import nn

from ..errors import ModelError
from ..separation.separator import ModelPass, Separator
from ..stems import STEM_IDS, StemMapping, mapping_for
from ..zoo.checkpoint import CheckpointMeta, save_checkpoint
from .bandsplit import BandSplitNet
from .convtasnet import ConditionedTasNet, ConvTasNet
from .masknet import MaskNet
from .openunmix6 import OpenUnmixStems
from .wavenet import WaveNet
from .waveunet import WaveUNet


@dataclass(frozen=True)
class Architecture:
    """A registry entry: how to build the model and how to run it."""

    name: str
    cls: type[nn.Module]
    title: str
    domain: str  # "waveform" | "spectrogram" | "hybrid"
    samplerate: int
    kwargs: dict[str, Any]  # the literature's configuration
    small: dict[str, Any]  # a tiny configuration for tests and demos
    segment: float = 10.0  # seconds per inference chunk
    context: float = 1.0  # most seconds of neighbouring audio added on each side of a chunk
    overlap: float | None = None  # chunk cross-fade share (None: the separator's default)
    checkpoint_name: str = ""  # architecture name in checkpoints (default: `name`)
    paper_params: float | None = None
    reference: str = ""
    global_context: str = ""  # what makes the receptive field the whole input, if anything
    stems: tuple[str, ...] = field(default=STEM_IDS)
    #: autocast suits it: waveform models; models that turn their output back from a complex
    #: spectrogram (demucs' hybrids, Open-Unmix, MaskNet) need float32
    amp_safe: bool = False
    #: outputs are linear in the last layer, so a stem's head can be split or summed when a
    #: fine-tuned model gains or loses stems
    linear_heads: bool = False

    @property
    def arch(self) -> str:
        return self.checkpoint_name or self.name


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture(
        "wavenet", WaveNet, "Wavenet regression (4 stacks x 64)", "waveform", 16000,
        dict(stacks=4, channels=64, samplerate=16000),
        dict(stacks=1, channels=8, dilations=[1, 2, 4, 8], final_channels=[32, 16],
             samplerate=16000),
        segment=4.0, paper_params=3.3e6, amp_safe=True, linear_heads=True,
        reference="Lluis, Pons, Serra: End-to-end music source separation (2019)"),
    Architecture(
        "waveunet", WaveUNet, "Wave-U-Net", "waveform", 22050,
        dict(levels=12, channels=24, samplerate=22050),
        dict(levels=4, channels=8, samplerate=22050),
        segment=10.0, paper_params=10.2e6, amp_safe=True, linear_heads=True,
        reference="Stoller, Ewert, Dixon: Wave-U-Net (2018)"),
    Architecture(
        "convtasnet", ConvTasNet, "Conv-TasNet, hybrid gammatone encoder", "waveform", 44100,
        dict(encoder="hybrid_gammatone", decoder="free", samplerate=44100),
        dict(encoder="hybrid_gammatone", n_filters=32, bottleneck=16, hidden=16, blocks=3,
             stacks=1, samplerate=44100),
        segment=8.0, amp_safe=True,
        reference="Luo & Mesgarani: Conv-TasNet (2019); Mocanu: Musical source separation "
                  "(thesis, 2020)"),
    Architecture(
        "condtasnet", ConditionedTasNet, "Instrument-conditioned Conv-TasNet", "waveform",
        44100, dict(encoder="hybrid_stft", samplerate=44100),
        dict(encoder="hybrid_stft", n_filters=32, bottleneck=16, hidden=16, blocks=3,
             stacks=1, stft_n_fft=64, samplerate=44100),
        segment=8.0, amp_safe=True,
        reference="After Samuel, Ganeshan, Naradowsky: Meta-TasNet (2020): separator weights "
                  "generated from instrument embeddings"),
    Architecture(
        "openunmix6", OpenUnmixStems, "Open-Unmix, six stems", "spectrogram", 44100,
        dict(samplerate=44100),
        dict(hidden_size=16, nb_layers=1, n_fft=512, n_hop=128, samplerate=44100),
        segment=20.0, global_context="BiLSTM",
        reference="Stoter, Uhlich, Liutkus, Mitsufuji: Open-Unmix (2019)"),
    Architecture(
        "masknet", MaskNet, "MaskNet: STFT masks from dilated convolutions", "spectrogram",
        44100, dict(samplerate=44100),
        dict(front_channels=4, hidden=16, blocks=2, dilation_cycle=2, local_channels=4,
             n_fft=512, hop=128, samplerate=44100),
        segment=20.0, context=1.5, overlap=0.05,
        reference="Stemwright's CPU default; after Open-Unmix (Stoter et al. 2019) with "
                  "Conv-TasNet's dilated temporal convolutions (Luo & Mesgarani 2019)"),
    Architecture(
        "bandsplit", BandSplitNet, "BandSplitNet: band-split masks, convolutions over bands "
        "and time", "spectrogram", 44100, dict(samplerate=44100),
        dict(bands=6, dim=8, layers=2, n_fft=512, hop=128, samplerate=44100),
        segment=20.0, context=1.5, overlap=0.05,
        reference="After BSRNN (Luo & Yu 2023) and BS-RoFormer (Lu et al. 2024), with "
                  "their LSTMs/attention replaced by dilated depthwise convolutions"),
    Architecture(
        "htdemucs6", HTDemucs, "Hybrid Transformer Demucs, six stems", "hybrid", 44100,
        dict(samplerate=44100, segment=Fraction(39, 5), dconv_mode=3),
        dict(channels=4, depth=3, nfft=512, t_layers=1, t_heads=2, dconv_comp=4,
             segment=Fraction(1, 1), samplerate=44100),
        checkpoint_name="htdemucs", global_context="transformer", linear_heads=True,
        reference="Rouard, Massa, Defossez: Hybrid Transformers for Music Source "
                  "Separation (2023)"),
)}


def get_architecture(name: str) -> Architecture:
    """Registry entry `name`; KeyError listing the choices."""
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown architecture '{name}' (known: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[name]


def architecture_of(model: nn.Module) -> Architecture | None:
    """The registry entry whose class `model` is (None for other modules)."""
    for a in ARCHITECTURES.values():
        if type(model) is a.cls:
            return a
    return None


def amp_safe(model: nn.Module) -> bool:
    """Whether mixed precision (autocast) suits `model` (see `Architecture.amp_safe`)."""
    a = architecture_of(model)
    return a is not None and a.amp_safe


def linear_heads(model: nn.Module) -> bool:
    """Whether `model`'s stem heads can be split or summed (see `Architecture.linear_heads`);
    the published demucs classes outside the registry have linear heads too."""
    a = architecture_of(model)
    return a.linear_heads if a is not None else isinstance(model, HDemucs | Demucs)


def config(name: str, small: bool = False, **overrides: Any) -> dict[str, Any]:
    """Constructor arguments of architecture `name` (with `sources`), as stored in
    checkpoints: the literature's defaults, or the tiny test configuration."""
    a = get_architecture(name)
    kwargs = dict(a.small if small else a.kwargs)
    kwargs.setdefault("sources", list(a.stems))
    kwargs.update(overrides)
    if a.cls in (MaskNet, BandSplitNet):
        # every setting spelled out in checkpoints, so that changing a default later
        # cannot change what a saved model computes
        for key, p in inspect.signature(a.cls).parameters.items():
            if p.default is not inspect.Parameter.empty:
                kwargs.setdefault(key, p.default)
    return kwargs


def build(name: str, small: bool = False, seed: int | None = None,
          **overrides: Any) -> nn.Module:
    """A freshly initialised model of architecture `name` (see `config`)."""
    if seed is not None:
        torch.manual_seed(seed)
    return get_architecture(name).cls(**config(name, small, **overrides))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (fixed windows and filterbanks not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def receptive_field(model: nn.Module) -> int | None:
    """Input samples one output sample depends on; None when it is the whole input
    (recurrent or attention layers)."""
    if isinstance(model, HTDemucs | HDemucs | Demucs):
        return None
    return getattr(model, "receptive_field", None)


def _samplerate(model: nn.Module) -> int:
    return int(getattr(model, "samplerate", 44100))


# -- inference ----------------------------------------------------------------------------

class NeuralSeparator(Separator):
    """Any [B, 2, L] -> [B, S, 2, L] module behind the common separation pipeline.

    Each chunk is widened by `context` samples of real neighbouring audio on both sides
    (half the receptive field, at most the architecture's `context` seconds), rounded
    up to a length the model takes without padding (`model.valid_length`), and the
    centre is kept, so outputs near chunk borders see the same input as anywhere else;
    overlapping chunks are cross-faded on top of that.
    """

    def __init__(self, model: nn.Module, mapping: StemMapping, name: str,
                 samplerate: int | None = None, context: float | None = None,
                 **kwargs: Any) -> None:
        sources = getattr(model, "sources", None)
        channels = getattr(model, "audio_channels", 2)
        if channels != 2:
            raise ModelError(f"{name}: a {channels}-channel model; Stemwright separates stereo "
                             "(2-channel) models only")
        if sources is not None and len(sources) != len(mapping.native):
            raise ValueError(f"model has {len(sources)} sources, mapping {mapping.native}")
        self.name = name
        self.mapping = mapping
        self.samplerate = int(samplerate or _samplerate(model))
        self.model = model.eval()
        arch = architecture_of(model)
        if arch is not None:
            self.default_segment = arch.segment
            if arch.overlap is not None:
                self.default_overlap = arch.overlap
        max_context = int(round((arch.context if arch else 1.0) if context is None
                                else context) * self.samplerate)
        field_ = receptive_field(model)
        self.context = max_context if field_ is None else min(field_ // 2 + 1, max_context)
        super().__init__(**kwargs)
        self.to(self.device)

    def to(self, device: torch.device) -> None:
        self.device = device
        self.model.to(device)

    def valid_length(self, length: int) -> int:
        """Samples the model is run on for a chunk of `length` samples."""
        inner = getattr(self.model, "valid_length", None)
        total = length + 2 * self.context
        return int(inner(total)) if inner is not None else total

    def passes(self) -> list[ModelPass]:
        def forward(x: torch.Tensor) -> torch.Tensor:
            with self.autocast():
                return self.model(x).float()
        return [ModelPass(forward=forward, valid_length=self.valid_length)]


def _mapping(stems: Sequence[str]) -> StemMapping:
    return mapping_for(list(stems))


def separator_for(model: nn.Module, meta: CheckpointMeta, name: str | None = None,
                  **opts: Any) -> Separator:
    """The separator for a model loaded from a Stemwright checkpoint (any registered
    architecture; demucs models go through `DemucsSeparator`)."""
    label = name or meta.architecture
    mapping = _mapping(meta.stems)
    if isinstance(model, HTDemucs | HDemucs | Demucs):
        from ..separation.demucs_backend import DemucsSeparator
        return DemucsSeparator([model], mapping, label, **opts)
    return NeuralSeparator(model, mapping, label, samplerate=meta.samplerate, **opts)


def random_separator(name: str, small: bool = False, seed: int = 0,
                     **opts: Any) -> Separator:
    """Architecture `name` with random weights behind its separator (benchmarks, demos)."""
    a = get_architecture(name)
    kwargs = config(name, small)
    model = build(name, small, seed=seed)
    meta = CheckpointMeta(a.arch, kwargs, list(kwargs["sources"]), a.samplerate)
    return separator_for(model, meta, name=f"{name} (random weights)", **opts)


def checkpoint_meta(name: str, kwargs: dict[str, Any],
                    provenance: dict[str, Any] | None = None) -> CheckpointMeta:
    """Metadata for saving a model of architecture `name` built from `kwargs`."""
    a = get_architecture(name)
    return CheckpointMeta(a.arch, dict(kwargs), list(kwargs.get("sources", a.stems)),
                          int(kwargs.get("samplerate", a.samplerate)), dict(provenance or {}))


def save_model(path: str | Path, name: str, model: nn.Module, kwargs: dict[str, Any],
               provenance: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Save `model` (architecture `name`, built from `kwargs`) as a Stemwright checkpoint."""
    if isinstance(model, HTDemucs):
        # HTDemucs adopts the length it was last trained on as its segment: keep it
        kwargs = dict(kwargs, segment=Fraction(model.segment))
    with torch.no_grad():
        return save_checkpoint(path, model, checkpoint_meta(name, kwargs, provenance),
                               overwrite=overwrite)


# -- minimal training ---------------------------------------------------------------------

def synth_batches(stems: Sequence[str], samplerate: int, batch_size: int = 2,
                  seconds: float = 1.0, n_batches: int = 1, seed: int = 0
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Generated multitrack training data: [(mix [B, 2, L], sources [B, S, 2, L])].

    Each example is a `synth_song` of `seconds` (its own seed); sources follow `stems`.
    """
    from ..synthetic.test_songs import synth_song

    out = []
    for b in range(n_batches):
        mixes, targets = [], []
        for i in range(batch_size):
            mix, parts = synth_song(seconds, samplerate, seed=seed + b * batch_size + i)
            mixes.append(mix)
            targets.append(np.stack([parts[s] for s in stems]))
        out.append((torch.from_numpy(np.stack(mixes)), torch.from_numpy(np.stack(targets))))
    return out


def train_steps(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                steps: int, lr: float = 1e-3,
                loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.l1_loss
                ) -> list[float]:
    """Train `model` for `steps` Adam steps on `batches` (cycled); returns the losses.

    The loss compares the model's output [B, S, C, L] with the true sources (L1/MAE on
    the waveforms by default). Leaves the model in eval mode.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    losses: list[float] = []
    model.train()
    try:
        for _, (mix, target) in zip(range(steps), itertools.cycle(batches), strict=False):
            loss = loss_fn(model(mix), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    finally:
        model.eval()
    return losses


__all__ = [
    "ARCHITECTURES", "Architecture", "NeuralSeparator", "OpenUnmixStems", "architecture_of",
    "build", "checkpoint_meta", "config", "count_parameters", "get_architecture",
    "random_separator", "receptive_field", "save_model", "separator_for", "synth_batches",
    "train_steps",
]
