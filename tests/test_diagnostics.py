"""A fresh install works: native libraries load, torch/torchaudio are the pinned pair, the
wheel holds every module and resource, and `stemwright doctor` reports it."""

from __future__ import annotations

import ctypes.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from stemwright.models import diagnostics
from stemwright.models.cli import commands as cli

ROOT = Path(__file__).resolve().parents[1]


def test_every_runtime_dependency_imports_with_its_native_parts():
    assert diagnostics.import_all_runtime_modules() == []


def test_required_checks_pass_here():
    checks = {c.name: c for c in diagnostics.run_checks(gui=True)}
    failed = [f"{c.name}: {c.detail}" for c in checks.values() if c.required and not c.ok]
    assert failed == []
    assert "native library loads" in checks["torchaudio"].detail
    assert checks["qt"].ok, checks["qt"].detail
    if ctypes.util.find_library("portaudio"):
        assert checks["audio output"].ok, checks["audio output"].detail


def test_installed_torch_pair_is_the_pinned_pair():
    assert diagnostics.torch_pair_problem() is None
    pins = diagnostics.pinned_version("torch"), diagnostics.pinned_version("torchaudio")
    assert all(pins), "pyproject.toml must pin torch and torchaudio exactly (==)"
    assert diagnostics.installed_version("torch").split("+")[0] == pins[0]
    assert diagnostics.installed_version("torchaudio").split("+")[0] == pins[1]


def test_lock_pins_the_same_pair_as_pyproject():
    lock = (ROOT / "packaging" / "requirements.lock").read_text()
    project = (ROOT / "pyproject.toml").read_text()
    for dist in ("torch", "torchaudio"):
        locked = re.search(rf"^{dist}==(\S+)", lock, re.M)
        pinned = re.search(rf'"{dist}==([^"*]+)"', project)
        assert locked and pinned and locked.group(1) == pinned.group(1), dist
    names = {line.split("==")[0].lower() for line in lock.splitlines()
             if "==" in line and not line.startswith("#")}
    for needed in ("numpy", "pyside6-essentials", "soundfile", "av", "pytest", "shiboken6"):
        assert needed in names


def test_mismatched_torchaudio_is_named_with_the_fix(monkeypatch):
    versions = {"torch": "2.11.0", "torchaudio": "2.11.1"}
    monkeypatch.setattr(diagnostics, "installed_version", versions.get)
    monkeypatch.setattr(diagnostics, "pinned_version",
                        {"torch": "2.11.0", "torchaudio": "2.11.0"}.get)
    try:
        try:
            raise OSError("/x/libtorchaudio.so: undefined symbol: torch_exception_get_what")
        except OSError as inner:
            raise OSError("Could not load this library: /x/libtorchaudio.so") from inner
    except OSError as exc:
        line = diagnostics.explain(exc)
    assert line.startswith("torchaudio 2.11.1 does not match torch 2.11.0")
    assert "pip install torch==2.11.0 torchaudio==2.11.0" in line
    assert "\n" not in line


def test_explain_shows_the_root_cause_in_one_line():
    try:
        try:
            raise KeyError("header")
        except KeyError as inner:
            raise RuntimeError("could not read the model") from inner
    except RuntimeError as exc:
        line = diagnostics.explain(exc)
    assert line == "RuntimeError: could not read the model (cause: KeyError: 'header')"


def test_unexpected_error_prints_the_cause_and_debug_works_anywhere(monkeypatch, capsys):
    def boom(args):
        raise OSError("Could not load this library: libtorchaudio.so")

    monkeypatch.setattr(cli, "cmd_info", boom)
    monkeypatch.setattr(diagnostics, "torch_pair_problem",
                        lambda: "torchaudio 9.1 does not match torch 9.0: reinstall")
    assert cli.main(["info", "x.wav"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "torchaudio 9.1 does not match torch 9.0" in err
    with pytest.raises(OSError):  # --debug after the subcommand: the traceback is shown
        cli.main(["info", "x.wav", "--debug"])


def test_debug_is_taken_from_anywhere_but_after_double_dash():
    assert cli._take_debug(["separate", "a.wav", "--debug"]) == (["separate", "a.wav"], True)
    assert cli._take_debug(["--debug", "info", "a"]) == (["info", "a"], True)
    assert cli._take_debug(["info", "--", "--debug"]) == (["info", "--", "--debug"], False)


def test_doctor_json_reports_every_check(capsys):
    assert cli.main(["doctor", "--json", "--no-gui"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in rows]
    for name in ("torch", "torchaudio", "soundfile", "pyav", "soxr", "audio output",
                 "default model", "synth tools", "cache"):
        assert name in names
    assert all({"name", "ok", "detail", "required", "status"} <= r.keys() for r in rows)


def test_wheel_holds_every_module_and_resource(tmp_path):
    """A non-editable install gets every subpackage and data file: nothing is listed by
    hand, so a new folder cannot be left out."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
                            "-q", "-w", str(tmp_path), str(ROOT)], capture_output=True,
                           text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    assert "deprecat" not in build.stderr.lower() and "absent from" not in build.stderr
    wheel = next(tmp_path.glob("stemwright-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "models", "desktop", "resources"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    expected = {"stemwright/" + f for f in tracked}
    assert expected - names == set()
    assert not [n for n in names if n.endswith(".pyc")]
