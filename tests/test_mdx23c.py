"""Community MDX23C (TFC-TDF v3) checkpoints through Stemwright's Separator.

Parity: tests/data/mdx23c_reference.npz holds tiny random-weight checkpoints in the
official layout (state dict + MSST YAML) and what the reference, ZFTurbo's
Music-Source-Separation-Training (its `models/mdx23c_tfc_tdf_v3.py` and
`utils.model_utils.demix`), made of a test signal; packaging/mdx23c_reference_fixture.py
wrote it. The reference code is never imported here.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_npz

from stemwright.models.architectures.tfc_tdf import TFCTDFNet
from stemwright.models.errors import Cancelled, ModelError
from stemwright.models.separation.roformer_backend import (
    RoformerSeparator,
    load_roformer,
    load_roformer_separator,
    parse_roformer_config,
)

FIXTURE = Path(__file__).parent / "data" / "mdx23c_reference.npz"
MODELS = ("four_stems", "vocals")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    return load_npz(FIXTURE)


def _official(ref: dict, key: str, folder: Path, yaml_text: str | None = None,
              state: dict | None = None) -> tuple[Path, Path]:
    """The fixture's checkpoint as UVR / MSST ship it: a torch state dict + YAML."""
    if state is None:
        names = str(ref[f"{key}/names"]).split("\n")
        state = {k: torch.from_numpy(ref[f"{key}/w{i}"]) for i, k in enumerate(names)}
    ckpt, config = folder / f"{key}.ckpt", folder / f"{key}.yaml"
    torch.save(state, ckpt)
    config.write_text(yaml_text if yaml_text is not None else str(ref[f"{key}/yaml"]))
    return ckpt, config


@pytest.mark.parametrize("key", MODELS)
def test_parity_with_reference_demix(ref, key, tmp_path):
    """Same checkpoint, same audio: our Separator path gives MSST's demix result."""
    ckpt, config = _official(ref, key, tmp_path)
    sep = load_roformer_separator(ckpt, config, key, device="cpu")
    assert isinstance(sep.model, TFCTDFNet) and sep.config.architecture == "mdx23c"
    mix, expected = ref["mix"], ref[f"{key}/out"]
    res = sep.separate(mix, 44100, residual_to_other=False)
    if key == "four_stems":  # vocals, bass, drums, other: the network's four outputs
        got = np.stack([res.stems[s] for s in ("vocals", "bass", "drums", "other")])
    else:  # target vocals; other is the complement mix - vocals
        got = res.stems["vocals"][None]
        np.testing.assert_allclose(res.stems["other"], mix - expected[0], atol=1e-5)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_partial_results_tile_and_equal_final(ref, tmp_path):
    ckpt, config = _official(ref, "four_stems", tmp_path)
    sep = load_roformer_separator(ckpt, config, "m", device="cpu", batch_size=3)
    regions = []
    res = sep.separate(ref["mix"], 44100, partial=regions.append)
    assert regions[0].start == 0 and regions[-1].end == ref["mix"].shape[-1]
    for a, b in zip(regions, regions[1:], strict=False):
        assert b.start == a.end
    for stem, final in res.stems.items():
        joined = np.concatenate([r.stems[stem] for r in regions], axis=-1)
        np.testing.assert_allclose(joined, final, atol=1e-6)
    np.testing.assert_allclose(res.stems["drums"], ref["four_stems/out"][2], atol=1e-5)


def test_progress_and_cancel(ref, tmp_path):
    ckpt, config = _official(ref, "vocals", tmp_path)
    sep = load_roformer_separator(ckpt, config, "v", device="cpu")
    seen = []
    sep.separate(ref["mix"], 44100, progress=lambda p: seen.append(p.fraction))
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    calls = []
    with pytest.raises(Cancelled):
        sep.separate(ref["mix"], 44100, cancel=lambda: calls.append(1) or len(calls) > 2)
    assert len(calls) == 3  # stopped between chunks, not at the end


def test_out_of_memory_retry_uses_whole_chunks(ref, tmp_path):
    """An out-of-memory error halves the segment; each chunk the U-Net then gets is a
    length it takes whole (hop x (T - 1), T a multiple of 2 ** num_scales)."""
    ckpt, config = _official(ref, "vocals", tmp_path)
    sep = load_roformer_separator(ckpt, config, "v", device="cpu", segment=0.1)
    sep.min_segment = 0.01
    real = sep.model.forward
    lengths = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        lengths.append(x.shape[-1])
        if x.shape[-1] > 2000:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(x)

    sep.model.forward = forward
    mix = ref["mix"]
    res = sep.separate(mix, 44100)
    assert sum("segment reduced" in n for n in res.notes) == 2
    assert lengths[:2] == [4384, 2144] and set(lengths[2:]) == {1056}  # 0.1 s, 0.05 s, 0.025 s
    for n in lengths:
        assert n % 32 == 0 and (n // 32 + 1) % 2 == 0
    np.testing.assert_allclose(res.stems["vocals"] + res.stems["other"], mix, atol=1e-5)


def test_any_length_goes_through_the_network(ref):
    """Direct calls with a length the U-Net cannot take whole are padded and cut back."""
    cfg = parse_roformer_config(str(ref["four_stems/yaml"]), "x.yaml")
    net = TFCTDFNet(**cfg.model_kwargs).eval()
    assert (net.valid_length(1000), net.valid_chunk(1000)) == (1120, 992)
    assert net.valid_length(1120) == net.valid_chunk(1120) == 1120
    with torch.no_grad():
        out = net(torch.randn(2, 2, 1000))
    assert out.shape == (2, 4, 2, 1000) and torch.isfinite(out).all()


def test_config_family_and_settings(ref):
    four = parse_roformer_config(str(ref["four_stems/yaml"]), "a.yaml")
    assert four.architecture == "mdx23c" and four.native == ("vocals", "bass", "drums",
                                                              "other")
    assert four.model_kwargs["scale"] == (2, 2) and four.model_kwargs["num_stems"] == 4
    assert (four.chunk_size, four.num_overlap, four.complement) == (1120, 4, None)
    voc = parse_roformer_config(str(ref["vocals/yaml"]), "b.yaml")
    assert voc.sources == ("vocals",) and voc.native == ("vocals", "other")
    assert voc.model_kwargs["num_stems"] == 1
    assert any("unused_setting" in n for n in voc.notes)  # MSST ignores it: so do we
    # UVR's capitalised instrument names map onto the stems
    text = str(ref["four_stems/yaml"]).replace("- vocals\n  - bass\n  - drums\n  - other",
                                               "- Vocals\n  - Instrumental")
    uvr = parse_roformer_config(text, "c.yaml")
    assert uvr.native == ("Vocals", "Instrumental")
    assert uvr.model_kwargs["num_stems"] == 2


def test_other_msst_families_are_not_taken_for_mdx23c():
    """MSST's segm_models configs have `num_subbands` and `audio: dim_f` too."""
    segm = ("audio: {chunk_size: 261632, dim_f: 4096, hop_length: 512, n_fft: 8192}\n"
            "model: {encoder_name: tu-maxvit_large_tf_512, act: gelu, num_channels: 128, "
            "num_subbands: 8}\ntraining: {instruments: [vocals, other]}\n")
    with pytest.raises(ModelError, match="not a RoFormer, MDX23C or SCNet config"):
        parse_roformer_config(segm, "segm.yaml")


def _bad(text: str, what: str) -> str:
    if what == "width":
        return text.replace("  num_channels: 4\n", "  num_channels: 8\n", 1)
    if what == "missing":
        return text.replace("  growth: 2\n", "")
    if what == "mono":
        return text.replace("  num_channels: 2\n", "  num_channels: 1\n", 1)
    if what == "dim_f":
        return text.replace("dim_f: 32", "dim_f: 30")
    if what == "activation":
        return text.replace("act: gelu", "act: swish")
    if what == "python-object":
        return text.replace("inference:", "hack: !!python/object/apply:os.system ['true']\n"
                                          "inference:")
    raise AssertionError(what)


@pytest.mark.parametrize("what,message", [
    ("width", "does not match its weights"),
    ("missing", "needs 'model: growth'"),
    ("mono", "mono MDX23C"),
    ("dim_f", "dim_f 30"),
    ("activation", "swish"),
    ("python-object", "four_stems.yaml"),
])
def test_bad_configs_fail_in_one_line(ref, tmp_path, what, message):
    text = _bad(str(ref["four_stems/yaml"]), what)
    ckpt, config = _official(ref, "four_stems", tmp_path, text)
    start = time.monotonic()
    with pytest.raises(ModelError, match=message) as info:
        load_roformer(ckpt, config)
    assert "\n" not in str(info.value)
    assert time.monotonic() - start < 5


def test_wrong_family_is_one_line(ref, tmp_path):
    """An explicit architecture must match the YAML; a RoFormer checkpoint with an
    MDX23C config is refused by the weights' layout."""
    ckpt, config = _official(ref, "four_stems", tmp_path)
    with pytest.raises(ModelError, match="describe MDX23C .*, not BS-RoFormer") as info:
        load_roformer(ckpt, config, architecture="bs_roformer")
    assert "\n" not in str(info.value)
    model, cfg = load_roformer(ckpt, config, architecture="mdx23c")
    assert cfg.architecture == "mdx23c"
    roformer_state = {"band_split.to_features.0.0.gamma": torch.ones(4)}
    ckpt, config = _official(ref, "four_stems", tmp_path, state=roformer_state)
    with pytest.raises(ModelError, match="does not match its weights") as info:
        load_roformer(ckpt, config)
    assert "\n" not in str(info.value)


class _Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_hostile_checkpoint_is_not_unpickled(ref, tmp_path):
    ckpt, config = _official(ref, "four_stems", tmp_path)
    torch.save({"state_dict": _Payload()}, ckpt)
    with pytest.raises(ModelError, match="not an official checkpoint"):
        load_roformer(ckpt, config)


def test_loaded_through_the_roformer_separator(ref, tmp_path):
    """The same Separator subclass (progress, cancel, OOM retry, partial results)."""
    ckpt, config = _official(ref, "vocals", tmp_path)
    sep = load_roformer_separator(ckpt, config, "v", device="cpu")
    assert type(sep) is RoformerSeparator
    assert sep.mapping.native == ("vocals", "other")
    assert sep.chunk_and_step(sep.default_segment) == (1056, 528)


def test_import_by_hand_then_separate(ref, tmp_path, monkeypatch, capsys):
    """`stemwright models import NAME CKPT --config YAML` takes an MDX23C pair as it takes a
    RoFormer's (the family is told by the YAML), and the zoo then loads it."""
    from stemwright.models.cli import commands as cli
    from stemwright.models.zoo import catalog as zoo

    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("STEMWRIGHT_MODEL_MIRROR", raising=False)
    ckpt, config = _official(ref, "vocals", tmp_path)
    assert cli.main(["models", "import", "my_mdx", str(ckpt), "--config", str(config)]) == 0
    capsys.readouterr()
    assert zoo.roformer_record("my_mdx")["architecture"] == "mdx23c"
    sep = zoo.load_separator("my_mdx", device="cpu")
    assert isinstance(sep.model, TFCTDFNet)
    res = sep.separate(ref["mix"], 44100, residual_to_other=False)
    np.testing.assert_allclose(res.stems["vocals"], ref["vocals/out"][0], atol=1e-5)
