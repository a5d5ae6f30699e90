"""Mixer maths: solo/mute logic, pan law, master, offline render, null test, block mixer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stemwright.models.remix.mixer import (
    BlockMixer,
    ChannelState,
    MixerState,
    channel_gains,
    describe_null_test,
    null_test_db,
    pan_gains,
    peak_db,
    render_mix,
    rms_db,
)

SQ2 = math.sqrt(2.0)


@pytest.fixture
def stems(rng) -> dict[str, np.ndarray]:
    n = 3000
    return {
        "vocals": (0.2 * rng.standard_normal((2, n))).astype(np.float32),
        "drums": (0.2 * rng.standard_normal((2, n))).astype(np.float32),
        "bass": (0.2 * rng.standard_normal((1, n))).astype(np.float32),  # mono
    }


def test_flat_mixer_is_unity() -> None:
    state = MixerState.for_stems(["vocals", "drums"])
    assert channel_gains(state) == {"vocals": (1.0, 1.0), "drums": (1.0, 1.0)}
    assert state.is_flat()


def test_solo_mute_like_a_daw() -> None:
    state = MixerState.for_stems(["vocals", "drums", "bass"])
    state.channels["drums"].mute = True
    g = channel_gains(state)
    assert g["drums"] == (0.0, 0.0) and g["vocals"] == (1.0, 1.0)
    state.channels["vocals"].solo = True
    g = channel_gains(state)
    assert g == {"vocals": (1.0, 1.0), "drums": (0.0, 0.0), "bass": (0.0, 0.0)}
    state.channels["bass"].solo = True
    assert channel_gains(state)["bass"] == (1.0, 1.0)
    # mute wins over solo on the same channel; a muted solo does not silence the others
    state = MixerState.for_stems(["vocals", "drums"])
    state.channels["vocals"].solo = True
    state.channels["vocals"].mute = True
    assert channel_gains(state) == {"vocals": (0.0, 0.0), "drums": (1.0, 1.0)}


def test_pan_law_constant_power_unity_centre() -> None:
    assert pan_gains(0.0) == (1.0, 1.0)
    assert pan_gains(-1.0) == pytest.approx((SQ2, 0.0))
    assert pan_gains(1.0) == pytest.approx((0.0, SQ2))
    for p in np.linspace(-1, 1, 21):
        left, right = pan_gains(float(p))
        assert left**2 + right**2 == pytest.approx(2.0)
    left, right = pan_gains(0.5)
    assert left < 1.0 < right
    assert pan_gains(5.0) == pan_gains(1.0)  # clamped


def test_fader_and_master_db() -> None:
    state = MixerState(channels={"vocals": ChannelState(gain_db=-6.0, pan=-1.0)},
                       master_db=-6.0)
    left, right = channel_gains(state)["vocals"]
    assert left == pytest.approx(10 ** (-12 / 20) * SQ2)
    assert right == 0.0
    state.channels["vocals"].gain_db = -math.inf
    assert channel_gains(state)["vocals"] == (0.0, 0.0)
    # stems without a channel count as flat ones
    assert channel_gains(MixerState(), ["bass"]) == {"bass": (1.0, 1.0)}


def test_render_equals_hand_computation(stems) -> None:
    state = MixerState.for_stems(stems)
    state.channels["vocals"].gain_db = -6.0
    state.channels["drums"].pan = 0.5
    state.channels["bass"].mute = False
    state.master_db = 3.0
    out = render_mix(stems, state)
    m = 10 ** (3 / 20)
    gv = 10 ** (-6 / 20)
    dl, dr = pan_gains(0.5)
    expect_l = m * (gv * stems["vocals"][0] + dl * stems["drums"][0] + stems["bass"][0])
    expect_r = m * (gv * stems["vocals"][1] + dr * stems["drums"][1] + stems["bass"][0])
    assert out.shape == (2, 3000) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], expect_l, atol=1e-6)
    np.testing.assert_allclose(out[1], expect_r, atol=1e-6)
    part = render_mix(stems, state, start=100, stop=400)
    np.testing.assert_allclose(part, out[:, 100:400], atol=1e-7)


def test_render_flat_equals_sum_and_solo(stems) -> None:
    state = MixerState.for_stems(stems)
    total = stems["vocals"] + stems["drums"] + stems["bass"]
    np.testing.assert_allclose(render_mix(stems, state), total, atol=1e-6)
    state.channels["drums"].solo = True
    np.testing.assert_allclose(render_mix(stems, state), stems["drums"], atol=1e-7)


def test_null_test(stems) -> None:
    mix = stems["vocals"] + stems["drums"] + stems["bass"]
    assert null_test_db(mix, stems) == -math.inf
    assert "exactly" in describe_null_test(-math.inf)
    noisy = mix.copy()
    noisy[:, ::7] += 1e-3
    db = null_test_db(noisy, stems)
    assert -70 < db < -30
    assert null_test_db(mix, {"vocals": stems["vocals"]}) > -10
    assert "-inf dB" in describe_null_test(null_test_db(mix, list(stems.values())))


def test_meter_helpers() -> None:
    assert peak_db(np.zeros((2, 10))) == -math.inf
    assert peak_db(np.array([[0.5, -1.0]])) == pytest.approx(0.0)
    x = np.full((2, 100), 0.5)
    assert rms_db(x) == pytest.approx(20 * math.log10(0.5))


# -- the real-time block mixer (what the audio callback runs) ------------------------------

def _engine(stems: dict[str, np.ndarray], state: MixerState) -> BlockMixer:
    mix = stems["vocals"] + stems["drums"] + stems["bass"]
    engine = BlockMixer(mix, stems)
    engine.set_gains(engine.gains_for(state))
    engine.reset_for_start()
    return engine


def _play(engine: BlockMixer, blocks: int, frames: int = 256) -> np.ndarray:
    out = np.zeros((blocks * frames, 2), dtype=np.float32)
    for b in range(blocks):
        engine.render(out[b * frames:(b + 1) * frames])
    return out


def test_block_mixer_matches_offline_render_after_fade_in(stems) -> None:
    state = MixerState.for_stems(stems)
    state.channels["vocals"].gain_db = -3.0
    state.channels["drums"].pan = -0.7
    engine = _engine(stems, state)
    out = _play(engine, 8)
    ref = render_mix(stems, state, 0, 8 * 256).T
    # first block fades in from silence, then it is exactly the offline render
    ramp = np.arange(1, 257, dtype=np.float32)[:, None] / 256
    np.testing.assert_allclose(out[:256], ref[:256] * ramp, atol=1e-6)
    np.testing.assert_allclose(out[256:], ref[256:], atol=1e-6)
    assert engine.position == 8 * 256


def test_gain_change_applied_within_one_block_with_ramp(stems) -> None:
    state = MixerState.for_stems(stems)
    engine = _engine(stems, state)
    _play(engine, 2)
    state.channels["vocals"].mute = True
    engine.set_gains(engine.gains_for(state))
    pos = engine.position
    block = _play(engine, 1)  # the ramp block: from old to new gains
    after = _play(engine, 1)  # fully applied by the next block
    old = render_mix(stems, MixerState.for_stems(stems), pos, pos + 256).T
    new = render_mix(stems, state, pos, pos + 256).T
    ramp = np.arange(1, 257, dtype=np.float32)[:, None] / 256
    np.testing.assert_allclose(block, old + (new - old) * ramp, atol=1e-6)
    np.testing.assert_allclose(after, render_mix(stems, state, pos + 256, pos + 512).T,
                               atol=1e-6)
    # click-free: no sample-to-sample jump bigger than the signal itself makes
    jumps = np.abs(np.diff(np.concatenate([block, after]), axis=0))
    assert jumps.max() < 4 * np.abs(np.diff(old, axis=0)).max() + 1e-6


def test_ab_switch_plays_the_mixture(stems) -> None:
    state = MixerState.for_stems(stems)
    state.channels["vocals"].mute = True
    state.source = "mix"
    engine = _engine(stems, state)
    _play(engine, 1)
    out = _play(engine, 1)
    mix = stems["vocals"] + stems["drums"] + stems["bass"]
    np.testing.assert_allclose(out, mix[:, 256:512].T, atol=1e-6)


def test_loop_wraps_and_song_end(stems) -> None:
    state = MixerState.for_stems(stems)
    engine = _engine(stems, state)
    engine.set_loop(1000, 1300)
    engine.seek(1000)
    engine.reset_for_start()
    for _ in range(10):
        assert engine.render(np.zeros((256, 2), np.float32))
        assert 1000 <= engine.position < 1300
    engine.clear_loop()
    keep = [engine.render(np.zeros((256, 2), np.float32)) for _ in range(20)]
    assert keep[-1] is False and engine.finished
    # the last partial block is zero-padded
    engine.seek(2900)
    engine.reset_for_start()
    out = np.ones((256, 2), np.float32)
    assert engine.render(out) is False
    assert np.all(out[100:] == 0.0)


def test_stop_fades_out_and_seek_crossfades(stems) -> None:
    state = MixerState.for_stems(stems)
    engine = _engine(stems, state)
    _play(engine, 2)
    engine.seek(2000)
    out = _play(engine, 1)
    old = render_mix(stems, state, 512, 768).T
    new = render_mix(stems, state, 2000, 2256).T
    ramp = np.arange(1, 257, dtype=np.float32)[:, None] / 256
    np.testing.assert_allclose(out, old * (1 - ramp) + new * ramp, atol=1e-6)
    assert engine.position == 2256
    engine.request_stop()
    out = np.zeros((256, 2), np.float32)
    assert engine.render(out) is False
    assert np.abs(out[-1]).max() < 1e-6  # faded to silence


def test_meter_peaks(stems) -> None:
    state = MixerState.for_stems(stems)
    state.channels["drums"].mute = True
    engine = _engine(stems, state)
    _play(engine, 4)
    peaks = engine.take_peaks()
    assert peaks[0] > 0.1 and peaks[1] == 0.0 and peaks[-1] > 0.1
    assert np.all(engine.take_peaks() == 0.0)
