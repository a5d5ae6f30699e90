"""Multitrack folders: find the songs, map every track onto the six stems, load them.

A folder holds songs, each in one of these layouts (found at any depth):

* MUSDB18: `mixture.wav` with `vocals`, `drums`, `bass`, `other` (WAV or FLAC).
* Slakh2100: `mix.flac`, `stems/Sxx.flac` and `metadata.yaml` giving each stem's MIDI
  program and instrument class.
* MedleyDB: a metadata YAML whose `stems` name each stem file's instrument (with
  `stem_dir` and `mix_filename`); any YAML that maps stem files to instruments works.
* Per-instrument tracks: a folder with one file per instrument, named the way studios and
  stem stores name them ("Lead Vox", "BGVs", "Kick In", "OH L", "Bass DI", "Dist Gtr",
  "Alto Sax", "Strings"...), optionally in sub-folders ("Drums/Kick.wav"), optionally with
  a mixture file ("mix", "mixture", "master", "full mix", or the song's own name).
* NI Stems: every `*.stem.mp4` file is a song (stream 0 the mixture, streams 1-4 the
  stems, named by its NI metadata; MUSDB18 ships this way), see `stem_files`. A single
  `.stem.mp4` file can be scanned in place of a folder.

Each track goes to a stem by its metadata where the layout has some, otherwise by name
(`stem_for_name`: case-, accent-, punctuation- and language-tolerant rules), otherwise to
"other". `stemwright-mapping.yaml` in the folder overrides that per song and track; the
app writes it (`write_mapping`) with the mapping it found, for the user to edit. A track
mapped to "ignore" is left out, one mapped to "mixture" becomes the song's mixture.

`scan_folder` reads only file headers (fast, for listings); `load_song` decodes a song and
fixes what does not line up (sample rate, length, channel count) with a warning each; a
track that cannot be read is reported and skipped without losing the song.

Hostile folders cost little and hide nothing: a song whose metadata is unusable (an alias
bomb, deep nesting, a bad MIDI program, a path outside its song folder) is skipped with one
line in `Scan.problems` and the others are kept; links to folders are followed after the
real tree, each real folder once (loops and fan-out list a song once).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import yaml

from ..audio import channels as chan
from ..audio.io import audio_info, load_audio
from ..audio.resample import fit_length, resample
from ..errors import AudioError
from ..progress import CancelCheck, check_cancel
from ..stems import STEM_IDS, get_stem
from ..wording import count
from ..yaml_safe import MAX_YAML_BYTES, YamlFileError, safe_yaml_load, safe_yaml_loads
from .names import IGNORE, normalise_name, stem_for_midi_program, stem_for_name
from .songs import LoadedSong, MultitrackError, Scan, Song, Track
from .stem_files import decode_stem_file, is_stem_file, probe_stem_file, song_name

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".opus", ".mp3",
                  ".m4a", ".aac", ".wv")
MAPPING_FILE = "stemwright-mapping.yaml"
MAPPING_FILE_JSON = "stemwright-mapping.json"
MIXTURE = "mixture"  # special mapping target (IGNORE, from names, is the other)
MUSDB_STEMS = ("vocals", "drums", "bass", "other")
_MAX_DEPTH = 6


class _BadSong(Exception):
    """A song's metadata is unusable: the song is skipped and reported, the scan goes on."""


# --------------------------------------------------------------------------------------
# Scanning
# --------------------------------------------------------------------------------------

def scan_folder(folder: str | os.PathLike[str], mapping: bool = True) -> Scan:
    """Find every song under `folder` and map its tracks (headers only, no decoding).

    Raises MultitrackError when the folder is missing, empty or holds no song.
    `mapping=False` ignores the folder's mapping file.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise MultitrackError(f"{root}: no such folder")
    if is_stem_file(root):
        return _scan_stem_file(root, mapping)
    if not root.is_dir():
        raise MultitrackError(f"{root}: is a file; give the folder that holds the songs, "
                              "or a .stem.mp4 file")
    if not any(p for p in root.iterdir() if not p.name.startswith(".")):
        raise MultitrackError(f"{root}: the folder is empty")
    scan = Scan(root=root, songs=[])
    path = mapping_path(root) if mapping else None
    overrides = read_mapping(path) if path is not None else {}
    walk = _Walk(root, scan, set(overrides))
    walk.visit(root, 0)
    walk.follow_links()
    if not scan.songs:
        raise MultitrackError(
            f"{root}: no songs found. A song is a folder with mixture.wav plus vocals, drums, "
            "bass and other (MUSDB18); mix.flac, stems/ and metadata.yaml (Slakh); a "
            "metadata YAML naming each stem's instrument (MedleyDB); two or more audio "
            "files named after their instruments; or a .stem.mp4 file (NI Stems, as "
            "MUSDB18 ships)")
    scan.songs.sort(key=lambda s: s.key.lower())
    if path is not None:
        _apply_mapping(scan, path, overrides)
    return scan


def _scan_stem_file(path: Path, mapping: bool) -> Scan:
    """A scan of one `.stem.mp4` file: its folder is the root, the file its one song."""
    root = path.parent
    try:
        song = _stem_file_song(path, root)
    except AudioError as exc:
        raise MultitrackError(f"{path}: {exc}") from None
    scan = Scan(root=root, songs=[song])
    map_file = mapping_path(root) if mapping else None
    if map_file is not None:
        overrides = read_mapping(map_file)
        _apply_mapping(scan, map_file, {k: v for k, v in overrides.items() if k == song.key})
    return scan


def _stem_file_song(path: Path, root: Path) -> Song:
    """The song a `.stem.mp4` file holds (headers only); AudioError (one line) when it
    cannot be one."""
    info = probe_stem_file(path)
    song = Song(name=song_name(path), folder=path.parent, key=_rel(path, root),
                layout="nistems", tracks=[], mixture=path, mixture_info=info.mix,
                problems=list(info.notes), container=path, mixture_stream=0)
    song.stream_keys[0] = path.name
    for slot in info.slots:
        key = f"{slot.stream} {slot.name}"
        song.stream_keys[slot.stream] = key
        song.tracks.append(Track(path, key, slot.stem, slot.source, instrument=slot.name,
                                 info=slot.info, stream=slot.stream))
    lengths = {round(i.duration, 2) for i in (info.mix, *(s.info for s in info.slots))}
    if len(lengths) > 1:
        song.problems.append(f"lengths differ ({min(lengths):.2f}-{max(lengths):.2f} s): "
                             "all are cut to the shortest when loaded")
    return song


def _stem_files_in(folder: Path, root: Path, scan: Scan) -> None:
    """Add a song for each `.stem.mp4` file directly in `folder` (a bad one is a problem)."""
    try:
        files = sorted(p for p in folder.iterdir() if is_stem_file(p))
    except OSError as exc:
        scan.problems.append(f"{_rel(folder, root)}: cannot be read ({exc})")
        return
    for path in files:
        try:
            scan.songs.append(_stem_file_song(path, root))
        except AudioError as exc:
            scan.problems.append(f"{_rel(path, root)}: skipped ({exc})")


def _audio_files(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() in AUDIO_SUFFIXES:
            out.append(p)
    return out


class _Walk:
    """Depth-first search for songs that enters every real directory once.

    Symbolic links to directories are followed only after the real tree has been walked
    (so a song keeps its real path as its key), and a directory already seen under another
    name (same device and inode) is skipped: links back up the tree or fanning out to one
    folder cost nothing and never list a song twice.
    """

    def __init__(self, root: Path, scan: Scan, mapped: set[str]) -> None:
        self.root, self.scan, self.mapped = root, scan, mapped
        self.seen: set[tuple[int, int]] = set()
        self.links: list[tuple[Path, int]] = []

    def visit(self, folder: Path, depth: int) -> None:
        try:
            st = folder.stat()
        except OSError as exc:
            self.scan.problems.append(f"{_rel(folder, self.root)}: cannot be read ({exc})")
            return
        if (st.st_dev, st.st_ino) in self.seen:
            return
        self.seen.add((st.st_dev, st.st_ino))
        _walk(folder, self.root, depth, self.scan, self.mapped, self)

    def follow_links(self) -> None:
        while self.links:
            folder, depth = self.links.pop(0)
            self.visit(folder, depth)


def _walk(folder: Path, root: Path, depth: int, scan: Scan, mapped: set[str],
          walk: _Walk) -> None:
    _stem_files_in(folder, root, scan)
    try:
        song = _song_in(folder, root)
    except OSError as exc:
        scan.problems.append(f"{_rel(folder, root)}: cannot be read ({exc})")
        return
    except (YamlFileError, _BadSong) as exc:
        scan.problems.append(f"{_rel(folder, root)}: skipped ({exc})")
        return
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError,
            RecursionError) as exc:  # metadata of an unexpected shape
        scan.problems.append(f"{_rel(folder, root)}: skipped (its metadata could not be "
                             f"used: {type(exc).__name__}: {str(exc)[:120]})")
        return
    if song is not None and song.layout == "tracks" and song.key not in mapped and all(
            t.source == "default" for t in song.tracks):
        # e.g. a folder of finished songs: nothing in it is named like an instrument
        scan.problems.append(f"{song.key}: "
                             f"{count(len(song.tracks), 'audio file')}, none named like "
                             "an instrument track; not taken as a song (rename the files or "
                             f"list them in {MAPPING_FILE})")
        song = None
    elif song is not None:
        scan.songs.append(song)
        return
    if depth >= _MAX_DEPTH:
        return
    try:
        subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        scan.problems.append(f"{_rel(folder, root)}: cannot be read ({exc})")
        return
    for sub in subs:
        if sub.is_symlink():
            walk.links.append((sub, depth + 1))
        else:
            walk.visit(sub, depth + 1)


def _rel(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel or "."


def _song_in(folder: Path, root: Path) -> Song | None:
    """The song `folder` holds, or None when it is not a song folder."""
    files = _audio_files(folder)
    yamls = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".yaml", ".yml")
             and p.is_file() and p.name != MAPPING_FILE]
    for meta_path in yamls:
        meta = safe_yaml_load(meta_path)
        if not isinstance(meta, dict) or not meta.get("stems"):
            continue
        stems = meta["stems"]
        if isinstance(stems, dict) and all(isinstance(v, dict) for v in stems.values()) and \
                any(("program_num" in v or "inst_class" in v or "is_drum" in v)
                    for v in stems.values()):
            return _slakh_song(folder, root, meta_path, meta)
        song = _medleydb_song(folder, root, meta_path, meta)
        if song is not None:
            return song
    names = {p.stem.lower(): p for p in files}
    if "mixture" in names and any(s in names for s in MUSDB_STEMS):
        return _musdb_song(folder, root, names)
    if len(files) >= 2:
        return _tracks_song(folder, root, files)
    return None


def _new_song(folder: Path, root: Path, layout: str) -> Song:
    return Song(name=folder.name or str(folder), folder=folder, key=_rel(folder, root),
                layout=layout, tracks=[])


def _musdb_song(folder: Path, root: Path, names: dict[str, Path]) -> Song:
    song = _new_song(folder, root, "musdb")
    song.mixture = names["mixture"]
    for stem in MUSDB_STEMS:
        if stem in names:
            song.tracks.append(Track(names[stem], names[stem].name, stem, "metadata"))
    used = {names[s] for s in ("mixture", *MUSDB_STEMS) if s in names}
    for p in _audio_files(folder):
        if p not in used:
            song.problems.append(f"{p.name}: not a MUSDB18 stem name, left out")
    _probe(song)
    return song


def _inside(folder: Path, name: object, meta_path: Path, what: str) -> Path:
    """`folder / name` for a path named in metadata; _BadSong when it is absolute or
    climbs out with '..' (metadata may only point at files inside its own song folder)."""
    text = str(name).replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text) or ".." in text.split("/") \
            or "\x00" in text:
        raise _BadSong(f"{meta_path.name}: {what} '{text[:100]}' points outside the song "
                       "folder; metadata may only name files inside it")
    return folder / text


def _midi_program(value: object, key: object, meta_path: Path) -> int:
    """A Slakh `program_num` as 0-127; _BadSong for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        ok = False
    else:
        try:
            number = float(value)
            ok = number.is_integer() and 0 <= number <= 127
        except ValueError:
            ok = False
    if not ok:
        raise _BadSong(f"{meta_path.name}: stem {str(key)[:40]}: program_num "
                       f"{str(value)[:40]!r} is not a MIDI program (0-127)")
    return int(float(value))


def _slakh_song(folder: Path, root: Path, meta_path: Path, meta: dict) -> Song:
    song = _new_song(folder, root, "slakh")
    audio_dir = _inside(folder, meta.get("audio_dir") or "stems", meta_path, "audio_dir")
    for key, entry in sorted(meta["stems"].items(), key=lambda item: str(item[0])):
        _inside(audio_dir, key, meta_path, "stem")
        path = _find_audio(audio_dir, str(key))
        if path is None:
            if entry.get("audio_rendered", True):
                song.problems.append(f"{key}: listed in {meta_path.name} but no audio file")
            continue
        program = entry.get("program_num")
        is_drum = bool(entry.get("is_drum", False))
        label = str(entry.get("midi_program_name") or entry.get("inst_class") or "")
        if program is not None or is_drum:
            number = 0 if program is None or is_drum else _midi_program(program, key,
                                                                         meta_path)
            stem = stem_for_midi_program(number, is_drum)
        else:
            stem = stem_for_name(label) or "other"
        song.tracks.append(Track(path, path.relative_to(folder).as_posix(), stem, "metadata",
                                 instrument=label))
    song.mixture = _find_audio(folder, "mix")
    _probe(song)
    return song


def _medleydb_song(folder: Path, root: Path, meta_path: Path, meta: dict) -> Song | None:
    """MedleyDB metadata, or any YAML mapping stem files to instruments."""
    stems = meta["stems"]
    entries: list[tuple[str, str]] = []  # (file name, instrument)
    if isinstance(stems, dict):
        for key, value in stems.items():
            if isinstance(value, dict) and value.get("filename"):
                entries.append((str(value["filename"]), str(value.get("instrument") or "")))
            elif isinstance(value, str):
                entries.append((str(key), value))
    elif isinstance(stems, list):
        for value in stems:
            if isinstance(value, dict) and (value.get("filename") or value.get("file")):
                entries.append((str(value.get("filename") or value.get("file")),
                                str(value.get("instrument") or "")))
    if not entries:
        return None
    song = _new_song(folder, root, "medleydb")
    stem_dir = _inside(folder, meta.get("stem_dir") or "", meta_path, "stem_dir")
    for filename, instrument in entries:
        _inside(folder, filename, meta_path, "stem file")
        path = next((p for p in (stem_dir / filename, folder / filename) if p.is_file()), None)
        if path is None:
            song.problems.append(f"{filename}: named in {meta_path.name} but not found")
            continue
        stem, source = (stem_for_name(instrument), "metadata") if instrument else (None, "")
        if stem is None:
            stem, source = stem_for_name(path.name), "name"
        if stem is None:
            stem, source = "other", "default"
        song.tracks.append(Track(path, path.relative_to(folder).as_posix(), stem, source,
                                 instrument=instrument))
    mix = meta.get("mix_filename")
    if mix and _inside(folder, mix, meta_path, "mix_filename").is_file():
        song.mixture = folder / str(mix)
    if not song.tracks:
        song.problems.append(f"{meta_path.name}: none of its stem files were found")
    _probe(song)
    return song


_MIX_NAMES = re.compile(r"^(?:mix|mixture|master|mastered|full ?mix|final ?mix|stereo ?mix|"
                        r"main ?mix|mixdown|bounce|song|premaster|2 ?mix|two ?mix|mix \d+)$")


def _tracks_song(folder: Path, root: Path, files: list[Path]) -> Song:
    song = _new_song(folder, root, "tracks")
    title = normalise_name(folder.name)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.is_symlink() and _links_up(sub, folder):
            song.problems.append(f"{sub.name}: a link back to a folder holding this song; "
                                 "left out")
            continue
        files = files + [p for p in sorted(sub.rglob("*")) if p.is_file()
                         and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")]
    files = _distinct_files(files)
    for path in files:
        key = path.relative_to(folder).as_posix()
        base = normalise_name(path.name)
        if song.mixture is None and path.parent == folder and (
                _MIX_NAMES.match(base) or (title and base in (title, f"{title} mix"))):
            song.mixture = path
            continue
        stem = stem_for_name(path.name)
        source = "name"
        if stem is None and path.parent != folder:
            stem = stem_for_name(path.parent.relative_to(folder).as_posix())
        if stem is None:
            stem, source = "other", "default"
        song.tracks.append(Track(path, key, stem, source))
    _probe(song)
    return song


def _links_up(link: Path, folder: Path) -> bool:
    """True when `link` leads to `folder` itself or to a folder above it (a loop)."""
    try:
        target, here = link.resolve(), folder.resolve()
    except (OSError, RuntimeError):
        return True
    return here == target or target in here.parents


def _distinct_files(files: list[Path]) -> list[Path]:
    """`files` with later names of an already listed file (through a link) left out."""
    seen: set[tuple[int, int]] = set()
    out = []
    for path in files:
        try:
            st = path.stat()
        except OSError:
            out.append(path)  # reported as unreadable when probed
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            out.append(path)
    return out


def _find_audio(folder: Path, stem: str) -> Path | None:
    for suffix in (".flac", ".wav", ".FLAC", ".WAV", ".mp3", ".ogg", ".aiff"):
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def _probe(song: Song) -> None:
    """Read every file's header; note unreadable ones and mismatched formats."""
    for track in song.tracks:
        try:
            track.info = audio_info(track.path)
        except AudioError as exc:
            track.problem = str(exc)
    if song.mixture is not None:
        try:
            song.mixture_info = audio_info(song.mixture)
        except AudioError as exc:
            song.problems.append(f"mixture {song.mixture.name}: {exc}; the sum of the stems "
                                 "is used instead")
            song.mixture = None
    infos = [t.info for t in song.tracks if t.info is not None]
    if song.mixture_info is not None:
        infos.append(song.mixture_info)
    if len({i.samplerate for i in infos}) > 1:
        rates = ", ".join(str(r) for r in sorted({i.samplerate for i in infos}))
        song.problems.append(f"sample rates differ ({rates} Hz): resampled to "
                             f"{_song_rate(song)} Hz when loaded")
    if len({i.channels for i in infos}) > 1:
        song.problems.append("channel counts differ: mono tracks are played on both "
                             "channels, more than two channels are downmixed to stereo")
    lengths = {round(i.duration, 2) for i in infos}
    if len(lengths) > 1:
        song.problems.append(f"lengths differ ({min(lengths):.2f}-{max(lengths):.2f} s): "
                             "shorter tracks are padded with silence")


def _song_rate(song: Song) -> int:
    """The mixture's rate, else the most common track rate (the highest on a tie)."""
    if song.mixture_info is not None:
        return song.mixture_info.samplerate
    rates = Counter(t.info.samplerate for t in song.tracks if t.info is not None)
    if not rates:
        return 44100
    return max(rates, key=lambda r: (rates[r], r))


# --------------------------------------------------------------------------------------
# The mapping file
# --------------------------------------------------------------------------------------

_MAPPING_HEADER = """\
# Stemwright track mapping: which stem each track of each song goes to.
# Edit a track's stem and run Stemwright again; this file overrides what it guessed.
# Stems: vocals, drums, bass, electric_guitar, wind, other
#        ignore (leave the track out), mixture (the song's mixture file)
"""


def mapping_path(folder: str | os.PathLike[str]) -> Path | None:
    """The folder's mapping file (YAML, or JSON), or None if there is none."""
    for name in (MAPPING_FILE, MAPPING_FILE_JSON):
        p = Path(folder) / name
        if p.is_file():
            return p
    return None


def read_mapping(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """{song key: {track key: stem}} from a mapping file; MultitrackError when malformed."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise MultitrackError(f"{path.name}: too big for a mapping file; fix or delete it")
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else \
            safe_yaml_loads(text, path.name)
    except YamlFileError as exc:
        raise MultitrackError(str(exc)) from None
    except RecursionError:
        raise MultitrackError(f"{path.name}: nested too deeply; fix or delete it") from None
    except (OSError, ValueError) as exc:
        raise MultitrackError(f"{path.name}: cannot be read ({_one_line(exc)}); fix or "
                              "delete it") from exc
    songs = (data or {}).get("songs", {}) if isinstance(data, dict) else None
    if not isinstance(songs, dict):
        raise MultitrackError(f"{path.name}: expected a 'songs:' section mapping each song "
                              "to its tracks")
    out: dict[str, dict[str, str]] = {}
    for song, tracks in songs.items():
        if not isinstance(tracks, dict):
            raise MultitrackError(f"{path.name}: song '{str(song)[:100]}' should map track "
                                  "files to stems")
        out[str(song)] = {}
        for track, stem in tracks.items():
            out[str(song)][str(track)] = _check_target(str(stem)[:100], path, str(song)[:100],
                                                       str(track)[:100])
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _check_target(stem: str, path: Path, song: str, track: str) -> str:
    key = stem.strip().lower()
    if key in (IGNORE, MIXTURE):
        return key
    try:
        return get_stem(key).id
    except KeyError:
        raise MultitrackError(
            f"{path.name}: '{song}' / '{track}': unknown stem '{stem}' (use one of "
            f"{', '.join(STEM_IDS)}, {IGNORE} or {MIXTURE})") from None


def _apply_mapping(scan: Scan, path: Path, overrides: dict[str, dict[str, str]]) -> None:
    """Apply a mapping file to the scanned songs (entries that differ from the automatic
    mapping become overrides); unknown songs and tracks are reported."""
    scan.mapping_file = path
    by_key = {s.key: s for s in scan.songs}
    for song_key, tracks in overrides.items():
        song = by_key.get(song_key)
        if song is None:
            scan.problems.append(f"{path.name}: no song '{song_key}' in the folder")
            continue
        apply_overrides(song, tracks, path.name)


def mixture_key(song: Song) -> str | None:
    """The mixture's key in the mapping file: its path in the song folder (for a
    `.stem.mp4` song: the file's name for stream 0, else that stream's track key)."""
    if song.mixture is None:
        return None
    if song.container is not None and song.mixture_stream:
        return song.stream_keys.get(song.mixture_stream, song.mixture.name)
    return song.mixture.relative_to(song.folder).as_posix()


def apply_overrides(song: Song, tracks: dict[str, str], origin: str = "mapping") -> None:
    """Set stems per track key; MIXTURE makes the track the mixture, IGNORE leaves it out."""
    mixture_key_ = mixture_key(song)
    for key, stem in tracks.items():
        track = next((t for t in song.tracks if t.key == key), None)
        if key == mixture_key_ and stem != MIXTURE:  # the mixture file becomes a track
            track = Track(song.mixture, key, stem, "override", info=song.mixture_info,
                          stream=song.mixture_stream)
            if song.container is None:
                _probe_track(track)
            song.tracks.append(track)
            song.mixture, song.mixture_info, mixture_key_ = None, None, None
            song.mixture_stream = None
        elif track is None:
            if key != mixture_key_:
                song.problems.append(f"{origin}: no track '{key}' in this song")
        elif stem == MIXTURE:
            if song.mixture is not None:
                song.problems.append(f"{origin}: '{key}' and {song.mixture.name} are both "
                                     "marked as the mixture; kept the first")
                continue
            song.tracks.remove(track)
            song.mixture, song.mixture_info, mixture_key_ = track.path, track.info, key
            song.mixture_stream = track.stream
        elif stem != track.stem:
            track.stem, track.source = stem, "override"


def _probe_track(track: Track) -> None:
    try:
        track.info = audio_info(track.path)
    except AudioError as exc:
        track.problem = str(exc)


def write_mapping(scan: Scan, path: str | os.PathLike[str] | None = None) -> Path:
    """Write the current mapping of every song (mixture included) for the user to edit;
    returns the file written (default: stemwright-mapping.yaml in the scanned folder)."""
    path = Path(path) if path is not None else scan.root / MAPPING_FILE
    songs: dict[str, dict[str, str]] = {}
    for song in scan.songs:
        entries = {}
        if song.mixture is not None:
            entries[mixture_key(song) or song.mixture.name] = MIXTURE
        for t in song.tracks:
            entries[t.key] = t.stem
        songs[song.key] = entries
    body = yaml.safe_dump({"songs": songs}, sort_keys=False, allow_unicode=True, width=100)
    tmp = path.with_name(path.name + ".part")
    try:
        if path.suffix.lower() == ".json":
            tmp.write_text(json.dumps({"songs": songs}, indent=2, ensure_ascii=False) + "\n",
                           encoding="utf-8")
        else:
            tmp.write_text(_MAPPING_HEADER + body, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise MultitrackError(f"{path}: cannot write the mapping file ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------

def load_song(song: Song, samplerate: int | None = None, cancel: CancelCheck | None = None
              ) -> LoadedSong:
    """Decode a song's usable tracks (and mixture) at one rate, length and channel count.

    Sample rates are converted to `samplerate` (default: the mixture's, else the most
    common one), shorter files padded with silence, mono tracks put on both channels of a
    stereo song and more than two channels downmixed; each fix is a warning. A track that
    cannot be decoded is skipped with a warning; MultitrackError if none can be.
    """
    if song.container is not None:
        return _load_stem_file_song(song, samplerate, cancel)
    rate = int(samplerate or _song_rate(song))
    warnings: list[str] = []
    decoded: list[tuple[Track, np.ndarray, int]] = []
    for track in song.tracks:
        if track.problem is not None:
            warnings.append(f"{track.key}: skipped ({track.problem})")
            continue
        if track.stem not in STEM_IDS:
            continue
        check_cancel(cancel)
        try:
            audio = load_audio(track.path, cancel=cancel)
        except AudioError as exc:
            track.problem = str(exc)
            warnings.append(f"{track.key}: skipped ({exc})")
            continue
        decoded.append((track, audio.data, audio.samplerate))
    if not decoded:
        raise MultitrackError(f"{song.name}: none of its tracks could be read")
    mixture = None
    if song.mixture is not None:
        try:
            audio = load_audio(song.mixture, cancel=cancel)
            mixture = (audio.data, audio.samplerate)
        except AudioError as exc:
            warnings.append(f"mixture {song.mixture.name}: skipped ({exc}); the sum of the "
                            "stems is used instead")
    return _conform_song(song, rate, decoded, mixture, warnings)


def _load_stem_file_song(song: Song, samplerate: int | None, cancel: CancelCheck | None
                         ) -> LoadedSong:
    """`load_song` for a `.stem.mp4` song: the file is decoded once, all streams at once."""
    assert song.container is not None
    warnings: list[str] = []
    try:
        arrays, sr = decode_stem_file(song.container, cancel)
    except AudioError as exc:
        raise MultitrackError(str(exc)) from None
    decoded: list[tuple[Track, np.ndarray, int]] = []
    for track in song.tracks:
        if track.problem is not None:
            warnings.append(f"{track.key}: skipped ({track.problem})")
        elif track.stem in STEM_IDS and track.stream is not None:
            decoded.append((track, arrays[track.stream], sr))
    if not decoded:
        raise MultitrackError(f"{song.name}: no stem of {song.container.name} maps to a stem")
    mixture = None
    if song.mixture is not None and song.mixture_stream is not None:
        mixture = (arrays[song.mixture_stream], sr)
    del arrays  # the streams no track uses are freed here
    return _conform_song(song, int(samplerate or sr), decoded, mixture, warnings)


def _conform_song(song: Song, rate: int, decoded: list[tuple[Track, np.ndarray, int]],
                  mixture: tuple[np.ndarray, int] | None, warnings: list[str]
                  ) -> LoadedSong:
    """Decoded tracks (and mixture) at one rate, channel count and length."""
    channels = 2 if any(a.shape[0] > 1 for _, a, _ in decoded) else 1
    fixed: list[tuple[Track, np.ndarray]] = []
    for track, data, sr in decoded:
        fixed.append((track, _conform(data, sr, rate, channels, track.key, warnings)))
    length = max(a.shape[-1] for _, a in fixed)
    mix = None
    if mixture is not None:
        mix = _conform(mixture[0], mixture[1], rate, channels, _mixture_label(song),
                       warnings)
        length = max(length, mix.shape[-1])
    short = [t.key for t, a in fixed if a.shape[-1] < length]
    if short:
        warnings.append(f"padded with silence to {length / rate:.2f} s: {', '.join(short)}")
    fixed = [(t, fit_length(a, length)) for t, a in fixed]
    if mix is not None and mix.shape[-1] < length:
        warnings.append(f"mixture {_mixture_label(song)} padded with silence to "
                        f"{length / rate:.2f} s")
        mix = fit_length(mix, length)
    return LoadedSong(song=song, samplerate=rate, tracks=fixed, mixture=mix,
                      warnings=warnings)


def _mixture_label(song: Song) -> str:
    if song.container is not None:
        return mixture_key(song) or "mixture"
    return song.mixture.name if song.mixture is not None else "mixture"


def _conform(data: np.ndarray, sr: int, rate: int, channels: int, name: str,
             warnings: list[str]) -> np.ndarray:
    if data.shape[0] > 2:
        warnings.append(f"{name}: {data.shape[0]} channels downmixed to stereo")
        data = chan.downmix_to_stereo(data)
    if data.shape[0] != channels:
        if channels == 2:
            warnings.append(f"{name}: mono, played on both channels")
            data = np.repeat(data, 2, axis=0)
        else:
            data = data.mean(axis=0, keepdims=True)
    if sr != rate:
        warnings.append(f"{name}: resampled from {sr} to {rate} Hz")
        data = resample(data, sr, rate)
    return np.ascontiguousarray(data, dtype=np.float32)


def describe_mapping(song: Song) -> Iterable[str]:
    """Lines "Lead Vox.wav -> vocals (name)" for listings."""
    for t in song.tracks:
        what = f" [{t.instrument}]" if t.instrument else ""
        yield f"{t.key} -> {t.stem} ({t.source}){what}"


__all__ = ["Track", "Song", "Scan", "LoadedSong", "MultitrackError", "scan_folder",
           "load_song", "stem_for_name", "stem_for_midi_program", "normalise_name",
           "read_mapping", "write_mapping", "apply_overrides", "mixture_key",
           "mapping_path", "MAPPING_FILE", "IGNORE", "MIXTURE", "describe_mapping"]
