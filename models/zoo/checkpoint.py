"""Safe loading and saving of model weights, validated before any model runs.

Model files come from the internet or from users, so nothing here unpickles arbitrary
objects: torch files are read with `weights_only=True` and a narrow allow-list of globals
(the three demucs model classes and `fractions.Fraction`), safetensors files are plain
tensors plus JSON, and a class named in a file is only ever resolved through an explicit
allow-list, never imported by name.

Every loader checks the stored configuration against the constructor's signature, builds
the model, and compares the weights' names and shapes with the model's own before loading
them, so a mismatched file fails with one readable message instead of a torch traceback or,
worse, a model that loads partially and separates badly.

Work before trust is bounded, because a tiny hostile file must not cost minutes or
gigabytes: archive members are size-checked before torch reads them (no zip bombs), the
allow-listed `Fraction` only parses short "a/b" text, configuration values are range-checked
(numbers, nesting, stem names, sample rate), JSON metadata may nest only `_MAX_JSON_DEPTH`
levels, the model is first built on the `meta` device with a hook that stops it as soon as
it registers more parameters (or values) than the file holds, and only a configuration
whose shapes match the file's tensors is built for real. Weights must be finite.

Long because trust is one concern: every format goes through the same bounds and checks,
which are easier to audit in one module than spread over several.

Formats:
  * official demucs `.th` (torch pickle of {'klass', 'args', 'kwargs', 'state', ...}) and
    demucs 4.1 `.safetensors` (JSON 'klass'/'args'/'kwargs' in the metadata):
    `load_demucs_checkpoint`;
  * official Open-Unmix per-target `.pth` state dicts: `load_openunmix_target`;
  * Stemwright's own checkpoints, one `.safetensors` file whose metadata key "stemwright"
    holds JSON (format, version, architecture, kwargs, stems, samplerate, provenance):
    `save_checkpoint`, `load_checkpoint`, `read_checkpoint_meta`.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import pickle
import re
import struct
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from demucs.demucs import Demucs
from demucs.hdemucs import HDemucs
from demucs.htdemucs import HTDemucs
from openunmix.model import OpenUnmix
from safetensors import safe_open
from safetensors.torch import save_file

from ..architectures.bandsplit import BandSplitNet
from ..architectures.convtasnet import ConditionedTasNet, ConvTasNet
from ..architectures.masknet import MaskNet
from ..architectures.openunmix6 import OpenUnmixStems
from ..architectures.wavenet import WaveNet
from ..architectures.waveunet import WaveUNet
from ..errors import ModelError, OutputExistsError

#: Model classes an official demucs file may name; nothing else is ever constructed from one.
DEMUCS_CLASSES: tuple[type[torch.nn.Module], ...] = (HTDemucs, HDemucs, Demucs)
#: Globals a demucs `.th` pickle may reference beyond torch's own tensor machinery.
DEMUCS_PICKLE_GLOBALS: tuple[type, ...] = (*DEMUCS_CLASSES, Fraction)


class _ClassName:
    """What an allowed model class resolves to inside a pickle: it can be named (as
    'klass'), never called, so a hostile file cannot construct a model while unpickling."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError(f"it tries to construct {self.cls.__name__} while "
                                     "being read, which official checkpoints never do")

    def __repr__(self) -> str:
        return f"<class '{_qualname(self.cls)}'>"


_FRACTION_TEXT = re.compile(r"[-+]?\d{1,18}(/\d{1,18})?")


def _bounded_fraction(*args: Any) -> Fraction:
    """`fractions.Fraction` as a pickle may call it: from short "a/b" text or two small
    whole numbers only (Fraction("1e50000000") would compute for minutes)."""
    if len(args) == 1 and isinstance(args[0], str):
        text = args[0].strip()
        if len(text) <= _MAX_FRACTION_TEXT and _FRACTION_TEXT.fullmatch(text):
            return Fraction(text)
    elif 1 <= len(args) <= 2 and all(type(a) is int and abs(a) <= 10 ** 18 for a in args):
        return Fraction(*args)
    shown = ", ".join(repr(a)[:24] for a in args[:2])
    raise pickle.UnpicklingError(f"it holds a fraction made from ({shown}), which is not "
                                 "a short fraction like '39/5'")


#: How the globals a demucs `.th` may name resolve while it is unpickled (full name ->
#: stand-in): the classes to inert `_ClassName`s, Fraction to `_bounded_fraction`.
_DEMUCS_PICKLE_NAMES: dict[str, Any] = {
    **{f"{cls.__module__}.{cls.__qualname__}": _ClassName(cls) for cls in DEMUCS_CLASSES},
    "fractions.Fraction": _bounded_fraction,
}

#: Model classes a Stemwright checkpoint may name (checkpoint name -> class): the official
#: demucs and Open-Unmix classes and every trainable architecture of `architectures.registry`
#: (a test checks that each registry entry is here under its checkpoint name), so loading a
#: checkpoint never depends on which modules happen to be imported.
LOADABLE_CLASSES: dict[str, type[torch.nn.Module]] = {
    "htdemucs": HTDemucs,
    "hdemucs": HDemucs,
    "demucs": Demucs,
    "openunmix": OpenUnmix,
    "wavenet": WaveNet,
    "waveunet": WaveUNet,
    "convtasnet": ConvTasNet,
    "condtasnet": ConditionedTasNet,
    "openunmix6": OpenUnmixStems,
    "masknet": MaskNet,
    "bandsplit": BandSplitNet,
}

STEMWRIGHT_FORMAT = "stemwright-checkpoint"
STEMWRIGHT_VERSION = 1
META_KEY = "stemwright"

#: Keys old Open-Unmix releases stored for their built-in STFT (the current model has no
#: STFT); they are checked against the inferred configuration and then dropped.
_UMX_LEGACY_KEYS = ("sample_rate", "stft.window", "transform.0.window")
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
_MAX_PROBLEMS = 5
#: Bounds on what an untrusted file may make us do before it is validated.
_MAX_PICKLE_BYTES = 64 * 1024 * 1024  # a zip checkpoint's data.pkl (real ones: < 1 MB)
_MAX_ZIP_RATIO = 4  # declared uncompressed size / file size (torch stores, never deflates)
_MAX_JSON_DEPTH = 32  # nesting of JSON metadata (real ones: < 6)
_MAX_CONFIG_INT = 10 ** 6  # any whole number in a model configuration
_MAX_CONFIG_ITEMS = 4096  # items of one list or dict in a configuration
_MAX_CONFIG_TEXT = 1024  # characters of one string in a configuration
_MAX_FRACTION_TEXT = 40  # characters of a pickled Fraction ("39/5")
_SAMPLERATES = (1000, 384000)  # plausible sample rates of a model, in Hz
# The weights-only allow-list is process-wide state: loads must not interleave.
_LOAD_LOCK = threading.Lock()


def register_architecture(name: str, cls: type[torch.nn.Module]) -> None:
    """Make `cls` loadable from Stemwright checkpoints that name architecture `name`."""
    if not name or not isinstance(name, str):
        raise ValueError("architecture name must be a non-empty string")
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise TypeError(f"architecture '{name}' must be a torch.nn.Module subclass")
    if LOADABLE_CLASSES.get(name, cls) is not cls:
        raise ValueError(f"architecture '{name}' is already registered to "
                         f"{LOADABLE_CLASSES[name].__name__}")
    LOADABLE_CLASSES[name] = cls


@dataclass
class CheckpointMeta:
    """What a Stemwright checkpoint says about the model whose weights it holds."""

    architecture: str
    kwargs: dict[str, Any]
    stems: list[str]
    samplerate: int
    provenance: dict[str, Any] = field(default_factory=dict)


# -- file sniffing and low-level readers --------------------------------------------------

def checkpoint_format(path: str | os.PathLike[str]) -> str:
    """Cheap guess of a file's kind from its first bytes (and safetensors header).

    One of "stemwright", "demucs-safetensors", "safetensors", "torch" (zip or legacy
    pickle; says nothing about what is inside) or "unknown".
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return "unknown"
    # safetensors first: its header length is little-endian, so its first byte can be
    # 0x80, the legacy pickle opcode; a pickle's second byte is its protocol (2 to 5)
    if len(head) == 9 and head[8:9] == b"{":
        try:
            meta = _safetensors_header(path).get("__metadata__") or {}
        except ModelError:
            pass  # not a readable safetensors header: maybe a pickle after all
        else:
            if META_KEY in meta:
                return "stemwright"
            return "demucs-safetensors" if "klass" in meta else "safetensors"
    if head[:4] == b"PK\x03\x04" or (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5):
        return "torch"
    return "unknown"


def _existing(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    return path


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, read without touching the tensor data."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError("file too short")
            (size,) = struct.unpack("<Q", raw)
            if not 2 <= size <= min(_MAX_HEADER, path.stat().st_size - 8):
                raise ValueError("header length out of range")
            header = _json_loads(f.read(size))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path.name} is not a valid safetensors file ({exc}); "
                         "it may be damaged or incomplete") from exc
    if not isinstance(header, dict):
        raise ModelError(f"{path.name} is not a valid safetensors file (bad header)")
    meta = header.get("__metadata__")
    if meta is not None and not (isinstance(meta, dict)
                                 and all(isinstance(v, str) for v in meta.values())):
        raise ModelError(f"{path.name} is not a valid safetensors file (bad metadata)")
    return header


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors (on the CPU) and the metadata of a safetensors file."""
    try:
        with warnings.catch_warnings(), safe_open(str(path), framework="pt",
                                                  device="cpu") as f:
            warnings.simplefilter("ignore")
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ModelError(f"{path.name} is damaged or incomplete and could not be read "
                         f"({_first_line(exc)})") from exc
    return tensors, metadata


def _torch_load(path: Path, allowed: Mapping[str, Any]) -> Any:
    """`torch.load(weights_only=True)` allowing only torch's tensor types and `allowed`
    (full global name -> what it resolves to).

    Zip checkpoints have their members' sizes checked first (no zip bombs) and are scanned
    for globals so the refusal names them all; the weights-only unpickler is the actual
    guard either way (it also covers legacy files). Warnings are silenced: the error, if
    any, is our one line.
    """
    fmt = checkpoint_format(path)
    if fmt != "torch":
        raise ModelError(f"{path.name} is not a PyTorch checkpoint (unrecognised format)")
    names = set(allowed)
    with _LOAD_LOCK, _only_safe_globals(allowed), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if zipfile.is_zipfile(path):
            _check_archive(path)
            try:
                unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
            except Exception:  # noqa: BLE001 - the scanner cannot parse it: torch.load decides
                unsafe = []
            refused = sorted(set(unsafe) - names)
            if refused:
                raise _refused(path, refused)
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            match = re.search(r"GLOBAL (\S+)", str(exc))
            if match:
                raise _refused(path, [match.group(1)]) from None
            raise ModelError(f"{path.name} could not be read safely "
                             f"({_unpickling_reason(exc)}); it is damaged or not an official "
                             "checkpoint, and was not loaded") from None
        except Exception as exc:  # noqa: BLE001 - torch reports corrupt files in many ways
            raise ModelError(f"{path.name} is damaged or incomplete and could not be read "
                             f"({_first_line(exc)})") from exc


def _check_archive(path: Path) -> None:
    """Refuse a zip checkpoint whose members declare more data than it can plausibly hold.

    torch writes its members uncompressed, so their declared sizes add up to about the
    file's size; a compressed member that expands far beyond it (a zip bomb) or an
    oversized pickle is refused before anything is decompressed.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
        size = path.stat().st_size
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # not readable as a zip after all: torch.load reports it
    budget = _MAX_ZIP_RATIO * size + 1024 * 1024
    total = 0
    for info in infos:
        total += info.file_size
        if info.filename.endswith(".pkl") and info.file_size > _MAX_PICKLE_BYTES:
            raise ModelError(f"{path.name}: its '{info.filename}' would unpack to "
                             f"{info.file_size / 1e6:.0f} MB, far more than a checkpoint's "
                             "description needs; it is damaged or hostile and was not loaded")
        if total > budget:
            raise ModelError(f"{path.name} would unpack to more than {total / 1e6:.0f} MB "
                             f"from {size / 1e6:.1f} MB (a zip bomb, not a PyTorch "
                             "checkpoint); it was not loaded")


@contextlib.contextmanager
def _only_safe_globals(allowed: Mapping[str, Any]) -> Iterator[None]:
    """Allow exactly torch's defaults plus `allowed`, whatever else the process registered.

    `torch.serialization.safe_globals` adds to the process-wide list; globals some other
    code registered with `add_safe_globals` would silently widen our allow-list, so the
    list is emptied for the duration of the load and restored afterwards.
    """
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        with torch.serialization.safe_globals([(obj, name) for name, obj in allowed.items()]):
            yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


def _refused(path: Path, globals_: list[str]) -> ModelError:
    if _pickle_mentions(path, b"__quantized"):
        return _quantized(path)
    listed = ", ".join(globals_[:_MAX_PROBLEMS])
    more = f" and {len(globals_) - _MAX_PROBLEMS} more" if len(globals_) > _MAX_PROBLEMS else ""
    return ModelError(f"{path.name} refers to {listed}{more}, which official checkpoints "
                      "never contain: it is not an official checkpoint and was not loaded")


def _pickle_mentions(path: Path, needle: bytes) -> bool:
    """Whether a zip checkpoint's pickle contains `needle` (read as bytes, not unpickled)."""
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if name.endswith("data.pkl"):
                    return needle in zf.read(name)
    except (OSError, zipfile.BadZipFile, RuntimeError):
        pass
    return False


def _quantized(path: Path) -> ModelError:
    return ModelError(f"{path.name}: quantized models are not supported (the *_q demucs "
                      "models need diffq); use the non-quantized version of the model")


def _unpickling_reason(exc: BaseException) -> str:
    """The useful part of torch's long weights-only error message."""
    match = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(exc))
    return match.group(1).strip()[:300] if match else _first_line(exc)


def _qualname(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__name__}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


# -- validation shared by every format ----------------------------------------------------

def _check_signature(label: str, cls: type, args: Sequence[Any],
                     kwargs: Mapping[str, Any]) -> None:
    """Refuse settings the constructor does not take (demucs would drop them silently)."""
    sig = inspect.signature(cls)
    params = sig.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params] if not takes_any else []
    if unknown:
        raise ModelError(f"{label}: its configuration has settings {cls.__name__} does not "
                         f"accept ({', '.join(map(str, unknown))}); it was made for another "
                         "version of the model and was not loaded")
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise ModelError(f"{label}: invalid configuration for {cls.__name__} ({exc})"
                         ) from None


def _construct(label: str, cls: type, args: Sequence[Any], kwargs: Mapping[str, Any],
               device: str | None = None,
               state: Mapping[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """Build `cls(*args, **kwargs)`, on `device`; with `state` (the file's weights) the
    build is stopped as soon as it registers more parameters than the file holds."""
    try:
        with warnings.catch_warnings(), _bounded_by(label, state):
            warnings.simplefilter("ignore")
            if device is None:
                return cls(*args, **kwargs)
            with torch.device(device):
                return cls(*args, **kwargs)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any constructor failure means a bad config
        raise ModelError(f"{label}: cannot build {cls.__name__} from its configuration "
                         f"({_first_line(exc)})") from exc


@contextlib.contextmanager
def _bounded_by(label: str, state: Mapping[str, torch.Tensor] | None,
                meta: bool = False) -> Iterator[None]:
    """Stop a model's construction (in this thread) once its parameters far outnumber the
    tensors of `state` or (off the `meta` device, where values cost memory) hold far more
    values: a configuration claiming `depth: 10**6` must fail after a few layers, not
    after gigabytes of modules. The slack lets a near miss reach the detailed comparison."""
    if state is None:
        yield
        return
    owner = threading.get_ident()
    count = len(state)
    numel = sum(int(t.numel()) for t in state.values() if isinstance(t, torch.Tensor))
    max_count = 2 * count + 64
    max_numel = None if meta else 2 * numel + 1_000_000
    seen = {"count": 0, "numel": 0}

    def on_parameter(module: torch.nn.Module, name: str, param: Any) -> None:
        if param is None or threading.get_ident() != owner:
            return
        seen["count"] += 1
        seen["numel"] += int(param.numel())
        if seen["count"] > max_count or (max_numel is not None
                                         and seen["numel"] > max_numel):
            raise ModelError(f"{label}: checkpoint configuration does not match its weights: "
                             f"it describes a far larger model than the {count} tensors "
                             f"({numel} values) in the file; it was not loaded")

    hook = torch.nn.modules.module.register_module_parameter_registration_hook(on_parameter)
    try:
        yield
    finally:
        hook.remove()


def _build_checked(label: str, cls: type, args: Sequence[Any], kwargs: Mapping[str, Any],
                   state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """Validate a configuration against the file's weights, then build and load it.

    Order matters for hostile files: signature and value ranges first (no work), then the
    weights' layout on the `meta` device (no memory, stopped early by `_bounded_by`), and
    only a configuration whose shapes match the file is built for real.
    """
    _check_signature(label, cls, args, kwargs)
    _check_config(label, args, kwargs)
    problems = _mismatches(_template_state(label, cls, kwargs, args, state), state)
    if problems:
        _raise_mismatch(label, problems)
    model = _construct(label, cls, args, kwargs, state=state)
    return _load_validated(label, model, state)


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _mismatches(expected: Mapping[str, torch.Tensor], state: Mapping[str, Any]) -> list[str]:
    """Readable differences between a model's state_dict and the weights of a file."""
    problems = []
    for key, ref in expected.items():
        if key not in state:
            problems.append(f"missing '{key}'")
        elif not isinstance(state[key], torch.Tensor):
            problems.append(f"'{key}' is not a tensor")
        elif tuple(state[key].shape) != tuple(ref.shape):
            problems.append(f"'{key}' is {_shape(state[key].shape)} in the file but the "
                            f"configuration expects {_shape(ref.shape)}")
        elif state[key].is_floating_point() != ref.is_floating_point():
            problems.append(f"'{key}' has type {state[key].dtype}, expected {ref.dtype}")
    problems += [f"unexpected '{key}'" for key in state if key not in expected]
    return problems


def _raise_mismatch(label: str, problems: list[str]) -> None:
    shown = "; ".join(problems[:_MAX_PROBLEMS])
    more = (f" (and {len(problems) - _MAX_PROBLEMS} more)"
            if len(problems) > _MAX_PROBLEMS else "")
    raise ModelError(f"{label}: checkpoint configuration does not match its weights: "
                     f"{shown}{more}")


def _load_validated(label: str, model: torch.nn.Module,
                    state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """Compare, then load `state` strictly; returns the model in float32, eval mode."""
    problems = _mismatches(model.state_dict(), state)
    if problems:
        _raise_mismatch(label, problems)
    _check_finite(label, state)
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{label}: the weights could not be loaded "
                         f"({_first_line(exc)})") from exc
    return model.float().eval()


def _check_finite(label: str, state: Mapping[str, torch.Tensor]) -> None:
    """Refuse weights holding NaN or infinity: such a model separates into silence or
    noise (or breaks training) instead of failing."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelError(f"{label}: weight '{key}' holds NaN or infinite values (a "
                             "damaged file or a training run that diverged); it was not "
                             "loaded")


def _check_config(label: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Range-check a model configuration before anything is built from it: whole numbers
    within +-`_MAX_CONFIG_INT`, finite floats, small fractions, short strings and lists,
    shallow nesting, and 'sources' a list of distinct stem names."""
    stack: list[tuple[str, Any, int]] = [("args", list(args), 0), ("kwargs", kwargs, 0)]
    while stack:
        where, value, depth = stack.pop()
        problem = None
        if depth > 8:
            problem = "is nested too deeply"
        elif value is None or isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if abs(value) > _MAX_CONFIG_INT:
                problem = f"is {value:.3g}, beyond any real model's setting"
        elif isinstance(value, float):
            if not math.isfinite(value) or abs(value) > 1e12:
                problem = f"is {value}, not a usable number"
        elif isinstance(value, Fraction):
            if max(abs(value.numerator), value.denominator) > _MAX_CONFIG_INT:
                problem = "is a fraction with huge terms"
        elif isinstance(value, str):
            if len(value) > _MAX_CONFIG_TEXT:
                problem = f"is a text of {len(value)} characters"
        elif isinstance(value, list | tuple | Mapping):
            if len(value) > _MAX_CONFIG_ITEMS:
                problem = f"has {len(value)} items"
            elif isinstance(value, Mapping):
                for key, item in value.items():
                    if not isinstance(key, str):
                        problem = f"has a non-text key {str(key)[:40]!r}"
                        break
                    stack.append((f"{where}.{key}" if where != "kwargs" else key, item,
                                  depth + 1))
            else:
                stack.extend((f"{where}[{i}]", item, depth + 1)
                             for i, item in enumerate(value))
        else:
            problem = f"is a {type(value).__name__}, which a configuration never holds"
        if problem:
            raise ModelError(f"{label}: invalid configuration: '{where}' {problem}; it "
                             "was not loaded")
    sources = kwargs.get("sources")
    if "sources" in kwargs and (
            not isinstance(sources, list | tuple) or not sources
            or not all(isinstance(x, str) and x for x in sources)
            or len(set(sources)) != len(sources)):
        raise ModelError(f"{label}: invalid configuration: 'sources' must be a list of "
                         f"distinct stem names, not {str(sources)[:60]!r}; it was not loaded")


def _tensor_dict(label: str, obj: Any, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise ModelError(f"{label} is not {what} (it holds a {type(obj).__name__})")
    bad = [str(k) for k, v in obj.items()
           if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelError(f"{label} is not {what} (entries that are not named tensors: "
                         f"{', '.join(bad[:_MAX_PROBLEMS])})")
    return dict(obj)


# -- JSON encoding of constructor arguments -----------------------------------------------

def encode_json(value: Any, where: str = "kwargs") -> Any:
    """JSON-ready form of constructor arguments; fractions become {"_type": "fraction"}."""
    if isinstance(value, Fraction):
        return {"_type": "fraction", "numerator": value.numerator,
                "denominator": value.denominator}
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ModelError(f"{where} is {value}, which a checkpoint cannot store")
        return value
    if isinstance(value, list | tuple):
        return [encode_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ModelError(f"{where} has a non-string key {key!r}")
            out[key] = encode_json(item, f"{where}.{key}")
        return out
    raise ModelError(f"{where} is a {type(value).__name__}, which a checkpoint cannot "
                     "store (use numbers, strings, lists, dicts or fractions)")


def decode_json(value: Any) -> Any:
    """Inverse of `encode_json` (also reads demucs' safetensors metadata)."""
    if isinstance(value, dict):
        if value.get("_type") == "fraction":
            num, den = value.get("numerator"), value.get("denominator")
            if not (isinstance(num, int) and isinstance(den, int) and den != 0):
                raise ValueError(f"invalid fraction {value}")
            return Fraction(num, den)
        return {key: decode_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_json(item) for item in value]
    return value


def _json_loads(text: str | bytes) -> Any:
    """`json.loads` refusing (ValueError) documents nested deeper than `_MAX_JSON_DEPTH`,
    so metadata can never make the decoders here (or json's) recurse without bound."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_JSON_DEPTH:
            raise ValueError(f"it is nested more than {_MAX_JSON_DEPTH} levels deep")
        if isinstance(node, dict):
            stack.extend((item, depth + 1) for item in node.values())
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
    return value


def _json_field(label: str, metadata: Mapping[str, str], key: str) -> Any:
    try:
        return decode_json(_json_loads(metadata[key]))
    except KeyError:
        raise ModelError(f"{label}: metadata '{key}' is missing") from None
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{label}: metadata '{key}' is not valid ({exc})") from None


# -- official demucs files ----------------------------------------------------------------

def load_demucs_checkpoint(path: str | os.PathLike[str]) -> torch.nn.Module:
    """Load an official demucs model (`.th` pickle or demucs 4.1 `.safetensors`) safely.

    Returns the validated model in float32 and eval mode. Raises ModelError for files that
    reference anything beyond the allowed globals, quantized models, configurations that
    do not match the weights, and damaged files.
    """
    path = _existing(path)
    fmt = checkpoint_format(path)
    if fmt == "torch":
        klass, args, kwargs, state = _demucs_package_from_torch(path)
    elif fmt == "demucs-safetensors":
        klass, args, kwargs, state = _demucs_package_from_safetensors(path)
    elif fmt == "stemwright":
        raise ModelError(f"{path.name} is a Stemwright checkpoint, not a demucs file; "
                         "load it with load_checkpoint")
    elif fmt == "safetensors":
        raise ModelError(f"{path.name} is a safetensors file without demucs metadata "
                         "('klass', 'args', 'kwargs'); it is not a demucs model")
    else:
        raise ModelError(f"{path.name} is not a demucs model file (unrecognised format)")
    return _build_checked(path.name, klass, args, kwargs, state)


def _demucs_package_from_torch(path: Path) -> tuple[type, list, dict, dict]:
    package = _torch_load(path, _DEMUCS_PICKLE_NAMES)
    if not isinstance(package, Mapping) or "klass" not in package or "state" not in package:
        raise ModelError(f"{path.name} is not a demucs model package (expected 'klass', "
                         "'args', 'kwargs' and 'state'; a bare state dict or training "
                         "checkpoint cannot be loaded on its own)")
    klass = package["klass"]
    if not isinstance(klass, _ClassName):
        shown = "a fraction" if klass is _bounded_fraction else repr(klass)[:80]
        raise ModelError(f"{path.name} names {shown} as its model class, which is not "
                         "a demucs model; it was not loaded")
    klass = klass.cls
    args, kwargs = package.get("args", ()), package.get("kwargs", {})
    if not isinstance(args, list | tuple) or not isinstance(kwargs, Mapping) or not all(
            isinstance(k, str) for k in kwargs):
        raise ModelError(f"{path.name}: malformed model configuration ('args' must be a "
                         "list, 'kwargs' a dict of named settings)")
    state = package["state"]
    if isinstance(state, Mapping) and state.get("__quantized"):
        raise _quantized(path)
    state = _tensor_dict(path.name, state, "a demucs model (its 'state' is not weights)")
    return klass, list(args), dict(kwargs), state


def _demucs_package_from_safetensors(path: Path) -> tuple[type, list, dict, dict]:
    tensors, metadata = _read_safetensors(path)
    allowed = {_qualname(cls): cls for cls in DEMUCS_CLASSES}
    name = metadata.get("klass", "")
    if name not in allowed:
        raise ModelError(f"{path.name} names '{name}' as its model class, which is not one "
                         f"of {', '.join(allowed)}; it is not an official demucs model and "
                         "was not loaded")
    args = _json_field(path.name, metadata, "args")
    kwargs = _json_field(path.name, metadata, "kwargs")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ModelError(f"{path.name}: malformed model configuration in the metadata")
    state: Any = tensors
    if "structure" in metadata:
        try:
            state = _unflatten(tensors, _json_loads(metadata["structure"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{path.name}: invalid weight structure ({exc}); "
                             "not loaded") from None
    if isinstance(state, Mapping) and state.get("__quantized"):
        raise _quantized(path)
    state = _tensor_dict(path.name, state, "a demucs model (its weights are nested)")
    return allowed[name], args, kwargs, state


def _unflatten(tensors: Mapping[str, torch.Tensor], node: Any) -> Any:
    """demucs.hf's nested-state rebuild, minus its `_class` nodes (which import by name)."""
    if isinstance(node, dict):
        if "_tensor" in node:
            return tensors[node["_tensor"]]
        if "_dict" in node:
            return {key: _unflatten(tensors, item) for key, item in node["_dict"]}
        if "_list" in node:
            return [_unflatten(tensors, item) for item in node["_list"]]
        if "_tuple" in node:
            return tuple(_unflatten(tensors, item) for item in node["_tuple"])
        if "_class" in node:
            raise ValueError(f"it refers to the class {node['_class']!r}")
        raise ValueError(f"unknown node {sorted(node)}")
    return node


# -- official Open-Unmix files ------------------------------------------------------------

def load_openunmix_target(path: str | os.PathLike[str],
                          samplerate: float = 44100.0) -> OpenUnmix:
    """Load one Open-Unmix target (`vocals-b62c91ce.pth`, ...), shapes inferred from weights.

    Hidden size, channels, bins, max_bin, layers and directionality come from the tensor
    shapes, so umxhq, umxl and umxse files all load without a separate config. Legacy STFT
    entries are checked (window length, stored sample rate vs `samplerate`) and dropped;
    everything else must match the model exactly. Returns the model in eval mode.
    """
    path = _existing(path)
    label = path.name
    obj = _torch_load(path, {})
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]  # an open-unmix training checkpoint (.chkpnt)
    what = "an Open-Unmix target model"
    state = _tensor_dict(label, obj, what)
    required = ("fc1.weight", "fc3.weight", "input_mean", "output_scale", "lstm.weight_ih_l0")
    missing = [k for k in required if k not in state]
    if missing:
        raise ModelError(f"{label} is not {what} (missing {', '.join(missing)})")
    fc1, mean, scale = state["fc1.weight"], state["input_mean"], state["output_scale"]
    if fc1.dim() != 2 or mean.dim() != 1 or scale.dim() != 1:
        raise ModelError(f"{label}: unexpected tensor ranks for {what}")
    hidden, max_bin, nb_bins = int(fc1.shape[0]), int(mean.shape[0]), int(scale.shape[0])
    if max_bin == 0 or fc1.shape[1] % max_bin or max_bin > nb_bins:
        raise ModelError(f"{label}: checkpoint configuration does not match its weights: "
                         f"'fc1.weight' is {_shape(fc1.shape)} but 'input_mean' has "
                         f"{max_bin} bins and 'output_scale' {nb_bins}")
    nb_channels = int(fc1.shape[1]) // max_bin
    nb_layers = 0
    while f"lstm.weight_ih_l{nb_layers}" in state:
        nb_layers += 1
    unidirectional = "lstm.weight_ih_l0_reverse" not in state

    legacy = {k: state.pop(k) for k in _UMX_LEGACY_KEYS if k in state}
    for key in ("stft.window", "transform.0.window"):
        if key in legacy:
            window = legacy[key]
            if window.dim() != 1 or window.shape[0] // 2 + 1 != nb_bins:
                raise ModelError(f"{label}: checkpoint configuration does not match its "
                                 f"weights: '{key}' is {_shape(window.shape)}, which does not "
                                 f"give the {nb_bins} frequency bins of 'output_scale'")
    if "sample_rate" in legacy:
        rate = legacy["sample_rate"]
        if rate.numel() != 1:
            raise ModelError(f"{label}: 'sample_rate' is not a single number")
        if abs(float(rate.item()) - float(samplerate)) > 0.5:
            raise ModelError(f"{label} was trained at {float(rate.item()):g} Hz, "
                             f"not {float(samplerate):g} Hz")

    kwargs = dict(nb_bins=nb_bins, nb_channels=nb_channels, hidden_size=hidden,
                  nb_layers=max(nb_layers, 1), unidirectional=unidirectional,
                  max_bin=max_bin)
    return _build_checked(label, OpenUnmix, (), kwargs, state)


# -- Stemwright checkpoints ---------------------------------------------------------------

def _architecture(label: str, name: str) -> type[torch.nn.Module]:
    if name not in LOADABLE_CLASSES:
        raise ModelError(f"{label}: unknown architecture '{name}' (known: "
                         f"{', '.join(sorted(LOADABLE_CLASSES))}); a newer Stemwright may "
                         "be needed to load it")
    return LOADABLE_CLASSES[name]


def _validate_meta(label: str, meta: CheckpointMeta) -> None:
    if not isinstance(meta.architecture, str) or not meta.architecture:
        raise ModelError(f"{label}: 'architecture' must be a non-empty string")
    if not isinstance(meta.kwargs, dict):
        raise ModelError(f"{label}: 'kwargs' must be a dict")
    stems = meta.stems
    if (not isinstance(stems, list) or not stems
            or not all(isinstance(s, str) and s for s in stems)):
        raise ModelError(f"{label}: 'stems' must be a non-empty list of stem names")
    if len(set(stems)) != len(stems):
        raise ModelError(f"{label}: 'stems' lists a stem twice: {stems}")
    rate = meta.samplerate
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise ModelError(f"{label}: 'samplerate' must be a positive whole number of Hz")
    low, high = _SAMPLERATES
    if not low <= rate <= high:
        raise ModelError(f"{label}: 'samplerate' is {rate} Hz, outside the {low} to {high} "
                         "Hz a model can work at; the file is damaged and was not loaded")
    if not isinstance(meta.provenance, dict):
        raise ModelError(f"{label}: 'provenance' must be a dict")
    if "sources" in meta.kwargs:
        sources = meta.kwargs["sources"]
        if not isinstance(sources, list | tuple) or not all(isinstance(s, str)
                                                            for s in sources):
            raise ModelError(f"{label}: 'kwargs.sources' must be a list of stem names, not "
                             f"{str(sources)[:60]!r}; the file is damaged and was not loaded")
        if len(sources) != len(stems):
            raise ModelError(f"{label}: the model has {len(sources)} sources but 'stems' "
                             f"names {len(stems)}")
        if list(sources) != list(stems):
            raise ModelError(f"{label}: the model's sources {list(sources)} are not its "
                             f"'stems' {stems}; the file is damaged and was not loaded")
    cls = LOADABLE_CLASSES.get(meta.architecture)
    if cls is not None:
        param = inspect.signature(cls).parameters.get("samplerate")
        native = meta.kwargs.get("samplerate", None if param is None else param.default)
        if isinstance(native, int | float) and not isinstance(native, bool) and native != rate:
            raise ModelError(f"{label}: 'samplerate' is {rate} Hz but the model's "
                             f"configuration says {native:g} Hz; the file is damaged and "
                             "was not loaded")


def _meta_to_json(meta: CheckpointMeta) -> str:
    body = {
        "format": STEMWRIGHT_FORMAT,
        "version": STEMWRIGHT_VERSION,
        "architecture": meta.architecture,
        "kwargs": encode_json(meta.kwargs),
        "stems": list(meta.stems),
        "samplerate": meta.samplerate,
        "provenance": meta.provenance,
    }
    try:
        # Provenance is free-form: dates, paths and the like are stored as their text.
        return json.dumps(body, default=str, allow_nan=False)
    except ValueError as exc:
        raise ModelError(f"checkpoint metadata cannot be stored ({exc})") from None


def read_checkpoint_meta(path: str | os.PathLike[str]) -> CheckpointMeta:
    """The metadata of a Stemwright checkpoint, reading only the file's header."""
    path = _existing(path)
    label = path.name
    if checkpoint_format(path) == "torch":
        raise ModelError(f"{label} is not a Stemwright checkpoint (it is a PyTorch file)")
    metadata = _safetensors_header(path).get("__metadata__") or {}
    if META_KEY not in metadata:
        hint = "; it looks like a demucs model" if "klass" in metadata else ""
        raise ModelError(f"{label} is not a Stemwright checkpoint (no '{META_KEY}' "
                         f"metadata){hint}")
    try:
        body = _json_loads(metadata[META_KEY])
    except ValueError as exc:
        raise ModelError(f"{label}: the Stemwright metadata is not valid JSON ({exc})"
                         ) from None
    if not isinstance(body, dict) or body.get("format") != STEMWRIGHT_FORMAT:
        raise ModelError(f"{label}: the Stemwright metadata is not a checkpoint description")
    version = body.get("version")
    if not isinstance(version, int) or version < 1:
        raise ModelError(f"{label}: invalid checkpoint version {version!r}")
    if version > STEMWRIGHT_VERSION:
        raise ModelError(f"{label} was written by a newer Stemwright (checkpoint version "
                         f"{version}); update Stemwright to load it")
    try:
        kwargs = decode_json(body.get("kwargs", {}))
    except ValueError as exc:
        raise ModelError(f"{label}: invalid 'kwargs' ({exc})") from None
    meta = CheckpointMeta(architecture=body.get("architecture"), kwargs=kwargs,
                          stems=body.get("stems"), samplerate=body.get("samplerate"),
                          provenance=body.get("provenance", {}))
    _validate_meta(label, meta)
    return meta


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[torch.nn.Module, CheckpointMeta]:
    """Load a Stemwright checkpoint: the validated model (float32, eval) and its metadata."""
    path = _existing(path)
    label = path.name
    meta = read_checkpoint_meta(path)
    cls = _architecture(label, meta.architecture)
    _check_signature(label, cls, (), meta.kwargs)
    _check_config(label, (), meta.kwargs)
    tensors, _ = _read_safetensors(path)
    return _build_checked(label, cls, (), meta.kwargs, tensors), meta


def save_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module,
                    meta: CheckpointMeta, overwrite: bool = False) -> Path:
    """Write `model` and `meta` as one Stemwright `.safetensors` file, atomically.

    The metadata is validated first (known architecture, model of that class, kwargs the
    constructor accepts and that rebuild exactly the model's weight shapes), so a file
    this writes always loads. Refuses to replace an existing file unless `overwrite`.
    """
    path = Path(path)
    label = path.name
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists (allow overwriting to replace it)")
    cls = _architecture(label, meta.architecture)
    if not isinstance(model, cls):
        raise ModelError(f"{label}: the model is a {type(model).__name__}, but the metadata "
                         f"says architecture '{meta.architecture}' ({cls.__name__})")
    _validate_meta(label, meta)
    header = _meta_to_json(meta)
    kwargs = decode_json(json.loads(header)["kwargs"])  # exactly what a load will see
    _check_signature(label, cls, (), kwargs)
    _check_config(label, (), kwargs)
    tensors = _tensors_for_saving(model.state_dict())
    problems = _mismatches(_template_state(label, cls, kwargs, (), tensors), tensors)
    if problems:
        _raise_mismatch(label, problems)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part",
                                        dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise ModelError(f"cannot write to {path.parent}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        save_file(tensors, str(tmp), metadata={META_KEY: header, "format": "pt"})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise ModelError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    return path


def _template_state(label: str, cls: type, kwargs: Mapping[str, Any],
                    args: Sequence[Any] = (),
                    state: Mapping[str, torch.Tensor] | None = None
                    ) -> dict[str, torch.Tensor]:
    """The state_dict layout `kwargs` produce, built without allocating real weights
    (and, given the file's `state`, stopped once it outgrows it)."""
    try:
        with (warnings.catch_warnings(), _bounded_by(label, state, meta=True),
              torch.device("meta")):
            warnings.simplefilter("ignore")
            model = cls(*args, **kwargs)
    except ModelError:
        raise
    except Exception:  # noqa: BLE001 - some constructors need real tensors: build on CPU
        model = _construct(label, cls, args, kwargs, state=state)
    return model.state_dict()


def _tensors_for_saving(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU tensors safetensors accepts: tied or view tensors are cloned to own storage."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in state.items():
        tensor = value.detach().cpu()
        storage = tensor.untyped_storage()
        ident = (storage.data_ptr(), storage.nbytes())
        whole = storage.nbytes() == tensor.numel() * tensor.element_size()
        if ident in seen or not whole or not tensor.is_contiguous():
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        seen.add(ident)
        out[key] = tensor
    return out


__all__ = [
    "LOADABLE_CLASSES", "CheckpointMeta", "DEMUCS_CLASSES", "DEMUCS_PICKLE_GLOBALS",
    "checkpoint_format", "decode_json", "encode_json", "load_checkpoint",
    "load_demucs_checkpoint", "load_openunmix_target", "read_checkpoint_meta",
    "register_architecture", "save_checkpoint",
]


# -- community RoFormer checkpoints (UVR, audio-separator, ZFTurbo's MSST) -----------------

#: Keys under which training scripts nest a RoFormer state dict (ZFTurbo's loader unwraps
#: the same ones).
_ROFORMER_WRAPPERS = ("state", "state_dict", "model_state_dict")


def load_roformer_checkpoint(path: str | os.PathLike[str], cls: type[torch.nn.Module],
                             kwargs: Mapping[str, Any]) -> torch.nn.Module:
    """Load a BS-/Mel-Band RoFormer `.ckpt` (a plain state dict, as UVR and ZFTurbo's
    Music-Source-Separation-Training save them) into `cls(**kwargs)`, `kwargs` being the
    YAML config's `model:` section.

    Read with `torch.load(weights_only=True)` and no extra globals (zip members size-checked
    first); the config is validated against the weights' names and shapes before anything
    is built for real, so a config that does not fit its weights fails with one line.
    """
    path = _existing(path)
    label = path.name
    obj = _torch_load(path, {})
    for _ in range(2):  # a wrapper inside a wrapper at most
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _ROFORMER_WRAPPERS
                          if isinstance(obj.get(k), Mapping)), None)
            if inner is not None:
                obj = inner
    state = _tensor_dict(label, obj, "a RoFormer state dict")
    return _build_checked(label, cls, (), dict(kwargs), state)
