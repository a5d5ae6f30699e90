"""Conv-TasNet with the thesis' encoders and decoders: shapes, gradients, pinv, training."""

from __future__ import annotations

import pytest
import torch

from stemwright.models.architectures import registry as arch
from stemwright.models.architectures.convtasnet import (
    DECODERS,
    ENCODERS,
    Branch,
    ConvTasNet,
    ParamGammatoneFB,
    make_filterbank,
)


@pytest.fixture(autouse=True)
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def tiny(**kwargs) -> ConvTasNet:
    torch.manual_seed(0)
    cfg = dict(n_filters=24, bottleneck=8, hidden=8, blocks=2, stacks=1, stft_n_fft=64,
               sources=["vocals", "drums", "other"])
    cfg.update(kwargs)
    return ConvTasNet(**cfg)


def test_thesis_defaults():
    with torch.device("meta"):
        model = ConvTasNet()
    enc = model.encoder
    assert enc.kind == "hybrid_gammatone" and enc.out_channels == 440
    assert (enc.n_conv, enc.n_fb) == (220, 220)
    assert len(model.separator.blocks) == 40 and model.stride == 20
    assert 3.5e6 < arch.count_parameters(model) < 4.5e6
    # 4 stacks x dilations 1..512 with kernel 3 -> 8185 frames of 20 samples
    assert model.receptive_field == 8184 * 20 + 2 * 20


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_every_encoder_decoder_pair(encoder, decoder):
    model = tiny(encoder=encoder, decoder=decoder)
    mix = torch.randn(2, 2, 333)  # not a multiple of the stride
    out = model(mix)
    assert out.shape == (2, 3, 2, 333)
    out.square().mean().backward()
    learnable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad), learnable
    first = next(p for n, p in model.named_parameters() if n.startswith("encoder."))
    assert first.grad.abs().sum() > 0  # the encoder is learned jointly


def test_pseudo_inverse_reconstructs_an_overcomplete_free_filterbank():
    torch.manual_seed(0)
    branch = Branch(make_filterbank("free", 32, 20, 20, 44100))
    x = torch.randn(1, 2, 400)
    assert torch.allclose(branch.synthesis(branch(x), 400), x, atol=1e-4)


def test_sinc_and_stft_branches_align_on_the_stride_grid():
    x = torch.randn(1, 2, 400)
    for kind, kernel in (("sinc", 20), ("stft", 64), ("gammatone", 20)):
        branch = Branch(make_filterbank(kind, 16 if kind != "stft" else kernel, kernel, 20,
                                        44100))
        assert branch(x).shape[-1] == 20, kind


def test_gammatone_filterbank_is_learnable():
    fb = ParamGammatoneFB(48, 64, stride=32, sample_rate=44100)
    filters = fb.filters()
    assert filters.shape == (48, 1, 64)
    assert torch.allclose(filters.norm(dim=-1), torch.ones(48, 1), atol=1e-4)
    freqs = fb.freq_hz.detach()
    assert 90 < float(freqs.min()) and float(freqs.max()) < 0.45 * 44100
    filters.sum().backward()
    assert all(p.grad is not None for p in (fb.freq_hz, fb.band_hz, fb.phase))


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="encoder"):
        tiny(encoder="wavelet")
    with pytest.raises(ValueError, match="decoder"):
        tiny(decoder="magic")
    with pytest.raises(ValueError, match="fb_ratio"):
        tiny(encoder="hybrid_sinc", fb_ratio=0.0)


def test_trains_on_generated_songs():
    model = arch.build("convtasnet", small=True, seed=0)
    batches = arch.synth_batches(model.sources, 44100, batch_size=2, seconds=0.5)
    losses = arch.train_steps(model, batches, steps=12, lr=1e-2)
    assert sum(losses[-3:]) < 0.95 * sum(losses[:3])


def test_conditioned_separator_shares_weights_across_instruments():
    torch.manual_seed(0)
    model = arch.build("condtasnet", small=True).eval()
    mix = 0.1 * torch.randn(1, 2, 2000)
    with torch.no_grad():
        every = model(mix)
        two = model(mix, ["bass", "vocals"])
    assert every.shape == (1, 6, 2, 2000) and two.shape == (1, 2, 2, 2000)
    assert torch.allclose(two, every[:, [2, 0]], atol=1e-6)
    # one set of generated weights for all: the embeddings are what tells them apart
    assert model.separator.embedding.weight.shape == (6, 32)
    model.train()
    model(mix, ["drums"]).square().mean().backward()
    grad = model.separator.embedding.weight.grad
    assert grad[1].abs().sum() > 0 and grad[0].abs().sum() == 0


def test_conditioned_separator_trains():
    model = arch.build("condtasnet", small=True, seed=0)
    batches = arch.synth_batches(model.sources, 44100, batch_size=2, seconds=0.5)
    losses = arch.train_steps(model, batches, steps=12, lr=1e-2)
    assert sum(losses[-3:]) < 0.95 * sum(losses[:3])
