"""Rendering composed parts to audio for `stemwright synth`: FluidSynth, espeak-ng, effects.

* `check_tools()` finds what the generator needs outside Python - the FluidSynth library,
  espeak-ng with its data, General MIDI soundfonts - plus the pedalboard and mido packages,
  and raises `ToolError` with the Debian packages to install when something is missing.
* `FluidRenderer` plays one part at a time through libfluidsynth (ctypes, in process, every
  soundfont loaded once per process with samples loaded on first use), built-in reverb and
  chorus off, float output at 44.1 kHz stereo; it is reset between parts, so a part renders
  the same whatever was rendered before. A part's controls (`expression.py`: breath,
  expression, pitch wheel) play with its notes, on the font's expressive preset (bank 17,
  MuseScore General) when the part breathes and the font has one.
* `Singer` sings a part with espeak-ng: every note's word is spoken by a monotone voice
  variant pitched at the note (espeak-ng's `pitch base range` with range = base), the vowel
  is looped period by period (or shortened) to the note's length, the small pitch offset
  left is corrected while resampling 22.05 -> 44.1 kHz, and a delayed vibrato is added
  (the signal processing is in `singer.py`).
  espeak-ng carries state from one utterance to the next, so each song's words are
  synthesised by a fresh child process, in a fixed order: the same song sings the same.
* `apply_effects` runs a JSON-able effect list through Spotify's pedalboard (EQ,
  compression, distortion, chorus, delay, reverb) plus an exciter that gives the 11 kHz
  speech synthesiser some air above it, and guitar-cabinet impulse responses (guitarix's,
  `find_cabinets`; skipped when none is installed).
* `write_midi` writes the song as a type-1 MIDI file (one track per part, lyrics included).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

# Load python-soundfile's libsndfile before libfluidsynth, always: FluidSynth decodes the
# Ogg Vorbis samples of .sf3 soundfonts with libsndfile, and whichever libsndfile a process
# loaded first is the one it gets (soundfile's bundled build or the system's decode a
# hair differently). Loading ours first makes every process decode alike, so a seed gives
# the same songs whether or not the caller had imported soundfile.
import soundfile  # noqa: F401, I001

from ..audio.levels import pan_gains
from ..errors import StemwrightError
from .drumkit import DRUM_SOUNDFONTS, DRUMKIT_APT_PACKAGES, DrumkitInfo, find_drumkits
from .expression import BREATH, EXPRESSIVE_BANK
from .singer import _CHILD, ESPEAK_RATE, SAMPLERATE, _fit, _trim, _vibrato
from .song import PITCH_WHEEL, Part, Song

APT_PACKAGES = ("fluidsynth", "espeak-ng", "fluid-soundfont-gm", "timgm6mb-soundfont",
                "musescore-general-soundfont-small")
#: optional: recorded drum kits for the drum stem (Hydrogen kits, AVL SF2 kits); the synth
#: falls back to the GM soundfonts' kits without them
OPTIONAL_APT_PACKAGES = DRUMKIT_APT_PACKAGES
PIP_PACKAGES = ("pedalboard", "mido")
SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3", "/usr/share/soundfonts",
                  "/usr/local/share/soundfonts", "~/.local/share/soundfonts")
_ESPEAK_DATA_DIRS = ("/usr/lib/x86_64-linux-gnu/espeak-ng-data",
                     "/usr/lib/aarch64-linux-gnu/espeak-ng-data", "/usr/lib/espeak-ng-data",
                     "/usr/share/espeak-ng-data", "/usr/local/share/espeak-ng-data",
                     "/usr/local/lib/espeak-ng-data", "/opt/homebrew/share/espeak-ng-data")
#: espeak-ng's voices come out about this many Hz below the variant's `pitch` setting
ESPEAK_PITCH_OFFSET = 9.0


class ToolError(StemwrightError):
    """A system library, data file or Python package the generator needs is missing."""


@dataclass(frozen=True)
class Soundfont:
    name: str  # file name
    path: Path
    size_mb: float


@dataclass
class Tools:
    """What `check_tools` found."""

    fluidsynth: str  # library file
    espeak: str
    espeak_data: Path
    soundfonts: list[Soundfont]
    versions: dict[str, str] = field(default_factory=dict)
    drumkits: list[DrumkitInfo] = field(default_factory=list)  # Hydrogen kits (optional)


# --------------------------------------------------------------------------------------
# Finding the tools
# --------------------------------------------------------------------------------------

def _find_library(name: str, candidates: Sequence[str]) -> str | None:
    for cand in (ctypes.util.find_library(name), *candidates):
        if not cand:
            continue
        try:
            ctypes.CDLL(cand)
        except OSError:
            continue
        return cand
    return None


def find_soundfonts(extra: Sequence[str | os.PathLike[str]] = ()) -> list[Soundfont]:
    """General MIDI soundfonts (.sf2/.sf3) in the usual folders, `$STEMWRIGHT_SOUNDFONTS`
    (files or folders, ':'-separated) and `extra`; each file once, sorted by name."""
    places = [Path(p).expanduser() for p in (*extra, *filter(None, os.environ.get(
        "STEMWRIGHT_SOUNDFONTS", "").split(os.pathsep)), *SOUNDFONT_DIRS)]
    seen: dict[Path, Soundfont] = {}
    for place in places:
        files = [place] if place.is_file() else sorted(place.glob("*.sf[23]")) \
            if place.is_dir() else []
        for f in files:
            try:
                real = f.resolve(strict=True)
                size = real.stat().st_size
            except OSError:
                continue
            if real not in seen and size > 1_000_000 and real.suffix.lower() in (".sf2",
                                                                                 ".sf3"):
                seen[real] = Soundfont(real.name, real, round(size / 1e6, 1))
    return sorted(seen.values(), key=lambda s: s.name.lower())


def find_espeak_data() -> Path | None:
    """espeak-ng's data folder (with phontab and en_dict), or None."""
    env = os.environ.get("ESPEAK_DATA_PATH")
    cands = ([Path(env) / "espeak-ng-data", Path(env)] if env else []) + [
        Path(p) for p in _ESPEAK_DATA_DIRS]
    cands += sorted(Path("/usr/lib").glob("*/espeak-ng-data"))
    for c in cands:
        if (c / "phontab").is_file() and (c / "en_dict").is_file():
            return c
    return None


def check_tools() -> Tools:
    """Find FluidSynth, espeak-ng (library and data), soundfonts, pedalboard and mido;
    ToolError listing everything missing and how to install it."""
    missing, fixes = [], []
    fluid = _find_library("fluidsynth", ("libfluidsynth.so.3", "libfluidsynth.so.2",
                                         "libfluidsynth.3.dylib", "libfluidsynth.dylib"))
    if fluid is None:
        missing.append("the FluidSynth library (libfluidsynth)")
    espeak = _find_library("espeak-ng", ("libespeak-ng.so.1", "libespeak-ng.so",
                                         "libespeak-ng.1.dylib", "libespeak-ng.dylib"))
    if espeak is None:
        missing.append("the espeak-ng library (libespeak-ng)")
    data = find_espeak_data()
    if data is None:
        missing.append("espeak-ng's voice data (espeak-ng-data with phontab and en_dict; "
                       "set ESPEAK_DATA_PATH if it is elsewhere)")
    fonts = find_soundfonts()
    if not fonts:
        missing.append("a General MIDI soundfont (.sf2/.sf3 in /usr/share/sounds/sf2, "
                       "/usr/share/sounds/sf3 or $STEMWRIGHT_SOUNDFONTS)")
    if missing:
        fixes.append("sudo apt-get install " + " ".join(APT_PACKAGES)
                     + " (packaging/install.sh installs them; optional, for recorded drum "
                     "kits: " + " ".join(OPTIONAL_APT_PACKAGES) + ")")
    py_missing = []
    for mod in PIP_PACKAGES:
        try:
            __import__(mod)
        except ImportError:
            py_missing.append(mod)
    if py_missing:
        missing.append("the Python package" + "s" * (len(py_missing) > 1) + " "
                       + ", ".join(py_missing))
        fixes.append("pip install " + " ".join(py_missing))
    if missing:
        raise ToolError("stemwright synth needs " + "; ".join(missing) + ". Install with: "
                        + " and ".join(fixes))
    versions = {}
    try:
        lib = ctypes.CDLL(fluid)
        lib.fluid_version_str.restype = ctypes.c_char_p
        versions["fluidsynth"] = lib.fluid_version_str().decode()
    except (OSError, AttributeError):
        pass
    try:
        lib = ctypes.CDLL(espeak)
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        versions["espeak-ng"] = lib.espeak_Info(None).decode()
    except (OSError, AttributeError):
        pass
    for mod in PIP_PACKAGES:
        try:
            versions[mod] = version(mod)
        except PackageNotFoundError:
            pass
    return Tools(fluid, espeak, data, fonts, versions, find_drumkits())


# --------------------------------------------------------------------------------------
# FluidSynth
# --------------------------------------------------------------------------------------

_VP, _INT, _CHARP = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
_FLUID_SIGS = {
    "new_fluid_settings": ([], _VP), "new_fluid_synth": ([_VP], _VP),
    "fluid_settings_setnum": ([_VP, _CHARP, ctypes.c_double], _INT),
    "fluid_settings_setint": ([_VP, _CHARP, _INT], _INT),
    "fluid_synth_sfload": ([_VP, _CHARP, _INT], _INT),
    "fluid_synth_get_sfont_by_id": ([_VP, _INT], _VP),
    "fluid_sfont_iteration_start": ([_VP], None), "fluid_sfont_iteration_next": ([_VP], _VP),
    "fluid_preset_get_banknum": ([_VP], _INT), "fluid_preset_get_num": ([_VP], _INT),
    "fluid_synth_program_select": ([_VP, _INT, _INT, _INT, _INT], _INT),
    "fluid_synth_noteon": ([_VP, _INT, _INT, _INT], _INT),
    "fluid_synth_noteoff": ([_VP, _INT, _INT], _INT),
    "fluid_synth_pitch_bend": ([_VP, _INT, _INT], _INT),
    "fluid_synth_cc": ([_VP, _INT, _INT, _INT], _INT),
    "fluid_synth_pitch_wheel_sens": ([_VP, _INT, _INT], _INT),
    "fluid_synth_system_reset": ([_VP], _INT),
    "fluid_synth_write_float": ([_VP, _INT, _VP, _INT, _INT, _VP, _INT, _INT], _INT),
    "fluid_synth_pin_preset": ([_VP, _INT, _INT, _INT], _INT),
    "fluid_set_log_function": ([_INT, _VP, _VP], _VP),
    "fluid_synth_add_sfont": ([_VP, _VP], _INT),
    "fluid_synth_remove_sfont": ([_VP, _VP], _INT),
    "delete_fluid_synth": ([_VP], None),
    "delete_fluid_settings": ([_VP], None),
}


class FluidRenderer:
    """Every soundfont loaded once (samples on first use, then kept); `render` plays one
    part on a fresh synthesizer that shares the loaded soundfonts, so a part sounds the
    same whatever was rendered before it (a reused synthesizer does not: voice and block
    state carry over). General MIDI fonts are in `fonts`; known drum-only fonts (the AVL
    kits, `drumkit.DRUM_SOUNDFONTS`) in `drum_fonts`, for drum parts only."""

    def __init__(self, soundfonts: Sequence[Soundfont], library: str,
                 samplerate: int = SAMPLERATE) -> None:
        lib = ctypes.CDLL(library)
        for name, (args, res) in _FLUID_SIGS.items():
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes, fn.restype = args, res
        for level in range(5):  # silence FluidSynth's console messages
            lib.fluid_set_log_function(level, None, None)
        self.lib, self.samplerate = lib, samplerate
        self.settings = lib.new_fluid_settings()
        for key, value in (("synth.reverb.active", 0), ("synth.chorus.active", 0),
                           ("synth.polyphony", 512), ("synth.dynamic-sample-loading", 1),
                           ("synth.cpu-cores", 1), ("synth.midi-channels", 16)):
            lib.fluid_settings_setint(self.settings, key.encode(), value)
        lib.fluid_settings_setnum(self.settings, b"synth.sample-rate", float(samplerate))
        lib.fluid_settings_setnum(self.settings, b"synth.gain", 0.5)
        self.synth = lib.new_fluid_synth(self.settings)  # holds the soundfonts
        if not self.synth:
            raise ToolError("FluidSynth could not start a synthesizer")
        self.fonts: dict[str, int] = {}
        self.drum_fonts: dict[str, int] = {}
        self.presets: dict[str, set[tuple[int, int]]] = {}
        self.preset = (0, 0)  # (bank, program) of the last part rendered
        self._sfont: dict[str, int] = {}  # name -> fluid_sfont_t pointer
        self._pinned: set[tuple[int, int, int]] = set()
        for sf in soundfonts:
            sfid = lib.fluid_synth_sfload(self.synth, str(sf.path).encode(), 0)
            if sfid < 0:
                continue
            font = lib.fluid_synth_get_sfont_by_id(self.synth, sfid)
            presets = set()
            lib.fluid_sfont_iteration_start(font)
            while True:
                preset = lib.fluid_sfont_iteration_next(font)
                if not preset:
                    break
                presets.add((lib.fluid_preset_get_banknum(preset),
                             lib.fluid_preset_get_num(preset)))
            if len([p for p in presets if p[0] == 0]) >= 100:  # General MIDI
                self.fonts[sf.name] = sfid
                self.presets[sf.name] = presets
                self._sfont[sf.name] = font
                # a synthesizer given a soundfont selects these on its channels: keep
                # them loaded, or every new synthesizer would load (decode) them again
                for bank in (0, 128):
                    if (bank, 0) in presets:
                        lib.fluid_synth_pin_preset(self.synth, sfid, bank, 0)
                        self._pinned.add((sfid, bank, 0))
            elif sf.name in DRUM_SOUNDFONTS and presets:
                self.drum_fonts[sf.name] = sfid
                self.presets[sf.name] = presets
                self._sfont[sf.name] = font
        if not self.fonts:
            raise ToolError("none of the soundfonts could be loaded as a General MIDI "
                            "soundfont: " + ", ".join(s.name for s in soundfonts))

    def close(self) -> None:
        """Free the synthesizer that holds the soundfonts (and them)."""
        if self.synth:
            self.lib.delete_fluid_synth(self.synth)
            self.synth = None

    def has(self, font: str, bank: int, program: int) -> bool:
        return (bank, program) in self.presets.get(font, ())

    def render(self, part: Part, song: Song, font: str, length: int,
               expression: bool = True) -> np.ndarray:
        """The part played on `font` for `length` samples: float32 [2, length]. With
        `expression` the part's controls are played too, on the font's expressive preset
        (bank 17, breath on CC2) when the part has breath and the font has one; `preset`
        then holds the (bank, program) played."""
        lib, sr = self.lib, self.samplerate
        bank, program = part.bank, part.program
        controls = expression and bool(part.controls)
        if font in self.drum_fonts:  # a drum-only font: its kit (bank 0 program 0 for AVL)
            if not part.is_drum:
                raise ToolError(f"{font} is a drum kit; it cannot play {part.name}")
            if not self.has(font, bank, program):
                bank, program = min(self.presets[font])
        elif not self.has(font, bank, program):
            program = 0 if part.is_drum else program  # the standard kit
        elif controls and any(c.cc == BREATH for c in part.controls) and self.has(
                font, EXPRESSIVE_BANK, program):
            bank = EXPRESSIVE_BANK
        self.preset = (bank, program)
        channel = 9 if part.is_drum else 0
        key = (self.fonts[font] if font in self.fonts else self.drum_fonts[font], bank,
               program)
        if key not in self._pinned:  # load the preset's samples once and keep them
            lib.fluid_synth_pin_preset(self.synth, *key)
            self._pinned.add(key)
        synth = lib.new_fluid_synth(self.settings)
        if not synth:
            raise ToolError("FluidSynth could not start a synthesizer")
        sfont = self._sfont[font]
        try:
            sfid = lib.fluid_synth_add_sfont(synth, sfont)
            if sfid < 0 or lib.fluid_synth_program_select(synth, channel, sfid, bank,
                                                          program) != 0:
                raise ToolError(f"{font} has no preset {bank}:{program} for {part.name}")
            if controls:
                lib.fluid_synth_pitch_wheel_sens(synth, channel, part.bend_range)
            return self._play(synth, channel, _events(part, song, sr, controls), length)
        finally:
            lib.fluid_synth_remove_sfont(synth, sfont)
            lib.delete_fluid_synth(synth)

    def _play(self, synth: int, channel: int, events: list[tuple[int, int, int, int]],
              length: int) -> np.ndarray:
        lib = self.lib
        out = np.zeros((2, length), dtype=np.float32)
        base_l, base_r = out[0].ctypes.data, out[1].ctypes.data
        noteon, noteoff, bend, cc = lib.fluid_synth_noteon, lib.fluid_synth_noteoff, \
            lib.fluid_synth_pitch_bend, lib.fluid_synth_cc
        write = lib.fluid_synth_write_float
        pos = 0
        for when, kind, a, b in (*events, (length, -1, 0, 0)):
            when = min(max(when, pos), length)
            while pos < when:
                n = min(when - pos, 1 << 16)
                write(synth, n, base_l + 4 * pos, 0, 1, base_r + 4 * pos, 0, 1)
                pos += n
            if pos >= length:
                break
            if kind == 1:
                noteon(synth, channel, a, b)
            elif kind == 0:
                noteoff(synth, channel, a)
            elif kind == 3:
                cc(synth, channel, a, b)
            else:
                bend(synth, channel, a)
        return out


def _events(part: Part, song: Song, sr: int, controls: bool = True
            ) -> list[tuple[int, int, int, int]]:
    """(sample, kind, a, b) sorted: kind 0 note off, 1 note on (key, velocity), 2 pitch
    bend (value), 3 control change (cc, value); controls sort first and offs before ons
    at the same sample, so a note starts with its breath and repeated notes retrigger.
    With `controls` the part's controls play (they include the notes' bends, if any);
    otherwise (or when it has none) each note's `bend` is played as written."""
    scale = 60.0 / song.bpm * sr
    ev: list[tuple[int, int, int, int]] = []
    wheel = controls and any(c.cc == PITCH_WHEEL for c in part.controls)
    for note in part.notes:
        on = int(round(note.start * scale))
        off = max(on + 1, int(round((note.start + note.length) * scale)))
        ev.append((on, 1, note.pitch, note.velocity))
        ev.append((off, 0, note.pitch, 0))
        if note.bend and not wheel:
            span = off - on
            for k in range(1, 9):  # bend up over the second quarter of the note
                value = 8192 + int(min(note.bend, 2.0) / 2.0 * 8191 * k / 8)
                ev.append((on + span // 4 + span * k // 32, 2, value, 0))
            ev.append((off, 2, 8192, 0))
    if controls:
        for c in part.controls:
            at = int(round(c.time * scale))
            ev.append((at, 2, 8192 + c.value, 0) if c.cc == PITCH_WHEEL else
                      (at, 3, c.cc, c.value))
    ev.sort(key=lambda e: (e[0], 0 if e[1] >= 2 else e[1] + 1, e[2]))
    return ev


# --------------------------------------------------------------------------------------
# espeak-ng: the singer
# --------------------------------------------------------------------------------------

#: Base voice variants (espeak-ng's voices/!v) the singer's own variants copy, per voice.
SINGER_VOICES = {"male": ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "Mike", "klatt", "klatt2",
                          "max", "john"),
                 "female": ("f1", "f2", "f3", "f4", "f5", "linda", "belinda", "Annie",
                            "Andrea", "klatt3", "anika")}

#: our variants per espeak-ng call: its voice list holds at most 349 entries, and the
#: system's languages take ~130 of them (its own ~100 variants are left out of the list)
VARIANTS_PER_CALL = 48


class Singer:
    """espeak-ng voices pitched per note; one per process, with its own variant folder."""

    def __init__(self, library: str, data: Path) -> None:
        self.library = library
        self.system = data
        self.root = Path(tempfile.mkdtemp(prefix="stemwright-espeak-"))
        self._lock = threading.Lock()
        self._calls = 0
        self._texts: dict[str, str] = {}  # our variants: name -> variant file text
        self.base_variants: dict[str, str] = {}
        for entry in sorted((data / "voices" / "!v").iterdir()):
            if entry.is_file():
                self.base_variants[entry.name] = entry.read_text(encoding="utf-8",
                                                                 errors="replace")

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _data_folder(self, variants: Sequence[str]) -> Path:
        """A fresh espeak-ng data folder (links to the system's) whose variant folder
        holds only `variants`: espeak-ng lists at most 349 voices, and the system's
        languages and variants already come close to that, so each call sees just the
        variants it uses."""
        with self._lock:
            self._calls += 1
            root = self.root / f"call{self._calls}"
        data = root / "espeak-ng-data"
        data.mkdir(parents=True)
        for entry in self.system.iterdir():
            if entry.name != "voices":
                (data / entry.name).symlink_to(entry)
        voices = data / "voices"
        voices.mkdir()
        for entry in (self.system / "voices").iterdir():
            if entry.name != "!v":
                (voices / entry.name).symlink_to(entry)
        (voices / "!v").mkdir()
        for name in variants:
            (voices / "!v" / name).write_text(self._texts[name], encoding="utf-8")
        return root

    def available(self, voice: str) -> list[str]:
        """The base variants for "male" / "female" this espeak-ng has."""
        return [v for v in SINGER_VOICES[voice] if v in self.base_variants]

    def variant(self, base: str, hz: float) -> tuple[str, float]:
        """A monotone variant of `base` sounding at about `hz`: (its name, the pitch it
        actually has)."""
        setting = max(20, int(round(hz + ESPEAK_PITCH_OFFSET)))
        name = f"sw-{base}-{setting}"
        with self._lock:
            if name not in self._texts:
                lines = [ln for ln in self.base_variants[base].splitlines()
                         if ln.split()[:1] not in (["pitch"], ["flutter"], ["name"],
                                                   ["intonation"], ["echo"])]
                lines += [f"name {name}", f"pitch {setting} {setting}", "flutter 0",
                          "echo 0 0"]
                self._texts[name] = "\n".join(lines) + "\n"
        return name, setting - ESPEAK_PITCH_OFFSET

    def speak(self, requests: Sequence[tuple[str, str, int]]) -> list[np.ndarray]:
        """Synthesize [(voice, text, rate)] in fresh espeak-ng child processes (a few
        dozen variants each); float32 mono arrays at 22.05 kHz, in order."""
        out: list[np.ndarray] = []
        batch: list[tuple[str, str, int]] = []
        names: set[str] = set()
        for request in requests:
            name = request[0].partition("+")[2]
            if len(names | {name}) > VARIANTS_PER_CALL:
                out += self._speak_batch(batch, sorted(names))
                batch, names = [], set()
            batch.append(request)
            names.add(name)
        return out + self._speak_batch(batch, sorted(names))

    def _speak_batch(self, requests: Sequence[tuple[str, str, int]],
                     variants: Sequence[str]) -> list[np.ndarray]:
        if not requests:
            return []
        root = self._data_folder(variants)
        try:
            proc = subprocess.run([sys.executable, "-c", _CHILD, self.library, str(root)],
                                  input=json.dumps([list(r) for r in requests]).encode(),
                                  capture_output=True, timeout=600)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        if proc.returncode != 0:
            raise ToolError("espeak-ng failed: " + proc.stderr.decode(errors="replace")
                            .strip()[-500:])
        data, pos, out = proc.stdout, 0, []
        for _ in requests:
            (n,) = struct.unpack_from("<I", data, pos)
            pos += 4
            out.append(np.frombuffer(data, dtype="<i2", count=n, offset=pos)
                       .astype(np.float32) / 32768.0)
            pos += 2 * n
        return out

    def sing(self, part: Part, song: Song, bases: Sequence[str], language: str,
             length: int, rng: np.random.Generator) -> np.ndarray:
        """The part sung: float32 mono [length] at 44.1 kHz. Harmony lines (notes that
        overlap) take turns over `bases`."""
        import soxr

        scale = 60.0 / song.bpm
        plans = []
        requests: dict[tuple[str, str, int], int] = {}
        ends: list[float] = []
        for note in part.notes:
            start, dur = note.start * scale, note.length * scale
            line = 0  # which harmony line: the first whose last note has ended
            while line < len(ends) and ends[line] > start + 1e-3:
                line += 1
            if line == len(ends):
                ends.append(0.0)
            ends[line] = start + dur
            hz = 440.0 * 2.0 ** ((note.pitch - 69) / 12.0)
            name, actual = self.variant(bases[line % len(bases)], hz)
            rate = int(np.clip(175 * 0.42 / max(dur, 0.05), 80, 390))
            key = (f"{language}+{name}", note.lyric or "ah", rate)
            requests.setdefault(key, len(requests))
            plans.append((note, start, dur, hz / actual, actual, requests[key]))
        audio = self.speak(list(requests))
        out = np.zeros(length, dtype=np.float32)
        vib = np.zeros(length, dtype=np.float32)  # vibrato depth envelope
        for note, start, dur, ratio, actual, idx in plans:
            y, onset = _trim(audio[idx])
            if y.size == 0:
                continue
            period = ESPEAK_RATE / actual
            want = int(round((dur + 0.05) * ESPEAK_RATE * ratio))
            y = _fit(y, want, period)
            y = soxr.resample(y, ESPEAK_RATE * ratio, SAMPLERATE, quality="HQ")
            fade = min(len(y) // 3, int(0.05 * SAMPLERATE))
            if fade > 0:
                y[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
            y *= (note.velocity / 100.0) ** 1.5
            lead_in = min(int(onset / ratio * SAMPLERATE / ESPEAK_RATE), int(0.09 * SAMPLERATE))
            at = int(round(start * SAMPLERATE)) - lead_in
            lo, hi = max(at, 0), min(at + len(y), length)
            if hi > lo:
                out[lo:hi] += y[lo - at:hi - at]
            if dur > 0.35:  # vibrato fades in after 200 ms on long notes
                v0 = int((start + 0.2) * SAMPLERATE)
                v1 = min(int((start + dur) * SAMPLERATE), length)
                if v1 > v0:
                    vib[v0:v1] = np.maximum(vib[v0:v1], np.linspace(
                        0.0, 1.0, v1 - v0, dtype=np.float32) ** 0.5)
        return _vibrato(out, vib, float(rng.uniform(4.8, 6.2)), float(rng.uniform(0.25, 0.5)))


# --------------------------------------------------------------------------------------
# Effects
# --------------------------------------------------------------------------------------

#: guitarix's cabinet impulse responses (Debian `guitarix-common`), 44.1 kHz mono WAVs
CABINET_DIRS = ("/usr/share/gx_head/sounds/amps", "/usr/share/guitarix/sounds/amps",
                "/usr/local/share/gx_head/sounds/amps")
_IRS: dict[str, np.ndarray] = {}


def find_cabinets() -> dict[str, Path]:
    """Cabinet impulse responses by file name: `$STEMWRIGHT_CABINET_IRS` (a folder) if
    set, else the first of `CABINET_DIRS` that holds .wav files; {} when none is."""
    env = os.environ.get("STEMWRIGHT_CABINET_IRS")
    for folder in ([env] if env else CABINET_DIRS):
        place = Path(folder)
        files = sorted(place.glob("*.wav")) if place.is_dir() else []
        if files:
            return {f.name: f for f in files}
    return {}


def cabinet_effect(rng: np.random.Generator, mix: float = 1.0) -> list[dict]:
    """[a cabinet effect with a drawn IR], or [] when no IR is installed; the draw is the
    same either way, so a song's other effects do not depend on it."""
    pick = int(rng.integers(1 << 30))
    names = sorted(find_cabinets())
    if not names:
        return []
    return [{"type": "cabinet", "ir": names[pick % len(names)],
             **({"mix": round(mix, 2)} if mix < 1.0 else {})}]


def _cabinet_ir(name: str) -> np.ndarray | None:
    """The named cabinet IR, mono float32 at 44.1 kHz scaled to unit energy (a cabinet
    shapes the tone; the level is set after the effects); None when it is not there."""
    if name not in _IRS:
        path = find_cabinets().get(name)
        if path is None:
            return None
        try:
            ir, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
        except (OSError, RuntimeError):
            return None
        ir = ir.mean(axis=1)[:SAMPLERATE]
        if sr != SAMPLERATE or not np.any(ir):
            return None
        _IRS[name] = np.ascontiguousarray(ir / np.sqrt(np.sum(ir.astype(np.float64) ** 2)),
                                          dtype=np.float32)
    return _IRS[name]


def _plugin(spec: dict):
    import pedalboard as pb

    kind = spec["type"]
    args = {k: v for k, v in spec.items() if k != "type"}
    classes = {"highpass": pb.HighpassFilter, "lowpass": pb.LowpassFilter,
               "lowshelf": pb.LowShelfFilter, "highshelf": pb.HighShelfFilter,
               "peak": pb.PeakFilter, "compressor": pb.Compressor, "distortion": pb.Distortion,
               "chorus": pb.Chorus, "delay": pb.Delay, "reverb": pb.Reverb, "gain": pb.Gain,
               "phaser": pb.Phaser, "limiter": pb.Limiter}
    if kind not in classes:
        raise ValueError(f"unknown effect {kind}")
    return classes[kind](**args)


def apply_effects(audio: np.ndarray, effects: Sequence[dict],
                  samplerate: int = SAMPLERATE) -> np.ndarray:
    """Run `audio` [C, T] float32 (C = 1 or 2) through the effect list (dicts with "type"
    and the pedalboard plugin's parameters; "exciter" adds saturated highs; "cabinet"
    convolves with the guitar-cabinet IR file "ir", skipped if absent); a mono track
    is processed in mono up to its first reverb (half the work) and comes out stereo:
    [2, T]."""
    import pedalboard as pb

    out = np.ascontiguousarray(audio, dtype=np.float32)
    chain: list = []

    def flush() -> None:
        nonlocal out, chain
        if chain:
            out = pb.Pedalboard(chain)(out, samplerate, reset=True)
            chain = []

    for spec in effects:
        if spec["type"] == "cabinet":
            ir = _cabinet_ir(spec["ir"])
            if ir is not None:  # an IR that is not installed here: no cabinet
                chain.append(pb.Convolution(ir, mix=float(spec.get("mix", 1.0)),
                                            sample_rate=SAMPLERATE))
            continue
        if spec["type"] == "exciter":
            flush()
            highs = pb.Pedalboard([pb.HighpassFilter(spec.get("from_hz", 2500.0)),
                                   pb.Distortion(spec.get("drive_db", 20.0)),
                                   pb.HighpassFilter(spec.get("above_hz", 7000.0)),
                                   pb.Gain(spec.get("level_db", -18.0))])(out, samplerate,
                                                                           reset=True)
            out = out + highs
            continue
        if spec["type"] == "reverb" and out.shape[0] == 1:
            flush()
            out = np.concatenate([out, out])
        chain.append(_plugin(spec))
    flush()
    if out.shape[0] == 1:
        out = np.concatenate([out, out])
    return np.ascontiguousarray(out[:, :audio.shape[-1]], dtype=np.float32)


def pan_stereo(audio: np.ndarray, pan: float, width: float = 1.0) -> np.ndarray:
    """Stereo width (0 mono .. 1 as is) then a constant-power balance to `pan` (-1..1);
    float32 [2, T] in and out."""
    gl, gr = pan_gains(pan)
    left, right = audio[0], audio[1]
    out = np.empty_like(audio, dtype=np.float32)
    mid = left + right
    mid *= 0.5
    side = left - right
    side *= 0.5 * float(width)
    np.add(mid, side, out=out[0])
    np.subtract(mid, side, out=out[1])
    out[0] *= gl
    out[1] *= gr
    return out


# --------------------------------------------------------------------------------------
# MIDI
# --------------------------------------------------------------------------------------

def write_midi(song: Song, path: str | os.PathLike[str], ticks: int = 480) -> Path:
    """The song as a type-1 MIDI file: a tempo track, then one named track per part on its
    own channel (drums on 10), with lyrics on the sung parts (program 54, voice)."""
    import mido

    mid = mido.MidiFile(type=1, ticks_per_beat=ticks)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("track_name", name=f"stemwright {song.seed}", time=0))
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(song.bpm), time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    mid.tracks.append(meta)
    channels = [c for c in range(16) if c != 9]
    melodic = 0
    for part in song.parts:
        if part.is_drum:
            channel = 9
        else:
            channel = channels[melodic % len(channels)]
            melodic += 1
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=part.name, time=0))
        program = 54 if part.sung else part.program
        track.append(mido.Message("program_change", channel=channel, program=program, time=0))
        events = []
        for note in part.notes:
            on = int(round(note.start * ticks))
            off = max(on + 1, int(round((note.start + note.length) * ticks)))
            if note.lyric:
                events.append((on, 0, "lyrics", note.lyric, 0))
            events.append((on, 2, "note_on", note.pitch, note.velocity))
            events.append((off, 1, "note_off", note.pitch, 0))
        for c in part.controls:
            at = int(round(c.time * ticks))
            events.append((at, 1, "pitchwheel", c.value, 0) if c.cc == PITCH_WHEEL else
                          (at, 1, "control_change", c.cc, c.value))
        events.sort(key=lambda e: (e[0], e[1], e[3]))
        now = 0
        for when, _, kind, a, b in events:
            if kind == "lyrics":
                track.append(mido.MetaMessage("lyrics", text=a, time=when - now))
            elif kind == "pitchwheel":
                track.append(mido.Message(kind, channel=channel, pitch=a, time=when - now))
            elif kind == "control_change":
                track.append(mido.Message(kind, channel=channel, control=a, value=b,
                                          time=when - now))
            else:
                track.append(mido.Message(kind, channel=channel, note=a, velocity=b,
                                          time=when - now))
            now = when
        mid.tracks.append(track)
    path = Path(path)
    mid.save(str(path))
    return path


__all__ = ["ToolError", "Tools", "Soundfont", "check_tools", "find_soundfonts",
           "find_cabinets", "cabinet_effect", "CABINET_DIRS",
           "find_espeak_data", "FluidRenderer", "Singer", "apply_effects", "pan_stereo",
           "write_midi", "SAMPLERATE", "APT_PACKAGES", "OPTIONAL_APT_PACKAGES",
           "SINGER_VOICES"]
