"""A quick pass of the fuzz script (packaging/fuzz_cli.py, issue 20): twenty hostile inputs
of every family through the command line, none may end in a traceback, a multi-line or
unexpected error, a hang, a memory blow-up or a broken output. The full run is
`.venv/bin/python packaging/fuzz_cli.py`."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest
import torch

FUZZ = Path(__file__).resolve().parents[1] / "packaging" / "fuzz_cli.py"


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_cli", FUZZ)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_cli"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("fuzz_cli", None)


@pytest.mark.skipif(sys.platform == "win32", reason="the fuzz script forks")
def test_twenty_mixed_hostile_inputs_end_well(fuzz, tmp_path, monkeypatch):
    monkeypatch.setenv("STEMWRIGHT_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    srv = fuzz.start_mirror()
    start = time.monotonic()
    try:
        fuzz.warm_up(tmp_path)
        cases = [c for c in fuzz.build_cases(7, srv.server_address[1])
                 if c.argv[0][0] != "evaluate"]  # evaluation cases take seconds each
        chosen = fuzz.pick(cases, 20, seed=7)
        assert {c.family for c in chosen} == set(fuzz.FAMILIES)
        summary = fuzz.run_fuzz(chosen, tmp_path)
    finally:
        srv.shutdown()
        srv.server_close()
        torch.set_num_threads(threads)
    assert summary["cases"] == 20
    assert summary["bad"] == [], json.dumps(summary["bad"], indent=1)
    assert set(summary["counts"]) <= {"ok", "refused"}
    assert time.monotonic() - start < 60  # about 15 s on a quiet machine
