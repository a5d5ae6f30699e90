"""Open-Unmix through Stemwright's pipeline equals openunmix's own Separator."""

from __future__ import annotations

import numpy as np
import torch
from openunmix.model import OpenUnmix
from openunmix.model import Separator as UnmixSeparator

from stemwright.models.separation.openunmix_backend import OpenUnmixSeparator


def small_targets(seed: int = 0) -> dict[str, OpenUnmix]:
    torch.manual_seed(seed)
    return {t: OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=16, max_bin=1487).eval()
            for t in ("vocals", "drums", "bass", "other")}


def test_single_chunk_equals_openunmix_separator():
    rng = np.random.default_rng(0)
    mix = (0.1 * rng.standard_normal((2, 3 * 44100))).astype(np.float32)
    sep = OpenUnmixSeparator(small_targets(), "umx-test", device="cpu", segment=5.0)
    ours = sep._infer(mix, None, None, [], 3.0)
    ref_sep = UnmixSeparator(small_targets(), niter=1, residual=False, sample_rate=44100.0,
                             n_fft=4096, n_hop=1024, nb_channels=2).eval()
    with torch.no_grad():
        ref = ref_sep(torch.from_numpy(mix)[None])[0].numpy()
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) < 1e-4


def test_chunked_song_keeps_rate_length_and_sums():
    rng = np.random.default_rng(1)
    mix = (0.1 * rng.standard_normal((1, int(4.5 * 48000)))).astype(np.float32)
    sep = OpenUnmixSeparator(small_targets(), "umx-test", device="cpu", segment=2.0)
    result = sep.separate(mix, 48000)
    assert result.unavailable == ("electric_guitar", "wind")
    for stem in result.stems.values():
        assert stem.shape == mix.shape
    assert np.allclose(result.sum(), mix, atol=1e-5)
