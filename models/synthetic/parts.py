"""Writing each instrument's part: drums and percussion, bass, electric guitar, wind and
"other" (keys, strings, pads, acoustic guitar, synths). Vocals and the melody lines the
wind and synth leads share are in `melody.py`.

Every writer takes the song draft (`_Ctx`: song, random generator, style) and returns
`Part`s whose notes are (start, length) in beats, MIDI pitch and velocity; the order of
random draws is part of the output (same seed, same song), so keep it when editing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .melody import _lead_line, _melody
from .song import Part, Role, _add, _Ctx
from .styles import KITS, OTHERS, WINDS, Instrument
from .theory import BEATS_PER_BAR, Chord, _guitar_voicing, _near, _voicing

# General MIDI drum keys
KICK, SIDESTICK, SNARE, CLAP, RIM = 36, 37, 38, 39, 40
HAT, PEDAL_HAT, OPEN_HAT = 42, 44, 46
TOMS = (50, 48, 47, 45, 43, 41)  # high to low
CRASH, RIDE, RIDE_BELL, CRASH2, SPLASH = 49, 51, 53, 57, 55
TAMBOURINE, COWBELL, CABASA, MARACAS = 54, 56, 69, 70
CONGA_MUTE, CONGA_OPEN, CONGA_LOW, BONGO_HI, BONGO_LO = 62, 63, 64, 60, 61


def _steps(pattern: str) -> list[tuple[int, int]]:
    """"X.x.o" -> [(step, velocity)]: X accent, x normal, o ghost."""
    vel = {"X": 112, "x": 92, "o": 48}
    return [(i, vel[c]) for i, c in enumerate(pattern) if c in vel]


# --------------------------------------------------------------------------------------
# Drums
# --------------------------------------------------------------------------------------

# Each groove: variations of kick / snare / hat / open-hat lines on a 16-step (straight)
# or 12-step (triplet) grid. X accent, x normal, o ghost.
_GROOVES: dict[str, tuple[int, list[dict[str, str]]]] = {
    "rock": (16, [
        {"kick": "x.......x.x.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
        {"kick": "x.....x.x.......", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
        {"kick": "x.x.....x.x.....", "snare": "....X.......X..o", "hat": "xoxoxoxoxoxoxoxo"},
        {"kick": "x.......x...x...", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."}]),
    "pop": (16, [
        {"kick": "x.......x.......", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
        {"kick": "x..x..x...x.....", "snare": "....X.......X...", "hat": "xoxoxoxoxoxoxoxo"},
        {"kick": "x.....x...x.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x.",
         "open": "..............x."}]),
    "funk": (16, [
        {"kick": "x..x......x..x..", "snare": "....X..o.o..X..o", "hat": "xoxoxoxoxoxoxoxo",
         "open": "..............x."},
        {"kick": "x.x...x...x..x..", "snare": "..o.X.o..o.oX.o.", "hat": "xxxxxxxxxxxxxxxx"},
        {"kick": "x......x.xx.....", "snare": "....X..o.o..X...", "hat": "xoxoxoxoxoxox.x.",
         "open": "............x..."}]),
    "halftime": (16, [
        {"kick": "x.........x.....", "snare": "........X.......", "hat": "x.x.x.x.x.x.x.x."},
        {"kick": "x..x......x...x.", "snare": "........X.......", "hat": "xoxoxoxoxoxoxoxo"},
        {"kick": "x.......x.x.....", "snare": "........X.....o.", "hat": "x.x.x.x.x.x.x.x."}]),
    "ballad": (16, [
        {"kick": "x.......x.......", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."},
        {"kick": "x.........x.....", "snare": "........X.......", "hat": "x.x.x.x.x.x.x.x."}]),
    "electronic": (16, [
        {"kick": "x...x...x...x...", "snare": "....X.......X...", "hat": "xoxoxoxoxoxoxoxo",
         "open": "..x...x...x...x."},
        {"kick": "x...x...x...x..x", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x.",
         "open": "..x...x...x...x."},
        {"kick": "x..x..x...x.....", "snare": "....X.......X...", "hat": "xxxxxxxxxxxxxxxx"}]),
    "shuffle": (12, [
        {"kick": "x.....x.....", "snare": "...X.....X..", "hat": "x.xx.xx.xx.x"},
        {"kick": "x....xx.....", "snare": "...X.....X..", "hat": "x.xx.xx.xx.x"},
        {"kick": "x.....x....x", "snare": "...X....oX..", "hat": "x.xx.xx.xx.x"}]),
    "swing": (12, [
        {"kick": "o..o..o..o..", "snare": "............", "ride": "X..x.xX..x.x",
         "pedal": "...x.....x.."},
        {"kick": "o.....o.....", "snare": ".....o.....o", "ride": "X..x.xX..x.x",
         "pedal": "...x.....x.."}]),
}


def _drums(ctx: _Ctx, kit: str) -> Part:
    style = ctx.style
    part = Part("Drum Kit", "drums", Role.KIT, KITS[kit], bank=128, style=style.groove,
                tone=kit)
    groove = style.groove
    steps, variations = _GROOVES[groove]
    main = ctx.pick(variations)
    alt = ctx.pick(variations)
    half = _GROOVES["halftime"][1][int(ctx.rng.integers(3))]
    song = ctx.song
    for si, sec in enumerate(song.sections):
        if sec.name == "ending":
            _add(part, sec.start, 2.0, CRASH, ctx.vel(115))
            _add(part, sec.start, 1.0, KICK, ctx.vel(110))
            continue
        pattern = main if sec.name in ("verse", "intro", "outro") or sec.energy < 0.8 else alt
        if sec.name == "bridge" and groove not in ("swing", "shuffle") and ctx.chance(0.6):
            pattern = half
        sparse = sec.name == "intro" and ctx.chance(0.4)
        cymbal = "hat"
        if sec.energy >= 0.9 and groove in ("rock", "pop", "halftime", "ballad") and \
                ctx.chance(0.5):
            cymbal = "ride"
        for bar in range(sec.bars):
            b0 = sec.start + bar * BEATS_PER_BAR
            fill_bar = bar == sec.bars - 1 and sec.bars >= 4 and ctx.chance(0.75) and \
                si + 1 < len(song.sections)
            fill_from = steps if not fill_bar else (steps // 2 if ctx.chance(0.7) else
                                                    3 * steps // 4)
            if bar == 0 and (si > 0 or ctx.chance(0.5)) and not sparse:
                _add(part, b0 + ctx.jitter(), 1.5, CRASH if ctx.chance(0.8) else CRASH2,
                     ctx.vel(108))
            for line, keys in (("kick", (KICK,)), ("snare", (SNARE,)),
                               ("hat", (RIDE if cymbal == "ride" else HAT,)),
                               ("ride", (RIDE,)), ("open", (OPEN_HAT,)),
                               ("pedal", (PEDAL_HAT,))):
                if line not in pattern or (sparse and line == "snare"):
                    continue
                for step, vel in _steps(pattern[line]):
                    if step >= fill_from:
                        continue
                    if bar == 0 and step == 0 and line == "hat" and not sparse and si > 0:
                        continue  # the crash takes the downbeat
                    beat = b0 + step * BEATS_PER_BAR / steps
                    if steps == 16:
                        beat = ctx.swung(beat)
                    key = keys[0]
                    if line == "snare" and style.name == "electronic" and vel > 60:
                        key = CLAP if ctx.chance(0.8) else SNARE
                    if line == "snare" and style.name == "ballad" and sec.energy < 0.6 and \
                            vel > 60 and ctx.chance(0.7):
                        key = SIDESTICK
                    v = vel * (0.78 + 0.22 * sec.energy) if line != "snare" or vel > 60 else vel
                    if line == "hat" and steps == 16 and step % 4 == 0:
                        v += 8
                    _add(part, beat + ctx.jitter(0.004), 0.25, key, ctx.vel(v, 6))
            if groove == "swing":  # snare comping: a few random ghost hits
                for _ in range(int(ctx.rng.integers(0, 3))):
                    pos = int(ctx.rng.integers(0, 12)) * BEATS_PER_BAR / 12
                    _add(part, b0 + pos + ctx.jitter(), 0.2, SNARE, ctx.vel(45 + 20 *
                                                                             sec.energy))
            elif steps == 16 and sec.energy > 0.5 and ctx.chance(0.25):  # an extra ghost
                pos = int(ctx.rng.choice([3, 7, 11, 15])) / 4
                if b0 + pos < b0 + fill_from / 4:
                    _add(part, ctx.swung(b0 + pos), 0.2, SNARE, ctx.vel(40))
            if fill_bar:
                _fill(ctx, part, b0 + fill_from * BEATS_PER_BAR / steps,
                      b0 + BEATS_PER_BAR, steps)
    return part


def _fill(ctx: _Ctx, part: Part, start: float, end: float, steps: int) -> None:
    """A fill from `start` to `end`: snare and toms running down, kick underneath."""
    grid = BEATS_PER_BAR / (12 if steps == 12 else 16)
    if ctx.chance(0.3):
        grid *= 2
    n = int(round((end - start) / grid))
    kind = ctx.pick(("toms", "toms", "snare", "mixed"))
    voices = [SNARE] * 2 + list(TOMS[int(ctx.rng.integers(0, 2)):]) if kind != "snare" \
        else [SNARE]
    for i in range(n):
        t = start + i * grid
        if kind == "snare":
            key = SNARE
        elif kind == "mixed" and i % 2 == 0:
            key = SNARE
        else:
            key = voices[min(len(voices) - 1, i * len(voices) // max(n, 1))]
        _add(part, t + ctx.jitter(0.004), grid, key, ctx.vel(70 + 40 * i / max(n, 1)))
        if i % 4 == 0:
            _add(part, t, grid, KICK, ctx.vel(85))


def _percussion(ctx: _Ctx) -> Part:
    kind = ctx.pick(("Shaker", "Tambourine", "Congas", "Percussion"))
    part = Part(kind, "drums", Role.PERCUSSION, 0, bank=128, style=kind.lower(), tone="standard")
    for sec in ctx.song.sections:
        if sec.name == "ending" or sec.energy < 0.55 or (sec.name == "intro" and
                                                         ctx.chance(0.5)):
            continue
        for bar in range(sec.bars):
            b0 = sec.start + bar * BEATS_PER_BAR
            if kind == "Shaker":
                for s in range(16):
                    _add(part, ctx.swung(b0 + s / 4) + ctx.jitter(0.003), 0.2,
                         MARACAS if s % 2 == 0 or ctx.chance(0.8) else CABASA,
                         ctx.vel(70 if s % 4 == 2 else 52, 8))
            elif kind == "Tambourine":
                hits = (1, 3) if sec.energy < 0.85 else (0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5)
                for h in hits:
                    _add(part, ctx.swung(b0 + h) + ctx.jitter(), 0.3, TAMBOURINE,
                         ctx.vel(90 if h in (1, 3) else 60))
            else:
                pattern = ((0, CONGA_LOW), (1.5, CONGA_MUTE), (2, CONGA_OPEN),
                           (2.5, CONGA_OPEN), (3.5, CONGA_MUTE))
                if kind == "Percussion":
                    pattern = ((0.5, BONGO_HI), (1.5, BONGO_LO), (2.75, BONGO_HI),
                               (3, COWBELL if ctx.chance(0.3) else BONGO_LO), (3.5, BONGO_HI))
                for pos, key in pattern:
                    _add(part, ctx.swung(b0 + pos) + ctx.jitter(), 0.3, key, ctx.vel(78, 10))
    return part


# --------------------------------------------------------------------------------------
# Bass
# --------------------------------------------------------------------------------------

def _bass(ctx: _Ctx, instrument: Instrument, line: str) -> Part:
    part = Part(instrument.name, "bass", Role.BASS, instrument.program, style=line)
    song = ctx.song
    scale = song.scale()
    riff = _riff_pattern(ctx, busy=line == "riff" and ctx.style.name == "funk")
    lo = max(instrument.lo, 28)
    pulse = ctx.pick(("offbeat", "eighths", "octaves"))

    def root_note(chord: Chord) -> int:
        return _near(chord.root, 38, lo, lo + 14)

    for sec in song.sections:
        if sec.name == "intro" and ctx.chance(0.25):
            continue
        for start, length, chord in sec.chords:
            root = root_note(chord)
            nxt = song.chord_at(start + length + 0.01)
            if sec.name == "ending":
                _add(part, start, length, root, ctx.vel(100))
                continue
            fifth = root + 7
            third = root + chord.intervals[1]
            if line == "sustained" or (sec.energy < 0.5 and line != "synth"):
                beat = start
                while beat < start + length - 1e-9:
                    dur = min(2.0 if ctx.chance(0.5) else 4.0, start + length - beat)
                    pitch = root if beat == start else ctx.pick((root, fifth, root + 12))
                    _add(part, beat + ctx.jitter(), dur * 0.95, pitch, ctx.vel(88))
                    beat += dur
            elif line == "walking":
                beat, prev = start, root
                target = root_note(nxt)
                while beat < start + length - 1e-9:
                    last = beat + 1 >= start + length - 1e-9
                    if beat == start:
                        pitch = root
                    elif last:
                        pitch = target + ctx.pick((-1, 1, -2 if (target - 2) % 12 in scale
                                                   else 1))
                    else:
                        options = [m for m in range(prev - 4, prev + 5) if m % 12 in scale
                                   and m != prev and lo <= m <= lo + 19]
                        tones = [m for m in options if m % 12 in chord.pcs]
                        pitch = ctx.pick(tones if tones and ctx.chance(0.6) else options or
                                         [root])
                    swing_note = ctx.chance(0.15) and not last
                    _add(part, beat + ctx.jitter(), 0.9 if not swing_note else 0.6, pitch,
                         ctx.vel(92))
                    if swing_note:
                        _add(part, ctx.swung(beat + 0.5) + ctx.jitter(), 0.3, pitch,
                             ctx.vel(70))
                    prev = pitch
                    beat += 1.0
            elif line == "boogie":
                figure = (0, chord.intervals[1], 7, 9, 10, 9, 7, chord.intervals[1])
                for i in range(int(length * 2)):
                    pitch = root + figure[i % 8]
                    _add(part, ctx.swung(start + i * 0.5) + ctx.jitter(), 0.45, pitch,
                         ctx.vel(95 if i % 2 == 0 else 78))
            elif line == "riff":
                for i in range(int(length)):
                    bar_pos = (start - sec.start + i) % BEATS_PER_BAR
                    for pos, interval, dur, vel in riff:
                        if int(pos) != int(bar_pos):
                            continue
                        beat = start + i + (pos - int(pos))
                        _add(part, ctx.swung(beat) + ctx.jitter(0.004), dur,
                             root + interval, ctx.vel(vel))
            elif line == "synth":
                for i in range(int(length * 2)):
                    beat = start + i * 0.5
                    if pulse == "offbeat" and i % 2 == 0:
                        continue
                    pitch = root + (12 if pulse == "octaves" and i % 2 else 0)
                    _add(part, ctx.swung(beat), 0.4, pitch, ctx.vel(96 if i % 2 else 84))
            else:  # root_fifth, eighths
                busy = line == "eighths" or sec.energy >= 0.85
                step = 0.5 if busy else 1.0
                n = int(round(length / step))
                approach = ctx.chance(0.5)
                for i in range(n):
                    beat = start + i * step
                    if line == "eighths":
                        pitch = root
                    else:
                        pitch = (root, root, fifth, root + 12, root, third, fifth, root)[
                            i % 8] if ctx.chance(0.8) else ctx.pick((root, fifth))
                    if i == n - 1 and approach and nxt.root != chord.root:
                        target = root_note(nxt)
                        pitch = target + (-1 if target > root else 1)
                    _add(part, ctx.swung(beat) + ctx.jitter(), step * 0.85, pitch,
                         ctx.vel(98 if (i * step) % 2 == 0 else 82))
    return part


def _riff_pattern(ctx: _Ctx, busy: bool) -> list[tuple[float, int, float, int]]:
    """A one-bar bass riff: (beat in bar, interval above the root, length, velocity)."""
    grid = 0.25 if busy else 0.5
    slots = int(BEATS_PER_BAR / grid)
    intervals = (0, 0, 0, 12, 7, 10, 5, 3 if ctx.song.mode != "major" else 4, 12)
    out = [(0.0, 0, grid * 1.6, 105)]
    for i in range(1, slots):
        if ctx.chance(0.55 if busy else 0.6):
            dur = grid * (0.5 if busy and ctx.chance(0.5) else 0.9)
            out.append((i * grid, ctx.pick(intervals), dur, 92 if i % 2 == 0 else 80))
    return out


# --------------------------------------------------------------------------------------
# Electric guitar
# --------------------------------------------------------------------------------------

def _guitar(ctx: _Ctx, instrument: Instrument, style: str, tone: str, sections: set[int]
            ) -> Part:
    part = Part(instrument.name, "electric_guitar", Role.RHYTHM, instrument.program, style=style,
                tone=tone)
    song = ctx.song
    strum_pattern = ctx.pick(("D.DU.UDU", "D.D.DUDU", "D..UD.DU", "D.DUD.DU", "D...D.DU"))
    riff = [(p, iv, d, v) for p, iv, d, v in _riff_pattern(ctx, busy=False)]
    arp_order = ctx.pick(((0, 1, 2, 3, 2, 1, 3, 1), (0, 2, 1, 3, 0, 2, 1, 3),
                          (0, 1, 2, 1, 3, 1, 2, 1)))
    for si, sec in enumerate(song.sections):
        if si not in sections:
            continue
        for start, length, chord in sec.chords:
            if sec.name == "ending":
                _strum(ctx, part, start, 3.5, _guitar_voicing(chord), 100, True)
                continue
            if style == "power chords":
                root = _near(chord.root, 45, 40, 52)
                notes = [root, root + 7, root + 12]
                if sec.energy >= 0.85 and ctx.chance(0.5):
                    _strum(ctx, part, start, length * 0.98, notes, 105, True, spread=0.008)
                else:
                    for i in range(int(length * 2)):
                        beat = ctx.swung(start + i * 0.5)
                        accent = i % 4 == 0 or ctx.chance(0.15)
                        _strum(ctx, part, beat, 0.45 if accent else 0.22, notes,
                               100 if accent else 80, True, spread=0.004)
            elif style in ("strum", "comping"):
                voicing = _guitar_voicing(chord)
                if style == "comping":
                    for i in range(int(length)):  # four to the bar, short
                        _strum(ctx, part, start + i, 0.45, voicing[1:5],
                               85 if i % 2 else 75, True, spread=0.01)
                    continue
                for bar in range(int(math.ceil(length / BEATS_PER_BAR))):
                    for i, c in enumerate(strum_pattern):
                        beat = start + bar * BEATS_PER_BAR + i * 0.5
                        if c == "." or beat >= start + length - 1e-9:
                            continue
                        down = c == "D"
                        _strum(ctx, part, ctx.swung(beat), 0.9 if i < 7 else 0.45,
                               voicing if down else voicing[-4:], 96 if down else 78, down)
            elif style == "scratch":
                top = [m for m in _guitar_voicing(chord, 48)][-3:]
                for i in range(int(length * 4)):
                    beat = ctx.swung(start + i * 0.25)
                    accent = i % 4 == 2 or (i % 8 == 7 and ctx.chance(0.5))
                    if not accent and ctx.chance(0.25):
                        continue
                    _strum(ctx, part, beat, 0.2 if accent else 0.1, top,
                           98 if accent else 62, i % 2 == 0, spread=0.004)
            elif style == "stabs":
                top = _guitar_voicing(chord, 48)[-4:]
                for pos in (0.5, 1.5, 2.5, 3.5) if ctx.chance(0.6) else (0.75, 2.5, 3.25):
                    if pos < length:
                        _strum(ctx, part, ctx.swung(start + pos), 0.3, top, 95, True)
            elif style == "arpeggio":
                voicing = _guitar_voicing(chord)[:4]
                step = 0.5 if song.bpm > 90 or ctx.style.name == "electronic" else 0.25
                if ctx.style.name == "electronic":
                    step = 0.25
                for i in range(int(length / step)):
                    pitch = voicing[arp_order[i % 8] % len(voicing)] + 12 * (
                        ctx.style.name == "electronic")
                    _add(part, ctx.swung(start + i * step) + ctx.jitter(), step * 2.5, pitch,
                         ctx.vel(80 if i % 2 else 92))
            else:  # riff: single notes and fifths on the chord root
                root = _near(chord.root, 45, 40, 52)
                for i in range(int(length)):
                    bar_pos = (start - sec.start + i) % BEATS_PER_BAR
                    for pos, interval, dur, vel in riff:
                        if int(pos) != int(bar_pos):
                            continue
                        beat = ctx.swung(start + i + pos - int(pos))
                        notes = [root + interval] if interval else [root, root + 7]
                        for m in notes:
                            _add(part, beat + ctx.jitter(), dur, m, ctx.vel(vel))
    return part


def _strum(ctx: _Ctx, part: Part, beat: float, length: float, notes: Sequence[int],
           velocity: float, down: bool, spread: float = 0.012) -> None:
    """Notes of a chord a few milliseconds apart, low to high (down) or high to low."""
    order = list(notes) if down else list(notes)[::-1]
    offset = spread * ctx.song.bpm / 60.0
    base = beat + ctx.jitter(0.004)
    for i, m in enumerate(order):
        _add(part, base + i * offset, max(0.05, length - i * offset), m,
             ctx.vel(velocity - 3 * i, 5))


# --------------------------------------------------------------------------------------
# Wind
# --------------------------------------------------------------------------------------

def _winds(ctx: _Ctx, role: Role, vocal_sections: set[int]) -> list[Part]:
    style = ctx.style
    song = ctx.song
    if role == Role.SECTION:
        names = [n for n in ("trumpet", "alto sax", "tenor sax", "trombone", "baritone sax")
                 if n in style.winds or n in ("trumpet", "trombone")]
        k = int(ctx.rng.integers(2, 4))
        picked = [names[int(i)] for i in sorted(ctx.rng.choice(len(names), size=min(k, len(
            names)), replace=False))]
        instruments = [WINDS[n] for n in picked]
    else:
        instruments = [WINDS[ctx.pick(style.winds)]]
    parts = [Part(i.name, "wind", role, i.program, style=str(role)) for i in instruments]
    stab_rhythm = ctx.pick(((0.0, 0.5), (1.5, 2.5), (0.5, 1.5, 3.5), (0.0, 1.5, 3.0),
                            (2.5, 3.0), (0.75, 2.5, 3.25)))
    mel_seed = int(ctx.rng.integers(1 << 30))
    prev: list[list[int] | None] = [None] * len(parts)
    for si, sec in enumerate(song.sections):
        if sec.name == "ending":
            for part, ins in zip(parts, instruments, strict=True):
                chord = sec.chords[0][2]
                _add(part, sec.start, 3.0, _near(chord.root, (ins.lo + ins.hi) // 2, ins.lo,
                                                 ins.hi), ctx.vel(95))
            continue
        sung = si in vocal_sections
        if role in (Role.STABS, Role.SECTION):
            if sec.energy < 0.6 and ctx.chance(0.6) and not (sec.name == "solo"):
                continue
            if sec.name == "solo" and role == Role.SECTION:
                ins = instruments[0]
                _lead_line(ctx, parts[0], sec, ins.lo + 5, ins.hi - 3, 0.5, False)
                continue
            for start, length, chord in sec.chords:
                for bar in range(int(math.ceil(length / BEATS_PER_BAR))):
                    for pos in stab_rhythm:
                        beat = start + bar * BEATS_PER_BAR + pos
                        if beat >= start + length - 1e-9:
                            continue
                        top = 74 + int(ctx.rng.integers(-2, 3))
                        stack = _voicing(chord, None, top - 12, top, max(3, len(parts)))
                        for k, (part, ins) in enumerate(zip(parts, instruments, strict=True)):
                            m = stack[-1 - k % len(stack)]
                            while m > ins.hi:
                                m -= 12
                            while m < ins.lo:
                                m += 12
                            _add(part, ctx.swung(beat) + ctx.jitter(), ctx.pick((0.35, 0.5,
                                                                                 0.25)),
                                 m, ctx.vel(102))
        elif role == Role.PADS or (role == Role.MELODY and sung):
            if role == Role.MELODY and not (sec.energy >= 0.85 or ctx.chance(0.3)):
                continue
            ins = instruments[0]
            for start, length, chord in sec.chords:
                if role == Role.MELODY:  # a counter-line: one long chord tone per chord
                    m = _near(ctx.pick(chord.pcs[:3]), (ins.lo + ins.hi) // 2, ins.lo, ins.hi)
                    _add(parts[0], start + ctx.pick((0.0, 2.0)) + ctx.jitter(),
                         min(length, 4.0) * 0.9, m, ctx.vel(70))
                    continue
                notes = _voicing(chord, prev[0], ins.lo + 4, min(ins.hi, ins.lo + 28), 2)
                prev[0] = notes
                for m in notes:
                    _add(parts[0], start + ctx.jitter(), length * 0.97, m, ctx.vel(70))
        else:  # melody where nobody sings: intro, solo, instrumental sections
            ins = instruments[0]
            if sec.name == "solo":
                _lead_line(ctx, parts[0], sec, ins.lo + 5, ins.hi - 3, 0.55, False)
            else:
                for beat, length, pitch in _melody(ctx, sec, ins.lo + 7, ins.hi - 5, 0.65,
                                                   mel_seed):
                    _add(parts[0], beat + ctx.jitter(), length * 0.95, pitch, ctx.vel(92))
    return parts


# --------------------------------------------------------------------------------------
# Other: keys, strings, pads, acoustic guitar, synths
# --------------------------------------------------------------------------------------

def _other(ctx: _Ctx, key: str, sections: set[int], vocal_sections: set[int]) -> Part:
    ins = OTHERS[key]
    song = ctx.song
    role = (Role.PAD if key in ("strings", "slow strings", "synth strings", "warm pad",
                             "poly pad", "sweep pad", "drawbar organ", "rock organ")
            else Role.LEAD if key in ("square lead", "saw lead") else
            Role.ARPEGGIO if key in ("synth arp", "harp") else
            Role.STRUM if key in ("steel guitar", "nylon guitar") else Role.KEYS)
    part = Part(ins.name, "other", role, ins.program, style=str(role))
    comp = ctx.pick(("block", "offbeat", "broken", "charleston"))
    if ctx.style.name == "ballad":
        comp = "broken"
    elif ctx.style.name == "swing":
        comp = "charleston"
    elif ctx.style.name == "funk":
        comp = "offbeat"
    strum_pattern = ctx.pick(("D.DU.UDU", "D.D.DUDU", "D...D.DU"))
    mel_seed = int(ctx.rng.integers(1 << 30))
    prev = None
    for si, sec in enumerate(song.sections):
        if si not in sections:
            continue
        for start, length, chord in sec.chords:
            if sec.name == "ending":
                notes = _voicing(chord, prev, 55, 76, 4)
                for m in notes + [_near(chord.root, 40, 36, 48)]:
                    _add(part, start + ctx.jitter(), 3.5, m, ctx.vel(85))
                continue
            if role == Role.PAD:
                notes = _voicing(chord, prev, max(ins.lo, 52), 79, 4 if ctx.chance(0.5) else 3)
                prev = notes
                for m in notes:
                    _add(part, start + ctx.jitter(0.01), length * 0.98, m, ctx.vel(68))
                if key in ("drawbar organ", "rock organ") and sec.energy > 0.8:
                    _add(part, start, length * 0.98, _near(chord.root, 43, 36, 48), ctx.vel(70))
            elif role == Role.STRUM:
                voicing = _guitar_voicing(chord, 40)
                for i, c in enumerate(strum_pattern * int(math.ceil(length / 4))):
                    beat = start + i * 0.5
                    if c == "." or beat >= start + length - 1e-9:
                        continue
                    _strum(ctx, part, ctx.swung(beat), 0.9, voicing if c == "D" else
                           voicing[-4:], 88 if c == "D" else 70, c == "D")
            elif role == Role.ARPEGGIO:
                notes = _voicing(chord, prev, 60, 84, 4)
                prev = notes
                order = (0, 1, 2, 3, 2, 1, 0, 2)
                step = 0.25 if key == "synth arp" else 0.5
                for i in range(int(length / step)):
                    _add(part, start + i * step + ctx.jitter(0.003), step * 1.5,
                         notes[order[i % 8]], ctx.vel(82 if i % 4 else 96))
            elif role == Role.LEAD:
                continue  # melodies are written per section below
            else:  # keys: piano, electric piano, clavinet, vibraphone...
                notes = _voicing(chord, prev, 55, 76, 3 if key != "piano" else 4)
                prev = notes
                low = _near(chord.root, 43, 36, 50)
                if comp == "broken":
                    order = (0, 1, 2, 1) if len(notes) < 4 else (0, 1, 2, 3, 2, 1)
                    step = 0.5
                    _add(part, start, length * 0.95, low, ctx.vel(78))
                    for i in range(int(length / step)):
                        _add(part, ctx.swung(start + i * step) + ctx.jitter(), step * 2,
                             notes[order[i % len(order)]], ctx.vel(66))
                else:
                    hits = {"block": (0.0, 1.0, 2.0, 3.0), "offbeat": (0.5, 1.5, 2.5, 3.5),
                            "charleston": (0.0, 1.5)}[comp]
                    if key == "clavinet":
                        hits = (0.0, 0.75, 1.5, 2.5, 3.25)
                    for bar in range(int(math.ceil(length / BEATS_PER_BAR))):
                        for h in hits:
                            beat = start + bar * BEATS_PER_BAR + h
                            if beat >= start + length - 1e-9:
                                continue
                            dur = 0.4 if comp != "block" else 0.9
                            for m in notes:
                                _add(part, ctx.swung(beat) + ctx.jitter(), dur, m,
                                     ctx.vel(74 + 12 * sec.energy))
                        if comp == "block":
                            _add(part, start + bar * BEATS_PER_BAR, min(length, 4.0) * 0.9,
                                 low, ctx.vel(80))
        if role == Role.LEAD:
            if si in vocal_sections and sec.energy < 0.9:
                continue
            if sec.name == "solo":
                _lead_line(ctx, part, sec, ins.lo + 5, ins.hi - 8, 0.6, False)
            elif sec.name != "ending":
                for beat, length, pitch in _melody(ctx, sec, ins.lo + 5, ins.hi - 10, 0.6,
                                                   mel_seed):
                    _add(part, beat + ctx.jitter(), length * 0.9, pitch, ctx.vel(88))
    return part
