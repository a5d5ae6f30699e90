"""Write tests/data/roformer_reference.npz: tiny random-weight BS-RoFormer and Mel-Band
RoFormer checkpoints (official state dict layout) with what the *reference* code makes of
a test signal, for tests/test_roformer.py's parity tests.

The reference is ZFTurbo's Music-Source-Separation-Training (MSST): its model classes
(models/bs_roformer/) and its `utils.model_utils.demix`. It needs beartype and
rotary-embedding-torch, which Stemwright does not depend on, so it runs here, once, from
a local checkout, never in the tests:

    git clone https://github.com/ZFTurbo/Music-Source-Separation-Training /tmp/msst
    pip install --no-deps --target /tmp/refdeps beartype rotary-embedding-torch
    .venv/bin/python packaging/roformer_reference_fixture.py /tmp/msst /tmp/refdeps

(Made with MSST ccc011abf7f8, beartype 0.22.9, rotary-embedding-torch 0.8.9, torch 2.11.)
`ml_collections` (only a type in `demix`'s module) is stubbed. The fixture stores, for
each model: the YAML config (MSST layout, `!!python/tuple` tags included), the weights,
and the reference output for the stored input; plus librosa's mel band layout of the
published Mel-Band RoFormers. Under 200 KB in all.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from msst_reference import MsstConfig, msst_importer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "roformer_reference.npz"

BANDS = (2,) * 4 + (3,) * 3 + (4,) * 2 + (8,)  # 33 bins: n_fft 64
BS_YAML = f"""\
audio:
  chunk_size: 1024
  n_fft: 64
  num_channels: 2
  sample_rate: 44100
model:
  dim: 8
  depth: 1
  stereo: true
  num_stems: 2
  time_transformer_depth: 1
  freq_transformer_depth: 1
  linear_transformer_depth: 1
  freqs_per_bands: !!python/tuple
{''.join(f'  - {b}{chr(10)}' for b in BANDS)}  dim_head: 4
  heads: 2
  attn_dropout: 0.1
  ff_dropout: 0.1
  flash_attn: true
  dim_freqs_in: 33
  stft_n_fft: 64
  stft_hop_length: 16
  stft_win_length: 64
  stft_normalized: false
  mask_estimator_depth: 2
  mlp_expansion_factor: 1
  multi_stft_resolution_loss_weight: 1.0
  multi_stft_resolutions_window_sizes: !!python/tuple
  - 256
  - 128
  multi_stft_hop_size: 147
  multi_stft_normalized: false
training:
  instruments:
  - drums
  - guitar
  use_amp: true
inference:
  batch_size: 1
  num_overlap: 2
"""
MEL_YAML = """\
audio:
  chunk_size: 1024
  num_channels: 2
  sample_rate: 44100
model:
  dim: 8
  depth: 1
  stereo: true
  num_stems: 1
  time_transformer_depth: 1
  freq_transformer_depth: 1
  num_bands: 6
  dim_head: 4
  heads: 2
  attn_dropout: 0
  ff_dropout: 0
  flash_attn: false
  dim_freqs_in: 33
  sample_rate: 44100
  stft_n_fft: 64
  stft_hop_length: 16
  stft_win_length: 64
  stft_normalized: false
  mask_estimator_depth: 1
  mlp_expansion_factor: 1
training:
  instruments:
  - vocals
  - other
  target_instrument: vocals
inference:
  batch_size: 1
  num_overlap: 4
"""


def _load_reference(msst: Path, deps: Path) -> dict:
    """MSST's classes and demix, imported from the checkout without its package inits."""
    load = msst_importer(msst, ("models", "models.bs_roformer", "utils"), paths=(deps,))
    bs = load("models.bs_roformer.bs_roformer")
    mel = load("models.bs_roformer.mel_band_roformer")
    utils = load("utils.model_utils")
    return {"bs_roformer": bs.BSRoformer, "mel_band_roformer": mel.MelBandRoformer,
            "demix": utils.demix}


def _random_weights(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Every weight random (scaled by fan-in), so each path of the network matters; the
    rotary frequencies keep their fixed values, as in real checkpoints."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, value in sorted(model.state_dict().items()):
        if key.endswith("rotary_embed.freqs"):
            state[key] = value.clone()
            continue
        noise = rng.standard_normal(tuple(value.shape))
        if key.endswith("gamma"):
            data = 1.0 + 0.2 * noise
        elif key.endswith("weight") and value.ndim == 2:
            data = noise / np.sqrt(value.shape[1])
        else:
            data = 0.2 * noise
        state[key] = torch.from_numpy(data.astype(np.float32))
    return state


def main(msst: Path, deps: Path) -> None:
    import yaml  # the reference reads its configs with PyYAML's full loader too

    ref = _load_reference(msst, deps)
    rng = np.random.default_rng(16)
    t = np.arange(2200) / 44100.0
    mix = (0.3 * np.sin(2 * np.pi * 220 * t)[None] + 0.1 * rng.standard_normal((2, 2200))
           ).astype(np.float32)
    arrays: dict[str, np.ndarray] = {"mix": mix}
    for seed, (arch, text) in enumerate((("bs_roformer", BS_YAML),
                                         ("mel_band_roformer", MEL_YAML))):
        config = yaml.load(text, Loader=yaml.FullLoader)  # noqa: S506 - our own text
        torch.manual_seed(seed)
        model = ref[arch](**config["model"]).eval()
        state = _random_weights(model, seed)
        model.load_state_dict(state, strict=True)
        with torch.no_grad():
            out = ref["demix"](MsstConfig(config), model, mix, torch.device("cpu"), arch)
        names = ([config["training"]["target_instrument"]]
                 if config["training"].get("target_instrument")
                 else config["training"]["instruments"])
        arrays[f"{arch}/yaml"] = np.array(text)
        arrays[f"{arch}/names"] = np.array("\n".join(sorted(state)))
        for i, key in enumerate(sorted(state)):
            arrays[f"{arch}/w{i}"] = state[key].numpy()
        arrays[f"{arch}/out"] = np.stack([out[n] for n in names]).astype(np.float32)
    # librosa's mel bands of the published Mel-Band RoFormers (44.1 kHz, n_fft 2048, 60
    # bands), which `architectures.roformer.mel_band_layout` must reproduce without it.
    import librosa

    fb = librosa.filters.mel(sr=44100, n_fft=2048, n_mels=60)
    fb[0, 0] = fb[-1, -1] = 1.0
    arrays["mel_layout_44100_2048_60"] = np.packbits(fb > 0)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(OUT)
    print(f"{OUT}: {OUT.stat().st_size / 1000:.0f} KB")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: roformer_reference_fixture.py MSST_CHECKOUT DEPS_DIR")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
