"""Score a six-stem model as a four-stem one, the way `stemwright evaluate` scores
classic: electric guitar + wind + other merged into other on both sides, BSS Eval v4 SDR
(median over 1 s windows, museval's window skipping) and whole-track SI-SDR; medians over
songs. This is the like-for-like comparison with a four-stem separator:

    python packaging/score_as_four_stems.py FOLDER MODEL_OR_CHECKPOINT OUT.json
"""

from __future__ import annotations

import json
import sys

import numpy as np

from stemwright.models.architectures import registry as archs
from stemwright.models.evaluation.metrics import bss_eval, si_sdr
from stemwright.models.multitrack.folders import load_song, scan_folder
from stemwright.models.zoo import catalog as zoo
from stemwright.models.zoo.checkpoint import load_checkpoint

FOUR = ("vocals", "drums", "bass", "other")
MERGED = ("other", "electric_guitar", "wind")


def four(stems: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Six stems -> four: electric guitar and wind join other."""
    out = {s: stems[s] for s in FOUR[:3] if s in stems}
    out["other"] = sum(stems[s] for s in MERGED if s in stems)
    return out


def main(argv: list[str]) -> int:
    folder, model, out = argv
    if model.endswith(".safetensors"):
        net, meta = load_checkpoint(model)
        sep = archs.separator_for(net, meta, device="cpu")
    else:
        sep = zoo.load_separator(model, device="cpu")
    rows: dict[str, dict[str, list[float]]] = {s: {"sdr": [], "si_sdr": []} for s in FOUR}
    for song in scan_folder(folder).songs:
        truth = {s: np.sum(t, axis=0) for s, t in load_song(song).by_stem().items()}
        mix = np.sum(list(truth.values()), axis=0).astype(np.float32)
        est, ref = four(sep.separate(mix, 44100).stems), four(truth)
        names = [s for s in FOUR if s in ref]
        med = bss_eval(np.stack([ref[s] for s in names]),
                       np.stack([est[s] for s in names])).medians()["sdr"]
        for i, s in enumerate(names):
            rows[s]["sdr"].append(float(med[i]))
            rows[s]["si_sdr"].append(si_sdr(ref[s], est[s]))
        print(song.key, {s: round(rows[s]["sdr"][-1], 2) for s in names}, flush=True)
    summary = {s: {k: float(np.nanmedian(v)) for k, v in r.items()} | {"songs": len(r["sdr"])}
               for s, r in rows.items()}
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({"model": model, "folder": folder, "summary": summary, "per_song": rows},
                  fh, indent=1)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
