"""The canonical six stems and how each model's own sources map onto them.

Stem ids are stable (used in file names, settings and checkpoints); display names and
colours are what the GUI and exported DAW projects show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ModelError


@dataclass(frozen=True)
class Stem:
    """One of Stemwright's six output classes."""

    id: str
    name: str
    color: str  # "#rrggbb"
    description: str


STEMS: tuple[Stem, ...] = (
    Stem("vocals", "Vocals", "#e4572e", "lead and backing vocals"),
    Stem("drums", "Drums", "#f3a712", "drum kit and percussion"),
    Stem("bass", "Bass", "#2e86de", "bass guitar, synth bass, double bass"),
    Stem("electric_guitar", "Electric guitar", "#a23bec",
         "electric guitars, clean or distorted"),
    Stem("wind", "Wind", "#17b890", "brass and woodwinds"),
    Stem("other", "Other", "#8d99ae",
         "everything else: piano, keys, synths, strings, acoustic guitar, FX"),
)
STEM_IDS: tuple[str, ...] = tuple(s.id for s in STEMS)
_BY_ID = {s.id: s for s in STEMS}
_ALIASES = {"guitar": "electric_guitar", "electric-guitar": "electric_guitar",
            "electric guitar": "electric_guitar", "vocal": "vocals", "drum": "drums"}


def get_stem(stem_id: str) -> Stem:
    """Look a stem up by id (or a common alias such as "guitar"); KeyError if unknown."""
    key = stem_id.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _BY_ID:
        raise KeyError(f"unknown stem '{stem_id}' (known: {', '.join(STEM_IDS)})")
    return _BY_ID[key]


@dataclass(frozen=True)
class StemMapping:
    """A model's native sources, in its output order, and the canonical stem each goes to.

    Several native sources may map to one stem (htdemucs_6s: piano and other -> other);
    their signals are summed. Canonical stems no source maps to are *unavailable*.
    """

    native: tuple[str, ...]
    targets: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for src in self.native:
            target = self.targets.get(src, src)
            get_stem(target)  # validates
        unknown = set(self.targets) - set(self.native)
        if unknown:
            raise ValueError(f"mapping for sources the model lacks: {sorted(unknown)}")

    def target_of(self, source: str) -> str:
        """Canonical stem id a native source goes to."""
        return get_stem(self.targets.get(source, source)).id

    @property
    def produced(self) -> tuple[str, ...]:
        """Canonical stems this model produces, in canonical order."""
        hit = {self.target_of(s) for s in self.native}
        return tuple(s for s in STEM_IDS if s in hit)

    @property
    def unavailable(self) -> tuple[str, ...]:
        """Canonical stems this model cannot produce."""
        return tuple(s for s in STEM_IDS if s not in self.produced)

    def to_canonical(self, native: np.ndarray) -> dict[str, np.ndarray]:
        """Map `native` [S_native, C, T] onto {stem id: [C, T]} (summing merged sources)."""
        if native.shape[0] != len(self.native):
            raise ValueError(f"expected {len(self.native)} sources, got {native.shape[0]}")
        out: dict[str, np.ndarray] = {}
        for i, src in enumerate(self.native):
            target = self.target_of(src)
            if target in out:
                out[target] = out[target] + native[i]
            else:
                out[target] = np.array(native[i], dtype=np.float32, copy=True)
        return {s: out[s] for s in STEM_IDS if s in out}

    def describe(self) -> str:
        """Human-readable mapping, e.g. "guitar -> electric guitar, piano -> other"."""
        parts = []
        for src in self.native:
            target = self.target_of(src)
            parts.append(src if target == src else f"{src} -> {get_stem(target).name.lower()}")
        return ", ".join(parts)


#: Four-source models (htdemucs, htdemucs_ft, umxhq, umxl) in demucs' output order.
FOUR_STEMS = StemMapping(("drums", "bass", "other", "vocals"))
#: htdemucs_6s: guitar is taken as electric guitar, piano joins other.
DEMUCS_SIX_STEMS = StemMapping(
    ("drums", "bass", "other", "vocals", "guitar", "piano"),
    {"guitar": "electric_guitar", "piano": "other"},
)
#: Stemwright's own six-class models output the canonical stems directly.
CANONICAL_STEMS = StemMapping(STEM_IDS)


def mapping_for(stems: list[str]) -> StemMapping:
    """Mapping for a checkpoint's stem list (demucs' six names, or canonical ids)."""
    if list(stems) == list(DEMUCS_SIX_STEMS.native):
        return DEMUCS_SIX_STEMS
    try:
        return StemMapping(tuple(stems))
    except KeyError as exc:
        raise ModelError(f"checkpoint stems {stems} are not Stemwright stems: {exc}") from exc
