"""Recorded drum kits for `stemwright synth`: Hydrogen drumkits played by a small sampler.

Songs rendered only with General MIDI soundfont kits taught the separation model GM
timbres; real multi-sampled kits (Debian's hydrogen-drumkits / hydrogen-data, or any
Hydrogen kit folder) give the drum stem recorded drums.

* `find_drumkits()` lists the Hydrogen kits in the usual folders and
  `$STEMWRIGHT_DRUMKITS` with name, licence, author and kind ("acoustic", "electronic",
  or "percussion" for kits without kick, snare and hi-hat, which the kit role skips).
* `HydrogenKit` parses a drumkit.xml safely (size-capped, no DTD, with or without
  Hydrogen's XML namespace, old and new layouts), maps General MIDI drum keys to the kit's
  instruments by name, and `render`s a drum `Part`: velocity layer by the note's velocity,
  round-robin among layers sharing a range, instrument gain and pan, humanised timing and
  velocity, and chokes (mute groups; the hi-hats always choke each other).
* `choose_kit_source()` draws which kind of kit plays a song's drum part.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import StemwrightError
from .song import Part, Song

SAMPLERATE = 44100
DRUMKIT_DIRS = ("/usr/share/hydrogen/data/drumkits", "~/.hydrogen/data/drumkits")
#: optional Debian packages that add recorded kits (Hydrogen kits, the AVL SF2 kits)
DRUMKIT_APT_PACKAGES = ("hydrogen-drumkits", "hydrogen-data", "avldrums.lv2-soundfont")
MAX_XML_BYTES = 2_000_000
MAX_SAMPLE_BYTES = 64_000_000
MAX_SAMPLE_SECONDS = 12.0
ELECTRONIC_KITS = ("tr808emulationkit", "hardelectro1", "electricempirekit", "varibreaks",
                   "audiophob")
#: GM-like SF2 drum-only fonts: file name -> (kit name, licence)
DRUM_SOUNDFONTS = {
    "Black_Pearl_4_LV2.sf2": ("AVL Drumkits Black Pearl", "GPL-2+ (x42 AVLdrums, Robin Gareus)"),
    "Red_Zeppelin_4_LV2.sf2": ("AVL Drumkits Red Zeppelin",
                               "GPL-2+ (x42 AVLdrums, Robin Gareus)"),
}
_HAT_GROUP = -100  # the mute group given to the hi-hats of a kit that declares none
_KIT_CACHE: OrderedDict[Path, HydrogenKit] = OrderedDict()
_KIT_CACHE_SIZE = 4


class DrumkitError(StemwrightError):
    """A Hydrogen drumkit file could not be read."""


# --------------------------------------------------------------------------------------
# Instrument names -> what they are; GM keys -> which of those they want
# --------------------------------------------------------------------------------------

def classify(name: str) -> str | None:
    """What a kit instrument is, from its name ("Sabian Hat Pedal" -> "hat_pedal"); None
    for special articulations (chokes, swishes, rolls) and anything unrecognised."""
    n = re.sub(r"\(.*?\)", " ", name.lower())  # "(Pearl Free Floating Maple 14x3.5)"
    n = re.sub(r"[_\-]+", " ", n).strip()
    n = re.sub(r"^[a-g]#?\d\s+", "", n)  # "c#3 - stick" (a key-named kit)
    if not n or n.startswith("sample:") or re.search(
            r"choke|swish|flink|roll|free|zap|fx\b", n):
        return None
    if "cowbell" in n:
        return "cowbell"
    if re.search(r"\bkick|bass ?drum|\bbd\b", n):
        return "kick"
    if re.search(r"hi ?hat|\bhh\b|hh\b|\bhat\b", n):
        if re.search(r"pedal|\bpd\b|foot", n):
            return "hat_pedal"
        if "semi" in n:
            return "hat_semi"
        if re.search(r"open|\bop\b|\bohh\b", n):
            return "hat_open"
        return "hat_closed"
    if "rimshot" in n:
        return "rimshot"
    if re.search(r"stick|rim|cross", n):
        return "sidestick"
    if "clap" in n:
        return "clap"
    if "snare" in n:
        return "snare"
    if "tom" in n:
        if re.search(r"floor|\blow?\b|\blow\b", n):
            return "tom_low"
        if re.search(r"mid|middle|\b2\b", n):
            return "tom_mid"
        if re.search(r"\bhi|high|\b1\b", n):
            return "tom_high"
        return "tom_mid"
    if re.search(r"bell|cup", n):
        return "ride_bell"
    if "china" in n:
        return "china"
    if "splash" in n:
        return "splash"
    if re.search(r"crash|cymbal", n):
        return "crash"
    if "ride" in n:
        return "ride"
    if re.search(r"tambourine|\btamb", n):
        return "tambourine"
    return None


#: GM drum key -> (kinds to try in order, which one of that kind: 0 first, 1 second...)
GM_KEYS: dict[int, tuple[tuple[str, ...], int]] = {
    35: (("kick",), 1), 36: (("kick",), 0),
    37: (("sidestick", "rimshot", "snare"), 0), 38: (("snare",), 0),
    39: (("clap", "snare"), 0), 40: (("rimshot", "snare"), 1),
    42: (("hat_closed", "hat_pedal"), 0), 44: (("hat_pedal", "hat_closed"), 0),
    46: (("hat_open", "hat_semi", "hat_closed"), 0),
    41: (("tom_low", "tom_mid"), 1), 43: (("tom_low", "tom_mid"), 0),
    45: (("tom_mid", "tom_low"), 1), 47: (("tom_mid", "tom_low"), 0),
    48: (("tom_high", "tom_mid"), 1), 50: (("tom_high", "tom_mid"), 0),
    49: (("crash", "china", "splash", "ride"), 0), 57: (("crash", "china", "splash"), 1),
    52: (("china", "crash"), 0), 55: (("splash", "crash"), 0),
    51: (("ride", "crash"), 0), 59: (("ride", "crash"), 1),
    53: (("ride_bell", "ride"), 0),
    54: (("tambourine",), 0), 56: (("cowbell",), 0),
}
_HATS = ("hat_closed", "hat_pedal", "hat_open", "hat_semi")


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------

@dataclass
class Layer:
    """One sample of an instrument, played for velocities min..max (0-1)."""

    filename: str
    lo: float
    hi: float
    gain: float
    audio: np.ndarray | None = None  # float32 [2, n] at 44.1 kHz once loaded


@dataclass
class Instrument:
    name: str
    kind: str | None
    gain: float  # volume x gain
    left: float  # pan gains
    right: float
    mute_group: int
    components: list[list[Layer]] = field(default_factory=list)


@dataclass(frozen=True)
class DrumkitInfo:
    """A Hydrogen kit found on this machine."""

    name: str
    path: Path  # its drumkit.xml
    licence: str
    author: str
    kind: str  # "acoustic", "electronic" or "percussion" (no kick/snare/hat: not a kit)
    instruments: int


def _strip_namespaces(root: ET.Element) -> None:
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]


def _text(el: ET.Element, tag: str, default: str = "") -> str:
    child = el.find(tag)
    return (child.text or "").strip() if child is not None and child.text else default


def _num(el: ET.Element, tag: str, default: float) -> float:
    try:
        value = float(_text(el, tag, str(default)))
    except ValueError:
        return default
    return value if np.isfinite(value) else default


def _read_xml(path: Path) -> ET.Element:
    """The parsed drumkit.xml, namespaces removed; DrumkitError when too big, carrying a
    DTD (entity expansion) or not a Hydrogen kit."""
    try:
        size = path.stat().st_size
        if size > MAX_XML_BYTES:
            raise DrumkitError(f"{path}: {size / 1e6:.1f} MB is too big for a drumkit.xml "
                               f"(at most {MAX_XML_BYTES / 1e6:.0f} MB); remove that kit")
        data = path.read_bytes()
    except OSError as exc:
        raise DrumkitError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise DrumkitError(f"{path}: has a DTD, which a drumkit.xml never needs; "
                           "remove that kit")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DrumkitError(f"{path}: not valid XML ({exc}); remove or repair that kit"
                           ) from None
    _strip_namespaces(root)
    if root.tag != "drumkit_info" or root.find("instrumentList") is None:
        raise DrumkitError(f"{path}: not a Hydrogen drumkit (no drumkit_info with an "
                           "instrumentList); remove that kit")
    return root


def _layers(el: ET.Element) -> list[Layer]:
    out = []
    for layer in el.findall("layer"):
        name = _text(layer, "filename")
        if name:
            lo, hi = _num(layer, "min", 0.0), _num(layer, "max", 1.0)
            out.append(Layer(name, min(lo, hi), max(lo, hi), max(0.0, _num(layer, "gain", 1.0))))
    return out


def _instrument(el: ET.Element) -> Instrument:
    name = _text(el, "name")
    gain = max(0.0, _num(el, "volume", 1.0)) * max(0.0, _num(el, "gain", 1.0))
    if el.find("pan") is not None:  # Hydrogen 1.2+: -1..1
        pan = float(np.clip(_num(el, "pan", 0.0), -1.0, 1.0))
        left, right = min(1.0, 1.0 - pan), min(1.0, 1.0 + pan)
    else:
        left = float(np.clip(_num(el, "pan_L", 1.0), 0.0, 1.0))
        right = float(np.clip(_num(el, "pan_R", 1.0), 0.0, 1.0))
    inst = Instrument(name, classify(name), gain, left, right,
                      int(_num(el, "muteGroup", -1)))
    comps = el.findall("instrumentComponent")
    for comp in comps:  # Hydrogen 0.9.7+: layers per component
        layers = _layers(comp)
        cgain = max(0.0, _num(comp, "gain", 1.0))
        for layer in layers:
            layer.gain *= cgain
        if layers:
            inst.components.append(layers)
    if not comps:
        layers = _layers(el)
        if not layers and _text(el, "filename"):  # the oldest layout: one sample
            layers = [Layer(_text(el, "filename"), 0.0, 1.0, 1.0)]
        if layers:
            inst.components.append(layers)
    return inst


def _playable(root: ET.Element, folder: Path) -> list[Instrument]:
    """The kit's instruments with at least one sample file present (kits ship placeholder
    layers such as "emptySample.flac" that are not there)."""
    out = []
    for inst in (_instrument(el) for el in root.find("instrumentList").findall("instrument")):
        inst.components = [c for c in ([la for la in comp if (folder / la.filename).is_file()]
                                       for comp in inst.components) if c]
        if inst.components:
            out.append(inst)
    return out


def _licence(root: ET.Element, folder: Path) -> str:
    text = _text(root, "license")
    if text:
        return text
    for name in ("LICENSE", "LICENSE.txt", "COPYING", "README"):
        if (folder / name).is_file():
            return f"not stated in drumkit.xml (see {folder / name})"
    return "not stated in drumkit.xml (see the package's copyright file)"


def _kit_kind(name: str, kinds: set[str | None]) -> str:
    if not ({"kick", "snare"} <= kinds and kinds & {"hat_closed", "hat_pedal"}):
        return "percussion"
    return "electronic" if name.lower().replace(" ", "") in ELECTRONIC_KITS else "acoustic"


def kit_info(path: str | os.PathLike[str]) -> DrumkitInfo:
    """Name, licence, author and kind of the kit whose drumkit.xml is `path`."""
    path = Path(path)
    root = _read_xml(path)
    insts = _playable(root, path.parent)
    name = _text(root, "name") or path.parent.name
    kind = _kit_kind(path.parent.name, {i.kind for i in insts})
    return DrumkitInfo(name, path, _licence(root, path.parent),
                       _text(root, "author") or "unknown author", kind, len(insts))


def find_drumkits(extra: Sequence[str | os.PathLike[str]] = ()) -> list[DrumkitInfo]:
    """Hydrogen kits in `extra`, `$STEMWRIGHT_DRUMKITS` (':'-separated folders of kits, or
    kit folders) and the usual folders; each once, sorted by name; unreadable kits are
    left out."""
    places = [Path(p).expanduser() for p in (*extra, *filter(None, os.environ.get(
        "STEMWRIGHT_DRUMKITS", "").split(os.pathsep)), *DRUMKIT_DIRS)]
    seen: dict[Path, DrumkitInfo] = {}
    for place in places:
        try:
            xmls = [place / "drumkit.xml"] if (place / "drumkit.xml").is_file() else \
                sorted(place.glob("*/drumkit.xml")) if place.is_dir() else []
        except OSError:
            continue
        for xml in xmls:
            try:
                real = xml.resolve(strict=True)
                if real not in seen:
                    seen[real] = kit_info(real)
            except (OSError, DrumkitError):
                continue
    return sorted(seen.values(), key=lambda k: (k.name.lower(), str(k.path)))


# --------------------------------------------------------------------------------------
# The sampler
# --------------------------------------------------------------------------------------

class HydrogenKit:
    """A Hydrogen kit: parsed at once, samples loaded on first use and kept."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / "drumkit.xml"
        self.path = path
        self.folder = path.parent.resolve()
        root = _read_xml(path)
        self.name = _text(root, "name") or path.parent.name
        self.licence = _licence(root, path.parent)
        self.author = _text(root, "author") or "unknown author"
        self.instruments = _playable(root, path.parent)
        kinds = {i.kind for i in self.instruments}
        self.kind = _kit_kind(path.parent.name, kinds)
        if not any(i.mute_group >= 0 and i.kind in _HATS for i in self.instruments):
            for inst in self.instruments:  # a real hi-hat: closing it cuts the open one
                if inst.kind in _HATS:
                    inst.mute_group = _HAT_GROUP
        self.mapping = self._map()
        self.skipped: Counter[int] = Counter()  # GM keys the last render had no sound for

    def _map(self) -> dict[int, int]:
        by_kind: dict[str, list[int]] = {}
        for idx, inst in enumerate(self.instruments):
            if inst.kind:
                by_kind.setdefault(inst.kind, []).append(idx)
        out = {}
        for key, (kinds, which) in GM_KEYS.items():
            for kind in kinds:
                if kind in by_kind:
                    cands = by_kind[kind]
                    out[key] = cands[min(which, len(cands) - 1)]
                    break
        return out

    def _load(self, layer: Layer) -> np.ndarray:
        """The layer's sample as float32 [2, n] at 44.1 kHz (silent if unreadable)."""
        if layer.audio is not None:
            return layer.audio
        import soundfile as sf

        audio = np.zeros((2, 0), dtype=np.float32)
        file = (self.folder / layer.filename).resolve()
        try:
            if file.is_relative_to(self.folder) and file.stat().st_size <= MAX_SAMPLE_BYTES:
                with sf.SoundFile(str(file)) as f:
                    sr = f.samplerate
                    frames = min(f.frames, int(MAX_SAMPLE_SECONDS * sr))
                    data = f.read(frames, dtype="float32", always_2d=True)
                if sr != SAMPLERATE:
                    import soxr

                    data = soxr.resample(data, sr, SAMPLERATE, quality="HQ")
                data = np.nan_to_num(np.asarray(data, dtype=np.float32))
                data = data[:, :2] if data.shape[1] >= 2 else np.repeat(data, 2, axis=1)
                audio = np.ascontiguousarray(data.T)
        except (OSError, RuntimeError, ValueError):
            pass
        layer.audio = audio
        return audio

    @staticmethod
    def _pick(layers: list[Layer], v: float, turn: Counter, key: tuple) -> Layer:
        """The layer for velocity v (0-1): the range holding it (the nearest range when v
        falls in a gap); layers sharing that range take turns (round-robin)."""
        inside = [la for la in layers if la.lo <= v <= la.hi]
        if not inside:
            best = min(min(abs(v - la.lo), abs(v - la.hi)) for la in layers)
            inside = [la for la in layers if min(abs(v - la.lo), abs(v - la.hi)) == best]
        first = inside[0]
        same = [la for la in inside if (la.lo, la.hi) == (first.lo, first.hi)]
        slot = (key, first.lo, first.hi)
        chosen = same[turn[slot] % len(same)]
        turn[slot] += 1
        return chosen

    def render(self, part: Part, song: Song, length: int, rng: np.random.Generator,
               timing_ms: float = 2.0, velocity_spread: float = 0.04,
               fade_ms: float = 12.0) -> np.ndarray:
        """The part's notes (GM drum keys) played on this kit: float32 [2, length] at
        44.1 kHz. Keys the kit lacks are left out and counted in `self.skipped`."""
        out = np.zeros((2, length), dtype=np.float32)
        self.skipped = Counter()
        scale = 60.0 / song.bpm * SAMPLERATE
        notes = sorted(part.notes, key=lambda n: (n.start, n.pitch))
        shifts = np.clip(rng.normal(0.0, timing_ms * 1e-3 * SAMPLERATE, len(notes)),
                         -3 * timing_ms * 1e-3 * SAMPLERATE, 3 * timing_ms * 1e-3 * SAMPLERATE)
        vels = rng.normal(1.0, velocity_spread, len(notes))
        hits = []  # (start, instrument index, velocity 0-1)
        for note, shift, dv in zip(notes, shifts, vels, strict=True):
            idx = self.mapping.get(note.pitch)
            if idx is None:
                self.skipped[note.pitch] += 1
                continue
            at = max(0, int(round(note.start * scale + shift)))
            if at < length:
                hits.append((at, idx, float(np.clip(note.velocity / 127.0 * dv, 0.02, 1.0))))
        hits.sort(key=lambda h: (h[0], h[1]))
        # where each hit is cut: the next hit of another instrument in its mute group
        ends = [length] * len(hits)
        last: dict[int, list[int]] = {}  # mute group -> hits still ringing
        for i, (at, idx, _) in enumerate(hits):
            group = self.instruments[idx].mute_group
            if group < 0 and group != _HAT_GROUP:
                continue
            ringing = last.setdefault(group, [])
            for j in ringing:
                if hits[j][1] != idx:
                    ends[j] = min(ends[j], at)
            last[group] = [j for j in ringing if hits[j][1] == idx and ends[j] > at] + [i]
        fade = max(1, int(fade_ms * 1e-3 * SAMPLERATE))
        turn: Counter = Counter()
        for (at, idx, v), end in zip(hits, ends, strict=True):
            inst = self.instruments[idx]
            for c, layers in enumerate(inst.components):
                layer = self._pick(layers, v, turn, (idx, c))
                sample = self._load(layer)
                n = min(sample.shape[1], length - at)
                if n <= 0:
                    continue
                hit = sample[:, :n] * np.float32(v * inst.gain * layer.gain)
                if end < at + n:  # choked: a short fade from the cut on
                    keep = end - at
                    f = min(fade, n - keep)
                    hit[:, keep:keep + f] *= np.linspace(1.0, 0.0, f, dtype=np.float32)
                    hit[:, keep + f:] = 0.0
                hit[0] *= np.float32(inst.left)
                hit[1] *= np.float32(inst.right)
                out[:, at:at + n] += hit
        return out


def load_kit(path: str | os.PathLike[str]) -> HydrogenKit:
    """The kit at `path`, cached per process (the few most recent kits keep their
    samples loaded)."""
    key = Path(path).resolve()
    kit = _KIT_CACHE.pop(key, None) or HydrogenKit(key)
    _KIT_CACHE[key] = kit
    while len(_KIT_CACHE) > _KIT_CACHE_SIZE:
        _KIT_CACHE.popitem(last=False)
    return kit


# --------------------------------------------------------------------------------------
# Which kit plays a song
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KitChoice:
    """The drum source drawn for a kit part: "gm" (the song's GM soundfont), "sf2" (a
    drum-only soundfont, `name` its file) or "hydrogen" (`path` its drumkit.xml)."""

    source: str
    name: str = ""
    path: Path | None = None
    licence: str = ""


def choose_kit_source(part: Part, style: str, rng: np.random.Generator,
                      drum_fonts: Sequence[str], kits: Sequence[DrumkitInfo],
                      weights: tuple[float, float, float] = (0.3, 0.3, 0.4)) -> KitChoice:
    """Draw GM soundfont kit / drum-only SF2 kit / Hydrogen kit (`weights`, renormalised
    over what is installed) fit for the style: electronic songs and GM electronic kits get
    the electronic Hydrogen kits and no acoustic SF2 kit. Nothing installed: GM, and no
    draw is made."""
    electronic = style == "electronic" or part.tone in ("electronic", "tr-808")
    want = "electronic" if electronic else "acoustic"
    hydro = [k for k in kits if k.kind == want]
    fonts = [] if electronic else sorted(f for f in drum_fonts if f in DRUM_SOUNDFONTS)
    options = [(w, s) for w, s, ok in zip(weights, ("gm", "sf2", "hydrogen"),
                                          (True, bool(fonts), bool(hydro)), strict=True) if ok]
    if len(options) == 1:
        return KitChoice("gm")
    p = np.array([w for w, _ in options], dtype=np.float64)
    source = options[int(rng.choice(len(options), p=p / p.sum()))][1]
    if source == "sf2":
        name = fonts[int(rng.integers(len(fonts)))]
        return KitChoice("sf2", name, None, DRUM_SOUNDFONTS[name][1])
    if source == "hydrogen":
        kit = hydro[int(rng.integers(len(hydro)))]
        return KitChoice("hydrogen", kit.name, kit.path, kit.licence)
    return KitChoice("gm")


__all__ = ["DrumkitError", "DrumkitInfo", "HydrogenKit", "KitChoice", "find_drumkits",
           "kit_info", "load_kit", "choose_kit_source", "classify", "GM_KEYS",
           "DRUM_SOUNDFONTS", "DRUMKIT_APT_PACKAGES", "DRUMKIT_DIRS"]
