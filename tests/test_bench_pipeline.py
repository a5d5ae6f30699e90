"""`stemwright bench --pipeline`: one JSON object with the whole pipeline's figures (peak
memory per song length, command vs model speed, start-up, time to first stems, metrics);
its shape on tiny settings, never its speed."""

from __future__ import annotations

import json

import pytest

from stemwright.models.benchmarks import pipeline
from stemwright.models.cli.commands import main
from stemwright.models.errors import StemwrightError


def _positive(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and x > 0


def test_pipeline_report_has_every_figure(monkeypatch):
    """A 3 s song with the classic model (museval's own time does not depend on the
    song's length, so the metrics function is replaced by its shape)."""
    import stemwright.models.evaluation.evaluate as evaluate

    monkeypatch.setattr(evaluate, "run_metrics_benchmark", lambda seconds, device: {
        "seconds": seconds, "stemwright_s": 0.1, "museval_s": 2.0, "speedup": 20.0,
        "within_1e-6_db": True})
    lines: list[str] = []
    report = pipeline.run_pipeline("classic", (0.05,), "cpu", first_minutes=0.05,
                                   metrics_seconds=3, repeats=1, progress=lines.append)
    json.dumps(report)  # JSON as it stands
    assert report["errors"] == [] and lines
    assert set(report["peak_rss_mb"]) == set(report["peak_rss_mb_in_memory"]) == {"0.05"}
    assert all(_positive(v) for v in [*report["peak_rss_mb"].values(),
                                      *report["peak_rss_mb_in_memory"].values()])
    for key in ("command_x_realtime", "model_x_realtime", "ratio", "metrics_speedup"):
        assert _positive(report[key]), key
    assert _positive(report["startup_s"]["help"])
    assert _positive(report["startup_s"]["import_commands"])
    first = report["time_to_first_stems_s"]
    assert first["partial"] is True
    assert _positive(first["warm"]) and first["cold"] >= first["warm"] > 0
    assert [r["mode"] for r in report["command_runs"]] == ["streamed", "in_memory"]
    machine = report["machine"]
    assert machine["cpu_count"] >= 1 and machine["torch_threads"] >= 1
    assert len(machine["load_average_start"]) == len(machine["load_average_end"]) == 3
    assert any("warm" in note for note in report["notes"])


@pytest.mark.parametrize("text", ["", "0", "-1", "abc", "1,x", "nan", "2000"])
def test_bad_minutes_are_refused_in_one_line(text):
    with pytest.raises(StemwrightError, match="--minutes"):
        pipeline.parse_minutes(text)


def test_minutes_are_sorted_and_unique():
    assert pipeline.parse_minutes("5, 1,60,5") == (1.0, 5.0, 60.0)


@pytest.mark.parametrize("argv, message", [
    (["bench", "--pipeline", "--minutes", "0"], "--minutes"),
    (["bench", "--pipeline", "no_such_model"], "no_such_model"),
    (["bench", "classic", "stemwright6", "--pipeline"], "one model"),
])
def test_cli_refuses_before_measuring(capsys, argv, message):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("stemwright: error:") and message in err
    assert len(err.splitlines()) == 1


def test_generated_song_has_the_length_asked(tmp_path):
    import soundfile as sf

    song = pipeline.generated_song(1.5)
    assert song.shape == (2, 66150) and song.dtype.name == "float32"
    path = pipeline.write_song(tmp_path / "s.wav", 1.5, song[:, :10000])
    info = sf.info(path)
    assert (info.frames, info.channels, info.samplerate) == (66150, 2, 44100)
    assert not list(tmp_path.glob("*.part"))
