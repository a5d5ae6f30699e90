"""models.checkpoint: safe loading of official files, validation, Stemwright checkpoints.

Every model is tiny and randomly initialised; no file is downloaded.
"""

from __future__ import annotations

import collections
import json
import os
from fractions import Fraction

import pytest
import torch
from demucs.hdemucs import HDemucs
from demucs.htdemucs import HTDemucs
from openunmix.model import OpenUnmix
from safetensors.torch import save_file

from stemwright.models.errors import ModelError, OutputExistsError
from stemwright.models.zoo import checkpoint as ck
from stemwright.models.zoo.checkpoint import (
    CheckpointMeta,
    checkpoint_format,
    load_checkpoint,
    load_demucs_checkpoint,
    load_openunmix_target,
    read_checkpoint_meta,
    register_architecture,
    save_checkpoint,
)

SOURCES = ["drums", "bass", "other", "vocals"]
HT_KWARGS = dict(sources=SOURCES, channels=8, depth=2, t_layers=1, t_heads=1, nfft=512,
                 segment=Fraction(1, 10))


@pytest.fixture(scope="module")
def mix() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(1, 2, 4410, generator=gen)


def _htdemucs(**overrides) -> HTDemucs:
    torch.manual_seed(0)
    model = HTDemucs(**{**HT_KWARGS, **overrides})
    with torch.no_grad():  # random, not zero-initialised: outputs depend on every weight
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _half_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.half() if v.is_floating_point() else v.clone()
            for k, v in model.state_dict().items()}


def _official_th(path, model, legacy: bool = False, **package) -> None:
    """Write `model` the way demucs' serialize_model does (half-precision state);
    `legacy` uses torch's pre-1.6 (non-zip) file format."""
    args, kwargs = model._init_args_kwargs
    data = {"klass": type(model), "args": args, "kwargs": dict(kwargs),
            "state": _half_state(model),
            "training_args": {"dset": {"name": "musdb"}, "epochs": 360, "lr": 3e-4}}
    data.update(package)
    torch.save(data, path, _use_new_zipfile_serialization=not legacy)


def _run(model, x) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def _assert_refused(err, *words) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    for word in words:
        assert word in msg, msg


# -- official demucs .th ------------------------------------------------------------------

def test_official_th_loads_with_same_outputs(tmp_path, mix):
    model = _htdemucs()
    path = tmp_path / "955717e8-8726e21a.th"
    _official_th(path, model)
    assert checkpoint_format(path) == "torch"
    loaded = load_demucs_checkpoint(path)
    assert isinstance(loaded, HTDemucs) and not loaded.training
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert loaded.segment == Fraction(1, 10) and loaded.sources == SOURCES
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in _half_state(model).items()})
    torch.testing.assert_close(_run(loaded, mix), _run(model, mix), rtol=0, atol=1e-6)
    assert loaded._init_args_kwargs[1]["segment"] == Fraction(1, 10)


def test_official_th_hdemucs_float32_state(tmp_path):
    torch.manual_seed(1)
    model = HDemucs(sources=["vocals", "other"], channels=8, depth=2, nfft=512).eval()
    path = tmp_path / "hdemucs.th"
    args, kwargs = model._init_args_kwargs
    torch.save({"klass": HDemucs, "args": args, "kwargs": kwargs,
                "state": model.state_dict()}, path)
    loaded = load_demucs_checkpoint(path)
    assert isinstance(loaded, HDemucs)
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values(),
                         strict=True):
        assert torch.equal(a, b), k


def test_legacy_pickle_with_module_class_is_refused(tmp_path):
    # Pre-1.6 torch.save stored nn.Module classes by source code: never loadable safely.
    path = tmp_path / "old.th"
    _official_th(path, _htdemucs(), legacy=True)
    with pytest.raises(ModelError) as err:
        load_demucs_checkpoint(path)
    _assert_refused(err, "could not be read safely", "persistent_load", "not loaded")


class _Payload:
    """Unpickling this runs a shell command: the loader must never get that far."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvilDict(collections.OrderedDict):
    """An OrderedDict subclass: harmless here, but not something official files contain."""


@pytest.mark.parametrize("zipped", [True, False])
def test_th_with_code_payload_is_refused_and_never_runs(tmp_path, zipped):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.th"
    _official_th(path, _htdemucs(), training_args={"evil": _Payload(marker)})
    if not zipped:
        # (no model class here: legacy files store those as source code, refused earlier)
        data = {"klass": "HTDemucs", "state": {}, "extra": _Payload(marker)}
        torch.save(data, path, _use_new_zipfile_serialization=False)
    with pytest.raises(ModelError) as err:
        load_demucs_checkpoint(path)
    _assert_refused(err, f"{os.system.__module__}.system", "not an official checkpoint",
                    "not loaded")
    assert not marker.exists()


def test_th_with_dict_subclass_is_refused(tmp_path):
    model = _htdemucs()
    path = tmp_path / "model.th"
    _official_th(path, model, state=EvilDict(_half_state(model)))
    with pytest.raises(ModelError) as err:
        load_demucs_checkpoint(path)
    _assert_refused(err, "EvilDict", "not an official checkpoint")


def test_globals_registered_elsewhere_do_not_widen_the_allow_list(tmp_path):
    model = _htdemucs()
    path = tmp_path / "model.th"
    _official_th(path, model, state=EvilDict(_half_state(model)))
    saved = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([EvilDict])
    try:
        with pytest.raises(ModelError, match="EvilDict"):
            load_demucs_checkpoint(path)
        assert EvilDict in torch.serialization.get_safe_globals()
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


def test_th_naming_an_allowed_but_wrong_class_is_refused(tmp_path):
    path = tmp_path / "model.th"
    torch.save({"klass": Fraction, "args": [1, 2], "kwargs": {}, "state": {}}, path)
    with pytest.raises(ModelError, match="not a demucs model"):
        load_demucs_checkpoint(path)


def test_kwargs_not_matching_weights(tmp_path):
    path = tmp_path / "model.th"
    _official_th(path, _htdemucs(), kwargs={**HT_KWARGS, "channels": 16})
    with pytest.raises(ModelError) as err:
        load_demucs_checkpoint(path)
    _assert_refused(err, "checkpoint configuration does not match its weights",
                    "in the file but the configuration expects", "more)")


def test_missing_and_unexpected_weights(tmp_path):
    model = _htdemucs()
    state = _half_state(model)
    first = next(iter(state))
    state["bogus.weight"] = state.pop(first)
    path = tmp_path / "model.th"
    _official_th(path, model, state=state)
    with pytest.raises(ModelError) as err:
        load_demucs_checkpoint(path)
    _assert_refused(err, f"missing '{first}'", "unexpected 'bogus.weight'")


def test_unknown_kwargs_are_an_error_not_dropped(tmp_path):
    path = tmp_path / "model.th"
    _official_th(path, _htdemucs(), kwargs={**HT_KWARGS, "flux_capacitor": 3})
    with pytest.raises(ModelError) as err:
        load_demucs_checkpoint(path)
    _assert_refused(err, "flux_capacitor", "HTDemucs does not accept")


def test_quantized_models_are_refused(tmp_path):
    path = tmp_path / "83fc094f-4a16d450.th"
    _official_th(path, _htdemucs(), state={"__quantized": True,
                                          "quantized": [torch.zeros(3, dtype=torch.int8)],
                                          "others": [torch.zeros(2)]})
    with pytest.raises(ModelError, match="quantized models are not supported"):
        load_demucs_checkpoint(path)


def test_bare_state_dict_is_not_a_demucs_package(tmp_path):
    path = tmp_path / "state.th"
    torch.save(_htdemucs().state_dict(), path)
    with pytest.raises(ModelError, match="not a demucs model package"):
        load_demucs_checkpoint(path)


# -- demucs 4.1 safetensors ---------------------------------------------------------------

def _hf_metadata(klass: str = "demucs.htdemucs.HTDemucs", **extra) -> dict[str, str]:
    meta = {"klass": klass, "args": "[]", "kwargs": json.dumps(ck.encode_json(HT_KWARGS))}
    meta.update(extra)
    return meta


def test_demucs_safetensors_loads(tmp_path, mix):
    model = _htdemucs()
    path = tmp_path / "955717e8.safetensors"
    save_file(model.state_dict(), str(path), metadata=_hf_metadata())
    assert checkpoint_format(path) == "demucs-safetensors"
    loaded = load_demucs_checkpoint(path)
    assert loaded.segment == Fraction(1, 10)
    assert torch.equal(_run(loaded, mix), _run(model, mix))


def test_demucs_safetensors_structure_without_classes(tmp_path):
    model = _htdemucs()
    state = model.state_dict()
    structure = {"_dict": [[k, {"_tensor": k}] for k in state]}
    path = tmp_path / "nested.safetensors"
    save_file(state, str(path), metadata=_hf_metadata(structure=json.dumps(structure)))
    assert isinstance(load_demucs_checkpoint(path), HTDemucs)


@pytest.mark.parametrize("metadata, words", [
    (_hf_metadata(klass="os.system"), ("'os.system'", "not loaded")),
    (_hf_metadata(klass="collections.OrderedDict"), ("not one of",)),
    (_hf_metadata(structure=json.dumps({"_class": "os.system"})), ("'os.system'",)),
    (_hf_metadata(structure=json.dumps({"_dict": [["__quantized", True]]})),
     ("quantized models are not supported",)),
])
def test_demucs_safetensors_refusals(tmp_path, metadata, words):
    path = tmp_path / "bad.safetensors"
    save_file({"x": torch.zeros(2)}, str(path), metadata=metadata)
    with pytest.raises(ModelError) as err:
        load_demucs_checkpoint(path)
    _assert_refused(err, *words)


# -- Open-Unmix ---------------------------------------------------------------------------

def _umx(**kwargs) -> OpenUnmix:
    torch.manual_seed(2)
    model = OpenUnmix(**kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if p.dim() == 1 else 0.0))
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                buf.normal_(0, 0.1)
    return model.eval()


@pytest.mark.parametrize("kwargs", [
    dict(nb_bins=257, nb_channels=2, hidden_size=16, nb_layers=2, max_bin=100),
    dict(nb_bins=129, nb_channels=1, hidden_size=8, nb_layers=1, unidirectional=True),
])
def test_openunmix_target_shape_inference(tmp_path, kwargs):
    model = _umx(**kwargs)
    path = tmp_path / "vocals-b62c91ce.pth"
    # umxhq's files predate torch 1.6: the legacy (non-zip) format must load too.
    torch.save(model.state_dict(), path,
               _use_new_zipfile_serialization=kwargs["nb_channels"] == 1)
    loaded = load_openunmix_target(path)
    assert isinstance(loaded, OpenUnmix) and not loaded.training
    assert loaded.nb_output_bins == kwargs["nb_bins"]
    assert loaded.nb_bins == kwargs.get("max_bin", kwargs["nb_bins"])
    assert loaded.hidden_size == kwargs["hidden_size"]
    assert loaded.lstm.num_layers == kwargs["nb_layers"]
    assert loaded.lstm.bidirectional == (not kwargs.get("unidirectional", False))
    spec = torch.rand(1, kwargs["nb_channels"], kwargs["nb_bins"], 7)
    assert torch.equal(_run(loaded, spec), _run(model, spec))


def test_openunmix_legacy_stft_entries(tmp_path):
    model = _umx(nb_bins=257, nb_channels=2, hidden_size=16, nb_layers=1)
    state = dict(model.state_dict())
    state.update({"sample_rate": torch.tensor(44100), "stft.window": torch.hann_window(512),
                  "transform.0.window": torch.hann_window(512)})
    path = tmp_path / "drums-a9e5a8c3.pth"
    torch.save(state, path)
    assert isinstance(load_openunmix_target(path, samplerate=44100), OpenUnmix)
    with pytest.raises(ModelError, match="trained at 44100 Hz, not 16000 Hz"):
        load_openunmix_target(path, samplerate=16000)
    state["stft.window"] = torch.hann_window(1024)
    torch.save(state, path)
    with pytest.raises(ModelError, match="does not match its weights: 'stft.window'"):
        load_openunmix_target(path)


def test_openunmix_inconsistent_weights(tmp_path):
    state = dict(_umx(nb_bins=257, nb_channels=2, hidden_size=16, nb_layers=1).state_dict())
    state["fc3.weight"] = torch.zeros(300, 16)
    state["extra"] = torch.zeros(1)
    path = tmp_path / "bass.pth"
    torch.save(state, path)
    with pytest.raises(ModelError) as err:
        load_openunmix_target(path)
    _assert_refused(err, "does not match its weights", "'fc3.weight' is [300, 16]",
                    "unexpected 'extra'")


def test_openunmix_refuses_demucs_file_and_globals(tmp_path):
    path = tmp_path / "model.th"
    _official_th(path, _htdemucs())
    with pytest.raises(ModelError, match="not an official checkpoint"):
        load_openunmix_target(path)


# -- Stemwright checkpoints ---------------------------------------------------------------

def _meta(**overrides) -> CheckpointMeta:
    base = dict(architecture="htdemucs", kwargs=dict(HT_KWARGS), stems=list(SOURCES),
                samplerate=44100,
                provenance={"trained_from": "htdemucs", "dataset": "tiny", "steps": 3})
    return CheckpointMeta(**{**base, **overrides})


def test_stemwright_round_trip(tmp_path, mix):
    model = _htdemucs()
    path = save_checkpoint(tmp_path / "ckpt" / "model.safetensors", model, _meta())
    assert checkpoint_format(path) == "stemwright"
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.safetensors"]
    meta = read_checkpoint_meta(path)
    assert meta == _meta()
    assert meta.kwargs["segment"] == Fraction(1, 10)
    loaded, meta2 = load_checkpoint(path)
    assert meta2 == meta and isinstance(loaded, HTDemucs) and not loaded.training
    assert torch.equal(_run(loaded, mix), _run(model, mix))


def test_safetensors_header_starting_with_the_pickle_opcode_is_not_torch(tmp_path):
    """A header length whose low byte is 0x80 (pickle's PROTO opcode) is still safetensors."""
    model = _htdemucs()
    for pad in range(256):
        meta = _meta(provenance={"note": "x" * pad})
        path = save_checkpoint(tmp_path / f"model{pad}.safetensors", model, meta)
        if path.read_bytes()[0] == 0x80:
            break
        path.unlink()
    else:
        pytest.fail("no padding gave a header length with low byte 0x80")
    assert checkpoint_format(path) == "stemwright"
    assert read_checkpoint_meta(path) == meta
    loaded, _ = load_checkpoint(path)
    assert isinstance(loaded, HTDemucs)


def test_stemwright_round_trip_openunmix(tmp_path):
    kwargs = dict(nb_bins=129, nb_channels=2, hidden_size=8, nb_layers=1, max_bin=64)
    model = _umx(**kwargs)
    meta = _meta(architecture="openunmix", kwargs=kwargs, stems=["vocals"],
                 provenance={"date": __import__("datetime").date(2024, 5, 1)})
    path = save_checkpoint(tmp_path / "umx.safetensors", model, meta)
    loaded, meta2 = load_checkpoint(path)
    assert meta2.provenance == {"date": "2024-05-01"}
    spec = torch.rand(1, 2, 129, 5)
    assert torch.equal(_run(loaded, spec), _run(model, spec))


def test_overwrite_refused_unless_asked(tmp_path):
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, _htdemucs(), _meta())
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        save_checkpoint(path, _htdemucs(), _meta(provenance={"v": 2}))
    assert path.read_bytes() == before
    save_checkpoint(path, _htdemucs(), _meta(provenance={"v": 2}), overwrite=True)
    assert read_checkpoint_meta(path).provenance == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


class TiedNet(torch.nn.Module):
    """Encoder and decoder share one weight matrix (as in tied embeddings)."""

    def __init__(self, size: int = 6) -> None:
        super().__init__()
        self.encode = torch.nn.Linear(size, size, bias=False)
        self.decode = torch.nn.Linear(size, size, bias=False)
        self.decode.weight = self.encode.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(torch.tanh(self.encode(x)))


def test_tied_weights_and_registered_architecture(tmp_path):
    register_architecture("tied-test", TiedNet)
    register_architecture("tied-test", TiedNet)  # idempotent
    with pytest.raises(ValueError):
        register_architecture("tied-test", OpenUnmix)
    model = TiedNet(size=6)
    path = save_checkpoint(tmp_path / "tied.safetensors", model,
                           _meta(architecture="tied-test", kwargs={"size": 6}, stems=["x"]))
    loaded, _ = load_checkpoint(path)
    assert loaded.decode.weight is loaded.encode.weight
    x = torch.randn(3, 6)
    assert torch.equal(_run(loaded, x), _run(model, x))


@pytest.mark.parametrize("meta, match", [
    (_meta(architecture="transformer9000"), "unknown architecture 'transformer9000'"),
    (_meta(architecture="hdemucs"), "the model is a HTDemucs"),
    (_meta(kwargs={**HT_KWARGS, "channels": 16}),
     "checkpoint configuration does not match its weights"),
    (_meta(kwargs={**HT_KWARGS, "warp": 9}), "warp"),
    (_meta(stems=["a", "b"]), "4 sources but 'stems' names 2"),
    (_meta(kwargs={**HT_KWARGS, "segment": object()}), "cannot store"),
])
def test_save_refuses_inconsistent_metadata(tmp_path, meta, match):
    path = tmp_path / "model.safetensors"
    with pytest.raises(ModelError, match=match):
        save_checkpoint(path, _htdemucs(), meta)
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_unknown_architecture(tmp_path):
    header = {"format": "stemwright-checkpoint", "version": 1, "architecture": "mystery",
              "kwargs": {}, "stems": ["vocals"], "samplerate": 44100, "provenance": {}}
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"stemwright": json.dumps(header)})
    assert read_checkpoint_meta(path).architecture == "mystery"
    with pytest.raises(ModelError, match="unknown architecture 'mystery'"):
        load_checkpoint(path)
    header["version"] = 7
    save_file({"w": torch.zeros(1)}, str(path), metadata={"stemwright": json.dumps(header)})
    with pytest.raises(ModelError, match="newer Stemwright"):
        read_checkpoint_meta(path)


def test_demucs_file_is_not_a_stemwright_checkpoint(tmp_path):
    path = tmp_path / "model.th"
    _official_th(path, _htdemucs())
    with pytest.raises(ModelError, match="not a Stemwright checkpoint"):
        load_checkpoint(path)


# -- damaged files ------------------------------------------------------------------------

LOADERS = [load_demucs_checkpoint, load_openunmix_target, load_checkpoint,
           read_checkpoint_meta]


@pytest.mark.parametrize("loader", LOADERS, ids=lambda f: f.__name__)
def test_random_bytes(tmp_path, loader):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(os.urandom(4096).replace(b"\x80", b"\x00").replace(b"PK", b"pk"))
    with pytest.raises(ModelError):
        loader(path)


@pytest.mark.parametrize("loader", LOADERS, ids=lambda f: f.__name__)
def test_missing_file(tmp_path, loader):
    with pytest.raises(ModelError, match="no such file"):
        loader(tmp_path / "nothing.th")


def test_truncated_files(tmp_path):
    model = _htdemucs()
    th = tmp_path / "model.th"
    _official_th(th, model)
    th.write_bytes(th.read_bytes()[: th.stat().st_size // 2])
    with pytest.raises(ModelError, match="damaged or incomplete"):
        load_demucs_checkpoint(th)

    sw = save_checkpoint(tmp_path / "model.safetensors", model, _meta())
    data = sw.read_bytes()
    sw.write_bytes(data[: len(data) - 1000])
    read_checkpoint_meta(sw)  # the header alone is intact
    with pytest.raises(ModelError, match="damaged or incomplete"):
        load_checkpoint(sw)
    sw.write_bytes(data[:200])
    with pytest.raises(ModelError, match="not a valid safetensors file"):
        read_checkpoint_meta(sw)

    umx = tmp_path / "vocals.pth"
    torch.save(_umx(nb_bins=65, nb_channels=1, hidden_size=4, nb_layers=1).state_dict(), umx)
    umx.write_bytes(umx.read_bytes()[:-200])
    with pytest.raises(ModelError, match="damaged or incomplete"):
        load_openunmix_target(umx)
