"""Where each true stem's energy lands, for a mask model on a folder of multitrack songs.

    .venv/bin/python packaging/confusion_matrix.py MODEL FOLDER [--json OUT.json]

MODEL: an installed model name (e.g. stemwright6) or a .safetensors checkpoint. FOLDER: songs any
layout `stemwright multitrack` reads (e.g. the test split of `stemwright synth`). Prints the
mean confusion matrix (rows: true stems, columns: estimated stems, % of the row's masked
energy; see models/evaluation/confusion.py) as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys

from stemwright.models import load_separator
from stemwright.models.evaluation.confusion import markdown_table, mean_shares, stem_energy_shares
from stemwright.models.multitrack.folders import load_song, scan_folder
from stemwright.models.multitrack.mixdown import mixdown_song
from stemwright.models.zoo.checkpoint import load_checkpoint


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("folder")
    ap.add_argument("--json", help="also write the per-song and mean matrices here")
    args = ap.parse_args(argv)
    if args.model.endswith(".safetensors"):
        model = load_checkpoint(args.model)[0]
    else:
        model = getattr(load_separator(args.model, device="cpu"), "model", None)
    if model is None:
        sys.exit(f"{args.model}: not a single network; no masks to attribute energy with")
    scan = scan_folder(args.folder)
    per_song = {}
    for song in scan.songs:
        loaded = load_song(song, samplerate=model.samplerate)
        stems = mixdown_song(loaded, procedure="summing").stems
        per_song[song.key] = stem_energy_shares(model, stems)
        print(f"{song.key}: done", file=sys.stderr)
    mean = mean_shares(list(per_song.values()))
    print(markdown_table(mean))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"model": args.model, "songs": per_song, "mean": mean}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
