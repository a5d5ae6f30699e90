"""Mastering for `stemwright synth` (shared gain envelope: mix = sum of stems exactly) and
the lossy codec round trip of training mixtures (aligned, mixture only, validated)."""

from __future__ import annotations

import time

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import torch
from scipy.signal import correlate

from stemwright.models.cli import commands as cli
from stemwright.models.synthetic import mastering as mst
from stemwright.models.synthetic.test_songs import synth_song
from stemwright.models.training import config as tc
from stemwright.models.training import dataset as ds

SR = 44100


def song(seconds: float = 6.0, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Noise, tones and drum-like clicks as three stereo tracks."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * t))
    tone += 0.1 * np.sin(2 * np.pi * 1330 * t)
    noise = 0.04 * rng.standard_normal((2, n))
    clicks = np.zeros(n)
    env = np.exp(-np.arange(2000) / 250)
    for s in range(0, n - 2000, SR // 2):
        clicks[s:s + 2000] += 0.7 * env * rng.standard_normal(2000)
    tracks = [np.stack([tone, 0.8 * tone]), noise, np.stack([clicks, 0.9 * clicks])]
    return [a.astype(np.float32) for a in tracks], ["other", "vocals", "drums"]


def lufs(x: np.ndarray) -> float:
    return pyloudnorm.Meter(SR).integrated_loudness(x.T.astype(np.float64))


def test_mix_is_the_exact_sum_of_the_mastered_tracks_float_and_int16(tmp_path):
    tracks, stems = song()
    out, mix, info = mst.master_tracks([t.copy() for t in tracks], stems,
                                       np.random.default_rng(3))
    assert info["mastered"] and len(out) == 3 and all(t.dtype == np.float32 for t in out)
    total = out[0].copy()
    for t in out[1:]:
        total += t
    assert np.array_equal(mix, total)
    # written as generate.py writes: each track quantised, the mix their integer sum
    q = [np.clip(np.rint(t * 32767.0), -32767, 32767).astype(np.int16) for t in out]
    isum = np.sum([a.astype(np.int32) for a in q], axis=0)
    assert np.max(np.abs(isum)) <= 32767  # nothing clips
    assert np.max(np.abs(isum - np.rint(mix * 32767.0))) <= len(q)
    for k, a in enumerate(q):
        sf.write(tmp_path / f"{k}.flac", a.T, SR, subtype="PCM_16", format="FLAC")
    sf.write(tmp_path / "mix.flac", isum.astype(np.int16).T, SR, subtype="PCM_16",
             format="FLAC")
    back = [sf.read(tmp_path / f"{k}.flac", dtype="int16")[0].astype(np.int32)
            for k in range(3)]
    assert np.array_equal(sf.read(tmp_path / "mix.flac", dtype="int16")[0], sum(back))


def test_one_gain_envelope_is_shared_by_every_track():
    tracks, stems = song()
    out, mix, info = mst.master_tracks([t.copy() for t in tracks], stems,
                                       np.random.default_rng(1), stem_buses=False)
    loud = np.abs(tracks[0][0]) > 0.05
    g = out[0][0][loud] / tracks[0][0][loud]
    assert g.min() < 0.99 * g.max()  # the envelope moves (compressor, limiter)
    for t, o in zip(tracks, out, strict=True):
        for c in range(2):
            sel = loud & (np.abs(t[c]) > 1e-3)
            assert np.allclose(o[c][sel] / t[c][sel], out[0][0][sel] / tracks[0][0][sel],
                               rtol=1e-5)
    assert info["buses"] == {} and info["max_gain_reduction_db"] > 0


@pytest.mark.parametrize("target", [-14.0, -10.5, -7.0])
def test_loudness_lands_on_the_target_and_the_ceiling_holds(target):
    tracks, stems = song(seed=2)
    mix = np.sum(tracks, axis=0)
    settings = mst.draw_master(np.random.default_rng(5))
    settings["target_lufs"], settings["ceiling_dbfs"] = target, -1.0
    g, info = mst.master_envelope(mix, settings)
    mastered = mix * g
    assert abs(lufs(mastered) - target) < 0.5
    assert abs(info["measured_lufs"] - lufs(mastered)) < 0.05
    ceiling = 10 ** (-1.0 / 20)
    assert np.max(np.abs(mastered)) <= ceiling * 1.0001
    assert mst.true_ish_peak(mastered).max() <= ceiling * 1.0001
    assert g.max() <= 10 ** ((info["makeup_db"] + 0.01) / 20)  # makeup in 0.01 dB
    assert info["max_gain_reduction_db"] > 0 and info["ceiling_dbfs"] == -1.0


def test_master_tracks_respects_ceiling_tracks_and_target():
    for seed in range(3):
        tracks, stems = song(seed=seed)
        out, mix, info = mst.master_tracks(tracks, stems, np.random.default_rng(seed))
        assert mst.LUFS_RANGE[0] <= info["target_lufs"] <= mst.LUFS_RANGE[1]
        assert abs(lufs(mix) - info["target_lufs"]) < 0.5
        assert 20 * np.log10(np.max(np.abs(mix))) <= info["ceiling_dbfs"] + 1e-3
        assert max(float(np.max(np.abs(t))) for t in out) <= 0.944
        assert set(info) >= {"target_lufs", "measured_lufs", "max_gain_reduction_db",
                             "ceiling_dbfs"}


def test_limiter_catches_every_peak_with_look_ahead():
    rng = np.random.default_rng(0)
    peak = np.abs(rng.standard_normal(50_000)).astype(np.float32) * 0.2
    peak[rng.integers(0, len(peak), 40)] = rng.uniform(1.0, 4.0, 40)  # isolated spikes
    g = mst.limiter_gain(peak, -1.0, lookahead_ms=2.0, release_ms=50.0)
    assert g.shape == peak.shape and g.max() <= 1.0
    assert np.max(peak * g) <= 10 ** (-1 / 20) * 1.0001
    assert np.median(g) > 0.5  # spikes, not the whole signal, are turned down


def test_mastering_is_deterministic_and_fast():
    tracks, stems = song(seconds=30.0, seed=4)
    t0 = time.process_time()  # CPU time: the test machine may be shared
    a, mix_a, info_a = mst.master_tracks([t.copy() for t in tracks], stems,
                                         np.random.default_rng(9))
    assert time.process_time() - t0 < 2.0
    b, mix_b, info_b = mst.master_tracks([t.copy() for t in tracks], stems,
                                         np.random.default_rng(9))
    assert info_a == info_b and np.array_equal(mix_a, mix_b)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_silent_mix_is_refused():
    with pytest.raises(mst.MasteringError, match="silent"):
        mst.master_tracks([np.zeros((2, SR), np.float32)], ["bass"],
                          np.random.default_rng(0))


# -- codec round trip ---------------------------------------------------------------------

def music(seconds: float, samplerate: int) -> np.ndarray:
    t = np.arange(int(seconds * samplerate)) / samplerate
    rng = np.random.default_rng(1)
    left = 0.3 * np.sin(2 * np.pi * 330 * t) * np.sin(2 * np.pi * 0.7 * t) \
        + 0.02 * rng.standard_normal(len(t))
    right = 0.2 * np.sin(2 * np.pi * 97 * t) + 0.3 * np.exp(-((t * 2) % 1) * 20) \
        * np.sin(2 * np.pi * 2000 * t)
    return np.stack([left, right]).astype(np.float32)


@pytest.mark.parametrize("codec", ["mp3", "aac"])
@pytest.mark.parametrize("samplerate", [44100, 22050])
def test_codec_round_trip_is_aligned_and_of_the_same_length(codec, samplerate):
    x = music(2.0, samplerate)
    y = ds.codec_roundtrip(x, samplerate, codec, 128000)
    assert y.shape == x.shape and y.dtype == np.float32
    assert not np.array_equal(x, y)
    for c in range(2):
        xc = correlate(y[c], x[c], mode="full", method="fft")
        assert int(np.argmax(xc)) - (x.shape[-1] - 1) == 0  # no lag
        r = float(np.dot(x[c], y[c]) / np.linalg.norm(x[c]) / np.linalg.norm(y[c]))
        assert r > 0.9


def test_codec_option_changes_the_mixture_only(tmp_path):
    names = {"vocals": "Lead Vox", "drums": "Drums", "other": "Piano"}
    for k in range(2):
        _, stems = synth_song(1.5, 8000, seed=k)
        (tmp_path / "songs" / f"song{k}").mkdir(parents=True)
        for stem, name in names.items():
            sf.write(tmp_path / "songs" / f"song{k}" / f"{name}.wav", stems[stem].T, 8000,
                     subtype="FLOAT")
    songs, _ = ds.prepare_songs([tmp_path / "songs"], 8000, tmp_path / "cache")
    plain = ds.SegmentDataset(songs, ["vocals", "drums", "other"], 4000, 4, seed=3)
    coded = ds.SegmentDataset(songs, ["vocals", "drums", "other"], 4000, 4, seed=3,
                              augment=ds.Augment(codec_prob=1.0))
    t0 = time.perf_counter()
    for i in range(4):
        (m0, y0, k0), (m1, y1, k1) = plain[i], coded[i]
        assert torch.equal(y0, y1) and torch.equal(k0, k1)  # targets and mask untouched
        assert m1.shape == m0.shape and not torch.equal(m0, m1)
        r = float((m0 * m1).sum() / (m0.norm() * m1.norm()))
        assert r > 0.9
    assert time.perf_counter() - t0 < 10
    default = ds.SegmentDataset(songs, ["vocals", "drums", "other"], 4000, 4, seed=3,
                                augment=ds.Augment(codec_prob=0.0))
    assert all(torch.equal(a, b) for a, b in zip(plain[1], default[1], strict=True))


def test_codec_probability_is_validated(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ds.DataError, match="between 0 and 1"):
        ds.Augment(codec_prob=1.5)
    cfg = tc.TrainConfig(folders=["x"], codec_prob=-0.1)
    with pytest.raises(tc.TrainingError, match="--codec-prob"):
        tc.check_config(cfg)
    assert tc.TrainConfig(folders=["x"], codec_prob=0.3).augment().codec_prob == 0.3
    (tmp_path / "songs").mkdir()
    assert cli.main(["train", str(tmp_path / "songs"), "--codec-prob", "2", "--out",
                     str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert "--codec-prob must be between 0 and 1" in err and len(err.splitlines()) == 1
    with pytest.raises(ds.DataError, match="unknown codec"):
        ds.codec_roundtrip(np.zeros((2, 100), np.float32), SR, "ogg")
