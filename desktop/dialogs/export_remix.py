"""The export dialog's remix level: measuring a remix's peak off the GUI thread, and the
normalised mixer state a clipping remix is written with when the user chose so; plus the
one-line summary of what the mixer changes in the remix."""

from __future__ import annotations

import copy

import numpy as np
from PySide6.QtWidgets import QMessageBox, QWidget

from stemwright.models.remix.mixer import MixerState, format_db, gain_to_db, render_peak
from stemwright.models.stems import get_stem

from ..engine.workers import Task

NORMALIZE_PEAK_DB = -0.3  # where "Normalise" puts a clipping remix's peak (dBFS)


class PeakTask(Task):
    """Measures the peak of a remix (`render_peak`) off the GUI thread; linear result."""

    title = "Checking the level"

    def __init__(self, stems: dict[str, np.ndarray], state: MixerState, parent=None) -> None:
        super().__init__(parent)
        self.stems = stems
        self.state = state

    def work(self) -> float:
        return render_peak(self.stems, self.state, cancel=self.is_cancelled)


def normalized_state(state: MixerState, peak: float,
                     target_db: float = NORMALIZE_PEAK_DB) -> MixerState:
    """A copy of `state` whose master is lowered so a remix peaking at `peak` (linear)
    peaks at `target_db` dBFS instead."""
    out = copy.deepcopy(state)
    if peak > 0:
        out.master_db = state.master_db + target_db - gain_to_db(peak)
    return out


def mixer_summary(state: MixerState, stem_ids: list[str]) -> str:
    """One line per changed channel, e.g. "Vocals: -6.0 dB, pan L30"."""
    lines = []
    any_solo = any(state.channel(s).solo for s in stem_ids)
    for stem_id in stem_ids:
        ch = state.channel(stem_id)
        parts = []
        if ch.mute:
            parts.append("muted")
        elif any_solo and not ch.solo:
            parts.append("silent (another stem is soloed)")
        if ch.solo:
            parts.append("solo")
        if ch.gain_db != 0.0:
            parts.append(format_db(ch.gain_db))
        if ch.pan != 0.0:
            pct = round(ch.pan * 100)
            parts.append(f"pan {'L' if pct < 0 else 'R'}{abs(pct)}")
        if parts:
            lines.append(f"{get_stem(stem_id).name}: {', '.join(parts)}")
    if state.master_db != 0.0:
        lines.append(f"Master: {format_db(state.master_db)}")
    if not lines:
        return "The mixer is flat: the remix is the sum of the stems (the song itself)."
    return "The remix renders the mixer as it is now:\n" + "\n".join(lines)


def ask_clipping(parent: QWidget | None, peak_db: float) -> str:
    """Ask what to do with a remix that would clip (peak `peak_db` above 0 dBFS):
    "normalize", "continue" or "cancel"."""
    box = QMessageBox(QMessageBox.Icon.Warning, "The remix would clip",
                      f"The remix peaks at {format_db(peak_db)}, above 0 dBFS: the "
                      "loudest parts would be clipped (distorted) in the file.",
                      QMessageBox.StandardButton.NoButton, parent)
    box.setInformativeText(f"Normalise lowers the whole remix so its peak is at "
                           f"{format_db(NORMALIZE_PEAK_DB)} (the mixer is not changed). "
                           "Export as is keeps the mixer's level.")
    normalize = box.addButton("Normalise", QMessageBox.ButtonRole.AcceptRole)
    keep = box.addButton("Export as is", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(normalize)
    box.exec()
    clicked = box.clickedButton()
    return "normalize" if clicked is normalize else "continue" if clicked is keep \
        else "cancel"

