"""`stemwright bench --pipeline [MODEL]`: the whole pipeline's figures as one JSON object, so
the next change can be compared with this one (issue 17).

* `peak_rss_mb`: the peak resident set of `stemwright separate` (a child process reading
  its own `getrusage` high-water mark) on generated stereo 44.1 kHz WAV songs of each
  length, streamed; `peak_rss_mb_in_memory` the same with STEMWRIGHT_IN_MEMORY=1 (the
  whole-song path) on the shortest and longest songs;
* `command_x_realtime`: song seconds per wall second of the whole `stemwright separate`
  command on the longest song, start-up included; `model_x_realtime`: what `stemwright
  bench MODEL` measures (`Separator.separate` on a generated song in a fresh process,
  model loaded); `ratio` of the two (issue 17 asks for at least 0.8);
* `startup_s`: `stemwright --help`, and importing the command line, in fresh processes;
* `time_to_first_stems_s`: from `Separator.separate(..., partial=...)` to the first
  `PartialStems` on a 4-minute song, warm (model loaded and run once, as the app's engine
  keeps it) and cold (importing torch and loading the model included);
* `metrics_speedup`: `stemwright bench --metrics` (BSS Eval against museval) on a short song;
* `machine`: cores, load average at the start and the end, torch threads.

Every measurement that needs a fresh process runs in one; a failed one is listed under
`errors` with its figure left null, and the others still run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Cancelled, StemwrightError
from ..separation.devices import describe_machine, resolve_device
from ..zoo import catalog as zoo
from .runner import run_child
from .separation import available_models, run_benchmark

DEFAULT_MINUTES = (1.0, 5.0)
FIRST_STEMS_MINUTES = 4.0
METRICS_SECONDS = 30.0
MODEL_SECONDS = 60.0  # `stemwright bench`'s default length
SAMPLERATE = 44100
#: the generated songs repeat a rendered clip of at most this many seconds
CLIP_SECONDS = 60.0

Progress = Callable[[str], None]

#: `stemwright separate` in a child that prints its own peak resident set at the end
#: (as tests/test_streaming.py measures it).
_PEAK_CHILD = (
    "import sys\n"
    "from stemwright.models.cli.commands import main\n"
    "rc = main(sys.argv[1:])\n"
    "try:\n"
    "    import resource\n"
    "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "except ImportError:\n"
    "    peak = -1\n"
    "print('PEAK_RSS', peak, flush=True)\n"
    "sys.exit(rc)\n")

NOTES = [
    "peak_rss_mb: ru_maxrss of the `stemwright separate` process (default output: WAV, "
    "every stem of the model); *_in_memory: STEMWRIGHT_IN_MEMORY=1, the whole-song path",
    "command_x_realtime: song seconds / wall seconds of the whole streamed command on the "
    "longest song, start-up included; model_x_realtime: `stemwright bench MODEL` "
    "(Separator.separate alone, model loaded) on model_seconds of generated audio",
    "time_to_first_stems_s.warm: Separator.separate(partial=...) to the first PartialStems "
    "with the model already loaded and run once, as the app keeps its engine process warm "
    "(serve_separation's warm-up); cold adds importing torch and load_separator in a fresh "
    "process",
    "not measured here (models/ does not import the app): the app's time to first solo "
    "also pays for sending the mix to the engine child process, the partial stems back, "
    "and starting playback (desktop/engine/serve_separation.py)",
]


def parse_minutes(text: str) -> tuple[float, ...]:
    """`--minutes 1,5,60` as sorted song lengths in minutes; StemwrightError when not."""
    try:
        values = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        values = []
    if not values or any(not math.isfinite(v) or v <= 0 or v > 24 * 60 for v in values):
        raise StemwrightError(f"--minutes '{text}': give song lengths in minutes, "
                              "more than 0 and at most 1440, separated by commas "
                              "(e.g. 1,5,60)")
    return tuple(values)


def _key(minutes: float) -> str:
    return f"{minutes:g}"


def _stderr(text: str) -> None:
    print(f"bench --pipeline: {text}", file=sys.stderr, flush=True)


def _check_model(name: str) -> None:
    """Unknown or missing models fail before anything runs."""
    zoo.get_entry(name)
    if name not in {n for n, _ in available_models(False)}:
        raise StemwrightError(f"{name} is not installed, so it cannot be benchmarked; "
                              f"run `stemwright models download {name}` first")


def _check_disk(folder: Path, minutes: Sequence[float], stems: int) -> None:
    """Refuse before writing when the songs (16-bit) and the largest song's stems (24-bit)
    would not fit in `folder`."""
    frames = [m * 60 * SAMPLERATE for m in minutes]
    need = sum(frames) * 2 * 2 + max(frames) * 2 * 3 * stems
    free = shutil.disk_usage(folder).free
    if need * 1.1 > free:
        raise StemwrightError(f"{folder}: the songs and stems need about "
                              f"{need / 2**30:.1f} GB, only {free / 2**30:.1f} GB free; "
                              "choose shorter --minutes or set TMPDIR to a larger disk")


def _clip(seconds: float) -> np.ndarray:
    """A rendered stereo clip to repeat: float32 [2, n]."""
    from ..synthetic.test_songs import synth_song  # lazy: renders with scipy

    mix, _ = synth_song(min(seconds, CLIP_SECONDS), SAMPLERATE, seed=1)
    return mix


def generated_song(seconds: float) -> np.ndarray:
    """`seconds` of generated stereo 44.1 kHz audio (a clip repeated): float32 [2, n]."""
    clip = _clip(seconds)
    n = int(round(seconds * SAMPLERATE))
    return np.tile(clip, (1, -(-n // clip.shape[1])))[:, :n]


def write_song(path: Path, seconds: float, clip: np.ndarray) -> Path:
    """Write `seconds` of `clip` repeated as 16-bit stereo WAV, block by block (the parent
    never holds a long song); to a temp name renamed at the end."""
    import soundfile as sf

    n = int(round(seconds * SAMPLERATE))
    stage = path.with_name(path.name + ".part")
    with sf.SoundFile(stage, "w", SAMPLERATE, 2, subtype="PCM_16", format="WAV") as fh:
        done = 0
        while done < n:
            block = clip[:, :min(clip.shape[1], n - done)]
            fh.write(block.T)
            done += block.shape[1]
    os.replace(stage, path)
    return path


def command_figures(song: Path, out: Path, model: str, device: str, in_memory: bool,
                    timeout: float) -> dict[str, Any]:
    """Run `stemwright separate` on `song` in a child: wall seconds and peak RSS (MB), or
    {"error": ...}. The output folder is removed afterwards."""
    env = {**os.environ, "STEMWRIGHT_IN_MEMORY": "1" if in_memory else "0"}
    cmd = [sys.executable, "-c", _PEAK_CHILD, "separate", str(song), "-m", model,
           "--device", device, "-o", str(out)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    finally:
        wall = time.perf_counter() - t0
        shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    peak = None
    for line in proc.stdout.splitlines():
        if line.startswith("PEAK_RSS "):
            kb = float(line.split()[1])
            peak = None if kb < 0 else round(
                kb / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
    return {"wall_s": round(wall, 2), "peak_rss_mb": peak}


def _cli() -> list[str]:
    """How a user starts `stemwright`: the console script beside this Python, else -m."""
    script = Path(sys.executable).with_name("stemwright.exe" if os.name == "nt"
                                             else "stemwright")
    return [str(script)] if script.exists() else [sys.executable, "-m", "stemwright.models.cli"]


def startup_seconds(repeats: int = 3) -> dict[str, Any]:
    """Best wall time of `stemwright --help` and of importing the command line, each in a
    fresh process, over `repeats` runs."""
    runs = {"help": [*_cli(), "--help"],
            "import_commands": [sys.executable, "-c", "import stemwright.models.cli.commands"]}
    out: dict[str, Any] = {}
    for name, cmd in runs.items():
        best = math.inf
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            except subprocess.TimeoutExpired:
                raise StemwrightError(f"{name} took over 120 s") from None
            if proc.returncode != 0:
                raise StemwrightError(f"`{' '.join(cmd[-2:])}` failed: "
                                      f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
            best = min(best, time.perf_counter() - t0)
        out[name] = round(best, 3)
    out["runs"] = max(1, repeats)
    out["help_command"] = " ".join(Path(c).name for c in runs["help"][:-1]) + " --help"
    return out


def _until_first(sep, mix: np.ndarray) -> tuple[float, bool]:
    """Seconds from `separate(partial=...)` to the first PartialStems (then cancelled), and
    True; or to the whole result and False when the model reports nothing early."""
    first: list[float] = []
    t0 = time.perf_counter()

    def partial(_stems) -> None:
        if not first:
            first.append(time.perf_counter() - t0)

    try:
        sep.separate(mix, SAMPLERATE, partial=partial, cancel=lambda: bool(first))
    except Cancelled:
        pass
    return (first[0], True) if first else (time.perf_counter() - t0, False)


def first_stems(model: str, device: str, minutes: float) -> dict[str, Any]:
    """Time to the first stems on a generated song (meant for a fresh process: the cold
    figure includes importing torch and loading the model)."""
    t0 = time.perf_counter()
    import torch

    import_s = time.perf_counter() - t0
    mix = generated_song(minutes * 60)
    t0 = time.perf_counter()
    sep = zoo.load_separator(model, device=device)
    load_s = time.perf_counter() - t0
    cold, partial = _until_first(sep, mix)
    # the engine's warm-up (serve_separation): one second of silence through the model
    sep.separate(np.zeros((2, sep.samplerate), np.float32), sep.samplerate)
    warm, _ = _until_first(sep, mix)
    return {"song_minutes": minutes, "warm": round(warm, 3),
            "cold": round(import_s + load_s + cold, 3), "import_torch_s": round(import_s, 3),
            "load_separator_s": round(load_s, 3), "partial": partial,
            "torch_threads": torch.get_num_threads()}


def metrics_figures(seconds: float, device: str) -> tuple[dict[str, Any] | None, str | None]:
    """`stemwright bench --metrics` on `seconds`: (its main figures, None), or (None, why)."""
    from ..evaluation.evaluate import run_metrics_benchmark  # lazy: loads torch, scipy

    res = run_metrics_benchmark(seconds, device)
    if "speedup" not in res:
        return None, f"metrics_speedup left out: museval {res.get('museval', 'missing')}"
    keys = ("seconds", "stemwright_s", "museval_s", "speedup", "within_1e-6_db")
    return {k: res[k] for k in keys if k in res}, None


def _machine(device: str) -> dict[str, Any]:
    info = describe_machine(resolve_device(device))
    info["cores_usable"] = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                            else os.cpu_count())
    return info


def _load() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def run_pipeline(model: str = zoo.DEFAULT_MODEL, minutes: Sequence[float] = DEFAULT_MINUTES,
                 device: str = "auto", model_seconds: float | None = None,
                 first_minutes: float = FIRST_STEMS_MINUTES,
                 metrics_seconds: float | None = METRICS_SECONDS, repeats: int = 3,
                 progress: Progress | None = _stderr) -> dict[str, Any]:
    """Measure the whole pipeline with `model` (see the module's docstring); returns the
    report. `model_seconds` defaults to 60 s (at most the longest song); `metrics_seconds`
    None leaves the metrics out."""
    say = progress or (lambda _text: None)
    minutes = sorted(set(minutes))
    if not minutes or min(minutes) <= 0:
        raise StemwrightError("song lengths must be more than 0 minutes")
    _check_model(model)
    dev = str(resolve_device(device))
    longest = minutes[-1] * 60
    model_seconds = model_seconds or min(MODEL_SECONDS, longest)
    load_start = _load()
    report: dict[str, Any] = {"model": model, "device": dev, "song_minutes": minutes}
    errors: list[str] = []

    say("start-up")
    try:
        report["startup_s"] = startup_seconds(repeats)
    except StemwrightError as exc:
        report["startup_s"] = None
        errors.append(f"start-up: {exc}")

    runs: list[dict[str, Any]] = []
    rss: dict[str, float | None] = {}
    rss_mem: dict[str, float | None] = {}
    bench: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="stemwright-bench-") as tmp:
        folder = Path(tmp)
        _check_disk(folder, minutes, len(zoo.get_entry(model).mapping.produced))
        say("writing the songs")
        clip = _clip(longest)
        songs = {m: write_song(folder / f"song {_key(m)} min.wav", m * 60, clip)
                 for m in minutes}
        del clip
        plan = [(m, False) for m in minutes]
        plan += [(m, True) for m in dict.fromkeys((minutes[0], minutes[-1]))]
        for m, in_memory in plan:
            if m == minutes[-1] and not in_memory:
                say(f"`stemwright bench {model}` on {model_seconds:g} s")
                bench, error = _model_bench(model, dev, model_seconds)
                if error:
                    errors.append(f"model bench: {error}")
            mode = "in_memory" if in_memory else "streamed"
            say(f"`stemwright separate` on {_key(m)} min ({mode})")
            fig = command_figures(songs[m], folder / "out", model, dev, in_memory,
                                  timeout=300 + 10 * m * 60)
            if "error" in fig:
                errors.append(f"separate {_key(m)} min {mode}: {fig['error']}")
            runs.append({"minutes": m, "mode": mode, **fig,
                         "x_realtime": round(m * 60 / fig["wall_s"], 3)
                         if "wall_s" in fig else None})
            (rss_mem if in_memory else rss)[_key(m)] = fig.get("peak_rss_mb")
    report["peak_rss_mb"] = rss
    report["peak_rss_mb_in_memory"] = rss_mem
    command = next((r["x_realtime"] for r in runs
                    if r["minutes"] == minutes[-1] and r["mode"] == "streamed"), None)
    model_rt = bench.get("x_realtime") if bench else None
    report["command_x_realtime"] = command
    report["model_x_realtime"] = model_rt
    report["ratio"] = round(command / model_rt, 3) if command and model_rt else None
    report["model_seconds"] = model_seconds
    report["command_runs"] = runs

    say(f"time to the first stems on {first_minutes:g} min")
    figures, error = run_child([sys.executable, "-m", "stemwright.models.benchmarks.pipeline",
                                "--first", model, "--device", dev,
                                "--minutes", str(first_minutes)],
                               timeout=300 + 10 * first_minutes * 60)
    if error:
        errors.append(f"time to first stems: {error}")
    report["time_to_first_stems_s"] = figures

    notes = list(NOTES)
    report["metrics_speedup"] = None
    if metrics_seconds:
        say(f"BSS Eval against museval on {metrics_seconds:g} s")
        metrics, why = metrics_figures(metrics_seconds, dev)
        report["metrics_speedup"] = metrics["speedup"] if metrics else None
        report["metrics"] = metrics
        if why:
            notes.append(why)
    if figures is not None and not figures.get("partial"):
        notes.append(f"{model} reports no partial stems: the first stems come with the "
                     "whole result")
    machine = _machine(dev)
    machine["load_average_start"], machine["load_average_end"] = load_start, _load()
    report["machine"] = machine
    report["notes"] = notes
    report["errors"] = errors
    return report


def _model_bench(model: str, device: str, seconds: float
                 ) -> tuple[dict[str, Any] | None, str | None]:
    """`stemwright bench MODEL --seconds S` (its own child process): (figures, None) or
    (None, why)."""
    res = run_benchmark([model], device, seconds)["results"][0]
    return (None, res["error"]) if "error" in res else (res, None)


def cmd_bench_pipeline(args: argparse.Namespace) -> int:
    """`stemwright bench --pipeline [MODEL]`: the report as JSON on stdout, progress on
    stderr; 1 when a measurement failed (its figure is null and `errors` says why)."""
    models = list(getattr(args, "models", None) or [])
    if len(models) > 1 or (models and args.pipeline):
        raise StemwrightError("--pipeline measures one model: give it once, as "
                              "`stemwright bench --pipeline MODEL`")
    model = args.pipeline or (models[0] if models else zoo.DEFAULT_MODEL)
    minutes = parse_minutes(args.minutes) if args.minutes else DEFAULT_MINUTES
    report = run_pipeline(model, minutes, args.device, model_seconds=args.seconds)
    print(json.dumps(report, indent=2))
    return 1 if report["errors"] else 0


def _main() -> int:
    parser = argparse.ArgumentParser(prog="stemwright.models.benchmarks.pipeline")
    parser.add_argument("--first", required=True, metavar="MODEL")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--minutes", type=float, default=FIRST_STEMS_MINUTES)
    args = parser.parse_args()
    try:
        res = first_stems(args.first, args.device, args.minutes)
    except StemwrightError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(res))
    return 0


__all__ = ["cmd_bench_pipeline", "command_figures", "first_stems", "generated_song",
           "parse_minutes", "run_pipeline", "startup_seconds", "write_song"]


if __name__ == "__main__":
    sys.exit(_main())
