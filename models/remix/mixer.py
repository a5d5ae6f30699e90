"""The remix: per-stem gain, pan, mute and solo, a master gain, meters and the null test.

Everything here is plain numpy (no Qt): the GUI only edits a `MixerState`; the offline
render (`render_mix`, used by the remix export) and the real-time block mixer
(`BlockMixer`, used by playback) both take their gains from `channel_gains`, so what is
heard is what is exported.

Pan law: constant power with unity at the centre. A pan position p in [-1, 1] maps to the
angle a = (p + 1) pi / 4 and the gains (sqrt 2 cos a, sqrt 2 sin a): gL^2 + gR^2 = 2 at
every position, 0 dB on both sides at the centre (so an untouched remix equals the sum of
the stems and nulls against the song) and +3 dB on one side when hard-panned. Stereo stems
have their left channel scaled by gL and their right by gR; mono stems feed both.

Solo works like a DAW: if any channel is soloed only soloed channels play; mute wins over
solo on the same channel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..audio.channels import downmix_to_stereo
from ..audio.levels import pan_gains, sample_peak
from ..errors import Cancelled

#: Faders at or below this many dB are treated as fully off (-inf dB).
FADER_FLOOR_DB = -60.0
#: Sources the real-time mixer knows besides the stems.
MIX_SOURCE = "mix"
REMIX_SOURCE = "remix"


@dataclass
class ChannelState:
    """One stem's mixer channel."""

    gain_db: float = 0.0
    pan: float = 0.0  # -1 hard left .. +1 hard right
    mute: bool = False
    solo: bool = False


@dataclass
class MixerState:
    """The whole mixer: a channel per stem, the master fader and the A/B source.

    `source` is "remix" (the stems through the mixer) or "mix" (the original mixture); it
    is a monitoring switch and does not change what `render_mix` or the remix export give.
    """

    channels: dict[str, ChannelState] = field(default_factory=dict)
    master_db: float = 0.0
    source: str = REMIX_SOURCE

    @classmethod
    def for_stems(cls, stem_ids: Iterable[str]) -> MixerState:
        """A flat mixer (every stem at 0 dB, centred) for `stem_ids`."""
        return cls(channels={s: ChannelState() for s in stem_ids})

    def channel(self, stem_id: str) -> ChannelState:
        """The channel of `stem_id`, created flat if it does not exist yet."""
        if stem_id not in self.channels:
            self.channels[stem_id] = ChannelState()
        return self.channels[stem_id]

    def is_flat(self) -> bool:
        """True when the remix is just the sum of the stems (nothing changed)."""
        return self.master_db == 0.0 and all(
            c == ChannelState() for c in self.channels.values())


def db_to_gain(db: float) -> float:
    """Decibels to a linear factor; at or below `FADER_FLOOR_DB` (or -inf) gives 0."""
    if db <= FADER_FLOOR_DB or math.isnan(db):
        return 0.0
    return 10.0 ** (db / 20.0)


def gain_to_db(gain: float) -> float:
    """Linear factor to decibels (-inf for 0)."""
    return 20.0 * math.log10(gain) if gain > 0 else -math.inf


def channel_gains(state: MixerState, stem_ids: Iterable[str] | None = None
                  ) -> dict[str, tuple[float, float]]:
    """Effective linear (left, right) gain of every stem: solo, mute, fader, pan, master.

    `stem_ids` lists the stems to report (default: the state's channels); stems without a
    channel in `state` count as flat channels.
    """
    ids = list(state.channels) if stem_ids is None else list(stem_ids)
    chans = {s: state.channels.get(s) or ChannelState() for s in ids}
    any_solo = any(c.solo and not c.mute for c in chans.values())
    master = db_to_gain(state.master_db)
    out: dict[str, tuple[float, float]] = {}
    for stem_id, ch in chans.items():
        audible = not ch.mute and (ch.solo or not any_solo)
        if not audible:
            out[stem_id] = (0.0, 0.0)
            continue
        g = db_to_gain(ch.gain_db) * master
        left, right = pan_gains(ch.pan)
        out[stem_id] = (g * left, g * right)
    return out


def as_stereo(x: np.ndarray) -> np.ndarray:
    """[C, T] (or [T]) as float32 [2, T]: mono duplicated, more than two downmixed."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.shape[0] == 2:
        return x.astype(np.float32, copy=False)
    if x.shape[0] == 1:
        return np.repeat(x.astype(np.float32, copy=False), 2, axis=0)

    return downmix_to_stereo(x)


def _length(stems: Mapping[str, np.ndarray]) -> int:
    lengths = {np.asarray(s).shape[-1] for s in stems.values()}
    if len(lengths) > 1:
        raise ValueError(f"stems differ in length: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def render_mix(stems: Mapping[str, np.ndarray], state: MixerState, start: int = 0,
               stop: int | None = None) -> np.ndarray:
    """Offline render of the remix of `stems` ({id: [C, T]}) over [start, stop): [2, n].

    Mono stems feed both sides; stems with more than two channels are downmixed.
    """
    length = _length(stems)
    stop = length if stop is None else min(int(stop), length)
    start = max(0, int(start))
    n = max(0, stop - start)
    out = np.zeros((2, n), dtype=np.float32)
    gains = channel_gains(state, stems.keys())
    for stem_id, x in stems.items():
        left, right = gains[stem_id]
        if left == 0.0 and right == 0.0:
            continue
        seg = np.asarray(x)[..., start:stop]
        if seg.ndim == 1:
            seg = seg[None, :]
        if seg.shape[0] > 2:
            seg = as_stereo(seg)
        out[0] += left * seg[0]
        out[1] += right * seg[-1]
    return out


def render_peak(stems: Mapping[str, np.ndarray], state: MixerState, block: int = 1 << 18,
                cancel: Callable[[], bool] | None = None) -> float:
    """Sample peak (linear) of `render_mix(stems, state)`, rendered `block` frames at a time
    so memory stays bounded; above 1.0 the remix would clip (0 dBFS). 0.0 for silence.

    `cancel()` is checked between blocks (raises `Cancelled`).
    """

    length = _length(stems)
    peak = 0.0
    for start in range(0, length, max(1, int(block))):
        if cancel is not None and cancel():
            raise Cancelled("level check cancelled")
        seg = render_mix(stems, state, start, start + block)
        if seg.size:
            peak = max(peak, float(seg.max()), -float(seg.min()))
    return peak


def sum_stems(stems: Mapping[str, np.ndarray] | Sequence[np.ndarray],
              exclude: Iterable[str] = ()) -> np.ndarray:
    """Plain sum of the stems (float32 [C, T]), leaving out the ids in `exclude`."""
    excluded = set(exclude)
    arrays = ([v for k, v in stems.items() if k not in excluded]
              if isinstance(stems, Mapping) else list(stems))
    if not arrays:
        raise ValueError("no stems to sum")
    channels = max(np.asarray(a).shape[0] for a in arrays)
    total = np.zeros((channels, np.asarray(arrays[0]).shape[-1]), dtype=np.float32)
    for a in arrays:
        total += np.asarray(a, dtype=np.float32)  # mono broadcasts onto stereo
    return total


def null_test_db(mix: np.ndarray, stems: Mapping[str, np.ndarray] | Sequence[np.ndarray]
                 ) -> float:
    """Energy of mix - sum(stems) relative to the mix, in dB; -inf when they null exactly.

    Below about -90 dB the stems add back up to the song within float rounding.
    """
    mix = np.asarray(mix, dtype=np.float32)
    if mix.ndim == 1:
        mix = mix[None, :]
    total = sum_stems(stems)
    if mix.shape[0] > 2 and total.shape[0] <= 2:
        mix = as_stereo(mix)
    if total.shape[-1] != mix.shape[-1]:
        raise ValueError(f"mix has {mix.shape[-1]} samples, stems {total.shape[-1]}")
    residual = mix.astype(np.float64) - total.astype(np.float64)
    num = float(np.sum(residual * residual))
    if num == 0.0:
        return -math.inf
    den = float(np.sum(np.square(mix, dtype=np.float64)))
    return 10.0 * math.log10(num / max(den, 1e-20))


def peak_db(x: np.ndarray) -> float:
    """Sample peak in dBFS (-inf for silence or empty input)."""
    x = np.asarray(x)
    if x.size == 0:
        return -math.inf
    return gain_to_db(sample_peak(x))


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS over all samples and channels (-inf for silence)."""
    x = np.asarray(x)
    if x.size == 0:
        return -math.inf
    return gain_to_db(math.sqrt(float(np.mean(np.square(x, dtype=np.float64)))))


def format_db(db: float, digits: int = 1) -> str:
    """"-inf dB" / "-3.0 dB" for labels."""
    return "-inf dB" if db == -math.inf else f"{db:.{digits}f} dB"


def describe_null_test(db: float | None) -> str:
    """A readout for the null test, e.g. "Null test: -inf dB (stems sum exactly)"."""
    if db is None:
        return "Null test: -"
    if db == -math.inf or db < -120:
        return f"Null test: {format_db(db)} (stems sum exactly)"
    if db < -60:
        return f"Null test: {format_db(db)} (stems add up to the song)"
    return f"Null test: {format_db(db)} (stems do not add up to the song)"


class BlockMixer:
    """Real-time mixer for playback: renders the song block by block into a device buffer.

    Sources are the stems plus the original mixture (for the A/B switch); each has a
    target (left, right) gain. A block ramps linearly from the gains it last used to the
    current targets, so a mixer change is heard within one block and never clicks. Start
    fades in over one block; `request_stop` fades out over one block; a seek crossfades
    the old and the new position over one block.

    `render(out)` runs in the audio callback: it allocates nothing but tiny numpy views
    (scratch buffers are reused), takes no locks and only swaps references the GUI thread
    wrote, so it is safe to call from the PortAudio thread.
    """

    def __init__(self, mix: np.ndarray | None, stems: Mapping[str, np.ndarray] | None,
                 max_block: int = 8192) -> None:
        sources: list[np.ndarray] = []
        self.stem_ids: tuple[str, ...] = tuple(stems) if stems else ()
        for stem_id in self.stem_ids:
            sources.append(_for_playback(stems[stem_id]))  # type: ignore[index]
        if mix is None:
            if not sources:
                raise ValueError("nothing to play")
            mix = sum_stems(dict(zip(self.stem_ids, sources, strict=True)))
        self.mix_index = len(sources)
        sources.append(_for_playback(mix))
        self.sources = sources
        self.length = int(sources[-1].shape[-1])
        for stem_id, s in zip(self.stem_ids, sources, strict=False):
            if s.shape[-1] != self.length:
                raise ValueError(f"stem '{stem_id}' has {s.shape[-1]} samples, the mix "
                                 f"{self.length}")
        n_src = len(sources)
        self.position = 0
        self.loop: tuple[int, int] | None = None
        self.finished = False
        self.wrapped = False  # the last loop entry was a wrap (not a start or seek)
        self._target = np.zeros((n_src, 2), dtype=np.float32)
        self._current = np.zeros((n_src, 2), dtype=np.float32)
        self._zeros = np.zeros((n_src, 2), dtype=np.float32)
        self._seek_to: int | None = None
        self._stop_requested = False
        self.peaks = np.zeros(n_src + 1, dtype=np.float32)  # sources..., master
        self._alloc(max_block)

    # -- GUI thread ---------------------------------------------------------------------
    def set_gains(self, gains: np.ndarray) -> None:
        """New target gains [n_sources, 2] (stems in order, then the mix); swapped in whole."""
        g = np.array(gains, dtype=np.float32, copy=True).reshape(self._target.shape)
        self._target = g

    def gains_for(self, state: MixerState) -> np.ndarray:
        """The [n_sources, 2] target gains for a mixer state (honours the A/B source)."""
        g = np.zeros((len(self.sources), 2), dtype=np.float32)
        master = db_to_gain(state.master_db)
        if state.source == MIX_SOURCE or not self.stem_ids:
            g[self.mix_index] = master
        else:
            for i, (left, right) in enumerate(channel_gains(state, self.stem_ids).values()):
                g[i] = (left, right)
        return g

    def seek(self, frame: int) -> None:
        """Jump to `frame` (crossfaded on the next block if playing)."""
        self._seek_to = max(0, min(int(frame), self.length))

    def set_loop(self, start: int, end: int) -> None:
        """Loop [start, end) frames; playback wraps from end to start."""
        start, end = max(0, int(start)), min(int(end), self.length)
        if end - start < 1:
            raise ValueError("loop must be at least one sample long")
        self.loop = (start, end)

    def clear_loop(self) -> None:
        self.loop = None

    def reset_for_start(self) -> None:
        """Prepare to (re)start: fade in from silence, apply a pending seek at once."""
        self._current = self._zeros.copy()
        self._stop_requested = False
        self.wrapped = False
        if self._seek_to is not None:
            self.position, self._seek_to = self._seek_to, None
        if self.position >= self.length:
            self.position = self.loop[0] if self.loop is not None else 0
        self.finished = False

    def request_stop(self) -> None:
        """Fade out over the next block, after which `render` returns False."""
        self._stop_requested = True

    def take_peaks(self) -> np.ndarray:
        """Peaks since the last call ([stems..., mix, master], linear), then reset them."""
        p = self.peaks.copy()
        self.peaks[:] = 0.0
        return p

    # -- audio thread -------------------------------------------------------------------
    def render(self, out: np.ndarray) -> bool:
        """Fill `out` [frames, 2] with the next block; False when playback should stop
        (end of song without loop, or a requested stop has faded out)."""
        frames = out.shape[0]
        if frames > self._acc.shape[1]:
            self._alloc(frames)
        acc = self._acc[:, :frames]
        acc.fill(0.0)
        target = self._target  # one read: the GUI may swap it any time
        keep_going = True
        if self._stop_requested:
            self._render_into(acc, self._current, self._zeros, frames)
            self._current = self._zeros
            keep_going = False
        else:
            seek = self._seek_to
            if seek is not None:
                self._seek_to = None
                if not self.finished:
                    self._render_into(acc, self._current, self._zeros, frames)
                self.position = seek
                self.finished = False
                self.wrapped = False
                self._current = self._zeros
            if self.finished:
                keep_going = False
            else:
                self._render_into(acc, self._current, target, frames)
                self._current = target
                keep_going = not self.finished
        if out.shape[1] == 1:
            out[:, 0] = 0.5 * (acc[0] + acc[1])
        else:
            out[:, 0] = acc[0]
            out[:, 1] = acc[1]
            if out.shape[1] > 2:
                out[:, 2:] = 0.0
        peak = max(float(acc.max(initial=0.0)), -float(acc.min(initial=0.0)))
        if peak > self.peaks[-1]:
            self.peaks[-1] = peak
        return keep_going

    def _render_into(self, acc: np.ndarray, g0: np.ndarray, g1: np.ndarray,
                     frames: int) -> None:
        """Add `frames` frames from the current position to `acc` [2, frames], gains
        ramping g0 -> g1 across the block; advance, wrapping at the loop end."""
        done = 0
        while done < frames:
            pos = self.position
            loop = self.loop
            # Before the loop end (also before the loop start) playback wraps at the loop
            # end; past it (the user seeked there) it plays on to the end of the song.
            in_loop = loop is not None and pos < loop[1]
            end = loop[1] if in_loop else self.length
            n = min(frames - done, end - pos)
            if n <= 0:
                self.finished = True
                return
            self._mix_segment(acc[:, done:done + n], pos, n, g0, g1, done, frames)
            done += n
            self.position = pos + n
            if in_loop and self.position >= end:
                self.position = loop[0]  # type: ignore[index]
                self.wrapped = True
            elif self.position >= self.length:
                self.finished = True
                return

    def _mix_segment(self, acc: np.ndarray, pos: int, n: int, g0: np.ndarray,
                     g1: np.ndarray, offset: int, frames: int) -> None:
        ramp = self._ramp(frames)[offset:offset + n]
        tmp = self._tmp[:, :n]
        gtmp = self._gtmp[:, :n]
        for i, src in enumerate(self.sources):
            a0l, a0r = g0[i]
            a1l, a1r = g1[i]
            if a0l == 0.0 and a0r == 0.0 and a1l == 0.0 and a1r == 0.0:
                continue
            block = src[:, pos:pos + n]  # [1 or 2, n] view
            if a0l == a1l and a0r == a1r:
                np.multiply(block, g1[i][:, None], out=tmp)
            else:
                np.multiply(ramp, (g1[i] - g0[i])[:, None], out=gtmp)
                gtmp += g0[i][:, None]
                np.multiply(block, gtmp, out=tmp)
            acc += tmp
            peak = max(float(tmp.max()), -float(tmp.min()))
            if peak > self.peaks[i]:
                self.peaks[i] = peak

    def _ramp(self, frames: int) -> np.ndarray:
        if self._ramp_cache.shape[0] != frames:
            self._ramp_cache = (np.arange(1, frames + 1, dtype=np.float32) / frames)
        return self._ramp_cache

    def _alloc(self, frames: int) -> None:
        self._acc = np.zeros((2, frames), dtype=np.float32)
        self._tmp = np.zeros((2, frames), dtype=np.float32)
        self._gtmp = np.zeros((2, frames), dtype=np.float32)
        self._ramp_cache = np.zeros(0, dtype=np.float32)


def _for_playback(x: np.ndarray) -> np.ndarray:
    """float32 [1 or 2, T] without copying when the input already is."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.shape[0] > 2:
        x = as_stereo(x)
    return x.astype(np.float32, copy=False)


__all__ = [
    "ChannelState", "MixerState", "BlockMixer", "channel_gains", "render_mix", "render_peak",
    "sum_stems",
    "null_test_db", "peak_db", "rms_db", "db_to_gain", "gain_to_db", "pan_gains",
    "format_db", "describe_null_test", "FADER_FLOOR_DB",
]
