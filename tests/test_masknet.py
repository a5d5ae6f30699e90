"""MaskNet, the fast CPU architecture of the default model: masks that sum to one, its
own overlap-add iSTFT against torch.istft, a finite receptive field, chunked inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stemwright.models.architectures import registry as arch
from stemwright.models.architectures.masknet import MaskNet, overlap_add_istft
from stemwright.models.stems import STEM_IDS, mapping_for


@pytest.mark.parametrize("length", [3000, 44100, 3 * 44100 + 17])
@pytest.mark.parametrize("n_fft,hop", [(2048, 1024), (2048, 512), (256, 64)])
def test_overlap_add_istft_equals_torch_istft(length, n_fft, hop):
    window = torch.hann_window(n_fft, dtype=torch.float64)
    x = torch.randn(3, length, dtype=torch.float64)
    z = torch.stft(x, n_fft, hop, window=window, center=True, return_complex=True)
    ours = overlap_add_istft(z, window, hop, length)
    ref = torch.istft(z, n_fft, hop, window=window, center=True, length=length)
    assert ours.shape == ref.shape == (3, length)
    assert torch.allclose(ours, ref, atol=1e-10)
    assert torch.allclose(ours, x, atol=1e-10)  # and it inverts the STFT
    longer = overlap_add_istft(z, window, hop, length + 2 * n_fft)  # past the frames
    assert longer.shape == (3, length + 2 * n_fft) and torch.isfinite(longer).all()
    assert torch.allclose(longer[:, :length], x, atol=1e-10)


def test_stems_sum_to_the_mix_even_untrained():
    torch.manual_seed(0)
    model = arch.build("masknet", small=True).eval()
    for p in model.parameters():  # any weights, not the equal-mask start
        torch.nn.init.normal_(p, std=0.3)
    mix = 0.3 * torch.randn(2, 2, 5000)
    with torch.no_grad():
        out = model(mix)
        masks = model.masks(model.stft(mix).abs())
    assert out.shape == (2, 6, 2, 5000)
    assert torch.allclose(masks.sum(1), torch.ones(()), atol=1e-5)
    assert masks.std() > 0.01  # really different masks per stem
    assert torch.allclose(out.sum(1), mix, atol=1e-5)


def test_fresh_model_splits_the_mix_equally():
    model = arch.build("masknet", small=True).eval()
    mix = 0.3 * torch.randn(1, 2, 4000)
    with torch.no_grad():
        out = model(mix)
    assert torch.allclose(out, mix[:, None].expand_as(out) / 6, atol=1e-5)


def test_receptive_field_is_what_it_says():
    torch.manual_seed(1)
    model = MaskNet(n_fft=256, hop=64, front_channels=4, hidden=8, blocks=3,
                    dilation_cycle=3, local_channels=4).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    field = model.receptive_field
    length = 4 * field
    mix = torch.randn(1, 2, length)
    probe = length // 2
    changed = mix.clone()
    changed[..., probe + field:] += 1.0  # beyond the field of the probe sample
    changed[..., :probe - field] -= 1.0
    with torch.no_grad():
        a, b = model(mix), model(changed)
    assert (a[..., probe] - b[..., probe]).abs().max() < 1e-6
    near = mix.clone()
    near[..., probe + 256:probe + field // 2] *= 30.0  # inside it, past the probe's frames
    with torch.no_grad():
        assert (model(near)[..., probe] - a[..., probe]).abs().max() > 1e-4


def test_chunked_separation_matches_one_pass():
    torch.manual_seed(2)
    model = arch.build("masknet", small=True)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    sep = arch.NeuralSeparator(model, mapping_for(list(STEM_IDS)), "t", device="cpu",
                               segment=0.1)
    assert sep.overlap == arch.get_architecture("masknet").overlap
    assert sep.context >= model.receptive_field // 2
    mix = (0.1 * np.random.default_rng(0).standard_normal((2, 20000))).astype(np.float32)
    chunked = sep._infer(mix, None, None, [], 0.2)
    with torch.no_grad():
        whole = model(torch.from_numpy(mix)[None])[0].numpy()
    inner = slice(model.receptive_field, -model.receptive_field)
    # not bit-equal: a chunk's STFT frames sit on its own hop grid, not the song's
    error = chunked[..., inner] - whole[..., inner]
    snr = 10 * np.log10(np.sum(whole[..., inner] ** 2) / np.sum(error ** 2))
    assert snr > 30, snr


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="n_fft"):
        MaskNet(n_fft=1001)
