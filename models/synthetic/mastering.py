"""Mixing and mastering like a record while the mixture stays exactly the sum of the stems.

Why: real records are bus-processed, compressed, limited and loud (-14 to -7 LUFS); a
separation model trained only on dynamic, unmastered mixes meets a different world. The
catch is that `stemwright synth` writes mix = sum(stems) exactly, and a limiter on the mix
is not a function of the stems. So every nonlinear step happens where it is still a
property of one stem, and the master stage only ever multiplies:

* stem buses (`process_stems`): per stem, optionally EQ (pedalboard shelves and a
  bell, on each of its tracks: linear, so the same as on the bus), saturation (a soft
  clipper on each track) and a bus compressor whose gain envelope comes from the sum of
  the stem's tracks and multiplies each of them;
* the master (`master_tracks`): a gain envelope g[t] computed from the mix alone (make-up
  gain, a mix-bus compressor, a look-ahead brickwall limiter on a 2x-oversampled
  "true-ish" peak) multiplies EVERY track, so the mastered mix is the sum of the mastered
  tracks. The make-up gain is searched (secant steps on the BS.1770 integrated loudness)
  until the limited mix lands within ~0.3 LU of a target drawn from -14 to -7 LUFS.

Everything is vectorised numpy/scipy: envelopes are computed on 16-sample blocks (the
limiter's block maxima are widened by a block on each side so the guarantee holds for
every sample), release is a constant dB/s decay computed with `np.maximum.accumulate`,
attack smoothing is a one-pole `lfilter`. A 150-s stereo song masters in well under 2 s.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter, sosfilt

from ..errors import StemwrightError
from .render import SAMPLERATE, apply_effects

HOP = 16  # samples per envelope block
LUFS_RANGE = (-14.0, -7.0)
CEILING_RANGE = (-1.0, -0.5)  # dBFS, true-ish peak (tracks stay under -0.5 too)
MAX_MAKEUP_OVER = 18.0  # dB of make-up beyond plain normalisation, at most
TOLERANCE_LU = 0.3  # the search stops within this of the target
MASTERED_SHARE = 0.8  # share of `stemwright synth` songs mastered loud (the rest dynamic)


class MasteringError(StemwrightError):
    """The tracks cannot be mastered (silent, mismatched shapes, bad settings)."""


def _u(rng: np.random.Generator, lo: float, hi: float, digits: int = 2) -> float:
    return round(float(rng.uniform(lo, hi)), digits)


# --------------------------------------------------------------------------------------
# Loudness (ITU-R BS.1770, as pyloudnorm measures it, vectorised)
# --------------------------------------------------------------------------------------

_K_SOS: dict[int, tuple[np.ndarray, float]] = {}


def _k_sos(samplerate: int) -> tuple[np.ndarray, float]:
    """pyloudnorm's K-weighting filters at `samplerate` as one SOS cascade and its gain."""
    if samplerate not in _K_SOS:
        import pyloudnorm

        meter = pyloudnorm.Meter(samplerate)
        rows, gain = [], 1.0
        for stage in meter._filters.values():  # high shelf, then high pass
            b, a = np.asarray(stage.b, float), np.asarray(stage.a, float)
            rows.append(np.concatenate([b, a]))
            gain *= float(stage.passband_gain)
        _K_SOS[samplerate] = (np.stack(rows), gain)
    return _K_SOS[samplerate]


def k_weight(x: np.ndarray, samplerate: int = SAMPLERATE) -> np.ndarray:
    """K-weighted copy of `x` [C, T] (float32: within 0.001 LU of float64)."""
    sos, gain = _k_sos(samplerate)
    out = sosfilt(sos.astype(np.float32), np.asarray(x, dtype=np.float32), axis=-1)
    out *= np.float32(gain)
    return out


def _gate(z: np.ndarray) -> float:
    """BS.1770 gating of 400 ms block mean squares: -70 LUFS, then -10 LU relative."""
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10 * np.log10(z)
    z = z[loud >= -70.0]
    if not len(z):
        return float("-inf")
    rel = -0.691 + 10 * np.log10(z.mean()) - 10.0
    z = z[-0.691 + 10 * np.log10(z) > rel]
    return float(-0.691 + 10 * np.log10(z.mean())) if len(z) else float("-inf")


def _gate_edges(n: int, samplerate: int) -> tuple[np.ndarray, np.ndarray] | None:
    """pyloudnorm's 400 ms blocks (75 % overlap) over n samples: (starts, ends)."""
    count = int(np.round((n / samplerate - 0.4) / 0.1)) + 1
    if count < 1 or n < 0.4 * samplerate:
        return None
    j = np.arange(count)
    lo = np.array([int(0.4 * (k * 0.25) * samplerate) for k in j], dtype=np.int64)
    hi = np.array([int(0.4 * (k * 0.25 + 1) * samplerate) for k in j], dtype=np.int64)
    return lo, np.minimum(hi, n)


def gated_loudness(power: np.ndarray, samplerate: int = SAMPLERATE,
                   gain: np.ndarray | None = None) -> float:
    """Integrated loudness (LUFS) from the K-weighted power summed over the channels
    [T] (`k_power`), optionally times a shared gain envelope [T] (the power then scales
    by gain**2 exactly): the blocks and gates of pyloudnorm. -inf for silence or under
    400 ms."""
    edges = _gate_edges(len(power), samplerate)
    if edges is None:
        return float("-inf")
    q = power if gain is None else power * np.square(gain, dtype=np.float32)
    lo, hi = edges
    cuts = np.unique(np.concatenate([[0], lo, hi]))
    cuts = cuts[cuts < len(q)]
    cum = np.concatenate([[0.0], np.cumsum(np.add.reduceat(q, cuts, dtype=np.float64))])
    at = {int(c): k for k, c in enumerate(cuts)}
    at[len(q)] = len(cuts)
    index = np.vectorize(at.__getitem__, otypes=[np.int64])
    return _gate((cum[index(hi)] - cum[index(lo)]) / (0.4 * samplerate))


def k_power(x: np.ndarray, samplerate: int = SAMPLERATE) -> np.ndarray:
    """K-weighted power of `x` [C, T] summed over the channels (BS.1770 gains 1): [T]."""
    w = k_weight(x, samplerate)
    return np.einsum("ct,ct->t", w, w).astype(np.float32)


def integrated_lufs(x: np.ndarray, samplerate: int = SAMPLERATE) -> float:
    """Integrated loudness (LUFS) of `x` [C, T]."""
    return gated_loudness(k_power(x, samplerate), samplerate)


# --------------------------------------------------------------------------------------
# Gain envelopes
# --------------------------------------------------------------------------------------

def _blocks(x: np.ndarray, hop: int) -> np.ndarray:
    """[T] -> [ceil(T / hop), hop], zero-padded."""
    pad = (-len(x)) % hop
    if pad:
        x = np.concatenate([x, np.zeros(pad, dtype=x.dtype)])
    return x.reshape(-1, hop)


def _block_reduce(x: np.ndarray, hop: int, op: np.ufunc) -> np.ndarray:
    """`op` (np.maximum or np.add) over each `hop` samples of [T] (hop a power of two),
    by halving: numpy reduces a short last axis slowly."""
    b = _blocks(np.asarray(x, dtype=np.float32), hop)
    while b.shape[1] > 1:
        half = b.shape[1] // 2
        b = op(b[:, :half], b[:, half:])
    return b[:, 0]


def _upsample(gain_blocks: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Block gains (at block starts) to one per sample, linear between block starts:
    float32 [length]."""
    g = np.asarray(gain_blocks, dtype=np.float32)
    nxt = np.append(g[1:], g[-1])
    ramp = np.arange(hop, dtype=np.float32) / np.float32(hop)
    full = (nxt - g)[:, None] * ramp
    full += g[:, None]
    return full.reshape(-1)[:length]


def _release(reduction: np.ndarray, db_per_block: float) -> np.ndarray:
    """Hold every reduction (dB) and let it decay at `db_per_block`: a limiter's release,
    vectorised (a running max of reduction + slope * index)."""
    slope = db_per_block * np.arange(len(reduction), dtype=np.float64)
    return np.maximum.accumulate(reduction + slope) - slope


def true_ish_peak(x: np.ndarray) -> np.ndarray:
    """Per-sample peak over the channels of `x` [C, T], including a half-sample estimate
    (4-tap cubic interpolation: 2x oversampling): [T] float32."""
    x = np.asarray(x, dtype=np.float32)
    peak = np.abs(x).max(axis=0)
    if x.shape[-1] >= 4:
        mid = 9.0 * (x[:, 1:-2] + x[:, 2:-1]) - (x[:, :-3] + x[:, 3:])
        mid = np.abs(mid).max(axis=0) * np.float32(1 / 16)
        peak[1:-2] = np.maximum(peak[1:-2], mid)
    return peak


def _limiter_db(need: np.ndarray, width: int, release_db_per_block: float) -> np.ndarray:
    """Limiter reduction (dB) per block from what each block needs (dB >= 0): held over
    the blocks u-1 .. u+width (the look-ahead, plus a block either side so the linear
    interpolation between block starts is covered), released at a constant rate, then
    averaged over the `width` blocks ending at u (the attack ramp). Every block's value is
    an average of values each >= what the blocks it reaches need: nothing escapes."""
    padded = np.concatenate([[0.0], need, np.zeros(width)])
    held = np.lib.stride_tricks.sliding_window_view(padded, width + 2).max(axis=1)
    held = _release(held, release_db_per_block)
    front = np.full(width - 1, held[0])
    cum = np.concatenate([[0.0], np.cumsum(np.concatenate([front, held]))])
    return (cum[width:] - cum[:-width]) / width


def limiter_gain(peak: np.ndarray, ceiling_db: float, lookahead_ms: float = 3.0,
                 release_ms: float = 100.0, samplerate: int = SAMPLERATE,
                 hop: int = HOP) -> np.ndarray:
    """Look-ahead brickwall limiter: a smooth gain [T] (<= 1) with peak[t] * g[t] <=
    10 ** (ceiling_db / 20) for every t (up to float rounding). The reduction ramps in
    over the look-ahead and releases at 20 dB per `release_ms`."""
    blocks = _block_reduce(peak, hop, np.maximum).astype(np.float64)
    need = np.maximum(20 * np.log10(np.maximum(blocks, 1e-12)) - ceiling_db, 0.0)
    if not np.any(need > 0):
        return np.ones(len(peak), dtype=np.float32)
    width = max(1, int(np.ceil(lookahead_ms * 1e-3 * samplerate / hop)))
    red = _limiter_db(need, width, 20.0 * hop / (release_ms * 1e-3 * samplerate))
    return _upsample(10 ** (-red / 20), len(peak), hop).astype(np.float32)


def _compressor_db(power: np.ndarray, threshold_db: float, ratio: float, knee_db: float,
                   attack_ms: float, release_ms: float, rate: float) -> np.ndarray:
    """Compressor reduction (dB) per block from the mean power per block."""
    a = 1.0 - np.exp(-1.0 / (0.010 * rate))  # 10 ms RMS detector
    level = 10 * np.log10(np.maximum(lfilter([a], [1.0, a - 1.0], power), 1e-12))
    over = level - threshold_db
    slope = 1.0 - 1.0 / ratio
    knee = max(knee_db, 1e-6)
    red = np.where(over <= -knee / 2, 0.0,
                   np.where(over >= knee / 2, slope * over,
                            slope * (over + knee / 2) ** 2 / (2 * knee)))
    red = _release(red, 10.0 / (release_ms * 1e-3 * rate))
    a = 1.0 - np.exp(-1.0 / max(attack_ms * 1e-3 * rate, 1e-6))
    return lfilter([a], [1.0, a - 1.0], red)


def _block_power(x: np.ndarray, hop: int) -> np.ndarray:
    """Mean power over the channels and each `hop` samples of `x` [C, T] (float64)."""
    x = np.asarray(x, dtype=np.float32)
    total = _block_reduce(np.einsum("ct,ct->t", x, x), hop, np.add)
    return total.astype(np.float64) / (hop * x.shape[0])


def compressor_gain(x: np.ndarray, threshold_db: float, ratio: float, knee_db: float = 6.0,
                    attack_ms: float = 10.0, release_ms: float = 150.0,
                    samplerate: int = SAMPLERATE, hop: int = HOP) -> np.ndarray:
    """A feed-forward RMS compressor's gain [T] (<= 1) for `x` [C, T] (stereo-linked):
    10 ms RMS detector, soft knee, release at 10 dB per `release_ms`, attack as a
    one-pole of `attack_ms` on the reduction (both vectorised)."""
    red = _compressor_db(_block_power(x, hop), threshold_db, ratio, knee_db, attack_ms,
                         release_ms, samplerate / hop)
    return _upsample(10 ** (-red / 20), x.shape[-1], hop).astype(np.float32)


# --------------------------------------------------------------------------------------
# Stem buses
# --------------------------------------------------------------------------------------

def draw_bus(stem: str, rng: np.random.Generator) -> dict:
    """Bus settings for one stem (JSON-able); {} for a stem left as it is."""
    if rng.random() < 0.35:
        return {}
    bus: dict = {}
    if rng.random() < 0.7:
        bus["eq"] = [{"type": "lowshelf", "cutoff_frequency_hz": _u(rng, 80, 250),
                      "gain_db": _u(rng, -3, 3)},
                     {"type": "peak", "cutoff_frequency_hz": _u(rng, 400, 5000, 0),
                      "gain_db": _u(rng, -3, 3), "q": _u(rng, 0.6, 1.4)},
                     {"type": "highshelf", "cutoff_frequency_hz": _u(rng, 5000, 11000, 0),
                      "gain_db": _u(rng, -3, 3)}]
    if stem in ("drums", "bass", "electric_guitar", "vocals") and rng.random() < 0.4:
        bus["saturation"] = {"drive_db": _u(rng, 2, 12), "mix": _u(rng, 0.2, 0.8)}
    if rng.random() < 0.6:
        bus["compressor"] = {"threshold_below_db": _u(rng, 2, 10), "ratio": _u(rng, 1.5, 4),
                             "attack_ms": _u(rng, 2, 30), "release_ms": _u(rng, 60, 300)}
    return bus


def _sum(arrays: list[np.ndarray]) -> np.ndarray:
    """The sum of same-shaped float32 arrays, added in order (no stacked copy)."""
    total = np.array(arrays[0], dtype=np.float32, copy=True)
    for a in arrays[1:]:
        total += a
    return total


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.einsum("ct,ct->", x, x, dtype=np.float64) / x.size))


def saturate(x: np.ndarray, drive_db: float, mix: float) -> np.ndarray:
    """Parallel tanh saturation of a track [C, T], relative to its own peak and level
    matched (RMS) to the input: float32."""
    peak = float(np.max(np.abs(x)))
    if peak <= 0:
        return x
    drive = 10 ** (drive_db / 20) / peak
    wet = np.tanh(x * np.float32(drive))
    wet *= np.float32(mix / drive)
    out = x * np.float32(1.0 - mix) + wet
    level = _rms(out)
    return (out * np.float32(_rms(x) / level)).astype(np.float32) if level > 0 else out


def process_stems(tracks: list[np.ndarray], stems: list[str], buses: dict[str, dict],
                  samplerate: int = SAMPLERATE) -> list[np.ndarray]:
    """Each track [2, T] through its stem's bus (`draw_bus`): EQ and saturation per
    track, then the bus compressor's envelope (from the stem's sum) on every track of
    the stem, level-matched. Nonlinear only within a stem, so each stem is still the sum
    of its tracks."""
    out = list(tracks)
    for stem, bus in buses.items():
        idx = [i for i, s in enumerate(stems) if s == stem]
        if not bus or not idx:
            continue
        for i in idx:
            if bus.get("eq"):
                out[i] = apply_effects(out[i], bus["eq"], samplerate)
            if bus.get("saturation"):
                out[i] = saturate(out[i], **bus["saturation"])
        comp = bus.get("compressor")
        if comp:
            total = _sum([out[i] for i in idx])
            before = _rms(total)
            if before <= 0:
                continue
            level = 20 * np.log10(before)
            gain = compressor_gain(total, level + 3.0 - comp["threshold_below_db"],
                                   comp["ratio"], 6.0, comp["attack_ms"],
                                   comp["release_ms"], samplerate)
            after = _rms(total * gain)
            gain *= np.float32(before / after) if after > 0 else np.float32(1.0)
            for i in idx:
                out[i] = out[i] * gain
    return out


# --------------------------------------------------------------------------------------
# The master
# --------------------------------------------------------------------------------------

def draw_master(rng: np.random.Generator) -> dict:
    """Master settings for one song (JSON-able)."""
    return {"target_lufs": _u(rng, *LUFS_RANGE), "ceiling_dbfs": _u(rng, *CEILING_RANGE),
            "compressor": {"threshold_above_target_db": _u(rng, -2, 5),
                           "ratio": _u(rng, 1.5, 4), "attack_ms": _u(rng, 5, 40),
                           "release_ms": _u(rng, 80, 400)},
            "limiter": {"lookahead_ms": _u(rng, 1.5, 5), "release_ms": _u(rng, 30, 250)}}


def master_envelope(mix: np.ndarray, settings: dict, samplerate: int = SAMPLERATE,
                    extra_peak: np.ndarray | None = None, power: np.ndarray | None = None
                    ) -> tuple[np.ndarray, dict]:
    """The shared gain g [T] (float32) that masters `mix` [2, T] per `settings`
    (`draw_master`), and what it did. `extra_peak` [T]: more per-sample peaks the
    limiter must keep under the ceiling (e.g. the loudest track's, scaled); `power`: the
    mix's `k_power`, when already measured.

    Everything runs on HOP-sample blocks and is upsampled once; the loudness of mix * g
    is K(mix) * g (g is smooth and shared by the channels: within 0.01 LU of measuring
    the product), so the mix is K-weighted once."""
    mix = np.asarray(mix, dtype=np.float32)
    if mix.ndim != 2 or mix.shape[-1] < HOP:
        raise MasteringError("mastering needs a [channels, samples] mix of some length")
    n, hop, rate = mix.shape[-1], HOP, samplerate / HOP
    power = k_power(mix, samplerate) if power is None else power
    start = gated_loudness(power, samplerate)
    if not np.isfinite(start):
        raise MasteringError("the mix is silent (or shorter than 400 ms): nothing to master")
    target, ceiling = float(settings["target_lufs"]), float(settings["ceiling_dbfs"])
    comp, lim = settings["compressor"], settings["limiter"]
    peak = true_ish_peak(mix)
    if extra_peak is not None:
        np.maximum(peak, extra_peak, out=peak)
    peak_b = _block_reduce(peak, hop, np.maximum).astype(np.float64)
    peak_db = 20 * np.log10(np.maximum(peak_b, 1e-12))
    del peak
    mix_power = _block_power(mix, hop)
    loud_b = _block_reduce(power, hop, np.add).astype(np.float64)
    edges = _gate_edges(n, samplerate)
    assert edges is not None
    lo_b, hi_b = (np.round(e / hop).astype(np.int64) for e in edges)
    width = max(1, int(np.ceil(lim["lookahead_ms"] * 1e-3 * samplerate / hop)))
    release = 20.0 / (lim["release_ms"] * 1e-3 * rate)

    def envelope(makeup_db: float) -> np.ndarray:  # gain (dB) per block start
        gc = makeup_db - _compressor_db(
            mix_power, target + comp["threshold_above_target_db"] - makeup_db,
            comp["ratio"], 6.0, comp["attack_ms"], comp["release_ms"], rate)
        gc_max = np.maximum(gc, np.append(gc[1:], gc[-1]))  # the block's largest
        need = np.maximum(peak_db + gc_max - ceiling, 0.0)
        return gc - _limiter_db(need, width, release)

    def loudness(g_db: np.ndarray) -> float:  # block-level estimate
        gsq = 10 ** (g_db / 10)
        gsq = 0.5 * (gsq + np.append(gsq[1:], gsq[-1]))
        cum = np.concatenate([[0.0], np.cumsum(loud_b * gsq)])
        return _gate((cum[hi_b] - cum[lo_b]) / (0.4 * samplerate))

    base = target - start
    tried: list[tuple[float, float]] = []
    makeup = base
    for _ in range(8):
        g_db = envelope(makeup)
        got = loudness(g_db)
        tried.append((makeup, got))
        if abs(got - target) <= TOLERANCE_LU / 3:
            break
        if len(tried) >= 2 and abs(tried[-1][0] - tried[-2][0]) > 1e-6:
            (m0, l0), (m1, l1) = tried[-2], tried[-1]
            slope = min(max((l1 - l0) / (m1 - m0), 0.05), 1.0)
        else:
            slope = 0.8
        makeup = min(max(makeup + (target - got) / slope, base - 12.0),
                     base + MAX_MAKEUP_OVER)
    g = _upsample(10 ** (g_db / 20), n, hop).astype(np.float32)
    final = gated_loudness(power, samplerate, g)
    info = {"mastered": True, "target_lufs": round(target, 2),
            "measured_lufs": round(float(final), 2), "unmastered_lufs": round(start, 2),
            "ceiling_dbfs": round(ceiling, 2), "makeup_db": round(float(makeup), 2),
            "max_gain_reduction_db": round(float(makeup - g_db.min()), 2),
            "compressor": dict(comp), "limiter": dict(lim)}
    return g, info


def master_tracks(tracks: list[np.ndarray], stems: list[str], rng: np.random.Generator,
                  samplerate: int = SAMPLERATE, track_ceiling: float = 0.944,
                  stem_buses: bool = True) -> tuple[list[np.ndarray], np.ndarray, dict]:
    """Bus-process and master a song's tracks (each float32 [2, T], `stems[i]` the stem of
    track i): (mastered tracks, their sum (the mastered mix), settings for the metadata).

    The master's gain envelope is computed from the mix and multiplies every track, so
    the mix is exactly the sum of the returned tracks; the mix's true-ish peak stays at or
    under the drawn ceiling and no track peaks past `track_ceiling` (a shared gain lowers
    everything if one would). `stem_buses=False` skips the buses (drawn all the same, so
    the master settings do not change): the tracks are then only scaled by the master."""
    if not tracks:
        raise MasteringError("no tracks to master")
    if len(stems) != len(tracks) or any(t.shape != tracks[0].shape for t in tracks):
        raise MasteringError("every track must be [2, T] of one length, with one stem each")
    buses = {s: draw_bus(s, rng) for s in dict.fromkeys(stems)}
    settings = draw_master(rng)
    if not stem_buses:
        buses = {}
    out = process_stems(tracks, stems, buses, samplerate)
    mix = _sum(out)
    power = k_power(mix, samplerate)
    g, info = master_envelope(mix, settings, samplerate, power=power)
    # the loudest track per sample: g is shared, so a track's peak after it is this * g
    loudest = np.zeros(mix.shape[-1], dtype=np.float32)
    for t in out:
        for channel in t:
            np.maximum(loudest, np.abs(channel), out=loudest)
    if float(np.max(loudest * g)) > track_ceiling:  # a track louder than the mix
        loudest *= np.float32(10 ** (info["ceiling_dbfs"] / 20) / track_ceiling)
        g, info = master_envelope(mix, settings, samplerate, extra_peak=loudest,
                                  power=power)
    del mix, power, loudest
    for k in range(len(out)):  # one track at a time: no second copy of them all
        out[k] = out[k] * g
    mix = _sum(out)
    # float rounding must not break the limits
    ceiling = 10 ** (info["ceiling_dbfs"] / 20)
    peak = float(np.max(np.abs(mix)))
    track_peak = max(float(np.max(np.abs(t))) for t in out)
    trim = min(1.0, ceiling / max(peak, 1e-12), track_ceiling / max(track_peak, 1e-12))
    if trim < 1.0:
        trim = float(np.float32(trim * (1 - 1e-6)))
        out = [t * np.float32(trim) for t in out]
        mix = _sum(out)
        info["measured_lufs"] = round(float(info["measured_lufs"] + 20 * np.log10(trim)),
                                      2)
    info["trim_db"] = round(float(20 * np.log10(trim)), 3)
    info["peak_dbfs"] = round(float(20 * np.log10(max(float(np.max(np.abs(mix))), 1e-12))),
                              2)
    info["buses"] = {s: b for s, b in buses.items() if b}
    return out, mix, info


__all__ = ["CEILING_RANGE", "LUFS_RANGE", "MASTERED_SHARE", "MasteringError",
           "compressor_gain", "draw_bus", "draw_master", "gated_loudness", "integrated_lufs",
           "k_weight", "limiter_gain", "master_envelope", "master_tracks", "process_stems",
           "saturate", "true_ish_peak"]
