"""Community BS-RoFormer / Mel-Band RoFormer and MDX23C (TFC-TDF v3) checkpoints (a
`.ckpt` + its YAML config) behind the Separator interface.

The models are those UVR, python-audio-separator and ZFTurbo's Music-Source-Separation-
Training (MSST) run; the network code is `architectures.roformer` and
`architectures.tfc_tdf`, which keep their state dict layouts. The family is told by the
YAML's keys (`model: num_scales`, `growth`, ... for MDX23C), as MSST is told it by
`--model_type`; both use the same inference. Inference follows MSST's
`utils.model_utils.demix` (generic mode), so a model separates here as it does there:

  * the song is reflect-padded by `border = chunk - step` at both ends (when longer than
    2 x border), chunks of `chunk_size` samples start every `step = chunk_size //
    num_overlap`; a short last chunk is reflect-padded (or zero-padded when at most half
    a chunk), and the padding is cut off again at the end;
  * each chunk's output is weighted by a window with linear fades of chunk // 10 samples,
    without the fade-in on the first chunk and the fade-out on the last, and the sum is
    divided by the summed windows.

One difference: MSST drops the first/last-chunk fades of every chunk in the first/last
*batch* (with batch_size > 1 it changes its own result); here they apply to the first and
last chunk only, which is MSST's result with batch_size 1 for every batch size.

Around that: progress and cancel per chunk, partial results as regions become final,
out-of-memory retries (the base class halves `segment`, i.e. the chunk; for MDX23C a
chunk other than the config's is rounded down to a length its U-Net takes whole), MSST's
optional input normalisation (`inference.normalize`), and single-target models (e.g.
vocals) given their complement (mix - target) as a second source so "other" gets the rest.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..architectures.roformer import BSRoformer, MelBandRoformer
from ..architectures.scnet import DEFAULT_SOURCES as SCNET_DEFAULT_SOURCES
from ..architectures.scnet import SCNet, check_scnet_config
from ..architectures.tfc_tdf import TFCTDFNet
from ..errors import ModelError
from ..progress import CancelCheck, ProgressCallback, ProgressTracker, check_cancel
from ..stems import StemMapping
from ..yaml_safe import YamlFileError, safe_yaml_loads
from .chunking import ChunkForward, FinalRegionHook, allocate
from .separator import ModelPass, Separator

#: The YAML config of a RoFormer is a few kilobytes.
MAX_CONFIG_BYTES = 1024 * 1024
#: Community instrument names -> Stemwright stems (case-insensitive, '-'/' ' read as '_').
INSTRUMENT_STEMS: dict[str, str] = {
    **dict.fromkeys(("vocals", "vocal", "voice", "lead_vocals", "backing_vocals"), "vocals"),
    **dict.fromkeys(("drums", "drum", "percussion"), "drums"),
    "bass": "bass",
    **dict.fromkeys(("guitar", "electric_guitar", "guitars"), "electric_guitar"),
    **dict.fromkeys(("wind", "winds", "woodwind", "woodwinds", "brass"), "wind"),
    **dict.fromkeys(("other", "instrumental", "instrument", "accompaniment", "no_vocals",
                     "karaoke", "piano", "keys", "synth", "strings", "acoustic_guitar"),
                    "other"),
}
_TUPLE_TAG = re.compile(r"!!python/tuple\b")
#: Every MSST family read here -> its network class (all keep MSST's state dict layout).
ARCHITECTURES: dict[str, type[torch.nn.Module]] = {
    "bs_roformer": BSRoformer, "mel_band_roformer": MelBandRoformer, "mdx23c": TFCTDFNet,
    "scnet": SCNet}
_ARCHITECTURES = ARCHITECTURES  # the name before MDX23C joined
FAMILY_NAMES = {"bs_roformer": "BS-RoFormer", "mel_band_roformer": "Mel-Band RoFormer",
                "mdx23c": "MDX23C (TFC-TDF v3)", "scnet": "SCNet"}


@dataclass(frozen=True)
class RoformerConfig:
    """What Stemwright reads from a RoFormer or MDX23C YAML config."""

    architecture: str  # "bs_roformer" | "mel_band_roformer" | "mdx23c"
    model_kwargs: dict[str, Any]
    sources: tuple[str, ...]  # what the network outputs, in order
    samplerate: int = 44100
    chunk_size: int = 352800
    num_overlap: int = 2
    normalize: bool = False
    complement: str | None = None  # single-target models: name of mix - target
    notes: tuple[str, ...] = field(default=())

    @property
    def native(self) -> tuple[str, ...]:
        """The separator's native sources: the network's, plus the complement if any."""
        return self.sources + ((self.complement,) if self.complement else ())


def _section(cfg: Mapping[str, Any], key: str, name: str) -> Mapping[str, Any]:
    value = cfg.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ModelError(f"{name}: '{key}' must be a mapping of settings")
    return value


def _int(section: Mapping[str, Any], key: str, default: int, name: str, lo: int,
         hi: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ModelError(f"{name}: '{key}' must be a whole number from {lo} to {hi}, "
                         f"not {str(value)[:40]!r}")
    return value


#: The `model:` settings of an MDX23C config (MSST's TFC_TDF_net reads these and no
#: others); all are required except norm and act.
_MDX23C_MODEL_KEYS = ("num_subbands", "num_scales", "scale", "num_blocks_per_scale",
                      "num_channels", "growth", "bottleneck_factor", "norm", "act")
#: The keys only MDX23C's `model:` section has (not num_subbands: segm_models' has it).
_MDX23C_OWN_KEYS = ("num_scales", "num_blocks_per_scale", "growth", "bottleneck_factor")
#: Its `audio:` settings the network needs.
_MDX23C_AUDIO_KEYS = ("n_fft", "hop_length", "dim_f")


def detect_architecture(model: Mapping[str, Any]) -> str | None:
    """The MSST model family a config's `model:` section describes: "mdx23c",
    "mel_band_roformer", "bs_roformer", or None. Not `num_subbands` or `audio: dim_f`
    alone: MSST's segm_models / torchseg configs have them too."""
    if any(k in model for k in _MDX23C_OWN_KEYS):
        return "mdx23c"
    if "band_SR" in model or "num_dplayer" in model:
        return "scnet"
    if "num_bands" in model:
        return "mel_band_roformer"
    if "freqs_per_bands" in model or "dim" in model:
        return "bs_roformer"
    return None


def _mdx23c_kwargs(model: Mapping[str, Any], audio: Mapping[str, Any], n_outputs: int,
                   name: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """TFCTDFNet's keyword arguments from an MDX23C config (and notes on what is
    ignored); ModelError naming the first missing setting."""
    for section, keys, label in ((model, _MDX23C_MODEL_KEYS[:-2], "model"),
                                 (audio, _MDX23C_AUDIO_KEYS, "audio")):
        missing = [k for k in keys if k not in section]
        if missing:
            raise ModelError(f"{name}: an MDX23C config needs '{label}: {missing[0]}' "
                             f"(missing: {', '.join(missing)})")
    kwargs = {k: model[k] for k in _MDX23C_MODEL_KEYS if k in model}
    if isinstance(kwargs["scale"], list):
        kwargs["scale"] = tuple(kwargs["scale"])
    for key in ("norm", "act"):
        if key in kwargs and not isinstance(kwargs[key], str):
            raise ModelError(f"{name}: 'model: {key}' must be a name, not "
                             f"{str(kwargs[key])[:40]!r}")
    kwargs.update({k: audio[k] for k in _MDX23C_AUDIO_KEYS})
    kwargs["audio_channels"] = audio.get("num_channels", 2)
    kwargs["num_stems"] = n_outputs
    ignored = sorted(str(k) for k in model if k not in _MDX23C_MODEL_KEYS)
    notes = ((f"model settings ignored, as MSST ignores them: {', '.join(ignored)}",)
             if ignored else ())
    return kwargs, notes


def parse_roformer_config(text: str, name: str = "config.yaml",
                          architecture: str | None = None) -> RoformerConfig:
    """Read an MSST / audio-separator YAML config of a BS-RoFormer, Mel-Band RoFormer or
    MDX23C (TFC-TDF v3); ModelError naming `name` when it is not one, or not of
    `architecture` when one is given. The family is told by the `model:`/`audio:` keys.
    `!!python/tuple` tags (MSST writes them; a safe loader refuses them) are read as
    plain lists."""
    try:
        cfg = safe_yaml_loads(_TUPLE_TAG.sub("", text), name)
    except YamlFileError as exc:
        raise ModelError(str(exc)) from None
    except yaml.YAMLError as exc:  # e.g. control characters, refused before parsing starts
        reason = " ".join(str(exc).split())[:120]
        raise ModelError(f"{name}: not a YAML config ({reason})") from None
    if not isinstance(cfg, Mapping):
        raise ModelError(f"{name}: not a RoFormer, MDX23C or SCNet config (no 'model:' section)")
    model = dict(_section(cfg, "model", name))
    audio = _section(cfg, "audio", name)
    training = _section(cfg, "training", name)
    inference = _section(cfg, "inference", name)
    arch = detect_architecture(model)
    if arch is None:
        raise ModelError(f"{name}: not a RoFormer, MDX23C or SCNet config (its 'model:' "
                         "section has none of 'num_bands', 'freqs_per_bands', 'num_scales', "
                         "'band_SR')")
    if architecture is not None and arch != architecture:
        if architecture not in ARCHITECTURES:
            raise ModelError(f"unknown architecture {architecture[:40]!r} (known: "
                             f"{', '.join(ARCHITECTURES)})")
        raise ModelError(f"{name}: its settings describe {FAMILY_NAMES[arch]}, not "
                         f"{FAMILY_NAMES[architecture]}; the files belong to another model")
    for key in ("freqs_per_bands", "multi_stft_resolutions_window_sizes"):
        if isinstance(model.get(key), list):
            model[key] = tuple(model[key])
    instruments = training.get("instruments")
    if (not isinstance(instruments, list) or not instruments
            or not all(isinstance(i, str) and i for i in instruments)
            or len(set(instruments)) != len(instruments)):
        raise ModelError(f"{name}: 'training: instruments' must be a list of distinct names")
    target = training.get("target_instrument")
    complement = None
    if target:
        if not isinstance(target, str) or target not in instruments:
            raise ModelError(f"{name}: target_instrument {str(target)[:40]!r} is not one of "
                             f"its instruments {instruments}")
        sources = (target,)
        rest = [i for i in instruments if i != target]
        complement = rest[0] if len(rest) == 1 else ("other" if target != "other"
                                                     else "instrumental")
    else:
        sources = tuple(instruments)
    notes: tuple[str, ...] = ()
    if arch == "mdx23c":
        model, notes = _mdx23c_kwargs(model, audio, len(sources), name)
        if model["audio_channels"] != 2:
            raise ModelError(f"{name}: mono MDX23C models (audio num_channels "
                             f"{str(model['audio_channels'])[:20]}) are not supported; "
                             "Stemwright separates stereo")
    elif arch == "scnet":
        model = check_scnet_config(model, name)
        stems = len(model.get("sources", SCNET_DEFAULT_SOURCES))
        if stems != len(sources):
            raise ModelError(f"{name}: the model has {stems} sources but the config names "
                             f"{len(sources)} output(s) ({', '.join(sources)})")
        if model.get("audio_channels", 2) != 2:
            raise ModelError(f"{name}: mono SCNet models (audio_channels "
                             f"{str(model['audio_channels'])[:20]}) are not supported; "
                             "Stemwright separates stereo")
    else:
        stems = model.get("num_stems", 1)
        if stems != len(sources):
            raise ModelError(f"{name}: the model has num_stems {stems} but the config names "
                             f"{len(sources)} output(s) ({', '.join(sources)})")
        if not model.get("stereo", False):
            raise ModelError(f"{name}: mono RoFormers (stereo: false) are not supported; "
                             "Stemwright separates stereo")
    rate = _int(audio, "sample_rate", 44100, name, 1000, 384000)
    chunk = inference.get("chunk_size", audio.get("chunk_size", 352800))
    chunk = _int({"chunk_size": chunk}, "chunk_size", 0, name, 1024, 64 * rate)
    overlap = _int(inference, "num_overlap", 2, name, 1, 64)
    normalize = inference.get("normalize", False) is True
    return RoformerConfig(arch, model, sources, rate, chunk, overlap, normalize, complement,
                          notes)


#: The same parser under a name for every family it reads.
parse_msst_config = parse_roformer_config


def read_roformer_config(path: str | os.PathLike[str],
                         architecture: str | None = None) -> RoformerConfig:
    """`parse_roformer_config` of a file, its size checked before it is read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ModelError(f"{path.name}: {size} bytes is far too big for a model "
                             "config; it is not one")
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if b"\0" in data or data[:4] == b"PK\x03\x04":
        raise ModelError(f"{path.name}: binary data, not a YAML config (is it the checkpoint? "
                         "give the .ckpt first and its .yaml with --config)")
    text = data.decode("utf-8", errors="replace")
    return parse_roformer_config(text, path.name, architecture)


def mapping_for_instruments(native: Sequence[str]) -> StemMapping:
    """StemMapping of a RoFormer's sources onto the six stems (guitar -> electric guitar,
    piano/instrumental/karaoke -> other, ...); ModelError for a name it cannot place."""
    targets: dict[str, str] = {}
    unknown = []
    for src in native:
        key = src.strip().lower().replace("-", "_").replace(" ", "_")
        if key not in INSTRUMENT_STEMS:
            unknown.append(src)
        elif INSTRUMENT_STEMS[key] != src:
            targets[src] = INSTRUMENT_STEMS[key]
    if unknown:
        raise ModelError(f"the model's instruments {', '.join(map(repr, unknown))} have no "
                         "Stemwright stem (known: " + ", ".join(sorted(INSTRUMENT_STEMS))
                         + ")")
    return StemMapping(tuple(native), targets)


def load_roformer(checkpoint: str | os.PathLike[str], config: str | os.PathLike[str],
                  architecture: str | None = None) -> tuple[torch.nn.Module, RoformerConfig]:
    """The network of a `.ckpt` + YAML pair (RoFormer or MDX23C, told by the YAML; must
    be `architecture` when given), safely loaded and validated (eval mode)."""
    from ..zoo.checkpoint import load_roformer_checkpoint  # lazy: zoo imports separation

    cfg = read_roformer_config(config, architecture)
    model = load_roformer_checkpoint(checkpoint, _ARCHITECTURES[cfg.architecture],
                                     cfg.model_kwargs)
    return model, cfg


def fade_window(chunk: int, fade: int) -> np.ndarray:
    """MSST's `_getWindowingArray`: ones with linear fades of `fade` samples (float32, the
    values torch.linspace gives, so sums match the reference exactly)."""
    window = torch.ones(chunk)
    if fade > 0:
        window[-fade:] = torch.linspace(1, 0, fade)
        window[:fade] = torch.linspace(0, 1, fade)
    return window.numpy()


def demix(forward: ChunkForward, mix: np.ndarray, n_sources: int, chunk: int, step: int,
          device: torch.device, tracker: ProgressTracker | None = None,
          cancel: CancelCheck | None = None, batch_size: int = 1,
          on_final: FinalRegionHook | None = None) -> np.ndarray:
    """MSST's generic `demix` over `mix` [C, T] -> [S, C, T] (see the module docstring).

    `on_final(region [S, C, n], start)` gets each region of the result (song coordinates)
    as soon as no later chunk touches it; the regions tile [0, T) in order.
    """
    if chunk < 10 or not 1 <= step <= chunk:
        raise ValueError("chunk must be at least 10 samples and step in [1, chunk]")
    channels, length = mix.shape
    fade = chunk // 10
    border = chunk - step
    pad = border if (length > 2 * border and border > 0) else 0
    padded = np.pad(mix, ((0, 0), (pad, pad)), mode="reflect") if pad else mix
    total = padded.shape[-1]
    base = fade_window(chunk, fade)
    starts = list(range(0, total, step))
    result = allocate((n_sources, channels, total))
    counter = np.zeros(total, dtype=np.float32)
    reported = 0  # song samples already given to on_final
    done = pad  # result[..., pad:done] is divided by the windows already (in place)
    k = 0
    while k < len(starts):
        check_cancel(cancel)
        batch = starts[k:k + batch_size]
        parts = []
        for i in batch:
            part = padded[:, i:i + chunk]
            n = part.shape[-1]
            if n < chunk:
                mode = "reflect" if n > chunk // 2 else "constant"
                part = np.pad(part, ((0, 0), (0, chunk - n)), mode=mode)
            parts.append(part)
        x = torch.from_numpy(np.stack(parts).astype(np.float32, copy=False))
        with torch.inference_mode():
            y = forward(x.to(device)).float().cpu().numpy()
        if y.shape[1] != n_sources or y.shape[-1] < chunk:
            raise ValueError(f"model returned {tuple(y.shape)} for {len(batch)} chunk(s) of "
                             f"{chunk} samples, expected {n_sources} sources")
        for j, i in enumerate(batch):
            n = min(chunk, total - i)
            window = base
            if i == 0 or i + step >= total:
                window = base.copy()
                if i == 0:
                    window[:fade] = 1
                else:
                    window[-fade:] = 1
            result[..., i:i + n] += y[j, ..., :n] * window[:n]
            counter[i:i + n] += window[:n]
        k += len(batch)
        if on_final is not None:
            end = length if k >= len(starts) else min(max(starts[k] - pad, 0), length)
            if end > reported:  # no later chunk touches this region: final
                _normalise(result, counter, done, end + pad)
                done = end + pad
                on_final(np.array(result[..., reported + pad:done]), reported)
                reported = end
        if tracker is not None:
            tracker.advance(len(batch))
    _normalise(result, counter, done, pad + length)
    return result[..., pad:pad + length]


def _normalise(result: np.ndarray, counter: np.ndarray, a: int, b: int) -> None:
    """result[..., a:b] /= counter[a:b] in place, 0 where nothing was added (MSST's
    nan_to_num): no second song-sized buffer."""
    if b <= a:
        return
    region = result[..., a:b]
    with np.errstate(invalid="ignore", divide="ignore"):
        region /= counter[a:b]
    np.nan_to_num(region, copy=False, nan=0.0)


class RoformerSeparator(Separator):
    """A BS-/Mel-Band RoFormer or MDX23C network run the way MSST's inference runs it."""

    min_segment = 1.0

    def __init__(self, model: torch.nn.Module, config: RoformerConfig, name: str,
                 mapping: StemMapping | None = None, **kwargs: Any) -> None:
        if getattr(model, "num_stems", len(config.sources)) != len(config.sources):
            raise ModelError(f"{name}: the network has {model.num_stems} outputs but its "
                             f"config names {len(config.sources)}")
        self.name = name
        self.config = config
        self.model = model.eval()
        self.samplerate = config.samplerate
        if mapping is None:
            mapping = mapping_for_instruments(config.native)
        elif set(mapping.native) != set(config.native):
            raise ModelError(f"{name}: its config names the sources {list(config.native)}, "
                             f"not the expected {list(mapping.native)}; the files belong to "
                             "another model")
        elif tuple(mapping.native) != config.native:  # the same sources, the file's order
            mapping = StemMapping(config.native, dict(mapping.targets))
        self.mapping = mapping
        self.default_segment = config.chunk_size / config.samplerate
        self.default_overlap = 1.0 - 1.0 / config.num_overlap
        super().__init__(**kwargs)
        self.to(self.device)

    def to(self, device: torch.device) -> None:
        self.device = device
        self.model.to(device)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            y = self.model(x).float()
        if self.config.complement:
            y = torch.cat([y, (x.float() - y.sum(dim=1)).unsqueeze(1)], dim=1)
        return y

    def passes(self) -> list[ModelPass]:
        return [ModelPass(self._forward)]

    def chunk_and_step(self, segment: float) -> tuple[int, int]:
        """Chunk and step in samples: the config's exactly at the default settings."""
        cfg = self.config
        if math.isclose(segment, self.default_segment):
            chunk = cfg.chunk_size
        else:
            chunk = max(10, int(round(segment * self.samplerate)))
            snap = getattr(self.model, "valid_chunk", None)
            if snap is not None:  # MDX23C: a length its U-Net takes whole
                chunk = snap(chunk)
        if math.isclose(self.overlap, self.default_overlap):
            return chunk, max(1, chunk // cfg.num_overlap)
        return chunk, max(1, int(round(chunk * (1.0 - self.overlap))))

    def prepare(self, mix: np.ndarray) -> tuple[np.ndarray, object]:
        if not self.config.normalize:
            return mix, None
        mono = mix.mean(axis=0)
        mean, std = float(mono.mean()), float(mono.std())
        if not std > 1e-8:
            std = 1.0
        return ((mix - mean) / std).astype(np.float32), (mean, std)

    def _infer_once(self, mix: np.ndarray, segment: float, batch: int,
                    progress: ProgressCallback | None, cancel: CancelCheck | None,
                    seconds: float, on_final: FinalRegionHook | None = None) -> np.ndarray:
        chunk, step = self.chunk_and_step(segment)
        border = chunk - step
        pad = border if (mix.shape[-1] > 2 * border and border > 0) else 0
        count = len(range(0, mix.shape[-1] + 2 * pad, step))
        tracker = ProgressTracker(progress, count, seconds)
        tracker.report()
        return demix(self._forward, mix, len(self.mapping.native), chunk, step, self.device,
                     tracker, cancel, batch, on_final)


def load_roformer_separator(checkpoint: str | os.PathLike[str],
                            config: str | os.PathLike[str], name: str,
                            mapping: StemMapping | None = None,
                            architecture: str | None = None,
                            **kwargs: Any) -> RoformerSeparator:
    """A ready separator from a RoFormer or MDX23C `.ckpt` and its YAML config."""
    model, cfg = load_roformer(checkpoint, config, architecture)
    return RoformerSeparator(model, cfg, name, mapping=mapping, **kwargs)


#: Names for every family these serve (the RoFormer names stay: zoo.catalog uses them).
MsstConfig = RoformerConfig
MsstSeparator = RoformerSeparator
load_msst = load_roformer
load_msst_separator = load_roformer_separator
read_msst_config = read_roformer_config

__all__ = ["ARCHITECTURES", "FAMILY_NAMES", "INSTRUMENT_STEMS", "MsstConfig", "MsstSeparator",
           "RoformerConfig", "RoformerSeparator", "demix", "detect_architecture",
           "fade_window", "load_msst", "load_msst_separator", "load_roformer",
           "load_roformer_separator", "mapping_for_instruments", "parse_msst_config",
           "parse_roformer_config", "read_msst_config", "read_roformer_config"]
