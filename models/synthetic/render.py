"""Rendering composed parts to audio for `stemwright synth`: FluidSynth, espeak-ng, effects.

* `check_tools()` finds what the generator needs outside Python - the FluidSynth library,
  espeak-ng with its data, General MIDI soundfonts - plus the pedalboard and mido packages,
  and raises `ToolError` with the Debian packages to install when something is missing.
* `FluidRenderer` plays one part at a time through libfluidsynth (ctypes, in process, every
  soundfont loaded once per process with samples loaded on first use), built-in reverb and
  chorus off, float output at 44.1 kHz stereo; it is reset between parts, so a part renders
  the same whatever was rendered before.
* `Singer` sings a part with espeak-ng: every note's word is spoken by a monotone voice
  variant pitched at the note (espeak-ng's `pitch base range` with range = base), the vowel
  is looped period by period (or shortened) to the note's length, the small pitch offset
  left is corrected while resampling 22.05 -> 44.1 kHz, and a delayed vibrato is added.
  espeak-ng carries state from one utterance to the next, so each song's words are
  synthesised by a fresh child process, in a fixed order: the same song sings the same.
* `apply_effects` runs a JSON-able effect list through Spotify's pedalboard (EQ,
  compression, distortion, chorus, delay, reverb) plus an exciter that gives the 11 kHz
  speech synthesiser some air above it.
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
from pathlib import Path

import numpy as np

# Load python-soundfile's libsndfile before libfluidsynth, always: FluidSynth decodes the
# Ogg Vorbis samples of .sf3 soundfonts with libsndfile, and whichever libsndfile a process
# loaded first is the one it gets (soundfile's bundled build or the system's decode a
# hair differently). Loading ours first makes every process decode alike, so a seed gives
# the same songs whether or not the caller had imported soundfile.
import soundfile  # noqa: F401, I001

from ..errors import StemwrightError
from .drumkit import DRUM_SOUNDFONTS, DRUMKIT_APT_PACKAGES, DrumkitInfo, find_drumkits
from .song import Part, Song

SAMPLERATE = 44100
ESPEAK_RATE = 22050
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
    from importlib.metadata import PackageNotFoundError, version
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

    def render(self, part: Part, song: Song, font: str, length: int) -> np.ndarray:
        """The part played on `font` for `length` samples: float32 [2, length]."""
        lib, sr = self.lib, self.samplerate
        bank, program = part.bank, part.program
        if font in self.drum_fonts:  # a drum-only font: its kit (bank 0 program 0 for AVL)
            if not part.is_drum:
                raise ToolError(f"{font} is a drum kit; it cannot play {part.name}")
            if not self.has(font, bank, program):
                bank, program = min(self.presets[font])
        elif not self.has(font, bank, program):
            program = 0 if part.is_drum else program  # the standard kit
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
            return self._play(synth, channel, _events(part, song, sr), length)
        finally:
            lib.fluid_synth_remove_sfont(synth, sfont)
            lib.delete_fluid_synth(synth)

    def _play(self, synth: int, channel: int, events: list[tuple[int, int, int, int]],
              length: int) -> np.ndarray:
        lib = self.lib
        out = np.zeros((2, length), dtype=np.float32)
        base_l, base_r = out[0].ctypes.data, out[1].ctypes.data
        noteon, noteoff, bend = lib.fluid_synth_noteon, lib.fluid_synth_noteoff, \
            lib.fluid_synth_pitch_bend
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
            else:
                bend(synth, channel, a)
        return out


def _events(part: Part, song: Song, sr: int) -> list[tuple[int, int, int, int]]:
    """(sample, kind, a, b) sorted: kind 0 note off, 1 note on (key, velocity), 2 pitch
    bend (value); offs sort before ons at the same sample so repeated notes retrigger."""
    scale = 60.0 / song.bpm * sr
    ev: list[tuple[int, int, int, int]] = []
    for note in part.notes:
        on = int(round(note.start * scale))
        off = max(on + 1, int(round((note.start + note.length) * scale)))
        ev.append((on, 1, note.pitch, note.velocity))
        ev.append((off, 0, note.pitch, 0))
        if note.bend:
            span = off - on
            for k in range(1, 9):  # bend up over the second quarter of the note
                value = 8192 + int(min(note.bend, 2.0) / 2.0 * 8191 * k / 8)
                ev.append((on + span // 4 + span * k // 32, 2, value, 0))
            ev.append((off, 2, 8192, 0))
    ev.sort(key=lambda e: (e[0], 0 if e[1] == 2 else e[1], e[2]))
    return ev


# --------------------------------------------------------------------------------------
# espeak-ng: the singer
# --------------------------------------------------------------------------------------

#: Base voice variants (espeak-ng's voices/!v) the singer's own variants copy, per voice.
SINGER_VOICES = {"male": ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "Mike", "klatt", "klatt2",
                          "max", "john"),
                 "female": ("f1", "f2", "f3", "f4", "f5", "linda", "belinda", "Annie",
                            "Andrea", "klatt3", "anika")}

# The child process: ctypes to libespeak-ng, one JSON list of [voice, text, rate] on stdin,
# for each a little-endian uint32 sample count and that many int16 samples on stdout.
_CHILD = r"""
import ctypes, json, struct, sys
lib = ctypes.CDLL(sys.argv[1])
CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                      ctypes.c_void_p)
buf = bytearray()
def cb(wav, n, events):
    if n > 0 and wav:
        buf.extend(ctypes.string_at(wav, 2 * n))
    return 0
keep = CB(cb)
if lib.espeak_Initialize(2, 0, sys.argv[2].encode(), 0x8000) <= 0:
    sys.exit("espeak-ng did not start")
lib.espeak_SetSynthCallback(keep)
out = sys.stdout.buffer
for voice, text, rate in json.loads(sys.stdin.buffer.read()):
    buf.clear()
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        sys.exit("espeak-ng has no voice " + voice)
    lib.espeak_SetParameter(1, int(rate), 0)
    data = text.encode() + b"\0"
    lib.espeak_Synth(data, len(data), 0, 1, 0, 0, None, None)
    lib.espeak_Synchronize()
    out.write(struct.pack("<I", len(buf) // 2))
    out.write(bytes(buf))
out.flush()
"""


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


def _trim(y: np.ndarray, threshold: float = 0.01) -> tuple[np.ndarray, int]:
    """Leading and trailing silence cut; also the onset of the voiced nucleus (samples
    from the new start), so the vowel can land on the beat."""
    if y.size == 0:
        return y, 0
    peak = float(np.max(np.abs(y)))
    if peak <= 0:
        return y[:0], 0
    loud = np.flatnonzero(np.abs(y) > threshold * peak)
    y = y[loud[0]:loud[-1] + 1].copy()
    hop = 110
    frames = len(y) // hop
    if frames < 2:
        return y, 0
    rms = np.sqrt(np.mean(y[:frames * hop].reshape(frames, hop) ** 2, axis=1))
    onset = int(np.argmax(rms >= 0.5 * rms.max())) * hop
    return y, onset


def _fit(y: np.ndarray, want: int, period: float) -> np.ndarray:
    """Stretch or shorten a spoken word to `want` samples by repeating or cutting whole
    pitch periods in its loudest stretch (the vowel), crossfaded at every splice."""
    n = len(y)
    hop = 110
    frames = n // hop
    if frames >= 3 and want != n:
        rms = np.sqrt(np.mean(y[:frames * hop].reshape(frames, hop) ** 2, axis=1))
        loud = np.flatnonzero(rms >= 0.5 * rms.max())
        n0, n1 = int(loud[0]) * hop, int(loud[-1] + 1) * hop
        k = max(2, int(round(0.03 * ESPEAK_RATE / period)))
        seg = max(2, int(round(k * period)))  # whole periods, about 30 ms
        center = _steadiest(y, n0, n1, seg, period)
        if want > n and center - seg >= 0:
            copies = int(round((want - n) / seg))
            if copies > 0:
                y = _splice(y, [(0, center)] + [(center - seg, center)] * copies
                            + [(center, n)])
        elif want < n:
            cut = min(int(round((n - want) / seg)), max(0, (center - n0) // seg))
            if cut > 0:
                y = _splice(y, [(0, center - cut * seg), (center, n)])
    if len(y) >= want:
        return y[:want].copy()
    return np.concatenate([y, np.zeros(want - len(y), dtype=np.float32)])


def _steadiest(y: np.ndarray, n0: int, n1: int, seg: int, period: float) -> int:
    """The point in [n0, n1] where the `seg` samples before it best match the `seg` after
    it (the most stationary stretch of the vowel: a diphthong loops where it glides least);
    the middle when the vowel is too short to choose."""
    step = max(1, int(round(period)))
    cands = list(range(max(n0, seg), min(n1, len(y) - seg) + 1, step))
    if len(cands) < 2:
        return (n0 + n1) // 2
    best, best_err = cands[len(cands) // 2], np.inf
    for c in cands:
        a, b = y[c - seg:c], y[c:c + seg]
        err = float(np.sum((a - b) ** 2) / (np.sum(a * a) + np.sum(b * b) + 1e-12))
        if err < best_err - 1e-9:
            best, best_err = c, err
    return best


def _splice(y: np.ndarray, pieces: Sequence[tuple[int, int]], x: int = 64) -> np.ndarray:
    """Concatenate the ranges `pieces` of `y`; around every join the end of one piece and
    the start of the next are crossfaded over 2x samples using what surrounds each in `y`
    (joins fall on whole periods, so this only smooths the rounding)."""
    out = np.concatenate([y[a:b] for a, b in pieces]).astype(np.float32)
    n = len(y)
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, 2 * x))).astype(np.float32)
    pos = 0
    for i in range(len(pieces) - 1):
        pos += pieces[i][1] - pieces[i][0]
        end, start = pieces[i][1], pieces[i + 1][0]
        if min(end, start) >= x and max(end, start) + x <= n and x <= pos <= len(out) - x:
            out[pos - x:pos + x] = (y[end - x:end + x] * (1 - ramp)
                                    + y[start - x:start + x] * ramp)
    return out


def _vibrato(x: np.ndarray, depth_env: np.ndarray, rate_hz: float, cents: float = 0.35
             ) -> np.ndarray:
    """Pitch vibrato by a modulated delay line; `depth_env` (0-1 per sample) sets where and
    how much, `cents` is in semitones x 100 / 100 (0.35 = 35 cents) at full depth."""
    if not depth_env.any():
        return x
    n = len(x)
    # delay swing A (samples) for a peak pitch deviation of `cents`:
    # ratio - 1 = 2 pi f A / sr  ->  A = (2**(c/12) - 1) sr / (2 pi f)
    amp = (2.0 ** (cents / 12.0) - 1.0) * SAMPLERATE / (2 * np.pi * rate_hz)
    t = np.arange(n, dtype=np.float64)
    delay = amp * (1.0 + depth_env * np.sin(2 * np.pi * rate_hz * t / SAMPLERATE))
    return np.interp(t - delay, t, x, left=0.0).astype(np.float32)


# --------------------------------------------------------------------------------------
# Effects
# --------------------------------------------------------------------------------------

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
    and the pedalboard plugin's parameters; "exciter" adds saturated highs); a mono track
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
    angle = (float(pan) + 1.0) * np.pi / 4
    gl, gr = float(np.cos(angle) * np.sqrt(2.0)), float(np.sin(angle) * np.sqrt(2.0))
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
        events.sort(key=lambda e: (e[0], e[1], e[3]))
        now = 0
        for when, _, kind, a, b in events:
            if kind == "lyrics":
                track.append(mido.MetaMessage("lyrics", text=a, time=when - now))
            else:
                track.append(mido.Message(kind, channel=channel, note=a, velocity=b,
                                          time=when - now))
            now = when
        mid.tracks.append(track)
    path = Path(path)
    mid.save(str(path))
    return path


__all__ = ["ToolError", "Tools", "Soundfont", "check_tools", "find_soundfonts",
           "find_espeak_data", "FluidRenderer", "Singer", "apply_effects", "pan_stereo",
           "write_midi", "SAMPLERATE", "APT_PACKAGES", "OPTIONAL_APT_PACKAGES",
           "SINGER_VOICES"]
