"""Lossy outputs (MP3, M4A/AAC, Opus through PyAV): sample-accurate lengths, no lag, tags,
bitrate/VBR checks, and the exports and the export dialog that write them."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import pytest

from stemwright.models.audio.encode import LOSSY_FORMATS, encode_rate
from stemwright.models.audio.io import (
    OUTPUT_FORMATS,
    SAVE_FORMATS,
    audio_info,
    load_audio,
    save_audio,
)
from stemwright.models.audio.resample import resample, resampled_length
from stemwright.models.errors import AudioError, OutputExistsError, StemwrightError
from stemwright.models.remix.export import (
    export_daw_session,
    export_remix,
    export_song_minus,
    export_stems,
)
from stemwright.models.remix.mixer import MixerState

SR = 44100
TAGS = {"title": "Söng — 日本", "artist": "Beyoncé", "album": "Record", "comment": "Vocals",
        "tracknumber": "3"}


def signal(sr: int = SR, seconds: float = 0.5, channels: int = 2) -> np.ndarray:
    """Channel 0: a 1 kHz sine (for the SNR); the others: white noise (for the lag)."""
    n = int(sr * seconds) + 123  # not a whole number of codec frames
    t = np.arange(n) / sr
    rng = np.random.default_rng(7)
    x = [0.5 * np.sin(2 * np.pi * 1000 * t)]
    x += [0.2 * rng.standard_normal(n) for _ in range(channels - 1)]
    return np.stack(x).astype(np.float32)


def lag(x: np.ndarray, y: np.ndarray, search: int = 600) -> int:
    """How many samples `y` is late against `x` (cross-correlation)."""
    n = min(x.shape[-1], y.shape[-1])
    ref = x[search:n - search]
    scores = [float(np.dot(y[search + k:n - search + k], ref)) for k in range(-search, search)]
    return int(np.argmax(scores)) - search


def snr_db(x: np.ndarray, y: np.ndarray) -> float:
    n = min(x.shape[-1], y.shape[-1])
    x, y = x[1000:n - 1000], y[1000:n - 1000]
    return 10 * math.log10(float(np.sum(x ** 2)) / float(np.sum((x - y) ** 2)))


def one_line(exc: pytest.ExceptionInfo, *words: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and ";" in message, message
    for word in words:
        assert word in message, message


# -- save_audio: lengths, lag, quality, tags --------------------------------------------

@pytest.mark.parametrize("fmt,kwargs,min_snr", [
    ("mp3", {}, 40.0),                    # 320 kbit/s CBR (measured 80 dB)
    ("mp3", {"bitrate_kbps": 128}, 15.0),  # measured 26 dB
    ("mp3", {"vbr": 2}, 20.0),
    ("m4a", {}, 15.0),                    # measured 27-57 dB
    ("opus", {"bitrate_kbps": 96}, 15.0),  # measured 39-44 dB
])
@pytest.mark.parametrize("sr", [44100, 48000])
def test_lossy_round_trip_is_sample_accurate(tmp_path, fmt, kwargs, min_snr, sr):
    x = signal(sr)
    path = tmp_path / f"stem.{fmt}"
    start = time.monotonic()
    assert save_audio(path, x, sr, tags=TAGS, **kwargs) == path
    audio = load_audio(path)
    assert time.monotonic() - start < 10
    rate = 48000 if fmt == "opus" else sr  # Opus is always 48 kHz
    assert audio.samplerate == rate and audio.data.shape[0] == 2
    ref = resample(x, sr, rate) if rate != sr else x
    # measured: exactly the input length and no lag, for every format and rate
    assert audio.data.shape[1] == resampled_length(x.shape[1], sr, rate)
    assert lag(ref[1], audio.data[1]) == 0
    assert snr_db(ref[0], audio.data[0]) > min_snr
    assert {k: audio.tags.get(k) for k in TAGS} == TAGS
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_lossless_files_are_tagged_too(tmp_path, fmt):
    path = tmp_path / f"stem.{fmt}"
    save_audio(path, signal(), SR, tags={**TAGS, "title": "Söng"})
    assert audio_info(path).tags == {**TAGS, "title": "Söng"}


def test_mono_and_high_rates_are_resampled_to_what_the_codec_takes(tmp_path):
    x = signal(96000, channels=1)
    path = save_audio(tmp_path / "hi.mp3", x, 96000)
    audio = load_audio(path)
    assert audio.samplerate == 48000
    assert audio.data.shape == (1, resampled_length(x.shape[1], 96000, 48000))
    assert encode_rate("mp3", 88200) == 44100 and encode_rate("m4a", 96000) == 96000
    assert encode_rate("m4a", 192000) == 96000 and encode_rate("opus", 44100) == 48000
    assert encode_rate("mp3", 37800) == 44100


def test_bit_depth_is_ignored_for_lossy_formats(tmp_path):
    path = save_audio(tmp_path / "x.m4a", signal(), SR, bit_depth=16)
    assert audio_info(path).format == "M4A"


@pytest.mark.parametrize("name,kwargs,words", [
    ("x.mp3", {"bitrate_kbps": 8}, ("x.mp3", "32-320")),
    ("x.mp3", {"bitrate_kbps": 999}, ("32-320",)),
    ("x.opus", {"bitrate_kbps": 600}, ("6-510",)),
    ("x.mp3", {"vbr": 10}, ("0 (best)", "9")),
    ("x.mp3", {"vbr": 2, "bitrate_kbps": 192}, ("only one",)),
    ("x.m4a", {"vbr": 2}, ("no VBR", "32-320")),
    ("x.opus", {"vbr": 2}, ("no VBR",)),
    ("x.flac", {"bitrate_kbps": 192}, ("lossless",)),
    ("x.mp3", {"tags": {"lyrics": "la"}}, ("lyrics", "title")),
])
def test_bad_bitrate_vbr_or_tag_is_one_clear_line(tmp_path, name, kwargs, words):
    with pytest.raises(AudioError) as exc:
        save_audio(tmp_path / name, signal(), SR, **kwargs)
    one_line(exc, *words)
    assert list(tmp_path.iterdir()) == []


def test_too_many_channels_for_mp3(tmp_path):
    with pytest.raises(AudioError) as exc:
        save_audio(tmp_path / "x.mp3", signal(channels=3), SR)
    one_line(exc, "at most 2 channels")


def test_lossy_clipping_is_counted_and_overwrite_refused(tmp_path, caplog):
    x = signal()
    x[0, :10] = 1.5
    path = tmp_path / "loud.mp3"
    with caplog.at_level(logging.WARNING):
        save_audio(path, x, SR)
    assert "10 samples beyond full scale were clipped" in caplog.text
    assert np.max(np.abs(load_audio(path).data)) < 1.2
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        save_audio(path, signal(), SR)
    assert path.read_bytes() == before
    save_audio(path, signal(), SR, overwrite=True)
    assert path.read_bytes() != before
    assert [p.name for p in tmp_path.iterdir()] == ["loud.mp3"]


def test_formats_tables():
    assert set(SAVE_FORMATS) == {"wav", "flac"}  # lossless, with their bit depths
    assert OUTPUT_FORMATS == ("wav", "flac", "mp3", "m4a", "opus")
    for spec in LOSSY_FORMATS.values():
        assert spec.min_kbps <= spec.default_kbps <= spec.max_kbps
        assert all(spec.min_kbps <= k <= spec.max_kbps for k in spec.common_kbps)
    assert LOSSY_FORMATS["mp3"].vbr == (0, 9) and LOSSY_FORMATS["opus"].vbr is None


def test_m4a_frame_padding_is_not_decoded_as_audio(tmp_path):
    """Regression: FFmpeg decodes an AAC file's last frame whole, 355 samples too many
    here; load_audio stops at the edit list's length (FFmpeg's default writes it rounded
    to a millisecond: kept whole, so up to 1.5 ms of padding may remain)."""
    import av

    x = signal()
    path = tmp_path / "plain.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=SR, layout="stereo")
        frame = av.AudioFrame.from_ndarray(x, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = SR, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    n = load_audio(path).data.shape[1]
    assert x.shape[1] <= n <= x.shape[1] + 2 * math.ceil(SR / 1000)  # was + 355


# -- exports ----------------------------------------------------------------------------

@pytest.fixture
def stems(rng) -> dict[str, np.ndarray]:
    n = SR // 2 + 7
    return {s: (0.05 * rng.standard_normal((2, n))).astype(np.float32)
            for s in ("vocals", "drums", "bass", "other")}


@pytest.mark.parametrize("fmt,kwargs", [("mp3", {"bitrate_kbps": 192}),
                                        ("mp3", {"vbr": 0}), ("m4a", {}), ("opus", {})])
def test_export_stems_lossy_tagged_and_equal_length(tmp_path, stems, fmt, kwargs):
    paths = export_stems(stems, SR, tmp_path, "Song", format=fmt, artist="Band", **kwargs)
    assert [p.suffix for p in paths] == [f".{fmt}"] * 4
    rate = 48000 if fmt == "opus" else SR
    for stem, path in zip(stems, paths, strict=True):
        audio = load_audio(path)
        assert audio.samplerate == rate
        assert audio.data.shape == (2, resampled_length(SR // 2 + 7, SR, rate))
        assert audio.tags["title"] == "Song" and audio.tags["artist"] == "Band"
        assert audio.tags["comment"] == stem.capitalize()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_export_wav_tags_without_artist(tmp_path, stems):
    path = export_stems(stems, SR, tmp_path, "Song", which=["bass"])[0]
    assert audio_info(path).tags == {"title": "Song", "comment": "Bass"}


def test_remix_minus_and_daw_session_lossy(tmp_path, stems):
    state = MixerState.for_stems(stems)
    remix = export_remix(stems, SR, state, tmp_path / "r.m4a", format="m4a",
                         bitrate_kbps=128, song="Song")
    assert load_audio(remix).tags == {"title": "Song", "comment": "Remix"}
    minus = export_song_minus(stems, SR, ["vocals"], tmp_path / "m.mp3", format="mp3",
                              vbr=4, samplerate_out=48000)
    audio = load_audio(minus)
    assert audio.tags["comment"] == "minus Vocals"
    assert audio.data.shape[1] == resampled_length(SR // 2 + 7, SR, 48000)
    paths = export_daw_session(stems, SR, tmp_path / "daw", "Song", format="opus",
                               bitrate_kbps=96)
    text = paths[-1].read_text()
    assert "SAMPLERATE 48000" in text and "<SOURCE OPUS" in text and "Vocals.opus" in text


@pytest.mark.parametrize("kwargs,words", [
    ({"format": "mp3", "bitrate_kbps": 1000}, ("32-320",)),
    ({"format": "wav", "bitrate_kbps": 192}, ("lossless",)),
    ({"format": "opus", "vbr": 3}, ("no VBR",)),
    ({"format": "aac"}, ("mp3", "m4a", "opus")),
])
def test_export_refuses_bad_options_before_writing(tmp_path, stems, kwargs, words):
    with pytest.raises(StemwrightError) as exc:
        export_stems(stems, SR, tmp_path / "out", "Song", **kwargs)
    for word in words:
        assert word in str(exc.value)
    assert not (tmp_path / "out").exists()


# -- the export dialog -------------------------------------------------------------------

def _dialog(qtbot, tmp_path, stems, settings):
    from stemwright.desktop.dialogs import export as export_dialog

    d = export_dialog.ExportDialog(None, stems, SR, "Song", MixerState.for_stems(stems),
                                   settings, artist="Band")
    qtbot.addWidget(d)
    return d


def test_dialog_exports_mp3_and_remembers_it(qtbot, tmp_path, stems, monkeypatch):
    from PySide6.QtCore import QSettings

    from stemwright.desktop.dialogs import export as export_dialog

    errors: list[BaseException] = []
    monkeypatch.setattr(export_dialog, "show_exception",
                        lambda parent, exc, title="": errors.append(exc))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("export/folder", str(tmp_path / "out"))
    settings.setValue("export/subfolder", False)
    d = _dialog(qtbot, tmp_path, stems, settings)
    assert d.format() == "wav" and not d.bitrate_combo.isEnabled()
    assert d.depth_combo.isEnabled() and d.bitrate_kbps() is None
    d.format_combo.setCurrentIndex(d.format_combo.findData("mp3"))
    assert d.bitrate_combo.isEnabled() and not d.depth_combo.isEnabled()
    assert d.bitrate_kbps() == 320 and d.vbr() is None
    d.bitrate_combo.setCurrentIndex(d.bitrate_combo.findData(192))
    assert "Song - Vocals.mp3" in d.preview.text()
    d.set_mode("stems")
    with qtbot.waitSignal(d.exported, timeout=20000):
        assert d.start_export()
    qtbot.waitUntil(lambda: d.task is None, timeout=5000)
    assert errors == []
    assert sorted(p.name for p in d.written) == [f"Song - {s}.mp3" for s in
                                                 ("Bass", "Drums", "Other", "Vocals")]
    audio = load_audio(tmp_path / "out" / "Song - Vocals.mp3")
    assert audio.data.shape == (2, SR // 2 + 7)
    assert audio.tags["artist"] == "Band" and audio.tags["comment"] == "Vocals"
    assert settings.value("export/format") == "mp3"
    # the next dialog opens with MP3 at 192 kbit/s; FLAC keeps its own bit depth
    d.close()
    again = _dialog(qtbot, tmp_path, stems, settings)
    assert again.format() == "mp3" and again.bitrate_kbps() == 192
    again.bitrate_combo.setCurrentIndex(again.bitrate_combo.findData("V2"))
    assert again.vbr() == 2 and again.bitrate_kbps() is None
    again.format_combo.setCurrentIndex(again.format_combo.findData("flac"))
    assert again.bit_depth() == 24 and again.depth_combo.isEnabled()
    assert again.vbr() is None and not again.bitrate_combo.isEnabled()
    assert Path(again.folder()) == tmp_path / "out"
