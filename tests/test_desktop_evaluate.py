"""The Evaluate dialog: a real evaluation (classic model and the IRM2 oracle) in the
evaluation process with progress, a table filled song by song with medians and their mean,
box plots, JSON/CSV export that asks before replacing a file; cancel keeps what finished."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

import soundfile as sf  # noqa: E402

from stemwright.desktop.dialogs.evaluate import EvaluateDialog, box_stats  # noqa: E402
from stemwright.desktop.settings import Settings  # noqa: E402
from stemwright.models.synthetic.test_songs import synth_song  # noqa: E402

SR = 8000
TIMEOUT = 120_000
SHOTS = Path(os.environ["STEMWRIGHT_SCREENSHOTS"]) if os.environ.get(
    "STEMWRIGHT_SCREENSHOTS") else None


def write_musdb(folder: Path, seconds: float, seed: int) -> None:
    """A mono MUSDB18-style song at a low rate (fast to separate and to score)."""
    mix, parts = synth_song(seconds, SR, seed=seed, stems=("vocals", "drums", "bass", "other"))
    folder.mkdir(parents=True)
    sf.write(folder / "mixture.wav", mix.mean(axis=0), SR, subtype="FLOAT")
    for stem, x in parts.items():
        sf.write(folder / f"{stem}.wav", x.mean(axis=0), SR, subtype="FLOAT")


pytestmark = pytest.mark.usefixtures("desktop_isolation")  # never the real user's settings


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaluate")
    for i, name in enumerate(("Alpha", "Beta", "Gamma")):
        write_musdb(root / name, 2.5 if i else 3.0, seed=i)
    return root


def make_dialog(qtbot, tmp_path, songs: Path, **kwargs) -> EvaluateDialog:
    dialog = EvaluateDialog(settings=Settings(tmp_path / "settings.ini"), **kwargs)
    qtbot.addWidget(dialog)
    dialog.show()
    with qtbot.waitSignal(dialog.scanned, timeout=TIMEOUT):
        dialog.set_folder(songs)
    return dialog


def export(qtbot, dialog: EvaluateDialog, kind: str, path: Path) -> None:
    """Export and wait until the file is written (the task may end before any wait)."""
    assert dialog.export(kind, path) is not None
    qtbot.waitUntil(lambda: dialog.export_task is None, timeout=TIMEOUT)


def test_box_stats() -> None:
    stats = box_stats([1.0, 2.0, 3.0, 4.0, 100.0, math.nan])
    assert stats["median"] == 3.0 and stats["q1"] == 2.0 and stats["q3"] == 4.0
    assert stats["hi"] == 4.0 and stats["lo"] == 1.0  # 100 is an outlier: a dot only
    assert box_stats([math.nan]) is None


def test_evaluate_dialog_runs_shows_and_exports(qtbot, tmp_path, songs):
    dialog = make_dialog(qtbot, tmp_path, songs)
    assert "3 songs" in dialog.songs_label.text()
    names = [dialog.model_list.item(i).data(256) for i in range(dialog.model_list.count())]
    assert "classic" in names and not any(n.startswith("htdemucs") for n in names)
    dialog.set_systems(["classic"], ["irm2"])
    assert dialog.run_button.isEnabled() and not dialog.json_button.isEnabled()
    progress: list[float] = []
    finished: list[str] = []
    task = dialog.run()
    assert dialog.running() and dialog.cancel_button.isEnabled()
    assert not dialog.json_button.isEnabled() and not dialog.model_list.isEnabled()
    task.progressed.connect(lambda f, _e, _m: progress.append(f))
    task.songDone.connect(lambda s: finished.append(s.key))
    with qtbot.waitSignal(dialog.evaluationFinished, timeout=TIMEOUT) as done:
        pass
    report = done.args[0]
    assert report is not None and dialog.task is None
    assert task.used_process  # in the evaluation process, not in the window's
    assert dialog.report is report and finished == ["Alpha", "Beta", "Gamma"]
    assert progress and progress == sorted(progress) and "Done" in dialog.status.text()
    # table: 4 stem medians + the mean of the medians, then 3 songs x 4 stems
    table = dialog.table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["Song", "Stem", "classic", "irm2\n(oracle)"]
    assert table.rowCount() == 5 + 12
    summary = report.summary()
    assert table.item(0, 1).text() == "Vocals"
    assert table.item(0, 3).text() == f"{summary['irm2']['vocals']['sdr']:.2f}"
    assert table.item(4, 0).text() == "Mean of the medians"
    assert table.item(4, 2).text() == f"{summary['classic']['mean']['sdr']:.2f}"
    assert summary["irm2"]["mean"]["sdr"] > summary["classic"]["mean"]["sdr"]
    dialog.metric_combo.setCurrentIndex(dialog.metric_combo.findData("si_sdr"))
    assert table.item(0, 3).text() == f"{summary['irm2']['vocals']['si_sdr']:.2f}"
    assert dialog.box_plot.boxes == 8  # 4 stems x 2 systems
    assert "Alpha" in dialog.notes.toPlainText()
    if SHOTS:
        dialog.metric_combo.setCurrentIndex(dialog.metric_combo.findData("sdr"))
        dialog.grab().save(str(SHOTS / "evaluate_table.png"))
        dialog.tabs.setCurrentIndex(1)
        qtbot.wait(50)
        dialog.grab().save(str(SHOTS / "evaluate_boxplots.png"))

    # export: JSON and CSV through the engine's writers; asks before replacing a file
    asked: list[str] = []
    answer = [False]
    dialog.confirm = lambda title, text: asked.append(text) or answer[0]
    target = tmp_path / "report.json"
    export(qtbot, dialog, "json", target)
    data = json.loads(target.read_text())
    assert [s["key"] for s in data["songs"]] == ["Alpha", "Beta", "Gamma"]
    assert data["summary"]["irm2"]["mean"]["sdr"] == pytest.approx(
        summary["irm2"]["mean"]["sdr"])
    assert not asked
    target.write_text("keep me")
    assert dialog.export("json", target) is None  # the user said no
    assert asked and target.read_text() == "keep me"
    answer[0] = True
    export(qtbot, dialog, "json", target)
    assert json.loads(target.read_text())["systems"][1] == {"name": "irm2", "kind": "oracle"}
    csv_path = tmp_path / "report"  # the suffix is added
    export(qtbot, dialog, "csv", csv_path)
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert {r["system"] for r in rows} == {"classic", "irm2"}
    assert not list(tmp_path.glob("*.part"))  # written atomically


def test_cancel_keeps_the_finished_songs(qtbot, tmp_path, songs):
    dialog = make_dialog(qtbot, tmp_path, songs, in_process=True)
    dialog.set_systems([], ["irm2", "ibm"])
    task = dialog.run()
    with qtbot.waitSignal(task.songDone, timeout=TIMEOUT):
        pass
    with qtbot.waitSignal(dialog.evaluationFinished, timeout=TIMEOUT) as done:
        dialog.cancel()
    assert done.args[0] is None and task.outcome == "cancelled"
    assert "Cancelled" in dialog.status.text()
    report = dialog.current_report()
    assert 1 <= len(report.songs) < 3
    assert [s.name for s in report.systems] == ["irm2", "ibm"]
    assert dialog.json_button.isEnabled()  # what finished can be saved
    assert dialog.table.item(0, 0).text().startswith("Median of")
