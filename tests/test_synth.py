"""The synthesized multitrack songs: deterministic, exact sums, sane levels, demo file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.stems import STEM_IDS
from stemwright.models.synthetic.test_songs import plan_song, synth_song


def rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20)


def test_deterministic_per_seed():
    mix_a, stems_a = synth_song(3.0, seed=5)
    mix_b, stems_b = synth_song(3.0, seed=5)
    assert np.array_equal(mix_a, mix_b)
    assert all(np.array_equal(stems_a[k], stems_b[k]) for k in STEM_IDS)
    mix_c, _ = synth_song(3.0, seed=6)
    assert not np.allclose(mix_a, mix_c)


@pytest.mark.parametrize(("seconds", "samplerate"),
                         [(6.5, 44100), (2.0, 22050), (1.3, 48000), (0.25, 44100)])
def test_shapes_and_exact_sum(seconds, samplerate):
    mix, stems = synth_song(seconds, samplerate, seed=1)
    length = int(round(seconds * samplerate))
    assert tuple(stems) == STEM_IDS
    assert mix.dtype == np.float32 and mix.shape == (2, length)
    for stem in stems.values():
        assert stem.dtype == np.float32 and stem.shape == (2, length)
    assert np.array_equal(mix, sum(stems.values()))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_no_clipping_and_every_stem_sounds(seed):
    mix, stems = synth_song(8.0, seed=seed)
    assert np.isfinite(mix).all()
    assert np.abs(mix).max() < 0.99
    levels = {k: rms_db(v) for k, v in stems.items()}
    for name, stem in stems.items():
        assert np.abs(stem).max() < 0.99, name
        assert levels[name] > -40, (name, levels[name])
    # the balance: vocals and drums up front, nothing buried or dominating
    assert levels["vocals"] >= max(levels["electric_guitar"], levels["wind"],
                                   levels["other"])
    assert levels["drums"] >= max(levels["wind"], levels["other"])
    assert max(levels.values()) - min(levels.values()) < 15


def test_each_stem_plays_in_every_bar_of_a_short_song():
    plan = plan_song(5.0, 44100, 2)
    _, stems = synth_song(5.0, seed=2)
    bar = int(plan.bar * 44100)
    for name, stem in stems.items():
        if name == "vocals":  # phrases have rests; check the whole song instead
            assert rms_db(stem) > -40
            continue
        for b in range(stem.shape[-1] // bar):
            assert rms_db(stem[:, b * bar:(b + 1) * bar]) > -45, (name, b)


def test_stem_subset_renders_the_same_signals():
    _, full = synth_song(4.0, seed=3)
    mix, some = synth_song(4.0, seed=3, stems=["bass", "vocals"])
    assert tuple(some) == ("vocals", "bass")  # canonical order
    assert np.array_equal(some["bass"], full["bass"])
    assert np.array_equal(some["vocals"], full["vocals"])
    assert np.array_equal(mix, some["vocals"] + some["bass"])


def test_bad_arguments():
    with pytest.raises(ValueError):
        synth_song(1.0, stems=["kazoo"])
    with pytest.raises(ValueError):
        synth_song(0.0)


def band_fraction(x: np.ndarray, lo: float, hi: float, samplerate: int = 44100) -> float:
    spec = np.abs(np.fft.rfft(x.mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / samplerate)
    return float(spec[(freqs >= lo) & (freqs < hi)].sum() / spec.sum())


def test_bass_is_low_and_cymbals_are_high():
    _, stems = synth_song(6.0, seed=0)
    assert band_fraction(stems["bass"], 0, 300) > 0.8
    assert band_fraction(stems["drums"], 5000, 22050) > 0.005
    assert band_fraction(stems["vocals"], 0, 100) < 0.01


def test_bundled_demo_song():
    """The demo is a generated multitrack song: all six stems, tracks that add up to the
    mix, CD format, small enough to ship."""
    from stemwright.models.multitrack.folders import load_song, scan_folder
    from stemwright.resources import demo_song

    folder = demo_song()
    scan = scan_folder(folder)
    assert len(scan.songs) == 1 and not scan.problems
    loaded = load_song(scan.songs[0])
    assert set(loaded.by_stem()) == set(STEM_IDS)
    info = sf.info(folder / "mix.flac")
    assert info.samplerate == 44100 and info.channels == 2 and info.format == "FLAC"
    assert 18.0 <= info.duration <= 22.0
    assert sum(p.stat().st_size for p in folder.iterdir()) < 10 * 1024 * 1024
    mix, _ = sf.read(folder / "mix.flac", dtype="float32", always_2d=True)
    total = np.sum([t for tracks in loaded.by_stem().values() for t in tracks], axis=0)
    assert total.shape == mix.T.shape
    assert rms_db(mix.T - total) < rms_db(mix) - 60  # 16-bit rounding only
    assert np.abs(mix).max() < 0.99 and rms_db(mix) > -25
