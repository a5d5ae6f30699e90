"""Export: stems aligned and equal length, remix, song minus X, REAPER project."""

from __future__ import annotations

import math
import shlex
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.errors import Cancelled, OutputExistsError, StemwrightError
from stemwright.models.remix.export import (
    export_daw_session,
    export_remix,
    export_song_minus,
    export_stems,
    minus_label,
    reaper_color,
    remix_filename,
    write_reaper_project,
)
from stemwright.models.remix.mixer import MixerState, render_mix
from stemwright.models.stems import get_stem

SR = 44100


@pytest.fixture
def stems(rng) -> dict[str, np.ndarray]:
    n = SR // 2 + 7  # an odd length, to catch rounding in resampled lengths
    return {s: (0.05 * rng.standard_normal((2, n))).astype(np.float32)
            for s in ("vocals", "drums", "bass", "other")}


def _read(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    return data.T, sr


def test_stems_same_length_rate_aligned(tmp_path, stems) -> None:
    paths = export_stems(stems, SR, tmp_path, "Song", format="wav", bit_depth=32)
    assert [p.name for p in paths] == ["Song - Vocals.wav", "Song - Drums.wav",
                                       "Song - Bass.wav", "Song - Other.wav"]
    for stem_id, path in zip(stems, paths, strict=True):
        data, sr = _read(path)
        assert sr == SR and data.shape == stems[stem_id].shape
        np.testing.assert_array_equal(data, stems[stem_id])  # float: bit exact, at zero


def test_resampled_stems_all_same_length(tmp_path, stems) -> None:
    paths = export_stems(stems, SR, tmp_path, "Song", format="flac", bit_depth=24,
                         samplerate_out=48000)
    infos = [sf.info(p) for p in paths]
    assert {i.samplerate for i in infos} == {48000}
    assert len({i.frames for i in infos}) == 1
    assert infos[0].frames == round((SR // 2 + 7) * 48000 / SR)


def test_overwrite_refused_then_allowed(tmp_path, stems) -> None:
    export_stems(stems, SR, tmp_path, "Song", which=["vocals"])
    with pytest.raises(OutputExistsError):
        export_stems(stems, SR, tmp_path, "Song", which=["vocals"])
    export_stems(stems, SR, tmp_path, "Song", which=["vocals"], overwrite=True)
    target = tmp_path / "remix.wav"
    export_remix(stems, SR, MixerState(), target)
    with pytest.raises(OutputExistsError):
        export_remix(stems, SR, MixerState(), target)
    with pytest.raises(OutputExistsError):
        export_song_minus(stems, SR, ["vocals"], target)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files


def test_remix_equals_render_mix(tmp_path, stems) -> None:
    state = MixerState.for_stems(stems)
    state.channels["vocals"].gain_db = -6.0
    state.channels["drums"].pan = -0.5
    state.channels["bass"].mute = True
    state.master_db = -3.0
    path = export_remix(stems, SR, state, tmp_path / "Song - Remix.wav", bit_depth=32)
    data, sr = _read(path)
    assert sr == SR
    np.testing.assert_allclose(data, render_mix(stems, state), atol=1e-6)
    # the A/B monitoring switch does not change the export
    state.source = "mix"
    path2 = export_remix(stems, SR, state, tmp_path / "b.wav", bit_depth=32)
    np.testing.assert_array_equal(_read(path2)[0], data)
    resampled = export_remix(stems, SR, state, tmp_path / "c.flac", format="flac",
                             bit_depth=16, samplerate_out=22050)
    assert sf.info(resampled).samplerate == 22050


def test_song_minus_x_equals_mix_minus_x(tmp_path, stems) -> None:
    mix = sum(stems.values())
    path = export_song_minus(stems, SR, ["vocals"], tmp_path / "karaoke.wav", bit_depth=32)
    data, _ = _read(path)
    np.testing.assert_allclose(data, mix - stems["vocals"], atol=1e-6)
    path = export_song_minus(stems, SR, ["vocals", "drums"], tmp_path / "k2.wav",
                             bit_depth=32)
    np.testing.assert_allclose(_read(path)[0], mix - stems["vocals"] - stems["drums"],
                               atol=1e-6)
    with pytest.raises(StemwrightError, match="not produced"):
        export_song_minus(stems, SR, ["wind"], tmp_path / "x.wav")
    with pytest.raises(StemwrightError, match="nothing"):
        export_song_minus(stems, SR, list(stems), tmp_path / "x.wav")
    with pytest.raises(StemwrightError):
        export_song_minus(stems, SR, [], tmp_path / "x.wav")


def test_names() -> None:
    assert remix_filename("Song", "wav") == "Song - Remix.wav"
    assert remix_filename("A/B", "flac", minus_label(["vocals", "drums"])) == \
        "A_B - minus Vocals and Drums.flac"
    assert minus_label(["vocals"]) == "minus Vocals"


def test_reaper_colour_encoding() -> None:
    assert reaper_color("#e4572e") == 0x01000000 | (0x2E << 16) | (0x57 << 8) | 0xE4
    assert reaper_color("#000000") == 0x01000000
    with pytest.raises(StemwrightError):
        reaper_color("red")


def parse_rpp(text: str) -> dict:
    """A small RPP reader: {"tag", "args", "lines": [[token...]], "children": [...]}."""
    root: dict = {"tag": None, "args": [], "lines": [], "children": []}
    stack = [root]
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("<"):
            tokens = shlex.split(line[1:])
            node = {"tag": tokens[0], "args": tokens[1:], "lines": [], "children": []}
            stack[-1]["children"].append(node)
            stack.append(node)
        elif line == ">":
            stack.pop()
        else:
            stack[-1]["lines"].append(shlex.split(line))
    assert len(stack) == 1, "unbalanced <blocks>"
    return root


def _value(node: dict, key: str) -> list[str]:
    for tokens in node["lines"]:
        if tokens[0] == key:
            return tokens[1:]
    raise KeyError(key)


def test_reaper_project_structure(tmp_path, stems) -> None:
    paths = export_stems(stems, SR, tmp_path / "stems", "Song", format="flac")
    tracks = [(get_stem(s).name, get_stem(s).color, p) for s, p in zip(stems, paths,
                                                                       strict=True)]
    rpp = write_reaper_project(tmp_path / "Song.RPP", tracks, SR, 0.5)
    root = parse_rpp(rpp.read_text())
    (project,) = root["children"]
    assert project["tag"] == "REAPER_PROJECT"
    assert _value(project, "SAMPLERATE")[0] == str(SR)
    track_nodes = [c for c in project["children"] if c["tag"] == "TRACK"]
    assert len(track_nodes) == 4
    for node, (name, color, path) in zip(track_nodes, tracks, strict=True):
        assert _value(node, "NAME") == [name]
        assert int(_value(node, "PEAKCOL")[0]) == reaper_color(color)
        (item,) = [c for c in node["children"] if c["tag"] == "ITEM"]
        assert float(_value(item, "POSITION")[0]) == 0.0
        assert float(_value(item, "LENGTH")[0]) == pytest.approx(0.5)
        (source,) = item["children"]
        assert source["tag"] == "SOURCE" and source["args"] == ["FLAC"]
        file = _value(source, "FILE")[0]
        assert file == f"stems/{path.name}"  # relative to the project
        assert (rpp.parent / file).exists()
    with pytest.raises(OutputExistsError):
        write_reaper_project(tmp_path / "Song.RPP", tracks, SR, 0.5)
    write_reaper_project(tmp_path / "Song.RPP", tracks[:1], SR, 0.5, overwrite=True)
    assert rpp.read_text().count("<TRACK") == 1


def test_daw_session_in_one_call(tmp_path, stems) -> None:
    fractions: list[float] = []
    paths = export_daw_session(stems, SR, tmp_path, 'My "Song"', which=["drums", "vocals"],
                               format="wav", bit_depth=24, samplerate_out=48000,
                               progress=fractions.append)
    *audio, rpp = paths
    assert rpp.name == "My _Song_.RPP" and len(audio) == 2
    assert fractions[-1] == 1.0
    project = parse_rpp(rpp.read_text())["children"][0]
    assert _value(project, "SAMPLERATE")[0] == "48000"
    names = [_value(t, "NAME")[0] for t in project["children"] if t["tag"] == "TRACK"]
    assert names == ["Drums", "Vocals"]
    frames = {sf.info(p).frames for p in audio}
    assert len(frames) == 1
    item = project["children"][0]["children"][0]
    assert float(_value(item, "LENGTH")[0]) == pytest.approx(frames.pop() / 48000)
    assert item["children"][0]["args"] == ["WAVE"]
    # a second export refuses before writing anything
    before = sorted(p.stat().st_mtime_ns for p in paths)
    with pytest.raises(OutputExistsError):
        export_daw_session(stems, SR, tmp_path, 'My "Song"', which=["drums", "vocals"])
    assert sorted(p.stat().st_mtime_ns for p in paths) == before


def test_daw_session_cancel_leaves_nothing(tmp_path, stems) -> None:
    calls = iter([False, False, True, True, True, True, True])
    with pytest.raises(Cancelled):
        export_daw_session(stems, SR, tmp_path, "Song", cancel=lambda: next(calls))
    assert list(tmp_path.iterdir()) == []


# -- the export dialog -------------------------------------------------------------------

@pytest.fixture
def dialog(qtbot, tmp_path, stems, monkeypatch):
    from PySide6.QtCore import QSettings

    from stemwright.desktop.dialogs import export as export_dialog

    errors: list[BaseException] = []
    monkeypatch.setattr(export_dialog, "show_exception",
                        lambda parent, exc, title="": errors.append(exc))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("export/folder", str(tmp_path / "out"))
    state = MixerState.for_stems(stems)
    state.channels["vocals"].gain_db = -6.0
    d = export_dialog.ExportDialog(None, stems, SR, "Song", state, settings)
    d.errors = errors
    qtbot.addWidget(d)
    return d


def _export(qtbot, d) -> None:
    with qtbot.waitSignal(d.exported, timeout=10000):
        assert d.start_export()
    qtbot.waitUntil(lambda: d.task is None, timeout=5000)


def test_dialog_defaults_and_preview(dialog, tmp_path) -> None:
    assert dialog.samplerate_out() is None
    assert dialog.rate_combo.currentText() == f"Original ({SR} Hz)"
    assert dialog.folder() == tmp_path / "out"
    assert dialog.format() == "wav" and dialog.bit_depth() == 24
    assert "Song - Vocals.wav" in dialog.preview.text()
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("flac"))
    assert [dialog.depth_combo.itemData(i) for i in range(dialog.depth_combo.count())] == \
        [16, 24]
    assert "Song - Vocals.flac" in dialog.preview.text()
    dialog.set_mode("minus")
    assert "Song - minus Vocals.flac" in dialog.preview.text()
    dialog.set_mode("daw")
    assert "Song.RPP" in dialog.preview.text()
    dialog.pattern_edit.setText("{song}")  # every stem the same name
    assert not dialog.export_button.isEnabled()
    dialog.pattern_edit.setText("{nope}")
    assert "bad naming pattern" in dialog.preview.text()


def test_dialog_exports_each_mode(qtbot, dialog, tmp_path, stems) -> None:
    out = tmp_path / "out"
    dialog.set_mode("stems")
    dialog.stem_boxes["stems"]["drums"].setChecked(False)
    _export(qtbot, dialog)
    assert sorted(p.name for p in dialog.written) == ["Song - Bass.wav", "Song - Other.wav",
                                                      "Song - Vocals.wav"]
    assert dialog.settings.value("export/folder") == str(out)
    dialog.set_mode("remix")
    dialog.depth_combo.setCurrentIndex(dialog.depth_combo.findData(32))
    _export(qtbot, dialog)
    data, _ = _read(out / "Song - Remix.wav")
    np.testing.assert_allclose(data, render_mix(stems, dialog.mixer_state), atol=1e-6)
    dialog.set_mode("minus")
    _export(qtbot, dialog)
    data, _ = _read(out / "Song - minus Vocals.wav")
    np.testing.assert_allclose(data, sum(stems.values()) - stems["vocals"], atol=1e-6)
    dialog.set_mode("daw")
    dialog.subfolder_box.setChecked(True)
    dialog.rate_combo.setCurrentIndex(dialog.rate_combo.findData(48000))
    _export(qtbot, dialog)
    assert dialog.written[-1] == out / "Song" / "Song.RPP"
    assert {sf.info(p).samplerate for p in dialog.written[:-1]} == {48000}
    assert dialog.errors == []


def test_dialog_asks_before_overwriting(qtbot, dialog, tmp_path) -> None:
    dialog.set_mode("remix")
    _export(qtbot, dialog)
    target = tmp_path / "out" / "Song - Remix.wav"
    before = target.read_bytes()
    asked: list[list[Path]] = []

    def refuse(existing):
        asked.append(existing)
        return False

    dialog.confirm_overwrite = refuse
    assert dialog.start_export() is False
    assert asked == [[target]] and "kept" in dialog.status.text()
    dialog.mixer_state.master_db = -12.0
    dialog.confirm_overwrite = lambda existing: True
    _export(qtbot, dialog)
    assert target.read_bytes() != before


def test_dialog_cancel_and_error(qtbot, dialog) -> None:
    from stemwright.desktop.dialogs.export import ExportJob

    def slow(overwrite, progress, cancel):
        progress(0.1)
        while not cancel():
            time.sleep(0.005)
        raise Cancelled("export cancelled")

    dialog.build_job = lambda: ExportJob("stems", [Path("x.wav")], slow)
    assert dialog.start_export()
    dialog.cancel_export()
    qtbot.waitUntil(lambda: dialog.task is None, timeout=5000)
    assert dialog.last_outcome == "cancelled" and "cancelled" in dialog.status.text()

    def broken(overwrite, progress, cancel):
        raise StemwrightError("disk full")

    dialog.build_job = lambda: ExportJob("stems", [Path("x.wav")], broken)
    assert dialog.start_export()
    qtbot.waitUntil(lambda: dialog.task is None, timeout=5000)
    assert dialog.last_outcome == "failed" and str(dialog.errors[-1]) == "disk full"


# -- clipping: the remix's peak before exporting ----------------------------------------

def test_render_peak_is_the_rendered_peak_block_by_block(stems) -> None:
    from stemwright.models.remix.mixer import render_peak

    state = MixerState.for_stems(stems)
    state.channels["bass"].gain_db = 9.0
    state.channels["vocals"].pan = -1.0
    expected = float(np.abs(render_mix(stems, state)).max())
    assert render_peak(stems, state) == pytest.approx(expected, rel=1e-6)
    assert render_peak(stems, state, block=1000) == pytest.approx(expected, rel=1e-6)
    state.master_db = -math.inf
    assert render_peak(stems, state) == 0.0
    with pytest.raises(Cancelled):
        render_peak(stems, state, block=1000, cancel=lambda: True)


def _loud(dialog) -> float:
    """Turn the dialog's remix up until it clips; returns its peak (linear)."""
    dialog.mixer_state.master_db = 20.0
    dialog.set_mode("remix")
    dialog.depth_combo.setCurrentIndex(dialog.depth_combo.findData(32))
    return float(np.abs(render_mix(dialog.stems, dialog.mixer_state)).max())


@pytest.mark.parametrize("choice", ["normalize", "continue", "cancel"])
def test_dialog_warns_before_a_clipping_remix(qtbot, dialog, tmp_path, choice) -> None:
    peak = _loud(dialog)
    assert peak > 1.0
    asked: list[float] = []

    def ask(peak_db: float) -> str:
        asked.append(peak_db)
        return choice

    dialog.ask_clipping = ask
    target = tmp_path / "out" / "Song - Remix.wav"
    if choice == "cancel":
        assert dialog.start_export()
        qtbot.waitUntil(lambda: dialog.peak_task is None and bool(asked), timeout=10000)
        assert not target.exists() and "clip" in dialog.status.text()
        assert dialog.export_button.isEnabled()
    else:
        _export(qtbot, dialog)
        data, _ = _read(target)
        if choice == "normalize":
            assert 20 * math.log10(np.abs(data).max()) == pytest.approx(-0.3, abs=0.01)
            assert "Normalised" in dialog.status.text()
        else:
            clipped = np.clip(render_mix(dialog.stems, dialog.mixer_state), -1.0, 1.0)
            np.testing.assert_allclose(data, clipped, atol=1e-5)  # what "clip" means
    assert asked == [pytest.approx(20 * math.log10(peak), abs=1e-3)]
    assert dialog.mixer_state.master_db == 20.0  # the live mixer is never changed


def test_dialog_does_not_ask_when_nothing_clips(qtbot, dialog, tmp_path) -> None:
    dialog.ask_clipping = lambda peak_db: pytest.fail("asked although nothing clips")
    dialog.set_mode("remix")
    _export(qtbot, dialog)
    assert dialog.peak_db is not None and dialog.peak_db < 0
    dialog.set_mode("stems")  # stems are never checked
    dialog.mixer_state.master_db = 20.0
    _export(qtbot, dialog)
