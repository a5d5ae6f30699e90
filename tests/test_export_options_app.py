"""Issue #18 in the app's Export dialog: {model} in the file-name pattern (as the CLI's
--name-model) and "Copy the original mix next to the stems" (as the CLI's --copy-mix)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
sf = pytest.importorskip("soundfile")

from stemwright.models.errors import StemwrightError  # noqa: E402
from stemwright.models.remix.export import stem_filename  # noqa: E402
from stemwright.models.remix.mixer import MixerState  # noqa: E402

SR = 22050
MODEL = "htdemucs"


@pytest.fixture
def stems():
    rng = np.random.default_rng(3)
    return {s: (0.1 * rng.standard_normal((2, SR // 4))).astype(np.float32)
            for s in ("vocals", "drums", "bass", "other")}


def _dialog(qtbot, tmp_path, stems, monkeypatch, model=MODEL, song_path=None):
    from PySide6.QtCore import QSettings

    from stemwright.desktop.dialogs import export as export_dialog

    errors: list[BaseException] = []
    monkeypatch.setattr(export_dialog, "show_exception",
                        lambda parent, exc, title="": errors.append(exc))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("export/folder", str(tmp_path / "out"))
    settings.setValue("export/subfolder", False)
    d = export_dialog.ExportDialog(None, stems, SR, "Song", MixerState.for_stems(stems),
                                   settings, model=model, song_path=song_path)
    d.errors = errors
    qtbot.addWidget(d)
    return d


def _export(qtbot, d) -> None:
    with qtbot.waitSignal(d.exported, timeout=10000):
        assert d.start_export()
    qtbot.waitUntil(lambda: d.task is None, timeout=5000)


def test_model_placeholder_in_preview_and_written_names(qtbot, tmp_path, stems,
                                                        monkeypatch):
    d = _dialog(qtbot, tmp_path, stems, monkeypatch)
    assert "{model}" in d.pattern_edit.toolTip()
    d.model_button.click()  # the quick choice: "{song} - {stem} ({model})"
    assert d.pattern() == "{song} - {stem} ({model})"
    assert "Song - Vocals (htdemucs).wav" in d.preview.text()
    _export(qtbot, d)
    assert sorted(p.name for p in d.written) == [
        f"Song - {n} (htdemucs).wav" for n in ("Bass", "Drums", "Other", "Vocals")]
    assert all(p.is_file() for p in d.written) and d.errors == []
    d.set_mode("minus")
    assert "Song - minus Vocals (htdemucs).wav" in d.preview.text()


def test_model_placeholder_without_a_model_is_a_one_line_error(qtbot, tmp_path, stems,
                                                               monkeypatch):
    d = _dialog(qtbot, tmp_path, stems, monkeypatch, model=None)
    assert not d.model_button.isEnabled()
    d.pattern_edit.setText("{song} - {stem} ({model})")
    text = d.preview.text()
    assert "{model}" in text and "no model" in text and "<br>" not in text
    assert not d.export_button.isEnabled()
    with pytest.raises(StemwrightError, match="no model") as info:
        stem_filename("Song", "vocals", "wav", "{song} ({model})")
    assert "\n" not in str(info.value)
    # existing calls are unchanged; a model fills the placeholder
    assert stem_filename("Song", "vocals", "wav") == "Song - Vocals.wav"
    assert stem_filename("Song", "vocals", "wav", "{song} ({model})",
                         model="m{x}") == "Song (m{x}).wav"


def _song_file(tmp_path):
    path = tmp_path / "in" / "My Track.flac"
    path.parent.mkdir()
    t = np.arange(SR // 2) / SR
    sf.write(path, np.stack([np.sin(2 * np.pi * 330 * t)] * 2, axis=1) * 0.3, SR)
    return path


def test_copy_mix_writes_the_song_byte_identical_next_to_the_stems(qtbot, tmp_path, stems,
                                                                     monkeypatch):
    source = _song_file(tmp_path)
    d = _dialog(qtbot, tmp_path, stems, monkeypatch, song_path=source)
    assert d.copy_mix_box.isEnabled() and not d.copy_mix_box.isChecked()
    d.copy_mix_box.setChecked(True)
    assert "Song - Mix.flac" in d.preview.text()
    _export(qtbot, d)
    mix = tmp_path / "out" / "Song - Mix.flac"
    assert d.written[-1] == mix and len(d.written) == 5
    assert mix.read_bytes() == source.read_bytes()
    assert d.settings.value("export/copy_mix") in (True, "true")  # remembered
    assert not [p for p in mix.parent.iterdir() if p.name.startswith(".stemwright-tmp")]
    # the next dialog starts ticked
    d2 = _dialog(qtbot, tmp_path, stems, monkeypatch, song_path=source)
    assert d2.copy_mix_box.isChecked()


def test_copy_mix_asks_before_replacing_and_keeps_the_old_file(qtbot, tmp_path, stems,
                                                                monkeypatch):
    source = _song_file(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    mix = out / "Song - Mix.flac"
    mix.write_bytes(b"an older mix")
    d = _dialog(qtbot, tmp_path, stems, monkeypatch, song_path=source)
    d.copy_mix_box.setChecked(True)
    assert "already exist" in d.preview.text()
    asked = []
    d.confirm_overwrite = lambda existing: asked.append(existing) or False
    assert d.start_export() is False
    assert asked == [[mix]] and mix.read_bytes() == b"an older mix"
    assert not (out / "Song - Vocals.wav").exists()
    # the job itself refuses too (a mix that appeared after the question)
    job = d.build_job()
    from stemwright.models.errors import OutputExistsError

    with pytest.raises(OutputExistsError, match="already exists"):
        job.run(overwrite=False)
    assert mix.read_bytes() == b"an older mix" and not (out / "Song - Vocals.wav").exists()
    d.confirm_overwrite = lambda existing: True
    _export(qtbot, d)
    assert mix.read_bytes() == source.read_bytes()


def test_copy_mix_is_off_for_a_song_not_from_a_file(qtbot, tmp_path, stems, monkeypatch):
    d = _dialog(qtbot, tmp_path, stems, monkeypatch, song_path=None)
    assert not d.copy_mix_box.isEnabled()
    d.copy_mix_box.setChecked(True)  # e.g. remembered from another song
    assert "Mix" not in d.preview.text()
    assert len(d.build_job().targets) == 4
