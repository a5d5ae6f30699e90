"""`stemwright synth`: procedurally composed songs written as multitrack folders.

`generate(out, songs, seconds, seed)` composes songs (`composer.py`), renders every part
(`render.py`: FluidSynth with several General MIDI soundfonts, espeak-ng for the voice,
pedalboard effects), places and levels them, and writes each song as a folder the
multitrack reader reads (MedleyDB layout):

    OUT/summary.json                       what was generated (see `generate`)
    OUT/train/00001_funk_D-dorian/
        metadata.yaml                      instruments (labels the reader maps to stems),
                                           style, tempo, key, sections, lyrics, seeds, FX
        01_lead_vocal.flac ...             one 44.1 kHz stereo 16-bit FLAC per track
        mix.flac                           the exact sum of the tracks
        song.mid                           the score: one MIDI track per part, lyrics
    OUT/valid/..., OUT/test/...

Songs are split into train/valid/test by fixed fractions (a seeded shuffle). Song i's
content depends only on (seed, i, seconds), so more songs or another split never change
the songs already made, and a run that was interrupted picks up where it stopped (a song
folder is written under a temporary name and renamed when complete); a folder holding
songs of other settings is refused rather than mixed into. Songs render in parallel
worker processes, each loading the soundfonts once.

Drums: the drum kit part plays on a General MIDI soundfont kit, a recorded multi-layer
SF2 kit (AVL drums) or a recorded Hydrogen kit (`drumkit.py`: velocity layers, round
robin, hi-hat choke, humanised timing), whichever are installed; the track records which.

Mixing: every track is rendered dry, normalised, run through its effects (EQ,
compression, distortion, chorus, delay, reverb; the reverb belongs to the track's own
stem), placed in the stereo field and set to a level drawn per song. 80 % of songs are
then mastered like a record (`mastering.py`: per-stem bus EQ/saturation/compression, then
one gain envelope from a mix-bus compressor and look-ahead limiter, shared by every track,
to -14..-7 LUFS under a -1..-0.5 dBFS ceiling); the rest get one gain that puts the mix
peak between -4 and -0.5 dBFS. Track files hold int16 samples and mix.flac their integer
sum, so the mixture is exactly the sum of the stems and nothing clips.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import resource
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import yaml

from ..errors import Cancelled, StemwrightError
from ..stems import STEM_IDS
from ..wording import count
from ..yaml_safe import YamlFileError, safe_yaml_load
from .composer import compose_song, describe
from .drumkit import DRUM_SOUNDFONTS, DrumkitError, KitChoice, choose_kit_source, load_kit
from .expression import EXPRESSIVE_BANK, perform, performance, retake
from .render import (
    SAMPLERATE,
    FluidRenderer,
    Singer,
    Tools,
    apply_effects,
    cabinet_effect,
    check_tools,
    pan_stereo,
    write_midi,
)
from .song import Part, Role, Song
from .styles import STYLES

GENERATOR = "stemwright synth"
#: 2: recorded drum kits, stem buses, mastering; 3: expressive wind and guitars (slides,
#: palm mutes, DI, cabinets, double-tracking); songs of older versions are made again
VERSION = 3
SPLITS = ("train", "valid", "test")
DEFAULT_SPLIT = (0.8, 0.1, 0.1)
META_FILE = "metadata.yaml"
MAX_SECONDS = 900.0
MIX_FILE = "mix.flac"

#: Active-RMS level (dBFS, before the final mix gain) drawn per track: (mean, spread).
LEVELS = {"lead vocal": (-15.0, 2.0), "backing vocals": (-23.0, 2.5), "kit": (-16.0, 2.0),
          "percussion": (-27.0, 3.0), "bass": (-16.5, 2.5), "rhythm": (-19.0, 3.0),
          "lead": (-19.0, 2.5), "wind": (-19.5, 3.0), "other": (-19.5, 3.0)}


class GeneratorError(StemwrightError):
    """Bad settings for `stemwright synth`, or an output folder it must not touch."""


ProgressFn = Callable[[float, float, dict | None], None]  # (audio s done, total, song record)


@dataclass(frozen=True)
class SongJob:
    index: int
    seed: int
    seconds: float
    split: str
    out: str
    style: str | None = None


# --------------------------------------------------------------------------------------
# Seeds and splits
# --------------------------------------------------------------------------------------

def song_seed(seed: int, index: int) -> int:
    """The seed of song `index` of a run seeded with `seed` (independent of the count)."""
    return int(np.random.SeedSequence([int(seed), int(index), 0x53594E]).generate_state(1)[0])


def parse_split(text: str | Sequence[float]) -> tuple[float, float, float]:
    """"0.8/0.1/0.1" (or three numbers) -> fractions of train, valid, test summing to 1."""
    try:
        parts = [float(p) for p in (re.split(r"[/,:]", text) if isinstance(text, str)
                                    else text)]
    except ValueError:
        raise GeneratorError(f"--split {text}: give three fractions, e.g. 0.8/0.1/0.1"
                             ) from None
    if len(parts) != 3 or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise GeneratorError(f"--split {text}: give three non-negative fractions for train, "
                             "valid and test, e.g. 0.8/0.1/0.1")
    total = sum(parts)
    return parts[0] / total, parts[1] / total, parts[2] / total


def assign_splits(count: int, fractions: Sequence[float], seed: int) -> list[str]:
    """The split of each song: counts by largest remainder, positions by a seeded shuffle;
    valid and test get at least one song each when they have a share and there are
    enough songs to leave the training set most of them."""
    exact = [count * f for f in fractions]
    counts = [int(x) for x in exact]
    for i in sorted(range(3), key=lambda i: exact[i] - counts[i], reverse=True)[
            :count - sum(counts)]:
        counts[i] += 1
    for i in (1, 2):
        if fractions[i] > 0 and counts[i] == 0 and counts[0] > max(1, count // 2):
            counts[i] += 1
            counts[0] -= 1
    labels = [s for s, c in zip(SPLITS, counts, strict=True) for _ in range(c)]
    order = np.random.default_rng([int(seed), 0x5E1]).permutation(count)
    out = [""] * count
    for pos, idx in enumerate(order):
        out[int(idx)] = labels[pos]
    return out


# --------------------------------------------------------------------------------------
# Mixing plan: soundfont, effects, stereo and level per track
# --------------------------------------------------------------------------------------

def _u(rng: np.random.Generator, lo: float, hi: float, digits: int = 2) -> float:
    return round(float(rng.uniform(lo, hi)), digits)


def _reverb(rng: np.random.Generator, wet: tuple[float, float], room: tuple[float, float]
            ) -> dict:
    return {"type": "reverb", "room_size": _u(rng, *room), "damping": _u(rng, 0.3, 0.7),
            "wet_level": _u(rng, *wet), "dry_level": 1.0, "width": _u(rng, 0.7, 1.0)}


def effects_for(part: Part, rng: np.random.Generator) -> list[dict]:
    """The effect chain of a track (pedalboard parameters), drawn for its role and tone;
    some tracks stay uncompressed or dry, as in real sessions. Distorted guitars (and some
    clean ones and basses) play through a cabinet IR after the amp's saturation and EQ."""
    fx: list[dict] = []
    comp = {"type": "compressor", "threshold_db": _u(rng, -26, -14), "ratio": _u(rng, 2, 5),
            "attack_ms": _u(rng, 2, 20), "release_ms": _u(rng, 60, 250)}
    if part.stem == "vocals":
        fx += [{"type": "highpass", "cutoff_frequency_hz": _u(rng, 80, 140)},
               comp, {"type": "peak", "cutoff_frequency_hz": _u(rng, 2500, 4500),
                      "gain_db": _u(rng, 1, 5), "q": 0.8},
               {"type": "exciter", "from_hz": 2500.0, "drive_db": _u(rng, 14, 24),
                "above_hz": _u(rng, 6000, 8500), "level_db": _u(rng, -18, -10)}]
        if part.role == "backing vocals":
            fx.append({"type": "chorus", "rate_hz": _u(rng, 0.3, 1.2), "depth": _u(
                rng, 0.15, 0.4), "centre_delay_ms": 8.0, "feedback": 0.0, "mix": 0.4})
        if rng.random() < 0.5:
            fx.append({"type": "delay", "delay_seconds": _u(rng, 0.09, 0.4, 3),
                       "feedback": _u(rng, 0.1, 0.35), "mix": _u(rng, 0.08, 0.2)})
        fx.append(_reverb(rng, (0.12, 0.3), (0.4, 0.85)))
    elif part.stem == "drums":
        fx += [{"type": "highpass", "cutoff_frequency_hz": _u(rng, 25, 45)},
               {"type": "lowshelf", "cutoff_frequency_hz": 90.0, "gain_db": _u(rng, -1, 4)},
               {"type": "highshelf", "cutoff_frequency_hz": 8000.0, "gain_db": _u(rng, -3, 3)},
               comp]
        if rng.random() < 0.25:
            fx.append({"type": "distortion", "drive_db": _u(rng, 2, 8)})
        # tame the transients as a mix bus would (the kit arrives at -20 dBFS RMS, with
        # peaks some 24 dB higher): mixes get a real-world crest factor
        fx.append({"type": "limiter", "threshold_db": _u(rng, -6, 0), "release_ms": _u(
            rng, 40, 200)})
        if rng.random() < 0.75:
            fx.append(_reverb(rng, (0.04, 0.15), (0.2, 0.6)))
    elif part.stem == "bass":
        fx += [{"type": "highpass", "cutoff_frequency_hz": _u(rng, 28, 45)}, comp,
               {"type": "peak", "cutoff_frequency_hz": _u(rng, 600, 1200),
                "gain_db": _u(rng, -3, 3), "q": 1.0}]
        if rng.random() < 0.3 or part.style == "synth":
            fx.append({"type": "distortion", "drive_db": _u(rng, 3, 12)})
            if part.style != "synth" and rng.random() < 0.6:  # a bass amp's cabinet
                fx += cabinet_effect(rng, _u(rng, 0.4, 0.8))
            fx.append({"type": "lowpass", "cutoff_frequency_hz": _u(rng, 2500, 6000)})
        if rng.random() < 0.2:
            fx.append({"type": "chorus", "rate_hz": _u(rng, 0.5, 1.5), "depth": 0.2,
                       "centre_delay_ms": 7.0, "feedback": 0.0, "mix": 0.3})
    elif part.stem == "electric_guitar":
        tone = part.tone
        fx.append({"type": "highpass", "cutoff_frequency_hz": _u(rng, 70, 120)})
        if tone in ("overdriven", "distortion"):
            drive = (6, 14) if tone == "overdriven" else (12, 26)
            fx += [{"type": "peak", "cutoff_frequency_hz": _u(rng, 500, 900),  # pre-EQ
                    "gain_db": _u(rng, 0, 6), "q": 0.7},
                   {"type": "distortion", "drive_db": _u(rng, *drive)},
                   {"type": "peak", "cutoff_frequency_hz": _u(rng, 700, 1800),
                    "gain_db": _u(rng, 2, 6), "q": 1.0},
                   *cabinet_effect(rng),
                   {"type": "lowpass", "cutoff_frequency_hz": _u(rng, 4000, 7000)}]
        else:
            if rng.random() < 0.7:
                fx.append(comp)
            if rng.random() < 0.5:  # a clean amp's cabinet
                fx += cabinet_effect(rng)
            if rng.random() < 0.5:
                fx.append({"type": "chorus", "rate_hz": _u(rng, 0.4, 1.5), "depth": _u(
                    rng, 0.15, 0.35), "centre_delay_ms": 7.0, "feedback": 0.1, "mix": 0.35})
            if rng.random() < 0.2:
                fx.append({"type": "phaser", "rate_hz": _u(rng, 0.2, 1.0), "depth": 0.5,
                           "centre_frequency_hz": 1000.0, "feedback": 0.2, "mix": 0.35})
        if part.role == "lead" or rng.random() < 0.3:
            fx.append({"type": "delay", "delay_seconds": _u(rng, 0.12, 0.45, 3),
                       "feedback": _u(rng, 0.15, 0.4), "mix": _u(rng, 0.1, 0.25)})
        if part.role == "lead" or rng.random() < 0.8:
            fx.append(_reverb(rng, (0.06, 0.2), (0.3, 0.7)))
    elif part.stem == "wind":
        fx += [{"type": "highpass", "cutoff_frequency_hz": _u(rng, 60, 120)},
               *([comp] if rng.random() < 0.7 else []),
               {"type": "peak", "cutoff_frequency_hz": _u(rng, 1500, 3500),
                "gain_db": _u(rng, -2, 4), "q": 0.9},
               _reverb(rng, (0.1, 0.28), (0.4, 0.85))]
    else:
        if part.role == "pad":
            if "Organ" in part.name:
                fx.append({"type": "chorus", "rate_hz": _u(rng, 4.5, 6.5), "depth": 0.25,
                           "centre_delay_ms": 3.0, "feedback": 0.0, "mix": 0.5})
            fx.append(_reverb(rng, (0.15, 0.35), (0.6, 0.95)))
        elif part.role == "lead":
            fx += [{"type": "distortion", "drive_db": _u(rng, 0, 8)},
                   {"type": "delay", "delay_seconds": _u(rng, 0.15, 0.45, 3),
                    "feedback": _u(rng, 0.2, 0.45), "mix": _u(rng, 0.15, 0.3)},
                   _reverb(rng, (0.08, 0.2), (0.4, 0.8))]
        else:
            fx += [*([comp] if rng.random() < 0.6 else []),
                   _reverb(rng, (0.08, 0.25), (0.3, 0.8))]
        fx.insert(0, {"type": "highpass", "cutoff_frequency_hz": _u(rng, 40, 120)})
    return fx


def _pan(part: Part, rng: np.random.Generator, taken: list[float]) -> tuple[float, float]:
    """(pan, width): voice, bass and kit in the middle, the rest spread out."""
    if part.role in ("lead vocal", "bass", "kit"):
        return _u(rng, -0.05, 0.05), (_u(rng, 0.7, 1.0) if part.role == "kit" else
                                      _u(rng, 0.0, 0.3))
    if part.role == "backing vocals":
        return _u(rng, -0.15, 0.15), 1.0
    side = -1.0 if sum(taken) > 0 else 1.0
    pan = side * _u(rng, 0.2, 0.75)
    taken.append(pan)
    return pan, _u(rng, 0.3, 1.0)


def _level_key(part: Part) -> str:
    if part.stem == "wind":
        return "wind"
    if part.stem == "other":
        return "other"
    return part.role if part.role in LEVELS else "rhythm"


def active_rms_db(x: np.ndarray, frame: int = 2048, floor_db: float = -40.0) -> float:
    """RMS (dBFS) over the frames within `floor_db` of the loudest: the level while the
    track plays, not diluted by its rests; -inf for silence. Estimated from every 4th
    sample, summed in float64 and rounded to 1e-6 dB, so where an array sits in memory
    (which changes how SIMD sums group) never changes a gain derived from it: songs stay
    bit-identical across processes."""
    if x.ndim == 2:
        mono = (x[0, ::4].astype(np.float64) + x[-1, ::4]) * 0.5
    else:
        mono = x[::4].astype(np.float64)
    frame //= 4
    n = len(mono) // frame
    if n == 0:
        return float("-inf")
    blocks = mono[:n * frame].reshape(n, frame)
    power = np.einsum("ij,ij->i", blocks, blocks) / frame
    top = power.max()
    if top <= 1e-12:
        return float("-inf")
    active = power[power >= top * 10 ** (floor_db / 10)]
    return round(float(10 * np.log10(active.mean())), 6)


def _db(x: float) -> float | None:
    return round(float(20 * np.log10(x)), 2) if x > 0 else None


# --------------------------------------------------------------------------------------
# One song (runs in a worker)
# --------------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(tools: Tools) -> None:
    """Per process: one FluidSynth with every soundfont, one singer."""
    if _WORKER.get("tools") == tools:
        return
    if _WORKER:
        _WORKER["singer"].close()
        _WORKER["fluid"].close()
    _WORKER.clear()
    _WORKER["tools"] = tools
    _WORKER["fluid"] = FluidRenderer(tools.soundfonts, tools.fluidsynth)
    _WORKER["singer"] = Singer(tools.espeak, tools.espeak_data)

    atexit.register(_WORKER["singer"].close)


def song_folder_name(index: int, song: Song) -> str:
    key = song.key_name.replace(" ", "-").replace("#", "s")
    return f"{index + 1:05d}_{song.style}_{key}"


def _file_name(number: int, part: Part) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", part.name.lower()).strip("_")
    return f"{number:02d}_{slug}.flac"


def render_song(job: SongJob) -> dict:
    """Compose, render, mix and write one song; its record for the summary."""
    import soundfile as sf

    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    fluid: FluidRenderer = _WORKER["fluid"]
    singer: Singer = _WORKER["singer"]
    song = compose_song(job.seed, job.seconds, job.style)
    perform(song)  # breath, dynamics, vibrato, slides... for wind and guitar parts
    split_dir = Path(job.out) / job.split
    name = song_folder_name(job.index, song)
    final = split_dir / name
    existing = _existing(final, job)
    if existing is not None:
        existing["resumed"] = True
        return existing
    rng = np.random.default_rng([job.seed, 1])
    length = int(round(job.seconds * SAMPLERATE))
    fonts = sorted(fluid.fonts)
    language = "en-us" if rng.random() < 0.6 else "en"
    lead_voice = str(rng.choice(singer.available(song.voice)))
    others = [v for v in singer.available(song.voice) if v != lead_voice] or [lead_voice]
    backing_voices = [str(v) for v in rng.choice(others, size=min(2, len(others)),
                                                 replace=False)]
    taken: list[float] = []
    tracks: list[tuple[Part, np.ndarray, dict]] = []
    for number, part in enumerate(song.parts, 1):
        choices = [f for f in fonts if fluid.has(f, part.bank, part.program)] or fonts
        font = str(rng.choice(choices))
        kit, kit_fields, take_fields = None, {}, {}
        takes: list[np.ndarray] = []  # a double-tracked part's second take
        if part.is_drum and part.role == Role.KIT:  # a recorded kit when one is installed
            kit_rng = np.random.default_rng([job.seed, 2, number])  # main draws unchanged
            kit = choose_kit_source(part, song.style, kit_rng, sorted(fluid.drum_fonts),
                                    _WORKER["tools"].drumkits)
        if kit is not None and kit.source == "hydrogen":
            try:
                sampler = load_kit(kit.path)
            except DrumkitError:  # changed since it was found: the GM kit plays
                kit = KitChoice("gm")
        if part.sung:
            voices = [lead_voice] if part.role == "lead vocal" else backing_voices
            audio = singer.sing(part, song, voices, language, length, rng)[None, :]
            source = f"espeak-ng {language} ({', '.join(voices)}), sung"
            font_used = None
        elif kit is not None and kit.source == "hydrogen":
            audio = sampler.render(part, song, length, kit_rng)
            if np.array_equal(audio[0], audio[1]):
                audio = audio[:1]
            source = f"Hydrogen kit '{kit.name}' ({kit.licence})"
            font_used = None
            kit_fields = {"drum_keys_skipped": sum(sampler.skipped.values())}
        else:
            if kit is not None and kit.source == "sf2":
                font = kit.name
            play, take_fields = performance(part, job.seed, number)
            audio = fluid.render(play, song, font, length)
            preset = fluid.preset
            for k in range(1, take_fields.get("players", 1)):  # section players
                audio += fluid.render(retake(play, song, k, number), song, font, length)
            if take_fields.get("double_tracked"):
                takes.append(fluid.render(retake(play, song, 1, number), song, font, length))
            if np.array_equal(audio[0], audio[1]) and not takes:
                audio = audio[:1]  # a mono patch: effects run in mono up to the reverb
            source = f"FluidSynth, GM {'drum kit' if part.is_drum else 'program'} " \
                     f"{play.program}" + (" (expressive preset, bank 17)"
                                          if preset[0] == EXPRESSIVE_BANK else "")
            if kit is not None and kit.source == "sf2":
                source = f"FluidSynth, {DRUM_SOUNDFONTS[font][0]} kit ({kit.licence})"
            font_used = font
        fx = effects_for(part, rng)
        if kit is not None:
            kit_name = {"gm": f"GM {part.tone or 'standard'} kit ({font})",
                        "sf2": DRUM_SOUNDFONTS.get(font, (font,))[0]}.get(kit.source, kit.name)
            kit_fields = {"drum_source": kit.source, "drum_kit": kit_name,
                          "drum_kit_licence": kit.licence or None, **kit_fields}
            if kit.source != "gm" and not any(f["type"] == "reverb" for f in fx):
                fx.append(_reverb(kit_rng, (0.04, 0.1), (0.1, 0.3)))  # dry samples: a room
        pan, width = _pan(part, rng, taken)
        mean, spread = LEVELS[_level_key(part)]
        target = float(rng.normal(mean, spread / 2))
        if part.stem in ("wind", "other"):
            crowd = sum(1 for p in song.parts if p.stem == part.stem)
            target -= 1.5 * (crowd - 1)
        level = active_rms_db(audio)
        if not np.isfinite(level):
            continue  # nothing audible: leave the track out
        audio *= np.float32(10 ** ((-20.0 - level) / 20))  # effects see a nominal level
        audio = apply_effects(audio, fx)
        if takes:  # two takes panned wide, each through the same chain
            wide = max(abs(pan), 0.6)
            take = takes[0] * np.float32(10 ** ((-20.0 - level) / 20))
            audio = pan_stereo(audio, -wide, 0.3) + pan_stereo(apply_effects(take, fx),
                                                               wide, 0.3)
            del takes[:], take
            take_fields["double_tracked"] = f"2 takes panned {-wide:+.2f}/{wide:+.2f}"
        else:
            audio = pan_stereo(audio, pan, width)
        audio *= np.float32(10 ** ((target - active_rms_db(audio)) / 20))
        rms_now = target
        info = {"filename": _file_name(number, part), "instrument": part.name, "stem": part.stem,
                "role": str(part.role), "plays": part.style, "tone": part.tone or None,
                "source": source, "soundfont": font_used,
                "gm_program": None if part.sung else part.program,
                "gm_bank": part.bank if part.is_drum else None, "notes": len(part.notes),
                "pan": round(pan, 2), "width": round(width, 2), "effects": fx,
                "expression": part.expression or None,
                "cabinet": next((f["ir"] for f in fx if f["type"] == "cabinet"), None),
                "_rms": rms_now, **kit_fields, **take_fields}
        tracks.append((part, audio, info))
    if not tracks:
        raise GeneratorError(f"song {job.index + 1}: every track came out silent")
    from .mastering import MASTERED_SHARE, master_tracks

    # most songs are mastered like a record (stem buses, then one gain envelope shared by
    # every track: loud, limited); the rest stay dynamic: one gain puts the mix peak at
    # -4..-0.5 dBFS. Either way no track passes -0.5 dBFS and mix = sum(tracks).
    mastering: dict = {"mastered": False}
    if rng.random() < MASTERED_SHARE:
        mastered, _, mastering = master_tracks([a for _, a, _ in tracks],
                                               [i["stem"] for _, _, i in tracks], rng)
        tracks = [(p, a, i) for (p, _, i), a in zip(tracks, mastered, strict=True)]
        del mastered
        for _, audio, info in tracks:
            info["_rms"] = active_rms_db(audio)
        gain = 1.0
    else:
        mix = np.zeros((2, length), dtype=np.float32)
        for _, audio, _ in tracks:
            mix += audio
        peak_db = _u(rng, -4.0, -0.5)
        mix_peak = float(np.max(np.abs(mix)))
        track_peak = max(float(np.max(np.abs(a))) for _, a, _ in tracks)
        gain = min(10 ** (peak_db / 20) / max(mix_peak, 1e-9),
                   0.944 / max(track_peak, 1e-9))
        del mix
    tmp = split_dir / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    total = np.zeros((2, length), dtype=np.int32)
    stem_sum: dict[str, np.ndarray] = {}
    scale = np.float32(gain * 32767.0)
    for _, audio, info in tracks:
        audio *= scale
        np.rint(audio, out=audio)
        np.clip(audio, -32767, 32767, out=audio)
        q = audio.astype(np.int16)
        total += q
        sf.write(tmp / info["filename"], q.T, SAMPLERATE, subtype="PCM_16", format="FLAC")
        info["peak_dbfs"] = _db(float(np.max(np.abs(audio))) / 32768.0)
        info["active_rms_dbfs"] = round(float(info.pop("_rms") + 20 * np.log10(gain)), 2)
        if info["stem"] in stem_sum:
            stem_sum[info["stem"]] += q
        else:
            stem_sum[info["stem"]] = q.astype(np.int32)
    if np.max(np.abs(total)) > 32767:  # cannot happen with the gain above; never clip
        raise GeneratorError(f"song {job.index + 1}: the mix would clip")
    sf.write(tmp / MIX_FILE, total.astype(np.int16).T, SAMPLERATE, subtype="PCM_16",
             format="FLAC")
    write_midi(song, tmp / "song.mid")
    mixf = total.astype(np.float32) / 32768.0
    stems = {s: {"active_rms_dbfs": round(float(active_rms_db(a) - 20 * np.log10(32768.0)), 2),
                 "peak_dbfs": _db(float(np.max(np.abs(a))) / 32768.0),
                 "tracks": [i["instrument"] for _, _, i in tracks if i["stem"] == s]}
             for s, a in ((s, stem_sum[s]) for s in STEM_IDS if s in stem_sum)}
    desc = describe(song)
    record = {
        "key": f"{job.split}/{name}", "index": job.index, "seed": job.seed,
        "split": job.split, "seconds": round(length / SAMPLERATE, 3),
        "style": song.style, "bpm": song.bpm, "key_signature": song.key_name,
        "swing": round(song.swing, 3), "voice": f"{song.voice} ({lead_voice}, {language})",
        "mix": {"peak_dbfs": _db(float(np.max(np.abs(mixf)))),
                "active_rms_dbfs": round(active_rms_db(mixf), 2)},
        "gain_db": round(float(20 * np.log10(gain)), 6), "mastering": mastering,
        "stems": stems, "tracks": [{k: v for k, v in i.items() if k != "effects"}
                                   for _, _, i in tracks],
    }
    meta = {
        "title": f"Stemwright synth {job.index + 1:05d}", "artist": "Stemwright synth",
        "generator": f"{GENERATOR} {VERSION}", "seed": job.seed, "index": job.index,
        "split": job.split, "duration": round(length / SAMPLERATE, 3),
        "samplerate": SAMPLERATE, "genre": song.style, "tempo": song.bpm,
        "key": song.key_name, "swing": round(song.swing, 3), "voice": record["voice"],
        "mix_filename": MIX_FILE, "midi_filename": "song.mid",
        "sections": desc["sections"], "lyrics": song.lyrics(),
        "stems": {f"S{n:02d}": info for n, (_, _, info) in enumerate(tracks, 1)},
        "record": record,
    }
    (tmp / META_FILE).write_text(
        "# A song made by `stemwright synth` (MedleyDB-style metadata: each stem's\n"
        "# `instrument` is what Stemwright's multitrack reader maps to its stem).\n"
        + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    record["render_seconds"] = round(time.perf_counter() - t0, 3)
    record["cpu_seconds"] = round(_cpu_seconds() - cpu0, 3)
    record["bytes"] = sum(p.stat().st_size for p in final.iterdir())
    return record


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the espeak-ng helpers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _existing(folder: Path, job: SongJob) -> dict | None:
    """The record of a finished song already in `folder` made with the same settings."""
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        return None
    try:
        meta = safe_yaml_load(meta_path)
    except (OSError, YamlFileError):
        return None
    if not isinstance(meta, dict) or not str(meta.get("generator", "")).startswith(GENERATOR):
        raise GeneratorError(f"{folder}: exists and was not made by {GENERATOR}; choose "
                             "another output folder")
    same = meta.get("generator") == f"{GENERATOR} {VERSION}" and meta.get("seed") == job.seed \
        and abs(float(meta.get("duration", -1)) -
                                                 round(job.seconds * SAMPLERATE) /
                                                 SAMPLERATE) < 1e-3
    files = [s.get("filename") for s in (meta.get("stems") or {}).values()]
    if not same or not all((folder / f).is_file() for f in files + [MIX_FILE]):
        return None
    record = dict(meta.get("record") or {})
    if not record:
        return None
    record["bytes"] = sum(p.stat().st_size for p in folder.iterdir())
    return record


def _run_job(job: SongJob) -> dict:
    return render_song(job)


# --------------------------------------------------------------------------------------
# Many songs
# --------------------------------------------------------------------------------------

def default_workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1), 16))


def generate(out: str | os.PathLike[str], songs: int = 10, seconds: float = 120.0,
             seed: int = 0, split: Sequence[float] | str = DEFAULT_SPLIT,
             workers: int | None = None, style: str | None = None,
             progress: ProgressFn | None = None,
             cancel: Callable[[], bool] | None = None) -> dict:
    """Generate `songs` songs of `seconds` each under `out` (train/valid/test folders) with
    `workers` processes (default: one per CPU core); returns the summary, also written to
    out/summary.json: settings, tools and soundfonts, per split and per stem counts and
    durations, instruments, speed (seconds of audio per second of wall time), size, and a
    record per song (seed, split, style, tempo, key, tracks with soundfont, levels)."""
    if songs < 1:
        raise GeneratorError("--songs must be at least 1")
    if not 1.0 <= seconds <= MAX_SECONDS:
        raise GeneratorError(f"--seconds must be between 1 and {MAX_SECONDS:.0f} (a song's "
                             "tracks are held in memory while it is mixed)")
    if style is not None and style not in STYLES:
        raise GeneratorError(f"unknown style '{style}' (use one of {', '.join(STYLES)})")
    fractions = parse_split(split) if isinstance(split, str) else parse_split(list(split))
    workers = max(1, int(workers or default_workers()))
    root = Path(out).expanduser()
    if root.exists() and not root.is_dir():
        raise GeneratorError(f"{root}: is a file; give a folder for the songs")
    tools = check_tools()
    splits = assign_splits(songs, fractions, seed)
    _check_out(root, splits, seed, float(seconds), style)
    root.mkdir(parents=True, exist_ok=True)
    jobs = [SongJob(i, song_seed(seed, i), float(seconds), splits[i], str(root), style)
            for i in range(songs)]
    total = songs * float(seconds)
    done = 0.0
    records: list[dict] = []
    t0 = time.perf_counter()

    def finished(record: dict) -> None:
        nonlocal done
        records.append(record)
        done += record["seconds"]
        if progress is not None:
            progress(done, total, record)

    if workers == 1 or songs == 1:
        _init_worker(tools)
        for job in jobs:
            if cancel is not None and cancel():
                raise Cancelled("generation cancelled")
            finished(render_song(job))
    else:
        ctx = get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, songs), mp_context=ctx,
                                 initializer=_init_worker, initargs=(tools,)) as pool:
            pending: set[Future] = {pool.submit(_run_job, job) for job in jobs}
            try:
                while pending:
                    finished_now, pending = wait(pending, timeout=0.5,
                                                 return_when=FIRST_COMPLETED)
                    for fut in finished_now:
                        finished(fut.result())
                    if cancel is not None and cancel():
                        raise Cancelled("generation cancelled")
            except BaseException:
                for fut in pending:
                    fut.cancel()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    wall = time.perf_counter() - t0
    records.sort(key=lambda r: r["index"])
    summary = _summary(records, tools, seed, seconds, fractions, workers, wall, style)
    path = root / "summary.json"
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return summary


def _check_out(root: Path, splits: Sequence[str], seed: int, seconds: float,
               style: str | None) -> None:
    """Refuse a folder holding songs this run would not make (another seed, length, count
    or split: they would end up mixed into the new set, possibly in two splits); clear
    what an interrupted run left half-written."""
    summary = root / "summary.json"
    if summary.is_file():
        try:
            old = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if (old.get("seed"), old.get("seconds_per_song"), old.get("style", "any")) != (
                seed, seconds, style or "any"):
            raise GeneratorError(
                f"{root}: holds songs made with seed {old.get('seed')}, "
                f"{old.get('seconds_per_song')} s songs and style {old.get('style', 'any')}; "
                f"use another folder (or delete it) for seed {seed}, {seconds:g} s songs "
                f"and style {style or 'any'}")
    stale = []
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        for sub in sorted(folder.iterdir()):
            if sub.name.startswith(".") and sub.name.endswith(".partial"):
                shutil.rmtree(sub, ignore_errors=True)
                continue
            m = re.match(r"^(\d{5})_", sub.name)
            if sub.is_dir() and m:
                index = int(m.group(1)) - 1
                if index >= len(splits) or splits[index] != split:
                    stale.append(f"{split}/{sub.name}")
    if stale:
        raise GeneratorError(
            f"{root}: holds {count(len(stale), 'song folder')} this run "
            f"would not make (e.g. {stale[0]}: another song count or split); use another "
            "folder or delete them")


def _summary(records: list[dict], tools: Tools, seed: int, seconds: float,
             fractions: Sequence[float], workers: int, wall: float, style: str | None
             ) -> dict:
    audio = sum(r["seconds"] for r in records)
    rendered = [r for r in records if not r.get("resumed")]
    rendered_audio = sum(r["seconds"] for r in rendered)
    cpu = sum(r.get("cpu_seconds", 0.0) for r in rendered)
    size = sum(r.get("bytes", 0) for r in records)
    by_split = {s: {"songs": sum(1 for r in records if r["split"] == s),
                    "seconds": round(sum(r["seconds"] for r in records if r["split"] == s), 3)}
                for s in SPLITS}
    stems: dict[str, dict] = {}
    fonts: Counter = Counter()
    kits: Counter = Counter()
    for r in records:
        for t in r["tracks"]:
            if t.get("drum_kit"):
                kits[f"{t['drum_kit']} ({t.get('drum_kit_licence') or 'licence not stated'})"] += 1
            entry = stems.setdefault(t["stem"], {"songs": 0, "tracks": 0, "instruments":
                                                 Counter()})
            entry["tracks"] += 1
            entry["instruments"][t["instrument"]] += 1
            if t.get("soundfont"):
                fonts[t["soundfont"]] += 1
        for s in r["stems"]:
            stems.setdefault(s, {"songs": 0, "tracks": 0, "instruments": Counter()})
            stems[s]["songs"] += 1
    return {
        "generator": GENERATOR, "version": VERSION, "seed": seed,
        "seconds_per_song": seconds, "split_fractions": [round(f, 4) for f in fractions],
        "style": style or "any", "samplerate": SAMPLERATE, "format": "FLAC, 16-bit, stereo",
        "layout": "SPLIT/NNNNN_style_key/ with metadata.yaml (MedleyDB-style), one FLAC "
                  "per track, mix.flac (their exact sum) and song.mid",
        "songs": len(records), "audio_seconds": round(audio, 3),
        "audio_hours": round(audio / 3600, 4),
        "splits": by_split,
        "all_six_stems": sum(1 for r in records if len(r["stems"]) == len(STEM_IDS)),
        "stems": {s: {"songs": stems[s]["songs"], "tracks": stems[s]["tracks"],
                      "instruments": dict(stems[s]["instruments"].most_common())}
                  for s in STEM_IDS if s in stems},
        "styles": dict(Counter(r["style"] for r in records).most_common()),
        "soundfonts": [{"name": sf.name, "path": str(sf.path), "size_mb": sf.size_mb,
                        "tracks": fonts.get(sf.name, 0)} for sf in tools.soundfonts],
        "drum_kits": dict(kits.most_common()),
        "mastered_songs": sum(1 for r in records if (r.get("mastering") or {}).get("mastered")),
        "tools": tools.versions,
        "workers": workers, "wall_seconds": round(wall, 3),
        "rendered_songs": len(rendered),
        "speed_x_realtime": round(rendered_audio / wall, 2) if wall > 0 and rendered else None,
        "cpu_seconds": round(cpu, 2),
        "audio_seconds_per_cpu_second": round(rendered_audio / cpu, 2) if cpu > 0 else None,
        "bytes": size, "mb_per_audio_minute": round(size / 1e6 / (audio / 60), 2)
        if audio else None,
        "song_list": records,
    }


def describe_summary(summary: dict) -> list[str]:
    """Human-readable lines for the end of a run."""
    hours = summary["audio_seconds"] / 3600
    lines = [f"{count(summary['songs'], 'song')}, "
             f"{summary['audio_seconds'] / 60:.1f} min of audio "
             f"({hours:.2f} h), {summary['bytes'] / 1e6:.1f} MB "
             f"({summary['mb_per_audio_minute'] or 0:.1f} MB per minute)"]
    lines.append("splits: " + ", ".join(f"{s} {v['songs']} ({v['seconds'] / 60:.1f} min)"
                                        for s, v in summary["splits"].items()))
    if summary["speed_x_realtime"]:
        lines.append(f"speed: {summary['speed_x_realtime']:.1f} s of audio per s "
                     f"({count(summary['rendered_songs'], 'song')} rendered with "
                     f"{count(summary['workers'], 'worker')} in "
                     f"{summary['wall_seconds']:.1f} s; "
                     f"{summary['audio_seconds_per_cpu_second']:.1f} s of audio per CPU "
                     "second)")
    lines.append("styles: " + ", ".join(f"{k} {v}" for k, v in summary["styles"].items()))
    for stem, v in summary["stems"].items():
        top = ", ".join(f"{k} {n}" for k, n in list(v["instruments"].items())[:6])
        lines.append(f"{stem}: in {count(v['songs'], 'song')}, "
                     f"{count(v['tracks'], 'track')} ({top})")
    lines.append("soundfonts: " + ", ".join(
        f"{f['name']} ({count(f['tracks'], 'track')})"
        for f in summary["soundfonts"]))
    if summary.get("drum_kits"):
        lines.append("recorded drum kits: " + ", ".join(
            f"{k} x{n}" for k, n in summary["drum_kits"].items()))
    lines.append(f"mastered: {summary.get('mastered_songs', 0)} of "
                 f"{count(summary['songs'], 'song')}")
    return lines


__all__ = ["generate", "render_song", "SongJob", "song_seed", "assign_splits",
           "parse_split", "effects_for", "active_rms_db", "describe_summary",
           "GeneratorError", "SPLITS", "DEFAULT_SPLIT", "META_FILE", "MIX_FILE"]
