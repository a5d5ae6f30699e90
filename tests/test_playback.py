"""Playback for real through PortAudio on the ALSA null device, and without any device.

The null device swallows audio faster than real time, so nothing here is timed: the tests
check behaviour (position, seek, loop, gains, end of song) and count output underflows
while the CPU is busy.
"""

from __future__ import annotations

import importlib.abc
import math
import os
import sys
import threading
import time
import types

import numpy as np
import pytest

from stemwright.desktop.playback import Player, load_sounddevice, wait_for
from stemwright.models.remix.mixer import MixerState, render_mix

SR = 44100
ASOUNDRC = "pcm.!default { type null }\n"


def _song(seconds: float = 2.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    t = np.arange(int(seconds * SR)) / SR
    vocals = np.stack([0.3 * np.sin(2 * np.pi * 440 * t),
                       0.25 * np.sin(2 * np.pi * 445 * t)]).astype(np.float32)
    bass = (0.3 * np.sin(2 * np.pi * 55 * t)).astype(np.float32)[None, :]  # mono stem
    mix = vocals + bass
    return mix, {"vocals": vocals, "bass": bass}


@pytest.fixture
def null_audio(tmp_path, monkeypatch):
    """sounddevice re-initialised with HOME/.asoundrc making the ALSA default a null sink.

    PortAudio reads the ALSA configuration when it initialises, so PortAudio is shut down
    and started again (sounddevice's `_terminate`/`_initialize`, the documented way to
    rescan devices) after HOME is changed, and once more afterwards with HOME restored.
    """
    sd, reason = load_sounddevice()
    if sd is None:
        pytest.skip(f"PortAudio unavailable: {reason}")
    if not (hasattr(sd, "_terminate") and hasattr(sd, "_initialize")):
        pytest.skip("this sounddevice version cannot re-initialise PortAudio")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(ASOUNDRC)
    monkeypatch.setenv("HOME", str(home))
    sd._terminate()
    sd._initialize()
    try:
        names = [d["name"] for d in sd.query_devices() if d["max_output_channels"] > 0]
        if "default" not in names:
            pytest.skip(f"no ALSA 'default' output after re-initialising (found {names})")
        yield sd
    finally:
        monkeypatch.undo()
        sd._terminate()
        sd._initialize()


@pytest.fixture
def player(qtbot, null_audio):
    p = Player()
    assert p.available, p.unavailable_reason
    index = next(i for i, name in p.output_devices() if name.startswith("default"))
    p.set_output_device(index)
    mix, stems = _song()
    p.set_sources(mix, stems, SR)
    yield p
    p.close()


def test_plays_seeks_loops_and_ends(qtbot, player) -> None:
    states: list[str] = []
    player.stateChanged.connect(states.append)
    positions: list[float] = []
    player.positionChanged.connect(positions.append)
    assert player.duration() == pytest.approx(2.0)

    player.set_loop(0.5, 1.0)
    player.play()
    assert player.state() == "playing"
    # the callback runs and the position moves, wrapping inside the loop
    seen: list[float] = []

    def wrapped() -> bool:
        seen.append(player.position())
        return player.callbacks > 100 and any(b < a for a, b in zip(seen, seen[1:],
                                                                   strict=False))

    qtbot.waitUntil(wrapped, timeout=5000)
    assert all(0.0 <= s <= 1.0 for s in seen)
    assert max(seen) > 0.5
    qtbot.waitUntil(lambda: len(positions) > 2, timeout=2000)  # GUI timer publishes it
    levels = player.levels()
    assert levels["vocals"] > -20 and levels["bass"] > -20 and levels["master"] > -20

    player.pause()
    assert player.state() == "paused"
    here = player.position()
    time.sleep(0.05)
    assert player.position() == here
    player.seek(1.5)
    assert player.position() == pytest.approx(1.5)
    player.clear_loop()
    with qtbot.waitSignal(player.stateChanged, timeout=5000,
                          check_params_cb=lambda s: s == "stopped"):
        player.play()  # 0.5 s left: the null device plays it out at once
    assert states[:3] == ["playing", "paused", "playing"] and states[-1] == "stopped"
    assert player.position() == 0.0
    assert player.underflows == 0


def test_seek_while_playing_and_device_switch(qtbot, player) -> None:
    player.set_loop(0.0, 2.0)
    player.play()
    qtbot.waitUntil(lambda: player.callbacks > 20, timeout=3000)
    player.seek(1.0)
    qtbot.waitUntil(lambda: player.position() != 1.0, timeout=3000)
    player.set_output_device(None)  # back to the system default, keeps playing
    assert player.state() == "playing"
    n = player.callbacks
    qtbot.waitUntil(lambda: player.callbacks > n + 20, timeout=3000)
    player.stop()
    assert player.state() == "stopped" and player.position() == 0.0


def test_device_refusing_the_rate_gets_resampled_sources(qtbot, player, monkeypatch) -> None:
    """The device takes only 48 kHz: the sources are resampled once, on a background
    thread (never in the audio callback), with a notice; position, loop and mixer carry
    over; new stems for the same song are resampled again; another device re-checks."""
    from stemwright.desktop import playback

    monkeypatch.setattr(player, "rate_supported", lambda rate: rate == 48000)
    monkeypatch.setattr(player, "device_default_rate", lambda: 48000)
    calls: list[tuple[str, int, int]] = []
    real = playback.resample

    def counting(x, sr_in, sr_out, quality="VHQ"):
        calls.append((threading.current_thread().name, sr_in, sr_out))
        return real(x, sr_in, sr_out, quality)

    monkeypatch.setattr(playback, "resample", counting)
    notices: list[str] = []
    player.notice.connect(notices.append)
    errors: list[str] = []
    player.errorOccurred.connect(errors.append)
    player.set_channel("vocals", mute=True)
    player.set_loop(0.5, 1.5)
    player.seek(1.0)
    player.play()
    assert player.state() == "playing"
    assert notices and "44100" in notices[0] and "48000" in notices[0]
    qtbot.waitUntil(lambda: player.samplerate == 48000 and player.callbacks > 20,
                    timeout=5000)
    assert len(calls) == 3  # vocals, bass and the mixture, once each
    assert all(name == "stemwright-resample" and (a, b) == (SR, 48000)
               for name, a, b in calls)
    assert player._engine.length == 2 * 48000
    assert player.duration() == pytest.approx(2.0)
    assert player.loop() == pytest.approx((0.5, 1.5), abs=1e-4)
    assert 0.5 <= player.position() <= 1.5
    g = player._engine._target
    assert g[0].tolist() == [0.0, 0.0] and g[1].tolist() == [1.0, 1.0]  # vocals muted
    player.seek(0.75)
    assert player.position() == pytest.approx(0.75, abs=0.03)
    assert errors == []
    # the separation delivers stems for the same song: resampled again, playback goes on
    mix, stems = _song()
    player.set_sources(mix, stems, SR)
    qtbot.waitUntil(lambda: player.samplerate == 48000, timeout=5000)
    assert len(calls) == 6 and player.state() == "playing"
    n = player.callbacks
    qtbot.waitUntil(lambda: player.callbacks > n + 20, timeout=3000)
    player.stop()
    assert player.position() == pytest.approx(0.5, abs=1e-3)  # the loop start
    # a pause while resampling: nothing plays until play() again
    player.set_sources(*_song(1.0), SR)
    player.play()
    player.pause()
    qtbot.waitUntil(lambda: player.samplerate == 48000, timeout=5000)
    assert player.state() == "paused" and player._stream is None


class _Status:
    output_underflow = False


def test_callback_applies_mixer_changes_within_one_block(qtbot) -> None:
    """The real callback function on plain arrays (no device needed)."""
    p = Player()
    mix, stems = _song(0.5)
    p.set_sources(mix, stems, SR)
    p._engine.reset_for_start()
    frames = 512
    out = np.zeros((frames, 2), np.float32)
    for _ in range(2):
        p._callback(out, frames, None, _Status())
    p.set_channel("vocals", mute=True, gain_db=-6.0)
    p._callback(out, frames, None, _Status())  # the ramp block
    p._callback(out, frames, None, _Status())  # fully applied
    muted = MixerState.for_stems(stems)
    muted.channels["vocals"].mute = True
    np.testing.assert_allclose(out, render_mix(stems, muted, 3 * frames, 4 * frames).T,
                               atol=1e-6)
    p.set_ab("mix")
    p._callback(out, frames, None, _Status())
    p._callback(out, frames, None, _Status())
    np.testing.assert_allclose(out, mix[:, 5 * frames:6 * frames].T, atol=1e-6)
    p.set_ab("remix")
    p.set_master_db(-6.0)
    p.set_channel("vocals", mute=False, gain_db=0.0, pan=1.0)
    p._callback(out, frames, None, _Status())
    p._callback(out, frames, None, _Status())
    np.testing.assert_allclose(out, render_mix(stems, p.mixer, 7 * frames, 8 * frames).T,
                               atol=1e-6)
    with pytest.raises(AttributeError):
        p.set_channel("vocals", volume=3)


def _busy_python(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():  # holds the GIL in 5 ms slices: the worst case for a callback
        for i in range(10000):
            x += i * i


def _busy_numeric(stop: threading.Event) -> None:
    import torch

    a = torch.randn(384, 384)
    while not stop.is_set():  # like a separation: big kernels, GIL released inside
        a = torch.tanh(a @ a.T / 384.0)


def test_underflows_while_cpu_is_busy(qtbot, player) -> None:
    """Counts PortAudio output underflows while two threads keep both CPU cores busy."""
    player.set_loop(0.0, 2.0)
    stop = threading.Event()
    workers = [threading.Thread(target=f, args=(stop,), daemon=True)
               for f in (_busy_python, _busy_numeric)]
    for w in workers:
        w.start()
    try:
        player.play()
        start = player.callbacks
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            qtbot.wait(50)
        blocks = player.callbacks - start
        assert player.state() == "playing"
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=5)
        player.stop()
    print(f"\nunderflows under CPU load: {player.underflows} in {blocks} blocks "
          f"of {player.blocksize} frames (ALSA null device)")
    assert blocks > 10
    assert player.underflows <= max(1, blocks // 100)


def test_underflows_during_a_classic_separation(qtbot, player) -> None:
    """A real `classic` separation of 3 s of audio in a thread of this process (the
    in-process fallback: the harshest case, the model competes for the interpreter lock)
    while a generated song plays on the ALSA null device. Prints the underflow count."""
    from stemwright.models.classic.classic import ClassicSeparator

    sep = ClassicSeparator(segment=1.0)  # 1 s chunks: four chunks, as a real song does
    song = np.random.default_rng(0).standard_normal((2, 3 * SR)).astype(np.float32) * 0.1
    sep.separate(song[:, :SR // 2], SR)  # imports and JIT warm-up, as the app's warm-up
    player.set_loop(0.0, 2.0)
    player.play()
    start, underflows = player.callbacks, player.underflows
    done = threading.Event()
    t0 = time.monotonic()
    worker = threading.Thread(target=lambda: (sep.separate(song, SR), done.set()),
                              daemon=True)
    worker.start()
    try:
        qtbot.waitUntil(done.is_set, timeout=30000)
    finally:
        worker.join(timeout=30)
        seconds = time.monotonic() - t0
        blocks = player.callbacks - start
        assert player.state() == "playing"
        player.stop()
    count = player.underflows - underflows
    print(f"\nunderflows during a classic separation of 3 s ({seconds:.1f} s): {count} in "
          f"{blocks} blocks of {player.blocksize} frames (ALSA null device)")
    assert blocks > 10
    assert count <= max(2, blocks // 50)


@pytest.mark.skipif(not os.environ.get("STEMWRIGHT_SLOW_TESTS"),
                    reason="slow (~30 s): set STEMWRIGHT_SLOW_TESTS=1 to run")
def test_underflows_during_a_real_separation(qtbot, player) -> None:
    """Random-weight htdemucs separating 4 s of audio on the CPU while playing."""
    from stemwright.models.separation.demucs_backend import random_demucs

    sep = random_demucs("htdemucs", device="cpu")
    song = np.random.default_rng(0).standard_normal((2, 4 * SR)).astype(np.float32) * 0.1
    player.set_loop(0.0, 2.0)
    player.play()
    start = player.callbacks
    done = threading.Event()
    worker = threading.Thread(target=lambda: (sep.separate(song, SR), done.set()))
    worker.start()
    qtbot.waitUntil(done.is_set, timeout=120000)
    worker.join()
    blocks = player.callbacks - start
    player.stop()
    print(f"\nunderflows during a separation: {player.underflows} in {blocks} blocks")
    assert player.underflows <= max(1, blocks // 100)


# -- without audio -----------------------------------------------------------------------

class _RaisingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):  # noqa: D102
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def _exercise_silent_player(qtbot, p: Player) -> None:
    errors: list[str] = []
    p.errorOccurred.connect(errors.append)
    assert p.available is False and p.unavailable_reason
    assert p.output_devices() == []
    mix, stems = _song(0.2)
    p.set_sources(mix, stems, SR)
    p.set_channel("vocals", solo=True)
    p.set_master_db(-3.0)
    p.set_ab("mix")
    p.play()
    assert p.state() == "stopped"
    assert errors and "unavailable" in errors[0].lower()
    p.seek(0.1)
    assert p.position() == pytest.approx(0.1)
    p.set_loop(0.0, 0.1)
    p.pause()
    p.stop()
    assert p.levels()["master"] == -math.inf
    p.close()


def test_no_portaudio_gives_a_reason(qtbot, monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_RaisingFinder(), *sys.meta_path])
    p = Player()
    assert "PortAudio" in p.unavailable_reason and "libportaudio2" in p.unavailable_reason
    _exercise_silent_player(qtbot, p)


def test_no_sounddevice_package(qtbot, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    p = Player()
    assert "sounddevice" in p.unavailable_reason
    _exercise_silent_player(qtbot, p)


def test_no_output_device(qtbot, monkeypatch) -> None:
    fake = types.ModuleType("sounddevice")
    fake.query_devices = lambda *a, **k: []
    fake.query_hostapis = lambda *a, **k: []
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    p = Player()
    assert "no audio output device" in p.unavailable_reason
    errors: list[str] = []
    p.errorOccurred.connect(errors.append)
    p.set_output_device(3)
    assert errors
    _exercise_silent_player(qtbot, p)


def test_wait_for_helper() -> None:
    assert wait_for(lambda: True)
    assert not wait_for(lambda: False, timeout=0.01)


def test_position_is_what_is_heard(qtbot) -> None:
    """While playing, the read-ahead of one output latency is taken off the position."""
    p = Player()
    mix, stems = _song(1.0)
    p.set_sources(mix, stems, SR)
    engine = p._engine
    p._stream = types.SimpleNamespace(latency=0.01, active=True)  # 441 frames
    p._state = "playing"
    engine.position = 10000
    assert p.position() == pytest.approx((10000 - 441) / SR)
    p.set_loop(0.5, 0.6)  # 22050 .. 26460
    engine.position, engine.wrapped = 22050 + 100, True  # just wrapped
    assert p.position() == pytest.approx((26460 - 341) / SR)
    engine.wrapped = False  # entered the loop from before it
    assert p.position() == pytest.approx((22050 + 100 - 441) / SR)
    p._state, p._stream = "paused", None
    assert p.position() == pytest.approx((22050 + 100) / SR)


def test_stems_arriving_keep_playback_going(qtbot, player) -> None:
    mix, stems = _song()
    player.set_sources(mix, None, SR)  # only the mixture, as while separating
    player.set_loop(1.0, 1.5)
    player.play()
    qtbot.waitUntil(lambda: player.callbacks > 100, timeout=3000)
    assert player._engine.wrapped
    states: list[str] = []
    player.stateChanged.connect(states.append)
    player.set_sources(mix, stems, SR)  # the separation finished
    assert player.state() == "playing" and states == []
    assert player.loop() == pytest.approx((1.0, 1.5))
    assert SR <= player._engine.position <= 1.5 * SR
    assert player.stem_ids == ("vocals", "bass")
    n = player.callbacks
    qtbot.waitUntil(lambda: player.callbacks > n + 20, timeout=3000)
    short, _ = _song(0.5)
    player.set_sources(short, None, SR)  # another song: stop at the start
    assert player.state() == "stopped" and player.position() == 0.0
