"""Every literature architecture separates a song end to end through the app: a small
checkpoint is imported into the zoo, picked in the model selector and run by the window."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from stemwright.desktop.dialogs import messages as dialogs
from stemwright.desktop.engine.workers import SeparationOptions  # noqa: E402
from stemwright.desktop.main_window import MainWindow  # noqa: E402
from stemwright.desktop.settings import Settings  # noqa: E402
from stemwright.models.architectures import registry as arch
from stemwright.models.stems import STEM_IDS  # noqa: E402
from stemwright.models.synthetic.test_songs import synth_song  # noqa: E402
from stemwright.models.zoo import catalog as zoo

TIMEOUT = 60_000


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STEMWRIGHT_SEPARATE_IN_PROCESS", "1")
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                      str(tmp_path / "qsettings"))
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
    for box in dialogs.open_dialogs():
        box.close()


@pytest.mark.parametrize("name", list(arch.ARCHITECTURES))
def test_architecture_separates_in_the_app(name, qtbot, tmp_path):
    model = arch.build(name, small=True, seed=0)
    ckpt = arch.save_model(tmp_path / f"{name}.safetensors", name, model,
                           arch.config(name, small=True))
    zoo.import_model_file(f"my-{name}", ckpt)

    window = MainWindow(Settings(tmp_path / "settings.ini"))
    window.confirm = lambda *_args: True
    qtbot.addWidget(window)
    window.show()
    window.panel.refresh_models()
    combo = window.panel.model_combo
    assert combo.findData(f"my-{name}") >= 0  # offered in the selector
    combo.setCurrentIndex(combo.findData(f"my-{name}"))
    mix, _ = synth_song(1.5, 44100, seed=2)
    sf.write(tmp_path / "song.wav", mix.T, 44100)
    with qtbot.waitSignal(window.songLoaded, timeout=TIMEOUT):
        window.open_file(tmp_path / "song.wav")
    with qtbot.waitSignal(window.separationFinished, timeout=TIMEOUT) as blocker:
        window.separate(SeparationOptions(f"my-{name}"))
    out = blocker.args[0]
    assert out is not None and set(out.result.stems) == set(STEM_IDS)
    lanes = window.waveform.stem_lanes()
    assert {k for k, lane in lanes.items() if lane.available} == set(STEM_IDS)
    window.close()
