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
import queue
import re
import shutil
import signal
import sys
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..audio.io import audio_info, load_audio
from ..diagnostics import explain
from ..errors import AudioError, Cancelled, OutputExistsError, StemwrightError
from ..multitrack.folders import AUDIO_SUFFIXES
from ..remix.export import (
    DEFAULT_PATTERN,
    check_output_folder,
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
from ..separation.devices import configure_cpu_threads
from ..stems import STEM_IDS, get_stem
from ..wording import count
from ..zoo import catalog as zoo

#: the record written next to a song's files after a complete export
RECORD_NAME = ".stemwright.json"
RECORD_VERSION = 1
_MAX_RECORD_BYTES = 1 << 16
#: file name endings searched for songs in a folder (what `load_audio` reads)
SONG_SUFFIXES = frozenset({*AUDIO_SUFFIXES, ".oga", ".wave"})
#: stem file names with the model's name (`--name-model`)
MODEL_PATTERN = "{song} - {stem} ({model})"
MIX_LABEL = "Mix"
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

    def record(self) -> dict:
        """The settings that decide what the files hold (compared by --skip-existing)."""
        return {"stemwright": RECORD_VERSION, "model": self.model, "stems": list(self.stems),
                "minus": list(self.minus), "preset": self.preset, "format": self.format,
                "bit_depth": self.bit_depth, "segment": self.segment,
                "overlap": self.overlap, "half": self.half,
                "residual_to_other": self.residual_to_other, "pattern": self.pattern,
                "copy_mix": self.copy_mix}


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


def _copy_atomic(src: Path, target: Path, overwrite: bool) -> Path:
    """Copy `src` to `target` via a temporary in the target's folder (named so that a
    later export removes it when this process was killed), then move it into place."""
    stage = target.parent / f".stemwright-tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}.mix"
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
                raise OutputExistsError(f"{target} already exists (use --force to "
                                        "overwrite)") from None
            except (OSError, NotImplementedError):  # no hard links here
                if os.path.lexists(target):
                    raise OutputExistsError(f"{target} already exists (use --force to "
                                            "overwrite)") from None
                os.replace(stage, target)
    except OSError as exc:
        raise AudioError(f"{target}: could not be written ({exc.strerror or exc}); check "
                         "that the folder is writable and has free space") from exc
    finally:
        with contextlib.suppress(OSError):
            stage.unlink(missing_ok=True)
    return target


def separate_song(sep, song: Song, settings: Settings,
                  progress: Callable | None = None,
                  cancel: Callable[[], bool] | None = None) -> str:
    """Separate one song and write all its files and then its record; returns the line
    to print. A failure or cancel midway removes the files this call created (files it
    replaced under --force are not restored) and leaves no record."""
    audio = load_audio(song.path)
    try:
        result = sep.separate(audio.data, audio.samplerate, progress=progress, cancel=cancel,
                              residual_to_other=settings.residual_to_other)
    except AudioError as exc:  # e.g. too short for the model: name the file
        if str(exc).startswith(f"{shown(song.path.name)}:"):
            raise
        raise AudioError(f"{shown(song.path.name)}: {exc}") from exc
    del audio
    targets = song.targets(settings)
    new = [t for t in targets if not os.path.lexists(t)]
    record = song.folder / RECORD_NAME
    with contextlib.suppress(OSError):
        record.unlink()  # the files change now: the old record no longer tells the truth
    done: list[str] = []
    try:
        if settings.stems:
            export_stems(result.stems, result.samplerate, song.folder, song.name,
                         which=list(settings.stems), format=settings.format,
                         bit_depth=settings.bit_depth, pattern=settings.pattern,
                         overwrite=settings.force, cancel=cancel)
            done.append(count(len(settings.stems), "stem"))
        if settings.minus:
            target = targets[len(settings.stems)]
            export_song_minus(result.stems, result.samplerate, settings.minus, target,
                              format=settings.format, bit_depth=settings.bit_depth,
                              overwrite=settings.force, cancel=cancel)
            done.append(f"the song {minus_label(settings.minus)}")
        if settings.copy_mix:
            _copy_atomic(song.path, song.mix_target(), settings.force)
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


def run_serial(todo: Sequence[Song], settings: Settings, summary: Summary, total: int,
               threads: int | None, bar_factory: Callable) -> None:
    """Separate the songs one after another in this process (a separator loaded once)."""
    sep = zoo.load_separator(settings.model, device=settings.device,
                             segment=settings.segment, overlap=settings.overlap,
                             half=settings.half)
    if threads is not None and sep.device.type == "cpu":
        configure_cpu_threads(threads)
    previous = _raise_on_sigterm()
    try:
        for song in todo:
            audio_seconds = _seconds(song.path)
            where = f"[{len(summary.outcomes) + 1}/{total}] " if total > 1 else ""
            bar = bar_factory(audio_seconds, f"{where}{song.name[:30]} [{settings.model}]")

            def progress(p, bar=bar) -> None:
                bar.n = round(p.seconds_done, 1)
                bar.refresh()
                if p.message:
                    bar.write(f"note: {p.message}")

            try:
                line, status = separate_song(sep, song, settings, progress), "done"
            except (Cancelled, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - one bad song never stops the others
                if settings.debug:
                    raise
                line, status = failure_text(song, exc), "failed"
            finally:
                bar.close()
            summary.add(song, status, line, _print)
    finally:
        _restore_sigterm(previous)


def _seconds(path: Path) -> float:
    try:
        return max(audio_info(path).duration, 0.1)
    except StemwrightError:
        return 1.0


def _raise_on_sigterm():
    """Make SIGTERM (what torchrun sends its workers to stop) end the run like Ctrl+C,
    so exports clean up their temporaries. Only possible in the main thread."""
    try:
        return signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    except (ValueError, AttributeError):
        return None


def _sigterm_to_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _restore_sigterm(previous) -> None:
    if previous is not None:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)


# -- parallel worker processes ---------------------------------------------------------

_STOP = {"flag": False}


def _on_sigterm(signum, frame) -> None:
    _STOP["flag"] = True


def _stopped() -> bool:
    return _STOP["flag"]


def _worker_main(wid: int, settings: Settings, threads: int, tasks, results) -> None:
    """A worker process: separate songs from `tasks` until a None, reporting on `results`.
    Ctrl+C is the parent's to handle; SIGTERM (the parent cancelling) stops at the next
    check, and the export in progress cleans up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        sep = zoo.load_separator(settings.model, device="cpu", segment=settings.segment,
                                 overlap=settings.overlap, half=settings.half)
        configure_cpu_threads(threads)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        text = " ".join(str(exc).split()) if isinstance(exc, StemwrightError) else \
            f"unexpected error: {explain(exc)}"
        results.put(("fatal", wid, text))
        return
    while not _stopped():
        item = tasks.get()
        if item is None:
            break
        index, song = item
        results.put(("start", wid, index))

        def progress(p, index=index) -> None:
            if p.message:
                results.put(("note", wid, index, p.message))

        try:
            line = separate_song(sep, song, settings, progress, cancel=_stopped)
        except Cancelled:
            results.put(("end", wid, index, "cancelled", ""))
            break
        except Exception as exc:  # noqa: BLE001 - one bad song never stops the others
            results.put(("end", wid, index, "failed", failure_text(song, exc)))
            continue
        results.put(("end", wid, index, "done", line))


def _songs_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="song", leave=False, dynamic_ncols=True,
                disable=None)


def run_parallel(todo: Sequence[Song], settings: Settings, summary: Summary, jobs: int,
                 threads: int) -> None:
    """Separate the songs in `jobs` worker processes, each with `threads` torch threads;
    one overall bar (songs done/total) and a line per song. Ctrl+C or SIGTERM stops the
    workers (each export cleans up its temporaries) and raises KeyboardInterrupt."""
    import multiprocessing as mp  # lazy: only parallel runs start processes

    ctx = mp.get_context("spawn")  # no fork of a process that holds torch threads
    tasks, results = ctx.Queue(), ctx.Queue()
    for item in enumerate(todo):
        tasks.put(item)
    for _ in range(jobs):
        tasks.put(None)
    bar = _songs_bar(len(todo), f"{summary.rank.label}songs")

    def out(text: str, error: bool) -> None:
        bar.write(text, file=sys.stderr if error else sys.stdout)

    procs = []
    previous = _raise_on_sigterm()
    try:
        with _sigint_ignored():  # children start with Ctrl+C ignored: the parent decides
            for wid in range(jobs):
                p = ctx.Process(target=_worker_main, name=f"stemwright-separate-{wid}",
                                args=(wid, settings, threads, tasks, results), daemon=True)
                p.start()
                procs.append(p)
        _collect(todo, procs, results, summary, out, bar)
    except BaseException:
        _stop_workers(procs)
        raise
    finally:
        bar.close()
        _restore_sigterm(previous)
        for p in procs:
            p.join(timeout=5)
        for q in (tasks, results):
            q.cancel_join_thread()
            q.close()


def _collect(todo, procs, results, summary: Summary, out, bar) -> None:
    pending = set(range(len(todo)))
    running: dict[int, int] = {}
    while pending:
        try:
            msg = results.get(timeout=0.5)
        except queue.Empty:
            for wid, p in enumerate(procs):
                if not p.is_alive() and wid in running:
                    index = running.pop(wid)
                    pending.discard(index)
                    summary.add(todo[index], "failed", failure_text(
                        todo[index], StemwrightError(f"the worker process ended unexpectedly "
                                                     f"(exit code {p.exitcode}); too little "
                                                     "memory? try fewer --jobs")), out)
                    bar.update(1)
            if pending and not any(p.is_alive() for p in procs):
                for index in sorted(pending):
                    summary.add(todo[index], "failed", failure_text(
                        todo[index], StemwrightError("not separated: every worker process "
                                                     "ended")), out)
                return
            continue
        kind, wid = msg[0], msg[1]
        if kind == "fatal":
            raise StemwrightError(msg[2])
        if kind == "start":
            running[wid] = msg[2]
        elif kind == "note":
            out(f"note: {todo[msg[2]].label}: {msg[3]}", False)
        elif kind == "end":
            _, _, index, status, text = msg
            running.pop(wid, None)
            pending.discard(index)
            if status == "cancelled":  # someone else stopped that worker
                status, text = "failed", failure_text(todo[index], StemwrightError(
                    "not finished: its worker process was stopped (SIGTERM)"))
            summary.add(todo[index], status, text, out)
            bar.update(1)


def _stop_workers(procs) -> None:
    """SIGTERM every worker (it stops at its next check and cleans up), then wait a
    little, then kill what is left."""
    for p in procs:
        if p.is_alive():
            with contextlib.suppress(OSError):
                p.terminate()
    for p in procs:
        p.join(timeout=20)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to do
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
