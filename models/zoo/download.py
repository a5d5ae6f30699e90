"""Downloading model files: streamed, cancellable, checksum-verified and atomic.

A download goes into a temporary file next to `dest` and is moved onto `dest` with
`os.replace` only once it is complete and its checksum matches, so `dest` is either absent
or whole: an interrupted, cancelled or corrupt download never leaves a half-written model
behind. Failures raise the engine's own errors with one line a user can act on; when the
network is unreachable the message says how to install the model without it.
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
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import Cancelled, ChecksumError, ModelError, OfflineError

#: Bytes read per block; progress and cancel are checked once a block.
CHUNK_SIZE = 256 * 1024
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
                  model: str | None = None) -> Path:
    """Download `url` to `dest` atomically and return `dest`.

    `sha256_prefix` (any leading part of the hex digest, e.g. from `checksum_from_filename`)
    is verified before `dest` appears; None skips the check. `progress(done, total)` is
    called once before the first block and after every block (`total` is None when the
    server sends no length); `cancel()` is polled once a block. `timeout` bounds connecting
    and each read, in seconds. `model` only names the model in the offline message.

    Raises OfflineError (host unreachable, DNS failure, timeout, connection refused),
    ModelError (HTTP error status, interrupted transfer, unwritable destination),
    ChecksumError (content does not match) and Cancelled.
    """
    dest = Path(dest)
    expected = _normalise_prefix(sha256_prefix)
    host = urlsplit(url).hostname or url
    if cancel is not None and cancel():
        raise Cancelled("download cancelled")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part",
                                        dir=dest.parent)
    except OSError as exc:
        raise ModelError(f"cannot write to {dest.parent}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _fetch(url, out, host, progress, cancel, timeout, model)
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


def _normalise_prefix(prefix: str | None) -> str | None:
    if prefix is None:
        return None
    prefix = prefix.strip().lower()
    if not _HEX.fullmatch(prefix):
        raise ValueError(f"not a sha256 hex prefix: {prefix!r}")
    return prefix


def _fetch(url: str, out, host: str, progress: DownloadProgress | None,
           cancel: Callable[[], bool] | None, timeout: float, model: str | None) -> str:
    """Stream `url` into the open file `out`; return the hex sha256 of what was written."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as exc:
        exc.close()
        raise ModelError(f"download of {url} failed: HTTP {exc.code} "
                         f"{exc.reason or ''}".rstrip()) from exc
    except urllib.error.URLError as exc:
        raise _connection_error(url, host, exc.reason, model) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _connection_error(url, host, exc, model) from exc

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
                block = response.read(CHUNK_SIZE)
            except (OSError, http.client.HTTPException) as exc:
                raise _interrupted(url, done, total, model, exc) from exc
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
    return OfflineError(f"cannot reach {host} ({why}); to install without network access, "
                        f"{offline_hint(url, model)}")


def _interrupted(url: str, done: int, total: int | None, model: str | None,
                 exc: BaseException | None) -> ModelError:
    size = f"{done} of {total} bytes" if total is not None else f"{done} bytes"
    why = f": {exc}" if exc is not None and str(exc) else ""
    return ModelError(f"download of {url} was interrupted after {size}{why}; nothing was "
                      f"kept. Try again, or {offline_hint(url, model)}")


__all__ = ["CHUNK_SIZE", "checksum_from_filename", "download_file", "offline_hint",
           "sha256_file"]
