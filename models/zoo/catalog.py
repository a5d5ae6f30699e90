"""The model zoo: what models exist, where their files live, and how to load them.

Pretrained files are downloaded on demand from their official locations into a per-user
cache (`cache_dir()`), verified by checksum, or imported from a local file for offline
machines. Set STEMWRIGHT_MODEL_MIRROR to a base URL to fetch the same file names from a
mirror instead (e.g. an institution's server).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stemwright.resources import resource_path

from ..classic.teaching_facts import TEACHING_FACTS
from ..errors import ModelError, StemwrightError
from ..progress import CancelCheck
from ..stems import DEMUCS_SIX_STEMS, FOUR_STEMS, STEM_IDS, StemMapping, mapping_for
from . import recipes
from .community import ROFORMER_ENTRIES, VR_SETTINGS
from .download import download_file, sha256_file
from .entries import ModelEntry, RemoteFile

if TYPE_CHECKING:
    from ..separation.separator import Separator

DEMUCS_ROOT = "https://dl.fbaipublicfiles.com/demucs/"
UMXHQ_ROOT = "https://zenodo.org/records/3370489/files/"
UMXL_ROOT = "https://zenodo.org/records/5069601/files/"
#: the model shipped inside the package (resources/models/), trained by us
EMBEDDED_MODEL = "stemwright6"
#: the default of `stemwright separate` and the app: the embedded model, shipped because
#: it beats classic on every stem classic makes (packaging/ship_default_model.py checks)
DEFAULT_MODEL = EMBEDDED_MODEL


def embedded_checkpoint() -> Path:
    """The embedded default model's Stemwright checkpoint (resources/models/)."""
    return resource_path(f"models/{EMBEDDED_MODEL}.safetensors")


def model_card() -> Path:
    """The embedded model's card: data, training recipe, metrics, limits."""
    return resource_path(f"models/{EMBEDDED_MODEL}.md")


def _embedded_size_mb() -> float:
    try:
        return round(embedded_checkpoint().stat().st_size / 1e6, 1)
    except OSError:
        return 0.0


def _demucs(sig: str) -> RemoteFile:
    return RemoteFile(DEMUCS_ROOT + "hybrid_transformer/" + sig)


_DEMUCS_LICENCE = "MIT (code and weights, Meta Platforms)"
_DEMUCS_SRC = "Rouard, Massa, Defossez: Hybrid Transformers for Music Source Separation (2023)"
_UMX_ORDER = ("vocals", "drums", "bass", "other")

ZOO: dict[str, ModelEntry] = {e.name: e for e in (
    ModelEntry(
        EMBEDDED_MODEL, "Stemwright six stems (built in)", "embedded", StemMapping(STEM_IDS),
        44100, _embedded_size_mb(), "MIT (Stemwright; trained only on generated songs)",
        "Stemwright: MaskNet trained on songs made by `stemwright synth`; see its model "
        "card (resources/models/stemwright6.md)",
        "All six stems, offline, fast on a CPU. Trained on generated songs only: it knows "
        "synthesizer timbres better than real recordings."),
    ModelEntry(
        "classic", "Classic (no training)", "classic", FOUR_STEMS, 44100, 0.0,
        "MIT (Stemwright)", "Stemwright: HPSS + REPET-SIM, after FitzGerald (2010), Rafii & "
        "Pardo (2012)",
        "Training-free harmonic/percussive and repetition-based separation. Works offline "
        "on any song; a teaching baseline."),
    ModelEntry(
        "htdemucs", "Hybrid Transformer Demucs", "demucs", FOUR_STEMS, 44100, 84.0,
        _DEMUCS_LICENCE, _DEMUCS_SRC,
        "Demucs v4, four stems. Strong all-round quality.",
        (_demucs("955717e8-8726e21a.th"),)),
    ModelEntry(
        "htdemucs_6s", "Hybrid Transformer Demucs, 6 sources", "demucs", DEMUCS_SIX_STEMS,
        44100, 54.8, _DEMUCS_LICENCE, _DEMUCS_SRC,
        "Demucs v4 with guitar and piano: guitar becomes electric guitar, piano joins other.",
        (_demucs("5c90dfd2-34c22ccb.th"),)),
    ModelEntry(
        "htdemucs_ft", "Hybrid Transformer Demucs, fine-tuned", "demucs", FOUR_STEMS, 44100,
        336.0, _DEMUCS_LICENCE, _DEMUCS_SRC,
        "A bag of four fine-tuned Demucs v4 models, one per stem: best quality, 4x slower.",
        tuple(_demucs(f) for f in ("f7e0c4bc-ba3fe64a.th", "d12395a8-e57c48e6.th",
                                   "92cfc3b6-ef3bcb9c.th", "04573f0d-f3cf25b2.th")),
        ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0),
         (0.0, 0.0, 0.0, 1.0))),
    ModelEntry(
        "umxhq", "Open-Unmix HQ", "openunmix", StemMapping(_UMX_ORDER), 44100, 136.0,
        "MIT (code and weights, sigsep)", "Stoter et al.: Open-Unmix (2019), trained on "
        "MUSDB18-HQ; doi:10.5281/zenodo.3370489",
        "Spectrogram BiLSTM model, one network per stem, Wiener post-filter.",
        tuple(RemoteFile(UMXHQ_ROOT + f, f.split("-")[0]) for f in (
            "vocals-b62c91ce.pth", "drums-9619578f.pth", "bass-8d85a5bd.pth",
            "other-b52fbbf7.pth"))),
    ModelEntry(
        "umxl", "Open-Unmix L", "openunmix", StemMapping(_UMX_ORDER), 44100, 432.0,
        "CC BY-NC-SA 4.0 (weights: non-commercial use only)", "Stoter et al.: Open-Unmix, "
        "large model trained on extra data; doi:10.5281/zenodo.5069601",
        "Larger Open-Unmix trained on more data; better than umxhq, non-commercial licence.",
        tuple(RemoteFile(UMXL_ROOT + f, f.split("-")[0]) for f in (
            "vocals-bccbd9aa.pth", "drums-69e0ebd4.pth", "bass-2ca1ce51.pth",
            "other-c8c5b3e6.pth"))),
)}


def _register_teaching() -> None:
    """The training-free teaching separators (classic/teaching.py): NMF, HPSS, REPET."""
    for name, f in TEACHING_FACTS.items():
        ZOO[name] = ModelEntry(name, f.title, "classic", f.mapping, f.samplerate, 0.0,
                               "MIT (Stemwright)", f.source, f.description)


_register_teaching()


def cache_dir() -> Path:
    """Per-user cache: $STEMWRIGHT_CACHE_DIR, else the platform's user cache folder."""
    env = os.environ.get("STEMWRIGHT_CACHE_DIR")
    if env:
        return Path(env)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "stemwright"


def model_dir(name: str) -> Path:
    """Folder holding one model's files."""
    return cache_dir() / "models" / name


def list_models() -> list[ModelEntry]:
    """Registry entries plus models the user imported, registry first (the embedded
    model only when its file is there; a community RoFormer of ROFORMER_ENTRIES only once
    imported: before that it is `import_only_models()`)."""
    registry = [e for e in ZOO.values() if e.family != "embedded" or is_installed(e.name)]
    registry += [e for e in ROFORMER_ENTRIES.values()
                 if e.name not in ZOO and is_installed(e.name)]
    return registry + [e for e in _custom_entries()
                       if e.name not in ZOO and e.name not in ROFORMER_ENTRIES] + [
        recipes.entry_for(r, _self()) for r in recipes.recipes(_self())]


def _self():
    return sys.modules[__name__]


def find_model(name: str) -> ModelEntry | None:
    """The model (not a recipe) called `name`, listed or import-only; None if none."""
    return ZOO.get(name) or ROFORMER_ENTRIES.get(name) or next(
        (e for e in _custom_entries() if e.name == name), None)


def import_only_models() -> list[ModelEntry]:
    """Known models not installed that cannot be downloaded (no verified checksum yet):
    the user fetches their files by hand (`import_hint`) and runs `models import`."""
    return [e for e in ROFORMER_ENTRIES.values()
            if e.name not in ZOO and not is_installed(e.name)]


def import_hint(entry: ModelEntry) -> str:
    """How to install an import-only model by hand, in one sentence."""
    files = {f.target: f for f in entry.files}
    ckpt, config = files.get("checkpoint"), files.get("config")
    if ckpt is not None and config is None and len(entry.files) == 1:
        return (f"download {ckpt.url} yourself and run `stemwright models import "
                f"{entry.name} {ckpt.filename}`")
    if ckpt is None or config is None:
        return f"import its file with `stemwright models import {entry.name} FILE`"
    return (f"download the two files from {ckpt.url} and {config.url} yourself and run "
            f"`stemwright models import {entry.name} {ckpt.filename} --config "
            f"{config.filename}`")


def check_downloadable(name: str) -> ModelEntry:
    """The entry of `name` if it can be downloaded; ModelError (one line) if it cannot."""
    entry = get_entry(name)
    if not entry.files:
        raise ModelError(f"model '{name}' has no files to download")
    if not entry.downloadable:
        raise ModelError(f"{name}: no verified checksum yet, so Stemwright does not "
                         f"download it; {import_hint(entry)}")
    return entry


def get_entry(name: str) -> ModelEntry:
    """The entry called `name`; ModelError listing the choices if there is none."""
    if name in ZOO:
        return ZOO[name]
    if name in ROFORMER_ENTRIES:
        return ROFORMER_ENTRIES[name]
    recipe = recipes.find(name, _self())
    if recipe is not None:
        return recipes.entry_for(recipe, _self())
    for entry in list_models():
        if entry.name == name:
            return entry
    names = ", ".join(e.name for e in list_models() + import_only_models())
    raise ModelError(f"unknown model '{name}' (available: {names})")


def is_installed(name: str) -> bool:
    """True when every file the model needs is in the cache."""
    entry = get_entry(name)
    if entry.family == recipes.FAMILY:
        return not recipes.missing_models(recipes.find(name, _self()), _self())
    if entry.family in ("stemwright", "embedded"):
        return checkpoint_path(name).is_file()
    if entry.family == "roformer" and not entry.files:  # a user's: its record's files
        try:
            return all(p.is_file() for p in roformer_files(name))
        except ModelError:
            return False
    return all((model_dir(name) / f.filename).exists() for f in entry.files)


def _url(file: RemoteFile) -> str:
    mirror = os.environ.get("STEMWRIGHT_MODEL_MIRROR")
    return mirror.rstrip("/") + "/" + file.filename if mirror else file.url


def download_model(name: str, progress: Callable[[int, int | None], None] | None = None,
                   cancel: CancelCheck | None = None) -> Path:
    """Fetch the model's missing files (checksum-verified, atomic); returns its folder.

    `progress(done_bytes, total_bytes)` covers all of the model's files together. For a
    recipe: every missing model it runs, one after the other.
    """
    recipe = recipes.find(name, _self()) if name not in ZOO else None
    if recipe is not None:
        return recipes.download(recipe, _self(), progress, cancel)
    entry = check_downloadable(name)
    folder = model_dir(name)
    missing = [f for f in entry.files if not (folder / f.filename).exists()]
    expected = int(entry.size_mb * 1e6) or None
    done_before = 0
    for file in entry.files:
        if file not in missing:
            continue

        def report(done: int, total: int | None, base: int = done_before) -> None:
            if progress is not None:
                progress(base + done, expected)

        download_file(_url(file), folder / file.filename, file.checksum, progress=report,
                      cancel=cancel, model=name)
        done_before += (folder / file.filename).stat().st_size
    return folder


def remove_model(name: str) -> bool:
    """Delete a model's cached files; returns False when nothing was installed.

    Works on a user model whose checkpoint is unreadable (and so is not listed): removing
    it is how the user gets rid of it. ModelError for unknown names.
    """
    if name in ZOO and ZOO[name].family in ("classic", "embedded"):
        raise ModelError(f"'{name}' is built into Stemwright and cannot be removed")
    folder = model_dir(name)
    if name not in ZOO:
        if not _valid_name(name) or not folder.is_dir():
            get_entry(name)  # raises: unknown model, listing the choices
            return False
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


#: longest user model name (a folder name; file systems allow 255 bytes)
MAX_MODEL_NAME = 100


def _valid_name(name: str) -> bool:
    """A user model's name: letters, digits, - and _ (so it is one folder, never a path),
    at most MAX_MODEL_NAME characters."""
    return (bool(name) and len(name) <= MAX_MODEL_NAME and name.isascii()
            and name.replace("_", "").replace("-", "").isalnum())


def import_model_file(name: str, path: str | Path,
                      config: str | Path | None = None) -> Path:
    """Install a local weight file for model `name`, for machines without internet.

    For a registry model the file must be one of its official files (matched by checksum,
    whatever it is called locally). Any other name imports the file as a new user model:
    a Stemwright checkpoint (.safetensors) or an official demucs file (.th / .safetensors),
    loaded safely and validated before it is installed. A RoFormer (a ROFORMER_ENTRIES
    name, or any new name given `config`) is a `.ckpt`/`.pth` plus its YAML `config`:
    see `import_roformer`; it returns the model's folder.
    """
    src = Path(path)
    if not src.is_file():
        raise StemwrightError(f"{src}: no such file")
    entry = ZOO.get(name) or ROFORMER_ENTRIES.get(name)
    if entry is not None and entry.family == "vr" and config is None:
        return _import_vr(entry, src)
    roformer = entry.family == "roformer" if entry is not None else config is not None
    if roformer:
        if config is None:
            raise ModelError(_needs_yaml(name, src))
        return import_roformer(name, src, config).folder
    if config is not None:
        raise ModelError(f"--config is only for RoFormer models; '{name}' takes its weight "
                         f"file alone (`stemwright models import {name} FILE`)")
    if entry is None and src.suffix.lower() == ".ckpt":
        raise ModelError(_needs_yaml(name, src))
    if name in ZOO:
        entry = ZOO[name]
        if not entry.files:
            raise ModelError(f"model '{name}' has no weight files to import")
        digest = sha256_file(src)
        for file in entry.files:
            if file.checksum and digest.startswith(file.checksum):
                dest = model_dir(name) / file.filename
                _atomic_copy(src, dest)
                return dest
        wanted = ", ".join(f.filename for f in entry.files)
        raise ModelError(f"{src.name} is not an official file of '{name}' (checksum "
                         f"{digest[:8]} matches none of: {wanted})")
    return _import_custom(name, src)


def _import_vr(entry: ModelEntry, src: Path) -> Path:
    """Install the `.pth` of a UVR VR-architecture entry: loaded safely with the entry's
    settings first (a wrong or damaged file is refused), then copied atomically."""
    from ..separation.vr_backend import load_vr_separator

    load_vr_separator(src, name=entry.name, device="cpu", **VR_SETTINGS[entry.name])
    file = entry.files[0]
    if file.checksum and not sha256_file(src).startswith(file.checksum):
        raise ModelError(f"{src.name} is not the official file of '{entry.name}' (its "
                         "checksum differs)")
    dest = model_dir(entry.name) / file.filename
    _atomic_copy(src, dest)
    return dest


def _atomic_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


# -- user models: Stemwright checkpoints and imported demucs files ------------------------

def _custom_checkpoint(name: str) -> Path:
    return model_dir(name) / "model.safetensors"


def checkpoint_path(name: str) -> Path:
    """The Stemwright checkpoint of an embedded or user-trained model."""
    if name in ZOO and ZOO[name].family == "embedded":
        return embedded_checkpoint()
    return _custom_checkpoint(name)


def _import_custom(name: str, src: Path) -> Path:
    import torch

    from .checkpoint import (
        CheckpointMeta,
        checkpoint_format,
        load_checkpoint,
        load_demucs_checkpoint,
        save_checkpoint,
    )

    if not _valid_name(name):
        raise StemwrightError(f"model name '{name[:40]}{'...' if len(name) > 40 else ''}' "
                              f"may only use letters, digits, - and _ (at most "
                              f"{MAX_MODEL_NAME} characters)")
    dest = _custom_checkpoint(name)
    if dest.exists() or _roformer_record(name).exists():
        raise StemwrightError(f"a model called '{name}' is already installed; "
                              f"remove it first (stemwright models remove {name})")
    fmt = checkpoint_format(src)
    if fmt == "stemwright":
        model, meta = load_checkpoint(src)  # its own error says what is wrong with it
    elif fmt == "safetensors":
        raise ModelError(f"{src.name} is a safetensors file without Stemwright or demucs "
                         "metadata (only weights): it cannot be imported as a model")
    elif fmt not in ("torch", "demucs-safetensors"):
        raise ModelError(f"{src.name} is neither a Stemwright checkpoint nor a demucs model "
                         "file (unrecognised format)")
    else:
        try:
            model = load_demucs_checkpoint(src)  # raises a clear ModelError if not one
        except ModelError as exc:
            if src.suffix.lower() not in (".pth", ".pt"):
                raise
            raise ModelError(f"{exc}; if it is a RoFormer, give its YAML config too "
                             f"(`stemwright models import {name} {src.name} --config "
                             "CONFIG.yaml`)") from None
        args, kwargs = getattr(model, "_init_args_kwargs", ((), {}))
        if args:
            raise ModelError(f"{src.name}: positional constructor arguments are not "
                             "supported") from None
        meta = CheckpointMeta(architecture=type(model).__name__.lower(), kwargs=dict(kwargs),
                              stems=list(model.sources), samplerate=int(model.samplerate),
                              provenance={"imported_from": src.name})
    mapping_for(meta.stems)  # validates stem names before anything is written
    channels = getattr(model, "audio_channels", 2)
    if channels != 2:  # every separator feeds its network stereo: it would fail at once
        raise ModelError(f"{src.name}: the model takes {channels}-channel audio, but "
                         "Stemwright separates stereo (audio_channels 2); retrain it for "
                         "stereo to import it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        save_checkpoint(dest, model, meta)
    return dest


def _custom_entries() -> list[ModelEntry]:
    return _scan_custom()[0]


def unreadable_models() -> list[tuple[str, str]]:
    """(name, reason) of each user model in the cache whose checkpoint cannot be read;
    `list_models` skips them, `remove_model` still removes them."""
    return _scan_custom()[1]


def _scan_custom() -> tuple[list[ModelEntry], list[tuple[str, str]]]:
    """The user models in the cache, and those skipped because their file is unreadable."""
    root = cache_dir() / "models"
    if not root.is_dir():
        return [], []
    from .checkpoint import read_checkpoint_meta

    out, bad = [], []
    for ckpt in sorted(root.glob("*/model.safetensors")):
        name = ckpt.parent.name
        try:
            meta = read_checkpoint_meta(ckpt)
            mapping = mapping_for(meta.stems)
            size = round(ckpt.stat().st_size / 1e6, 1)
            source = (json.dumps(meta.provenance, default=str) if meta.provenance
                      else "imported by the user")
        except (StemwrightError, OSError, ValueError, TypeError, RecursionError) as exc:
            bad.append((name, str(exc).splitlines()[0][:300] if str(exc) else
                        type(exc).__name__))
            continue
        out.append(ModelEntry(
            name, name, "stemwright", mapping, meta.samplerate, size, "user model", source,
            f"{meta.architecture} checkpoint"))
    for record in sorted(root.glob(f"*/{ROFORMER_RECORD}")):
        name = record.parent.name
        if name in ZOO or name in ROFORMER_ENTRIES or not _valid_name(name):
            continue
        try:
            out.append(_roformer_user_entry(name))
        except (StemwrightError, OSError) as exc:
            bad.append((name, str(exc).splitlines()[0][:300] if str(exc) else
                        type(exc).__name__))
    return out, bad


# -- loading -----------------------------------------------------------------------------

def load_separator(name: str = DEFAULT_MODEL, device: str = "auto",
                   segment: float | None = None, overlap: float | None = None,
                   half: bool = False, batch_size: int = 1) -> Separator:
    """Build a ready-to-run separator for zoo model `name` (files must be installed)."""
    entry = get_entry(name)
    opts = dict(device=device, segment=segment, overlap=overlap, half=half,
                batch_size=batch_size)
    if entry.family == recipes.FAMILY:
        from ..separation.composite import load_recipe_separator
        recipe = recipes.resolve(recipes.find(name, _self()), _self())
        return load_recipe_separator(recipe, lambda m: load_separator(m, **opts), **opts)
    if entry.family == "classic":
        from ..classic.teaching import TEACHING
        if name in TEACHING:
            return TEACHING[name](**opts)
        from ..classic.classic import ClassicSeparator
        return ClassicSeparator(**opts)
    if entry.family == "embedded" and not is_installed(name):
        raise ModelError(f"the built-in model file is missing from this installation "
                         f"({embedded_checkpoint()}); reinstall Stemwright")
    if not is_installed(name) and entry.files and not entry.downloadable:
        raise ModelError(f"model '{name}' is not installed and cannot be downloaded (no "
                         f"verified checksum yet); {import_hint(entry)}")
    if not is_installed(name):
        size = f" (about {entry.size_mb:.0f} MB)" if entry.size_mb else ""
        raise ModelError(f"model '{name}' is not downloaded yet; run `stemwright models "
                         f"download {name}`{size} or import its file with `stemwright models "
                         f"import {name} FILE`")
    folder = model_dir(name)
    if entry.family == "demucs":
        from ..separation.demucs_backend import DemucsSeparator
        from .checkpoint import load_demucs_checkpoint
        models = [load_demucs_checkpoint(folder / f.filename) for f in entry.files]
        return DemucsSeparator(models, entry.mapping, name, weights=entry.bag_weights, **opts)
    if entry.family == "openunmix":
        from ..separation.openunmix_backend import OpenUnmixSeparator
        from .checkpoint import load_openunmix_target
        targets = {f.target: load_openunmix_target(folder / f.filename) for f in entry.files}
        return OpenUnmixSeparator(targets, name, **opts)
    if entry.family in ("stemwright", "embedded"):
        return _load_custom(name, opts)
    if entry.family == "roformer":
        from ..separation.roformer_backend import load_roformer_separator
        ckpt, config = roformer_files(name)
        return load_roformer_separator(ckpt, config, name, mapping=entry.mapping, **opts)
    if entry.family == "vr":
        from ..separation.vr_backend import load_vr_separator
        return load_vr_separator(folder / entry.files[0].filename, name=name,
                                 mapping=entry.mapping, **VR_SETTINGS[name], **opts)
    raise ModelError(f"model family '{entry.family}' is not supported")


def _load_custom(name: str, opts: dict) -> Separator:
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    from ..architectures.registry import separator_for
    from ..separation.demucs_backend import DemucsSeparator
    from .checkpoint import load_checkpoint

    model, meta = load_checkpoint(checkpoint_path(name))
    if isinstance(model, HTDemucs | HDemucs | Demucs):
        return DemucsSeparator([model], mapping_for(meta.stems), name, **opts)
    return separator_for(model, meta, name=name, **opts)


# -- importing RoFormers by hand: the pair, validated, copied, and its sha256 recorded -----

#: The record `models import` writes next to a RoFormer's two files (what they are called
#: there, their sha256 and where they came from); it marks the import complete.
ROFORMER_RECORD = "roformer.json"
_RECORD_FORMAT = "stemwright-roformer-import"
_MAX_RECORD_BYTES = 64 * 1024
#: File names of a user RoFormer (a name outside ROFORMER_ENTRIES) in its folder.
_USER_ROFORMER_FILES = {"checkpoint": "model.ckpt", "config": "config.yaml"}


@dataclass(frozen=True)
class RoformerImport:
    """What `import_roformer` installed: the folder, and each file's name and sha256."""

    name: str
    folder: Path
    files: dict[str, str]  # role ("checkpoint" / "config") -> file name in `folder`
    sha256: dict[str, str]  # role -> hex digest
    sources: tuple[str, ...]  # the model's native sources


def _needs_yaml(name: str, src: Path) -> str:
    return (f"{src.name}: a RoFormer checkpoint needs its YAML config; run `stemwright "
            f"models import {name} {src.name} --config CONFIG.yaml` (the .yaml published "
            "with the .ckpt)")


def _roformer_record(name: str) -> Path:
    return model_dir(name) / ROFORMER_RECORD


def _read_record(name: str) -> dict:
    """The import record of RoFormer `name`; ModelError when missing or malformed."""
    path = _roformer_record(name)
    try:
        if path.stat().st_size > _MAX_RECORD_BYTES:
            raise ModelError(f"{path}: far too big for an import record")
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model '{name}' has no import record ({path})") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelError(f"{path}: unreadable import record ({exc})") from None
    files = record.get("files") if isinstance(record, dict) else None
    if (not isinstance(files, dict) or record.get("format") != _RECORD_FORMAT
            or set(files) != {"checkpoint", "config"}
            or not all(isinstance(f, str) and f and Path(f).name == f and f != ROFORMER_RECORD
                       for f in files.values())):
        raise ModelError(f"{path}: not a Stemwright RoFormer import record; remove the "
                         f"model (stemwright models remove {name}) and import it again")
    return record


def roformer_record(name: str) -> dict | None:
    """The import record of RoFormer `name` (files, sha256, origin), None if it has none
    (e.g. downloaded, not imported)."""
    try:
        return _read_record(name)
    except ModelError:
        return None


def roformer_files(name: str) -> tuple[Path, Path]:
    """(checkpoint, config) of an installed RoFormer: those its import record names, else
    its entry's official file names."""
    folder = model_dir(name)
    if _roformer_record(name).exists() or name not in ROFORMER_ENTRIES | ZOO:
        files = _read_record(name)["files"]
        return folder / files["checkpoint"], folder / files["config"]
    by_role = {f.target: f.filename for f in get_entry(name).files}
    return folder / by_role["checkpoint"], folder / by_role["config"]


def _roformer_user_entry(name: str) -> ModelEntry:
    """The entry of a RoFormer the user imported under a name of their own."""
    from ..separation.roformer_backend import mapping_for_instruments

    record = _read_record(name)
    sources = record.get("sources")
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise ModelError(f"{_roformer_record(name)}: its 'sources' are not a list of names")
    ckpt, config = roformer_files(name)
    size = round(sum(p.stat().st_size for p in (ckpt, config)) / 1e6, 1)
    origin = record.get("imported_from") or {}
    rate = record.get("samplerate")
    return ModelEntry(
        name, name, "roformer", mapping_for_instruments(sources),
        rate if isinstance(rate, int) and not isinstance(rate, bool) else 44100, size,
        "user model (licence as its publisher states)",
        "imported by the user from " + " + ".join(str(v) for v in origin.values()),
        f"{record.get('architecture', 'RoFormer')} community checkpoint")


def import_roformer(name: str, checkpoint: str | Path, config: str | Path) -> RoformerImport:
    """Install a RoFormer `.ckpt`/`.pth` + YAML pair the user has, offline.

    The pair is loaded the safe way and validated first (config against the weights, its
    instruments onto the six stems with the entry's mapping, or for a new name the
    backend's default mapping); then both files are copied into the model's folder
    (each atomically) and a record with their sha256 is written last, marking the import
    complete. When the entry knows checksums, the files must match them.
    """
    from ..separation.roformer_backend import load_roformer_separator

    ckpt, cfg = Path(checkpoint), Path(config)
    for path in (ckpt, cfg):
        if not path.is_file():
            raise StemwrightError(f"{path}: no such file")
    entry = ZOO.get(name) or ROFORMER_ENTRIES.get(name)
    if entry is not None and entry.family != "roformer":
        raise ModelError(f"'{name}' is not a RoFormer; import its file without --config")
    if entry is None:
        if not _valid_name(name):
            raise StemwrightError(f"model name '{name[:40]}{'...' if len(name) > 40 else ''}'"
                                  f" may only use letters, digits, - and _ (at most "
                                  f"{MAX_MODEL_NAME} characters)")
        if _custom_checkpoint(name).exists() or _roformer_record(name).exists():
            raise StemwrightError(f"a model called '{name}' is already installed; "
                                  f"remove it first (stemwright models remove {name})")
        names = dict(_USER_ROFORMER_FILES)
        wanted: dict[str, str | None] = {}
    else:
        names = {f.target: f.filename for f in entry.files}
        wanted = {f.target: f.checksum for f in entry.files}
    # validation: a real load (safe torch.load, config checked against the weights)
    sep = load_roformer_separator(ckpt, cfg, name, mapping=entry.mapping if entry else None,
                                  device="cpu")
    sources, architecture, rate = sep.config.native, sep.config.architecture, sep.samplerate
    del sep
    folder = model_dir(name)
    digests = {}
    for role, src in (("checkpoint", ckpt), ("config", cfg)):
        digest = sha256_file(src)
        expected = wanted.get(role)
        if expected and not digest.startswith(expected.lower()):
            raise ModelError(f"{src.name} is not the published {role} of '{name}' (sha256 "
                             f"{digest[:12]}..., expected {expected[:12]}...)")
        digests[role] = digest
    _roformer_record(name).unlink(missing_ok=True)  # an older import stops counting now
    for role, src in (("checkpoint", ckpt), ("config", cfg)):
        _atomic_copy(src, folder / names[role])
    record = {"format": _RECORD_FORMAT, "version": 1, "architecture": architecture,
              "sources": list(sources), "samplerate": rate, "files": names,
              "sha256": digests,
              "imported_from": {"checkpoint": ckpt.name, "config": cfg.name}}
    tmp = _roformer_record(name).with_suffix(".json.part")
    try:
        tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
        os.replace(tmp, _roformer_record(name))
    finally:
        tmp.unlink(missing_ok=True)
    return RoformerImport(name, folder, names, digests, tuple(sources))
