"""Partial results: stems of the finished part of a song while the separation goes on.

The final result must be bit-identical with or without the `partial` callback, the
regions must tile the song in order, each region bounded by about one chunk stride, and
(at the model's own rate) their samples must be exactly those of the final result.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stemwright.models.separation.chunking import ChunkPlan, run_chunked
from stemwright.models.separation.separator import ModelPass, PartialStems, Separator
from stemwright.models.stems import DEMUCS_SIX_STEMS, FOUR_STEMS


class ContextSeparator(Separator):
    """Sources depend on each chunk's context (its mean level), so overlaps matter and a
    wrongly normalised or early region would show; optionally weighted or a bag."""

    name = "context"
    mapping = FOUR_STEMS
    samplerate = 8000
    default_segment = 0.5
    default_overlap = 0.25

    def __init__(self, weights=None, bag: int = 1, mapping=None, **kwargs) -> None:
        super().__init__(device="cpu", **kwargs)
        self.weights = weights
        self.bag = bag
        if mapping is not None:
            self.mapping = mapping

    def passes(self) -> list[ModelPass]:
        n = len(self.mapping.native)

        def forward(x: torch.Tensor, k: int = 0) -> torch.Tensor:
            level = x.abs().mean(dim=-1, keepdim=True)  # [B, C, 1]: depends on the chunk
            f = torch.linspace(0.1, 0.4, n, dtype=x.dtype)[None, :, None, None] * (k + 1)
            return x[:, None] * f + 0.05 * torch.tanh(level)[:, None] * f
        return [ModelPass(lambda x, k=k: forward(x, k), weights=self.weights)
                for k in range(self.bag)]

    def prepare(self, mix: np.ndarray):
        return mix * 2.0, 0.5  # exercised like demucs' normalisation

    def restore(self, sources: np.ndarray, state: object) -> np.ndarray:
        sources *= state
        return sources


def song(sr: int, seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = np.stack([0.3 * np.sin(2 * np.pi * (110 + 55 * c) * t) for c in range(channels)])
    x += 0.1 * rng.standard_normal(x.shape) * (1 + np.sin(2 * np.pi * 0.7 * t))
    return x.astype(np.float32)


def collect(sep: Separator, mix: np.ndarray, sr: int, **kwargs):
    regions: list[PartialStems] = []
    result = sep.separate(mix, sr, partial=regions.append, **kwargs)
    return result, regions


def check_tiling(regions: list[PartialStems], length: int, sr: int) -> None:
    assert regions, "no partial results"
    assert regions[0].start == 0 and regions[-1].end == length
    for prev, cur in zip(regions, regions[1:], strict=False):
        assert cur.start == prev.end
    for r in regions:
        assert r.length == length and r.samplerate == sr
        assert r.final_until_seconds == pytest.approx(r.end / sr)
        for signal in r.stems.values():
            assert signal.dtype == np.float32 and signal.shape[-1] == r.end - r.start


def stitched(regions: list[PartialStems], stem_id: str) -> np.ndarray:
    return np.concatenate([r.stems[stem_id] for r in regions], axis=-1)


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_same_rate_partials_are_the_final_samples(channels):
    sr = 8000
    mix = song(sr, 3.1, channels)
    plain = ContextSeparator().separate(mix, sr)
    result, regions = collect(ContextSeparator(), mix, sr)
    assert set(result.stems) == set(plain.stems)
    for stem_id, signal in plain.stems.items():
        np.testing.assert_array_equal(result.stems[stem_id], signal)  # bit-identical
    check_tiling(regions, mix.shape[-1], sr)
    assert len(regions) == len(ChunkPlan.make(int(sr * 3.1), 4000, 0.25).offsets)
    for r in regions:
        assert set(r.stems) == set(plain.stems)
        assert r.unavailable == ("electric_guitar", "wind")
    for stem_id, signal in plain.stems.items():  # residual in "other" included
        np.testing.assert_array_equal(stitched(regions, stem_id), signal)


@pytest.mark.parametrize("sr", [11025, 44100])
def test_resampled_partials_match_the_final_result(sr):
    mix = song(sr, 2.3)
    plain = ContextSeparator().separate(mix, sr)
    result, regions = collect(ContextSeparator(), mix, sr)
    for stem_id, signal in plain.stems.items():
        np.testing.assert_array_equal(result.stems[stem_id], signal)
    check_tiling(regions, mix.shape[-1], sr)
    assert len(regions) >= 3
    for stem_id, signal in plain.stems.items():  # a streaming resampler: no seams
        np.testing.assert_allclose(stitched(regions, stem_id), signal, atol=1e-5)


def test_regions_are_bounded_by_one_stride():
    sr = 8000
    mix = song(sr, 6.0)
    _, regions = collect(ContextSeparator(segment=0.4, overlap=0.5), mix, sr)
    stride = int(0.5 * 0.4 * sr)
    assert max(r.end - r.start for r in regions) <= stride
    assert len(regions) == len(range(0, mix.shape[-1], stride))


def test_weighted_single_pass_and_summed_sources():
    sr = 8000
    mix = song(sr, 2.0)
    weights = (0.5, 2.0, 1.0, 0.25)
    plain = ContextSeparator(weights=weights).separate(mix, sr)
    result, regions = collect(ContextSeparator(weights=weights), mix, sr)
    for stem_id, signal in plain.stems.items():
        np.testing.assert_array_equal(result.stems[stem_id], signal)
        np.testing.assert_array_equal(stitched(regions, stem_id), signal)
    six = ContextSeparator(mapping=DEMUCS_SIX_STEMS)  # piano + other -> other
    plain = six.separate(mix, sr)
    result, regions = collect(ContextSeparator(mapping=DEMUCS_SIX_STEMS), mix, sr)
    assert regions[0].unavailable == ("wind",)
    for stem_id, signal in plain.stems.items():
        np.testing.assert_array_equal(result.stems[stem_id], signal)
        np.testing.assert_array_equal(stitched(regions, stem_id), signal)


def test_bags_report_nothing_early_and_are_unchanged():
    sr = 8000
    mix = song(sr, 2.0)
    plain = ContextSeparator(bag=2).separate(mix, sr)
    result, regions = collect(ContextSeparator(bag=2), mix, sr)
    assert regions == []
    for stem_id, signal in plain.stems.items():
        np.testing.assert_array_equal(result.stems[stem_id], signal)


def test_residual_off_and_partial_errors_propagate():
    sr = 8000
    mix = song(sr, 1.5)
    plain = ContextSeparator().separate(mix, sr, residual_to_other=False)
    result, regions = collect(ContextSeparator(), mix, sr, residual_to_other=False)
    np.testing.assert_array_equal(stitched(regions, "other"), plain.stems["other"])
    np.testing.assert_array_equal(result.stems["other"], plain.stems["other"])

    def broken(_p: PartialStems) -> None:
        raise BrokenPipeError("the app went away")
    with pytest.raises(BrokenPipeError):
        ContextSeparator().separate(mix, sr, partial=broken)


def test_run_chunked_hook_reads_only():
    rng = np.random.default_rng(3)
    mix = rng.standard_normal((2, 5000)).astype(np.float32)
    plan = ChunkPlan.make(5000, 1200, 0.3)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x * 0.25, x * 0.75 + x.mean(dim=(1, 2), keepdim=True)], dim=1)
    plain = run_chunked(forward, mix, 2, plan, torch.device("cpu"))
    seen: list[tuple[int, np.ndarray]] = []
    hooked = run_chunked(forward, mix, 2, plan, torch.device("cpu"), batch_size=2,
                         on_final=lambda region, start: seen.append((start, region.copy())))
    np.testing.assert_array_equal(hooked, plain)
    assert [s for s, _ in seen][0] == 0
    np.testing.assert_array_equal(np.concatenate([r for _, r in seen], axis=-1), plain)


def test_classic_model_partials():
    """The real classic model, 1 s chunks over 2.5 s: same stems with and without."""
    from stemwright.models.classic.classic import ClassicSeparator

    sr = 44100
    mix = song(sr, 2.5)
    plain = ClassicSeparator(segment=1.0).separate(mix, sr)
    result, regions = collect(ClassicSeparator(segment=1.0), mix, sr)
    check_tiling(regions, mix.shape[-1], sr)
    assert len(regions) == 4
    for stem_id, signal in plain.stems.items():
        np.testing.assert_array_equal(result.stems[stem_id], signal)
        np.testing.assert_array_equal(stitched(regions, stem_id), signal)
