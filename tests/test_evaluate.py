"""Evaluation of models and oracles on generated multitrack folders, reports and the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stemwright.models.classic.oracles import get_oracle
from stemwright.models.cli.commands import main
from stemwright.models.errors import Cancelled, StemwrightError
from stemwright.models.evaluation import evaluate as ev
from stemwright.models.multitrack.folders import load_song, scan_folder
from stemwright.models.multitrack.mixdown import mixdown_song
from stemwright.models.separation.separator import ModelPass, Separator
from stemwright.models.stems import FOUR_STEMS
from stemwright.models.synthetic.test_songs import synth_song

SR = 8000


class QuarterSeparator(Separator):
    """A poor four-stem model: a quarter of the mixture in each stem."""

    name = "quarter"
    mapping = FOUR_STEMS
    samplerate = SR

    def passes(self) -> list[ModelPass]:
        return [ModelPass(lambda x: x[:, None].expand(-1, 4, -1, -1) / 4)]


def _write_song(folder: Path, seconds: float = 2.5, seed: int = 0, full: bool = True) -> None:
    """Per-instrument tracks (vocals, drums in two tracks, and with `full` bass and guitar)
    and no mixture."""
    wanted = ("vocals", "drums", "bass", "electric_guitar") if full else ("vocals", "drums")
    _, stems = synth_song(seconds, SR, seed=seed, stems=wanted)
    folder.mkdir(parents=True)
    drums = stems["drums"]
    files = {"Lead Vox": stems["vocals"], "Kick": 0.6 * drums, "OH": 0.4 * drums}
    if full:
        files.update({"Bass DI": stems["bass"], "Dist Gtr": stems["electric_guitar"]})
    for name, x in files.items():
        sf.write(folder / f"{name}.wav", x.T, SR, subtype="FLOAT")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multitrack")
    _write_song(root / "Song One", seed=1)
    _write_song(root / "Song Two", 2.0, seed=2, full=False)
    return root


@pytest.fixture(scope="module")
def run(folder: Path):
    events: list[float] = []
    finished: list[str] = []
    report = ev.evaluate(folder, [QuarterSeparator(device="cpu")], ["irm2"], device="cpu",
                         progress=lambda p: events.append(p.fraction),
                         on_song=lambda s: finished.append(s.key))
    return report, events, finished


def test_evaluate_scores_every_song_and_stem(run) -> None:
    report, events, finished = run
    assert finished == ["Song One", "Song Two"]
    assert events == sorted(events) and events[-1] == pytest.approx(1.0)
    song = report.songs[0]
    assert song.present == ("vocals", "drums", "bass", "electric_guitar")
    assert song.absent == ("wind", "other")
    assert song.mixture_source == "sum"
    quarter, irm = song.scores["quarter"], song.scores["irm2"]
    # the four-stem model cannot make guitar: the guitar reference is scored as its "other"
    assert list(quarter) == ["vocals", "drums", "bass", "other"]
    assert quarter["other"].includes == ("electric_guitar",)
    assert list(irm) == ["vocals", "drums", "bass", "electric_guitar"]
    for stem in ("vocals", "drums", "bass"):
        assert irm[stem].sdr > quarter[stem].sdr + 3
        assert irm[stem].si_sdr > 3 and irm[stem].windows == 2
        assert np.isfinite([irm[stem].isr, irm[stem].sir, irm[stem].sar]).all()
    assert not any("does not produce" in n for n in song.notes)  # its "other" takes guitar
    assert set(song.seconds) == {"quarter", "irm2"}


def test_summary_and_reports(run, tmp_path: Path) -> None:
    report, _, _ = run
    summary = report.summary()
    irm = summary["irm2"]
    assert set(irm) == {"vocals", "drums", "bass", "electric_guitar", "mean"}
    assert irm["vocals"]["songs"] == 2 and irm["bass"]["songs"] == 1
    assert irm["vocals"]["sdr"] == pytest.approx(
        np.median([s.scores["irm2"]["vocals"].sdr for s in report.songs]))
    stems = ("vocals", "drums", "bass", "electric_guitar")
    assert irm["mean"]["si_sdr"] == pytest.approx(np.mean([irm[s]["si_sdr"] for s in stems]))
    data = json.loads(ev.write_json(report, tmp_path / "r.json").read_text())
    assert data["summary"]["irm2"]["mean"]["sdr"] == pytest.approx(irm["mean"]["sdr"])
    assert data["songs"][0]["scores"]["quarter"]["other"]["includes"] == ["electric_guitar"]
    assert data["settings"]["bss_filters"] == "auto"
    rows = list(csv.DictReader(ev.write_csv(report, tmp_path / "r.csv").open()))
    assert {r["metric"] for r in rows} == set(ev.METRICS)
    assert len([r for r in rows if r["song"] == "Song One"]) == 8 * len(ev.METRICS)
    assert len([r for r in rows if r["song"] == "Song Two"]) == 4 * len(ev.METRICS)
    median = [r for r in rows if r["song"] == "(median)" and r["system"] == "irm2"
              and r["stem"] == "mean" and r["metric"] == "sdr"]
    assert float(median[0]["value_db"]) == pytest.approx(irm["mean"]["sdr"], abs=1e-4)


def test_cancel_stops_the_evaluation(folder: Path) -> None:
    with pytest.raises(Cancelled):
        ev.evaluate(folder, [], ["ibm"], device="cpu", cancel=lambda: True)
    with pytest.raises(StemwrightError, match="nothing to evaluate"):
        ev.evaluate(folder)


def test_align_stems_merges_into_other() -> None:
    x = {s: np.full((1, 4), i + 1.0) for i, s in enumerate(("vocals", "drums", "wind"))}
    y = {s: np.full((1, 4), 10.0 * (i + 1)) for i, s in enumerate(FOUR_STEMS.produced)}
    a = ev.align_stems(x, y)  # y: vocals, drums, bass, other
    assert a.stems == ["vocals", "drums", "other"]
    assert a.includes == {"other": ("wind", "bass")}
    assert a.references[2, 0, 0] == 3.0  # wind
    assert a.estimates[2, 0, 0] == 30.0 + 40.0  # bass + other
    # a song with vocals and accompaniment only (the Wave-U-Net clips)
    b = ev.align_stems({"vocals": x["vocals"], "other": x["drums"]}, y)
    assert b.stems == ["vocals", "other"] and b.includes == {"other": ("drums", "bass")}


def test_oracles(folder: Path) -> None:
    mix = mixdown_song(load_song(scan_folder(folder).songs[1]))  # vocals and drums
    irm = get_oracle("irm2").separate(mix.mixture, SR, mix.stems)
    assert irm.unavailable == ("bass", "electric_guitar", "wind", "other")
    assert irm.residual_db < -60  # the masks sum to one
    ibm = get_oracle("ibm")
    spec = torch.randn(3, 5, 7, dtype=torch.complex64)
    masks = ibm.masks(spec)
    assert set(masks.unique().tolist()) == {0.0, 1.0} and torch.all(masks.sum(0) == 1)
    assert get_oracle("IRM").name == "irm2"
    with pytest.raises(StemwrightError, match="unknown oracle"):
        get_oracle("irm3")
    with pytest.raises(StemwrightError, match="reference"):
        get_oracle("irm1").separate(mix.mixture, SR, {})
    # teaching: the error signals of a separated stem add back up to it
    parts = ev.error_components(mix, irm, "vocals", device="cpu")
    total = parts.target + parts.e_spat + parts.e_interf + parts.e_artif
    assert np.allclose(total, irm.stems["vocals"], atol=1e-4)
    assert np.sum(parts.e_interf ** 2) > 0 and np.sum(parts.e_artif ** 2) > 0
    with pytest.raises(StemwrightError, match="no reference"):
        ev.error_components(mix, irm, "wind")


def test_silent_estimate_gets_no_bss_scores(rng) -> None:
    refs = {s: rng.standard_normal((1, 3 * SR)) for s in ("vocals", "drums")}
    ests = {"vocals": refs["vocals"] + 0.1 * refs["drums"], "drums": np.zeros((1, 3 * SR))}
    scores = ev.score_stems(refs, ests, SR, device="cpu")
    assert np.isnan(scores["drums"].sdr) and scores["drums"].sdr_track == 0.0
    assert scores["vocals"].sdr == pytest.approx(20.0, abs=0.5)
    assert scores["vocals"].sir == pytest.approx(20.0, abs=0.5)
    assert scores["vocals"].windows == 3


def test_cli_multitrack_and_evaluate(folder: Path, tmp_path: Path, capsys) -> None:
    assert main(["multitrack", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "2 songs" in out and "Dist Gtr.wav" in out and "electric_guitar" in out
    assert main(["multitrack", str(folder), "--json", "--write-mapping"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["songs"][0]["tracks"][0]["stem"] == "bass"  # Bass DI.wav comes first
    assert (folder / "stemwright-mapping.yaml").is_file()
    (folder / "stemwright-mapping.yaml").unlink()
    report = tmp_path / "report"
    assert main(["evaluate", str(folder), "--oracle", "ibm", "--device", "cpu",
                 "-o", str(report) + ".json"]) == 0
    out = capsys.readouterr().out
    assert "SDR (dB" in out and "ibm (oracle)" in out and "electric guitar" in out
    assert report.with_suffix(".json").is_file() and report.with_suffix(".csv").is_file()


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["evaluate", str(tmp_path), "--oracle", "irm2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "the folder is empty" in err
    assert main(["evaluate", str(tmp_path)]) == 1  # the default model and irm2
    assert "the folder is empty" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "-m", "no-such-model"]) == 1
    assert "unknown model" in capsys.readouterr().err


def test_cli_bench_metrics(monkeypatch, capsys) -> None:
    seen = {}

    def fake(seconds, device):
        seen.update(seconds=seconds, device=device)
        return {"speedup": 12.0}

    monkeypatch.setattr(ev, "run_metrics_benchmark", fake)
    assert main(["bench", "--metrics"]) == 0
    assert json.loads(capsys.readouterr().out) == {"speedup": 12.0}
    assert seen == {"seconds": 180.0, "device": "auto"}
