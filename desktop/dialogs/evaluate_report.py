"""The Evaluate dialog's results as data, without widgets: reports of the songs finished
so far, the rows of the results table, and box-plot statistics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from stemwright.models.stems import STEM_IDS, get_stem

#: A table row: song, stem, one value per system, summary row?, tooltip, comparable? (every
#: system scored on the same stems, so the best value may be marked).
Row = tuple[str, str, list[float], bool, str, bool]


def songs_phrase(n: int) -> str:
    """'1 song', '3 songs'."""
    return f"{n} song{'' if n == 1 else 's'}"


def partial_report(folder: str, songs: list[Any], settings: dict[str, Any] | None = None
                   ) -> Any:
    """An EvaluationReport of the songs finished so far (systems from their scores)."""
    from stemwright.models.classic.oracles import ORACLES as ORACLE_TABLE
    from stemwright.models.evaluation.evaluate import EvaluationReport, SystemInfo

    names: list[str] = []
    for song in songs:
        for name in (*song.scores, *song.errors):
            if name not in names:
                names.append(name)
    systems = [SystemInfo(n, "oracle" if n in ORACLE_TABLE else "model") for n in names]
    return EvaluationReport(folder=folder, systems=systems, songs=list(songs),
                            settings=dict(settings or {}))


def stem_includes(report: Any) -> dict[str, dict[str, tuple[str, ...]]]:
    """{system: {stem: the other stems merged into it}} over every song: a four-stem model
    on a six-stem song scores "other" with guitar and piano in it."""
    out: dict[str, dict[str, set[str]]] = {}
    for song in report.songs:
        for name, stems in song.scores.items():
            for stem, score in stems.items():
                out.setdefault(name, {}).setdefault(stem, set()).update(score.includes)
    return {n: {s: tuple(m for m in STEM_IDS if m in v) for s, v in d.items()}
            for n, d in out.items()}


def _names(stems: Any) -> str:
    return ", ".join(get_stem(s).name.lower() for s in stems)


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(sum(finite) / len(finite)) if finite else math.nan


def _alike(includes: dict[str, dict[str, tuple[str, ...]]], names: list[str],
           stem: str) -> bool:
    """True when every system scored `stem` with the same stems merged into it."""
    return len({includes.get(n, {}).get(stem, ()) for n in names}) <= 1


def _merged_tip(includes: dict[str, dict[str, tuple[str, ...]]], names: list[str],
                stem: str) -> str:
    parts = [f"{n}: {get_stem(stem).name.lower()}"
             + (f" with {_names(includes[n][stem])} in it" if includes.get(n, {}).get(stem)
                else " alone") for n in names if stem in includes.get(n, {})]
    return ("Not the same stem for every system, so not compared: " + "; ".join(parts)
            + ". A system that does not separate a stem leaves it in \"other\".")


def table_rows(report: Any, metric: str) -> list[Row]:
    """The results table for `metric`: per stem the median over the songs, the headline
    (the mean of those medians over the stems every system scores alike, like for like),
    each system's mean over its own stems when those differ (marked not comparable), then
    every song's stems and its failed systems."""
    systems = report.systems
    names = [x.name for x in systems]
    summary = report.summary()
    includes = stem_includes(report)
    stems = [s for s in STEM_IDS if any(s in summary.get(n, {}) for n in names)]
    rows: list[Row] = []
    for stem in stems:
        counts = [int(summary.get(n, {}).get(stem, {}).get("songs", 0)) for n in names]
        alike = _alike(includes, names, stem)
        rows.append((f"Median of {songs_phrase(max(counts))}",
                     get_stem(stem).name + ("" if alike else " *"),
                     [summary.get(n, {}).get(stem, {}).get(metric, math.nan) for n in names],
                     True, "" if alike else _merged_tip(includes, names, stem), alike))
    if stems:
        covered = {n: [s for s in STEM_IDS if s in summary.get(n, {})] for n in names}
        same = [s for s in stems if all(s in covered[n] for n in names)
                and _alike(includes, names, s)]
        if same == stems:  # every system scored every stem alike
            rows.append(("Mean of the medians", "all stems",
                         [summary.get(n, {}).get("mean", {}).get(metric, math.nan)
                          for n in names], True, "", True))
        else:
            if same:
                rows.append((
                    "Mean of the medians", f"{_names(same)} (like for like)",
                    [_finite_mean([summary[n][s][metric] for s in same]) for n in names],
                    True, f"Mean over the stems every system separates and is scored on "
                    f"alike: {_names(same)}. The other stems differ between the systems "
                    "and are left out of this comparison.", True))
            tip = "; ".join(f"{n}: {_names(covered[n])}" + "".join(
                f" ({get_stem(s).name.lower()} with {_names(m)})"
                for s, m in includes.get(n, {}).items() if m) for n in names)
            rows.append(("Mean over its own stems", "not comparable *",
                         [summary.get(n, {}).get("mean", {}).get(metric, math.nan)
                          for n in names], True,
                         "Each system's mean over the stems it separates; these differ, so "
                         f"the values cannot be compared: {tip}", False))
    for song in report.songs:
        name = song_title(song)
        for stem in STEM_IDS:
            if not any(stem in song.scores.get(n, {}) for n in names):
                continue
            values, merged, kinds = [], set(), set()
            for n in names:
                score = song.scores.get(n, {}).get(stem)
                values.append(getattr(score, metric) if score is not None else math.nan)
                merged.update(score.includes if score is not None else ())
                if score is not None:
                    kinds.add(tuple(score.includes))
            label = get_stem(stem).name
            tip = ""
            if merged:  # a system lacked a stem the song has (or the reverse)
                label += " *"
                together = _names(m for m in STEM_IDS if m in merged)
                tip = (f"{label[:-2]} is scored together with {together} for the systems "
                       "that do not separate those")
            rows.append((name, label, values, False, tip, len(kinds) <= 1))
            name = ""  # the song's name on its first row only
        for system, why in song.errors.items():
            rows.append((song_title(song), f"{system} failed", [math.nan] * len(systems),
                         False, why, False))
    return rows


def song_title(song: Any) -> str:
    """A song's name for people: its folder relative to the scanned one, or its own name
    when it is that folder (never ".")."""
    key = str(getattr(song, "key", "") or "")
    return key if key not in ("", ".") else str(getattr(song, "name", "") or "the song")


def box_stats(values: list[float]) -> dict[str, float] | None:
    """Quartiles, median and Tukey whiskers (1.5 IQR) of the finite values, or None."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if not x.size:
        return None
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    iqr = q3 - q1
    lo = float(x[x >= q1 - 1.5 * iqr].min())
    hi = float(x[x <= q3 + 1.5 * iqr].max())
    return {"q1": float(q1), "median": float(med), "q3": float(q3), "lo": lo, "hi": hi,
            "n": int(x.size)}
