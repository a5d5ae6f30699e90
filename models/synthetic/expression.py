"""Performance for wind and electric-guitar parts: what a player adds to the written notes.

General MIDI notes played as written sound like an organ: every note at one level, no
breath, no vibrato. `perform(song)` gives every wind and electric-guitar part of a composed
song `Part.controls` (MIDI control changes and pitch-wheel moves, in beats) and touches up
its notes (articulation), drawn from a generator seeded by the song seed and the part's
position, so a seed still makes the same song:

* wind: CC2 breath per note (attack ramp, accent overshoot, a slow sag, quiet between
  notes) and CC11 expression per phrase (an arc) with crescendo-decrescendo swells on long
  notes; a delayed pitch-wheel vibrato (4.5-6.5 Hz, depth drawn per note, little for
  clarinet); scoops into notes and falls off phrase ends for saxophones and brass; legato
  overlaps, staccato, accents and breath pauses in long runs; a section player is detuned
  by a few cents. MuseScore General's expressive presets (bank 17) follow CC2; on other
  soundfonts CC11 and the pitch wheel still act.
* electric guitar: slides into notes (pitch wheel), the lead line's bends and finger
  vibrato, palm mutes (short, soft notes) in rhythm parts.

`retake(part, song, take)` is the same part played again (a double-tracked rhythm guitar,
a second player of a horn line): timing and velocity humanised anew, controls drawn anew.
The controls are computed on a 200 Hz grid and only changes are kept.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np

from .song import PITCH_WHEEL, Control, Note, Part, Role, Song

RATE = 200.0  # control points per second
BREATH, EXPRESSION = 2, 11
#: MuseScore General's expressive presets: bank 17, the GM program number, CC2 = breath
EXPRESSIVE_BANK = 17
_SCOOPERS = ("Sax", "Trumpet", "Trombone")


def _rng(song: Song, part: Part, index: int, take: int) -> np.random.Generator:
    return np.random.default_rng([int(song.seed), 0xE5, index, zlib.crc32(part.name.encode()),
                                  take])


def perform(song: Song) -> None:
    """Give every wind and electric-guitar part of `song` its performance (in place)."""
    for index, part in enumerate(song.parts):
        if part.stem == "wind":
            express_wind(part, song, _rng(song, part, index, 0))
        elif part.stem == "electric_guitar":
            express_guitar(part, song, _rng(song, part, index, 0))


def retake(part: Part, song: Song, take: int, index: int = 0) -> Part:
    """Another take of `part`: notes shifted 5-15 ms and velocities varied anew, the
    controls drawn anew (a wind section player also gets its own detune)."""
    rng = _rng(song, part, index, take)
    bps = song.bpm / 60.0
    lag = float(rng.uniform(0.005, 0.015)) * (1 if rng.random() < 0.5 else -1)
    notes = [replace(n, start=max(0.0, n.start + (lag + float(rng.normal(0, 0.006))) * bps),
                     velocity=int(np.clip(n.velocity + rng.normal(0, 6), 1, 127)))
             for n in part.notes]
    copy = replace(part, notes=notes, controls=[], expression="")
    if part.stem == "wind":
        express_wind(copy, song, rng, articulate=False)
    elif part.stem == "electric_guitar":
        express_guitar(copy, song, rng, articulate=False)
    return copy


def performance(part: Part, seed: int, number: int) -> tuple[Part, dict]:
    """How track `number` is recorded (its own generator: a song's other draws do not
    change): a horn-section line by 1-2 players ({"players": n}), a rhythm guitar
    double-tracked (60 %), a distorted guitar recorded DI (a clean GM guitar, 50 %) for
    the amp chain in its effects to distort; the part to render and those fields."""
    rng = np.random.default_rng([seed, 3, number])
    fields: dict = {}
    if part.stem == "wind" and part.role == Role.SECTION:
        fields["players"] = int(rng.integers(1, 3))
    if part.stem == "electric_guitar":
        if part.role == Role.RHYTHM and rng.random() < 0.6:
            fields["double_tracked"] = True
        if part.tone in ("overdriven", "distortion") and rng.random() < 0.5:
            fields["di"] = f"clean GM guitar (27) for GM {part.program}, amp in the effects"
            part = replace(part, program=27)
    return part, fields


# --------------------------------------------------------------------------------------
# Curves -> controls
# --------------------------------------------------------------------------------------

def _grid(song: Song, part: Part) -> int:
    end = max((n.start + n.length for n in part.notes), default=0.0)
    return int(np.ceil(song.seconds_at(end) * RATE)) + int(RATE)


def _span(note: Note, song: Song) -> tuple[int, int]:
    a = int(round(song.seconds_at(note.start) * RATE))
    return a, max(a + 1, int(round(song.seconds_at(note.start + note.length) * RATE)))


def _controls(song: Song, curves: dict[int, np.ndarray], bend_range: int = 2
              ) -> list[Control]:
    """Control events where each quantised curve changes (a cc's 0..127 values, or
    PITCH_WHEEL's in cents, scaled to the pitch-wheel range)."""
    bps = song.bpm / 60.0
    out: list[Control] = []
    for cc, curve in curves.items():
        if cc == PITCH_WHEEL:
            q = np.clip(np.round(curve / (bend_range * 100.0) * 8192), -8192, 8191)
        else:
            q = np.clip(np.round(curve), 0, 127)
        q = q.astype(np.int64)
        change = np.flatnonzero(np.diff(q, prepend=q[0] - 1) != 0)
        out += [Control(round(float(i / RATE * bps), 6), cc, int(q[i])) for i in change]
    out.sort(key=lambda c: (c.time, c.cc))
    return out


def _phrases(notes: list[Note], gap: float) -> list[list[int]]:
    """Indices of notes grouped into phrases (a rest longer than `gap` beats ends one)."""
    out: list[list[int]] = []
    end = None
    for i, n in enumerate(notes):
        if end is None or n.start - end > gap:
            out.append([])
        out[-1].append(i)
        end = max(end or 0.0, n.start + n.length)
    return out


def _vibrato(pitch: np.ndarray, a: int, b: int, rng: np.random.Generator, rate: float,
             cents: float, delay: float) -> float:
    """Add a delayed, faded-in vibrato between grid points a and b; the depth used."""
    v0 = a + int(delay * RATE)
    if b - v0 < int(0.15 * RATE) or cents <= 0:
        return 0.0
    t = np.arange(b - v0) / RATE
    fade = np.minimum(1.0, t / float(rng.uniform(0.2, 0.45)))
    phase = float(rng.uniform(0, 2 * np.pi))
    pitch[v0:b] += cents * fade * np.sin(2 * np.pi * rate * t + phase)
    return cents


# --------------------------------------------------------------------------------------
# Wind
# --------------------------------------------------------------------------------------

def express_wind(part: Part, song: Song, rng: np.random.Generator,
                 articulate: bool = True) -> None:
    """Breath, dynamics, vibrato, scoops/falls and articulation for a wind part."""
    if not part.notes:
        return
    bps = song.bpm / 60.0
    notes = sorted(part.notes, key=lambda n: (n.start, n.pitch))
    mono = all(b.start >= a.start + a.length - 1e-6 or b.start - a.start > 0.05
               for a, b in zip(notes, notes[1:], strict=False)) and \
        all(abs(b.start - a.start) > 1e-6 for a, b in zip(notes, notes[1:], strict=False))
    solo = part.role in (Role.MELODY, Role.LEAD) or mono and part.role != Role.SECTION
    if articulate:
        notes = _articulate(notes, rng, bps, mono)
    part.notes = notes
    n = _grid(song, part)
    breath = np.zeros(n)
    expr = np.full(n, 100.0)
    pitch = np.zeros(n)
    detune = float(rng.normal(0, 6)) if part.role == Role.SECTION else 0.0
    pitch += detune
    scoops = any(s in part.name for s in _SCOOPERS)
    clarinet = "Clarinet" in part.name
    rate = float(rng.uniform(4.5, 6.5))
    depths: list[float] = []
    swells = 0
    spans: list[tuple[int, int]] = []
    for phrase in _phrases(notes, 0.75):
        a0 = _span(notes[phrase[0]], song)[0]
        b0 = _span(notes[phrase[-1]], song)[1]
        peak = float(rng.uniform(0.45, 0.75))
        lift = float(rng.uniform(6, 18))
        base = float(rng.uniform(86, 104))
        x = np.linspace(0.0, 1.0, max(1, b0 - a0))
        arc = np.where(x < peak, x / peak, (1 - x) / (1 - peak))
        expr[a0:b0] = base - lift / 2 + lift * arc
        expr[b0:] = expr[b0 - 1]
        for k, i in enumerate(phrase):
            note = notes[i]
            a, b = _span(note, song)
            b = min(b, n)
            dur = (b - a) / RATE
            target = float(np.clip(42 + 0.62 * note.velocity + rng.normal(0, 4), 30, 124))
            attack = max(2, int(rng.uniform(0.03, 0.08) * RATE))
            env = np.full(b - a, target)
            ramp = np.linspace(0.45, 1.0, min(attack, b - a))
            env[:len(ramp)] *= ramp
            if note.velocity >= 105 and b - a > attack + 4:  # accent: overshoot, settle
                m = min(int(0.1 * RATE), b - a - attack)
                env[attack:attack + m] *= 1.0 + 0.15 * np.linspace(1.0, 0.0, m)
            env *= np.linspace(1.0, float(rng.uniform(0.85, 0.97)), b - a)  # breath sags
            if dur > 0.25:  # the breath never holds quite still
                wob = np.convolve(rng.normal(0, 1, b - a), np.ones(9) / 9, "same")
                env += 2.5 * wob
            breath[a:b] = np.maximum(breath[a:b], env)
            if dur >= 0.8 and rng.random() < (0.7 if solo else 0.45):  # a swell
                swells += 1
                x = np.linspace(0.0, 1.0, b - a)
                mid = float(rng.uniform(0.4, 0.6))
                shape = np.where(x < mid, x / mid, (1 - x) / (1 - mid))
                lo = float(rng.uniform(0.55, 0.72))
                expr[a:b] *= lo + (1 - lo) * shape
            if dur > 0.35:
                depth = float(rng.uniform(2, 8) if clarinet else rng.uniform(12, 38)
                              if solo else rng.uniform(6, 20))
                got = _vibrato(pitch, a, b, rng, rate + float(rng.normal(0, 0.2)), depth,
                               float(rng.uniform(0.15, 0.35)))
                if got:
                    depths.append(got)
            if scoops and (k == 0 or rng.random() < 0.25) and rng.random() < 0.55:
                m = min(b - a, int(rng.uniform(0.04, 0.09) * RATE))
                pitch[a:a + m] -= float(rng.uniform(30, 110)) * np.linspace(1, 0, m) ** 2
            if scoops and k == len(phrase) - 1 and dur > 0.2 and rng.random() < 0.25:
                m = min(b - a, int(rng.uniform(0.12, 0.25) * RATE))
                pitch[b - m:b] -= float(rng.uniform(80, 190)) * np.linspace(0, 1, m) ** 2
        spans.append((a0, b0))
    pitch = np.clip(pitch, -195.0, 195.0)
    # within a phrase the breath holds between notes (a slur) rather than dropping to 0;
    # between phrases it stops, once the last note's release has rung a little
    held = np.maximum.accumulate(np.where(breath > 0, np.arange(n), 0))
    breath = np.where(breath > 0, breath, np.where(held > 0, breath[held] * 0.6, 0.0))
    for (_, b0), (a1, _) in zip(spans, [*spans[1:], (n, n)], strict=True):
        breath[min(n, b0 + int(0.12 * RATE)):a1] = 0.0
    part.bend_range = 2
    part.controls = _controls(song, {BREATH: np.clip(breath, 0, 127),
                                     EXPRESSION: np.clip(expr, 0, 127),
                                     PITCH_WHEEL: pitch})
    bits = ["CC2 breath", "CC11 phrase dynamics"]
    if swells:
        bits.append(f"{swells} swell" + "s" * (swells > 1))
    if depths:
        bits.append(f"vibrato {rate:.1f} Hz {min(depths):.0f}-{max(depths):.0f} cents")
    if scoops:
        bits.append("scoops/falls")
    if detune:
        bits.append(f"detuned {detune:+.0f} cents")
    if articulate:
        bits.append("articulated")
    part.expression = ", ".join(bits)


def _articulate(notes: list[Note], rng: np.random.Generator, bps: float, mono: bool
                ) -> list[Note]:
    """Legato overlaps, staccato, accents, breath pauses (monophonic lines only get
    overlaps and breaths)."""
    out = list(notes)
    legato = rng.random() < 0.6
    staccato = float(rng.uniform(0.1, 0.45))
    run_start = out[0].start if out else 0.0
    for i, note in enumerate(out):
        nxt = out[i + 1] if i + 1 < len(out) else None
        length, vel = note.length, note.velocity
        if rng.random() < 0.18:
            vel = min(127, vel + 14)  # accent
        if length < 0.6 and rng.random() < staccato:
            length = max(0.08 * bps, length * float(rng.uniform(0.4, 0.65)))
        elif mono and nxt is not None and legato and nxt.pitch != note.pitch and \
                0 <= nxt.start - (note.start + length) < 0.2:
            length = nxt.start - note.start + float(rng.uniform(0.015, 0.045)) * bps
        if mono and nxt is not None:
            if nxt.start - (note.start + note.length) > 0.5:
                run_start = nxt.start
            elif (nxt.start - run_start) / bps > float(rng.uniform(5.0, 9.0)):
                length = min(length, max(0.1 * bps, nxt.start - note.start
                                         - float(rng.uniform(0.18, 0.32)) * bps))
                run_start = nxt.start  # a breath
        out[i] = replace(note, length=length, velocity=vel)
    return out


# --------------------------------------------------------------------------------------
# Electric guitar
# --------------------------------------------------------------------------------------

def express_guitar(part: Part, song: Song, rng: np.random.Generator,
                   articulate: bool = True) -> None:
    """Slides, bends, finger vibrato (lead) and palm mutes (rhythm) for a guitar part."""
    if not part.notes:
        return
    bps = song.bpm / 60.0
    notes = sorted(part.notes, key=lambda n: (n.start, n.pitch))
    lead = part.role == Role.LEAD
    mutes = 0
    if articulate and not lead and part.style in ("power chords", "riff", "scratch"):
        share = float(rng.uniform(0.4, 0.9))
        out = []
        for note in notes:
            if note.length <= 0.5 and rng.random() < share:
                mutes += 1
                note = replace(note, length=min(note.length, float(rng.uniform(0.07, 0.12))
                                                * bps), velocity=max(1, note.velocity - 14))
            out.append(note)
        notes = out
    part.notes = notes
    n = _grid(song, part)
    pitch = np.zeros(n)
    slides = bends = 0
    depths: list[float] = []
    single = lead or part.style in ("riff", "arpeggio")
    prev: Note | None = None
    for note in notes:
        a, b = _span(note, song)
        b = min(b, n)
        if note.bend:  # up to the bend over the note's second quarter, back at its end
            bends += 1
            q = (b - a) // 4
            pitch[a + q:a + 2 * q] += 100 * min(note.bend, 2.0) * np.linspace(0, 1, q)
            pitch[a + 2 * q:b] += 100 * min(note.bend, 2.0)
        elif single and prev is not None and 0 < abs(note.pitch - prev.pitch) <= 2 and \
                note.start - (prev.start + prev.length) < 0.15 and rng.random() < 0.3:
            slides += 1  # a slide from the last note
            m = min(b - a, int(rng.uniform(0.05, 0.11) * RATE))
            pitch[a:a + m] += 100 * (prev.pitch - note.pitch) * np.linspace(1, 0, m)
        elif single and rng.random() < 0.06:
            slides += 1  # a slide up into the note
            m = min(b - a, int(rng.uniform(0.06, 0.12) * RATE))
            pitch[a:a + m] -= 200 * np.linspace(1, 0, m)
        if lead and (b - a) / RATE > 0.4 and rng.random() < 0.7:
            got = _vibrato(pitch, a, b, rng, float(rng.uniform(5.0, 7.0)),
                           float(rng.uniform(15, 40)), float(rng.uniform(0.1, 0.25)))
            if got:
                depths.append(got)
        prev = note
    part.bend_range = 2
    part.controls = _controls(song, {PITCH_WHEEL: np.clip(pitch, -200, 200)}) \
        if pitch.any() else []
    bits = []
    if mutes:
        bits.append(f"{mutes} palm-muted notes")
    if slides:
        bits.append(f"{slides} slides")
    if bends:
        bits.append(f"{bends} bends")
    if depths:
        bits.append(f"finger vibrato {min(depths):.0f}-{max(depths):.0f} cents")
    part.expression = ", ".join(bits)


__all__ = ["perform", "performance", "retake", "express_wind", "express_guitar", "EXPRESSIVE_BANK",
           "BREATH", "EXPRESSION", "RATE"]
