"""Procedural song composition for `stemwright synth`: sections, chords, grooves, parts.

`compose_song(seed, seconds)` writes a song as note lists, one `Part` per track, with no
audio: `render.py` plays the parts through FluidSynth (General MIDI soundfonts) and a sung
voice (espeak-ng), `generator.py` turns them into multitrack folders. Everything is drawn
from `numpy.random.default_rng` seeded by `seed`, so a seed always gives the same song.

What varies from song to song:

* style: rock, pop, funk, shuffle (blues), swing (jazz), ballad and electronic; each picks
  its tempo range, modes, progressions, grooves, instruments and how they play;
* tempo, key, mode (major, minor, dorian, mixolydian) and swing;
* form: intro, verse, pre-chorus, chorus, bridge, solo and outro sections with their own
  progressions and energy (which parts play, how busy); short songs are one chorus;
* parts for all six stems, each active in most of the song:
  drums (rock, funk, shuffle, swing, half-time and electronic grooves with ghost notes,
  fills, crashes and several GM kits, sometimes a percussion track), bass (root/fifth,
  walking, riffs, boogie, sustained and synth lines on electric, picked, fretless, slap,
  upright and synth basses), electric guitar (power chords, strums, muted scratching,
  arpeggios, riffs and lead lines with bends; clean, jazz, muted, overdriven and
  distortion tones), wind (melodies, horn-section stabs and pads on saxophones, trumpet,
  trombone, horn, flute, clarinet, ...), vocals (a lead melody with lyrics-like words,
  one per note, and backing "oohs/aahs") and other (piano, electric piano, organ, strings,
  pads, acoustic guitar, clavinet, vibraphone, synth leads and arpeggios).

Times are in beats (quarter notes) from the start of the song, swing and a little timing
and velocity humanisation included; `Song.seconds_at` converts them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

BEATS_PER_BAR = 4
NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
MODES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
         "dorian": (0, 2, 3, 5, 7, 9, 10), "mixolydian": (0, 2, 4, 5, 7, 9, 10)}
QUALITIES = {"maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
             "5": (0, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
             "m7b5": (0, 3, 6, 10), "sus4": (0, 5, 7), "sus2": (0, 2, 7), "6": (0, 4, 7, 9),
             "add9": (0, 4, 7, 14)}
_SUFFIX = {"maj": "", "min": "m", "dim": "dim", "aug": "+", "5": "5", "7": "7", "maj7": "maj7",
           "min7": "m7", "m7b5": "m7b5", "sus4": "sus4", "sus2": "sus2", "6": "6",
           "add9": "add9"}

# General MIDI drum keys
KICK, SIDESTICK, SNARE, CLAP, RIM = 36, 37, 38, 39, 40
HAT, PEDAL_HAT, OPEN_HAT = 42, 44, 46
TOMS = (50, 48, 47, 45, 43, 41)  # high to low
CRASH, RIDE, RIDE_BELL, CRASH2, SPLASH = 49, 51, 53, 57, 55
TAMBOURINE, COWBELL, CABASA, MARACAS = 54, 56, 69, 70
CONGA_MUTE, CONGA_OPEN, CONGA_LOW, BONGO_HI, BONGO_LO = 62, 63, 64, 60, 61


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Note:
    """One note: start and length in beats, MIDI pitch, velocity, and for the voice the
    word sung on it; `bend` (semitones) is reached by pitch bend during the note."""

    start: float
    length: float
    pitch: int
    velocity: int
    lyric: str = ""
    bend: float = 0.0


@dataclass(frozen=True)
class Chord:
    """A chord: absolute root pitch class and quality (a key of QUALITIES)."""

    root: int
    quality: str

    @property
    def intervals(self) -> tuple[int, ...]:
        return QUALITIES[self.quality]

    @property
    def pcs(self) -> tuple[int, ...]:
        """Pitch classes, root first."""
        return tuple((self.root + i) % 12 for i in self.intervals)

    @property
    def name(self) -> str:
        return NOTE_NAMES[self.root] + _SUFFIX[self.quality]


@dataclass
class Section:
    """A run of bars with one role in the form and its own chords."""

    name: str  # intro, verse, pre, chorus, bridge, solo, outro, ending
    start_bar: int
    bars: int
    energy: float  # 0 (sparse) .. 1 (everything, busy)
    chords: list[tuple[float, float, Chord]] = field(default_factory=list)  # beats, abs.

    @property
    def start(self) -> float:
        return float(self.start_bar * BEATS_PER_BAR)

    @property
    def end(self) -> float:
        return float((self.start_bar + self.bars) * BEATS_PER_BAR)


@dataclass
class Part:
    """One track: what it is (label, stem, GM program) and what it plays."""

    name: str  # the instrument, as the track is labelled ("Alto Sax", "Lead Vocal")
    stem: str  # the stem it belongs to
    role: str  # what it does in the song ("rhythm", "lead", "stabs", "pad", ...)
    program: int  # General MIDI program 0-127; -1 for the sung voice
    bank: int = 0  # 128 for drum kits
    style: str = ""  # how it plays ("walking", "power chords", ...)
    tone: str = ""  # guitar tone, voice, kit name...
    notes: list[Note] = field(default_factory=list)

    @property
    def is_drum(self) -> bool:
        return self.bank == 128

    @property
    def sung(self) -> bool:
        return self.program < 0


@dataclass
class Song:
    """A composed song: global settings, form and parts."""

    seed: int
    seconds: float
    style: str
    bpm: float
    tonic: int
    mode: str
    swing: float
    sections: list[Section]
    parts: list[Part]
    voice: str = ""  # singer: "male" / "female"

    @property
    def key_name(self) -> str:
        return f"{NOTE_NAMES[self.tonic]} {self.mode}"

    @property
    def beats(self) -> float:
        return self.sections[-1].end if self.sections else 0.0

    def seconds_at(self, beat: float) -> float:
        return beat * 60.0 / self.bpm

    def chord_at(self, beat: float) -> Chord:
        for section in self.sections:
            if section.start <= beat < section.end or section is self.sections[-1]:
                for start, length, chord in section.chords:
                    if start <= beat < start + length:
                        return chord
                if section.chords:
                    return section.chords[-1][2]
        return Chord(self.tonic, "maj")

    def scale(self) -> tuple[int, ...]:
        """Pitch classes of the key."""
        return tuple((self.tonic + i) % 12 for i in MODES[self.mode])

    def lyrics(self) -> list[str]:
        """The lead vocal's words, one line per phrase."""
        lead = next((p for p in self.parts if p.role == "lead vocal"), None)
        if lead is None:
            return []
        lines, line, last_end = [], [], None
        for note in lead.notes:
            if last_end is not None and note.start - last_end > 0.6 and line:
                lines.append(" ".join(line))
                line = []
            if note.lyric:
                line.append(note.lyric)
            last_end = note.start + note.length
        if line:
            lines.append(" ".join(line))
        return lines


# --------------------------------------------------------------------------------------
# Instruments (labels are what the multitrack reader maps to the stem)
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instrument:
    name: str
    stem: str
    program: int
    lo: int  # comfortable range, MIDI notes
    hi: int


def _ins(name: str, stem: str, program: int, lo: int, hi: int) -> Instrument:
    return Instrument(name, stem, program, lo, hi)


BASSES = {
    "finger": _ins("Electric Bass", "bass", 33, 28, 55),
    "pick": _ins("Picked Bass", "bass", 34, 28, 55),
    "fretless": _ins("Fretless Bass", "bass", 35, 28, 55),
    "slap": _ins("Slap Bass", "bass", 36, 28, 55),
    "synth1": _ins("Synth Bass", "bass", 38, 24, 55),
    "synth2": _ins("Synth Bass", "bass", 39, 24, 55),
    "upright": _ins("Upright Bass", "bass", 32, 28, 55),
}
GUITARS = {
    "clean": _ins("Clean Electric Guitar", "electric_guitar", 27, 40, 84),
    "jazz": _ins("Jazz Guitar", "electric_guitar", 26, 40, 81),
    "muted": _ins("Muted Electric Guitar", "electric_guitar", 28, 40, 76),
    "overdriven": _ins("Overdriven Guitar", "electric_guitar", 29, 40, 88),
    "distortion": _ins("Distortion Guitar", "electric_guitar", 30, 40, 88),
}
WINDS = {
    "soprano sax": _ins("Soprano Sax", "wind", 64, 56, 84),
    "alto sax": _ins("Alto Sax", "wind", 65, 49, 80),
    "tenor sax": _ins("Tenor Sax", "wind", 66, 44, 75),
    "baritone sax": _ins("Baritone Sax", "wind", 67, 36, 64),
    "trumpet": _ins("Trumpet", "wind", 56, 55, 82),
    "muted trumpet": _ins("Muted Trumpet", "wind", 59, 55, 80),
    "trombone": _ins("Trombone", "wind", 57, 40, 70),
    "french horn": _ins("French Horn", "wind", 60, 41, 72),
    "brass section": _ins("Brass Section", "wind", 61, 48, 79),
    "flute": _ins("Flute", "wind", 73, 60, 93),
    "clarinet": _ins("Clarinet", "wind", 71, 50, 86),
    "oboe": _ins("Oboe", "wind", 68, 58, 88),
    "tuba": _ins("Tuba", "wind", 58, 28, 55),
}
OTHERS = {
    "piano": _ins("Piano", "other", 0, 36, 96),
    "bright piano": _ins("Bright Piano", "other", 1, 36, 96),
    "honky-tonk": _ins("Honky-tonk Piano", "other", 3, 36, 96),
    "electric piano": _ins("Electric Piano", "other", 4, 36, 88),
    "fm piano": _ins("FM Electric Piano", "other", 5, 36, 88),
    "clavinet": _ins("Clavinet", "other", 7, 40, 84),
    "vibraphone": _ins("Vibraphone", "other", 11, 53, 89),
    "marimba": _ins("Marimba", "other", 12, 48, 96),
    "drawbar organ": _ins("Drawbar Organ", "other", 16, 36, 84),
    "percussive organ": _ins("Percussive Organ", "other", 17, 36, 84),
    "rock organ": _ins("Rock Organ", "other", 18, 36, 84),
    "strings": _ins("Strings", "other", 48, 43, 84),
    "slow strings": _ins("Slow Strings", "other", 49, 43, 84),
    "synth strings": _ins("Synth Strings", "other", 50, 43, 84),
    "warm pad": _ins("Warm Pad", "other", 89, 43, 84),
    "poly pad": _ins("Polysynth Pad", "other", 90, 43, 84),
    "sweep pad": _ins("Sweep Pad", "other", 95, 43, 84),
    "steel guitar": _ins("Acoustic Guitar", "other", 25, 40, 84),
    "nylon guitar": _ins("Nylon Guitar", "other", 24, 40, 84),
    "square lead": _ins("Synth Lead (Square)", "other", 80, 55, 91),
    "saw lead": _ins("Synth Lead (Saw)", "other", 81, 55, 91),
    "synth arp": _ins("Synth Arp", "other", 81, 55, 91),
    "harp": _ins("Harp", "other", 46, 40, 96),
}
KITS = {"standard": 0, "room": 8, "power": 16, "electronic": 24, "tr-808": 25, "jazz": 32,
        "brush": 40}


# --------------------------------------------------------------------------------------
# Styles
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Style:
    name: str
    bpm: tuple[int, int]
    modes: tuple[str, ...]
    swing: tuple[float, ...]  # amounts to draw from (0 straight; shuffle: triplet feel)
    groove: str  # main groove; "halftime" bridges and ballads
    chords: str  # progression family: "pop", "rock", "funk", "blues", "jazz"
    kits: tuple[str, ...]
    basses: tuple[str, ...]
    bass_lines: tuple[str, ...]
    guitar_tones: tuple[str, ...]
    guitar_styles: tuple[str, ...]
    winds: tuple[str, ...]
    wind_roles: tuple[str, ...]
    others: tuple[str, ...]
    harmonic_rhythm: tuple[float, ...]  # bars per chord to draw from


STYLES: dict[str, Style] = {s.name: s for s in (
    Style("rock", (96, 148), ("major", "minor", "mixolydian"), (0.0,), "rock", "rock",
          ("standard", "power", "room"), ("finger", "pick"), ("root_fifth", "riff", "eighths"),
          ("overdriven", "distortion", "distortion", "clean"),
          ("power chords", "power chords", "riff", "strum"),
          ("tenor sax", "alto sax", "trumpet", "brass section", "trombone"),
          ("stabs", "melody", "section"),
          ("rock organ", "piano", "strings", "drawbar organ", "steel guitar", "bright piano"),
          (1.0, 1.0, 0.5)),
    Style("pop", (88, 128), ("major", "major", "minor"), (0.0, 0.0, 0.08), "pop", "pop",
          ("standard", "room", "electronic"), ("finger", "pick", "synth1", "fretless"),
          ("root_fifth", "eighths", "riff", "sustained"),
          ("clean", "muted", "overdriven", "clean"), ("strum", "arpeggio", "muted", "riff"),
          ("alto sax", "trumpet", "flute", "clarinet", "french horn", "soprano sax"),
          ("melody", "pads", "stabs"),
          ("piano", "electric piano", "strings", "warm pad", "steel guitar", "poly pad",
           "vibraphone", "square lead"), (1.0, 1.0, 2.0, 0.5)),
    Style("funk", (90, 116), ("dorian", "minor", "mixolydian"), (0.0, 0.06, 0.12), "funk",
          "funk", ("standard", "room"), ("finger", "slap", "synth2", "pick"), ("riff",),
          ("muted", "clean", "clean", "jazz"), ("scratch", "scratch", "stabs", "riff"),
          ("trumpet", "alto sax", "tenor sax", "trombone", "baritone sax"),
          ("section", "section", "stabs", "melody"),
          ("clavinet", "electric piano", "drawbar organ", "fm piano", "synth strings"),
          (2.0, 1.0, 4.0)),
    Style("shuffle", (84, 132), ("major", "mixolydian"), (1 / 3,), "shuffle", "blues",
          ("standard", "room", "jazz"), ("finger", "upright", "pick"),
          ("walking", "boogie", "boogie"), ("clean", "overdriven", "jazz", "overdriven"),
          ("riff", "power chords", "strum"),
          ("tenor sax", "alto sax", "trumpet", "trombone", "baritone sax", "clarinet"),
          ("melody", "stabs", "section"),
          ("piano", "honky-tonk", "drawbar organ", "percussive organ", "bright piano"),
          (1.0,)),
    Style("swing", (108, 168), ("major", "minor"), (1 / 3,), "swing", "jazz",
          ("jazz", "brush"), ("upright", "upright", "finger"), ("walking",),
          ("jazz", "clean"), ("comping", "comping", "arpeggio"),
          ("tenor sax", "alto sax", "trumpet", "muted trumpet", "clarinet", "trombone",
           "flute"), ("melody", "section", "melody"),
          ("piano", "vibraphone", "drawbar organ", "bright piano"), (1.0, 2.0)),
    Style("ballad", (60, 84), ("major", "minor"), (0.0, 0.0, 1 / 3), "ballad", "pop",
          ("standard", "room", "brush"), ("fretless", "finger", "upright"),
          ("sustained", "root_fifth"), ("clean", "clean", "overdriven", "jazz"),
          ("arpeggio", "strum", "arpeggio"),
          ("flute", "clarinet", "french horn", "alto sax", "oboe", "soprano sax"),
          ("pads", "melody", "melody"),
          ("piano", "strings", "slow strings", "warm pad", "nylon guitar", "electric piano",
           "harp"), (1.0, 2.0, 0.5)),
    Style("electronic", (116, 132), ("minor", "dorian", "major"), (0.0, 0.0, 0.1),
          "electronic", "rock", ("electronic", "tr-808"), ("synth1", "synth2", "synth2"),
          ("synth", "synth", "riff"), ("muted", "clean", "distortion"),
          ("arpeggio", "power chords", "scratch"),
          ("flute", "alto sax", "trumpet", "brass section", "soprano sax"),
          ("melody", "stabs", "pads"),
          ("warm pad", "poly pad", "sweep pad", "saw lead", "synth arp", "square lead",
           "fm piano", "synth strings"), (2.0, 1.0, 4.0)),
)}

_PROGRESSIONS = {  # scale degrees (0-based) per bar-chord
    "major": ((0, 4, 5, 3), (0, 3, 4, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 5, 4),
              (0, 0, 3, 4), (3, 4, 0, 5), (0, 2, 3, 4), (1, 4, 0, 0), (3, 0, 4, 5)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4),
              (0, 2, 6, 3), (5, 6, 0, 0), (0, 3, 0, 4)),
    "dorian": ((0, 3, 0, 3), (0, 6, 3, 0), (0, 1, 0, 6), (0, 3, 6, 0), (0, 0, 3, 3)),
    "mixolydian": ((0, 6, 3, 0), (0, 6, 3, 3), (0, 3, 6, 0), (0, 0, 6, 3), (3, 6, 0, 0)),
}
_BLUES = ((0, 0, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4), (0, 3, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4),
          (0, 3, 0, 0, 3, 3, 0, 0, 4, 4, 0, 0))
_JAZZ = ((1, 4, 0, 0), (0, 5, 1, 4), (2, 5, 1, 4), (0, 3, 1, 4), (3, 4, 2, 5))

_FORMS = {  # (name, bars, energy); sections are repeated/truncated to the song's length
    "pop": (("intro", 4, 0.4), ("verse", 8, 0.5), ("pre", 4, 0.65), ("chorus", 8, 0.9),
            ("verse", 8, 0.55), ("pre", 4, 0.7), ("chorus", 8, 0.95), ("bridge", 8, 0.6),
            ("solo", 8, 0.85), ("chorus", 8, 1.0), ("outro", 4, 0.6)),
    "rock": (("intro", 4, 0.7), ("verse", 8, 0.6), ("chorus", 8, 0.95), ("verse", 8, 0.65),
             ("chorus", 8, 1.0), ("solo", 8, 0.9), ("bridge", 4, 0.6), ("chorus", 8, 1.0),
             ("outro", 4, 0.8)),
    "funk": (("intro", 4, 0.6), ("verse", 8, 0.7), ("chorus", 8, 0.9), ("verse", 8, 0.7),
             ("chorus", 8, 0.95), ("bridge", 4, 0.5), ("solo", 8, 0.85),
             ("chorus", 8, 1.0), ("outro", 4, 0.7)),
    "blues": (("intro", 4, 0.6), ("verse", 12, 0.65), ("verse", 12, 0.75), ("solo", 12, 0.9),
              ("verse", 12, 0.85), ("outro", 4, 0.7)),
    "jazz": (("intro", 4, 0.5), ("verse", 8, 0.6), ("chorus", 8, 0.75), ("solo", 16, 0.85),
             ("verse", 8, 0.7), ("chorus", 8, 0.8), ("outro", 4, 0.5)),
    "electronic": (("intro", 8, 0.5), ("verse", 8, 0.65), ("pre", 4, 0.75),
                   ("chorus", 8, 1.0), ("bridge", 4, 0.4), ("verse", 8, 0.7),
                   ("chorus", 8, 1.0), ("solo", 8, 0.9), ("chorus", 8, 1.0),
                   ("outro", 8, 0.6)),
}

# words sung one per note: lyrics-like lines, not meaning
_PRON = ("I", "you", "we", "they", "she", "he")
_VERB = ("love", "feel", "need", "want", "hold", "know", "see", "find", "call", "run",
         "fly", "fall", "dance", "burn", "shine", "wait", "stay", "go", "come", "take",
         "give", "dream", "sing", "break", "turn", "ride", "hear", "keep")
_DET = ("the", "my", "your", "our", "this", "a")
_NOUN = ("night", "light", "fire", "heart", "home", "road", "time", "sky", "rain", "sun",
         "dream", "stars", "sea", "wind", "world", "day", "soul", "life", "dawn", "moon",
         "street", "town", "song", "sound", "way", "door", "eyes", "hands", "gold", "storm")
_LINK = ("and", "in", "to", "with", "on", "so", "all", "now", "through", "for")
_END = ("high", "night", "sky", "free", "home", "go", "away", "you", "me", "day", "light",
        "love", "now", "fly", "low", "fire", "rain", "alone", "again", "on", "true", "down")
_FILL = ("oh", "yeah", "la", "na", "ooh", "whoa", "hey")


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

class _Ctx:
    """A song under construction with its random generator."""

    def __init__(self, song: Song, rng: np.random.Generator, style: Style) -> None:
        self.song, self.rng, self.style = song, rng, style

    def pick(self, seq: Sequence):
        return seq[int(self.rng.integers(len(seq)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def jitter(self, seconds: float = 0.006) -> float:
        """A small random timing offset, in beats."""
        return float(self.rng.normal(0.0, seconds)) * self.song.bpm / 60.0

    def vel(self, base: float, spread: float = 7.0) -> int:
        return int(np.clip(round(base + self.rng.normal(0, spread)), 1, 127))

    def swung(self, beat: float) -> float:
        """Delay off-beat eighths (swing) - by a fraction of an eighth."""
        s = self.song.swing
        if s <= 0:
            return beat
        frac = beat % 1.0
        if abs(frac - 0.5) < 1e-6:
            return beat + s * 0.5
        if self.style.groove not in ("shuffle", "swing") and (
                abs(frac - 0.25) < 1e-6 or abs(frac - 0.75) < 1e-6):
            return beat + s * 0.25
        return beat


def _degree_chord(tonic: int, mode: str, degree: int, sevenths: bool) -> Chord:
    scale = MODES[mode]
    root = scale[degree % 7]
    third = (scale[(degree + 2) % 7] - root) % 12
    fifth = (scale[(degree + 4) % 7] - root) % 12
    seventh = (scale[(degree + 6) % 7] - root) % 12
    if fifth == 6:
        quality = "m7b5" if sevenths else "dim"
    elif fifth == 8:
        quality = "aug"
    elif third == 3:
        quality = "min7" if sevenths else "min"
    else:
        quality = ("maj7" if seventh == 11 else "7") if sevenths else "maj"
    return Chord((tonic + root) % 12, quality)


def _near(pc: int, target: int, lo: int, hi: int) -> int:
    """The MIDI note of pitch class `pc` nearest `target` within [lo, hi]."""
    options = [m for m in range(lo, hi + 1) if m % 12 == pc % 12]
    if not options:
        return int(np.clip(target, lo, hi))
    return min(options, key=lambda m: (abs(m - target), m))


def _voicing(chord: Chord, prev: Sequence[int] | None, lo: int, hi: int, n: int) -> list[int]:
    """`n` chord notes within [lo, hi], close to the previous voicing (voice leading)."""
    pcs = chord.pcs
    cands = [m for m in range(lo, hi + 1) if m % 12 in pcs]
    if len(cands) < n:
        return cands
    best, best_cost = cands[:n], math.inf
    center = sum(prev) / len(prev) if prev else (lo + hi) / 2
    for i in range(len(cands) - n + 1):
        notes = cands[i:i + n]
        if notes[-1] - notes[0] > 19:
            continue
        have = {m % 12 for m in notes}
        missing = len([p for p in pcs[:3] if p not in have])
        cost = abs(sum(notes) / n - center) + 6 * missing
        if prev:
            cost += 0.5 * sum(min(abs(a - b) for b in prev) for a in notes)
        if cost < best_cost:
            best, best_cost = notes, cost
    return list(best)


def _guitar_voicing(chord: Chord, low: int = 40) -> list[int]:
    """A barre-chord-like voicing: root in [low, low + 11], then fifth, octave (or the
    seventh), third, fifth and double octave above it, up to six notes below G5."""
    root = low + (chord.root - low) % 12
    iv = chord.intervals
    if len(iv) == 2:  # power chord
        return [root, root + iv[1], root + 12]
    fifth = iv[2] if len(iv) > 2 else 7
    middle = iv[3] if len(iv) > 3 and iv[3] < 12 else 12
    notes = [root, root + fifth, root + middle, root + 12 + iv[1], root + 12 + fifth,
             root + 24]
    return [m for m in notes if m <= 79]


def _add(part: Part, start: float, length: float, pitch: int, velocity: int,
         lyric: str = "", bend: float = 0.0) -> None:
    if length <= 0.02 or not 0 <= pitch <= 127:
        return
    part.notes.append(Note(max(0.0, float(start)), float(length), int(pitch),
                           int(np.clip(velocity, 1, 127)), lyric, bend))


def _steps(pattern: str) -> list[tuple[int, int]]:
    """"X.x.o" -> [(step, velocity)]: X accent, x normal, o ghost."""
    vel = {"X": 112, "x": 92, "o": 48}
    return [(i, vel[c]) for i, c in enumerate(pattern) if c in vel]


# --------------------------------------------------------------------------------------
# Form and harmony
# --------------------------------------------------------------------------------------

def _form(ctx: _Ctx, bars: int) -> list[Section]:
    """Sections filling `bars` bars; the last bar is a held ending when there is room."""
    style = ctx.style
    family = {"blues": "blues", "jazz": "jazz", "funk": "funk"}.get(style.chords)
    family = family or ("electronic" if style.name == "electronic" else
                        "rock" if style.name == "rock" else "pop")
    template = list(_FORMS[family])
    if ctx.chance(0.3) and family in ("pop", "rock"):  # a solo/bridge swap for variety
        template = [t for t in template if t[0] != "bridge"] if ctx.chance(0.5) else \
            [t for t in template if t[0] != "solo"]
    ending = bars >= 8
    body = bars - 1 if ending else bars
    sections: list[Section] = []
    if body < 12:
        sections.append(Section("chorus", 0, body, 1.0))
    elif body < 24 and family != "blues":
        half = (body // 2) // 2 * 2
        sections += [Section("verse", 0, half, 0.6), Section("chorus", half, body - half, 0.95)]
    else:
        intro, middle, outro = template[0], template[1:-1], template[-1]
        if body < 48:
            intro, outro = (intro[0], min(intro[1], 4), intro[2]), (outro[0], 4, outro[2])
        extra = ((("verse", 12, 0.8), ("solo", 12, 0.9)) if family == "blues" else
                 (("verse", 8, 0.7), ("chorus", 8, 1.0), ("solo", 8, 0.9), ("chorus", 8, 1.0)))
        plan = [intro]
        total, i = intro[1] + outro[1], 0
        while True:
            item = middle[i] if i < len(middle) else extra[(i - len(middle)) % len(extra)]
            if total + item[1] > body:
                break
            plan.append(item)
            total += item[1]
            i += 1
        left = body - total
        if left >= 4:
            plan.append((item[0], left, item[2]))
        else:
            outro = (outro[0], outro[1] + left, outro[2])
        plan.append(outro)
        used = 0
        for name, n, energy in plan:
            sections.append(Section(name, used, n, energy))
            used += n
    if ending:
        sections.append(Section("ending", body, 1, 0.8))
    return sections


def _harmony(ctx: _Ctx, sections: list[Section]) -> None:
    """Give each section its chords; sections with the same name share a progression."""
    song, style = ctx.song, ctx.style
    sevenths = style.chords in ("jazz", "funk", "blues")
    progs: dict[str, tuple[tuple[int, ...], float]] = {}
    for sec in sections:
        if sec.name == "ending":
            tonic = _degree_chord(song.tonic, song.mode, 0, sevenths and style.chords == "jazz")
            sec.chords = [(sec.start, float(BEATS_PER_BAR), tonic)]
            continue
        key = {"outro": "chorus", "solo": "verse" if ctx.style.chords != "rock" else "chorus",
               "intro": "chorus" if ctx.chance(0.5) else "verse"}.get(sec.name, sec.name)
        if key not in progs:
            if style.chords == "blues":
                progs[key] = (ctx.pick(_BLUES), 1.0)
            elif style.chords == "jazz":
                progs[key] = (ctx.pick(_JAZZ), ctx.pick(style.harmonic_rhythm))
            else:
                pool = _PROGRESSIONS[song.mode]
                progs[key] = (ctx.pick(pool), ctx.pick(style.harmonic_rhythm))
        degrees, bars_per_chord = progs[key]
        beat, i = sec.start, 0
        while beat < sec.end - 1e-9:
            length = min(bars_per_chord * BEATS_PER_BAR, sec.end - beat)
            chord = _degree_chord(song.tonic, song.mode, degrees[i % len(degrees)], sevenths)
            if style.chords == "blues":
                chord = Chord(chord.root, "7")
            elif style.chords == "rock" and style.name == "rock" and chord.quality in (
                    "maj", "min") and ctx.chance(0.15):
                chord = Chord(chord.root, "sus4" if chord.quality == "maj" else "min")
            elif style.chords == "pop" and chord.quality == "maj" and ctx.chance(0.12):
                chord = Chord(chord.root, ctx.pick(("sus2", "add9", "maj7")))
            sec.chords.append((beat, length, chord))
            beat += length
            i += 1


# --------------------------------------------------------------------------------------
# Drums
# --------------------------------------------------------------------------------------

# Each groove: variations of kick / snare / hat / open-hat lines on a 16-step (straight)
# or 12-step (triplet) grid. X accent, x normal, o ghost.
_GROOVES: dict[str, tuple[int, list[dict[str, str]]]] = {
    "rock": (16, [
        {"kick": "x.......x.x.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
        {"kick": "x.....x.x.......", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
        {"kick": "x.x.....x.x.....", "snare": "....X.......X..o", "hat": "xoxoxoxoxoxoxoxo"},
        {"kick": "x.......x...x...", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."}]),
    "pop": (16, [
        {"kick": "x.......x.......", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
        {"kick": "x..x..x...x.....", "snare": "....X.......X...", "hat": "xoxoxoxoxoxoxoxo"},
        {"kick": "x.....x...x.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x.",
         "open": "..............x."}]),
    "funk": (16, [
        {"kick": "x..x......x..x..", "snare": "....X..o.o..X..o", "hat": "xoxoxoxoxoxoxoxo",
         "open": "..............x."},
        {"kick": "x.x...x...x..x..", "snare": "..o.X.o..o.oX.o.", "hat": "xxxxxxxxxxxxxxxx"},
        {"kick": "x......x.xx.....", "snare": "....X..o.o..X...", "hat": "xoxoxoxoxoxox.x.",
         "open": "............x..."}]),
    "halftime": (16, [
        {"kick": "x.........x.....", "snare": "........X.......", "hat": "x.x.x.x.x.x.x.x."},
        {"kick": "x..x......x...x.", "snare": "........X.......", "hat": "xoxoxoxoxoxoxoxo"},
        {"kick": "x.......x.x.....", "snare": "........X.....o.", "hat": "x.x.x.x.x.x.x.x."}]),
    "ballad": (16, [
        {"kick": "x.......x.......", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."},
        {"kick": "x.........x.....", "snare": "........X.......", "hat": "x.x.x.x.x.x.x.x."}]),
    "electronic": (16, [
        {"kick": "x...x...x...x...", "snare": "....X.......X...", "hat": "xoxoxoxoxoxoxoxo",
         "open": "..x...x...x...x."},
        {"kick": "x...x...x...x..x", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x.",
         "open": "..x...x...x...x."},
        {"kick": "x..x..x...x.....", "snare": "....X.......X...", "hat": "xxxxxxxxxxxxxxxx"}]),
    "shuffle": (12, [
        {"kick": "x.....x.....", "snare": "...X.....X..", "hat": "x.xx.xx.xx.x"},
        {"kick": "x....xx.....", "snare": "...X.....X..", "hat": "x.xx.xx.xx.x"},
        {"kick": "x.....x....x", "snare": "...X....oX..", "hat": "x.xx.xx.xx.x"}]),
    "swing": (12, [
        {"kick": "o..o..o..o..", "snare": "............", "ride": "X..x.xX..x.x",
         "pedal": "...x.....x.."},
        {"kick": "o.....o.....", "snare": ".....o.....o", "ride": "X..x.xX..x.x",
         "pedal": "...x.....x.."}]),
}


def _drums(ctx: _Ctx, kit: str) -> Part:
    style = ctx.style
    part = Part("Drum Kit", "drums", "kit", KITS[kit], bank=128, style=style.groove,
                tone=kit)
    groove = style.groove
    steps, variations = _GROOVES[groove]
    main = ctx.pick(variations)
    alt = ctx.pick(variations)
    half = _GROOVES["halftime"][1][int(ctx.rng.integers(3))]
    song = ctx.song
    for si, sec in enumerate(song.sections):
        if sec.name == "ending":
            _add(part, sec.start, 2.0, CRASH, ctx.vel(115))
            _add(part, sec.start, 1.0, KICK, ctx.vel(110))
            continue
        pattern = main if sec.name in ("verse", "intro", "outro") or sec.energy < 0.8 else alt
        if sec.name == "bridge" and groove not in ("swing", "shuffle") and ctx.chance(0.6):
            pattern = half
        sparse = sec.name == "intro" and ctx.chance(0.4)
        cymbal = "hat"
        if sec.energy >= 0.9 and groove in ("rock", "pop", "halftime", "ballad") and \
                ctx.chance(0.5):
            cymbal = "ride"
        for bar in range(sec.bars):
            b0 = sec.start + bar * BEATS_PER_BAR
            fill_bar = bar == sec.bars - 1 and sec.bars >= 4 and ctx.chance(0.75) and \
                si + 1 < len(song.sections)
            fill_from = steps if not fill_bar else (steps // 2 if ctx.chance(0.7) else
                                                    3 * steps // 4)
            if bar == 0 and (si > 0 or ctx.chance(0.5)) and not sparse:
                _add(part, b0 + ctx.jitter(), 1.5, CRASH if ctx.chance(0.8) else CRASH2,
                     ctx.vel(108))
            for line, keys in (("kick", (KICK,)), ("snare", (SNARE,)),
                               ("hat", (RIDE if cymbal == "ride" else HAT,)),
                               ("ride", (RIDE,)), ("open", (OPEN_HAT,)),
                               ("pedal", (PEDAL_HAT,))):
                if line not in pattern or (sparse and line == "snare"):
                    continue
                for step, vel in _steps(pattern[line]):
                    if step >= fill_from:
                        continue
                    if bar == 0 and step == 0 and line == "hat" and not sparse and si > 0:
                        continue  # the crash takes the downbeat
                    beat = b0 + step * BEATS_PER_BAR / steps
                    if steps == 16:
                        beat = ctx.swung(beat)
                    key = keys[0]
                    if line == "snare" and style.name == "electronic" and vel > 60:
                        key = CLAP if ctx.chance(0.8) else SNARE
                    if line == "snare" and style.name == "ballad" and sec.energy < 0.6 and \
                            vel > 60 and ctx.chance(0.7):
                        key = SIDESTICK
                    v = vel * (0.78 + 0.22 * sec.energy) if line != "snare" or vel > 60 else vel
                    if line == "hat" and steps == 16 and step % 4 == 0:
                        v += 8
                    _add(part, beat + ctx.jitter(0.004), 0.25, key, ctx.vel(v, 6))
            if groove == "swing":  # snare comping: a few random ghost hits
                for _ in range(int(ctx.rng.integers(0, 3))):
                    pos = int(ctx.rng.integers(0, 12)) * BEATS_PER_BAR / 12
                    _add(part, b0 + pos + ctx.jitter(), 0.2, SNARE, ctx.vel(45 + 20 *
                                                                             sec.energy))
            elif steps == 16 and sec.energy > 0.5 and ctx.chance(0.25):  # an extra ghost
                pos = int(ctx.rng.choice([3, 7, 11, 15])) / 4
                if b0 + pos < b0 + fill_from / 4:
                    _add(part, ctx.swung(b0 + pos), 0.2, SNARE, ctx.vel(40))
            if fill_bar:
                _fill(ctx, part, b0 + fill_from * BEATS_PER_BAR / steps,
                      b0 + BEATS_PER_BAR, steps)
    return part


def _fill(ctx: _Ctx, part: Part, start: float, end: float, steps: int) -> None:
    """A fill from `start` to `end`: snare and toms running down, kick underneath."""
    grid = BEATS_PER_BAR / (12 if steps == 12 else 16)
    if ctx.chance(0.3):
        grid *= 2
    n = int(round((end - start) / grid))
    kind = ctx.pick(("toms", "toms", "snare", "mixed"))
    voices = [SNARE] * 2 + list(TOMS[int(ctx.rng.integers(0, 2)):]) if kind != "snare" \
        else [SNARE]
    for i in range(n):
        t = start + i * grid
        if kind == "snare":
            key = SNARE
        elif kind == "mixed" and i % 2 == 0:
            key = SNARE
        else:
            key = voices[min(len(voices) - 1, i * len(voices) // max(n, 1))]
        _add(part, t + ctx.jitter(0.004), grid, key, ctx.vel(70 + 40 * i / max(n, 1)))
        if i % 4 == 0:
            _add(part, t, grid, KICK, ctx.vel(85))


def _percussion(ctx: _Ctx) -> Part:
    kind = ctx.pick(("Shaker", "Tambourine", "Congas", "Percussion"))
    part = Part(kind, "drums", "percussion", 0, bank=128, style=kind.lower(), tone="standard")
    for sec in ctx.song.sections:
        if sec.name == "ending" or sec.energy < 0.55 or (sec.name == "intro" and
                                                         ctx.chance(0.5)):
            continue
        for bar in range(sec.bars):
            b0 = sec.start + bar * BEATS_PER_BAR
            if kind == "Shaker":
                for s in range(16):
                    _add(part, ctx.swung(b0 + s / 4) + ctx.jitter(0.003), 0.2,
                         MARACAS if s % 2 == 0 or ctx.chance(0.8) else CABASA,
                         ctx.vel(70 if s % 4 == 2 else 52, 8))
            elif kind == "Tambourine":
                hits = (1, 3) if sec.energy < 0.85 else (0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5)
                for h in hits:
                    _add(part, ctx.swung(b0 + h) + ctx.jitter(), 0.3, TAMBOURINE,
                         ctx.vel(90 if h in (1, 3) else 60))
            else:
                pattern = ((0, CONGA_LOW), (1.5, CONGA_MUTE), (2, CONGA_OPEN),
                           (2.5, CONGA_OPEN), (3.5, CONGA_MUTE))
                if kind == "Percussion":
                    pattern = ((0.5, BONGO_HI), (1.5, BONGO_LO), (2.75, BONGO_HI),
                               (3, COWBELL if ctx.chance(0.3) else BONGO_LO), (3.5, BONGO_HI))
                for pos, key in pattern:
                    _add(part, ctx.swung(b0 + pos) + ctx.jitter(), 0.3, key, ctx.vel(78, 10))
    return part


# --------------------------------------------------------------------------------------
# Bass
# --------------------------------------------------------------------------------------

def _bass(ctx: _Ctx, instrument: Instrument, line: str) -> Part:
    part = Part(instrument.name, "bass", "bass", instrument.program, style=line)
    song = ctx.song
    scale = song.scale()
    riff = _riff_pattern(ctx, busy=line == "riff" and ctx.style.name == "funk")
    lo = max(instrument.lo, 28)
    pulse = ctx.pick(("offbeat", "eighths", "octaves"))

    def root_note(chord: Chord) -> int:
        return _near(chord.root, 38, lo, lo + 14)

    for sec in song.sections:
        if sec.name == "intro" and ctx.chance(0.25):
            continue
        for start, length, chord in sec.chords:
            root = root_note(chord)
            nxt = song.chord_at(start + length + 0.01)
            if sec.name == "ending":
                _add(part, start, length, root, ctx.vel(100))
                continue
            fifth = root + 7
            third = root + chord.intervals[1]
            if line == "sustained" or (sec.energy < 0.5 and line != "synth"):
                beat = start
                while beat < start + length - 1e-9:
                    dur = min(2.0 if ctx.chance(0.5) else 4.0, start + length - beat)
                    pitch = root if beat == start else ctx.pick((root, fifth, root + 12))
                    _add(part, beat + ctx.jitter(), dur * 0.95, pitch, ctx.vel(88))
                    beat += dur
            elif line == "walking":
                beat, prev = start, root
                target = root_note(nxt)
                while beat < start + length - 1e-9:
                    last = beat + 1 >= start + length - 1e-9
                    if beat == start:
                        pitch = root
                    elif last:
                        pitch = target + ctx.pick((-1, 1, -2 if (target - 2) % 12 in scale
                                                   else 1))
                    else:
                        options = [m for m in range(prev - 4, prev + 5) if m % 12 in scale
                                   and m != prev and lo <= m <= lo + 19]
                        tones = [m for m in options if m % 12 in chord.pcs]
                        pitch = ctx.pick(tones if tones and ctx.chance(0.6) else options or
                                         [root])
                    swing_note = ctx.chance(0.15) and not last
                    _add(part, beat + ctx.jitter(), 0.9 if not swing_note else 0.6, pitch,
                         ctx.vel(92))
                    if swing_note:
                        _add(part, ctx.swung(beat + 0.5) + ctx.jitter(), 0.3, pitch,
                             ctx.vel(70))
                    prev = pitch
                    beat += 1.0
            elif line == "boogie":
                figure = (0, chord.intervals[1], 7, 9, 10, 9, 7, chord.intervals[1])
                for i in range(int(length * 2)):
                    pitch = root + figure[i % 8]
                    _add(part, ctx.swung(start + i * 0.5) + ctx.jitter(), 0.45, pitch,
                         ctx.vel(95 if i % 2 == 0 else 78))
            elif line == "riff":
                for i in range(int(length)):
                    bar_pos = (start - sec.start + i) % BEATS_PER_BAR
                    for pos, interval, dur, vel in riff:
                        if int(pos) != int(bar_pos):
                            continue
                        beat = start + i + (pos - int(pos))
                        _add(part, ctx.swung(beat) + ctx.jitter(0.004), dur,
                             root + interval, ctx.vel(vel))
            elif line == "synth":
                for i in range(int(length * 2)):
                    beat = start + i * 0.5
                    if pulse == "offbeat" and i % 2 == 0:
                        continue
                    pitch = root + (12 if pulse == "octaves" and i % 2 else 0)
                    _add(part, ctx.swung(beat), 0.4, pitch, ctx.vel(96 if i % 2 else 84))
            else:  # root_fifth, eighths
                busy = line == "eighths" or sec.energy >= 0.85
                step = 0.5 if busy else 1.0
                n = int(round(length / step))
                approach = ctx.chance(0.5)
                for i in range(n):
                    beat = start + i * step
                    if line == "eighths":
                        pitch = root
                    else:
                        pitch = (root, root, fifth, root + 12, root, third, fifth, root)[
                            i % 8] if ctx.chance(0.8) else ctx.pick((root, fifth))
                    if i == n - 1 and approach and nxt.root != chord.root:
                        target = root_note(nxt)
                        pitch = target + (-1 if target > root else 1)
                    _add(part, ctx.swung(beat) + ctx.jitter(), step * 0.85, pitch,
                         ctx.vel(98 if (i * step) % 2 == 0 else 82))
    return part


def _riff_pattern(ctx: _Ctx, busy: bool) -> list[tuple[float, int, float, int]]:
    """A one-bar bass riff: (beat in bar, interval above the root, length, velocity)."""
    grid = 0.25 if busy else 0.5
    slots = int(BEATS_PER_BAR / grid)
    intervals = (0, 0, 0, 12, 7, 10, 5, 3 if ctx.song.mode != "major" else 4, 12)
    out = [(0.0, 0, grid * 1.6, 105)]
    for i in range(1, slots):
        if ctx.chance(0.55 if busy else 0.6):
            dur = grid * (0.5 if busy and ctx.chance(0.5) else 0.9)
            out.append((i * grid, ctx.pick(intervals), dur, 92 if i % 2 == 0 else 80))
    return out


# --------------------------------------------------------------------------------------
# Electric guitar
# --------------------------------------------------------------------------------------

def _guitar(ctx: _Ctx, instrument: Instrument, style: str, tone: str, sections: set[int]
            ) -> Part:
    part = Part(instrument.name, "electric_guitar", "rhythm", instrument.program, style=style,
                tone=tone)
    song = ctx.song
    strum_pattern = ctx.pick(("D.DU.UDU", "D.D.DUDU", "D..UD.DU", "D.DUD.DU", "D...D.DU"))
    riff = [(p, iv, d, v) for p, iv, d, v in _riff_pattern(ctx, busy=False)]
    arp_order = ctx.pick(((0, 1, 2, 3, 2, 1, 3, 1), (0, 2, 1, 3, 0, 2, 1, 3),
                          (0, 1, 2, 1, 3, 1, 2, 1)))
    for si, sec in enumerate(song.sections):
        if si not in sections:
            continue
        for start, length, chord in sec.chords:
            if sec.name == "ending":
                _strum(ctx, part, start, 3.5, _guitar_voicing(chord), 100, True)
                continue
            if style == "power chords":
                root = _near(chord.root, 45, 40, 52)
                notes = [root, root + 7, root + 12]
                if sec.energy >= 0.85 and ctx.chance(0.5):
                    _strum(ctx, part, start, length * 0.98, notes, 105, True, spread=0.008)
                else:
                    for i in range(int(length * 2)):
                        beat = ctx.swung(start + i * 0.5)
                        accent = i % 4 == 0 or ctx.chance(0.15)
                        _strum(ctx, part, beat, 0.45 if accent else 0.22, notes,
                               100 if accent else 80, True, spread=0.004)
            elif style in ("strum", "comping"):
                voicing = _guitar_voicing(chord)
                if style == "comping":
                    for i in range(int(length)):  # four to the bar, short
                        _strum(ctx, part, start + i, 0.45, voicing[1:5],
                               85 if i % 2 else 75, True, spread=0.01)
                    continue
                for bar in range(int(math.ceil(length / BEATS_PER_BAR))):
                    for i, c in enumerate(strum_pattern):
                        beat = start + bar * BEATS_PER_BAR + i * 0.5
                        if c == "." or beat >= start + length - 1e-9:
                            continue
                        down = c == "D"
                        _strum(ctx, part, ctx.swung(beat), 0.9 if i < 7 else 0.45,
                               voicing if down else voicing[-4:], 96 if down else 78, down)
            elif style == "scratch":
                top = [m for m in _guitar_voicing(chord, 48)][-3:]
                for i in range(int(length * 4)):
                    beat = ctx.swung(start + i * 0.25)
                    accent = i % 4 == 2 or (i % 8 == 7 and ctx.chance(0.5))
                    if not accent and ctx.chance(0.25):
                        continue
                    _strum(ctx, part, beat, 0.2 if accent else 0.1, top,
                           98 if accent else 62, i % 2 == 0, spread=0.004)
            elif style == "stabs":
                top = _guitar_voicing(chord, 48)[-4:]
                for pos in (0.5, 1.5, 2.5, 3.5) if ctx.chance(0.6) else (0.75, 2.5, 3.25):
                    if pos < length:
                        _strum(ctx, part, ctx.swung(start + pos), 0.3, top, 95, True)
            elif style == "arpeggio":
                voicing = _guitar_voicing(chord)[:4]
                step = 0.5 if song.bpm > 90 or ctx.style.name == "electronic" else 0.25
                if ctx.style.name == "electronic":
                    step = 0.25
                for i in range(int(length / step)):
                    pitch = voicing[arp_order[i % 8] % len(voicing)] + 12 * (
                        ctx.style.name == "electronic")
                    _add(part, ctx.swung(start + i * step) + ctx.jitter(), step * 2.5, pitch,
                         ctx.vel(80 if i % 2 else 92))
            else:  # riff: single notes and fifths on the chord root
                root = _near(chord.root, 45, 40, 52)
                for i in range(int(length)):
                    bar_pos = (start - sec.start + i) % BEATS_PER_BAR
                    for pos, interval, dur, vel in riff:
                        if int(pos) != int(bar_pos):
                            continue
                        beat = ctx.swung(start + i + pos - int(pos))
                        notes = [root + interval] if interval else [root, root + 7]
                        for m in notes:
                            _add(part, beat + ctx.jitter(), dur, m, ctx.vel(vel))
    return part


def _strum(ctx: _Ctx, part: Part, beat: float, length: float, notes: Sequence[int],
           velocity: float, down: bool, spread: float = 0.012) -> None:
    """Notes of a chord a few milliseconds apart, low to high (down) or high to low."""
    order = list(notes) if down else list(notes)[::-1]
    offset = spread * ctx.song.bpm / 60.0
    base = beat + ctx.jitter(0.004)
    for i, m in enumerate(order):
        _add(part, base + i * offset, max(0.05, length - i * offset), m,
             ctx.vel(velocity - 3 * i, 5))


def _lead_line(ctx: _Ctx, part: Part, sec: Section, lo: int, hi: int, busy: float,
               bends: bool) -> None:
    """An improvised-sounding line: pentatonic/scale runs, held notes, the odd bend."""
    song = ctx.song
    minorish = song.mode in ("minor", "dorian")
    penta = (0, 3, 5, 7, 10) if minorish or ctx.style.chords == "blues" else (0, 2, 4, 7, 9)
    pcs = {(song.tonic + i) % 12 for i in penta}
    pool = [m for m in range(lo, hi + 1) if m % 12 in pcs]
    idx = len(pool) // 2
    beat = sec.start + ctx.pick((0.0, 0.5, 1.0))
    while beat < sec.end - 0.5:
        if ctx.chance(0.12):
            beat += ctx.pick((0.5, 1.0, 1.5))
            continue
        step = ctx.pick((0.25, 0.25, 0.5, 0.5, 1.0) if busy > 0.6 else (0.5, 0.5, 1.0, 1.5))
        if ctx.chance(0.15):
            step = ctx.pick((1.5, 2.0))
        idx = int(np.clip(idx + ctx.pick((-2, -1, -1, 1, 1, 2, 0)), 0, len(pool) - 1))
        bend = 0.0
        if bends and step >= 1.0 and ctx.chance(0.35):
            bend = ctx.pick((1.0, 2.0))
        length = min(step, sec.end - beat)
        _add(part, ctx.swung(beat) + ctx.jitter(), length * 0.95, pool[idx], ctx.vel(96),
             bend=bend)
        beat += step


# --------------------------------------------------------------------------------------
# Melodies and words
# --------------------------------------------------------------------------------------

def _phrase_rhythm(rng: np.random.Generator, beats: float, density: float
                   ) -> list[tuple[float, float]]:
    """(onset, length) in beats for one phrase: a pickup or not, a held last note, a rest."""
    grid = 0.5
    start = float(rng.choice([0.0, 0.0, 0.5, 1.0]))
    end = beats - float(rng.choice([1.0, 1.5, 2.0]))
    onsets = [start]
    t = start + grid
    while t < end - 1e-9:
        strong = abs(t % 1.0) < 1e-9
        if rng.random() < density * (1.15 if strong else 0.75):
            onsets.append(t)
        t += grid
    out = []
    for i, on in enumerate(onsets):
        nxt = onsets[i + 1] if i + 1 < len(onsets) else min(beats - 0.5, on + 2.0)
        out.append((on, max(0.25, nxt - on)))
    return out


def _melody(ctx: _Ctx, sec: Section, lo: int, hi: int, density: float, seed: int,
            phrase_bars: int = 2) -> list[tuple[float, float, int]]:
    """(beat, length, pitch) of a melody over a section: phrases A A' B A'' built from a
    per-section-name seed, so a repeated section gets the same tune over its chords."""
    song = ctx.song
    scale = sorted(song.scale())
    phrase_beats = phrase_bars * BEATS_PER_BAR
    n_phrases = max(1, sec.bars // phrase_bars)
    out: list[tuple[float, float, int]] = []
    shape = (0, 0, 1, 0) if n_phrases >= 4 else (0, 1, 0, 1)
    for p in range(n_phrases):
        kind = shape[p % 4]
        prng = np.random.default_rng([seed, kind])
        rhythm = _phrase_rhythm(prng, phrase_beats, density)
        base = sec.start + p * phrase_beats
        if base >= sec.end:
            break
        center = (lo + hi) / 2 + (2 if kind == 1 else 0)
        prev = int(center)
        direction = 1 if prng.random() < 0.5 else -1
        for i, (on, length) in enumerate(rhythm):
            beat = base + on
            if beat >= sec.end - 0.25:
                break
            chord = song.chord_at(beat)
            strong = abs(on % 2.0) < 1e-9 or i == len(rhythm) - 1
            if prng.random() < 0.25:
                direction = -direction
            if prev > hi - 3:
                direction = -1
            elif prev < lo + 3:
                direction = 1
            if strong or i == 0:
                target = prev + direction * int(prng.integers(0, 4))
                pitch = _near(int(prng.choice(chord.pcs[:3])), target, lo, hi)
                if abs(pitch - prev) > 7:
                    pitch = _near(chord.pcs[0], prev, lo, hi)
            else:
                steps = int(prng.choice([1, 1, 1, 2, 0]))
                cands = [m for m in range(lo, hi + 1) if m % 12 in scale]
                j = min(range(len(cands)), key=lambda k: abs(cands[k] - prev))
                pitch = cands[int(np.clip(j + direction * steps, 0, len(cands) - 1))]
            length = min(length, sec.end - beat)
            out.append((beat, length, int(pitch)))
            prev = int(pitch)
    return out


def _words(rng: np.random.Generator, n: int) -> list[str]:
    """`n` lyrics-like words for one phrase: pronoun, verb, article, noun, link, ... end."""
    if n <= 0:
        return []
    cycle = (_PRON, _VERB, _DET, _NOUN, _LINK, _DET, _NOUN, _LINK, _VERB, _DET, _NOUN)
    words = []
    for i in range(n - 1):
        pool = cycle[i % len(cycle)]
        if rng.random() < 0.1:
            pool = _FILL
        words.append(str(rng.choice(pool)))
    words.append(str(rng.choice(_END)))
    if n >= 3 and rng.random() < 0.2:
        words[-2:] = ["oh", str(rng.choice(_END))]
    return words


# --------------------------------------------------------------------------------------
# Vocals
# --------------------------------------------------------------------------------------

def _vocals(ctx: _Ctx, sections: set[int], voice: str) -> list[Part]:
    song = ctx.song
    lo, hi = (48, 67) if voice == "male" else (55, 74)
    lead = Part("Lead Vocal", "vocals", "lead vocal", -1, style="sung", tone=voice)
    seeds: dict[str, int] = {}
    lyrics: dict[tuple[str, int], list[str]] = {}
    density = 0.55 if song.bpm > 110 else 0.7
    for si, sec in enumerate(song.sections):
        if si not in sections or sec.name == "ending":
            continue
        name = sec.name if sec.name in ("verse", "chorus", "pre", "bridge") else "verse"
        seeds.setdefault(name, int(ctx.rng.integers(1 << 30)))
        shift = 3 if name == "chorus" else (1 if name == "pre" else 0)
        notes = _melody(ctx, sec, lo + shift, hi + shift - (2 if name == "verse" else 0),
                        density + (0.1 if name == "chorus" else 0), seeds[name])
        # words: one line per phrase; a chorus sings the same words every time
        occurrence = sum(1 for s in song.sections[:si] if s.name == sec.name)
        key = (name, 0 if name == "chorus" else occurrence)
        phrases = _split_phrases(notes)
        if key not in lyrics:
            wrng = np.random.default_rng([seeds[name], 7, key[1]])
            lyrics[key] = [w for ph in phrases for w in _words(wrng, len(ph))]
        words = lyrics[key]
        if len(words) < len(notes):
            wrng = np.random.default_rng([seeds[name], 9, len(notes)])
            words = words + _words(wrng, len(notes) - len(words))
        for (beat, length, pitch), word in zip(notes, words, strict=False):
            _add(lead, beat + ctx.jitter(0.01), length * 0.92, pitch, ctx.vel(95), word)
    parts = [lead]
    if ctx.chance(0.8):
        parts.append(_backing(ctx, sections, voice))
    return parts


def _split_phrases(notes: list[tuple[float, float, int]]) -> list[list[tuple[float, float,
                                                                             int]]]:
    phrases: list[list[tuple[float, float, int]]] = []
    last_end = None
    for note in notes:
        if last_end is None or note[0] - last_end > 0.6:
            phrases.append([])
        phrases[-1].append(note)
        last_end = note[0] + note[1]
    return phrases


def _backing(ctx: _Ctx, sections: set[int], voice: str) -> Part:
    """Backing "oohs/aahs": held chord tones in the choruses, sung (espeak-ng) or a GM
    choir patch."""
    song = ctx.song
    sung = ctx.chance(0.55)
    program = -1 if sung else ctx.pick((52, 53, 52))
    part = Part("Backing Vocals", "vocals", "backing vocals", program,
                style="oohs" if program == 53 else "aahs", tone=voice)
    vowel = "ooh" if part.style == "oohs" or (sung and ctx.chance(0.5)) else "aah"
    part.style = vowel + "s"
    lo, hi = (50, 69) if voice == "male" else (57, 76)
    n = 3 if not sung else 2
    chosen = [si for si, s in enumerate(song.sections) if si in sections and
              s.name in ("chorus", "outro", "bridge")]
    if not chosen:
        chosen = [si for si in sections if song.sections[si].name != "ending"]
    prev = None
    for si in chosen:
        sec = song.sections[si]
        for start, length, chord in sec.chords:
            notes = _voicing(chord, prev, lo, hi, n)
            prev = notes
            dur = min(length, 2.0 if sec.energy > 0.85 and ctx.chance(0.5) else length)
            beat = start
            while beat < start + length - 1e-9:
                for m in notes:
                    _add(part, beat + ctx.jitter(0.01), min(dur, start + length - beat) * 0.96,
                         m, ctx.vel(72), vowel if sung else "")
                beat += dur
    return part


# --------------------------------------------------------------------------------------
# Wind
# --------------------------------------------------------------------------------------

def _winds(ctx: _Ctx, role: str, vocal_sections: set[int]) -> list[Part]:
    style = ctx.style
    song = ctx.song
    if role == "section":
        names = [n for n in ("trumpet", "alto sax", "tenor sax", "trombone", "baritone sax")
                 if n in style.winds or n in ("trumpet", "trombone")]
        k = int(ctx.rng.integers(2, 4))
        picked = [names[int(i)] for i in sorted(ctx.rng.choice(len(names), size=min(k, len(
            names)), replace=False))]
        instruments = [WINDS[n] for n in picked]
    else:
        instruments = [WINDS[ctx.pick(style.winds)]]
    parts = [Part(i.name, "wind", role, i.program, style=role) for i in instruments]
    stab_rhythm = ctx.pick(((0.0, 0.5), (1.5, 2.5), (0.5, 1.5, 3.5), (0.0, 1.5, 3.0),
                            (2.5, 3.0), (0.75, 2.5, 3.25)))
    mel_seed = int(ctx.rng.integers(1 << 30))
    prev: list[list[int] | None] = [None] * len(parts)
    for si, sec in enumerate(song.sections):
        if sec.name == "ending":
            for part, ins in zip(parts, instruments, strict=True):
                chord = sec.chords[0][2]
                _add(part, sec.start, 3.0, _near(chord.root, (ins.lo + ins.hi) // 2, ins.lo,
                                                 ins.hi), ctx.vel(95))
            continue
        sung = si in vocal_sections
        if role in ("stabs", "section"):
            if sec.energy < 0.6 and ctx.chance(0.6) and not (sec.name == "solo"):
                continue
            if sec.name == "solo" and role == "section":
                ins = instruments[0]
                _lead_line(ctx, parts[0], sec, ins.lo + 5, ins.hi - 3, 0.5, False)
                continue
            for start, length, chord in sec.chords:
                for bar in range(int(math.ceil(length / BEATS_PER_BAR))):
                    for pos in stab_rhythm:
                        beat = start + bar * BEATS_PER_BAR + pos
                        if beat >= start + length - 1e-9:
                            continue
                        top = 74 + int(ctx.rng.integers(-2, 3))
                        stack = _voicing(chord, None, top - 12, top, max(3, len(parts)))
                        for k, (part, ins) in enumerate(zip(parts, instruments, strict=True)):
                            m = stack[-1 - k % len(stack)]
                            while m > ins.hi:
                                m -= 12
                            while m < ins.lo:
                                m += 12
                            _add(part, ctx.swung(beat) + ctx.jitter(), ctx.pick((0.35, 0.5,
                                                                                 0.25)),
                                 m, ctx.vel(102))
        elif role == "pads" or (role == "melody" and sung):
            if role == "melody" and not (sec.energy >= 0.85 or ctx.chance(0.3)):
                continue
            ins = instruments[0]
            for start, length, chord in sec.chords:
                if role == "melody":  # a counter-line: one long chord tone per chord
                    m = _near(ctx.pick(chord.pcs[:3]), (ins.lo + ins.hi) // 2, ins.lo, ins.hi)
                    _add(parts[0], start + ctx.pick((0.0, 2.0)) + ctx.jitter(),
                         min(length, 4.0) * 0.9, m, ctx.vel(70))
                    continue
                notes = _voicing(chord, prev[0], ins.lo + 4, min(ins.hi, ins.lo + 28), 2)
                prev[0] = notes
                for m in notes:
                    _add(parts[0], start + ctx.jitter(), length * 0.97, m, ctx.vel(70))
        else:  # melody where nobody sings: intro, solo, instrumental sections
            ins = instruments[0]
            if sec.name == "solo":
                _lead_line(ctx, parts[0], sec, ins.lo + 5, ins.hi - 3, 0.55, False)
            else:
                for beat, length, pitch in _melody(ctx, sec, ins.lo + 7, ins.hi - 5, 0.65,
                                                   mel_seed):
                    _add(parts[0], beat + ctx.jitter(), length * 0.95, pitch, ctx.vel(92))
    return parts


# --------------------------------------------------------------------------------------
# Other: keys, strings, pads, acoustic guitar, synths
# --------------------------------------------------------------------------------------

def _other(ctx: _Ctx, key: str, sections: set[int], vocal_sections: set[int]) -> Part:
    ins = OTHERS[key]
    song = ctx.song
    role = ("pad" if key in ("strings", "slow strings", "synth strings", "warm pad",
                             "poly pad", "sweep pad", "drawbar organ", "rock organ")
            else "lead" if key in ("square lead", "saw lead") else
            "arpeggio" if key in ("synth arp", "harp") else
            "strum" if key in ("steel guitar", "nylon guitar") else "keys")
    part = Part(ins.name, "other", role, ins.program, style=role)
    comp = ctx.pick(("block", "offbeat", "broken", "charleston"))
    if ctx.style.name == "ballad":
        comp = "broken"
    elif ctx.style.name == "swing":
        comp = "charleston"
    elif ctx.style.name == "funk":
        comp = "offbeat"
    strum_pattern = ctx.pick(("D.DU.UDU", "D.D.DUDU", "D...D.DU"))
    mel_seed = int(ctx.rng.integers(1 << 30))
    prev = None
    for si, sec in enumerate(song.sections):
        if si not in sections:
            continue
        for start, length, chord in sec.chords:
            if sec.name == "ending":
                notes = _voicing(chord, prev, 55, 76, 4)
                for m in notes + [_near(chord.root, 40, 36, 48)]:
                    _add(part, start + ctx.jitter(), 3.5, m, ctx.vel(85))
                continue
            if role == "pad":
                notes = _voicing(chord, prev, max(ins.lo, 52), 79, 4 if ctx.chance(0.5) else 3)
                prev = notes
                for m in notes:
                    _add(part, start + ctx.jitter(0.01), length * 0.98, m, ctx.vel(68))
                if key in ("drawbar organ", "rock organ") and sec.energy > 0.8:
                    _add(part, start, length * 0.98, _near(chord.root, 43, 36, 48), ctx.vel(70))
            elif role == "strum":
                voicing = _guitar_voicing(chord, 40)
                for i, c in enumerate(strum_pattern * int(math.ceil(length / 4))):
                    beat = start + i * 0.5
                    if c == "." or beat >= start + length - 1e-9:
                        continue
                    _strum(ctx, part, ctx.swung(beat), 0.9, voicing if c == "D" else
                           voicing[-4:], 88 if c == "D" else 70, c == "D")
            elif role == "arpeggio":
                notes = _voicing(chord, prev, 60, 84, 4)
                prev = notes
                order = (0, 1, 2, 3, 2, 1, 0, 2)
                step = 0.25 if key == "synth arp" else 0.5
                for i in range(int(length / step)):
                    _add(part, start + i * step + ctx.jitter(0.003), step * 1.5,
                         notes[order[i % 8]], ctx.vel(82 if i % 4 else 96))
            elif role == "lead":
                continue  # melodies are written per section below
            else:  # keys: piano, electric piano, clavinet, vibraphone...
                notes = _voicing(chord, prev, 55, 76, 3 if key != "piano" else 4)
                prev = notes
                low = _near(chord.root, 43, 36, 50)
                if comp == "broken":
                    order = (0, 1, 2, 1) if len(notes) < 4 else (0, 1, 2, 3, 2, 1)
                    step = 0.5
                    _add(part, start, length * 0.95, low, ctx.vel(78))
                    for i in range(int(length / step)):
                        _add(part, ctx.swung(start + i * step) + ctx.jitter(), step * 2,
                             notes[order[i % len(order)]], ctx.vel(66))
                else:
                    hits = {"block": (0.0, 1.0, 2.0, 3.0), "offbeat": (0.5, 1.5, 2.5, 3.5),
                            "charleston": (0.0, 1.5)}[comp]
                    if key == "clavinet":
                        hits = (0.0, 0.75, 1.5, 2.5, 3.25)
                    for bar in range(int(math.ceil(length / BEATS_PER_BAR))):
                        for h in hits:
                            beat = start + bar * BEATS_PER_BAR + h
                            if beat >= start + length - 1e-9:
                                continue
                            dur = 0.4 if comp != "block" else 0.9
                            for m in notes:
                                _add(part, ctx.swung(beat) + ctx.jitter(), dur, m,
                                     ctx.vel(74 + 12 * sec.energy))
                        if comp == "block":
                            _add(part, start + bar * BEATS_PER_BAR, min(length, 4.0) * 0.9,
                                 low, ctx.vel(80))
        if role == "lead":
            if si in vocal_sections and sec.energy < 0.9:
                continue
            if sec.name == "solo":
                _lead_line(ctx, part, sec, ins.lo + 5, ins.hi - 8, 0.6, False)
            elif sec.name != "ending":
                for beat, length, pitch in _melody(ctx, sec, ins.lo + 5, ins.hi - 10, 0.6,
                                                   mel_seed):
                    _add(part, beat + ctx.jitter(), length * 0.9, pitch, ctx.vel(88))
    return part


# --------------------------------------------------------------------------------------
# The song
# --------------------------------------------------------------------------------------

def compose_song(seed: int, seconds: float, style: str | None = None) -> Song:
    """Compose a song of about `seconds` seconds (the last bar rings to the end) with parts
    for all six stems, deterministically from `seed`. `style`: one of STYLES, or drawn."""
    if seconds <= 0:
        raise ValueError("a song needs a positive length")
    rng = np.random.default_rng([int(seed), 0x50_4E_47])
    st = STYLES[style] if style else STYLES[str(rng.choice(sorted(STYLES)))]
    bpm = float(rng.integers(st.bpm[0], st.bpm[1] + 1))
    song = Song(seed=int(seed), seconds=float(seconds), style=st.name, bpm=bpm,
                tonic=int(rng.integers(12)), mode=str(rng.choice(st.modes)),
                swing=float(rng.choice(st.swing)), sections=[], parts=[])
    ctx = _Ctx(song, rng, st)
    bars = max(1, int(seconds * bpm / 60.0 / BEATS_PER_BAR))
    song.sections = _form(ctx, bars)
    _harmony(ctx, song.sections)
    everything = set(range(len(song.sections)))
    names = [s.name for s in song.sections]

    def where(*wanted: str) -> set[int]:
        out = {i for i, n in enumerate(names) if n in wanted}
        return out or everything

    # vocals sing verses, pre-choruses, choruses and (sometimes) the bridge
    song.voice = "female" if rng.random() < 0.5 else "male"
    sung = where("verse", "pre", "chorus", *(("bridge",) if rng.random() < 0.5 else ()))
    if len(song.sections) <= 2:
        sung = everything
    sung = {i for i in sung if names[i] != "ending"}
    parts: list[Part] = [_drums(ctx, str(rng.choice(st.kits)))]
    if rng.random() < 0.45:
        parts.append(_percussion(ctx))
    parts.append(_bass(ctx, BASSES[str(rng.choice(st.basses))], str(rng.choice(st.bass_lines))))
    # electric guitar: a rhythm part nearly everywhere, sometimes a lead for solos and fills
    tone = str(rng.choice(st.guitar_tones))
    gstyle = str(rng.choice(st.guitar_styles))
    if gstyle == "power chords" and tone in ("clean", "jazz") and rng.random() < 0.7:
        tone = "overdriven"
    if gstyle == "scratch":
        tone = "muted" if rng.random() < 0.6 else "clean"
    rhythm_where = everything - ({i for i, n in enumerate(names) if n == "intro"}
                                 if rng.random() < 0.3 and len(names) > 2 else set())
    parts.append(_guitar(ctx, GUITARS[tone], gstyle, tone, rhythm_where))
    solo = where("solo") if "solo" in names else set()
    soloist = str(rng.choice(("guitar", "wind", "other"))) if solo else ""
    if soloist == "guitar" or rng.random() < 0.3:
        lead_tone = str(rng.choice(("overdriven", "distortion", "clean")))
        lead = Part(f"Lead Guitar ({lead_tone.capitalize()})", "electric_guitar", "lead",
                    GUITARS[lead_tone].program, style="lead", tone=lead_tone)
        for si in (solo or where("outro", "chorus")):
            sec = song.sections[si]
            if sec.name == "ending":
                continue
            if si in sung and soloist == "guitar":
                continue
            _lead_line(ctx, lead, sec, 57, 84, 0.7, True)
        if lead.notes:
            parts.append(lead)
    # wind
    role = str(rng.choice(st.wind_roles))
    parts.extend(_winds(ctx, role, sung))
    # vocals
    parts.extend(_vocals(ctx, sung, song.voice))
    # other: one to three instruments
    n_other = int(rng.integers(1, 4))
    keys = [st.others[int(i)] for i in rng.choice(len(st.others), size=min(n_other, len(
        st.others)), replace=False)]
    if soloist == "other" and not any(k in ("square lead", "saw lead") for k in keys):
        keys.append("saw lead" if st.name in ("electronic", "rock") else "square lead")
    for k in keys:
        parts.append(_other(ctx, k, everything, sung))
    song.parts = [p for p in parts if p.notes]
    song.parts.sort(key=lambda p: (("vocals", "drums", "bass", "electric_guitar", "wind",
                                    "other").index(p.stem)))
    for p in song.parts:
        p.notes.sort(key=lambda n: (n.start, n.pitch))
    return song


def describe(song: Song) -> dict:
    """A JSON-able summary: style, tempo, key, form with chords, parts."""
    return {
        "style": song.style, "bpm": song.bpm, "key": song.key_name, "swing": song.swing,
        "voice": song.voice,
        "sections": [{"name": s.name, "bar": s.start_bar, "bars": s.bars,
                      "start": round(song.seconds_at(s.start), 3),
                      "chords": " ".join(c.name for _, _, c in s.chords)}
                     for s in song.sections],
        "parts": [{"name": p.name, "stem": p.stem, "role": p.role, "program": p.program,
                   "bank": p.bank, "style": p.style, "tone": p.tone, "notes": len(p.notes)}
                  for p in song.parts],
    }


__all__ = ["Note", "Chord", "Section", "Part", "Song", "Style", "STYLES", "KITS", "BASSES",
           "GUITARS", "WINDS", "OTHERS", "compose_song", "describe", "BEATS_PER_BAR"]
