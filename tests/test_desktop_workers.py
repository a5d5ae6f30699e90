"""Background tasks: loading, separating (in a thread and in the engine process),
downloading and spectrograms; progress, cancellation and errors arrive by signal."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import soundfile as sf  # noqa: E402

from stemwright.desktop.dialogs.messages import next_step  # noqa: E402
from stemwright.desktop.engine.workers import (  # noqa: E402
    DownloadTask,
    LoadTask,
    SeparateTask,
    SeparationOptions,
    SpectrogramTask,
    Task,
    engine,
)
from stemwright.models.errors import AudioError, Cancelled, ModelError  # noqa: E402
from stemwright.models.zoo import catalog as zoo

SR = 44100
TIMEOUT = 60_000


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module", autouse=True)
def _stop_engine():
    yield
    engine().shutdown()


def song(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A small stereo 'song': a melody, a bass line and noise hits."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    melody = 0.2 * np.sin(2 * np.pi * 440 * (1 + 0.5 * (t % 1 > 0.5)) * t)
    bass = 0.3 * np.sin(2 * np.pi * 55 * t)
    hits = 0.4 * rng.standard_normal(len(t)) * np.exp(-(t % 0.25) * 40)
    return np.stack([melody + bass + hits, 0.8 * melody + bass + hits]).astype(np.float32)


def run_task(qtbot, task: Task, signal: str = "succeeded", timeout: int = TIMEOUT):
    """Start `task`, wait for its outcome signal, return (args, progress reports)."""
    reports: list[tuple] = []
    task.progressed.connect(lambda f, eta, msg: reports.append((f, eta, msg)))
    with qtbot.waitSignal(getattr(task, signal), timeout=timeout) as blocker:
        task.start()
    assert task.wait(10_000)
    return blocker.args, reports


def test_load_task_delivers_song_and_envelope(qtbot, tmp_path):
    path = tmp_path / "ballad" / "mix.wav"  # a generic file name: named after its folder
    path.parent.mkdir()
    sf.write(path, song(1.5).T, SR)
    (loaded,), reports = run_task(qtbot, LoadTask(path))
    assert loaded.data.shape == (2, int(1.5 * SR)) and loaded.data.dtype == np.float32
    assert loaded.samplerate == SR and loaded.duration == pytest.approx(1.5)
    assert loaded.envelope.length == loaded.data.shape[1]
    assert loaded.name == "ballad"
    assert reports and reports[-1][0] == 1.0


def test_load_task_reports_unreadable_files(qtbot, tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    (exc,), _ = run_task(qtbot, LoadTask(path), "failed")
    assert isinstance(exc, AudioError) and "broken.wav" in str(exc)
    (exc,), _ = run_task(qtbot, LoadTask(tmp_path / "missing.flac"), "failed")
    assert isinstance(exc, AudioError)


def test_cancel_before_start_and_generic_errors(qtbot):
    class Boom(Task):
        def work(self):
            raise ValueError("boom")

    task = Boom()
    (exc,), _ = run_task(qtbot, task, "failed")
    assert isinstance(exc, ValueError) and task.outcome == "failed"
    task = Boom()
    task.cancel()
    run_task(qtbot, task, "cancelled")
    assert task.outcome == "cancelled"


def test_progress_is_throttled_but_ends_at_one(qtbot):
    class Chatty(Task):
        def work(self):
            for i in range(20000):
                self.report(i / 20000)
            self.report(1.0)
            return 42

    (value,), reports = run_task(qtbot, Chatty())
    assert value == 42
    assert 1 <= len(reports) < 200
    assert reports[-1][0] == 1.0


def test_download_task_progress_eta_and_cancel(qtbot, monkeypatch, tmp_path):
    def fake_download(name, progress=None, cancel=None):
        total = 10_000_000
        for done in range(0, total + 1, 1_000_000):
            if cancel is not None and cancel():
                raise Cancelled("download cancelled")
            progress(done, total)
        return tmp_path / name

    monkeypatch.setattr(zoo, "download_model", fake_download)
    (folder,), reports = run_task(qtbot, DownloadTask("htdemucs"))
    assert folder.name == "htdemucs"
    assert any("MB" in msg for _, _, msg in reports)
    task = DownloadTask("htdemucs")
    task.cancel()
    run_task(qtbot, task, "cancelled")


def test_spectrogram_task(qtbot):
    (spec,), _ = run_task(qtbot, SpectrogramTask(song(1.0), SR, "vocals"))
    assert spec.key == "vocals" and spec.db.shape[1] == 1025
    assert spec.images  # both renderings are ready before reaching the GUI


def test_separation_in_a_thread_and_in_the_engine_process(qtbot):
    """Same stems either way; engine errors keep their type; Cancel kills the engine at
    once; an engine that dies is reported as an error, never a dead app."""
    mix = song(2.0)
    (ref,), reports = run_task(qtbot, SeparateTask(mix, SR, SeparationOptions("classic"),
                                                   in_process=True))
    result = ref.result
    assert set(result.stems) == {"vocals", "drums", "bass", "other"}
    assert set(result.unavailable) == {"electric_guitar", "wind"}
    assert set(ref.envelopes) == set(result.stems)
    assert ref.null_db is not None and ref.null_db < -60  # the stems add back up
    assert reports[-1][0] == 1.0 and any(eta is not None for _, eta, _ in reports)

    (exc,), _ = run_task(qtbot, SeparateTask(mix, SR, SeparationOptions("no-such-model")),
                         "failed")
    assert isinstance(exc, ModelError) and "no-such-model" in str(exc)
    (out,), reports = run_task(qtbot, SeparateTask(mix, SR, SeparationOptions("classic")))
    assert engine().running()
    for stem_id, signal in result.stems.items():
        np.testing.assert_allclose(out.result.stems[stem_id], signal, atol=1e-5)
    assert out.result.unavailable == result.unavailable
    assert any(0 < f < 1 for f, _, _ in reports)

    long_mix = song(20.0, seed=4)
    task = SeparateTask(long_mix, SR, SeparationOptions("classic", segment=2.0))
    task.progressed.connect(lambda f, *_: task.cancel())
    run_task(qtbot, task, "cancelled")
    assert not engine().running()

    task = SeparateTask(long_mix, SR, SeparationOptions("classic", segment=2.0))
    task.progressed.connect(lambda f, *_: engine().abort())  # as if the engine crashed
    (exc,), _ = run_task(qtbot, task, "failed")
    assert isinstance(exc, ModelError) and "stopped unexpectedly" in str(exc)
    assert "segment" in next_step(exc)  # the dialog suggests what to do


@pytest.mark.parametrize("in_process", [True, False], ids=["thread", "engine-process"])
def test_partial_stems_arrive_as_chunks_finish(qtbot, in_process):
    """1 s chunks over 3 s: regions fill full-length buffers (with current envelopes)
    before the result; the final stems are the same samples (from the engine process they
    are read straight into those buffers)."""
    mix = song(3.0, seed=2)
    task = SeparateTask(mix, SR, SeparationOptions("classic", segment=1.0),
                        in_process=in_process)
    seen: list[tuple[int, bool]] = []
    task.partialReady.connect(lambda p: seen.append((p.end, task.isRunning())))
    (out,), _ = run_task(qtbot, task)
    p = task.partial
    assert p is not None and p.complete and task.partial_regions == 4
    assert len(seen) >= 2 and seen[0][0] < mix.shape[-1] and seen[0][1]
    assert [e for e, _ in seen] == sorted(e for e, _ in seen)
    assert p.unavailable == ("electric_guitar", "wind") and p.length == mix.shape[-1]
    for stem_id, signal in out.result.stems.items():
        np.testing.assert_array_equal(p.stems[stem_id], signal)
        env = p.envelopes[stem_id]
        ref = out.envelopes[stem_id]
        np.testing.assert_array_equal(env.levels[-1][1], ref.levels[-1][1])
        if not in_process:
            assert signal is p.stems[stem_id]  # no second copy of the song's stems
