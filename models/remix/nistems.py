"""Native Instruments Stems (`.stem.mp4`): the one file Traktor, Mixxx and djay load as
four stems plus the song, written from our six stems and read back.

The layout (what those players read):

* An MP4 file (major brand "M4A ") with five stereo AAC (or ALAC) tracks at one rate and one
  length: track 1 the mix (the master, the only *enabled* track, so an ordinary player
  plays the song), then drums, bass, other and vocals (disabled tracks). Every track
  starts at time zero; the AAC encoder delay is recorded in an edit list (ALAC has
  none), so FFmpeg-based readers (Mixxx, stempeg) get sample-aligned tracks.
* A `stem` box directly inside `moov/udta` holding UTF-8 JSON: ``{"version": 1,
  "mastering_dsp": {"compressor": {...}, "limiter": {...}}, "stems": [{"name": ...,
  "color": "#RRGGBB"}, x4]}``; the mastering settings are NI's defaults with `enabled`
  false (Traktor would otherwise compress and limit the stems on playback).

Our six stems fold into NI's four slots by an `NIMapping` (`parse_ni_mapping`): by default
drums, bass, vocals as they are, and other = electric_guitar + wind + other; presets put
the guitar ("guitar") or the wind ("wind") in the third slot, or a spec string names the
four groups. A slot with no produced stem is refused, never written as silence. The
tracks are AAC, or ALAC (lossless, 16 or 24 bit, no encoder delay) in the same MP4.

FFmpeg (PyAV) writes the tracks with the moov box after the sample data; the `stem` box is
then put into `moov/udta` by editing the box tree here (parent sizes updated, and chunk
offsets shifted when moov precedes sample data, which FFmpeg's "faststart" layout does).
The track headers' alternate group is set to 0 as in NI's own files. Writing is atomic
(a locked `.part` file next to the target, renamed when complete).

Checked against (read for the layout, no code taken): stempeg (github.com/faroit/stempeg,
write.py `NIStemsWriter` and data/default_metadata.json: MP4Box `-udta 0:type=stem`, i.e.
moov/udta, master `#ID=Z`, stems `:disable`, brand M4A; read.py `Info`: all streams the same
channel count, rate from stream 0; and the box tree of its sample file "The Easton Ellises
- Falcon 69.stem.mp4": ftyp "M4A ", tkhd flags 1 then 0, alternate group 0, moov/udta/stem
with compact JSON), stemgen (github.com/axeldelafosse/stemgen, ni-stem/_internal.py and
metadata.json: same MP4Box call and JSON), Mixxx (github.com/mixxxdj/mixxx,
src/sources/soundsourcestem.cpp: exactly five audio streams, every one stereo, known
duration; src/track/steminfoimporter.cpp: walks moov -> udta -> stem as direct children,
needs "version" >= 1 and a "stems" array of {name, color}).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import struct
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..audio.channels import to_stereo
from ..audio.io import check_output_path
from ..audio.resample import resample
from ..errors import AudioError, Cancelled, OutputExistsError
from ..partfiles import lock_part, remove_stale_parts
from ..progress import CancelCheck
from ..stems import STEM_IDS, get_stem
from .ni_mapping import (  # noqa: F401 - the mapping's names are part of this module's API
    DEFAULT_MAPPING,
    NI_COLORS,
    NI_FOLD,
    NI_NAMES,
    NI_PRESETS,
    NI_STEMS,
    NIMapping,
    NISlot,
    parse_ni_mapping,
)

log = logging.getLogger(__name__)

SAMPLERATES = (44100, 48000)
CODECS = ("aac", "alac")
ALAC_DEPTHS = (16, 24)
MAX_STEM_BOX = 1 << 20  # bytes of manifest JSON we accept when reading
_MAX_MOOV = 256 << 20  # the index of a multi-hour file is a few MB
_BLOCK = 1024 * 32  # frames encoded per track at a time (tracks are interleaved)
_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta"}
_TAGS = {"title": "title", "artist": "artist", "album": "album", "albumartist": "album_artist",
         "album_artist": "album_artist", "date": "date", "year": "date", "genre": "genre",
         "tracknumber": "track", "track": "track", "composer": "composer",
         "comment": "comment", "copyright": "copyright"}
_FIX = "re-export it, or export plain stems instead"


@dataclass
class NIStems:
    """A decoded NI Stems file: the mix and the four stems, float32 [C, T], one length."""

    mix: np.ndarray
    stems: dict[str, np.ndarray]  # "drums", "bass", "other", "vocals" (track order)
    samplerate: int
    metadata: dict[str, Any]  # the `stem` box's JSON as is


def ni_stems_metadata(colors: Mapping[str, str] | None = None,
                      mapping: NIMapping | str | None = None) -> dict[str, Any]:
    """The manifest JSON we write: the mapping's slot names and colours (overridable per
    slot key: drums, bass, other, vocals) and NI's mastering settings, switched off."""
    slots = parse_ni_mapping(mapping).slots
    chosen = {k: s.color.upper() for k, s in zip(NI_STEMS, slots, strict=True)}
    for key, value in (colors or {}).items():
        if key not in NI_COLORS:
            raise AudioError(f"NI Stems colours are for {', '.join(NI_STEMS)}, not '{key}'")
        if not isinstance(value, str) or not _COLOR.fullmatch(value):
            raise AudioError(f"the NI Stems colour for {key} must look like #RRGGBB, not "
                             f"{value!r}")
        chosen[key] = value.upper()
    return {
        "version": 1,
        "mastering_dsp": {
            "compressor": {"enabled": False, "input_gain": 0.5, "output_gain": 0.5,
                           "threshold": 0, "ratio": 3, "attack": 0.003, "release": 0.3,
                           "hp_cutoff": 300, "dry_wet": 50},
            "limiter": {"enabled": False, "threshold": 0, "ceiling": -0.35,
                        "release": 0.05},
        },
        "stems": [{"name": s.name, "color": chosen[k]}
                  for k, s in zip(NI_STEMS, slots, strict=True)],
    }


def fold_stems(stems: Mapping[str, np.ndarray],
               mapping: NIMapping | str | None = None) -> dict[str, np.ndarray]:
    """Our stems (ids or aliases) -> NI's four slots as float32 [2, T], keyed and ordered
    as NI_STEMS, each the sum of its slot's stems (`parse_ni_mapping`; default: drums,
    bass, other = guitar + wind + other, vocals).

    Raises AudioError when a slot gets no stem or a stem no slot (`NIMapping.check`),
    for unknown or repeated stems and for unequal lengths.
    """
    chosen = parse_ni_mapping(mapping)
    canonical: dict[str, np.ndarray] = {}
    for key, value in stems.items():
        try:
            sid = get_stem(key).id
        except KeyError:
            raise AudioError(f"NI Stems: unknown stem '{key}' (known: "
                             f"{', '.join(STEM_IDS)})") from None
        if sid in canonical:
            raise AudioError(f"NI Stems: the stem {sid} was given twice")
        canonical[sid] = _stereo(value, sid)
    chosen.check(canonical)
    lengths = {v.shape[1] for v in canonical.values()}
    if len(lengths) != 1:
        raise AudioError(f"NI Stems: the stems differ in length ({sorted(lengths)} samples)")
    out = {}
    for ni, slot in zip(NI_STEMS, chosen.slots, strict=True):
        parts = [canonical[s] for s in slot.stems if s in canonical]
        out[ni] = parts[0].copy() if len(parts) == 1 else np.sum(parts, axis=0,
                                                                 dtype=np.float32)
    return out


def check_ni_stem_ids(stem_ids: Iterable[str],
                      mapping: NIMapping | str | None = None) -> None:
    """AudioError unless the stems (canonical ids) fill the mapping's four slots (by
    default drums, bass and vocals, and at least one of the stems folded into other).
    Cheap: looks at names only."""
    parse_ni_mapping(mapping).check(stem_ids)


def check_ni_codec(codec: str, bit_depth: int = 24, bitrate_kbps: int = 256) -> str:
    """The codec name ("aac" or "alac"); AudioError for another, or for an ALAC depth
    other than 16/24 or an AAC bitrate outside 32-512 kbps."""
    name = str(codec).strip().lower()
    if name not in CODECS:
        raise AudioError(f"NI Stems holds AAC or ALAC (lossless); choose aac or alac, not "
                         f"{codec!r}")
    if name == "alac" and int(bit_depth) not in ALAC_DEPTHS:
        raise AudioError(f"NI Stems in ALAC is 16- or 24-bit, not {bit_depth}-bit")
    if name == "aac" and not 32 <= int(bitrate_kbps) <= 512:
        raise AudioError(f"choose an AAC bit rate from 32 to 512 kbps, not {bitrate_kbps}")
    return name


def export_ni_stems(stems: Mapping[str, np.ndarray], samplerate: int,
                    path: str | os.PathLike[str], *, overwrite: bool = False,
                    bitrate_kbps: int = 256, tags: Mapping[str, str] | None = None,
                    progress: Callable[[float], None] | None = None,
                    cancel: CancelCheck | None = None,
                    mapping: NIMapping | str | None = None, codec: str = "aac",
                    bit_depth: int = 24) -> Path:
    """A separation's stems as an NI Stems file: the stems' sum is the mix track (the
    input itself when the residual went into other, as it does by default), resampled to
    48 kHz from above 44.1 kHz and to 44.1 kHz otherwise when the rate is neither; the
    folder is created. See `write_ni_stems` for the rest."""
    if samplerate not in SAMPLERATES:
        rate = 48000 if samplerate > 44100 else 44100
        stems = {k: resample(v, samplerate, rate) for k, v in stems.items()}
        samplerate = rate
    mix = np.sum([np.asarray(v, dtype=np.float32) for v in stems.values()], axis=0,
                 dtype=np.float32)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_ni_stems(path, mix, stems, samplerate, overwrite=overwrite,
                          bitrate_kbps=bitrate_kbps, tags=tags, progress=progress,
                          cancel=cancel, mapping=mapping, codec=codec, bit_depth=bit_depth)


def write_ni_stems(path: str | os.PathLike[str], mix: np.ndarray,
                   stems: Mapping[str, np.ndarray], samplerate: int, *,
                   overwrite: bool = False, bitrate_kbps: int = 256,
                   tags: Mapping[str, str] | None = None,
                   colors: Mapping[str, str] | None = None,
                   progress: Callable[[float], None] | None = None,
                   cancel: CancelCheck | None = None,
                   mapping: NIMapping | str | None = None, codec: str = "aac",
                   bit_depth: int = 24) -> Path:
    """Write the mix [C, T] and our six stems as an NI Stems file; returns the path.

    * stems: by stem id, summed into NI's four slots by `mapping` (an `NIMapping`, a
      preset name or a spec, see `parse_ni_mapping`); mono is duplicated and more than
      two channels are downmixed (every NI track is stereo).
    * samplerate: 44100 or 48000, kept as is; codec "aac" (bitrate_kbps per track) or
      "alac" (lossless, bit_depth 16 or 24; exact length, no encoder delay).
    * tags: title, artist, album, albumartist, date, genre, tracknumber, composer,
      comment, copyright (other keys are ignored); colors: "#RRGGBB" per NI stem.
    * Samples beyond full scale are clipped (a warning gives the count).
    * Atomic, and an existing file is replaced only when `overwrite` (else
      errors.OutputExistsError); `progress` gets the fraction encoded, `cancel` is polled
      (errors.Cancelled, nothing left behind).
    """
    path = Path(path)
    samplerate = int(samplerate)
    if samplerate not in SAMPLERATES:
        raise AudioError(f"{path.name}: NI Stems are written at 44100 or 48000 Hz, not "
                         f"{samplerate}; resample the stems first")
    try:
        codec = check_ni_codec(codec, bit_depth, bitrate_kbps)
    except AudioError as exc:
        raise AudioError(f"{path.name}: {exc}") from None
    chosen = parse_ni_mapping(mapping)
    check_output_path(path, overwrite)
    manifest = ni_stems_metadata(colors, chosen)
    tracks = [("Mix", _stereo(mix, "mix"))]
    folded = fold_stems(stems, chosen)
    if folded["drums"].shape[1] != tracks[0][1].shape[1]:
        raise AudioError(f"{path.name}: the mix is {tracks[0][1].shape[1]} samples long but "
                         f"the stems are {folded['drums'].shape[1]}")
    if tracks[0][1].shape[1] == 0:
        raise AudioError(f"{path.name}: there is no audio to write")
    tracks += [(slot.name, folded[k]) for k, slot in zip(NI_STEMS, chosen.slots,
                                                          strict=True)]
    clipped = sum(int(np.count_nonzero(np.abs(d) > 1.0)) for _, d in tracks)
    if clipped:  # never in place: the arrays may be the caller's
        tracks = [(name, np.clip(d, -1.0, 1.0)) for name, d in tracks]
    meta = {_TAGS[k.lower()]: str(v) for k, v in (tags or {}).items() if k.lower() in _TAGS}

    def poll() -> None:
        if cancel is not None and cancel():
            raise Cancelled(f"writing {path.name} was cancelled")

    remove_stale_parts(path)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.part"
    lock_fd = -1
    try:
        lock_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        lock_part(lock_fd)
        _encode(tmp, tracks, samplerate, int(bitrate_kbps) * 1000, meta, progress, poll,
                codec, int(bit_depth))
        payload = json.dumps(manifest, separators=(",", ":")).encode("utf-8")
        _put_stem_box(tmp, payload)
        _verify(tmp, payload)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if path.exists() and not overwrite:  # appeared while we were writing
            raise OutputExistsError(f"{path.name} already exists in {path.parent}; choose "
                                    "another name or allow overwriting")
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, _Malformed):
            raise AudioError(f"{path.name}: the encoder wrote an MP4 file we could not "
                             f"finish ({exc}); please report this") from exc
        if isinstance(exc, (OSError, ValueError)) or type(exc).__module__.startswith("av"):
            raise AudioError(f"{path.name}: could not be saved ({_reason(exc)}); check that "
                             "the folder is writable and has free space") from exc
        raise
    finally:
        if lock_fd >= 0:
            os.close(lock_fd)
    if clipped:
        log.warning("%s: %d samples beyond full scale were clipped", path.name, clipped)
    if progress is not None:
        progress(1.0)
    return path


def read_stem_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest JSON of an NI Stems file (its moov/udta/stem box), without decoding.

    Raises AudioError when the file cannot be read, has no such box (not an NI Stems
    file), the box is over MAX_STEM_BOX bytes, or it is not a JSON object with a "stems"
    list.
    """
    path = _check_input(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if fh.read(8)[4:] not in _TOP_LEVEL:
                raise AudioError(f"{path.name}: is not an NI Stems file (not an MP4 file); "
                                 "choose a .stem.mp4 file")
            moov = _child(fh, 0, size, b"moov")
            udta = moov and _child(fh, moov[0], moov[1], b"udta")
            box = udta and _child(fh, udta[0], udta[1], b"stem")
            if not box:
                raise AudioError(f"{path.name}: is not an NI Stems file (it has no stem "
                                 "manifest in moov/udta); open it as a plain audio file")
            if box[1] - box[0] > MAX_STEM_BOX:
                raise AudioError(f"{path.name}: the NI Stems manifest is "
                                 f"{box[1] - box[0]} bytes, over the {MAX_STEM_BOX} we "
                                 f"accept; {_FIX}")
            fh.seek(box[0])
            raw = fh.read(box[1] - box[0])
    except _Malformed as exc:
        raise AudioError(f"{path.name}: the MP4 structure is damaged ({exc}); "
                         f"{_FIX}") from exc
    except OSError as exc:
        raise AudioError(f"{path.name}: could not be read ({_reason(exc)})") from exc
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AudioError(f"{path.name}: the NI Stems manifest is not valid JSON "
                         f"({_reason(exc)}); {_FIX}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("stems"), list):
        raise AudioError(f"{path.name}: the NI Stems manifest has no list of stems; {_FIX}")
    return meta


def read_ni_stems(path: str | os.PathLike[str]) -> NIStems:
    """Decode an NI Stems file: the mix, the four stems by NI name, rate and manifest.

    Tracks are cut to their declared length (AAC pads the last frame) and then to the
    shortest track. AudioError when it is not an NI Stems file (no manifest, not five
    audio tracks of one rate and channel count) or cannot be decoded.
    """
    path = _check_input(path)
    meta = read_stem_metadata(path)
    import av

    try:
        with av.open("file:" + os.fspath(path.absolute()), metadata_errors="replace") as c:
            streams = list(c.streams.audio)
            if len(streams) != 1 + len(NI_STEMS):
                raise AudioError(f"{path.name}: an NI Stems file has 5 audio tracks (the mix "
                                 f"and 4 stems), this one has {len(streams)}; {_FIX}")
            data = _decode_all(path, c, streams)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise AudioError(f"{path.name}: the file is damaged or truncated "
                         f"({_reason(exc)}); {_FIX}") from exc
    rate = data[0][1]
    arrays = [a for a, _ in data]
    if any(r != rate for _, r in data) or len({a.shape[0] for a in arrays}) != 1:
        raise AudioError(f"{path.name}: the tracks differ in sample rate or channel count; "
                         f"{_FIX}")
    length = min(a.shape[1] for a in arrays)
    if max(a.shape[1] for a in arrays) - length > 2048:
        log.warning("%s: the tracks differ in length; all were cut to %d samples",
                    path.name, length)
    arrays = [np.ascontiguousarray(a[:, :length]) for a in arrays]
    return NIStems(arrays[0], dict(zip(NI_STEMS, arrays[1:], strict=True)), rate, meta)


# --------------------------------------------------------------------------------------
# Encoding and decoding (PyAV)
# --------------------------------------------------------------------------------------

def _stereo(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] == 0:
        raise AudioError(f"NI Stems: {what} must be audio shaped [channels, samples], not "
                         f"{list(a.shape)}")
    if not np.isfinite(a).all():
        raise AudioError(f"NI Stems: {what} holds NaN or infinite samples")
    return np.ascontiguousarray(to_stereo(a), dtype=np.float32)


def _encode(tmp: Path, tracks: list[tuple[str, np.ndarray]], samplerate: int,
            bit_rate: int, meta: dict[str, str], progress: Callable[[float], None] | None,
            poll: Callable[[], None], codec: str = "aac", bit_depth: int = 24) -> None:
    """Five AAC or ALAC tracks into an "M4A " MP4; track 1 alone is enabled. ALAC gets
    integers: 16-bit as s16p, 24-bit as s32p with the sample in the top 24 bits (what
    FFmpeg's encoder takes for 24-bit ALAC)."""
    import av

    # movie_timescale = the sample rate: the edit lists then give the exact length;
    # faststart: moov before the sample data, as in NI's (MP4Box-made) files, so readers
    # find the stem box without skipping the audio
    options = {"movie_timescale": str(samplerate), "movflags": "faststart"}
    with av.open("file:" + os.fspath(tmp.absolute()), "w", format="ipod",
                 options=options) as out:
        out.metadata.update(meta)
        streams = []
        for i, (name, _) in enumerate(tracks):
            st = out.add_stream(codec, rate=samplerate, layout="stereo")
            if codec == "alac":
                st.format = "s16p" if bit_depth == 16 else "s32p"
            else:
                st.bit_rate = bit_rate
            st.metadata["handler_name"] = name  # what stempeg and ffprobe show per track
            st.disposition = av.stream.Disposition.default if i == 0 else 0
            streams.append(st)
        total = tracks[0][1].shape[1]
        for pos in range(0, total, _BLOCK):
            poll()
            if progress is not None:
                progress(pos / total)
            for st, (_, data) in zip(streams, tracks, strict=True):
                block = np.ascontiguousarray(data[:, pos:pos + _BLOCK])
                fmt = "fltp"
                if codec == "alac":
                    block, fmt = _to_int(block, bit_depth)
                frame = av.AudioFrame.from_ndarray(block, format=fmt, layout="stereo")
                frame.sample_rate = samplerate
                frame.pts = pos
                out.mux(st.encode(frame))
        for st in streams:
            out.mux(st.encode(None))


def _to_int(block: np.ndarray, bit_depth: int) -> tuple[np.ndarray, str]:
    """float [-1, 1] -> (rounded integers, PyAV format) for the ALAC encoder."""
    full = float(1 << (bit_depth - 1))
    q = np.clip(np.rint(block * full), -full, full - 1)
    if bit_depth == 16:
        return np.ascontiguousarray(q.astype(np.int16)), "s16p"
    return np.ascontiguousarray(q.astype(np.int32) << 8), "s32p"


def _decode_all(path: Path, container, streams) -> list[tuple[np.ndarray, int]]:
    """Every audio stream decoded in one pass: [(float32 [C, T], rate)], cut to the
    length each declares; decoding more than the file's size could hold is damage."""
    cap = os.path.getsize(path) * 16 + 65536  # frames per stream (AAC is ~0.3 per byte)
    pieces: dict[int, list[np.ndarray]] = {s.index: [] for s in streams}
    counts = dict.fromkeys(pieces, 0)
    rates: dict[int, int] = {}
    for packet in container.demux(*streams):
        for frame in packet.decode():
            if not frame.samples:
                continue
            idx = packet.stream.index
            if rates.setdefault(idx, frame.sample_rate) != frame.sample_rate:
                raise AudioError(f"{path.name}: the sample rate changes inside track "
                                 f"{idx + 1}; {_FIX}")
            block = frame_to_array(frame)
            counts[idx] += block.shape[1]
            if counts[idx] > cap:
                raise AudioError(f"{path.name}: track {idx + 1} decodes to more audio than "
                                 f"the file could hold; {_FIX}")
            pieces[idx].append(block)
    out = []
    for st in streams:
        if not pieces[st.index]:
            raise AudioError(f"{path.name}: track {st.index + 1} holds no audio; {_FIX}")
        channels = {p.shape[0] for p in pieces[st.index]}
        if len(channels) != 1:
            raise AudioError(f"{path.name}: the channel count changes inside track "
                             f"{st.index + 1}; {_FIX}")
        a = np.concatenate(pieces[st.index], axis=1)
        rate = rates[st.index]
        if st.duration and st.time_base:
            declared = int(round(float(st.duration * st.time_base) * rate))
            if 0 < declared < a.shape[1]:
                a = a[:, :declared]
        if not np.isfinite(a).all():
            raise AudioError(f"{path.name}: track {st.index + 1} decodes to NaN; {_FIX}")
        out.append((a, rate))
    return out


def frame_to_array(frame) -> np.ndarray:
    """A PyAV audio frame as float32 [C, n] (AAC gives float, ALAC integers)."""
    channels = frame.layout.nb_channels
    arr = frame.to_ndarray()
    if not frame.format.is_planar:
        arr = arr.reshape(-1, channels).T
    base = frame.format.name.rstrip("p")
    if base in ("flt", "dbl"):
        return np.ascontiguousarray(arr, dtype=np.float32)
    bits = {"s16": 16, "s32": 32}.get(base)
    if bits is None:
        raise ValueError(f"unexpected sample format {frame.format.name}")
    return (arr * (1.0 / 2 ** (bits - 1))).astype(np.float32)


# --------------------------------------------------------------------------------------
# MP4 boxes
# --------------------------------------------------------------------------------------

class _Malformed(Exception):
    """The MP4 box tree is inconsistent (sizes beyond their parent, bad tables)."""


_TOP_LEVEL = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin", b"uuid"}


def _kind(kind: bytes) -> str:
    """A box type printable on one line."""
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in kind)


def _boxes(fh: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of each box between start and end."""
    pos = start
    while end - pos >= 8:
        fh.seek(pos)
        size, kind = struct.unpack(">I4s", fh.read(8))
        header = 8
        if size == 1:
            raw = fh.read(8)
            if len(raw) < 8:
                raise _Malformed(f"'{_kind(kind)}' box cut off")
            size, header = struct.unpack(">Q", raw)[0], 16
        elif size == 0:  # "to the end of the enclosing box"
            size = end - pos
        if size < header or pos + size > end:
            raise _Malformed(f"'{_kind(kind)}' box at byte {pos} runs past its "
                             "parent")
        yield kind, pos, pos + header, pos + size
        pos += size
    # fewer than 8 bytes left: QuickTime's optional zero terminator of udta, or nothing


def _child(fh: BinaryIO, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """(payload start, end) of the first `kind` box directly between start and end."""
    for k, _, payload, box_end in _boxes(fh, start, end):
        if k == kind:
            return payload, box_end
    return None


@dataclass
class _Box:
    kind: bytes
    data: bytes = b""  # leaves
    children: list[_Box] | None = None  # containers
    tail: bytes = b""  # bytes after a container's last child (a udta zero terminator)

    def serialise(self) -> bytes:
        body = (self.data if self.children is None
                else b"".join(c.serialise() for c in self.children) + self.tail)
        if len(body) + 8 > 0xFFFFFFFF:
            raise _Malformed(f"'{_kind(self.kind)}' box over 4 GiB")
        return struct.pack(">I4s", len(body) + 8, self.kind) + body


def _parse(buf: bytes, kind: bytes) -> _Box:
    """A box's payload as a tree: the boxes in _CONTAINERS are opened, others kept raw."""
    if kind not in _CONTAINERS:
        return _Box(kind, data=buf)
    children, pos = [], 0
    while len(buf) - pos >= 8:
        size, k = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            if len(buf) - pos < 16:
                raise _Malformed("box cut off")
            size, header = struct.unpack_from(">Q", buf, pos + 8)[0], 16
        elif size == 0:
            size = len(buf) - pos
        if size < header or pos + size > len(buf):
            raise _Malformed(f"'{_kind(k)}' box runs past its parent")
        children.append(_parse(buf[pos + header:pos + size], k))
        pos += size
    return _Box(kind, children=children, tail=buf[pos:])


def _put_stem_box(path: Path, payload: bytes) -> None:
    """Put `payload` as moov/udta/stem into the MP4 file at `path`, in place.

    An existing stem box is replaced, a missing udta created; every track header gets
    alternate group 0 (as in NI's files). When sample data lies after moov, the chunk
    offsets that point there move with it.
    """
    with open(path, "rb+") as fh:
        size = os.fstat(fh.fileno()).st_size
        found = [(s, e) for k, s, _, e in _boxes(fh, 0, size) if k == b"moov"]
        if len(found) != 1:
            raise _Malformed(f"{len(found)} moov boxes")
        start, end = found[0]
        if end - start > _MAX_MOOV:
            raise _Malformed("moov box too large")
        fh.seek(start)
        raw = fh.read(end - start)
        header = 16 if struct.unpack_from(">I", raw)[0] == 1 else 8
        moov = _parse(raw[header:], b"moov")
        assert moov.children is not None
        udta = next((c for c in moov.children if c.kind == b"udta"), None)
        if udta is None:
            udta = _Box(b"udta", children=[])
            moov.children.append(udta)
        assert udta.children is not None
        udta.children = [c for c in udta.children if c.kind != b"stem"]
        udta.children.append(_Box(b"stem", data=payload))
        for trak in (c for c in moov.children if c.kind == b"trak"):
            _reset_alternate_group(trak)
        delta = len(moov.serialise()) - (end - start)
        if delta and end < size:  # data after moov moves by delta
            for trak in (c for c in moov.children if c.kind == b"trak"):
                for table in _find(trak, (b"mdia", b"minf", b"stbl")):
                    _shift_offsets(table, end, delta)
        new = moov.serialise()
        _move_tail(fh, end, size, delta)
        fh.seek(start)
        fh.write(new)
        if delta < 0:
            fh.truncate(size + delta)


def _find(box: _Box, path: tuple[bytes, ...]) -> list[_Box]:
    """The children of the box at `path` below `box` (empty when absent)."""
    for kind in path:
        box = next((c for c in box.children or [] if c.kind == kind), None)  # type: ignore
        if box is None:
            return []
    return list(box.children or [])


def _reset_alternate_group(trak: _Box) -> None:
    for tkhd in (c for c in trak.children or [] if c.kind == b"tkhd"):
        at = 44 if tkhd.data[:1] == b"\x01" else 32  # layer; version 1 has 64-bit times
        if len(tkhd.data) >= at + 4:
            tkhd.data = tkhd.data[:at + 2] + b"\0\0" + tkhd.data[at + 4:]


def _shift_offsets(table: _Box, threshold: int, delta: int) -> None:
    """Add delta to the chunk offsets (stco/co64) at or beyond `threshold`."""
    if table.kind not in (b"stco", b"co64"):
        return
    dtype = ">u4" if table.kind == b"stco" else ">u8"
    if len(table.data) < 8:
        raise _Malformed("chunk offset table cut off")
    count = struct.unpack_from(">I", table.data, 4)[0]
    width = np.dtype(dtype).itemsize
    if len(table.data) < 8 + count * width:
        raise _Malformed("chunk offset table cut off")
    offsets = np.frombuffer(table.data, dtype=dtype, count=count, offset=8).astype(np.int64)
    offsets[offsets >= threshold] += delta
    if count and (offsets.min() < 0 or offsets.max() >= 1 << (8 * width)):
        raise _Malformed("chunk offsets out of range after the move")
    table.data = table.data[:8] + offsets.astype(dtype).tobytes() + table.data[8 + count * width:]


def _move_tail(fh: BinaryIO, start: int, end: int, delta: int, block: int = 1 << 22) -> None:
    """Move the bytes [start, end) of the file by delta (either way), in blocks."""
    if not delta or start >= end:
        return
    spans = range(start, end, block)
    for pos in (reversed(spans) if delta > 0 else spans):
        fh.seek(pos)
        chunk = fh.read(min(block, end - pos))
        fh.seek(pos + delta)
        fh.write(chunk)


def _verify(path: Path, payload: bytes) -> None:
    """What we wrote is what players will find: ftyp first, moov/udta/stem as written, and
    every chunk offset inside an mdat box."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        top = list(_boxes(fh, 0, size))
        if not top or top[0][0] != b"ftyp":
            raise _Malformed("ftyp is not the first box")
        moov = _child(fh, 0, size, b"moov")
        udta = moov and _child(fh, moov[0], moov[1], b"udta")
        stem = udta and _child(fh, udta[0], udta[1], b"stem")
        if not stem:
            raise _Malformed("no moov/udta/stem after writing it")
        fh.seek(stem[0])
        if fh.read(stem[1] - stem[0]) != payload:
            raise _Malformed("moov/udta/stem does not hold what was written")
        assert moov
        fh.seek(moov[0])
        tree = _parse(fh.read(moov[1] - moov[0]), b"moov")
    mdats = [(p, e) for k, _, p, e in top if k == b"mdat"]
    for trak in (c for c in tree.children or [] if c.kind == b"trak"):
        for table in _find(trak, (b"mdia", b"minf", b"stbl")):
            if table.kind in (b"stco", b"co64"):
                dtype = ">u4" if table.kind == b"stco" else ">u8"
                count = struct.unpack_from(">I", table.data, 4)[0]
                offs = np.frombuffer(table.data, dtype=dtype, count=count, offset=8)
                for o in offs.tolist():
                    if not any(p <= o < e for p, e in mdats):
                        raise _Malformed(f"chunk offset {o} outside the sample data")


def _check_input(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise AudioError(f"{path.name or path}: {what}; choose an NI Stems file (.stem.mp4)")
    return path


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
