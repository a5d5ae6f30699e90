"""The export dialog's file names: the pattern's placeholders, the preview of the names
an export writes, and the copy of the original mix next to the stems.

{model} in a pattern is the name of the model that made the stems (the CLI's
`--name-model` writes "Song - Vocals (model).wav"). "Copy the original mix" writes the
song's own file as "<song> - Mix.<its extension>", byte for byte, like the CLI's
`--copy-mix`: through a temporary file in the target folder that is then renamed, and
never over an existing file unless the user agreed to replace it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from stemwright.models.errors import OutputExistsError, StemwrightError
from stemwright.models.remix.export import DEFAULT_PATTERN, copy_file_atomic, remix_filename

PATTERN_TOOLTIP = ("{song}: song name, {stem}: stem name, {id}: stem id, {model}: the "
                   "model that made the stems, e.g. \"{song} - {stem} ({model})\"")
#: the quick choice that puts the model's name in each file name (the CLI's --name-model)
MODEL_PATTERN = "{song} - {stem} ({model})"
MIX_LABEL = "Mix"  # "<song> - Mix.<ext>", as the CLI's --copy-mix names it
PREVIEW_LINES = 4


def pattern_with_model(pattern: str, model: str | None) -> str:
    """`pattern` with {model} replaced by `model` (escaped, so braces in a model's name
    stay text), for the writers that take no model; StemwrightError (one line) when the
    pattern uses {model} and no model is known."""
    if "{model}" not in pattern:
        return pattern
    if model is None:
        raise StemwrightError(f"naming pattern '{pattern}' uses {{model}} but no model is "
                              "known for these stems; remove {model}")
    return pattern.replace("{model}", model.replace("{", "{{").replace("}", "}}"))


def mix_target(folder: Path, song: str, source: Path) -> Path:
    """Where the original mix is copied: folder/"<song> - Mix.<source's extension>"."""
    ext = source.suffix.lstrip(".").lower()
    ext = ext if ext.isascii() and ext.isalnum() else "audio"
    return folder / remix_filename(song, ext, MIX_LABEL, DEFAULT_PATTERN)


def copy_mix(source: Path, target: Path, overwrite: bool) -> Path:
    """Copy `source` to `target` byte for byte through a hidden temporary file in the
    target's folder, then rename it into place (`copy_file_atomic`); OutputExistsError
    when `target` exists and `overwrite` is off, AudioError (one line) when it cannot be
    read or written. Not cancellable: it runs after the stems are in place and is quick."""
    refuse = "agree to replace it or choose another folder"
    if not overwrite and os.path.lexists(target):
        raise OutputExistsError(f"{target} already exists ({refuse})")
    target.parent.mkdir(parents=True, exist_ok=True)
    return copy_file_atomic(source, target, overwrite, refuse)


def preview_html(targets: Sequence[Path], daw: str | None = None,
                 copied: Path | None = None) -> str:
    """The preview's text: the first `PREVIEW_LINES` names, the folder, and how many of
    the targets exist already (they are only replaced after a question). `daw`: "reaper"
    (the project file, last of `targets`, is shown first) or "ardour" (one folder);
    `copied`: the copy of the original mix, always shown."""
    names = [t.name for t in targets if t != copied]
    if daw == "ardour":
        names = [f"{names[0]}  (Ardour session folder)"]
    elif daw is not None:  # the project file is the one to double-click: show it first
        names = [f"{names[-1]}  (REAPER project)", *names[:-1]]
    shown = list(names[:PREVIEW_LINES])
    if len(names) > PREVIEW_LINES:
        shown.append(f"… and {len(names) - PREVIEW_LINES} more")
    if copied is not None:
        shown.append(f"{copied.name}  (the original mix, copied)")
    existing = sum(t.exists() for t in targets)
    text = "<br>".join(html(n) for n in shown)
    if targets:
        text += f"<br><span style='color:#9aa3b2'>in {html(str(targets[0].parent))}</span>"
    if existing:
        text += (f"<br><span style='color:#f3c969'>{existing} of these already "
                 "exist: you will be asked before they are replaced</span>")
    return text


def overwrite_question(existing: Sequence[Path]) -> str:
    """The question asked before replacing `existing` files: how many, where, which."""
    listing = "\n".join(p.name for p in existing[:8])
    if len(existing) > 8:
        listing += f"\n… and {len(existing) - 8} more"
    many = len(existing) > 1
    return (f"{len(existing)} file{'s' if many else ''} already exist{'' if many else 's'} "
            f"in {existing[0].parent}:\n\n{listing}\n\nReplace them?")


def html(text: str) -> str:
    """`text` escaped for a rich-text label."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def with_mix_copy(run: Callable[..., object], source: Path, mix: Path
                  ) -> Callable[..., object]:
    """An export's `run(overwrite=, progress=, cancel=)` that writes the stems (`run`)
    and then copies `source` to `mix` (`copy_mix`); the written paths, the mix last.
    The mix is checked before any stem is written: a missing song or a mix that
    appeared since the overwrite question stops the export with nothing written."""

    def both(overwrite: bool = False, progress=None, cancel=None) -> object:
        if not source.is_file():
            raise StemwrightError(f"cannot copy the mix: {source} is gone; untick \"Copy "
                                  "the original mix\" or open the song again")
        if not overwrite and os.path.lexists(mix):
            raise OutputExistsError(f"{mix} already exists; agree to replace it or choose "
                                    "another folder")
        written = run(overwrite=overwrite, progress=progress, cancel=cancel)
        paths = list(written) if isinstance(written, list) else [Path(written)]
        return [*paths, copy_mix(source, mix, overwrite)]
    return both
