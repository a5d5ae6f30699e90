"""The batch queue's state, without Qt: the songs waiting, running and finished, the
queue's settings, adding files and folders with the CLI's rules (`cli.batch.find_songs`),
and saving it all as JSON (written atomically) so the queue survives a restart.

The window (`dialogs.batch_queue`) shows this state and the runner (`batch_runner`)
changes it; both work on the GUI thread only.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stemwright.models.audio.encode import check_lossy_options
from stemwright.models.audio.io import LOSSY_FORMATS, OUTPUT_FORMATS, SAVE_FORMATS
from stemwright.models.cli.batch import (
    NI_STEMS,
    NI_STEMS_KBPS,
    BatchError,
    Settings,
    Song,
    find_songs,
    model_pattern,
    preset_stems,
)
from stemwright.models.errors import AudioError, StemwrightError
from stemwright.models.remix.export import DEFAULT_PATTERN
from stemwright.models.remix.ni_mapping import parse_ni_mapping
from stemwright.models.remix.nistems import check_ni_codec
from stemwright.models.stems import STEM_IDS, get_stem
from stemwright.models.zoo import catalog as zoo

WAITING, RUNNING, DONE, SKIPPED, FAILED, CANCELLED = (
    "waiting", "running", "done", "skipped", "failed", "cancelled")
STATES = (WAITING, RUNNING, DONE, SKIPPED, FAILED, CANCELLED)
FINISHED = (DONE, SKIPPED, FAILED, CANCELLED)
#: what the queue can write: the CLI's `--format` choices
FORMATS = (*OUTPUT_FORMATS, NI_STEMS)
QUEUE_FILE = "batch_queue.json"
QUEUE_VERSION = 1
_MAX_QUEUE_BYTES = 16 << 20
#: `QueueSettings.write`: every stem the model makes, or the chosen `stems`; else a preset
WRITE_ALL, WRITE_STEMS = "all", "stems"


def format_label(fmt: str) -> str:
    """How a format is named in the window."""
    if fmt == NI_STEMS:
        return "NI Stems (.stem.mp4)"
    return LOSSY_FORMATS[fmt].name if fmt in LOSSY_FORMATS else fmt.upper()


@dataclass
class QueueSettings:
    """What every song of the queue is separated and written with: the choices of
    `stemwright separate` (--stems/--preset, --bitrate/--vbr, --ni-stems-mapping/-codec,
    --name-model, --copy-mix), saved with the queue."""

    model: str = zoo.DEFAULT_MODEL
    output: str = ""
    format: str = "wav"
    bit_depth: int = 24
    skip_existing: bool = True
    overwrite: bool = False
    device: str = "auto"
    write: str = WRITE_ALL  # WRITE_ALL, WRITE_STEMS (`stems`) or a --preset name
    stems: list[str] = field(default_factory=list)  # --stems, for WRITE_STEMS
    bitrate_kbps: int = 0  # lossy formats and NI Stems AAC; 0: the format's default
    vbr: int = -1  # MP3 VBR quality (--vbr); -1: constant bitrate
    ni_mapping: str = "default"  # a preset (default, guitar, wind) or a spec
    ni_codec: str = "aac"  # "aac" or "alac"
    ni_bit_depth: int = 24  # ALAC: 16 or 24
    name_model: bool = False
    copy_mix: bool = False

    def to_batch(self) -> Settings:
        """The CLI's `Settings` for these choices (what `stemwright separate` builds from
        the same options, so the record and --skip-existing agree); BatchError (one line)
        when they do not fit the model or each other. Options that do not apply to the
        format (hidden in the window) are left out, as the CLI user would."""
        try:
            entry = zoo.get_entry(self.model)
        except (KeyError, StemwrightError) as exc:
            raise BatchError(f"unknown model '{self.model}'; choose one from the list"
                             ) from exc
        if entry.needs_download and not zoo.is_installed(entry.name):
            raise BatchError(f"model '{entry.name}' is not downloaded yet; download it "
                             "first (Separation > Download selected model, or `stemwright "
                             f"models download {entry.name}`)")
        produced = tuple(entry.mapping.produced)
        if self.format not in FORMATS:
            raise BatchError(f"unknown format '{self.format}'; choose "
                             f"{', '.join(FORMATS)}")
        bitrate, vbr, depth, ni = self._encoding(entry.name, produced)
        stems, minus, preset = self._files(entry.name, produced)
        return Settings(model=entry.name, stems=stems, minus=minus, preset=preset,
                        format=self.format, bit_depth=depth, segment=None, overlap=None,
                        half=False, residual_to_other=True,
                        pattern=model_pattern(entry.name) if self.name_model
                        else DEFAULT_PATTERN, copy_mix=bool(self.copy_mix),
                        device=self.device, force=self.overwrite, bitrate_kbps=bitrate,
                        vbr=vbr, **ni)

    def _encoding(self, model: str, produced: tuple[str, ...]
                  ) -> tuple[int | None, int | None, int, dict[str, str]]:
        """(bitrate, vbr, bit depth, NI Stems options) as the CLI's `_format_options`
        and `ni_settings` make them."""
        kbps = self.bitrate_kbps or None
        if self.format in SAVE_FORMATS:
            depth = self.bit_depth
            return None, None, depth if depth in SAVE_FORMATS[self.format] else max(
                SAVE_FORMATS[self.format]), {}
        try:
            if self.format != NI_STEMS:
                vbr = self.vbr if self.format == "mp3" and self.vbr >= 0 else None
                bitrate, vbr = check_lossy_options(self.format, None if vbr is not None
                                                   else kbps, vbr)
                return bitrate, vbr, 24, {}  # no depth for lossy: the CLI's default
            codec = str(self.ni_codec).strip().lower()
            if codec == "alac":  # lossless: no bitrate (the CLI's default is recorded)
                depth, bitrate = self.ni_bit_depth, NI_STEMS_KBPS
            else:
                depth = 24
                bitrate = check_lossy_options("m4a", kbps, None, "NI Stems (AAC)")[0]
            check_ni_codec(codec, depth)
        except AudioError as exc:
            raise BatchError(str(exc)) from None
        try:
            mapping = parse_ni_mapping(self.ni_mapping)
        except AudioError as exc:
            raise BatchError(str(exc)) from None
        try:
            mapping.check(produced)
        except AudioError as exc:
            raise BatchError(f"model '{model}': {exc}") from None
        return (bitrate or NI_STEMS_KBPS, None, depth,
                {"ni_mapping": mapping.spec(), "ni_codec": codec})

    def _files(self, model: str, produced: tuple[str, ...]
               ) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
        """(stems, minus, preset) as the CLI's --stems/--preset make them."""
        if self.format == NI_STEMS:  # one file with the mix and four stems
            return (), (), None
        if self.write in ("", WRITE_ALL):
            return produced, (), None
        if self.write == WRITE_STEMS:
            try:
                stems = tuple(dict.fromkeys(get_stem(s).id for s in self.stems))
            except KeyError as exc:
                raise BatchError(f"{exc.args[0]}; choose from {', '.join(STEM_IDS)}"
                                 ) from None
            if not stems:
                raise BatchError("no stem is chosen; tick at least one stem to write, or "
                                 "choose every stem")
            absent = [s for s in stems if s not in produced]
            if absent:
                raise BatchError(f"model '{model}' does not produce "
                                 f"{', '.join(get_stem(s).name.lower() for s in absent)} "
                                 "(it produces: "
                                 f"{', '.join(get_stem(s).name.lower() for s in produced)})")
            return stems, (), None
        try:
            return preset_stems(self.write, produced)
        except BatchError as exc:
            raise BatchError(str(exc).replace("--preset ", "preset ")) from None


@dataclass
class QueueItem:
    """One song of the queue: its file, its folder below the output folder, its state."""

    path: str
    name: str
    rel: str  # the song's output folder, relative to the queue's output folder
    found: bool = False  # found in a folder (named with its path in messages)
    state: str = WAITING
    reason: str = ""  # one line: why it failed, was skipped or cancelled
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    fraction: float = 0.0  # progress of a running song (not saved)

    def folder(self, output: str | os.PathLike) -> Path:
        return Path(output) / self.rel

    def song(self, output: str | os.PathLike) -> Song:
        """The CLI's `Song` for this item with the queue's output folder."""
        return Song(Path(self.path), self.name, self.folder(output), found=self.found)


def _key(path: str | os.PathLike) -> str:
    return os.path.normcase(os.path.realpath(path))


class BatchQueue:
    """The songs of the batch queue, in run order, and its settings."""

    def __init__(self, settings: QueueSettings | None = None) -> None:
        self.settings = settings or QueueSettings()
        self.items: list[QueueItem] = []

    # -- adding -------------------------------------------------------------------------
    def add(self, paths: Iterable[str | os.PathLike],
            warn: Callable[[str], None] | None = None) -> tuple[list[QueueItem], list[str]]:
        """Add files and folders (searched recursively as `stemwright separate` does);
        returns (the items added, one line for each thing refused: duplicates, songs
        that would share an output folder, paths that hold no song)."""
        output = self.settings.output or "."
        refused: list[str] = []
        added: list[QueueItem] = []
        files = {_key(i.path) for i in self.items}
        folders = {os.path.normcase(i.rel) for i in self.items}
        for path in paths:
            try:
                songs = find_songs([str(path)], output, warn or refused.append)
            except StemwrightError as exc:
                refused.append(" ".join(str(exc).split()))
                continue
            for song in songs:
                if song.problem is not None:
                    refused.append(song.problem)
                    continue
                rel = os.path.relpath(song.folder, output)
                if _key(song.path) in files:
                    refused.append(f"{song.label}: already in the queue")
                    continue
                if os.path.normcase(rel) in folders:
                    refused.append(f"{song.label}: another song of the queue is already "
                                   f"separated into {song.folder}; rename one of them")
                    continue
                item = QueueItem(str(song.path), song.name, rel, found=song.found)
                files.add(_key(song.path))
                folders.add(os.path.normcase(rel))
                self.items.append(item)
                added.append(item)
        return added, refused

    # -- order and removal -------------------------------------------------------------
    def get(self, item_id: str) -> QueueItem | None:
        return next((i for i in self.items if i.id == item_id), None)

    def index(self, item_id: str) -> int:
        return next((n for n, i in enumerate(self.items) if i.id == item_id), -1)

    def move(self, item_id: str, to: int) -> None:
        """Put the item at position `to` (clamped)."""
        n = self.index(item_id)
        if n < 0:
            return
        item = self.items.pop(n)
        self.items.insert(max(0, min(to, len(self.items))), item)

    def reorder(self, ids: list[str]) -> None:
        """Put the items in the order of `ids` (those not named keep their place at the
        end, so nothing is ever lost)."""
        by_id = {i.id: i for i in self.items}
        ordered = [by_id.pop(i) for i in ids if i in by_id]
        self.items = ordered + [i for i in self.items if i.id in by_id]

    def remove(self, item_id: str) -> None:
        self.items = [i for i in self.items if i.id != item_id]

    def next_waiting(self) -> QueueItem | None:
        return next((i for i in self.items if i.state == WAITING), None)

    def counts(self) -> dict[str, int]:
        return {s: sum(i.state == s for i in self.items) for s in STATES}

    def overall(self) -> float:
        """The queue's progress 0..1: finished songs, and the running one's part."""
        if not self.items:
            return 0.0
        done = sum(1.0 if i.state in FINISHED else i.fraction if i.state == RUNNING
                   else 0.0 for i in self.items)
        return done / len(self.items)

    # -- saving -------------------------------------------------------------------------
    def to_json(self) -> dict:
        items = []
        for item in self.items:
            row = asdict(item)
            row.pop("fraction")
            items.append(row)
        return {"stemwright_queue": QUEUE_VERSION, "settings": asdict(self.settings),
                "items": items}

    @classmethod
    def from_json(cls, data: dict) -> BatchQueue:
        """A queue from `to_json`'s dict; a song that was running goes back to waiting,
        and what cannot be read is left out."""
        if not isinstance(data, dict) or data.get("stemwright_queue") != QUEUE_VERSION:
            return cls()
        raw = data.get("settings") if isinstance(data.get("settings"), dict) else {}
        defaults = asdict(QueueSettings())
        values = {k: raw[k] for k in defaults if k in raw  # missing keys: the defaults
                  and isinstance(raw[k], type(defaults[k]))
                  and (type(raw[k]) is not bool or type(defaults[k]) is bool)}
        if "stems" in values:
            values["stems"] = [s for s in values["stems"] if isinstance(s, str)]
        queue = cls(QueueSettings(**values))
        for row in data.get("items") or []:
            try:
                item = QueueItem(path=str(row["path"]), name=str(row["name"]),
                                 rel=str(row["rel"]), found=bool(row.get("found")),
                                 state=str(row.get("state", WAITING)),
                                 reason=str(row.get("reason", "")),
                                 id=str(row.get("id") or uuid.uuid4().hex[:12]))
            except (KeyError, TypeError):
                continue
            if item.state not in STATES or item.state == RUNNING:
                item.state, item.reason = WAITING, ""
            queue.items.append(item)
        return queue

    def save(self, path: str | os.PathLike) -> None:
        """Write the queue as JSON via a temporary file in the same folder (atomic)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_json(), indent=1, ensure_ascii=False)
        fd, tmp = tempfile.mkstemp(prefix=".batch_queue-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> BatchQueue:
        """The saved queue, or an empty one when there is none or it cannot be read."""
        try:
            path = Path(path)
            if path.stat().st_size > _MAX_QUEUE_BYTES:
                return cls()
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return cls()
