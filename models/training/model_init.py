"""The model a run trains (`init_model`): an architecture from `architectures.ARCHITECTURES`
trained from scratch, a Stemwright checkpoint, an official demucs file, or an installed zoo
model (htdemucs, htdemucs_6s, umxhq, umxl, user models). When its stems differ from the
ones asked for, `adapt_heads` keeps the output heads that match (guitar -> electric
guitar, piano merged into other, ...) and starts new stems as a share of "other"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..architectures import registry as archs
from ..errors import ModelError
from ..stems import STEM_IDS, get_stem, mapping_for
from ..zoo import catalog as zoo
from ..zoo.checkpoint import checkpoint_format, load_checkpoint, load_demucs_checkpoint
from .config import TrainingError


@dataclass
class ModelInit:
    """A model ready to train and how to save it."""

    model: nn.Module
    architecture: str  # checkpoint architecture name
    kwargs: dict[str, Any]
    sources: list[str]  # canonical stem ids, the model's output order
    origin: dict[str, Any]  # provenance: where the weights came from

    @property
    def samplerate(self) -> int:
        return int(getattr(self.model, "samplerate", 44100))


def _canonical(sources: Sequence[str]) -> dict[str, str]:
    """{native source name: canonical stem id} ("guitar" -> electric_guitar, "piano" ->
    other), as the zoo maps them."""

    mapping = mapping_for(list(sources))
    return {s: mapping.target_of(s) for s in sources}


def _wanted(stems: Sequence[str] | None, native: Sequence[str]) -> list[str]:
    if stems:
        out = [get_stem(s).id for s in stems]
    else:
        produced = set(_canonical(native).values())
        out = [s for s in STEM_IDS if s in produced]
    if len(set(out)) != len(out):
        raise TrainingError(f"a stem is named twice in {list(stems or out)}")
    return out


def init_model(spec: str, stems: Sequence[str] | None = None, small: bool = False,
               scratch: bool = False, kwargs: dict[str, Any] | None = None,
               samplerate: int | None = None, seed: int = 0) -> ModelInit:
    """Build the model to train from `spec`: an architecture name (fresh weights), a
    Stemwright checkpoint or demucs file, or an installed zoo model. `stems` (canonical
    ids) is the stem set to train; other heads are adapted (`adapt_heads`)."""

    overrides = dict(kwargs or {})
    if samplerate:
        overrides["samplerate"] = int(samplerate)
    path = Path(spec).expanduser()
    torch.manual_seed(seed)
    if spec in archs.ARCHITECTURES:
        a = archs.get_architecture(spec)
        sources = _wanted(stems, a.stems)
        cfg = archs.config(spec, small, **overrides, sources=sources)
        try:
            model = a.cls(**cfg)
        except (TypeError, ValueError) as exc:
            raise TrainingError(f"{spec} cannot be built with these settings ({exc})") from None
        return ModelInit(model, a.arch, cfg, sources, {"from": "scratch", "architecture": spec,
                                                         "small": small})
    if path.is_file():
        return _from_file(path, stems, overrides, {"from": "file", "path": str(path.resolve())})
    try:
        entry = zoo.get_entry(spec)
    except ModelError:
        raise TrainingError(f"--model '{spec}' is neither an architecture "
                            f"({', '.join(archs.ARCHITECTURES)}), a checkpoint file nor a "
                            "model of the zoo") from None
    origin = {"from": "zoo", "model": spec}
    if entry.family == "classic":
        raise TrainingError(f"'{spec}' is a training-free separator; pick an architecture "
                            f"({', '.join(archs.ARCHITECTURES)}) or a neural model")
    if entry.family == "recipe":
        raise TrainingError(f"'{spec}' is a recipe (stems taken from several models); "
                            "fine-tune one of its models instead "
                            f"(`stemwright models info {spec}` lists them)")
    if entry.family == "roformer":
        raise TrainingError(f"'{spec}' is a RoFormer: fine-tuning RoFormers is not supported "
                            "yet; separate with it, or pick an architecture "
                            f"({', '.join(archs.ARCHITECTURES)}) or another neural model")
    if entry.family == "demucs" and scratch:
        from demucs.htdemucs import HTDemucs

        from ..separation.demucs_backend import PUBLISHED_DEMUCS as PUBLISHED
        mapping, cfg = PUBLISHED[spec]
        sources = _wanted(stems, mapping.native)
        cfg = dict(cfg, **overrides, sources=sources)
        return ModelInit(HTDemucs(**cfg), "htdemucs", cfg, sources,
                         {"from": "scratch", "architecture": spec})
    if not zoo.is_installed(spec):
        raise TrainingError(f"model '{spec}' is not downloaded; run `stemwright models "
                            f"download {spec}` first (or train it from scratch with --scratch)")
    folder = zoo.model_dir(spec)
    if entry.family == "demucs":
        if len(entry.files) > 1:
            raise TrainingError(f"'{spec}' is a bag of {len(entry.files)} models; fine-tune "
                                "htdemucs instead")
        return _from_file(folder / entry.files[0].filename, stems, overrides, origin)
    if entry.family == "openunmix":
        return _from_openunmix(spec, folder, entry, stems, origin)
    return _from_file(zoo.checkpoint_path(spec), stems, overrides, origin)


def _from_file(path: Path, stems: Sequence[str] | None, overrides: dict[str, Any],
               origin: dict[str, Any]) -> ModelInit:

    fmt = checkpoint_format(path)
    if fmt == "stemwright":
        model, meta = load_checkpoint(path)
        arch, kwargs, native = meta.architecture, dict(meta.kwargs), list(meta.stems)
    elif fmt in ("torch", "demucs-safetensors"):
        model = load_demucs_checkpoint(path)
        args, kwargs = getattr(model, "_init_args_kwargs", ((), {}))
        if args:
            raise TrainingError(f"{path.name}: positional constructor arguments are not "
                                "supported")
        arch, kwargs, native = type(model).__name__.lower(), dict(kwargs), list(model.sources)
    else:
        raise TrainingError(f"{path.name} is neither a Stemwright checkpoint nor a demucs "
                            "model file")
    if overrides.get("samplerate") and overrides["samplerate"] != getattr(model, "samplerate",
                                                                          None):
        raise TrainingError(f"{path.name} works at {model.samplerate} Hz; the sample rate "
                            "of a trained model cannot be changed")
    sources = _wanted(stems, native)
    origin = dict(origin, architecture=arch, stems=native)
    if sources == native:
        return ModelInit(model.train(), arch, kwargs, sources, origin)
    kwargs = dict(kwargs, sources=sources)
    new = type(model)(**kwargs)
    origin["heads"] = adapt_heads(model, native, new, sources, kwargs)
    return ModelInit(new.train(), arch, kwargs, sources, origin)


def _from_openunmix(name: str, folder: Path, entry, stems: Sequence[str] | None,
                    origin: dict[str, Any]) -> ModelInit:
    """Open-Unmix targets (one network per stem) as an `OpenUnmixStems` model."""
    from ..architectures.openunmix6 import OpenUnmixStems
    from ..zoo.checkpoint import load_openunmix_target

    targets = {f.target: load_openunmix_target(folder / f.filename) for f in entry.files}
    first = next(iter(targets.values()))
    kwargs = dict(sources=list(targets), hidden_size=int(first.hidden_size),
                  nb_layers=int(first.lstm.num_layers), n_fft=4096, n_hop=1024,
                  bandwidth=16000.0, samplerate=int(entry.samplerate))
    model = OpenUnmixStems(**kwargs)
    for src, target in targets.items():
        mine = model.unmix.target_models[src]
        if mine.fc1.weight.shape != target.fc1.weight.shape:
            raise TrainingError(f"'{name}': its networks do not fit Open-Unmix's standard "
                                "configuration")
        mine.load_state_dict(target.state_dict())
    native = list(targets)
    sources = _wanted(stems, native)
    origin = dict(origin, architecture="openunmix6", stems=native)
    if sources == native:
        return ModelInit(model.train(), "openunmix6", kwargs, sources, origin)
    kwargs = dict(kwargs, sources=sources)
    new = OpenUnmixStems(**kwargs)
    origin["heads"] = adapt_heads(model, native, new, sources, kwargs)
    return ModelInit(new.train(), "openunmix6", kwargs, sources, origin)


def head_plan(old: Sequence[str], new: Sequence[str]) -> dict[str, list[tuple[str, float]]]:
    """{new source: [(old source, weight)]}: which old outputs each new output starts as.

    A new stem takes the old sources that map onto it (several are summed: htdemucs_6s'
    piano and other -> other); old sources whose stem the new set lacks go into "other";
    new stems with no old source start as an equal share of "other" (other + the new
    stems then still add up to the old "other")."""
    canon = _canonical(old)
    plan: dict[str, list[tuple[str, float]]] = {}
    for n in new:
        same = [o for o in old if o == n]
        plan[n] = [(o, 1.0) for o in (same or [o for o in old if canon[o] == n])]
    used = {o for parts in plan.values() for o, _ in parts}
    if "other" in plan:
        plan["other"] += [(o, 1.0) for o in old if o not in used]
    borrowers = [n for n in new if not plan[n]]
    if borrowers and plan.get("other"):
        share = 1.0 / (len(borrowers) + 1)
        base = plan["other"]
        for n in [*borrowers, "other"]:
            plan[n] = [(o, w * share) for o, w in base]
    return plan


def _heads(model: nn.Module, sources: Sequence[str]) -> list[str]:
    """The sources that have output rows (difference-output models derive the last)."""
    return list(sources)[:int(getattr(model, "n_predicted", len(sources)))]


def _probe_states(cls: type[nn.Module], kwargs: dict[str, Any]
                  ) -> tuple[dict, dict, int, int]:
    """State dicts of `cls(**kwargs)` with two and three sources, and their head counts
    (to find the tensors that hold one block per output head)."""
    out = []
    for n in (2, 3):
        kw = dict(kwargs, sources=list(STEM_IDS[:n]))
        try:
            with torch.device("meta"):
                probe = cls(**kw)
        except Exception:  # noqa: BLE001 - some constructors need real tensors
            probe = cls(**kw)
        out.append((probe.state_dict(), len(_heads(probe, kw["sources"]))))
    (a, ha), (b, hb) = out
    return a, b, ha, hb


@torch.no_grad()
def adapt_heads(old: nn.Module, old_sources: Sequence[str], new: nn.Module,
                new_sources: Sequence[str], kwargs: dict[str, Any]) -> dict[str, str]:
    """Copy `old`'s weights into `new` (same architecture, other stems), keeping matching
    output heads and initialising new ones by `head_plan`; `kwargs` built `new`. Returns
    {new source: how it was initialised} for the provenance.

    Tensors whose size depends on the number of sources are found by building the class
    with two and three sources; along that axis they hold one block per output head.
    Per-stem sub-networks (Open-Unmix) are copied whole; for them and for non-linear heads
    (masks, embeddings) a new stem copies "other" instead of sharing it.
    """
    plan = head_plan(old_sources, new_sources)
    linear = archs.linear_heads(new)
    new_state = new.state_dict()
    old_state = old.state_dict()
    old_heads, new_heads = _heads(old, old_sources), _heads(new, new_sources)
    implicit_other = "other" in new_sources and "other" not in new_heads
    full = plan
    if not linear:  # a copy of one source, the same name first
        plan = {n: [(parts[0][0], 1.0)] if parts else [] for n, parts in plan.items()}
    if implicit_other:  # other is mix minus the rest: new stems start silent
        for n in new_sources:
            if n != "other" and all(o not in old_heads for o, _ in plan[n]):
                plan[n] = []
    two, three, h2, h3 = _probe_states(type(new), kwargs)
    per_source = [k for k in new_state if k not in two or k not in three]
    for key, value in new_state.items():
        if key in per_source:
            continue
        if key not in two or two[key].shape == three[key].shape:
            if key in old_state and old_state[key].shape == value.shape:
                value.copy_(old_state[key])
            continue
        axis = next(i for i, (x, y) in enumerate(zip(two[key].shape, three[key].shape,
                                                     strict=True)) if x != y)
        k = (three[key].shape[axis] - two[key].shape[axis]) // (h3 - h2)
        src = old_state[key].movedim(axis, 0).reshape(len(old_heads), k, -1)
        dst = value.movedim(axis, 0).reshape(len(new_heads), k, -1).clone()
        for j, n in enumerate(new_heads):
            parts = [(old_heads.index(o), w) for o, w in plan[n] if o in old_heads]
            if parts:
                dst[j] = sum(w * src[i] for i, w in parts)
            elif not plan[n]:
                dst[j] = 0.0 if implicit_other else dst[j]
        shape = list(value.movedim(axis, 0).shape)
        value.copy_(dst.reshape(shape).movedim(0, axis))
    if per_source:
        _copy_per_source(old_state, new_state, per_source, old_sources, new_sources, plan,
                         full)
    new.load_state_dict(new_state)
    report: dict[str, str] = {}
    for n in new_sources:
        parts = plan[n]
        if n not in new_heads:
            report[n] = "the mix minus the other stems"
        elif not parts:
            report[n] = "silent at first (inside other)" if implicit_other else "new weights"
        elif linear:
            report[n] = " + ".join(o if w == 1 else f"{w:.3g} x {o}" for o, w in parts)
        else:
            share = full[n][0][1] if per_source and full.get(n) else 1.0
            report[n] = parts[0][0] if parts[0][0] == n else f"copy of {parts[0][0]}"
            report[n] += f" (output x {share:.3g})" if share != 1.0 else ""
    return report


def _copy_per_source(old_state: dict, new_state: dict, keys: list[str],
                     old_sources: Sequence[str], new_sources: Sequence[str],
                     plan: dict[str, list[tuple[str, float]]],
                     full: dict[str, list[tuple[str, float]]]) -> None:
    """Per-stem sub-networks: each new stem's copied from its planned old stem; an
    Open-Unmix output scale is shared the way `head_plan` shares "other"."""
    for key in keys:
        parts = key.split(".")
        hit = [i for i, p in enumerate(parts) if p in new_sources]
        if not hit:
            continue
        i = hit[-1]
        n = parts[i]
        if not plan.get(n):
            continue
        o = plan[n][0][0]
        old_key = ".".join([*parts[:i], o, *parts[i + 1:]])
        if old_key not in old_state or old_state[old_key].shape != new_state[key].shape:
            continue
        value = old_state[old_key].clone()
        share = full[n][0][1] if full.get(n) else 1.0
        if share != 1.0 and parts[-1] in ("output_scale", "output_mean"):
            value = value * share  # relu(share * x) = share * relu(x): outputs are shared
        new_state[key].copy_(value)


__all__ = ["ModelInit", "adapt_heads", "head_plan", "init_model"]
