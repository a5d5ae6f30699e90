"""The engine child-process protocol: length-prefixed pickles over a pipe, with audio as
raw float32 bytes on the same pipe (read and written in large chunks, each of which
releases the interpreter lock). Plain Python and numpy, no Qt: the child processes use it
as well as the window.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import time
import traceback

import numpy as np

from stemwright.models.errors import StemwrightError

PROGRESS_INTERVAL = 0.05  # seconds between progress signals / messages
HEADER = struct.Struct("<Q")
IO_CHUNK = 1 << 23  # bytes per pipe read/write (each releases the GIL)


def child_streams():
    """In a child process: lower its priority (the window and playback win the CPU), and
    return (requests in, messages out) with stray prints sent to stderr instead of into
    the protocol."""
    try:
        os.nice(10)
    except (AttributeError, OSError):
        pass
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return sys.stdin.buffer, proto_out


def progress_sender(stream):
    """Engine progress callback for a child process: sends `progress` messages on `stream`,
    at most one per PROGRESS_INTERVAL (notices and the final report always go through)."""
    last = [0.0]

    def progress(p) -> None:
        now = time.monotonic()
        if p.message or p.fraction >= 1.0 or now - last[0] >= PROGRESS_INTERVAL:
            last[0] = now
            send_msg(stream, {"type": "progress", "fraction": float(p.fraction),
                              "eta": p.eta_seconds, "message": p.message})
    return progress


def send_error(stream, exc: BaseException) -> None:
    """Report `exc` to the parent as an `error` message: the exception itself when it
    pickles (else a RuntimeError with its text), with a traceback unless it is one of
    Stemwright's own clear errors."""
    tb = "" if isinstance(exc, StemwrightError) else traceback.format_exc()
    try:
        pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - any pickling failure
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    send_msg(stream, {"type": "error", "exc": exc, "traceback": tb})


def send_msg(stream, message: dict) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_exact(stream, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            raise EOFError("the other side closed the pipe")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_msg(stream) -> dict | None:
    head = stream.read(HEADER.size)
    if not head:
        return None
    if len(head) < HEADER.size:
        head += _read_exact(stream, HEADER.size - len(head))
    (n,) = HEADER.unpack(head)
    return pickle.loads(_read_exact(stream, n))


def send_array(stream, array: np.ndarray) -> None:
    data = memoryview(np.ascontiguousarray(array, dtype=np.float32)).cast("B")
    for start in range(0, len(data), IO_CHUNK):
        stream.write(data[start:start + IO_CHUNK])
    stream.flush()


def recv_array(stream, shape: tuple[int, ...], out: np.ndarray | None = None
                ) -> np.ndarray:
    """Read a float32 array of `shape` (into `out`, a C-contiguous float32 array, if given)."""
    usable = (out is not None and out.dtype == np.float32 and out.shape == tuple(shape)
              and out.flags.c_contiguous and out.flags.writeable)
    array = out if usable else np.empty(shape, dtype=np.float32)
    view = memoryview(array).cast("B")
    pos = 0
    while pos < len(view):
        n = stream.readinto(view[pos:pos + IO_CHUNK])
        if not n:
            raise EOFError("the other side closed the pipe")
        pos += n
    return array
