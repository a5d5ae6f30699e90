"""Ardour sessions: the stems as a session folder that Ardour 8 opens, no REAPER needed.

`export_ardour_session` writes `<folder>/<song> (Ardour)/` holding `<song> (Ardour).ardour`
(Ardour's XML session file, format version 7003 as Ardour 7 and 8 write it) and the stems
in `interchange/<song> (Ardour)/audiofiles/`, where Ardour looks for a session's own audio.
The file is named like its folder because Ardour, given a session folder, opens the
snapshot named after the folder (libs/ardour/find_session.cc). Each stem is one audio
track named like the stem (mono or stereo as the file), one region at time zero covering
the whole file, coloured like the stem, with the mixer's fader, pan, mute and solo when
given; a Master bus with the master fader; the song's tempo in the tempo map; the session's
sample rate that of the stems.

All or nothing, like every export (see `export`): the session is built in a hidden
temporary folder next to its target and renamed into place at the end; a failure or a
cancel removes it, an existing session is replaced only with `overwrite=True` (and put back
if the rename fails). Element and attribute names follow Ardour's own writers
(libs/ardour/session_state.cc Session::state, route.cc Route::state, region.cc
Region::state, source.cc, playlist.cc, libs/temporal/tempo.cc TempoMap::get_state).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import AudioError, OutputExistsError, StemwrightError
from ..progress import CancelCheck, check_cancel
from ..stems import get_stem
from .export import (
    _STALE_ANY_S,
    _STALE_DEAD_S,
    _TEMP_RE,
    DEFAULT_BPM,
    DEFAULT_PATTERN,
    MAX_NAME_BYTES,
    OutputFolderError,
    _Encoding,
    _make_folder,
    _process_alive,
    _rpp_bpm,
    _stem_jobs,
    _temp_name,
    _text_writer,
    _why,
    _write_all,
    safe_filename,
    shorten_name,
)
from .mixer import ChannelState, MixerState, db_to_gain

#: the session file format Ardour 7 and 8 write (libs/ardour/wscript CURRENT_SESSION_FILE_VERSION)
SESSION_VERSION = 7003
#: Ardour's audio time unit per second (libs/temporal/enums.cc): every common sample rate
#: divides it, so positions and lengths in samples convert exactly
SUPERCLOCKS_PER_SECOND = 282_240_000
#: formats Ardour reads as session sources (libsndfile: SndFileSource)
SESSION_FORMATS = ("wav", "flac")
#: the fader's top in Ardour: the "max-gain" default, +6 dB (rc_configuration_vars.inc.h)
MAX_GAIN = 2.0
SUFFIX = ".ardour"
#: Ardour adds ".bak", ".pending", ".history" to the session file's name
_NAME_ROOM = 16
_STAGE_EXT = "ardoursession"


@dataclass(frozen=True)
class SessionTrack:
    """One track of the session: its stem file (in audiofiles/) and mixer channel."""

    name: str
    color: str  # "#rrggbb"
    file: str  # file name inside interchange/<session>/audiofiles/
    channels: int
    frames: int
    channel: ChannelState | None = None


def session_name(song: str) -> str:
    """"Song (Ardour)": the session folder's, file's and interchange folder's name."""
    return shorten_name(safe_filename(f"{song} (Ardour)"), MAX_NAME_BYTES - _NAME_ROOM)


def session_folder(folder: str | Path, song: str) -> Path:
    """Where `export_ardour_session` puts the song's session."""
    return Path(folder) / session_name(song)


def ardour_gain(gain_db: float) -> float:
    """A fader in dB as Ardour's gain coefficient (linear; 0 at the fader floor, at most
    `MAX_GAIN`, Ardour's +6 dB top)."""
    return min(MAX_GAIN, db_to_gain(float(gain_db)))


def ardour_azimuth(pan: float) -> float:
    """A pan position -1 (left) .. 1 (right) as Ardour's pan azimuth 0 (left) .. 1 (right),
    0.5 the centre (panners/1in2out: right gain from the azimuth, left from 1 - it)."""
    pan = float(pan)
    return 0.5 if math.isnan(pan) else (min(1.0, max(-1.0, pan)) + 1.0) / 2.0


def ardour_color(color: str) -> int:
    """"#rrggbb" -> Ardour's 32-bit RGBA track colour (gtkmm2ext RGBA_TO_UINT, opaque)."""
    value = color.strip().lstrip("#")
    if len(value) != 6:
        raise StemwrightError(f"colour must look like #rrggbb, not '{color}'")
    return (int(value, 16) << 8) | 0xFF


def _sc(frames: int, rate: int) -> str:
    """A position or length in samples as Ardour's audio time ("a" + superclocks)."""
    return f"a{round(int(frames) * SUPERCLOCKS_PER_SECOND / int(rate))}"


class _Ids:
    """Ardour object IDs: unique decimal numbers; the session's id-counter goes above."""

    def __init__(self) -> None:
        self.last = 100

    def __call__(self) -> str:
        self.last += 1
        return str(self.last)


def _sub(parent: ET.Element, tag: str, **attrs: object) -> ET.Element:
    return ET.SubElement(parent, tag, {k.replace("_", "-"): _text(v)
                                       for k, v in attrs.items()})


#: characters XML 1.0 cannot hold (control characters, lone surrogates, U+FFFE/U+FFFF)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: object) -> str:
    """An attribute's or element's text: Ardour's "1"/"0" for booleans, XML-safe."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.10g}"
    return _NOT_XML.sub("_", str(value))


def _controllable(parent: ET.Element, ids: _Ids, name: str, value: float,
                  **extra: object) -> ET.Element:
    """A Controllable (pbd/controllable.cc): name, id, value; no "flags", so the control
    keeps the flags Ardour gives it (set_state replaces them when present)."""
    return _sub(parent, "Controllable", name=name, id=ids(), value=value, **extra)


def _io(parent: ET.Element, ids: _Ids, name: str, direction: str, ports: int,
        connect_to: str | None = None) -> None:
    """An IO with `ports` audio ports ("<name>/audio_in 1" ...), outputs connected to
    `connect_to`'s inputs (Port "Connection other=...", libs/ardour/port.cc)."""
    io = _sub(parent, "IO", name=name, id=ids(), direction=direction,
              default_type="audio")
    kind = "in" if direction == "Input" else "out"
    for i in range(1, ports + 1):
        port = _sub(io, "Port", type="audio", name=f"{name}/audio_{kind} {i}")
        if connect_to is not None:
            _sub(port, "Connection", other=f"{connect_to}/audio_in {min(i, 2)}")


def _route(routes: ET.Element, ids: _Ids, name: str, order: int, flags: str, color: int,
           inputs: int, channel: ChannelState | None, playlist: str | None = None
           ) -> ET.Element:
    """A Route as Route::state / Track::state write it: presentation, controls, IOs, the
    fader (Processor type "amp", Controllable "gaincontrol") and the panner."""
    attrs: dict[str, object] = {
        "version": SESSION_VERSION, "id": ids(), "name": name, "default-type": "audio",
        "strict-io": True, "active": True, "denormal-protection": False,
        "meter-point": "MeterPostFader", "disk-io-point": "DiskIOPreFader",
        "meter-type": "MeterPeak"}
    if playlist is not None:
        attrs.update({"audio-playlist": playlist, "saved-meter-point": "MeterPostFader",
                      "alignment-choice": "Automatic", "mode": "Normal"})
    route = ET.SubElement(routes, "Route", {k: _text(v) for k, v in attrs.items()})
    _sub(route, "PresentationInfo", order=order, flags=flags, color=color)
    ch = channel or ChannelState()
    solo = bool(ch.solo)
    _controllable(route, ids, "solo", 1.0 if solo else 0.0, self_solo=solo,
                  soloed_by_upstream=0, soloed_by_downstream=0)
    is_master = playlist is None
    _io(route, ids, name, "Input", inputs)
    _io(route, ids, name, "Output", 2, None if is_master else "Master")
    _sub(route, "MuteMaster", mute_point="PreFader,PostFader,Listen,Main",
         muted=bool(ch.mute))
    _controllable(route, ids, "mute", 1.0 if ch.mute else 0.0)
    if not is_master:
        pannable = _sub(route, "Pannable")
        _controllable(pannable, ids, "pan-azimuth", ardour_azimuth(ch.pan))
        _controllable(pannable, ids, "pan-width", 1.0 if inputs > 1 else 0.0)
    amp = _sub(route, "Processor", id=ids(), name="Fader", active=True, user_latency=0,
               use_user_latency=False, type="amp")
    _controllable(amp, ids, "gaincontrol", ardour_gain(ch.gain_db))
    return route


def _region(parent: ET.Element, ids: _Ids, name: str, track: SessionTrack,
            sources: Sequence[str], rate: int, whole_file: bool) -> ET.Element:
    """An audio Region (Region::state, AudioRegion::state): at time zero, the whole file;
    its length is a timecnt_t, "a<duration>@a<position>"."""
    length = f"{_sc(track.frames, rate)}@a0"
    region = _sub(
        parent, "Region", name=name, muted=False, opaque=True, locked=False,
        video_locked=False, automatic=False, whole_file=whole_file, **{"import": False},
        external=False, sync_marked=False, left_of_split=False, right_of_split=False,
        hidden=False, position_locked=False, valid_transients=False, start="a0",
        length=length, sync_position="a0", layer=0, ancestral_start="a0",
        ancestral_length=length, stretch=1.0, shift=1.0, layering_index=0, tags="",
        id=ids(), type="audio", first_edit="nothing", channels=len(sources))
    for key in ("source", "master-source"):
        for i, src in enumerate(sources):
            region.set(f"{key}-{i}", src)
    if not whole_file:
        for tag in ("Envelope", "FadeIn", "FadeOut"):
            _sub(region, tag, default="yes")
    return region


def ardour_session_xml(name: str, tracks: Sequence[SessionTrack], samplerate: int,
                       bpm: float | None = None, master_db: float = 0.0,
                       title: str | None = None, artist: str | None = None) -> str:
    """The .ardour file's text for `tracks` (files in interchange/<name>/audiofiles/).

    `bpm`: the song's tempo (`export.DEFAULT_BPM` when None), a 4/4 meter; `master_db`: the
    Master bus fader; `title`/`artist`: the session's metadata.
    """
    if not tracks:
        raise StemwrightError("an Ardour session needs at least one stem")
    rate = int(samplerate)
    if rate <= 0:
        raise StemwrightError(f"sample rate {samplerate} is not valid")
    tempo = float(_rpp_bpm(bpm))  # checks the range (1 to 960 bpm)
    ids = _Ids()
    length = max(t.frames for t in tracks)
    root = ET.Element("Session", {"version": str(SESSION_VERSION), "name": _text(name),
                                  "sample-rate": str(rate), "uuid": str(uuid.uuid4()),
                                  "session-range-is-free": "0"})
    _sub(root, "ProgramVersion", created_with="Stemwright", modified_with="Stemwright")
    _sub(root, "Config")
    meta = _sub(root, "Metadata")
    for key, value in (("title", title), ("artist", artist)):
        if value:
            ET.SubElement(meta, key).text = _text(value)
    sources_el = _sub(root, "Sources")
    regions_el = _sub(root, "Regions")
    sources: list[list[str]] = []
    for track in tracks:
        ids_of = []
        for ch in range(track.channels):
            sid = ids()
            _sub(sources_el, "Source", name=track.file, type="audio", id=sid,
                 channel=ch, origin="", gain=1.0)
            ids_of.append(sid)
        sources.append(ids_of)
        _region(regions_el, ids, Path(track.file).stem, track, ids_of, rate, True)
    locations = _sub(root, "Locations")
    _sub(locations, "Location", id=ids(), name="session", start="a0",
         end=_sc(length, rate), flags="IsSessionRange", locked=False,
         timestamp=int(time.time()), cue=0)
    _sub(root, "Bundles")
    routes = _sub(root, "Routes")
    _route(routes, ids, "Master", 0, "MasterOut,OrderSet", ardour_color("#b0b0b0"),
                    2, ChannelState(gain_db=master_db))
    playlists = _sub(root, "Playlists")
    for order, (track, ids_of) in enumerate(zip(tracks, sources, strict=True), start=1):
        pl_id = ids()
        route = _route(routes, ids, track.name, order, "AudioTrack,OrderSet",
                       ardour_color(track.color), track.channels, track.channel, pl_id)
        playlist = _sub(playlists, "Playlist", id=pl_id, name=track.name, type="audio",
                        orig_track_id=route.get("id"), pgroup_id="", shared_with_ids="",
                        frozen=False, combine_ops=0)
        _region(playlist, ids, Path(track.file).stem, track, ids_of, rate, False)
    _sub(root, "UnusedPlaylists")
    _sub(root, "RouteGroups")
    tmap = _sub(root, "TempoMap", superclocks_per_second=SUPERCLOCKS_PER_SECOND)
    _sub(_sub(tmap, "Tempos"), "Tempo", npm=tempo, enpm=tempo, note_type=4,
         type="Constant", locked_to_meter=False, continuing=False, active=True,
         sclock=0, quarters="0:0", bbt="1|1|0", omega=0.0)
    _sub(_sub(tmap, "Meters"), "Meter", note_value=4, divisions_per_bar=4, sclock=0,
         quarters="0:0", bbt="1|1|0")
    _sub(tmap, "MusicTimes")
    root.set("id-counter", str(ids.last + 1))
    root.set("name-counter", "1")
    root.set("event-counter", "0")
    root.set("vca-counter", "1")
    ET.indent(root, space="  ")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(root, encoding="unicode") + "\n")


def _remove_stale_stages(folder: Path) -> None:
    """Remove session folders a killed export left half-built in `folder` (our temporary
    names only, once their process has ended)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if (match is None or not entry.name.endswith("." + _STAGE_EXT)
                or not entry.is_dir(follow_symlinks=False)):
            continue
        with contextlib.suppress(OSError, ValueError):
            age = now - entry.stat(follow_symlinks=False).st_mtime
            alive = _process_alive(int(match.group(1)))
            if age > _STALE_ANY_S or (alive is False and age > _STALE_DEAD_S):
                shutil.rmtree(entry.path)


def _put_in_place(stage: Path, target: Path, overwrite: bool) -> None:
    """Rename the complete session folder over `target`; an old one is replaced only when
    `overwrite`, and put back if the rename fails."""
    aside: Path | None = None
    try:
        if os.path.lexists(target):
            if not overwrite:
                raise OutputExistsError(f"{target} already exists (use --force to overwrite)")
            aside = target.parent / _temp_name(_STAGE_EXT)
            os.replace(target, aside)
        os.rename(stage, target)
    except OSError as exc:
        if aside is not None:
            with contextlib.suppress(OSError):
                os.replace(aside, target)
        raise AudioError(f"{target}: could not be put in place ({_why(exc)}); close it in "
                         "other programs and check the folder's permissions") from exc
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def export_ardour_session(stems: Mapping[str, np.ndarray], samplerate: int,
                          folder: str | Path, song: str, which: Sequence[str] | None = None,
                          format: str = "wav", bit_depth: int = 24,
                          samplerate_out: int | None = None, pattern: str = DEFAULT_PATTERN,
                          overwrite: bool = False,
                          progress: Callable[[float], None] | None = None,
                          cancel: CancelCheck | None = None, bpm: float | None = None,
                          mixer: MixerState | None = None, *,
                          bitrate_kbps: int | None = None, vbr: int | None = None,
                          artist: str | None = None) -> list[Path]:
    """Write the stems as an Ardour session `folder/<song> (Ardour)/` (see the module).

    Same arguments as `export.export_daw_session`; WAV or FLAC only (what Ardour reads as
    session audio). Returns the session file followed by the stem files. All or nothing:
    a refused overwrite, a failure or a cancel leaves `folder` as it was.
    """
    enc = _Encoding(format, bit_depth, bitrate_kbps, vbr)
    if enc.format not in SESSION_FORMATS:
        raise StemwrightError(f"an Ardour session holds WAV or FLAC stems, not "
                              f"{enc.format.upper()}; choose WAV or FLAC")
    tempo = None if bpm is None else float(_rpp_bpm(bpm))
    folder = Path(folder)
    name = session_name(song)
    target = folder / name
    if os.path.lexists(target):
        if not target.is_dir():
            raise OutputFolderError(f"{target} is a file where the Ardour session's folder "
                                    "goes; move or rename it, or choose another folder")
        if not overwrite:
            raise OutputExistsError(f"{target} already exists (use --force to overwrite)")
    _make_folder(folder)
    _remove_stale_stages(folder)
    stage = folder / _temp_name(_STAGE_EXT)
    audio = Path("interchange") / name / "audiofiles"
    ids, jobs = _stem_jobs(stems, samplerate, stage / audio, song, which, enc,
                           samplerate_out, pattern, False, artist)  # checks, no writing
    if not ids:
        raise StemwrightError("choose at least one stem")
    try:
        os.mkdir(stage)
        os.makedirs(stage / audio)
    except OSError as exc:
        raise OutputFolderError(f"{target} cannot be created ({_why(exc)}); choose another "
                                f"folder, or make {folder} writable") from None
    try:
        def stem_progress(f: float) -> None:
            if progress is not None:
                progress(0.95 * f)
        try:
            written = _write_all(stage / audio, jobs, False, stem_progress, cancel)
        except StemwrightError as exc:  # name the session folder, not the temporary one
            if str(stage) not in str(exc):
                raise
            raise type(exc)(str(exc).replace(str(stage), str(target))) from exc
        tracks = []
        rate = 0
        for stem_id, path in zip(ids, written, strict=True):
            info = sf.info(str(path))
            rate = info.samplerate
            tracks.append(SessionTrack(
                get_stem(stem_id).name, get_stem(stem_id).color, path.name, info.channels,
                info.frames, mixer.channel(stem_id) if mixer is not None else None))
        text = ardour_session_xml(name, tracks, rate, tempo,
                                  mixer.master_db if mixer is not None else 0.0,
                                  title=song, artist=artist)
        session_file = stage / (name + SUFFIX)
        try:
            _text_writer(text)(session_file)
        except OSError as exc:
            raise AudioError(f"{target / session_file.name}: could not be written "
                             f"({_why(exc)}); check that the folder is writable and has "
                             "free space") from exc
        check_cancel(cancel)
        _put_in_place(stage, target, overwrite)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    if progress is not None:
        progress(1.0)
    return [target / (name + SUFFIX), *(target / audio / p.name for p in written)]


__all__ = ["DEFAULT_BPM", "MAX_GAIN", "SESSION_FORMATS", "SESSION_VERSION",
           "SUPERCLOCKS_PER_SECOND", "SessionTrack", "ardour_azimuth", "ardour_color",
           "ardour_gain", "ardour_session_xml", "export_ardour_session", "session_folder",
           "session_name"]
