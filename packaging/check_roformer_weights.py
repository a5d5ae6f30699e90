"""Check a real BS-/Mel-Band RoFormer, MDX23C or SCNet checkpoint (.ckpt + YAML) against
Stemwright: the
files' sha256 (for the zoo entries, which need them), that they load safely, and, given a
checkout of ZFTurbo's Music-Source-Separation-Training (MSST) and the reference's extra
packages, that our Separator path and MSST's `demix` give the same stems.

Needs the real files, so it is run by hand on a machine with a network, never in tests:

    curl -LO https://github.com/nomadkaraoke/python-audio-separator/releases/download/model-configs/BS-Roformer-SW.ckpt
    curl -LO https://github.com/nomadkaraoke/python-audio-separator/releases/download/model-configs/BS-Roformer-SW.yaml
    git clone https://github.com/ZFTurbo/Music-Source-Separation-Training /tmp/msst
    pip install --no-deps --target /tmp/refdeps beartype rotary-embedding-torch
    .venv/bin/python packaging/check_roformer_weights.py BS-Roformer-SW.ckpt \\
        BS-Roformer-SW.yaml --msst /tmp/msst --deps /tmp/refdeps [--audio song.wav]

Prints one line per check; exits non-zero when a stem differs by more than --atol.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("config", type=Path)
    parser.add_argument("--msst", type=Path, help="MSST checkout: compare with its demix")
    parser.add_argument("--deps", type=Path, help="folder with beartype, rotary_embedding_torch")
    parser.add_argument("--audio", type=Path, help="audio file (default: 12 s of test signal)")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args()

    from stemwright.models.separation.roformer_backend import (
        RoformerSeparator,
        load_roformer,
    )
    from stemwright.models.zoo.download import sha256_file

    for path in (args.checkpoint, args.config):
        print(f"{path.name}: sha256 {sha256_file(path)}, {path.stat().st_size} bytes")
    start = time.monotonic()
    model, cfg = load_roformer(args.checkpoint, args.config)
    sep = RoformerSeparator(model, cfg, args.checkpoint.stem, device="cpu")
    print(f"loaded safely in {time.monotonic() - start:.1f} s: {cfg.architecture}, "
          f"{sep.mapping.describe()}; chunk {cfg.chunk_size}, num_overlap {cfg.num_overlap}")
    if args.audio:
        from stemwright.models.audio.io import load_audio

        mix = load_audio(args.audio, cfg.samplerate).data
        mix = mix[:, :int(args.seconds * cfg.samplerate)]
    else:
        t = np.arange(int(args.seconds * cfg.samplerate)) / cfg.samplerate
        rng = np.random.default_rng(0)
        mix = np.stack([0.3 * np.sin(2 * np.pi * 110 * t), 0.3 * np.sin(2 * np.pi * 165 * t)])
        mix = (mix + 0.05 * rng.standard_normal(mix.shape)).astype(np.float32)
    start = time.monotonic()
    ours = sep._infer(mix, None, None, [], 0.0)  # native sources, as demix returns them
    print(f"separated {mix.shape[-1] / cfg.samplerate:.1f} s in "
          f"{time.monotonic() - start:.1f} s")
    if not args.msst:
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from msst_reference import MsstConfig

    full = yaml.load(args.config.read_text(), Loader=yaml.FullLoader)  # noqa: S506 - checked
    full.setdefault("inference", {})["batch_size"] = 1  # MSST's batch fades differ otherwise
    kwargs = {k: v for k, v in full["model"].items() if k != "sage_attention"}
    if cfg.architecture == "mdx23c":  # MSST builds it from the whole config
        from mdx23c_reference_fixture import _load_reference

        ref = _load_reference(args.msst)
        reference = ref["net"](MsstConfig(full))
    elif cfg.architecture == "scnet":
        from scnet_reference_fixture import _load_reference

        ref = _load_reference(args.msst)
        reference = ref["SCNet"](**kwargs)
    else:
        from roformer_reference_fixture import _load_reference

        ref = _load_reference(args.msst, args.deps or args.msst)
        reference = ref[cfg.architecture](**kwargs)
    reference.eval().load_state_dict(model.state_dict(), strict=True)
    expected = ref["demix"](MsstConfig(full), reference, mix, torch.device("cpu"),
                            cfg.architecture)
    worst = 0.0
    for i, name in enumerate(cfg.sources):
        diff = float(np.abs(ours[i] - expected[name]).max())
        worst = max(worst, diff)
        print(f"{name}: max |ours - MSST| = {diff:.2e} (peak {np.abs(expected[name]).max():.3f})")
    return 0 if worst <= args.atol else 1


if __name__ == "__main__":
    sys.exit(main())
