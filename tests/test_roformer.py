"""Community BS-RoFormer / Mel-Band RoFormer checkpoints through Stemwright's Separator.

Parity: tests/data/roformer_reference.npz holds tiny random-weight checkpoints in the
official layout (state dict + MSST YAML) and what the reference, ZFTurbo's
Music-Source-Separation-Training (its model classes and `utils.model_utils.demix`), made
of a test signal; packaging/roformer_reference_fixture.py wrote it. Nothing downloads:
the zoo test serves its files from 127.0.0.1.
"""

from __future__ import annotations

import functools
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_npz

from stemwright.models.architectures.roformer import BSRoformer, mel_band_layout
from stemwright.models.errors import Cancelled, ModelError
from stemwright.models.separation.roformer_backend import (
    RoformerSeparator,
    demix,
    load_roformer,
    load_roformer_separator,
    mapping_for_instruments,
    parse_roformer_config,
)

FIXTURE = Path(__file__).parent / "data" / "roformer_reference.npz"
ARCHS = ("bs_roformer", "mel_band_roformer")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    return load_npz(FIXTURE)


def _official(ref: dict, arch: str, folder: Path, yaml_text: str | None = None
              ) -> tuple[Path, Path]:
    """The fixture's checkpoint as UVR / MSST ship it: a torch state dict + YAML."""
    names = str(ref[f"{arch}/names"]).split("\n")
    state = {k: torch.from_numpy(ref[f"{arch}/w{i}"]) for i, k in enumerate(names)}
    ckpt, config = folder / f"{arch}.ckpt", folder / f"{arch}.yaml"
    torch.save(state, ckpt)
    config.write_text(yaml_text if yaml_text is not None else str(ref[f"{arch}/yaml"]))
    return ckpt, config


@pytest.mark.parametrize("arch", ARCHS)
def test_parity_with_reference_demix(ref, arch, tmp_path):
    """Same checkpoint, same audio: our Separator path gives MSST's demix result."""
    ckpt, config = _official(ref, arch, tmp_path)
    sep = load_roformer_separator(ckpt, config, arch, device="cpu")
    mix, expected = ref["mix"], ref[f"{arch}/out"]
    res = sep.separate(mix, 44100, residual_to_other=False)
    if arch == "bs_roformer":  # instruments drums, guitar (-> electric guitar)
        got = np.stack([res.stems["drums"], res.stems["electric_guitar"]])
        assert res.unavailable == ("vocals", "bass", "wind", "other")
    else:  # target vocals; other is the complement mix - vocals
        got = res.stems["vocals"][None]
        np.testing.assert_allclose(res.stems["other"], mix - expected[0], atol=1e-5)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_mel_bands_match_librosa(ref):
    """The mel band layout of the published Mel-Band RoFormers, computed without librosa,
    is librosa's (stored by the fixture script)."""
    layout = mel_band_layout(44100, 2048, 60)
    expected = np.unpackbits(ref["mel_layout_44100_2048_60"])[:layout.size]
    assert np.array_equal(layout.reshape(-1), expected.astype(bool))


def test_partial_results_tile_and_equal_final(ref, tmp_path):
    ckpt, config = _official(ref, "bs_roformer", tmp_path)
    sep = load_roformer_separator(ckpt, config, "bs", device="cpu", batch_size=3)
    regions = []
    res = sep.separate(ref["mix"], 44100, partial=regions.append)
    assert regions[0].start == 0 and regions[-1].end == ref["mix"].shape[-1]
    for a, b in zip(regions, regions[1:], strict=False):
        assert b.start == a.end
    for stem, final in res.stems.items():
        joined = np.concatenate([r.stems[stem] for r in regions], axis=-1)
        np.testing.assert_allclose(joined, final, atol=1e-6)
    # batching three chunks changes nothing (MSST's own batch quirk is not copied)
    np.testing.assert_allclose(res.stems["drums"], ref["bs_roformer/out"][0], atol=1e-5)
    assert not res.residual_in_other  # drums and guitar only: nowhere to put the rest


def test_progress_and_cancel(ref, tmp_path):
    ckpt, config = _official(ref, "mel_band_roformer", tmp_path)
    sep = load_roformer_separator(ckpt, config, "mel", device="cpu")
    seen = []
    sep.separate(ref["mix"], 44100, progress=lambda p: seen.append(p.fraction))
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(1.0)
    assert seen == sorted(seen)
    calls = []
    with pytest.raises(Cancelled):
        sep.separate(ref["mix"], 44100, cancel=lambda: calls.append(1) or len(calls) > 2)
    assert len(calls) == 3  # stopped between chunks, not at the end


def test_demix_short_and_exact_inputs():
    """Songs shorter than one chunk and of exactly one chunk: no NaN, identity kept."""
    ident = lambda x: x.unsqueeze(1)  # noqa: E731 - one source: the input
    for length in (1, 700, 1000, 1024, 1500):
        mix = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
        out = demix(ident, mix, 1, 1024, 512, torch.device("cpu"))
        assert out.shape == (1, 2, length) and np.isfinite(out).all()
        np.testing.assert_allclose(out[0], mix, atol=1e-6)


def test_other_order_and_mapping(ref, tmp_path):
    mapping = mapping_for_instruments(("vocals", "guitar", "piano", "Other", "karaoke"))
    assert mapping.target_of("guitar") == "electric_guitar"
    assert {mapping.target_of(s) for s in ("piano", "Other", "karaoke")} == {"other"}
    with pytest.raises(ModelError, match="'theremin'"):
        mapping_for_instruments(("vocals", "theremin"))


def _bad_yaml(text: str, what: str) -> str:
    if what == "dim":
        return text.replace("  dim: 8\n", "  dim: 16\n", 1)
    if what == "python-object":
        return text.replace("inference:", "hack: !!python/object/apply:os.system ['true']\n"
                                          "inference:")
    if what == "num_stems":
        return text.replace("num_stems: 2", "num_stems: 3")
    if what == "mono":
        return text.replace("stereo: true", "stereo: false")
    if what == "unknown-setting":
        return text.replace("  dim: 8\n", "  dim: 8\n  warp_drive: 3\n", 1)
    raise AssertionError(what)


@pytest.mark.parametrize("what,message", [
    ("dim", "does not match its weights"),
    ("python-object", "bs_roformer.yaml"),
    ("num_stems", "num_stems 3"),
    ("mono", "mono"),
    ("unknown-setting", "warp_drive"),
])
def test_bad_configs_fail_in_one_line(ref, tmp_path, what, message):
    text = _bad_yaml(str(ref["bs_roformer/yaml"]), what)
    ckpt, config = _official(ref, "bs_roformer", tmp_path, text)
    start = time.monotonic()
    with pytest.raises(ModelError, match=message) as info:
        load_roformer(ckpt, config)
    assert "\n" not in str(info.value)
    assert time.monotonic() - start < 5


class _Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_hostile_checkpoint_is_not_unpickled(ref, tmp_path):
    ckpt, config = _official(ref, "bs_roformer", tmp_path)
    torch.save({"state_dict": _Payload()}, ckpt)
    with pytest.raises(ModelError, match="not an official checkpoint"):
        load_roformer(ckpt, config)


def test_config_reads_msst_tuples(ref):
    cfg = parse_roformer_config(str(ref["bs_roformer/yaml"]), "x.yaml")
    assert cfg.architecture == "bs_roformer" and cfg.sources == ("drums", "guitar")
    assert isinstance(cfg.model_kwargs["freqs_per_bands"], tuple)
    assert (cfg.chunk_size, cfg.num_overlap, cfg.complement) == (1024, 2, None)
    mel = parse_roformer_config(str(ref["mel_band_roformer/yaml"]), "y.yaml")
    assert mel.native == ("vocals", "other") and mel.num_overlap == 4


# -- the zoo entries and their download path -----------------------------------------------

SW_YAML = """\
audio: {chunk_size: 2048, sample_rate: 44100}
model:
  dim: 8
  depth: 1
  stereo: true
  num_stems: 6
  time_transformer_depth: 1
  freq_transformer_depth: 1
  freqs_per_bands: !!python/tuple [16, 17]
  dim_head: 4
  heads: 2
  stft_n_fft: 64
  stft_hop_length: 16
  stft_win_length: 64
  mlp_expansion_factor: 1
training:
  instruments: [vocals, drums, bass, guitar, piano, other]
inference: {num_overlap: 2, batch_size: 1}
"""


def test_zoo_entries():
    """Written, but kept out of ZOO until their sha256 are known (every zoo file is
    checksum-verified; nothing here may guess one)."""
    from stemwright.models.zoo.catalog import ROFORMER_ENTRIES, ZOO

    for name in ("bs_roformer_sw", "bs_roformer_viperx_1297", "mel_band_roformer_kj_vocals"):
        entry = ROFORMER_ENTRIES[name]
        assert name not in ZOO or all(f.checksum for f in ZOO[name].files)
        assert entry.family == "roformer" and entry.licence and "SDR" in entry.source
        assert {f.target for f in entry.files} == {"checkpoint", "config"}
        assert all(f.url.startswith("https://") for f in entry.files)
    sw = ROFORMER_ENTRIES["bs_roformer_sw"].mapping
    assert sw.produced == ("vocals", "drums", "bass", "electric_guitar", "other")


@pytest.fixture
def served(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_download_and_separate_from_local_server(served, tmp_path, monkeypatch):
    """Once a RoFormer entry records its files' sha256, `models download` fetches both
    files (here a tiny random six-stem model under BS Roformer SW's file names), verified,
    and they load and separate; without the checksums it refuses to download."""
    import dataclasses

    from stemwright.models.errors import ChecksumError
    from stemwright.models.zoo import catalog
    from stemwright.models.zoo.download import sha256_file

    folder, url = served
    entry = catalog.ROFORMER_ENTRIES["bs_roformer_sw"]
    files = {f.target: f.filename for f in entry.files}
    torch.manual_seed(0)
    cfg = parse_roformer_config(SW_YAML, "sw.yaml")
    torch.save(BSRoformer(**cfg.model_kwargs).state_dict(), folder / files["checkpoint"])
    (folder / files["config"]).write_text(SW_YAML)
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STEMWRIGHT_MODEL_MIRROR", url)
    monkeypatch.setitem(catalog.ZOO, entry.name, entry)
    with pytest.raises(ModelError, match="no verified checksum yet"):
        catalog.download_model("bs_roformer_sw")
    assert not catalog.model_dir("bs_roformer_sw").exists()
    wrong = dataclasses.replace(entry, files=tuple(
        dataclasses.replace(f, sha256="0" * 64) for f in entry.files))
    monkeypatch.setitem(catalog.ZOO, entry.name, wrong)
    with pytest.raises(ChecksumError):
        catalog.download_model("bs_roformer_sw")
    assert not catalog.is_installed("bs_roformer_sw")
    entry = dataclasses.replace(entry, files=tuple(
        dataclasses.replace(f, sha256=sha256_file(folder / f.filename)) for f in entry.files))
    monkeypatch.setitem(catalog.ZOO, entry.name, entry)
    done = []
    model_dir = catalog.download_model("bs_roformer_sw", progress=lambda d, t: done.append(d))
    assert catalog.is_installed("bs_roformer_sw") and done[-1] > 0
    assert isinstance(catalog.load_separator("bs_roformer_sw", device="cpu"),
                      RoformerSeparator)  # downloaded: no import record, official names
    sep = load_roformer_separator(model_dir / files["checkpoint"], model_dir / files["config"],
                                  "bs_roformer_sw", mapping=entry.mapping, device="cpu")
    assert isinstance(sep, RoformerSeparator)
    assert sep.mapping.native == ("vocals", "drums", "bass", "guitar", "piano", "other")
    mix = np.random.default_rng(0).standard_normal((2, 5000)).astype(np.float32) * 0.1
    res = sep.separate(mix, 44100)
    assert set(res.stems) == {"vocals", "drums", "bass", "electric_guitar", "other"}
    np.testing.assert_allclose(sum(res.stems.values()), mix, atol=1e-5)
    # a config that names other instruments than the entry is refused
    (model_dir / files["config"]).write_text(SW_YAML.replace("piano", "keys"))
    with pytest.raises(ModelError, match="another model"):
        load_roformer_separator(model_dir / files["checkpoint"], model_dir / files["config"],
                                "bs_roformer_sw", mapping=entry.mapping, device="cpu")
