"""Importing ZFTurbo's Music-Source-Separation-Training (MSST) from a checkout, for the
scripts that compare our networks with its code (`*_reference_fixture.py`,
`check_roformer_weights.py`): its modules are loaded one by one, without its package
inits (which import everything MSST can train), and `demix` gets its ConfigDict-like
attribute access from `MsstConfig`.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path


class MsstConfig(dict):
    """Attribute access over nested dicts, as MSST's ConfigDict gives its code."""

    def __getattr__(self, key: str):  # noqa: ANN204 - a dict's values
        try:
            value = self[key]
        except KeyError as exc:
            raise AttributeError(key) from exc
        return MsstConfig(value) if isinstance(value, dict) else value


def msst_importer(msst: Path, packages: Sequence[str], paths: Sequence[Path] = (),
                  stubs: Sequence[str] = ()) -> Callable[[str], types.ModuleType]:
    """Prepare `sys` for MSST at `msst` (`paths` first on sys.path, e.g. the reference's
    extra packages; empty modules for `stubs` and ml_collections; `packages` as bare
    namespace packages) and return `load("models.x.y")`, which runs that one file."""
    sys.path[:0] = [*(str(p) for p in paths), str(msst)]
    sys.modules.setdefault("ml_collections", types.SimpleNamespace(ConfigDict=dict))
    for stub in stubs:
        sys.modules.setdefault(stub, types.ModuleType(stub))
    for pkg in packages:
        module = types.ModuleType(pkg)
        module.__path__ = [str(msst.joinpath(*pkg.split(".")))]
        sys.modules[pkg] = module

    def load(name: str) -> types.ModuleType:
        path = msst.joinpath(*name.split(".")).with_suffix(".py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return load
