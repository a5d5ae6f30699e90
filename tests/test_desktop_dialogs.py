"""Issue 19: the Evaluate, Fine-tune, Export and Multitrack dialogs as teachers and
producers expect them: the current model ticked and rows that tick when clicked, tick boxes
that show on the dark theme, a like-for-like headline, the song's name, column headers on an
empty table; fine-tuning the built-in model by default, choices remembered, Resume only for
a run that exists, curves that show every point and stem; a folder per song when exporting
and an "Open folder"; the real way each multitrack track was matched."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

import soundfile as sf  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QColor, QDesktopServices  # noqa: E402

from stemwright.desktop.dialogs.evaluate import EvaluateDialog  # noqa: E402
from stemwright.desktop.settings import Settings  # noqa: E402
from stemwright.models.evaluation.evaluate import (  # noqa: E402
    EvaluationReport,
    SongResult,
    StemScore,
    SystemInfo,
)
from stemwright.models.zoo.catalog import DEFAULT_MODEL  # noqa: E402

pytestmark = pytest.mark.usefixtures("desktop_isolation")  # never the real user's settings

SR = 8000
SIX = ("vocals", "drums", "bass", "electric_guitar", "wind", "other")


def settings_in(tmp_path: Path) -> Settings:
    return Settings(tmp_path / "settings.ini")


def evaluate_dialog(qtbot, tmp_path: Path, settings: Settings | None = None) -> EvaluateDialog:
    dialog = EvaluateDialog(settings=settings or settings_in(tmp_path), in_process=True)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def model_item(dialog: EvaluateDialog, name: str):
    for i in range(dialog.model_list.count()):
        item = dialog.model_list.item(i)
        if item.data(Qt.ItemDataRole.UserRole) == name:
            return item
    raise KeyError(name)


def four_vs_six_report(key: str = "Alpha") -> EvaluationReport:
    """classic (four stems: guitar and wind land in "other") against a six-stem model on a
    six-stem song; classic looks better averaged over its own stems, worse like for like."""
    song = SongResult(key=key, name="ballad", layout="medleydb", duration=3.0, samplerate=SR,
                      present=SIX, absent=(), mixture_source="mix.flac", residual_db=None)
    classic = {"vocals": 2.0, "drums": 3.0, "bass": 1.0, "other": 20.0}
    six = {"vocals": 5.0, "drums": 6.0, "bass": 4.0, "electric_guitar": -8.0,
           "wind": -9.0, "other": -2.0}
    song.scores["classic"] = {
        s: StemScore(sdr=v, si_sdr=v, sdr_track=v, windows=3,
                     includes=("electric_guitar", "wind") if s == "other" else ())
        for s, v in classic.items()}
    song.scores[DEFAULT_MODEL] = {s: StemScore(sdr=v, si_sdr=v, sdr_track=v, windows=3)
                                  for s, v in six.items()}
    return EvaluationReport(folder="/songs", systems=[SystemInfo("classic", "model"),
                                                      SystemInfo(DEFAULT_MODEL, "model")],
                            songs=[song])


def is_marked_best(item) -> bool:
    return item.foreground().style() != Qt.BrushStyle.NoBrush and \
        item.foreground().color().name() in ("#7ed957", "#1b7f35")


# -- Evaluate ---------------------------------------------------------------------------

def test_evaluate_ticks_the_current_model_and_the_oracle(qtbot, tmp_path):
    dialog = evaluate_dialog(qtbot, tmp_path)
    assert dialog.chosen_models() == [DEFAULT_MODEL] and dialog.chosen_oracles() == ["irm2"]
    settings = Settings(tmp_path / "other.ini")
    settings.set_model("classic")  # chosen in the Separation panel
    dialog = evaluate_dialog(qtbot, tmp_path, settings)
    assert dialog.chosen_models() == ["classic"] and dialog.chosen_oracles() == ["irm2"]
    assert dialog.run_button.isEnabled() is False  # no songs yet


def test_evaluate_clicking_a_row_ticks_it(qtbot, tmp_path):
    dialog = evaluate_dialog(qtbot, tmp_path)
    item = model_item(dialog, "classic")
    assert item.checkState() == Qt.CheckState.Unchecked
    centre = dialog.model_list.visualItemRect(item).center()  # the name, not the box
    qtbot.mouseClick(dialog.model_list.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert item.checkState() == Qt.CheckState.Checked
    assert "classic" in dialog.chosen_models()
    qtbot.mouseClick(dialog.model_list.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert item.checkState() == Qt.CheckState.Unchecked


def test_evaluate_unticked_boxes_show_on_the_dark_theme(qtbot, tmp_path, qapp):
    from stemwright.desktop.app import apply_theme

    palette, style = qapp.palette(), qapp.style().name()
    apply_theme(qapp)
    try:
        dialog = evaluate_dialog(qtbot, tmp_path)
        item = model_item(dialog, "classic")
        rect = dialog.model_list.visualItemRect(item)
        image = dialog.model_list.viewport().grab().toImage()
        box = [QColor(image.pixel(x, y)).lightness()
               for x in range(rect.left(), rect.left() + rect.height() + 8)
               for y in range(rect.top(), rect.bottom())]
        background = dialog.model_list.palette().base().color().lightness()
        assert max(box) - background > 90  # a light outline, not black on black
    finally:
        qapp.setStyle(style)
        qapp.setPalette(palette)


def test_evaluate_headline_compares_like_for_like(qtbot, tmp_path):
    dialog = evaluate_dialog(qtbot, tmp_path)
    dialog.report = four_vs_six_report()
    dialog.refresh()
    table = dialog.table
    rows = {(table.item(r, 0).text(), table.item(r, 1).text()): r
            for r in range(table.rowCount())}
    head = next(r for (song, stem), r in rows.items()
                if song == "Mean of the medians")
    assert "like for like" in table.item(head, 1).text()
    assert "vocals, drums, bass" in table.item(head, 1).text()
    # the mean over the stems both score alike: classic 2.00, the six-stem model 5.00
    assert table.item(head, 2).text() == "2.00" and table.item(head, 3).text() == "5.00"
    assert is_marked_best(table.item(head, 3)) and not is_marked_best(table.item(head, 2))
    # each system's own stems: clearly not comparable, and nobody "wins" it
    own = next(r for (song, stem), r in rows.items() if "not comparable" in stem)
    assert not any(is_marked_best(table.item(own, c)) for c in (2, 3))
    # "other" holds guitar and wind for classic only: marked, not compared
    other = next(r for (song, stem), r in rows.items()
                 if song.startswith("Median") and stem.startswith("Other"))
    assert table.item(other, 1).text() == "Other *"
    assert not any(is_marked_best(table.item(other, c)) for c in (2, 3))
    assert "classic" in table.item(other, 1).toolTip()
    vocals = next(r for (song, stem), r in rows.items()
                  if song.startswith("Median") and stem == "Vocals")
    assert is_marked_best(table.item(vocals, 3))


def test_evaluate_notes_name_the_song(qtbot, tmp_path):
    dialog = evaluate_dialog(qtbot, tmp_path)
    dialog.report = four_vs_six_report(key=".")  # the chosen folder is the song itself
    dialog.refresh()
    notes = dialog.notes.toPlainText()
    assert notes.startswith("ballad  (") and not notes.startswith(".")
    assert any(dialog.table.item(r, 0).text() == "ballad"
               for r in range(dialog.table.rowCount()))


def test_evaluate_empty_table_has_column_headers(qtbot, tmp_path):
    dialog = evaluate_dialog(qtbot, tmp_path)
    table = dialog.table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["Song", "Stem", DEFAULT_MODEL, "irm2\n(oracle)"]
    assert table.rowCount() == 0 and dialog.placeholder.isVisible()
    model_item(dialog, "classic").setCheckState(Qt.CheckState.Checked)
    assert "classic" in [table.horizontalHeaderItem(c).text()
                         for c in range(table.columnCount())]


# -- Fine-tune --------------------------------------------------------------------------

def train_dialog(qtbot, tmp_path: Path, settings: Settings | None = None, **kwargs):
    from stemwright.desktop.dialogs.train import TrainDialog

    dialog = TrainDialog(settings=settings or settings_in(tmp_path), **kwargs)
    qtbot.addWidget(dialog)
    return dialog


def test_fine_tune_defaults_to_the_current_model(qtbot, tmp_path):
    dialog = train_dialog(qtbot, tmp_path)
    assert dialog.model_combo.currentIndex() == 0
    assert dialog.model_combo.currentData() == DEFAULT_MODEL
    assert dialog.model_combo.currentText().startswith("Fine-tune")
    labels = [dialog.model_combo.itemText(i) for i in range(dialog.model_combo.count())]
    scratch = [i for i, t in enumerate(labels) if "from scratch" in t]
    tune = [i for i, t in enumerate(labels) if t.startswith("Fine-tune")]
    assert scratch and max(tune) < min(scratch)  # from scratch after every fine-tune


def test_fine_tune_choices_are_remembered(qtbot, tmp_path):
    settings = settings_in(tmp_path)
    songs = tmp_path / "songs"
    songs.mkdir()
    dialog = train_dialog(qtbot, tmp_path, settings, runs_dir=tmp_path / "runs")
    dialog.model_combo.setCurrentIndex(dialog.model_combo.findData("waveunet"))
    dialog.epochs.setValue(7)
    dialog.batch.setValue(3)
    dialog.small_check.setChecked(True)
    dialog.name_edit.setText("choir")
    dialog.stem_checks["wind"].setChecked(False)
    dialog.folder_list.addItem(str(songs))
    dialog.close()  # closing remembers, as starting a run does
    again = train_dialog(qtbot, tmp_path, Settings(tmp_path / "settings.ini"),
                         runs_dir=tmp_path / "runs")
    assert again.model_combo.currentData() == "waveunet"
    assert again.epochs.value() == 7 and again.batch.value() == 3
    assert again.small_check.isChecked() and again.name_edit.text() == "choir"
    assert not again.stem_checks["wind"].isChecked() and again.stem_checks["bass"].isChecked()
    assert again.folders() == [str(songs)]
    if again.scan_task is not None:
        qtbot.waitUntil(lambda: not again.scan_task.isRunning(), timeout=30_000)


def test_resume_only_with_a_run_and_the_runs_folder_is_shown(qtbot, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    dialog = train_dialog(qtbot, tmp_path, runs_dir=runs)
    assert not dialog.resume_button.isEnabled() and dialog.runs() == []
    assert dialog.runs_label.text() == str(runs)
    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl",
                        staticmethod(lambda url: opened.append(url.toLocalFile()) or True))
    qtbot.mouseClick(dialog.open_runs_button, Qt.MouseButton.LeftButton)
    assert opened == [str(runs)] and runs.is_dir()
    for name in ("older", "newer"):
        (runs / name).mkdir()
        (runs / name / "config.json").write_text("{}")
    (runs / "not-a-run").mkdir()
    dialog.refresh_runs()
    assert {p.name for p in dialog.runs()} == {"older", "newer"}
    assert dialog.resume_button.isEnabled() and dialog.selected_run() is not None


def test_the_default_runs_folder_is_visible(qtbot, tmp_path):
    dialog = train_dialog(qtbot, tmp_path)
    assert ".cache" not in dialog.runs_dir.parts
    assert dialog.runs_dir.name == "runs" and "Stemwright" in dialog.runs_dir.parts
    settings = settings_in(tmp_path)
    settings.set_runs_folder(tmp_path / "mine")
    assert train_dialog(qtbot, tmp_path, settings).runs_dir == tmp_path / "mine"


def test_short_run_curves_show_every_point_and_stem(qtbot, tmp_path):
    dialog = train_dialog(qtbot, tmp_path, runs_dir=tmp_path / "runs")
    dialog.handle({"event": "step", "step": 1, "loss": 0.5, "epoch": 0, "batch": 1,
                   "batches": 1, "segments_per_s": 3.0})
    x, y = dialog.loss_curve.getData()
    assert list(x) == [1.0] and dialog.loss_curve.opts["symbol"] == "o"  # one visible dot
    stems = {"vocals": 1.0, "drums": 2.0, "bass": -1.0, "other": 0.5}
    dialog.handle({"event": "epoch", "epoch": 0, "train_loss": 0.5, "valid_sdr": stems,
                   "improved": True})
    assert dialog.legend_stems() == ["vocals", "drums", "bass", "other"]
    legend = dialog.sdr_legend.text()
    assert all(name in legend for name in ("Vocals", "Drums", "Bass", "Other"))


# -- Export -----------------------------------------------------------------------------

def export_dialog(qtbot, qsettings):
    from stemwright.desktop.dialogs.export import ExportDialog
    from stemwright.models.remix.mixer import MixerState

    t = np.arange(SR // 4) / SR
    stems = {s: (0.1 * np.sin(2 * np.pi * (200 + 100 * i) * t)).astype(np.float32)[None]
             .repeat(2, 0) for i, s in enumerate(("vocals", "drums", "bass", "other"))}
    dialog = ExportDialog(None, stems, SR, "My Song", MixerState.for_stems(stems), qsettings)
    qtbot.addWidget(dialog)
    return dialog


def test_export_defaults_to_a_folder_per_song_and_opens_it(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    home = Path.home()
    (home / "Music").mkdir(parents=True)
    qsettings = QSettings(str(tmp_path / "export.ini"), QSettings.Format.IniFormat)
    dialog = export_dialog(qtbot, qsettings)
    assert dialog.subfolder_box.isChecked()
    base = Path(dialog.folder_edit.text())
    assert base == home / "Music" / "Stemwright"
    assert dialog.folder() == base / "My Song"
    assert not dialog.open_button.isEnabled()
    with qtbot.waitSignal(dialog.exported, timeout=20_000):
        assert dialog.start_export()
    qtbot.waitUntil(lambda: dialog.task is None, timeout=10_000)
    assert {p.parent for p in dialog.written} == {base / "My Song"}
    assert dialog.open_button.isEnabled()
    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl",
                        staticmethod(lambda url: opened.append(url.toLocalFile()) or True))
    qtbot.mouseClick(dialog.open_button, Qt.MouseButton.LeftButton)
    assert opened == [str(base / "My Song")]
    # remembered: the next dialog uses the same folder and the folder per song
    dialog.subfolder_box.setChecked(True)
    again = export_dialog(qtbot, QSettings(str(tmp_path / "export.ini"),
                                           QSettings.Format.IniFormat))
    assert Path(again.folder_edit.text()) == base and again.subfolder_box.isChecked()


# -- Multitrack -------------------------------------------------------------------------

def test_multitrack_says_how_each_track_was_matched(qtbot, tmp_path):
    from stemwright.desktop.dialogs.multitrack import MappingDialog

    tone = (0.1 * np.sin(np.arange(SR) / SR * 2 * np.pi * 220)).astype(np.float32)
    musdb = tmp_path / "musdb" / "Song A"
    musdb.mkdir(parents=True)
    for name in ("mixture", "vocals", "drums", "bass", "other"):
        sf.write(musdb / f"{name}.wav", tone, SR)
    tracks = tmp_path / "tracks" / "Song B"
    (tracks / "Drums").mkdir(parents=True)
    for name in ("Lead Vox", "Drums/Track 1", "Strange Thing"):
        sf.write(tracks / f"{name}.wav", tone, SR)

    def found(folder: Path) -> dict[str, str]:
        dialog = MappingDialog(folder)
        qtbot.addWidget(dialog)
        qtbot.waitUntil(lambda: dialog.table.rowCount() > 0, timeout=20_000)
        table = dialog.table
        return {table.item(r, 0).text(): table.item(r, 2).text()
                for r in range(table.rowCount())}

    rows = found(musdb)
    assert rows["vocals.wav"] == "MUSDB18 file name" and "metadata" not in rows.values()
    rows = found(tracks)
    assert rows["Lead Vox.wav"] == "file name"
    assert rows["Drums/Track 1.wav"] == "folder name: Drums"
    assert rows["Strange Thing.wav"] == "nothing matched"


def test_like_for_like_rows_as_data():
    from stemwright.desktop.dialogs.evaluate_report import song_title, table_rows

    rows = table_rows(four_vs_six_report(), "sdr")
    head = [r for r in rows if r[0] == "Mean of the medians"]
    assert len(head) == 1 and head[0][5] is True
    assert head[0][2] == [pytest.approx(2.0), pytest.approx(5.0)]
    assert not any(r[1] == "its stems *" for r in rows)
    assert all(math.isfinite(v) for v in head[0][2])
    assert song_title(four_vs_six_report(key=".").songs[0]) == "ballad"
