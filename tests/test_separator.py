"""The separator pipeline: rates, lengths, channels, mapping, residual, OOM, cancel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stemwright.models.errors import AudioError, Cancelled
from stemwright.models.separation.separator import ModelPass, Separator
from stemwright.models.stems import DEMUCS_SIX_STEMS, FOUR_STEMS


class GainSeparator(Separator):
    """Each source is a fixed fraction of the mix; 10% of the mix is left unexplained."""

    name = "gain"
    mapping = FOUR_STEMS
    samplerate = 44100
    default_segment = 0.5
    fractions = (0.1, 0.2, 0.3, 0.3)

    def __init__(self, fail_above: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fail_above = fail_above
        self.calls: list[int] = []

    def passes(self):
        def forward(x: torch.Tensor) -> torch.Tensor:
            self.calls.append(x.shape[-1])
            if self.fail_above is not None and x.shape[-1] > self.fail_above:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
            f = torch.tensor(self.fractions, dtype=x.dtype)[None, :, None, None]
            return x[:, None] * f
        return [ModelPass(forward)]


def sine(sr: int, seconds: float, channels: int = 2) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return np.stack([0.5 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]
                    ).astype(np.float32)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000, 96000])
def test_output_matches_input_rate_and_length(sr):
    mix = sine(sr, 1.3)
    result = GainSeparator(device="cpu").separate(mix, sr)
    assert result.samplerate == sr
    assert set(result.stems) == {"vocals", "drums", "bass", "other"}
    for stem in result.stems.values():
        assert stem.shape == mix.shape and stem.dtype == np.float32
    assert np.max(np.abs(result.sum() - mix)) < 1e-5


def test_residual_goes_to_other_and_is_reported():
    mix = sine(44100, 2.0)
    result = GainSeparator(device="cpu").separate(mix, 44100)
    assert result.residual_in_other
    assert result.residual_db == pytest.approx(-20.0, abs=0.05)  # 10% amplitude left over
    assert np.allclose(result.sum(), mix, atol=1e-5)
    plain = GainSeparator(device="cpu").separate(mix, 44100, residual_to_other=False)
    assert np.allclose(plain.sum(), 0.9 * mix, atol=1e-4)
    assert np.allclose(plain.stems["drums"], 0.1 * mix, atol=1e-4)


def test_unavailable_stems_are_reported_not_silent():
    result = GainSeparator(device="cpu").separate(sine(44100, 1.0), 44100)
    assert result.unavailable == ("electric_guitar", "wind")
    assert "electric_guitar" not in result.stems and "wind" not in result.stems
    assert DEMUCS_SIX_STEMS.unavailable == ("wind",)
    assert DEMUCS_SIX_STEMS.produced == ("vocals", "drums", "bass", "electric_guitar", "other")


def test_mono_and_multichannel_layouts():
    mono = sine(44100, 1.0, channels=1)
    result = GainSeparator(device="cpu").separate(mono, 44100)
    assert result.stems["vocals"].shape == mono.shape
    assert np.allclose(result.sum(), mono, atol=1e-5)
    surround = sine(44100, 1.0, channels=6) * 0.3
    result = GainSeparator(device="cpu").separate(surround, 44100)
    assert result.stems["vocals"].shape == (2, surround.shape[1])


def test_progress_reaches_one_and_cancel_leaves_nothing():
    seen = []
    GainSeparator(device="cpu").separate(sine(44100, 2.0), 44100, progress=seen.append)
    assert seen[-1].fraction == pytest.approx(1.0)
    assert seen[-1].seconds_done == pytest.approx(2.0)
    assert all(b.fraction >= a.fraction for a, b in zip(seen, seen[1:], strict=False))
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2

    sep = GainSeparator(device="cpu")
    with pytest.raises(Cancelled):
        sep.separate(sine(44100, 3.0), 44100, cancel=cancel)
    assert len(sep.calls) == 2  # stopped between chunks


def test_out_of_memory_shrinks_segment_and_says_so():
    sep = GainSeparator(device="cpu", segment=2.0, fail_above=int(0.6 * 44100))
    sep.min_segment = 0.25
    messages = []
    result = sep.separate(sine(44100, 3.0), 44100, progress=lambda p: messages.append(p.message))
    assert any("segment reduced to 1.0 s" in n for n in result.notes)
    assert any("segment reduced to 0.5 s" in n for n in result.notes)
    assert any("out of memory" in m for m in messages)
    assert np.allclose(result.sum(), sine(44100, 3.0), atol=1e-5)


def test_bad_input_is_a_clear_error():
    sep = GainSeparator(device="cpu")
    with pytest.raises(AudioError, match="empty"):
        sep.separate(np.zeros((2, 0), np.float32), 44100)
    with pytest.raises(AudioError, match="sample rate"):
        sep.separate(sine(4000, 0.5), 4000)
    bad = sine(44100, 0.5)
    bad[0, 10] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        sep.separate(bad, 44100)
