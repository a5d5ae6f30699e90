"""Training data: decoded-audio cache, segments, augmentation, masks, sampling, loading."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stemwright.models.stems import STEM_IDS
from stemwright.models.synthetic.test_songs import synth_song
from stemwright.models.training import dataset as ds

SR = 8000
NAMES = {"vocals": "Lead Vox", "drums": "Drums", "bass": "Bass DI",
         "electric_guitar": "Dist Gtr", "wind": "Alto Sax", "other": "Piano"}


def make_folder(root: Path, songs: int = 3, seconds: float = 2.0,
                drop: dict[int, tuple[str, ...]] | None = None) -> Path:
    """Per-instrument song folders of `synth_song` stems at 8 kHz; `drop` leaves stems out."""
    for k in range(songs):
        _, stems = synth_song(seconds, SR, seed=k)
        folder = root / f"song{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for stem, audio in stems.items():
            if stem not in (drop or {}).get(k, ()):
                sf.write(folder / f"{NAMES[stem]}.wav", audio.T, SR, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> list[ds.CachedSong]:
    root = tmp_path_factory.mktemp("data")
    make_folder(root / "songs", drop={1: ("wind",), 2: ("electric_guitar", "wind")})
    out, problems = ds.prepare_songs([root / "songs"], SR, root / "cache")
    assert problems == []
    return out


def test_songs_are_cached_once_and_again_when_a_file_changes(tmp_path, monkeypatch):
    make_folder(tmp_path / "songs", songs=2, seconds=1.0)
    first, _ = ds.prepare_songs([tmp_path / "songs"], SR, tmp_path / "cache")
    assert [s.key for s in first] == ["songs/song0", "songs/song1"]
    assert first[0].stems == STEM_IDS and first[0].length == SR
    cached = np.load(first[0].path, mmap_mode="r")
    assert cached.dtype == np.float32 and cached.shape == (6, 2, SR)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(ds, "load_song", no_decoding)
    again, _ = ds.prepare_songs([tmp_path / "songs"], SR, tmp_path / "cache")
    assert [s.path for s in again] == [s.path for s in first]
    monkeypatch.undo()
    track = tmp_path / "songs" / "song1" / "Bass DI.wav"
    os.utime(track, ns=(track.stat().st_atime_ns, track.stat().st_mtime_ns + 10**9))
    changed, _ = ds.prepare_songs([tmp_path / "songs"], SR, tmp_path / "cache")
    assert changed[0].path == first[0].path and changed[1].path != first[1].path


def test_segments_mix_to_the_sum_of_their_targets_and_mask_absent_stems(songs):
    sources = ["vocals", "drums", "bass", "electric_guitar", "wind", "other"]
    data = ds.SegmentDataset(songs, sources, SR // 2, segments_per_song=4,
                             augment=ds.Augment(remix=0.0))
    assert len(data) == 12
    for i in range(len(data)):
        mix, targets, mask = data[i]
        assert mix.shape == (2, SR // 2) and targets.shape == (6, 2, SR // 2)
        assert float(mix.abs().max()) <= 1.0
        assert torch.allclose(targets.sum(0), mix, atol=1e-6)
        song = songs[i // 4]
        expected = [float(s in song.stems) for s in sources]
        assert mask.tolist() == expected
        assert not targets[mask == 0].any()  # absent: zero target, and masked out
    # four targets: electric guitar and wind go into "other"
    four = ds.SegmentDataset(songs, ["vocals", "drums", "bass", "other"], SR // 2, 4,
                             augment=ds.Augment.none())
    mix, targets, mask = four[0]
    assert torch.allclose(targets.sum(0), mix, atol=1e-6) and mask.tolist() == [1.0] * 4


def test_segments_are_deterministic_per_epoch_and_index(songs):
    data = ds.SegmentDataset(songs, STEM_IDS, SR // 2, 4, seed=3)
    a, b = data[5], data[5]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    c = data[5 + len(data)]  # the same segment slot, next epoch
    assert not torch.equal(a[0], c[0])


def test_left_right_swaps_and_remixing(songs):
    song = songs[0]
    plain = ds.SegmentDataset([song], STEM_IDS, SR // 2, 1, ds.Augment.none())
    swapped = ds.SegmentDataset([song], STEM_IDS, SR // 2, 1,
                                ds.Augment(swap=True, gain=None, remix=0.0))
    kept = flipped = 0
    for i in range(8):
        ref = plain._draw(np.random.default_rng([0, 0, i]), 0)
        sw = swapped._draw(np.random.default_rng([0, 0, i]), 0)
        for stem in ref:
            if np.array_equal(sw[stem], ref[stem]):
                kept += 1
            else:
                assert np.array_equal(sw[stem], ref[stem][::-1])
                flipped += 1
    assert kept > 0 and flipped > 0
    # remixing: stems of one segment come from several songs
    remixed = ds.SegmentDataset(songs, STEM_IDS, SR // 2, 1, ds.Augment(remix=1.0))
    mix, targets, mask = remixed[0]
    assert torch.allclose(targets.sum(0), mix, atol=1e-6)
    assert mask.tolist() == [1.0] * 6  # every stem drawn from a song that has it


def test_gain_stays_in_range(songs):
    song = songs[0]
    data = ds.SegmentDataset([song], STEM_IDS, SR // 2, 1,
                             ds.Augment(swap=False, gain=(0.75, 1.25), remix=0.0))
    for i in range(6):
        rng = np.random.default_rng([9, i])
        drawn = data._draw(rng, 0)
        start_rng = np.random.default_rng([9, i])
        start = data._random_start(song, SR // 2, start_rng)
        for stem, x in drawn.items():
            ref = song.stem(stem, start, SR // 2)
            if np.abs(ref).max() > 1e-3:
                g = float(np.dot(x.ravel(), ref.ravel()) / np.dot(ref.ravel(), ref.ravel()))
                assert 0.75 - 1e-4 <= g <= 1.25 + 1e-4


def test_phase_vocoder_and_repitch_keep_length_and_move_pitch():
    t = np.arange(2 * SR) / SR
    tone = np.sin(2 * np.pi * 440 * t)[None].astype(np.float32)

    def peak_hz(x: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1])))
        return float(np.argmax(spec) * SR / x.shape[-1])

    slow = ds.phase_vocoder(tone, 0.8)
    assert abs(slow.shape[-1] - 2 * SR / 0.8) < 1100 and abs(peak_hz(slow[0]) - 440) < 5
    assert np.abs(slow[0, 2000:-2000]).max() > 0.8  # no phase cancellation
    up = ds.repitch(np.stack([tone, tone]), 12.0, 1.0, 2 * SR, SR)
    assert up.shape == (2, 1, 2 * SR) and abs(peak_hz(up[0, 0]) - 880) < 10
    faster = ds.repitch(tone[None, :, :int(1.1 * SR)], 0.0, 1.1, SR, SR)
    assert faster.shape == (1, 1, SR) and abs(peak_hz(faster[0, 0]) - 440) < 10


def test_pitch_and_stretch_segments_still_add_up(songs):
    data = ds.SegmentDataset(songs, STEM_IDS, SR // 2, 2,
                             ds.Augment(pitch=2.0, stretch=0.1, repitch_prob=1.0))
    for i in range(3):
        mix, targets, _ = data[i]
        assert mix.shape == (2, SR // 2)
        assert torch.allclose(targets.sum(0), mix, atol=1e-6)


def test_forcing_a_sparse_stem_into_segments(tmp_path):
    # vocals play only in the last quarter of a 4 s song
    _, stems = synth_song(4.0, SR, seed=5)
    folder = tmp_path / "songs" / "sparse"
    folder.mkdir(parents=True)
    stems["vocals"][:, : 3 * SR] = 0.0
    for stem in ("vocals", "drums", "bass"):
        sf.write(folder / f"{NAMES[stem]}.wav", stems[stem].T, SR, subtype="FLOAT")
    songs, _ = ds.prepare_songs([tmp_path / "songs"], SR, tmp_path / "cache")

    def share_with_vocals(fraction: float) -> float:
        data = ds.SegmentDataset(songs, ["vocals", "drums", "bass"], SR // 2, 40,
                                 ds.Augment.none(), force_stem="vocals",
                                 force_fraction=fraction)
        hits = [float(data[i][1][0].square().mean().sqrt()) > 10 ** (ds.ACTIVE_DB / 20)
                for i in range(len(data))]
        return sum(hits) / len(hits)

    assert share_with_vocals(1.0) == 1.0
    assert share_with_vocals(0.0) < 0.5
    with pytest.raises(ds.DataError, match="wind"):
        ds.SegmentDataset(songs, ["vocals"], SR // 2, 1, force_stem="wind",
                          force_fraction=0.5)


def test_split_by_song(songs):
    train, valid = ds.split_songs(songs, 0.34, seed=1)
    assert len(valid) == 1 and len(train) == 2 and not set(train) & set(valid)
    assert ds.split_songs(songs, 0.34, seed=1) == (train, valid)
    train, valid = ds.split_songs(songs, valid_keys=["song2"])
    assert [s.key for s in valid] == ["songs/song2"]
    with pytest.raises(ds.DataError, match="nope"):
        ds.split_songs(songs, valid_keys=["nope"])
    train, valid = ds.split_songs(songs[:1], 0.5)
    assert valid == [] and len(train) == 1


def test_validation_set_is_fixed(songs):
    vset = ds.ValidationSet(songs[:1], STEM_IDS, SR // 2, per_song=3)
    assert len(vset) == 3
    mix, targets, mask, song = vset[0]
    assert int(song) == 0 and torch.allclose(targets.sum(0), mix, atol=1e-6)
    assert torch.equal(vset[1][0], vset[1][0])


def test_sampler_splits_global_batches_between_ranks():
    one = list(ds.EpochSampler(24, batch=4, seed=2))
    ranks = [list(ds.EpochSampler(24, batch=4, seed=2, rank=r, world=2)) for r in range(2)]
    assert len(one) == 24 and all(len(r) == 12 for r in ranks)
    for step in range(6):
        merged = ranks[0][2 * step:2 * step + 2] + ranks[1][2 * step:2 * step + 2]
        assert merged == one[4 * step:4 * step + 4]
    sampler = ds.EpochSampler(24, batch=4, seed=2)
    sampler.set_epoch(3)
    assert all(24 * 3 <= i < 24 * 4 for i in sampler)
    assert len(ds.EpochSampler(3, batch=4)) == 4  # one batch, repeated segments
    assert len(ds.EpochSampler(40, batch=4, max_steps=2)) == 8
    with pytest.raises(ds.DataError, match="multiple"):
        ds.EpochSampler(24, batch=3, world=2)


def test_worker_processes_load_the_same_batches(songs):
    data = ds.SegmentDataset(songs, STEM_IDS, SR // 4, 4)
    sampler = ds.EpochSampler(len(data), 4, seed=1)
    inline = [b for b in ds.make_loader(data, 4, sampler, workers=0)]
    parallel = [b for b in ds.make_loader(data, 4, sampler, workers=2)]
    assert len(inline) == len(parallel) == 3
    for a, b in zip(inline, parallel, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_random_eq_shapes_the_spectrum_and_keeps_the_mix_the_sum(songs):
    """The EQ bands do what they say (a +12 dB low shelf lifts 50 Hz by ~12 dB and leaves
    8 kHz), the draw changes nothing else in the item, and the mixture is still exactly
    the sum of the targets."""
    freqs = np.array([30.0, 50.0, 1000.0, 8000.0, 16000.0])
    db = 20 * np.log10(ds.eq_curve(freqs, (200.0, 12.0), (1000.0, 0.0, 1.0), (4000.0, -6.0)))
    assert db[0] > 11 and db[1] > 10 and abs(db[2]) < 1.5 and db[4] < -5.5
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    x = np.stack([np.sin(2 * np.pi * 80 * t) + np.sin(2 * np.pi * 2000 * t)] * 2)
    y = ds.random_eq(x.astype(np.float32), SR, rng, 9.0)
    assert y.shape == x.shape and y.dtype == np.float32
    assert not np.allclose(y, x, atol=1e-3)
    spec_x, spec_y = np.abs(np.fft.rfft(x[0])), np.abs(np.fft.rfft(y[0]))
    for f in (80, 2000):  # each tone scaled by at most the three bands' +-9 dB
        ratio = 20 * np.log10(spec_y[f] / spec_x[f])
        assert abs(ratio) <= 27.0
    base = ds.Augment(swap=False, gain=None, remix=0.0)
    plain = ds.SegmentDataset(songs, STEM_IDS, SR // 2, 4, base, seed=5)
    eq = ds.SegmentDataset(songs, STEM_IDS, SR // 2, 4,
                           ds.Augment(swap=False, gain=None, remix=0.0, eq=9.0, eq_prob=1.0),
                           seed=5)
    changed = 0
    for i in range(4):
        a, b = plain._draw(np.random.default_rng([5, 0, i]), i), \
            eq._draw(np.random.default_rng([5, 0, i]), i)
        assert a.keys() == b.keys()
        for stem in a:  # same segment (start, song) drawn, only its colour differs
            na, nb = np.linalg.norm(a[stem]), np.linalg.norm(b[stem])
            if na > 1e-3:
                corr = float(np.dot(a[stem].ravel(), b[stem].ravel()) / (na * nb))
                assert corr > 0.3
                changed += not np.allclose(a[stem], b[stem], atol=1e-4)
        mix, targets, _ = eq[i]
        assert torch.allclose(targets.sum(0), mix, atol=1e-5)
    assert changed > 0
    assert torch.equal(eq[3][0], eq[3][0])  # deterministic
    with pytest.raises(ds.DataError):
        ds.Augment(eq=30.0)
