"""The confusion matrix of mask separators (models/evaluation/confusion.py)."""

import numpy as np
import pytest
import torch

from stemwright.models.architectures import registry as arch
from stemwright.models.evaluation.confusion import (
    has_masks,
    markdown_table,
    mean_shares,
    stem_energy_shares,
)


def _stems(rng, length=6000):
    return {"vocals": (0.1 * rng.standard_normal((2, length))).astype(np.float32),
            "wind": (0.05 * rng.standard_normal((2, length))).astype(np.float32)}


@pytest.mark.parametrize("name", ["masknet", "bandsplit"])
def test_equal_masks_share_every_stem_equally(name):
    model = arch.build(name, small=True, seed=0)  # zero heads: every mask is 1/S
    shares = stem_energy_shares(model, _stems(np.random.default_rng(0)), frames=7)
    assert set(shares) == {"vocals", "wind"}
    for row in shares.values():
        assert list(row) == model.sources
        assert sum(row.values()) == pytest.approx(1.0)
        assert all(v == pytest.approx(1 / 6, abs=1e-6) for v in row.values())


def test_a_model_that_hears_everything_as_vocals_says_so():
    model = arch.build("bandsplit", small=True, seed=0)
    with torch.no_grad():
        for head in model.head:  # vocals' logits (the first S block) far above the rest
            bias = head[-1].bias.view(6, -1)
            bias[0] = 20.0
    shares = stem_energy_shares(model, _stems(np.random.default_rng(1)))
    assert shares["wind"]["vocals"] > 0.99 and shares["wind"]["wind"] < 1e-3
    table = markdown_table(mean_shares([shares, shares]))
    assert "| wind | 100% | 0%" in table


def test_models_without_masks_are_refused():
    model = arch.build("wavenet", small=True, seed=0)
    assert not has_masks(model)
    with pytest.raises(TypeError, match="no masks"):
        stem_energy_shares(model, _stems(np.random.default_rng(2)))
