"""Reading YAML from files we did not write (mapping files, dataset metadata) safely.

`yaml.safe_load` never runs code, but it still trusts the file's shape: 337 bytes of nested
aliases (a "billion laughs" bomb) expand to gigabytes once anything walks the result, and a
few thousand nested brackets end in RecursionError. `safe_yaml_load` refuses both before
any of that work: aliases are rejected while composing (no real metadata or mapping file
needs them), nesting is capped, and so is the file size. Every refusal is a `YamlFileError`
whose message is one line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .errors import StemwrightError

MAX_YAML_BYTES = 8 * 1024 * 1024  # metadata and mapping files are kilobytes
MAX_YAML_DEPTH = 64  # nested mappings/lists; real files use fewer than ten


class YamlFileError(StemwrightError):
    """A YAML file is unreadable, malformed, too big, too deep or uses aliases."""


class _Refused(yaml.YAMLError):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader (pure Python, so composing can be hooked) without aliases, depth-capped."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(f"uses an alias (*{event.anchor}, line {event.start_mark.line + 1})"
                           "; aliases are not allowed, write the values out")
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            mark = self.peek_event().start_mark
            raise _Refused(f"is nested more than {MAX_YAML_DEPTH} levels deep (line "
                           f"{mark.line + 1})")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def safe_yaml_loads(text: str, name: str) -> Any:
    """Parse YAML `text` (from the file called `name`) with aliases refused and nesting
    capped; YamlFileError (one line naming `name`) on any problem."""
    if len(text) > MAX_YAML_BYTES:
        raise YamlFileError(f"{name}: too big for a metadata file ({len(text)} characters, "
                            f"at most {MAX_YAML_BYTES}); fix or remove it")
    try:  # the reader checks the characters as the loader is built (ReaderError)
        loader = _BoundedLoader(text)
    except yaml.YAMLError as exc:
        raise YamlFileError(f"{name}: not valid YAML ({_one_line(exc)}); fix or remove "
                            "it") from None
    try:
        return loader.get_single_data()
    except _Refused as exc:
        raise YamlFileError(f"{name}: {exc}; fix or remove it") from None
    except yaml.YAMLError as exc:
        raise YamlFileError(f"{name}: not valid YAML ({_one_line(exc)}); fix or remove "
                            "it") from None
    except RecursionError:
        raise YamlFileError(f"{name}: nested too deeply; fix or remove it") from None
    finally:
        loader.dispose()


def safe_yaml_load(path: str | os.PathLike[str]) -> Any:
    """Read and parse a YAML file like `safe_yaml_loads`; the size is checked before
    reading. Undecodable bytes are replaced rather than refused."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise YamlFileError(f"{path.name}: too big for a metadata file ({size} bytes, at "
                                f"most {MAX_YAML_BYTES}); fix or remove it")
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise YamlFileError(f"{path.name}: cannot be read ({exc.strerror or exc})") from exc
    return safe_yaml_loads(text, path.name)


def _one_line(exc: BaseException) -> str:
    """PyYAML's multi-line message as one short line."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = ["MAX_YAML_BYTES", "MAX_YAML_DEPTH", "YamlFileError", "safe_yaml_load",
           "safe_yaml_loads"]
