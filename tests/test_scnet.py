"""SCNet (architectures.scnet) against the reference, ZFTurbo's Music-Source-Separation-
Training (MSST): the same random-weight checkpoint gives the same output.

tests/data/scnet_reference.npz holds a tiny random-weight SCNet in the official state dict
layout, its MSST YAML, and what MSST's SCNet, `utils.model_utils.demix` and inference.py's
input normalisation made of test signals, plus the state dict layout of the published
small and large SCNet configs; packaging/scnet_reference_fixture.py wrote it. The
reference code is never imported here.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_npz

from stemwright.models.architectures.scnet import (
    SCNet,
    check_scnet_config,
    scnet_from_config,
)
from stemwright.models.errors import ModelError
from stemwright.models.yaml_safe import safe_yaml_loads

FIXTURE = Path(__file__).parent / "data" / "scnet_reference.npz"
#: The `model:` sections of MSST's configs/config_musdb18_scnet{,_large}.yaml.
PUBLISHED_COMMON = dict(sources=["drums", "bass", "other", "vocals"], audio_channels=2,
                        nfft=4096, hop_size=1024, win_size=4096, normalized=True,
                        band_stride=[1, 4, 16], band_kernel=[3, 4, 16], conv_depths=[3, 2, 1],
                        compress=4, conv_kernel=3, num_dplayer=6, expand=1)
PUBLISHED = {
    "small": dict(dims=[4, 32, 64, 128], band_SR=[0.175, 0.392, 0.433]),
    "large": dict(dims=[4, 64, 128, 256], band_SR=[0.225, 0.372, 0.403]),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    return load_npz(FIXTURE)


def _config(ref: dict) -> dict:
    return safe_yaml_loads(str(ref["yaml"]), "scnet.yaml")


def _state(ref: dict) -> dict[str, torch.Tensor]:
    names = str(ref["names"]).split("\n")
    return {k: torch.from_numpy(ref[f"w{i}"]) for i, k in enumerate(names)}


@pytest.fixture(scope="module")
def model(ref) -> SCNet:
    net = scnet_from_config(_config(ref)["model"], "scnet.yaml")
    net.load_state_dict(_state(ref), strict=True)
    return net.eval()


@pytest.mark.parametrize("length", [520, 512, 496])
def test_forward_matches_reference(ref, model, length):
    """A chunk through our SCNet equals MSST's SCNet on the same weights (lengths chosen
    for each of the three right-paddings of SCNet's forward)."""
    x = torch.from_numpy(ref[f"chunk{length}/in"])
    with torch.inference_mode():
        y = model(x).numpy()
    expected = ref[f"chunk{length}/out"]
    assert y.shape == expected.shape == (x.shape[0], 3, 2, length)
    np.testing.assert_allclose(y, expected, atol=1e-5, rtol=0)


def test_demix_matches_reference(ref, model):
    """Our generic chunked inference (`roformer_backend.demix`) over SCNet gives MSST's
    `demix` result (chunk 1024, num_overlap 2, batch 1)."""
    from stemwright.models.separation.roformer_backend import demix

    mix = ref["mix"]
    out = demix(model, mix, 3, 1024, 512, torch.device("cpu"), None, None, 1, None)
    assert out.shape == ref["demix/out"].shape == (3, *mix.shape)
    np.testing.assert_allclose(out, ref["demix/out"], atol=1e-5, rtol=0)


def test_separator_with_normalisation_matches_reference(ref, model):
    """The whole Separator path with MSST's `inference.normalize: true` (as the published
    small SCNet sets it) equals MSST's inference: normalise, demix, denormalise."""
    from stemwright.models.separation.roformer_backend import RoformerConfig, RoformerSeparator

    cfg = _config(ref)
    config = RoformerConfig(architecture="scnet", model_kwargs=cfg["model"],
                            sources=tuple(cfg["training"]["instruments"]), samplerate=44100,
                            chunk_size=1024, num_overlap=2, normalize=True)
    sep = RoformerSeparator(model, config, "scnet", device="cpu")
    res = sep.separate(ref["mix"], 44100, residual_to_other=False)
    got = np.stack([res.stems[s] for s in ("vocals", "drums", "other")])
    np.testing.assert_allclose(got, ref["demix_normalized/out"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", sorted(PUBLISHED))
def test_published_configs_have_the_official_layout(ref, size):
    """SCNet / SCNet large as MSST configures them have exactly the reference's state
    dict names and shapes, so the released checkpoints load strictly."""
    with torch.device("meta"):
        ours = scnet_from_config({**PUBLISHED_COMMON, **PUBLISHED[size]}).state_dict()
    names = str(ref[f"layout_{size}/names"]).split("\n")
    shapes = [tuple(int(d) for d in s.split(",")) for s in
              str(ref[f"layout_{size}/shapes"]).split("\n")]
    assert {k: tuple(v.shape) for k, v in ours.items()} == dict(zip(names, shapes,
                                                                   strict=True))


def test_checkpoint_loads_through_the_safe_loader(ref, model, tmp_path):
    """An official-layout `.ckpt` (plain state dict, or MSST's {'state_dict': ...}) loads
    via zoo.checkpoint's RoFormer loader into SCNet; a SCNet Masked file (extra weights)
    is refused in one line."""
    from stemwright.models.zoo.checkpoint import load_roformer_checkpoint

    kwargs = _config(ref)["model"]
    for i, obj in enumerate((_state(ref), {"state_dict": _state(ref)})):
        torch.save(obj, tmp_path / f"scnet{i}.ckpt")
        net = load_roformer_checkpoint(tmp_path / f"scnet{i}.ckpt", SCNet, kwargs)
        x = torch.from_numpy(ref["chunk512/in"])
        with torch.inference_mode():
            np.testing.assert_allclose(net(x).numpy(), ref["chunk512/out"], atol=1e-5)
    masked = {**_state(ref), "pos_embed_f": torch.zeros(1, 4, 33, 1)}
    torch.save(masked, tmp_path / "masked.ckpt")
    with pytest.raises(ModelError, match="unexpected 'pos_embed_f'") as info:
        load_roformer_checkpoint(tmp_path / "masked.ckpt", SCNet, kwargs)
    assert "\n" not in str(info.value)


def test_config_reads_msst_sections(ref):
    kwargs = check_scnet_config(_config(ref)["model"], "x.yaml")
    assert kwargs["dims"] == [4, 6, 8] and kwargs["sources"] == ["vocals", "drums", "other"]
    net = scnet_from_config({"dims": (4, 8, 8), "nfft": 64, "hop_size": 16, "win_size": 64,
                             "num_dplayer": 0})
    assert net.sources == ["drums", "bass", "other", "vocals"]  # MSST's default
    assert net.num_stems == 4
    y = net(torch.zeros(1, 2, 300))
    assert y.shape == (1, 4, 2, 300) and torch.isfinite(y).all()


@pytest.mark.parametrize("change,message", [
    ({"dims": [6, 8, 8]}, "dims must start with 2 x audio_channels = 4"),
    ({"num_dplayer": 3}, "num_dplayer must be an even number"),
    ({"conv_kernel": 4}, "conv_kernel must be an odd number"),
    ({"band_SR": [0.5, 0.5]}, "three values each"),
    ({"band_SR": [0.6, 0.5, 0.1]}, "low \\+ mid below 1"),
    ({"band_kernel": [3, 2, 16]}, "at least the band's stride"),
    ({"hop_size": 128}, "hop_size 1-win_size"),
    ({"compress": 0}, "compress must be positive"),
    ({"compress": 10}, "at least one hidden channel"),
    ({"normalized": "yes"}, "normalized must be true or false"),
    ({"sources": "vocals"}, "sources must be a list"),
    ({"sources": ["vocals", "vocals", "other"]}, "distinct names"),
    ({"dims": [4] + [8] * 10**6}, "dims must be 2-16"),
    ({"tran_depth": 1}, "SCNet Tran config"),
    ({"warp_drive": 3}, "no setting warp_drive"),
])
def test_bad_configs_fail_in_one_line(ref, change, message):
    section = {**_config(ref)["model"], **change}
    start = time.monotonic()
    with pytest.raises(ModelError, match=message) as info:
        scnet_from_config(section, "scnet.yaml")
    assert str(info.value).startswith("scnet.yaml: ")
    assert "\n" not in str(info.value)
    assert time.monotonic() - start < 5
