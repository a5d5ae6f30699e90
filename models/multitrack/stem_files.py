"""Multitrack songs in one file: NI Stems (`.stem.mp4`), the format MUSDB18 ships in.

Stream 0 is the mixture, streams 1-4 the stems, named by the file's NI `stem` metadata
(MUSDB18: Drums, Bass, Other, Vocals). Each name goes to one of our stems by the stem
names and aliases ("other", "guitar"...) and then by the track-name rules of `names`
("Guitar" -> electric_guitar, "Keys" -> other). A file without usable metadata is taken in
MUSDB18's order, drums, bass, other, vocals, and the song says so in a note.

`probe_stem_file` reads only headers (for scans); `decode_stem_file` decodes every stream
in one pass (once per use of the song). Anything that makes the file unusable as a song
(damaged, not five audio streams, mono, rates that differ) is one AudioError line.
`folders` builds the Song and Track objects from these (this module does not import it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio.io import AudioInfo
from ..errors import AudioError
from ..progress import CancelCheck, check_cancel
from ..remix.nistems import frame_to_array, read_ni_stems, read_stem_metadata
from ..stems import get_stem
from .names import stem_for_name

STEM_FILE_SUFFIX = ".stem.mp4"
MUSDB_ORDER = ("Drums", "Bass", "Other", "Vocals")  # the stems' order in MUSDB18's files
STREAMS = 1 + len(MUSDB_ORDER)


@dataclass
class StemSlot:
    """One stem stream of a `.stem.mp4` file and the stem it goes to."""

    stream: int  # audio stream index (1-4)
    name: str  # the NI metadata's name (or MUSDB18's, when the file has none)
    stem: str  # canonical stem id (or names.IGNORE)
    source: str  # "metadata" (the name matched a rule) or "default" (nothing matched)
    info: AudioInfo


@dataclass
class StemFileInfo:
    """What the headers of a `.stem.mp4` file say: the mix, the four stems, notes."""

    path: Path
    mix: AudioInfo
    slots: list[StemSlot]
    metadata: bool  # the file has usable NI stem metadata
    notes: list[str] = field(default_factory=list)


def is_stem_file(path: Path) -> bool:
    """True for a regular, not hidden file named `*.stem.mp4` (any case)."""
    name = path.name
    return (name.lower().endswith(STEM_FILE_SUFFIX) and not name.startswith(".")
            and len(name) > len(STEM_FILE_SUFFIX) and path.is_file())


def song_name(path: Path) -> str:
    """"Artist - Title.stem.mp4" -> "Artist - Title"."""
    return path.name[:-len(STEM_FILE_SUFFIX)]


def stem_for_slot(name: str) -> tuple[str, str]:
    """(stem, source) for a stem slot's name: our ids and aliases, then the track-name
    rules; "other" (source "default") when nothing matches."""
    try:
        return get_stem(name).id, "metadata"
    except KeyError:
        pass
    stem = stem_for_name(name)
    return (stem, "metadata") if stem is not None else ("other", "default")


def probe_stem_file(path: str | os.PathLike[str]) -> StemFileInfo:
    """The headers of a `.stem.mp4` file (no decoding): its streams, names and mapping.

    AudioError (one line, without the file name) when it cannot be opened, has not five
    audio streams, a mono stream, or streams of different sample rates.
    """
    path = Path(path)
    notes: list[str] = []
    try:
        names, metadata = _names(read_stem_metadata(path), notes), True
    except AudioError as exc:
        names, metadata = list(MUSDB_ORDER), False
        reason = _strip_name(str(exc), path).split(";")[0]
        notes.append(f"no usable NI stem metadata ({reason}): the stems are taken in "
                     "MUSDB18's order, drums, bass, other, vocals")
    infos = _stream_infos(path)
    slots = []
    for i, name in enumerate(names, start=1):
        stem, source = stem_for_slot(name)
        slots.append(StemSlot(i, name, stem, source, infos[i]))
    return StemFileInfo(path, infos[0], slots, metadata, notes)


def decode_stem_file(path: str | os.PathLike[str], cancel: CancelCheck | None = None
                     ) -> tuple[list[np.ndarray], int]:
    """Every stream of a `.stem.mp4` file decoded once: ([mix, stem 1..4] float32 [C, T],
    one length, sample rate). AudioError when the file cannot be decoded."""
    path = Path(path)
    check_cancel(cancel)
    try:
        read_stem_metadata(path)
    except AudioError:  # no manifest (or an unusable one): decode the streams as they are
        return _decode_plain(path, cancel)
    ni = read_ni_stems(path)
    return [ni.mix, *ni.stems.values()], int(ni.samplerate)


# --------------------------------------------------------------------------------------

def _names(meta: dict, notes: list[str]) -> list[str]:
    """The four stem names of a manifest; MUSDB18's where an entry has none."""
    entries = meta.get("stems") or []
    if len(entries) != len(MUSDB_ORDER):
        notes.append(f"the NI stem metadata names {len(entries)} stems, not 4; the others "
                     "are taken in MUSDB18's order")
    out = []
    for i, default in enumerate(MUSDB_ORDER):
        entry = entries[i] if i < len(entries) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name.strip():
            out.append(" ".join(name.split())[:60])
        else:
            out.append(default)
    return out


def _strip_name(text: str, path: Path) -> str:
    prefix = f"{path.name}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _open(path: Path):
    import av

    return av.open("file:" + os.fspath(path.absolute()), metadata_errors="replace")


def _stream_infos(path: Path) -> list[AudioInfo]:
    """AudioInfo of each of the five audio streams, from the headers."""
    import av

    try:
        with _open(path) as container:
            streams = list(container.streams.audio)
            if len(streams) != STREAMS:
                raise AudioError(f"it has {len(streams)} audio tracks, not the 5 of a "
                                 ".stem.mp4 (the mix and 4 stems); the file is damaged or "
                                 "not an NI Stems file")
            infos = []
            for i, st in enumerate(streams):
                ctx = st.codec_context
                rate = int(ctx.sample_rate or 0)
                channels = int(getattr(ctx, "channels", 0) or ctx.layout.nb_channels or 0)
                frames = 0
                if st.duration and st.time_base:
                    frames = int(round(float(st.duration * st.time_base) * rate))
                elif container.duration:
                    frames = int(round(container.duration / 1_000_000 * rate))
                what = "the mix" if i == 0 else f"stem {i}"
                if rate <= 0:
                    raise AudioError(f"{what} has no sample rate; the file is damaged")
                if channels != 2:
                    kind = "mono" if channels == 1 else f"{channels} channels"
                    raise AudioError(f"{what} is {kind}; the tracks of a .stem.mp4 are "
                                     "stereo")
                infos.append(AudioInfo(path, "MP4", ctx.name or "aac", rate, channels,
                                       frames, {}))
    except (av.FFmpegError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise AudioError(f"cannot be read as MP4 ({reason}); the file is damaged or not "
                         "an NI Stems file") from exc
    if len({i.samplerate for i in infos}) != 1:
        raise AudioError("its tracks differ in sample rate; re-export it")
    return infos


def _decode_plain(path: Path, cancel: CancelCheck | None) -> tuple[list[np.ndarray], int]:
    """The five streams of a file without NI metadata, decoded in one pass."""
    import av

    cap = os.path.getsize(path) * 16 + 65536  # frames per stream (AAC is ~0.3 per byte)
    try:
        with _open(path) as container:
            streams = list(container.streams.audio)
            if len(streams) != STREAMS:
                raise AudioError(f"{path.name}: has {len(streams)} audio tracks, not 5")
            pieces: dict[int, list[np.ndarray]] = {s.index: [] for s in streams}
            counts = dict.fromkeys(pieces, 0)
            declared = {s.index: (float(s.duration * s.time_base) if s.duration and
                                  s.time_base else 0.0) for s in streams}
            order = [s.index for s in streams]  # stream objects die with the container
            rate = 0
            for n, packet in enumerate(container.demux(*streams)):
                if n % 256 == 0:
                    check_cancel(cancel)
                for frame in packet.decode():
                    if not frame.samples:
                        continue
                    rate = rate or frame.sample_rate
                    if frame.sample_rate != rate:
                        raise AudioError(f"{path.name}: its tracks differ in sample rate")
                    block = frame_to_array(frame)
                    idx = packet.stream.index
                    counts[idx] += block.shape[1]
                    if counts[idx] > cap:
                        raise AudioError(f"{path.name}: a track decodes to more audio than "
                                         "the file could hold; the file is damaged")
                    pieces[idx].append(block)
    except (av.FFmpegError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise AudioError(f"{path.name}: the file is damaged or truncated ({reason})") from exc
    arrays = []
    for idx in order:
        if not pieces[idx] or len({p.shape[0] for p in pieces[idx]}) != 1:
            raise AudioError(f"{path.name}: track {idx + 1} holds no audio or changes "
                             "its channel count; the file is damaged")
        a = np.concatenate(pieces.pop(idx), axis=1)
        length = int(round(declared[idx] * rate))
        arrays.append(a[:, :length] if 0 < length < a.shape[1] else a)
    if len({a.shape[0] for a in arrays}) != 1:
        raise AudioError(f"{path.name}: its tracks differ in channel count")
    length = min(a.shape[1] for a in arrays)
    arrays = [np.ascontiguousarray(a[:, :length]) for a in arrays]
    if not all(np.isfinite(a).all() for a in arrays):
        raise AudioError(f"{path.name}: a track decodes to NaN; the file is damaged")
    return arrays, rate


__all__ = ["STEM_FILE_SUFFIX", "MUSDB_ORDER", "StemSlot", "StemFileInfo", "is_stem_file",
           "song_name", "stem_for_slot", "probe_stem_file", "decode_stem_file"]
