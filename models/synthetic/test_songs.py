"""Deterministic synthesized multitrack songs: the demo song, test material and benchmarks.

`synth_song(seconds, samplerate, seed)` composes and renders a short pop/rock song with one
track per canonical stem, so the true stems are known exactly and the licence is ours:

* a tempo of 100-120 bpm and a four-chord progression in a major key, looped in 8-bar
  verse/chorus cycles; songs of 6 s or more end on a held tonic chord;
* vocals: a sung melody with phrases and rests; a band-limited sawtooth "glottal" source
  with vibrato and pitch drift, through a cascade of formant resonators that cross-fade from
  vowel to vowel note by note, plus short consonant noise bursts;
* drums: synthesized kick, snare, hi-hats (open and closed, choked), toms and crash playing a
  groove with ghost notes and fills, slightly humanised;
* bass: a plucked sawtooth-and-sine line on the chord roots with approach notes;
* electric guitar: two overdriven power-chord takes (tanh waveshaper, cabinet filter) panned
  left and right; palm-muted chugs in the verse, open chords in the chorus;
* wind: a two-voice brass section, sawtooth with swelling envelope and opening low-pass;
* other: a piano (additive, slightly inharmonic partials with two-stage decay).

Each instrument sits at its own stereo position; vocals, piano, wind and snare get a touch
of a small synthetic reverb that belongs to their own stem. Every stem is float32 [2, T], the
mix is their float32 sum (so `mix == sum(stems)` exactly), and the whole song is scaled down
only if its peak would pass -1 dBFS. Everything is drawn from `numpy.random.default_rng`
seeded by `seed` (one generator per stem, so asking for fewer stems renders the same
signals), and rendered note by note with vectorised numpy/scipy: a minute takes well
under a second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import signal as sps

from ..audio.levels import pan_gains, sample_peak
from ..stems import STEM_IDS
from .theory import voicing

CEILING = 0.891  # -1 dBFS: the song is scaled down only if a stem or the mix would pass it

#: Output gain of each stem (sets the balance: vocals and drums up front).
STEM_GAIN = {"vocals": 0.251, "drums": 0.34, "bass": 0.194, "electric_guitar": 0.0885,
             "wind": 0.161, "other": 0.155}

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_TRIAD = {"maj": (0, 4, 7), "min": (0, 3, 7)}
#: Four-chord loops as (root in semitones above the tonic, quality): I-V-vi-IV, vi-IV-I-V, ...
_PROGRESSIONS = (
    ((0, "maj"), (7, "maj"), (9, "min"), (5, "maj")),
    ((9, "min"), (5, "maj"), (0, "maj"), (7, "maj")),
    ((0, "maj"), (9, "min"), (5, "maj"), (7, "maj")),
    ((0, "maj"), (5, "maj"), (9, "min"), (7, "maj")),
)


def midi_hz(midi: float | np.ndarray) -> float | np.ndarray:
    """Frequency in Hz of a (fractional) MIDI note number."""
    m = np.asarray(midi)
    if m.dtype == np.float32:  # keep long pitch tracks in single precision
        return np.float32(440.0) * np.exp2((m - np.float32(69.0)) * np.float32(1 / 12))
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


# -- the song plan ----------------------------------------------------------------------

@dataclass(frozen=True)
class SongPlan:
    """Tempo, key, chords and form shared by every instrument of one song."""

    samplerate: int
    length: int  # samples
    bpm: int
    tonic: int  # pitch class, 0 = C
    progression: tuple[tuple[int, str], ...]
    swing: float  # fraction of a sixteenth that off-beat sixteenths are late
    bars: int  # ordinary bars to play (the ending bar, if any, comes after them)
    ending: bool

    @property
    def step(self) -> float:
        """Seconds per sixteenth note."""
        return 60.0 / self.bpm / 4

    @property
    def bar(self) -> float:
        return 16 * self.step

    def time(self, bar: int, sixteenth: float) -> float:
        """Seconds at `sixteenth` (0-16, may be fractional) of `bar`, swing applied."""
        late = self.swing * self.step if int(sixteenth) % 2 == 1 else 0.0
        return (bar * 16 + sixteenth) * self.step + late

    def chord(self, bar: int) -> tuple[int, tuple[int, ...]]:
        """(root pitch class, triad intervals) of `bar`; the ending bar is the tonic."""
        if self.ending and bar >= self.bars:
            return self.tonic, _TRIAD["maj"]
        root, quality = self.progression[bar % len(self.progression)]
        return (self.tonic + root) % 12, _TRIAD[quality]

    def chorus(self, bar: int) -> bool:
        """Bars 4-7 of every 8 are the chorus."""
        return bar % 8 >= 4

    def scale(self) -> np.ndarray:
        """All MIDI notes of the key's major scale."""
        return np.array([m for m in range(128) if (m - self.tonic) % 12 in _MAJOR])


def plan_song(seconds: float, samplerate: int, seed: int) -> SongPlan:
    """Draw tempo, key, progression and form for a song of `seconds`."""
    rng = np.random.default_rng([seed, 0])
    bpm = int(rng.integers(100, 121))
    tonic = int(rng.choice([0, 2, 4, 5, 7, 9]))
    progression = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    swing = float(rng.choice([0.0, 0.06, 0.12]))
    bar = 240.0 / bpm
    ending = seconds >= 6.0
    if ending:  # the last bar that starts at least 2 s before the end holds the tonic chord
        bars = max(1, int((seconds - 2.0) // bar))
    else:
        bars = max(1, math.ceil(seconds / bar))
    return SongPlan(samplerate, max(1, int(round(seconds * samplerate))), bpm, tonic,
                    progression, swing, bars, ending)


# -- signal helpers ---------------------------------------------------------------------

def _pan(position: float) -> tuple[float, float]:
    """Gains placing a mono source at -1 (left) .. 1 (right) at constant power."""
    left, right = pan_gains(position)
    return left * _HALF_POWER, right * _HALF_POWER


_HALF_POWER = math.sqrt(0.5)


def _add(buf: np.ndarray, start: int, x: np.ndarray, gains: tuple[float, float]) -> None:
    """Add mono `x` into stereo `buf` [2, T] at sample `start` (clipped to the buffer)."""
    total = buf.shape[-1]
    lo, hi = max(start, 0), min(start + x.shape[-1], total)
    if hi <= lo:
        return
    seg = x[lo - start:hi - start]
    buf[0, lo:hi] += gains[0] * seg
    buf[1, lo:hi] += gains[1] * seg


def _add_mono(buf: np.ndarray, start: int, x: np.ndarray) -> None:
    lo, hi = max(start, 0), min(start + x.shape[-1], buf.shape[-1])
    if hi > lo:
        buf[lo:hi] += x[lo - start:hi - start]


@cache
def _sos(kind: str, freq: float | tuple[float, float], samplerate: int,
         order: int = 2) -> np.ndarray:
    """Butterworth sections; cut-offs are kept below 0.45 of the sample rate."""
    top = 0.45 * samplerate
    if isinstance(freq, tuple):
        lo, hi = min(freq[0], 0.4 * samplerate), min(freq[1], top)
        return sps.butter(order, (lo, max(hi, lo * 1.2)), kind, fs=samplerate, output="sos")
    return sps.butter(order, min(freq, top), kind, fs=samplerate, output="sos")


def _filt(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    return sps.sosfilt(sos, x).astype(np.float32, copy=False)


def _saw(freq: np.ndarray | float, n: int, samplerate: int, phase0: float = 0.0) -> np.ndarray:
    """Band-limited (polyBLEP) sawtooth of `n` samples at `freq` Hz (scalar or per sample)."""
    dt = np.broadcast_to(np.asarray(freq, dtype=np.float64) / samplerate, (n,))
    phase = (np.cumsum(dt) - dt[0] + phase0) % 1.0
    t = phase.astype(np.float32)
    inv = (1.0 / np.maximum(dt, 1e-6)).astype(np.float32)
    u = t * inv
    a = np.maximum(1.0 - u, 0.0)
    b = np.maximum(u + 1.0 - inv, 0.0)
    return 2.0 * t - 1.0 + a * a - b * b


def _ramp_env(n: int, samplerate: int, attack: float, release_at: float,
              release: float) -> np.ndarray:
    """1 after a linear attack, falling linearly to 0 over `release` s from `release_at` s."""
    t = np.arange(n, dtype=np.float32) / samplerate
    return np.clip(np.minimum(t / max(attack, 1e-4), (release_at + release - t) / release),
                   0.0, 1.0)


def _reverb(sends: Sequence[np.ndarray], samplerate: int,
            seconds: float = 1.3) -> np.ndarray:
    """Small stereo reverb of mono sends, returned at a quarter of the sample rate as
    [N, 2, ceil(T / q)] (see `_upsample`): band-limited sends feed six parallel feedback
    combs (computed a whole delay at a time); their outputs summed with +-1 signs give two
    decorrelated channels. Working at the low rate keeps a minute of reverb cheap."""
    q = _reverb_factor(samplerate)
    rate = samplerate / q
    m = -(-sends[0].shape[-1] // q)
    x = np.zeros((len(sends), m * q), dtype=np.float32)
    for i, send in enumerate(sends):
        x[i, :send.shape[-1]] = send
    x = sum(x[:, j::q] for j in range(q)) * np.float32(1 / q)
    x = _filt(_sos("bandpass", (250.0, 4500.0), int(rate), 1), x)
    out = np.zeros((len(sends), 2, m), dtype=np.float32)
    delays_ms = (29.7, 37.1, 41.1, 43.7, 31.3, 47.9)
    signs = ((1, 1), (1, -1), (-1, 1), (1, 1), (-1, -1), (1, -1))
    for ms, (left, right) in zip(delays_ms, signs, strict=True):
        d = max(1, int(ms * rate / 1000))
        g = np.float32(10 ** (-3 * d / (seconds * rate)))
        blocks = -(-m // d) + 1  # the input starts one block (one delay) late
        y = np.zeros((blocks, len(sends), d), dtype=np.float32)
        flat = np.zeros((len(sends), blocks * d), dtype=np.float32)
        flat[:, d:d + m] = x
        y[:] = flat.reshape(len(sends), blocks, d).transpose(1, 0, 2)
        for k in range(1, blocks):
            y[k] += g * y[k - 1]
        y = y.transpose(1, 0, 2).reshape(len(sends), -1)[:, :m]  # first echo after d
        out[:, 0] += left * y
        out[:, 1] += right * y
    out *= np.float32(1.0 / len(delays_ms))
    return out


def _reverb_factor(samplerate: int) -> int:
    return 4 if samplerate >= 32000 else 2 if samplerate >= 16000 else 1


def _upsample_into(buf: np.ndarray, low: np.ndarray, q: int, block: int = 1 << 15) -> None:
    """Add `low` [C, M] linearly interpolated by `q` into `buf` [C, T] (in cache-sized
    blocks)."""
    total = buf.shape[-1]
    w = (np.arange(q, dtype=np.float32) / q)
    nxt = np.concatenate([low[:, 1:], low[:, -1:]], axis=1)
    for lo in range(0, low.shape[-1], block):
        a, b = low[:, lo:lo + block], nxt[:, lo:lo + block]
        up = (a[..., None] + (b - a)[..., None] * w).reshape(low.shape[0], -1)
        n = min(up.shape[-1], total - lo * q)
        buf[:, lo * q:lo * q + n] += up[:, :n]


# -- instruments --------------------------------------------------------------------------

_Rendered = tuple[np.ndarray, np.ndarray | None]  # stereo stem [2, T], mono reverb send


def _drums(plan: SongPlan, rng: np.random.Generator) -> _Rendered:
    sr = plan.samplerate
    buf = np.zeros((2, plan.length), dtype=np.float32)
    send = np.zeros(plan.length, dtype=np.float32)

    def t_axis(dur: float) -> np.ndarray:
        return np.arange(int(dur * sr), dtype=np.float32) / sr

    def noise(n: int) -> np.ndarray:
        return rng.standard_normal(n).astype(np.float32)

    t = t_axis(0.5)
    freq = 47 + 110 * np.exp(-t / 0.035)
    body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.16)
    click = _filt(_sos("lowpass", 4000.0, sr), noise(t.size)) * np.exp(-t / 0.004)
    kick = np.tanh(1.8 * (body + 0.6 * click)) / np.tanh(1.8)
    kick *= _ramp_env(t.size, sr, 0.0005, 0.45, 0.05)

    t = t_axis(0.4)
    tone = (0.6 * np.sin(2 * np.pi * 188 * t) * np.exp(-t / 0.05)
            + 0.3 * np.sin(2 * np.pi * 335 * t) * np.exp(-t / 0.03))
    snap = _filt(_sos("bandpass", (1200.0, 9000.0), sr), noise(t.size)) * np.exp(-t / 0.11)
    snare = tone + 1.4 * snap
    snare /= np.abs(snare).max()

    def metal(dur: float, decay: float, lo: float) -> np.ndarray:
        tt = t_axis(dur)
        sq = sum(np.sign(np.sin(2 * np.pi * f * 1.6 * tt + rng.uniform(0, 6.3)))
                 for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0))
        x = _filt(_sos("highpass", lo, sr, 4), 0.25 * sq + noise(tt.size))
        x *= np.exp(-tt / decay) * _ramp_env(tt.size, sr, 0.0008, dur - 0.03, 0.03)
        return x / np.abs(x).max()

    hat, open_hat, crash = metal(0.15, 0.035, 7000.0), metal(0.7, 0.2, 6500.0), \
        metal(2.5, 0.8, 3500.0)

    def tom(f0: float) -> np.ndarray:
        tt = t_axis(0.6)
        f = f0 * (1 + 0.45 * np.exp(-tt / 0.05))
        x = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-tt / 0.22)
        x += 0.15 * _filt(_sos("lowpass", 3000.0, sr), noise(tt.size)) * np.exp(-tt / 0.03)
        return x / np.abs(x).max()

    toms = {"tom_hi": tom(150.0), "tom_lo": tom(102.0)}
    sounds = {"kick": kick, "snare": snare, "hat": hat, "open_hat": open_hat,
              "crash": crash, **toms}
    pans = {"kick": 0.0, "snare": 0.08, "hat": -0.3, "open_hat": -0.3, "crash": 0.4,
            "tom_hi": -0.25, "tom_lo": 0.3}
    levels = {"kick": 1.0, "snare": 0.85, "hat": 0.32, "open_hat": 0.25, "crash": 0.3,
              "tom_hi": 0.7, "tom_lo": 0.75}
    sends = {"snare": 0.35, "tom_hi": 0.3, "tom_lo": 0.3, "crash": 0.1}

    kicks = ((0, 8, 10), (0, 6, 8, 14), (0, 3, 8, 10))[int(rng.integers(3))]
    events: list[tuple[float, str, float]] = []
    for bar in range(plan.bars):
        chorus = plan.chorus(bar)
        fill = bar % 4 == 3 and bar + 1 < plan.bars + plan.ending
        for s in kicks:
            events.append((plan.time(bar, s), "kick", 1.0 if s in (0, 8) else 0.8))
        for s in (4, 12):
            events.append((plan.time(bar, s), "snare", 1.0))
        for s in (7, 15):
            if rng.random() < 0.35 and not (fill and s == 15):
                events.append((plan.time(bar, s), "snare", 0.2))
        for s in range(0, 16, 2):
            if fill and s >= 12:
                break
            kind = "open_hat" if chorus and s == 14 and bar % 2 == 1 else "hat"
            events.append((plan.time(bar, s), kind, 0.8 if s % 4 == 0 else 0.5))
            if chorus and s < 12:
                events.append((plan.time(bar, s + 1), "hat", 0.22))
        if bar % 8 in (0, 4):
            events.append((plan.time(bar, 0), "crash", 0.9 if bar else 0.6))
        if fill:
            events += [(plan.time(bar, 13), "snare", 0.55), (plan.time(bar, 14), "tom_hi", 0.8),
                       (plan.time(bar, 15), "tom_lo", 0.9)]
    if plan.ending:
        end = plan.time(plan.bars, 0)
        events += [(end, "kick", 1.0), (end, "crash", 1.0), (end, "tom_lo", 0.5)]
    events.sort()

    hat_times = [t for t, k, _ in events if k in ("hat", "open_hat")]
    for t0, kind, vel in events:
        t0 += float(rng.normal(0, 0.002)) if t0 > 0.005 else 0.0
        vel *= float(np.clip(1 + rng.normal(0, 0.06), 0.8, 1.2))
        x = sounds[kind]
        if kind == "open_hat":  # choked by the next hi-hat hit
            nxt = [h for h in hat_times if h > t0 + 0.01]
            if nxt:
                n = int((nxt[0] - t0) * sr)
                x = x[:n + int(0.01 * sr)] * _ramp_env(min(x.size, n + int(0.01 * sr)), sr,
                                                       1e-4, n / sr, 0.01)
        start = int(round(t0 * sr))
        _add(buf, start, levels[kind] * vel * x, _pan(pans[kind]))
        if kind in sends:
            _add_mono(send, start, sends[kind] * levels[kind] * vel * x)
    return buf, send


def _bass(plan: SongPlan, rng: np.random.Generator) -> _Rendered:
    sr = plan.samplerate
    buf = np.zeros((2, plan.length), dtype=np.float32)
    dark, bright = _sos("lowpass", 420.0, sr), _sos("lowpass", 2200.0, sr)
    templates = (
        ((0, 2, "R"), (2, 1, "R"), (3, 1, "R"), (4, 2, "R"), (6, 1, "O"), (7, 1, "A")),
        ((0, 1, "R"), (1, 1, "R"), (2, 1, "R"), (3, 1, "R"), (4, 1, "R"), (5, 1, "R"),
         (6, 1, "5"), (7, 1, "A")),
        ((0, 3, "R"), (3, 3, "R"), (6, 1, "5"), (7, 1, "A")),
    )
    verse, chorus = (templates[int(i)] for i in rng.permutation(3)[:2])
    scale = set(plan.scale().tolist())

    def root(bar: int) -> int:
        return 28 + (plan.chord(bar)[0] - 4) % 12

    notes: list[tuple[float, float, int, float]] = []
    for bar in range(plan.bars):
        r, nxt = root(bar), root(bar + 1)
        for start, length, kind in (chorus if plan.chorus(bar) else verse):
            if kind == "A":
                midi = nxt - 1 if nxt - 1 in scale else nxt - 2
                if nxt == r or bar + 1 >= plan.bars + plan.ending:
                    midi = r + 7
            else:
                midi = r + {"R": 0, "O": 12, "5": 7}[kind]
            t0 = plan.time(bar, 2 * start)
            dur = (plan.time(bar, 2 * (start + length)) - t0) * 0.92
            notes.append((t0, dur, midi, 1.0 if start == 0 else 0.85))
    if plan.ending:
        notes.append((plan.time(plan.bars, 0), 1.8, root(plan.bars), 1.0))

    rendered: dict[tuple[int, int, float], np.ndarray] = {}  # repeated notes: render once
    for t0, dur, midi, vel in notes:
        key = (midi, int(dur * sr), vel)
        if key not in rendered:
            f = float(midi_hz(midi))
            n = int((dur + 0.05) * sr)
            t = np.arange(n, dtype=np.float32) / sr
            saw = _saw(f, n, sr, float(rng.random()))
            lo = _filt(dark, saw)
            tone = lo + np.exp(-t / 0.07) * (_filt(bright, saw) - lo)
            sub = np.sin(2 * np.pi * f * t)
            env = _ramp_env(n, sr, 0.004, dur, 0.045) * (0.55 + 0.45 * np.exp(-t / 0.2))
            rendered[key] = np.tanh(1.4 * vel * env * (0.7 * tone + 0.8 * sub))
        _add(buf, int(round(t0 * sr)), rendered[key], _pan(0.0))
    return buf, None


def _guitar(plan: SongPlan, rng: np.random.Generator) -> _Rendered:
    sr = plan.samplerate
    buf = np.zeros((2, plan.length), dtype=np.float32)
    pre_open, pre_mute = _sos("lowpass", 2800.0, sr), _sos("lowpass", 1100.0, sr)
    cab_lo, cab_hi = _sos("lowpass", 4200.0, sr, 4), _sos("highpass", 90.0, sr)
    verse = (((0, 1, True), (1, 1, True), (2, 1, True), (3, 1, True), (4, 1, True),
              (5, 1, True), (6, 1, True), (7, 1, True)),
             ((0, 3, False), (3, 1, True), (4, 1, True), (5, 1, True), (6, 2, True)))
    chorus = (((0, 6, False), (6, 2, False)), ((0, 3, False), (3, 3, False), (6, 2, False)))
    v_pat, c_pat = verse[int(rng.integers(2))], chorus[int(rng.integers(2))]

    hits: list[tuple[float, float, int, bool]] = []
    for bar in range(plan.bars):
        r = 40 + (plan.chord(bar)[0] - 4) % 12
        for start, length, muted in (c_pat if plan.chorus(bar) else v_pat):
            t0 = plan.time(bar, 2 * start)
            dur = plan.time(bar, 2 * (start + length)) - t0
            hits.append((t0, dur * (0.7 if muted else 0.96), r, muted))
    if plan.ending:
        hits.append((plan.time(plan.bars, 0), 2.0, 40 + (plan.tonic - 4) % 12, False))

    for pan in (-0.75, 0.75):  # two takes, double-tracked
        detune = 2 ** (rng.normal(0, 4, 3) / 1200)
        rendered: dict[tuple[int, int, bool], np.ndarray] = {}  # repeated hits: render once
        for t0, dur, r, muted in hits:
            key = (r, int(dur * sr), muted)
            if key not in rendered:
                n = int((dur + 0.06) * sr)
                t = np.arange(n, dtype=np.float32) / sr
                voices = ((0, 1.0), (7, 0.8)) if muted else ((0, 1.0), (7, 0.8), (12, 0.5))
                x = sum(a * _saw(float(midi_hz(r + iv)) * detune[i], n, sr,
                                 float(rng.random()))
                        for i, (iv, a) in enumerate(voices))
                decay = np.exp(-t / (0.06 if muted else 1.5))
                x = _filt(pre_mute if muted else pre_open, x) * decay
                y = np.tanh((4.0 if muted else 7.0) * x) * _ramp_env(n, sr, 0.002, dur, 0.04)
                rendered[key] = _filt(cab_hi, _filt(cab_lo, y)) * (0.75 if muted else 1.0)
            t_hit = t0 + (float(rng.normal(0, 0.004)) if t0 > 0.01 else 0.0)
            vel = float(np.clip(1 + rng.normal(0, 0.05), 0.85, 1.15))
            _add(buf, int(round(t_hit * sr)), vel * rendered[key], _pan(pan))
    return buf, None


def _wind(plan: SongPlan, rng: np.random.Generator) -> _Rendered:
    sr = plan.samplerate
    buf = np.zeros((2, plan.length), dtype=np.float32)
    send = np.zeros(plan.length, dtype=np.float32)
    dark, bright = _sos("lowpass", 650.0, sr), _sos("lowpass", 3800.0, sr)
    held = [64, 67]
    notes: list[tuple[float, float, list[int], float]] = []
    for bar in range(plan.bars + plan.ending):
        root, iv = plan.chord(bar)
        held = voicing([(root + iv[1]) % 12, (root + iv[2]) % 12], held, 59,
                                   74, 2)
        t0 = plan.time(bar, 0.5)
        if bar >= plan.bars:
            dur = 1.6
        else:
            dur = plan.time(bar, 16) - t0 - 0.08
        notes.append((t0, dur, held, 1.0 if plan.chorus(bar) else 0.7))

    rendered: dict[tuple, np.ndarray] = {}  # repeated chords: render once
    for t0, dur, held, vel in notes:
        key = (tuple(held), int(dur * sr), vel)
        if key not in rendered:
            n = int((dur + 0.15) * sr)
            t = np.arange(n, dtype=np.float32) / sr
            swell = 0.3 + 0.7 * np.clip(t / (0.75 * dur), 0, 1) ** 2
            env = swell * _ramp_env(n, sr, 0.06, dur, 0.12) * vel
            stereo = np.zeros((2, n), dtype=np.float32)
            for k, (midi, pan) in enumerate(zip(held, (0.35, 0.55), strict=True)):
                vib = 0.12 * np.clip((t - 0.5) / 0.4, 0, 1) * np.sin(
                    2 * np.pi * 5.1 * t + rng.uniform(0, 6.3))
                scoop = -0.3 * np.exp(-t / 0.05)
                f = midi_hz(midi + vib + scoop + rng.normal(0, 0.04))
                saw = _saw(f, n, sr, float(rng.random()))
                lo = _filt(dark, saw)
                x = (lo + env * env * (_filt(bright, saw) - lo)) * env * (1.0 - 0.2 * k)
                _add(stereo, 0, x, _pan(pan))
            rendered[key] = stereo
        start = int(round(t0 * sr))
        stereo = rendered[key]
        lo, hi = start, min(start + stereo.shape[-1], plan.length)
        if hi > lo:
            buf[:, lo:hi] += stereo[:, :hi - lo]
            send[lo:hi] += 0.25 * (stereo[0, :hi - lo] + stereo[1, :hi - lo])
    return buf, send


@cache
def _piano_note(midi: int, samplerate: int, seconds: float) -> np.ndarray:
    """One piano note (additive partials, slight inharmonicity, two-stage decay)."""
    n = int(seconds * samplerate)
    t = np.arange(n, dtype=np.float32) / samplerate
    f0 = float(midi_hz(midi))
    rng = np.random.default_rng(midi)
    x = np.zeros(n, dtype=np.float32)
    for k in range(1, 13):
        fk = k * f0 * math.sqrt(1 + 0.0004 * k * k)
        if fk > min(9000.0, 0.45 * samplerate):
            break
        amp = k ** -1.1 / (1 + (k / 7) ** 2)
        tau = 2.4 / (1 + 0.35 * (k - 1)) * (1.2 - (midi - 48) / 80)
        env = 0.65 * np.exp(-t / (0.18 * tau)) + 0.35 * np.exp(-t / tau)
        beat = 1 + 0.3 * np.cos(2 * np.pi * (0.6 + 0.4 * k) * t) if k <= 3 else 1
        x += amp * env * beat * np.sin(2 * np.pi * fk * t + rng.uniform(0, 6.3))
    x *= _ramp_env(n, samplerate, 0.002, seconds - 0.05, 0.05)
    return x / np.abs(x).max()


def _piano(plan: SongPlan, rng: np.random.Generator) -> _Rendered:
    sr = plan.samplerate
    buf = np.zeros((2, plan.length), dtype=np.float32)
    send = np.zeros(plan.length, dtype=np.float32)
    patterns = (((0, 3), (3, 3), (6, 2)), ((0, 2), (2, 2), (4, 2), (6, 2)),
                ((0, 4), (4, 3), (7, 1)))
    verse, chorus = (patterns[int(i)] for i in rng.permutation(3)[:2])
    held = [60, 64, 67]
    hits: list[tuple[float, float, list[int], float]] = []
    for bar in range(plan.bars + plan.ending):
        root, iv = plan.chord(bar)
        held = voicing([(root + i) % 12 for i in iv], held, 55, 74, 3)
        if bar >= plan.bars:
            hits.append((plan.time(bar, 0), 1.9, held, 0.9))
            continue
        for start, length in (chorus if plan.chorus(bar) else verse):
            t0 = plan.time(bar, 2 * start)
            dur = plan.time(bar, 2 * (start + length)) - t0
            hits.append((t0, dur, held, 0.9 if start == 0 else 0.7))
    release = 0.12
    longest = max(d for _, d, _, _ in hits) + release
    for t0, dur, held, vel in hits:
        for j, midi in enumerate(held):
            x = _piano_note(midi, sr, round(longest, 2))
            n = min(x.size, int((dur + release) * sr))
            x = x[:n] * _ramp_env(n, sr, 1e-4, dur, release)
            v = vel * float(np.clip(1 + rng.normal(0, 0.08), 0.7, 1.3))
            start = int(round((t0 + 0.004 * j + abs(rng.normal(0, 0.002))) * sr))
            _add(buf, start, v * x, _pan(-0.5 + 0.4 * (midi - 55) / 19))
            _add_mono(send, start, 0.3 * v * x)
    return buf, send


_VOWELS = {  # formant frequencies F1-F3 (Hz) of sung vowels
    "a": (750, 1200, 2700), "e": (450, 1900, 2650), "i": (300, 2250, 3000),
    "o": (500, 850, 2600), "u": (350, 700, 2500),
}


@cache
def _formant_sos(vowel: str, samplerate: int) -> np.ndarray:
    """Cascade of Klatt resonators (unity gain at DC) for one vowel plus F4, F5."""
    sections = []
    freqs = (*_VOWELS[vowel], 3300, 3900)
    for f, bw in zip(freqs, (70, 90, 130, 250, 300), strict=True):
        f = min(f, 0.45 * samplerate)
        c = -math.exp(-2 * math.pi * bw / samplerate)
        b = 2 * math.exp(-math.pi * bw / samplerate) * math.cos(2 * math.pi * f / samplerate)
        sections.append([1 - b - c, 0, 0, 1, -b, -c])
    return np.array(sections)


def _melody_phrase(plan: SongPlan, rng: np.random.Generator, first_bar: int,
                   template: Sequence[tuple[int, int]], centre: int,
                   previous: int) -> list[tuple[float, float, int, str]]:
    """Notes (sixteenth offset, length in sixteenths, midi, vowel) of a two-bar phrase."""
    scale = plan.scale()
    lo, hi = centre - 5, centre + 7
    notes = []
    prev = previous
    for i, (start, length) in enumerate(template):
        bar = first_bar + (2 * start) // 16
        root, iv = plan.chord(bar)
        last = i == len(template) - 1
        if start % 2 == 0 or last:  # on the beat: a chord tone
            tones = np.array([m for m in range(lo, hi + 1)
                              if (m - root) % 12 in (iv[:2] if last else iv)])
            target = prev + rng.integers(-3, 4) + 0.3 * (centre - prev)
            w = np.exp(-np.abs(tones - target) / 1.5)
            prev = int(rng.choice(tones, p=w / w.sum()))
        else:  # off the beat: a scale step
            pos = int(np.searchsorted(scale, prev))
            step = int(rng.choice([-2, -1, 1, 2], p=[0.2, 0.3, 0.3, 0.2]))
            if prev > centre + 3:
                step = -abs(step)
            prev = int(np.clip(scale[np.clip(pos + step, 0, len(scale) - 1)], lo, hi))
        vowel = str(rng.choice(list(_VOWELS), p=[0.35, 0.2, 0.15, 0.2, 0.1]))
        notes.append((2 * start, 2 * length, prev, vowel))
    return notes


def _vocals(plan: SongPlan, rng: np.random.Generator) -> _Rendered:
    sr = plan.samplerate
    mono = np.zeros(plan.length, dtype=np.float32)
    templates = (
        ((0, 2), (2, 1), (3, 1), (4, 2), (6, 2), (8, 3), (11, 3)),
        ((1, 1), (2, 2), (4, 1), (5, 1), (6, 2), (8, 4)),
        ((0, 3), (3, 1), (4, 2), (6, 2), (8, 2), (10, 4)),
        ((2, 2), (4, 2), (6, 1), (7, 1), (8, 2), (10, 2), (12, 2)),
    )
    centre = 62 + (plan.tonic - 2) % 12
    centre = centre - 12 if centre > 68 else centre
    order = rng.permutation(len(templates))
    phrases: dict[int, list] = {}
    prev = centre
    for k in range(4):  # verse A B, chorus C D (a third higher), repeated every 8 bars
        tpl = templates[int(order[k % len(order)])]
        phrases[k] = _melody_phrase(plan, rng, 2 * k, tpl, centre + (4 if k >= 2 else 0),
                                    prev)
        prev = phrases[k][-1][2]

    sung: list[list[tuple[float, float, int, str]]] = []
    for first_bar in range(0, plan.bars, 2):
        group = []
        for six, length, midi, vowel in phrases[(first_bar % 8) // 2]:
            t0 = plan.time(first_bar, six)
            if six + length > 16 * (plan.bars - first_bar):
                break
            group.append((t0, plan.time(first_bar, six + length) - t0 - 0.03, midi, vowel))
        if group:
            sung.append(group)
    if plan.ending:
        final = min((m for m in range(centre - 5, centre + 8) if m % 12 == plan.tonic),
                    key=lambda m: abs(m - prev))
        sung.append([(plan.time(plan.bars, 0), 1.7, final, "a")])

    hiss = _sos("bandpass", (3500.0, 9000.0), sr)
    for group in sung:
        start = max(0, int((group[0][0] - 0.05) * sr))
        end = int((group[-1][0] + group[-1][1] + 0.12) * sr)
        n = end - start
        t = (np.arange(start, end, dtype=np.float64) / sr).astype(np.float32)
        # pitch: note targets with 50 ms glides, a little scoop into each phrase
        bp_t, bp_m = [group[0][0] - 0.05, group[0][0]], [group[0][2] - 0.6, group[0][2] - 0.6]
        for t0, dur, midi, _ in group:
            bp_t += [t0 + 0.05, t0 + dur]
            bp_m += [midi, midi]
        pitch = np.interp(t, bp_t, bp_m).astype(np.float32)
        depth = np.zeros(n, dtype=np.float32)
        amp_t: list[float] = []
        amp_v: list[float] = []
        legato = False
        for i, (t0, dur, _, _) in enumerate(group):
            a, b = int((t0 - start / sr) * sr), int((t0 + dur - start / sr) * sr)
            depth[a:b] = 0.35 * np.clip((t[a:b] - t0 - 0.25) / 0.3, 0, 1)
            if not legato:  # a fresh onset (phrase start or after a gap)
                amp_t.append(t0 - 0.02)
                amp_v.append(0.0)
            legato = i + 1 < len(group) and group[i + 1][0] - (t0 + dur) < 0.06
            amp_t += [t0 + 0.04, t0 + dur - 0.05, t0 + dur + (0.0 if legato else 0.02)]
            amp_v += [1.0 if i == 0 else 0.95, 0.85, 0.8 if legato else 0.0]
        phase = rng.uniform(0, 6.3, 3)
        tau = np.float32(2 * np.pi) * t
        pitch += depth * np.sin(np.float32(5.4) * tau + np.float32(phase[0]))
        pitch += np.float32(0.05) * np.sin(np.float32(0.7) * tau + np.float32(phase[1]))
        pitch += np.float32(0.04) * np.sin(np.float32(1.9) * tau + np.float32(phase[2]))
        amp = np.interp(t, amp_t, amp_v).astype(np.float32)
        breath = 0.08 * rng.standard_normal(n, dtype=np.float32)
        src = (_saw(midi_hz(pitch), n, sr) + breath) * amp
        # formants: each note's vowel, cross-fading into the next over 60 ms
        edges = [g[0] for g in group] + [group[-1][0] + group[-1][1] + 0.12]
        edges[0] = start / sr
        out = np.zeros(n + int(0.05 * sr), dtype=np.float32)
        for i, (_, _, _, vowel) in enumerate(group):
            a, b = edges[i], edges[i + 1]
            lo = max(0, int((a - 0.03) * sr) - start)
            hi = min(n, int((b + 0.03) * sr) - start + 1)
            w = np.interp(t[lo:hi], [a - 0.03, a + 0.03, b - 0.03, b + 0.03], [0, 1, 1, 0])
            if i == 0:
                w[t[lo:hi] < a + 0.03] = 1.0
            seg = np.zeros(hi - lo + int(0.05 * sr), dtype=np.float32)
            seg[:hi - lo] = src[lo:hi] * w
            sung_seg = _filt(_formant_sos(vowel, sr), seg)
            # level each note (a singer evens out vowels): formants hit harmonics unevenly
            gain = math.sqrt(float(np.dot(seg, seg)) / max(float(np.dot(sung_seg, sung_seg)),
                                                           1e-12))
            out[lo:lo + seg.size] += np.float32(gain) * sung_seg
        # consonants: short noise bursts before phrase starts and some notes
        for i, (t0, _, _, _) in enumerate(group):
            if i == 0 or rng.random() < 0.3:
                m = int(0.035 * sr)
                burst = _filt(hiss, rng.standard_normal(m).astype(np.float32))
                burst *= np.hanning(m).astype(np.float32) * 0.25
                _add_mono(out, int((t0 - 0.03) * sr) - start, burst)
        _add_mono(mono, start, out)
    buf = np.empty((2, plan.length), dtype=np.float32)
    np.multiply(mono, np.float32(_pan(0.0)[0]), out=buf[0])
    buf[1] = buf[0]
    mono *= np.float32(0.4)
    return buf, mono


_RENDER = {"vocals": _vocals, "drums": _drums, "bass": _bass, "electric_guitar": _guitar,
           "wind": _wind, "other": _piano}


def synth_song(seconds: float, samplerate: int = 44100, seed: int = 0,
               stems: Sequence[str] | None = None,
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render a song of `seconds`: (mix float32 [2, T], {stem id: float32 [2, T]}).

    `stems` picks which canonical stems to render (default: all six, in canonical order);
    each stem is the same whichever others are asked for, unless the full set would have
    clipped (then everything is scaled down together). The mix is the float32 sum of the
    returned stems in dict order, and its peak stays below -1 dBFS.
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    if samplerate < 8000:
        raise ValueError("samplerate must be at least 8000 Hz")
    wanted = STEM_IDS if stems is None else tuple(stems)
    unknown = [s for s in wanted if s not in STEM_IDS]
    if unknown or not wanted:
        raise ValueError(f"unknown stems {unknown} (known: {', '.join(STEM_IDS)})")
    wanted = tuple(s for s in STEM_IDS if s in wanted)
    plan = plan_song(seconds, samplerate, seed)
    out: dict[str, np.ndarray] = {}
    dry, sends = [], []
    for stem in wanted:
        rng = np.random.default_rng([seed, 1 + STEM_IDS.index(stem)])
        buf, send = _RENDER[stem](plan, rng)
        dry.append(buf)
        sends.append(send)
    wet_of = [i for i, s in enumerate(sends) if s is not None]
    if wet_of:
        wet = _reverb([sends[i] for i in wet_of], samplerate)
        for j, i in enumerate(wet_of):
            _upsample_into(dry[i], wet[j], _reverb_factor(samplerate))
    n_fade = min(plan.length, int(0.03 * samplerate))
    fade = np.linspace(1.0, 0.0, n_fade, dtype=np.float32)
    for stem, buf in zip(wanted, dry, strict=True):
        buf *= np.float32(STEM_GAIN[stem])
        buf[:, plan.length - n_fade:] *= fade
        out[stem] = buf
    mix = _sum(out)
    peak = max(sample_peak(x) for x in (mix, *out.values()))
    if peak > CEILING:
        for buf in out.values():
            buf *= np.float32(CEILING / peak)
        mix = _sum(out)
    return mix, out


def _sum(stems: dict[str, np.ndarray]) -> np.ndarray:
    """float32 sum of the stems in dict order (the same as builtin `sum`)."""
    total = None
    for buf in stems.values():
        total = buf.copy() if total is None else total + buf
    return total


__all__ = ["synth_song", "plan_song", "SongPlan", "midi_hz", "STEM_GAIN"]
