"""Starting a child Python process: the one launcher for the separation engine
(`serve_separation`), the evaluation (`serve_evaluation`) and the tempo-and-key analysis
(`serve_analysis`). The child gets this
interpreter, its import path, and pipes on stdin/stdout for the `protocol`.
"""

from __future__ import annotations

import os
import subprocess
import sys

#: The command line (after the interpreter) of each child process.
SEPARATION_CHILD = ("-m", "stemwright.desktop.engine.serve_separation")
EVALUATION_CHILD = ("-m", "stemwright.desktop.engine.serve_evaluation")
ANALYSIS_CHILD = ("-m", "stemwright.desktop.engine.serve_analysis")


def start_child(args: tuple[str, ...], unbuffered: bool = False) -> subprocess.Popen:
    """Start `python ARGS` with piped stdin/stdout and this process's import path; raises
    OSError when no interpreter can be started (e.g. next to a frozen app)."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if unbuffered:
        env.setdefault("PYTHONUNBUFFERED", "1")
    return subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, close_fds=True)
