"""Write tests/data/scnet_reference.npz: a tiny random-weight SCNet checkpoint (official
state dict layout) with what the *reference* code makes of test signals, for
tests/test_scnet.py's parity tests.

The reference is ZFTurbo's Music-Source-Separation-Training (MSST): its SCNet
(models/scnet/scnet.py + separation.py, model type 'scnet'), its `utils.model_utils.demix`
and the input normalisation of its inference.py (`utils.audio_utils.normalize_audio` /
`denormalize_audio`). It runs here, once, from a local checkout, never in the tests:

    git clone https://github.com/ZFTurbo/Music-Source-Separation-Training /tmp/msst
    .venv/bin/python packaging/scnet_reference_fixture.py /tmp/msst

(Made with MSST ccc011abf7f8, torch 2.11.) `ml_collections` (only a type in `demix`'s
module) is stubbed, and `utils.audio_utils`' plotting / soundfile imports too (only its two
normalisation functions are used). The fixture stores: the YAML config (MSST layout), the
weights, the reference's forward output for chunks of three lengths (each padding branch of
SCNet's forward), its demix output with and without `inference.normalize`, and the state
dict layout (key names and shapes) of the published small and large SCNet configs, which
the tests compare with ours. Under 300 KB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from msst_reference import MsstConfig, msst_importer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "scnet_reference.npz"

SCNET_YAML = """\
audio:
  chunk_size: 1024
  num_channels: 2
  sample_rate: 44100
  min_mean_abs: 0.000
model:
  sources:
  - vocals
  - drums
  - other
  audio_channels: 2
  dims:
  - 4
  - 6
  - 8
  nfft: 64
  hop_size: 16
  win_size: 64
  normalized: True
  band_SR:
  - 0.225
  - 0.372
  - 0.403
  band_stride:
  - 1
  - 4
  - 16
  band_kernel:
  - 3
  - 4
  - 16
  conv_depths:
  - 2
  - 1
  - 1
  compress: 4
  conv_kernel: 3
  num_dplayer: 2
  expand: 1
training:
  batch_size: 1
  instruments:
  - vocals
  - drums
  - other
  target_instrument: null
  use_amp: false
inference:
  batch_size: 1
  num_overlap: 2
  normalize: false
"""
#: The `model:` sections of MSST's configs/config_musdb18_scnet{,_large}.yaml.
PUBLISHED = {
    "small": dict(dims=[4, 32, 64, 128], band_SR=[0.175, 0.392, 0.433]),
    "large": dict(dims=[4, 64, 128, 256], band_SR=[0.225, 0.372, 0.403]),
}
PUBLISHED_COMMON = dict(sources=["drums", "bass", "other", "vocals"], audio_channels=2,
                        nfft=4096, hop_size=1024, win_size=4096, normalized=True,
                        band_stride=[1, 4, 16], band_kernel=[3, 4, 16], conv_depths=[3, 2, 1],
                        compress=4, conv_kernel=3, num_dplayer=6, expand=1)


def _load_reference(msst: Path) -> dict:
    """MSST's SCNet, demix and normalisation, imported without its package inits."""
    load = msst_importer(msst, ("models", "models.scnet", "utils"),
                         stubs=("soundfile", "matplotlib", "matplotlib.pyplot"))
    load("models.scnet.separation")
    scnet = load("models.scnet.scnet")
    utils = load("utils.model_utils")
    audio = load("utils.audio_utils")
    return {"SCNet": scnet.SCNet, "demix": utils.demix, "normalize": audio.normalize_audio,
            "denormalize": audio.denormalize_audio}


def _random_weights(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Every weight random (scaled by fan-in), so each path of the network matters;
    GroupNorm scales around 1."""
    norms = {f"{name}.weight" for name, module in model.named_modules()
             if isinstance(module, torch.nn.GroupNorm)}
    rng = np.random.default_rng(seed)
    state = {}
    for key, value in sorted(model.state_dict().items()):
        noise = rng.standard_normal(tuple(value.shape))
        if key in norms:
            data = 1.0 + 0.2 * noise
        elif value.ndim >= 2:  # ConvTranspose2d weights are [in, out, k, 1]
            fan_in = value.shape[0] if "convtrs" in key else int(np.prod(value.shape[1:]))
            data = noise / np.sqrt(fan_in)
        else:
            data = 0.2 * noise
        state[key] = torch.from_numpy(data.astype(np.float32))
    return state


def main(msst: Path) -> None:
    import yaml  # the reference reads its configs with PyYAML's full loader too

    ref = _load_reference(msst)
    torch.set_num_threads(1)
    config = yaml.load(SCNET_YAML, Loader=yaml.FullLoader)  # noqa: S506 - our own text
    torch.manual_seed(0)
    model = ref["SCNet"](**config["model"]).eval()
    state = _random_weights(model, 0)
    model.load_state_dict(state, strict=True)
    rng = np.random.default_rng(16)
    arrays: dict[str, np.ndarray] = {"yaml": np.array(SCNET_YAML),
                                     "names": np.array("\n".join(sorted(state)))}
    for i, key in enumerate(sorted(state)):
        arrays[f"w{i}"] = state[key].numpy()
    # forward on chunks (hop 16): 520 padded by 8, 512 by one hop, 496 by two hops
    for batch, length in ((2, 520), (1, 512), (1, 496)):
        x = (0.3 * rng.standard_normal((batch, 2, length))).astype(np.float32)
        with torch.no_grad():
            y = model(torch.from_numpy(x)).numpy()
        arrays[f"chunk{length}/in"], arrays[f"chunk{length}/out"] = x, y
    t = np.arange(1300) / 44100.0
    mix = (0.3 * np.sin(2 * np.pi * 220 * t)[None] + 0.1 * rng.standard_normal((2, 1300))
           + 0.05).astype(np.float32)  # an offset, so normalising changes the mean too
    arrays["mix"] = mix
    names = config["training"]["instruments"]
    with torch.no_grad():
        out = ref["demix"](MsstConfig(config), model, mix, torch.device("cpu"), "scnet")
        arrays["demix/out"] = np.stack([out[n] for n in names]).astype(np.float32)
        normed, params = ref["normalize"](mix)  # inference.py with inference.normalize
        out = ref["demix"](MsstConfig(config), model, normed, torch.device("cpu"), "scnet")
        arrays["demix_normalized/out"] = np.stack(
            [ref["denormalize"](out[n], params) for n in names]).astype(np.float32)
    for size, section in PUBLISHED.items():
        with torch.device("meta"):
            layout = ref["SCNet"](**PUBLISHED_COMMON, **section).state_dict()
        arrays[f"layout_{size}/names"] = np.array("\n".join(layout))
        arrays[f"layout_{size}/shapes"] = np.array(
            "\n".join(",".join(map(str, v.shape)) for v in layout.values()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(OUT)
    print(f"{OUT}: {OUT.stat().st_size / 1000:.0f} KB, {len(state)} tensors, "
          f"{sum(v.numel() for v in state.values())} weights")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: scnet_reference_fixture.py MSST_CHECKOUT")
    main(Path(sys.argv[1]))
