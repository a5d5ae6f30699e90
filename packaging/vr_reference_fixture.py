"""Write tests/data/vr_reference.npz: tiny random-weight UVR VR-architecture networks
(official state dict layout; the weights as a seed and digest, see `tiny_weights`) with
what the *reference* code makes of a test signal, for tests/test_vr.py's parity tests.

The reference is python-audio-separator (MIT): its VR networks
(`separator/uvr_lib_v5/vr_network/nets_new.py`, `nets.py`), `uvr_lib_v5/spec_utils.py`
and `separator/architectures/vr_separator.py`, whose `VRSeparator.loading_mix`,
`inference_vr` and `spec_to_wav` run here on an instance made without its file and
logging set-up. It needs packages Stemwright does not (onnxruntime, pydub, six...), so
it runs here, once, from the unpacked wheel, never in the tests:

    pip download --no-deps audio-separator==0.47.1 -d /tmp/asep
    cd /tmp/asep && unzip -q audio_separator-0.47.1-*.whl -d src
    .venv/bin/python packaging/vr_reference_fixture.py /tmp/asep/src

(Made with audio-separator 0.47.1, librosa 0.11.0, scipy 1.17.1, torch 2.11.) The
package's `__init__`s are skipped and pydub/six stubbed. One setting differs from a
Linux run of the reference: `spec_utils.wav_resolution` (how bands are resampled back
up) is "polyphase", the reference's own value on Apple Silicon, because Stemwright has
no libsamplerate for the "sinc_fastest" it uses elsewhere.

Three cases, each with its weights, settings and the reference's (primary, secondary)
waves: "wind" (17_HP-Wind_Inst-UVR's layout: 4band_v3, a v5.1 CascadedNet, primary
"No Woodwinds", UVR's defaults), "tta" (a small 1-band layout, CascadedNet, primary
"Vocals", several windows in batches of 2, test-time augmentation and post-process), and
"aspp" (4band_44100 with a v4/v5 CascadedASPPNet with 7 ASPP branches).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "vr_reference.npz"
LENGTH = 4410  # samples at 44.1 kHz
#: A small single-band layout: many frames in a short signal, so many windows.
TINY_PARAMS = {"bins": 64, "unstable_bins": 0, "reduction_bins": 0,
               "band": {"1": {"sr": 44100, "hl": 32, "n_fft": 128, "crop_start": 0,
                              "crop_stop": 64, "hpf_start": -1, "res_type": "polyphase"}},
               "sr": 44100, "pre_filter_start": 60, "pre_filter_stop": 64}
CASES = {
    "wind": {"params": "4band_v3", "net": "cascaded", "nout": 4, "nout_lstm": 4,
             "primary": "No Woodwinds", "window_size": 512, "batch_size": 1,
             "aggression": 5, "tta": False, "post_process": False},
    "tta": {"params": TINY_PARAMS, "net": "cascaded", "nout": 4, "nout_lstm": 4,
            "primary": "Vocals", "window_size": 144, "batch_size": 2, "aggression": 10,
            "tta": True, "post_process": True},
    "aspp": {"params": "4band_44100", "net": "aspp", "ch": 2, "arch": 537238,
             "primary": "Instrumental", "window_size": 512, "batch_size": 1,
             "aggression": 5, "tta": False, "post_process": False},
}


def _load_reference(src: Path) -> dict:
    """audio-separator's VR code, imported without its package inits."""
    sys.path.insert(0, str(src))
    root = src / "audio_separator"
    for name, folder in (("audio_separator", root),
                         ("audio_separator.separator", root / "separator"),
                         ("audio_separator.separator.architectures",
                          root / "separator" / "architectures")):
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]
        sys.modules[name] = module
    sys.modules.setdefault("pydub", types.SimpleNamespace(AudioSegment=object))
    sys.modules.setdefault("six", types.SimpleNamespace(PY2=False, string_types=(str,)))
    from audio_separator.separator.architectures import vr_separator
    from audio_separator.separator.uvr_lib_v5 import spec_utils
    from audio_separator.separator.uvr_lib_v5.vr_network import nets, nets_new
    from audio_separator.separator.uvr_lib_v5.vr_network.model_param_init import (
        ModelParameters,
    )

    spec_utils.wav_resolution = "polyphase"
    return {"vr": vr_separator, "nets": nets, "nets_new": nets_new,
            "ModelParameters": ModelParameters,
            "params_dir": root / "separator" / "uvr_lib_v5" / "vr_network" / "modelparams"}


def tiny_weights(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random weights for `model`'s state dict from integer hashing (portable: the same
    bits on every numpy and CPU), scaled by fan-in, batch-norm statistics plausible.

    The fixture stores the seed and a digest instead of the weights (the smallest VR
    networks still hold ~200k values); tests/test_vr.py rebuilds them with this function
    and checks the digest."""
    state = {}
    for i, (key, value) in enumerate(model.state_dict().items()):
        if not value.is_floating_point():
            state[key] = value.clone()
            continue
        x = np.arange(value.numel(), dtype=np.uint64)
        x += np.uint64(seed * 1_000_003 + i * 7_919)
        x *= np.uint64(6364136223846793005)
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xFF51AFD7ED558CCD)
        x ^= x >> np.uint64(33)
        u = 2.0 * ((x >> np.uint64(40)).astype(np.float64) / 2.0 ** 24) - 1.0  # [-1, 1)
        u = u.reshape(tuple(value.shape))
        if key.endswith("running_var"):
            data = 1.0 + 0.3 * np.abs(u)
        elif key.endswith("running_mean") or key.endswith("bias"):
            data = 0.1 * u
        elif value.ndim == 1:  # batch-norm scale
            data = 1.0 + 0.2 * u
        else:
            data = u * np.sqrt(3.0 / max(int(np.prod(value.shape[1:])), 1))
        state[key] = torch.from_numpy(data.astype(np.float32))
    return state


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names and float32 bytes of a state dict, in order."""
    import hashlib

    h = hashlib.sha256()
    for key, value in state.items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _aspp_capacity(ch: int) -> list[tuple[int, ...]]:
    """nets.determine_model_capacity's table for `ch` channels (16, 32, 64 there)."""
    return [(2, ch), (2, ch), (2 + ch, ch // 2, 1, 1, 0), (ch // 2, ch),
            (2 + 2 * ch, ch, 1, 1, 0), (ch, 2 * ch), (2 * ch, 2, 1), (ch, 2, 1), (ch, 2, 1)]


def _run_case(ref: dict, case: dict, mix: np.ndarray, seed: int, tmp: Path
              ) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """The reference's primary and secondary waves [2, 2, n] for `mix` [2, T]."""
    import soundfile as sf

    if isinstance(case["params"], dict):
        params_path = tmp / f"params{seed}.json"
        params_path.write_text(json.dumps(case["params"]))
    else:
        params_path = ref["params_dir"] / f"{case['params']}.json"
    mp = ref["ModelParameters"](str(params_path))
    n_fft = mp.param["bins"] * 2
    torch.manual_seed(seed)
    if case["net"] == "cascaded":
        model = ref["nets_new"].CascadedNet(n_fft, 0, nout=case["nout"],
                                            nout_lstm=case["nout_lstm"])
    else:
        model = ref["nets"].CascadedASPPNet(n_fft, _aspp_capacity(case["ch"]), case["arch"])
    state = tiny_weights(model, seed)
    model.load_state_dict(state, strict=True)
    model.eval()

    sep = object.__new__(ref["vr"].VRSeparator)
    wav = tmp / f"mix{seed}.wav"
    sf.write(wav, mix.T, 44100, subtype="FLOAT")
    sep.logger = types.SimpleNamespace(debug=lambda *a, **k: None, info=lambda *a, **k: None)
    sep.model_params = mp
    sep.audio_file_path = str(wav)
    sep.wav_subtype = "FLOAT"
    sep.torch_device_mps = None
    sep.high_end_process = False
    sep.input_high_end = sep.input_high_end_h = None
    sep.is_vr_51_model = case["net"] == "cascaded"
    sep.model_run = model
    sep.window_size = case["window_size"]
    sep.batch_size = case["batch_size"]
    sep.enable_tta = case["tta"]
    sep.enable_post_process = case["post_process"]
    sep.post_process_threshold = 0.2
    sep.primary_stem_name = case["primary"]
    aggressiveness = {"value": float(int(case["aggression"]) / 100),
                      "split_bin": mp.param["band"][1]["crop_stop"],
                      "aggr_correction": mp.param.get("aggr_correction")}
    y_spec, v_spec = sep.inference_vr(sep.loading_mix(), torch.device("cpu"), aggressiveness)
    y_spec = np.nan_to_num(y_spec, nan=0.0, posinf=0.0, neginf=0.0)
    v_spec = np.nan_to_num(v_spec, nan=0.0, posinf=0.0, neginf=0.0)
    waves = np.stack([sep.spec_to_wav(y_spec), sep.spec_to_wav(v_spec)])
    return state, waves.astype(np.float32)


def main(src: Path) -> None:
    import tempfile

    ref = _load_reference(src)
    rng = np.random.default_rng(16)
    t = np.arange(LENGTH) / 44100.0
    mix = (0.3 * np.sin(2 * np.pi * 440 * t)[None] * np.array([[1.0], [0.6]])
           + 0.1 * rng.standard_normal((2, LENGTH))).astype(np.float32)
    arrays: dict[str, np.ndarray] = {"mix": mix}
    with tempfile.TemporaryDirectory() as tmp:
        for seed, (label, case) in enumerate(CASES.items()):
            state, waves = _run_case(ref, case, mix, seed, Path(tmp))
            arrays[f"{label}/case"] = np.array(json.dumps(case))
            arrays[f"{label}/seed"] = np.array(seed)
            arrays[f"{label}/digest"] = np.array(weights_digest(state))
            arrays[f"{label}/out"] = waves
            print(label, waves.shape, sum(v.numel() for v in state.values()), "weights")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = OUT.with_suffix(".tmp.npz")
    np.savez_compressed(tmp_out, **arrays)
    tmp_out.replace(OUT)
    print(f"{OUT}: {OUT.stat().st_size / 1000:.0f} KB")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: vr_reference_fixture.py AUDIO_SEPARATOR_SRC (the unpacked wheel)")
    main(Path(sys.argv[1]))
