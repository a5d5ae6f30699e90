"""Oracle separators: masks computed from the true stems, as upper bounds for masking models.

An oracle reads the reference stems of a song, builds one time-frequency mask per stem and
applies it to the mixture's STFT (each channel on its own, mixture phase kept), as in
SigSep's oracle baselines:

* IRM, power a (`irm1`, `irm2`): M_j = |Y_j|^a / sum_j' |Y_j'|^a; a = 2 is the Wiener
  filter, the usual upper bound for magnitude-mask models.
* IBM (`ibm`): every time-frequency bin goes wholly to the loudest stem.

Their scores per stem tell how separable a class is on the user's own songs (thesis rule of
thumb: an IRM SI-SDR of about 6 dB or more means the class is worth separating), and sit next
to model scores in evaluation reports. The interface mirrors `Separator.separate` with the
references added, and returns the same `SeparationResult`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import StemwrightError
from ..progress import CancelCheck, ProgressCallback, ProgressTracker, check_cancel
from ..separation.separator import SeparationResult, energy_db
from ..stems import STEM_IDS

_EPS = 1e-12


@dataclass(frozen=True)
class Oracle:
    """A mask oracle. `kind` is "irm" or "ibm"; `power` is the IRM exponent."""

    name: str
    title: str
    kind: str
    power: float = 2.0
    n_fft: int = 2048  # SigSep oracle defaults: 2048-point Hann STFT, hop 1024
    hop: int = 1024

    def masks(self, spectra: torch.Tensor) -> torch.Tensor:
        """Masks [S, ...] from the reference spectra [S, ...] (complex); they sum to 1."""
        mag = spectra.abs()
        if self.kind == "ibm":
            best = mag.argmax(dim=0, keepdim=True)
            return (torch.arange(mag.shape[0], device=mag.device).view(
                -1, *([1] * (mag.dim() - 1))) == best).to(mag.dtype)
        p = mag ** self.power
        total = p.sum(dim=0, keepdim=True)
        # silent bins: share the mixture equally (it is silent there too when it is the sum)
        return torch.where(total > _EPS, p / total.clamp_min(_EPS),
                           torch.full_like(p, 1.0 / mag.shape[0]))

    def separate(self, mix: np.ndarray, samplerate: int, references: Mapping[str, np.ndarray],
                 progress: ProgressCallback | None = None, cancel: CancelCheck | None = None
                 ) -> SeparationResult:
        """Separate `mix` [C, T] with masks from `references` {stem id: [C, T]}.

        Stems absent from `references` are reported as unavailable.
        """
        if not references:
            raise StemwrightError(f"{self.name}: an oracle needs the reference stems")
        mix = np.asarray(mix, dtype=np.float32)
        if mix.ndim == 1:
            mix = mix[None]
        channels, length = mix.shape
        ids = [s for s in STEM_IDS if s in references] + [
            s for s in references if s not in STEM_IDS]
        refs = []
        for s in ids:
            r = np.asarray(references[s], dtype=np.float32)
            r = r[None] if r.ndim == 1 else r
            if r.shape != mix.shape:
                raise StemwrightError(f"{self.name}: reference '{s}' is shaped {r.shape}, "
                                      f"the mixture {mix.shape}")
            refs.append(r)
        if not np.all(np.isfinite(mix)) or not all(np.all(np.isfinite(r)) for r in refs):
            raise StemwrightError(f"{self.name}: the mixture or a reference stem contains "
                                  "NaN or infinite samples; repair or remove that track")
        # the centred STFT reflects n_fft/2 samples at each end: shorter audio is zero-padded
        # (silence after the end changes no mask before it) and the result cut back
        padded = max(length, self.n_fft // 2 + 1)
        if padded > length:
            mix = np.pad(mix, ((0, 0), (0, padded - length)))
            refs = [np.pad(r, ((0, 0), (0, padded - length))) for r in refs]
        tracker = ProgressTracker(progress, channels, length / samplerate)
        tracker.report()
        window = torch.hann_window(self.n_fft)
        out = np.empty((len(ids), channels, padded), dtype=np.float32)

        def stft(x: np.ndarray) -> torch.Tensor:
            return torch.stft(torch.from_numpy(np.ascontiguousarray(x)), self.n_fft, self.hop,
                              window=window, return_complex=True)

        for c in range(channels):
            check_cancel(cancel)
            masks = self.masks(stft(np.stack([r[c] for r in refs])))
            est = masks * stft(mix[c])[None]
            out[:, c] = torch.istft(est, self.n_fft, self.hop, window=window,
                                    length=padded).numpy()
            tracker.advance()
        out, mix = out[..., :length], mix[..., :length]
        stems = {s: out[i] for i, s in enumerate(ids)}
        residual = mix - out.sum(axis=0)
        return SeparationResult(
            stems=stems, samplerate=samplerate, model=self.name,
            unavailable=tuple(s for s in STEM_IDS if s not in stems),
            residual_db=energy_db(residual, mix), residual_in_other=False,
            notes=[f"oracle: {self.title}, reads the reference stems"])


ORACLES: dict[str, Oracle] = {o.name: o for o in (
    Oracle("irm1", "Ideal ratio mask, magnitude (a = 1)", "irm", 1.0),
    Oracle("irm2", "Ideal ratio mask, power (a = 2, Wiener)", "irm", 2.0),
    Oracle("ibm", "Ideal binary mask (loudest stem takes the bin)", "ibm", 1.0),
)}


def get_oracle(name: str) -> Oracle:
    """The oracle called `name` ("irm1", "irm2", "ibm"); StemwrightError if unknown."""
    key = name.strip().lower()
    if key == "irm":
        key = "irm2"
    if key not in ORACLES:
        raise StemwrightError(f"unknown oracle '{name}' (available: {', '.join(ORACLES)})")
    return ORACLES[key]


__all__ = ["Oracle", "ORACLES", "get_oracle"]
