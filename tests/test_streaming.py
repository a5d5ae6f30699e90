"""Streamed separation (`separation.streaming`, `remix.stream_export`, the CLI's streamed
path): the same stems as the whole-song path, files all or nothing, and memory that does
not grow with the song (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stemwright.models.cli import batch
from stemwright.models.cli.commands import main
from stemwright.models.errors import Cancelled
from stemwright.models.remix.stream_export import StreamedExport
from stemwright.models.separation.demucs_backend import DemucsSeparator
from stemwright.models.separation.streaming import separate_stream, streams
from stemwright.models.stems import FOUR_STEMS
from stemwright.models.zoo.catalog import load_separator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _streamed(sep, mix: np.ndarray, sr: int, block: int = 30011, **kwargs):
    parts = []

    def source():
        return (mix[:, i:i + block] for i in range(0, mix.shape[-1], block))
    summary = separate_stream(sep, source, sr, parts.append, frames_hint=mix.shape[-1],
                              **kwargs)
    starts = [p.start for p in parts]
    assert starts[0] == 0 and all(a.end == b.start for a, b in zip(parts, parts[1:], strict=False))
    assert parts[-1].end == mix.shape[-1] == summary.length
    return {s: np.concatenate([p.stems[s] for p in parts], -1) for s in parts[0].stems}, \
        summary, len(parts)


@pytest.mark.parametrize("sr, channels", [(44100, 2), (48000, 1), (22050, 6)])
def test_streamed_stems_equal_the_whole_song(sr, channels):
    """Many chunks, blocks that do not line up with them, resampling in and out, mono and
    a 5.1 downmix: the streamed stems are the in-memory ones, sample for sample."""
    sep = load_separator("classic", device="cpu", segment=2.0)
    assert streams(sep)
    mix = (np.random.default_rng(sr).standard_normal((channels, sr * 9 + 123)) * 0.1
           ).astype(np.float32)
    whole = sep.separate(mix, sr)
    got, summary, regions = _streamed(sep, mix, sr)
    assert regions >= 5 and set(got) == set(whole.stems)
    for stem, signal in whole.stems.items():
        np.testing.assert_allclose(got[stem], signal, rtol=0, atol=1e-6)
    assert summary.residual_db == pytest.approx(whole.residual_db, abs=1e-6)
    assert summary.residual_in_other and summary.unavailable == whole.unavailable


def test_bag_of_standardising_models_streams_like_the_whole_song():
    """Demucs: input standardised by the whole song's mean and std (a first pass), a bag
    of two networks with per-source weights, batches of chunks."""
    from demucs.demucs import Demucs

    torch.manual_seed(0)
    nets = [Demucs(sources=list(FOUR_STEMS.native), audio_channels=2, channels=4, depth=2,
                   samplerate=44100, segment=2, lstm_layers=0) for _ in range(2)]
    sep = DemucsSeparator(nets, FOUR_STEMS, "bag", weights=[(1, .5, 0, 1), (0, .5, 1, 1)],
                          device="cpu", segment=1.0, batch_size=2)
    assert streams(sep) and sep.standardise_ddof == 1
    mix = (np.random.default_rng(1).standard_normal((2, 44100 * 3 + 17)) * 0.1 + 0.01
           ).astype(np.float32)
    whole = sep.separate(mix, 44100)
    got, _, _ = _streamed(sep, mix, 44100, block=20000)
    for stem, signal in whole.stems.items():
        np.testing.assert_allclose(got[stem], signal, rtol=0, atol=1e-6)


def test_models_with_their_own_loop_do_not_claim_to_stream():
    sep = load_separator("offline", device="cpu")
    assert not streams(sep)
    with pytest.raises(ValueError, match="cannot separate a stream"):
        separate_stream(sep, lambda: iter(()), 44100, lambda part: None)


def _song(path: Path, seconds: float = 6.0, sr: int = 44100) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    x = np.stack([0.3 * np.sin(2 * np.pi * 110 * t), 0.2 * np.sin(2 * np.pi * 440 * t)])
    x += 0.02 * np.random.default_rng(0).standard_normal(x.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.T.astype(np.float32), sr, subtype="PCM_16")
    return path


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_streamed_files_equal_the_in_memory_files(tmp_path, capsys, monkeypatch):
    song = _song(tmp_path / "Tune.wav")
    for mode, out in (("0", "a"), ("1", "b")):
        monkeypatch.setenv("STEMWRIGHT_IN_MEMORY", mode)
        code, stdout, err = _run(capsys, "separate", str(song), "-m", "classic", "-o",
                                 str(tmp_path / out), "--bit-depth", "32", "--segment",
                                 "2", "--preset", "karaoke")
        assert code == 0, err
    a, b = tmp_path / "a" / "Tune", tmp_path / "b" / "Tune"
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) == [
        ".stemwright.json", "Tune - Vocals.wav", "Tune - minus Vocals.wav"]
    for name in names[1:]:
        x, sr_a = sf.read(a / name, dtype="float32")
        y, sr_b = sf.read(b / name, dtype="float32")
        assert sr_a == sr_b == 44100 and x.shape == y.shape == (6 * 44100, 2)
        np.testing.assert_array_equal(x, y)
        assert sf.info(a / name).subtype == "FLOAT"
    assert (a / names[0]).read_text() == (b / names[0]).read_text()


def test_a_failure_midway_leaves_no_file_and_the_old_ones_whole(tmp_path, capsys,
                                                                monkeypatch):
    song = _song(tmp_path / "Tune.wav")
    out = tmp_path / "out"
    code, _, err = _run(capsys, "separate", str(song), "-m", "classic", "-o", str(out),
                        "--stems", "vocals", "drums")
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in (out / "Tune").iterdir()}
    calls = []
    real = StreamedExport.__call__

    def failing(self, part):
        calls.append(part.start)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(self, part)

    monkeypatch.setattr(StreamedExport, "__call__", failing)
    code, _, err = _run(capsys, "separate", str(song), "-m", "classic", "-o", str(out),
                        "--stems", "vocals", "drums", "--force", "--segment", "2")
    assert code == 1 and "No space left" in err and "Traceback" not in err
    assert len(calls) == 2
    after = {p.name: p.read_bytes() for p in (out / "Tune").iterdir()}
    # the old files are untouched and no temporary is left; only the record is gone
    assert after == {k: v for k, v in before.items() if k != batch.RECORD_NAME}


def test_cancel_midway_writes_nothing(tmp_path):
    song = batch.Song(_song(tmp_path / "Tune.wav"), "Song", tmp_path / "out" / "Tune")
    settings = batch.Settings("classic", ("vocals",), (), None, "wav", 24, 2.0, None, False,
                              True, batch.DEFAULT_PATTERN, False)
    sep = load_separator("classic", device="cpu", segment=2.0)
    assert batch.streamed(sep, settings)
    seen = []

    def cancel() -> bool:
        seen.append(1)
        return len(seen) > 3
    with pytest.raises(Cancelled):
        batch.separate_song(sep, song, settings, cancel=cancel)
    assert not song.folder.exists() or list(song.folder.iterdir()) == []


def _peak_rss_mb(song: Path, out: Path) -> float:
    code = ("import resource, sys\n"
            "from stemwright.models.cli.commands import main\n"
            "rc = main(sys.argv[1:])\n"
            "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
            "sys.exit(rc)\n")
    env = {**os.environ, "STEMWRIGHT_IN_MEMORY": "0"}
    run = subprocess.run([sys.executable, "-c", code, "separate", str(song), "--stems",
                          "vocals", "-o", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    return float(run.stdout.split("PEAK")[-1])


def test_memory_does_not_grow_with_the_song(tmp_path):
    """The default model on 1 and 5 minutes (mono 22.05 kHz files, so the model works on
    as many samples as for CD audio): the whole-song path needs about 700 MB more for the
    longer one; the stream the same within noise (the model's working memory per chunk
    comes and goes)."""
    peaks = []
    for minutes in (1, 5):
        n = minutes * 60 * 22050
        t = np.arange(n) / 22050
        x = 0.3 * np.sin(2 * np.pi * 110 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
        path = tmp_path / f"long{minutes}.wav"
        sf.write(path, x.astype(np.float32), 22050, subtype="PCM_16")
        peaks.append(_peak_rss_mb(path, tmp_path / "out"))
        path.unlink()
    assert peaks[1] - peaks[0] < 300, peaks
