"""UVR's VR-architecture models (17_HP-Wind_Inst-UVR and kin) through Stemwright's Separator.

Parity: tests/data/vr_reference.npz holds what the reference, python-audio-separator's
`VRSeparator` (its networks, `spec_utils` and inference), made of a test signal with tiny
random-weight networks in the official layout; packaging/vr_reference_fixture.py wrote
it and gives the weights (`tiny_weights`, checked here against the stored digest).
Nothing downloads.
"""

from __future__ import annotations

import importlib.util
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_npz

from stemwright.models.architectures.vr_net import (
    CascadedASPPNet,
    CascadedNet,
    aspp_config_for_size,
)
from stemwright.models.errors import Cancelled, ModelError
from stemwright.models.separation import vr_backend
from stemwright.models.separation.vr_backend import (
    VRNetwork,
    builtin_params,
    load_vr_separator,
    mapping_for_uvr_stems,
    network_for_file,
    parse_vr_params,
    read_vr_params,
    uvr_model_hash,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "data" / "vr_reference.npz"
CASES = ("wind", "tta", "aspp")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    return load_npz(FIXTURE)


@pytest.fixture(scope="module")
def fixture_script():
    spec = importlib.util.spec_from_file_location(
        "vr_reference_fixture", ROOT / "packaging" / "vr_reference_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _official(ref: dict, script, label: str, folder: Path) -> tuple[Path, str, VRNetwork,
                                                                      dict]:
    """The case's network saved as UVR ships one (a plain state dict .pth), its params
    (a built-in name or a .json path) and network description."""
    case = json.loads(str(ref[f"{label}/case"]))
    if isinstance(case["params"], dict):
        params = folder / f"{label}_params.json"
        params.write_text(json.dumps(case["params"]))
        params = str(params)
    else:
        params = case["params"]
    n_fft = read_vr_params(params).n_fft
    if case["net"] == "cascaded":
        network = VRNetwork("cascaded", {"nout": case["nout"], "nout_lstm": case["nout_lstm"]})
        model = CascadedNet(n_fft, **network.kwargs)
    else:
        kwargs = {**aspp_config_for_size(case["arch"]), "ch": case["ch"]}
        network = VRNetwork("aspp", kwargs)
        model = CascadedASPPNet(n_fft, **kwargs)
    state = script.tiny_weights(model, int(ref[f"{label}/seed"]))
    assert script.weights_digest(state) == str(ref[f"{label}/digest"]), \
        "tiny_weights changed: rerun packaging/vr_reference_fixture.py"
    pth = folder / f"{label}.pth"
    torch.save(state, pth)
    return pth, params, network, case


def _separator(ref, script, label, folder, **extra):
    pth, params, network, case = _official(ref, script, label, folder)
    settings = {"window_size": case["window_size"], "batch_size": case["batch_size"],
                "aggression": case["aggression"], "tta": case["tta"],
                "post_process": case["post_process"], "device": "cpu", **extra}
    return load_vr_separator(pth, params, case["primary"], network=network, **settings)


@pytest.mark.parametrize("label", CASES)
def test_parity_with_reference_vr_separator(ref, fixture_script, label, tmp_path):
    """Same weights, same audio: our Separator path gives audio-separator's primary and
    secondary waves (the reference's are shorter by the last partial hop: zeros here)."""
    sep = _separator(ref, fixture_script, label, tmp_path)
    start = time.monotonic()
    result = sep.separate(ref["mix"], 44100, residual_to_other=False)
    assert time.monotonic() - start < 20
    expected = ref[f"{label}/out"]
    n = expected.shape[-1]
    for i, source in enumerate(sep.mapping.native):
        ours = result.stems[sep.mapping.target_of(source)]
        assert ours.shape == ref["mix"].shape
        np.testing.assert_allclose(ours[:, :n], expected[i], atol=1e-4, rtol=0)
        assert not ours[:, n:].any()


def test_wind_model_gives_wind_and_other(ref, fixture_script, tmp_path):
    """17_HP-Wind_Inst-UVR's primary stem is "No Woodwinds": it becomes other, the
    woodwinds wind; with the residual folded in, the stems sum to the mix."""
    sep = _separator(ref, fixture_script, "wind", tmp_path)
    assert sep.mapping.native == ("No Woodwinds", "Woodwinds")
    assert sep.mapping.produced == ("wind", "other")
    result = sep.separate(ref["mix"], 44100)
    assert set(result.stems) == {"wind", "other"} and result.residual_in_other
    np.testing.assert_allclose(result.sum(), ref["mix"], atol=1e-5)


def test_generic_stem_mapping():
    assert mapping_for_uvr_stems("Instrumental").produced == ("vocals", "other")
    assert mapping_for_uvr_stems("Vocals").native == ("Vocals", "Instrumental")
    assert mapping_for_uvr_stems("No Piano").produced == ("other",)
    assert mapping_for_uvr_stems("Wind Inst").produced == ("wind", "other")
    with pytest.raises(ModelError, match="not an instrument"):
        mapping_for_uvr_stems("No Echo")


def test_progress_partial_and_cancel(ref, fixture_script, tmp_path):
    sep = _separator(ref, fixture_script, "tta", tmp_path)
    reports, regions = [], []
    result = sep.separate(ref["mix"], 44100, progress=reports.append,
                          partial=regions.append)
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) > 4
    assert [(r.start, r.end) for r in regions] == [(0, ref["mix"].shape[-1])]
    for stem, signal in result.stems.items():
        np.testing.assert_array_equal(regions[0].stems[stem], signal)
    calls = []
    with pytest.raises(Cancelled):
        sep.separate(ref["mix"], 44100, cancel=lambda: len(calls) > 2 or calls.append(1))


def test_silence_separates_into_silence(ref, fixture_script, tmp_path):
    sep = _separator(ref, fixture_script, "wind", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = sep.separate(np.zeros((2, 4410), np.float32), 44100)
    assert all(not s.any() for s in result.stems.values())


def test_params_that_do_not_fit_the_weights(ref, fixture_script, tmp_path):
    """The wind network (4band_v3, 672 bins) with 1-band params (1024 bins): one line."""
    pth, _, network, _ = _official(ref, fixture_script, "wind", tmp_path)
    with pytest.raises(ModelError) as err:
        load_vr_separator(pth, "1band_sr44100_hl512", "No Woodwinds", network=network)
    message = str(err.value)
    assert "\n" not in message and "wind.pth" in message
    assert "do not fit" in message and "1band_sr44100_hl512" in message


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b"PK\x03\x04broken zip"])
def test_corrupt_file_is_one_line(tmp_path, content):
    pth = tmp_path / "broken.pth"
    pth.write_bytes(content)
    with pytest.raises(ModelError) as err:
        load_vr_separator(pth, "4band_v3", "No Woodwinds")
    assert "\n" not in str(err.value) and "broken.pth" in str(err.value)


def test_truncated_and_wrong_content(ref, fixture_script, tmp_path):
    pth, _, network, _ = _official(ref, fixture_script, "wind", tmp_path)
    data = pth.read_bytes()
    pth.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="wind.pth"):
        load_vr_separator(pth, "4band_v3", "No Woodwinds", network=network)
    torch.save([torch.zeros(3)], pth)
    with pytest.raises(ModelError, match="not a VR model state dict"):
        load_vr_separator(pth, "4band_v3", "No Woodwinds", network=network)


def test_file_that_runs_code_when_unpickled_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    pth = tmp_path / "evil.pth"
    torch.save({"stg1": Evil()}, pth)
    with pytest.raises(ModelError, match="evil.pth"):
        load_vr_separator(pth, "4band_v3", "No Woodwinds",
                          network=VRNetwork("cascaded", {"nout": 4, "nout_lstm": 4}))


@pytest.mark.parametrize("text, problem", [
    ("{", "invalid JSON"),
    ('{"bins": 64}', "no 'band' section"),
    ('{"bins": 64, "band": {"2": {}}}', "numbered 1 to n"),
    ('{"bins": 64, "sr": 44100, "band": {"1": {"sr": 44100, "hl": 32, "n_fft": 128, '
     '"crop_start": 0, "crop_stop": 99}}}', "crop_stop"),
    ('{"bins": 32, "sr": 44100, "band": {"1": {"sr": 44100, "hl": 32, "n_fft": 128, '
     '"crop_start": 0, "crop_stop": 64}}}', "more than its 32"),
    ('{"bins": 64, "sr": 44100, "band": {"1": {"sr": 22050, "hl": 32, "n_fft": 128, '
     '"crop_start": 0, "crop_stop": 64}}}', "last band's rate"),
    ('{"bins": 64, "sr": 44100, "band": {"1": {"sr": 11025, "hl": 32, "n_fft": 128, '
     '"crop_start": 0, "crop_stop": 32}, "2": {"sr": 44100, "hl": 32, "n_fft": 128, '
     '"crop_start": 0, "crop_stop": 32}}}', "lpf_start"),
])
def test_params_are_validated_with_one_line(text, problem):
    with pytest.raises(ModelError, match=problem) as err:
        parse_vr_params(text, "mine.json")
    assert "\n" not in str(err.value) and "mine.json" in str(err.value)


def test_shipped_params_and_their_licence():
    names = builtin_params()
    assert {"4band_v3", "1band_sr44100_hl512", "4band_44100"} <= set(names)
    for name in names:
        params = read_vr_params(name)
        assert params.bands[-1].sr == params.sr
    assert "MIT License" in (vr_backend.PARAMS_DIR / "LICENSE").read_text()
    wind = read_vr_params("4band_v3")
    assert (wind.bins, len(wind.bands), wind.bands[0].crop_stop) == (672, 4, 85)
    with pytest.raises(ModelError, match="unknown VR model params"):
        read_vr_params("5band_nothing")


def test_network_told_by_file_size_as_uvr_does():
    wind = network_for_file(223_400_000)  # 17_HP-Wind_Inst-UVR.pth: ~218,400 KiB
    assert wind.is_v51 and wind.kwargs == {"nout": 64, "nout_lstm": 128}
    assert network_for_file(126_790_000).kwargs == {"ch": 32, "branches": 5, "deep": False}
    assert network_for_file(550_130_000).kwargs == {"ch": 64, "branches": 7, "deep": False}
    assert network_for_file(1, nout=48, nout_lstm=128).kwargs == {"nout": 48, "nout_lstm": 128}


def test_model_data_by_uvr_hash(ref, fixture_script, tmp_path, monkeypatch):
    """Without params and primary stem, UVR's model data is looked up by the file's hash."""
    pth, _, network, _ = _official(ref, fixture_script, "wind", tmp_path)
    with pytest.raises(ModelError, match="does not know this file"):
        load_vr_separator(pth, network=network)
    monkeypatch.setitem(vr_backend.UVR_VR_MODEL_DATA, uvr_model_hash(pth),
                        ("4band_v3", "No Woodwinds", 4, 4))
    sep = load_vr_separator(pth, name="17_HP-Wind_Inst-UVR")
    assert sep.params.name == "4band_v3" and sep.mapping.produced == ("wind", "other")
    assert sep.network.kwargs == {"nout": 4, "nout_lstm": 4}


def test_settings_are_checked(ref, fixture_script, tmp_path):
    with pytest.raises(ModelError, match="window size"):
        _separator(ref, fixture_script, "wind", tmp_path, window_size=100)
    with pytest.raises(ModelError, match="aggression"):
        _separator(ref, fixture_script, "wind", tmp_path, aggression=101)


def test_band_resampler_without_its_package_falls_back_to_soxr(fixture_script, tmp_path,
                                                              monkeypatch):
    """A 2-band layout whose low band UVR resamples with libsamplerate: soxr here, said."""
    params = {"bins": 64, "sr": 44100, "pre_filter_start": 60, "pre_filter_stop": 64,
              "band": {"1": {"sr": 22050, "hl": 16, "n_fft": 64, "crop_start": 0,
                             "crop_stop": 20, "lpf_start": 10, "lpf_stop": 18,
                             "res_type": "sinc_fastest"},
                       "2": {"sr": 44100, "hl": 32, "n_fft": 128, "crop_start": 20,
                             "crop_stop": 64, "hpf_start": 22, "hpf_stop": 18,
                             "res_type": "sinc_medium"}}}
    path = tmp_path / "2band.json"
    path.write_text(json.dumps(params))
    monkeypatch.setitem(vr_backend._RESAMPLER_PACKAGES, "sinc_fastest", "no_such_package")
    model = CascadedNet(128, nout=4, nout_lstm=4)
    pth = tmp_path / "two.pth"
    torch.save(fixture_script.tiny_weights(model, 5), pth)
    sep = load_vr_separator(pth, str(path), "Vocals", window_size=144,
                            network=VRNetwork("cascaded", {"nout": 4, "nout_lstm": 4}))
    mix = np.random.default_rng(0).standard_normal((2, 4000)).astype(np.float32) * 0.1
    result = sep.separate(mix, 44100)
    assert any("soxr_hq used" in note for note in result.notes)
    assert all(np.isfinite(s).all() for s in result.stems.values())
    np.testing.assert_allclose(result.sum(), mix, atol=1e-5)


def test_wind_entry_imports_offline_and_loads_from_the_zoo(ref, fixture_script, tmp_path,
                                                          monkeypatch, capsys):
    """`models import vr_wind_inst_hp FILE`: validated, copied, listed, loaded by name
    (the entry's settings made tiny: the real network is 224 MB)."""
    from stemwright.models.cli.commands import main
    from stemwright.models.zoo import catalog as zoo
    from stemwright.models.zoo import community

    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    pth, params, network, case = _official(ref, fixture_script, "wind", tmp_path)
    monkeypatch.setitem(community.VR_SETTINGS, "vr_wind_inst_hp",
                        {"params": params, "primary_stem": case["primary"],
                         **network.kwargs})
    assert not zoo.is_installed("vr_wind_inst_hp")
    assert "vr_wind_inst_hp" in [e.name for e in zoo.import_only_models()]
    broken = tmp_path / "broken.pth"
    broken.write_bytes(pth.read_bytes()[:1000])
    assert main(["models", "import", "vr_wind_inst_hp", str(broken)]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert not zoo.is_installed("vr_wind_inst_hp")
    assert main(["models", "import", "vr_wind_inst_hp", str(pth)]) == 0
    assert zoo.is_installed("vr_wind_inst_hp")
    sep = zoo.load_separator("vr_wind_inst_hp", device="cpu")
    assert sep.mapping.produced == ("wind", "other")
    result = sep.separate(ref["mix"], 44100)
    np.testing.assert_allclose(result.sum(), ref["mix"], atol=1e-5)
