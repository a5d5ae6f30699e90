"""`stemwright bench`: speed and peak memory of each available model, as JSON.

Each model runs in its own subprocess so its peak memory is its own. The input is a
generated stereo song (models/synth.py), so figures are comparable across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ..errors import StemwrightError
from ..separation.devices import describe_machine, resolve_device
from ..zoo import catalog as zoo
from .runner import peak_rss_mb, run_child

RANDOM_WEIGHT_MODELS = ("htdemucs", "htdemucs_6s")


def is_checkpoint_file(name: str) -> bool:
    """True when a benchmark target names a Stemwright checkpoint file, not a zoo model."""
    return name.endswith(".safetensors") and os.path.isfile(name)


def bench_one(name: str, device: str = "auto", seconds: float = 60.0,
              random_weights: bool = False, segment: float | None = None) -> dict:
    """Separate `seconds` of generated audio with one model; returns its figures."""
    import torch

    from ..synthetic.test_songs import synth_song

    dev = resolve_device(device)
    t0 = time.perf_counter()
    if random_weights:
        from ..separation.demucs_backend import random_demucs
        sep = random_demucs(name, device=dev, segment=segment)
    elif is_checkpoint_file(name):
        from ..architectures.registry import separator_for
        from ..zoo.checkpoint import load_checkpoint
        model, meta = load_checkpoint(name)
        sep = separator_for(model, meta, name=name, device=str(dev), segment=segment)
    else:
        sep = zoo.load_separator(name, device=str(dev), segment=segment)
    load_s = time.perf_counter() - t0
    mix, _ = synth_song(seconds, 44100, seed=1)
    rss_loaded = peak_rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    result = sep.separate(mix, 44100)
    wall = time.perf_counter() - t0
    out = {
        "model": name,
        "weights": "random" if random_weights else "pretrained",
        "device": str(dev),
        "audio_seconds": seconds,
        "wall_seconds": round(wall, 2),
        "x_realtime": round(seconds / wall, 3),
        "load_seconds": round(load_s, 2),
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_load_mb": rss_loaded,
        "segment_seconds": sep.segment,
        "stems": list(result.stems),
    }
    if dev.type == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return out


def available_models(random_weights: bool) -> list[tuple[str, bool]]:
    """(model, random_weights) pairs to benchmark: installed models, plus random-weight
    demucs architectures when asked."""

    out = [(e.name, False) for e in zoo.list_models()
           if not e.needs_download or zoo.is_installed(e.name)]
    if random_weights:
        out += [(n, True) for n in RANDOM_WEIGHT_MODELS]
    return out


def run_benchmark(models: list[str] | None = None, device: str = "auto", seconds: float = 60.0,
                  random_weights: bool = False, segment: float | None = None) -> dict:
    """Benchmark each model in a subprocess; returns {"machine": ..., "results": [...]}."""
    dev = resolve_device(device)
    todo = available_models(random_weights)
    if models:
        wanted = set(models)
        files = [m for m in models if is_checkpoint_file(m)]
        todo = [(n, r) for n, r in todo if n in wanted] + [(f, False) for f in files]
        missing = wanted - {n for n, _ in todo}
        if missing:
            raise StemwrightError(f"not available to benchmark: {', '.join(sorted(missing))} "
                                  "(download it, or add --random-weights for demucs models)")
    results = []
    for name, rand in todo:
        cmd = [sys.executable, "-m", "stemwright.models.benchmarks.separation", "--one", name,
               "--device", str(dev), "--seconds", str(seconds)]
        if rand:
            cmd.append("--random-weights")
        if segment is not None:
            cmd += ["--segment", str(segment)]
        figures, error = run_child(cmd)
        if error is not None:
            results.append({"model": name, "weights": "random" if rand else "pretrained",
                            "error": error})
            continue
        results.append(figures)
    return {"machine": describe_machine(dev), "results": results}


def _main() -> int:
    parser = argparse.ArgumentParser(prog="stemwright.models.benchmarks.separation")
    parser.add_argument("--one", required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--segment", type=float)
    parser.add_argument("--random-weights", action="store_true")
    args = parser.parse_args()
    try:
        res = bench_one(args.one, args.device, args.seconds, args.random_weights, args.segment)
    except StemwrightError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
