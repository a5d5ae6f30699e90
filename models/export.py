"""Writing separated stems to disk so they line up in any DAW.

All stems of one export have the same sample rate and length and start at time zero; each
file is written atomically by `audio_io.save_audio`, and nothing is overwritten unless asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .audio_io import SAVE_FORMATS, save_audio
from .errors import OutputExistsError, StemwrightError
from .progress import CancelCheck, check_cancel
from .resample import resample
from .stems import get_stem

DEFAULT_PATTERN = "{song} - {stem}"
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def safe_filename(name: str) -> str:
    """A file-name-safe version of `name` (no path separators or reserved characters)."""
    cleaned = _UNSAFE.sub("_", name).strip().strip(".")
    return cleaned or "untitled"


def stem_filename(song: str, stem_id: str, ext: str, pattern: str = DEFAULT_PATTERN) -> str:
    """File name for one stem, e.g. "Song - Electric guitar.wav"."""
    try:
        base = pattern.format(song=song, stem=get_stem(stem_id).name, id=stem_id)
    except (KeyError, IndexError, ValueError) as exc:
        raise StemwrightError(f"bad naming pattern '{pattern}': use {{song}}, {{stem}}, {{id}}"
                              ) from exc
    return safe_filename(base) + "." + ext


def export_stems(stems: Mapping[str, np.ndarray], samplerate: int, folder: str | Path,
                 song: str, which: Sequence[str] | None = None, format: str = "wav",
                 bit_depth: int = 24, samplerate_out: int | None = None,
                 pattern: str = DEFAULT_PATTERN, overwrite: bool = False,
                 progress: Callable[[float], None] | None = None,
                 cancel: CancelCheck | None = None) -> list[Path]:
    """Write the chosen stems as `folder/<pattern>.<format>`; returns the written paths.

    Checks every target before writing anything, so a refused overwrite leaves no partial
    export. Files written before a cancel are removed.
    """
    format = format.lower()
    if format not in SAVE_FORMATS:
        raise StemwrightError(f"unsupported export format '{format}' "
                              f"(choose {', '.join(SAVE_FORMATS)})")
    if bit_depth not in SAVE_FORMATS[format]:
        raise StemwrightError(f"{format.upper()} supports bit depths "
                              f"{', '.join(map(str, SAVE_FORMATS[format]))}, not {bit_depth}")
    ids = [get_stem(s).id for s in (which if which is not None else stems.keys())]
    missing = [s for s in ids if s not in stems]
    if missing:
        raise StemwrightError(f"not produced by this model: {', '.join(missing)}")
    folder = Path(folder)
    targets = [folder / stem_filename(song, s, format, pattern) for s in ids]
    if len(set(targets)) != len(targets):
        raise StemwrightError(f"naming pattern '{pattern}' gives several stems the same name")
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]} already exists (use --force to overwrite)")
    folder.mkdir(parents=True, exist_ok=True)
    rate = samplerate_out or samplerate
    written: list[Path] = []
    try:
        for i, (stem_id, target) in enumerate(zip(ids, targets, strict=True)):
            check_cancel(cancel)
            data = stems[stem_id]
            if rate != samplerate:
                data = resample(data, samplerate, rate)
            written.append(save_audio(target, data, rate, format=format, bit_depth=bit_depth,
                                      overwrite=overwrite))
            if progress is not None:
                progress((i + 1) / len(ids))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written
