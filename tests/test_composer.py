"""The song composer: deterministic, every stem has a part, labels map to their stems,
notes stay in the song, in range and on the harmony."""

from __future__ import annotations

import pytest

from stemwright.models.multitrack.folders import stem_for_name
from stemwright.models.stems import STEM_IDS
from stemwright.models.synthetic.composer import compose_song, describe
from stemwright.models.synthetic.styles import STYLES
from stemwright.models.synthetic.theory import BEATS_PER_BAR, Chord, _guitar_voicing, _voicing


def _fingerprint(song):
    return [(p.name, p.program, p.bank, [(n.start, n.length, n.pitch, n.velocity, n.lyric)
                                         for n in p.notes]) for p in song.parts]


def test_same_seed_same_song_other_seed_other_song():
    a, b = compose_song(7, 40.0), compose_song(7, 40.0)
    assert _fingerprint(a) == _fingerprint(b)
    assert describe(a) == describe(b)
    c = compose_song(8, 40.0)
    assert _fingerprint(a) != _fingerprint(c)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_style_writes_all_six_stems_with_mappable_labels(style):
    song = compose_song(3, 75.0, style)
    assert song.style == style
    assert {p.stem for p in song.parts} == set(STEM_IDS)
    for part in song.parts:
        # the multitrack reader maps the instrument label to the intended stem
        assert stem_for_name(part.name) == part.stem, part.name
        assert part.notes, part.name
        for n in part.notes:
            assert 0 <= n.pitch <= 127 and 1 <= n.velocity <= 127 and n.length > 0
            assert 0 <= n.start < song.beats
        if part.is_drum:
            assert part.bank == 128
        elif not part.sung:
            assert 0 <= part.program <= 127
    lead = next(p for p in song.parts if p.role == "lead vocal")
    assert lead.sung and all(n.lyric for n in lead.notes)
    assert song.lyrics() and all(line.split() for line in song.lyrics())
    lo, hi = (48, 70) if song.voice == "male" else (55, 77)
    assert all(lo <= n.pitch <= hi for n in lead.notes)


@pytest.mark.parametrize("seconds", [3.0, 30.0, 95.0, 200.0])
def test_form_fills_the_song(seconds):
    for seed in range(3):
        song = compose_song(seed, seconds)
        bar_s = BEATS_PER_BAR * 60.0 / song.bpm
        assert sum(s.bars for s in song.sections) == max(1, int(seconds / bar_s))
        assert song.seconds_at(song.beats) <= seconds + 1e-9
        for a, b in zip(song.sections, song.sections[1:], strict=False):
            assert a.start_bar + a.bars == b.start_bar
        for sec in song.sections:  # chords tile each section
            assert sec.chords[0][0] == sec.start
            assert abs(sum(length for _, length, _ in sec.chords) - (sec.end - sec.start)) \
                < 1e-9
        if seconds >= 60:
            names = [s.name for s in song.sections]
            assert names[-1] == "ending" and ("chorus" in names or "verse" in names)


def test_short_song_is_one_chorus_with_everything():
    song = compose_song(1, 4.0)
    assert [s.name for s in song.sections] == ["chorus"]
    assert {p.stem for p in song.parts} == set(STEM_IDS)


def test_bass_plays_chord_roots_on_chord_changes():
    hits = total = 0
    for seed in range(6):
        song = compose_song(seed, 60.0)
        bass = next(p for p in song.parts if p.stem == "bass")
        for sec in song.sections:
            for start, _, chord in sec.chords:
                first = [n for n in bass.notes if abs(n.start - start) < 0.1]
                if first:
                    total += 1
                    hits += first[0].pitch % 12 == chord.root
    assert total > 50 and hits / total > 0.8


def test_voicings():
    c = Chord(0, "maj")
    notes = _voicing(c, None, 55, 76, 3)
    assert len(notes) == 3 and {m % 12 for m in notes} == {0, 4, 7}
    assert all(55 <= m <= 76 for m in notes)
    g = _voicing(Chord(7, "maj"), notes, 55, 76, 3)  # voice leading: small moves
    assert sum(min(abs(a - b) for b in notes) for a in g) <= 6
    shape = _guitar_voicing(Chord(9, "min"))
    assert shape[0] % 12 == 9 and 40 <= shape[0] <= 51 and {m % 12 for m in shape} == {
        9, 0, 4}
    assert _guitar_voicing(Chord(4, "5")) == [40, 47, 52]
    assert Chord(2, "min7").name == "Dm7" and Chord(10, "maj").name == "Bb"


def test_variety_over_many_songs():
    songs = [compose_song(s, 60.0) for s in range(40)]
    assert len({s.style for s in songs}) >= 6
    assert len({s.tonic for s in songs}) >= 8
    assert len({s.mode for s in songs}) >= 3
    names = {p.name for s in songs for p in s.parts}
    kits = {p.tone for s in songs for p in s.parts if p.role == "kit"}
    assert len(kits) >= 5
    for stem, least in (("bass", 4), ("electric_guitar", 5), ("wind", 6), ("other", 8)):
        assert len({p.name for s in songs for p in s.parts if p.stem == stem}) >= least, stem
    assert "Lead Vocal" in names and "Backing Vocals" in names
    grooves = {p.style for s in songs for p in s.parts if p.role == "kit"}
    assert {"rock", "funk", "shuffle", "electronic"} <= grooves


def test_roles_are_a_str_enum_that_serialises_as_plain_strings():
    import json

    import yaml

    from stemwright.models.synthetic.song import Part, Role

    song = compose_song(5, 30.0)
    assert all(isinstance(p.role, Role) for p in song.parts)
    assert Part("Lead Vocal", "vocals", "lead vocal", -1).role is Role.LEAD_VOCAL
    assert Role.LEAD_VOCAL == "lead vocal" and str(Role.BACKING_VOCALS) == "backing vocals"
    desc = describe(song)
    assert all(type(p["role"]) is str and type(p["style"]) is str for p in desc["parts"])
    assert yaml.safe_load(yaml.safe_dump(desc)) == json.loads(json.dumps(desc))
