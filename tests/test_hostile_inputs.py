"""Hostile inputs from the fuzz run of issue 20, each rebuilt here as a tiny file.

YAML alias bombs and deep nesting, collections with one bad song, metadata pointing
outside its song, symlink loops and fan-out, trickling and non-URL mirrors, killed
downloads' `.part` files, audio whose header lies about its length, truncated OGG, NaN
samples, and a file too short to resample. Every refusal must be one line naming the
file, and come after bounded work.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemwright.models.audio import io as audio_io
from stemwright.models.audio.io import audio_info, iter_blocks, load_audio, save_audio
from stemwright.models.errors import AudioError, ModelError
from stemwright.models.multitrack.folders import (
    MAPPING_FILE,
    MultitrackError,
    read_mapping,
    scan_folder,
)
from stemwright.models.yaml_safe import YamlFileError, safe_yaml_load, safe_yaml_loads
from stemwright.models.zoo import download as dl

SR = 8000


def tone(seconds: float = 0.3, sr: int = SR, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.2 * np.sin(2 * np.pi * 330 * t)
    return np.stack([x] * channels).T.astype(np.float32)


def write(path: Path, seconds: float = 0.3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds), SR)
    return path


def tracks_song(folder: Path) -> Path:
    write(folder / "Lead Vox.wav")
    write(folder / "Kick.wav")
    return folder


def bomb(levels: int) -> str:
    """The fuzz run's alias bomb: ten references per level (10**levels strings)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def one_line(text: str) -> bool:
    return "\n" not in text and len(text) < 400


# --------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------

def test_safe_yaml_refuses_aliases_and_depth_but_reads_plain_yaml(tmp_path):
    assert safe_yaml_loads("songs:\n  A: {x.wav: vocals}\n", "m.yaml") == {
        "songs": {"A": {"x.wav": "vocals"}}}
    with pytest.raises(YamlFileError, match=r"^m\.yaml: uses an alias"):
        safe_yaml_loads(bomb(9), "m.yaml")
    with pytest.raises(YamlFileError, match=r"^m\.yaml: is nested more than"):
        safe_yaml_loads("[" * 5000 + "]" * 5000, "m.yaml")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (9 * 1024 * 1024))
    with pytest.raises(YamlFileError, match="too big"):
        safe_yaml_load(big)
    with pytest.raises(YamlFileError) as exc:
        safe_yaml_loads("songs: {a: 1\n", "bad.yaml")
    assert one_line(str(exc.value)) and str(exc.value).startswith("bad.yaml: not valid YAML")


def test_alias_bomb_in_mapping_file_is_refused_in_one_short_line(tmp_path):
    tracks_song(tmp_path / "Song")
    (tmp_path / MAPPING_FILE).write_text(bomb(9) + "songs: {}\n")
    start = time.monotonic()
    with pytest.raises(MultitrackError) as exc:
        scan_folder(tmp_path)
    assert time.monotonic() - start < 5
    message = str(exc.value)
    assert one_line(message) and MAPPING_FILE in message and "alias" in message


def test_deeply_nested_mapping_files_are_refused_in_one_line(tmp_path):
    path = tmp_path / MAPPING_FILE
    path.write_text("songs: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(MultitrackError) as exc:
        read_mapping(path)
    assert one_line(str(exc.value)) and MAPPING_FILE in str(exc.value)
    path = tmp_path / "stemwright-mapping.json"
    path.write_text('{"songs": ' + "[" * 100000 + "]" * 100000 + "}")
    with pytest.raises(MultitrackError) as exc:
        read_mapping(path)
    assert one_line(str(exc.value)) and "stemwright-mapping.json" in str(exc.value)


@pytest.mark.parametrize("metadata", [
    bomb(9) + "stems: {S01: {program_num: 1}}\n",  # alias bomb
    "stems: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",  # RecursionError before
], ids=["alias-bomb", "deep"])
def test_bad_metadata_skips_only_its_song(tmp_path, metadata):
    tracks_song(tmp_path / "Good")
    bad = tmp_path / "Bad"
    tracks_song(bad)
    (bad / "metadata.yaml").write_text(metadata)
    start = time.monotonic()
    scan = scan_folder(tmp_path)
    assert time.monotonic() - start < 5
    assert [s.key for s in scan.songs] == ["Good"]
    (line,) = [p for p in scan.problems if p.startswith("Bad")]
    assert one_line(line) and "metadata.yaml" in line


# --------------------------------------------------------------------------------------
# Collections: one bad song never hides the rest
# --------------------------------------------------------------------------------------

def slakh_song(folder: Path, program: object) -> None:
    write(folder / "mix.flac")
    write(folder / "stems" / "S00.flac")
    write(folder / "stems" / "S01.flac")
    (folder / "metadata.yaml").write_text(
        "stems:\n"
        "  S00: {program_num: 33, inst_class: Bass, is_drum: false}\n"
        f"  S01: {{program_num: {program}, inst_class: Piano, is_drum: false}}\n")


@pytest.mark.parametrize("program", ["banana", "1e999", "-5", "300", "[1, 2]", "2.5"])
def test_bad_slakh_program_skips_only_that_song(tmp_path, program):
    slakh_song(tmp_path / "Track00001", 0)
    slakh_song(tmp_path / "Track00002", program)
    scan = scan_folder(tmp_path)
    assert [s.key for s in scan.songs] == ["Track00001"]
    (line,) = [p for p in scan.problems if p.startswith("Track00002")]
    assert one_line(line) and "program_num" in line


@pytest.mark.parametrize("where", ["absolute", "dotdot", "stem_dir", "mix"])
def test_medleydb_metadata_pointing_outside_the_song_is_refused(tmp_path, where):
    outside = write(tmp_path / "elsewhere" / "secret.wav")
    root = tmp_path / "collection"
    tracks_song(root / "Good")
    song = root / "Bad"
    write(song / "Bad_STEMS" / "Bad_STEM_01.wav")
    write(song / "Bad_MIX.wav")
    stems = {"absolute": str(outside), "dotdot": "../../../elsewhere/secret.wav"}
    filename = stems.get(where, "Bad_STEM_01.wav")
    stem_dir = "../../elsewhere" if where == "stem_dir" else "Bad_STEMS"
    mix = "/etc/passwd" if where == "mix" else "Bad_MIX.wav"
    (song / "Bad_METADATA.yaml").write_text(
        f"mix_filename: {mix}\nstem_dir: {stem_dir}\n"
        f"stems:\n  S01: {{filename: '{filename}', instrument: male singer}}\n"
        f"  S02: {{filename: Bad_STEM_01.wav, instrument: drum set}}\n")
    scan = scan_folder(root)
    assert [s.key for s in scan.songs] == ["Good"]
    (line,) = [p for p in scan.problems if p.startswith("Bad")]
    assert one_line(line) and "outside the song folder" in line


# --------------------------------------------------------------------------------------
# Symbolic links: each real folder once
# --------------------------------------------------------------------------------------

def test_symlink_loop_lists_a_song_once(tmp_path):
    tracks_song(tmp_path / "Album" / "Song")
    (tmp_path / "Album" / "Song" / "again").symlink_to(tmp_path / "Album")
    (tmp_path / "Album" / "loop").symlink_to(tmp_path)
    scan = scan_folder(tmp_path)
    assert [s.key for s in scan.songs] == ["Album/Song"]
    assert len(scan.songs[0].tracks) == 2  # the link inside the song adds no copies


def test_symlink_fan_out_is_walked_once(tmp_path):
    tracks_song(tmp_path / "A" / "Song")
    for i in range(4):  # the fuzz run's 20 took the old walk past 90 s; 4 list it 341 times
        (tmp_path / "A" / f"link{i:02d}").symlink_to(tmp_path / "A")
    (tmp_path / "0-first-link").symlink_to(tmp_path / "A" / "Song")  # sorts before "A"
    start = time.monotonic()
    scan = scan_folder(tmp_path)
    assert time.monotonic() - start < 5
    assert [s.key for s in scan.songs] == ["A/Song"]  # the real path, not the link's


# --------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------

BODY = os.urandom(200_000)


class _Mirror(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/slow-headers.th":  # the status line a byte every 0.2 s
            try:
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n":
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        try:
            if self.path == "/trickle.th":  # one byte every 0.2 s, for up to 20 s
                for i in range(100):
                    self.wfile.write(BODY[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.2)
            elif self.path == "/slow.th":  # steady 2 kB every 0.05 s (5 s): never stalls
                for i in range(0, len(BODY), 2_000):
                    self.wfile.write(BODY[i:i + 2_000])
                    self.wfile.flush()
                    time.sleep(0.05)
            else:
                self.wfile.write(BODY)
        except OSError:
            pass  # the client gave up

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def mirror():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_trickling_mirror_hits_the_stall_deadline(mirror, tmp_path, capfd):
    start = time.monotonic()
    with pytest.raises(ModelError) as exc:
        dl.download_file(f"{mirror}/trickle.th", tmp_path / "m.th", stall_seconds=1.0)
    assert time.monotonic() - start < 5
    assert one_line(str(exc.value)) and "stalled" in str(exc.value)
    assert list(tmp_path.iterdir()) == []
    assert capfd.readouterr().err == ""


def test_mirror_trickling_its_headers_is_cut_off(mirror, tmp_path):
    start = time.monotonic()
    with pytest.raises(ModelError) as exc:
        dl.download_file(f"{mirror}/slow-headers.th", tmp_path / "m.th", stall_seconds=1.0)
    assert time.monotonic() - start < 5
    assert one_line(str(exc.value)) and "did not answer within 1 s" in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_overall_deadline_ends_a_slow_download(mirror, tmp_path):
    start = time.monotonic()
    with pytest.raises(ModelError, match="took longer than 1 s"):
        dl.download_file(f"{mirror}/slow.th", tmp_path / "m.th", deadline=1.0)
    assert time.monotonic() - start < 5
    assert list(tmp_path.iterdir()) == []


def test_stale_part_files_of_killed_downloads_are_removed(mirror, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    dead = tmp_path / ".m.th.k1ll3d.part"
    dead.write_bytes(b"half a model")
    live = tmp_path / ".m.th.l1ve00.part"
    live.write_bytes(b"another download in progress")
    old = time.time() - 3600
    os.utime(dead, (old, old))
    os.utime(live, (old, old))
    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # as the live download does
        dl.download_file(f"{mirror}/m.th", tmp_path / "m.th")
        assert sorted(p.name for p in tmp_path.iterdir()) == [".m.th.l1ve00.part", "m.th"]


@pytest.mark.parametrize("url", ["not a url/htdemucs.th", "ftp://127.0.0.1:9/x.th",
                                 "http://127.0.0.1:notaport/x.th", "file:///etc/passwd",
                                 "http:///nohost.th"])
def test_a_mirror_that_is_not_an_http_url_gets_one_line(tmp_path, url, capfd):
    with pytest.raises(ModelError) as exc:
        dl.download_file(url, tmp_path / "x.th")
    message = str(exc.value)
    assert one_line(message) and ("not an http" in message or "not a valid address" in message)
    assert capfd.readouterr().err == ""
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# Audio whose header lies
# --------------------------------------------------------------------------------------

def flac_with_total(path: Path, total: int, seconds: float = 2.0) -> Path:
    """A valid FLAC whose STREAMINFO total_samples says `total` (0: written to a pipe)."""
    sf.write(path, tone(seconds, 44100), 44100, format="FLAC")
    data = bytearray(path.read_bytes())
    field = int.from_bytes(data[21:26], "big") & ~((1 << 36) - 1) | total
    data[21:26] = field.to_bytes(5, "big")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("total", [0, 1, (1 << 36) - 1], ids=["pipe", "one", "huge"])
def test_flac_with_a_lying_length_is_read_whole(tmp_path, caplog, total):
    path = flac_with_total(tmp_path / "song.flac", total)
    start = time.monotonic()
    assert audio_info(path).frames == 88200
    assert sum(b.shape[-1] for b in iter_blocks(path, 10_000)) == 88200
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=audio_io.__name__):
        audio = load_audio(path)
    assert audio.data.shape == (2, 88200) and audio.info.frames == 88200
    assert time.monotonic() - start < 5
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert one_line(warning) and "song.flac" in warning and "length" in warning


def test_mp3_with_a_huge_frame_count_allocates_nothing_huge(tmp_path):
    path = tmp_path / "song.mp3"
    try:
        sf.write(path, tone(1.0, 44100), 44100, format="MP3")
    except (sf.LibsndfileError, TypeError, ValueError):
        pytest.skip("this libsndfile cannot write MP3")
    data = bytearray(path.read_bytes())
    at = max(data.find(b"Xing"), data.find(b"Info"))
    if at < 0 or not int.from_bytes(data[at + 4:at + 8], "big") & 1:
        pytest.skip("no Xing frame count to corrupt")
    data[at + 8:at + 12] = (0x7FFFFFFF).to_bytes(4, "big")  # 2**31 frames x 1152 samples
    path.write_bytes(bytes(data))
    info = audio_info(path)
    assert 40_000 < info.frames < 50_000
    assert 40_000 < load_audio(path).data.shape[-1] < 50_000


def test_truncated_ogg_warns_in_one_line(tmp_path, caplog):
    path = tmp_path / "cut.ogg"
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, (3 * 44100, 2)).astype(np.float32)
    sf.write(path, noise, 44100, format="OGG")
    whole = path.read_bytes()
    with caplog.at_level(logging.WARNING, logger=audio_io.__name__):
        load_audio(path)
    assert not caplog.records  # a complete file gives no warning
    path.write_bytes(whole[:len(whole) // 2])
    with caplog.at_level(logging.WARNING, logger=audio_io.__name__):
        audio = load_audio(path)
    assert 0 < audio.data.shape[-1] < 3 * 44100
    (warning,) = [r.getMessage() for r in caplog.records]
    assert one_line(warning) and "cut.ogg" in warning and "cut off" in warning


def test_nan_samples_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "broken float.wav"
    data = tone(0.2)
    data[100, 0] = np.nan
    sf.write(path, data, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"^broken float\.wav: the audio contains NaN"):
        load_audio(path)
    with pytest.raises(AudioError, match=r"^broken float\.wav: the audio contains NaN"):
        list(iter_blocks(path, 1000))


def test_one_sample_at_192_khz_is_too_short_to_resample(tmp_path):
    path = tmp_path / "click.wav"
    sf.write(path, np.zeros((1, 1), np.float32), 192000)
    with pytest.raises(AudioError, match=r"^click\.wav: too short"):
        load_audio(path, samplerate=44100)


def test_save_removes_the_part_files_of_killed_saves(tmp_path):
    dead = tmp_path / ".stem.wav.0badf00d.part"
    dead.write_bytes(b"RIFF half a stem")
    old = time.time() - 3600
    os.utime(dead, (old, old))
    save_audio(tmp_path / "stem.wav", tone(0.1).T, SR)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stem.wav"]


def test_yaml_with_control_characters_is_one_line():
    """The YAML reader refuses control characters while the loader is built: still the
    one-line YamlFileError, not an unexpected error."""
    with pytest.raises(YamlFileError, match=r"^bad\.yaml: not valid YAML"):
        safe_yaml_loads("a: \x07b\n", "bad.yaml")
