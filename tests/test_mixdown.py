"""The four mixing procedures, absent stems and a song's own mixture file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.multitrack.folders import load_song, scan_folder
from stemwright.models.multitrack.mixdown import mix_stems, mixdown_song

SR = 8000


def _tracks(rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """Loud tracks: drums sum past full scale on their own, the mixture further."""
    def noise(level: float) -> np.ndarray:
        return (level * rng.standard_normal((2, 4000))).astype(np.float32)
    return {"vocals": [noise(0.15)], "drums": [noise(0.5), noise(0.5), noise(0.4)],
            "bass": [noise(0.15)], "wind": [noise(0.1), noise(0.1)]}


def test_adaptive_rescaling_keeps_the_sum_and_never_clips(rng) -> None:
    tracks = _tracks(rng)
    out = mix_stems(tracks, SR, "adaptive")
    assert list(out.stems) == ["vocals", "drums", "bass", "wind"]
    assert out.absent == ("electric_guitar", "other")
    total = out.stems["vocals"] + out.stems["drums"] + out.stems["bass"] + out.stems["wind"]
    assert np.array_equal(out.mixture, total)  # exactly, in float32
    assert np.max(np.abs(out.mixture)) <= 1.0
    assert all(np.max(np.abs(s)) <= 1.0 for s in out.stems.values())
    assert out.gain < 1.0
    assert any("drums" in n and "scaled down" in n for n in out.notes)
    # the stems keep their balance: only the clipping category was rescaled on its own
    ratio = np.sum(out.stems["vocals"] ** 2) / np.sum(tracks["vocals"][0] ** 2)
    assert ratio == pytest.approx(out.gain ** 2, rel=1e-5)


def test_quiet_tracks_are_untouched(rng) -> None:
    tracks = {"vocals": [0.01 * rng.standard_normal((1, 100)).astype(np.float32)],
              "other": [0.01 * rng.standard_normal((1, 100)).astype(np.float32)]}
    out = mix_stems(tracks, SR)
    assert out.gain == 1.0 and not out.notes
    assert np.array_equal(out.stems["vocals"], tracks["vocals"][0])


def test_other_procedures_for_comparison(rng) -> None:
    tracks = _tracks(rng)
    summing = mix_stems(tracks, SR, "summing")
    total = sum(summing.stems.values())
    assert np.allclose(summing.mixture, total, atol=1e-6)
    assert np.max(np.abs(summing.mixture)) > 1.0 and any("clips" in n for n in summing.notes)
    averaging = mix_stems(tracks, SR, "averaging")
    assert np.allclose(averaging.stems["drums"], np.mean(tracks["drums"], axis=0), atol=1e-6)
    assert np.allclose(averaging.mixture, sum(averaging.stems.values()) / 4, atol=1e-6)
    scaling = mix_stems(tracks, SR, "scaling")
    assert np.max(np.abs(scaling.mixture)) == pytest.approx(1.0)
    assert not np.allclose(scaling.mixture, sum(scaling.stems.values()))
    with pytest.raises(ValueError, match="unknown mixing procedure"):
        mix_stems(tracks, SR, "loudest")


def test_silent_category_is_absent(rng) -> None:
    tracks = {"vocals": [np.zeros((2, 100), np.float32)],
              "drums": [0.1 * rng.standard_normal((2, 100)).astype(np.float32)]}
    out = mix_stems(tracks, SR)
    assert list(out.stems) == ["drums"] and "vocals" in out.absent
    assert any("silent" in n for n in out.notes)


def _song(folder: Path, mixture: np.ndarray | None, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True)
    parts = {n: (0.2 * rng.standard_normal((3000, 2))).astype(np.float32)
             for n in ("vocals", "drums", "bass", "other")}
    for n, x in parts.items():
        sf.write(folder / f"{n}.wav", x, SR, subtype="FLOAT")
    mix = sum(parts.values()) if mixture is None else mixture
    sf.write(folder / "mixture.wav", mix, SR, subtype="FLOAT")


def test_mixture_file_used_when_it_matches(tmp_path: Path, rng) -> None:
    _song(tmp_path / "a", None, rng)
    (song,) = scan_folder(tmp_path).songs
    out = mixdown_song(load_song(song))
    assert out.mixture_source == "file" and out.residual_db < -100
    assert any("is the mixture" in n for n in out.notes)


def test_mixture_file_that_does_not_match_is_reported(tmp_path: Path, rng) -> None:
    _song(tmp_path / "b", (0.1 * rng.standard_normal((3000, 2))).astype(np.float32), rng)
    (song,) = scan_folder(tmp_path).songs
    out = mixdown_song(load_song(song))
    assert out.mixture_source == "sum" and out.residual_db > -30
    assert np.array_equal(out.mixture, sum(out.stems.values()))
    assert any("does not match" in n for n in out.notes)
