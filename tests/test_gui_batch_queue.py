"""Issue 18: the app's batch queue (File > Batch queue...): adding files and folders with
the CLI's rules, running the queue in the background with the CLI's files and record,
skip-existing, cancelling one song, reordering, a bad file's reason, and the queue saved
and restored (a running song waits again); the output options (--stems/--preset,
--bitrate/--vbr, NI Stems mapping and codec, --name-model, --copy-mix) give the CLI's
`Settings`, files and record, and bad combinations are refused in one line."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import soundfile as sf  # noqa: E402
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from stemwright.desktop.controllers.batch_state import (  # noqa: E402
    CANCELLED,
    DONE,
    FAILED,
    RUNNING,
    SKIPPED,
    WAITING,
    BatchQueue,
)
from stemwright.desktop.dialogs.batch_queue import BatchQueueWindow, queue_file  # noqa: E402
from stemwright.desktop.settings import Settings  # noqa: E402
from stemwright.models.cli.batch import (  # noqa: E402
    RECORD_NAME,
    BatchError,
    Song,
    already_done,
    expected_record,
)
from stemwright.models.cli.commands import _separate_settings, build_parser  # noqa: E402

pytestmark = pytest.mark.usefixtures("desktop_isolation")  # never the real user's settings

SR = 8000


def _wav(path: Path, seconds: float = 1.0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.2 * rng.standard_normal((int(seconds * SR), 2))).astype(np.float32),
             SR)
    return path


def _window(qtbot, tmp_path: Path, in_process: bool = True) -> BatchQueueWindow:
    window = BatchQueueWindow(Settings(tmp_path / "settings.ini"), in_process=in_process)
    qtbot.addWidget(window)
    window.model_combo.setCurrentIndex(window.model_combo.findData("classic"))
    window.output_edit.setText(str(tmp_path / "out"))
    window._settings_changed()
    return window


def _wait_idle(qtbot, window: BatchQueueWindow, timeout: int = 40_000) -> None:
    qtbot.waitUntil(lambda: not window.runner.busy(), timeout=timeout)


def _states(window: BatchQueueWindow) -> list[str]:
    return [i.state for i in window.queue.items]


def test_add_files_and_folders_and_run_to_the_end(qtbot, tmp_path):
    """Files and a folder (searched recursively, our own outputs skipped), duplicates
    refused; the run writes every stem and the CLI's record, in the batch process."""
    one = _wav(tmp_path / "in" / "one.wav")
    _wav(tmp_path / "in" / "album" / "two.wav", seed=1)
    _wav(tmp_path / "in" / "album" / "cd2" / "three.flac", seed=2)
    (tmp_path / "in" / "album" / "notes.txt").write_text("not audio")
    window = _window(qtbot, tmp_path, in_process=False)
    assert window.add_paths([str(one), str(tmp_path / "in" / "album")]) == []
    assert [i.name for i in window.queue.items] == ["one", "two", "three"]
    refused = window.add_paths([str(one)])
    assert len(refused) == 1 and "already in the queue" in refused[0]
    assert window.message_label.text() and len(window.queue.items) == 3
    assert window.list.topLevelItemCount() == 3

    window.start()
    assert window.runner.busy()
    _wait_idle(qtbot, window, 60_000)
    assert _states(window) == [DONE, DONE, DONE], [i.reason for i in window.queue.items]
    out = tmp_path / "out"
    for folder in (out / "one", out / "two", out / "cd2" / "three"):
        assert (folder / RECORD_NAME).is_file()
        assert sorted(p.name for p in folder.glob("*.wav")) == sorted(
            f"{folder.name} - {s}.wav" for s in ("Vocals", "Drums", "Bass", "Other"))
    assert not list(out.rglob("*.part")) and not list(out.rglob(".stemwright-tmp*"))
    assert window.overall.value() == 1000
    # the CLI agrees the songs are done
    settings = window.queue.settings.to_batch()
    assert already_done(Song(one, "one", out / "one"), settings)
    window.shutdown()


def test_skip_existing_marks_the_second_run_skipped(qtbot, tmp_path):
    song = _wav(tmp_path / "in" / "tune.wav")
    window = _window(qtbot, tmp_path)
    window.add_paths([str(song)])
    window.start()
    _wait_idle(qtbot, window)
    assert _states(window) == [DONE]
    record = (tmp_path / "out" / "tune" / RECORD_NAME).read_text()
    window.queue.items[0].state = WAITING
    assert window.skip_check.isChecked()
    started = time.monotonic()
    window.start()
    _wait_idle(qtbot, window)
    assert _states(window) == [SKIPPED]
    assert "already separated" in window.queue.items[0].reason
    assert time.monotonic() - started < 5
    assert (tmp_path / "out" / "tune" / RECORD_NAME).read_text() == record
    assert "Skipped" in window.list.topLevelItem(0).text(2)


def test_cancel_the_running_song_and_the_queue_goes_on(qtbot, tmp_path):
    long = _wav(tmp_path / "in" / "long.wav", seconds=60.0)
    short = _wav(tmp_path / "in" / "short.wav", seed=3)
    window = _window(qtbot, tmp_path)
    window.add_paths([str(long), str(short)])
    window.start()
    qtbot.waitUntil(lambda: window.queue.items[0].state == RUNNING
                    and window.queue.items[0].fraction > 0, timeout=20_000)
    window.select([window.queue.items[0].id])
    started = time.monotonic()
    window.cancel_selected()
    qtbot.waitUntil(lambda: window.queue.items[0].state == CANCELLED, timeout=20_000)
    assert time.monotonic() - started < 15  # within a chunk (the classic model's: 30 s)
    _wait_idle(qtbot, window)
    assert _states(window) == [CANCELLED, DONE]
    assert not (tmp_path / "out" / "long" / RECORD_NAME).exists()
    assert not list((tmp_path / "out" / "long").glob("*.wav"))


def test_stop_now_puts_the_running_song_back_and_resume_starts_it(qtbot, tmp_path):
    long = _wav(tmp_path / "in" / "long.wav", seconds=60.0)
    short = _wav(tmp_path / "in" / "short.wav", seed=3)
    window = _window(qtbot, tmp_path)
    window.add_paths([str(long), str(short)])
    assert "after this song" in window.pause_button.text()
    assert "Stop now" in window.stop_button.text()
    window.start()
    qtbot.waitUntil(lambda: window.queue.items[0].fraction > 0, timeout=20_000)
    window.queue.move(window.queue.items[1].id, 0)  # short first once resumed
    window.stop_button.click()
    _wait_idle(qtbot, window, 20_000)
    assert _states(window) == [WAITING, WAITING]
    assert window.start_button.isEnabled()
    assert not list((tmp_path / "out").rglob("*.wav"))
    window.queue.remove(window.queue.items[1].id)  # the long one: not needed again
    window.start()
    _wait_idle(qtbot, window)
    assert _states(window) == [DONE] and window.queue.items[0].name == "short"


def test_reorder_changes_the_run_order(qtbot, tmp_path):
    a = _wav(tmp_path / "in" / "a.wav")
    b = _wav(tmp_path / "in" / "b.wav", seed=1)
    c = _wav(tmp_path / "in" / "c.wav", seed=2)
    window = _window(qtbot, tmp_path)
    window.add_paths([str(a), str(b), str(c)])
    window.select([window.queue.items[2].id])
    window.move_selected(-1)
    window.move_selected(-1)  # c first
    window.select([window.queue.items[2].id])  # b
    window.move_selected(-1)  # c, b, a
    assert [i.name for i in window.queue.items] == ["c", "b", "a"]
    assert [window.list.topLevelItem(n).text(1) for n in range(3)] == ["c", "b", "a"]
    order: list[str] = []
    window.runner.changed.connect(lambda: order.extend(
        i.name for i in window.queue.items if i.state == RUNNING and i.name not in order))
    window.start()
    _wait_idle(qtbot, window)
    assert order == ["c", "b", "a"]
    mtimes = [(tmp_path / "out" / n / RECORD_NAME).stat().st_mtime_ns for n in "cba"]
    assert mtimes == sorted(mtimes)


def test_drag_within_the_list_reorders(qtbot, tmp_path):
    window = _window(qtbot, tmp_path)
    window.add_paths([str(_wav(tmp_path / "in" / f"{n}.wav", seed=i))
                      for i, n in enumerate("xyz")])
    ids = [i.id for i in window.queue.items]
    window.list.reordered.emit([ids[2], ids[0], ids[1]])  # what a drag of z to the top says
    assert [i.name for i in window.queue.items] == ["z", "x", "y"]
    assert [window.list.topLevelItem(n).text(1) for n in range(3)] == ["z", "x", "y"]
    # rows are never drop targets, so a drag can never nest one song under another
    assert not window.list.topLevelItem(0).flags() & Qt.ItemFlag.ItemIsDropEnabled
    # files dropped from outside are added (a folder too), duplicates refused
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(_wav(tmp_path / "more" / "w.wav"))),
                  QUrl.fromLocalFile(str(tmp_path / "in" / "x.wav"))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.list.dropEvent(event)
    assert [i.name for i in window.queue.items] == ["z", "x", "y", "w"]
    assert any("already in the queue" in m for m in window.messages)


def test_a_bad_file_shows_its_reason_and_the_queue_goes_on(qtbot, tmp_path):
    bad = tmp_path / "in" / "broken.wav"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + b"\x00" * 64)
    good = _wav(tmp_path / "in" / "good.wav")
    window = _window(qtbot, tmp_path)
    window.add_paths([str(bad), str(good)])
    window.start()
    _wait_idle(qtbot, window)
    assert _states(window) == [FAILED, DONE]
    reason = window.queue.items[0].reason
    assert "broken.wav" in reason and "\n" not in reason and "Traceback" not in reason
    assert window.list.topLevelItem(0).text(2) == f"Failed: {reason}"
    assert not (tmp_path / "out" / "broken" / RECORD_NAME).exists()


def test_the_queue_is_saved_and_restored(qtbot, tmp_path):
    songs = [_wav(tmp_path / "in" / f"s{n}.wav", seed=n) for n in range(3)]
    window = _window(qtbot, tmp_path)
    window.format_combo.setCurrentIndex(window.format_combo.findData("flac"))
    window.skip_check.setChecked(False)
    window.add_paths([str(s) for s in songs])
    window.queue.items[0].state = DONE
    window.queue.items[1].state = RUNNING  # as if the app quit while it ran
    window.queue.items[2].state, window.queue.items[2].reason = FAILED, "s2.wav: bad"
    window.save()
    path = queue_file(window.settings)
    assert path.parent == tmp_path and json.loads(path.read_text())["items"]
    assert not list(tmp_path.glob(".batch_queue-*"))  # written via a temporary
    window.close()

    again = BatchQueueWindow(Settings(tmp_path / "settings.ini"), in_process=True)
    qtbot.addWidget(again)
    assert [i.name for i in again.queue.items] == ["s0", "s1", "s2"]
    assert _states(again) == [DONE, WAITING, FAILED]
    assert again.queue.items[2].reason == "s2.wav: bad"
    assert again.model_combo.currentData() == "classic"
    assert again.format_combo.currentData() == "flac"
    assert not again.skip_check.isChecked()
    assert again.output_edit.text() == str(tmp_path / "out")
    assert again.start_button.isEnabled()
    # an unreadable file gives an empty queue, never an error
    path.write_text("{not json")
    assert BatchQueue.load(path).items == []


def test_main_window_menu_and_ask_before_quitting(qtbot, tmp_path):
    from stemwright.desktop.main_window import MainWindow, _NoPlayer

    window = MainWindow(Settings(tmp_path / "settings.ini"), player=_NoPlayer())
    qtbot.addWidget(window)
    assert window.act_batch.shortcut().toString() == "Ctrl+B"
    assert window.act_batch in window.menuBar().actions()[0].menu().actions()
    window.act_batch.trigger()
    batch = window.batch_window
    assert batch.isVisible() and batch.windowTitle().startswith("Batch queue")
    asked: list[str] = []
    window.confirm = lambda title, text: asked.append(text) or False
    window.close()  # nothing runs: no question
    assert asked == []
    window.show()
    batch.runner.active = True  # as while the queue runs
    window.close()
    assert len(asked) == 1 and "batch queue" in asked[0] and window.isVisible()
    window.confirm = lambda title, text: True
    window.close()
    assert not window.isVisible() and not batch.runner.busy()


# -- the output options (issue 18: each option in the CLI and the app) --------------------

def _cli(*argv: str):
    """The CLI's `Settings` for `stemwright separate --model classic ARGV`."""
    args = build_parser().parse_args(["separate", "x.wav", "--model", "classic", *argv])
    return _separate_settings(args, "auto")


def _run_one(qtbot, window: BatchQueueWindow, song: Path) -> None:
    window.add_paths([str(song)])
    window.start()
    _wait_idle(qtbot, window)
    assert _states(window) == [DONE], [i.reason for i in window.queue.items]


def _record(folder: Path) -> dict:
    return json.loads((folder / RECORD_NAME).read_text())


def test_a_preset_run_writes_the_clis_files_and_record(qtbot, tmp_path):
    song = _wav(tmp_path / "in" / "tune.wav")
    window = _window(qtbot, tmp_path)
    window.options.write_combo.setCurrentIndex(window.options.write_combo.findData("karaoke"))
    window.options.more_button.setChecked(True)
    window.options.copy_mix_check.setChecked(True)
    settings = window.queue.settings.to_batch()
    assert settings == _cli("--preset", "karaoke", "--copy-mix")
    _run_one(qtbot, window, song)
    folder = tmp_path / "out" / "tune"
    assert sorted(p.name for p in folder.iterdir() if p.name != RECORD_NAME) == [
        "tune - Mix.wav", "tune - Vocals.wav", "tune - minus Vocals.wav"]
    target = Song(song, "tune", folder)
    assert _record(folder) == expected_record(target, settings)
    assert already_done(target, _cli("--preset", "karaoke", "--copy-mix"))
    # chosen stems: the CLI's --stems, saved with the queue
    window.options.write_combo.setCurrentIndex(window.options.write_combo.findData("stems"))
    for stem in ("bass", "drums"):
        window.options.stem_checks[stem].setChecked(True)
    assert window.queue.settings.to_batch() == _cli("--stems", "drums", "bass", "--copy-mix")
    again = BatchQueue.load(queue_file(window.settings)).settings
    assert (again.write, again.stems, again.copy_mix) == ("stems", ["drums", "bass"], True)
    # a preset the model cannot do is refused in one line before any work
    window.queue.settings.write = "practice-wind"
    window.queue.items[0].state = WAITING
    window.start()
    assert not window.runner.busy() and _states(window) == [WAITING]
    assert len(window.messages) == 1 and "wind" in window.messages[0]
    assert "\n" not in window.message_label.text()


def test_a_lossy_format_with_a_bitrate_and_the_models_name(qtbot, tmp_path):
    song = _wav(tmp_path / "in" / "tune.wav")
    window = _window(qtbot, tmp_path)
    window.format_combo.setCurrentIndex(window.format_combo.findData("mp3"))
    opts = window.options
    assert opts.bitrate_spin.isVisibleTo(window) and opts.vbr_combo.isVisibleTo(window)
    assert opts.bitrate_spin.maximum() == 320
    opts.bitrate_spin.setValue(192)
    opts.name_model_check.setChecked(True)
    settings = window.queue.settings.to_batch()
    assert settings == _cli("--format", "mp3", "--bitrate", "192", "--name-model")
    _run_one(qtbot, window, song)
    folder = tmp_path / "out" / "tune"
    assert sorted(p.name for p in folder.glob("*.mp3")) == sorted(
        f"tune - {s} (classic).mp3" for s in ("Vocals", "Drums", "Bass", "Other"))
    record = _record(folder)
    assert record == expected_record(Song(song, "tune", folder), settings)
    assert record["bitrate_kbps"] == 192 and record["vbr"] is None
    # MP3 VBR as --vbr; the bitrate is then left out
    opts.vbr_combo.setCurrentIndex(opts.vbr_combo.findData(2))
    assert not opts.bitrate_spin.isEnabled()
    assert window.queue.settings.to_batch() == _cli("--format", "mp3", "--vbr", "2",
                                                    "--name-model")
    # another format: the bitrate goes back to its default; out of range is refused
    window.format_combo.setCurrentIndex(window.format_combo.findData("opus"))
    assert window.queue.settings.bitrate_kbps == 0 and not opts.vbr_combo.isVisibleTo(window)
    assert window.queue.settings.to_batch().bitrate_kbps == 160
    window.queue.settings.bitrate_kbps = 600
    with pytest.raises(BatchError, match="6-510 kbit/s"):
        window.queue.settings.to_batch()


def test_ni_stems_mapping_refused_for_the_model_and_custom_works(qtbot, tmp_path):
    song = _wav(tmp_path / "in" / "tune.wav")
    window = _window(qtbot, tmp_path)
    window.format_combo.setCurrentIndex(window.format_combo.findData("ni-stems"))
    opts = window.options
    assert opts.mapping_combo.isVisibleTo(window) and not opts.write_combo.isVisibleTo(window)
    opts.mapping_combo.setCurrentIndex(opts.mapping_combo.findData("guitar"))
    window.add_paths([str(song)])
    started = time.monotonic()
    window.start()
    assert not window.runner.busy() and _states(window) == [WAITING]
    assert len(window.messages) == 1 and "classic" in window.messages[0]
    assert "guitar" in window.messages[0].lower() and "\n" not in window.messages[0]
    assert time.monotonic() - started < 5
    assert not (tmp_path / "out" / "tune").exists()

    spec = "Beat=drums;bass;other;vocals"
    opts.mapping_combo.setCurrentIndex(opts.mapping_combo.findData("custom"))
    assert opts.mapping_edit.isVisibleTo(window)
    opts.mapping_edit.setText(spec)
    opts.mapping_edit.editingFinished.emit()
    opts.codec_combo.setCurrentIndex(opts.codec_combo.findData("alac16"))
    assert not opts.bitrate_spin.isVisibleTo(window)
    settings = window.queue.settings.to_batch()
    assert settings == _cli("--format", "ni-stems", "--ni-stems-mapping", spec,
                            "--ni-stems-codec", "alac", "--bit-depth", "16")
    _run_one(qtbot, window, song)
    folder = tmp_path / "out" / "tune"
    assert [p.name for p in folder.iterdir() if p.name != RECORD_NAME] == ["tune.stem.mp4"]
    record = _record(folder)
    assert record == expected_record(Song(song, "tune", folder), settings)
    assert record["ni_codec"] == "alac" and record["bit_depth"] == 16
    # a mapping that does not parse is refused in one line too
    window.queue.settings.ni_mapping = "drums;bass"
    with pytest.raises(BatchError, match="4 groups"):
        window.queue.settings.to_batch()


def test_an_old_saved_queue_without_the_new_keys_still_loads(qtbot, tmp_path):
    song = _wav(tmp_path / "in" / "old.wav")
    path = tmp_path / "batch_queue.json"
    path.write_text(json.dumps({"stemwright_queue": 1, "settings": {
        "model": "classic", "output": str(tmp_path / "out"), "format": "flac",
        "bit_depth": 16, "skip_existing": False, "overwrite": False, "device": "cpu"},
        "items": [{"path": str(song), "name": "old", "rel": "old", "state": "waiting"}]}))
    queue = BatchQueue.load(path)
    s = queue.settings
    assert [i.name for i in queue.items] == ["old"] and (s.format, s.bit_depth) == ("flac", 16)
    assert (s.write, s.stems, s.bitrate_kbps, s.vbr, s.ni_mapping, s.ni_codec,
            s.name_model, s.copy_mix) == ("all", [], 0, -1, "default", "aac", False, False)
    assert s.to_batch() == replace(_cli("--format", "flac", "--bit-depth", "16"),
                                   device="cpu")
    # values of the wrong type take the defaults too
    data = json.loads(path.read_text())
    data["settings"].update(bitrate_kbps="loud", vbr=True, stems=["vocals", 3], copy_mix=1)
    path.write_text(json.dumps(data))
    s = BatchQueue.load(path).settings
    assert (s.bitrate_kbps, s.vbr, s.stems, s.copy_mix) == (0, -1, ["vocals"], False)
    window = BatchQueueWindow(Settings(tmp_path / "settings.ini"), in_process=True)
    qtbot.addWidget(window)
    assert window.options.write_combo.currentData() == "all"
