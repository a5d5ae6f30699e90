"""Downloading model files: streamed, cancellable, checksum-verified and atomic.

A download goes into a temporary file next to `dest` and is moved onto `dest` with
`os.replace` only once it is complete and its checksum matches, so `dest` is either absent
or whole: an interrupted, cancelled or corrupt download never leaves a half-written model
behind. Failures raise the engine's own errors with one line a user can act on; when the
network is unreachable the message says how to install the model without it.

A server that stops sending, or trickles a few bytes at a time, cannot hang a download:
fewer than `STALL_BYTES` in `STALL_SECONDS` ends it, and so does `DEADLINE_SECONDS` overall.
The temporary file is locked while it is written (`partfiles`), so a later run tells the
`.part` file of a killed download from a live one and removes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import Cancelled, ChecksumError, ModelError, OfflineError
from ..partfiles import lock_part, remove_stale_parts

#: Bytes read per block; progress and cancel are checked once a block.
CHUNK_SIZE = 256 * 1024
#: A download that receives fewer than STALL_BYTES in STALL_SECONDS is given up.
STALL_SECONDS = 60.0
STALL_BYTES = 16 * 1024
#: No download may take longer than this, however it progresses (a backstop).
DEADLINE_SECONDS = 6 * 3600.0
USER_AGENT = "stemwright-model-downloader"

DownloadProgress = Callable[[int, int | None], None]

# `<anything>-<8 hex>.<ext>`: the torch.hub convention demucs and open-unmix follow.
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
_HEX = re.compile(r"[0-9a-f]{1,64}")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in blocks so large models never sit in memory whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_from_filename(name: str | os.PathLike[str]) -> str | None:
    """The SHA-256 prefix an official file name carries, or None.

    Demucs and Open-Unmix publish files as `<name>-<first 8 hex of sha256>.<ext>`
    (`955717e8-8726e21a.th` -> "8726e21a", `vocals-b62c91ce.pth` -> "b62c91ce").
    Only the last dash-separated group before the extension counts.
    """
    match = _HASH_IN_NAME.search(Path(name).name.lower())
    return match.group(1) if match else None


def offline_hint(url: str, model: str | None = None) -> str:
    """How to install a model file without network access from this machine."""
    return (f"download {url} on another machine and run "
            f"`stemwright models import {model or '<model>'} <file>`")


def download_file(url: str, dest: Path, sha256_prefix: str | None = None,
                  progress: DownloadProgress | None = None,
                  cancel: Callable[[], bool] | None = None, timeout: float = 30.0,
                  model: str | None = None, stall_seconds: float | None = None,
                  deadline: float | None = None) -> Path:
    """Download `url` to `dest` atomically and return `dest`.

    `sha256_prefix` (any leading part of the hex digest, e.g. from `checksum_from_filename`)
    is verified before `dest` appears; None skips the check. `progress(done, total)` is
    called once before the first block and after every block (`total` is None when the
    server sends no length); `cancel()` is polled once a block. `timeout` bounds connecting
    and each read, in seconds. `model` only names the model in the offline message.
    `stall_seconds` (default STALL_SECONDS) and `deadline` (default DEADLINE_SECONDS) end
    a download that receives fewer than STALL_BYTES in that long, or takes that long in
    all. Leftover `.part` files of killed downloads of `dest` are removed first.

    Raises OfflineError (host unreachable, DNS failure, timeout, connection refused),
    ModelError (HTTP error status, interrupted transfer, unwritable destination),
    ChecksumError (content does not match) and Cancelled.
    """
    dest = Path(dest)
    expected = _normalise_prefix(sha256_prefix)
    host = _check_url(url)
    stall = float(STALL_SECONDS if stall_seconds is None else stall_seconds)
    limit = float(DEADLINE_SECONDS if deadline is None else deadline)
    if cancel is not None and cancel():
        raise Cancelled("download cancelled")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(dest)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part",
                                        dir=dest.parent)
        lock_part(fd)
    except OSError as exc:
        raise ModelError(f"cannot write to {dest.parent}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _fetch(url, out, host, progress, cancel, min(timeout, stall), model,
                            _Pace(url, stall, limit, model))
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and not digest.startswith(expected):
            raise ChecksumError(
                f"{dest.name}: the downloaded file is corrupt or not the expected one "
                f"(sha256 {digest[:len(expected)]}..., expected {expected}...); it was "
                f"deleted, try again")
        os.replace(tmp, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):  # network errors were mapped already: this is local
            raise ModelError(f"cannot write {dest}: {exc.strerror or exc}") from exc
        raise
    return dest


def _check_url(url: str) -> str:
    """The host of an http(s) URL; ModelError (one line) for anything else."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        host, parts = None, None
    if any(ord(c) < 32 or ord(c) == 127 for c in url):  # a header injection or a typo
        raise ModelError(f"cannot download from {url[:200]!r}: the address contains "
                         "control characters such as line breaks (if STEMWRIGHT_MODEL_MIRROR "
                         "is set, make it a plain base URL such as https://example.org/models)")
    if parts is None or parts.scheme.lower() not in ("http", "https") or not host:
        raise ModelError(f"cannot download from '{url[:200]}': not an http:// or https:// "
                         "address (if STEMWRIGHT_MODEL_MIRROR is set, make it a base URL "
                         "such as https://example.org/models)")
    return host


class _Watchdog:
    """Cuts the connection when the server has not even sent its headers in time.

    A server can keep `urlopen` waiting forever by sending its status line and headers a
    byte at a time (each read returns before the socket timeout). The connections urllib
    makes are recorded, and a timer shuts the current one down after `seconds`, which
    turns the endless wait into an error.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.conn: http.client.HTTPConnection | None = None
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def wrap(self, http_class):  # noqa: ANN001, ANN201 - urllib's connection factory
        def connect(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            self.conn = http_class(*args, **kwargs)
            return self.conn
        return connect

    def opener(self) -> urllib.request.OpenerDirector:
        watch = self

        class Http(urllib.request.HTTPHandler):
            def do_open(self, http_class, req, **kwargs):  # noqa: ANN001, ANN003, ANN201
                return super().do_open(watch.wrap(http_class), req, **kwargs)

        class Https(urllib.request.HTTPSHandler):
            def do_open(self, http_class, req, **kwargs):  # noqa: ANN001, ANN003, ANN201
                return super().do_open(watch.wrap(http_class), req, **kwargs)

        return urllib.request.build_opener(Http, Https)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        self.fired = True
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Pace:
    """Ends a download that stalls (under STALL_BYTES in `stall` s) or runs past `limit` s."""

    def __init__(self, url: str, stall: float, limit: float, model: str | None) -> None:
        self.url, self.stall, self.limit, self.model = url, stall, limit, model
        self.start = self.window = time.monotonic()
        self.window_bytes = 0

    def check(self, got: int, done: int) -> None:
        now = time.monotonic()
        self.window_bytes += got
        if now - self.start > self.limit:
            raise ModelError(f"download of {self.url} took longer than {self.limit:.0f} s "
                             f"({done} bytes so far); nothing was kept. Try again later, or "
                             f"{offline_hint(self.url, self.model)}")
        if now - self.window >= self.stall:
            if self.window_bytes < STALL_BYTES:
                raise ModelError(f"download of {self.url} stalled (under {STALL_BYTES} bytes "
                                 f"in {self.stall:.0f} s, {done} bytes in all); nothing was "
                                 f"kept. Try again later, or "
                                 f"{offline_hint(self.url, self.model)}")
            self.window, self.window_bytes = now, 0


def _normalise_prefix(prefix: str | None) -> str | None:
    if prefix is None:
        return None
    prefix = prefix.strip().lower()
    if not _HEX.fullmatch(prefix):
        raise ValueError(f"not a sha256 hex prefix: {prefix!r}")
    return prefix


def _fetch(url: str, out, host: str, progress: DownloadProgress | None,
           cancel: Callable[[], bool] | None, timeout: float, model: str | None,
           pace: _Pace) -> str:
    """Stream `url` into the open file `out`; return the hex sha256 of what was written."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    watch = _Watchdog(pace.stall)
    try:
        with watch:
            response = watch.opener().open(request, timeout=timeout)
    except (OSError, http.client.HTTPException) as exc:
        if not watch.fired:
            raise _open_error(url, host, exc, model) from exc
        raise ModelError(f"{host} did not answer within {pace.stall:.0f} s (it sent no "
                         f"complete reply); nothing was kept. Try again later, or "
                         f"{offline_hint(url, model)}") from exc
    except ValueError as exc:  # e.g. http.client.InvalidURL
        raise ModelError(f"cannot download from '{url[:200]}': not a valid address "
                         f"({' '.join(str(exc).split())[:100]})") from exc
    return _stream(url, response, out, progress, cancel, model, pace)


def _open_error(url: str, host: str, exc: BaseException, model: str | None) -> ModelError:
    """The error for a failure to open `url` (HTTP status, or no connection)."""
    if isinstance(exc, urllib.error.HTTPError):
        exc.close()
        return ModelError(f"download of {url} failed: HTTP {exc.code} "
                          f"{' '.join(str(exc.reason or '').split())[:100]}".rstrip())
    if isinstance(exc, urllib.error.URLError):
        return _connection_error(url, host, exc.reason, model)
    return _connection_error(url, host, exc, model)


def _stream(url: str, response, out, progress: DownloadProgress | None,  # noqa: ANN001
            cancel: Callable[[], bool] | None, model: str | None, pace: _Pace) -> str:
    """Copy the open `response` into `out`; return the hex sha256 of what was written."""
    digest = hashlib.sha256()
    done = 0
    with response:
        total = _content_length(response)
        if progress is not None:
            progress(0, total)
        while True:
            if cancel is not None and cancel():
                raise Cancelled("download cancelled")
            try:
                # read1: whatever has arrived (one socket read), so a trickle is noticed
                block = response.read1(CHUNK_SIZE)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                raise _interrupted(url, done, total, model, exc) from exc
            pace.check(len(block), done + len(block))
            if not block:
                break
            try:
                out.write(block)
            except OSError as exc:
                raise ModelError(f"cannot write the download of {url}: "
                                 f"{exc.strerror or exc}") from exc
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress(done, total)
    if total is not None and done != total:
        raise _interrupted(url, done, total, model, None)
    return digest.hexdigest()


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _connection_error(url: str, host: str, reason: object, model: str | None) -> ModelError:
    """Map a failure to connect onto OfflineError (network) or ModelError (anything else)."""
    if isinstance(reason, ssl.SSLError | ssl.CertificateError):
        return ModelError(f"secure connection to {host} failed ({reason}); "
                          f"{offline_hint(url, model)}")
    if isinstance(reason, socket.gaierror):
        why = "host name lookup failed"
    elif isinstance(reason, TimeoutError | socket.timeout):
        why = "timed out"
    elif isinstance(reason, ConnectionRefusedError):
        why = "connection refused"
    elif isinstance(reason, OSError):
        why = reason.strerror or str(reason) or type(reason).__name__
    else:
        why = str(reason) or type(reason).__name__
    why = " ".join(why.split())[:200]  # a server's garbage status line: one short line
    return OfflineError(f"cannot reach {host} ({why}); to install without network access, "
                        f"{offline_hint(url, model)}")


def _interrupted(url: str, done: int, total: int | None, model: str | None,
                 exc: BaseException | None) -> ModelError:
    size = f"{done} of {total} bytes" if total is not None else f"{done} bytes"
    why = f": {exc}" if exc is not None and str(exc) else ""
    return ModelError(f"download of {url} was interrupted after {size}{why}; nothing was "
                      f"kept. Try again, or {offline_hint(url, model)}")


__all__ = ["CHUNK_SIZE", "DEADLINE_SECONDS", "STALL_BYTES", "STALL_SECONDS",
           "checksum_from_filename", "download_file", "offline_hint", "sha256_file"]
