"""The singer's signal processing (espeak-ng's words made into sung notes), used by
`render.Singer`: trimming a spoken word and finding its vowel, stretching or shortening it
by whole pitch periods with crossfaded splices, and a delayed pitch vibrato by a modulated
delay line (pure numpy); and `_CHILD`, the espeak-ng child process's code that
`render.Singer` runs (a fresh process per song, so the same song sings the same).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SAMPLERATE = 44100  # the rendered songs' rate (render.SAMPLERATE)
ESPEAK_RATE = 22050  # espeak-ng's output rate

# The child process: ctypes to libespeak-ng, one JSON list of [voice, text, rate] on stdin,
# for each a little-endian uint32 sample count and that many int16 samples on stdout.
_CHILD = r"""
import ctypes, json, struct, sys
lib = ctypes.CDLL(sys.argv[1])
CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                      ctypes.c_void_p)
buf = bytearray()
def cb(wav, n, events):
    if n > 0 and wav:
        buf.extend(ctypes.string_at(wav, 2 * n))
    return 0
keep = CB(cb)
if lib.espeak_Initialize(2, 0, sys.argv[2].encode(), 0x8000) <= 0:
    sys.exit("espeak-ng did not start")
lib.espeak_SetSynthCallback(keep)
out = sys.stdout.buffer
for voice, text, rate in json.loads(sys.stdin.buffer.read()):
    buf.clear()
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        sys.exit("espeak-ng has no voice " + voice)
    lib.espeak_SetParameter(1, int(rate), 0)
    data = text.encode() + b"\0"
    lib.espeak_Synth(data, len(data), 0, 1, 0, 0, None, None)
    lib.espeak_Synchronize()
    out.write(struct.pack("<I", len(buf) // 2))
    out.write(bytes(buf))
out.flush()
"""


def _trim(y: np.ndarray, threshold: float = 0.01) -> tuple[np.ndarray, int]:
    """Leading and trailing silence cut; also the onset of the voiced nucleus (samples
    from the new start), so the vowel can land on the beat."""
    if y.size == 0:
        return y, 0
    peak = float(np.max(np.abs(y)))
    if peak <= 0:
        return y[:0], 0
    loud = np.flatnonzero(np.abs(y) > threshold * peak)
    y = y[loud[0]:loud[-1] + 1].copy()
    hop = 110
    frames = len(y) // hop
    if frames < 2:
        return y, 0
    rms = np.sqrt(np.mean(y[:frames * hop].reshape(frames, hop) ** 2, axis=1))
    onset = int(np.argmax(rms >= 0.5 * rms.max())) * hop
    return y, onset


def _fit(y: np.ndarray, want: int, period: float) -> np.ndarray:
    """Stretch or shorten a spoken word to `want` samples by repeating or cutting whole
    pitch periods in its loudest stretch (the vowel), crossfaded at every splice."""
    n = len(y)
    hop = 110
    frames = n // hop
    if frames >= 3 and want != n:
        rms = np.sqrt(np.mean(y[:frames * hop].reshape(frames, hop) ** 2, axis=1))
        loud = np.flatnonzero(rms >= 0.5 * rms.max())
        n0, n1 = int(loud[0]) * hop, int(loud[-1] + 1) * hop
        k = max(2, int(round(0.03 * ESPEAK_RATE / period)))
        seg = max(2, int(round(k * period)))  # whole periods, about 30 ms
        center = _steadiest(y, n0, n1, seg, period)
        if want > n and center - seg >= 0:
            copies = int(round((want - n) / seg))
            if copies > 0:
                y = _splice(y, [(0, center)] + [(center - seg, center)] * copies
                            + [(center, n)])
        elif want < n:
            cut = min(int(round((n - want) / seg)), max(0, (center - n0) // seg))
            if cut > 0:
                y = _splice(y, [(0, center - cut * seg), (center, n)])
    if len(y) >= want:
        return y[:want].copy()
    return np.concatenate([y, np.zeros(want - len(y), dtype=np.float32)])


def _steadiest(y: np.ndarray, n0: int, n1: int, seg: int, period: float) -> int:
    """The point in [n0, n1] where the `seg` samples before it best match the `seg` after
    it (the most stationary stretch of the vowel: a diphthong loops where it glides least);
    the middle when the vowel is too short to choose."""
    step = max(1, int(round(period)))
    cands = list(range(max(n0, seg), min(n1, len(y) - seg) + 1, step))
    if len(cands) < 2:
        return (n0 + n1) // 2
    best, best_err = cands[len(cands) // 2], np.inf
    for c in cands:
        a, b = y[c - seg:c], y[c:c + seg]
        err = float(np.sum((a - b) ** 2) / (np.sum(a * a) + np.sum(b * b) + 1e-12))
        if err < best_err - 1e-9:
            best, best_err = c, err
    return best


def _splice(y: np.ndarray, pieces: Sequence[tuple[int, int]], x: int = 64) -> np.ndarray:
    """Concatenate the ranges `pieces` of `y`; around every join the end of one piece and
    the start of the next are crossfaded over 2x samples using what surrounds each in `y`
    (joins fall on whole periods, so this only smooths the rounding)."""
    out = np.concatenate([y[a:b] for a, b in pieces]).astype(np.float32)
    n = len(y)
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, 2 * x))).astype(np.float32)
    pos = 0
    for i in range(len(pieces) - 1):
        pos += pieces[i][1] - pieces[i][0]
        end, start = pieces[i][1], pieces[i + 1][0]
        if min(end, start) >= x and max(end, start) + x <= n and x <= pos <= len(out) - x:
            out[pos - x:pos + x] = (y[end - x:end + x] * (1 - ramp)
                                    + y[start - x:start + x] * ramp)
    return out


def _vibrato(x: np.ndarray, depth_env: np.ndarray, rate_hz: float, cents: float = 0.35
             ) -> np.ndarray:
    """Pitch vibrato by a modulated delay line; `depth_env` (0-1 per sample) sets where and
    how much, `cents` is in semitones x 100 / 100 (0.35 = 35 cents) at full depth."""
    if not depth_env.any():
        return x
    n = len(x)
    # delay swing A (samples) for a peak pitch deviation of `cents`:
    # ratio - 1 = 2 pi f A / sr  ->  A = (2**(c/12) - 1) sr / (2 pi f)
    amp = (2.0 ** (cents / 12.0) - 1.0) * SAMPLERATE / (2 * np.pi * rate_hz)
    t = np.arange(n, dtype=np.float64)
    delay = amp * (1.0 + depth_env * np.sin(2 * np.pi * rate_hz * t / SAMPLERATE))
    return np.interp(t - delay, t, x, left=0.0).astype(np.float32)


__all__ = ["ESPEAK_RATE", "SAMPLERATE"]
