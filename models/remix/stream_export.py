"""Stems written while they are being separated: each region of every stem goes to its
file as soon as the streamed separation (`separation.streaming`) finishes it.

All or nothing, as `export`: every file is written to a hidden temporary in its folder
and renamed into place by `commit()` only when the whole song is done; `abort()` (a
failure or a cancel) removes the temporaries and leaves the previous files whole.
WAV and FLAC only (the lossy encoders and NI Stems take the whole song).
"""

from __future__ import annotations

import contextlib
import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..audio.block_writer import BlockWriter, container_for
from ..audio.encode import check_tags
from ..audio.io import SAVE_FORMATS
from ..errors import AudioError, StemwrightError
from ..stems import get_stem
from .export import (
    _make_folder,
    _refuse_existing,
    _refuse_folders,
    _swap_in,
    _tags,
    _temp_name,
    _why,
    minus_label,
    remove_stale_temporaries,
)

if TYPE_CHECKING:
    from ..separation.separator import PartialStems

log = logging.getLogger("stemwright.audio")


class StreamedExport:
    """The files of one song, fed region by region (`__call__(PartialStems)`): one per
    stem in `stems`, and the sum of every stem not in `minus` when `minus` is given.
    `targets` are the final paths, stems first, then the "minus" file."""

    def __init__(self, targets: Sequence[Path], stems: Sequence[str], minus: Sequence[str],
                 format: str, bit_depth: int, overwrite: bool, song: str,
                 artist: str | None = None, frames_hint: int | None = None) -> None:
        if format not in SAVE_FORMATS:
            raise StemwrightError(f"{format} cannot be written while separating")
        if len(targets) != len(stems) + (1 if minus else 0):
            raise ValueError("one target per stem, plus one for the 'minus' file")
        self.targets = [Path(t) for t in targets]
        self.stems = [get_stem(s).id for s in stems]
        self.minus = [get_stem(s).id for s in minus]
        self.format, self.bit_depth, self.overwrite = format, bit_depth, overwrite
        self.frames_hint = frames_hint or 0
        comments = [get_stem(s).name for s in self.stems]
        if self.minus:
            comments.append(minus_label(self.minus))
        self.tags = [check_tags(_tags(song, artist, c), t.name)
                     for c, t in zip(comments, self.targets, strict=True)]
        _refuse_existing(self.targets, overwrite)
        _refuse_folders(self.targets)
        for folder in dict.fromkeys(t.parent for t in self.targets):
            _make_folder(folder)
            remove_stale_temporaries(folder, self.targets)
        self.stages = [t.parent / _temp_name(t.suffix.lstrip(".") or "tmp")
                       for t in self.targets]
        self.writers: list[BlockWriter] = []

    def _open(self, part: PartialStems) -> None:
        missing = [s for s in (*self.stems, *self.minus) if s not in part.stems]
        if missing:
            raise StemwrightError(f"not produced by this model: {', '.join(missing)}")
        if self.minus and set(part.stems) <= set(self.minus):
            raise StemwrightError("removing every stem leaves nothing to export")
        channels = next(iter(part.stems.values())).shape[0]
        container = container_for(self.format, self.frames_hint, channels, self.bit_depth)
        for stage, target, tags in zip(self.stages, self.targets, self.tags, strict=True):
            # Dither seeded from the file's name: repeatable, independent between stems.
            rng = np.random.default_rng(zlib.crc32(target.name.encode("utf-8", "replace")))
            try:
                self.writers.append(BlockWriter(stage, part.samplerate, channels, container,
                                                self.bit_depth, tags, rng))
            except (OSError, RuntimeError) as exc:
                raise AudioError(f"{target}: could not be written ({_why_any(exc)}); check "
                                 "that the folder is writable and has free space") from exc

    def __call__(self, part: PartialStems) -> None:
        if not self.writers:
            self._open(part)
        blocks = [part.stems[s] for s in self.stems]
        if self.minus:
            kept = [x for s, x in part.stems.items() if s not in self.minus]
            total = kept[0].astype(np.float32, copy=True)
            for x in kept[1:]:
                total += x
            blocks.append(total)
        for writer, block, target in zip(self.writers, blocks, self.targets, strict=True):
            if not np.isfinite(block).all():
                raise AudioError(f"{target.name}: the audio contains NaN or infinite "
                                 "samples; nothing was saved")
            try:
                writer.write(block)
            except (OSError, RuntimeError) as exc:
                raise AudioError(f"{target}: could not be written ({_why_any(exc)}); check "
                                 "that the folder is writable and has free space") from exc

    def commit(self) -> list[Path]:
        """Close every file and rename them all into place; returns the targets."""
        try:
            if not self.writers:
                raise StemwrightError("nothing was separated, so nothing was written")
            for writer, target in zip(self.writers, self.targets, strict=True):
                clipped = writer.close()
                if clipped:
                    log.warning("%s: %d samples beyond full scale were clipped",
                                target.name, clipped)
            for stage in self.stages:
                with open(stage, "rb+") as fh:
                    os.fsync(fh.fileno())
            _swap_in(list(zip(self.stages, self.targets, strict=True)), self.overwrite)
        finally:
            self.abort()
        return self.targets

    def abort(self) -> None:
        """Close and remove the temporaries (nothing of this song is left)."""
        for writer in self.writers:
            with contextlib.suppress(Exception):
                writer.close()
        for stage in self.stages:
            with contextlib.suppress(OSError):
                stage.unlink(missing_ok=True)


def _why_any(exc: BaseException) -> str:
    return _why(exc) if isinstance(exc, OSError) else str(exc).splitlines()[0][:120]


__all__ = ["StreamedExport"]
