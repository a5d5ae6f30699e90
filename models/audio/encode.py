"""Lossy outputs: MP3, AAC in MP4 (.m4a) and Ogg Opus, encoded with PyAV's bundled FFmpeg.

Why PyAV: it is already how `io.load_audio` reads M4A, and its wheel carries libmp3lame,
FFmpeg's native AAC encoder and libopus, so no `ffmpeg` program is needed. `io.save_audio`
calls `encode_lossy` on its temporary file; clipping, the atomic rename and the overwrite
rules are its own.

Sample-accurate lengths. Every codec here adds encoder delay (priming) and pads the last
frame; the containers record both, and the files are written so that a reader honouring
them gets exactly the input back:

* MP3: the LAME/Xing header holds delay and padding (FFmpeg's muxer writes it); soundfile
  (mpg123) and PyAV both give the exact length.
* M4A: the MP4 edit list skips the 1024-sample priming; its length is written in samples
  (`movie_timescale` = the rate, not FFmpeg's default of milliseconds), and `load_audio`
  stops at that length, since FFmpeg itself decodes the padding of the last frame.
* Opus: the Ogg pre-skip (312) and the last page's granule position; always 48 kHz
  (libopus takes 8/12/16/24/48 kHz and every decoder plays at 48 kHz): other rates are
  resampled with `resample.resample` (soxr VHQ), so the file holds
  `resampled_length(T, rate, 48000)` samples.

Measured with `save_audio` + `load_audio` (0.5 s + 123 samples, mono and stereo, at 22.05,
44.1, 48 and 96 kHz; default bitrate, 128 kbit/s, and MP3 VBR -V2; lag by cross-correlation
of a 1 kHz sine plus white noise against the input, resampled where the format changes
the rate):

    format   length difference (samples)           lag   1 kHz sine SNR
    mp3      0 (soundfile and plain PyAV alike)    0     26 dB at 128 kbit/s, 80 at 320
    m4a      0 (plain FFmpeg decodes +355 at       0     27-57 dB
             44.1k / +453 at 48k: frame padding)
    opus     0 (soundfile and plain PyAV alike)    0     39-44 dB

(An MP3 of fewer than 47 samples decodes as 47, measured with soundfile.)

MP3 also needs a rate MPEG allows (8-48 kHz) and M4A one AAC allows (7.35-96 kHz); other
rates are resampled to the nearest one above (above the top: 44.1k or 48k family, or
88.2/96 kHz for AAC), and the file then holds the resampled length.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AudioError
from .resample import resample


@dataclass(frozen=True)
class LossyFormat:
    """What one lossy output takes: bitrates (kbit/s), VBR qualities, rates, channels."""

    name: str  # shown to users, e.g. "MP3"
    codec: str  # the FFmpeg encoder
    muxer: str  # the FFmpeg container format
    default_kbps: int
    min_kbps: int
    max_kbps: int
    vbr: tuple[int, int] | None  # quality range (best first), None: no VBR quality mode
    rates: tuple[int, ...]  # sample rates the encoder takes; others are resampled
    max_channels: int
    common_kbps: tuple[int, ...]  # bitrates offered in menus

    @property
    def bitrate_range(self) -> str:
        return f"{self.min_kbps}-{self.max_kbps} kbit/s"


_MPEG_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
_AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000,
              88200, 96000)

#: the lossy formats `save_audio` writes, by name (also the file extension)
LOSSY_FORMATS: dict[str, LossyFormat] = {
    # VBR: LAME's -V quality, 0 (best, about 245 kbit/s) to 9 (smallest, about 65 kbit/s)
    "mp3": LossyFormat("MP3", "libmp3lame", "mp3", 320, 32, 320, (0, 9), _MPEG_RATES, 2,
                       (128, 160, 192, 256, 320)),
    # FFmpeg's native AAC encoder; its VBR mode is experimental, so bitrate only
    "m4a": LossyFormat("M4A (AAC)", "aac", "ipod", 256, 32, 320, None, _AAC_RATES, 6,
                       (128, 160, 192, 256, 320)),
    # Opus is always variable bitrate around the target: there is no separate quality
    "opus": LossyFormat("Opus", "libopus", "ogg", 160, 6, 510, None, (48000,), 8,
                        (64, 96, 128, 160, 192, 256)),
}

#: tag keys every output can hold (WAV and FLAC through soundfile, the rest through FFmpeg)
TAG_KEYS = ("title", "artist", "album", "comment", "date", "genre", "tracknumber",
            "copyright")
_FFMPEG_TAG_NAMES = {"tracknumber": "track"}
_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1",
            8: "7.1"}


def check_lossy_options(fmt: str, bitrate_kbps: int | None, vbr: int | None,
                        name: str = "") -> tuple[int | None, int | None]:
    """The (bitrate, vbr) to encode `fmt` with; AudioError (one line naming the allowed
    range) for values the format does not take. A VBR quality wins over the bitrate's
    default; giving both is refused."""
    spec = LOSSY_FORMATS[fmt]
    where = f"{name}: " if name else ""
    if vbr is not None:
        if spec.vbr is None:
            raise AudioError(f"{where}{spec.name} has no VBR quality setting; give a bitrate "
                             f"({spec.bitrate_range}) instead")
        if bitrate_kbps is not None:
            raise AudioError(f"{where}both a bitrate and a VBR quality were given for "
                             f"{spec.name}; give only one of them")
        if isinstance(vbr, bool) or not isinstance(vbr, (int, np.integer)) \
                or not spec.vbr[0] <= vbr <= spec.vbr[1]:
            raise AudioError(f"{where}{spec.name} VBR quality {vbr!r} is out of range; give a "
                             f"whole number from {spec.vbr[0]} (best) to {spec.vbr[1]} "
                             "(smallest)")
        return None, int(vbr)
    if bitrate_kbps is None:
        return spec.default_kbps, None
    if isinstance(bitrate_kbps, bool) or not isinstance(bitrate_kbps, (int, np.integer)) \
            or not spec.min_kbps <= bitrate_kbps <= spec.max_kbps:
        raise AudioError(f"{where}{spec.name} bitrate {bitrate_kbps!r} kbit/s is out of "
                         f"range; give {spec.bitrate_range}")
    return int(bitrate_kbps), None


def check_tags(tags: Mapping[str, str] | None, name: str = "") -> dict[str, str]:
    """`tags` with lower-case keys and the empty ones dropped; AudioError for a key no
    output can hold or a value that is not text."""
    out: dict[str, str] = {}
    for key, value in (tags or {}).items():
        key = str(key).lower()
        if key not in TAG_KEYS:
            raise AudioError(f"{name + ': ' if name else ''}cannot write the tag {key!r}; "
                             f"use {', '.join(TAG_KEYS)}")
        if not isinstance(value, str):
            raise AudioError(f"{name + ': ' if name else ''}the tag {key!r} is a "
                             f"{type(value).__name__}; give it as text")
        value = value.replace("\x00", "").strip()
        if value:
            out[key] = value
    return out


def encode_rate(fmt: str, samplerate: int) -> int:
    """The sample rate `fmt` is written at for audio at `samplerate` (see the module)."""
    rates = LOSSY_FORMATS[fmt].rates
    if samplerate in rates:
        return samplerate
    above = [r for r in rates if r > samplerate]
    if above:
        return above[0]
    top = [r for r in rates if (r % 11025 == 0) == (samplerate % 11025 == 0)]
    return max(top or rates)


def encode_lossy(path: Path, data: np.ndarray, samplerate: int, fmt: str,
                 bitrate_kbps: int | None, vbr: int | None,
                 tags: Mapping[str, str]) -> int:
    """Encode float audio [C, T] in -1..1 (already clipped) to `path` as `fmt`; returns
    the sample rate written. FFmpeg errors surface as `av.FFmpegError` / OSError."""
    import av

    spec = LOSSY_FORMATS[fmt]
    rate = encode_rate(fmt, samplerate)
    if rate != samplerate:
        data = resample(data, samplerate, rate)
    channels = data.shape[0]
    layout = _LAYOUTS[channels]
    options = {"movie_timescale": str(rate)} if spec.muxer == "ipod" else {}
    # "file:" and an absolute path: the name is never taken for a URL or a protocol
    with av.open("file:" + os.fspath(path.absolute()), "w", format=spec.muxer,
                 options=options) as out:
        for key, value in tags.items():
            out.metadata[_FFMPEG_TAG_NAMES.get(key, key)] = value
        stream = out.add_stream(spec.codec, rate=rate, layout=layout)
        ctx = stream.codec_context
        codec_options: dict[str, str] = {}
        if vbr is not None:  # LAME -V<n>: FFmpeg's qscale mode with global_quality n * 118
            codec_options = {"flags": "+qscale", "global_quality": str(vbr * 118)}
        else:
            ctx.bit_rate = int(bitrate_kbps or spec.default_kbps) * 1000
        if spec.codec == "libopus" and channels > 2:
            codec_options["mapping_family"] = "1"
        if codec_options:
            ctx.options = codec_options
        packed = "flt" in [f.name for f in ctx.codec.audio_formats or ()] and \
            "fltp" not in [f.name for f in ctx.codec.audio_formats or ()]
        step = 1 << 16
        for start in range(0, data.shape[1], step):
            block = np.asarray(data[:, start:start + step], dtype=np.float32)
            if packed:
                block = np.ascontiguousarray(block.T).reshape(1, -1)
            else:
                block = np.ascontiguousarray(block)
            frame = av.AudioFrame.from_ndarray(block, format="flt" if packed else "fltp",
                                               layout=layout)
            frame.sample_rate = rate
            frame.pts = start  # timestamps let the muxer record the encoder delay
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return rate


__all__ = ["LOSSY_FORMATS", "LossyFormat", "TAG_KEYS", "check_lossy_options", "check_tags",
           "encode_lossy", "encode_rate"]
