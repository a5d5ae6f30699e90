"""Community RoFormers installed by hand, offline: `models import NAME CKPT --config YAML`.

The files are tiny random-weight RoFormers in the official layout (a torch state dict + its
MSST YAML), made in tmp_path; the cache is tmp_path too. Nothing downloads.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from stemwright.models.architectures.roformer import BSRoformer
from stemwright.models.cli import commands as cli
from stemwright.models.errors import ModelError
from stemwright.models.separation.roformer_backend import RoformerSeparator, parse_roformer_config
from stemwright.models.training.config import TrainingError
from stemwright.models.zoo import catalog as zoo

SW = "bs_roformer_sw"
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


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private cache, one torch thread (tiny models; a shared machine)."""
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("STEMWRIGHT_MODEL_MIRROR", raising=False)
    monkeypatch.setattr("stemwright.models.separation.separator.configure_cpu_threads",
                        lambda threads=None: torch.set_num_threads(1))
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _pair(folder: Path, yaml_text: str = SW_YAML, weights_yaml: str = SW_YAML,
          stem: str = "BS-Roformer-SW") -> tuple[Path, Path]:
    """A `.ckpt` (weights built from `weights_yaml`) and its YAML (`yaml_text`)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    cfg = parse_roformer_config(weights_yaml, "w.yaml")
    ckpt, config = folder / f"{stem}.ckpt", folder / f"{stem}.yaml"
    torch.save(BSRoformer(**cfg.model_kwargs).state_dict(), ckpt)
    config.write_text(yaml_text)
    return ckpt, config


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 1
    assert err.startswith("stemwright: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _separates(name: str) -> None:
    sep = zoo.load_separator(name, device="cpu")
    assert isinstance(sep, RoformerSeparator)
    mix = np.random.default_rng(0).standard_normal((2, 5000)).astype(np.float32) * 0.1
    res = sep.separate(mix, 44100)
    assert set(res.stems) == {"vocals", "drums", "bass", "electric_guitar", "other"}
    np.testing.assert_allclose(sum(res.stems.values()), mix, atol=1e-5)


def test_import_catalogue_roformer_then_separate(tmp_path, capsys):
    ckpt, config = _pair(tmp_path / "downloads")
    code, out, err = _run(capsys, "models", "import", SW, str(ckpt), "--config", str(config))
    assert code == 0, err
    assert _sha(ckpt) in out and _sha(config) in out
    assert "compare with the publisher's if they list one" in out
    folder = zoo.model_dir(SW)
    names = {f.target: f.filename for f in zoo.ROFORMER_ENTRIES[SW].files}
    assert (folder / names["checkpoint"]).read_bytes() == ckpt.read_bytes()
    assert (folder / names["config"]).read_text() == SW_YAML
    record = json.loads((folder / zoo.ROFORMER_RECORD).read_text())
    assert record["sha256"] == {"checkpoint": _sha(ckpt), "config": _sha(config)}
    assert not list(folder.glob("*.part"))
    assert zoo.is_installed(SW)
    assert SW in {e.name for e in zoo.list_models()}
    assert SW not in {e.name for e in zoo.import_only_models()}
    _separates(SW)
    code, out, _ = _run(capsys, "models", "list")
    assert any(r.startswith(SW) and "installed" in r for r in out.splitlines())
    code, out, _ = _run(capsys, "models", "info", SW)
    assert code == 0 and _sha(ckpt) in out
    # importing it again replaces it (e.g. a newer file); removing deletes it
    assert _run(capsys, "models", "import", SW, str(ckpt), "--config", str(config))[0] == 0
    assert zoo.remove_model(SW) and not zoo.is_installed(SW)


def test_import_under_a_new_name(tmp_path, capsys):
    ckpt, config = _pair(tmp_path / "uvr", stem="my model")
    code, out, err = _run(capsys, "models", "import", "my_sw", str(ckpt), "--config",
                          str(config))
    assert code == 0, err
    assert _sha(ckpt) in out and _sha(config) in out
    entry = zoo.get_entry("my_sw")
    assert entry.family == "roformer" and zoo.is_installed("my_sw")
    assert entry.mapping.target_of("guitar") == "electric_guitar"  # the default mapping
    assert "my_sw" in {e.name for e in zoo.list_models()}
    _separates("my_sw")
    code, _, err = _run(capsys, "models", "import", "my_sw", str(ckpt), "--config",
                        str(config))
    _one_line_error(code, err, "already installed")
    code, _, err = _run(capsys, "models", "import", "my_sw", str(ckpt))
    _one_line_error(code, err, "needs its YAML")
    assert zoo.remove_model("my_sw") and "my_sw" not in {e.name for e in zoo.list_models()}


@pytest.mark.parametrize("name", [SW, "mine"])
def test_ckpt_without_config_is_one_line(tmp_path, capsys, name):
    ckpt, _ = _pair(tmp_path)
    code, _, err = _run(capsys, "models", "import", name, str(ckpt))
    _one_line_error(code, err, "a RoFormer checkpoint needs its YAML config", "--config")
    assert not zoo.model_dir(name).exists()


@pytest.mark.parametrize("name,yaml_text,message", [
    (SW, SW_YAML.replace("  dim: 8\n", "  dim: 16\n", 1), "does not match its weights"),
    (SW, SW_YAML.replace("piano", "keys"), "another model"),
    ("mine", SW_YAML.replace("piano", "theremin"), "'theremin'"),
    ("mine", SW_YAML.replace("inference:", "hack: !!python/object/apply:os.system ['true']"
                                           "\ninference:"), "BS-Roformer-SW.yaml"),
])
def test_bad_pairs_are_refused_before_anything_is_written(tmp_path, capsys, name,
                                                           yaml_text, message):
    ckpt, config = _pair(tmp_path, yaml_text=yaml_text)
    start = time.monotonic()
    code, _, err = _run(capsys, "models", "import", name, str(ckpt), "--config", str(config))
    _one_line_error(code, err, message)
    assert time.monotonic() - start < 5
    assert not zoo.model_dir(name).exists()


class _Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_hostile_checkpoint_is_refused(tmp_path, capsys):
    ckpt, config = _pair(tmp_path)
    torch.save({"state_dict": _Payload()}, ckpt)
    code, out, err = _run(capsys, "models", "import", "evil", str(ckpt), "--config",
                          str(config))
    _one_line_error(code, err, "not an official checkpoint")
    assert "pwned" not in out and not zoo.model_dir("evil").exists()


def test_download_of_import_only_model_is_one_line(capsys):
    entry = zoo.ROFORMER_ENTRIES[SW]
    code, out, err = _run(capsys, "models", "download", SW)
    _one_line_error(code, err, "no verified checksum yet", "stemwright models import "
                    f"{SW} BS-Roformer-SW.ckpt --config BS-Roformer-SW.yaml",
                    *(f.url for f in entry.files))
    assert out == "" and not zoo.model_dir(SW).exists()
    with pytest.raises(ModelError, match="cannot be downloaded") as info:
        zoo.load_separator(SW, device="cpu")
    assert "models import" in str(info.value) and "\n" not in str(info.value)


def test_list_and_info_show_import_only_models(capsys):
    code, out, _ = _run(capsys, "models", "list")
    rows = {r.split()[0]: r for r in out.splitlines() if r and not r.startswith(" ")}
    for name in zoo.ROFORMER_ENTRIES:
        assert "import only" in rows[name]
    code, out, _ = _run(capsys, "models", "list", "--verbose")
    assert all(f.url in out for e in zoo.ROFORMER_ENTRIES.values() for f in e.files)
    code, out, _ = _run(capsys, "models", "list", "--json")
    states = {r["name"]: r["state"] for r in json.loads(out)}
    assert states[SW] == "import only" and states["htdemucs"] == "not downloaded"
    code, out, _ = _run(capsys, "models", "info", SW)
    assert code == 0 and "import only" in out
    assert all(f.url in out for f in zoo.ROFORMER_ENTRIES[SW].files)
    # the app's picker (list_models) offers only what can run or be downloaded
    assert SW not in {e.name for e in zoo.list_models()}


def test_fine_tuning_a_roformer_is_refused(tmp_path, capsys):
    from stemwright.models.training.model_init import init_model

    with pytest.raises(TrainingError, match="not supported yet") as info:
        init_model(SW)
    assert "\n" not in str(info.value)
    ckpt, config = _pair(tmp_path)
    assert _run(capsys, "models", "import", "mine", str(ckpt), "--config", str(config))[0] == 0
    with pytest.raises(TrainingError, match="not supported yet"):
        init_model("mine")


def test_broken_record_is_skipped_and_removable(tmp_path, capsys):
    ckpt, config = _pair(tmp_path)
    assert _run(capsys, "models", "import", "mine", str(ckpt), "--config", str(config))[0] == 0
    (zoo.model_dir("mine") / zoo.ROFORMER_RECORD).write_text("{not json")
    assert "mine" not in {e.name for e in zoo.list_models()}
    assert "mine" in dict(zoo.unreadable_models())
    assert _run(capsys, "models", "list")[0] == 0
    assert zoo.remove_model("mine") and not zoo.model_dir("mine").exists()


def test_config_for_a_non_roformer_is_refused(tmp_path, capsys):
    ckpt, config = _pair(tmp_path)
    code, _, err = _run(capsys, "models", "import", "htdemucs", str(ckpt), "--config",
                        str(config))
    _one_line_error(code, err, "only for RoFormer")


def test_swapped_files_and_pth_without_config_are_one_line(tmp_path, capsys):
    ckpt, config = _pair(tmp_path)
    code, _, err = _run(capsys, "models", "import", "mine", str(config), "--config",
                        str(ckpt))
    _one_line_error(code, err, "BS-Roformer-SW.ckpt: binary data, not a YAML config")
    pth = ckpt.with_suffix(".pth")
    pth.write_bytes(ckpt.read_bytes())
    code, _, err = _run(capsys, "models", "import", "mine", str(pth))
    _one_line_error(code, err, "if it is a RoFormer, give its YAML config too")
    assert not zoo.model_dir("mine").exists()


def test_recorded_checksums_must_match_at_import(tmp_path, capsys, monkeypatch):
    """Once an entry knows its files' sha256, an import of other files is refused."""
    import dataclasses

    ckpt, config = _pair(tmp_path)
    entry = zoo.ROFORMER_ENTRIES[SW]
    wrong = dataclasses.replace(entry, files=tuple(
        dataclasses.replace(f, sha256="0" * 64) for f in entry.files))
    monkeypatch.setitem(zoo.ROFORMER_ENTRIES, SW, wrong)
    code, _, err = _run(capsys, "models", "import", SW, str(ckpt), "--config", str(config))
    _one_line_error(code, err, "is not the published checkpoint")
    assert not zoo.model_dir(SW).exists()
    right = dataclasses.replace(entry, files=(
        dataclasses.replace(entry.files[0], sha256=_sha(ckpt)),
        dataclasses.replace(entry.files[1], sha256=_sha(config))))
    monkeypatch.setitem(zoo.ROFORMER_ENTRIES, SW, right)
    assert _run(capsys, "models", "import", SW, str(ckpt), "--config", str(config))[0] == 0
