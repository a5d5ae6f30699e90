"""Reading and writing audio files.

Supported inputs, and the decoder that handles each:

* WAV (also WAVE_FORMAT_EXTENSIBLE, RF64, W64), FLAC, AIFF/AIFC, OGG/Vorbis (and Opus) and
  MP3: soundfile (libsndfile 1.2, which bundles mpg123 and libvorbis/libopus).
* M4A/AAC (also ALAC, raw ADTS .aac, the audio track of MP4 videos) and anything libsndfile
  refuses to open, e.g. an MP3 it cannot parse: PyAV (the FFmpeg inside the `av` wheel).

The content decides, not the file name: soundfile is tried first, then PyAV, and a file
neither can decode is reported as damaged (when its first bytes look like a known audio
container) or as unsupported.

Decoded audio is float32 [channels, samples] at the file's own rate and channel count (the
stereo downmix rule lives in channels.py); sample rates from 8 kHz to 192 kHz are accepted.
For AAC the encoder delay (priming) is removed where the file records it in an MP4 edit
list, as FFmpeg-made and most Apple-made files do; in other files the audio starts about
one or two thousand samples late, as in most players.

Outputs: WAV (16/24-bit integer or 32-bit float) and FLAC (16/24-bit) through soundfile,
and MP3, M4A (AAC) and Ogg Opus through PyAV (`encode`: bitrates, VBR, rates and the
measured sample-accurate lengths), all with tags; see `save_audio`. For M4A files the
padding after the last sample is dropped too (FFmpeg decodes it): decoding stops at the
length the MP4 edit list gives, give or take its time unit's rounding (none in the files
`save_audio` writes, which give it in samples).

Headers are checked, not trusted (`headers`): memory is reserved for what the file's size
could hold, a length that is missing (a FLAC written to a pipe) or impossible is replaced by
what decodes (with a one-line warning), as is a cut-off Ogg file's; NaN samples are refused.

Long because reading (probe, decode, check) and writing share the path checks, the error
wording and the atomic-save rules; the lossy encoders themselves live in `encode`.

Every failure is an `AudioError` (`UnsupportedFormatError` for files that are not audio we
can decode) whose message is one line naming the file, what is wrong and what to do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import AudioError, Cancelled, OutputExistsError, UnsupportedFormatError
from ..partfiles import lock_part, remove_stale_parts
from . import headers
from .block_writer import BlockWriter, container_for
from .encode import LOSSY_FORMATS, TAG_KEYS, check_lossy_options, check_tags, encode_lossy
from .resample import resample

log = logging.getLogger(__name__)

MIN_SAMPLERATE, MAX_SAMPLERATE = 8000, 192000
#: the lossless outputs and their bit depths (the lossy ones: `LOSSY_FORMATS`)
SAVE_FORMATS: dict[str, tuple[int, ...]] = {"wav": (16, 24, 32), "flac": (16, 24)}
#: every format `save_audio` writes, lossless first
OUTPUT_FORMATS: tuple[str, ...] = (*SAVE_FORMATS, *LOSSY_FORMATS)
INPUT_FORMATS = "WAV, FLAC, AIFF, OGG, MP3 and M4A/AAC"

_READ_BLOCK = 1 << 16  # frames per soundfile read in load_audio
_TAG_KEYS = ("title", "artist", "album", "albumartist", "date", "genre", "tracknumber",
             "composer", "comment", "copyright")
_TAG_ALIASES = {"album_artist": "albumartist", "track": "tracknumber", "author": "artist",
                "year": "date"}
_MAX_SAVE_CHANNELS = {"wav": 64, "flac": 8,
                      **{k: v.max_channels for k, v in LOSSY_FORMATS.items()}}
_FIX = "re-export or re-download it"
_MAX_MP4_PADDING = 2048 + 64  # an AAC frame's padding (and rounding) at most


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header (no full decode).

    `frames` is exact for WAV, AIFF, FLAC and OGG; for MP3 and M4A/AAC it is the length the
    file declares, which may differ by an encoder frame or so from what decodes
    (`load_audio(...).info.frames` is always the decoded count).
    """

    path: Path
    format: str  # e.g. "WAV", "FLAC", "MP3", "M4A"
    subtype: str  # e.g. "PCM_16", "FLOAT", "aac"
    samplerate: int
    channels: int
    frames: int
    tags: dict[str, str] = field(hash=False)  # hashable like the rest, the dict left out

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.samplerate if self.samplerate else 0.0


@dataclass
class Audio:
    """Decoded audio: float32 [C, T] at `samplerate`, with the file's tags and info."""

    data: np.ndarray
    samplerate: int
    tags: dict[str, str]
    info: AudioInfo


@dataclass(frozen=True)
class _Probe:
    info: AudioInfo
    decoder: str  # "soundfile" or "pyav"
    exact_length: bool  # info.frames is promised by the file, so a shortfall is truncation
    empty: bool = False  # opened fine but holds no samples
    note: str | None = None  # a warning to log once the file has been decoded
    keep: int | None = None  # samples to keep (an MP4's edit list): the rest is padding


class _Refused(Exception):
    """A decoder could not open the file (the next one is tried)."""


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------

def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Format, rate, channels, length and tags of an audio file, without decoding it all.

    Raises AudioError (or UnsupportedFormatError) for anything `load_audio` would refuse
    that the header already shows: missing, empty, unsupported, truncated WAV/AIFF, no
    audio, or a sample rate outside 8-192 kHz.
    """
    return _probe(_check_input_path(path), count=True).info


def load_audio(path: str | os.PathLike[str], samplerate: int | None = None,
               progress: Callable[[float], None] | None = None,
               cancel: Callable[[], bool] | None = None) -> Audio:
    """Decode a whole file to float32 [C, T], resampled to `samplerate` when given.

    `progress` gets the fraction decoded (0..1); `cancel` is polled while decoding and
    raises errors.Cancelled when it returns True.
    """
    path = _check_input_path(path)
    if samplerate is not None:
        _check_samplerate(int(samplerate), f"{path.name}: the requested")
    probe = _probe(path)
    info = probe.info
    # Never trust a header with memory: start at what the file's size could plausibly hold
    # and grow (a damaged header once asked for terabytes here).
    cap = headers.file_size(path) * 32 // max(info.channels, 1) + 65536
    buf = _Buffer(info.channels, min(info.frames, cap), probe.decoder == "soundfile"
                  and info.format != "MP3" and info.frames <= cap)
    last_report = -1.0
    for block in _decode(probe):
        buf.append(block)
        if cancel is not None and cancel():
            raise Cancelled(f"loading {path.name} was cancelled")
        if progress is not None and info.frames > 0:
            fraction = min(buf.frames / info.frames, 1.0)
            if fraction - last_report >= 0.01:
                progress(fraction)
                last_report = fraction
    _check_complete(probe, buf.frames)
    data = buf.result()
    info = replace(info, frames=data.shape[-1])
    sr = info.samplerate
    if samplerate is not None and int(samplerate) != sr:
        data = resample(data, sr, int(samplerate))
        sr = int(samplerate)
        if data.shape[-1] == 0:
            raise _too_short(path, info.frames, info.samplerate, sr)
    if progress is not None:
        progress(1.0)
    return Audio(data=data, samplerate=sr, tags=dict(info.tags), info=info)


def iter_blocks(path: str | os.PathLike[str], block_frames: int) -> Iterator[np.ndarray]:
    """Stream a file as float32 [C, n] blocks of `block_frames` (the last may be shorter).

    Only about one block is held in memory at a time, so hours-long files are fine. The file
    is checked when this is called (errors are raised here, not at the first block); a file
    that turns out truncated or damaged raises AudioError when the bad part is reached.
    """
    if int(block_frames) <= 0:
        raise ValueError(f"block_frames must be positive, got {block_frames}")
    probe = _probe(_check_input_path(path))
    return _iter_blocks(probe, int(block_frames))


def check_output_path(path: Path, overwrite: bool) -> None:
    """One-line errors, before any work, for a file that cannot be written at `path`: a
    folder in its place, a missing folder, or an existing file without `overwrite`."""
    if path.is_dir():
        raise AudioError(f"{path.name}: is a folder; choose a file name to save to")
    if not path.parent.is_dir():
        raise AudioError(f"{path.name}: the folder {path.parent} does not exist; create it or "
                         "choose another")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path.name} already exists in {path.parent}; choose another "
                                "name or allow overwriting")


def save_audio(path: str | os.PathLike[str], data: np.ndarray, samplerate: int,
               format: str | None = None, bit_depth: int = 24, dither: bool = True,
               overwrite: bool = False, *, bitrate_kbps: int | None = None,
               vbr: int | None = None, tags: Mapping[str, str] | None = None) -> Path:
    """Write float audio [C, T] (or [T] for mono) as WAV, FLAC, MP3, M4A or Opus; returns
    the path written.

    * format: one of OUTPUT_FORMATS, from the argument or else from the file suffix
      (.wav, .flac, .mp3, .m4a, .opus).
    * bit_depth: see SAVE_FORMATS; 32 means 32-bit float WAV. Ignored for lossy formats.
    * bitrate_kbps / vbr: lossy formats only (`LOSSY_FORMATS`: default bitrate, allowed
      range, VBR quality range; MP3 alone has VBR, LAME's -V 0-9). Opus is written at
      48 kHz (other rates are resampled in with `resample.resample`), MP3 and M4A at the
      nearest rate they allow (`encode.encode_rate`); the lengths read back are
      sample-accurate (see `encode`).
    * tags: title, artist, album, comment, ... (`encode.TAG_KEYS`), in every format.
    * Full scale is +-1.0. Samples beyond it are clipped (a warning is logged with the
      count), also for 32-bit float and lossy formats, so every output plays back the
      same everywhere.
    * Reducing to 16/24-bit integer adds TPDF dither of +-1 LSB (unless dither=False) and
      rounds; +1.0 becomes the largest positive code. The dither is seeded from the audio
      itself: saving the same audio twice gives identical files, while different stems get
      independent dither (so it does not add up coherently when they are summed).
    * The file is written next to its destination under a temporary name and renamed into
      place when complete, so an interrupted save never leaves a partial file; the
      temporary file is removed on any error, and the temporary files of killed earlier
      saves to the same path are removed first. An existing file is only replaced when
      `overwrite` is True (otherwise errors.OutputExistsError).
    """
    path = Path(path)
    fmt = _save_format(path, format)
    if fmt in LOSSY_FORMATS:
        bitrate_kbps, vbr = check_lossy_options(fmt, bitrate_kbps, vbr, path.name)
    else:
        depths = SAVE_FORMATS[fmt]
        if bit_depth not in depths:
            allowed = ", ".join(str(d) for d in depths)
            raise AudioError(f"{path.name}: {fmt.upper()} can be saved with {allowed} bits, "
                             f"not {bit_depth}; choose one of those")
        if bitrate_kbps is not None or vbr is not None:
            raise AudioError(f"{path.name}: {fmt.upper()} is lossless and takes no bitrate "
                             f"or VBR quality; leave them out, or save as "
                             f"{', '.join(LOSSY_FORMATS)}")
    clean_tags = check_tags(tags, path.name)
    data = _check_save_data(path, data, fmt)
    samplerate = int(samplerate)
    _check_samplerate(samplerate, f"{path.name}: the")
    check_output_path(path, overwrite)

    container = container_for(fmt, data.shape[-1], data.shape[0], bit_depth)
    remove_stale_parts(path)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.part"
    lock_fd = -1
    try:
        # O_EXCL: never clobber anything; 0o666 lets the umask set the usual permissions.
        # The descriptor stays open, locked, while we write: the mark of a live save.
        lock_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        lock_part(lock_fd)
        if fmt in LOSSY_FORMATS:
            clipped = _write_lossy(tmp, data, samplerate, fmt, bitrate_kbps, vbr, clean_tags)
        else:
            clipped = _write(tmp, data, samplerate, container, bit_depth, dither,
                             clean_tags)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if path.exists() and not overwrite:  # appeared while we were writing
            raise OutputExistsError(f"{path.name} already exists in {path.parent}; choose "
                                    "another name or allow overwriting")
        os.replace(tmp, path)
        if clipped:
            log.warning("%s: %d samples beyond full scale were clipped", path.name, clipped)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, (OSError, sf.SoundFileError, *_ffmpeg_errors())):
            raise AudioError(f"{path.name}: could not be saved ({_reason(exc)}); check that the "
                             "folder is writable and has free space, and that the file is not "
                             "open in another program") from exc
        raise
    finally:
        if lock_fd >= 0:
            os.close(lock_fd)
    return path


# --------------------------------------------------------------------------------------
# Probing
# --------------------------------------------------------------------------------------

def _check_input_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    name = path.name or str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioError(f"{name}: file not found; check the path, or whether the file was "
                         "moved or deleted") from None
    except PermissionError:
        raise AudioError(f"{name}: permission denied; check that you may read it") from None
    except OSError as exc:
        raise AudioError(f"{name}: cannot be opened ({_reason(exc)}); check the path and the "
                         "drive it is on") from exc
    if path.is_dir():
        raise AudioError(f"{name}: is a folder, not an audio file; choose a file inside it")
    if st.st_size == 0:
        raise AudioError(f"{name}: the file is empty (0 bytes); {_FIX}")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{name}: permission denied; check that you may read it")
    return path


def _check_samplerate(samplerate: int, what: str) -> None:
    if not MIN_SAMPLERATE <= samplerate <= MAX_SAMPLERATE:
        raise AudioError(f"{what} sample rate {samplerate} Hz is not supported (Stemwright "
                         f"works with {MIN_SAMPLERATE}-{MAX_SAMPLERATE} Hz); convert it to "
                         "44100 or 48000 Hz first")


def _probe(path: Path, count: bool = False) -> _Probe:
    """Open `path` with soundfile, else PyAV; return its info or raise a clear AudioError.

    A length the header does not give, or one the file's size cannot back, is unknown
    (frames 0, decoded length used); `count=True` then decodes the file to count them.
    """
    reasons = []
    probe = None
    for opener in (_probe_soundfile, _probe_pyav):
        try:
            probe = opener(path)
            break
        except _Refused as exc:
            reasons.append(str(exc))
    if probe is None:
        raise _undecodable(path, reasons)
    info = probe.info
    if probe.empty:
        raise AudioError(f"{path.name}: contains no audio (0 samples); choose a file with "
                         "sound in it")
    _check_samplerate(info.samplerate, f"{path.name}: the file's")
    declared = headers.declared_pcm_frames(path, info.format)
    if declared is not None and declared - info.frames > 64:
        raise _truncated(path, info.frames, declared, info.samplerate)
    limit = headers.max_samples(path, info.format)
    if info.frames > 0 and info.frames * max(info.channels, 1) > limit:
        log.info("%s: header claims %d frames, more than the file can hold", path,
                 info.frames)
        probe = replace(probe, info=replace(info, frames=0), exact_length=False,
                        note=_wrong_length_note(path), keep=None)
        info = probe.info
    if info.frames == 0 and count:
        frames = sum(block.shape[-1] for block in _decode(probe))
        if frames == 0:
            raise AudioError(f"{path.name}: contains no audio (0 samples); choose a file "
                             "with sound in it")
        probe = replace(probe, info=replace(info, frames=frames))
    return probe


def _wrong_length_note(path: Path) -> str:
    return (f"{path.name}: the header gives no or a wrong length (a file written to a pipe, "
            "or damaged); the length that decoded was used")


def _too_short(path: Path, frames: int, samplerate: int, rate: int) -> AudioError:
    return AudioError(f"{path.name}: too short to use ({frames} sample"
                      f"{'' if frames == 1 else 's'} at {samplerate} Hz, nothing left at "
                      f"{rate} Hz); choose a longer file")


_QUIET_LOCK = threading.Lock()
_quiet_users = 0  # threads inside _quiet_native_stderr
_saved_stderr: int | None = None  # the real fd 2 while it points at the null device


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Point file descriptor 2 at the null device while a native decoder runs.

    libsndfile's bundled mpg123 prints notes and errors about damaged MP3 frames straight
    to the C library's stderr ("[src/libmpg123/layer3.c:...] error: ..."), ahead of our own
    one-line message; the damage is reported by the error we raise instead. Only wrap
    native calls, never code that may print through Python: text written to stderr by any
    thread meanwhile is lost. Nested and concurrent uses share one redirection (the last
    to leave restores fd 2); when fd 2 cannot be redirected, nothing changes.
    """
    global _quiet_users, _saved_stderr
    with _QUIET_LOCK:
        if _quiet_users == 0:
            _saved_stderr = _redirect_stderr_to_null()
        _quiet_users += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet_users -= 1
            if _quiet_users == 0 and _saved_stderr is not None:
                saved, _saved_stderr = _saved_stderr, None
                with contextlib.suppress(OSError):
                    os.dup2(saved, 2)
                os.close(saved)


def _redirect_stderr_to_null() -> int | None:
    """Point fd 2 at os.devnull; returns a duplicate of the old fd 2 (None: unchanged)."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()  # Python text written before stays visible
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (e.g. a GUI process without a console)
        return None
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
    except OSError:
        os.close(saved)
        return None
    return saved


def _probe_soundfile(path: Path) -> _Probe:
    try:
        with _quiet_native_stderr(), sf.SoundFile(path) as f:
            fmt, subtype = ("WAV" if f.format == "WAVEX" else f.format), f.subtype
            info = AudioInfo(path=path, format=fmt, subtype=subtype, samplerate=f.samplerate,
                             channels=f.channels, frames=f.frames,
                             tags=_clean_tags(f.copy_metadata()))
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise _Refused(f"libsndfile: {_reason(exc)}") from exc
    if info.frames <= 0:
        # libsndfile reports 0 frames for some damaged OGG files: let FFmpeg look too (it
        # also tells an empty file from a damaged one).
        raise _Refused("libsndfile: no frames")
    if fmt == "FLAC" and headers.flac_length_unusable(path, info.channels):
        # libsndfile cannot read such a file (or stops at the length it claims): FFmpeg can
        raise _Refused("libsndfile: the FLAC header's length is missing or wrong")
    if fmt in ("MP3", "OGG"):
        # libsndfile drops some tags of these (an MP3's or an Opus file's comment)
        info = replace(info, tags={**_av_tags(path), **info.tags})
    exact = fmt != "MP3" or headers.mp3_has_frame_count(path)
    return _Probe(info, "soundfile", exact)


def _av_tags(path: Path) -> dict[str, str]:
    """The tags FFmpeg reads from `path` ({} when it cannot open it)."""
    import av

    try:
        with _open_av(path) as container:
            stream = container.streams.best("audio")
            extra = _clean_tags(stream.metadata) if stream is not None else {}
            return {**_clean_tags(container.metadata), **extra}
    except (av.FFmpegError, OSError, ValueError):
        return {}


def _probe_pyav(path: Path) -> _Probe:
    import av

    keep = None
    try:
        with _open_av(path) as container:
            stream = container.streams.best("audio")
            if stream is None:
                raise _Refused("FFmpeg: no audio track")
            first = None
            for frame in container.decode(stream):
                if frame.samples:
                    first = frame
                    break
            tags = {**_clean_tags(container.metadata), **_clean_tags(stream.metadata)}
            fmt_name = container.format.name
            codec = stream.codec_context.name
            if first is None:
                sr, channels, frames = stream.codec_context.sample_rate or 0, 0, 0
            else:
                sr, channels = first.sample_rate, first.layout.nb_channels
                frames = _av_declared_frames(container, stream, sr)
                if fmt_name.startswith("mov") and stream.duration:
                    keep = _mp4_keep(path, frames, sr)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise _Refused(f"FFmpeg: {_reason(exc)}") from exc
    fmt = _av_format_name(fmt_name, path)
    # Lengths from an MP4 index, OGG granule or FLAC header are exact; others may be guesses.
    exact = fmt in ("M4A", "MP4", "OGG", "FLAC") or (
        fmt == "MP3" and headers.mp3_has_frame_count(path))
    note = None
    if fmt == "FLAC" and first is not None and headers.flac_length_unusable(path, channels):
        frames, note = 0, _wrong_length_note(path)
    if frames <= 0:
        frames, exact = 0, False  # unknown length (rare): the decoded length is taken as is
    info = AudioInfo(path=path, format=fmt, subtype=codec, samplerate=sr, channels=channels,
                     frames=frames, tags=tags)
    return _Probe(info, "pyav", exact, empty=first is None, note=note,
                  keep=keep if frames > 0 else None)


def _mp4_keep(path: Path, frames: int, samplerate: int) -> int | None:
    """How many decoded samples of an MP4 to keep: its edit list's length (`frames`) plus
    that length's rounding (the file's time unit, ms by default, or samples); None when
    the time unit cannot be read."""
    timescale = _mp4_timescale(path)
    if not timescale:
        return None
    slack = 0 if timescale % samplerate == 0 else -(-samplerate // timescale)
    return frames + slack


def _mp4_timescale(path: Path) -> int | None:
    """The movie time scale (units per second) in an MP4's `moov/mvhd` box, or None."""
    try:
        with open(path, "rb") as f:
            size_total = os.fstat(f.fileno()).st_size
            pos, end = 0, size_total
            for _ in range(256):  # boxes looked at: a bound for hostile files
                if pos + 8 > end:
                    return None
                f.seek(pos)
                head = f.read(16)
                size, kind = int.from_bytes(head[:4], "big"), head[4:8]
                body = 8
                if size == 1:
                    size, body = int.from_bytes(head[8:16], "big"), 16
                elif size == 0:
                    size = end - pos
                if size < body:
                    return None
                if kind == b"moov":
                    pos, end = pos + body, min(pos + size, size_total)
                    continue
                if kind == b"mvhd":
                    f.seek(pos + body)
                    box = f.read(24)
                    offset = 20 if box[:1] == b"\x01" else 12
                    scale = int.from_bytes(box[offset:offset + 4], "big")
                    return scale or None
                pos += size
    except OSError:
        return None
    return None


def _open_av(path: Path):
    import av

    # "file:" and an absolute path: a name like "http:x.mp3" must never be taken as a URL.
    return av.open("file:" + os.fspath(path.absolute()), metadata_errors="replace")


def _av_declared_frames(container, stream, samplerate: int) -> int:
    if stream.duration and stream.time_base:
        return int(round(float(stream.duration * stream.time_base) * samplerate))
    if container.duration:
        return int(round(container.duration / 1_000_000 * samplerate))
    return 0


def _av_format_name(name: str, path: Path) -> str:
    first = name.split(",")[0]
    if first == "mov":
        return "MP4" if path.suffix.lower() in (".mp4", ".mov") else "M4A"
    if first == "matroska":
        return "WEBM" if path.suffix.lower() == ".webm" else "MKV"
    return {"asf": "WMA", "aiff": "AIFF", "wav": "WAV"}.get(first, first.upper())


def _clean_tags(raw) -> dict[str, str]:
    """Basic tags with lower-case standard keys; empty values and technical keys dropped."""
    tags: dict[str, str] = {}
    for key, value in dict(raw).items():
        key = str(key).lower()
        key = _TAG_ALIASES.get(key, key)
        value = str(value).strip().strip("\x00")
        if key in _TAG_KEYS and value and key not in tags:
            tags[key] = value
    return tags


def _undecodable(path: Path, reasons: list[str]) -> AudioError:
    detail = "; ".join(reasons)
    kind = headers.sniff(path)
    if kind == "FLAC" and headers.flac_total_samples(path) == 0:
        return AudioError(f"{path.name}: contains no audio (0 samples); choose a file with "
                          "sound in it")
    if kind is not None:
        err = AudioError(f"{path.name}: this {kind} file is damaged or incomplete and could "
                         f"not be decoded; {_FIX}")
    else:
        err = UnsupportedFormatError(
            f"{path.name}: not an audio format Stemwright can read (it reads {INPUT_FORMATS}); "
            "convert it to WAV or FLAC first")
    log.info("could not decode %s: %s", path, detail)
    return err


def _truncated(path: Path, frames: int, expected: int, samplerate: int) -> AudioError:
    return AudioError(f"{path.name}: the file is truncated (only {frames / samplerate:.1f} of "
                      f"{expected / samplerate:.1f} s are there); {_FIX}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


# --------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------

def _decode(probe: _Probe) -> Iterator[np.ndarray]:
    """Decoded float32 [C, n] pieces of any size, in order."""
    if probe.decoder == "soundfile":
        return _decode_soundfile(probe, _READ_BLOCK)
    return _decode_pyav(probe)


def _decode_soundfile(probe: _Probe, block: int) -> Iterator[np.ndarray]:
    path = probe.info.path
    done = 0
    try:
        # stderr is quiet only inside the native calls, never while the caller runs
        with _quiet_native_stderr():
            f = sf.SoundFile(path)
        try:
            while True:
                with _quiet_native_stderr():
                    data = f.read(block, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    return
                _check_finite(probe, data, done)
                done += data.shape[0]
                yield np.ascontiguousarray(data.T)
        finally:
            with _quiet_native_stderr():
                f.close()
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise _damaged(probe, done, exc) from exc


def _decode_pyav(probe: _Probe) -> Iterator[np.ndarray]:
    import av

    info = probe.info
    done = 0
    held: list[np.ndarray] = []  # decoded past `probe.keep`
    try:
        with _open_av(info.path) as container:
            stream = container.streams.best("audio")
            for frame in container.decode(stream):
                if not frame.samples:
                    continue
                if (frame.sample_rate != info.samplerate
                        or frame.layout.nb_channels != info.channels):
                    raise AudioError(
                        f"{info.path.name}: the sample rate or channel count changes "
                        f"{done / info.samplerate:.1f} s into the file; convert it to WAV or "
                        "FLAC first")
                block = _frame_to_array(frame, info.channels)
                _check_finite(probe, block, done)
                if probe.keep is not None and done + block.shape[-1] > probe.keep:
                    cut = max(probe.keep - done, 0)
                    held.append(block[:, cut:])
                    block = block[:, :cut]
                    if not block.shape[-1]:
                        continue
                done += block.shape[-1]
                yield block
    except (av.FFmpegError, ValueError) as exc:
        raise _damaged(probe, done, exc) from exc
    # More than a frame of padding past the edit list: the list is wrong, not the audio
    if sum(b.shape[-1] for b in held) > _MAX_MP4_PADDING:
        yield from held


def _frame_to_array(frame, channels: int) -> np.ndarray:
    """A PyAV AudioFrame as float32 [C, n], whatever its sample format."""
    arr = frame.to_ndarray()
    if not frame.format.is_planar:
        arr = arr.reshape(-1, channels).T
    base = frame.format.name.rstrip("p")
    if base in ("flt", "dbl"):
        return np.ascontiguousarray(arr, dtype=np.float32)
    if base == "u8":
        return ((arr.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    bits = {"s16": 16, "s32": 32, "s64": 64}.get(base)
    if bits is None:
        raise ValueError(f"unexpected sample format {frame.format.name}")
    return (arr * (1.0 / 2 ** (bits - 1))).astype(np.float32)


def _damaged(probe: _Probe, frames: int, exc: BaseException) -> AudioError:
    info = probe.info
    log.info("decoding %s failed after %d frames: %s", info.path, frames, _reason(exc))
    where = f" after {frames / info.samplerate:.1f} s" if frames else ""
    return AudioError(f"{info.path.name}: the file is damaged or truncated (decoding "
                      f"stopped{where}: {_reason(exc)}); {_FIX}")


#: a float sample beyond this (+80 dB over full scale) is damage, not headroom: such
#: levels overflow every model's spectra into NaN
MAX_LEVEL = 1e4


def _check_finite(probe: _Probe, data: np.ndarray, done: int) -> None:
    """Refuse NaN, infinite or absurdly loud samples (a damaged float file), naming the
    file."""
    if not np.isfinite(data).all():
        info = probe.info
        raise AudioError(f"{info.path.name}: the audio contains NaN or infinite samples "
                         f"(from {done / info.samplerate:.1f} s on); the file is damaged, "
                         f"{_FIX}")
    peak = float(np.max(np.abs(data))) if data.size else 0.0
    if peak > MAX_LEVEL:
        info = probe.info
        raise AudioError(f"{info.path.name}: the audio reaches {peak:.3g} times full scale "
                         f"(from {done / info.samplerate:.1f} s on), far beyond any "
                         f"recording; the file is damaged, {_FIX}")


def _check_complete(probe: _Probe, frames: int) -> None:
    """Raise when fewer frames decoded than the file promised (a cut-off file), or none;
    warn (one line) when the file's length could not be trusted or it looks cut off."""
    info = probe.info
    if probe.exact_length and info.frames - frames > max(4096, info.frames // 100):
        raise _truncated(info.path, frames, info.frames, info.samplerate)
    if frames == 0:
        raise AudioError(f"{info.path.name}: contains no audio (0 samples); choose a file "
                         "with sound in it")
    if probe.note is not None:
        log.warning("%s (%.1f s)", probe.note, frames / info.samplerate)
    elif info.format == "OGG" and headers.ogg_cut_off(info.path):
        log.warning("%s: the file looks cut off (its last Ogg page is incomplete or not "
                    "the end of the stream); only the %.1f s that are there were read; %s",
                    info.path.name, frames / info.samplerate, _FIX)


def _iter_blocks(probe: _Probe, block_frames: int) -> Iterator[np.ndarray]:
    if probe.decoder == "soundfile":
        pieces = _decode_soundfile(probe, block_frames)
        done = 0
        for piece in pieces:
            done += piece.shape[-1]
            yield piece
        _check_complete(probe, done)
        return
    pending: list[np.ndarray] = []
    held = done = 0
    for piece in _decode_pyav(probe):
        pending.append(piece)
        held += piece.shape[-1]
        while held >= block_frames:
            joined = np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0]
            yield np.ascontiguousarray(joined[:, :block_frames])
            rest = joined[:, block_frames:]
            pending, held = ([rest] if rest.shape[-1] else []), rest.shape[-1]
            done += block_frames
    if held:
        done += held
        yield np.concatenate(pending, axis=1)
    _check_complete(probe, done)


class _Buffer:
    """Growable float32 [C, T] that starts at the expected size (no list + concatenate)."""

    def __init__(self, channels: int, expected: int, exact: bool) -> None:
        # Lossy decoders may give a little more than the header says: leave room for it.
        size = expected if exact else expected + expected // 64 + 16384
        self.data = np.empty((channels, max(size, 1)), dtype=np.float32)
        self.frames = 0

    def append(self, block: np.ndarray) -> None:
        n = block.shape[-1]
        if self.frames + n > self.data.shape[-1]:
            size = max(self.data.shape[-1] * 5 // 4 + 16384, self.frames + n)
            grown = np.empty((self.data.shape[0], size), dtype=np.float32)
            grown[:, :self.frames] = self.data[:, :self.frames]
            self.data = grown
        self.data[:, self.frames:self.frames + n] = block
        self.frames += n

    def result(self) -> np.ndarray:
        if self.frames == self.data.shape[-1]:
            return self.data
        return self.data[:, :self.frames].copy()


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

def _save_format(path: Path, format: str | None) -> str:
    suffix = path.suffix.lower().lstrip(".")
    names = ", ".join(f".{f}" for f in OUTPUT_FORMATS)
    if format is None:
        if suffix not in OUTPUT_FORMATS:
            raise UnsupportedFormatError(
                f"{path.name}: cannot save as '.{suffix}' (Stemwright saves {names}); "
                "use one of those file name endings")
        return suffix
    fmt = format.lower().lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise UnsupportedFormatError(f"{path.name}: cannot save as {format!r}; choose "
                                     f"{', '.join(repr(f) for f in OUTPUT_FORMATS)}")
    if suffix in OUTPUT_FORMATS and suffix != fmt:
        raise AudioError(f"{path.name}: the name ends in .{suffix} but format {format!r} was "
                         f"asked for; use a .{fmt} file name")
    return fmt


def _check_save_data(path: Path, data: np.ndarray, fmt: str) -> np.ndarray:
    data = np.asarray(data)
    if data.ndim == 1:
        data = data[None, :]
    problem = None
    if data.ndim != 2:
        problem = f"audio to save must be shaped [channels, samples], got {data.shape}"
    elif not np.issubdtype(data.dtype, np.floating):
        problem = f"audio to save must be floating point in -1..1, got {data.dtype}"
    elif data.size == 0:
        problem = f"there is no audio to save (shape {data.shape})"
    elif data.shape[0] > _MAX_SAVE_CHANNELS[fmt]:
        problem = (f"{fmt.upper()} holds at most {_MAX_SAVE_CHANNELS[fmt]} channels, got "
                   f"{data.shape[0]} (is the array [samples, channels]?)")
    elif not np.isfinite(data).all():
        problem = "the audio contains NaN or infinite samples"
    if problem:
        raise AudioError(f"{path.name}: {problem}; nothing was saved")
    return data


def _write(tmp: Path, data: np.ndarray, samplerate: int, container: str, bit_depth: int,
           dither: bool, tags: Mapping[str, str]) -> int:
    """Write `data` to `tmp` block by block; returns how many samples had to be clipped."""
    step = max(1, data.shape[-1] // 65536)
    seed = zlib.crc32(np.ascontiguousarray(data[:, ::step]).tobytes(),
                      zlib.crc32(repr(data.shape).encode()))
    rng = np.random.default_rng(seed) if dither else None
    with BlockWriter(tmp, samplerate, data.shape[0], container, bit_depth, tags,
                     rng) as writer:
        writer.write(data)
        return writer.close()


def _write_lossy(tmp: Path, data: np.ndarray, samplerate: int, fmt: str,
                 bitrate_kbps: int | None, vbr: int | None, tags: Mapping[str, str]) -> int:
    """Clip to full scale and encode with PyAV (`encode`); returns the samples clipped."""
    over = np.abs(data) > 1.0
    clipped = int(over.sum())
    if clipped:
        data = np.clip(data, -1.0, 1.0)
    encode_lossy(tmp, data, samplerate, fmt, bitrate_kbps, vbr, tags)
    return clipped


def _ffmpeg_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.FFmpegError,)


__all__ = ["Audio", "AudioInfo", "LOSSY_FORMATS", "OUTPUT_FORMATS", "SAVE_FORMATS", "TAG_KEYS",
           "MIN_SAMPLERATE", "MAX_SAMPLERATE", "audio_info", "load_audio", "iter_blocks",
           "save_audio", "check_output_path"]
