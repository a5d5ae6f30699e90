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

Each track goes to a stem by its metadata where the layout has some, otherwise by name
(`stem_for_name`: case-, accent-, punctuation- and language-tolerant rules), otherwise to
"other". `stemwright-mapping.yaml` in the folder overrides that per song and track; the
app writes it (`write_mapping`) with the mapping it found, for the user to edit. A track
mapped to "ignore" is left out, one mapped to "mixture" becomes the song's mixture.

`scan_folder` reads only file headers (fast, for listings); `load_song` decodes a song and
fixes what does not line up (sample rate, length, channel count) with a warning each; a
track that cannot be read is reported and skipped without losing the song.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..audio import channels as chan
from ..audio.io import AudioInfo, audio_info, load_audio
from ..audio.resample import fit_length, resample
from ..errors import AudioError, StemwrightError
from ..progress import CancelCheck, check_cancel
from ..stems import STEM_IDS, get_stem
from ..wording import count

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".opus", ".mp3",
                  ".m4a", ".aac", ".wv")
MAPPING_FILE = "stemwright-mapping.yaml"
MAPPING_FILE_JSON = "stemwright-mapping.json"
IGNORE, MIXTURE = "ignore", "mixture"  # special mapping targets
MUSDB_STEMS = ("vocals", "drums", "bass", "other")
_MAX_DEPTH = 6


class MultitrackError(StemwrightError):
    """A folder holds no song Stemwright can read, or a song cannot be loaded at all."""


@dataclass
class Track:
    """One instrument file of a song and the stem it goes to."""

    path: Path
    key: str  # path relative to the song folder, "/"-separated: the key in the mapping file
    stem: str  # canonical stem id, or IGNORE / MIXTURE
    source: str  # "metadata", "name", "default" (nothing matched) or "override"
    instrument: str = ""  # what the metadata calls it, when it says
    info: AudioInfo | None = None
    problem: str | None = None  # why it cannot be used (unreadable, ...)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def usable(self) -> bool:
        return self.problem is None and self.stem in STEM_IDS


@dataclass
class Song:
    """A song found in a folder: its tracks, mapping and mixture file (if any)."""

    name: str
    folder: Path
    key: str  # folder relative to the scanned root, "/"-separated ("." for the root)
    layout: str  # "musdb", "slakh", "medleydb" or "tracks"
    tracks: list[Track]
    mixture: Path | None = None
    mixture_info: AudioInfo | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Longest track in seconds (from the file headers)."""
        lengths = [t.info.duration for t in self.tracks if t.info is not None]
        if self.mixture_info is not None:
            lengths.append(self.mixture_info.duration)
        return max(lengths, default=0.0)

    def stems_present(self) -> tuple[str, ...]:
        """Canonical stems at least one usable track maps to, in canonical order."""
        hit = {t.stem for t in self.tracks if t.usable}
        return tuple(s for s in STEM_IDS if s in hit)

    def mapping(self) -> dict[str, str]:
        """{track key: stem} as the mapping file holds it."""
        return {t.key: t.stem for t in self.tracks}


@dataclass
class Scan:
    """Result of `scan_folder`: the songs, and what was found but left out."""

    root: Path
    songs: list[Song]
    problems: list[str] = field(default_factory=list)
    mapping_file: Path | None = None  # the override file that was applied, if any


@dataclass
class LoadedSong:
    """A song decoded at one rate, length and channel count."""

    song: Song
    samplerate: int
    tracks: list[tuple[Track, np.ndarray]]  # float32 [C, T] each, all the same shape
    mixture: np.ndarray | None
    warnings: list[str] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.tracks[0][1].shape[-1]

    def by_stem(self) -> dict[str, list[np.ndarray]]:
        """{stem id: [track arrays]} for the stems present, canonical order."""
        out: dict[str, list[np.ndarray]] = {}
        for track, audio in self.tracks:
            out.setdefault(track.stem, []).append(audio)
        return {s: out[s] for s in STEM_IDS if s in out}


# --------------------------------------------------------------------------------------
# Track names -> stems
# --------------------------------------------------------------------------------------

# Rules are tried in order and the first that matches wins, so specific phrases come
# before the words they contain ("bass drum" before "bass", "acoustic guitar" before
# "guitar"). Patterns run on the normalised name: lower case, accents removed, camelCase
# and letters/digits split, punctuation as spaces (see `normalise_name`).
_EXCEPTIONS = [
    (IGNORE, r"click|click track|metronome|count ?in|timecode|smpte|ltc"),
    ("drums", r"bass ?drum|kick|bd|sub ?kick|808 ?(?:kick|snare|hats?|clap)|steel ?drums?"),
    ("wind", r"bass ?(?:clarinet|flute|sax\w*|trombone|oboe)|basson|bassoon|english horn|"
             r"cor anglais|clarinette? basse"),
    ("other", r"backing ?track|accompaniment|instrumental|karaoke|playback|"
              r"acoustic (?:guitar|gtr|git)|ac (?:guitar|gtr)|acc? gtr|acou?s? ?gtr|"
              r"ag|nylon|classical guitar|spanish guitar|12 ?string|akusti\w*|"
              r"guitare? acoustique|guitarra acustica|chitarra acustica|violao|dobro|"
              r"steel string|folk guitar"),
    ("bass", r"bass ?(?:guitar|gtr|di|amp|mic|synth|line|cab|d i)|synth ?bass|sub ?bass|"
             r"double ?bass|contra ?bass|upright|electric bass|fretless|moog bass|808|"
             r"bass ?vox|bajo|basse|basso|baixo|kontrabass"),
]
_RULES = [
    ("drums", r"drums?|drumkit|kit|snare|snr|sn|sd|hi ?hats?|hh|hat|overheads?|oh|ride|"
              r"crash|cymbals?|cym|splash|china|toms?|rack|floor ?tom|ft|percussion|"
              r"percs?|shaker|tambourine|tamb|conga|congas|bongos?|cajon|claps?|hand ?claps|"
              r"snaps?|cowbell|timbales?|triangle|woodblock|guiro|djembe|tabla|timpani|"
              r"darbuka|breakbeat|drum ?machine|schlagzeug|batterie|bateria|"
              r"batteria|trommel|caisse claire|tambor|caja|rullante|cassa|grosse caisse|gong|"
              r"chimes|tubular bells"),
    ("wind", r"sax\w*|saxophon\w*|sassofono|trumpets?|tpt|trp|tromba|trompete|trompette|"
             r"trompeta|flugel\w*|cornet|trombones?|tbn|trb|posaune|trombon|horns?|"
             r"french horn|cor|corno|horn section|brass|blech|blaser|cuivres|metales|"
             r"tuba|euphonium|sousaphone|flutes?|piccolo|flauta|flauto|flote|flute|fl|"
             r"clarinets?|clar|klarinette|clarinette|clarinete|clarinetto|oboes?|hautbois|"
             r"oboe|recorder|blockflote|pan ?flute|harmonica|mundharmonika|bagpipes?|"
             r"whistle|woodwinds?|winds|reeds?|fiati|vientos|bari|ewi|ocarina|kazoo|dizi|"
             r"shakuhachi|bansuri|duduk|zurna|ney|shawm|didgeridoo"),
    ("bass", r"bass|bs|bas"),
    ("electric_guitar", r"guitars?|gtrs?|gtr|git|gits|gitarre\w*|e ?gitarre|guitare|"
                        r"guitarra|chitarra|eg|e gtr|elec gtr|dist\w*|overdrive|od|"
                        r"crunch|fuzz|lead gtr|rhythm gtr|rhy gtr|slide|lap ?steel|"
                        r"pedal ?steel|riff|shred|chug"),
    ("vocals", r"vocals?|vox|voc|vocal\w*|voice|voices|vo|lv|ld|bvs?|bgvs?|bkg ?v\w*|"
               r"backing|backings|bg vox|bgv|harmony|harmonies|adlibs?|"
               r"ad libs?|choir|chorus|chor|coro|coros|cori|choeur|singer|sing|rapper|"
               r"rap|spoken|speaker|speech|narrat\w*|beatbox\w*|talkbox|gesang|stimme|voix|"
               r"chant|voz|voce|ooh|oohs|aah|aahs|whisper|shout|yell"),
    ("other", r"piano|pno|keys?|keyboards?|rhodes|wurli\w*|organ|b3|hammond|synths?|"
              r"synthesizer|pads?|arp\w*|strings?|violins?|vln|viola|cello|vc|harp|"
              r"orchestra\w*|fx|sfx|effects?|sample\w*|glock\w*|vibes|vibraphone|"
              r"marimba|xylophone|celesta|banjo|mandolin\w*|ukulele|uke|sitar|"
              r"accordion|melodica|clavinet|clav|mellotron|noise|ambience|atmos\w*|"
              r"klavier|streicher|cordes|cuerdas|archi|orgel|orgue|pianoforte|harpsichord"),
]
_WEAK = [
    ("drums", r"room|rooms|amb|top|bottom|btm|kik|loop|loops|beat|beats"),
    ("vocals", r"lead|leads|main|dbl|double|harm|soprano|alto|tenor|baritone|mezzo"),
    ("electric_guitar", r"amp|steel"),
]


def _compile(rules: list[tuple[str, str]]) -> list[tuple[str, re.Pattern]]:
    return [(stem, re.compile(rf"(?:^| )(?:{pattern})(?= |$)")) for stem, pattern in rules]


_EXCEPTION_RE = _compile(_EXCEPTIONS)
_RULE_RE = _compile(_RULES)
_WEAK_RE = _compile(_WEAK)


def normalise_name(name: str) -> str:
    """"01_LeadVox-Dbl (Take2).wav" -> "lead vox dbl take 2": lower case, no accents,
    camelCase and digits split off, punctuation as spaces, track numbers removed."""
    name = re.sub(r"\.(?:wav|flac|aiff?|aifc|ogg|opus|mp3|m4a|aac|wv)$", "", name, flags=re.I)
    name = unicodedata.normalize("NFKD", name)
    name = "".join(ch for ch in name if not unicodedata.combining(ch))
    name = name.replace("ß", "ss")
    name = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    name = name.lower()
    name = re.sub(r"[^a-z0-9]+", " ", name)
    name = re.sub(r"([a-z])(\d)", r"\1 \2", name)
    name = re.sub(r"(\d)([a-z])", r"\1 \2", name)
    name = re.sub(r"^(?:(?:track|trk|tr|ch|s)?\s?\d{1,3}\s)+", "", name.strip())
    return re.sub(r"\s+", " ", name).strip()


def stem_for_name(name: str) -> str | None:
    """The canonical stem a track name suggests (IGNORE for click tracks and timecode), or
    None when no rule matches.

    Tolerates case, accents, punctuation, abbreviations and English, German, French,
    Spanish, Italian and Portuguese words: "Lead Vocal", "BGVs" -> vocals; "Kick", "OH L"
    -> drums; "Bass DI", "Synth Bass" -> bass; "Dist Gtr", "E-Gitarre" -> electric guitar;
    "Alto Sax", "Trompete" -> wind; "Piano", "Acoustic Guitar" -> other.
    """
    text = normalise_name(name)
    if not text:
        return None
    for table in (_EXCEPTION_RE, _RULE_RE, _WEAK_RE):
        for stem, pattern in table:
            if pattern.search(text):
                return stem
    return None


# General MIDI programs (0-127) -> stem, by the GM instrument families.
def stem_for_midi_program(program: int, is_drum: bool = False) -> str:
    """The stem a General MIDI program goes to (Slakh metadata)."""
    if is_drum:
        return "drums"
    p = int(program)
    if 24 <= p <= 25:
        return "other"  # nylon and steel acoustic guitars
    if 26 <= p <= 31:
        return "electric_guitar"  # jazz, clean, muted, overdriven, distortion, harmonics
    if 32 <= p <= 39 or p == 43:
        return "bass"  # basses and the contrabass
    if p == 47 or 113 <= p <= 119:
        return "drums"  # timpani; agogo, steel drums, woodblock, taiko, toms, synth drum
    if 56 <= p <= 79 or p in (109, 111):
        return "wind"  # brass, reed, pipe; bagpipe, shanai
    return "other"


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
    if not root.is_dir():
        raise MultitrackError(f"{root}: is a file; give the folder that holds the songs")
    if not any(p for p in root.iterdir() if not p.name.startswith(".")):
        raise MultitrackError(f"{root}: the folder is empty")
    scan = Scan(root=root, songs=[])
    path = mapping_path(root) if mapping else None
    overrides = read_mapping(path) if path is not None else {}
    _walk(root, root, 0, scan, set(overrides))
    if not scan.songs:
        raise MultitrackError(
            f"{root}: no songs found. A song is a folder with mixture.wav plus vocals, drums, "
            "bass and other (MUSDB18); mix.flac, stems/ and metadata.yaml (Slakh); a "
            "metadata YAML naming each stem's instrument (MedleyDB); or two or more audio "
            "files named after their instruments")
    scan.songs.sort(key=lambda s: s.key.lower())
    if path is not None:
        _apply_mapping(scan, path, overrides)
    return scan


def _audio_files(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() in AUDIO_SUFFIXES:
            out.append(p)
    return out


def _walk(folder: Path, root: Path, depth: int, scan: Scan, mapped: set[str]) -> None:
    try:
        song = _song_in(folder, root)
    except (OSError, yaml.YAMLError) as exc:
        scan.problems.append(f"{_rel(folder, root)}: cannot be read ({exc})")
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
        _walk(sub, root, depth + 1, scan, mapped)


def _rel(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel or "."


def _song_in(folder: Path, root: Path) -> Song | None:
    """The song `folder` holds, or None when it is not a song folder."""
    files = _audio_files(folder)
    yamls = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".yaml", ".yml")
             and p.is_file() and p.name != MAPPING_FILE]
    for meta_path in yamls:
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8", errors="replace"))
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


def _slakh_song(folder: Path, root: Path, meta_path: Path, meta: dict) -> Song:
    song = _new_song(folder, root, "slakh")
    audio_dir = folder / str(meta.get("audio_dir") or "stems")
    for key, entry in sorted(meta["stems"].items()):
        path = _find_audio(audio_dir, str(key))
        if path is None:
            if entry.get("audio_rendered", True):
                song.problems.append(f"{key}: listed in {meta_path.name} but no audio file")
            continue
        program = entry.get("program_num")
        is_drum = bool(entry.get("is_drum", False))
        label = str(entry.get("midi_program_name") or entry.get("inst_class") or "")
        if program is not None or is_drum:
            stem = stem_for_midi_program(int(program or 0), is_drum)
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
    stem_dir = folder / str(meta.get("stem_dir") or "")
    for filename, instrument in entries:
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
    if mix and (folder / str(mix)).is_file():
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
        files = files + [p for p in sorted(sub.rglob("*")) if p.is_file()
                         and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")]
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
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise MultitrackError(f"{path.name}: cannot be read ({exc}); fix or delete it") from exc
    songs = (data or {}).get("songs", {}) if isinstance(data, dict) else None
    if not isinstance(songs, dict):
        raise MultitrackError(f"{path.name}: expected a 'songs:' section mapping each song "
                              "to its tracks")
    out: dict[str, dict[str, str]] = {}
    for song, tracks in songs.items():
        if not isinstance(tracks, dict):
            raise MultitrackError(f"{path.name}: song '{song}' should map track files to "
                                  "stems")
        out[str(song)] = {}
        for track, stem in tracks.items():
            out[str(song)][str(track)] = _check_target(str(stem), path, str(song), str(track))
    return out


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


def apply_overrides(song: Song, tracks: dict[str, str], origin: str = "mapping") -> None:
    """Set stems per track key; MIXTURE makes the track the mixture, IGNORE leaves it out."""
    mixture_key = song.mixture.relative_to(song.folder).as_posix() if song.mixture else None
    for key, stem in tracks.items():
        track = next((t for t in song.tracks if t.key == key), None)
        if key == mixture_key and stem != MIXTURE:  # the mixture file becomes a track
            track = Track(song.mixture, key, stem, "override")
            _probe_track(track)
            song.tracks.append(track)
            song.mixture, song.mixture_info, mixture_key = None, None, None
        elif track is None:
            if key != mixture_key:
                song.problems.append(f"{origin}: no track '{key}' in this song")
        elif stem == MIXTURE:
            if song.mixture is not None:
                song.problems.append(f"{origin}: '{key}' and {song.mixture.name} are both "
                                     "marked as the mixture; kept the first")
                continue
            song.tracks.remove(track)
            song.mixture, song.mixture_info, mixture_key = track.path, track.info, key
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
            entries[song.mixture.relative_to(song.folder).as_posix()] = MIXTURE
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
    channels = 2 if any(a.shape[0] > 1 for _, a, _ in decoded) else 1
    fixed: list[tuple[Track, np.ndarray]] = []
    for track, data, sr in decoded:
        fixed.append((track, _conform(data, sr, rate, channels, track.key, warnings)))
    length = max(a.shape[-1] for _, a in fixed)
    mix = None
    if mixture is not None:
        mix = _conform(mixture[0], mixture[1], rate, channels, song.mixture.name, warnings)
        length = max(length, mix.shape[-1])
    short = [t.key for t, a in fixed if a.shape[-1] < length]
    if short:
        warnings.append(f"padded with silence to {length / rate:.2f} s: {', '.join(short)}")
    fixed = [(t, fit_length(a, length)) for t, a in fixed]
    if mix is not None and mix.shape[-1] < length:
        warnings.append(f"mixture {song.mixture.name} padded with silence to "
                        f"{length / rate:.2f} s")
        mix = fit_length(mix, length)
    return LoadedSong(song=song, samplerate=rate, tracks=fixed, mixture=mix,
                      warnings=warnings)


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
           "read_mapping", "write_mapping", "apply_overrides",
           "mapping_path", "MAPPING_FILE", "IGNORE", "MIXTURE", "describe_mapping"]
