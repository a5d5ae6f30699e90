"""NI Stems (`.stem.mp4`) files: issue 18. Our six stems fold into NI's four, the file has
the layout Traktor, Mixxx and stempeg read (five stereo AAC tracks, the mix the only
enabled one, JSON in moov/udta/stem) and reads back sample-aligned at the exact length."""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path

import av
import numpy as np
import pytest

from stemwright.models.errors import AudioError, Cancelled, OutputExistsError
from stemwright.models.remix import nistems
from stemwright.models.remix.nistems import (
    NI_STEMS,
    fold_stems,
    read_ni_stems,
    read_stem_metadata,
    write_ni_stems,
)

SR = 44100
T = SR + 333  # not a multiple of the 1024-sample AAC frame
FREQS = {"vocals": 1320.0, "drums": 110.0, "bass": 165.0, "electric_guitar": 440.0,
         "wind": 660.0, "other": 330.0}


def _sines(n: int = T, sr: int = SR) -> dict[str, np.ndarray]:
    t = np.arange(n) / sr
    return {k: np.stack([0.2 * np.sin(2 * np.pi * f * t),
                         0.15 * np.sin(2 * np.pi * f * t + 0.3)]).astype(np.float32)
            for k, f in FREQS.items()}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _boxes(buf: bytes, start: int, end: int) -> dict[bytes, list[tuple[int, int]]]:
    """Direct children (type -> [(payload start, end)]) the way Mixxx walks them."""
    out: dict[bytes, list[tuple[int, int]]] = {}
    pos = start
    while end - pos >= 8:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", buf, pos + 8)[0], 16
        assert size >= header and pos + size <= end
        out.setdefault(kind, []).append((pos + header, pos + size))
        pos += size
    return out


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray], np.ndarray]:
    stems = _sines()
    mix = np.sum(list(stems.values()), axis=0)
    path = tmp_path_factory.mktemp("ni") / "song.stem.mp4"
    start = time.monotonic()
    write_ni_stems(path, mix, stems, SR, tags={"title": "Sines", "artist": "Stemwright"})
    assert time.monotonic() - start < 20
    return path, stems, mix


def test_round_trip_tracks_in_order_aligned_and_exact_length(song):
    path, stems, mix = song
    ref = fold_stems(stems)
    got = read_ni_stems(path)
    assert got.samplerate == SR
    # the edit list records the encoder delay and the length: exact, not rounded to frames
    assert got.mix.shape == (2, T)
    assert list(got.stems) == list(NI_STEMS)
    assert _corr(got.mix, mix) > 0.99
    for name, audio in got.stems.items():
        assert audio.shape == (2, T) and audio.dtype == np.float32
        for other_name, source in ref.items():
            c = _corr(audio, source)
            assert (c > 0.99) if other_name == name else (abs(c) < 0.05), (name, other_name)
    # other = electric guitar + wind + other, each present in it
    for sid in ("electric_guitar", "wind", "other"):
        assert _corr(got.stems["other"], stems[sid]) > 0.5


def test_raw_decode_is_padded_to_whole_aac_frames(song):
    """What the format allows: priming is trimmed by the edit list, but a reader that
    ignores the declared length gets up to one 1024-sample frame of padding at the end."""
    path, _, _ = song
    with av.open(os.fspath(path)) as c:
        lengths = [0] * len(c.streams.audio)
        for packet in c.demux(*c.streams.audio):
            for frame in packet.decode():
                lengths[packet.stream.index] += frame.samples
        declared = [int(s.duration * s.time_base * s.rate) for s in c.streams.audio]
    assert declared == [T] * 5
    assert all(T <= n < T + 1024 for n in lengths), lengths


def test_file_layout_matches_what_players_read(song):
    path, _, _ = song
    buf = path.read_bytes()
    top = _boxes(buf, 0, len(buf))
    assert buf[4:8] == b"ftyp" and buf[8:12] == b"M4A "
    ftyp = buf[top[b"ftyp"][0][0]:top[b"ftyp"][0][1]]
    assert b"isom" in ftyp[8:]
    assert top[b"moov"][0][0] < top[b"mdat"][0][0]  # moov first, as in NI's own files
    moov = _boxes(buf, *top[b"moov"][0])
    udta = _boxes(buf, *moov[b"udta"][0])
    (start, end), = udta[b"stem"]
    meta = json.loads(buf[start:end].decode("utf-8"))
    assert meta["version"] == 1
    assert [s["name"] for s in meta["stems"]] == ["Drums", "Bass", "Other", "Vocals"]
    assert all(len(s["color"]) == 7 and s["color"][0] == "#" and int(s["color"][1:], 16) >= 0
               for s in meta["stems"])
    dsp = meta["mastering_dsp"]
    assert dsp["compressor"]["enabled"] is False and dsp["limiter"]["enabled"] is False
    assert b"meta" in udta  # the tags live beside it
    # track headers: the mix enabled, the stems not, alternate group 0 (as NI's own files)
    flags, groups = [], []
    for trak in moov[b"trak"]:
        (h0, _), = _boxes(buf, *trak)[b"tkhd"]
        assert buf[h0] == 0
        flags.append(int.from_bytes(buf[h0 + 1:h0 + 4], "big") & 1)
        groups.append(struct.unpack_from(">h", buf, h0 + 34)[0])
    assert flags == [1, 0, 0, 0, 0] and groups == [0] * 5
    # stempeg's Info and Mixxx's SoundSourceSTEM: 5 audio streams, all stereo, one rate,
    # a known duration each
    with av.open(os.fspath(path)) as c:
        audio = list(c.streams.audio)
        assert len(audio) == 5 and len(c.streams) == 5
        assert {s.codec_context.name for s in audio} == {"aac"}
        assert {s.channels for s in audio} == {2} and {s.rate for s in audio} == {SR}
        assert all(s.duration for s in audio)
        assert [s.metadata.get("handler_name") for s in audio] == [
            "Mix", "Drums", "Bass", "Other", "Vocals"]
        assert c.metadata.get("title") == "Sines"


def test_48k_mono_and_caller_arrays_untouched(tmp_path, caplog):
    n = 24000
    rng = np.random.default_rng(1)
    stems = {k: (0.1 * rng.standard_normal(n)).astype(np.float32)
             for k in ("vocals", "drums", "bass", "other")}  # a 4-stem model, mono
    stems["drums"][100] = 1.5  # clipped in the file, not in our array
    before = {k: v.copy() for k, v in stems.items()}
    mix = np.sum(list(stems.values()), axis=0)
    write_ni_stems(tmp_path / "a.stem.mp4", mix, stems, 48000, colors={"vocals": "#ff0000"})
    assert all(np.array_equal(before[k], stems[k]) for k in stems)
    assert "samples beyond full scale were clipped" in caplog.text
    got = read_ni_stems(tmp_path / "a.stem.mp4")
    assert got.samplerate == 48000 and got.mix.shape == (2, n)
    assert got.metadata["stems"][3]["color"] == "#FF0000"
    for name in NI_STEMS:  # noise: the lag is unambiguous, and it is zero
        x, y = got.stems[name][0], stems[name]
        lags = range(-64, 65)
        best = max(lags, key=lambda d: np.dot(x[2000 + d:20000 + d], y[2000:20000]))
        assert best == 0 and _corr(got.stems[name][1], y) > 0.9  # white noise: AAC cuts highs


def test_refuses_to_overwrite_unless_asked(song, tmp_path):
    path = tmp_path / "x.stem.mp4"
    path.write_bytes(b"keep me")
    stems = _sines(4096)
    mix = np.sum(list(stems.values()), axis=0)
    with pytest.raises(OutputExistsError, match="x.stem.mp4 already exists"):
        write_ni_stems(path, mix, stems, SR)
    assert path.read_bytes() == b"keep me"
    write_ni_stems(path, mix, stems, SR, overwrite=True)
    assert read_ni_stems(path).mix.shape == (2, 4096)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.stem.mp4"]


def test_cancel_leaves_nothing_and_progress_is_reported(tmp_path):
    stems = _sines(SR * 2)
    mix = np.sum(list(stems.values()), axis=0)
    seen: list[float] = []
    with pytest.raises(Cancelled, match="writing x.stem.mp4 was cancelled"):
        write_ni_stems(tmp_path / "x.stem.mp4", mix, stems, SR, progress=seen.append,
                       cancel=lambda: len(seen) >= 1)
    assert seen == [0.0] and list(tmp_path.iterdir()) == []
    seen.clear()
    write_ni_stems(tmp_path / "x.stem.mp4", mix, stems, SR, progress=seen.append)
    assert seen == sorted(seen) and len(seen) > 2 and seen[-1] == 1.0


@pytest.mark.parametrize(("drop", "needed"), [
    (("vocals",), "vocals"), (("drums", "bass"), "drums, bass"),
    (("electric_guitar", "wind", "other"), "other")])
def test_missing_stems_are_refused_not_silenced(tmp_path, drop, needed):
    stems = {k: v for k, v in _sines(4096).items() if k not in drop}
    mix = np.sum(list(stems.values()), axis=0)
    with pytest.raises(AudioError, match=f"missing: {needed}"):
        write_ni_stems(tmp_path / "x.stem.mp4", mix, stems, SR)
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_are_refused(tmp_path):
    stems = _sines(4096)
    mix = np.sum(list(stems.values()), axis=0)
    out = tmp_path / "x.stem.mp4"
    with pytest.raises(AudioError, match="44100 or 48000 Hz, not 22050"):
        write_ni_stems(out, mix, stems, 22050)
    with pytest.raises(AudioError, match="unknown stem 'piano'"):
        write_ni_stems(out, mix, {**stems, "piano": stems["other"]}, SR)
    with pytest.raises(AudioError, match="mix is 4000 samples long"):
        write_ni_stems(out, mix[:, :4000], stems, SR)
    with pytest.raises(AudioError, match="#RRGGBB"):
        write_ni_stems(out, mix, stems, SR, colors={"drums": "red"})
    bad = dict(stems, bass=np.full((2, 4096), np.nan, np.float32))
    with pytest.raises(AudioError, match="NaN"):
        write_ni_stems(out, mix, bad, SR)
    assert list(tmp_path.iterdir()) == []


def _copy_with_stem_box(src: Path, dst: Path, payload: bytes) -> None:
    dst.write_bytes(src.read_bytes())
    nistems._put_stem_box(dst, payload)


def test_corrupt_manifest_is_one_line_error(song, tmp_path):
    path, _, _ = song
    broken = tmp_path / "broken.stem.mp4"
    _copy_with_stem_box(path, broken, b'{"version": 1, "stems": [')
    with pytest.raises(AudioError) as err:
        read_ni_stems(broken)
    assert "broken.stem.mp4" in str(err.value) and "not valid JSON" in str(err.value)
    assert "\n" not in str(err.value)
    _copy_with_stem_box(path, broken, b'["not", "an", "object"]')
    with pytest.raises(AudioError, match="no list of stems"):
        read_stem_metadata(broken)


def test_oversized_manifest_is_refused_before_reading_it(song, tmp_path):
    path, _, _ = song
    big = tmp_path / "big.stem.mp4"
    _copy_with_stem_box(path, big, b" " * (nistems.MAX_STEM_BOX + 1))
    start = time.monotonic()
    with pytest.raises(AudioError, match="over the 1048576 we accept"):
        read_ni_stems(big)
    assert time.monotonic() - start < 5


def test_box_sizes_that_lie_are_reported(song, tmp_path):
    path, _, _ = song
    buf = bytearray(path.read_bytes())
    moov = buf.index(b"moov") - 4
    struct.pack_into(">I", buf, moov, len(buf))  # runs past the end of the file
    bad = tmp_path / "bad.stem.mp4"
    bad.write_bytes(bytes(buf))
    with pytest.raises(AudioError, match="bad.stem.mp4: the MP4 structure is damaged"):
        read_stem_metadata(bad)


def _plain_five_track_m4a(path: Path, faststart: bool, codec: str = "aac") -> None:
    """Five tracks written by PyAV alone (no stem box); optionally moov first."""
    options = {"movflags": "faststart"} if faststart else {}
    stems = _sines(8192)
    with av.open(os.fspath(path), "w", format="ipod", options=options) as out:
        streams = [out.add_stream(codec, rate=SR, layout="stereo") for _ in range(5)]
        for st, data in zip(streams, list(stems.values())[:5], strict=True):
            if codec == "alac":
                frame = av.AudioFrame.from_ndarray((data * 32767).astype(np.int16),
                                                   format="s16p", layout="stereo")
            else:
                frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = SR, 0
            out.mux(st.encode(frame))
        for st in streams:
            out.mux(st.encode(None))


def test_not_an_ni_stems_file(tmp_path):
    plain = tmp_path / "plain.m4a"
    _plain_five_track_m4a(plain, faststart=False)
    with pytest.raises(AudioError, match="plain.m4a: is not an NI Stems file"):
        read_ni_stems(plain)
    with pytest.raises(AudioError, match="does not exist"):
        read_ni_stems(tmp_path / "nothing.stem.mp4")
    text = tmp_path / "notes.stem.mp4"
    text.write_bytes(b"first line\nsecond line\n" * 10)
    with pytest.raises(AudioError, match="notes.stem.mp4: is not an NI Stems file .not an MP4"):
        read_ni_stems(text)


@pytest.mark.parametrize("faststart", [True, False])
def test_stem_box_insertion_keeps_every_sample(tmp_path, faststart):
    """With moov first (FFmpeg's faststart, our layout) growing or shrinking it must shift
    every chunk offset, or each track would decode garbage; with moov last nothing moves.
    Checked sample for sample."""
    path = tmp_path / "fast.m4a"
    _plain_five_track_m4a(path, faststart=faststart)
    buf = path.read_bytes()
    top = _boxes(buf, 0, len(buf))
    assert (top[b"moov"][0][0] < top[b"mdat"][0][0]) == faststart

    def decode(p: Path) -> list[np.ndarray]:
        with av.open(os.fspath(p)) as c:
            parts: dict[int, list[np.ndarray]] = {s.index: [] for s in c.streams.audio}
            for packet in c.demux(*c.streams.audio):
                for frame in packet.decode():
                    parts[packet.stream.index].append(frame.to_ndarray())
        return [np.concatenate(v, axis=1) for v in parts.values()]

    before = decode(path)
    manifest = json.dumps(nistems.ni_stems_metadata()).encode()
    nistems._put_stem_box(path, manifest)  # grows moov
    assert read_stem_metadata(path)["stems"][0]["name"] == "Drums"
    assert all(np.array_equal(a, b) for a, b in zip(before, decode(path), strict=True))
    nistems._put_stem_box(path, b'{"version":1,"stems":[]}')  # replaces it: moov shrinks
    assert read_stem_metadata(path) == {"version": 1, "stems": []}
    assert all(np.array_equal(a, b) for a, b in zip(before, decode(path), strict=True))
    nistems._verify(path, b'{"version":1,"stems":[]}')


def test_reads_alac_stems_as_stemgen_writes_them(tmp_path):
    """stemgen's default NI Stems codec is ALAC (integer samples)."""
    path = tmp_path / "alac.stem.m4a"
    _plain_five_track_m4a(path, faststart=True, codec="alac")
    nistems._put_stem_box(path, json.dumps(nistems.ni_stems_metadata()).encode())
    got = read_ni_stems(path)
    sources = list(_sines(8192).values())
    assert got.mix.shape == (2, 8192) and got.mix.dtype == np.float32
    assert np.abs(got.mix - sources[0]).max() < 1e-3  # lossless but for 16-bit rounding
    assert np.abs(got.stems["vocals"] - sources[4]).max() < 1e-3
