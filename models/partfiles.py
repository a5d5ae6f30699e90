"""Temporary `.part` files: telling a killed writer's leftovers from a live one's.

Downloads and saved audio are written to `.<name>.<random>.part` next to their destination
and renamed into place when complete. A process killed meanwhile (kill -9, power loss)
leaves that file behind. While a writer runs it holds an exclusive lock on its part
(`lock_part`), so the next run can remove exactly the parts nobody holds
(`remove_stale_parts`) without touching a concurrent writer's. Where file locks are not
available (Windows, some network file systems) a part untouched for a quarter hour counts
as stale.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

GRACE_SECONDS = 5.0  # younger parts are never touched (a writer may be about to lock it)
UNLOCKED_STALE_SECONDS = 900.0  # without locks, a part untouched this long is stale


def lock_part(fd: int) -> None:
    """Mark an open part file as being written (the lock goes when the fd is closed)."""
    if fcntl is not None:
        with contextlib.suppress(OSError):  # a file system without locks: age decides
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def remove_stale_parts(dest: str | os.PathLike[str]) -> list[Path]:
    """Delete the `.part` files that killed writers of `dest` left next to it; returns
    them. Parts locked by a live writer, and very recent ones, are left alone; errors are
    ignored (this is housekeeping, never a reason to fail)."""
    dest = Path(dest)
    prefix = f".{dest.name}."
    removed: list[Path] = []
    try:
        candidates = [p for p in dest.parent.iterdir()
                      if p.name.startswith(prefix) and p.name.endswith(".part")]
    except OSError:
        return removed
    now = time.time()
    for part in candidates:
        try:
            st = part.lstat()
            age = now - st.st_mtime
            if part.is_symlink() or not part.is_file() or age < GRACE_SECONDS:
                continue
            if fcntl is None:
                if age >= UNLOCKED_STALE_SECONDS:
                    part.unlink()
                    removed.append(part)
                continue
            with open(part, "rb") as fh:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer holds it
                part.unlink()
                removed.append(part)
        except OSError:
            continue
    return removed


__all__ = ["GRACE_SECONDS", "lock_part", "remove_stale_parts"]
