"""The style table: what each style (rock, pop, funk, shuffle, swing, ballad, electronic)
picks, and the instruments it picks from.

* `BASSES`, `GUITARS`, `WINDS`, `OTHERS`: `Instrument`s by key - the track label (what
  the multitrack reader maps to the stem), the General MIDI program and a comfortable
  range; `KITS`: GM drum kit programs (bank 128).
* `STYLES`: per style its tempo range, modes, swing amounts, drum groove, progression
  family, kits, basses and bass lines, guitar tones and playing styles, winds and their
  roles, other instruments and harmonic rhythm (bars per chord), each drawn per song.
* `_FORMS`: the section templates (name, bars, energy) per progression family.
"""

from __future__ import annotations

from dataclasses import dataclass

from .song import Role

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
    wind_roles: tuple[Role, ...]
    others: tuple[str, ...]
    harmonic_rhythm: tuple[float, ...]  # bars per chord to draw from


STYLES: dict[str, Style] = {s.name: s for s in (
    Style("rock", (96, 148), ("major", "minor", "mixolydian"), (0.0,), "rock", "rock",
          ("standard", "power", "room"), ("finger", "pick"), ("root_fifth", "riff", "eighths"),
          ("overdriven", "distortion", "distortion", "clean"),
          ("power chords", "power chords", "riff", "strum"),
          ("tenor sax", "alto sax", "trumpet", "brass section", "trombone"),
          (Role.STABS, Role.MELODY, Role.SECTION),
          ("rock organ", "piano", "strings", "drawbar organ", "steel guitar", "bright piano"),
          (1.0, 1.0, 0.5)),
    Style("pop", (88, 128), ("major", "major", "minor"), (0.0, 0.0, 0.08), "pop", "pop",
          ("standard", "room", "electronic"), ("finger", "pick", "synth1", "fretless"),
          ("root_fifth", "eighths", "riff", "sustained"),
          ("clean", "muted", "overdriven", "clean"), ("strum", "arpeggio", "muted", "riff"),
          ("alto sax", "trumpet", "flute", "clarinet", "french horn", "soprano sax"),
          (Role.MELODY, Role.PADS, Role.STABS),
          ("piano", "electric piano", "strings", "warm pad", "steel guitar", "poly pad",
           "vibraphone", "square lead"), (1.0, 1.0, 2.0, 0.5)),
    Style("funk", (90, 116), ("dorian", "minor", "mixolydian"), (0.0, 0.06, 0.12), "funk",
          "funk", ("standard", "room"), ("finger", "slap", "synth2", "pick"), ("riff",),
          ("muted", "clean", "clean", "jazz"), ("scratch", "scratch", "stabs", "riff"),
          ("trumpet", "alto sax", "tenor sax", "trombone", "baritone sax"),
          (Role.SECTION, Role.SECTION, Role.STABS, Role.MELODY),
          ("clavinet", "electric piano", "drawbar organ", "fm piano", "synth strings"),
          (2.0, 1.0, 4.0)),
    Style("shuffle", (84, 132), ("major", "mixolydian"), (1 / 3,), "shuffle", "blues",
          ("standard", "room", "jazz"), ("finger", "upright", "pick"),
          ("walking", "boogie", "boogie"), ("clean", "overdriven", "jazz", "overdriven"),
          ("riff", "power chords", "strum"),
          ("tenor sax", "alto sax", "trumpet", "trombone", "baritone sax", "clarinet"),
          (Role.MELODY, Role.STABS, Role.SECTION),
          ("piano", "honky-tonk", "drawbar organ", "percussive organ", "bright piano"),
          (1.0,)),
    Style("swing", (108, 168), ("major", "minor"), (1 / 3,), "swing", "jazz",
          ("jazz", "brush"), ("upright", "upright", "finger"), ("walking",),
          ("jazz", "clean"), ("comping", "comping", "arpeggio"),
          ("tenor sax", "alto sax", "trumpet", "muted trumpet", "clarinet", "trombone",
           "flute"), (Role.MELODY, Role.SECTION, Role.MELODY),
          ("piano", "vibraphone", "drawbar organ", "bright piano"), (1.0, 2.0)),
    Style("ballad", (60, 84), ("major", "minor"), (0.0, 0.0, 1 / 3), "ballad", "pop",
          ("standard", "room", "brush"), ("fretless", "finger", "upright"),
          ("sustained", "root_fifth"), ("clean", "clean", "overdriven", "jazz"),
          ("arpeggio", "strum", "arpeggio"),
          ("flute", "clarinet", "french horn", "alto sax", "oboe", "soprano sax"),
          (Role.PADS, Role.MELODY, Role.MELODY),
          ("piano", "strings", "slow strings", "warm pad", "nylon guitar", "electric piano",
           "harp"), (1.0, 2.0, 0.5)),
    Style("electronic", (116, 132), ("minor", "dorian", "major"), (0.0, 0.0, 0.1),
          "electronic", "rock", ("electronic", "tr-808"), ("synth1", "synth2", "synth2"),
          ("synth", "synth", "riff"), ("muted", "clean", "distortion"),
          ("arpeggio", "power chords", "scratch"),
          ("flute", "alto sax", "trumpet", "brass section", "soprano sax"),
          (Role.MELODY, Role.STABS, Role.PADS),
          ("warm pad", "poly pad", "sweep pad", "saw lead", "synth arp", "square lead",
           "fm piano", "synth strings"), (2.0, 1.0, 4.0)),
)}

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


__all__ = ["Instrument", "BASSES", "GUITARS", "WINDS", "OTHERS", "KITS", "Style", "STYLES"]
