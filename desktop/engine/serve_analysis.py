"""The tempo-and-key child process (`python -m stemwright.desktop.engine.serve_analysis`).

Why a process: librosa's first use imports it and compiles its numba kernels, which holds
the interpreter lock for stretches of 100 ms and more; in a thread of the window that
stalls the event loop (and playback) while a song is being separated. Plain Python and
numpy, no Qt. One request: a `{"type": "analyse", "samples": N}` message followed by N
float32 samples of mono audio at `ANALYSIS_RATE`; one answer: `{"type": "result", "bpm",
"beats", "key", "confidence"}` or an error message.
"""

from __future__ import annotations

import os
import sys

from .protocol import recv_array, recv_msg, send_error, send_msg

#: Below the engine's priority (nice 10): the tempo and key can wait, while the first
#: separated stems of a song just opened are what the user waits for.
NICE = 15


def main() -> int:
    try:
        os.nice(NICE)
    except (AttributeError, OSError):
        pass
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but the protocol on the pipe
    try:
        request = recv_msg(stdin)
        if request is None or request.get("type") != "analyse":
            return 0
        mono = recv_array(stdin, (int(request["samples"]),))
        from stemwright.models.analysis.tempo_key import ANALYSIS_RATE, detect_tempo_key

        found = detect_tempo_key(mono, ANALYSIS_RATE)
        send_msg(stdout, {"type": "result", "bpm": found.bpm, "beats": found.beats,
                          "key": found.key, "confidence": found.key_confidence})
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the window
        send_error(stdout, exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
