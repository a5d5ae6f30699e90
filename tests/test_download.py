"""models.download against a real HTTP server on 127.0.0.1; nothing leaves the machine."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stemwright.models.errors import (
    Cancelled,
    ChecksumError,
    ModelError,
    OfflineError,
)
from stemwright.models.zoo import download as dl

PAYLOAD = os.urandom(300_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/model.th":
            self._send(PAYLOAD)
        elif self.path == "/no-length.th":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/truncated.th":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:100_000])
            self.wfile.flush()
            self.close_connection = True
        elif self.path == "/broken":
            self._send(b"oops", status=500)
        else:
            self._send(b"not here", status=404)

    def _send(self, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(dl, "CHUNK_SIZE", 32 * 1024)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sha256_file(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(PAYLOAD)
    assert dl.sha256_file(f) == PAYLOAD_SHA


@pytest.mark.parametrize("name, expected", [
    ("955717e8-8726e21a.th", "8726e21a"),
    ("vocals-b62c91ce.pth", "b62c91ce"),
    ("/cache/models/5c90dfd2-34c22ccb.th", "34c22ccb"),
    ("htdemucs.th", None),
    ("speech_f5e0d9f9.pth", None),
    ("drums-xyz.pth", None),
])
def test_checksum_from_filename(name, expected):
    assert dl.checksum_from_filename(name) == expected


def test_download_success_reports_progress(server, tmp_path):
    dest = tmp_path / "cache" / "sub" / "model.th"
    calls: list[tuple[int, int | None]] = []
    out = dl.download_file(f"{server}/model.th", dest, sha256_prefix=PAYLOAD_SHA[:8],
                           progress=lambda done, total: calls.append((done, total)))
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert calls[0] == (0, len(PAYLOAD)) and calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert len(calls) > 3
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:], strict=False))
    assert _leftovers(dest.parent) == ["model.th"]


def test_download_without_length_or_checksum(server, tmp_path):
    calls = []
    dest = dl.download_file(f"{server}/no-length.th", tmp_path / "m.th",
                            progress=lambda d, t: calls.append(t))
    assert dest.read_bytes() == PAYLOAD and set(calls) == {None}


def test_download_replaces_existing_file_only_when_complete(server, tmp_path):
    dest = tmp_path / "model.th"
    dest.write_bytes(b"old")
    with pytest.raises(ChecksumError):
        dl.download_file(f"{server}/model.th", dest, sha256_prefix="00000000")
    assert dest.read_bytes() == b"old"
    dl.download_file(f"{server}/model.th", dest, sha256_prefix=PAYLOAD_SHA[:8].upper())
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path) == ["model.th"]


def test_wrong_checksum_deletes_download(server, tmp_path):
    with pytest.raises(ChecksumError, match="corrupt") as err:
        dl.download_file(f"{server}/model.th", tmp_path / "model.th", sha256_prefix="deadbeef")
    assert "deadbeef" in str(err.value)
    assert _leftovers(tmp_path) == []


def test_invalid_checksum_prefix_is_rejected(tmp_path):
    with pytest.raises(ValueError):
        dl.download_file("http://127.0.0.1:9/x", tmp_path / "x", sha256_prefix="not-hex")


@pytest.mark.parametrize("path, status", [("/missing.th", "404"), ("/broken", "500")])
def test_http_errors(server, tmp_path, path, status):
    with pytest.raises(ModelError, match=f"HTTP {status}") as err:
        dl.download_file(f"{server}{path}", tmp_path / "model.th")
    assert not isinstance(err.value, OfflineError)
    assert _leftovers(tmp_path) == []


def test_truncated_transfer(server, tmp_path):
    with pytest.raises(ModelError, match="interrupted after 100000 of 300000 bytes") as err:
        dl.download_file(f"{server}/truncated.th", tmp_path / "model.th", model="htdemucs")
    assert "stemwright models import htdemucs" in str(err.value)
    assert _leftovers(tmp_path) == []


def test_connection_refused_is_offline(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/955717e8-8726e21a.th"
    with pytest.raises(OfflineError) as err:
        dl.download_file(url, tmp_path / "m" / "model.th", model="htdemucs", timeout=5)
    msg = str(err.value)
    assert "127.0.0.1" in msg and "refused" in msg and "\n" not in msg
    assert f"download {url} on another machine" in msg
    assert "`stemwright models import htdemucs <file>`" in msg
    assert _leftovers(tmp_path / "m") == []


def test_dns_failure_is_offline(tmp_path, monkeypatch):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(OfflineError, match="cannot reach dl.example.invalid .*lookup"):
        dl.download_file("https://dl.example.invalid/x-12345678.th", tmp_path / "x.th")
    assert _leftovers(tmp_path) == []


def test_timeout_is_offline(tmp_path):
    # A socket that listens but never answers: the request connects, the reply never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/model.th"
        with pytest.raises(OfflineError, match="timed out"):
            dl.download_file(url, tmp_path / "model.th", timeout=0.3)
    assert _leftovers(tmp_path) == []


def test_cancel_midway(server, tmp_path):
    seen = []

    def cancel() -> bool:
        return bool(seen) and seen[-1] >= 64 * 1024

    with pytest.raises(Cancelled):
        dl.download_file(f"{server}/model.th", tmp_path / "model.th",
                         progress=lambda done, total: seen.append(done), cancel=cancel)
    assert 0 < seen[-1] < len(PAYLOAD)
    assert _leftovers(tmp_path) == []


def test_cancel_before_start(server, tmp_path):
    with pytest.raises(Cancelled):
        dl.download_file(f"{server}/model.th", tmp_path / "model.th", cancel=lambda: True)
    assert _leftovers(tmp_path) == []


def test_unwritable_destination(server, tmp_path):
    dest = tmp_path / "model.th"
    dest.mkdir()  # a folder where the file should go: the final rename fails
    with pytest.raises(ModelError, match="cannot write"):
        dl.download_file(f"{server}/model.th", dest)
    assert _leftovers(tmp_path) == ["model.th"] and dest.is_dir()
