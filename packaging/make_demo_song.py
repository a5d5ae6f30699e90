"""Render the bundled demo song, resources/demo.flac, from `stemwright.models.synth`.

The demo is synthesized by our own code, so its licence is ours. Run from the repository
root after changing the synthesizer, and commit the result:

    python packaging/make_demo_song.py            # 20 s, seed 0 -> resources/demo.flac

It prints per-stem levels so the balance can be checked without listening: nothing may
clip, vocals and drums should be the loudest stems.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from stemwright.models.synth import synth_song

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "resources" / "demo.flac"
SAMPLERATE = 44100
PEAK_DBFS = -1.0
MAX_BYTES = int(2.5 * 1024 * 1024)


def db(x: float) -> float:
    return 20 * math.log10(max(x, 1e-12))


def levels(x: np.ndarray) -> tuple[float, float]:
    """(RMS dBFS, peak dBFS) of `x`."""
    return db(float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))), \
        db(float(np.max(np.abs(x))))


def make_demo(out: Path = DEFAULT_OUT, seconds: float = 20.0, seed: int = 0) -> dict:
    """Render, report and write the demo song; returns the figures printed."""
    mix, stems = synth_song(seconds, SAMPLERATE, seed)
    gain = 10 ** (PEAK_DBFS / 20) / float(np.max(np.abs(mix)))  # loudness: peak at -1 dBFS
    mix = (mix * np.float32(gain)).astype(np.float32)
    report = {"gain_db": db(gain), "stems": {}}
    print(f"demo: {seconds:g} s, seed {seed}, gain {db(gain):+.1f} dB")
    for name, stem in stems.items():
        rms, peak = levels(stem * gain)
        report["stems"][name] = (rms, peak)
        print(f"  {name:16s} RMS {rms:6.1f} dBFS   peak {peak:6.1f} dBFS")
    rms, peak = levels(mix)
    report["mix"] = (rms, peak)
    print(f"  {'mix':16s} RMS {rms:6.1f} dBFS   peak {peak:6.1f} dBFS")
    if peak >= 0.0:
        raise SystemExit("the demo mix clips")

    out.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(out, "w", SAMPLERATE, 2, subtype="PCM_16", format="FLAC") as fh:
        fh.title = "Stemwright demo"
        fh.artist = "Stemwright"
        fh.copyright = "Synthesized by Stemwright; MIT licence"
        fh.write(mix.T)
    size = out.stat().st_size
    report["bytes"] = size
    back, sr = sf.read(out, dtype="float32", always_2d=True)
    info = sf.info(out)
    print(f"wrote {out} ({size / 1e6:.2f} MB, {info.subtype}, {sr} Hz, "
          f"{back.shape[1]} ch, {back.shape[0] / sr:.2f} s)")
    if size > MAX_BYTES:
        raise SystemExit(f"demo file is {size} bytes, over the {MAX_BYTES} byte budget")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    make_demo(args.out, args.seconds, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
