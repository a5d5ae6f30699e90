"""Model zoo: registry facts, download through a local server, import, remove, load."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from demucs.htdemucs import HTDemucs

from stemwright.models.errors import ChecksumError, ModelError, OfflineError
from stemwright.models.stems import FOUR_STEMS
from stemwright.models.zoo import catalog as zoo


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("STEMWRIGHT_MODEL_MIRROR", raising=False)
    return tmp_path / "cache"


def official_th_bytes(seed: int = 0) -> bytes:
    """A tiny HTDemucs in the official demucs .th package layout."""
    torch.manual_seed(seed)
    kwargs = dict(sources=list(FOUR_STEMS.native), channels=4, depth=2, nfft=512, t_layers=1,
                  t_heads=2, dconv_comp=4, segment=Fraction(1, 1), samplerate=44100)
    model = HTDemucs(**kwargs)
    state = {k: v.half() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"klass": HTDemucs, "args": (), "kwargs": kwargs, "state": state}, buf)
    return buf.getvalue()


class _Server:
    def __init__(self, files: dict[str, bytes]) -> None:
        files_ = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                body = files_.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tiny_entry(monkeypatch):
    """A registry entry whose official file is a tiny HTDemucs served on 127.0.0.1."""
    data = official_th_bytes()
    name = f"tiny-{hashlib.sha256(data).hexdigest()[:8]}.th"
    server = _Server({name: data})
    entry = zoo.ModelEntry("tiny", "Tiny", "demucs", FOUR_STEMS, 44100, len(data) / 1e6,
                           "MIT", "test", "test model", (zoo.RemoteFile(f"{server.url}/{name}"),))
    monkeypatch.setitem(zoo.ZOO, "tiny", entry)
    yield entry, data
    server.close()


def test_registry_entries_are_complete():
    names = {e.name for e in zoo.list_models()}
    assert {"classic", "htdemucs", "htdemucs_6s", "htdemucs_ft", "umxhq", "umxl"} <= names
    six = zoo.get_entry("htdemucs_6s")
    assert six.mapping.target_of("guitar") == "electric_guitar"
    assert six.mapping.target_of("piano") == "other"
    for e in zoo.list_models():
        assert e.licence and e.source and e.samplerate == 44100
        for f in e.files:
            assert f.url.startswith("https://") and f.checksum and len(f.checksum) == 8
    assert len(zoo.get_entry("htdemucs_ft").files) == 4
    with pytest.raises(ModelError, match="unknown model"):
        zoo.get_entry("nope")


def test_not_downloaded_model_says_how_to_get_it():
    with pytest.raises(ModelError, match="stemwright models download htdemucs"):
        zoo.load_separator("htdemucs", device="cpu")


def test_download_then_separate(tiny_entry, cache):
    entry, data = tiny_entry
    seen = []
    folder = zoo.download_model("tiny", progress=lambda d, t: seen.append(d))
    assert (folder / entry.files[0].filename).read_bytes() == data
    assert seen and seen[-1] == len(data)
    assert zoo.is_installed("tiny")
    sep = zoo.load_separator("tiny", device="cpu")
    mix = (0.1 * np.random.default_rng(0).standard_normal((2, 30000))).astype(np.float32)
    result = sep.separate(mix, 44100)
    assert set(result.stems) == {"vocals", "drums", "bass", "other"}
    assert np.allclose(result.sum(), mix, atol=1e-5)
    assert zoo.remove_model("tiny") and not zoo.is_installed("tiny")


def test_mirror_and_checksum_failure(tiny_entry, monkeypatch, cache):
    entry, _ = tiny_entry
    bad = _Server({entry.files[0].filename: b"not the model"})
    try:
        monkeypatch.setenv("STEMWRIGHT_MODEL_MIRROR", bad.url)
        with pytest.raises(ChecksumError):
            zoo.download_model("tiny")
        assert not zoo.is_installed("tiny")
        assert not any(p.is_file() for p in cache.rglob("*"))
    finally:
        bad.close()


def test_offline_message_points_to_import(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("STEMWRIGHT_MODEL_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(OfflineError, match="stemwright models import htdemucs"):
        zoo.download_model("htdemucs")


def test_import_official_file_by_checksum(tiny_entry, tmp_path):
    entry, data = tiny_entry
    local = tmp_path / "downloaded elsewhere.th"
    local.write_bytes(data)
    dest = zoo.import_model_file("tiny", local)
    assert dest.name == entry.files[0].filename and zoo.is_installed("tiny")
    other = tmp_path / "other.th"
    other.write_bytes(official_th_bytes(seed=3))
    with pytest.raises(ModelError, match="not an official file"):
        zoo.import_model_file("tiny", other)


def test_import_custom_demucs_checkpoint(tmp_path):
    path = tmp_path / "mine.th"
    path.write_bytes(official_th_bytes(seed=5))
    zoo.import_model_file("my-model", path)
    entry = zoo.get_entry("my-model")
    assert entry.family == "stemwright" and zoo.is_installed("my-model")
    sep = zoo.load_separator("my-model", device="cpu")
    mix = (0.1 * np.random.default_rng(1).standard_normal((2, 20000))).astype(np.float32)
    assert set(sep.separate(mix, 44100).stems) == {"vocals", "drums", "bass", "other"}


def test_import_refuses_garbage(tmp_path):
    junk = tmp_path / "junk.th"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelError):
        zoo.import_model_file("junk", junk)
    assert "junk" not in {e.name for e in zoo.list_models()}


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """A tiny MaskNet checkpoint standing in for the embedded model's file."""
    from stemwright.models.architectures import registry as arch

    kwargs = arch.config("masknet", small=True)
    path = arch.save_model(tmp_path / "stemwright6.safetensors", "masknet",
                           arch.build("masknet", small=True, seed=0), kwargs,
                           {"trained_by": "test"})
    monkeypatch.setattr(zoo, "embedded_checkpoint", lambda: path)
    return path


def test_embedded_model_loads_from_the_package(embedded, capsys):
    from stemwright.models.cli import commands as cli

    assert zoo.EMBEDDED_MODEL in {e.name for e in zoo.list_models()}
    entry = zoo.get_entry(zoo.EMBEDDED_MODEL)
    assert entry.family == "embedded" and not entry.needs_download
    assert zoo.is_installed(zoo.EMBEDDED_MODEL)
    assert zoo.checkpoint_path(zoo.EMBEDDED_MODEL) == embedded
    sep = zoo.load_separator(zoo.EMBEDDED_MODEL, device="cpu")
    mix = (0.1 * np.random.default_rng(0).standard_normal((2, 8000))).astype(np.float32)
    result = sep.separate(mix, 44100)
    assert list(result.stems) == ["vocals", "drums", "bass", "electric_guitar", "wind",
                                  "other"]
    assert np.abs(sum(result.stems.values()) - mix).max() < 1e-4  # masks sum to one
    with pytest.raises(ModelError, match="built into Stemwright"):
        zoo.remove_model(zoo.EMBEDDED_MODEL)
    assert embedded.exists()
    assert cli.main(["models", "list"]) == 0
    row = next(r for r in capsys.readouterr().out.splitlines()
               if r.startswith(zoo.EMBEDDED_MODEL))
    assert "built in" in row


def test_missing_embedded_model_is_hidden_and_explained(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "embedded_checkpoint", lambda: tmp_path / "gone.safetensors")
    assert zoo.EMBEDDED_MODEL not in {e.name for e in zoo.list_models()}
    assert not zoo.is_installed(zoo.EMBEDDED_MODEL)
    with pytest.raises(ModelError, match="reinstall Stemwright"):
        zoo.load_separator(zoo.EMBEDDED_MODEL, device="cpu")
