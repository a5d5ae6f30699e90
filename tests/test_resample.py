"""Sample-rate conversion: soxr VHQ checked against torchaudio, exact lengths, tone round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchaudio.functional as F

from stemwright.models.audio.resample import fit_length, resample, resampled_length
from stemwright.models.benchmarks.resamplers import TORCHAUDIO_KAISER_BEST, run_resampler_benchmark

PAIRS = [(44100, 48000), (48000, 44100), (44100, 22050), (16000, 44100), (8000, 192000)]


def band_limited_noise(rng: np.random.Generator, n: int, sr: int, cutoff: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal((2, n)))
    spec[:, np.fft.rfftfreq(n, 1 / sr) > cutoff] = 0
    x = np.fft.irfft(spec, n)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def error_db(reference: np.ndarray, test: np.ndarray) -> float:
    err = np.sum((test.astype(np.float64) - reference) ** 2)
    return float(10 * np.log10(err / np.sum(reference.astype(np.float64) ** 2)))


@pytest.mark.parametrize("sr_in,sr_out", PAIRS[:4])
def test_matches_torchaudio_on_band_limited_audio(rng, sr_in, sr_out):
    """Our choice (soxr VHQ) agrees with the library it replaced, away from the edges."""
    x = band_limited_noise(rng, sr_in, sr_in, 0.35 * min(sr_in, sr_out))
    ours = resample(x, sr_in, sr_out)
    ref = F.resample(torch.from_numpy(x), sr_in, sr_out, **TORCHAUDIO_KAISER_BEST).numpy()
    assert ours.shape == ref.shape == (2, sr_out)
    edge = sr_out // 20  # the two pad the ends of a signal differently
    assert error_db(ref[:, edge:-edge], ours[:, edge:-edge]) < -95


@pytest.mark.parametrize("sr_in,sr_out", PAIRS)
@pytest.mark.parametrize("length", [0, 1, 2, 7, 1000, 44101])
def test_exact_output_length(sr_in, sr_out, length):
    x = np.ones((2, length), dtype=np.float32)
    y = resample(x, sr_in, sr_out)
    assert y.dtype == np.float32
    assert y.shape == (2, resampled_length(length, sr_in, sr_out))
    assert y.shape[1] == round(length * sr_out / sr_in)


def test_upsampling_round_trip_restores_the_length():
    for n in (1, 3, 441, 44099, 123457):
        up = resampled_length(n, 44100, 48000)
        assert resampled_length(up, 48000, 44100) == n


def test_tone_survives_44k_48k_44k():
    sr = 44100
    x = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(sr) / sr)).astype(np.float32)[None]
    back = resample(resample(x, sr, 48000), 48000, sr)
    assert back.shape == x.shape
    edge = 2000  # the tone starts and stops abruptly: not band-limited at the very ends
    assert -error_db(x[:, edge:-edge], back[:, edge:-edge]) > 120
    assert -error_db(x, back) > 70


def test_channels_are_independent_and_1d_works(rng):
    x = rng.standard_normal((3, 5000)).astype(np.float32)
    y = resample(x, 48000, 44100)
    np.testing.assert_array_equal(y[1], resample(x[1], 48000, 44100))
    assert resample(x[1], 48000, 44100).ndim == 1


def test_same_rate_and_bad_arguments():
    x = np.zeros((2, 10), dtype=np.float64)
    same = resample(x, 44100, 44100)
    assert same.dtype == np.float32 and same.shape == x.shape
    with pytest.raises(ValueError):
        resample(x, 44100, 48000, quality="ultra")
    with pytest.raises(ValueError):
        resample(x, 0, 48000)
    with pytest.raises(ValueError):
        resample(np.zeros((1, 2, 3)), 44100, 48000)


def test_fit_length():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert fit_length(x, 3) is x
    np.testing.assert_array_equal(fit_length(x, 2), x[:, :2])
    np.testing.assert_array_equal(fit_length(x, 5)[:, 3:], np.zeros((2, 2)))


def test_benchmark_report_is_json_and_complete():
    report = run_resampler_benchmark(seconds=0.5)
    json.dumps(report)
    assert set(report["results"]) == {"soxr_hq", "soxr_vhq", "torchaudio_kaiser_best"}
    assert report["choice"] in report["results"]
    for result in report["results"].values():
        assert set(result["speed_x_realtime"]) == {"44100->48000", "48000->44100"}
        assert all(v > 0 for v in result["speed_x_realtime"].values())
        assert result["alias_db"] < -60 and result["roundtrip_snr_db"] > 60
