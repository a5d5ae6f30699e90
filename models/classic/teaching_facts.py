"""What the zoo says about each teaching separator (name, stems, title, source,
description), apart from their numpy/librosa code in `teaching` so that listing models
(`stemwright --help`, `models list`) does not load torch through the separator base."""

from __future__ import annotations

from dataclasses import dataclass

from ..stems import StemMapping


@dataclass(frozen=True)
class TeachingFacts:
    """The zoo facts of one teaching separator."""

    name: str
    mapping: StemMapping
    title: str
    source: str
    description: str
    samplerate: int = 44100


TEACHING_FACTS: dict[str, TeachingFacts] = {f.name: f for f in (
    TeachingFacts(
        "nmf", StemMapping(("percussive", "low", "tonal"),
                           {"percussive": "drums", "low": "bass", "tonal": "other"}),
        "NMF (no training)",
        "Stemwright: NMF after Lee & Seung (2001), component grouping by HPSS and band",
        "Teaching baseline: spectral templates found by NMF, grouped into drums, bass and "
        "other by a simple rule."),
    TeachingFacts(
        "hpss", StemMapping(("percussive", "harmonic"),
                            {"percussive": "drums", "harmonic": "other"}),
        "HPSS (no training)",
        "Stemwright: harmonic/percussive median filtering after FitzGerald (2010)",
        "Teaching baseline: median filters split sustained notes (other) from hits "
        "(drums)."),
    TeachingFacts(
        "repet", StemMapping(("foreground", "background"),
                             {"foreground": "vocals", "background": "other"}),
        "REPET (no training)",
        "Stemwright: REPET after Rafii & Pardo (2013), REPET-SIM after Rafii & Pardo (2012)",
        "Teaching baseline: what repeats is accompaniment (other), what does not is the "
        "lead (vocals)."),
)}

__all__ = ["TEACHING_FACTS", "TeachingFacts"]
