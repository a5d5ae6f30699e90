"""Audio file reading and writing: every format, rate, layout and failure, on tiny files."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.audio import block_writer
from stemwright.models.audio import io as audio_io
from stemwright.models.audio.io import (
    SAVE_FORMATS,
    Audio,
    AudioInfo,
    audio_info,
    iter_blocks,
    load_audio,
    save_audio,
)
from stemwright.models.errors import (
    AudioError,
    Cancelled,
    OutputExistsError,
    UnsupportedFormatError,
)

SR = 44100


def tones(channels: int = 2, seconds: float = 0.5, sr: int = SR, amp: float = 0.4) -> np.ndarray:
    """float32 [C, T]: a different tone on each channel (440 Hz, 660 Hz, ...)."""
    t = np.arange(int(seconds * sr)) / sr
    return np.stack([amp * np.sin(2 * np.pi * 220 * (ch + 2) * t)
                     for ch in range(channels)]).astype(np.float32)


def write_m4a(path: Path, x: np.ndarray, sr: int = SR) -> None:
    """Encode [C, T] float32 as AAC in an .m4a with PyAV (FFmpeg's native AAC encoder)."""
    import av

    layout = {1: "mono", 2: "stereo", 6: "5.1"}[x.shape[0]]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=sr, layout=layout)
        for start in range(0, x.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, start:start + 1024]),
                                               format="fltp", layout=layout)
            frame.sample_rate = sr
            frame.pts = start  # timestamps let the muxer record the encoder delay (edit list)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def peak_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


def rms_db(x: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(np.square(x, dtype=np.float64))))


def assert_user_message(exc: pytest.ExceptionInfo, name: str) -> None:
    message = str(exc.value)
    assert name in message and "\n" not in message and ";" in message, message


# -- round trips of everything we write ---------------------------------------------------

@pytest.mark.parametrize("fmt,bits", [(f, b) for f, depths in SAVE_FORMATS.items()
                                      for b in depths])
def test_save_load_round_trip(tmp_path, rng, fmt, bits):
    x = (0.9 * rng.uniform(-1, 1, (2, 4000))).astype(np.float32)
    path = save_audio(tmp_path / f"out.{fmt}", x, SR, bit_depth=bits)
    assert path == tmp_path / f"out.{fmt}" and path.exists()
    audio = load_audio(path)
    assert audio.data.dtype == np.float32 and audio.data.shape == x.shape
    assert audio.samplerate == SR and audio.info.format == fmt.upper()
    assert audio.info.subtype == {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}[bits]
    err = np.max(np.abs(audio.data - x))
    if bits == 32:
        assert err == 0.0
    else:
        lsb = 2.0 ** -(bits - 1)
        assert err <= 1.5 * lsb  # rounding (0.5 LSB) + TPDF dither (at most 1 LSB)
    assert [p.name for p in tmp_path.iterdir()] == [f"out.{fmt}"]  # no temporary left over


def test_save_mono_from_1d_and_format_argument(tmp_path):
    x = tones(1)[0]
    path = save_audio(tmp_path / "mono.audio", x, SR, format="flac", bit_depth=16)
    info = audio_info(path)
    assert (info.format, info.channels, info.frames) == ("FLAC", 1, x.shape[0])


# -- loading every input format ------------------------------------------------------------

@pytest.mark.parametrize("kind", ["wav", "flac", "aiff", "ogg", "mp3", "m4a"])
def test_load_input_formats(tmp_path, kind):
    x = tones(2, seconds=1.0)
    path = tmp_path / f"in.{kind}"
    if kind == "m4a":
        write_m4a(path, x)
    elif kind == "ogg":
        sf.write(path, x.T, SR, format="OGG", subtype="VORBIS")
    elif kind == "mp3":
        sf.write(path, x.T, SR, format="MP3", subtype="MPEG_LAYER_III")
    else:
        sf.write(path, x.T, SR, subtype="PCM_16")
    info = audio_info(path)
    audio = load_audio(path)
    expected_format = {"wav": "WAV", "flac": "FLAC", "aiff": "AIFF", "ogg": "OGG",
                       "mp3": "MP3", "m4a": "M4A"}[kind]
    assert info.format == expected_format and info.subtype
    assert info.samplerate == SR and info.channels == 2
    assert audio.data.dtype == np.float32 and audio.data.shape[0] == 2
    n = audio.data.shape[1]
    # Lossy codecs add encoder delay/padding (AAC up to a few frames of 1024).
    assert abs(n - x.shape[1]) <= (0 if kind in ("wav", "flac", "aiff") else 4096)
    assert abs(info.frames - n) <= 2048
    assert audio.info.frames == n and audio.info.duration == pytest.approx(n / SR)
    for ch, freq in enumerate((440.0, 660.0)):
        assert abs(peak_freq(audio.data[ch], SR) - freq) < 3
        assert abs(rms_db(audio.data[ch]) - rms_db(x[ch])) < 1.0


def test_m4a_multichannel_and_blocks(tmp_path):
    x = tones(6, seconds=0.5)
    path = tmp_path / "surround.m4a"
    write_m4a(path, x)
    audio = load_audio(path)
    assert audio.data.shape[0] == 6 and audio.info.subtype == "aac"
    blocks = list(iter_blocks(path, 4000))
    assert all(b.shape == (6, 4000) for b in blocks[:-1]) and 0 < blocks[-1].shape[1] <= 4000
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), audio.data)


def test_m4a_encoder_delay_is_removed(tmp_path, rng):
    x = (0.2 * rng.standard_normal((2, SR))).astype(np.float32)
    path = tmp_path / "noise.m4a"
    write_m4a(path, x)
    y = load_audio(path).data
    assert x.shape[1] <= y.shape[1] < x.shape[1] + 1024  # only padding to a whole AAC frame
    lags = range(-2048, 2049, 1)
    window = slice(4096, 4096 + 8192)
    scores = [float(np.dot(y[0, 4096 + lag:4096 + lag + 8192], x[0, window])) for lag in lags]
    assert lags[int(np.argmax(scores))] == 0


@pytest.mark.parametrize("sr,fmt", [(8000, "flac"), (192000, "wav")])
def test_extreme_sample_rates(tmp_path, sr, fmt):
    x = tones(2, seconds=0.25, sr=sr, amp=0.3)
    path = tmp_path / f"rate.{fmt}"
    sf.write(path, x.T, sr, subtype="PCM_24")
    audio = load_audio(path)
    assert audio.samplerate == sr and audio.data.shape == x.shape
    np.testing.assert_allclose(audio.data, x, atol=2.0**-22)


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_channel_layouts_kept(tmp_path, channels):
    x = tones(channels, seconds=0.1)
    path = tmp_path / f"ch{channels}.wav"
    sf.write(path, x.T, SR, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.data.shape == (channels, x.shape[1])
    np.testing.assert_array_equal(audio.data, x)


@pytest.mark.parametrize("subtype,bits", [("PCM_16", 16), ("PCM_24", 24), ("PCM_32", 32),
                                          ("FLOAT", None), ("DOUBLE", None)])
def test_sample_formats(tmp_path, subtype, bits):
    x = tones(2, seconds=0.1)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, x.T, SR, subtype=subtype)
    audio = load_audio(path)
    assert audio.info.subtype == subtype and audio.data.dtype == np.float32
    tolerance = 2.0 ** -(bits - 1) if bits else 1e-7
    np.testing.assert_allclose(audio.data, x, atol=tolerance)


@pytest.mark.parametrize("fmt", ["flac", "wav"])
def test_tags(tmp_path, fmt):
    path = tmp_path / f"tagged.{fmt}"
    with sf.SoundFile(path, "w", SR, 2, subtype="PCM_16") as f:
        f.title, f.artist, f.album = "Blue in Green", "Miles Davis", "Kind of Blue"
        f.write(tones(2, 0.1).T)
    expected = {"title": "Blue in Green", "artist": "Miles Davis", "album": "Kind of Blue"}
    assert audio_info(path).tags == expected
    assert load_audio(path).tags == expected
    untagged = tmp_path / f"plain.{fmt}"
    sf.write(untagged, tones(1, 0.1).T, SR)
    assert audio_info(untagged).tags == {}


def test_load_resamples_progress_and_types(tmp_path):
    path = tmp_path / "song.wav"
    sf.write(path, tones(2, seconds=1.0).T, SR, subtype="PCM_16")
    seen: list[float] = []
    audio = load_audio(str(path), samplerate=48000, progress=seen.append)
    assert isinstance(audio, Audio) and isinstance(audio.info, AudioInfo)
    assert audio.samplerate == 48000 and audio.data.shape == (2, 48000)
    assert audio.info.samplerate == SR and audio.info.frames == SR  # the file, as decoded
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    assert abs(peak_freq(audio.data[0], 48000) - 440.0) < 2


def test_cancel_raises_cancelled(tmp_path):
    path = tmp_path / "long.flac"
    sf.write(path, tones(2, seconds=3.0).T, SR)
    with pytest.raises(Cancelled, match="long.flac"):
        load_audio(path, cancel=lambda: True)


# -- streaming -------------------------------------------------------------------------------

def test_iter_blocks_streams_and_matches_load(tmp_path, monkeypatch):
    x = tones(2, seconds=1.0)
    path = tmp_path / "stream.flac"
    sf.write(path, x.T, SR, subtype="PCM_24")
    reads: list[int] = []
    original_read = sf.SoundFile.read

    def counting_read(self, frames=-1, *args, **kwargs):
        reads.append(frames)
        return original_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", counting_read)
    blocks = iter_blocks(path, 10000)
    first = next(blocks)
    assert first.shape == (2, 10000) and first.dtype == np.float32
    assert reads == [10000]  # one block read so far, not the whole file
    rest = list(blocks)
    assert len(rest) + 1 == math.ceil(x.shape[1] / 10000)
    assert all(b.shape == (2, 10000) for b in rest[:-1])
    assert max(reads) == 10000  # never asked for more than a block
    np.testing.assert_array_equal(np.concatenate([first, *rest], axis=1), load_audio(path).data)


def test_iter_blocks_checks_the_file_up_front(tmp_path):
    with pytest.raises(AudioError, match="missing.wav"):
        iter_blocks(tmp_path / "missing.wav", 1024)  # raised by the call, not by next()
    path = tmp_path / "ok.wav"
    sf.write(path, tones(1, 0.1).T, SR)
    with pytest.raises(ValueError):
        iter_blocks(path, 0)


def test_iter_blocks_reports_truncation(tmp_path):
    path = tmp_path / "cut.mp3"
    sf.write(path, tones(2, seconds=2.0).T, SR, format="MP3")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated"):
        for _ in iter_blocks(path, 8192):
            pass


# -- writing details --------------------------------------------------------------------------

def test_dither_is_applied_to_quiet_audio(tmp_path):
    lsb = 2.0**-15
    t = np.arange(SR) / SR
    quiet = (0.4 * lsb * np.sin(2 * np.pi * 100 * t)).astype(np.float32)[None]
    plain = load_audio(save_audio(tmp_path / "plain.wav", quiet, SR, bit_depth=16,
                                  dither=False)).data[0]
    assert not plain.any()  # rounding alone turns the whole signal into silence
    dithered = load_audio(save_audio(tmp_path / "dither.wav", quiet, SR, bit_depth=16)).data[0]
    assert np.count_nonzero(dithered) > SR // 4
    assert np.max(np.abs(dithered - quiet[0])) <= 1.5 * lsb
    # The tone survives in the dithered file, buried in noise but linearly there.
    gain = float(np.dot(dithered, quiet[0]) / np.dot(quiet[0], quiet[0]))
    assert 0.8 < gain < 1.2
    again = load_audio(save_audio(tmp_path / "again.wav", quiet, SR, bit_depth=16)).data[0]
    np.testing.assert_array_equal(again, dithered)  # seeded: same input, same file


@pytest.mark.parametrize("bits", [16, 32])
def test_values_beyond_full_scale_are_clipped(tmp_path, caplog, bits):
    x = np.array([[0.5, 1.5, -2.0, 1.0, -1.0]], dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger=audio_io.__name__):
        path = save_audio(tmp_path / "loud.wav", x, SR, bit_depth=bits, dither=False)
    y = load_audio(path).data[0]
    assert np.max(y) <= 1.0 and np.min(y) >= -1.0
    assert y[1] == pytest.approx(1.0, abs=2.0**-15) and y[2] == -1.0
    assert "2 samples beyond full scale were clipped" in caplog.text


def test_overwrite_refused_unless_asked(tmp_path):
    path = tmp_path / "stem.wav"
    save_audio(path, tones(1, 0.1), SR)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError) as exc:
        save_audio(path, tones(2, 0.2), SR)
    assert_user_message(exc, "stem.wav")
    assert path.read_bytes() == before
    save_audio(path, tones(2, 0.2), SR, overwrite=True)
    assert audio_info(path).channels == 2
    assert [p.name for p in tmp_path.iterdir()] == ["stem.wav"]


@pytest.mark.parametrize("exc_type", [OSError, RuntimeError, KeyboardInterrupt])
def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch, exc_type):
    original = block_writer.quantise
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise exc_type("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(block_writer, "WRITE_BLOCK", 1000)
    monkeypatch.setattr(block_writer, "quantise", failing)
    expected = AudioError if exc_type is OSError else exc_type
    with pytest.raises(expected):
        save_audio(tmp_path / "half.flac", tones(2, 0.5), SR, bit_depth=16)
    assert len(calls) == 2  # it failed half-way through writing
    assert list(tmp_path.iterdir()) == []


def test_failed_replace_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "mix.wav"
    save_audio(path, tones(1, 0.1), SR)
    before = path.read_bytes()

    def locked(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(audio_io.os, "replace", locked)
    with pytest.raises(AudioError) as exc:
        save_audio(path, tones(2, 0.1), SR, overwrite=True)
    assert_user_message(exc, "mix.wav")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["mix.wav"]


@pytest.mark.parametrize("name,kwargs,error", [
    ("x.flac", {"bit_depth": 32}, AudioError),
    ("x.wav", {"bit_depth": 8}, AudioError),
    ("x.aiff", {}, UnsupportedFormatError),  # MP3/M4A/Opus are saved: see test_encode.py
    ("x.wav", {"format": "ogg"}, UnsupportedFormatError),
    ("x.wav", {"format": "flac"}, AudioError),
    ("x.mp3", {"bitrate_kbps": 8}, AudioError),
    ("x.wav", {"bitrate_kbps": 192}, AudioError),
])
def test_save_rejects_bad_format_or_depth(tmp_path, name, kwargs, error):
    with pytest.raises(error) as exc:
        save_audio(tmp_path / name, tones(1, 0.1), SR, **kwargs)
    assert_user_message(exc, name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("data,samplerate", [
    (np.zeros((2, 0), np.float32), SR),
    (np.zeros((44100, 2), np.float32), SR),  # [T, C] by mistake
    (np.array([[0.0, np.nan]], np.float32), SR),
    (np.zeros((1, 10), np.int16), SR),
    (np.zeros((1, 10), np.float32), 4000),
])
def test_save_rejects_bad_data(tmp_path, data, samplerate):
    with pytest.raises(AudioError) as exc:
        save_audio(tmp_path / "bad.wav", data, samplerate)
    assert_user_message(exc, "bad.wav")
    assert list(tmp_path.iterdir()) == []


def test_save_into_missing_folder(tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        save_audio(tmp_path / "nowhere" / "x.wav", tones(1, 0.1), SR)


# -- errors when reading ------------------------------------------------------------------------

def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _make_bad(tmp_path: Path, case: str) -> Path:
    x = tones(2, seconds=1.0)
    if case == "empty":
        path = tmp_path / "empty.wav"
        path.write_bytes(b"")
    elif case == "zero_length":
        path = tmp_path / "silence.wav"
        sf.write(path, np.zeros((0, 2), np.float32), SR)
    elif case == "truncated_wav":
        path = tmp_path / "cut.wav"
        sf.write(path, x.T, SR)
        _truncate(path)
    elif case == "truncated_flac":
        path = tmp_path / "cut.flac"
        sf.write(path, x.T, SR)
        _truncate(path)
    elif case == "truncated_mp3":
        path = tmp_path / "cut.mp3"
        sf.write(path, x.T, SR, format="MP3")
        _truncate(path)
    elif case == "truncated_m4a":
        path = tmp_path / "cut.m4a"
        write_m4a(path, x)
        _truncate(path)
    elif case == "garbage_wav":
        path = tmp_path / "noise.wav"
        path.write_bytes(np.random.default_rng(5).bytes(5000))
    elif case == "corrupt_header":
        path = tmp_path / "broken.wav"
        path.write_bytes(b"RIFF\x00\x10\x00\x00WAVEfmt " + bytes(range(40)))
    elif case == "text_mp3":
        path = tmp_path / "notes.mp3"
        path.write_text("these are my lyrics, not audio\n" * 30)
    elif case == "xyz":
        path = tmp_path / "data.xyz"
        path.write_bytes(b"\x01\x02\x03 something else entirely" * 50)
    elif case == "missing":
        path = tmp_path / "gone.flac"
    elif case == "directory":
        path = tmp_path / "folder.wav"
        path.mkdir()
    elif case == "rate_too_low":
        path = tmp_path / "low.wav"
        sf.write(path, x.T[:4000], 4000)
    elif case == "rate_too_high":
        path = tmp_path / "high.wav"
        sf.write(path, x.T[:4000], 384000)
    else:
        raise AssertionError(case)
    return path


@pytest.mark.parametrize("case,error,words", [
    ("empty", AudioError, "empty"),
    ("zero_length", AudioError, "no audio"),
    ("truncated_wav", AudioError, "truncated"),
    ("truncated_flac", AudioError, "damaged or truncated"),
    ("truncated_mp3", AudioError, "truncated"),
    ("truncated_m4a", AudioError, "damaged or incomplete"),
    ("garbage_wav", UnsupportedFormatError, "not an audio format"),
    ("corrupt_header", AudioError, "damaged"),
    ("text_mp3", UnsupportedFormatError, "not an audio format"),
    ("xyz", UnsupportedFormatError, "not an audio format"),
    ("missing", AudioError, "not found"),
    ("directory", AudioError, "folder"),
    ("rate_too_low", AudioError, "4000 Hz"),
    ("rate_too_high", AudioError, "384000 Hz"),
])
def test_read_errors_are_clear(tmp_path, case, error, words):
    path = _make_bad(tmp_path, case)
    for call in (lambda: load_audio(path), lambda: list(iter_blocks(path, 4096))):
        with pytest.raises(error) as exc:
            call()
        assert_user_message(exc, path.name)
        assert words in str(exc.value)
        assert not str(exc.value).startswith("Error")  # not libsndfile's own words
    if case not in ("truncated_flac", "truncated_mp3"):  # those need a full decode to see
        with pytest.raises(error):
            audio_info(path)


def test_load_rejects_bad_target_rate(tmp_path):
    path = tmp_path / "ok.wav"
    sf.write(path, tones(1, 0.1).T, SR)
    with pytest.raises(AudioError, match="1000000 Hz"):
        load_audio(path, samplerate=1_000_000)


def test_pyav_takes_over_when_libsndfile_refuses(tmp_path, monkeypatch):
    x = tones(2, seconds=1.0)
    path = tmp_path / "odd.mp3"
    sf.write(path, x.T, SR, format="MP3")
    direct = load_audio(path)

    def refuse(p):
        raise audio_io._Refused("libsndfile: pretend it cannot parse this MP3")

    monkeypatch.setattr(audio_io, "_probe_soundfile", refuse)
    audio = load_audio(path)
    assert audio.info.format == "MP3" and audio.info.subtype.startswith("mp3")
    assert audio.data.shape[0] == 2 and abs(audio.data.shape[1] - x.shape[1]) <= 2048
    assert abs(peak_freq(audio.data[1], SR) - 660.0) < 3
    assert abs(rms_db(audio.data) - rms_db(direct.data)) < 0.1


def test_content_decides_not_the_name(tmp_path):
    path = tmp_path / "actually_a_wav.xyz"
    sf.write(path, tones(2, 0.1).T, SR, format="WAV", subtype="PCM_16")
    info = audio_info(path)
    assert (info.format, info.channels) == ("WAV", 2)
    assert hash(info) == hash(audio_info(path))  # usable as a dict key despite the tags


def test_extensible_wav_is_reported_as_wav(tmp_path):
    path = tmp_path / "wavex.wav"
    sf.write(path, tones(6, 0.1).T, SR, format="WAVEX", subtype="PCM_24")
    info = audio_info(path)
    assert (info.format, info.subtype, info.channels) == ("WAV", "PCM_24", 6)


def test_dither_differs_between_different_stems(tmp_path):
    quiet = np.full((1, 20000), 1e-6, dtype=np.float32)
    a = load_audio(save_audio(tmp_path / "a.wav", quiet, SR, bit_depth=16)).data
    b = load_audio(save_audio(tmp_path / "b.wav", quiet * 1.5, SR, bit_depth=16)).data
    assert np.corrcoef(a[0], b[0])[0, 1] < 0.1
