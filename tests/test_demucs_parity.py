"""Our chunked path must not degrade a model: parity with demucs.apply.apply_model."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from demucs.apply import BagOfModels, apply_model
from demucs.htdemucs import HTDemucs

from stemwright.models.separation.demucs_backend import DemucsSeparator
from stemwright.models.stems import DEMUCS_SIX_STEMS, FOUR_STEMS


def small_htdemucs(sources, seed: int = 0) -> HTDemucs:
    """A randomly initialised, small HTDemucs (same code paths as the real one)."""
    torch.manual_seed(seed)
    return HTDemucs(sources=list(sources), channels=8, depth=2, nfft=512, t_layers=1,
                    t_heads=2, bottom_channels=0, dconv_comp=4,
                    segment=Fraction(1, 1), samplerate=44100).eval()


@pytest.fixture
def song() -> np.ndarray:
    rng = np.random.default_rng(0)
    # 2.6 s: several chunks at 1 s segments plus a short last chunk.
    return (0.1 * rng.standard_normal((2, int(2.6 * 44100)))).astype(np.float32)


@pytest.mark.parametrize("overlap", [0.25, 0.5])
def test_single_model_matches_apply_model(song, overlap):
    model = small_htdemucs(DEMUCS_SIX_STEMS.native)
    sep = DemucsSeparator([model], DEMUCS_SIX_STEMS, "test", normalize=False, device="cpu",
                          overlap=overlap)
    ours = sep._infer(song, None, None, [], 0.0)
    with torch.no_grad():
        ref = apply_model(model, torch.from_numpy(song)[None], shifts=0, split=True,
                          overlap=overlap, device="cpu")[0].numpy()
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) < 1e-4


def test_bag_matches_apply_model(song):
    models = [small_htdemucs(FOUR_STEMS.native, seed=s) for s in (1, 2)]
    weights = [[1.0, 0.0, 0.5, 1.0], [0.0, 1.0, 0.5, 1.0]]
    sep = DemucsSeparator(models, FOUR_STEMS, "bag", weights=weights, normalize=False,
                          device="cpu", batch_size=2)
    ours = sep._infer(song, None, None, [], 0.0)
    bag = BagOfModels([small_htdemucs(FOUR_STEMS.native, seed=s) for s in (1, 2)], weights)
    with torch.no_grad():
        ref = apply_model(bag, torch.from_numpy(song)[None], shifts=0, split=True,
                          overlap=0.25, device="cpu")[0].numpy()
    assert np.max(np.abs(ours - ref)) < 1e-4


def test_full_pipeline_matches_demucs_normalisation(song):
    """separate() with demucs' mean/std normalisation equals doing it around apply_model."""
    model = small_htdemucs(DEMUCS_SIX_STEMS.native)
    sep = DemucsSeparator([model], DEMUCS_SIX_STEMS, "test", device="cpu")
    result = sep.separate(song, 44100, residual_to_other=False)
    wav = torch.from_numpy(song)
    ref = wav.mean(0)
    normed = (wav - ref.mean()) / ref.std()
    with torch.no_grad():
        out = apply_model(model, normed[None], shifts=0, split=True, overlap=0.25)[0]
    out = (out * ref.std() + ref.mean()).numpy()
    native = dict(zip(DEMUCS_SIX_STEMS.native, out, strict=True))
    assert np.max(np.abs(result.stems["electric_guitar"] - native["guitar"])) < 1e-4
    assert np.max(np.abs(result.stems["other"] - (native["other"] + native["piano"]))) < 1e-4
    assert result.unavailable == ("wind",)
