"""The fine-tune dialog: songs and mapping, a tiny training run with live curves, pause,
stop and resume, the model offered in the model selector, a responsive window."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import soundfile as sf  # noqa: E402
from PySide6.QtCore import QTimer  # noqa: E402

from stemwright.desktop.dialogs.train import TrainDialog, trainable_models  # noqa: E402
from stemwright.models.synthetic.test_songs import synth_song  # noqa: E402
from stemwright.models.zoo import catalog as zoo

SR = 8000
TIMEOUT = 120_000
NAMES = {"vocals": "Lead Vox", "drums": "Drums", "bass": "Bass DI",
         "electric_guitar": "Dist Gtr", "wind": "Alto Sax", "other": "Piano"}
#: keeps the tiny runs quick: 8 kHz, short segments, whole-segment SDR, no workers
QUICK = ["--samplerate", str(SR), "--segments-per-song", "4", "--valid-fraction", "0.34",
         "--valid-metric", "usdr", "--workers", "0", "--log-every", "1",
         "--cache-dir"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))


def make_folder(root: Path, songs: int = 3, seconds: float = 1.5) -> Path:
    for k in range(songs):
        _, stems = synth_song(seconds, SR, seed=k)
        folder = root / f"song{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for stem, audio in stems.items():
            if not (k == 2 and stem == "wind"):
                sf.write(folder / f"{NAMES[stem]}.wav", audio.T, SR, subtype="FLOAT")
    return root


def dialog_for(qtbot, tmp_path: Path) -> TrainDialog:
    dialog = TrainDialog(runs_dir=tmp_path / "runs")
    qtbot.addWidget(dialog)
    dialog.add_folder(make_folder(tmp_path / "songs"))
    qtbot.waitUntil(lambda: dialog.song_tree.topLevelItemCount() == 3, timeout=TIMEOUT)
    dialog.model_combo.setCurrentIndex(dialog.model_combo.findData("wavenet"))
    dialog.small_check.setChecked(True)
    dialog.segment.setValue(0.25)
    dialog.batch.setValue(4)
    dialog.lr.setValue(3e-3)
    return dialog


def test_songs_and_their_mapping_are_listed(qtbot, tmp_path):
    dialog = dialog_for(qtbot, tmp_path)
    song = dialog.song_tree.topLevelItem(2)
    assert song.text(0) == "song2" and "wind" not in song.text(1)
    tracks = {song.child(i).text(0): song.child(i).text(1) for i in range(song.childCount())}
    assert tracks["Lead Vox.wav"] == "vocals" and tracks["Dist Gtr.wav"] == "electric guitar"
    assert "3 songs" in dialog.data_label.text() and "wind in 2" in dialog.data_label.text()
    assert dialog.start_button.isEnabled()
    labels = [value for _, value in trainable_models()]
    assert "htdemucs6" in labels and "classic" not in labels
    args = dialog.arguments()
    assert args[:2] == ["train", str(tmp_path / "songs")] and "--small" in args
    assert args[args.index("--stems") + 1:][:6] == ["vocals", "drums", "bass",
                                                    "electric_guitar", "wind", "other"]


def test_train_pause_stop_resume_and_offer_the_model(qtbot, tmp_path):
    dialog = dialog_for(qtbot, tmp_path)
    dialog.name_edit.setText("gui-tiny")
    dialog.epochs.setValue(40)
    events: list[dict] = []
    dialog.event.connect(events.append)
    gaps, last = [], [time.monotonic()]

    def tick() -> None:  # the event loop keeps turning while training runs
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    dialog.start(QUICK + [str(tmp_path / "decoded")])
    assert dialog.running() and not dialog.start_button.isEnabled()
    qtbot.waitUntil(lambda: any(e["event"] == "epoch" for e in events), timeout=TIMEOUT)
    dialog.toggle_pause()
    qtbot.waitUntil(lambda: any(e["event"] == "paused" for e in events), timeout=TIMEOUT)
    assert dialog.pause_button.text() == "Continue"
    dialog.toggle_pause()
    qtbot.waitUntil(lambda: any(e["event"] == "resumed" for e in events), timeout=TIMEOUT)
    dialog.stop()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=TIMEOUT)
    assert "Stopped" in dialog.status.text() and dialog.resume_button.isEnabled()
    done = [e["epoch"] for e in events if e["event"] == "epoch"]
    assert done and done[-1] < 39

    with qtbot.waitSignal(dialog.modelTrained, timeout=TIMEOUT) as blocker:
        dialog.resume()
    timer.stop()
    assert blocker.args == ["gui-tiny"]
    assert "ready to separate" in dialog.status.text()
    # curves: the loss of every step (replayed log + new), the SDR of every stem
    assert len(dialog.loss_x) == 40 * 2 and dialog.loss_x == sorted(dialog.loss_x)
    # song2 is the validation song and has no wind: wind is not scored, never "0 dB"
    assert set(dialog.sdr) == {"vocals", "drums", "bass", "electric_guitar", "other"}
    assert all(len(xs) == 40 for xs, _ in dialog.sdr.values())
    assert zoo.get_entry("gui-tiny").family == "stemwright"
    assert max(gaps) < 0.5  # training never blocks the window

    from stemwright.desktop.panels.separation import SeparationPanel
    panel = SeparationPanel()
    qtbot.addWidget(panel)
    panel.refresh_models()
    panel.set_model("gui-tiny")
    assert panel.current_model() == "gui-tiny"


def test_a_failing_run_says_why(qtbot, tmp_path):
    dialog = dialog_for(qtbot, tmp_path)
    for check in dialog.stem_checks.values():
        check.setChecked(False)
    dialog.start()
    assert "at least one stem" in dialog.status.text() and not dialog.running()
    dialog.stem_checks["vocals"].setChecked(True)
    dialog.start(["--loss", "l3"])
    qtbot.waitUntil(lambda: not dialog.running(), timeout=TIMEOUT)
    assert dialog.status.text().startswith("Training failed") and "l3" in dialog.status.text()
