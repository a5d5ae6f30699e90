"""Evaluating models and oracles on the user's own multitrack songs.

`evaluate(folder, models, oracles)` scans the folder (multitrack.py), mixes every song
(mixdown.py), separates its mixture with every model and oracle, and scores each stem with
BSS Eval v4 (SDR, ISR, SIR, SAR: median over 1 s windows), SI-SDR and whole-track SDR
(metrics.py). It reports progress, can be cancelled, and hands each finished song to
`on_song` so a window can fill its table while the rest runs. `write_json` / `write_csv`
save the report; `EvaluationReport.summary()` gives per-stem medians over songs and their
mean.

Stems are compared where both sides have them. When a model cannot produce a stem the song
has (a four-stem model on a song with guitar), that reference is added to "other", as the
separator folds what it leaves into "other"; when a model produces a stem the song lacks,
that estimate is added to "other" too. Each score lists what its stem includes.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..classic.oracles import Oracle, get_oracle
from ..errors import Cancelled, StemwrightError
from ..multitrack.folders import Scan, Song, load_song, scan_folder
from ..multitrack.mixdown import PROCEDURES, Mixdown, mixdown_song
from ..progress import CancelCheck, Progress, ProgressCallback, check_cancel
from ..separation.separator import SeparationResult, Separator
from ..stems import STEM_IDS
from ..zoo.catalog import load_separator
from .metrics import ROBUST_RIDGE, Decomposition, bss_eval, decompose, sdr, si_sdr

BSS_METRICS = ("sdr", "isr", "sir", "sar")
METRICS = (*BSS_METRICS, "si_sdr", "sdr_track")
FILTER_MODES = ("auto", "museval", "robust")
_FILTERED = ("isr", "sir", "sar")  # the metrics that depend on the distortion filters
METRIC_TITLES = {"sdr": "SDR", "isr": "ISR", "sir": "SIR", "sar": "SAR", "si_sdr": "SI-SDR",
                 "sdr_track": "whole-track SDR"}


@dataclass
class StemScore:
    """Scores of one stem of one song by one system (dB; NaN when not measurable)."""

    sdr: float = math.nan  # BSS Eval v4, median over windows
    isr: float = math.nan
    sir: float = math.nan
    sar: float = math.nan
    si_sdr: float = math.nan  # whole track
    sdr_track: float = math.nan  # whole track, 10 log10(|s|^2 / |s - s_hat|^2)
    windows: int = 0  # windows the BSS Eval median is over
    unreliable: bool = False  # ISR/SIR/SAR are numerical noise (see metrics.bss_eval)
    robust: bool = False  # ISR/SIR/SAR from the regularised filter fit, not museval's
    includes: tuple[str, ...] = ()  # other stems merged into this one for the comparison


@dataclass
class SongResult:
    """Everything measured on one song."""

    key: str
    name: str
    layout: str
    duration: float
    samplerate: int
    present: tuple[str, ...]
    absent: tuple[str, ...]
    mixture_source: str
    residual_db: float | None
    notes: list[str] = field(default_factory=list)
    scores: dict[str, dict[str, StemScore]] = field(default_factory=dict)  # system -> stem
    errors: dict[str, str] = field(default_factory=dict)  # system -> why it has no scores
    seconds: dict[str, float] = field(default_factory=dict)  # system -> separation time


@dataclass(frozen=True)
class SystemInfo:
    """A model or an oracle in the report."""

    name: str
    kind: str  # "model" or "oracle"


@dataclass
class EvaluationReport:
    """Per-song scores of every system, with the settings they were measured under."""

    folder: str
    systems: list[SystemInfo]
    songs: list[SongResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """{system: {stem: {metric: median over songs}}}, plus stem "mean": the mean of
        the per-stem medians (stems no song could score are left out)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for system in self.systems:
            per_stem: dict[str, dict[str, float]] = {}
            for stem in STEM_IDS:
                rows = [s.scores[system.name][stem] for s in self.songs
                        if stem in s.scores.get(system.name, {})]
                if rows:  # ISR/SIR/SAR flagged as numerical noise are left out
                    per_stem[stem] = {m: _median([getattr(r, m) for r in rows
                                                  if not (r.unreliable and m in _FILTERED)])
                                      for m in METRICS}
                    per_stem[stem]["songs"] = len(rows)
            if per_stem:
                per_stem["mean"] = {m: _mean([v[m] for v in per_stem.values()])
                                    for m in METRICS}
            out[system.name] = per_stem
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (NaN and infinities as null)."""
        return _clean({
            "folder": self.folder, "settings": self.settings,
            "systems": [asdict(s) for s in self.systems],
            "summary": self.summary(),
            "songs": [asdict(s) for s in self.songs],
            "problems": self.problems,
        })


# --------------------------------------------------------------------------------------
# Comparing stems
# --------------------------------------------------------------------------------------

@dataclass
class Alignment:
    """References and estimates brought onto the same stems, [S, C, T] each."""

    stems: list[str]
    references: np.ndarray
    estimates: np.ndarray
    includes: dict[str, tuple[str, ...]]


def align_stems(references: Mapping[str, np.ndarray], estimates: Mapping[str, np.ndarray]
                ) -> Alignment:
    """Pair reference and estimated stems; what only one side has is added to "other"."""
    common = [s for s in STEM_IDS if s in references and s in estimates]
    extra_refs = [s for s in references if s not in estimates and s != "other"]
    extra_ests = [s for s in estimates if s not in references and s != "other"]
    stems = [s for s in common if s != "other"]
    refs = [references[s] for s in stems]
    ests = [estimates[s] for s in stems]
    includes: dict[str, tuple[str, ...]] = {}
    if "other" in estimates:
        ref_parts = [s for s in ("other", *extra_refs) if s in references]
        if ref_parts:
            stems.append("other")
            refs.append(np.sum([references[s] for s in ref_parts], axis=0))
            ests.append(np.sum([estimates[s] for s in ("other", *extra_ests)
                                if s in estimates], axis=0))
            if extra_refs or extra_ests:
                includes["other"] = (*extra_refs, *extra_ests)
    if not stems:
        return Alignment([], np.zeros((0, 1, 0)), np.zeros((0, 1, 0)), includes)
    return Alignment(stems, np.stack(refs), np.stack(ests), includes)


def score_stems(references: Mapping[str, np.ndarray], estimates: Mapping[str, np.ndarray],
                samplerate: int, window: float = 1.0, skip: str = "any",
                filters: str = "auto", device: str = "auto") -> dict[str, StemScore]:
    """BSS Eval v4, SI-SDR and whole-track SDR for every stem both sides have (merged into
    "other" as `align_stems` says). An estimate that is all silence gets no BSS Eval
    scores (museval cannot score one; its reference still counts) but a whole-track SDR.

    `filters`: "museval" fits the distortion filters exactly as museval; "robust" with
    diagonal loading; "auto" (default) as museval, refitted robustly only for the stems
    whose museval ISR/SIR/SAR are numerical noise (`StemScore.robust` marks them). SDR
    does not depend on the filters.
    """
    if filters not in FILTER_MODES:
        raise ValueError(f"filters must be one of {', '.join(FILTER_MODES)}")
    a = align_stems(references, estimates)
    scores: dict[str, StemScore] = {}
    for i, stem in enumerate(a.stems):
        scores[stem] = StemScore(si_sdr=si_sdr(a.references[i], a.estimates[i]),
                                 sdr_track=sdr(a.references[i], a.estimates[i]),
                                 includes=a.includes.get(stem, ()))
    if a.stems:
        win = max(1, int(round(window * samplerate)))
        ridge = ROBUST_RIDGE if filters == "robust" else 0.0
        bss = bss_eval(a.references, a.estimates, win, win, skip=skip, ridge=ridge,
                       device=device)
        _fill(scores, a.stems, bss, BSS_METRICS, filters == "robust")
        redo = [a.stems[j] for j in range(len(a.stems)) if bss.unreliable[j]]
        if filters == "auto" and redo:
            bss = bss_eval(a.references, a.estimates, win, win, skip=skip, ridge=ROBUST_RIDGE,
                           device=device)
            _fill(scores, a.stems, bss, _FILTERED, True, only=redo)
    return scores


def _fill(scores: dict[str, StemScore], stems: list[str], bss, metrics: Sequence[str],
          robust: bool, only: Sequence[str] | None = None) -> None:
    medians = bss.medians()
    for j, stem in enumerate(stems):
        if only is not None and stem not in only:
            continue
        s = scores[stem]
        for m in metrics:
            setattr(s, m, float(medians[m][j]))
        s.windows = int(np.sum(~np.isnan(bss.sdr[j])))
        s.unreliable, s.robust = bool(bss.unreliable[j]), robust


def error_components(mix: Mixdown, result: SeparationResult, stem: str,
                     device: str = "auto") -> Decomposition:
    """BSS Eval error signals of one separated stem against the song's references, for
    listening: target, e_spat, e_interf (leakage of the other stems) and e_artif
    (artifacts), each float32 [C, T]. Stems are paired as in `score_stems`."""
    a = align_stems(mix.stems, result.stems)
    if stem not in a.stems:
        raise StemwrightError(f"'{stem}' has no reference to compare with in this song")
    return decompose(a.references, a.estimates, a.stems.index(stem), device=device)


# --------------------------------------------------------------------------------------
# The evaluation
# --------------------------------------------------------------------------------------

def evaluate(source: str | os.PathLike[str] | Scan | Sequence[Song],
             models: Sequence[str | Separator] = (), oracles: Sequence[str | Oracle] = (),
             procedure: str = "adaptive", device: str = "auto", window: float = 1.0,
             skip: str = "any", filters: str = "auto",
             progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
             on_song: Callable[[SongResult], None] | None = None) -> EvaluationReport:
    """Separate and score every song of `source` (a folder, a scan or songs) with every
    model (zoo names or loaded separators) and oracle ("irm1", "irm2", "ibm").

    `filters` says how the BSS Eval filters are fitted (see `score_stems`). Raises
    errors.Cancelled when `cancel()` turns true.
    """
    if isinstance(source, Scan):
        scan = source
    elif isinstance(source, str | os.PathLike):
        scan = scan_folder(source)
    else:
        songs = list(source)
        scan = Scan(root=songs[0].folder.parent if songs else Path("."), songs=songs)
    if not models and not oracles:
        raise StemwrightError("nothing to evaluate: name at least one model or oracle")
    for value, allowed, what in ((procedure, PROCEDURES, "mixing procedure"),
                                 (skip, ("any", "own"), "skip rule"),
                                 (filters, FILTER_MODES, "filter fit")):
        if value not in allowed:
            raise StemwrightError(f"unknown {what} '{value}' (use one of "
                                  f"{', '.join(allowed)})")
    systems = _load_systems(models, oracles, device)
    report = EvaluationReport(
        folder=str(scan.root), systems=[SystemInfo(n, k) for n, k, _ in systems],
        problems=list(scan.problems),
        settings={"procedure": procedure, "window_s": window, "hop_s": window,
                  "skip_silent": skip, "bss_filters": filters,
                  "device": str(device)})
    # progress: per song, one unit to load and mix and two per system (separate, score),
    # weighted by the song's length
    weights = [max(s.duration, 1.0) for s in scan.songs]
    units = 1 + 2 * len(systems)
    total = sum(weights) * units
    done = 0.0
    for song, weight in zip(scan.songs, weights, strict=True):
        check_cancel(cancel)

        def step(units_done: float, message: str = "", base: float = done,
                 weight: float = weight) -> None:
            if progress is not None:
                progress(Progress(min(1.0, (base + units_done * weight) / total),
                                  message=message))

        result = _evaluate_song(song, systems, procedure, device, window, skip, filters,
                                cancel, step)
        done += weight * units
        step(units)
        report.songs.append(result)
        if on_song is not None:
            on_song(result)
    return report


def _load_systems(models: Sequence[str | Separator], oracles: Sequence[str | Oracle],
                  device: str) -> list[tuple[str, str, Separator | Oracle]]:

    out: list[tuple[str, str, Separator | Oracle]] = []
    for m in models:
        sep = load_separator(m, device=device) if isinstance(m, str) else m
        out.append((sep.name, "model", sep))
    for o in oracles:
        oracle = get_oracle(o) if isinstance(o, str) else o
        out.append((oracle.name, "oracle", oracle))
    names = [n for n, _, _ in out]
    if len(set(names)) != len(names):
        raise StemwrightError(f"each model and oracle can be named once (got {names})")
    return out


def _evaluate_song(song: Song, systems: list[tuple[str, str, Separator | Oracle]],
                   procedure: str, device: str, window: float, skip: str, filters: str,
                   cancel: CancelCheck | None, step: Callable[..., None]) -> SongResult:
    """Load, mix, separate and score one song; failures of one system stay with it."""
    result = SongResult(key=song.key, name=song.name, layout=song.layout,
                        duration=song.duration, samplerate=0, present=(), absent=STEM_IDS,
                        mixture_source="sum", residual_db=None, notes=list(song.problems))
    try:
        loaded = load_song(song, cancel=cancel)
        mix = mixdown_song(loaded, procedure)
    except Cancelled:
        raise
    except (StemwrightError, ValueError) as exc:
        result.errors = {name: f"the song could not be loaded: {exc}" for name, _, _ in
                         systems}
        result.notes.append(str(exc))
        step(1 + 2 * len(systems), f"{song.name}: {exc}")
        return result
    result.samplerate = mix.samplerate
    result.duration = mix.length / mix.samplerate
    result.present, result.absent = tuple(mix.stems), mix.absent
    result.mixture_source, result.residual_db = mix.mixture_source, mix.residual_db
    result.notes += mix.notes
    for note in mix.notes:
        step(0, f"{song.name}: {note}")
    step(1)
    for i, (name, kind, system) in enumerate(systems):
        base = 1 + 2 * i
        check_cancel(cancel)

        def sub(p: Progress, base: int = base) -> None:
            step(base + p.fraction, f"{song.name}: {p.message}" if p.message else "")

        t0 = time.perf_counter()
        try:
            if kind == "oracle":
                out = system.separate(mix.mixture, mix.samplerate, mix.stems, progress=sub,
                                      cancel=cancel)
            else:
                out = system.separate(mix.mixture, mix.samplerate, progress=sub, cancel=cancel)
        except Cancelled:
            raise
        except StemwrightError as exc:
            result.errors[name] = str(exc)
            step(base + 2, f"{song.name}: {name} failed: {exc}")
            continue
        result.seconds[name] = round(time.perf_counter() - t0, 3)
        step(base + 1)
        check_cancel(cancel)
        result.scores[name] = score_stems(mix.stems, out.stems, mix.samplerate, window, skip,
                                          filters, device)
        missing = [s for s in mix.stems if s not in out.stems]
        if missing and "other" not in out.stems:  # else they are scored as part of other
            result.notes.append(f"{name} does not produce {', '.join(missing)}")
        robust = [k for k, s in result.scores[name].items() if s.robust]
        if robust and filters == "auto":
            result.notes.append(
                f"{name}: museval's ISR/SIR/SAR are numerical noise for {', '.join(robust)} "
                "(references with numerically empty bands, e.g. lossy-coded stems): these "
                "come from a regularised filter fit instead; SDR is unaffected")
        shaky = [k for k, s in result.scores[name].items() if s.unreliable]
        if shaky:
            result.notes.append(f"{name}: ISR/SIR/SAR unreliable for {', '.join(shaky)}")
        step(base + 2)
    return result


# --------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------

def write_json(report: EvaluationReport, path: str | os.PathLike[str]) -> Path:
    """Write the full report (settings, summary, every song's scores) as JSON."""
    path = Path(path)
    _write_text(path, json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    return path


def write_csv(report: EvaluationReport, path: str | os.PathLike[str]) -> Path:
    """Write one row per song, system, stem and metric, then the medians over songs
    (song "(median)") and their mean over stems (stem "mean")."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["song", "system", "kind", "stem", "metric", "value_db"])
    kinds = {s.name: s.kind for s in report.systems}
    for song in report.songs:
        for system, stems in song.scores.items():
            for stem, score in stems.items():
                for m in METRICS:
                    w.writerow([song.key, system, kinds[system], stem, m,
                                _fmt(getattr(score, m))])
    for system, stems in report.summary().items():
        for stem, values in stems.items():
            for m in METRICS:
                w.writerow(["(median)", system, kinds[system], stem, m, _fmt(values[m])])
    path = Path(path)
    _write_text(path, buf.getvalue())
    return path


def _write_text(path: Path, text: str) -> None:
    if not path.parent.is_dir():
        raise StemwrightError(f"{path}: the folder {path.parent} does not exist")
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise StemwrightError(f"{path}: cannot write the report ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _fmt(value: float) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _median(values: list[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.median(finite)) if finite else math.nan


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        return _clean(x.item())
    return x


# --------------------------------------------------------------------------------------
# Benchmark against museval
# --------------------------------------------------------------------------------------

def load_museval_metrics():
    """museval's metrics module, or None when museval is not installed.

    Importing `museval` itself needs ffmpeg (through musdb and stempeg); the metrics
    module needs only numpy and scipy, so it is loaded from its file when that fails.
    """

    try:
        from museval import metrics  # type: ignore[import-not-found]
        return metrics
    except ImportError:
        pass
    except Exception:  # noqa: BLE001 - stempeg raises RuntimeError without ffmpeg
        pass
    spec = importlib.util.find_spec("museval")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "metrics.py"
    mspec = importlib.util.spec_from_file_location("_museval_metrics", path)
    module = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(module)
    return module


def benchmark_signals(seconds: float, samplerate: int = 44100, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Six synthesized stems with a -80 dBFS noise floor (as recordings have, so the
    projections are well-posed) and their IRM2 oracle estimates, float64 [6, 2, T]."""
    from ..synthetic.test_songs import synth_song

    _, stems = synth_song(seconds, samplerate, seed=seed)
    rng = np.random.default_rng(seed)
    refs = {k: v + np.float32(1e-4) * rng.standard_normal(v.shape, dtype=np.float32)
            for k, v in stems.items()}
    mix = np.sum(list(refs.values()), axis=0)
    est = get_oracle("irm2").separate(mix, samplerate, refs).stems
    return (np.stack([refs[k] for k in refs]).astype(np.float64),
            np.stack([est[k] for k in refs]).astype(np.float64))


def run_metrics_benchmark(seconds: float = 180.0, device: str = "cpu",
                          museval: bool = True) -> dict[str, Any]:
    """Time BSS Eval v4 (1 s windows) on a six-stem stereo song of `seconds` here and in
    museval, and give the largest difference in dB of each metric (`stemwright bench
    --metrics`)."""
    import torch

    refs, ests = benchmark_signals(seconds)
    sr = 44100
    out: dict[str, Any] = {"seconds": seconds, "sources": refs.shape[0],
                           "channels": refs.shape[1], "samplerate": sr, "device": device,
                           "torch_threads": torch.get_num_threads()}
    t0 = time.perf_counter()
    ours = bss_eval(refs, ests, sr, sr, device=device)
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()
    out["stemwright_s"] = round(time.perf_counter() - t0, 3)
    out["stemwright_x_realtime"] = round(seconds / out["stemwright_s"], 1)
    if not museval:
        return out
    mm = load_museval_metrics()
    if mm is None:
        out["museval"] = "not installed (pip install museval)"
        return out
    t0 = time.perf_counter()
    ref = mm.bss_eval(refs.transpose(0, 2, 1), ests.transpose(0, 2, 1), window=sr, hop=sr,
                      compute_permutation=False, framewise_filters=False,
                      bsseval_sources_version=False)
    out["museval_s"] = round(time.perf_counter() - t0, 3)
    out["speedup"] = round(out["museval_s"] / out["stemwright_s"], 1)
    out["max_abs_diff_db"] = {
        m: float(np.nanmax(np.abs(ref[i] - getattr(ours, m))))
        for i, m in enumerate(BSS_METRICS)}
    out["max_abs_diff_median_db"] = {
        m: float(np.max(np.abs(np.nanmedian(ref[i], axis=1) - ours.medians()[m])))
        for i, m in enumerate(BSS_METRICS)}
    out["same_skipped_windows"] = all(
        np.array_equal(np.isnan(ref[i]), np.isnan(getattr(ours, m)))
        for i, m in enumerate(BSS_METRICS))
    worst = max(out["max_abs_diff_db"].values())
    out["within_1e-6_db"] = bool(worst < 1e-6) and out["same_skipped_windows"]
    return out


__all__ = ["evaluate", "EvaluationReport", "SongResult", "StemScore", "SystemInfo",
           "Alignment", "align_stems", "score_stems", "error_components", "write_json",
           "write_csv", "run_metrics_benchmark", "benchmark_signals", "load_museval_metrics",
           "METRICS", "BSS_METRICS", "METRIC_TITLES"]
