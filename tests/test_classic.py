"""The classic (HPSS + REPET-SIM) separator through the base-class pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import median_filter as scipy_median

from stemwright.models.classic.classic import ClassicSeparator, median_filter
from stemwright.models.errors import Cancelled
from stemwright.models.stems import FOUR_STEMS
from stemwright.models.synthetic.test_songs import synth_song

SR = 44100


@pytest.fixture(scope="module")
def song() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return synth_song(8.0, SR, seed=2)


@pytest.fixture(scope="module")
def separated(song):
    mix, _ = song
    return ClassicSeparator(device="cpu").separate(mix, SR)


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.vdot(a, b) / np.sqrt(np.vdot(a, a) * np.vdot(b, b) + 1e-20))


def band_fraction(x: np.ndarray, lo: float, hi: float, samplerate: int = SR) -> float:
    spec = np.abs(np.fft.rfft(x.mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / samplerate)
    return float(spec[(freqs >= lo) & (freqs < hi)].sum() / spec.sum())


def test_model_description():
    sep = ClassicSeparator()
    assert sep.name == "classic" and sep.mapping is FOUR_STEMS
    assert sep.samplerate == 44100 and 20.0 <= sep.default_segment <= 30.0
    assert sep.overlap == 0.25 and sep.segment_shrinks_memory
    assert sep.device.type == "cpu"
    assert sep.mapping.unavailable == ("electric_guitar", "wind")


def test_stems_sum_to_the_mix(song, separated):
    mix, _ = song
    assert separated.model == "classic"
    assert separated.unavailable == ("electric_guitar", "wind")
    assert tuple(separated.stems) == ("vocals", "drums", "bass", "other")
    assert separated.residual_in_other
    assert np.abs(separated.sum() - mix).max() < 1e-5
    # the masks add up to one: hardly anything was left for the residual step
    assert separated.residual_db < -60


def test_drums_stem_holds_the_drums_not_the_bass(song, separated):
    _, truth = song
    drums = separated.stems["drums"]
    assert corr(drums, truth["drums"]) > 0.5
    assert corr(drums, truth["drums"]) > 2 * corr(drums, truth["bass"])
    assert corr(drums, truth["drums"]) > 3 * corr(drums, truth["vocals"])


def test_bass_stem_is_low_and_vocals_are_the_voice(song, separated):
    _, truth = song
    assert band_fraction(separated.stems["bass"], 0, 300) > 0.95
    vocals = separated.stems["vocals"]
    assert corr(vocals, truth["vocals"]) > 0.6
    assert corr(vocals, truth["vocals"]) > 3 * max(corr(vocals, truth[k])
                                                   for k in ("drums", "bass", "other"))


@pytest.mark.parametrize(("channels", "samplerate"),
                         [(1, 44100), (2, 44100), (2, 48000), (2, 22050), (1, 22050)])
def test_output_matches_the_input_layout(channels, samplerate):
    mix, _ = synth_song(2.5, samplerate, seed=1)
    if channels == 1:
        mix = mix.mean(axis=0, keepdims=True)
    result = ClassicSeparator(segment=20.0).separate(mix, samplerate)
    assert result.samplerate == samplerate
    for stem in result.stems.values():
        assert stem.shape == mix.shape and stem.dtype == np.float32
        assert np.isfinite(stem).all()
    assert np.abs(result.sum() - mix).max() < 1e-5


def test_short_and_silent_input():
    sep = ClassicSeparator()
    for mix in (np.zeros((2, 4410), np.float32),
                np.random.default_rng(0).normal(0, 0.1, (2, 100)).astype(np.float32)):
        result = sep.separate(mix, SR)
        assert all(s.shape == mix.shape for s in result.stems.values())
        assert np.abs(result.sum() - mix).max() < 1e-5


def test_forward_pass_shapes_and_sum():
    sep = ClassicSeparator()
    (p,) = sep.passes()
    x = torch.from_numpy(synth_song(1.5, SR, seed=4)[0])
    x = torch.stack([x, 0.5 * x])
    y = p.forward(x)
    assert y.shape == (2, 4, 2, x.shape[-1]) and y.dtype == torch.float32
    assert torch.allclose(y.sum(dim=1), x, atol=1e-5)


def test_chunked_progress_reaches_one_and_cancel_stops(song):
    mix, _ = song
    seen = []
    sep = ClassicSeparator(segment=3.0)
    sep.separate(mix, SR, progress=seen.append)
    fractions = [p.fraction for p in seen]
    assert fractions[-1] == pytest.approx(1.0)
    assert fractions == sorted(fractions) and len(fractions) >= 4
    with pytest.raises(Cancelled):
        sep.separate(mix, SR, cancel=lambda: True)
    calls = []

    def cancel_later() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        sep.separate(mix, SR, cancel=cancel_later)


@pytest.mark.parametrize(("size", "axis"), [(7, 0), (31, 1), (5, 1)])
def test_median_filter_matches_scipy(size, axis):
    x = np.random.default_rng(3).random((40, 57)).astype(np.float32)
    footprint = (size, 1) if axis == 0 else (1, size)
    np.testing.assert_array_equal(median_filter(x, size, axis),
                                  scipy_median(x, size=footprint, mode="reflect"))
