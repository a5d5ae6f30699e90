"""Recipes and ensembles (issue 16): stems composed from several models, with one
progress bar and cancel over the chain, and stems that still add up to the mix.

Only training-free models run (classic, hpss, repet), on one second of noise."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.cli.commands import main
from stemwright.models.errors import Cancelled, ModelError
from stemwright.models.zoo import catalog as zoo
from stemwright.models.zoo import recipes
from stemwright.models.zoo.recipes import RecipeError, load_recipe_file

SR = 44100


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def mix() -> np.ndarray:
    rng = np.random.default_rng(7)
    return (0.1 * rng.standard_normal((2, SR // 2))).astype(np.float32)


def _own(sep, mix):
    """A model's own stems, without the residual folded in (how recipes run members)."""
    return sep.separate(mix, SR, residual_to_other=False).stems


def write_recipe(cache: Path, stems: dict, name: str = "mine", suffix: str = ".json") -> Path:
    folder = cache / "recipes"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{suffix}"
    path.write_text(json.dumps({"name": name, "title": "Mine", "description": "test",
                                "stems": stems}))
    return path


def _counting(sep):
    """Count the separate() calls of each member of a recipe separator."""
    calls = {}
    for name, member in sep.members.items():
        original = member.separate

        def counted(*a, _name=name, _original=original, **k):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*a, **k)
        member.separate = counted
    return calls


def test_recipe_takes_each_stem_from_its_model_and_sums_to_the_mix(cache, mix):
    write_recipe(cache, {"vocals": "repet", "drums": "hpss", "bass": "classic",
                         "electric_guitar": None, "other": "residual"})
    entry = zoo.get_entry("mine")
    assert entry.family == "recipe" and "mine" in [e.name for e in zoo.list_models()]
    assert entry.mapping.produced == ("vocals", "drums", "bass", "other")
    assert zoo.is_installed("mine")
    sep = zoo.load_separator("mine", device="cpu")
    calls = _counting(sep)
    start = time.monotonic()
    result = sep.separate(mix, SR)
    assert time.monotonic() - start < 60  # loose: the first run warms librosa up
    assert calls == {"repet": 1, "hpss": 1, "classic": 1}
    assert list(result.stems) == ["vocals", "drums", "bass", "other"]
    assert set(result.unavailable) == {"electric_guitar", "wind"}
    np.testing.assert_array_equal(result.stems["vocals"],
                                  _own(zoo.load_separator("repet"), mix)["vocals"])
    np.testing.assert_array_equal(result.stems["drums"],
                                  _own(zoo.load_separator("hpss"), mix)["drums"])
    np.testing.assert_array_equal(result.stems["bass"],
                                  _own(zoo.load_separator("classic"), mix)["bass"])
    np.testing.assert_allclose(result.sum(), mix, atol=1e-6)
    assert result.residual_in_other and np.isfinite(result.residual_db)
    assert "vocals <- repet" in result.notes and any("residual" in n for n in result.notes)


def test_a_model_giving_several_stems_runs_once_and_residual_folds_into_other(cache, mix):
    write_recipe(cache, {"vocals": "classic", "drums": "classic", "other": "repet"})
    sep = zoo.load_separator("mine", device="cpu")
    calls = _counting(sep)
    result = sep.separate(mix, SR)
    assert calls == {"classic": 1, "repet": 1}
    np.testing.assert_allclose(result.sum(), mix, atol=1e-6)  # residual folded into other
    assert result.residual_in_other
    unfolded = sep.separate(mix, SR, residual_to_other=False)
    np.testing.assert_allclose(unfolded.stems["other"],
                               _own(zoo.load_separator("repet"), mix)["other"], atol=1e-7)


def test_average_and_weighted_ensembles_are_the_mean_of_the_members(mix):
    hpss, classic = (_own(zoo.load_separator(n), mix) for n in ("hpss", "classic"))
    entry = zoo.get_entry("hpss+classic")
    assert entry.family == "recipe" and "vocals" in entry.mapping.produced
    result = zoo.load_separator("hpss+classic", device="cpu").separate(mix, SR)
    np.testing.assert_allclose(result.stems["drums"], (hpss["drums"] + classic["drums"]) / 2,
                               atol=1e-6)
    np.testing.assert_array_equal(result.stems["vocals"], classic["vocals"])  # one producer
    np.testing.assert_allclose(result.sum(), mix, atol=1e-6)
    weighted = zoo.load_separator("hpss@3+classic@1", device="cpu").separate(mix, SR)
    np.testing.assert_allclose(weighted.stems["drums"],
                               (3 * hpss["drums"] + classic["drums"]) / 4, atol=1e-6)


def test_remainder_step_runs_on_the_mix_minus_the_stems_taken(cache, mix):
    write_recipe(cache, {"drums": "hpss", "vocals": {"model": "repet", "input": "remainder"},
                         "other": "residual"})
    result = zoo.load_separator("mine", device="cpu").separate(mix, SR)
    drums = _own(zoo.load_separator("hpss"), mix)["drums"]
    expected = _own(zoo.load_separator("repet"), mix - drums)["vocals"]
    np.testing.assert_allclose(result.stems["vocals"], expected, atol=1e-6)
    np.testing.assert_allclose(result.sum(), mix, atol=1e-6)
    assert "vocals <- repet on the remainder" in result.notes


def test_one_progress_over_the_chain_and_cancel_between_members(cache, mix):
    write_recipe(cache, {"vocals": "repet", "drums": "hpss", "other": "residual"})
    sep = zoo.load_separator("mine", device="cpu")
    seen = []
    sep.separate(mix, SR, progress=lambda p: seen.append(p.fraction))
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert all(a <= b for a, b in zip(seen, seen[1:], strict=False))
    assert any(0.4 < f < 0.6 for f in seen)  # the first of two members ends half way
    calls = _counting(sep)
    fractions = []

    def cancel() -> bool:
        return bool(fractions) and fractions[-1] >= 0.5
    with pytest.raises(Cancelled):
        sep.separate(mix, SR, progress=lambda p: fractions.append(p.fraction), cancel=cancel)
    assert calls == {"repet": 1}  # the second member never started
    assert max(fractions) <= 0.5


def test_cancel_reaches_inside_a_member(cache, mix):
    write_recipe(cache, {"vocals": "repet", "other": "residual"})
    sep = zoo.load_separator("mine", device="cpu", segment=0.1)
    polls, fractions = [], []

    def cancel() -> bool:
        polls.append(1)
        return len(polls) > 2  # past the chain's own check: inside repet's chunks
    with pytest.raises(Cancelled):
        sep.separate(mix, SR, progress=lambda p: fractions.append(p.fraction), cancel=cancel)
    assert max(fractions) < 1.0  # repet stopped: it did not finish and hand back


def test_a_model_without_the_stem_asked_is_refused_at_load(cache):
    write_recipe(cache, {"wind": "hpss", "other": "residual"})
    with pytest.raises(ModelError, match=r"mine\.json.*stems\.wind.*'hpss' does not produce "
                                         r"wind"):
        zoo.load_separator("mine", device="cpu")
    write_recipe(cache, {"vocals": "no_such_model"})
    with pytest.raises(ModelError, match="unknown model 'no_such_model'"):
        zoo.load_separator("mine", device="cpu")
    write_recipe(cache, {"vocals": "offline"})  # a shipped recipe is no member
    with pytest.raises(ModelError, match="'offline' is a recipe"):
        zoo.load_separator("mine", device="cpu")
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        zoo.get_entry("classic+nope")


def test_sdr_weights_come_from_the_catalogue_or_fail_clearly(cache, mix, monkeypatch):
    write_recipe(cache, {"drums": {"weighted": "sdr", "models": ["hpss", "classic"]}})
    with pytest.raises(ModelError, match="reports no drums SDR for 'hpss'"):
        zoo.load_separator("mine", device="cpu")
    for name, sdr in (("hpss", 3.0), ("classic", 1.0)):
        monkeypatch.setitem(zoo.ZOO, name, dataclasses.replace(zoo.ZOO[name],
                                                                sdr=(("drums", sdr),)))
    result = zoo.load_separator("mine", device="cpu").separate(mix, SR,
                                                               residual_to_other=False)
    hpss, classic = (_own(zoo.load_separator(n), mix) for n in ("hpss", "classic"))
    np.testing.assert_allclose(result.stems["drums"],
                               (3 * hpss["drums"] + classic["drums"]) / 4, atol=1e-6)


BAD = [
    ("{not json", "not a readable recipe"),
    (json.dumps({"title": "x", "stems": {"vocals": "classic"}}), "name:"),
    (json.dumps({"name": "bad", "stems": {"vocal5": "classic"}}), "stems.vocal5: unknown stem"),
    (json.dumps({"name": "bad", "stems": {"vocals": "residual", "other": "residual"}}),
     "stems.other: only one stem may be the residual"),
    (json.dumps({"name": "bad", "stems": {"drums": {"weighted": {"hpss": -1}}}}),
     "stems.drums.weighted.hpss: a weight must be a positive number"),
    (json.dumps({"name": "bad", "stems": {"drums": {"model": "hpss", "input": "side"}}}),
     "stems.drums.input"),
    (json.dumps({"name": "bad", "stems": {"drums": {"average": "hpss"}}}),
     "stems.drums.average: give a list"),
    (json.dumps({"name": "bad", "stems": {"drums": {"model": "hpss", "gain": 2}}}),
     "stems.drums.gain: unknown key"),
    (json.dumps({"name": "bad", "stems": {"other": "residual"}}), "name a model"),
    (json.dumps({"name": "bad", "stem": {}}), "stem: unknown key"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_recipe_files_give_one_line_errors(cache, text, message):
    folder = cache / "recipes"
    folder.mkdir(parents=True)
    path = folder / "bad.json"
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        load_recipe_file(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith("bad.json") and message in text, text
    assert "bad" not in [e.name for e in zoo.list_models()]  # skipped, listed as skipped
    assert any(message in reason for _, reason in recipes.skipped(zoo))


def test_yaml_recipes_use_the_safe_loader(cache, mix):
    folder = cache / "recipes"
    folder.mkdir(parents=True)
    (folder / "y.yaml").write_text("name: viayaml\nstems:\n  vocals: repet\n"
                                   "  other: residual\n")
    assert zoo.get_entry("viayaml").mapping.produced == ("vocals", "other")
    (folder / "bomb.yaml").write_text("a: &x [1]\nname: *x\n")
    assert any("alias" in reason for _, reason in recipes.skipped(zoo))


def test_shipped_recipes_name_catalogue_models():
    shipped = {r.name: r for r in recipes.scan(Path("/nonexistent"))[0]}
    assert {"best-quality", "fast", "offline"} <= set(shipped)
    for recipe in shipped.values():
        assert set(recipe.produced) == set(zoo.STEM_IDS), recipe.name
        for model in recipe.models:
            assert zoo.find_model(model) is not None, (recipe.name, model)
        recipes.resolve(recipe, zoo)  # every model produces what it is asked
    assert set(shipped["offline"].models) == {"stemwright6", "classic"}  # no download
    assert zoo.is_installed("offline") and not zoo.is_installed("fast")


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_separates_with_a_recipe_and_lists_it(cache, mix, tmp_path, capsys):
    write_recipe(cache, {"vocals": "repet", "drums": "hpss", "other": "residual"})
    song = tmp_path / "tune.wav"
    sf.write(song, mix.T, SR, subtype="FLOAT")
    code, out, err = run(capsys, "separate", str(song), "-m", "mine", "-o",
                         str(tmp_path / "out"), "--device", "cpu")
    assert code == 0, err
    files = sorted(p.name for p in (tmp_path / "out" / "tune").glob("*.wav"))
    assert files == ["tune - Drums.wav", "tune - Other.wav", "tune - Vocals.wav"]
    total = sum(sf.read(tmp_path / "out" / "tune" / f, dtype="float32")[0] for f in files)
    np.testing.assert_allclose(total.T, mix, atol=1e-5)
    code, out, _ = run(capsys, "models", "list")
    line = next(row for row in out.splitlines() if row.startswith("mine "))
    assert "recipe: ready" in line and "vocals, drums, other" in line
    assert "recipe: 1 missing" in next(r for r in out.splitlines() if r.startswith("fast "))
    code, out, _ = run(capsys, "models", "info", "mine")
    assert code == 0 and "vocals <- repet" in out and "other <- residual" in out
    code, out, _ = run(capsys, "models", "list", "--json", "-v")
    row = next(r for r in json.loads(out) if r["name"] == "best-quality")
    assert row["family"] == "recipe" and row["state"] == "recipe: 4 missing"
    assert "electric_guitar <- bs_roformer_sw" in row["details"]


def test_cli_ensemble_and_its_weights(mix, tmp_path, capsys):
    song = tmp_path / "tune.wav"
    sf.write(song, mix.T, SR, subtype="FLOAT")
    code, out, err = run(capsys, "separate", str(song), "-m", "hpss+classic",
                         "--ensemble-weights", "3,1", "--stems", "drums", "-o",
                         str(tmp_path / "out"), "--device", "cpu")
    assert code == 0, err
    drums = sf.read(tmp_path / "out" / "tune" / "tune - Drums.wav", dtype="float32")[0].T
    hpss, classic = (_own(zoo.load_separator(n), mix) for n in ("hpss", "classic"))
    np.testing.assert_allclose(drums, (3 * hpss["drums"] + classic["drums"]) / 4, atol=1e-5)
    code, _, err = run(capsys, "separate", str(song), "-m", "classic",
                       "--ensemble-weights", "3,1", "-o", str(tmp_path / "o2"))
    assert code == 1 and err.count("\n") == 1 and "needs an ensemble" in err
    code, _, err = run(capsys, "separate", str(song), "-m", "hpss+classic",
                       "--ensemble-weights", "3", "-o", str(tmp_path / "o3"))
    assert code == 1 and err.count("\n") == 1 and "1 weights for 2 models" in err
    with pytest.raises(SystemExit):
        main(["separate", "--help"])
    out = capsys.readouterr().out
    assert "MODEL+MODEL" in out and "--ensemble-weights" in out


def test_downloading_a_recipe_fetches_its_missing_models(tmp_path, monkeypatch, capsys):
    fetched = []

    def fake_download(name, progress=None, cancel=None):
        fetched.append(name)
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        (folder / "w.th").write_bytes(b"0" * 10)
        if progress is not None:
            progress(10, 10)
        return folder
    monkeypatch.setattr(zoo, "download_model", fake_download)
    seen = []
    recipes.download(recipes.find("fast", zoo), zoo, progress=lambda d, t: seen.append((d, t)))
    assert fetched == ["htdemucs"] and seen == [(10, 84_000_000)]
    assert run(capsys, "models", "download", "fast")[0] == 0
    assert fetched == ["htdemucs", "htdemucs"]  # the CLI: the recipe's missing models
    code, _, err = run(capsys, "models", "download", "best-quality")
    assert code == 1 and err.count("\n") == 1 and "no verified checksum" in err
    assert fetched == ["htdemucs", "htdemucs"]  # refused before any download
    assert zoo.get_entry("fast").needs_download and not zoo.is_installed("fast")
