"""Melodies and words: improvised lead lines, phrase-built tunes, lyrics-like words, and
the vocal parts (lead vocal with one word per note, backing "oohs/aahs").

`_melody` returns (beat, length, MIDI pitch) triples and is shared by the vocals and the
wind and synth-lead parts in `parts.py`; `_lead_line` writes a solo straight into a part.
"""

from __future__ import annotations

import numpy as np

from .song import Part, Role, Section, _add, _Ctx
from .theory import BEATS_PER_BAR, _near, _voicing

# words sung one per note: lyrics-like lines, not meaning
_PRON = ("I", "you", "we", "they", "she", "he")
_VERB = ("love", "feel", "need", "want", "hold", "know", "see", "find", "call", "run",
         "fly", "fall", "dance", "burn", "shine", "wait", "stay", "go", "come", "take",
         "give", "dream", "sing", "break", "turn", "ride", "hear", "keep")
_DET = ("the", "my", "your", "our", "this", "a")
_NOUN = ("night", "light", "fire", "heart", "home", "road", "time", "sky", "rain", "sun",
         "dream", "stars", "sea", "wind", "world", "day", "soul", "life", "dawn", "moon",
         "street", "town", "song", "sound", "way", "door", "eyes", "hands", "gold", "storm")
_LINK = ("and", "in", "to", "with", "on", "so", "all", "now", "through", "for")
_END = ("high", "night", "sky", "free", "home", "go", "away", "you", "me", "day", "light",
        "love", "now", "fly", "low", "fire", "rain", "alone", "again", "on", "true", "down")
_FILL = ("oh", "yeah", "la", "na", "ooh", "whoa", "hey")


def _lead_line(ctx: _Ctx, part: Part, sec: Section, lo: int, hi: int, busy: float,
               bends: bool) -> None:
    """An improvised-sounding line: pentatonic/scale runs, held notes, the odd bend."""
    song = ctx.song
    minorish = song.mode in ("minor", "dorian")
    penta = (0, 3, 5, 7, 10) if minorish or ctx.style.chords == "blues" else (0, 2, 4, 7, 9)
    pcs = {(song.tonic + i) % 12 for i in penta}
    pool = [m for m in range(lo, hi + 1) if m % 12 in pcs]
    idx = len(pool) // 2
    beat = sec.start + ctx.pick((0.0, 0.5, 1.0))
    while beat < sec.end - 0.5:
        if ctx.chance(0.12):
            beat += ctx.pick((0.5, 1.0, 1.5))
            continue
        step = ctx.pick((0.25, 0.25, 0.5, 0.5, 1.0) if busy > 0.6 else (0.5, 0.5, 1.0, 1.5))
        if ctx.chance(0.15):
            step = ctx.pick((1.5, 2.0))
        idx = int(np.clip(idx + ctx.pick((-2, -1, -1, 1, 1, 2, 0)), 0, len(pool) - 1))
        bend = 0.0
        if bends and step >= 1.0 and ctx.chance(0.35):
            bend = ctx.pick((1.0, 2.0))
        length = min(step, sec.end - beat)
        _add(part, ctx.swung(beat) + ctx.jitter(), length * 0.95, pool[idx], ctx.vel(96),
             bend=bend)
        beat += step


# --------------------------------------------------------------------------------------
# Melodies and words
# --------------------------------------------------------------------------------------

def _phrase_rhythm(rng: np.random.Generator, beats: float, density: float
                   ) -> list[tuple[float, float]]:
    """(onset, length) in beats for one phrase: a pickup or not, a held last note, a rest."""
    grid = 0.5
    start = float(rng.choice([0.0, 0.0, 0.5, 1.0]))
    end = beats - float(rng.choice([1.0, 1.5, 2.0]))
    onsets = [start]
    t = start + grid
    while t < end - 1e-9:
        strong = abs(t % 1.0) < 1e-9
        if rng.random() < density * (1.15 if strong else 0.75):
            onsets.append(t)
        t += grid
    out = []
    for i, on in enumerate(onsets):
        nxt = onsets[i + 1] if i + 1 < len(onsets) else min(beats - 0.5, on + 2.0)
        out.append((on, max(0.25, nxt - on)))
    return out


def _melody(ctx: _Ctx, sec: Section, lo: int, hi: int, density: float, seed: int,
            phrase_bars: int = 2) -> list[tuple[float, float, int]]:
    """(beat, length, pitch) of a melody over a section: phrases A A' B A'' built from a
    per-section-name seed, so a repeated section gets the same tune over its chords."""
    song = ctx.song
    scale = sorted(song.scale())
    phrase_beats = phrase_bars * BEATS_PER_BAR
    n_phrases = max(1, sec.bars // phrase_bars)
    out: list[tuple[float, float, int]] = []
    shape = (0, 0, 1, 0) if n_phrases >= 4 else (0, 1, 0, 1)
    for p in range(n_phrases):
        kind = shape[p % 4]
        prng = np.random.default_rng([seed, kind])
        rhythm = _phrase_rhythm(prng, phrase_beats, density)
        base = sec.start + p * phrase_beats
        if base >= sec.end:
            break
        center = (lo + hi) / 2 + (2 if kind == 1 else 0)
        prev = int(center)
        direction = 1 if prng.random() < 0.5 else -1
        for i, (on, length) in enumerate(rhythm):
            beat = base + on
            if beat >= sec.end - 0.25:
                break
            chord = song.chord_at(beat)
            strong = abs(on % 2.0) < 1e-9 or i == len(rhythm) - 1
            if prng.random() < 0.25:
                direction = -direction
            if prev > hi - 3:
                direction = -1
            elif prev < lo + 3:
                direction = 1
            if strong or i == 0:
                target = prev + direction * int(prng.integers(0, 4))
                pitch = _near(int(prng.choice(chord.pcs[:3])), target, lo, hi)
                if abs(pitch - prev) > 7:
                    pitch = _near(chord.pcs[0], prev, lo, hi)
            else:
                steps = int(prng.choice([1, 1, 1, 2, 0]))
                cands = [m for m in range(lo, hi + 1) if m % 12 in scale]
                j = min(range(len(cands)), key=lambda k: abs(cands[k] - prev))
                pitch = cands[int(np.clip(j + direction * steps, 0, len(cands) - 1))]
            length = min(length, sec.end - beat)
            out.append((beat, length, int(pitch)))
            prev = int(pitch)
    return out


def _words(rng: np.random.Generator, n: int) -> list[str]:
    """`n` lyrics-like words for one phrase: pronoun, verb, article, noun, link, ... end."""
    if n <= 0:
        return []
    cycle = (_PRON, _VERB, _DET, _NOUN, _LINK, _DET, _NOUN, _LINK, _VERB, _DET, _NOUN)
    words = []
    for i in range(n - 1):
        pool = cycle[i % len(cycle)]
        if rng.random() < 0.1:
            pool = _FILL
        words.append(str(rng.choice(pool)))
    words.append(str(rng.choice(_END)))
    if n >= 3 and rng.random() < 0.2:
        words[-2:] = ["oh", str(rng.choice(_END))]
    return words


# --------------------------------------------------------------------------------------
# Vocals
# --------------------------------------------------------------------------------------

def _vocals(ctx: _Ctx, sections: set[int], voice: str) -> list[Part]:
    song = ctx.song
    lo, hi = (48, 67) if voice == "male" else (55, 74)
    lead = Part("Lead Vocal", "vocals", Role.LEAD_VOCAL, -1, style="sung", tone=voice)
    seeds: dict[str, int] = {}
    lyrics: dict[tuple[str, int], list[str]] = {}
    density = 0.55 if song.bpm > 110 else 0.7
    for si, sec in enumerate(song.sections):
        if si not in sections or sec.name == "ending":
            continue
        name = sec.name if sec.name in ("verse", "chorus", "pre", "bridge") else "verse"
        seeds.setdefault(name, int(ctx.rng.integers(1 << 30)))
        shift = 3 if name == "chorus" else (1 if name == "pre" else 0)
        notes = _melody(ctx, sec, lo + shift, hi + shift - (2 if name == "verse" else 0),
                        density + (0.1 if name == "chorus" else 0), seeds[name])
        # words: one line per phrase; a chorus sings the same words every time
        occurrence = sum(1 for s in song.sections[:si] if s.name == sec.name)
        key = (name, 0 if name == "chorus" else occurrence)
        phrases = _split_phrases(notes)
        if key not in lyrics:
            wrng = np.random.default_rng([seeds[name], 7, key[1]])
            lyrics[key] = [w for ph in phrases for w in _words(wrng, len(ph))]
        words = lyrics[key]
        if len(words) < len(notes):
            wrng = np.random.default_rng([seeds[name], 9, len(notes)])
            words = words + _words(wrng, len(notes) - len(words))
        for (beat, length, pitch), word in zip(notes, words, strict=False):
            _add(lead, beat + ctx.jitter(0.01), length * 0.92, pitch, ctx.vel(95), word)
    parts = [lead]
    if ctx.chance(0.8):
        parts.append(_backing(ctx, sections, voice))
    return parts


def _split_phrases(notes: list[tuple[float, float, int]]) -> list[list[tuple[float, float,
                                                                             int]]]:
    phrases: list[list[tuple[float, float, int]]] = []
    last_end = None
    for note in notes:
        if last_end is None or note[0] - last_end > 0.6:
            phrases.append([])
        phrases[-1].append(note)
        last_end = note[0] + note[1]
    return phrases


def _backing(ctx: _Ctx, sections: set[int], voice: str) -> Part:
    """Backing "oohs/aahs": held chord tones in the choruses, sung (espeak-ng) or a GM
    choir patch."""
    song = ctx.song
    sung = ctx.chance(0.55)
    program = -1 if sung else ctx.pick((52, 53, 52))
    part = Part("Backing Vocals", "vocals", Role.BACKING_VOCALS, program,
                style="oohs" if program == 53 else "aahs", tone=voice)
    vowel = "ooh" if part.style == "oohs" or (sung and ctx.chance(0.5)) else "aah"
    part.style = vowel + "s"
    lo, hi = (50, 69) if voice == "male" else (57, 76)
    n = 3 if not sung else 2
    chosen = [si for si, s in enumerate(song.sections) if si in sections and
              s.name in ("chorus", "outro", "bridge")]
    if not chosen:
        chosen = [si for si in sections if song.sections[si].name != "ending"]
    prev = None
    for si in chosen:
        sec = song.sections[si]
        for start, length, chord in sec.chords:
            notes = _voicing(chord, prev, lo, hi, n)
            prev = notes
            dur = min(length, 2.0 if sec.energy > 0.85 and ctx.chance(0.5) else length)
            beat = start
            while beat < start + length - 1e-9:
                for m in notes:
                    _add(part, beat + ctx.jitter(0.01), min(dur, start + length - beat) * 0.96,
                         m, ctx.vel(72), vowel if sung else "")
                beat += dur
    return part
