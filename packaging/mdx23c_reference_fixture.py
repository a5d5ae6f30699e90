"""Write tests/data/mdx23c_reference.npz: tiny random-weight MDX23C (TFC-TDF v3)
checkpoints (official state dict layout) with what the *reference* code makes of a test
signal, for tests/test_mdx23c.py's parity tests.

The reference is ZFTurbo's Music-Source-Separation-Training (MSST): its
`models/mdx23c_tfc_tdf_v3.py` (`TFC_TDF_net`, built as its `get_model_from_config` builds
it for model_type mdx23c: from the whole config) and its `utils.model_utils.demix`. It
runs here, once, from a local checkout, never in the tests:

    git clone https://github.com/ZFTurbo/Music-Source-Separation-Training /tmp/msst
    .venv/bin/python packaging/mdx23c_reference_fixture.py /tmp/msst

(Made with MSST ccc011abf7f8, torch 2.11.) `ml_collections` (a type in `demix`'s module)
is stubbed; MDX23C needs no other package. The configs are MSST's layout shrunk (n_fft
128, 32 of 65 bins kept, so the zeroed top bins matter): one four-stem model
(InstanceNorm, gelu, 2 sub-bands) and one vocals-only model (target_instrument, BatchNorm
with random running statistics, elu, an unused model setting MSST ignores). Each stores
its YAML, the weights and the reference's output for the stored input. A few KB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from msst_reference import MsstConfig, msst_importer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "mdx23c_reference.npz"

FOUR_YAML = """\
audio:
  chunk_size: 1120
  dim_f: 32
  dim_t: 36
  hop_length: 32
  n_fft: 128
  num_channels: 2
  sample_rate: 44100
  min_mean_abs: 0.001
model:
  act: gelu
  bottleneck_factor: 2
  growth: 2
  norm: InstanceNorm
  num_blocks_per_scale: 1
  num_channels: 4
  num_scales: 2
  num_subbands: 2
  scale:
  - 2
  - 2
training:
  batch_size: 6
  instruments:
  - vocals
  - bass
  - drums
  - other
  lr: 9.0e-05
  target_instrument: null
  use_amp: true
augmentations:
  mixup_probs: !!python/tuple
    - 0.2
    - 0.02
inference:
  batch_size: 1
  dim_t: 36
  num_overlap: 4
"""
VOCALS_YAML = """\
audio:
  chunk_size: 1056
  dim_f: 32
  hop_length: 32
  n_fft: 128
  num_channels: 2
  sample_rate: 44100
model:
  act: elu1.0
  bottleneck_factor: 4
  growth: 4
  norm: BatchNorm
  num_blocks_per_scale: 2
  num_channels: 4
  num_scales: 1
  num_subbands: 4
  scale:
  - 2
  - 2
  unused_setting: 7
training:
  instruments:
  - vocals
  - other
  target_instrument: vocals
  use_amp: true
inference:
  batch_size: 1
  num_overlap: 2
"""
MODELS = {"four_stems": FOUR_YAML, "vocals": VOCALS_YAML}


def _load_reference(msst: Path) -> dict:
    """MSST's TFC_TDF_net and demix, imported from the checkout without its package
    inits."""
    load = msst_importer(msst, ("models", "utils"))
    utils = load("utils.model_utils")
    net = load("models.mdx23c_tfc_tdf_v3")
    return {"net": net.TFC_TDF_net, "demix": utils.demix}


def _random_weights(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Every weight random (scaled by fan-in), so each path of the network matters;
    BatchNorm statistics random too (variances positive)."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, value in sorted(model.state_dict().items()):
        if not value.is_floating_point():  # num_batches_tracked
            state[key] = value.clone()
            continue
        noise = rng.standard_normal(tuple(value.shape))
        if key.endswith("running_var"):
            data = 0.5 + np.abs(noise)
        elif key.endswith("running_mean"):
            data = 0.3 * noise
        elif value.ndim >= 2:
            data = noise / np.sqrt(np.prod(value.shape[1:]))
        elif key.endswith("weight"):  # a norm's scale
            data = 1.0 + 0.2 * noise
        else:
            data = 0.2 * noise
        state[key] = torch.from_numpy(data.astype(np.float32))
    return state


def main(msst: Path) -> None:
    import yaml  # the reference reads its configs with PyYAML's full loader too

    ref = _load_reference(msst)
    rng = np.random.default_rng(23)
    t = np.arange(2200) / 44100.0
    mix = (0.3 * np.sin(2 * np.pi * 330 * t)[None] + 0.1 * rng.standard_normal((2, 2200))
           ).astype(np.float32)
    arrays: dict[str, np.ndarray] = {"mix": mix}
    for seed, (key, text) in enumerate(MODELS.items()):
        config = MsstConfig(yaml.load(text, Loader=yaml.FullLoader))  # noqa: S506 - ours
        torch.manual_seed(seed)
        model = ref["net"](config).eval()
        state = _random_weights(model, seed)
        model.load_state_dict(state, strict=True)
        with torch.no_grad():
            out = ref["demix"](config, model, mix, torch.device("cpu"), "mdx23c")
        names = ([config["training"]["target_instrument"]]
                 if config["training"].get("target_instrument")
                 else config["training"]["instruments"])
        arrays[f"{key}/yaml"] = np.array(text)
        arrays[f"{key}/names"] = np.array("\n".join(sorted(state)))
        for i, name in enumerate(sorted(state)):
            arrays[f"{key}/w{i}"] = state[name].numpy()
        arrays[f"{key}/out"] = np.stack([out[n] for n in names]).astype(np.float32)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(OUT)
    print(f"{OUT}: {OUT.stat().st_size / 1000:.0f} KB")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: mdx23c_reference_fixture.py MSST_CHECKOUT")
    main(Path(sys.argv[1]))
