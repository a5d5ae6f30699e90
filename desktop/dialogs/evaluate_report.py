"""The Evaluate dialog's results as data, without widgets: reports of the songs finished
so far, the rows of the results table, and box-plot statistics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from stemwright.models.stems import STEM_IDS, get_stem

#: A table row: song, stem, one value per system, summary row?, tooltip.
Row = tuple[str, str, list[float], bool, str]


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


def table_rows(report: Any, metric: str) -> list[Row]:
    """The results table for `metric`: per stem the median over the songs and the mean of
    those medians (summary rows), then every song's stems and its failed systems."""
    systems = report.systems
    summary = report.summary()
    stems = [s for s in STEM_IDS if any(s in summary.get(x.name, {}) for x in systems)]
    rows: list[Row] = []
    for stem in stems:
        counts = [int(summary.get(x.name, {}).get(stem, {}).get("songs", 0))
                  for x in systems]
        rows.append((f"Median of {songs_phrase(max(counts))}", get_stem(stem).name,
                     [summary.get(x.name, {}).get(stem, {}).get(metric, math.nan)
                      for x in systems], True, ""))
    if stems:
        covered = {x.name: [s for s in STEM_IDS if s in summary.get(x.name, {})]
                   for x in systems}
        differ = len({tuple(v) for v in covered.values()}) > 1
        tip = "; ".join(f"{n}: mean over {', '.join(get_stem(s).name.lower() for s in v)}"
                        for n, v in covered.items())
        rows.append(("Mean of the medians", "its stems *" if differ else "all stems",
                     [summary.get(x.name, {}).get("mean", {}).get(metric, math.nan)
                      for x in systems], True, tip if differ else ""))
    for song in report.songs:
        name = song.key if song.key != "." else song.name
        for stem in STEM_IDS:
            if not any(stem in song.scores.get(x.name, {}) for x in systems):
                continue
            values, merged = [], set()
            for x in systems:
                score = song.scores.get(x.name, {}).get(stem)
                values.append(getattr(score, metric) if score is not None else math.nan)
                merged.update(score.includes if score is not None else ())
            label = get_stem(stem).name
            tip = ""
            if merged:  # a system lacked a stem the song has (or the reverse)
                names = ", ".join(get_stem(m).name.lower() for m in STEM_IDS if m in merged)
                label += " *"
                tip = (f"{label[:-2]} is scored together with {names} for the systems "
                       "that do not separate those")
            rows.append((name, label, values, False, tip))
            name = ""  # the song's name on its first row only
        for name, why in song.errors.items():
            rows.append((song.key, f"{name} failed", [math.nan] * len(systems), False,
                         why))
    return rows


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
