"""The Export dialog's NI Stems tab: one .stem.mp4 with the mix and four stems, refused
(not faked with silence) when the separation lacks a stem NI needs."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from stemwright.models.remix.mixer import MixerState  # noqa: E402
from stemwright.models.remix.nistems import read_ni_stems  # noqa: E402

SR = 44100


def _stems(names, n=SR // 2):
    t = np.arange(n) / SR
    return {s: np.tile(0.2 * np.sin(2 * np.pi * f * t), (2, 1)).astype(np.float32)
            for s, f in zip(names, (220.0, 330.0, 440.0, 550.0, 660.0, 770.0), strict=False)}


def _dialog(qtbot, tmp_path, stems):
    from PySide6.QtCore import QSettings

    from stemwright.desktop.dialogs import export as export_dialog

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("export/folder", str(tmp_path / "out"))
    settings.setValue("export/subfolder", False)
    d = export_dialog.ExportDialog(None, stems, SR, "Song", MixerState.for_stems(stems),
                                   settings, artist="Band")
    qtbot.addWidget(d)
    return d


def test_nistems_tab_writes_one_file_with_the_mix_and_four_stems(qtbot, tmp_path,
                                                                   monkeypatch):
    from stemwright.desktop.dialogs import export as export_dialog

    errors: list[BaseException] = []
    monkeypatch.setattr(export_dialog, "show_exception",
                        lambda parent, exc, title="": errors.append(exc))
    stems = _stems(("vocals", "drums", "bass", "electric_guitar", "wind", "other"))
    d = _dialog(qtbot, tmp_path, stems)
    d.set_mode("nistems")
    assert "Song.stem.mp4" in d.preview.text() and d.export_button.isEnabled()
    # the format row is NI's own: greyed out, and back for the other tabs
    assert not d.format_combo.isEnabled() and not d.depth_combo.isEnabled()
    d.set_mode("stems")
    assert d.format_combo.isEnabled() and d.depth_combo.isEnabled()
    d.set_mode("nistems")
    assert d.start_export()
    qtbot.waitUntil(lambda: d.task is None, timeout=60000)
    assert errors == []
    (path,) = d.written
    assert path.name == "Song.stem.mp4"
    ni = read_ni_stems(path)
    assert list(ni.stems) == ["drums", "bass", "other", "vocals"]
    assert ni.mix.shape == (2, SR // 2)
    # other = guitar + wind + other; the mix = the sum of all six
    want_other = stems["electric_guitar"] + stems["wind"] + stems["other"]
    err = ni.stems["other"] - want_other
    assert 10 * np.log10(np.sum(want_other ** 2) / np.sum(err ** 2)) > 15
    want_mix = sum(stems.values())
    err = ni.mix - want_mix
    assert 10 * np.log10(np.sum(want_mix ** 2) / np.sum(err ** 2)) > 15
    assert ni.metadata["stems"][3]["name"].lower().startswith("vo")


def test_nistems_tab_refuses_a_separation_without_vocals(qtbot, tmp_path):
    d = _dialog(qtbot, tmp_path, _stems(("drums", "bass", "other")))
    d.set_mode("nistems")
    assert not d.export_button.isEnabled()
    assert "vocals" in d.preview.text()
