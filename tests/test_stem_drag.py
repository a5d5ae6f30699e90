"""Dragging a stem lane out of the window (issue #18): the file URL it carries, the WAV
written into the session cache, reuse, "as heard" and no drag for unseparated stems."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")
sf = pytest.importorskip("soundfile")

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QStatusBar  # noqa: E402

from stemwright.desktop.controllers import drag as drag_mod  # noqa: E402
from stemwright.desktop.controllers.drag import StemDragController  # noqa: E402
from stemwright.desktop.engine.workers import LoadedSong, sessions_dir  # noqa: E402
from stemwright.desktop.views import lane_items  # noqa: E402
from stemwright.desktop.views.waveform import WaveformView  # noqa: E402
from stemwright.desktop.views.waveform_data import Envelope  # noqa: E402
from stemwright.models.remix.mixer import MixerState  # noqa: E402

SR = 22050
LSB = 1.0 / (1 << 23)  # one 24-bit step


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))


def _stems(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = SR  # one second
    return {s: (0.05 * rng.standard_normal((2, n))).astype(np.float32)
            for s in ("vocals", "drums", "bass", "other")}


class FakeWindow(SimpleNamespace):
    """What the controller reads from the main window, with a real waveform view."""

    def statusBar(self):  # noqa: N802
        return self.status


def _window(qtbot, tmp_path, separated: bool = True, seed: int = 0) -> FakeWindow:
    stems = _stems(seed)
    mix = sum(stems.values()).astype(np.float32)
    path = tmp_path / "My Song.wav"
    sf.write(path, mix.T, SR, subtype="FLOAT")
    song = LoadedSong(path, mix, SR, Envelope.compute(mix, SR))
    view = WaveformView()
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.set_song(song.envelope, "Mixture")
    status = QStatusBar()
    qtbot.addWidget(status)
    w = FakeWindow(song=song, partial=None, waveform=view, status=status,
                   player=SimpleNamespace(mixer=MixerState.for_stems(stems)),
                   separated=None)
    if separated:
        w.separated = SimpleNamespace(result=SimpleNamespace(stems=stems, samplerate=SR))
        view.set_stems({s: Envelope.compute(x, SR) for s, x in stems.items()})
    w.drags = StemDragController(w)
    return w


def _only_file(mime) -> str:
    urls = mime.urls()
    assert len(urls) == 1 and urls[0].isLocalFile()
    return urls[0].toLocalFile()


def test_stem_mime_holds_one_24_bit_wav_of_the_stem(qtbot, tmp_path):
    w = _window(qtbot, tmp_path)
    path = _only_file(w.drags.mime_for("vocals"))
    assert path.endswith("/My Song - Vocals.wav")
    assert str(sessions_dir()) in path  # in the song's folder of the session cache
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (SR, 2, "PCM_24")
    data, _ = sf.read(path, dtype="float64", always_2d=True)
    expected = w.separated.result.stems["vocals"].T
    assert data.shape == expected.shape
    assert np.max(np.abs(data - expected)) <= 2.5 * LSB  # rounding plus +-1 LSB dither


def test_mixture_lane_is_offered_too(qtbot, tmp_path):
    w = _window(qtbot, tmp_path, separated=False)
    path = _only_file(w.drags.mime_for("mix"))
    assert path.endswith("/My Song - Mixture.wav")
    data, rate = sf.read(path, dtype="float64", always_2d=True)
    assert rate == SR and np.max(np.abs(data - w.song.data.T)) <= 2.5 * LSB


def test_second_drag_reuses_the_file_new_stems_do_not(qtbot, tmp_path, monkeypatch):
    w = _window(qtbot, tmp_path)
    writes = []
    real_save = drag_mod.save_audio
    monkeypatch.setattr(drag_mod, "save_audio",
                        lambda *a, **k: writes.append(a[0]) or real_save(*a, **k))
    first = _only_file(w.drags.mime_for("drums"))
    stamp = os.stat(first).st_mtime_ns
    second = _only_file(w.drags.mime_for("drums"))
    assert first == second and len(writes) == 1
    assert os.stat(second).st_mtime_ns == stamp
    # a new separation (other samples) never gets the old file
    w.separated.result.stems = _stems(seed=7)
    third = _only_file(w.drags.mime_for("drums"))
    assert third != first and len(writes) == 2
    data, _ = sf.read(third, dtype="float64", always_2d=True)
    assert np.max(np.abs(data - w.separated.result.stems["drums"].T)) <= 2.5 * LSB


def test_as_heard_applies_the_fader_and_ignores_mute(qtbot, tmp_path):
    w = _window(qtbot, tmp_path)
    ch = w.player.mixer.channel("bass")
    ch.gain_db = -20 * np.log10(2.0)  # -6.02 dB: half the amplitude
    ch.mute = True  # the user dragged this stem: it is rendered anyway
    plain = _only_file(w.drags.mime_for("bass"))
    heard = _only_file(w.drags.mime_for("bass", as_heard=True))
    assert heard != plain and heard.endswith("/My Song - Bass.wav")
    data, _ = sf.read(heard, dtype="float64", always_2d=True)
    expected = 0.5 * w.separated.result.stems["bass"].T.astype(np.float64)
    assert np.max(np.abs(data - expected)) <= 2.5 * LSB
    # a changed fader is a new render, not the old file
    ch.gain_db = 0.0
    again = _only_file(w.drags.mime_for("bass", as_heard=True))
    assert again != heard


def test_no_drag_for_a_stem_not_separated(qtbot, tmp_path, monkeypatch):
    w = _window(qtbot, tmp_path, separated=False)
    assert w.drags.mime_for("vocals") is None
    assert "not separated" in w.status.currentMessage()
    w = _window(qtbot, tmp_path)
    w.partial = object()  # still being separated
    assert w.drags.mime_for("vocals") is None
    w.partial = None
    assert w.drags.mime_for("electric_guitar") is None  # a stem this model did not produce
    assert not (sessions_dir().exists() and any(sessions_dir().rglob("*guitar*")))


class FakeDrag:
    """Stands in for QDrag: records the mime data instead of a blocking drag."""

    started: list = []

    def __init__(self, source) -> None:
        self.source = source

    def setMimeData(self, mime) -> None:  # noqa: N802
        self.mime = mime

    def exec(self, actions):
        FakeDrag.started.append(self.mime)
        return Qt.DropAction.CopyAction


def _label_point(view: WaveformView, key: str) -> QPoint:
    lane = view.mix if key == "mix" else view.stem_lanes()[key]
    return view.mapFromScene(lane.label.sceneBoundingRect().center())


def _drag(view: WaveformView, start: QPoint, modifiers=Qt.KeyboardModifier.NoModifier):
    vp = view.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, modifiers, start)
    QTest.mouseMove(vp, start + QPoint(30, 12))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, modifiers, start + QPoint(30, 12))


def test_dragging_a_lane_name_starts_a_drag_with_the_file(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(lane_items, "QDrag", FakeDrag)
    monkeypatch.setattr(FakeDrag, "started", [])
    w = _window(qtbot, tmp_path)
    view = w.waveform
    view.show()
    qtbot.waitExposed(view)
    view.settle()
    _drag(view, _label_point(view, "vocals"))
    assert len(FakeDrag.started) == 1
    assert _only_file(FakeDrag.started[0]).endswith("/My Song - Vocals.wav")
    w.player.mixer.channel("vocals").gain_db = -6.0
    _drag(view, _label_point(view, "vocals"), Qt.KeyboardModifier.AltModifier)
    assert len(FakeDrag.started) == 2
    assert _only_file(FakeDrag.started[1]) != _only_file(FakeDrag.started[0])
    # Shift asks for the same (Alt+drag moves windows in many window managers)
    _drag(view, _label_point(view, "vocals"), Qt.KeyboardModifier.ShiftModifier)
    assert _only_file(FakeDrag.started.pop()) == _only_file(FakeDrag.started[1])
    # a click on the name (no move) still selects the lane, and starts no drag
    with qtbot.waitSignal(view.stemSelected, timeout=2000) as picked:
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         Qt.KeyboardModifier.NoModifier, _label_point(view, "drums"))
    assert picked.args == ["drums"] and len(FakeDrag.started) == 2


def test_no_drag_starts_from_an_unseparated_lane(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(lane_items, "QDrag", FakeDrag)
    monkeypatch.setattr(FakeDrag, "started", [])
    w = _window(qtbot, tmp_path)
    view = w.waveform
    view.set_stem("electric_guitar", None, unavailable=True)  # shown, "not produced by this model"
    view.show()
    qtbot.waitExposed(view)
    view.settle()
    assert view.drag_key_at(_label_point(view, "electric_guitar")) is None
    _drag(view, _label_point(view, "electric_guitar"))
    w.partial = object()
    _drag(view, _label_point(view, "vocals"))
    assert FakeDrag.started == []


def _export_choice(qtbot, tmp_path, w, fmt: str, depth: int | None = None) -> None:
    """Choose `fmt` (and `depth`) in the Export dialog and save its settings, as an
    export does; the window's settings are the dialog's."""
    from PySide6.QtCore import QSettings

    from stemwright.desktop.dialogs.export import ExportDialog

    qsettings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w.settings = SimpleNamespace(qsettings=qsettings)
    stems = w.separated.result.stems
    d = ExportDialog(None, stems, SR, "My Song", MixerState.for_stems(stems), qsettings)
    qtbot.addWidget(d)
    d.format_combo.setCurrentIndex(d.format_combo.findData(fmt))
    if depth is not None:
        d.depth_combo.setCurrentIndex(d.depth_combo.findData(depth))
    d._save_settings()


def test_drag_uses_the_export_dialogs_lossless_format(qtbot, tmp_path):
    w = _window(qtbot, tmp_path)
    wav = _only_file(w.drags.mime_for("vocals"))
    _export_choice(qtbot, tmp_path, w, "flac", 16)
    path = _only_file(w.drags.mime_for("vocals"))
    assert path.endswith("/My Song - Vocals.flac") and path != wav
    info = sf.info(path)
    assert (info.format, info.subtype, info.samplerate) == ("FLAC", "PCM_16", SR)
    assert os.path.isfile(wav)  # a new format is a new render, the old one is kept
    heard = _only_file(w.drags.mime_for("mix", as_heard=True))
    assert heard.endswith("/My Song - Remix.flac")


def test_drag_after_a_lossy_export_choice_is_a_24_bit_wav(qtbot, tmp_path):
    w = _window(qtbot, tmp_path)
    _export_choice(qtbot, tmp_path, w, "mp3")
    path = _only_file(w.drags.mime_for("drums"))
    assert path.endswith("/My Song - Drums.wav")
    assert sf.info(path).subtype == "PCM_24"
