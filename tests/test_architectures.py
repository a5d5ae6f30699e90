"""Architecture registry, chunked inference and the end-to-end path of every model:
train a few steps -> Stemwright checkpoint -> `models import` -> `separate -m`."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from stemwright.models.architectures import registry as arch
from stemwright.models.cli import commands as cli
from stemwright.models.stems import STEM_IDS, mapping_for
from stemwright.models.synthetic.test_songs import synth_song
from stemwright.models.zoo.checkpoint import LOADABLE_CLASSES as CHECKPOINT_ARCHS
from stemwright.models.zoo.checkpoint import load_checkpoint

NAMES = list(arch.ARCHITECTURES)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr("stemwright.models.separation.separator.configure_cpu_threads",
                        lambda threads=None: torch.set_num_threads(1))
    yield
    torch.set_num_threads(saved)


def test_registry_is_complete_and_checkpointable():
    assert NAMES == ["wavenet", "waveunet", "convtasnet", "condtasnet", "openunmix6",
                     "masknet", "bandsplit", "htdemucs6"]
    for name, a in arch.ARCHITECTURES.items():
        assert CHECKPOINT_ARCHS[a.arch] is a.cls
        for small in (False, True):
            cfg = arch.config(name, small)
            assert cfg["sources"] == list(STEM_IDS) and cfg["samplerate"] == a.samplerate
        assert a.title and a.reference and a.domain in ("waveform", "spectrogram", "hybrid")
    with pytest.raises(KeyError, match="unknown architecture"):
        arch.get_architecture("nope")


def test_open_unmix_is_one_umxhq_sized_network_per_stem():
    with torch.device("meta"):
        model = arch.build("openunmix6")
    assert list(model.unmix.target_models) == list(STEM_IDS)
    per_stem = arch.count_parameters(model) / 6
    assert 8.5e6 < per_stem < 9.5e6  # umxhq: 8.9 M per target
    assert model.receptive_field is None


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_gradients(name):
    model = arch.build(name, small=True, seed=0)
    length = 11025 if name != "wavenet" else 4001
    mix = 0.1 * torch.randn(2, 2, length)
    model.train()
    out = model(mix)
    assert out.shape == (2, 6, 2, length)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    model.eval()
    with torch.no_grad():
        assert model(mix[:1]).shape == (1, 6, 2, length)


def test_chunk_borders_do_not_change_the_output():
    """With context >= half the receptive field, chunked inference equals one pass."""
    model = arch.build("wavenet", small=True, seed=0)
    sep = arch.NeuralSeparator(model, mapping_for(list(STEM_IDS)), "t", device="cpu",
                               segment=0.05, overlap=0.25)
    assert sep.context >= model.receptive_field // 2
    mix = (0.1 * np.random.default_rng(0).standard_normal((2, 3000))).astype(np.float32)
    chunked = sep._infer(mix, None, None, [], 0.2)
    with torch.no_grad():
        whole = model(torch.from_numpy(mix)[None])[0].numpy()
    # away from the song's ends (zeros beyond the input vs zero padding in every layer)
    inner = slice(model.receptive_field, -model.receptive_field)
    assert np.allclose(chunked[..., inner], whole[..., inner], atol=1e-5)


def test_context_is_capped_and_lengths_valid():
    model = arch.build("waveunet", small=False)
    sep = arch.NeuralSeparator(model, mapping_for(list(STEM_IDS)), "t", device="cpu")
    assert sep.context == 22050  # 1 s cap; the receptive field is 6 s
    assert sep.valid_length(1000) % 4096 == 0 and sep.valid_length(1000) >= 1000 + 44100
    assert sep.default_segment == arch.get_architecture("waveunet").segment


@pytest.mark.parametrize("name", NAMES)
def test_train_save_import_separate_through_the_cli(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    a = arch.get_architecture(name)
    kwargs = arch.config(name, small=True)
    model = arch.build(name, small=True, seed=0)
    seconds = 1.0 if name in ("wavenet", "waveunet", "htdemucs6") else 0.5  # htdemucs: segment
    batches = arch.synth_batches(kwargs["sources"], a.samplerate, batch_size=2,
                                 seconds=seconds)
    losses = arch.train_steps(model, batches, steps=6, lr=3e-3)
    assert losses[-1] < losses[0]  # falling loss

    path = arch.save_model(tmp_path / f"{name}.safetensors", name, model, kwargs,
                           {"steps": len(losses)})
    loaded, meta = load_checkpoint(path)
    assert meta.architecture == a.arch and meta.samplerate == a.samplerate
    probe = 0.1 * torch.randn(1, 2, 4096)
    with torch.no_grad():
        assert torch.allclose(loaded(probe), model.eval()(probe), atol=1e-5)

    mix, _ = synth_song(2.0, 44100, seed=11)
    song = tmp_path / "tune.wav"
    sf.write(song, mix.T, 44100, subtype="FLOAT")
    user = f"my-{name}"
    assert cli.main(["models", "import", user, str(path)]) == 0
    assert cli.main(["separate", "-m", user, str(song), "-o", str(tmp_path / "out"),
                     "--bit-depth", "32"]) == 0
    out = capsys.readouterr().out
    assert "6 stems" in out
    folder = tmp_path / "out" / "tune"
    stems = [sf.read(folder / f"tune - {s}.wav", dtype="float32")[0].T for s in (
        "Vocals", "Drums", "Bass", "Electric guitar", "Wind", "Other")]
    assert all(s.shape == mix.shape for s in stems)
    # the residual is folded into other, so the stems add up to the mix (where export did
    # not have to clip a random-ish model's output)
    unclipped = np.all(np.abs(stems) < 0.999, axis=0)
    assert unclipped.mean() > 0.5
    assert np.abs(np.sum(stems, axis=0) - mix)[unclipped].max() < 1e-4


def test_capabilities_are_facts_of_the_registry():
    """Mixed precision and splittable heads are read off the registry entry, not decided by
    isinstance checks elsewhere."""
    for name, a in arch.ARCHITECTURES.items():
        model = arch.build(name, small=True)
        assert arch.amp_safe(model) is a.amp_safe, name
        assert arch.linear_heads(model) is a.linear_heads, name
    assert arch.ARCHITECTURES["wavenet"].amp_safe and not arch.ARCHITECTURES["masknet"].amp_safe
    assert not arch.amp_safe(torch.nn.Linear(2, 2))
    assert not arch.linear_heads(torch.nn.Linear(2, 2))


def test_checkpoints_load_without_importing_the_registry_first(tmp_path):
    """Loading a checkpoint of any registered architecture does not depend on which modules
    the process imported before (no registration by import side effect)."""
    import subprocess
    import sys

    path = tmp_path / "m.safetensors"
    kwargs = arch.config("masknet", small=True)
    arch.save_model(path, "masknet", arch.build("masknet", small=True), kwargs)
    code = ("import sys; from stemwright.models.zoo.checkpoint import load_checkpoint; "
            "m, _ = load_checkpoint(sys.argv[1]); print(type(m).__name__); "
            "print('stemwright.models.architectures.registry' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert out == ["MaskNet", "False"]


def test_band_split_bands_cover_the_spectrum_and_masks_sum_to_one():
    from stemwright.models.architectures.bandsplit import band_edges

    edges = band_edges(1025, 32, 44100)
    assert edges[0] == 0 and edges[-1] == 1025 and len(edges) == 33
    widths = np.diff(edges)
    assert widths.min() >= 2 and widths[0] < widths[-1]  # narrow at the bottom (mel)
    with pytest.raises(ValueError, match="cannot split"):
        band_edges(10, 8, 44100)
    model = arch.build("bandsplit", small=True, seed=1).eval()
    with torch.no_grad():  # random non-zero heads: the masks still sum to one per bin
        for h in model.head:
            h[-1].weight.normal_(0, 0.5)
        mix = 0.1 * torch.randn(1, 2, 8000)
        out = model(mix)
    assert torch.allclose(out.sum(1), mix, atol=1e-5)
    assert out.std(1).mean() > 1e-4  # and the stems differ
    assert model.receptive_field > model.n_fft


def test_a_mono_model_is_refused_when_its_separator_is_built():
    """A one-channel network already in the cache (never re-imported) gets one clear line."""
    from stemwright.models.errors import ModelError

    model = arch.build("masknet", small=True, seed=0, audio_channels=1)
    with pytest.raises(ModelError, match="1-channel model"):
        arch.NeuralSeparator(model, mapping_for(list(STEM_IDS)), "mono", device="cpu")
