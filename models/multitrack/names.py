"""Track names and MIDI programs -> stems: the rules multitrack folders are mapped by.

Tolerant of case, accents, punctuation, studio shorthand and six languages; used by
`folders` for tracks that carry no metadata, and for Slakh's General MIDI programs.
"""

from __future__ import annotations

import re
import unicodedata

IGNORE = "ignore"  # the mapping target of tracks to leave out (click, timecode)


# Rules are tried in order and the first that matches wins, so specific phrases come
# before the words they contain ("bass drum" before "bass", "acoustic guitar" before
# "guitar"). Patterns run on the normalised name: lower case, accents removed, camelCase
# and letters/digits split, punctuation as spaces (see `normalise_name`).
_EXCEPTIONS = [
    (IGNORE, r"click|click track|metronome|count ?in|timecode|smpte|ltc"),
    ("drums", r"bass ?drum|kick|bd|sub ?kick|808 ?(?:kick|snare|hats?|clap)|steel ?drums?"),
    ("wind", r"bass ?(?:clarinet|flute|sax\w*|trombone|oboe)|basson|bassoon|english horn|"
             r"cor anglais|clarinette? basse"),
    ("other", r"backing ?track|accompaniment|instrumental|karaoke|playback|"
              r"acoustic (?:guitar|gtr|git)|ac (?:guitar|gtr)|acc? gtr|acou?s? ?gtr|"
              r"ag|nylon|classical guitar|spanish guitar|12 ?string|akusti\w*|"
              r"guitare? acoustique|guitarra acustica|chitarra acustica|violao|dobro|"
              r"steel string|folk guitar"),
    ("bass", r"bass ?(?:guitar|gtr|di|amp|mic|synth|line|cab|d i)|synth ?bass|sub ?bass|"
             r"double ?bass|contra ?bass|upright|electric bass|fretless|moog bass|808|"
             r"bass ?vox|bajo|basse|basso|baixo|kontrabass"),
]
_RULES = [
    ("drums", r"drums?|drumkit|kit|snare|snr|sn|sd|hi ?hats?|hh|hat|overheads?|oh|ride|"
              r"crash|cymbals?|cym|splash|china|toms?|rack|floor ?tom|ft|percussion|"
              r"percs?|shaker|tambourine|tamb|conga|congas|bongos?|cajon|claps?|hand ?claps|"
              r"snaps?|cowbell|timbales?|triangle|woodblock|guiro|djembe|tabla|timpani|"
              r"darbuka|breakbeat|drum ?machine|schlagzeug|batterie|bateria|"
              r"batteria|trommel|caisse claire|tambor|caja|rullante|cassa|grosse caisse|gong|"
              r"chimes|tubular bells"),
    ("wind", r"sax\w*|saxophon\w*|sassofono|trumpets?|tpt|trp|tromba|trompete|trompette|"
             r"trompeta|flugel\w*|cornet|trombones?|tbn|trb|posaune|trombon|horns?|"
             r"french horn|cor|corno|horn section|brass|blech|blaser|cuivres|metales|"
             r"tuba|euphonium|sousaphone|flutes?|piccolo|flauta|flauto|flote|flute|fl|"
             r"clarinets?|clar|klarinette|clarinette|clarinete|clarinetto|oboes?|hautbois|"
             r"oboe|recorder|blockflote|pan ?flute|harmonica|mundharmonika|bagpipes?|"
             r"whistle|woodwinds?|winds|reeds?|fiati|vientos|bari|ewi|ocarina|kazoo|dizi|"
             r"shakuhachi|bansuri|duduk|zurna|ney|shawm|didgeridoo"),
    ("bass", r"bass|bs|bas"),
    ("electric_guitar", r"guitars?|gtrs?|gtr|git|gits|gitarre\w*|e ?gitarre|guitare|"
                        r"guitarra|chitarra|eg|e gtr|elec gtr|dist\w*|overdrive|od|"
                        r"crunch|fuzz|lead gtr|rhythm gtr|rhy gtr|slide|lap ?steel|"
                        r"pedal ?steel|riff|shred|chug"),
    ("vocals", r"vocals?|vox|voc|vocal\w*|voice|voices|vo|lv|ld|bvs?|bgvs?|bkg ?v\w*|"
               r"backing|backings|bg vox|bgv|harmony|harmonies|adlibs?|"
               r"ad libs?|choir|chorus|chor|coro|coros|cori|choeur|singer|sing|rapper|"
               r"rap|spoken|speaker|speech|narrat\w*|beatbox\w*|talkbox|gesang|stimme|voix|"
               r"chant|voz|voce|ooh|oohs|aah|aahs|whisper|shout|yell"),
    ("other", r"piano|pno|keys?|keyboards?|rhodes|wurli\w*|organ|b3|hammond|synths?|"
              r"synthesizer|pads?|arp\w*|strings?|violins?|vln|viola|cello|vc|harp|"
              r"orchestra\w*|fx|sfx|effects?|sample\w*|glock\w*|vibes|vibraphone|"
              r"marimba|xylophone|celesta|banjo|mandolin\w*|ukulele|uke|sitar|"
              r"accordion|melodica|clavinet|clav|mellotron|noise|ambience|atmos\w*|"
              r"klavier|streicher|cordes|cuerdas|archi|orgel|orgue|pianoforte|harpsichord"),
]
_WEAK = [
    ("drums", r"room|rooms|amb|top|bottom|btm|kik|loop|loops|beat|beats"),
    ("vocals", r"lead|leads|main|dbl|double|harm|soprano|alto|tenor|baritone|mezzo"),
    ("electric_guitar", r"amp|steel"),
]


def _compile(rules: list[tuple[str, str]]) -> list[tuple[str, re.Pattern]]:
    return [(stem, re.compile(rf"(?:^| )(?:{pattern})(?= |$)")) for stem, pattern in rules]


_EXCEPTION_RE = _compile(_EXCEPTIONS)
_RULE_RE = _compile(_RULES)
_WEAK_RE = _compile(_WEAK)


def normalise_name(name: str) -> str:
    """"01_LeadVox-Dbl (Take2).wav" -> "lead vox dbl take 2": lower case, no accents,
    camelCase and digits split off, punctuation as spaces, track numbers removed."""
    name = re.sub(r"\.(?:wav|flac|aiff?|aifc|ogg|opus|mp3|m4a|aac|wv)$", "", name, flags=re.I)
    name = unicodedata.normalize("NFKD", name)
    name = "".join(ch for ch in name if not unicodedata.combining(ch))
    name = name.replace("ß", "ss")
    name = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    name = name.lower()
    name = re.sub(r"[^a-z0-9]+", " ", name)
    name = re.sub(r"([a-z])(\d)", r"\1 \2", name)
    name = re.sub(r"(\d)([a-z])", r"\1 \2", name)
    name = re.sub(r"^(?:(?:track|trk|tr|ch|s)?\s?\d{1,3}\s)+", "", name.strip())
    return re.sub(r"\s+", " ", name).strip()


def stem_for_name(name: str) -> str | None:
    """The canonical stem a track name suggests (IGNORE for click tracks and timecode), or
    None when no rule matches.

    Tolerates case, accents, punctuation, abbreviations and English, German, French,
    Spanish, Italian and Portuguese words: "Lead Vocal", "BGVs" -> vocals; "Kick", "OH L"
    -> drums; "Bass DI", "Synth Bass" -> bass; "Dist Gtr", "E-Gitarre" -> electric guitar;
    "Alto Sax", "Trompete" -> wind; "Piano", "Acoustic Guitar" -> other.
    """
    text = normalise_name(name)
    if not text:
        return None
    for table in (_EXCEPTION_RE, _RULE_RE, _WEAK_RE):
        for stem, pattern in table:
            if pattern.search(text):
                return stem
    return None


# General MIDI programs (0-127) -> stem, by the GM instrument families.
def stem_for_midi_program(program: int, is_drum: bool = False) -> str:
    """The stem a General MIDI program goes to (Slakh metadata)."""
    if is_drum:
        return "drums"
    p = int(program)
    if 24 <= p <= 25:
        return "other"  # nylon and steel acoustic guitars
    if 26 <= p <= 31:
        return "electric_guitar"  # jazz, clean, muted, overdriven, distortion, harmonics
    if 32 <= p <= 39 or p == 43:
        return "bass"  # basses and the contrabass
    if p == 47 or 113 <= p <= 119:
        return "drums"  # timpani; agogo, steel drums, woodblock, taiko, toms, synth drum
    if 56 <= p <= 79 or p in (109, 111):
        return "wind"  # brass, reed, pipe; bagpipe, shanai
    return "other"


__all__ = ["IGNORE", "normalise_name", "stem_for_midi_program", "stem_for_name"]
