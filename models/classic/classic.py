"""The classic separator: training-free, works offline on any song, no model weights.

How it works, in plain words. The song is turned into a spectrogram: how loud each
frequency is in each 23 ms step. First the vocals. In a song the band repeats itself (the
same beat and chord come back bar after bar) while the sung melody does not. For every
frame we look for the frames most similar to it in the bass and cymbal ranges, where the
band plays and the voice hardly reaches, and take their median: that keeps what repeats and
drops the voice. What stands out above that median, in the vocal range and in the middle
of the stereo image, is the vocals (REPET-SIM, Rafii & Pardo 2012). In the accompaniment
that is left, drums are short and broadband, vertical lines in the spectrogram, while held
notes are horizontal lines: smoothing along time keeps the notes, smoothing along frequency
keeps the hits, and comparing the two says bin by bin how much is drums (harmonic/percussive
separation by median filtering, FitzGerald 2010). The held notes below about 200 Hz are the
bass; everything else is "other".

Every split is a soft (Wiener-like) mask between 0 and 1; the four masks add up to one in
every bin, so the four stems add up to the input. One set of masks per chunk serves both
channels (see `ClassicSeparator.masks`). The weight-free baseline every trained model is
measured against (and a teaching example): expect clean-ish drums, usable bass and vocals,
and some bleed.
Runs on the CPU with numpy, several times faster than real time.
"""

from __future__ import annotations

import math

import librosa
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import uniform_filter

from ..separation.separator import NumpySeparator
from ..stems import FOUR_STEMS

_EPS = 1e-10


def median_filter(x: np.ndarray, size: int, axis: int, block: int = 128) -> np.ndarray:
    """Running median of odd length `size` along `axis` of a 2-D array (edges mirrored).

    Works in blocks with `np.partition`, several times faster than
    `scipy.ndimage.median_filter` for the 1-D kernels HPSS needs.
    """
    if size <= 1 or x.shape[axis] == 1:
        return x.copy()
    x = np.moveaxis(x, axis, -1)
    half = size // 2
    padded = np.pad(x, [(0, 0), (half, half)], mode="symmetric")
    windows = sliding_window_view(padded, size, axis=-1)  # [rows, n, size]
    out = np.empty_like(x)
    for lo in range(0, x.shape[0], block):
        out[lo:lo + block] = np.partition(windows[lo:lo + block], half, axis=-1)[..., half]
    return np.moveaxis(out, -1, axis)


def _soft(target: np.ndarray, rest: np.ndarray, power: float = 2.0) -> np.ndarray:
    """Soft mask target^p / (target^p + rest^p), in [0, 1]."""
    t = np.power(target, power)
    return t / (t + np.power(rest, power) + _EPS)


def _ramp(freqs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below `lo` Hz, 1 above `hi` Hz, raised-cosine in between (on a log axis)."""
    f = np.log2(np.maximum(freqs, 1.0))
    pos = np.clip((f - math.log2(lo)) / (math.log2(hi) - math.log2(lo)), 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * pos)).astype(np.float32)


class ClassicSeparator(NumpySeparator):
    """REPET-SIM + HPSS separator into drums, bass, other and vocals (no training).

    Chunks are long (30 s) because repetitions are searched within a chunk; the
    overlap-add only stitches chunks together. Always runs on the CPU.
    """

    name = "classic"
    mapping = FOUR_STEMS
    samplerate = 44100
    default_segment = 30.0  # long chunks: repetition is found within a chunk
    default_overlap = 0.25
    segment_shrinks_memory = True

    # -- parameters (class attributes, so a study can vary them) ---------------------------
    n_fft = 4096  # 93 ms windows: fine frequency detail for bass and voice
    hop = 1024
    similar_frames = 21  # REPET-SIM: how many similar frames model the accompaniment (odd)
    min_distance = 1.0  # s: frames closer than this are not repetitions, just the same note
    similarity_bands = (200.0, 5000.0)  # Hz: frames are compared below / above these
    vocal_margin = 1.0  # > 1 favours the accompaniment
    vocal_band = (150.0, 300.0, 8000.0, 16000.0)  # Hz: fade in, full, fade out, gone
    centre_power = 2.0  # how strongly vocals are restricted to centred, in-phase bins
    harmonic_frames = 31  # time median for sustained sounds (~0.7 s)
    percussive_bins = 7  # frequency median for hits (~75 Hz)
    percussive_margin = 1.0  # > 1 favours harmonic: only clearly percussive bins are drums
    bass_cutoff = (150.0, 260.0)  # Hz: all bass below the first, none above the second
    mask_power = 2.0  # 2: Wiener-like soft masks

    # -- the algorithm -------------------------------------------------------------------
    def masks(self, spec: np.ndarray) -> np.ndarray:
        """Soft masks [3, F, N] (drums, bass, vocals) from a stereo spectrogram [2, F, N];
        "other" is one minus their sum.

        One set of masks serves both channels. The power is averaged over the channels, so
        a hard-panned instrument counts fully (a mid downmix would weaken it and cancel
        out-of-phase sounds); applying the same gain to left and right keeps each stem's
        stereo image and never invents inter-channel differences; and it halves the work.
        """
        power = np.mean(spec.real**2 + spec.imag**2, axis=0)
        mag = np.sqrt(power)
        freqs = librosa.fft_frequencies(sr=self.samplerate, n_fft=self.n_fft)
        lo, full, top, gone = self.vocal_band
        band = _ramp(freqs, lo, full) * (1.0 - _ramp(freqs, top, gone))
        # 1. vocals: what does not repeat (REPET-SIM), within the vocal band, and mixed to
        #    the centre; drums and chords repeat, so they stay in the accompaniment
        voiced = band > 0
        m_vocals = np.zeros_like(mag)
        background = self._repeating(mag, voiced)
        voice = np.maximum(mag[voiced] - background, 0.0)
        m_vocals[voiced] = _soft(voice, self.vocal_margin * background, self.mask_power)
        m_vocals *= band[:, None]
        if self.centre_power > 0:
            m_vocals *= self._centre(spec, power) ** self.centre_power
        # 2. drums: the percussive part of the accompaniment (median filtering HPSS)
        acc = mag * (1.0 - m_vocals)
        harm = median_filter(acc, self.harmonic_frames, axis=1)
        perc = median_filter(acc, self.percussive_bins, axis=0)
        m_perc = _soft(perc, self.percussive_margin * harm, self.mask_power)
        # 3. bass: the harmonic accompaniment below the crossover; other: the rest
        low = 1.0 - _ramp(freqs, *self.bass_cutoff)
        m_drums = (1.0 - m_vocals) * m_perc
        m_bass = (1.0 - m_vocals) * (1.0 - m_perc) * low[:, None]
        return np.stack([m_drums, m_bass, m_vocals]).astype(np.float32)

    @staticmethod
    def _centre(spec: np.ndarray, power: np.ndarray) -> np.ndarray:
        """How centred and in phase each bin is, 0..1 (1 for mono): Re(L R*) over the mean
        power, both smoothed over 3 bins x 3 frames."""
        cross = spec[0].real * spec[1].real + spec[0].imag * spec[1].imag
        num = uniform_filter(cross, 3, mode="nearest")
        den = uniform_filter(power, 3, mode="nearest")
        return np.clip(num / (den + _EPS), 0.0, 1.0)

    def _repeating(self, mag: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """REPET-SIM: for every frame, the median of the `similar_frames` most similar frames
        at least `min_distance` away, for the frequency `rows` asked for; capped at `mag`.

        Frames are compared on the bass/kick range and the cymbal range only, where the
        band plays but the voice barely reaches: similar frames are then "the same bar
        position and chord", not "the same sung note", so the voice does not repeat.
        """
        n_frames = mag.shape[1]
        width = int(round(self.min_distance * self.samplerate / self.hop))
        width = min(width, max(1, n_frames // 4))
        k = min(self.similar_frames, n_frames - 2 * width - 1)
        k -= 1 - k % 2  # odd, so the median is one element
        if k < 3:  # too short to find repetitions: nothing is called vocals
            return mag[rows].copy()
        freqs = librosa.fft_frequencies(sr=self.samplerate, n_fft=self.n_fft)
        lo_hz, hi_hz = self.similarity_bands
        parts = []
        for part in (np.sqrt(mag[freqs < lo_hz]), np.sqrt(mag[freqs > hi_hz])):
            parts.append(part / (np.linalg.norm(part) + _EPS))  # equal weight per range
        feats = np.concatenate(parts)
        feats /= np.linalg.norm(feats, axis=0, keepdims=True) + _EPS
        sim = feats.T @ feats  # cosine similarity [N, N]
        idx = np.arange(n_frames)
        sim[np.abs(idx[:, None] - idx[None, :]) < width] = -np.inf
        neighbours = np.argpartition(-sim, k - 1, axis=1)[:, :k]  # [N, k]
        sub = mag[rows]
        out = np.empty_like(sub)
        block = max(1, 2**20 // (sub.shape[0] * k))
        for lo in range(0, n_frames, block):
            gathered = sub[:, neighbours[lo:lo + block]]  # [F', b, k]
            out[:, lo:lo + block] = np.partition(gathered, k // 2, axis=-1)[..., k // 2]
        return np.minimum(out, sub)

    def separate_chunk(self, audio: np.ndarray) -> np.ndarray:
        """Separate one chunk [2, L] -> [4, 2, L] (drums, bass, other, vocals); the four
        add up to the input (other is what the others leave)."""
        audio = np.asarray(audio, dtype=np.float32)
        length = audio.shape[-1]
        padded = np.pad(audio, [(0, 0), (0, max(0, self.n_fft - length))])  # tiny inputs
        spec = librosa.stft(padded, n_fft=self.n_fft, hop_length=self.hop)  # [2, F, N]
        masks = self.masks(spec)  # [3, F, N]
        stems = librosa.istft(masks[:, None] * spec[None], hop_length=self.hop,
                              n_fft=self.n_fft, length=padded.shape[-1])
        stems = stems[..., :length].astype(np.float32)
        other = audio - stems.sum(axis=0)
        return np.stack([stems[0], stems[1], other, stems[2]])


__all__ = ["ClassicSeparator", "median_filter"]
