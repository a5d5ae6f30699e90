"""`stemwright models compare`: the architectures side by side, for a class or a choice.

For every trainable architecture (random weights: speed and memory do not depend on
them), the published community architectures Stemwright runs (BS-RoFormer, Mel-Band
RoFormer, MDX23C, SCNet: built from their published configs with random weights, so
nothing is downloaded; see PUBLISHED) and every training-free method: parameters,
receptive field, and the speed (x real time) and peak memory of separating a generated
stereo song of `seconds` (60 by default; a full-size published model on the CPU: a few
seconds, said in its row) at the model's own sample rate, on the CPU and, when there is
one, on the GPU. Each measurement runs in its own subprocess, as `stemwright bench` does, so a
model's peak memory is its own: on Linux the peak resident set is reset just before
the separation, so "peak MB" is the process' high-water mark while separating
(interpreter, torch and weights included) and "model MB" is what was resident before
it. The report is printed and written as JSON, Markdown and CSV.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import StemwrightError
from ..separation.devices import describe_machine
from ..zoo import catalog as zoo
from .runner import peak_rss_mb, proc_status_mb, reset_peak_rss, run_child

#: The training-free methods, from the zoo catalogue (its "classic" family).
CLASSIC = tuple(e.name for e in zoo.ZOO.values() if e.family == "classic")
REPORT_NAME = "models-compare"
MSST = "ZFTurbo/Music-Source-Separation-Training"
#: BS-RoFormer's band widths in the viperx config (62 bands over 1025 bins).
_BS_BANDS = [2] * 24 + [4] * 12 + [12] * 8 + [24] * 8 + [48] * 8 + [128, 129]
_STFT_2048 = {"dim_freqs_in": 1025, "stft_n_fft": 2048, "stft_hop_length": 441,
              "stft_win_length": 2048, "stft_normalized": False, "mask_estimator_depth": 2}
#: The published community architectures, measured with random weights: each config's
#: settings as published in MSST (file named in "file"; the training-only settings
#: left out), read by the engine's own parser (separation.roformer_backend). "small" is a
#: tiny configuration of the same family for tests; "cpu_seconds" caps the measured
#: length on the CPU, where a full-size model takes minutes per chunk.
PUBLISHED: dict[str, dict[str, Any]] = {
    "bs_roformer": {
        "file": "configs/viperx/model_bs_roformer_ep_317_sdr_12.9755.yaml",
        "cpu_seconds": 4.0, "global": "transformer",
        "config": {
            "audio": {"chunk_size": 352800, "num_channels": 2, "sample_rate": 44100},
            "model": {"dim": 512, "depth": 12, "stereo": True, "num_stems": 1,
                      "time_transformer_depth": 1, "freq_transformer_depth": 1,
                      "linear_transformer_depth": 0, "freqs_per_bands": _BS_BANDS,
                      "dim_head": 64, "heads": 8, "attn_dropout": 0.1, "ff_dropout": 0.1,
                      "flash_attn": True, **_STFT_2048},
            "training": {"instruments": ["vocals", "other"], "target_instrument": "vocals"},
            "inference": {"num_overlap": 2}},
        "small": {"dim": 16, "depth": 1, "freqs_per_bands": [16, 17], "dim_head": 8,
                  "heads": 2, "dim_freqs_in": 33, "stft_n_fft": 64, "stft_hop_length": 16,
                  "stft_win_length": 64, "mlp_expansion_factor": 1}},
    "mel_band_roformer": {
        "file": "configs/KimberleyJensen/config_vocals_mel_band_roformer_kj.yaml",
        "cpu_seconds": 4.0, "global": "transformer",
        "config": {
            "audio": {"chunk_size": 352800, "num_channels": 2, "sample_rate": 44100},
            "model": {"dim": 384, "depth": 6, "stereo": True, "num_stems": 1,
                      "time_transformer_depth": 1, "freq_transformer_depth": 1,
                      "num_bands": 60, "dim_head": 64, "heads": 8, "attn_dropout": 0,
                      "ff_dropout": 0, "flash_attn": True, "sample_rate": 44100,
                      **_STFT_2048},
            "training": {"instruments": ["vocals", "other"], "target_instrument": "vocals"},
            "inference": {"num_overlap": 2}},
        "small": {"dim": 16, "depth": 1, "num_bands": 4, "dim_head": 8, "heads": 2,
                  "dim_freqs_in": 33, "stft_n_fft": 64, "stft_hop_length": 16,
                  "stft_win_length": 64, "mlp_expansion_factor": 1}},
    "mdx23c": {
        "file": "configs/config_musdb18_mdx23c.yaml",
        "cpu_seconds": 4.0, "global": "U-Net",
        "config": {
            "audio": {"chunk_size": 261120, "dim_f": 4096, "hop_length": 1024,
                      "n_fft": 8192, "num_channels": 2, "sample_rate": 44100},
            "model": {"act": "gelu", "bottleneck_factor": 4, "growth": 128,
                      "norm": "InstanceNorm", "num_blocks_per_scale": 2,
                      "num_channels": 128, "num_scales": 5, "num_subbands": 4,
                      "scale": [2, 2]},
            "training": {"instruments": ["vocals", "bass", "drums", "other"],
                         "target_instrument": None},
            "inference": {"num_overlap": 4}},
        "small": {"growth": 4, "num_blocks_per_scale": 1, "num_channels": 4,
                  "num_scales": 2, "num_subbands": 2, "bottleneck_factor": 2,
                  "audio": {"chunk_size": 3968, "dim_f": 32, "hop_length": 128,
                            "n_fft": 256}}},
    "scnet": {
        "file": "configs/config_musdb18_scnet.yaml",
        "cpu_seconds": None, "global": "dual-path RNN",
        "config": {
            "audio": {"chunk_size": 485100, "num_channels": 2, "sample_rate": 44100},
            "model": {"sources": ["drums", "bass", "other", "vocals"], "audio_channels": 2,
                      "dims": [4, 32, 64, 128], "nfft": 4096, "hop_size": 1024,
                      "win_size": 4096, "normalized": True, "band_SR": [0.175, 0.392, 0.433],
                      "band_stride": [1, 4, 16], "band_kernel": [3, 4, 16],
                      "conv_depths": [3, 2, 1], "compress": 4, "conv_kernel": 3,
                      "num_dplayer": 6, "expand": 1},
            "training": {"instruments": ["drums", "bass", "other", "vocals"],
                         "target_instrument": None},
            "inference": {"num_overlap": 4}},
        "small": {"dims": [4, 8, 8, 16], "nfft": 256, "hop_size": 64, "win_size": 256,
                  "num_dplayer": 2, "audio": {"chunk_size": 8192}}},
}
PUBLISHED_NOTE = "random weights, published architecture"


def all_names() -> list[str]:
    """Everything `compare` knows: the architectures, the published community ones, then
    the training-free methods."""
    from ..architectures.registry import ARCHITECTURES

    return list(ARCHITECTURES) + list(PUBLISHED) + list(CLASSIC)


def published_config(name: str, small: bool = False):
    """The engine's reading (an MsstConfig) of PUBLISHED[name]'s config, or of its tiny
    test configuration."""
    from ..separation.roformer_backend import parse_msst_config  # lazy: torch

    spec = PUBLISHED[name]
    cfg = {k: dict(v) for k, v in spec["config"].items()}
    if small:
        tiny = dict(spec["small"])
        cfg["audio"].update(tiny.pop("audio", {"chunk_size": 4096}))
        cfg["model"].update(tiny)
    # JSON is YAML: the very text the engine reads from a config file
    return parse_msst_config(json.dumps(cfg), spec["file"].rsplit("/", 1)[-1], name)


def _published_network(name: str, small: bool):
    from ..separation.roformer_backend import ARCHITECTURES as MSST_NETWORKS  # lazy: torch

    cfg = published_config(name, small)
    return cfg, MSST_NETWORKS[cfg.architecture](**cfg.model_kwargs)


def published_separator(name: str, small: bool = False, seed: int = 0,
                        device: str = "cpu", threads: int | None = None):
    """A separator of PUBLISHED[name] with random weights, run as its checkpoints run."""
    import torch

    from ..separation.roformer_backend import RoformerSeparator  # lazy: torch

    torch.manual_seed(seed)
    cfg, model = _published_network(name, small)
    return RoformerSeparator(model, cfg, name, device=device, threads=threads)


def _describe_published(name: str, small: bool) -> dict[str, Any]:
    import torch

    from ..architectures.registry import count_parameters
    from ..separation.roformer_backend import FAMILY_NAMES, mapping_for_instruments

    spec = PUBLISHED[name]
    with torch.device("meta"):  # shapes only
        cfg, model = _published_network(name, small)
    return {"model": name, "title": FAMILY_NAMES[name], "kind": "neural",
            "domain": "spectrogram", "samplerate": cfg.samplerate,
            "stems": list(mapping_for_instruments(cfg.native).produced),
            "params": count_parameters(model), "paper_params": None,
            "receptive_field_samples": None, "receptive_field_seconds": None,
            "receptive_field_note": f"whole chunk ({spec['global']})",
            "segment_seconds": round(cfg.chunk_size / cfg.samplerate, 3),
            "note": f"{PUBLISHED_NOTE} ({'tiny test version of ' if small else ''}MSST "
                    f"{spec['file'].rsplit('/', 1)[-1]})"}


def describe(name: str, small: bool = False) -> dict[str, Any]:
    """Static facts of `name`: kind, domain, rate, stems, parameters, receptive field."""
    from ..architectures.registry import ARCHITECTURES, build, count_parameters, receptive_field

    if name in ARCHITECTURES:
        import torch

        a = ARCHITECTURES[name]
        with torch.device("meta"):  # shapes only
            model = build(name, small)
        field = receptive_field(model)
        return {"model": name, "title": a.title, "kind": "neural", "domain": a.domain,
                "samplerate": a.samplerate, "stems": list(a.stems),
                "params": count_parameters(model), "paper_params": a.paper_params,
                "receptive_field_samples": field,
                "receptive_field_seconds": None if field is None else
                round(field / a.samplerate, 3),
                "receptive_field_note": "" if field is not None else
                f"whole chunk ({a.global_context or 'global layers'})",
                "segment_seconds": a.segment}
    if name in PUBLISHED:
        return _describe_published(name, small)
    if name in CLASSIC:
        entry = zoo.get_entry(name)
        return {"model": name, "title": entry.title, "kind": "classic",
                "domain": "spectrogram", "samplerate": entry.samplerate,
                "stems": list(entry.mapping.produced), "params": 0, "paper_params": None,
                "receptive_field_samples": None, "receptive_field_seconds": None,
                "receptive_field_note": "whole chunk",
                "segment_seconds": 30.0}
    raise StemwrightError(f"nothing to compare called '{name}' (known: "
                          f"{', '.join(all_names())})")


def measure_one(name: str, device: str = "cpu", seconds: float = 60.0, small: bool = False,
                threads: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Separate `seconds` of a generated song with `name`; speed and memory figures.

    Meant to run in a fresh process (see `run_compare`): the memory figures are the
    whole process'.
    """
    import torch

    from ..synthetic.test_songs import synth_song

    facts = describe(name, small)
    cap = PUBLISHED.get(name, {}).get("cpu_seconds")
    capped = cap is not None and device == "cpu" and seconds > cap
    seconds = cap if capped else seconds
    t0 = time.perf_counter()
    if name in PUBLISHED:
        sep = published_separator(name, small, seed=seed, device=device, threads=threads)
    elif facts["kind"] == "neural":
        from ..architectures.registry import random_separator
        sep = random_separator(name, small, seed=seed, device=device, threads=threads)
    else:
        sep = zoo.load_separator(name, device="cpu")
        if threads is not None:
            torch.set_num_threads(threads)
    load_s = time.perf_counter() - t0
    mix, _ = synth_song(seconds, sep.samplerate, seed=1)
    dev = sep.device
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    before = proc_status_mb("VmRSS")
    reset = reset_peak_rss()
    t0 = time.perf_counter()
    result = sep.separate(mix, sep.samplerate)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    wall = time.perf_counter() - t0
    out = dict(facts)
    out.update({
        "device": str(dev), "threads": torch.get_num_threads() if dev.type == "cpu" else None,
        "audio_seconds": seconds, "wall_seconds": round(wall, 2),
        "x_realtime": round(seconds / wall, 3), "load_seconds": round(load_s, 2),
        "model_rss_mb": before, "peak_rss_mb": peak_rss_mb(),
        "peak_rss_is_separation_only": reset, "segment_seconds": sep.segment,
        "stems_out": list(result.stems),
    })
    if capped:
        out["note"] = (f"{facts['note']}; CPU figures on {seconds:g} s of audio only (a "
                       "full-size model takes minutes per chunk on a small CPU)")
    if dev.type == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return out


def default_devices() -> list[str]:
    """The CPU, and the GPU when there is one."""
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def run_compare(names: list[str] | None = None, seconds: float = 60.0,
                devices: list[str] | None = None, small: bool = False,
                threads: int | None = None, timeout: float | None = None,
                progress=None) -> dict[str, Any]:
    """Measure every model on every device, each in a subprocess.

    Returns {"machine", "seconds", "small", "results": [one dict per model and device]};
    a run that fails or times out is recorded with an "error" instead of figures.
    """
    names = list(names) if names else all_names()
    for name in names:
        describe(name)  # unknown names fail before anything runs
    devices = devices or default_devices()
    results = []
    for name in names:
        for device in devices:
            if device != "cpu" and name in CLASSIC:
                continue  # NumPy on the CPU whatever the device
            if progress is not None:
                progress(f"{name} on {device} ...")
            cmd = [sys.executable, "-m", "stemwright.models.benchmarks.compare", "--one", name,
                   "--device", device, "--seconds", str(seconds)]
            if small:
                cmd.append("--small")
            if threads is not None:
                cmd += ["--threads", str(threads)]
            figures, error = run_child(cmd, timeout)
            if error is not None:
                results.append(dict(describe(name, small), device=device, error=error))
                continue
            results.append(figures)
    import torch

    gpu = torch.device("cuda") if any(d.startswith("cuda") for d in devices) else None
    return {"machine": describe_machine(gpu), "seconds": seconds, "small": small,
            "results": results}


# -- report -----------------------------------------------------------------------------

COLUMNS = ("model", "kind", "domain", "rate (Hz)", "params", "receptive field",
           "CPU x-RT", "CPU peak MB", "GPU x-RT", "GPU peak MB", "note")


def _params(n: int, paper: float | None) -> str:
    if not n:
        return "0"
    text = f"{n / 1e6:.2f} M" if n >= 100_000 else f"{n / 1e3:.1f} k"
    return text + (f" (paper {paper / 1e6:.1f} M)" if paper else "")


def _mb(peak: float | None, base: float | None) -> str:
    if peak is None:
        return "-"
    return f"{peak:.0f}" + (f" (+{peak - base:.0f})" if base is not None else "")


def _field(row: dict[str, Any]) -> str:
    samples = row.get("receptive_field_samples")
    if samples is None:
        return row.get("receptive_field_note") or "-"
    return f"{samples} ({row['receptive_field_seconds'] * 1000:.0f} ms)"


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per model: the facts, then CPU and GPU figures side by side."""
    rows: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for r in report["results"]:
        name = r["model"]
        if name not in rows:
            rows[name] = {"facts": r}
            order.append(name)
        kind = "gpu" if str(r.get("device", "cpu")).startswith("cuda") else "cpu"
        rows[name][kind] = r
    out = []
    for name in order:
        facts = rows[name]["facts"]
        cells = [name, facts["kind"], facts["domain"], str(facts["samplerate"]),
                 _params(facts["params"], facts.get("paper_params")), _field(facts)]
        for kind in ("cpu", "gpu"):
            r = rows[name].get(kind)
            if r is None:
                cells += ["-", "-"]
            elif "error" in r:
                cells += ["error", "-"]
            else:
                if kind == "gpu":
                    peak = _mb(r.get("peak_gpu_mb"), None)
                else:
                    base = r.get("model_rss_mb") if r.get("peak_rss_is_separation_only") else None
                    peak = _mb(r.get("peak_rss_mb"), base)
                cells += [f"{r['x_realtime']:.2f}", peak]
        cpu = rows[name].get("cpu") or {}
        cells.append(cpu.get("note") or facts.get("note") or "")
        out.append(cells)
    return out


def to_markdown(report: dict[str, Any]) -> str:
    """The comparison as a Markdown table, with a line on how it was measured."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    machine = report.get("machine", {})
    cpu = machine.get("cpu") or machine.get("processor") or ""
    note = (f"\n{report['seconds']:g} s generated stereo song at each model's rate, random "
            f"weights{' (small test configurations)' if report.get('small') else ''}; "
            f"x-RT = audio seconds per wall second; CPU peak = process high-water mark "
            f"while separating (+ what separating added to the resident model); GPU peak = "
            f"most memory torch allocated. {cpu}".rstrip())
    errors = [f"- {r['model']} on {r.get('device')}: {r['error']}"
              for r in report["results"] if "error" in r]
    return "\n".join(lines) + "\n" + note + ("\n" + "\n".join(errors) if errors else "") + "\n"


def to_csv(report: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    writer.writerows(table_rows(report))
    return buf.getvalue()


def write_report(report: dict[str, Any], folder: str | Path) -> list[Path]:
    """Write models-compare.json, .md and .csv into `folder`; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, text in ((".json", json.dumps(report, indent=2, default=str) + "\n"),
                         (".md", to_markdown(report)), (".csv", to_csv(report))):
        path = folder / (REPORT_NAME + suffix)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _main() -> int:
    parser = argparse.ArgumentParser(prog="stemwright.models.benchmarks.compare")
    parser.add_argument("--one", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    try:
        res = measure_one(args.one, args.device, args.seconds, args.small, args.threads)
    except StemwrightError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(res, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
