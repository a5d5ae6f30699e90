"""Wavenet-based regression model: paper sizes, receptive field, shapes, gradients."""

from __future__ import annotations

import pytest
import torch

from stemwright.models.architectures import registry as arch
from stemwright.models.architectures.wavenet import (
    PAPER_CONFIGS,
    PAPER_PARAMS,
    WaveNet,
    paper_wavenet,
)


@pytest.fixture(autouse=True)
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def tiny(**kwargs) -> WaveNet:
    torch.manual_seed(0)
    return WaveNet(stacks=1, channels=8, dilations=[1, 2, 4], final_channels=(16, 8), **kwargs)


@pytest.mark.parametrize("config", list(PAPER_CONFIGS))
def test_paper_parameter_counts_and_receptive_fields(config):
    with torch.device("meta"):  # shapes only: no memory for 25 M weights
        model = paper_wavenet(config)
    params = arch.count_parameters(model)
    assert abs(params / PAPER_PARAMS[config] - 1) < 0.05
    stacks, _ = PAPER_CONFIGS[config]
    # 128 ms per stack at 16 kHz (Table 1: 128, 256, 384, 512, 639 ms)
    assert abs(model.receptive_field / 16000 - 0.128 * stacks) < 0.002


def test_shapes_and_difference_output():
    model = tiny(sources=["vocals", "drums", "other"])
    mix = torch.randn(2, 2, 777)
    out = model(mix)
    assert out.shape == (2, 3, 2, 777)
    assert torch.allclose(out.sum(dim=1), mix, atol=1e-5)  # last source = mix - the others
    free = tiny(sources=["vocals", "drums", "other"], difference_output=False)
    assert free(mix).shape == (2, 3, 2, 777)
    assert free.output.out_channels == 3 * 2


def test_non_causal_receptive_field():
    model = tiny(difference_output=False).eval()
    x = torch.zeros(1, 2, 400)
    x[..., 200] = 1.0
    with torch.no_grad():
        y = model(x) - model(torch.zeros_like(x))
    touched = (y.abs().amax(dim=(0, 1, 2)) > 0).nonzero().flatten()
    half = model.receptive_field // 2
    assert touched.min() >= 200 - half and touched.max() <= 200 + half
    assert touched.min() < 200 < touched.max()  # sees the future as well as the past


def test_gradients_reach_every_weight():
    model = tiny()
    model(torch.randn(1, 2, 300)).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_trains_on_generated_songs():
    model = arch.build("wavenet", small=True, seed=0)
    batches = arch.synth_batches(model.sources, 16000, batch_size=2, seconds=1.0)
    losses = arch.train_steps(model, batches, steps=12, lr=3e-3)
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3])
