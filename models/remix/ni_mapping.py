"""Our six stems onto the four stem slots of an NI Stems file (`remix.nistems`): the slot
dataclasses, the presets and the spec strings users type (`--ni-stems-mapping`).

NI's slots are, in track order, drums, bass, other and vocals (those keys name them in
`fold_stems` and `read_ni_stems`), but each slot's name and colour in the manifest may be
any text, so a slot can hold the guitar ("Guitar") or the vocals and the rest together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import AudioError
from ..stems import STEM_IDS, get_stem

NI_STEMS: tuple[str, ...] = ("drums", "bass", "other", "vocals")  # track order after the mix
NI_NAMES = {"drums": "Drums", "bass": "Bass", "other": "Other", "vocals": "Vocals"}
#: NI's own default colours (also Mixxx's defaults for a stem without one)
NI_COLORS = {"drums": "#009E73", "bass": "#D55E00", "other": "#CC79A7", "vocals": "#56B4E9"}
#: which of our six stems each NI stem is the sum of
NI_FOLD: dict[str, tuple[str, ...]] = {
    "drums": ("drums",), "bass": ("bass",), "other": ("electric_guitar", "wind", "other"),
    "vocals": ("vocals",)}
_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
_MAX_NAME = 40  # characters of a slot name (players show a few)


@dataclass(frozen=True)
class NISlot:
    """One of NI's four stem tracks: the name and colour players show, and which of our
    stems (canonical ids) are summed into it."""

    name: str
    color: str  # "#RRGGBB"
    stems: tuple[str, ...]


@dataclass(frozen=True)
class NIMapping:
    """Our six stems onto NI's four slots (track order drums, bass, other, vocals: the
    keys `fold_stems` and `read_ni_stems` use, whatever the slots are named).

    Construction checks the names, colours and that no stem is in two slots; `check`
    then checks one separation's stems: each in a slot, and no slot left empty.
    """

    slots: tuple[NISlot, ...]
    label: str = "custom"  # the preset's name, or "custom"

    def __post_init__(self) -> None:
        if len(self.slots) != len(NI_STEMS):
            raise AudioError(f"an NI Stems mapping has {len(NI_STEMS)} slots, not "
                             f"{len(self.slots)}")
        seen: dict[str, str] = {}
        for slot in self.slots:
            if not slot.name.strip() or len(slot.name) > _MAX_NAME or not slot.name.isprintable():
                raise AudioError(f"NI Stems slot name {slot.name!r}: give 1 to {_MAX_NAME} "
                                 "printable characters")
            if not isinstance(slot.color, str) or not _COLOR.fullmatch(slot.color):
                raise AudioError(f"NI Stems slot {slot.name}: the colour must look like "
                                 f"#RRGGBB, not {slot.color!r}")
            if not slot.stems:
                raise AudioError(f"NI Stems slot {slot.name}: name at least one stem")
            for sid in slot.stems:
                if sid not in STEM_IDS:
                    raise AudioError(f"NI Stems slot {slot.name}: unknown stem '{sid}' "
                                     f"(known: {', '.join(STEM_IDS)})")
                if sid in seen:
                    raise AudioError(f"NI Stems mapping: {sid} is in two slots ({seen[sid]} "
                                     f"and {slot.name}); put each stem in one slot")
                seen[sid] = slot.name

    def spec(self) -> str:
        """The mapping as `parse_ni_mapping` reads it ("Name=stem+stem;..."): presets
        by name."""
        if self.label in NI_PRESETS:
            return self.label
        return ";".join(f"{s.name}={'+'.join(s.stems)}" for s in self.slots)

    def describe(self) -> str:
        """One line for people: "Drums | Bass | Other = electric guitar + wind + other"."""
        def one(s: NISlot) -> str:
            names = [get_stem(x).name.lower() for x in s.stems]
            if names == [s.name.lower()]:
                return s.name
            return f"{s.name} = {' + '.join(names)}"
        return " | ".join(one(s) for s in self.slots)

    def check(self, stem_ids: Iterable[str]) -> None:
        """AudioError unless these stems (canonical ids) fill every slot and each is in
        one: a slot with none of its stems would be silence, a stem in no slot lost."""
        have = set(stem_ids)
        lost = [s for s in STEM_IDS if s in have and not any(s in x.stems for x in self.slots)]
        if lost:
            raise AudioError(f"the NI Stems mapping puts {', '.join(lost)} in no slot; add "
                             "it to one of the four (every stem must be in the file)")
        empty = [s for s in self.slots if not have.intersection(s.stems)]
        if empty:
            what = ", ".join(s.name.lower() if list(s.stems) == [s.name.lower()]
                             else f"{s.name.lower()} ({' or '.join(s.stems)})" for s in empty)
            needs = [s.name.lower() for s in self.slots]
            raise AudioError(f"NI Stems needs {', '.join(needs[:-1])} and {needs[-1]}; "
                             f"missing: {what}. Use a model that separates them, choose "
                             "another mapping, or export plain stems instead")


def _preset(label: str, *slots: tuple[str, tuple[str, ...]]) -> NIMapping:
    return NIMapping(tuple(NISlot(name, NI_COLORS[key], stems)
                           for key, (name, stems) in zip(NI_STEMS, slots, strict=True)),
                     label)


#: Presets. Drums and bass always keep their own slots: DJ transitions are made on them
#: (bass swaps, drum blends), so they must stay clean. The instrument a preset isolates
#: takes NI's third slot, and the rest joins the vocals: the melodic parts and the vocals
#: are what clashes with the other deck's harmony, and are muted together.
NI_PRESETS: dict[str, NIMapping] = {
    "default": _preset("default", ("Drums", ("drums",)), ("Bass", ("bass",)),
                       ("Other", ("electric_guitar", "wind", "other")),
                       ("Vocals", ("vocals",))),
    "guitar": _preset("guitar", ("Drums", ("drums",)), ("Bass", ("bass",)),
                      ("Guitar", ("electric_guitar",)),
                      ("Vocals & Rest", ("vocals", "wind", "other"))),
    "wind": _preset("wind", ("Drums", ("drums",)), ("Bass", ("bass",)),
                    ("Wind", ("wind",)),
                    ("Vocals & Rest", ("vocals", "electric_guitar", "other"))),
}
DEFAULT_MAPPING = NI_PRESETS["default"]


def parse_ni_mapping(text: str | NIMapping | None) -> NIMapping:
    """A preset name (default, guitar, wind) or a spec of four groups separated by ';',
    each stems joined by '+' with an optional "Name=" (e.g. "drums;bass;Guitar=
    electric_guitar;vocals+other+wind"); unnamed groups are named after their stems and
    coloured as NI's slot. AudioError (one line) for anything else."""
    if text is None:
        return DEFAULT_MAPPING
    if isinstance(text, NIMapping):
        return text
    raw = str(text).strip()
    if raw.lower() in NI_PRESETS:
        return NI_PRESETS[raw.lower()]
    if ";" not in raw:
        raise AudioError(f"NI Stems mapping {raw!r}: choose a preset ({', '.join(NI_PRESETS)}) "
                         "or give four groups separated by ';', e.g. "
                         "drums;bass;electric_guitar;vocals+other+wind")
    groups = raw.split(";")
    if len(groups) != len(NI_STEMS):
        raise AudioError(f"NI Stems mapping {raw!r}: give {len(NI_STEMS)} groups separated "
                         f"by ';' (NI's drums, bass, other and vocals slots), not {len(groups)}")
    slots = []
    for key, group in zip(NI_STEMS, groups, strict=True):
        name, _, body = group.rpartition("=")
        stems = []
        for part in body.split("+"):
            try:
                stems.append(get_stem(part).id)
            except KeyError:
                what = f"unknown stem '{part.strip()}'" if part.strip() else "an empty stem"
                raise AudioError(f"NI Stems mapping {raw!r}: {what} in group "
                                 f"{group.strip()!r} (known: {', '.join(STEM_IDS)})") from None
        name = name.strip() or " + ".join(get_stem(s).name for s in stems)
        if len(set(stems)) != len(stems):
            raise AudioError(f"NI Stems mapping {raw!r}: a stem is repeated in group "
                             f"{group.strip()!r}")
        slots.append(NISlot(name, NI_COLORS[key], tuple(stems)))
    return NIMapping(tuple(slots))
