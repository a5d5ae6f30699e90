"""Expressive wind and guitar parts (`expression.py`), their rendering (controls through
FluidSynth) and guitar cabinets (issue 15: wind heard as vocals, weak guitars)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stemwright.models.synthetic import generate as gen
from stemwright.models.synthetic import render
from stemwright.models.synthetic.composer import compose_song
from stemwright.models.synthetic.expression import (
    BREATH,
    EXPRESSION,
    express_wind,
    perform,
    retake,
)
from stemwright.models.synthetic.song import PITCH_WHEEL, Note, Part, Role, Song
from stemwright.models.yaml_safe import safe_yaml_load

SR = 44100


@pytest.fixture(scope="module")
def fluid():
    try:
        tools = render.check_tools()
    except render.ToolError as exc:
        pytest.skip(str(exc))
    renderer = render.FluidRenderer(tools.soundfonts, tools.fluidsynth)
    yield renderer
    renderer.close()


def _font(fluid) -> str:
    return "MuseScore_General_Lite.sf3" if "MuseScore_General_Lite.sf3" in fluid.fonts \
        else sorted(fluid.fonts)[0]


def _song(seconds: float = 4.0) -> Song:
    return Song(seed=1, seconds=seconds, style="pop", bpm=60.0, tonic=0, mode="major",
                swing=0.0, sections=[], parts=[])


def _long_note(seed: int, want: str = "") -> Part:
    """An alto-sax solo note of 3 s expressed with generator `seed` (the first seed from
    it whose expression mentions `want`)."""
    for s in range(seed, seed + 200):
        part = Part("Alto Sax", "wind", Role.MELODY, 65, notes=[Note(0.3, 3.0, 65, 90)])
        express_wind(part, _song(), np.random.default_rng(s), articulate=False)
        if want in part.expression:
            return part
    raise AssertionError(f"no expression with {want}")


def _songs_with(stem: str, n: int = 12) -> list[Song]:
    songs = []
    for seed in range(n):
        song = compose_song(seed, 30.0)
        if any(p.stem == stem for p in song.parts):
            songs.append(song)
    return songs


def test_wind_and_guitar_parts_get_deterministic_expression():
    winds = guitars = 0
    for song in _songs_with("wind") + _songs_with("electric_guitar")[:3]:
        perform(song)
        again = compose_song(song.seed, 30.0)
        perform(again)
        for a, b in zip(song.parts, again.parts, strict=True):
            assert a.controls == b.controls and a.notes == b.notes  # same seed, same song
            if a.stem == "wind" and a.notes:
                winds += 1
                kinds = {c.cc for c in a.controls}
                assert {BREATH, EXPRESSION, PITCH_WHEEL} <= kinds, a.name
                assert all(0 <= c.value <= 127 for c in a.controls if c.cc >= 0)
                assert "CC2 breath" in a.expression
            if a.stem == "electric_guitar" and a.expression:
                guitars += 1
            if a.stem in ("drums", "vocals"):
                assert a.controls == [] and a.expression == ""
        two = retake(song.parts[-1], song, 1)
        assert two.notes != song.parts[-1].notes or not two.notes  # a new take differs
    assert winds >= 2 and guitars >= 1


def test_expression_changes_the_rendered_wind_and_swells_in_the_middle(fluid):
    part = _long_note(0, "swell")
    font = _font(fluid)
    wet = fluid.render(part, _song(), font, 4 * SR)
    dry = fluid.render(part, _song(), font, 4 * SR, expression=False)
    assert not np.allclose(wet, dry, atol=1e-4)
    assert np.array_equal(wet, fluid.render(part, _song(), font, 4 * SR))  # deterministic

    def rms(y: np.ndarray, at: float) -> float:
        a = int(at * SR)
        return float(np.sqrt(np.mean(y[:, a:a + 4410] ** 2)))

    # the note runs 0.3..3.3 s: the swell's top is in its middle, its start quieter
    start, middle = rms(wet, 0.45), rms(wet, 1.8)
    assert 20 * np.log10(middle / start) > 2.0
    assert abs(20 * np.log10(rms(dry, 1.8) / rms(dry, 0.45))) < 2.0


def _pitch_track(y: np.ndarray, t0: float, t1: float, near_hz: float) -> np.ndarray:
    """The strongest frequency within 6 % of `near_hz`, per 93-ms frame (FFT peak with
    parabolic interpolation), in cents from `near_hz`."""
    mono = y.mean(axis=0).astype(np.float64)
    win, hop, nfft = 4096, 512, 65536
    freqs = np.fft.rfftfreq(nfft, 1 / SR)
    band = np.flatnonzero((freqs > near_hz * 0.94) & (freqs < near_hz * 1.06))
    out = []
    for a in range(int(t0 * SR), int(t1 * SR) - win, hop):
        spec = np.abs(np.fft.rfft(mono[a:a + win] * np.hanning(win), nfft))
        k = band[int(np.argmax(spec[band]))]
        y0, y1, y2 = np.log(spec[k - 1:k + 2] + 1e-12)
        k_f = k + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
        out.append(1200 * np.log2(k_f * SR / nfft / near_hz))
    return np.array(out)


def test_pitch_wheel_vibrato_shows_as_frequency_modulation(fluid):
    part = _long_note(0, "vibrato")
    depth = float(part.expression.split("Hz ")[1].split("-")[0])
    assert depth >= 12  # a sax solo note: 12-38 cents
    font = _font(fluid)
    hz = 440.0 * 2 ** ((65 - 69) / 12)
    wet = _pitch_track(fluid.render(part, _song(), font, 4 * SR), 1.2, 3.0, hz)
    dry = _pitch_track(fluid.render(part, _song(), font, 4 * SR, expression=False), 1.2,
                       3.0, hz)
    # the samples' own wobble stays; the vibrato adds a sine of `depth` cents on top
    assert np.std(wet) > 2 * np.std(dry)
    assert abs(np.sqrt(np.std(wet) ** 2 - np.std(dry) ** 2) * np.sqrt(2) - depth) < 0.3 * depth


def test_cabinet_darkens_and_is_skipped_without_irs(monkeypatch, tmp_path):
    noise = np.random.default_rng(0).normal(0, 0.1, (1, SR)).astype(np.float32)

    def high_share(y: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(y.mean(axis=0))) ** 2
        freqs = np.fft.rfftfreq(y.shape[-1], 1 / SR)
        return float(spec[freqs > 6000].sum() / spec.sum())

    names = sorted(render.find_cabinets())
    if names:
        out = render.apply_effects(noise, [{"type": "cabinet", "ir": names[0]}])
        assert out.shape == (2, SR)
        assert high_share(out) < 0.5 * high_share(noise)
    monkeypatch.setenv("STEMWRIGHT_CABINET_IRS", str(tmp_path / "missing"))
    assert render.find_cabinets() == {}
    guitar = Part("Distortion Guitar", "electric_guitar", Role.RHYTHM, 30, tone="distortion")
    fx = gen.effects_for(guitar, np.random.default_rng(1))
    assert not any(f["type"] == "cabinet" for f in fx)
    out = render.apply_effects(noise, [{"type": "cabinet", "ir": "Not Here.wav"}])
    assert np.allclose(out[0], noise[0]) and np.allclose(out[1], noise[0])


def test_a_generated_song_records_expression_and_cabinets(tmp_path):
    try:
        render.check_tools()
    except render.ToolError as exc:
        pytest.skip(str(exc))
    seed = next(s for s in range(50) if any(
        p.stem == "wind" for p in compose_song(gen.song_seed(s, 0), 20.0).parts))
    summary = gen.generate(tmp_path / "out", songs=1, seconds=20, seed=seed, workers=1)
    assert summary["version"] == 3
    tracks = summary["song_list"][0]["tracks"]
    wind = [t for t in tracks if t["stem"] == "wind"]
    assert wind and all("CC2 breath" in t["expression"] for t in wind)
    assert all("cabinet" in t and "expression" in t for t in tracks)
    folder = next((tmp_path / "out").glob("*/0*"))
    meta = safe_yaml_load(folder / gen.META_FILE)
    assert any("CC2 breath" in (s.get("expression") or "") for s in meta["stems"].values())
    json.dumps(meta["record"])  # the record stays JSON-able
    # same seed, same audio (expression, takes and section players included)
    gen.generate(tmp_path / "again", songs=1, seconds=20, seed=seed, workers=1)
    other = next((tmp_path / "again").glob("*/0*"))
    for f in sorted(folder.glob("*.flac")):
        assert (other / f.name).read_bytes() == f.read_bytes(), f.name
