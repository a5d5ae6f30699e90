"""Shared pytest fixtures: tiny generated audio, nothing downloaded."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def desktop_isolation(tmp_path, monkeypatch):
    """Desktop tests never touch the real user's settings, cache or home, and leave no
    dialog open behind them."""
    from PySide6.QtCore import QSettings

    from stemwright.desktop.dialogs import messages as dialogs

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                      str(tmp_path / "qsettings"))
    yield
    for box in dialogs.open_dialogs():
        box.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def stereo_tone() -> tuple[np.ndarray, int]:
    """Two seconds of a stereo 440/660 Hz tone at 44.1 kHz, float32 [2, T]."""
    sr = 44100
    t = np.arange(2 * sr) / sr
    x = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)])
    return x.astype(np.float32), sr


@pytest.fixture
def one_torch_thread(monkeypatch):
    """Tiny models: one torch thread is fastest, and fair to a shared machine (also
    while a separator configures its CPU threads)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr("stemwright.models.separation.separator.configure_cpu_threads",
                        lambda threads=None: torch.set_num_threads(1))
    yield
    torch.set_num_threads(saved)


def load_npz(path) -> dict[str, np.ndarray]:
    """Every array of a reference fixture (.npz, no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
