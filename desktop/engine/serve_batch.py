"""Entry point of the batch queue's process (`python -m` this module; see `child`): serve
one song at a time with the CLI's `separate_song` (which writes every file atomically and
then the `.stemwright.json` record), so the app and `stemwright separate --skip-existing`
agree on what is done. Imports no Qt.

Requests come on stdin: {"cmd": "song", "id", "song", "settings", "skip_existing"}, and
{"cmd": "cancel", "id"} at any time (read by a thread, so a cancel stops the song at the
model's next chunk and the export removes what it had written). Replies: `progress`
messages, then {"type": "end", "id", "status", "text"}.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable

from stemwright.models.cli.batch import Settings, Song, already_done, failure_text, separate_song
from stemwright.models.errors import Cancelled, StemwrightError
from stemwright.models.remix.export import shown
from stemwright.models.zoo import catalog as zoo

from .protocol import child_streams, progress_sender, recv_msg, send_msg

#: the command line (after the interpreter) of the batch process
BATCH_CHILD = ("-m", "stemwright.desktop.engine.serve_batch")

_separators: dict[tuple, object] = {}


def load_separator(settings: Settings):
    """The separator for `settings`, kept while the model stays the same."""
    key = (settings.model, settings.device, settings.segment, settings.overlap,
           settings.half)
    if key not in _separators:
        _separators.clear()
        _separators[key] = zoo.load_separator(settings.model, device=settings.device,
                                              segment=settings.segment,
                                              overlap=settings.overlap, half=settings.half)
    return _separators[key]


def run_one(song: Song, settings: Settings, skip_existing: bool,
            progress: Callable | None = None,
            cancel: Callable[[], bool] | None = None) -> tuple[str, str]:
    """Separate one song as `stemwright separate` does: (status, one line), status being
    done, skipped, failed or cancelled. Never raises for a problem of the song."""
    try:
        if skip_existing and already_done(song, settings):
            return "skipped", (f"already separated with these settings in "
                               f"{shown(song.folder)}")
        targets = song.targets(settings)
        in_way = next((t for t in targets if t.is_dir()), None)
        if in_way is not None:
            return "failed", failure_text(song, StemwrightError(
                f"{in_way} is a folder where a file goes; move or rename it"))
        clash = next((t for t in targets if os.path.lexists(t)), None)
        if clash is not None and not settings.force:
            return "failed", failure_text(song, StemwrightError(
                f"{clash} already exists; tick \u201cOverwrite existing files\u201d or "
                "choose another output folder"))
        if cancel is not None and cancel():
            return "cancelled", "cancelled"
        song.folder.mkdir(parents=True, exist_ok=True)
        line = separate_song(load_separator(settings), song, settings, progress, cancel)
    except Cancelled:
        return "cancelled", "cancelled"
    except Exception as exc:  # noqa: BLE001 - one bad song never stops the others
        return "failed", failure_text(song, exc)
    return "done", line.splitlines()[0]


def batch_main() -> None:
    """Entry point of the batch process: serve songs from stdin until EOF or quit."""
    proto_in, proto_out = child_streams()
    requests: queue.Queue = queue.Queue()
    cancelled: set[str] = set()

    def read() -> None:  # cancels must arrive while a song runs
        while True:
            try:
                msg = recv_msg(proto_in)
            except (OSError, EOFError, ValueError):
                msg = None
            if msg is None or msg.get("cmd") == "quit":
                requests.put(None)
                return
            if msg.get("cmd") == "cancel":
                cancelled.add(str(msg.get("id")))
            else:
                requests.put(msg)

    threading.Thread(target=read, name="batch-requests", daemon=True).start()
    progress = progress_sender(proto_out)
    while True:
        msg = requests.get()
        if msg is None:
            return
        if msg.get("cmd") != "song":
            continue
        sid = str(msg["id"])
        status, text = run_one(msg["song"], msg["settings"], bool(msg["skip_existing"]),
                               progress, lambda sid=sid: sid in cancelled)
        cancelled.discard(sid)
        send_msg(proto_out, {"type": "end", "id": sid, "status": status, "text": text})


if __name__ == "__main__":
    batch_main()
