"""Make the bundled demo song, resources/demo/<song>/, with `stemwright synth`.

The demo is composed and rendered by our own generator (FluidSynth with Debian's GM
soundfonts, espeak-ng singing), so it comes with its true stems: the app opens it as a
multitrack song and shows separated stems next to the truth. Its licence is ours. Run
from the repository root after changing the generator, and commit the result:

    python packaging/make_demo_song.py            # 20 s, seed 3 -> resources/demo/

It prints the per-track levels and stems of the song so the balance can be checked
without listening, and refuses a song that lacks one of the six stems.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from stemwright.models.stems import STEM_IDS
from stemwright.models.synthetic.generate import generate

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "resources" / "demo"
MAX_BYTES = 10 * 1024 * 1024

README = """# The demo song

`{name}/` is a {seconds:.0f}-second song composed and rendered by `stemwright synth` (seed
{seed}): {style}, {tempo:.0f} bpm, {key}. Each track is its own file (the stem it belongs
to is in `metadata.yaml`), next to `mix.flac` and the MIDI score `song.mid`, so the
separated stems can be compared with the truth. It was made by Stemwright's own code
from General MIDI soundfonts (FluidR3, MuseScore General, TimGM6mb: MIT / GPL-compatible
free licences) and espeak-ng; the song is released under Stemwright's licence (MIT).

Made with `python packaging/make_demo_song.py --seconds {seconds:.0f} --seed {seed}`.
"""


def make_demo(out: Path, seconds: float, seed: int) -> Path:
    """Generate one song into `out`/<style_key>/ (replacing the previous demo)."""
    with tempfile.TemporaryDirectory() as tmp:
        summary = generate(Path(tmp) / "synth", songs=1, seconds=seconds, seed=seed,
                           split="0/0/1", workers=1)
        record = summary["song_list"][0]
        folder = next((Path(tmp) / "synth" / "test").iterdir())
        stems = {t["stem"] for t in record["tracks"]}
        missing = [s for s in STEM_IDS if s not in stems]
        if missing:
            raise SystemExit(f"seed {seed} makes a song without {', '.join(missing)}; "
                             "try another --seed")
        size = sum(p.stat().st_size for p in folder.iterdir())
        if size > MAX_BYTES:
            raise SystemExit(f"the song takes {size / 1e6:.1f} MB; make it shorter")
        name = folder.name.split("_", 1)[1]  # drop the song number
        staging = out.with_name(out.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copytree(folder, staging / name)
        (staging / "README.md").write_text(README.format(
            name=name, seconds=seconds, seed=seed, style=record["style"],
            tempo=record["bpm"], key=record["key_signature"]), encoding="utf-8")
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    for t in record["tracks"]:
        print(f"{t['instrument']:28s} {t['stem']:16s} {t['active_rms_dbfs']} dBFS active RMS, "
              f"peak {t['peak_dbfs']} dBFS")
    print(f"wrote {out / name} ({size / 1e6:.1f} MB)")
    return out / name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    make_demo(args.out, args.seconds, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
