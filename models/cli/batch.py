"""`stemwright separate` on many songs at once: finding the songs in folders, where each
song's files go, the checks made before any work, running the songs one after another,
in parallel worker processes (`--jobs`) or shared among torchrun ranks, the
`.stemwright.json` record that `--skip-existing` trusts, the presets (karaoke, a-cappella,
practice-STEM) and the summary.

One bad song never stops the others: a song that cannot be read or separated is counted
as failed, with its one-line reason, and the run goes on. Problems that concern the whole
run (an unknown model, two songs for one output folder, stems already there without
--force) are refused before any work, as for a single song.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..audio.io import SAVE_FORMATS, audio_info, iter_blocks, load_audio
from ..diagnostics import explain
from ..errors import AudioError, Cancelled, StemwrightError
from ..multitrack.folders import AUDIO_SUFFIXES
from ..remix.export import (
    DEFAULT_PATTERN,
    check_output_folder,
    copy_file_atomic,
    export_song_minus,
    export_stems,
    minus_label,
    remix_filename,
    safe_filename,
    shown,
    song_name,
    stem_filename,
    write_text_atomic,
)
from ..remix.nistems import export_ni_stems
from ..remix.stream_export import StreamedExport
from ..stems import STEM_IDS, get_stem
from ..wording import count

#: the record written next to a song's files after a complete export
RECORD_NAME = ".stemwright.json"
RECORD_VERSION = 1
_MAX_RECORD_BYTES = 1 << 16
#: file name endings searched for songs in a folder (what `load_audio` reads)
SONG_SUFFIXES = frozenset({*AUDIO_SUFFIXES, ".oga", ".wave"})
#: stem file names with the model's name (`--name-model`)
MODEL_PATTERN = "{song} - {stem} ({model})"
MIX_LABEL = "Mix"
#: `--format ni-stems`: one .stem.mp4 per song (models/remix/nistems.py), AAC at this bitrate
NI_STEMS = "ni-stems"
NI_STEMS_KBPS = 256
#: frames read at a time when a song is separated as a stream
STREAM_BLOCK = 1 << 16
PRESETS = ("karaoke", "a-cappella", "practice-STEM")


class BatchError(StemwrightError):
    """A problem with the whole run, found before any work starts."""


# -- settings --------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """What every song of a run is separated and written with (picklable: it travels to
    the worker processes)."""

    model: str
    stems: tuple[str, ...]  # written as one file each
    minus: tuple[str, ...]  # () or the stems left out of the one "minus" file
    preset: str | None
    format: str
    bit_depth: int
    segment: float | None
    overlap: float | None
    half: bool
    residual_to_other: bool
    pattern: str
    copy_mix: bool
    device: str = "cpu"
    force: bool = False
    debug: bool = False
    bitrate_kbps: int | None = None  # lossy formats
    vbr: int | None = None  # MP3 variable bitrate quality
    ni_mapping: str = "default"  # ni-stems: `parse_ni_mapping` spec (preset name or groups)
    ni_codec: str = "aac"  # ni-stems: "aac" or "alac" (at bit_depth)

    def record(self) -> dict:
        """The settings that decide what the files hold (compared by --skip-existing);
        the NI Stems mapping and codec only when not the defaults, so older records
        still match."""
        ni = ({"ni_mapping": self.ni_mapping, "ni_codec": self.ni_codec}
              if (self.ni_mapping, self.ni_codec) != ("default", "aac") else {})
        return {**ni, "stemwright": RECORD_VERSION, "model": self.model, "stems": list(self.stems),
                "minus": list(self.minus), "preset": self.preset, "format": self.format,
                "bit_depth": self.bit_depth, "segment": self.segment,
                "overlap": self.overlap, "half": self.half,
                "residual_to_other": self.residual_to_other, "pattern": self.pattern,
                "copy_mix": self.copy_mix, "bitrate_kbps": self.bitrate_kbps,
                "vbr": self.vbr}


def model_pattern(model: str) -> str:
    """The naming pattern that puts the model's name in each file name (`--name-model`)."""
    return MODEL_PATTERN.replace("{model}", model.replace("{", "{{").replace("}", "}}"))


def preset_stems(preset: str, produced: Sequence[str]) -> tuple[tuple[str, ...],
                                                                 tuple[str, ...], str]:
    """(stems written as files, stems left out of the "minus" file, the preset's canonical
    name) for `--preset`; BatchError for an unknown preset or one the model cannot do."""
    name = preset.strip().lower()
    if name == "karaoke":
        stems, minus = ("vocals",), ("vocals",)
    elif name in ("a-cappella", "acappella", "a_cappella"):
        name, stems, minus = "a-cappella", ("vocals",), ()
    elif name.startswith("practice-") or name.startswith("practice_"):
        try:
            stem = get_stem(name[len("practice-"):]).id
        except KeyError:
            raise BatchError(f"--preset {preset}: unknown stem '{name[len('practice-'):]}'; "
                             f"use practice-STEM with STEM one of {', '.join(STEM_IDS)}"
                             ) from None
        name, stems, minus = f"practice-{stem}", (), (stem,)
    else:
        raise BatchError(f"unknown --preset '{preset}'; choose karaoke, a-cappella or "
                         "practice-STEM (e.g. practice-drums)")
    needed = [s for s in (*stems, *minus) if s not in produced]
    if needed:
        raise BatchError(f"--preset {name} needs {get_stem(needed[0]).name.lower()}, which "
                         f"the model does not produce (it produces: "
                         f"{', '.join(get_stem(s).name.lower() for s in produced)})")
    if minus and set(produced) <= set(minus):
        raise BatchError(f"--preset {name}: the model produces nothing besides "
                         f"{get_stem(minus[0]).name.lower()}, so nothing is left to write")
    return stems, minus, name


# -- finding the songs -----------------------------------------------------------------

@dataclass
class Song:
    """One input file and the folder its files go to."""

    path: Path
    name: str
    folder: Path
    problem: str | None = None  # found in a folder, but cannot be separated
    found: bool = False  # found in a folder (shown with its path), not named

    @property
    def label(self) -> str:
        """How the song is named in messages: the file's name, or its path when it was
        found in a folder (two folders may hold the same name)."""
        return shown(self.path if self.found else self.path.name)

    def targets(self, settings: Settings) -> list[Path]:
        """Every file a complete export of this song writes, in writing order."""
        fmt = settings.format
        if fmt == NI_STEMS:
            model = f" ({settings.model})" if settings.pattern != DEFAULT_PATTERN else ""
            out = [self.folder / (safe_filename(self.name + model) + ".stem.mp4")]
            return [*out, self.mix_target()] if settings.copy_mix else out
        out = [self.folder / stem_filename(self.name, s, fmt, settings.pattern)
               for s in settings.stems]
        if settings.minus:
            out.append(self.folder / remix_filename(self.name, fmt,
                                                    minus_label(settings.minus),
                                                    settings.pattern))
        if settings.copy_mix:
            out.append(self.mix_target())
        return out

    def mix_target(self) -> Path:
        """Where --copy-mix puts the input file: "<song> - Mix.<its extension>"."""
        ext = self.path.suffix.lstrip(".").lower()
        ext = ext if ext.isascii() and ext.isalnum() else "audio"
        return self.folder / remix_filename(self.name, ext, MIX_LABEL, DEFAULT_PATTERN)


_OUR_LABELS = frozenset({*(get_stem(s).name for s in STEM_IDS), MIX_LABEL})


def _written_by_us(path: Path) -> bool:
    """A file that looks like a stem we wrote: in folder F, "F - Vocals.wav", "F - Vocals
    (model).wav", "F - minus Drums.wav" or "F - Mix.flac" (a record may be missing: files
    of an older version, or of an export that failed after its stems)."""
    prefix = path.parent.name + " - "
    if not path.stem.startswith(prefix):
        return False
    label = re.sub(r" \([^()]*\)$", "", path.stem[len(prefix):])
    return label in _OUR_LABELS or label.startswith("minus ")


def _walk(root: Path, skip: set[str], warn: Callable[[str], None]) -> Iterator[Path]:
    """Audio files under `root`, sorted, skipping hidden files and folders, the folders
    in `skip` (real paths) and folders that hold our record (song folders we wrote)."""
    def onerror(exc: OSError) -> None:
        warn(f"{shown(exc.filename or root)}: cannot be read ({exc.strerror or exc}); "
             "skipped")

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        if RECORD_NAME in filenames:
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and os.path.realpath(os.path.join(dirpath, d)) not in skip)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if (name.startswith(".") or path.suffix.lower() not in SONG_SUFFIXES
                    or _written_by_us(path)):
                continue
            yield path


def find_songs(inputs: Sequence[str], output: str | os.PathLike[str],
               warn: Callable[[str], None]) -> list[Song]:
    """The songs in `inputs` (files, and folders searched recursively) with their output
    folders: a file named on the command line goes to `output/<song>/`; a file found in a
    folder keeps its sub-folders below that folder: `output/<sub-folders>/<song>/`, where
    a song named after its folder (mix.wav, see `song_name`) does not repeat it."""
    out = Path(output)
    skip = {os.path.realpath(out)}
    songs: list[Song] = []
    for arg in inputs:
        path = Path(arg)
        if shown(path) != str(path):  # bytes that are not UTF-8 (surrogate-escaped)
            raise BatchError(f"{shown(path)}: the file name is not valid UTF-8, which "
                             "Stemwright cannot open; rename the file (e.g. with convmv)")
        if not path.exists():
            raise BatchError(f"{path}: not found; check the path (give audio files or "
                             "folders of them)")
        if not path.is_dir():
            songs.append(Song(path, song_name(path), out / song_name(path)))
            continue
        found = 0
        for file in _walk(path, skip, warn):
            found += 1
            name = song_name(file)
            rel = [safe_filename(p) for p in file.parent.relative_to(path).parts]
            if rel and name != safe_filename(file.stem):  # named after its folder
                rel = rel[:-1]
            song = Song(file, name, out.joinpath(*rel, name), found=True)
            if shown(file) != str(file):
                song.problem = (f"{shown(file)}: the file name is not valid UTF-8, which "
                                "Stemwright cannot open; rename it (e.g. with convmv)")
            songs.append(song)
        if not found:
            warn(f"{path}: no audio files found in this folder")
    if not songs:
        raise BatchError("no songs to separate: the folders given hold no audio files ("
                         f"{' '.join(sorted(SONG_SUFFIXES))}; hidden files and Stemwright's "
                         "own output folders are skipped)")
    return songs


def _folder_key(folder: Path) -> str:
    """Folder names compared as Windows and macOS do (case, Unicode normalisation)."""
    key = unicodedata.normalize("NFC", os.path.normcase(os.path.abspath(folder)))
    return unicodedata.normalize("NFC", key.casefold())


def check_songs(songs: Sequence[Song], output: str | os.PathLike[str]) -> None:
    """Refuse (BatchError) two songs for one output folder, the same file twice, and an
    output folder that cannot take every song's folder (`check_output_folder`)."""
    seen: dict[str, Song] = {}
    files: dict[str, Song] = {}
    for song in songs:
        key = _folder_key(song.folder)
        same = files.get(os.path.realpath(song.path))
        if same is not None or (key in seen and os.path.realpath(seen[key].path)
                                == os.path.realpath(song.path)):
            first = same or seen[key]
            raise BatchError(f"{first.path} and {song.path} are the same file; give each "
                             "song once")
        if key in seen:
            raise BatchError(f"{seen[key].path} and {song.path} would both be separated "
                             f"into {song.folder}; rename one of them, or separate them one "
                             "at a time with different -o folders")
        seen[key] = song
        files[os.path.realpath(song.path)] = song
    groups: dict[Path, list[str]] = {}
    for song in songs:
        groups.setdefault(song.folder.parent, []).append(song.name)
    check_output_folder(output, [])
    for parent, names in groups.items():
        check_output_folder(parent, names)


# -- torchrun --------------------------------------------------------------------------

@dataclass(frozen=True)
class Rank:
    """This process's share of the songs under torchrun (RANK of WORLD_SIZE)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def label(self) -> str:
        return f"rank {self.rank}/{self.world}: " if self.world > 1 else ""


def rank_from_env(env: dict[str, str] | None = None) -> Rank:
    """RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE as torchrun sets them; one
    process of one when RANK or WORLD_SIZE is missing."""
    env = dict(os.environ) if env is None else env
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return Rank()
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_RANK", "0"))
        local_world = int(env.get("LOCAL_WORLD_SIZE", "1"))
    except ValueError:
        raise BatchError(f"RANK={env['RANK']!r} and WORLD_SIZE={env['WORLD_SIZE']!r} must be "
                         "whole numbers (they are set by torchrun)") from None
    if world < 1 or not 0 <= rank < world:
        raise BatchError(f"RANK={rank} is not between 0 and WORLD_SIZE-1={world - 1}")
    return Rank(rank, world, max(0, local), max(1, local_world))


def share(songs: Sequence[Song], rank: Rank) -> list[Song]:
    """The songs this rank separates: song i of the songs sorted by output folder, for
    every i with i % WORLD_SIZE == RANK (the same order on every rank)."""
    ordered = sorted(songs, key=lambda s: (_folder_key(s.folder), str(s.path)))
    return [s for i, s in enumerate(ordered) if i % rank.world == rank.rank]


# -- the record ------------------------------------------------------------------------

def _input_facts(path: Path) -> dict:
    st = os.stat(path)
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def expected_record(song: Song, settings: Settings) -> dict:
    """The record a complete export of `song` with `settings` writes."""
    return {**settings.record(), "input": _input_facts(song.path),
            "files": [t.name for t in song.targets(settings)]}


def already_done(song: Song, settings: Settings) -> bool:
    """True when the song's record matches these settings and input and every file it
    lists exists (what --skip-existing skips)."""
    path = song.folder / RECORD_NAME
    try:
        if path.stat().st_size > _MAX_RECORD_BYTES:
            return False
        record = json.loads(path.read_text(encoding="utf-8"))
        wanted = expected_record(song, settings)
    except (OSError, ValueError):
        return False
    return record == wanted and all((song.folder / f).is_file() for f in wanted["files"])


# -- one song --------------------------------------------------------------------------

def residual_note(result, written: Sequence[str]) -> str:
    """Where the residual (mix minus the sum of all the model's stems) went, truthfully
    for the stems actually written."""
    if result.residual_db is None:
        return "residual not measured"
    if result.residual_db == float("-inf"):
        return "no residual: the model's stems add up to the mix"
    level = f"residual {result.residual_db:.1f} dB"
    if not result.residual_in_other:
        return f"{level}, not in any written file"
    if "other" in written:
        return f"{level}, folded into other"
    return f"{level}, in other (not written)"


def separate_song(sep, song: Song, settings: Settings,
                  progress: Callable | None = None,
                  cancel: Callable[[], bool] | None = None) -> str:
    """Separate one song and write all its files and then its record; returns the line
    to print. A failure or cancel midway removes the files this call created (files it
    replaced under --force are not restored) and leaves no record."""
    if streamed(sep, settings):
        return _separate_streamed(sep, song, settings, progress, cancel)
    audio = load_audio(song.path)
    artist = audio.tags.get("artist")
    with _named(song):
        result = sep.separate(audio.data, audio.samplerate, progress=progress, cancel=cancel,
                              residual_to_other=settings.residual_to_other)
    del audio
    targets = song.targets(settings)
    new = [t for t in targets if not os.path.lexists(t)]
    record = song.folder / RECORD_NAME
    with contextlib.suppress(OSError):
        record.unlink()  # the files change now: the old record no longer tells the truth
    done: list[str] = []
    try:
        lossy = {"bitrate_kbps": settings.bitrate_kbps, "vbr": settings.vbr,
                 "artist": artist}
        if settings.format == NI_STEMS:
            tags = {"title": song.name, **({"artist": artist} if artist else {})}
            export_ni_stems(result.stems, result.samplerate, targets[0],
                            overwrite=settings.force, tags=tags, cancel=cancel,
                            bitrate_kbps=settings.bitrate_kbps or NI_STEMS_KBPS,
                            mapping=settings.ni_mapping, codec=settings.ni_codec,
                            bit_depth=settings.bit_depth)
            done.append("an NI Stems file")
        if settings.stems:
            export_stems(result.stems, result.samplerate, song.folder, song.name,
                         which=list(settings.stems), format=settings.format,
                         bit_depth=settings.bit_depth, pattern=settings.pattern,
                         overwrite=settings.force, cancel=cancel, **lossy)
            done.append(count(len(settings.stems), "stem"))
        if settings.minus:
            target = targets[len(settings.stems)]
            export_song_minus(result.stems, result.samplerate, settings.minus, target,
                              format=settings.format, bit_depth=settings.bit_depth,
                              overwrite=settings.force, cancel=cancel, song=song.name,
                              **lossy)
            done.append(f"the song {minus_label(settings.minus)}")
        if settings.copy_mix:
            copy_file_atomic(song.path, song.mix_target(), settings.force)
            done.append("a copy of the mix")
        if cancel is not None and cancel():
            raise Cancelled("separation cancelled")
        text = json.dumps(expected_record(song, settings), indent=2, ensure_ascii=False)
        write_text_atomic(record, text + "\n", overwrite=True)
    except BaseException:
        for path in new:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return _done_line(song, settings, result, done)


def streamed(sep, settings: Settings) -> bool:
    """Whether this song is separated as a stream, written while it is separated (memory
    flat in the song's length): a model that streams (`separation.streaming`) and WAV or
    FLAC files. STEMWRIGHT_IN_MEMORY=1 separates the whole song at once instead."""
    from ..separation.streaming import streams

    return (streams(sep) and settings.format in SAVE_FORMATS
            and os.environ.get("STEMWRIGHT_IN_MEMORY", "") in ("", "0"))


@contextlib.contextmanager
def _named(song: Song) -> Iterator[None]:
    """AudioError messages name the file (e.g. too short for the model)."""
    try:
        yield
    except AudioError as exc:
        if str(exc).startswith(f"{shown(song.path.name)}:"):
            raise
        raise AudioError(f"{shown(song.path.name)}: {exc}") from exc


def _separate_streamed(sep, song: Song, settings: Settings, progress: Callable | None,
                       cancel: Callable[[], bool] | None) -> str:
    """`separate_song` for a stream: read, separate and write block by block; the files
    appear (all at once) only when the whole song is done."""
    from ..separation.streaming import separate_stream

    info = audio_info(song.path)
    artist = info.tags.get("artist")
    targets = song.targets(settings)
    n_files = len(settings.stems) + (1 if settings.minus else 0)
    new = [t for t in targets if not os.path.lexists(t)]
    record = song.folder / RECORD_NAME
    export = StreamedExport(targets[:n_files], settings.stems, settings.minus,
                            settings.format, settings.bit_depth, settings.force, song.name,
                            artist, frames_hint=info.frames)
    with contextlib.suppress(OSError):
        record.unlink()  # the files change now: the old record no longer tells the truth
    done: list[str] = []
    try:
        with _named(song):
            result = separate_stream(
                sep, lambda: iter_blocks(song.path, STREAM_BLOCK), info.samplerate, export,
                frames_hint=info.frames, progress=progress, cancel=cancel,
                residual_to_other=settings.residual_to_other)
        if cancel is not None and cancel():
            raise Cancelled("separation cancelled")
        export.commit()
        if settings.stems:
            done.append(count(len(settings.stems), "stem"))
        if settings.minus:
            done.append(f"the song {minus_label(settings.minus)}")
        if settings.copy_mix:
            copy_file_atomic(song.path, song.mix_target(), settings.force)
            done.append("a copy of the mix")
        text = json.dumps(expected_record(song, settings), indent=2, ensure_ascii=False)
        write_text_atomic(record, text + "\n", overwrite=True)
    except BaseException:
        export.abort()
        for path in new:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return _done_line(song, settings, result, done)


def _done_line(song: Song, settings: Settings, result, done: Sequence[str]) -> str:
    """The line printed for a separated song: what was written where, the residual, and
    the stems the model does not produce."""
    what = done[0] if len(done) == 1 else ", ".join(done[:-1]) + " and " + done[-1]
    line = (f"{song.label}: {what} in {shown(song.folder)} "
            f"({_residual_text(result, settings)})")
    if result.unavailable and not settings.preset:
        names = ", ".join(get_stem(s).name.lower() for s in result.unavailable)
        line += f"\n  not produced by {settings.model}: {names}"
    return line


def _residual_text(result, settings: Settings) -> str:
    """`residual_note`, also saying when the residual is in the "minus" file's other."""
    note = residual_note(result, settings.stems)
    if settings.format == NI_STEMS:  # other, guitar and wind are NI's "other" track
        return note.replace("in other (not written)", "folded into other")
    if (note.endswith("in other (not written)") and settings.minus
            and "other" not in settings.minus):
        return note.replace("in other (not written)", "folded into other (in the minus "
                            "file)")
    return note


def failure_text(song: Song, exc: BaseException) -> str:
    """One line naming the song's file and what went wrong."""
    if isinstance(exc, StemwrightError):
        text = " ".join(str(exc).split())
    else:
        text = f"unexpected error: {explain(exc)} (run with --debug for details)"
    name = shown(song.path.name)
    if song.found and text.startswith(f"{name}:"):  # name the file found in a folder
        return song.label + text[len(name):]
    return text if name in text else f"{song.label}: {text}"


# -- the run ---------------------------------------------------------------------------

@dataclass
class Outcome:
    song: Song
    status: str  # done, skipped, failed
    text: str


@dataclass
class Summary:
    """What happened to each song, in the order they finished."""

    rank: Rank = field(default_factory=Rank)
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, song: Song, status: str, text: str, out: Callable[[str, bool], None]
            ) -> None:
        self.outcomes.append(Outcome(song, status, text))
        if status == "failed":
            out(f"stemwright: error: {self.rank.label}{text}", True)
        else:
            out(self.rank.label + text, False)

    def counts(self) -> dict[str, int]:
        return {k: sum(o.status == k for o in self.outcomes)
                for k in ("done", "skipped", "failed")}

    def lines(self, total: int) -> list[str]:
        """The summary: counts, then each failure with its reason."""
        c = self.counts()
        left = total - sum(c.values())
        head = (f"{self.rank.label}summary: {c['done']} done, {c['skipped']} skipped, "
                f"{c['failed']} failed" + (f", {left} not finished" if left else "")
                + f" (of {count(total, 'song')})")
        return [head, *(f"  failed: {o.text}" for o in self.outcomes if o.status == "failed")]


def _print(text: str, error: bool) -> None:
    print(text, file=sys.stderr if error else sys.stdout, flush=True)


def plan(songs: Sequence[Song], settings: Settings, skip_existing: bool,
         summary: Summary, out: Callable[[str, bool], None] = _print) -> list[Song]:
    """The songs to separate: skip those already done (with --skip-existing), count as
    failed those that cannot be read, and refuse (BatchError) existing files without
    --force and folders where a file goes."""
    todo = []
    for song in songs:
        if song.problem is not None:
            summary.add(song, "failed", song.problem, out)
            continue
        if skip_existing and already_done(song, settings):
            summary.add(song, "skipped", f"{song.label}: skipped, already "
                        f"separated with these settings in {shown(song.folder)}", out)
            continue
        targets = song.targets(settings)
        in_way = next((t for t in targets if t.is_dir()), None)
        if in_way is not None:
            raise BatchError(f"{in_way} is a folder where a file goes; move or rename it, "
                             "or choose another -o folder")
        clash = next((t for t in targets if os.path.lexists(t)), None)
        if clash is not None and not settings.force:
            if skip_existing:
                raise BatchError(f"{clash} already exists but was not written with these "
                                 "settings, or not completely (use --force to overwrite)")
            raise BatchError(f"{clash} already exists (use --force to overwrite, or "
                             "--skip-existing to skip songs already separated with these "
                             "settings)")
        try:
            audio_info(song.path)
        except StemwrightError as exc:
            summary.add(song, "failed", failure_text(song, exc), out)
            continue
        todo.append(song)
    return todo


def cpu_cores() -> int:
    """CPU cores this process may use (at most 16, as `configure_cpu_threads`)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    return max(1, min(n or os.cpu_count() or 1, 16))


def threads_per_song(jobs: int, rank: Rank) -> int:
    """Torch threads for each of `jobs` songs run at once by each of the ranks on this
    machine: max(1, cores // (jobs * ranks here))."""
    return max(1, cpu_cores() // max(1, jobs * rank.local_world))
