"""Mixing multitrack songs into six stems and a mixture (thesis ch. 4).

Tracks are grouped by stem. Four procedures, after the thesis:

* "adaptive" (adaptive rescaling, the default): each stem is the sum of its tracks, scaled
  down only if it would clip; the mixture is the sum of the stems; one factor alpha keeps
  the mixture out of clipping and is applied to the mixture *and* every stem, so the mixture
  stays exactly the sum of the stems and nothing clips.
* "summing": plain sums (the mixture is the sum of the stems but may clip).
* "averaging": each stem is the mean of its tracks, the mixture the mean of the stems (the
  mixture is no longer the sum of the stems, which wrecks SDR: for comparison only).
* "scaling": sums scaled to avoid clipping at both levels, separately (the mixture again
  not the sum of the stems).

A stem with no track is *absent* (listed, never a silent target). A song's own mixture file
is used as the mixture when it matches the sum of the stems (residual at or below
`MIX_TOLERANCE_DB`); otherwise the mixdown is used and the residual reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..audio.levels import sample_peak
from ..remix.mixer import null_test_db, sum_stems
from ..stems import STEM_IDS, get_stem
from .folders import LoadedSong

PROCEDURES = ("adaptive", "summing", "averaging", "scaling")
CEILING = 1.0  # full scale: the adaptive and scaling procedures keep every peak at or below
MIX_TOLERANCE_DB = -30.0  # a mixture file this close to the sum of the stems is used as is
#: an NI Stems file (MUSDB18's format) encodes the mix and each stem with AAC on their
#: own, so its mix differs from the sum of its stems by the codec noise (about -20 to
#: -30 dB): its own mix is what was published and what is separated, as in MUSDB18
NISTEMS_TOLERANCE_DB = -15.0


@dataclass
class Mixdown:
    """Stems (present ones only, canonical order) and the mixture, float32 [C, T]."""

    mixture: np.ndarray
    stems: dict[str, np.ndarray]
    samplerate: int
    procedure: str
    gain: float = 1.0  # alpha of the adaptive procedure (1 when nothing had to be scaled)
    mixture_source: str = "sum"  # "sum" (of the stems) or "file" (the song's mixture file)
    residual_db: float | None = None  # mixture file vs sum of the stems, dB re the file
    notes: list[str] = field(default_factory=list)

    @property
    def absent(self) -> tuple[str, ...]:
        """Stems no track maps to."""
        return tuple(s for s in STEM_IDS if s not in self.stems)

    @property
    def length(self) -> int:
        return self.mixture.shape[-1]


def mix_stems(tracks: Mapping[str, Sequence[np.ndarray]], samplerate: int,
              procedure: str = "adaptive", ceiling: float = CEILING) -> Mixdown:
    """Group tracks {stem id: [track [C, T], ...]} into stems and a mixture by `procedure`."""
    if procedure not in PROCEDURES:
        raise ValueError(f"unknown mixing procedure '{procedure}' (use one of "
                         f"{', '.join(PROCEDURES)})")
    groups = {get_stem(k).id: list(v) for k, v in tracks.items() if len(v)}
    if not groups:
        raise ValueError("no tracks to mix")
    notes: list[str] = []
    stems: dict[str, np.ndarray] = {}
    for stem in STEM_IDS:
        if stem not in groups:
            continue
        acc = np.zeros_like(np.asarray(groups[stem][0], dtype=np.float64))
        for track in groups[stem]:
            acc += track
        if procedure == "averaging":
            acc /= len(groups[stem])
        elif procedure in ("adaptive", "scaling"):
            peak = sample_peak(acc)
            if peak > ceiling:
                acc *= ceiling / peak
                notes.append(f"{stem}: its tracks summed to a peak of {peak:.2f}; scaled "
                             f"down by {20 * np.log10(peak / ceiling):.1f} dB")
        if not acc.any():
            notes.append(f"{stem}: its tracks are silent; marked absent")
            continue
        stems[stem] = acc
    if not stems:
        raise ValueError("every track is silent: nothing to mix")
    total = sum(stems.values())
    gain = 1.0
    if procedure == "averaging":
        mixture = total / len(stems)
    elif procedure == "scaling":
        peak = sample_peak(total)
        mixture = total * (ceiling / peak) if peak > ceiling else total
    elif procedure == "adaptive":
        peak = sample_peak(total)
        if peak > ceiling:
            gain = ceiling / peak
            notes.append(f"mixture peaked at {peak:.2f}: mixture and stems scaled by "
                         f"{20 * np.log10(gain):.1f} dB")
        mixture = None
    else:
        mixture = total
    out = {s: (v * gain if gain != 1.0 else v).astype(np.float32) for s, v in stems.items()}
    if mixture is None:  # the float32 sum of the float32 stems: mixture == sum(stems) exactly
        mixture = sum_stems(out)
        while sample_peak(mixture) > ceiling:  # rounding put a sample a hair over the ceiling
            gain *= 1.0 - 1e-6
            out = {s: (v * gain).astype(np.float32) for s, v in stems.items()}
            mixture = sum_stems(out)
    else:
        mixture = mixture.astype(np.float32)
        if procedure == "summing" and sample_peak(mixture) > 1.0:
            notes.append(f"mixture peaks at {sample_peak(mixture):.2f}: it clips when played or "
                         "saved (use the adaptive procedure)")
    return Mixdown(mixture=mixture, stems=out, samplerate=samplerate, procedure=procedure,
                   gain=gain, notes=notes)


def mixdown_song(song: LoadedSong, procedure: str = "adaptive",
                 tolerance_db: float = MIX_TOLERANCE_DB) -> Mixdown:
    """Mix a loaded song; its own mixture file replaces the mixdown when it matches the sum
    of the (unscaled) stems within `tolerance_db`, otherwise the residual is reported."""
    groups = song.by_stem()
    if song.song.layout == "nistems":
        tolerance_db = max(tolerance_db, NISTEMS_TOLERANCE_DB)
    result = mix_stems(groups, song.samplerate, procedure)
    if song.mixture is not None:
        plain = result if procedure == "summing" else mix_stems(groups, song.samplerate,
                                                                 "summing")
        residual = null_test_db(song.mixture, plain.stems)
        name = song.song.mixture.name if song.song.mixture else "the mixture file"
        if residual <= tolerance_db:
            result = Mixdown(np.ascontiguousarray(song.mixture, dtype=np.float32),
                             plain.stems, song.samplerate, procedure, mixture_source="file",
                             notes=[f"{name} is the mixture (it matches the sum of the stems "
                                    f"to {residual:.1f} dB)"])
        else:
            result.notes.append(f"{name} does not match the sum of the stems (residual "
                                f"{residual:.1f} dB, limit {tolerance_db:.0f} dB): the "
                                f"{procedure} mixdown is used instead")
        result.residual_db = residual
    result.notes[:0] = song.warnings
    return result


__all__ = ["Mixdown", "PROCEDURES", "CEILING", "MIX_TOLERANCE_DB", "NISTEMS_TOLERANCE_DB",
           "mix_stems",
           "mixdown_song"]
