"""Writing separated stems, remixes and DAW projects to disk so they line up in any DAW.

All stems of one export have the same sample rate and length and start at time zero; each
file is written atomically (audio by `audio_io.save_audio`, project text through a
temporary file), and nothing is overwritten unless asked. Besides the stems: the remix
(the mixer state rendered offline), "song minus X" (the sum of the other stems) and a
REAPER project (.RPP) that opens the stems on named, coloured tracks at time zero.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..audio.io import SAVE_FORMATS, save_audio
from ..audio.resample import resample, resampled_length
from ..errors import OutputExistsError, StemwrightError
from ..progress import CancelCheck, check_cancel
from ..stems import get_stem
from .mixer import MixerState, render_mix, sum_stems

DEFAULT_PATTERN = "{song} - {stem}"
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def safe_filename(name: str) -> str:
    """A file-name-safe version of `name` (no path separators or reserved characters)."""
    cleaned = _UNSAFE.sub("_", name).strip().strip(".")
    return cleaned or "untitled"


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
    "songs/ballad_Eb-major/mix.flac" -> "ballad_Eb-major". File-name safe.
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

    The same file given twice clashes too. Folder names are compared ignoring case, as
    Windows and macOS do.
    """
    seen: dict[str, Path] = {}
    for f in files:
        f = Path(f)
        folder = Path(root) / song_name(f)
        key = os.path.normcase(os.path.abspath(folder)).casefold()
        if key in seen:
            return seen[key], f, folder
        seen[key] = f
    return None


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
    format = _check_format(format, bit_depth)
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


# -- remix, "song minus X" and DAW projects ---------------------------------------------

def _check_format(format: str, bit_depth: int) -> str:
    format = format.lower()
    if format not in SAVE_FORMATS:
        raise StemwrightError(f"unsupported export format '{format}' "
                              f"(choose {', '.join(SAVE_FORMATS)})")
    if bit_depth not in SAVE_FORMATS[format]:
        raise StemwrightError(f"{format.upper()} supports bit depths "
                              f"{', '.join(map(str, SAVE_FORMATS[format]))}, not {bit_depth}")
    return format


def _refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    existing = [p for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]} already exists (use --force to overwrite)")


def _save_rendered(data: np.ndarray, samplerate: int, path: str | Path, format: str,
                   bit_depth: int, samplerate_out: int | None, overwrite: bool) -> Path:
    path = Path(path)
    format = _check_format(format, bit_depth)
    _refuse_existing([path], overwrite)
    rate = samplerate_out or samplerate
    if rate != samplerate:
        data = resample(data, samplerate, rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_audio(path, data, rate, format=format, bit_depth=bit_depth,
                      overwrite=overwrite)


def export_remix(stems: Mapping[str, np.ndarray], samplerate: int, state: MixerState,
                 path: str | Path, format: str = "wav", bit_depth: int = 24,
                 samplerate_out: int | None = None, overwrite: bool = False,
                 progress: Callable[[float], None] | None = None,
                 cancel: CancelCheck | None = None) -> Path:
    """Render the mixer state offline (`mixing.render_mix`, stereo) and write it to `path`.

    This is the exact remix, not a recording of playback; the A/B source is ignored.
    """
    _check_format(format, bit_depth)
    _refuse_existing([Path(path)], overwrite)
    if not stems:
        raise StemwrightError("there are no stems to remix")
    check_cancel(cancel)
    data = render_mix(stems, state)
    if progress is not None:
        progress(0.5)
    check_cancel(cancel)
    out = _save_rendered(data, samplerate, path, format, bit_depth, samplerate_out, overwrite)
    if progress is not None:
        progress(1.0)
    return out


def export_song_minus(stems: Mapping[str, np.ndarray], samplerate: int,
                      exclude: Sequence[str], path: str | Path, format: str = "wav",
                      bit_depth: int = 24, samplerate_out: int | None = None,
                      overwrite: bool = False,
                      progress: Callable[[float], None] | None = None,
                      cancel: CancelCheck | None = None) -> Path:
    """Write the sum of every stem except `exclude` (e.g. a karaoke or drumless track).

    With the separation residual folded into "other" the stems add up to the song, so
    this is the song minus the excluded stems.
    """
    _check_format(format, bit_depth)
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
    if progress is not None:
        progress(0.5)
    check_cancel(cancel)
    out = _save_rendered(data, samplerate, path, format, bit_depth, samplerate_out, overwrite)
    if progress is not None:
        progress(1.0)
    return out


def remix_filename(song: str, ext: str, label: str = "Remix",
                   pattern: str = DEFAULT_PATTERN) -> str:
    """File name for a rendered mix, e.g. "Song - Remix.wav" or "Song - minus Vocals.wav"."""
    try:
        base = pattern.format(song=song, stem=label, id=label.lower().replace(" ", "_"))
    except (KeyError, IndexError, ValueError) as exc:
        raise StemwrightError(f"bad naming pattern '{pattern}': use {{song}}, {{stem}}, {{id}}"
                              ) from exc
    return safe_filename(base) + "." + ext


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
            ".ogg": "VORBIS", ".aif": "WAVE", ".aiff": "WAVE"}.get(ext, "WAVE")


def reaper_project_text(tracks: Sequence[tuple[str, str, Path]], samplerate: int,
                        length_seconds: float, project_dir: str | Path) -> str:
    """The .RPP text: one named, coloured track per (name, "#rrggbb", file), item at 0."""
    project_dir = Path(project_dir)
    lines = [f'<REAPER_PROJECT 0.1 "6.0/stemwright" {int(time.time())}',
             "  RIPPLE 0",
             "  AUTOXFADE 0",
             f"  SAMPLERATE {int(samplerate)} 1 0",
             "  TEMPO 120 4 4",
             "  CURSOR 0",
             "  ZOOM 100 0 0",
             "  MASTER_NCH 2 2",
             "  MASTER_VOLUME 1 0 -1 -1 1"]
    for name, color, audio in tracks:
        audio = Path(audio)
        try:
            rel = Path(os.path.relpath(audio, project_dir)).as_posix()
        except ValueError:  # another drive on Windows
            rel = audio.as_posix()
        lines += [f"  <TRACK {{{str(uuid.uuid4()).upper()}}}",
                  f"    NAME {_rpp_string(name)}",
                  f"    PEAKCOL {reaper_color(color)}",
                  "    BEAT -1",
                  "    AUTOMODE 0",
                  "    VOLPAN 1 0 -1 -1 1",
                  "    MUTESOLO 0 0 0",
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


def write_text_atomic(path: str | Path, text: str, overwrite: bool = False) -> Path:
    """Write `text` via a temporary file in the same folder, then move it into place."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists (use --force to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".part",
                                    dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the target appeared meanwhile
            except FileExistsError as exc:
                raise OutputExistsError(f"{path} already exists (use --force to overwrite)"
                                        ) from exc
            except OSError:  # file system without hard links
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_reaper_project(path: str | Path, tracks: Sequence[tuple[str, str, Path]],
                         samplerate: int, length_seconds: float,
                         overwrite: bool = False) -> Path:
    """Write a REAPER project (.RPP, plain text): each (name, "#rrggbb", audio file) on its
    own coloured track, one item at time zero, file paths relative to the project."""
    path = Path(path)
    text = reaper_project_text(tracks, samplerate, length_seconds, path.parent)
    return write_text_atomic(path, text, overwrite=overwrite)


def project_filename(song: str) -> str:
    """"Song.RPP" for a song title."""
    return safe_filename(song) + ".RPP"


def export_daw_session(stems: Mapping[str, np.ndarray], samplerate: int,
                       folder: str | Path, song: str, which: Sequence[str] | None = None,
                       format: str = "wav", bit_depth: int = 24,
                       samplerate_out: int | None = None, pattern: str = DEFAULT_PATTERN,
                       overwrite: bool = False,
                       progress: Callable[[float], None] | None = None,
                       cancel: CancelCheck | None = None) -> list[Path]:
    """Export the stems and a REAPER project that opens them, aligned at zero, in one go.

    Returns the stem files followed by the project file (last).
    """
    folder = Path(folder)
    project = folder / project_filename(song)
    format = _check_format(format, bit_depth)
    ids = [get_stem(s).id for s in (which if which is not None else stems.keys())]
    _refuse_existing([project] + [folder / stem_filename(song, s, format, pattern)
                                  for s in ids if s in stems], overwrite)
    written = export_stems(stems, samplerate, folder, song, which=ids, format=format,
                           bit_depth=bit_depth, samplerate_out=samplerate_out,
                           pattern=pattern, overwrite=overwrite, progress=progress,
                           cancel=cancel)
    rate = samplerate_out or samplerate
    length = resampled_length(_length_of(stems), samplerate, rate) / rate
    tracks = [(get_stem(s).name, get_stem(s).color, p) for s, p in zip(ids, written,
                                                                        strict=True)]
    try:
        check_cancel(cancel)
        rpp = write_reaper_project(project, tracks, rate, length, overwrite=overwrite)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return [*written, rpp]


def _length_of(stems: Mapping[str, np.ndarray]) -> int:
    return int(next(iter(stems.values())).shape[-1])
