"""Procedural song composition for `stemwright synth`: sections, chords, grooves, parts.

`compose_song(seed, seconds)` writes a song as note lists, one `Part` per track, with no
audio: `render.py` plays the parts through FluidSynth (General MIDI soundfonts) and a sung
voice (espeak-ng), `generator.py` turns them into multitrack folders. Everything is drawn
from `numpy.random.default_rng` seeded by `seed`, so a seed always gives the same song.

What varies from song to song:

* style: rock, pop, funk, shuffle (blues), swing (jazz), ballad and electronic; each picks
  its tempo range, modes, progressions, grooves, instruments and how they play;
* tempo, key, mode (major, minor, dorian, mixolydian) and swing;
* form: intro, verse, pre-chorus, chorus, bridge, solo and outro sections with their own
  progressions and energy (which parts play, how busy); short songs are one chorus;
* parts for all six stems, each active in most of the song:
  drums (rock, funk, shuffle, swing, half-time and electronic grooves with ghost notes,
  fills, crashes and several GM kits, sometimes a percussion track), bass (root/fifth,
  walking, riffs, boogie, sustained and synth lines on electric, picked, fretless, slap,
  upright and synth basses), electric guitar (power chords, strums, muted scratching,
  arpeggios, riffs and lead lines with bends; clean, jazz, muted, overdriven and
  distortion tones), wind (melodies, horn-section stabs and pads on saxophones, trumpet,
  trombone, horn, flute, clarinet, ...), vocals (a lead melody with lyrics-like words,
  one per note, and backing "oohs/aahs") and other (piano, electric piano, organ, strings,
  pads, acoustic guitar, clavinet, vibraphone, synth leads and arpeggios).

Times are in beats (quarter notes) from the start of the song, swing and a little timing
and velocity humanisation included; `Song.seconds_at` converts them.

This module holds the form (`_form`: sections and their energy), the harmony (`_harmony`:
each section's chords), `compose_song` which draws the song's settings and calls the part
writers, and `describe`. The rest lives next to it:

* `theory.py`: notes, modes, chord qualities, progressions, chords on scale degrees and
  voicings;
* `styles.py`: the instruments and the style table (what each style picks), form
  templates;
* `song.py`: the data types (`Note`, `Section`, `Part`, `Song`, the `Role` enum) and the
  song draft (`_Ctx`) the part writers draw from;
* `parts.py`: drums, percussion, bass, electric guitar, wind and other parts;
* `melody.py`: melodies, lead lines, words and the vocal parts.

The order of random draws is the song: moving code between these modules is safe, but
reordering the draws changes every seed's song.
"""

from __future__ import annotations

import numpy as np

from .melody import _lead_line, _vocals
from .parts import _bass, _drums, _guitar, _other, _percussion, _winds
from .song import Note, Part, Role, Section, Song, _Ctx
from .styles import _FORMS, BASSES, GUITARS, KITS, OTHERS, STYLES, WINDS, Style
from .theory import _BLUES, _JAZZ, _PROGRESSIONS, BEATS_PER_BAR, Chord, _degree_chord

# --------------------------------------------------------------------------------------
# Form and harmony
# --------------------------------------------------------------------------------------


def _form(ctx: _Ctx, bars: int) -> list[Section]:
    """Sections filling `bars` bars; the last bar is a held ending when there is room."""
    style = ctx.style
    family = {"blues": "blues", "jazz": "jazz", "funk": "funk"}.get(style.chords)
    family = family or ("electronic" if style.name == "electronic" else
                        "rock" if style.name == "rock" else "pop")
    template = list(_FORMS[family])
    if ctx.chance(0.3) and family in ("pop", "rock"):  # a solo/bridge swap for variety
        template = [t for t in template if t[0] != "bridge"] if ctx.chance(0.5) else \
            [t for t in template if t[0] != "solo"]
    ending = bars >= 8
    body = bars - 1 if ending else bars
    sections: list[Section] = []
    if body < 12:
        sections.append(Section("chorus", 0, body, 1.0))
    elif body < 24 and family != "blues":
        half = (body // 2) // 2 * 2
        sections += [Section("verse", 0, half, 0.6), Section("chorus", half, body - half, 0.95)]
    else:
        intro, middle, outro = template[0], template[1:-1], template[-1]
        if body < 48:
            intro, outro = (intro[0], min(intro[1], 4), intro[2]), (outro[0], 4, outro[2])
        extra = ((("verse", 12, 0.8), ("solo", 12, 0.9)) if family == "blues" else
                 (("verse", 8, 0.7), ("chorus", 8, 1.0), ("solo", 8, 0.9), ("chorus", 8, 1.0)))
        plan = [intro]
        total, i = intro[1] + outro[1], 0
        while True:
            item = middle[i] if i < len(middle) else extra[(i - len(middle)) % len(extra)]
            if total + item[1] > body:
                break
            plan.append(item)
            total += item[1]
            i += 1
        left = body - total
        if left >= 4:
            plan.append((item[0], left, item[2]))
        else:
            outro = (outro[0], outro[1] + left, outro[2])
        plan.append(outro)
        used = 0
        for name, n, energy in plan:
            sections.append(Section(name, used, n, energy))
            used += n
    if ending:
        sections.append(Section("ending", body, 1, 0.8))
    return sections


def _harmony(ctx: _Ctx, sections: list[Section]) -> None:
    """Give each section its chords; sections with the same name share a progression."""
    song, style = ctx.song, ctx.style
    sevenths = style.chords in ("jazz", "funk", "blues")
    progs: dict[str, tuple[tuple[int, ...], float]] = {}
    for sec in sections:
        if sec.name == "ending":
            tonic = _degree_chord(song.tonic, song.mode, 0, sevenths and style.chords == "jazz")
            sec.chords = [(sec.start, float(BEATS_PER_BAR), tonic)]
            continue
        key = {"outro": "chorus", "solo": "verse" if ctx.style.chords != "rock" else "chorus",
               "intro": "chorus" if ctx.chance(0.5) else "verse"}.get(sec.name, sec.name)
        if key not in progs:
            if style.chords == "blues":
                progs[key] = (ctx.pick(_BLUES), 1.0)
            elif style.chords == "jazz":
                progs[key] = (ctx.pick(_JAZZ), ctx.pick(style.harmonic_rhythm))
            else:
                pool = _PROGRESSIONS[song.mode]
                progs[key] = (ctx.pick(pool), ctx.pick(style.harmonic_rhythm))
        degrees, bars_per_chord = progs[key]
        beat, i = sec.start, 0
        while beat < sec.end - 1e-9:
            length = min(bars_per_chord * BEATS_PER_BAR, sec.end - beat)
            chord = _degree_chord(song.tonic, song.mode, degrees[i % len(degrees)], sevenths)
            if style.chords == "blues":
                chord = Chord(chord.root, "7")
            elif style.chords == "rock" and style.name == "rock" and chord.quality in (
                    "maj", "min") and ctx.chance(0.15):
                chord = Chord(chord.root, "sus4" if chord.quality == "maj" else "min")
            elif style.chords == "pop" and chord.quality == "maj" and ctx.chance(0.12):
                chord = Chord(chord.root, ctx.pick(("sus2", "add9", "maj7")))
            sec.chords.append((beat, length, chord))
            beat += length
            i += 1


# --------------------------------------------------------------------------------------
# The song
# --------------------------------------------------------------------------------------

def compose_song(seed: int, seconds: float, style: str | None = None) -> Song:
    """Compose a song of about `seconds` seconds (the last bar rings to the end) with parts
    for all six stems, deterministically from `seed`. `style`: one of STYLES, or drawn."""
    if seconds <= 0:
        raise ValueError("a song needs a positive length")
    rng = np.random.default_rng([int(seed), 0x50_4E_47])
    st = STYLES[style] if style else STYLES[str(rng.choice(sorted(STYLES)))]
    bpm = float(rng.integers(st.bpm[0], st.bpm[1] + 1))
    song = Song(seed=int(seed), seconds=float(seconds), style=st.name, bpm=bpm,
                tonic=int(rng.integers(12)), mode=str(rng.choice(st.modes)),
                swing=float(rng.choice(st.swing)), sections=[], parts=[])
    ctx = _Ctx(song, rng, st)
    bars = max(1, int(seconds * bpm / 60.0 / BEATS_PER_BAR))
    song.sections = _form(ctx, bars)
    _harmony(ctx, song.sections)
    everything = set(range(len(song.sections)))
    names = [s.name for s in song.sections]

    def where(*wanted: str) -> set[int]:
        out = {i for i, n in enumerate(names) if n in wanted}
        return out or everything

    # vocals sing verses, pre-choruses, choruses and (sometimes) the bridge
    song.voice = "female" if rng.random() < 0.5 else "male"
    sung = where("verse", "pre", "chorus", *(("bridge",) if rng.random() < 0.5 else ()))
    if len(song.sections) <= 2:
        sung = everything
    sung = {i for i in sung if names[i] != "ending"}
    parts: list[Part] = [_drums(ctx, str(rng.choice(st.kits)))]
    if rng.random() < 0.45:
        parts.append(_percussion(ctx))
    parts.append(_bass(ctx, BASSES[str(rng.choice(st.basses))], str(rng.choice(st.bass_lines))))
    # electric guitar: a rhythm part nearly everywhere, sometimes a lead for solos and fills
    tone = str(rng.choice(st.guitar_tones))
    gstyle = str(rng.choice(st.guitar_styles))
    if gstyle == "power chords" and tone in ("clean", "jazz") and rng.random() < 0.7:
        tone = "overdriven"
    if gstyle == "scratch":
        tone = "muted" if rng.random() < 0.6 else "clean"
    rhythm_where = everything - ({i for i, n in enumerate(names) if n == "intro"}
                                 if rng.random() < 0.3 and len(names) > 2 else set())
    parts.append(_guitar(ctx, GUITARS[tone], gstyle, tone, rhythm_where))
    solo = where("solo") if "solo" in names else set()
    soloist = str(rng.choice(("guitar", "wind", "other"))) if solo else ""
    if soloist == "guitar" or rng.random() < 0.3:
        lead_tone = str(rng.choice(("overdriven", "distortion", "clean")))
        lead = Part(f"Lead Guitar ({lead_tone.capitalize()})", "electric_guitar", Role.LEAD,
                    GUITARS[lead_tone].program, style="lead", tone=lead_tone)
        for si in (solo or where("outro", "chorus")):
            sec = song.sections[si]
            if sec.name == "ending":
                continue
            if si in sung and soloist == "guitar":
                continue
            _lead_line(ctx, lead, sec, 57, 84, 0.7, True)
        if lead.notes:
            parts.append(lead)
    # wind
    role = Role(str(rng.choice(st.wind_roles)))
    parts.extend(_winds(ctx, role, sung))
    # vocals
    parts.extend(_vocals(ctx, sung, song.voice))
    # other: one to three instruments
    n_other = int(rng.integers(1, 4))
    keys = [st.others[int(i)] for i in rng.choice(len(st.others), size=min(n_other, len(
        st.others)), replace=False)]
    if soloist == "other" and not any(k in ("square lead", "saw lead") for k in keys):
        keys.append("saw lead" if st.name in ("electronic", "rock") else "square lead")
    for k in keys:
        parts.append(_other(ctx, k, everything, sung))
    song.parts = [p for p in parts if p.notes]
    song.parts.sort(key=lambda p: (("vocals", "drums", "bass", "electric_guitar", "wind",
                                    "other").index(p.stem)))
    for p in song.parts:
        p.notes.sort(key=lambda n: (n.start, n.pitch))
    return song


def describe(song: Song) -> dict:
    """A JSON-able summary: style, tempo, key, form with chords, parts."""
    return {
        "style": song.style, "bpm": song.bpm, "key": song.key_name, "swing": song.swing,
        "voice": song.voice,
        "sections": [{"name": s.name, "bar": s.start_bar, "bars": s.bars,
                      "start": round(song.seconds_at(s.start), 3),
                      "chords": " ".join(c.name for _, _, c in s.chords)}
                     for s in song.sections],
        "parts": [{"name": p.name, "stem": p.stem, "role": str(p.role), "program": p.program,
                   "bank": p.bank, "style": p.style, "tone": p.tone, "notes": len(p.notes)}
                  for p in song.parts],
    }


__all__ = ["Note", "Chord", "Section", "Part", "Role", "Song", "Style", "STYLES", "KITS",
           "BASSES", "GUITARS", "WINDS", "OTHERS", "compose_song", "describe",
           "BEATS_PER_BAR"]
