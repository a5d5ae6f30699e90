"""Shared pytest fixtures: tiny generated audio, nothing downloaded."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


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
