"""What audio containers say about themselves, read straight from their bytes.

libsndfile and FFmpeg believe a file's header; these checks are how `io` notices when the
header is wrong: a WAV/AIFF cut off before the length it declares, an MP3 without an exact
frame count, a FLAC whose STREAMINFO length is missing (written to a pipe) or impossible
for its size, an Ogg file whose last page is incomplete, and a length no file of that size
could hold. All of them read at most a few kilobytes and never raise: None/False means
"nothing to say".
"""

from __future__ import annotations

import os
import struct
from pathlib import Path


def file_size(path: Path) -> int:
    """Size in bytes (0 when it cannot be read)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


# Most samples (frames x channels) one byte of a compressed file can decode to: FLAC
# digital silence with the largest blocks reaches about 4000, MP3 never more than ~10.
_SAMPLES_PER_BYTE = {"MP3": 64}
MAX_SAMPLES_PER_BYTE = 8192


def max_samples(path: Path, fmt: str) -> int:
    """Most samples a file of this size and format could hold (a header above it lies)."""
    per_byte = _SAMPLES_PER_BYTE.get(fmt, MAX_SAMPLES_PER_BYTE)
    return file_size(path) * per_byte + 65536


_MAGIC = ((b"RIFF", "WAV"), (b"RF64", "WAV"), (b"fLaC", "FLAC"), (b"FORM", "AIFF"),
          (b"OggS", "OGG"), (b"ID3", "MP3"), (b"caff", "CAF"))


def sniff(path: Path) -> str | None:
    """Container the first bytes announce, if any (to tell damaged from unsupported)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return None
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return "M4A"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MP3" if head[1] & 0x06 else "AAC"
    return None


def declared_pcm_frames(path: Path, fmt: str) -> int | None:
    """Frames a WAV or AIFF header promises (None: other format, or a placeholder size).

    libsndfile silently shortens a WAV/AIFF whose data ends early; comparing with the header
    is how a cut-off file (an interrupted copy or download) is recognised.
    """
    if fmt not in ("WAV", "AIFF"):
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                endian = "<"
            elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                endian = ">"
            else:
                return None
            block_align = 0
            for _ in range(256):
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
                if cid == b"fmt " and size >= 16:
                    fmt_chunk = fh.read(16)
                    block_align = struct.unpack("<H", fmt_chunk[12:14])[0]
                    fh.seek(size - 16 + (size & 1), os.SEEK_CUR)
                elif cid == b"data":
                    if size in (0, 0xFFFFFFFF) or not block_align:
                        return None  # streamed WAV: the writer never filled in the size
                    return size // block_align
                elif cid == b"COMM" and size >= 6:
                    frames = struct.unpack(">I", fh.read(6)[2:6])[0]
                    return frames or None
                else:
                    fh.seek(size + (size & 1), os.SEEK_CUR)
    except (OSError, struct.error):
        return None
    return None


def mp3_has_frame_count(path: Path) -> bool:
    """True when an MP3 states its exact length (Xing/Info/VBRI header after any ID3 tag)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(10)
            offset = 0
            if head[:3] == b"ID3" and len(head) == 10:
                size = 0
                for byte in head[6:10]:
                    size = (size << 7) | (byte & 0x7F)
                offset = 10 + size + (10 if head[5] & 0x10 else 0)
            fh.seek(offset)
            first = fh.read(4096)
    except OSError:
        return False
    return any(tag in first for tag in (b"Xing", b"Info", b"VBRI"))


def flac_length_unusable(path: Path, channels: int) -> bool:
    """True when a FLAC's STREAMINFO length is absent (0: written to a pipe) or cannot be
    right for the bytes of audio that follow the metadata (too many or too few)."""
    total = flac_total_samples(path)
    start = flac_audio_offset(path)
    if total is None or start is None:
        return False
    if total == 0:
        return True
    audio_bytes = max(file_size(path) - start, 0)
    samples = total * max(channels, 1)
    too_long = samples > audio_bytes * MAX_SAMPLES_PER_BYTE + 65536
    too_short = audio_bytes > samples * 4 * 11 // 10 + 16384  # 32-bit verbatim + framing
    return too_long or too_short


def flac_audio_offset(path: Path) -> int | None:
    """Where a FLAC's audio frames start (after its metadata blocks), or None."""
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"fLaC":
                return None
            for _ in range(1024):
                head = fh.read(4)
                if len(head) < 4:
                    return None
                fh.seek(int.from_bytes(head[1:4], "big"), os.SEEK_CUR)
                if head[0] & 0x80:
                    return fh.tell()
    except OSError:
        return None
    return None


def ogg_cut_off(path: Path) -> bool:
    """True when an Ogg file's last page is incomplete or not marked end-of-stream: the
    file was cut off (libsndfile then silently reports the shorter length)."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - 70000))
            tail = fh.read()
    except OSError:
        return False
    at = tail.rfind(b"OggS")
    if at < 0 or len(tail) - at < 27:
        return True
    segments = tail[at + 26]
    lacing = tail[at + 27:at + 27 + segments]
    if len(lacing) < segments or len(tail) - at < 27 + segments + sum(lacing):
        return True
    return not tail[at + 5] & 0x04


def flac_total_samples(path: Path) -> int | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(42)
    except OSError:
        return None
    if len(head) < 42 or head[:4] != b"fLaC":
        return None
    streaminfo = head[8:42]
    return int.from_bytes(streaminfo[13:18], "big") & ((1 << 36) - 1)


__all__ = ["MAX_SAMPLES_PER_BYTE", "declared_pcm_frames", "file_size", "flac_audio_offset",
           "flac_length_unusable", "flac_total_samples", "max_samples", "mp3_has_frame_count",
           "ogg_cut_off", "sniff"]
