"""Masked training losses: L1, SI-SDR, SDR, multi-resolution STFT and their sums."""

from __future__ import annotations

import pytest
import torch

from stemwright.models.training.losses import (
    Loss,
    MultiResolutionSTFT,
    masked_mean,
    si_sdr_terms,
)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(2, 3, 2, 4000, generator=gen) * 0.1
    est = ref + 0.05 * torch.randn(2, 3, 2, 4000, generator=gen)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    return est, ref, mask


@pytest.mark.parametrize("spec", ["l1", "mse", "sisdr", "sdr", "mrstft", "l1+0.5*mrstft"])
def test_absent_targets_get_no_gradient(spec, batch):
    est, ref, mask = batch
    est = est.clone().requires_grad_(True)
    loss = Loss(spec)(est, ref, mask)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = est.grad.abs().sum(dim=(-2, -1))
    assert torch.all(grads[mask == 0] == 0) and torch.all(grads[mask == 1] > 0)
    # the value does not depend on what the model outputs for absent stems
    other = est.detach().clone()
    other[mask == 0] = 5.0
    assert torch.isclose(Loss(spec)(other, ref, mask), loss.detach(), rtol=1e-5)


def test_l1_is_the_mean_over_present_items(batch):
    est, ref, mask = batch
    per_item = (est - ref).abs().mean(dim=(-2, -1))
    expected = per_item[mask == 1].mean()
    assert torch.isclose(Loss("l1")(est, ref, mask), expected)
    assert masked_mean(per_item, torch.zeros_like(mask)) == 0


def test_si_sdr_is_scale_invariant_and_skips_silent_references(batch):
    est, ref, mask = batch
    terms, valid = si_sdr_terms(est, ref)
    scaled, _ = si_sdr_terms(3.0 * est, ref)
    assert torch.allclose(terms, scaled, atol=1e-3)
    perfect, _ = si_sdr_terms(ref * 0.5, ref)
    assert torch.all(perfect < -60)
    silent = ref.clone()
    silent[0, 0] = 0.0
    _, valid = si_sdr_terms(est, silent)
    assert not valid[0, 0] and valid.sum() == valid.numel() - 1
    keep_mask = torch.ones_like(mask)
    loss = Loss("sisdr")(est, silent, keep_mask)
    assert torch.isfinite(loss)


def test_multi_resolution_stft_loss():
    mr = MultiResolutionSTFT()
    x = torch.randn(1, 2, 2, 8192) * 0.1
    same, _ = mr(x, x)
    assert torch.allclose(same, torch.zeros_like(same), atol=1e-5)
    worse, _ = mr(x * 0.5, x)
    noisy, _ = mr(x + 0.1 * torch.randn_like(x), x)
    assert torch.all(worse > 0.1) and torch.all(noisy > 0.1)
    short, _ = mr(x[..., :300], x[..., :300])  # windows shrink for short segments
    assert torch.isfinite(short).all()


def test_loss_specs():
    assert [p[1] for p in Loss("l1 + 0.1*mrstft").parts] == ["l1", "mrstft"]
    assert Loss("2*l1").parts[0][0] == 2.0
    with pytest.raises(ValueError, match="unknown loss"):
        Loss("l3")
