"""Fuzz the `stemwright` command line with a few hundred hostile inputs (issue 20).

Generates tiny hostile files in a temporary folder -- corrupt and edge-case audio, output
folder faults, malformed and malicious checkpoints, hostile multitrack folders, download
faults from a 127.0.0.1 mirror -- runs each through `stemwright.models.cli.main` and
classifies the outcome:

  ok                  exit 0 and the outputs are valid (length, rate, stems sum to the mix)
  refused             non-zero exit, exactly one line on stderr, no traceback
  BAD-traceback       a traceback on stderr
  BAD-multiline       a refusal of more than one line (or none)
  BAD-unexpected      one line, but "unexpected error": an exception the engine did not map
  BAD-hang            the case ran past its time limit
  BAD-memory          the case grew its memory by more than 1.5 GB (or ran out of memory)
  BAD-corrupt-output  a half-written or wrong output (or a refusal that left files behind)

Each case runs in a forked child of this process (so the CLI is called in-process, with
imports and the classic model already warm, yet a hang, a crash or a memory blow-up only
costs that child): stdout and stderr are captured at the file-descriptor level, so native
libraries' messages count. Prints a JSON summary: counts per category and per family, and
every BAD case with a one-line reproduction.

    .venv/bin/python packaging/fuzz_cli.py [--cases N] [--family NAME] [--seed S]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import os
import pickle
import random
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

FAMILIES = ("audio", "output", "checkpoint", "multitrack", "download")
TIME_LIMIT = 60.0
MEMORY_LIMIT_MB = 1536.0
CATEGORIES = ("ok", "refused", "BAD-traceback", "BAD-multiline", "BAD-unexpected",
              "BAD-hang", "BAD-memory", "BAD-corrupt-output")


@dataclass
class Case:
    """One hostile input: how to make it, the command lines to run, how to check success."""

    family: str
    name: str
    setup: Callable[[Path], None]
    argv: list[list[str]]  # run in order while each exits 0; the last run is classified
    check: str = ""  # "separate", "import", "download", "" (exit code only)
    env: dict[str, str] = field(default_factory=dict)
    limit: float = TIME_LIMIT


# ======================================================================================
# Small generators
# ======================================================================================

def tone(seconds: float, sr: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    """(frames, channels) float32: a tone plus a little noise, -10 dB peak."""
    n = max(int(round(seconds * sr)), 1)
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    x = 0.2 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.05 * rng.standard_normal((n, channels))
    return x.astype(np.float32)


def write_audio(path: Path, data: np.ndarray, sr: int, fmt: str | None = None,
                subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, format=fmt, subtype=subtype)
    return path


FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"),
           "mp3": ("MP3", "MPEG_LAYER_III")}


def valid_file(path: Path, ext: str, seconds: float = 0.4, sr: int = 22050,
               channels: int = 2, seed: int = 0) -> Path:
    fmt, subtype = FORMATS[ext]
    return write_audio(path, tone(seconds, sr, channels, seed), sr, fmt, subtype)


def mutate(path: Path, how: str, rng: random.Random) -> None:
    """Corrupt a file in place: bit flips, truncation, lying length fields."""
    data = bytearray(path.read_bytes())
    if how == "flip-header":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(min(len(data), 64))
            data[i] ^= 1 << rng.randrange(8)
    elif how == "flip-body":
        for _ in range(rng.randint(1, 40)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif how == "zero-run":
        i = rng.randrange(len(data))
        data[i:i + rng.randint(1, 200)] = bytes(min(200, len(data) - i))
    elif how.startswith("truncate"):
        frac = float(how.split(":")[1])
        data = data[:max(1, int(len(data) * frac))]
    elif how == "wav-len-zero":  # RIFF and data sizes 0
        data[4:8] = b"\0\0\0\0"
        at = data.find(b"data")
        if at >= 0:
            data[at + 4:at + 8] = b"\0\0\0\0"
    elif how == "wav-len-huge":
        data[4:8] = b"\xff\xff\xff\xff"
        at = data.find(b"data")
        if at >= 0:
            data[at + 4:at + 8] = b"\xff\xff\xff\xff"
    elif how == "wav-channels-huge":
        at = data.find(b"fmt ")
        if at >= 0:
            data[at + 10:at + 12] = struct.pack("<H", 0xFFFF)
    elif how == "wav-rate-zero":
        at = data.find(b"fmt ")
        if at >= 0:
            data[at + 12:at + 16] = b"\0\0\0\0"
    elif how.startswith("flac-total"):  # STREAMINFO total_samples
        total = int(how.split(":")[1])
        field_ = int.from_bytes(data[21:26], "big") & ~((1 << 36) - 1) | total
        data[21:26] = field_.to_bytes(5, "big")
    elif how == "mp3-xing-huge":
        at = max(data.find(b"Xing"), data.find(b"Info"))
        if at >= 0:
            data[at + 8:at + 12] = (0x7FFFFFFF).to_bytes(4, "big")
    elif how == "ogg-granule":  # absurd granule position in the last page
        at = data.rfind(b"OggS")
        if at >= 0:
            data[at + 6:at + 14] = (2 ** 62).to_bytes(8, "little")
    path.write_bytes(bytes(data))


# -- checkpoints -------------------------------------------------------------------------

TINY = dict(sources=["vocals", "drums"], audio_channels=2, n_fft=64, hop=16,
            front_channels=2, hidden=8, blocks=1, local_channels=2, samplerate=44100)


def tiny_checkpoint(path: Path, **change: Any) -> tuple[dict, dict]:
    """A valid tiny MaskNet checkpoint (`change`: other constructor arguments): its tensors
    and metadata body."""
    import torch

    from stemwright.models.architectures.masknet import MaskNet
    from stemwright.models.zoo import checkpoint as ck

    torch.manual_seed(0)
    kwargs = {**TINY, **change}
    ck.save_checkpoint(path, MaskNet(**kwargs), ck.CheckpointMeta(
        "masknet", kwargs, list(TINY["sources"]), 44100))
    body = json.loads(ck._safetensors_header(path)["__metadata__"][ck.META_KEY])
    tensors, _ = ck._read_safetensors(path)
    return tensors, body


def rewrite_checkpoint(path: Path, tensors: dict, body: dict | str,
                       extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    from stemwright.models.zoo import checkpoint as ck

    text = body if isinstance(body, str) else json.dumps(body)
    save_file(tensors, str(path), metadata={ck.META_KEY: text, "format": "pt", **(extra or {})})


def demucs_safetensors(path: Path, metadata: dict[str, str]) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(path), metadata=metadata)


class _Reduce:
    """Pickles as a call of `func(*args)`: what a hostile .th smuggles in."""

    def __init__(self, func: Any, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self):  # noqa: ANN204
        return (self.func, self.args)


def torch_th(path: Path, obj: Any) -> None:
    import torch

    torch.save(obj, path)


def zip_th(path: Path, members: dict[str, bytes], compress: bool = True) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
                         ) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


# -- YAML --------------------------------------------------------------------------------

def alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def tracks_song(folder: Path, sr: int = 8000, seconds: float = 1.2,
                names: tuple[str, ...] = ("Lead Vox.wav", "Kick.wav", "Bass DI.wav")) -> Path:
    for i, name in enumerate(names):
        write_audio(folder / name, tone(seconds, sr, 2, seed=i), sr)
    return folder


def slakh_song(folder: Path, program: str) -> None:
    write_audio(folder / "mix.flac", tone(1.2, 8000), 8000)
    write_audio(folder / "stems" / "S00.flac", tone(1.2, 8000, seed=1), 8000)
    write_audio(folder / "stems" / "S01.flac", tone(1.2, 8000, seed=2), 8000)
    (folder / "metadata.yaml").write_text(
        "stems:\n  S00: {program_num: 33, inst_class: Bass, is_drum: false}\n"
        f"  S01: {{program_num: {program}, inst_class: Piano, is_drum: false}}\n")


# ======================================================================================
# Case families
# ======================================================================================

SEP = ["separate", "-m", "classic", "-o", "out"]


def audio_cases(rng: random.Random) -> list[Case]:
    cases: list[Case] = []
    mutations = ["flip-header", "flip-body", "zero-run", "truncate:0.5", "truncate:0.1",
                 "truncate:0.02"]
    per_format = {"wav": ["wav-len-zero", "wav-len-huge", "wav-channels-huge",
                          "wav-rate-zero"],
                  "flac": ["flac-total:0", "flac-total:1", f"flac-total:{(1 << 36) - 1}"],
                  "mp3": ["mp3-xing-huge"], "ogg": ["ogg-granule"]}
    for ext in FORMATS:
        for how in mutations + per_format[ext]:
            for k in range(2 if how.startswith("flip") else 1):
                seed = rng.randrange(1 << 30)

                def setup(d: Path, ext=ext, how=how, seed=seed) -> None:
                    path = valid_file(d / f"song.{ext}", ext, seed=seed % 7)
                    mutate(path, how, random.Random(seed))
                cmd = "info" if k else "separate"
                argv = [["info", f"song.{ext}"]] if k else [[*SEP, f"song.{ext}"]]
                cases.append(Case("audio", f"{ext}-{how}-{cmd}-{seed}", setup, argv,
                                  "" if k else "separate"))
    for sr in (8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000):
        for frames in (1, 2, 7):
            def setup(d: Path, sr=sr, frames=frames) -> None:
                write_audio(d / "short.wav", tone(frames / sr, sr), sr)
            cases.append(Case("audio", f"{frames}-sample-{sr}", setup,
                              [[*SEP, "short.wav"]], "separate"))
    for sr in (8000, 44100, 192000):
        for ext in ("flac", "ogg", "mp3"):
            if ext == "mp3" and sr > 48000:
                continue

            def setup(d: Path, sr=sr, ext=ext) -> None:
                valid_file(d / f"one.{ext}", ext, seconds=1 / sr, sr=sr)
            cases.append(Case("audio", f"1-sample-{ext}-{sr}", setup, [[*SEP, f"one.{ext}"]],
                              "separate"))
    specials: dict[str, Callable[[Path], None]] = {
        "nan-float-wav": lambda d: _special(d, np.nan),
        "inf-float-wav": lambda d: _special(d, np.inf),
        "all-nan-wav": lambda d: write_audio(d / "x.wav", np.full((4000, 2), np.nan,
                                                                   np.float32), 8000,
                                             subtype="FLOAT"),
        "huge-float-wav": lambda d: write_audio(d / "x.wav", tone(0.5, 8000) * 1e30, 8000,
                                                subtype="FLOAT"),
        "silent-wav": lambda d: write_audio(d / "x.wav", np.zeros((8000, 2), np.float32),
                                            8000),
        "full-scale-square": lambda d: write_audio(
            d / "x.wav", np.sign(tone(0.5, 8000)) * 0.999, 8000),
        "mono-wav": lambda d: write_audio(d / "x.wav", tone(0.5, 16000, 1), 16000),
        "6ch-wav": lambda d: write_audio(d / "x.wav", tone(0.5, 16000, 6), 16000),
        "6ch-flac": lambda d: write_audio(d / "x.wav", tone(0.5, 16000, 6), 16000),
        "32ch-wav": lambda d: write_audio(d / "x.wav", tone(0.2, 8000, 32), 8000),
        "empty-file": lambda d: (d / "x.wav").write_bytes(b""),
        "random-bytes": lambda d: (d / "x.wav").write_bytes(os.urandom(3000)),
        "text-as-mp3": lambda d: (d / "x.wav").write_text("not audio\n" * 50),
        "riff-header-only": lambda d: (d / "x.wav").write_bytes(b"RIFF\x24\0\0\0WAVE"),
        "directory-as-file": lambda d: (d / "x.wav").mkdir(),
        "missing-file": lambda d: None,
        "u8-wav": lambda d: write_audio(d / "x.wav", tone(0.5, 8000), 8000, subtype="PCM_U8"),
        "double-wav": lambda d: write_audio(d / "x.wav", tone(0.5, 8000), 8000,
                                            subtype="DOUBLE"),
        "ulaw-wav": lambda d: write_audio(d / "x.wav", tone(0.5, 8000), 8000, subtype="ULAW"),
        "odd-rate-7919": lambda d: write_audio(d / "x.wav", tone(0.5, 7919), 7919),
        "rate-1hz": lambda d: write_audio(d / "x.wav", tone(3, 1), 1),
        "rate-384k": lambda d: write_audio(d / "x.wav", tone(0.05, 384000), 384000),
        "dc-offset": lambda d: write_audio(d / "x.wav", np.full((4000, 2), 0.5, np.float32),
                                           8000),
        "fifo": lambda d: os.mkfifo(d / "x.wav"),
        "dev-zero-link": lambda d: (d / "x.wav").symlink_to("/dev/zero"),
        "dangling-link": lambda d: (d / "x.wav").symlink_to(d / "nowhere.wav"),
    }
    for name, setup in specials.items():
        cases.append(Case("audio", name, setup, [[*SEP, "x.wav"]], "separate"))
        if name in ("nan-float-wav", "huge-float-wav", "6ch-wav", "fifo", "dev-zero-link",
                    "rate-1hz", "empty-file"):
            cases.append(Case("audio", name + "-info", setup, [["info", "x.wav"]]))
    return cases


def _special(d: Path, value: float) -> None:
    data = tone(0.5, 8000)
    data[1000, 0] = value
    write_audio(d / "x.wav", data, 8000, subtype="FLOAT")


def output_cases(rng: random.Random) -> list[Case]:
    def song(d: Path, name: str = "track.wav") -> Path:
        return write_audio(d / name, tone(0.5, 8000), 8000)

    def ro_folder(d: Path) -> None:
        song(d)
        (d / "out").mkdir()
        (d / "out").chmod(0o555)

    def stem_is_dir(d: Path) -> None:
        song(d)
        (d / "out" / "track" / "track - Other.wav").mkdir(parents=True)

    def force_with_dir(d: Path) -> None:
        song(d)
        folder = d / "out" / "track"
        folder.mkdir(parents=True)
        for s in ("Vocals", "Drums", "Bass"):
            write_audio(folder / f"track - {s}.wav", tone(0.5, 8000), 8000)
        (folder / "track - Other.wav").mkdir()

    def existing(d: Path) -> None:
        song(d)
        write_audio(d / "out" / "track" / "track - Vocals.wav", tone(0.5, 8000), 8000)

    def stale_temp(d: Path) -> None:
        song(d)
        folder = d / "out" / "track"
        folder.mkdir(parents=True)
        stale = folder / ".track - Vocals.wav.0badf00d.part"
        stale.write_bytes(b"RIFF half")
        os.utime(stale, (time.time() - 3600, time.time() - 3600))

    long_name = "a" * 251 + ".wav"
    multi = "é" * 120 + ".wav"  # 240 bytes
    cases = [
        Case("output", "o-is-a-file", lambda d: (song(d), (d / "out").write_text("x")),
             [[*SEP, "track.wav"]], "separate"),
        Case("output", "read-only-folder", ro_folder, [[*SEP, "track.wav"]], "separate"),
        Case("output", "file-where-song-folder-goes",
             lambda d: (song(d), (d / "out").mkdir(), (d / "out" / "track").write_text("x")),
             [[*SEP, "track.wav"]], "separate"),
        Case("output", "folder-where-stem-goes", stem_is_dir, [[*SEP, "track.wav"]],
             "separate"),
        Case("output", "force-with-folder-as-stem", force_with_dir,
             [[*SEP, "--force", "track.wav"]], "separate"),
        Case("output", "existing-without-force", existing, [[*SEP, "track.wav"]], "separate"),
        Case("output", "existing-with-force", existing, [[*SEP, "--force", "track.wav"]],
             "separate"),
        Case("output", "stale-temporary", stale_temp, [[*SEP, "track.wav"]], "separate"),
        Case("output", "long-name-251", lambda d: song(d, long_name),
             [[*SEP, long_name]], "separate"),
        Case("output", "long-name-multibyte", lambda d: song(d, multi), [[*SEP, multi]],
             "separate"),
        Case("output", "name-300-bytes",
             lambda d: song(d, "ü" * 125 + ".wav"), [[*SEP, "ü" * 125 + ".wav"]], "separate"),
        Case("output", "non-utf8-name",
             lambda d: os.rename(song(d), os.fsencode(d) + b"/bad\xff\xfe.wav"),
             [[*SEP, os.fsdecode(b"bad\xff\xfe.wav")]], "separate"),
        Case("output", "same-name-inputs",
             lambda d: (song(d, "a/track.wav"), song(d, "b/track.wav")),
             [[*SEP, "a/track.wav", "b/track.wav"]], "separate"),
        Case("output", "same-file-twice", song, [[*SEP, "track.wav", "track.wav"]], "separate"),
        Case("output", "unicode-normalised-clash",
             lambda d: (song(d, "a/caf\u00e9.wav"), song(d, "b/cafe\u0301.wav")),
             [[*SEP, "a/caf\u00e9.wav", "b/cafe\u0301.wav"]], "separate"),
        Case("output", "case-clash", lambda d: (song(d, "Track.wav"), song(d, "x/track.wav")),
             [[*SEP, "Track.wav", "x/track.wav"]], "separate"),
        Case("output", "newline-in-name", lambda d: song(d, "two\nlines.wav"),
             [[*SEP, "two\nlines.wav"]], "separate"),
        Case("output", "mix-name-at-root", lambda d: song(d, "mix.wav"), [[*SEP, "mix.wav"]],
             "separate"),
        Case("output", "dotdot-song-folder", lambda d: song(d, "x/../mix.wav"),
             [[*SEP, "mix.wav"]], "separate"),
        Case("output", "nested-missing-output", song,
             [["separate", "-m", "classic", "-o", "a/b/c/out", "track.wav"]], "separate"),
        Case("output", "output-dev-null", song,
             [["separate", "-m", "classic", "-o", "/dev/null", "track.wav"]], "separate"),
        Case("output", "output-proc", song,
             [["separate", "-m", "classic", "-o", "/proc/self", "track.wav"]], "separate"),
        Case("output", "output-empty-string", song,
             [["separate", "-m", "classic", "-o", "", "track.wav"]], "separate"),
        Case("output", "flac-32-bit", song, [[*SEP, "--format", "flac", "--bit-depth", "32",
                                             "track.wav"]], "separate"),
        Case("output", "flac-16", song, [[*SEP, "--format", "flac", "--bit-depth", "16",
                                          "track.wav"]], "separate"),
        Case("output", "stems-subset", song, [[*SEP, "track.wav", "--stems", "vocals",
                                               "bass"]], "separate"),
        Case("output", "stem-not-produced", song, [[*SEP, "track.wav", "--stems", "wind"]],
             "separate"),
        Case("output", "unknown-stem", song, [[*SEP, "track.wav", "--stems", "kazoo"]],
             "separate"),
        Case("output", "usage-stems-eat-the-file", song,
             [[*SEP, "--stems", "vocals", "track.wav"]], "separate"),
        Case("output", "usage-bad-float", song, [[*SEP, "--overlap", "abc", "track.wav"]],
             "separate"),
        Case("output", "usage-unknown-command", song, [["bogus", "track.wav"]]),
        Case("output", "bad-overlap", song, [[*SEP, "--overlap", "5", "track.wav"]],
             "separate"),
        Case("output", "nan-overlap", song, [[*SEP, "--overlap", "nan", "track.wav"]],
             "separate"),
        Case("output", "negative-segment", song, [[*SEP, "--segment", "-1", "track.wav"]],
             "separate"),
        Case("output", "bad-device", song, [[*SEP, "--device", "tpu:7", "track.wav"]],
             "separate"),
        Case("output", "unknown-model", song, [["separate", "-m", "nope", "track.wav"]],
             "separate"),
        Case("output", "output-symlink-loop",
             lambda d: (song(d), (d / "out").symlink_to(d / "out")), [[*SEP, "track.wav"]],
             "separate"),
        Case("output", "no-residual", song, [[*SEP, "--no-residual", "track.wav"]],
             "separate"),
    ]
    return cases


def checkpoint_cases(rng: random.Random) -> list[Case]:
    """`models import NAME FILE` on hostile model files (then `separate` when it imports)."""
    import math

    import torch
    from demucs.htdemucs import HTDemucs

    cases: list[Case] = []

    def add(name: str, setup: Callable[[Path], None], filename: str,
            model: str = "mine") -> None:
        argv = [["models", "import", model, filename],
                ["separate", "-m", model, "-o", "out", "song.wav"]]

        def full(d: Path) -> None:
            write_audio(d / "song.wav", tone(0.3, 44100, 1), 44100)
            setup(d)
        cases.append(Case("checkpoint", name, full, argv, "separate",
                          env={"STEMWRIGHT_CACHE_DIR": "cache"}))

    def body_change(change: dict) -> Callable[[Path], None]:
        def setup(d: Path) -> None:
            tensors, body = tiny_checkpoint(d / "m.safetensors")
            new = {**body, **change}
            if "kwargs" in change and isinstance(change["kwargs"], dict):
                new["kwargs"] = {**body["kwargs"], **change["kwargs"]}
            rewrite_checkpoint(d / "m.safetensors", tensors, new)
        return setup

    add("valid-tiny", lambda d: tiny_checkpoint(d / "m.safetensors"), "m.safetensors")
    add("mono-model", lambda d: tiny_checkpoint(d / "m.safetensors", audio_channels=1),
        "m.safetensors")
    changes = {
        "samplerate-1e9": {"samplerate": 10 ** 9}, "samplerate-1": {"samplerate": 1},
        "samplerate-8000": {"samplerate": 8000}, "samplerate-neg": {"samplerate": -44100},
        "samplerate-str": {"samplerate": "44100"}, "samplerate-nan": {"samplerate": math.nan},
        "samplerate-float": {"samplerate": 44100.5}, "samplerate-none": {"samplerate": None},
        "sources-str": {"kwargs": {"sources": "vocals"}},
        "sources-swapped": {"kwargs": {"sources": ["drums", "vocals"]}},
        "sources-unknown": {"kwargs": {"sources": ["kazoo", "drums"]},
                            "stems": ["kazoo", "drums"]},
        "sources-empty": {"kwargs": {"sources": []}, "stems": []},
        "sources-dup": {"kwargs": {"sources": ["vocals", "vocals"]},
                        "stems": ["vocals", "vocals"]},
        "stems-int": {"stems": 5}, "blocks-1e7": {"kwargs": {"blocks": 10 ** 7}},
        "blocks-1e6": {"kwargs": {"blocks": 10 ** 6}},
        "hidden-1e6": {"kwargs": {"hidden": 10 ** 6}},
        "hidden-neg": {"kwargs": {"hidden": -8}}, "hidden-float": {"kwargs": {"hidden": 8.5}},
        "n_fft-0": {"kwargs": {"n_fft": 0}}, "hop-0": {"kwargs": {"hop": 0}},
        "hop-huge": {"kwargs": {"hop": 10 ** 12}}, "unknown-kwarg": {"kwargs": {"evil": 1}},
        "architecture-unknown": {"architecture": "os.system"},
        "architecture-none": {"architecture": None}, "version-99": {"version": 99},
        "version-str": {"version": "1"}, "format-wrong": {"format": "pickle"},
        "kwargs-list": {"kwargs": [1, 2]}, "provenance-huge": {"provenance": "x" * 2_000_000},
        "provenance-deep": {"provenance": "@"},
    }
    for name, change in changes.items():
        if name == "provenance-deep":
            def setup(d: Path) -> None:
                tensors, body = tiny_checkpoint(d / "m.safetensors")
                text = json.dumps({**body, "provenance": "@"})
                rewrite_checkpoint(d / "m.safetensors", tensors,
                                   text.replace('"@"', "[" * 100_000 + "]" * 100_000))
            add(name, setup, "m.safetensors")
        else:
            add(name, body_change(change), "m.safetensors")

    def weights(fn: Callable[[dict], dict]) -> Callable[[Path], None]:
        def setup(d: Path) -> None:
            tensors, body = tiny_checkpoint(d / "m.safetensors")
            rewrite_checkpoint(d / "m.safetensors", fn(tensors), body)
        return setup

    def poison(value: float) -> Callable[[dict], dict]:
        def fn(t: dict) -> dict:
            key = next(k for k, v in t.items() if v.is_floating_point())
            t[key] = t[key].clone()
            t[key].view(-1)[0] = value
            return t
        return fn

    add("nan-weight", weights(poison(math.nan)), "m.safetensors")
    add("inf-weight", weights(poison(math.inf)), "m.safetensors")
    add("all-nan", weights(lambda t: {k: torch.full_like(v, math.nan) if v.is_floating_point()
                                      else v for k, v in t.items()}), "m.safetensors")
    add("half-weights", weights(lambda t: {k: v.half() if v.is_floating_point() else v
                                           for k, v in t.items()}), "m.safetensors")
    add("huge-weights", weights(lambda t: {k: v * 1e30 if v.is_floating_point() else v
                                           for k, v in t.items()}), "m.safetensors")
    add("int-weights", weights(lambda t: {k: v.to(torch.int32) for k, v in t.items()}),
        "m.safetensors")
    add("missing-weight", weights(lambda t: dict(list(t.items())[1:])), "m.safetensors")
    add("extra-weight", weights(lambda t: {**t, "evil": torch.zeros(3)}), "m.safetensors")
    add("wrong-shape", weights(lambda t: {k: (v.flatten() if i == 0 else v)
                                          for i, (k, v) in enumerate(t.items())}),
        "m.safetensors")
    add("no-weights", weights(lambda t: {}), "m.safetensors")

    def raw(data: bytes, name: str = "m.safetensors") -> Callable[[Path], None]:
        return lambda d: (d / name).write_bytes(data)

    add("empty-file", raw(b""), "m.safetensors")
    add("random-bytes", raw(os.urandom(2000)), "m.safetensors")
    add("header-len-huge", raw(struct.pack("<Q", 2 ** 63) + b"{}"), "m.safetensors")
    add("header-len-past-end", raw(struct.pack("<Q", 10 ** 6) + b"{}"), "m.safetensors")
    add("header-not-json", raw(struct.pack("<Q", 8) + b"not json"), "m.safetensors")
    add("header-json-list", raw(struct.pack("<Q", 2) + b"[]"), "m.safetensors")
    add("header-deep", raw(struct.pack("<Q", 200_000) + b"[" * 100_000 + b"]" * 100_000),
        "m.safetensors")
    add("offsets-past-end", raw(_header_bytes({"w": {"dtype": "F32", "shape": [10 ** 9],
                                                     "data_offsets": [0, 4 * 10 ** 9]}})),
        "m.safetensors")
    add("metadata-huge", raw(_header_bytes({"__metadata__": {"stemwright": "x" * 5_000_000}})),
        "m.safetensors")

    def truncated(frac: float) -> Callable[[Path], None]:
        def setup(d: Path) -> None:
            tiny_checkpoint(d / "m.safetensors")
            data = (d / "m.safetensors").read_bytes()
            (d / "m.safetensors").write_bytes(data[:int(len(data) * frac)])
        return setup
    for frac in (0.05, 0.5, 0.95):
        add(f"truncated-{frac}", truncated(frac), "m.safetensors")

    def flips(seed: int) -> Callable[[Path], None]:
        def setup(d: Path) -> None:
            tiny_checkpoint(d / "m.safetensors")
            mutate(d / "m.safetensors", "flip-body", random.Random(seed))
        return setup
    for _ in range(6):
        add("bit-flips", flips(rng.randrange(1 << 30)), "m.safetensors")

    # demucs-style safetensors and .th
    sources = json.dumps({"sources": ["vocals", "drums"]})
    for name, meta in {
        "demucs-depth-1e6": {"kwargs": json.dumps({"sources": ["vocals"], "depth": 10 ** 6})},
        "demucs-depth-1e7": {"kwargs": json.dumps({"sources": ["vocals"], "depth": 10 ** 7})},
        "demucs-klass-os": {"klass": "os.system"},
        "demucs-kwargs-not-json": {"kwargs": "{"},
        "demucs-args-huge": {"args": json.dumps([1] * 100_000)},
        "demucs-structure-deep": {"structure": "[" * 100_000 + "]" * 100_000},
        "demucs-samplerate-1": {"kwargs": json.dumps({"sources": ["vocals"],
                                                      "samplerate": 1})},
        "demucs-segment-huge": {"kwargs": json.dumps({"sources": ["vocals"],
                                                      "segment": 1e300})},
    }.items():
        full = {"klass": "demucs.htdemucs.HTDemucs", "args": "[]", "kwargs": sources, **meta}
        add(name, lambda d, full=full: demucs_safetensors(d / "m.safetensors", full),
            "m.safetensors")

    pickles: dict[str, Any] = {
        "th-os-system": {"klass": _Reduce(os.system, ("echo PWNED > pwned",)), "args": [],
                         "kwargs": {}, "state": {}},
        "th-eval": {"klass": _Reduce(eval, ("1+1",)), "args": [], "kwargs": {}, "state": {}},
        "th-fraction-bomb": {"klass": HTDemucs, "args": [],
                             "kwargs": {"segment": _Reduce(__import__("fractions").Fraction,
                                                           ("1e50000000",))}, "state": {}},
        "th-construct-class": {"klass": _Reduce(HTDemucs, (["vocals"],)), "args": [],
                               "kwargs": {}, "state": {}},
        "th-sources-str": {"klass": HTDemucs, "args": [], "kwargs": {"sources": "vocals"},
                           "state": {}},
        "th-no-klass": {"args": [], "kwargs": {}, "state": {}},
        "th-list": [1, 2, 3],
        "th-state-nan": {"klass": HTDemucs, "args": [], "kwargs": {"sources": ["vocals"]},
                         "state": {"w": torch.full((3,), math.nan)}},
        "th-depth-huge": {"klass": HTDemucs, "args": [], "kwargs": {"sources": ["vocals"],
                                                                    "depth": 10 ** 7},
                          "state": {}},
    }
    for name, obj in pickles.items():
        add(name, lambda d, obj=obj: torch_th(d / "m.th", obj), "m.th")
    add("th-zip-bomb", lambda d: zip_th(d / "m.th", {"archive/data.pkl": bytes(60 << 20),
                                                     "archive/version": b"3\n"}), "m.th")
    add("th-many-members", lambda d: zip_th(d / "m.th", {f"archive/data/{i}": b"x"
                                                         for i in range(20000)}), "m.th")
    add("th-legacy-pickle",
        lambda d: (d / "m.th").write_bytes(pickle.dumps(_Reduce(os.system, ("echo PWNED",)))),
        "m.th")
    add("th-random", raw(os.urandom(5000), "m.th"), "m.th")
    add("th-truncated-zip", lambda d: (torch_th(d / "m.th", pickles["th-sources-str"]),
                                       (d / "m.th").write_bytes((d / "m.th").read_bytes()[:300])),
        "m.th")
    add("pth-openunmix-junk", raw(os.urandom(500), "m.pth"), "m.pth")
    add("unknown-suffix", lambda d: tiny_checkpoint(d / "m.safetensors") or
        shutil.move(d / "m.safetensors", d / "m.bin"), "m.bin")
    add("missing-file", lambda d: None, "nope.safetensors")
    add("directory", lambda d: (d / "m.safetensors").mkdir(), "m.safetensors")
    add("name-dotdot", lambda d: tiny_checkpoint(d / "m.safetensors"), "m.safetensors",
        model="../evil")
    add("name-slash", lambda d: tiny_checkpoint(d / "m.safetensors"), "m.safetensors",
        model="a/b")
    add("name-registry", lambda d: tiny_checkpoint(d / "m.safetensors"), "m.safetensors",
        model="htdemucs")
    add("name-classic", lambda d: tiny_checkpoint(d / "m.safetensors"), "m.safetensors",
        model="classic")
    add("name-empty", lambda d: tiny_checkpoint(d / "m.safetensors"), "m.safetensors",
        model="")
    add("name-long", lambda d: tiny_checkpoint(d / "m.safetensors"), "m.safetensors",
        model="m" * 300)
    return cases


def _header_bytes(header: dict) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text


def multitrack_cases(rng: random.Random) -> list[Case]:
    cases: list[Case] = []

    def both(name: str, setup: Callable[[Path], None], oracles: tuple[str, ...] = ("irm2",)
             ) -> None:
        cases.append(Case("multitrack", name + "-list", setup, [["multitrack", "c"]]))
        cases.append(Case("multitrack", name + "-json", setup, [["multitrack", "--json",
                                                                  "c"]]))
        for oracle in oracles:
            cases.append(Case("multitrack", f"{name}-evaluate-{oracle}", setup,
                              [["evaluate", "--oracle", oracle, "-o", "report", "c"]]))

    def with_good(fn: Callable[[Path], None]) -> Callable[[Path], None]:
        def setup(d: Path) -> None:
            tracks_song(d / "c" / "Good")
            fn(d / "c")
        return setup

    both("good", with_good(lambda c: None), ("irm1", "irm2", "ibm"))
    both("empty-folder", lambda d: (d / "c").mkdir())
    both("missing-folder", lambda d: None)
    both("folder-is-file", lambda d: (d / "c").write_text("x"))
    for levels in (4, 8, 9):
        both(f"alias-bomb-mapping-{levels}", with_good(
            lambda c, levels=levels: (c / "stemwright-mapping.yaml").write_text(
                alias_bomb(levels) + "songs: {}\n")))
        both(f"alias-bomb-metadata-{levels}", with_good(
            lambda c, levels=levels: (tracks_song(c / "Bad"), (c / "Bad" / "metadata.yaml")
                                      .write_text(alias_bomb(levels)
                                                  + "stems: {S01: {program_num: 1}}\n"))))
    both("deep-mapping-yaml", with_good(lambda c: (c / "stemwright-mapping.yaml").write_text(
        "songs: " + "[" * 20000 + "]" * 20000 + "\n")))
    both("deep-mapping-json", with_good(lambda c: (c / "stemwright-mapping.json").write_text(
        '{"songs": ' + "[" * 100000 + "]" * 100000 + "}")))
    both("deep-metadata", with_good(lambda c: (tracks_song(c / "Bad"), (
        c / "Bad" / "metadata.yaml").write_text("stems: " + "{a: " * 3000 + "1"
                                                 + "}" * 3000 + "\n"))))
    both("mapping-huge", with_good(lambda c: (c / "stemwright-mapping.yaml").write_bytes(
        b"#" * (9 << 20))))
    both("mapping-binary", with_good(lambda c: (c / "stemwright-mapping.yaml").write_bytes(
        os.urandom(4000))))
    both("mapping-wrong-types", with_good(lambda c: (c / "stemwright-mapping.yaml")
                                          .write_text("songs: [1, 2, {a: b}]\n")))
    both("mapping-unknown-stem", with_good(lambda c: (c / "stemwright-mapping.yaml")
                                           .write_text("songs:\n  Good: {Kick.wav: kazoo}\n")))
    both("mapping-python-tag", with_good(lambda c: (c / "stemwright-mapping.yaml").write_text(
        "songs: !!python/object/apply:os.system ['echo PWNED']\n")))
    for program in ("banana", "1e999", "-5", "300", "[1, 2]", "2.5", "null", ".nan"):
        both(f"slakh-program-{program}", lambda d, program=program: (
            slakh_song(d / "c" / "Track00001", "0"),
            slakh_song(d / "c" / "Track00002", program)))
    for where in ("absolute", "dotdot", "stem_dir", "mix"):
        def medley(d: Path, where: str = where) -> None:
            write_audio(d / "elsewhere" / "secret.wav", tone(1.2, 8000), 8000)
            root = d / "c"
            tracks_song(root / "Good")
            song = root / "Bad"
            write_audio(song / "Bad_STEMS" / "Bad_STEM_01.wav", tone(1.2, 8000), 8000)
            write_audio(song / "Bad_MIX.wav", tone(1.2, 8000), 8000)
            stems = {"absolute": str(d / "elsewhere" / "secret.wav"),
                     "dotdot": "../../../elsewhere/secret.wav"}
            filename = stems.get(where, "Bad_STEM_01.wav")
            stem_dir = "../../elsewhere" if where == "stem_dir" else "Bad_STEMS"
            mix = "/etc/passwd" if where == "mix" else "Bad_MIX.wav"
            (song / "Bad_METADATA.yaml").write_text(
                f"mix_filename: {mix}\nstem_dir: {stem_dir}\nstems:\n"
                f"  S01: {{filename: '{filename}', instrument: male singer}}\n"
                "  S02: {filename: Bad_STEM_01.wav, instrument: drum set}\n")
        both(f"medleydb-{where}", medley)

    def loop(d: Path) -> None:
        tracks_song(d / "c" / "Album" / "Song")
        (d / "c" / "Album" / "Song" / "again").symlink_to(d / "c" / "Album")
        (d / "c" / "Album" / "loop").symlink_to(d / "c")

    def fan_out(d: Path) -> None:
        tracks_song(d / "c" / "A" / "Song")
        for i in range(20):
            (d / "c" / "A" / f"link{i:02d}").symlink_to(d / "c" / "A")

    def deep_dirs(d: Path) -> None:
        folder = d / "c"
        for i in range(60):
            folder = folder / f"d{i}"
        tracks_song(folder)

    both("symlink-loop", loop)
    both("symlink-fan-out", fan_out)
    both("symlink-self", with_good(lambda c: (c / "self").symlink_to(c)))
    both("dangling-track-link", with_good(lambda c: (c / "Good" / "Gtr.wav").symlink_to(
        c / "nowhere.wav")))
    both("deep-directories", deep_dirs)
    tracks = {
        "one-sample-tracks": lambda s: tracks_song(s, seconds=1 / 8000),
        "two-sample-tracks": lambda s: tracks_song(s, seconds=2 / 8000),
        "one-sample-192k": lambda s: tracks_song(s, sr=192000, seconds=1 / 192000),
        "nan-track": lambda s: (tracks_song(s), _special(s, np.nan),
                                (s / "x.wav").rename(s / "Guitar.wav")),
        "inf-track": lambda s: (tracks_song(s), _special(s, np.inf),
                                (s / "x.wav").rename(s / "Guitar.wav")),
        "silent-tracks": lambda s: [write_audio(s / n, np.zeros((9600, 2), np.float32), 8000)
                                    for n in ("Lead Vox.wav", "Kick.wav")],
        "one-silent-track": lambda s: (tracks_song(s), write_audio(
            s / "Piano.wav", np.zeros((9600, 2), np.float32), 8000)),
        "mixed-rates": lambda s: (tracks_song(s, names=("Lead Vox.wav",)), tracks_song(
            s, sr=11025, names=("Kick.wav",))),
        "mixed-lengths": lambda s: (tracks_song(s, names=("Lead Vox.wav",)), tracks_song(
            s, seconds=0.3, names=("Kick.wav",))),
        "mixed-channels": lambda s: (tracks_song(s, names=("Lead Vox.wav",)), write_audio(
            s / "Kick.wav", tone(1.2, 8000, 1), 8000), write_audio(
            s / "Bass.wav", tone(1.2, 8000, 6), 8000)),
        "corrupt-track": lambda s: (tracks_song(s), (s / "Guitar.wav").write_bytes(
            os.urandom(3000))),
        "empty-track": lambda s: (tracks_song(s), (s / "Guitar.wav").write_bytes(b"")),
        "truncated-flac-track": lambda s: (tracks_song(s), valid_file(
            s / "Guitar.flac", "flac", 1.2, 8000), mutate(s / "Guitar.flac", "truncate:0.3",
                                                          random.Random(0))),
        "musdb-one-sample": lambda s: [write_audio(s / f"{n}.wav", tone(1 / 44100, 44100),
                                                   44100)
                                       for n in ("mixture", "vocals", "drums", "bass",
                                                 "other")],
        "musdb-nan-mixture": lambda s: ([write_audio(s / f"{n}.wav", tone(1.2, 8000), 8000)
                                         for n in ("vocals", "drums", "bass", "other")],
                                        _special(s, np.nan),
                                        (s / "x.wav").rename(s / "mixture.wav")),
        "huge-float-track": lambda s: (tracks_song(s), write_audio(
            s / "Guitar.wav", tone(1.2, 8000) * 1e30, 8000, subtype="FLOAT")),
    }
    for name, fn in tracks.items():
        both(name, lambda d, fn=fn: (tracks_song(d / "c" / "Good"),
                                     (d / "c" / "Bad").mkdir(), fn(d / "c" / "Bad")),
             ("irm1", "irm2", "ibm"))
    for name, fn in (("one-sample-only", tracks["one-sample-tracks"]),
                     ("nan-only", tracks["nan-track"])):
        both(name, lambda d, fn=fn: ((d / "c" / "S").mkdir(parents=True), fn(d / "c" / "S")),
             ("irm1", "irm2", "ibm"))
    return cases


def download_cases(port: int) -> list[Case]:
    cases = []
    base = f"http://127.0.0.1:{port}"
    modes = ["404", "500", "wrongsum", "trickle", "truncated", "slow-headers", "empty",
             "huge-length", "redirect-loop", "redirect-file", "garbage-status", "html",
             "close-at-once", "chunked-bad"]
    for mode in modes:
        cases.append(Case("download", mode, lambda d: None, [["models", "download",
                                                              "htdemucs"]], "download",
                          env={"STEMWRIGHT_CACHE_DIR": "cache",
                               "STEMWRIGHT_MODEL_MIRROR": f"{base}/{mode}/"}, limit=30))
    closed = _closed_port()
    for name, mirror in {"refused-port": f"http://127.0.0.1:{closed}/",
                         "not-a-url": "not a url", "ftp": "ftp://127.0.0.1:9/",
                         "file": "file:///etc/", "no-host": "http:///",
                         "bad-port": "http://127.0.0.1:notaport/",
                         "newline": f"{base}/404/\r\nX-Evil: 1"}.items():
        cases.append(Case("download", name, lambda d: None, [["models", "download",
                                                              "htdemucs"]], "download",
                          env={"STEMWRIGHT_CACHE_DIR": "cache",
                               "STEMWRIGHT_MODEL_MIRROR": mirror}, limit=30))

    def stale_part(d: Path) -> None:
        folder = d / "cache" / "models" / "htdemucs"
        folder.mkdir(parents=True)
        part = folder / ".955717e8-8726e21a.th.dead00.part"
        part.write_bytes(b"half")
        os.utime(part, (time.time() - 3600, time.time() - 3600))
    cases.append(Case("download", "stale-part-404", stale_part,
                      [["models", "download", "htdemucs"]], "download",
                      env={"STEMWRIGHT_CACHE_DIR": "cache",
                           "STEMWRIGHT_MODEL_MIRROR": f"{base}/404/"}, limit=30))
    cases.append(Case("download", "cache-is-file",
                      lambda d: (d / "cache").write_text("x"),
                      [["models", "download", "htdemucs"]], "download",
                      env={"STEMWRIGHT_CACHE_DIR": "cache",
                           "STEMWRIGHT_MODEL_MIRROR": f"{base}/wrongsum/"}, limit=30))
    return cases


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Mirror(BaseHTTPRequestHandler):
    """A loopback mirror whose first path element picks the fault."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        mode = self.path.strip("/").split("/")[0]
        body = b"x" * 100_000
        try:
            if mode == "404":
                self.send_error(404)
            elif mode == "500":
                self.send_error(500)
            elif mode == "slow-headers":
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n":
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.3)
            elif mode == "garbage-status":
                self.wfile.write(b"HELLO THERE\r\n\r\n")
            elif mode == "close-at-once":
                return
            elif mode.startswith("redirect"):
                self.send_response(302)
                where = "file:///etc/passwd" if mode == "redirect-file" else self.path
                self.send_header("Location", where)
                self.end_headers()
            else:
                length = {"truncated": len(body) * 10, "huge-length": 10 ** 15,
                          "empty": 0}.get(mode, len(body))
                self.send_response(200)
                if mode == "chunked-bad":
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(length))
                self.send_header("Content-Type", "text/html" if mode == "html" else
                                 "application/octet-stream")
                self.end_headers()
                if mode == "trickle":
                    for i in range(200):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(0.2)
                elif mode == "chunked-bad":
                    self.wfile.write(b"zz\r\nxx\r\n")
                elif mode != "empty":
                    self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *args: Any) -> None:
        pass


# ======================================================================================
# Running a case in a forked child
# ======================================================================================

def _rss_mb(field_: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_ + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cap_memory(extra_mb: float = 6144) -> None:
    """Let this child map at most `extra_mb` more than now: a memory bomb then fails with
    MemoryError (classified BAD-memory) instead of pushing a shared machine into swap."""
    with contextlib.suppress(ValueError, OSError):
        limit = int((_rss_mb("VmSize") + extra_mb) * 2 ** 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    out = {}
    for p in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(folder))] = p.read_bytes()
    return out


def _check_separation(d: Path, argv: list[str]) -> str:
    """Empty when every written stem has its input's length and rate and (all stems, residual
    folded into other) the stems add up to the mix; else what is wrong."""
    from stemwright.models.audio.channels import downmix_to_stereo
    from stemwright.models.audio.io import load_audio
    from stemwright.models.cli.batch import RECORD_NAME
    from stemwright.models.remix.export import song_name

    logging.disable(logging.WARNING)  # the CLI has shown its warnings already

    out = Path(argv[argv.index("-o") + 1]) if "-o" in argv else Path("separated")
    files = [a for a in argv[1:] if not a.startswith("-") and (d / a).exists()
             and a not in (str(out),) and argv[argv.index(a) - 1] not in ("-m", "-o",
                                                                          "--format",
                                                                          "--bit-depth")]
    for name in files:
        mix = load_audio(d / name)
        if mix.data.shape[0] > 2:  # stems of multichannel audio are stereo
            mix = dataclasses.replace(mix, data=downmix_to_stereo(mix.data))
        folder = d / out / song_name(Path(name))
        stems = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        if any(p.name == RECORD_NAME for p in stems):  # the --skip-existing record: kept
            stems = [p for p in stems if p.name != RECORD_NAME]
        hidden = [p.name for p in stems if p.name.startswith(".")]
        if hidden:
            return f"temporary files left: {hidden}"
        if not stems:
            return f"no stems in {folder}"
        total = None
        for p in stems:
            info = sf.info(str(p))
            if info.samplerate != mix.samplerate or info.frames != mix.data.shape[-1]:
                return (f"{p.name}: {info.frames} frames at {info.samplerate} Hz, the input "
                        f"{mix.data.shape[-1]} at {mix.samplerate}")
            data = sf.read(str(p), dtype="float32", always_2d=True)[0].T
            if data.shape[0] != min(mix.data.shape[0], 2):
                return f"{p.name}: {data.shape[0]} channels, the input {mix.data.shape[0]}"
            if not np.all(np.isfinite(data)):
                return f"{p.name}: not finite"
            total = data if total is None else total + data
        complete = len(stems) == 4 and "--no-residual" not in argv and "--stems" not in argv
        if complete and total is not None:
            err = float(np.max(np.abs(total - mix.data)))
            clipped = any(float(np.max(np.abs(sf.read(str(p), dtype="float32")[0]))) >= 0.999
                          for p in stems)
            if err > 2e-3 and not clipped:
                return f"stems do not sum to the mix (max error {err:.2g})"
    return ""


def _child(case: Case, d: Path) -> dict[str, Any]:
    """Run the case's command lines here; return what the parent classifies."""
    import torch

    torch.set_num_threads(1)
    from stemwright.models.cli.commands import main
    from stemwright.models.separation import devices, separator
    from stemwright.models.zoo import download

    # one thread in the child, whatever the separator asks for: an OpenMP pool that the
    # parent (e.g. a test process) already started does not survive fork, and a child
    # that starts using it again can wait forever
    def one_thread(threads: int | None = None) -> int:
        torch.set_num_threads(1)
        return 1

    devices.configure_cpu_threads = one_thread
    separator.configure_cpu_threads = one_thread
    download.STALL_SECONDS = 1.0  # trickling mirrors: the stall deadline, short
    os.chdir(d)
    for key, value in case.env.items():
        os.environ[key] = str(d / value) if key == "STEMWRIGHT_CACHE_DIR" else value
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    _cap_memory()
    base_rss = _rss_mb()
    result: dict[str, Any] = {"steps": []}
    before = _snapshot(d / "out")
    for argv in case.argv:
        with open(d / ".stderr", "w+b") as err_file, open(d / ".stdout", "w+b") as out_file:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = os.dup(1), os.dup(2)
            saved_streams = sys.stdout, sys.stderr
            os.dup2(out_file.fileno(), 1)
            os.dup2(err_file.fileno(), 2)
            # Python's streams too: they need not write to fd 1 and 2 (e.g. under pytest)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - closed below
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            try:
                try:
                    rc = main(argv)
                except SystemExit as exc:
                    rc = exc.code if isinstance(exc.code, int) else 1
                except MemoryError:
                    rc = "MemoryError"
                except BaseException:  # noqa: BLE001 - the classifier's business
                    import traceback

                    traceback.print_exc()
                    rc = "exception"
            finally:
                sys.stdout.close()
                sys.stderr.close()
                sys.stdout, sys.stderr = saved_streams
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
            err_file.seek(0)
            stderr = err_file.read(20_000).decode("utf-8", "replace")
        result["steps"].append({"argv": argv, "rc": rc, "stderr": stderr})
        if rc != 0:
            break
    last = result["steps"][-1]
    result["growth_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base_rss
    problem = ""
    try:
        if last["rc"] == 0 and case.check == "separate" and last["argv"][0] == "separate":
            problem = _check_separation(d, last["argv"])
        elif last["rc"] != 0 and case.check == "separate":
            after = _snapshot(d / "out")
            changed = [k for k in set(before) | set(after) if before.get(k) != after.get(k)]
            if changed:
                problem = f"a refused separation changed files: {sorted(changed)[:3]}"
        if case.check == "download" and last["rc"] != 0:
            folder = d / "cache" / "models" / "htdemucs"
            left = [p.name for p in folder.iterdir()] if folder.is_dir() else []
            if left:
                problem = f"a failed download left {left}"
        if (d / "pwned").exists():
            problem = "a payload ran code"
    except Exception as exc:  # noqa: BLE001
        problem = f"checking the output failed: {type(exc).__name__}: {exc}"
    result["problem"] = problem
    return result


def run_case(case: Case, root: Path, index: int = 0) -> dict[str, Any]:
    """Make the case's files, fork, run it, classify it."""
    d = root / f"{index:04d}-{case.family}"
    d.mkdir(parents=True)
    try:
        case.setup(d)
    except Exception as exc:  # noqa: BLE001 - a generator that cannot build this case
        return {"category": "setup-error", "detail": f"{type(exc).__name__}: {exc}"}
    read_end, write_end = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        try:
            os.setpgid(0, 0)
            data = json.dumps(_child(case, d), default=str).encode()
        except BaseException as exc:  # noqa: BLE001
            data = json.dumps({"steps": [{"argv": case.argv[0], "rc": "exception",
                                          "stderr": f"child failed: {exc!r}"}],
                               "growth_mb": 0, "problem": ""}).encode()
        with contextlib.suppress(OSError):
            while data:
                data = data[os.write(write_end, data):]
        os._exit(0)
    os.close(write_end)
    chunks, timed_out = [], False
    deadline = start + case.limit
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read_end], [], [], left)
        if ready:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    os.close(read_end)
    if timed_out:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    elapsed = time.monotonic() - start
    with contextlib.suppress(OSError):
        for p in d.rglob("*"):  # read-only folders made by the case
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
    if timed_out:
        return {"category": "BAD-hang", "seconds": round(elapsed, 1),
                "detail": f"still running after {case.limit:.0f} s"}
    try:
        result = json.loads(b"".join(chunks))
    except ValueError:
        return {"category": "BAD-memory" if os.WIFSIGNALED(status) and
                os.WTERMSIG(status) == signal.SIGKILL else "BAD-traceback",
                "seconds": round(elapsed, 1),
                "detail": f"the child died (status {status})"}
    return classify(case, result, elapsed)


def classify(case: Case, result: dict[str, Any], elapsed: float) -> dict[str, Any]:
    step = result["steps"][-1]
    rc, err = step["rc"], step["stderr"]
    lines = [line for line in err.splitlines() if line.strip()]
    out = {"seconds": round(elapsed, 1), "rc": rc, "stderr": err[:300]}
    if rc == "MemoryError" or result["growth_mb"] > MEMORY_LIMIT_MB or "MemoryError" in err:
        return {**out, "category": "BAD-memory",
                "detail": f"RSS grew {result['growth_mb']:.0f} MB"}
    if result["problem"]:
        return {**out, "category": "BAD-corrupt-output", "detail": result["problem"]}
    if "Traceback" in err or rc == "exception":
        return {**out, "category": "BAD-traceback"}
    if rc == 0:
        return {**out, "category": "ok"}
    if len(lines) != 1:
        return {**out, "category": "BAD-multiline", "detail": f"{len(lines)} lines"}
    if "unexpected error" in lines[0]:
        return {**out, "category": "BAD-unexpected"}
    return {**out, "category": "refused"}


def repro(case: Case) -> str:
    env = " ".join(f"{k}={v}" for k, v in case.env.items())
    cmds = " && ".join("stemwright " + " ".join(json.dumps(a) if not a or " " in a or "\n" in a
                                                else a for a in argv) for argv in case.argv)
    return f"[{case.family}/{case.name}] {env + ' ' if env else ''}{cmds}"


# ======================================================================================

def build_cases(seed: int, port: int, families: tuple[str, ...] = FAMILIES) -> list[Case]:
    rng = random.Random(seed)
    makers = {"audio": lambda: audio_cases(rng), "output": lambda: output_cases(rng),
              "checkpoint": lambda: checkpoint_cases(rng),
              "multitrack": lambda: multitrack_cases(rng),
              "download": lambda: download_cases(port)}
    return [c for f in families for c in makers[f]()]


def pick(cases: list[Case], n: int | None, seed: int) -> list[Case]:
    """`n` cases spread over the families (round robin over a shuffled order)."""
    if n is None or n >= len(cases):
        return cases
    rng = random.Random(seed)
    by_family: dict[str, list[Case]] = defaultdict(list)
    for c in cases:
        by_family[c.family].append(c)
    for group in by_family.values():
        rng.shuffle(group)
    chosen: list[Case] = []
    while len(chosen) < n:
        for group in by_family.values():
            if group and len(chosen) < n:
                chosen.append(group.pop())
    return chosen


def start_mirror() -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def warm_up(root: Path) -> None:
    """Import the CLI and run one classic separation here, so every forked case is warm."""
    import torch

    torch.set_num_threads(1)
    from stemwright.models.cli.commands import main

    d = root / "warm-up"
    write_audio(d / "w.wav", tone(0.5, 44100), 44100)
    cwd = os.getcwd()
    os.chdir(d)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(
                io.StringIO()):
            main(["separate", "-m", "classic", "-o", "out", "w.wav"])
    finally:
        os.chdir(cwd)


def run_fuzz(cases: list[Case], root: Path, log: Callable[[str], None] | None = None
             ) -> dict[str, Any]:
    """Run every case; the JSON-ready summary."""
    counts: Counter[str] = Counter()
    per_family: dict[str, Counter[str]] = defaultdict(Counter)
    bad, notes = [], []
    start = time.monotonic()
    for i, case in enumerate(cases):
        outcome = run_case(case, root, i)
        category = outcome["category"]
        counts[category] += 1
        per_family[case.family][category] += 1
        if log:
            log(f"[{i + 1}/{len(cases)}] {category:18} {outcome.get('seconds', 0):5.1f}s "
                f"{case.family}/{case.name}")
        if category.startswith("BAD") or category == "setup-error":
            bad.append({"category": category, "case": f"{case.family}/{case.name}",
                        "repro": repro(case), "detail": outcome.get("detail", ""),
                        "stderr": outcome.get("stderr", "")})
        elif outcome.get("seconds", 0) > 10:
            notes.append(f"{case.family}/{case.name}: {outcome['seconds']} s")
    return {"cases": len(cases), "seconds": round(time.monotonic() - start, 1),
            "counts": dict(counts),
            "per_family": {f: dict(c) for f, c in per_family.items()},
            "bad": bad, "slow": notes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, help="at most N cases, spread over families")
    parser.add_argument("--family", choices=FAMILIES, action="append",
                        help="only this family (repeat for several)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("-q", "--quiet", action="store_true", help="no line per case")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="stemwright-fuzz-"))
    srv = start_mirror()
    try:
        warm_up(root)
        cases = pick(build_cases(args.seed, srv.server_address[1],
                                 tuple(args.family or FAMILIES)), args.cases, args.seed)
        summary = run_fuzz(cases, root, None if args.quiet else
                           lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        srv.shutdown()
        srv.server_close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(summary, indent=2))
    return 1 if any(k.startswith("BAD") for k in summary["counts"]) else 0


if __name__ == "__main__":
    sys.exit(main())
