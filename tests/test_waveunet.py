"""Wave-U-Net: paper size, resampling, shapes, BiLSTM bottleneck, gradients, training."""

from __future__ import annotations

import pytest
import torch

from stemwright.models.architectures import registry as arch
from stemwright.models.architectures.waveunet import PAPER_PARAMS, WaveUNet, decimate, upsample


@pytest.fixture(autouse=True)
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def tiny(**kwargs) -> WaveUNet:
    torch.manual_seed(0)
    return WaveUNet(levels=3, channels=4, **kwargs)


def test_paper_configuration_size():
    with torch.device("meta"):
        model = WaveUNet()
    assert abs(arch.count_parameters(model) / PAPER_PARAMS - 1) < 0.05
    assert model.valid_length(1) == 4096 and model.valid_length(4096) == 4096
    # the convs alone see 131 k samples (the paper's 147443 in for 16389 out)
    assert 131_000 <= model.receptive_field <= 140_000
    with torch.device("meta"):
        assert WaveUNet(lstm_layers=1).receptive_field is None


def test_decimation_and_interpolation():
    x = torch.arange(8.0).view(1, 1, 8)
    up = upsample(x)
    assert up.shape[-1] == 16 and torch.equal(decimate(up), x)
    assert torch.allclose(up[..., 1:-1:2], x[..., :-1] + 0.5)  # midpoints of neighbours


@pytest.mark.parametrize("lstm", [0, 1])
def test_any_length_and_difference_output(lstm):
    model = tiny(lstm_layers=lstm)
    mix = torch.randn(2, 2, 1001)  # not a multiple of 2^levels
    out = model(mix)
    assert out.shape == (2, 6, 2, 1001)
    assert torch.allclose(out.sum(dim=1), mix, atol=1e-5)
    assert tiny(difference_output=False)(mix).shape == (2, 6, 2, 1001)


def test_gradients_reach_every_weight():
    model = tiny(lstm_layers=1)
    model(torch.randn(1, 2, 256)).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_trains_on_generated_songs():
    model = arch.build("waveunet", small=True, seed=0)
    batches = arch.synth_batches(model.sources, 22050, batch_size=2, seconds=1.0)
    losses = arch.train_steps(model, batches, steps=12, lr=3e-3)
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3])
