"""The embedded default model (resources/models/stemwright6.*): shipped, small, safe to
load, the default everywhere, and better than the classic separator on the demo song."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from safetensors import safe_open

from stemwright.models.cli import commands as cli
from stemwright.models.errors import ModelError
from stemwright.models.evaluation.metrics import si_sdr
from stemwright.models.multitrack.folders import load_song, scan_folder
from stemwright.models.stems import STEM_IDS
from stemwright.models.zoo import catalog as zoo
from stemwright.models.zoo.checkpoint import checkpoint_format, read_checkpoint_meta
from stemwright.resources import demo_song


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))


def test_the_embedded_model_is_the_default_and_ships_as_safetensors():
    path = zoo.embedded_checkpoint()
    assert zoo.DEFAULT_MODEL == zoo.EMBEDDED_MODEL == "stemwright6"
    assert path.is_file() and path.stat().st_size <= 30 * 1000 * 1000
    assert checkpoint_format(path) == "stemwright"
    with safe_open(str(path), "pt") as fh:  # tensors and JSON only, nothing to unpickle
        assert fh.keys()
    meta = read_checkpoint_meta(path)
    assert meta.architecture == "masknet" and meta.stems == list(STEM_IDS)
    assert meta.samplerate == 44100
    data = meta.provenance["data"]
    assert data["train_songs"] and data["valid_songs"]
    assert not set(data["train_songs"]) & set(data["valid_songs"])
    entry = zoo.get_entry("stemwright6")
    assert entry.family == "embedded" and not entry.needs_download
    assert list(entry.mapping.produced) == list(STEM_IDS) and not entry.mapping.unavailable
    assert zoo.is_installed("stemwright6")


def test_model_card_reports_the_measurements():
    card = zoo.model_card().read_text(encoding="utf-8")
    for word in ("stemwright synth", "IRM", "classic", "SI-SDR", "x real time", "Limits"):
        assert word in card, word
    for stem in ("vocals", "drums", "bass", "electric guitar", "wind", "other"):
        assert stem in card.lower(), stem


def test_built_in_models_cannot_be_removed(capsys):
    with pytest.raises(ModelError, match="built into Stemwright"):
        zoo.remove_model("stemwright6")
    assert cli.main(["models", "remove", "stemwright6"]) == 1
    assert "built into" in capsys.readouterr().err
    assert cli.main(["models", "list"]) == 0
    row = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("stemwright6"))
    assert "built in" in row


def test_missing_model_file_says_to_reinstall(monkeypatch, tmp_path):
    monkeypatch.setattr(zoo, "embedded_checkpoint", lambda: tmp_path / "gone.safetensors")
    assert not zoo.is_installed("stemwright6")
    with pytest.raises(ModelError, match="reinstall Stemwright"):
        zoo.load_separator("stemwright6", device="cpu")


def test_shipped_model_passed_the_shipping_gate():
    """Its provenance holds the test-split medians it was shipped on: as four stems it beats
    classic on SDR and SI-SDR of every stem classic makes."""
    medians = read_checkpoint_meta(zoo.embedded_checkpoint()).provenance["test_medians"]
    assert set(medians) == {"vocals", "drums", "bass", "other"}
    for stem, row in medians.items():
        assert row["model"][0] > row["classic"][0] and row["model"][1] > row["classic"][1], stem


def test_demo_song_separates_into_six_stems_with_no_model_named(tmp_path, capsys):
    """Through the CLI with no --model: six files that add up to the mix, and five stems
    much closer to their true stems than the mix is (an untrained model, all masks 1/6,
    gains 0 dB; the demo song was never trained on). Wind is the model card's stated
    limit: on this song it comes out too quiet and gains nothing over the mix."""
    folder = demo_song()
    truth = load_song(scan_folder(folder).songs[0]).by_stem()
    truth = {s: np.sum(t, axis=0) for s, t in truth.items()}
    assert set(truth) == set(STEM_IDS)
    assert cli.main(["separate", str(folder / "mix.flac"), "-o", str(tmp_path / "out"),
                     "--bit-depth", "32"]) == 0
    assert "6 stems" in capsys.readouterr().out
    song = folder.name  # mix.flac is named after its folder
    out = tmp_path / "out" / song
    names = {"vocals": "Vocals", "drums": "Drums", "bass": "Bass",
             "electric_guitar": "Electric guitar", "wind": "Wind", "other": "Other"}
    ours = {s: sf.read(out / f"{song} - {n}.wav", dtype="float32")[0].T
            for s, n in names.items()}
    mix = sf.read(folder / "mix.flac", dtype="float32")[0].T
    assert np.abs(sum(ours.values()) - mix).max() < 1e-3
    gains = {s: si_sdr(truth[s], ours[s]) - si_sdr(truth[s], mix) for s in STEM_IDS}
    assert all(gains[s] > 2.0 for s in STEM_IDS if s != "wind"), json.dumps(gains)
    assert np.sqrt(np.mean(ours["wind"] ** 2)) > 0.1 * np.sqrt(np.mean(truth["wind"] ** 2))
