"""`stemwright models compare`: facts, a measured run per model, and the written report."""

from __future__ import annotations

import csv
import json
import time

import pytest
import torch

from stemwright.models.benchmarks import compare
from stemwright.models.cli import commands as cli


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    saved = torch.get_num_threads()
    monkeypatch.setattr("stemwright.models.separation.separator.configure_cpu_threads",
                        lambda threads=None: torch.set_num_threads(1))
    yield
    torch.set_num_threads(saved)


def test_facts_of_every_model():
    names = compare.all_names()
    assert names[:8] == ["wavenet", "waveunet", "convtasnet", "condtasnet", "openunmix6",
                         "masknet", "bandsplit", "htdemucs6"]
    assert set(compare.CLASSIC) <= set(names)
    wavenet = compare.describe("wavenet")
    assert abs(wavenet["params"] / 3.3e6 - 1) < 0.05
    assert wavenet["receptive_field_samples"] == 8191
    assert wavenet["receptive_field_seconds"] == pytest.approx(0.512, abs=1e-3)
    assert abs(compare.describe("waveunet")["params"] / 10.2e6 - 1) < 0.05
    assert compare.describe("openunmix6")["receptive_field_note"] == "whole chunk (BiLSTM)"
    masknet = compare.describe("masknet")
    assert 4.5e6 < masknet["params"] < 5.5e6
    assert masknet["receptive_field_seconds"] == pytest.approx(3.158, abs=1e-3)
    bandsplit = compare.describe("bandsplit")
    assert 1.5e6 < bandsplit["params"] < 1.8e6  # a third of MaskNet: the CPU budget
    assert 0.5 < bandsplit["receptive_field_seconds"] < 3.0
    hpss = compare.describe("hpss")
    assert hpss["params"] == 0 and hpss["kind"] == "classic"
    with pytest.raises(Exception, match="nothing to compare"):
        compare.describe("nope")


def test_measure_one_in_process():
    row = compare.measure_one("wavenet", "cpu", seconds=0.5, small=True, threads=1)
    assert row["x_realtime"] > 0 and row["wall_seconds"] >= 0
    assert row["peak_rss_mb"] > 0 and row["model_rss_mb"] > 0
    assert len(row["stems_out"]) == 6 and row["device"] == "cpu"


def test_report_formats():
    facts = compare.describe("wavenet", small=True)
    report = {"machine": {"cpu": "test cpu"}, "seconds": 60, "small": True, "results": [
        dict(facts, device="cpu", x_realtime=2.5, peak_rss_mb=900.0, model_rss_mb=600.0,
             peak_rss_is_separation_only=True),
        dict(facts, device="cuda", x_realtime=80.0, peak_gpu_mb=123.4),
        dict(compare.describe("hpss"), device="cpu", error="boom"),
    ]}
    md = compare.to_markdown(report)
    lines = md.splitlines()
    assert lines[0].startswith("| model |") and len([ln for ln in lines if
                                                     ln.startswith("| ")]) == 3
    assert "| 2.50 | 900 (+300) | 80.00 | 123 |" in md
    assert "hpss on cpu: boom" in md
    rows = list(csv.reader(compare.to_csv(report).splitlines()))
    assert rows[0] == list(compare.COLUMNS) and rows[2][0] == "hpss" and rows[2][6] == "error"


def test_cli_compare_writes_json_markdown_and_csv(tmp_path, capsys):
    code = cli.main(["models", "compare", "wavenet", "hpss", "--small", "--seconds", "0.5",
                     "--device", "cpu", "--threads", "1", "-o", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "| wavenet |" in out and "| hpss |" in out
    report = json.loads((tmp_path / "models-compare.json").read_text())
    assert [r["model"] for r in report["results"]] == ["wavenet", "hpss"]
    assert all("error" not in r and r["x_realtime"] > 0 for r in report["results"])
    assert (tmp_path / "models-compare.md").read_text().startswith("| model |")
    assert (tmp_path / "models-compare.csv").read_text().startswith("model,kind,")
    assert cli.main(["models", "compare", "nope", "-o", str(tmp_path)]) == 1


# -- the published community architectures (issue 16): random weights, no download -----

def test_published_architectures_are_listed_with_their_published_sizes():
    names = compare.all_names()
    assert names.index("htdemucs6") < names.index("bs_roformer") < names.index("hpss")
    assert {"bs_roformer", "mel_band_roformer", "mdx23c", "scnet"} <= set(names)
    t0 = time.perf_counter()
    facts = {n: compare.describe(n) for n in compare.PUBLISHED}  # full size, on "meta"
    assert time.perf_counter() - t0 < 20
    # fp32 sizes of the published checkpoints: viperx 1297 639 MB, KJ vocals 913 MB;
    # SCNet's paper: 10.5 M
    assert 155e6 < facts["bs_roformer"]["params"] < 165e6
    assert 220e6 < facts["mel_band_roformer"]["params"] < 235e6
    assert 10.4e6 < facts["scnet"]["params"] < 10.7e6
    assert facts["mdx23c"]["params"] > 50e6
    assert facts["bs_roformer"]["segment_seconds"] == 8.0
    assert facts["scnet"]["stems"] == ["vocals", "drums", "bass", "other"]
    for name, row in facts.items():
        assert row["note"].startswith(compare.PUBLISHED_NOTE)
        assert compare.PUBLISHED[name]["file"].rsplit("/", 1)[-1] in row["note"]
        assert row["receptive_field_note"].startswith("whole chunk")


@pytest.mark.parametrize("name", list(compare.PUBLISHED))
def test_published_architecture_measured_small(name):
    row = compare.measure_one(name, "cpu", seconds=0.5, small=True, threads=1)
    assert row["x_realtime"] > 0 and row["peak_rss_mb"] > 0
    assert row["params"] < 200_000 and "tiny test version" in row["note"]
    assert "other" in row["stems_out"] and row["audio_seconds"] == 0.5


def test_a_slow_published_model_is_measured_on_a_short_signal(monkeypatch):
    monkeypatch.setitem(compare.PUBLISHED["scnet"], "cpu_seconds", 0.25)
    row = compare.measure_one("scnet", "cpu", seconds=0.5, small=True, threads=1)
    assert row["audio_seconds"] == 0.25 and "CPU figures on 0.25 s" in row["note"]
    report = {"machine": {}, "seconds": 0.5, "small": True, "results": [row]}
    md = compare.to_markdown(report)
    assert "random weights, published architecture" in md and "0.25 s of audio" in md
    assert compare.to_csv(report).splitlines()[0].endswith(",note")


def test_cli_compare_runs_a_published_architecture(tmp_path, capsys):
    code = cli.main(["models", "compare", "mdx23c", "--small", "--seconds", "0.5",
                     "--device", "cpu", "--threads", "1", "-o", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "| mdx23c |" in out and "published architecture" in out
    report = json.loads((tmp_path / "models-compare.json").read_text())
    assert "error" not in report["results"][0] and report["results"][0]["x_realtime"] > 0
