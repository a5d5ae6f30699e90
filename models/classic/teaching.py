"""Classic, training-free separators for teaching: NMF, HPSS and REPET.

Each one works like this: STFT of the stereo chunk -> one magnitude spectrogram V [F, N]
(square root of the power summed over both channels) -> soft masks [S, F, N] that add
up to one in every bin -> the same mask on left and right -> inverse STFT. The last stem
is the chunk minus the others, so the stems always add up to the mix. What each method
really separates is named honestly in its native sources, and mapped to the nearest
Stemwright stem:

* `HPSSSeparator` (FitzGerald 2010, librosa.decompose.hpss): median filtering along
  time keeps sustained, horizontal partials, along frequency keeps short, vertical hits.
  percussive -> drums, harmonic -> other (vocals, bass and the rest stay in "harmonic").
* `REPETSeparator` (Rafii & Pardo 2013): the accompaniment repeats, the lead does not.
  The beat spectrum (autocorrelation of the spectrogram over time, averaged over
  frequency) gives the repeating period (the lag whose multiples score highest); the
  median of the period-long segments is the repeating model, capped by V; its ratio to
  V is the background mask, and everything below 100 Hz stays in the background.
  `similarity=True` is REPET-SIM instead: the median of each frame's most similar
  frames (librosa.decompose.nn_filter), for songs whose repetitions are not periodic.
  foreground -> vocals, background -> other.
* `NMFSeparator` (Lee & Seung 2001; Fevotte & Idier 2011): V ~= W H with
  `n_components` spectral templates W and their activations H, found by the
  multiplicative updates for the beta-divergence (`beta_nmf`; `divergence` "euclidean",
  "kl" or "is" = beta 2, 1, 0), written out here in a few lines of NumPy because they
  are what a class studies (and 2-3x faster than scikit-learn's general solver behind
  librosa.decompose.decompose). NMF does not know instruments, so each component is
  assigned by a documented rule:
    - "percussive" (-> drums) if most of its energy W_k H_k lies in the bins HPSS calls
      percussive (percussive mask of the whole chunk, weighted by the component);
    - otherwise "low" (-> bass) if most of its template's energy is below `bass_cutoff`;
    - otherwise "tonal" (-> other).
  Each group's mask is its share of the model: M_s = sum_{k in s} W_k H_k / (W H).
  `last_assignment` keeps the rule's figures for the last chunk, for a class to look at.

All three run on the CPU with NumPy, whatever device is asked for, in 30 s chunks
(repetitions and components are found within a chunk).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..separation.separator import NumpySeparator
from .teaching_facts import TEACHING_FACTS

_EPS = 1e-10


class SpectralMaskSeparator(NumpySeparator):
    """Base of the teaching separators: subclasses implement `masks(V) -> [S, F, N]`."""

    samplerate = 44100
    default_segment = 30.0
    default_overlap = 0.25
    n_fft = 4096
    hop = 1024
    # zoo facts
    title = ""
    source = ""
    description = ""

    def masks(self, mag: np.ndarray) -> np.ndarray:
        """Soft masks [S, F, N] adding up to one, from the magnitude spectrogram [F, N]."""
        raise NotImplementedError

    def separate_chunk(self, audio: np.ndarray) -> np.ndarray:
        """One chunk [2, L] -> [S, 2, L]; the last source is the chunk minus the others."""
        import librosa

        audio = np.asarray(audio, dtype=np.float32)
        length = audio.shape[-1]
        spec = librosa.stft(audio, n_fft=self.n_fft, hop_length=self.hop)  # [2, F, N]
        mag = np.sqrt(np.sum(spec.real**2 + spec.imag**2, axis=0))
        masks = self.masks(mag)[:-1]  # the last stem is what the others leave
        stems = librosa.istft(masks[:, None] * spec[None], hop_length=self.hop,
                              n_fft=self.n_fft, length=length).astype(np.float32)
        return np.concatenate([stems, (audio - stems.sum(axis=0))[None]])

    def frequencies(self) -> np.ndarray:
        return np.fft.rfftfreq(self.n_fft, 1.0 / self.samplerate)


class HPSSSeparator(SpectralMaskSeparator):
    """Harmonic/percussive separation: percussive -> drums, harmonic -> other."""

    name = "hpss"
    mapping = TEACHING_FACTS["hpss"].mapping
    title = TEACHING_FACTS["hpss"].title
    source = TEACHING_FACTS["hpss"].source
    description = TEACHING_FACTS["hpss"].description

    def __init__(self, kernel_size: int = 31, margin: float = 1.0, power: float = 2.0,
                 **kwargs) -> None:
        self.kernel_size, self.margin, self.power = kernel_size, margin, power
        super().__init__(**kwargs)

    def masks(self, mag: np.ndarray) -> np.ndarray:
        import librosa

        harm, perc = librosa.decompose.hpss(mag, kernel_size=self.kernel_size,
                                            power=self.power, mask=True, margin=self.margin)
        if self.margin != 1.0:  # with a margin the two masks leave a remainder: share it
            total = harm + perc + _EPS
            harm, perc = harm / total, perc / total
        return np.stack([perc, harm]).astype(np.float32)


class REPETSeparator(SpectralMaskSeparator):
    """Repetition-based lead extraction: foreground -> vocals, background -> other."""

    name = "repet"
    mapping = TEACHING_FACTS["repet"].mapping
    title = TEACHING_FACTS["repet"].title
    source = TEACHING_FACTS["repet"].source
    description = TEACHING_FACTS["repet"].description

    def __init__(self, similarity: bool = False, period_range: tuple[float, float] = (1.0, 10.0),
                 cutoff: float = 100.0, min_distance: float = 2.0, margin: float = 2.0,
                 **kwargs) -> None:
        self.similarity = similarity
        self.period_range = period_range
        self.cutoff = cutoff
        self.min_distance = min_distance
        self.margin = margin
        self.last_period: float | None = None  # seconds, the last chunk's repeating period
        super().__init__(**kwargs)

    @staticmethod
    def beat_spectrum(mag: np.ndarray) -> np.ndarray:
        """Beat spectrum [N]: each frequency's autocorrelation of V^2 over time (unbiased,
        normalised by its lag-0 value so a few loud sustained partials do not outweigh
        everything else), averaged over frequency."""
        power = mag.astype(np.float64) ** 2
        n = power.shape[1]
        spec = np.fft.rfft(power, n=2 * n, axis=1)
        acf = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :n]
        acf /= np.arange(n, 0, -1)  # unbiased: fewer products at longer lags
        acf /= np.maximum(acf[:, :1], _EPS)
        return acf.mean(axis=0)

    def period(self, mag: np.ndarray) -> float | None:
        """Repeating period in frames (fractional): the lag whose multiples have the highest
        mean beat spectrum, within `period_range` and at most a third of the chunk."""
        beat = self.beat_spectrum(mag)
        n = len(beat)
        frames = self.samplerate / self.hop
        lo = max(1.0, self.period_range[0] * frames)
        hi = min(self.period_range[1] * frames, n / 3)
        if hi <= lo:
            return None
        best, best_score = None, -np.inf
        for p in np.arange(lo, hi, 0.05):  # fractional: multiples do not drift off the peaks
            hits = np.rint(np.arange(p, n - 1, p)).astype(int)
            score = beat[hits].mean()
            if score > best_score:
                best, best_score = float(p), score
        return best

    def _repeating_model(self, mag: np.ndarray) -> np.ndarray:
        if self.similarity:
            import librosa

            width = int(self.min_distance * self.samplerate / self.hop)
            width = max(1, min(width, mag.shape[1] // 4))
            model = librosa.decompose.nn_filter(mag, aggregate=np.median, metric="cosine",
                                                width=width)
            self.last_period = None
            return np.minimum(model, mag)
        period = self.period(mag)
        if period is None:  # too short to repeat: all background
            self.last_period = None
            return mag.copy()
        self.last_period = period * self.hop / self.samplerate
        f, n = mag.shape
        count = int(np.ceil(n / period))
        size = int(np.ceil(period))
        starts = np.rint(np.arange(count) * period).astype(int)  # segment j starts at j*p
        stack = np.full((count, f, size), np.nan, dtype=mag.dtype)
        for j, start in enumerate(starts):
            part = mag[:, start:start + size]
            stack[j, :, :part.shape[1]] = part
        segment = np.nanmedian(stack, axis=0)  # [F, size]: the repeating segment
        frames = np.arange(n)
        seg_of = np.minimum((frames / period).astype(int), count - 1)
        offset = np.clip(frames - starts[seg_of], 0, size - 1)
        return np.minimum(segment[:, offset], mag)

    def masks(self, mag: np.ndarray) -> np.ndarray:
        background = self._repeating_model(mag)
        if self.similarity:
            import librosa

            m_bg = librosa.util.softmask(background, self.margin * (mag - background),
                                         power=2)
        else:
            m_bg = background / (mag + _EPS)
        m_bg = np.clip(m_bg, 0.0, 1.0)
        m_bg[self.frequencies() < self.cutoff] = 1.0  # the lead has nothing down there
        return np.stack([1.0 - m_bg, m_bg]).astype(np.float32)


@dataclass(frozen=True)
class Component:
    """One NMF component and the figures the assignment rule used."""

    index: int
    group: str  # "percussive" | "low" | "tonal"
    percussive_share: float  # of its energy, in HPSS-percussive bins
    low_share: float  # of its template's energy, below the bass cut-off
    peak_hz: float  # frequency of its template's maximum


#: Divergence name -> beta: 2 Euclidean, 1 Kullback-Leibler, 0 Itakura-Saito.
DIVERGENCES = {"euclidean": 2.0, "kl": 1.0, "is": 0.0}


def beta_nmf(v: np.ndarray, n_components: int, beta: float = 1.0, iterations: int = 100,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative V [F, N] ~= W [F, K] @ H [K, N] by multiplicative updates minimising
    the beta-divergence (Fevotte & Idier 2011), random positive start:

        H <- H * (W^T (V * WH^(beta-2))) / (W^T WH^(beta-1))
        W <- W * ((V * WH^(beta-2)) H^T) / (WH^(beta-1) H^T)

    Every update keeps W, H >= 0 and does not increase the divergence. Components are
    returned sorted by the frequency of their template's peak (low to high).
    """
    v = np.asarray(v, dtype=np.float32) + np.float32(1e-9)
    rng = np.random.default_rng(seed)
    k = int(n_components)
    scale = np.float32(np.sqrt(v.mean() / k))
    w = (rng.random((v.shape[0], k), dtype=np.float32) + 0.1) * scale
    h = (rng.random((k, v.shape[1]), dtype=np.float32) + 0.1) * scale

    def ratios(wh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if beta == 2.0:
            return v, wh
        if beta == 1.0:
            return v / wh, np.ones_like(wh)
        inv = 1.0 / wh
        return v * inv ** (2.0 - beta), inv ** (1.0 - beta)

    for _ in range(iterations):
        num, den = ratios(w @ h + _EPS)
        h *= (w.T @ num) / (w.T @ den + _EPS)
        num, den = ratios(w @ h + _EPS)
        w *= (num @ h.T) / (den @ h.T + _EPS)
    order = np.argsort(np.argmax(w, axis=0), kind="stable")
    return w[:, order], h[order]


class NMFSeparator(SpectralMaskSeparator):
    """NMF on the magnitude spectrogram, components grouped into percussive -> drums,
    low -> bass and tonal -> other (see the module docstring for the rule)."""

    name = "nmf"
    mapping = TEACHING_FACTS["nmf"].mapping
    title = TEACHING_FACTS["nmf"].title
    source = TEACHING_FACTS["nmf"].source
    description = TEACHING_FACTS["nmf"].description

    def __init__(self, n_components: int = 16, divergence: str = "kl",
                 max_iter: int = 100, bass_cutoff: float = 200.0, seed: int = 0,
                 **kwargs) -> None:
        if divergence not in DIVERGENCES:
            raise ValueError(f"divergence must be one of {', '.join(DIVERGENCES)}")
        if n_components < 1:
            raise ValueError("n_components must be at least 1")
        self.n_components = n_components
        self.divergence = divergence
        self.max_iter = max_iter
        self.bass_cutoff = bass_cutoff
        self.seed = seed
        self.last_assignment: list[Component] = []
        super().__init__(**kwargs)

    def factorize(self, mag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """V [F, N] ~= W [F, K] @ H [K, N], templates sorted by their peak frequency."""
        return beta_nmf(mag, self.n_components, DIVERGENCES[self.divergence], self.max_iter,
                        self.seed)

    def assign(self, mag: np.ndarray, w: np.ndarray, h: np.ndarray) -> list[Component]:
        """Group each component (see the module docstring)."""
        import librosa

        _, perc_mask = librosa.decompose.hpss(mag, mask=True)
        freqs = self.frequencies()
        low = freqs < self.bass_cutoff
        out = []
        for k in range(w.shape[1]):
            wk, hk = w[:, k], h[k]
            energy = float(wk.sum() * hk.sum()) + _EPS
            perc = float(wk @ perc_mask @ hk) / energy
            low_share = float(wk[low].sum() / (wk.sum() + _EPS))
            group = "percussive" if perc > 0.5 else ("low" if low_share > 0.5 else "tonal")
            out.append(Component(k, group, perc, low_share, float(freqs[np.argmax(wk)])))
        return out

    def masks(self, mag: np.ndarray) -> np.ndarray:
        if not np.any(mag > 0):  # silence: everything is "tonal"
            masks = np.zeros((3, *mag.shape), dtype=np.float32)
            masks[2] = 1.0
            return masks
        w, h = self.factorize(mag)
        self.last_assignment = self.assign(mag, w, h)
        total = w @ h + _EPS
        masks = np.zeros((3, *mag.shape), dtype=np.float32)
        for i, group in enumerate(self.mapping.native):
            ks = [c.index for c in self.last_assignment if c.group == group]
            if ks:
                masks[i] = (w[:, ks] @ h[ks]) / total
        return masks


#: The teaching separators by zoo name.
TEACHING: dict[str, type[SpectralMaskSeparator]] = {
    cls.name: cls for cls in (NMFSeparator, HPSSSeparator, REPETSeparator)}


__all__ = ["Component", "HPSSSeparator", "NMFSeparator", "REPETSeparator",
           "SpectralMaskSeparator", "TEACHING", "beta_nmf"]
