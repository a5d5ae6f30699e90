"""Training data from multitrack folders: decoded-audio cache, segment sampler, augmentation.

Songs come from `multitrack.scan_folder`. Each song is decoded once at the model's rate, its
tracks summed per stem (stereo), and cached as a float32 `.npy` file in the cache folder,
keyed by the tracks' paths, sizes, modification times and mapping (`prepare_songs`). Training
reads the cache through memory maps, so worker processes share the page cache and nothing is
decoded again.

`SegmentDataset` draws random segments, deterministically from (seed, epoch, index) so a
resumed or distributed run sees exactly the data an uninterrupted single-process run would:

* a song (or, for a `force_fraction` of the segments, a song and position where
  `force_stem` plays), then a random position;
* per stem, with probability `remix`, the stem is taken from another song (remixing sources
  across songs);
* per stem: random left/right swap, random gain (0.75-1.25);
* optionally the whole segment pitch-shifted and/or time-stretched (phase vocoder +
  resampling);
* the stems mixed with the six-class adaptive-rescaling mixdown (`mixdown.mix_stems`), so
  the mixture is exactly the sum of the targets and nothing clips;
* optionally (`codec_prob`) the mixture alone sent through MP3 or AAC and back, aligned
  to the sample (`codec_roundtrip`), as records are often heard: the targets stay clean.

Each item is (mix [C, L], targets [S, C, L], mask [S]): `mask` is 0 for a target stem the
song does not have, so the loss never trains it towards silence (a stem that is present in
the song but silent in the segment keeps mask 1: silence is then the right answer). Stems
of the data that the model does not produce go into its "other" target when it has one.

`EpochSampler` orders the segments of an epoch and splits every global batch between the
ranks of a distributed run; `make_loader` wraps all of it in a DataLoader with workers.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import StemwrightError
from ..multitrack.folders import MultitrackError, Song, load_song, scan_folder
from ..multitrack.mixdown import mix_stems
from ..progress import CancelCheck, check_cancel
from ..stems import STEM_IDS, get_stem
from ..zoo.catalog import cache_dir

CACHE_VERSION = 1
ACTIVITY_HOP = 0.1  # seconds per activity frame
ACTIVE_DB = -50.0  # a segment "contains" a stem when the stem's RMS there is above this


class DataError(StemwrightError):
    """The training data cannot be used (no songs, nothing to train on, ...)."""


# --------------------------------------------------------------------------------------
# Decoded-audio cache
# --------------------------------------------------------------------------------------

@dataclass(eq=False)
class CachedSong:
    """One decoded song in the cache: stems [S_present, 2, T] float32 in `path`."""

    key: str  # "<folder name>/<song key>", unique over the folders of a run
    folder: str
    stems: tuple[str, ...]  # canonical ids present, in array order
    length: int
    samplerate: int
    path: Path
    activity: np.ndarray  # [S_present, frames] float32 RMS per ACTIVITY_HOP
    mapping: dict[str, str] = field(default_factory=dict)  # track key -> stem
    _audio: np.ndarray | None = field(default=None, repr=False)

    def audio(self) -> np.ndarray:
        """The stems as a read-only memory map [S_present, 2, T] (opened once per process)."""
        if self._audio is None:
            self._audio = np.load(self.path, mmap_mode="r")
        return self._audio

    def stem(self, stem: str, start: int, length: int) -> np.ndarray:
        """Samples [start, start + length) of one stem, zero-padded past the end: [2, length]."""
        data = self.audio()[self.stems.index(stem)]
        out = np.zeros((data.shape[0], length), dtype=np.float32)
        lo, hi = max(start, 0), min(start + length, self.length)
        if hi > lo:
            out[:, lo - start:hi - start] = data[:, lo:hi]
        return out

    def __getstate__(self) -> dict:  # memory maps are reopened in each worker process
        state = dict(self.__dict__)
        state["_audio"] = None
        return state

    @property
    def seconds(self) -> float:
        return self.length / self.samplerate


def default_cache_dir() -> Path:
    """Where decoded training audio is cached: <user cache>/training-cache."""
    return cache_dir() / "training-cache"


def song_cache_key(song: Song, samplerate: int) -> str:
    """Hash of what the cached audio depends on: files (path, size, mtime), mapping, rate."""
    files = []
    for t in song.tracks:
        if not t.usable:
            continue
        try:
            st = t.path.stat()
        except OSError:
            continue
        # the key too: the tracks of a .stem.mp4 share one file
        files.append([str(t.path.resolve()), st.st_size, st.st_mtime_ns, t.key, t.stem])
    body = json.dumps({"v": CACHE_VERSION, "rate": int(samplerate), "files": sorted(files)})
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def _atomic_npy(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def activity(stems: np.ndarray, samplerate: int) -> np.ndarray:
    """RMS per ACTIVITY_HOP frame of each stem: [S, C, T] -> [S, frames] float32."""
    hop = max(1, int(round(ACTIVITY_HOP * samplerate)))
    frames = -(-stems.shape[-1] // hop)
    out = np.empty((stems.shape[0], frames), dtype=np.float32)
    padded = np.zeros(frames * hop, dtype=np.float32)
    for i, stem in enumerate(stems):  # one stem at a time: no song-sized float64 copies
        np.einsum("ct,ct->t", stem, stem, out=padded[:stem.shape[-1]])
        out[i] = padded.reshape(frames, hop).mean(-1, dtype=np.float64) / stem.shape[0]
    return np.sqrt(out)


def cache_song(song: Song, samplerate: int, cache: Path, folder_name: str = "",
               cancel: CancelCheck | None = None) -> CachedSong:
    """Decode `song` once (or find it in `cache`) as per-stem stereo sums at `samplerate`."""
    cache.mkdir(parents=True, exist_ok=True)
    digest = song_cache_key(song, samplerate)
    npy, act, meta = (cache / f"{digest}.npy", cache / f"{digest}.act.npy",
                      cache / f"{digest}.json")
    key = f"{folder_name}/{song.key}" if folder_name else song.key
    mapping = song.mapping()
    if npy.is_file() and act.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            return CachedSong(key, folder_name, tuple(info["stems"]), int(info["length"]),
                              int(info["samplerate"]), npy, np.load(act), mapping)
        except (OSError, ValueError, KeyError):
            pass  # damaged entry: decode again
    loaded = load_song(song, samplerate, cancel=cancel)
    check_cancel(cancel)
    stems, names = [], []
    for stem, tracks in loaded.by_stem().items():
        total = np.sum(tracks, axis=0, dtype=np.float64)
        if total.shape[0] == 1:
            total = np.repeat(total, 2, axis=0)
        if not np.any(total):
            continue  # silent tracks: the stem is absent
        stems.append(total.astype(np.float32))
        names.append(stem)
    if not stems:
        raise MultitrackError(f"{song.key}: every track is silent")
    array = np.stack(stems)
    _atomic_npy(npy, array)
    _atomic_npy(act, activity(array, samplerate))
    body = {"stems": names, "length": int(array.shape[-1]), "samplerate": int(samplerate),
            "song": song.key, "folder": str(song.folder)}
    tmp = meta.with_name(meta.name + ".part")
    tmp.write_text(json.dumps(body), encoding="utf-8")
    os.replace(tmp, meta)
    return CachedSong(key, folder_name, tuple(names), int(array.shape[-1]), samplerate, npy,
                      np.load(act), mapping)


def song_folder_names(folders: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The name each folder's songs are keyed under ("<name>/<song>"): the folder's own
    name, with "-2", "-3", ... when two folders share one."""
    out: list[str] = []
    names: dict[str, int] = {}
    for folder in folders:
        name = Path(folder).expanduser().resolve().name or "songs"
        if name in names:
            names[name] += 1
            name = f"{name}-{names[name]}"
        names.setdefault(name, 1)
        out.append(name)
    return out


def prepare_songs(folders: Sequence[str | os.PathLike[str]], samplerate: int,
                  cache: str | os.PathLike[str] | None = None,
                  progress: Callable[[int, int, str], None] | None = None,
                  cancel: CancelCheck | None = None) -> tuple[list[CachedSong], list[str]]:
    """Scan `folders`, decode (or find cached) every song: (songs, problems).

    `progress(done, total, song key)` after each song. A song that cannot be loaded is
    reported in `problems` and left out; DataError when no song is left.
    """
    root = Path(cache) if cache is not None else default_cache_dir()
    found: list[tuple[str, Song]] = []
    problems: list[str] = []
    for folder, name in zip(folders, song_folder_names(folders), strict=True):
        scan = scan_folder(folder)
        problems += [f"{scan.root}: {p}" for p in scan.problems]
        found += [(name, s) for s in scan.songs]
    out: list[CachedSong] = []
    for i, (name, song) in enumerate(found):
        check_cancel(cancel)
        try:
            out.append(cache_song(song, samplerate, root, name, cancel))
        except MultitrackError as exc:
            problems.append(f"{name}/{song.key}: left out ({exc})")
        if progress is not None:
            progress(i + 1, len(found), f"{name}/{song.key}")
    if not out:
        raise DataError("none of the songs could be loaded for training")
    return out, problems


def split_songs(songs: Sequence[CachedSong], valid_fraction: float = 0.1, seed: int = 0,
                valid_keys: Sequence[str] | None = None
                ) -> tuple[list[CachedSong], list[CachedSong]]:
    """Split by song into (train, valid): the songs named in `valid_keys` (a key or its
    last part), or a `valid_fraction` drawn with `seed` (at least one song when there are
    two or more). With a single song there is no validation set."""
    ordered = sorted(songs, key=lambda s: s.key)
    if valid_keys:
        wanted = set(valid_keys)
        valid = [s for s in ordered if s.key in wanted or s.key.split("/", 1)[-1] in wanted]
        unknown = wanted - {s.key for s in valid} - {s.key.split("/", 1)[-1] for s in valid}
        if unknown:
            raise DataError(f"validation songs not found: {', '.join(sorted(unknown))}")
    else:
        n = len(ordered)
        count = 0 if n < 2 or valid_fraction <= 0 else max(1, round(valid_fraction * n))
        order = np.random.default_rng([seed, 7]).permutation(n)
        valid = [ordered[i] for i in sorted(order[:min(count, n - 1)])]
    train = [s for s in ordered if all(s is not v for v in valid)]
    if not train:
        raise DataError("no songs are left for training after the validation split")
    return train, valid


# --------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------

@dataclass
class Augment:
    """Switchable augmentations (literature defaults; pitch and stretch off by default)."""

    swap: bool = True  # per-source left/right swap, probability 1/2
    gain: tuple[float, float] | None = (0.75, 1.25)  # per-source gain range
    remix: float = 0.5  # probability that a stem comes from another song
    pitch: float = 0.0  # most semitones of pitch shift (0: off)
    stretch: float = 0.0  # most relative tempo change, e.g. 0.1 (0: off)
    repitch_prob: float = 0.2  # share of segments pitch-shifted / stretched when enabled
    codec_prob: float = 0.0  # share of mixtures sent through MP3/AAC (targets stay clean)
    eq: float = 0.0  # most dB of each random EQ band on a stem (0: off)
    eq_prob: float = 0.5  # share of stems equalised when `eq` is on

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.codec_prob) <= 1.0:
            raise DataError(f"the codec probability must be between 0 and 1, not "
                            f"{self.codec_prob}")
        if not 0.0 <= float(self.eq) <= 24.0 or not 0.0 <= float(self.eq_prob) <= 1.0:
            raise DataError(f"the EQ range must be 0 to 24 dB and its probability 0 to 1, "
                            f"not {self.eq} dB and {self.eq_prob}")

    @classmethod
    def none(cls) -> Augment:
        return cls(swap=False, gain=None, remix=0.0)


# -- random EQ (per stem) --------------------------------------------------------------

#: (lowest, highest) corner or centre frequency in Hz of the three random EQ bands
EQ_BANDS = {"low_shelf": (60.0, 300.0), "peak": (200.0, 6000.0), "high_shelf": (2000.0, 10000.0)}


def eq_curve(freqs: np.ndarray, low: tuple[float, float], peak: tuple[float, float, float],
             high: tuple[float, float]) -> np.ndarray:
    """Gain (linear) per frequency of a low shelf (corner Hz, dB), a bell (centre Hz, dB,
    width in octaves) and a high shelf (corner Hz, dB): smooth on a log-frequency axis,
    so the filter's impulse response is short."""
    octaves = np.log2(np.maximum(freqs, 1.0))
    def shelf(corner: float) -> np.ndarray:  # 0 well below the corner, 1 well above
        return 1.0 / (1.0 + np.exp(-(octaves - np.log2(corner)) * 4.0))
    db = (low[1] * (1.0 - shelf(low[0])) + high[1] * shelf(high[0])
          + peak[1] * np.exp(-0.5 * ((octaves - np.log2(peak[0])) / (peak[2] / 2.0)) ** 2))
    return (10.0 ** (db / 20.0)).astype(np.float32)


def random_eq(x: np.ndarray, samplerate: int, rng: np.random.Generator,
              max_db: float) -> np.ndarray:
    """`x` [C, L] through a random zero-phase EQ: a low shelf, a bell and a high shelf, each
    up to `max_db` up or down, at log-uniform frequencies in `EQ_BANDS`. Why: the generated
    songs' instruments have few timbres (a handful of sound fonts and kits); real records
    are equalised every which way, and a model that keys on a spectral envelope learned
    from sound fonts hears a real saxophone as a voice. Applied to a stem before the
    mixdown, so the mixture stays the sum of the targets."""
    def freq(band: str) -> float:
        lo, hi = EQ_BANDS[band]
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    def gain() -> float:
        return float(rng.uniform(-max_db, max_db))
    low, peak = (freq("low_shelf"), gain()), (freq("peak"), gain(), float(rng.uniform(0.5, 2.5)))
    high = (freq("high_shelf"), gain())
    spec = np.fft.rfft(x, axis=-1)
    freqs = np.fft.rfftfreq(x.shape[-1], 1.0 / samplerate)
    spec *= eq_curve(freqs, low, peak, high)
    return np.fft.irfft(spec, n=x.shape[-1], axis=-1).astype(np.float32)


# -- lossy codec round trip (mixture only) --------------------------------------------

#: codec name -> (PyAV encoder, container, encoder options): fast settings (data loading)
CODECS = {"mp3": ("libmp3lame", "mp3", {"compression_level": "7"}),
          "aac": ("aac", "adts", {"aac_coder": "fast"})}
CODEC_BITRATES = (96, 112, 128, 160, 192, 224, 256)  # kb/s, drawn uniformly
CODEC_RATES = {"mp3": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
               "aac": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000,
                       64000, 88200, 96000)}
_CODEC_DELAY: dict[tuple[str, int, int], int] = {}


def _encode_decode(x: np.ndarray, samplerate: int, codec: str, bitrate: int) -> np.ndarray:
    """`x` [C, T] (C = 1 or 2) encoded in memory and decoded as is: [C, T'] float32."""

    import av

    encoder, container, options = CODECS[codec]
    layout = "mono" if x.shape[0] == 1 else "stereo"
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(encoder, rate=samplerate, options=dict(options))
        stream.bit_rate = int(bitrate)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x, dtype=np.float32),
                                           format="fltp", layout=layout)
        frame.sample_rate = samplerate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    chunks = []
    with av.open(io.BytesIO(buf.getvalue()), "r") as inp:
        for frame in inp.decode(audio=0):
            a = frame.to_ndarray()
            if not frame.format.is_planar:
                a = a.reshape(-1, x.shape[0]).T
            chunks.append(a.astype(np.float32, copy=False))
    return np.concatenate(chunks, axis=1) if chunks else np.zeros((x.shape[0], 0),
                                                                  dtype=np.float32)


def codec_delay(codec: str, samplerate: int, channels: int = 2) -> int:
    """Samples the decoded signal lags the input by (encoder priming the decoder does not
    remove: 0 for MP3 with its LAME tag, 1024 for ffmpeg's AAC in ADTS), measured once
    per process by cross-correlating a noise burst."""
    key = (codec, int(samplerate), int(channels))
    if key not in _CODEC_DELAY:
        from scipy.signal import correlate

        rng = np.random.default_rng(0)
        probe = np.zeros((channels, max(samplerate, 16384)), dtype=np.float32)
        probe[:, 2048:4096] = 0.3 * rng.standard_normal((channels, 2048))
        y = _encode_decode(probe, samplerate, codec, 128000)
        c = correlate(y[0], probe[0], mode="full", method="fft")[probe.shape[-1] - 1:]
        _CODEC_DELAY[key] = int(np.argmax(c[:8192]))  # lags up to 8192 samples
    return _CODEC_DELAY[key]


def codec_roundtrip(x: np.ndarray, samplerate: int, codec: str = "mp3",
                    bitrate: int = 128000) -> np.ndarray:
    """`x` [C, T] through a lossy codec ("mp3" or "aac") and back, in memory, aligned
    sample for sample (the priming delay trimmed) and of the same length: [C, T]."""
    if codec not in CODECS:
        raise DataError(f"unknown codec {codec!r}: use {' or '.join(CODECS)}")
    if samplerate not in CODEC_RATES[codec]:
        raise DataError(f"{codec} cannot encode {samplerate} Hz audio")
    x = np.asarray(x, dtype=np.float32)
    delay = codec_delay(codec, samplerate, x.shape[0])
    y = _encode_decode(x, samplerate, codec, bitrate)[:, delay:delay + x.shape[-1]]
    if y.shape[-1] < x.shape[-1]:
        y = np.pad(y, ((0, 0), (0, x.shape[-1] - y.shape[-1])))
    return np.ascontiguousarray(y, dtype=np.float32)


def phase_vocoder(x: np.ndarray, rate: float, n_fft: int = 1024) -> np.ndarray:
    """Time-stretch `x` [N, T] by `rate` (>1 faster) keeping the pitch: [N, ~T / rate]."""
    hop = n_fft // 4
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    window = torch.hann_window(n_fft)
    spec = torch.stft(t, n_fft, hop, window=window, pad_mode="constant",
                      return_complex=True)  # [N, F, frames]
    steps = torch.arange(0, spec.shape[-1] - 1, rate)
    if len(steps) == 0:
        return np.zeros((x.shape[0], 0), dtype=np.float32)
    lo = steps.floor().long()
    frac = (steps - lo).to(torch.float32)
    mag = (1 - frac) * spec[..., lo].abs() + frac * spec[..., lo + 1].abs()
    expected = torch.linspace(0, math.pi * hop, spec.shape[1])[:, None]
    dphase = spec[..., lo + 1].angle() - spec[..., lo].angle() - expected
    dphase = dphase - 2 * math.pi * torch.round(dphase / (2 * math.pi))
    advance = torch.remainder(dphase + expected, 2 * math.pi)  # keeps the sum small
    phase = torch.cumsum(torch.cat([spec[..., :1].angle(), advance[..., :-1]], dim=-1),
                         dim=-1)
    out = torch.istft(torch.polar(mag, phase), n_fft, hop, window=window,
                      length=int(round(len(steps) * hop)))
    return out.numpy()


def repitch(stems: np.ndarray, semitones: float, tempo: float, length: int,
            samplerate: int = 44100) -> np.ndarray:
    """Pitch-shift by `semitones` and speed up by `tempo` (>1 faster): [S, C, T] ->
    [S, C, length]. `stems` should hold about `length * tempo` samples."""
    import soxr

    flat = stems.reshape(-1, stems.shape[-1])
    factor = 2.0 ** (semitones / 12.0)
    target = int(round(length * factor))  # stretched to this, then resampled by `factor`
    rate = flat.shape[-1] / max(target, 1)
    n_fft = 2048 if samplerate > 24000 else 1024
    y = phase_vocoder(flat, rate, n_fft) if abs(rate - 1.0) > 1e-3 else flat
    if abs(factor - 1.0) > 1e-3:
        y = soxr.resample(np.ascontiguousarray(y.T), 1.0e4 * factor, 1.0e4, "HQ").T
    out = np.zeros((flat.shape[0], length), dtype=np.float32)
    n = min(length, y.shape[-1])
    out[:, :n] = y[:, :n]
    return out.reshape(*stems.shape[:-1], length)


# --------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------

def target_groups(sources: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """{target stem: canonical data stems summed into it}: stems the model lacks go to
    its "other" target when it has one (and are otherwise left in the mix only)."""
    sources = [get_stem(s).id for s in sources]
    groups = {s: (s,) for s in sources}
    if "other" in groups:
        groups["other"] = tuple(s for s in STEM_IDS if s == "other" or s not in sources)
    return groups


class SegmentDataset(Dataset):
    """Random training segments: item (mix [2, L], targets [S, 2, L], mask [S]).

    Index `epoch * len(self) + i` gives segment i of that epoch (see EpochSampler); song
    `i // segments_per_song`, everything else drawn from a generator seeded with
    (seed, epoch, i).
    """

    def __init__(self, songs: Sequence[CachedSong], sources: Sequence[str], segment: int,
                 segments_per_song: int = 64, augment: Augment | None = None,
                 force_stem: str | None = None, force_fraction: float = 0.0,
                 seed: int = 0) -> None:
        if not songs:
            raise DataError("no songs to train on")
        self.songs = list(songs)
        self.sources = [get_stem(s).id for s in sources]
        self.groups = target_groups(self.sources)
        self.segment = int(segment)
        self.segments_per_song = int(segments_per_song)
        self.augment = augment if augment is not None else Augment()
        self.force_stem = get_stem(force_stem).id if force_stem else None
        self.force_fraction = float(force_fraction) if force_stem else 0.0
        self.seed = int(seed)
        self.samplerate = self.songs[0].samplerate
        self.by_stem = {s: [i for i, song in enumerate(self.songs) if s in song.stems]
                        for s in STEM_IDS}
        if self.augment.codec_prob > 0 and any(
                self.samplerate not in rates for rates in CODEC_RATES.values()):
            raise DataError(f"the codec augmentation cannot encode {self.samplerate} Hz "
                            "audio: set its probability to 0")
        if self.force_stem and not self.by_stem[self.force_stem]:
            raise DataError(f"no training song has {get_stem(self.force_stem).name.lower()}"
                            " to force into segments")

    def __len__(self) -> int:
        return len(self.songs) * self.segments_per_song

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        epoch, i = divmod(int(index), len(self))
        rng = np.random.default_rng([self.seed, epoch, i])
        for attempt in range(8):
            stems = self._draw(rng, i, epoch, attempt)
            item = self._mix(stems)
            if item is not None:
                return self._codec(item, epoch, i)
        return self._silence(stems)

    def _codec(self, item: tuple[torch.Tensor, torch.Tensor, torch.Tensor], epoch: int,
               i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """With probability `augment.codec_prob`, the mixture (only) through MP3 or AAC at
        96-256 kb/s; drawn from its own generator, so the rest of the item is unchanged."""
        if self.augment.codec_prob <= 0:
            return item
        rng = np.random.default_rng([self.seed, epoch, i, 17])
        if rng.random() >= self.augment.codec_prob:
            return item
        codec = str(rng.choice(sorted(CODECS)))
        bitrate = int(rng.choice(CODEC_BITRATES)) * 1000
        mix = codec_roundtrip(item[0].numpy(), self.samplerate, codec, bitrate)
        return (torch.from_numpy(mix), item[1], item[2])

    # -- drawing -----------------------------------------------------------------------
    def _draw(self, rng: np.random.Generator, i: int, epoch: int = 0,
              attempt: int = 0) -> dict[str, np.ndarray]:
        aug, length = self.augment, self.segment
        semitones, tempo = 0.0, 1.0
        if (aug.pitch > 0 or aug.stretch > 0) and rng.random() < aug.repitch_prob:
            semitones = float(rng.uniform(-aug.pitch, aug.pitch)) if aug.pitch > 0 else 0.0
            tempo = float(rng.uniform(1 - aug.stretch, 1 + aug.stretch)) \
                if aug.stretch > 0 else 1.0
        read = int(round(length * tempo))
        forced = self.force_fraction > 0 and rng.random() < self.force_fraction
        if forced:
            base = self.songs[int(rng.choice(self.by_stem[self.force_stem]))]
            start = self._active_start(base, self.force_stem, read, rng)
        else:
            base = self.songs[min(i // self.segments_per_song, len(self.songs) - 1)]
            start = self._random_start(base, read, rng)
        out: dict[str, np.ndarray] = {}
        for stem in STEM_IDS:
            song, at = base, start
            keep = forced and stem == self.force_stem
            if not keep and aug.remix > 0 and rng.random() < aug.remix and self.by_stem[stem]:
                song = self.songs[int(rng.choice(self.by_stem[stem]))]
                at = self._random_start(song, read, rng)
            if stem not in song.stems:
                continue
            x = song.stem(stem, at, read)
            if aug.gain is not None:
                x *= np.float32(rng.uniform(*aug.gain))
            if aug.swap and rng.random() < 0.5:
                x = x[::-1].copy()
            if aug.eq > 0:  # its own generator: the rest of the item is drawn as without
                eq_rng = np.random.default_rng([self.seed, epoch, i, STEM_IDS.index(stem),
                                                29, attempt])
                if eq_rng.random() < aug.eq_prob:
                    x = random_eq(x, self.samplerate, eq_rng, aug.eq)
            out[stem] = x
        if out and (semitones != 0.0 or tempo != 1.0):
            names = list(out)
            shifted = repitch(np.stack([out[s] for s in names]), semitones, tempo, length,
                              self.samplerate)
            out = {s: shifted[k] for k, s in enumerate(names)}
        return out

    def _random_start(self, song: CachedSong, length: int, rng: np.random.Generator) -> int:
        return int(rng.integers(0, max(song.length - length, 0) + 1))

    def _active_start(self, song: CachedSong, stem: str, length: int,
                      rng: np.random.Generator) -> int:
        """A start where `stem` plays (segment RMS above ACTIVE_DB), else its loudest."""
        hop = max(1, int(round(ACTIVITY_HOP * song.samplerate)))
        energy = np.square(song.activity[song.stems.index(stem)].astype(np.float64))
        n = max(1, min(len(energy), length // hop))
        sums = np.convolve(energy, np.ones(n), mode="valid") / n
        good = np.flatnonzero(sums > 10 ** (ACTIVE_DB / 10))
        frame = int(rng.choice(good)) if len(good) else int(np.argmax(sums))
        return min(frame * hop, max(song.length - length, 0))

    # -- mixing ------------------------------------------------------------------------
    def _mix(self, stems: dict[str, np.ndarray]
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Adaptive-rescaling mixdown of the drawn stems; None when all are silent."""
        try:
            mixed = mix_stems({s: [x] for s, x in stems.items()}, self.samplerate)
        except ValueError:
            return None
        return self._pack(mixed.mixture, mixed.stems, stems)

    def _silence(self, stems: dict[str, np.ndarray]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        zero = np.zeros((2, self.segment), dtype=np.float32)
        return self._pack(zero, {}, stems)

    def _pack(self, mixture: np.ndarray, mixed: dict[str, np.ndarray],
              present: dict[str, np.ndarray]
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        targets = np.zeros((len(self.sources), 2, self.segment), dtype=np.float32)
        mask = np.zeros(len(self.sources), dtype=np.float32)
        for j, target in enumerate(self.sources):
            for stem in self.groups[target]:
                if stem in present:
                    mask[j] = 1.0
                    if stem in mixed:  # silent stems were dropped by the mixdown
                        targets[j] += mixed[stem]
        return (torch.from_numpy(np.ascontiguousarray(mixture, dtype=np.float32)),
                torch.from_numpy(targets), torch.from_numpy(mask))


class ValidationSet(Dataset):
    """Fixed, unaugmented segments of the validation songs: (mix, targets, mask, song).

    Up to `per_song` consecutive segments per song, spread evenly over long songs."""

    def __init__(self, songs: Sequence[CachedSong], sources: Sequence[str], segment: int,
                 per_song: int = 8) -> None:
        self.inner = SegmentDataset(songs, sources, segment, 1, Augment.none()) \
            if songs else None
        self.items: list[tuple[int, int]] = []
        for k, song in enumerate(songs):
            count = max(1, -(-song.length // segment))
            if count <= per_song:
                starts = [j * segment for j in range(count)]
            else:
                block = max(1, (song.length - segment) // (per_song - 1)) if per_song > 1 else 0
                starts = [j * block for j in range(per_song)]
            self.items += [(k, s) for s in starts]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        assert self.inner is not None
        k, start = self.items[index]
        song = self.inner.songs[k]
        stems = {s: song.stem(s, start, self.inner.segment) for s in song.stems}
        item = self.inner._mix(stems) or self.inner._silence(stems)
        return (*item, torch.tensor(k))


# --------------------------------------------------------------------------------------
# Sampling and loading
# --------------------------------------------------------------------------------------

class EpochSampler(Sampler[int]):
    """Shuffled segment indices per epoch, as global indices `epoch * n + i`.

    Every step takes the next `batch` (global batch) indices of the epoch's permutation;
    rank r of `world` keeps its slice of `batch // world`, so all ranks together see
    exactly what one process would. Incomplete last batches are dropped (an epoch too
    short for one batch repeats its segments to fill it). `max_steps` caps an epoch.
    """

    def __init__(self, n: int, batch: int, seed: int = 0, rank: int = 0, world: int = 1,
                 shuffle: bool = True, max_steps: int | None = None) -> None:
        if batch % world:
            raise DataError(f"the batch ({batch}) must be a multiple of the number of "
                            f"processes ({world})")
        self.n, self.batch, self.seed = int(n), int(batch), int(seed)
        self.rank, self.world, self.shuffle = int(rank), int(world), shuffle
        self.local = self.batch // self.world
        self.steps = max(1, self.n // self.batch)
        if max_steps:
            self.steps = min(self.steps, int(max_steps))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps * self.local

    def __iter__(self) -> Iterator[int]:
        order = (np.random.default_rng([self.seed, self.epoch, 11]).permutation(self.n)
                 if self.shuffle else np.arange(self.n))
        order = np.resize(order, self.steps * self.batch)
        for step in range(self.steps):
            chunk = order[step * self.batch:(step + 1) * self.batch]
            for i in chunk[self.rank * self.local:(self.rank + 1) * self.local]:
                yield self.epoch * self.n + int(i)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(dataset: Dataset, batch: int, sampler: Sampler | None = None,
                workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """DataLoader over `dataset` with `workers` processes (persistent, one thread each)."""
    return DataLoader(dataset, batch_size=batch, sampler=sampler, shuffle=False,
                      num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=workers > 0, worker_init_fn=_worker_init,
                      prefetch_factor=4 if workers > 0 else None, drop_last=False)


def data_summary(songs: Sequence[CachedSong]) -> dict[str, int]:
    """How many songs have each stem: {stem id: count}."""
    return {s: sum(s in song.stems for song in songs) for s in STEM_IDS}


__all__ = ["ACTIVE_DB", "CODECS", "Augment", "CachedSong", "DataError", "EpochSampler",
           "SegmentDataset", "ValidationSet", "activity", "cache_song", "codec_roundtrip",
           "data_summary", "default_cache_dir", "eq_curve", "make_loader", "phase_vocoder",
           "prepare_songs", "random_eq", "repitch", "song_cache_key", "split_songs",
           "target_groups"]
