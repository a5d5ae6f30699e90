"""Writing separated stems, remixes and DAW projects to disk so they line up in any DAW.

All stems of one export have the same sample rate and length and start at time zero, and
nothing is overwritten unless asked. Every export is all or nothing: each new file is
written to a hidden temporary file in its folder (`.stemwright-tmp-<pid>-<random>...`),
and only when all of them are complete are they renamed over their targets; a failure or
a cancel before that removes the temporaries and leaves the previous files whole (a
failure during the renames puts the previous files back). Temporaries left by a killed
export are removed by the next export into the same folder. Besides the stems: the remix
(the mixer state rendered offline), "song minus X" (the sum of the other stems) and a
REAPER project (.RPP) that opens the stems on named, coloured tracks at time zero, with
the song's tempo and the mixer's faders, pans, mutes and solos when given.
`check_output_folder` finds output-folder problems before any work starts.

Formats: WAV and FLAC (`bit_depth`), MP3, M4A (AAC) and Opus (`bitrate_kbps`, MP3 also
`vbr`; see `audio.encode`). Every file is tagged: title = the song, artist when known,
comment = what the file holds (the stem's name, "Remix", "minus Vocals").

Long because the all-or-nothing staging, the naming rules and the REAPER project are
shared by every kind of export and only make sense together.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
import shutil
import sys
import time
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..audio.encode import check_lossy_options, encode_rate
from ..audio.io import LOSSY_FORMATS, OUTPUT_FORMATS, SAVE_FORMATS, save_audio
from ..audio.io import log as _io_log
from ..audio.resample import resample, resampled_length
from ..errors import AudioError, OutputExistsError, StemwrightError
from ..progress import CancelCheck, check_cancel
from ..stems import get_stem
from .mixer import ChannelState, MixerState, db_to_gain, render_mix, sum_stems

DEFAULT_PATTERN = "{song} - {stem}"
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\ud800-\udfff]')  # surrogates: undecodable bytes
#: the longest file or folder name written, in UTF-8 bytes: file systems allow 255, and
#: temporary names (ours and other programs') add a few bytes to a name
MAX_NAME_BYTES = 200


class OutputFolderError(StemwrightError):
    """The output folder cannot hold the export (a file in the way, not writable, ...)."""


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def shorten_name(name: str, max_bytes: int) -> str:
    """`name` cut to at most `max_bytes` UTF-8 bytes, whole characters only, ending in
    "~" and 8 hex digits of a hash of the full name so that different long names stay
    different; `name` itself when it fits."""
    if _utf8_len(name) <= max_bytes:
        return name
    tag = "~" + hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    head = name.encode("utf-8", "surrogatepass")[:max(0, max_bytes - len(tag))]
    return head.decode("utf-8", "ignore").rstrip(" .-_") + tag


def safe_filename(name: str) -> str:
    """A file-name-safe version of `name` (no path separators, reserved characters or
    undecodable bytes), at most `MAX_NAME_BYTES` long."""
    cleaned = _UNSAFE.sub("_", name).strip().strip(".")
    return shorten_name(cleaned, MAX_NAME_BYTES) or "untitled"


#: File names (without extension, lower case, runs of spaces, dots, hyphens and
#: underscores read as one "_") that say nothing about the song: a song saved as
#: "Ballad/mix.flac" is called "Ballad" (`song_name`).
GENERIC_SONG_NAMES = frozenset({
    "mix", "mixture", "mixdown", "full_mix", "final_mix", "stereo_mix", "mix_master",
    "master", "mastered", "song", "track", "audio", "full", "stereo", "final"})


def song_name(path: str | os.PathLike[str]) -> str:
    """The name of the song in `path`, for its output folder and stem file names.

    The file name without its extension ("My Song.wav" -> "My Song"), or the name of the
    folder the file is in when the file name is generic (`GENERIC_SONG_NAMES`):
    "songs/ballad_Eb-major/mix.flac" -> "ballad_Eb-major". File-name safe (`safe_filename`).
    """
    path = Path(path)
    key = re.sub(r"[\s._-]+", "_", path.stem.strip().lower()).strip("_")
    if key in GENERIC_SONG_NAMES:
        folder = Path(os.path.abspath(path)).parent.name  # abspath: "mix.flac", "../mix.flac"
        if folder:
            return safe_filename(folder)
    return safe_filename(path.stem)


def output_clash(files: Sequence[str | os.PathLike[str]], root: str | os.PathLike[str]
                 ) -> tuple[Path, Path, Path] | None:
    """The first two of `files` whose stems would go to the same folder `root/<song>/`
    (`song_name`), as (earlier file, later file, folder); None when each has its own.

    The same file given twice clashes too. Folder names are compared the way Windows and
    macOS do: ignoring case and Unicode normalisation ("é" as one character or as "e" and
    an accent look the same and are the same folder there).
    """
    seen: dict[str, Path] = {}
    for f in files:
        f = Path(f)
        folder = Path(root) / song_name(f)
        key = unicodedata.normalize("NFC", os.path.normcase(os.path.abspath(folder)))
        key = unicodedata.normalize("NFC", key.casefold())
        if key in seen:
            return seen[key], f, folder
        seen[key] = f
    return None


def shown(path: str | os.PathLike[str]) -> str:
    """`path` printable anywhere: bytes that are not UTF-8 shown as \\xNN."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_output_folder(root: str | os.PathLike[str], song_names: Sequence[str]) -> None:
    """Refuse (OutputFolderError, one line naming the path) an output folder `root` that
    cannot take `root/<song>/` for every song: `root` or a folder above it is a file, a
    file stands where a song's folder goes, a folder is read-only (or on a read-only
    mount), or a name is too long or not UTF-8. Cheap, so it runs before any separation.

    Writability is tested by creating and removing an empty folder, which works the same
    for every user (root included) and every kind of file system.
    """
    root = Path(root)
    if _not_utf8(str(root)):
        raise OutputFolderError(f"{shown(root)}: the folder name is not valid UTF-8; rename "
                                "it or choose another output folder")
    if root.exists() and not root.is_dir():
        raise OutputFolderError(f"{root} is a file, not a folder; choose a folder for the "
                                "output (it is created if missing)")
    probed: set[Path] = set()
    for song in song_names:
        if "/" in song or os.sep in song or _utf8_len(song) > 255 or _not_utf8(song):
            raise OutputFolderError(f"'{shown(song)}' cannot be a folder name; rename the "
                                    "input file")
        folder = root / song
        if os.path.lexists(folder) and not folder.exists():
            raise OutputFolderError(f"{folder} is a broken link where the stems of '{song}' "
                                    "go; remove it, or choose another output folder")
        if folder.exists():
            if not folder.is_dir():
                raise OutputFolderError(f"{folder} is a file, but the stems of '{song}' go "
                                        "in a folder of that name; move or rename the file, "
                                        "or choose another output folder")
            where = folder
        else:
            where = root
            while not where.exists() and where != where.parent:
                where = where.parent
            if not where.is_dir():
                raise OutputFolderError(f"{folder} cannot be created: {where} is a file, not "
                                        "a folder; choose another output folder")
        if where not in probed:
            _probe_writable(where, folder)
            probed.add(where)


def _probe_writable(where: Path, folder: Path) -> None:
    probe = where / _temp_name("probe")
    try:
        os.mkdir(probe)
    except OSError as exc:
        what = "write in" if where == folder else f"create {folder} in"
        raise OutputFolderError(f"{os.path.abspath(where)}: cannot {what} it ({_why(exc)}); "
                                "choose another output folder, or make this one writable"
                                ) from None
    with contextlib.suppress(OSError):
        os.rmdir(probe)


# -- temporary files: all or nothing ----------------------------------------------------

_TEMP_PREFIX = ".stemwright-tmp-"
#: our temporaries, and `save_audio`'s own temporary next to one of them
_TEMP_RE = re.compile(r"^\.?" + re.escape(_TEMP_PREFIX)
                      + r"(\d+)-[0-9a-f]{12}\.[A-Za-z0-9]+(?:\.[0-9a-f]{8}\.part)?$")
#: a temporary whose process is gone is removed after this long; any after a day
_STALE_DEAD_S, _STALE_ANY_S, _STALE_NO_PID_S = 60.0, 86400.0, 600.0


def _temp_name(ext: str) -> str:
    return f"{_TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}.{ext}"


def _process_alive(pid: int) -> bool | None:
    """Whether process `pid` runs on this machine; None where that cannot be asked
    safely (on Windows, os.kill(pid, 0) would end the process)."""
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str],
                             targets: Sequence[str | os.PathLike[str]] = ()) -> list[Path]:
    """Remove the temporary files an export killed midway (kill -9, power cut) left in
    `folder`; returns those removed.

    Only our own names are touched: `.stemwright-tmp-<pid>-<random>.<ext>` (and
    `save_audio`'s `.part` next to one) once process <pid> has ended and a minute has
    passed, or after a day whatever the process; and `.<target>.<random>.part` left by
    earlier versions for the file names in `targets`, after ten minutes.
    """
    folder = Path(folder)
    legacy = [re.compile(r"^\." + re.escape(Path(t).name) + r"\.[A-Za-z0-9_]{8}\.part$")
              for t in targets]
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match is None and not any(r.match(entry.name) for r in legacy):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if match is None:
                stale = age > _STALE_NO_PID_S
            else:
                alive = _process_alive(int(match.group(1)))
                stale = (age > _STALE_ANY_S or (alive is False and age > _STALE_DEAD_S)
                         or (alive is None and age > _STALE_NO_PID_S))
            if not stale:
                continue
            if entry.is_dir(follow_symlinks=False):
                os.rmdir(entry.path)  # a probe folder: only ever empty
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except (OSError, ValueError):
            continue
    return removed


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputFolderError(f"{folder} cannot be created: a file is in the way; move it "
                                "or choose another folder") from None
    except OSError as exc:
        raise OutputFolderError(f"{folder} cannot be created ({_why(exc)}); choose another "
                                "folder, or make its parent writable") from None


def _refuse_folders(targets: Sequence[Path]) -> None:
    for t in targets:
        if t.is_dir():
            raise OutputFolderError(f"{t} is a folder where a file goes; move or rename it, "
                                    "or choose another folder")


#: writes a complete file at the given (temporary) path
Writer = Callable[[Path], object]


def _write_all(folder: Path, jobs: Sequence[tuple[Path, Writer]], overwrite: bool,
               progress: Callable[[float], None] | None = None,
               cancel: CancelCheck | None = None) -> list[Path]:
    """Write every (target, writer) job all or nothing: each to a temporary file in
    `folder`, then all renamed into place (`_swap_in`); returns the targets."""
    targets = [t for t, _ in jobs]
    _refuse_folders(targets)
    _make_folder(folder)
    remove_stale_temporaries(folder, targets)
    staged: list[Path] = []
    try:
        for i, (target, write) in enumerate(jobs):
            check_cancel(cancel)
            stage = folder / _temp_name(target.suffix.lstrip(".") or "tmp")
            staged.append(stage)
            try:
                write(stage)
            except StemwrightError as exc:  # name the file the user asked for
                if stage.name not in str(exc):
                    raise
                try:
                    renamed = type(exc)(str(exc).replace(stage.name, target.name))
                except Exception:  # noqa: BLE001 - an error class with other arguments
                    raise exc from None
                raise renamed from exc
            except OSError as exc:
                raise AudioError(f"{target}: could not be written ({_why(exc)}); check that "
                                 "the folder is writable and has free space") from exc
            if progress is not None:
                progress((i + 1) / len(jobs))
        check_cancel(cancel)
        _swap_in(list(zip(staged, targets, strict=True)), overwrite)
    finally:
        for stage in staged:
            with contextlib.suppress(OSError):
                stage.unlink(missing_ok=True)
    return targets


def _swap_in(pairs: Sequence[tuple[Path, Path]], overwrite: bool) -> None:
    """Rename each complete temporary over its target. A failure midway puts back what
    was there before (the old files are kept as hard links, or renamed aside, until all
    new files are in place)."""
    done: list[tuple[Path, Path | None]] = []  # (target, the previous file kept aside)
    backups: list[Path] = []
    current = pairs[0][1] if pairs else Path()
    try:
        for stage, target in pairs:
            current = target
            if os.path.lexists(target):
                if not overwrite:
                    raise OutputExistsError(f"{target} already exists (use --force to "
                                            "overwrite)")
                backup = target.parent / _temp_name("bak")
                try:
                    os.link(target, backup, follow_symlinks=False)
                except (OSError, NotImplementedError):  # no hard links: rename it aside
                    os.replace(target, backup)
                backups.append(backup)
                done.append((target, backup))
                os.replace(stage, target)
            else:
                try:
                    os.link(stage, target)  # fails if the target appeared meanwhile
                except FileExistsError:
                    if not overwrite:
                        raise OutputExistsError(f"{target} already exists (use --force to "
                                                "overwrite)") from None
                    os.replace(stage, target)
                except (OSError, NotImplementedError):  # no hard links
                    os.replace(stage, target)
                done.append((target, None))
    except BaseException as exc:
        for target, backup in reversed(done):
            with contextlib.suppress(OSError):
                if backup is not None:
                    os.replace(backup, target)
                else:
                    target.unlink()
        if isinstance(exc, OSError):
            raise AudioError(f"{current}: could not be put in place ({_why(exc)}); close it in "
                             "other programs and check the folder's permissions; the "
                             "previous files are unchanged") from exc
        raise
    finally:
        for backup in backups:
            with contextlib.suppress(OSError):
                backup.unlink(missing_ok=True)


class _RenameInLog(logging.Filter):
    """Shows the target's name, not the temporary's, in `save_audio`'s warnings."""

    def __init__(self, stage: str, target: str) -> None:
        super().__init__()
        self.stage, self.target = stage, target

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.target if a == self.stage else a for a in record.args)
        return True


class _Encoding:
    """The file options of one export: format, bit depth (lossless), bitrate or VBR
    quality (lossy), checked when made (StemwrightError / AudioError, one line)."""

    def __init__(self, format: str, bit_depth: int, bitrate_kbps: int | None = None,
                 vbr: int | None = None) -> None:
        self.format = _check_format(format, bit_depth, bitrate_kbps, vbr)
        self.bit_depth = bit_depth if self.format in SAVE_FORMATS else 24
        self.bitrate_kbps, self.vbr = bitrate_kbps, vbr

    def file_rate(self, rate: int) -> int:
        """The rate the file holds for audio at `rate` (Opus: always 48 kHz, ...)."""
        return encode_rate(self.format, rate) if self.format in LOSSY_FORMATS else rate

    def save(self, path: Path, data: np.ndarray, rate: int,
             tags: Mapping[str, str]) -> Path:
        return save_audio(path, data, rate, format=self.format, bit_depth=self.bit_depth,
                          bitrate_kbps=self.bitrate_kbps, vbr=self.vbr, tags=tags)


def _tags(song: str | None, artist: str | None, comment: str) -> dict[str, str]:
    """title = the song, artist when known, comment = what the file holds."""
    tags = {"title": song or "", "artist": artist or "", "comment": comment}
    return {k: v for k, v in tags.items() if v and v.strip()}


def _audio_writer(data: np.ndarray, samplerate: int, rate: int, enc: _Encoding,
                  target: Path, tags: Mapping[str, str]) -> Writer:
    def write(stage: Path) -> object:
        final = enc.file_rate(rate)  # resampled once, straight to the file's rate
        out = resample(data, samplerate, final) if final != samplerate else data
        rename = _RenameInLog(stage.name, target.name)
        _io_log.addFilter(rename)
        try:
            return enc.save(stage, out, final, tags)
        finally:
            _io_log.removeFilter(rename)
    return write


def _text_writer(text: str) -> Writer:
    def write(stage: Path) -> None:
        with open(stage, "x", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return write


def _pattern_name(pattern: str, song: str, stem: str, ident: str, ext: str,
                  model: str | None = None) -> str:
    """safe_filename(pattern) + "." + ext, the song part shortened (`shorten_name`) when
    the whole name would pass `MAX_NAME_BYTES`. `model`: the name of the model that made
    the stems, for a pattern's {model}; a pattern that uses {model} without it is refused."""
    extra = {} if model is None else {"model": model}
    try:
        base = pattern.format(song=song, stem=stem, id=ident, **extra)
    except KeyError as exc:
        if model is None and exc.args == ("model",):
            raise StemwrightError(f"naming pattern '{pattern}' uses {{model}} but no model "
                                  "is known for these stems; remove {model}") from None
        raise StemwrightError(f"bad naming pattern '{pattern}': use {{song}}, {{stem}}, {{id}}"
                              ) from exc
    except (IndexError, ValueError) as exc:
        raise StemwrightError(f"bad naming pattern '{pattern}': use {{song}}, {{stem}}, {{id}}"
                              ) from exc
    name = _UNSAFE.sub("_", base).strip().strip(".") or "untitled"
    limit = MAX_NAME_BYTES - _utf8_len("." + ext)
    uses = pattern.count("{song}")
    if _utf8_len(name) > limit and uses:
        excess = _utf8_len(name) - limit
        keep = _utf8_len(song) - -(-excess // uses)  # ceil: each use gives up its share
        if keep >= 12:
            name = _UNSAFE.sub("_", pattern.format(song=shorten_name(song, keep), stem=stem,
                                                   id=ident, **extra)).strip().strip(".")
    if _utf8_len(name) > limit:
        raise StemwrightError(f"naming pattern '{pattern}' gives file names longer than "
                              f"{MAX_NAME_BYTES} bytes; shorten it")
    return name + "." + ext


def stem_filename(song: str, stem_id: str, ext: str, pattern: str = DEFAULT_PATTERN, *,
                  model: str | None = None) -> str:
    """File name for one stem, e.g. "Song - Electric guitar.wav"; a very long song name is
    shortened (keeping its start and a hash) so the name fits every file system. `model`:
    what a pattern's {model} stands for (see `_pattern_name`)."""
    return _pattern_name(pattern, song, get_stem(stem_id).name, stem_id, ext, model)


def _stem_jobs(stems: Mapping[str, np.ndarray], samplerate: int, folder: Path, song: str,
               which: Sequence[str] | None, enc: _Encoding,
               samplerate_out: int | None, pattern: str, overwrite: bool,
               artist: str | None = None, model: str | None = None
               ) -> tuple[list[str], list[tuple[Path, Writer]]]:
    """The stem ids and their (target, writer) jobs, after every check that needs no
    writing: the stems exist, the names differ, nothing is overwritten unless allowed."""
    format = enc.format
    ids = [get_stem(s).id for s in (which if which is not None else stems.keys())]
    missing = [s for s in ids if s not in stems]
    if missing:
        raise StemwrightError(f"not produced by this model: {', '.join(missing)}")
    targets = [folder / stem_filename(song, s, format, pattern, model=model)
               for s in ids]
    if len(set(targets)) != len(targets):
        raise StemwrightError(f"naming pattern '{pattern}' gives several stems the same name")
    _refuse_existing(targets, overwrite)
    _refuse_folders(targets)
    rate = samplerate_out or samplerate
    return ids, [(t, _audio_writer(stems[s], samplerate, rate, enc, t,
                                   _tags(song, artist, get_stem(s).name)))
                 for s, t in zip(ids, targets, strict=True)]


def export_stems(stems: Mapping[str, np.ndarray], samplerate: int, folder: str | Path,
                 song: str, which: Sequence[str] | None = None, format: str = "wav",
                 bit_depth: int = 24, samplerate_out: int | None = None,
                 pattern: str = DEFAULT_PATTERN, overwrite: bool = False,
                 progress: Callable[[float], None] | None = None,
                 cancel: CancelCheck | None = None, *, bitrate_kbps: int | None = None,
                 vbr: int | None = None, artist: str | None = None,
                 model: str | None = None) -> list[Path]:
    """Write the chosen stems as `folder/<pattern>.<format>`; returns the written paths.
    `model`: the model's name, for a pattern's {model}.

    `format`: one of `OUTPUT_FORMATS`; `bit_depth` applies to WAV/FLAC, `bitrate_kbps`
    and `vbr` to the lossy formats (`LOSSY_FORMATS`). Tags: title = `song`, artist =
    `artist` when given, comment = the stem's name.
    All or nothing (see the module): a refused overwrite, a failure or a cancel leaves
    the folder as it was, previous stems included.
    """
    folder = Path(folder)
    enc = _Encoding(format, bit_depth, bitrate_kbps, vbr)
    _, jobs = _stem_jobs(stems, samplerate, folder, song, which, enc, samplerate_out,
                         pattern, overwrite, artist, model)
    return _write_all(folder, jobs, overwrite, progress, cancel)


# -- remix, "song minus X" and DAW projects ---------------------------------------------

def _check_format(format: str, bit_depth: int, bitrate_kbps: int | None = None,
                  vbr: int | None = None) -> str:
    format = format.lower()
    if format not in OUTPUT_FORMATS:
        raise StemwrightError(f"unsupported export format '{format}' "
                              f"(choose {', '.join(OUTPUT_FORMATS)})")
    if format in LOSSY_FORMATS:  # the bit depth does not apply
        check_lossy_options(format, bitrate_kbps, vbr)
        return format
    if bitrate_kbps is not None or vbr is not None:
        raise StemwrightError(f"{format.upper()} is lossless and takes no bitrate or VBR "
                              f"quality; leave them out, or choose "
                              f"{', '.join(LOSSY_FORMATS)}")
    if bit_depth not in SAVE_FORMATS[format]:
        raise StemwrightError(f"{format.upper()} supports bit depths "
                              f"{', '.join(map(str, SAVE_FORMATS[format]))}, not {bit_depth}")
    return format


def _refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    existing = [p for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]} already exists (use --force to overwrite)")


def _save_rendered(data: np.ndarray, samplerate: int, path: str | Path, enc: _Encoding,
                   samplerate_out: int | None, overwrite: bool,
                   cancel: CancelCheck | None, tags: Mapping[str, str]) -> Path:
    path = Path(path)
    _refuse_existing([path], overwrite)
    writer = _audio_writer(data, samplerate, samplerate_out or samplerate, enc, path, tags)
    return _write_all(path.parent, [(path, writer)], overwrite, cancel=cancel)[0]


def export_remix(stems: Mapping[str, np.ndarray], samplerate: int, state: MixerState,
                 path: str | Path, format: str = "wav", bit_depth: int = 24,
                 samplerate_out: int | None = None, overwrite: bool = False,
                 progress: Callable[[float], None] | None = None,
                 cancel: CancelCheck | None = None, *, bitrate_kbps: int | None = None,
                 vbr: int | None = None, song: str | None = None,
                 artist: str | None = None) -> Path:
    """Render the mixer state offline (`mixing.render_mix`, stereo) and write it to `path`.

    This is the exact remix, not a recording of playback; the A/B source is ignored.
    Formats and tags as in `export_stems` (title = `song` when given, comment "Remix").
    """
    enc = _Encoding(format, bit_depth, bitrate_kbps, vbr)
    _refuse_existing([Path(path)], overwrite)
    if not stems:
        raise StemwrightError("there are no stems to remix")
    check_cancel(cancel)
    data = render_mix(stems, state)
    tags = _tags(song, artist, "Remix")
    if progress is not None:
        progress(0.5)
    check_cancel(cancel)
    out = _save_rendered(data, samplerate, path, enc, samplerate_out, overwrite, cancel,
                         tags)
    if progress is not None:
        progress(1.0)
    return out


def export_song_minus(stems: Mapping[str, np.ndarray], samplerate: int,
                      exclude: Sequence[str], path: str | Path, format: str = "wav",
                      bit_depth: int = 24, samplerate_out: int | None = None,
                      overwrite: bool = False,
                      progress: Callable[[float], None] | None = None,
                      cancel: CancelCheck | None = None, *,
                      bitrate_kbps: int | None = None, vbr: int | None = None,
                      song: str | None = None, artist: str | None = None) -> Path:
    """Write the sum of every stem except `exclude` (e.g. a karaoke or drumless track).

    With the separation residual folded into "other" the stems add up to the song, so
    this is the song minus the excluded stems. Formats and tags as in `export_stems`
    (title = `song` when given, comment e.g. "minus Vocals").
    """
    enc = _Encoding(format, bit_depth, bitrate_kbps, vbr)
    excluded = [get_stem(s).id for s in exclude]
    if not excluded:
        raise StemwrightError("choose at least one stem to remove")
    missing = [s for s in excluded if s not in stems]
    if missing:
        raise StemwrightError(f"not produced by this model: {', '.join(missing)}")
    if set(stems) <= set(excluded):
        raise StemwrightError("removing every stem leaves nothing to export")
    _refuse_existing([Path(path)], overwrite)
    check_cancel(cancel)
    data = sum_stems(stems, exclude=excluded)
    tags = _tags(song, artist, minus_label(excluded))
    if progress is not None:
        progress(0.5)
    check_cancel(cancel)
    out = _save_rendered(data, samplerate, path, enc, samplerate_out, overwrite, cancel,
                         tags)
    if progress is not None:
        progress(1.0)
    return out


def remix_filename(song: str, ext: str, label: str = "Remix",
                   pattern: str = DEFAULT_PATTERN, *, model: str | None = None) -> str:
    """File name for a rendered mix, e.g. "Song - Remix.wav" or "Song - minus Vocals.wav";
    `model` as in `stem_filename`."""
    return _pattern_name(pattern, song, label, label.lower().replace(" ", "_"), ext, model)


def minus_label(exclude: Sequence[str]) -> str:
    """"minus Vocals", "minus Vocals and Drums" for file names and titles."""
    names = [get_stem(s).name for s in exclude]
    if len(names) > 1:
        return "minus " + ", ".join(names[:-1]) + " and " + names[-1]
    return "minus " + "".join(names)


def reaper_color(color: str) -> int:
    """"#rrggbb" -> REAPER's PEAKCOL integer: 0x01000000 | b << 16 | g << 8 | r."""
    value = color.strip().lstrip("#")
    if len(value) != 6:
        raise StemwrightError(f"colour must look like #rrggbb, not '{color}'")
    r, g, b = (int(value[i:i + 2], 16) for i in (0, 2, 4))
    return 0x01000000 | (b << 16) | (g << 8) | r


def _rpp_string(text: str) -> str:
    """Quote a string the way REAPER does: "..." or, when it contains quotes, '...' or `...`."""
    text = text.replace("\n", " ").replace("\r", " ")
    for quote in ('"', "'", "`"):
        if quote not in text:
            return f"{quote}{text}{quote}"
    return '"' + text.replace('"', "'") + '"'


def _rpp_source_type(path: Path) -> str:
    ext = path.suffix.lower()
    return {".flac": "FLAC", ".wav": "WAVE", ".wave": "WAVE", ".mp3": "MP3",
            ".ogg": "VORBIS", ".opus": "OPUS", ".m4a": "VIDEO", ".aif": "WAVE",
            ".aiff": "WAVE"}.get(ext, "WAVE")


#: the tempo written when the song's is unknown (REAPER's own default)
DEFAULT_BPM = 120.0


def _rpp_bpm(bpm: float | None) -> str:
    if bpm is None:
        return f"{DEFAULT_BPM:g}"
    value = float(bpm)
    if not math.isfinite(value) or not 1.0 <= value <= 960.0:
        raise StemwrightError(f"tempo {bpm} bpm is out of range (1 to 960)")
    return f"{round(value, 3):g}"


def _rpp_volpan(channel: ChannelState | None) -> tuple[str, str]:
    """("VOLPAN vol pan -1 -1 1", "MUTESOLO mute solo 0") for a mixer channel: the fader
    in dB as REAPER's linear volume (off at the fader floor), the pan -1 (left) .. 1."""
    if channel is None:
        return "VOLPAN 1 0 -1 -1 1", "MUTESOLO 0 0 0"
    gain = db_to_gain(float(channel.gain_db))
    pan = float(channel.pan)
    pan = 0.0 if math.isnan(pan) else min(1.0, max(-1.0, pan))
    return (f"VOLPAN {gain:.10g} {pan:.10g} -1 -1 1",
            f"MUTESOLO {int(bool(channel.mute))} {int(bool(channel.solo))} 0")


def reaper_project_text(tracks: Sequence[tuple[str, str, Path]], samplerate: int,
                        length_seconds: float, project_dir: str | Path,
                        bpm: float | None = None,
                        mixer: Mapping[str, ChannelState] | None = None,
                        master_db: float = 0.0) -> str:
    """The .RPP text: one named, coloured track per (name, "#rrggbb", file), item at 0.

    `bpm`: the song's tempo (`DEFAULT_BPM` when None, i.e. unknown). `mixer`: the mixer
    channel of each track by track name (volume, pan, mute, solo); tracks not in it, or
    all when None, are flat. `master_db`: the master fader.
    """
    project_dir = Path(project_dir)
    mixer = mixer or {}
    lines = [f'<REAPER_PROJECT 0.1 "6.0/stemwright" {int(time.time())}',
             "  RIPPLE 0",
             "  AUTOXFADE 0",
             f"  SAMPLERATE {int(samplerate)} 1 0",
             f"  TEMPO {_rpp_bpm(bpm)} 4 4",
             "  CURSOR 0",
             "  ZOOM 100 0 0",
             "  MASTER_NCH 2 2",
             f"  MASTER_VOLUME {db_to_gain(float(master_db)):.10g} 0 -1 -1 1"]
    for name, color, audio in tracks:
        audio = Path(audio)
        volpan, mutesolo = _rpp_volpan(mixer.get(name))
        try:
            rel = Path(os.path.relpath(audio, project_dir)).as_posix()
        except ValueError:  # another drive on Windows
            rel = audio.as_posix()
        lines += [f"  <TRACK {{{str(uuid.uuid4()).upper()}}}",
                  f"    NAME {_rpp_string(name)}",
                  f"    PEAKCOL {reaper_color(color)}",
                  "    BEAT -1",
                  "    AUTOMODE 0",
                  f"    {volpan}",
                  f"    {mutesolo}",
                  "    IPHASE 0",
                  "    ISBUS 0 0",
                  "    NCHAN 2",
                  "    MAINSEND 1 0",
                  "    <ITEM",
                  "      POSITION 0",
                  "      SNAPOFFS 0",
                  f"      LENGTH {float(length_seconds):.10g}",
                  "      LOOP 0",
                  "      ALLTAKES 0",
                  "      FADEIN 0 0 0 0 0 0 0",
                  "      FADEOUT 0 0 0 0 0 0 0",
                  "      MUTE 0 0",
                  f"      IGUID {{{str(uuid.uuid4()).upper()}}}",
                  f"      NAME {_rpp_string(audio.name)}",
                  "      VOLPAN 1 0 1 -1",
                  "      SOFFS 0",
                  "      PLAYRATE 1 1 0 -1 0 0.0025",
                  f"      <SOURCE {_rpp_source_type(audio)}",
                  f"        FILE {_rpp_string(rel)}",
                  "      >",
                  "    >",
                  "  >"]
    lines.append(">")
    return "\n".join(lines) + "\n"


def copy_file_atomic(src: str | Path, target: str | Path, overwrite: bool,
                     refuse: str = "use --force to overwrite") -> Path:
    """Copy `src` to `target` byte for byte via a hidden temporary in the target's folder
    (named so that a later export removes it if this process is killed), then move it
    into place. OutputExistsError ("<target> already exists (<refuse>)") when `target`
    exists, or appears meanwhile, and `overwrite` is off; AudioError (one line) when it
    cannot be read or written."""
    src, target = Path(src), Path(target)
    stage = target.parent / _temp_name("mix")
    exists = OutputExistsError(f"{target} already exists ({refuse})")
    try:
        with open(src, "rb") as fin, open(stage, "xb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        if overwrite:
            os.replace(stage, target)
        else:
            try:
                os.link(stage, target)  # fails if the target appeared meanwhile
            except FileExistsError:
                raise exists from None
            except (OSError, NotImplementedError):  # no hard links on this file system
                if os.path.lexists(target):
                    raise exists from None
                os.replace(stage, target)
    except OSError as exc:
        raise AudioError(f"{target}: could not be copied from {src.name} ({_why(exc)}); "
                         "check that the source is still there and the folder is "
                         "writable") from exc
    finally:
        with contextlib.suppress(OSError):
            stage.unlink(missing_ok=True)
    return target


def write_text_atomic(path: str | Path, text: str, overwrite: bool = False) -> Path:
    """Write `text` via a temporary file in the same folder, then move it into place."""
    path = Path(path)
    _refuse_existing([path], overwrite)
    return _write_all(path.parent, [(path, _text_writer(text))], overwrite)[0]


def write_reaper_project(path: str | Path, tracks: Sequence[tuple[str, str, Path]],
                         samplerate: int, length_seconds: float,
                         overwrite: bool = False, bpm: float | None = None,
                         mixer: Mapping[str, ChannelState] | None = None,
                         master_db: float = 0.0) -> Path:
    """Write a REAPER project (.RPP, plain text): each (name, "#rrggbb", audio file) on its
    own coloured track, one item at time zero, file paths relative to the project; the
    tempo and mixer as in `reaper_project_text`."""
    path = Path(path)
    text = reaper_project_text(tracks, samplerate, length_seconds, path.parent, bpm=bpm,
                               mixer=mixer, master_db=master_db)
    return write_text_atomic(path, text, overwrite=overwrite)


def project_filename(song: str) -> str:
    """"Song.RPP" for a song title (a very long one shortened, as in `stem_filename`)."""
    return _pattern_name("{song}", song, "", "", "RPP")


def export_daw_session(stems: Mapping[str, np.ndarray], samplerate: int,
                       folder: str | Path, song: str, which: Sequence[str] | None = None,
                       format: str = "wav", bit_depth: int = 24,
                       samplerate_out: int | None = None, pattern: str = DEFAULT_PATTERN,
                       overwrite: bool = False,
                       progress: Callable[[float], None] | None = None,
                       cancel: CancelCheck | None = None, bpm: float | None = None,
                       mixer: MixerState | None = None, *, bitrate_kbps: int | None = None,
                       vbr: int | None = None, artist: str | None = None,
                       model: str | None = None) -> list[Path]:
    """Export the stems and a REAPER project that opens them, aligned at zero, in one go.

    Returns the stem files followed by the project file (last). All or nothing, like
    `export_stems`: the project and the stems are put in place together. `bpm`: the
    song's tempo, when known; `mixer`: the remix's faders, pans, mutes and solos, set on
    the project's tracks (the stems themselves are written unmixed). Formats and tags as
    in `export_stems`; `model` as in `export_stems`.
    """
    folder = Path(folder)
    project = folder / project_filename(song)
    enc = _Encoding(format, bit_depth, bitrate_kbps, vbr)
    ids, jobs = _stem_jobs(stems, samplerate, folder, song, which, enc, samplerate_out,
                           pattern, overwrite, artist, model)
    _refuse_existing([project], overwrite)
    rate = enc.file_rate(samplerate_out or samplerate)
    length = resampled_length(_length_of(stems), samplerate, rate) / rate
    tracks = [(get_stem(s).name, get_stem(s).color, target)
              for s, (target, _) in zip(ids, jobs, strict=True)]
    channels = ({get_stem(s).name: mixer.channel(s) for s in ids} if mixer is not None
                else None)
    text = reaper_project_text(tracks, rate, length, folder, bpm=bpm, mixer=channels,
                               master_db=mixer.master_db if mixer is not None else 0.0)
    return _write_all(folder, [*jobs, (project, _text_writer(text))], overwrite, progress,
                      cancel)


def _length_of(stems: Mapping[str, np.ndarray]) -> int:
    return int(next(iter(stems.values())).shape[-1])
