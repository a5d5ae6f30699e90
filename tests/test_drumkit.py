"""Recorded drum kits for `stemwright synth`: a tiny Hydrogen kit made in the test (parsing
with and without the XML namespace, velocity layers, round-robin, hi-hat choke, GM key
mapping, determinism, resampling, refusal of bad files), the kit choice, and the installed
Hydrogen / AVL kits when present."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.synthetic import drumkit, render
from stemwright.models.synthetic.song import Note, Part, Role, Song

SR = 44100
NS = 'xmlns="http://www.hydrogen-music.org/drumkit"'

# value of each sample (a constant, so the layer played can be read from the output)
KICK_SOFT, KICK_HARD_A, KICK_HARD_B = 0.1, 0.5, 0.6
HAT_SOFT, HAT_HARD = 0.2, 0.3
OPEN_SOFT, OPEN_HARD = 0.25, 0.4


def _song(bpm: float = 120.0) -> Song:
    return Song(seed=1, seconds=2.0, style="rock", bpm=bpm, tonic=0, mode="major", swing=0.0,
                sections=[], parts=[])


def _part(*notes: tuple[float, int, int]) -> Part:
    return Part("Drum Kit", "drums", Role.KIT, 0, bank=128, tone="standard",
                notes=[Note(start, 0.25, key, vel) for start, key, vel in notes])


def _wav(path: Path, value: float, seconds: float, sr: int = SR, channels: int = 1) -> str:
    data = np.full((int(seconds * sr), channels), value, dtype=np.float32)
    sf.write(path, data, sr, subtype="FLOAT")
    return path.name


def _layer(name: str, lo: float, hi: float) -> str:
    return (f"<layer><filename>{name}</filename><min>{lo}</min><max>{hi}</max>"
            "<gain>1</gain><pitch>0</pitch></layer>")


def make_kit(folder: Path, namespaced: bool = True, mute_group: int = 1) -> Path:
    """Kick (soft layer + two hard layers sharing a range), closed and open hi-hat (a mute
    group); the closed hat's soft sample is at 22.05 kHz, the open hat is stereo."""
    folder.mkdir(parents=True, exist_ok=True)
    k0 = _wav(folder / "k0.wav", KICK_SOFT, 0.05)
    k1 = _wav(folder / "k1.wav", KICK_HARD_A, 0.05)
    k2 = _wav(folder / "k2.wav", KICK_HARD_B, 0.05)
    h0 = _wav(folder / "h0.wav", HAT_SOFT, 0.02, sr=22050)
    h1 = _wav(folder / "h1.wav", HAT_HARD, 0.02)
    o0 = _wav(folder / "o0.wav", OPEN_SOFT, 0.5, channels=2)
    o1 = _wav(folder / "o1.wav", OPEN_HARD, 0.5, channels=2)
    pan = "<pan>0</pan>" if namespaced else "<pan_L>1</pan_L><pan_R>1</pan_R>"
    comp_open, comp_close = (("<instrumentComponent><component_id>0</component_id>"
                              "<gain>1</gain>", "</instrumentComponent>") if namespaced
                             else ("", ""))

    def inst(i: int, name: str, group: int, layers: str) -> str:
        return (f"<instrument><id>{i}</id><name>{name}</name><volume>1</volume>{pan}"
                f"<gain>1</gain><muteGroup>{group}</muteGroup>"
                f"{comp_open}{layers}{comp_close}</instrument>")

    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<drumkit_info {NS if namespaced else ""}>'
           "<name>Tiny Kit</name><author>Test Author</author><license>CC0</license>"
           "<instrumentList>"
           + inst(0, "Kick", -1, _layer(k0, 0, 0.5) + _layer(k1, 0.5, 1) + _layer(k2, 0.5, 1))
           + inst(1, "Hat Closed", mute_group, _layer(h0, 0, 0.5) + _layer(h1, 0.5, 1))
           + inst(2, "Hat Open", mute_group, _layer(o0, 0, 0.5) + _layer(o1, 0.5, 1))
           + "</instrumentList></drumkit_info>\n")
    (folder / "drumkit.xml").write_text(xml, encoding="utf-8")
    return folder / "drumkit.xml"


def _play(kit: drumkit.HydrogenKit, part: Part, seconds: float = 1.0, seed: int = 0
          ) -> np.ndarray:
    return kit.render(part, _song(), int(seconds * SR), np.random.default_rng(seed),
                      timing_ms=0.0, velocity_spread=0.0)


@pytest.mark.parametrize("namespaced", [True, False])
def test_kit_is_parsed_and_gm_keys_mapped(tmp_path, namespaced):
    kit = drumkit.HydrogenKit(make_kit(tmp_path / "kit", namespaced))
    assert (kit.name, kit.author, kit.licence) == ("Tiny Kit", "Test Author", "CC0")
    assert [i.kind for i in kit.instruments] == ["kick", "hat_closed", "hat_open"]
    assert [len(i.components[0]) for i in kit.instruments] == [3, 2, 2]
    names = {key: kit.instruments[i].name for key, i in kit.mapping.items()}
    assert names[36] == names[35] == "Kick"
    assert names[42] == names[44] == "Hat Closed"  # no pedal hat: the closed one
    assert names[46] == "Hat Open"
    assert 38 not in kit.mapping  # no snare in this kit
    audio = _play(kit, _part((0.0, 36, 100), (0.5, 38, 100), (1.0, 38, 90)))
    assert kit.skipped == {38: 2}  # missing keys are left out and counted
    assert audio.shape == (2, SR) and audio.dtype == np.float32
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_velocity_picks_the_layer_and_equal_layers_take_turns(tmp_path):
    kit = drumkit.HydrogenKit(make_kit(tmp_path / "kit"))
    soft, hard = 32, 127
    audio = _play(kit, _part((0.0, 36, soft), (0.5, 36, hard), (1.0, 36, hard),
                             (1.5, 36, hard)))
    at = [int(b * 0.5 * SR) + 100 for b in (0.0, 0.5, 1.0, 1.5)]  # 120 bpm: 0.5 s a beat
    got = [float(audio[0, i]) for i in at]
    assert got[0] == pytest.approx(KICK_SOFT * soft / 127, rel=1e-4)
    assert got[1] == pytest.approx(KICK_HARD_A, rel=1e-4)  # round-robin A, B, A
    assert got[2] == pytest.approx(KICK_HARD_B, rel=1e-4)
    assert got[3] == pytest.approx(KICK_HARD_A, rel=1e-4)


def test_resampled_and_stereo_samples(tmp_path):
    kit = drumkit.HydrogenKit(make_kit(tmp_path / "kit"))
    audio = _play(kit, _part((0.0, 42, 20)))  # the soft closed hat: 0.02 s at 22.05 kHz
    sounding = np.flatnonzero(np.abs(audio[0]) > 1e-3)
    assert abs(len(sounding) - int(0.02 * SR)) < 60  # resampled to 44.1 kHz
    assert np.allclose(audio[0], audio[1])


def test_closed_hat_chokes_the_open_hat(tmp_path):
    kit = drumkit.HydrogenKit(make_kit(tmp_path / "kit"))
    ringing = _play(kit, _part((0.0, 46, 120)))
    choked = _play(kit, _part((0.0, 46, 120), (0.5, 42, 120)))  # 0.25 s later
    after = int(0.32 * SR)  # past the cut, its fade and the 20 ms closed hat
    assert np.abs(ringing[:, after:int(0.49 * SR)]).min() > 0.3
    assert np.abs(choked[:, after:]).max() == 0.0
    assert np.allclose(choked[:, :int(0.25 * SR) - 10], ringing[:, :int(0.25 * SR) - 10])
    # kits that name no mute group still choke their hi-hats
    plain = drumkit.HydrogenKit(make_kit(tmp_path / "plain", mute_group=-1))
    assert np.abs(_play(plain, _part((0.0, 46, 120), (0.5, 42, 120)))[:, after:]).max() == 0


def test_same_seed_same_audio_humanised(tmp_path):
    kit = drumkit.HydrogenKit(make_kit(tmp_path / "kit"))
    part = _part(*[(i * 0.25, (36, 42, 46)[i % 3], 60 + i) for i in range(12)])
    a = kit.render(part, _song(), 2 * SR, np.random.default_rng(7))
    b = kit.render(part, _song(), 2 * SR, np.random.default_rng(7))
    c = kit.render(part, _song(), 2 * SR, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == (2, 2 * SR) and np.isfinite(a).all()
    short = kit.render(part, _song(), 1000, np.random.default_rng(7))  # cut at the length
    assert short.shape == (2, 1000)


def test_bad_kit_files_are_refused_in_one_line(tmp_path, monkeypatch):
    bad = tmp_path / "bad" / "drumkit.xml"
    bad.parent.mkdir()
    cases = {"<drumkit_info><name>x</name>": "not valid XML",
             "<song><instrumentList/></song>": "not a Hydrogen drumkit",
             '<!DOCTYPE d [<!ENTITY a "aaaa">]><drumkit_info>&a;</drumkit_info>': "DTD"}
    for text, why in cases.items():
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(drumkit.DrumkitError) as info:
            drumkit.HydrogenKit(bad)
        assert why in str(info.value) and str(bad) in str(info.value)
        assert "\n" not in str(info.value)
    bad.write_bytes(b"<drumkit_info>" + b" " * 3_000_000 + b"</drumkit_info>")
    t0 = time.perf_counter()
    with pytest.raises(drumkit.DrumkitError, match="too big"):
        drumkit.HydrogenKit(bad)
    assert time.perf_counter() - t0 < 1.0
    # a sample path leaving the kit folder is not read
    kit_xml = make_kit(tmp_path / "kit")
    kit_xml.write_text(kit_xml.read_text().replace("k0.wav", "../bad/drumkit.xml"))
    kit = drumkit.HydrogenKit(kit_xml)
    assert not _play(kit, _part((0.0, 36, 20))).any()
    # broken kits are left out of the list, good ones found through $STEMWRIGHT_DRUMKITS
    monkeypatch.setattr(drumkit, "DRUMKIT_DIRS", ())
    monkeypatch.setenv("STEMWRIGHT_DRUMKITS", str(tmp_path))
    found = drumkit.find_drumkits()
    assert [(k.name, k.licence, k.author) for k in found] == [("Tiny Kit", "CC0",
                                                               "Test Author")]
    assert found[0].kind == "percussion"  # no snare: not for the kit role


def test_instrument_names_are_classified():
    for name, kind in [("Pearl Kick", "kick"), ("c3 - bass drum 1", "kick"),
                       ("Pearl Side Stick", "sidestick"), ("Snare Rimshot", "rimshot"),
                       ("Snare (Pearl Free Floating Maple 14x3.5)", "snare"),
                       ("Sabian Hat Pedal", "hat_pedal"), ("Hi Hat Opened", "hat_open"),
                       ("Closed HH", "hat_closed"), ("Pearl Tom Floor", "tom_low"),
                       ("Tom Mid", "tom_mid"), ("Tom Hi", "tom_high"), ("Crash", "crash"),
                       ("Paiste Ride", "ride"), ("Paiste Bell", "ride_bell"),
                       ("China (Paiste Alpha 18\")", "china"), ("Cowbell", "cowbell"),
                       ("Sabian Hat Choke", None), ("Hand Clap", "clap")]:
        assert drumkit.classify(name) == kind, name


def test_kit_source_choice():
    part = _part((0.0, 36, 100))
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    assert drumkit.choose_kit_source(part, "rock", rng, [], []).source == "gm"
    assert rng.bit_generator.state == state  # nothing installed: no draw
    acoustic = drumkit.DrumkitInfo("A", Path("/a/drumkit.xml"), "GPL", "x", "acoustic", 9)
    electro = drumkit.DrumkitInfo("E", Path("/e/drumkit.xml"), "GPL", "x", "electronic", 9)
    fonts = ["Black_Pearl_4_LV2.sf2", "Unknown.sf2"]
    picks = [drumkit.choose_kit_source(part, "rock", rng, fonts, [acoustic, electro])
             for _ in range(400)]
    kinds = {s: sum(p.source == s for p in picks) for s in ("gm", "sf2", "hydrogen")}
    assert all(60 < kinds[s] < 200 for s in kinds), kinds
    assert {p.name for p in picks if p.source == "hydrogen"} == {"A"}
    assert {p.name for p in picks if p.source == "sf2"} == {"Black_Pearl_4_LV2.sf2"}
    electronic = [drumkit.choose_kit_source(part, "electronic", rng, fonts, [acoustic, electro])
                  for _ in range(50)]
    assert {p.source for p in electronic} == {"gm", "hydrogen"}
    assert {p.name for p in electronic if p.source == "hydrogen"} == {"E"}


@pytest.mark.skipif(not Path("/usr/share/hydrogen/data/drumkits").is_dir(),
                    reason="Hydrogen kits not installed (apt-get install hydrogen-drumkits)")
def test_installed_hydrogen_kits_play():
    kits = {k.name: k for k in drumkit.find_drumkits()}
    acoustic = [k for k in kits.values() if k.kind == "acoustic"]
    assert acoustic
    if "TR808EmulationKit" in kits:
        assert kits["TR808EmulationKit"].kind == "electronic"
    kit = drumkit.load_kit(acoustic[0].path)
    for key in (36, 38, 42, 46):
        assert key in kit.mapping, (kit.name, key)
    part = _part(*[(i * 0.5, (36, 42, 38, 42)[i % 4], 100) for i in range(8)])
    audio = kit.render(part, _song(), 2 * SR, np.random.default_rng(0))
    assert audio.shape == (2, 2 * SR) and np.isfinite(audio).all()
    assert 1e-3 < float(np.abs(audio).max()) < 20


def _fluid_or_skip() -> render.Tools:
    try:
        return render.check_tools()
    except render.ToolError as exc:
        pytest.skip(f"synth tools missing: {exc}")


def test_drum_only_soundfonts_play_drum_parts_and_leave_gm_as_it_was():
    tools = _fluid_or_skip()
    avl = [s for s in tools.soundfonts if s.name in drumkit.DRUM_SOUNDFONTS]
    small = [s for s in tools.soundfonts if s.name == "TimGM6mb.sf2"]
    if not avl or not small:
        pytest.skip("the AVL drum soundfonts or TimGM6mb are not installed")
    with_drums = render.FluidRenderer(small + avl[:1], tools.fluidsynth)
    plain = render.FluidRenderer(small, tools.fluidsynth)
    try:
        assert list(with_drums.fonts) == list(plain.fonts) == ["TimGM6mb.sf2"]
        assert list(with_drums.drum_fonts) == [avl[0].name]
        part = _part(*[(i * 0.5, (36, 42, 38, 49)[i % 4], 100) for i in range(6)])
        song = _song()
        kit = with_drums.render(part, song, avl[0].name, 2 * SR)
        assert np.isfinite(kit).all() and np.abs(kit).max() > 1e-3
        gm = with_drums.render(part, song, "TimGM6mb.sf2", 2 * SR)
        assert np.array_equal(gm, plain.render(part, song, "TimGM6mb.sf2", 2 * SR))
        bass = Part("Bass", "bass", Role.BASS, 33, notes=[Note(0.0, 1.0, 40, 100)])
        with pytest.raises(render.ToolError, match="drum kit"):
            with_drums.render(bass, song, avl[0].name, SR)
    finally:
        with_drums.close()
        plain.close()


def test_generated_song_records_the_kit_it_used(tmp_path, monkeypatch):
    import dataclasses

    from stemwright.models.synthetic import generate as gen

    tools = _fluid_or_skip()
    small = [s for s in tools.soundfonts if s.name == "TimGM6mb.sf2"]  # quick to load
    if small:
        monkeypatch.setattr(gen, "check_tools", lambda: dataclasses.replace(
            tools, soundfonts=small))
    xml = make_kit(tmp_path / "kit")
    tiny = drumkit.DrumkitInfo("Tiny Kit", xml, "CC0", "Test Author", "acoustic", 3)
    monkeypatch.setattr(gen, "choose_kit_source", lambda part, style, rng, fonts, kits:
                        drumkit.KitChoice("hydrogen", tiny.name, tiny.path, tiny.licence))
    summary = gen.generate(tmp_path / "songs", songs=1, seconds=2.0, seed=4, workers=1)
    kits = [t for t in summary["song_list"][0]["tracks"] if t["role"] == "kit"]
    assert kits, "the song has a drum kit part"
    for t in kits:
        assert t["source"] == "Hydrogen kit 'Tiny Kit' (CC0)"
        assert (t["drum_source"], t["drum_kit"], t["drum_kit_licence"]) == (
            "hydrogen", "Tiny Kit", "CC0")
        assert t["drum_keys_skipped"] > 0  # no snare in the tiny kit: counted, not played
        audio, sr = sf.read(tmp_path / "songs" / summary["song_list"][0]["key"] / t["filename"])
        assert sr == SR and np.abs(audio).max() > 1e-3
