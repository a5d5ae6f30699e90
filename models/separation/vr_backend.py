"""UVR's VR-architecture models (e.g. 17_HP-Wind_Inst-UVR) behind the Separator interface.

A VR model is a `.pth` state dict of a mask network (`architectures.vr_net`) plus a
"model params" JSON naming its multi-band spectrogram: each band is the song resampled to
the band's rate, STFT'd with its own n_fft/hop, and a slice of its bins (crop_start to
crop_stop) stacked into one magnitude spectrogram of `bins + 1` rows. Which params file
and which primary stem a model uses is UVR's model data (`vr_model_data/model_data_new.json`
in TRvlvr/application_data, keyed by the MD5 of the file's last 10,000 KiB; see
`UVR_VR_MODEL_DATA`). The network is told as UVR tells it: `nout`/`nout_lstm` in the
model data, or else the file's size (`architectures.vr_net.uvr_arch_size`).

Inference follows python-audio-separator's `VRSeparator` (MIT) with its defaults, so a
model separates here as it does there:

  * the mix spectrogram's magnitude is padded by the network's `offset` frames, normalised
    by its maximum, and cut into windows of `window_size` frames (512) that advance by
    `window_size - 2 offset`; the network's masks of the windows' centres are joined;
  * optional test-time augmentation (a second pass shifted by half a window, averaged)
    and the "post-process" artefact merge (`merge_artifacts`, threshold 0.2), both off by
    default as there;
  * aggression 5: the primary stem's mask is raised to 1 + a/3 below the first band's
    crop_stop and 1 + a above (a = 2 x aggression / 100, or 1 - that for primary stems
    that are an instrument, e.g. "Vocals");
  * primary = mask x mix, secondary = (1 - mask) x mix, each back to a waveform band by
    band (v5.1 networks with UVR's linear filter masks, older ones with its gain ramps).

Differences, deliberate: bands are resampled on the way back with polyphase filters
(scipy), which the reference uses on Apple Silicon; elsewhere it uses libsamplerate's
"sinc_fastest", which Stemwright does not depend on (on a 3 s test signal the two
differ by -59 dB of a stem's energy: resampler ripple around the band edges). A band
whose `res_type` needs resampy or libsamplerate (not installed) is resampled with soxr
instead, and the separator says so in `notes`. UVR's "high end process" (mirroring) is
not offered. The song is separated whole (the
normalisation by the song's maximum needs it), so partial results arrive as one region.

Long because the params format, its validation, the band-wise STFT and the inference loop
belong together: each is only correct against the others.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..architectures.vr_net import (
    UVR_CASCADED_SIZES,
    CascadedASPPNet,
    CascadedNet,
    aspp_config_for_size,
    uvr_arch_size,
)
from ..errors import ModelError
from ..progress import CancelCheck, ProgressCallback, ProgressTracker, check_cancel
from ..stems import StemMapping
from .chunking import FinalRegionHook
from .roformer_backend import INSTRUMENT_STEMS
from .separator import ModelPass, SeparationResult, Separator

#: The band layouts shipped with Stemwright: UVR's files from python-audio-separator
#: (`uvr_lib_v5/vr_network/modelparams`, MIT licence, copyright (c) 2023 karaokenerds
#: and the UVR authors; see vr_params/LICENSE), those whose bands are all resampled with
#: filters Stemwright has (polyphase).
PARAMS_DIR = Path(__file__).with_name("vr_params")
MAX_PARAMS_BYTES = 64 * 1024
#: UVR's `vr_model_data/model_data_new.json` (TRvlvr/application_data): the MD5 of a
#: model file's last 10,000 KiB -> (model params, primary stem, nout, nout_lstm).
UVR_VR_MODEL_DATA: dict[str, tuple[str, str, int | None, int | None]] = {
    "0d0e6d143046b0eecc41a22e60224582": ("3band_44100_mid", "Instrumental", None, None),
    "18b52f873021a0af556fb4ecd552bb8e": ("2band_32000", "Instrumental", None, None),
    "1fc66027c82b499c7d8f55f79e64cadc": ("2band_32000", "Instrumental", None, None),
    "2aa34fbc01f8e6d2bf509726481e7142": ("4band_44100", "No Piano", None, None),
    "3e18f639b11abea7361db1a4a91c2559": ("4band_44100", "Instrumental", None, None),
    "570b5f50054609a17741369a35007ddd": ("4band_v3", "Instrumental", None, None),
    "5a6e24c1b530f2dab045a522ef89b751": ("1band_sr44100_hl512", "Instrumental", None, None),
    "6b5916069a49be3fe29d4397ecfd73fa": ("3band_44100_msb2", "Instrumental", None, None),
    "74b3bc5fa2b69f29baf7839b858bc679": ("4band_44100", "Instrumental", None, None),
    "827213b316df36b52a1f3d04fec89369": ("4band_44100", "Instrumental", None, None),
    "911d4048eee7223eca4ee0efb7d29256": ("4band_44100", "Vocals", None, None),
    "941f3f7f0b0341f12087aacdfef644b1": ("4band_v2", "Instrumental", None, None),
    "a02827cf69d75781a35c0e8a327f3195": ("1band_sr33075_hl384", "Instrumental", None, None),
    "b165fbff113c959dba5303b74c6484bc": ("3band_44100", "Instrumental", None, None),
    "b5f988cd3e891dca7253bf5f0f3427c7": ("4band_44100", "Instrumental", None, None),
    "b99c35723bc35cb11ed14a4780006a80": ("1band_sr44100_hl1024", "Instrumental", None, None),
    "ba02fd25b71d620eebbdb49e18e4c336": ("3band_44100_mid", "Instrumental", None, None),
    "c4476ef424d8cba65f38d8d04e8514e2": ("3band_44100_msb2", "Instrumental", None, None),
    "da2d37b8be2972e550a409bae08335aa": ("4band_44100", "Vocals", None, None),
    "db57205d3133e39df8e050b435a78c80": ("4band_44100", "Instrumental", None, None),
    "ea83b08e32ec2303456fe50659035f69": ("4band_v3", "Instrumental", None, None),
    "f6ea8473ff86017b5ebd586ccacf156b": ("4band_v2_sn", "Instrumental", None, None),
    "fd297a61eafc9d829033f8b987c39a3d": ("1band_sr32000_hl512", "Instrumental", None, None),
    # 17_HP-Wind_Inst-UVR.pth (the only woodwind entry)
    "0ec76fd9e65f81d8b4fbd13af4826ed8": ("4band_v3", "No Woodwinds", None, None),
    "0fb9249ffe4ffc38d7b16243f394c0ff": ("4band_v3", "No Reverb", None, None),
    "6857b2972e1754913aad0c9a1678c753": ("4band_v3", "No Echo", 48, 128),
    "f200a145434efc7dcf0cd093f517ed52": ("4band_v3", "No Echo", 48, 128),
    "44c55d8b5d2e3edea98c2b2bf93071c7": ("4band_v3", "Noise", 48, 128),
    "51ea8c43a6928ed3c10ef5cb2707d57b": ("1band_sr44100_hl1024", "Noise", 16, 128),
    "944950a9c5963a5eb70b445d67b7068a": ("4band_v3_sn", "Vocals", 64, 128),
}
#: UVR's stems that are an instrument (CommonSeparator.NON_ACCOM_STEMS): aggression is
#: applied the other way round when the primary stem is one of them.
NON_ACCOM_STEMS = ("Vocals", "Other", "Bass", "Drums", "Guitar", "Piano", "Synthesizer",
                   "Strings", "Woodwinds", "Brass", "Wind Inst")
#: UVR's fixed stem pairs; otherwise "No X" <-> "X".
_STEM_PAIRS = {"Vocals": "Instrumental", "Instrumental": "Vocals",
               "Primary Stem": "Secondary Stem"}
_EXTRA_STEMS = {"wind_inst": "wind", "synthesizer": "other"}
_HASH_BYTES = 10000 * 1024
_RESAMPLER_PACKAGES = {"kaiser_best": "resampy", "kaiser_fast": "resampy",
                       "sinc_best": "samplerate", "sinc_medium": "samplerate",
                       "sinc_fastest": "samplerate", "linear": "samplerate",
                       "zero_order_hold": "samplerate"}
#: How waves go back up between bands (the reference: "polyphase" on Apple Silicon).
OUTPUT_RES_TYPE = "polyphase"


# -- model params ---------------------------------------------------------------------------

@dataclass(frozen=True)
class VRBand:
    """One band of a VR spectrogram (UVR's names)."""

    sr: int
    hl: int
    n_fft: int
    crop_start: int
    crop_stop: int
    res_type: str
    hpf_start: int = -1
    hpf_stop: int = -1
    lpf_start: int = -1
    lpf_stop: int = -1
    convert_channels: str | None = None


@dataclass(frozen=True)
class VRParams:
    """A VR model params file: the bands (lowest first) and how they are combined."""

    name: str
    bins: int
    sr: int
    pre_filter_start: int
    pre_filter_stop: int
    bands: tuple[VRBand, ...]
    reverse: bool = False
    mid_side: bool = False
    mid_side_b2: bool = False
    aggr_correction: tuple[float, float] | None = None

    @property
    def n_fft(self) -> int:
        """The n_fft the network is built with (2 x bins)."""
        return 2 * self.bins


def _whole(value: Any, where: str, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ModelError(f"{name}: '{where}' must be a whole number from {lo} to {hi}, "
                         f"not {str(value)[:40]!r}")
    return value


def parse_vr_params(text: str, name: str = "params.json") -> VRParams:
    """Read a UVR VR model params JSON (e.g. 4band_v3.json); ModelError naming `name`
    and the first setting that is missing or out of range."""
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ModelError(f"{name}: not a VR model params file (invalid JSON: "
                         f"{str(exc)[:80]})") from None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("band"), Mapping):
        raise ModelError(f"{name}: not a VR model params file (no 'band' section)")
    bins = raw.get("n_bins", raw.get("bins"))
    bins = _whole(bins, "bins", name, 16, 16384)
    sr = _whole(raw.get("sr", 44100), "sr", name, 1000, 384000)
    bands_raw = raw["band"]
    count = len(bands_raw)
    if not 1 <= count <= 8 or set(bands_raw) != {str(i) for i in range(1, count + 1)}:
        raise ModelError(f"{name}: 'band' must be numbered 1 to n (n at most 8), not "
                         f"{sorted(map(str, bands_raw))[:8]}")
    bands = []
    for d in range(1, count + 1):
        b = bands_raw[str(d)]
        where = f"band {d}"
        if not isinstance(b, Mapping):
            raise ModelError(f"{name}: '{where}' must be a mapping of settings")
        n_fft = _whole(b.get("n_fft"), f"{where}: n_fft", name, 16, 65536)
        half = n_fft // 2 + 1
        kw: dict[str, Any] = {
            "sr": _whole(b.get("sr"), f"{where}: sr", name, 1000, sr),
            "hl": _whole(b.get("hl"), f"{where}: hl", name, 1, n_fft),
            "n_fft": n_fft,
            "crop_start": _whole(b.get("crop_start"), f"{where}: crop_start", name, 0, half),
            "crop_stop": _whole(b.get("crop_stop"), f"{where}: crop_stop", name, 1, half),
        }
        res_type = b.get("res_type", "polyphase")
        if not isinstance(res_type, str) or len(res_type) > 40:
            raise ModelError(f"{name}: '{where}: res_type' must be a resampler name")
        kw["res_type"] = res_type
        if kw["crop_stop"] <= kw["crop_start"]:
            raise ModelError(f"{name}: '{where}': crop_stop must be above crop_start")
        need = []
        if d < count:
            need += ["lpf_start", "lpf_stop"]
        if d > 1:
            need += ["hpf_start", "hpf_stop"]
        for key in ("hpf_start", "hpf_stop", "lpf_start", "lpf_stop"):
            if key in b or key in need:
                kw[key] = _whole(b.get(key), f"{where}: {key}", name, -1, half)
        if d == count and kw.get("hpf_start", -1) > 0 and "hpf_stop" not in kw:
            raise ModelError(f"{name}: '{where}' has hpf_start but no hpf_stop")
        for lo, hi in (("lpf_start", "lpf_stop"), ("hpf_stop", "hpf_start")):
            if kw.get(lo, -1) > 0 and not 1 <= kw[lo] <= kw[hi] < half:
                raise ModelError(f"{name}: '{where}': {lo} {kw[lo]} and {hi} {kw[hi]} do "
                                 f"not fit its {half} bins")
        cc = b.get("convert_channels")
        if cc is not None and cc not in ("mid_side_c", "mid_side", "stereo_n"):
            raise ModelError(f"{name}: '{where}: convert_channels' {str(cc)[:30]!r} is not "
                             "one of mid_side_c, mid_side, stereo_n")
        kw["convert_channels"] = cc
        bands.append(VRBand(**kw))
    if bands[-1].sr != sr:
        raise ModelError(f"{name}: the last band's rate {bands[-1].sr} Hz must be the "
                         f"model's 'sr' {sr} Hz")
    width = sum(b.crop_stop - b.crop_start for b in bands)
    if width > bins:
        raise ModelError(f"{name}: its bands stack {width} bins, more than its {bins}")
    pre_start = _whole(raw.get("pre_filter_start", -1), "pre_filter_start", name, -1, bins)
    pre_stop = _whole(raw.get("pre_filter_stop", -1), "pre_filter_stop", name, -1, bins)
    if pre_start > 0 and not pre_start <= pre_stop <= bins:
        raise ModelError(f"{name}: pre_filter_stop must be from pre_filter_start to bins")
    correction = raw.get("aggr_correction")
    if correction is not None:
        try:
            correction = (float(correction["left"]), float(correction["right"]))
        except (TypeError, KeyError, ValueError):
            raise ModelError(f"{name}: 'aggr_correction' must have numbers 'left' and "
                             "'right'") from None
        if not all(math.isfinite(c) for c in correction):
            raise ModelError(f"{name}: 'aggr_correction' must be finite")
    flags = {k: raw.get(k, False) is True for k in ("reverse", "mid_side", "mid_side_b2")}
    return VRParams(name=name.removesuffix(".json"), bins=bins, sr=sr,
                    pre_filter_start=pre_start, pre_filter_stop=pre_stop, bands=tuple(bands),
                    aggr_correction=correction, **flags)


def builtin_params() -> tuple[str, ...]:
    """Names of the params files shipped with Stemwright."""
    return tuple(sorted(p.stem for p in PARAMS_DIR.glob("*.json")))


def read_vr_params(params: str | os.PathLike[str]) -> VRParams:
    """A params file by built-in name ("4band_v3") or path; ModelError if unreadable."""
    text_name = str(params)
    path = Path(params)
    if os.sep not in text_name and "/" not in text_name and not text_name.endswith(".json"):
        path = PARAMS_DIR / f"{text_name}.json"
        if not path.is_file():
            raise ModelError(f"unknown VR model params {text_name[:60]!r} (built in: "
                             f"{', '.join(builtin_params())}); give the path of its .json")
    try:
        size = path.stat().st_size
        if size > MAX_PARAMS_BYTES:
            raise ModelError(f"{path.name}: {size} bytes is far too big for VR model params")
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_vr_params(text, path.name)


# -- the model -------------------------------------------------------------------------------

def uvr_model_hash(checkpoint: str | os.PathLike[str]) -> str:
    """UVR's model hash: MD5 of the file's last 10,000 KiB (all of a smaller file)."""
    path = Path(checkpoint)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            fh.seek(max(0, size - _HASH_BYTES))
            return hashlib.md5(fh.read()).hexdigest()
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def uvr_model_data(checkpoint: str | os.PathLike[str]) -> dict[str, Any] | None:
    """UVR's model data of an official VR file ({params, primary_stem, nout, nout_lstm}),
    or None for a file UVR does not know."""
    entry = UVR_VR_MODEL_DATA.get(uvr_model_hash(checkpoint))
    if entry is None:
        return None
    params, primary, nout, nout_lstm = entry
    return {"params": params, "primary_stem": primary, "nout": nout, "nout_lstm": nout_lstm}


def secondary_stem(primary: str) -> str:
    """UVR's name of the rest: Vocals <-> Instrumental, "No X" <-> "X"."""
    if primary in _STEM_PAIRS:
        return _STEM_PAIRS[primary]
    return primary[3:] if primary.startswith("No ") else f"No {primary}"


def mapping_for_uvr_stems(primary: str, secondary: str | None = None) -> StemMapping:
    """StemMapping of a VR model's (primary, secondary) stems: an instrument goes to its
    stem (Woodwinds -> wind, Vocals -> vocals, ...), "No X" and Instrumental to other;
    ModelError for stems that are not instruments (echo, reverb, noise...)."""
    secondary = secondary or secondary_stem(primary)
    targets: dict[str, str] = {}
    for src in (primary, secondary):
        key = src.strip().lower().replace("-", "_").replace(" ", "_")
        if key.startswith("no_") and key[3:] in {**INSTRUMENT_STEMS, **_EXTRA_STEMS}:
            targets[src] = "other"
        elif key in _EXTRA_STEMS or key in INSTRUMENT_STEMS:
            targets[src] = _EXTRA_STEMS.get(key) or INSTRUMENT_STEMS[key]
        else:
            raise ModelError(f"the VR model's stem {src!r} is not an instrument Stemwright "
                             "separates (de-echo, de-reverb and de-noise models are not "
                             "stem separators)")
    if primary == secondary:
        raise ModelError(f"a VR model's two stems must differ, not {primary!r} twice")
    return StemMapping((primary, secondary),
                       {s: t for s, t in targets.items() if t != s})


@dataclass(frozen=True)
class VRNetwork:
    """Which network a file holds: "cascaded" (v5.1, `CascadedNet`) or "aspp" (v4/v5,
    `CascadedASPPNet`), and its keyword arguments besides n_fft."""

    kind: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_v51(self) -> bool:
        return self.kind == "cascaded"


def network_for_file(file_bytes: int, nout: int | None = None,
                     nout_lstm: int | None = None) -> VRNetwork:
    """The network UVR builds for a file: `CascadedNet(nout, nout_lstm)` when the model
    data gives them, else by file size (a v5.1 size, or a v4/v5 ASPP capacity)."""
    if nout is not None or nout_lstm is not None:
        return VRNetwork("cascaded", {"nout": int(nout if nout is not None else 32),
                                      "nout_lstm": int(nout_lstm or 128)})
    size = uvr_arch_size(file_bytes)
    if size in UVR_CASCADED_SIZES:
        return VRNetwork("cascaded", {"nout": UVR_CASCADED_SIZES[size], "nout_lstm": 128})
    return VRNetwork("aspp", aspp_config_for_size(size))


def load_vr_model(checkpoint: str | os.PathLike[str], params: VRParams,
                  network: VRNetwork | None = None) -> tuple[torch.nn.Module, VRNetwork]:
    """The network of a VR `.pth` (a plain state dict), safely loaded (weights only) and
    checked against `params` (bins) and `network` (default: as UVR picks it)."""
    from ..zoo.checkpoint import load_roformer_checkpoint  # lazy: zoo imports separation

    path = Path(checkpoint)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if network is None:
        network = network_for_file(size)
    if network.kind not in ("cascaded", "aspp"):
        raise ModelError(f"unknown VR network {network.kind[:30]!r} (cascaded or aspp)")
    cls = CascadedNet if network.is_v51 else CascadedASPPNet
    try:
        model = load_roformer_checkpoint(path, cls, {"n_fft": params.n_fft, **network.kwargs})
    except ModelError as exc:
        text = str(exc).replace("a RoFormer state dict", "a VR model state dict")
        marker = "does not match its weights: "
        if marker in text:
            problems = text.split(marker, 1)[1].split("; ")
            hidden = re.search(r"\(and (\d+) more\)", problems[-1])
            extra = len(problems) - 1 + (int(hidden.group(1)) if hidden else 0)
            more = f" (and {extra} more)" if extra else ""
            text = (f"{path.name}: its weights do not fit a {cls.__name__} "
                     f"({', '.join(f'{k} {v}' for k, v in network.kwargs.items())}) with "
                     f"the model params '{params.name}' ({params.bins} bins): "
                     f"{problems[0].split(' (and ')[0]}{more}; give the params and "
                     "nout/nout_lstm UVR's model data names for it")
        raise ModelError(text) from None
    return model, network


# -- spectrograms (spec_utils of the reference) ------------------------------------------------

def _resample(y: np.ndarray, orig: int, target: int, res_type: str,
              notes: list[str] | None = None) -> np.ndarray:
    import librosa

    package = _RESAMPLER_PACKAGES.get(res_type)
    if package and importlib.util.find_spec(package) is None:
        if notes is not None and orig != target:
            note = (f"'{res_type}' resampling needs {package}, not installed: soxr_hq used "
                    "(results differ slightly from UVR's)")
            if note not in notes:
                notes.append(note)
        res_type = "soxr_hq"
    return librosa.resample(y, orig_sr=orig, target_sr=target, res_type=res_type)


def _convert_channels(spec: np.ndarray, cc: str | None) -> np.ndarray:
    if cc == "mid_side_c":
        left, right = np.add(spec[0], spec[1] * 0.25), np.subtract(spec[1], spec[0] * 0.25)
    elif cc == "mid_side":
        left, right = np.add(spec[0], spec[1]) / 2, np.subtract(spec[0], spec[1])
    elif cc == "stereo_n":
        left = np.add(spec[0], spec[1] * 0.25) / 0.9375
        right = np.add(spec[1], spec[0] * 0.25) / 0.9375
    else:
        return spec
    return np.asfortranarray([left, right])


def _band_spectrogram(wave: np.ndarray, band: VRBand, params: VRParams,
                      v51: bool) -> np.ndarray:
    """[2, T] -> complex [2, n_fft/2 + 1, frames] (librosa's centred STFT, as UVR)."""
    import librosa

    left, right = wave[0], wave[1]
    if not v51:
        if params.reverse:
            left, right = np.flip(left), np.flip(right)
        elif params.mid_side:
            left, right = np.add(left, right) / 2, np.subtract(left, right)
        elif params.mid_side_b2:
            left, right = np.add(right, left * 0.5), np.subtract(left, right * 0.5)
    spec = np.asfortranarray([
        librosa.stft(np.asfortranarray(ch), n_fft=band.n_fft, hop_length=band.hl)
        for ch in (left, right)])
    return _convert_channels(spec, band.convert_channels) if v51 else spec


def lp_filter_mask(n_bins: int, start: int, stop: int) -> np.ndarray:
    """1 below `start`, a linear fade to 0 at `stop`, 0 above: [n_bins, 1]."""
    return np.concatenate([np.ones((start - 1, 1)), np.linspace(1, 0, stop - start + 1)[:, None],
                           np.zeros((n_bins - stop, 1))], axis=0)


def hp_filter_mask(n_bins: int, start: int, stop: int) -> np.ndarray:
    """0 up to `stop`, a linear fade to 1 at `start`, 1 above: [n_bins, 1]."""
    return np.concatenate([np.zeros((stop + 1, 1)), np.linspace(0, 1, 1 + start - stop)[:, None],
                           np.ones((n_bins - start - 2, 1))], axis=0)


def _fft_lp_filter(spec: np.ndarray, start: int, stop: int) -> np.ndarray:
    g = 1.0
    for b in range(start, stop):
        g -= 1 / (stop - start)
        spec[:, b, :] = g * spec[:, b, :]
    spec[:, stop:, :] *= 0
    return spec


def _fft_hp_filter(spec: np.ndarray, start: int, stop: int) -> np.ndarray:
    g = 1.0
    for b in range(start, stop, -1):
        g -= 1 / (start - stop)
        spec[:, b, :] = g * spec[:, b, :]
    spec[:, 0:stop + 1, :] *= 0
    return spec


def mix_spectrogram(mix: np.ndarray, params: VRParams, v51: bool,
                    notes: list[str] | None = None) -> np.ndarray:
    """The combined spectrogram of `mix` [2, T] at `params.sr`: complex64
    [2, bins + 1, frames] (bands cropped and stacked, the top pre-filtered)."""
    count = len(params.bands)
    waves: dict[int, np.ndarray] = {}
    specs: dict[int, np.ndarray] = {}
    for d in range(count, 0, -1):
        band = params.bands[d - 1]
        if d == count:
            waves[d] = np.asarray(mix, dtype=np.float32)
        else:
            upper = params.bands[d]
            waves[d] = _resample(waves[d + 1], upper.sr, band.sr, band.res_type, notes)
        specs[d] = _band_spectrogram(waves[d], band, params, v51)
    del waves
    frames = min(s.shape[2] for s in specs.values())
    out = np.zeros((2, params.bins + 1, frames), dtype=np.complex64)
    offset = 0
    for d, band in enumerate(params.bands, start=1):
        h = band.crop_stop - band.crop_start
        out[:, offset:offset + h, :frames] = specs[d][:, band.crop_start:band.crop_stop,
                                                      :frames]
        offset += h
    del specs
    if params.pre_filter_start > 0:
        if v51:
            out *= lp_filter_mask(out.shape[1], params.pre_filter_start,
                                  params.pre_filter_stop)
        elif count == 1:
            out = _fft_lp_filter(out, params.pre_filter_start, params.pre_filter_stop)
        else:
            gp = 1.0
            for b in range(params.pre_filter_start + 1, params.pre_filter_stop):
                g = math.pow(10, -(b - params.pre_filter_start) * (3.5 - gp) / 20.0)
                gp = g
                out[:, b, :] *= g
    return np.asfortranarray(out)


def _band_wave(spec: np.ndarray, band: VRBand, params: VRParams, v51: bool) -> np.ndarray:
    import librosa

    left = librosa.istft(np.asfortranarray(spec[0]), hop_length=band.hl)
    right = librosa.istft(np.asfortranarray(spec[1]), hop_length=band.hl)
    if v51:
        cc = band.convert_channels
        if cc == "mid_side_c":
            return np.asfortranarray([np.subtract(left / 1.0625, right / 4.25),
                                      np.add(right / 1.0625, left / 4.25)])
        if cc == "mid_side":
            return np.asfortranarray([np.add(left, right / 2), np.subtract(left, right / 2)])
        if cc == "stereo_n":
            return np.asfortranarray([np.subtract(left, right * 0.25),
                                      np.subtract(right, left * 0.25)])
    else:
        if params.reverse:
            return np.asfortranarray([np.flip(left), np.flip(right)])
        if params.mid_side:
            return np.asfortranarray([np.add(left, right / 2), np.subtract(left, right / 2)])
        if params.mid_side_b2:
            return np.asfortranarray([np.add(right / 1.25, 0.4 * left),
                                      np.subtract(left / 1.25, 0.4 * right)])
    return np.asfortranarray([left, right])


def spectrogram_wave(spec: np.ndarray, params: VRParams, v51: bool) -> np.ndarray:
    """A combined spectrogram [2, bins + 1, frames] back to a wave [2, n] at params.sr
    (band by band, filtered, each resampled up into the next)."""
    count = len(params.bands)
    offset = 0
    wave = None
    for d, band in enumerate(params.bands, start=1):
        spec_s = np.zeros((2, band.n_fft // 2 + 1, spec.shape[2]), dtype=complex)
        h = band.crop_stop - band.crop_start
        spec_s[:, band.crop_start:band.crop_stop, :] = spec[:, offset:offset + h, :]
        offset += h
        if d == count:
            if band.hpf_start > 0:
                if v51:
                    spec_s *= hp_filter_mask(spec_s.shape[1], band.hpf_start, band.hpf_stop - 1)
                else:
                    spec_s = _fft_hp_filter(spec_s, band.hpf_start, band.hpf_stop - 1)
            part = _band_wave(spec_s, band, params, v51)
            wave = part if count == 1 else np.add(wave, part)
            continue
        upper = params.bands[d].sr
        if d == 1:
            if v51:
                spec_s *= lp_filter_mask(spec_s.shape[1], band.lpf_start, band.lpf_stop)
            else:
                spec_s = _fft_lp_filter(spec_s, band.lpf_start, band.lpf_stop)
            wave = _resample(_band_wave(spec_s, band, params, v51), band.sr, upper,
                             OUTPUT_RES_TYPE)
        else:
            if v51:
                spec_s *= hp_filter_mask(spec_s.shape[1], band.hpf_start, band.hpf_stop - 1)
                spec_s *= lp_filter_mask(spec_s.shape[1], band.lpf_start, band.lpf_stop)
            else:
                spec_s = _fft_hp_filter(spec_s, band.hpf_start, band.hpf_stop - 1)
                spec_s = _fft_lp_filter(spec_s, band.lpf_start, band.lpf_stop)
            wave = _resample(np.add(wave, _band_wave(spec_s, band, params, v51)), band.sr,
                             upper, OUTPUT_RES_TYPE)
    return wave


# -- mask post-processing --------------------------------------------------------------------

def adjust_aggression(mask: np.ndarray, aggression: float, non_accom: bool, split_bin: int,
                      correction: tuple[float, float] | None = None) -> np.ndarray:
    """UVR's aggression on the primary mask [2, F, T] (in place): a = 2 x aggression
    (a fraction, 0.05 for UVR's 5), 1 - a for instrument stems; mask^(1 + a/3) below
    `split_bin`, mask^(1 + a) above."""
    aggr = aggression * 2
    if aggr == 0:
        return mask
    if non_accom:
        aggr = 1 - aggr
    per_channel = [aggr, aggr]
    if correction is not None:
        per_channel = [aggr + correction[0], aggr + correction[1]]
    for ch in range(2):
        mask[ch, :split_bin] = np.power(mask[ch, :split_bin], 1 + per_channel[ch] / 3)
        mask[ch, split_bin:] = np.power(mask[ch, split_bin:], 1 + per_channel[ch])
    return mask


def merge_artifacts(y_mask: np.ndarray, thres: float = 0.2, min_range: int = 64,
                    fade_size: int = 32) -> np.ndarray:
    """UVR's "post-process": frames where the primary mask stays above `thres` for more
    than `min_range` frames are given wholly to the primary stem (with fades); in place."""
    idx = np.where(y_mask.min(axis=(0, 1)) > thres)[0]
    if idx.size == 0:
        return y_mask  # the reference fails here and leaves the mask as it is
    start_idx = np.insert(idx[np.where(np.diff(idx) != 1)[0] + 1], 0, idx[0])
    end_idx = np.append(idx[np.where(np.diff(idx) != 1)[0]], idx[-1])
    artifact_idx = np.where(end_idx - start_idx > min_range)[0]
    weight = np.zeros_like(y_mask)
    if len(artifact_idx) > 0:
        old_e = None
        for s, e in zip(start_idx[artifact_idx], end_idx[artifact_idx], strict=True):
            if old_e is not None and s - old_e < fade_size:
                s = old_e - fade_size * 2
            if s != 0:
                weight[:, :, s:s + fade_size] = np.linspace(0, 1, fade_size)
            else:
                s -= fade_size
            if e != y_mask.shape[2]:
                weight[:, :, e - fade_size:e] = np.linspace(1, 0, fade_size)
            else:
                e += fade_size
            weight[:, :, s + fade_size:e - fade_size] = 1
            old_e = e
    y_mask += weight * (1 - y_mask)
    return y_mask


def make_padding(width: int, window: int, offset: int) -> tuple[int, int, int]:
    """(left pad, right pad, step) so windows of `window` frames cover `width` frames."""
    roi = window - offset * 2
    if roi == 0:
        roi = window
    return offset, roi - (width % roi) + offset, roi


# -- the separator ----------------------------------------------------------------------------

class VRSeparator(Separator):
    """A UVR VR-architecture model run as python-audio-separator runs it (see module)."""

    segment_shrinks_memory = False  # windows are a fixed number of frames
    default_segment = 30.0  # unused: the song is separated whole

    def __init__(self, model: torch.nn.Module, params: VRParams, network: VRNetwork,
                 name: str, primary_stem: str, mapping: StemMapping | None = None,
                 aggression: int = 5, window_size: int = 512, tta: bool = False,
                 post_process: bool = False, post_process_threshold: float = 0.2,
                 **kwargs: Any) -> None:
        if getattr(model, "output_bin", None) != params.bins + 1:
            raise ModelError(f"{name}: the network was built for {model.output_bin - 1} "
                             f"bins, its params '{params.name}' have {params.bins}")
        offset = int(model.offset)
        if not 2 * offset + 16 <= int(window_size) <= 8192:
            raise ModelError(f"window size must be from {2 * offset + 16} to 8192 frames "
                             f"(UVR offers 320, 512, 1024), not {window_size}")
        if isinstance(aggression, bool) or not -100 <= int(aggression) <= 100:
            raise ModelError(f"aggression must be from -100 to 100, not {aggression}")
        if not 0.0 < float(post_process_threshold) < 1.0:
            raise ModelError("post-process threshold must be between 0 and 1")
        self.name = name
        self.model = model.eval()
        self.params = params
        self.network = network
        self.samplerate = params.sr
        self.primary_stem = primary_stem
        secondary = secondary_stem(primary_stem)
        if mapping is None:
            mapping = mapping_for_uvr_stems(primary_stem, secondary)
        elif set(mapping.native) != {primary_stem, secondary}:
            raise ModelError(f"{name}: its stems are {primary_stem!r} and {secondary!r}, "
                             f"not {list(mapping.native)}")
        elif tuple(mapping.native) != (primary_stem, secondary):
            mapping = StemMapping((primary_stem, secondary), dict(mapping.targets))
        self.mapping = mapping
        self.aggression = int(aggression)
        self.window_size = int(window_size)
        self.tta = bool(tta)
        self.post_process = bool(post_process)
        self.post_process_threshold = float(post_process_threshold)
        self.notes: list[str] = []
        super().__init__(**kwargs)
        self.to(self.device)

    def to(self, device: torch.device) -> None:
        self.device = device
        self.model.to(device)

    def passes(self) -> list[ModelPass]:
        return [ModelPass(self._forward)]

    def separate(self, *args: Any, **kwargs: Any) -> SeparationResult:
        """`Separator.separate`, with this model's notes (e.g. a resampler substituted)."""
        result = super().separate(*args, **kwargs)
        result.notes.extend(n for n in self.notes if n not in result.notes)
        return result

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.model.predict_mask(x).float()

    # -- inference ------------------------------------------------------------------------
    def _windows(self, n_frames: int, tta: bool) -> tuple[int, int, int, int]:
        """(pad left, pad right, step, window count) of one pass."""
        pad_l, pad_r, roi = make_padding(n_frames, self.window_size, int(self.model.offset))
        if tta:
            pad_l, pad_r = pad_l + roi // 2, pad_r + roi // 2
        count = (n_frames + pad_l + pad_r - 2 * int(self.model.offset)) // roi
        return pad_l, pad_r, roi, count

    def _mask(self, mag: np.ndarray, tta: bool, batch: int, tracker: ProgressTracker,
              cancel: CancelCheck | None) -> np.ndarray:
        """The network's mask over the song [2, F, frames] (one pass)."""
        n_frames = mag.shape[2]
        pad_l, pad_r, roi, count = self._windows(n_frames, tta)
        padded = np.pad(mag, ((0, 0), (0, 0), (pad_l, pad_r)), mode="constant")
        padded /= padded.max()
        parts = []
        for i in range(0, count, batch):
            check_cancel(cancel)
            stack = np.stack([padded[:, :, k * roi:k * roi + self.window_size]
                              for k in range(i, min(count, i + batch))])
            x = torch.from_numpy(stack).to(self.device)
            with torch.inference_mode():
                pred = self._forward(x).cpu().numpy()
            if pred.shape[3] <= 0:
                raise ModelError(f"window size {self.window_size} is too small for "
                                 f"{self.name}")
            parts.append(np.concatenate(pred, axis=2))
            tracker.advance(len(stack))
        mask = np.concatenate(parts, axis=2)
        if tta:
            mask = mask[:, :, roi // 2:]
        return mask[:, :, :n_frames]

    def _infer_once(self, mix: np.ndarray, segment: float, batch: int,
                    progress: ProgressCallback | None, cancel: CancelCheck | None,
                    seconds: float, on_final: FinalRegionHook | None = None) -> np.ndarray:
        v51 = self.network.is_v51
        self.notes = []
        length = mix.shape[-1]
        tracker = ProgressTracker(progress, 1, seconds)
        tracker.report()
        check_cancel(cancel)
        spec = mix_spectrogram(mix, self.params, v51, self.notes)
        mag, phase = np.abs(spec), np.angle(spec)
        del spec
        n_frames = mag.shape[2]
        windows = self._windows(n_frames, False)[3]
        if self.tta:
            windows += self._windows(n_frames, True)[3]
        # the spectrogram and the waveform synthesis count as two windows each
        tracker.total = float(windows + 4)
        tracker.advance(2)
        if not mag.max() > 0:  # silence: the reference divides by zero into zeros
            native = np.zeros((2, 2, length), dtype=np.float32)
        else:
            mask = self._mask(mag, False, batch, tracker, cancel)
            if self.tta:
                mask = (mask + self._mask(mag, True, batch, tracker, cancel)) * 0.5
            native = self._synthesise(mask, mag, phase, length, cancel)
        tracker.advance(2)
        if on_final is not None:
            on_final(np.array(native), 0)
        return native

    def _synthesise(self, mask: np.ndarray, mag: np.ndarray, phase: np.ndarray,
                    length: int, cancel: CancelCheck | None) -> np.ndarray:
        """Aggression, post-process, then primary / secondary waves [2, 2, length]."""
        params = self.params
        mask = adjust_aggression(mask, self.aggression / 100,
                                 self.primary_stem in NON_ACCOM_STEMS,
                                 params.bands[0].crop_stop, params.aggr_correction)
        if self.post_process:
            mask = merge_artifacts(mask, thres=self.post_process_threshold)
        native = np.zeros((2, 2, length), dtype=np.float32)
        for i, weight in enumerate((mask, 1 - mask)):
            check_cancel(cancel)
            spec = np.nan_to_num(weight * mag * np.exp(1.0j * phase), nan=0.0, posinf=0.0,
                                 neginf=0.0)
            wave = spectrogram_wave(spec, params, self.network.is_v51)
            n = min(length, wave.shape[-1])
            native[i, :, :n] = wave[:, :n]
        return native


def load_vr_separator(checkpoint: str | os.PathLike[str],
                      params: str | os.PathLike[str] | VRParams | None = None,
                      primary_stem: str | None = None, name: str | None = None,
                      nout: int | None = None, nout_lstm: int | None = None,
                      mapping: StemMapping | None = None, network: VRNetwork | None = None,
                      **kwargs: Any) -> VRSeparator:
    """A ready separator from a UVR VR `.pth`.

    `params` (a built-in name such as "4band_v3", a .json path, or parsed) and
    `primary_stem` come from UVR's model data; when either is None they are looked up by
    the file's UVR hash (`UVR_VR_MODEL_DATA`), as UVR does. `nout`/`nout_lstm` likewise
    (None: the network is told by file size). Other keyword arguments: aggression (5),
    window_size (512), tta, post_process, post_process_threshold, and the Separator's
    (device, batch_size, ...)."""
    path = Path(checkpoint)
    if params is None or primary_stem is None:
        data = uvr_model_data(path)
        if data is None:
            raise ModelError(f"{path.name}: UVR's model data does not know this file; give "
                             "its model params (e.g. 4band_v3) and primary stem")
        params = data["params"] if params is None else params
        primary_stem = data["primary_stem"] if primary_stem is None else primary_stem
        nout = data["nout"] if nout is None else nout
        nout_lstm = data["nout_lstm"] if nout_lstm is None else nout_lstm
    parsed = params if isinstance(params, VRParams) else read_vr_params(params)
    if network is None and (nout is not None or nout_lstm is not None):
        network = network_for_file(0, nout, nout_lstm)
    model, network = load_vr_model(path, parsed, network)
    return VRSeparator(model, parsed, network, name or path.stem, primary_stem,
                       mapping=mapping, **kwargs)


__all__ = ["NON_ACCOM_STEMS", "PARAMS_DIR", "UVR_VR_MODEL_DATA", "VRBand", "VRNetwork",
           "VRParams", "VRSeparator", "adjust_aggression", "builtin_params",
           "load_vr_model", "load_vr_separator", "mapping_for_uvr_stems", "merge_artifacts",
           "mix_spectrogram", "network_for_file", "parse_vr_params", "read_vr_params",
           "secondary_stem", "spectrogram_wave", "uvr_model_data", "uvr_model_hash"]
