"""Training-free teaching separators (NMF, HPSS, REPET): masks, honest stems, the zoo, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from threadpoolctl import threadpool_limits

from stemwright.models.classic.teaching import (
    DIVERGENCES,
    TEACHING,
    HPSSSeparator,
    NMFSeparator,
    REPETSeparator,
    beta_nmf,
)
from stemwright.models.cli import commands as cli
from stemwright.models.zoo import catalog as zoo

SR = 44100


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    saved = torch.get_num_threads()
    monkeypatch.setattr("stemwright.models.separation.separator.configure_cpu_threads",
                        lambda threads=None: torch.set_num_threads(1))
    with threadpool_limits(1):
        yield
    torch.set_num_threads(saved)


def tone(freq: float, seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def clicks(seconds: float, every: float = 0.25, amp: float = 0.8) -> np.ndarray:
    x = np.zeros(int(seconds * SR), dtype=np.float32)
    rng = np.random.default_rng(0)
    for start in range(0, len(x) - 400, int(every * SR)):
        x[start:start + 400] += amp * rng.standard_normal(400) * np.exp(-np.arange(400) / 60)
    return x


def stereo(x: np.ndarray) -> np.ndarray:
    return np.stack([x, x])


def energy(x: np.ndarray) -> float:
    return float(np.sum(np.square(x, dtype=np.float64)))


@pytest.mark.parametrize("name", list(TEACHING))
def test_stems_add_up_to_the_mix_and_map_honestly(name):
    rng = np.random.default_rng(1)
    mix = (0.1 * rng.standard_normal((2, 3 * SR))).astype(np.float32)
    sep = TEACHING[name](segment=2.0)
    result = sep.separate(mix, SR, residual_to_other=False)
    assert set(result.stems) == set(sep.mapping.produced)
    assert np.allclose(result.sum(), mix, atol=1e-4)
    entry = zoo.get_entry(name)
    assert entry.family == "classic" and not entry.needs_download
    assert entry.mapping is sep.mapping


def test_mappings_say_what_each_method_really_separates():
    assert HPSSSeparator.mapping.describe() == "percussive -> drums, harmonic -> other"
    assert REPETSeparator.mapping.describe() == "foreground -> vocals, background -> other"
    assert NMFSeparator.mapping.describe() == "percussive -> drums, low -> bass, tonal -> other"


def test_hpss_puts_hits_in_drums_and_notes_in_other():
    hits, note = clicks(3.0), tone(440.0, 3.0)
    out = HPSSSeparator().separate_chunk(stereo(hits + note))  # [percussive, harmonic]
    drums, other = out[0, 0], out[1, 0]
    assert energy(drums - hits) < 0.3 * energy(hits)
    assert energy(other - note) < 0.3 * energy(note)


def test_repet_finds_the_period_and_keeps_the_repeating_part_as_background():
    period = 1.5
    rng = np.random.default_rng(2)
    bar = (0.2 * rng.standard_normal(int(period * SR))).astype(np.float32)
    bar *= np.exp(-(np.arange(len(bar)) % (SR // 4)) / 2000.0)  # a repeating rhythm
    background = np.tile(bar, 6)
    lead = np.zeros_like(background)
    for i, freq in enumerate((523.0, 659.0, 784.0, 587.0, 698.0, 880.0, 494.0, 622.0)):
        n = len(lead) // 8
        lead[i * n:(i + 1) * n] = tone(freq, n / SR, 0.25)[:n]
    sep = REPETSeparator(segment=10.0)
    out = sep.separate_chunk(stereo(background + lead))  # [foreground, background]
    assert abs(sep.last_period - period) < 0.05
    assert energy(out[0, 0] - lead) < 0.5 * energy(lead)
    sim = REPETSeparator(similarity=True, min_distance=1.0).separate_chunk(
        stereo(background + lead))
    assert energy(sim[0, 0] - lead) < energy(lead)


@pytest.mark.parametrize("divergence", list(DIVERGENCES))
def test_nmf_updates_lower_the_divergence(divergence):
    rng = np.random.default_rng(3)
    v = rng.random((40, 3)) @ rng.random((3, 60)) + 0.01
    beta = DIVERGENCES[divergence]

    def div(w, h):
        wh, x = w @ h, v
        if beta == 2.0:
            return 0.5 * np.sum((x - wh) ** 2)
        if beta == 1.0:
            return np.sum(x * np.log(x / wh) - x + wh)
        return np.sum(x / wh - np.log(x / wh) - 1)

    early = div(*beta_nmf(v, 3, beta, iterations=3))
    late_w, late_h = beta_nmf(v, 3, beta, iterations=200)
    assert div(late_w, late_h) < 0.5 * early
    assert late_w.min() >= 0 and late_h.min() >= 0
    peaks = np.argmax(late_w, axis=0)
    assert list(peaks) == sorted(peaks)


def test_nmf_groups_components_by_the_documented_rule():
    # NMF separates what changes independently: the two notes take turns (two notes that
    # always sound together would be one component)
    half = 2 * SR
    bass, high = tone(55.0, 4.0, 0.4), tone(880.0, 4.0, 0.2)
    bass[half:] = 0.0
    high[:half] = 0.0
    sep = NMFSeparator(n_components=6, max_iter=60)
    out = sep.separate_chunk(stereo(clicks(4.0, every=0.5) + bass + high))
    groups = {c.group for c in sep.last_assignment}
    assert groups == {"percussive", "low", "tonal"}
    low = next(c for c in sep.last_assignment if c.group == "low")
    assert low.peak_hz < 200 and low.low_share > 0.5
    assert energy(out[1, 0] - bass) < 0.5 * energy(bass)  # [percussive, low, tonal]
    assert energy(out[2, 0] - high) < 0.5 * energy(high)
    with pytest.raises(ValueError, match="divergence"):
        NMFSeparator(divergence="cosine")


def test_cli_lists_and_runs_the_teaching_models(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    song = tmp_path / "tune.wav"
    sf.write(song, stereo(clicks(2.0) + tone(330.0, 2.0)).T, SR)
    assert cli.main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    for name in TEACHING:
        assert any(line.startswith(name) and "built in" in line
                   for line in listing.splitlines()), name
    assert cli.main(["separate", "-m", "hpss", str(song), "-o", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out" / "tune").glob("*.wav"))
    assert written == ["tune - Drums.wav", "tune - Other.wav"]
