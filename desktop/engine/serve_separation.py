"""Entry point of the separation engine process (`python -m` this module; see `child`):
serve separation requests from stdin until EOF. Imports no Qt.
"""

from __future__ import annotations

import signal as _signal
import traceback

import numpy as np

from stemwright.models.zoo import catalog as zoo

from .protocol import (
    child_streams,
    progress_sender,
    recv_array,
    recv_msg,
    send_array,
    send_error,
    send_msg,
)


def engine_main() -> None:
    """Entry point of the engine process: serve requests from stdin until EOF."""
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # Ctrl+C is the app's to handle
    proto_in, proto_out = child_streams()

    cache: dict[tuple, object] = {}

    def load(model: str, device: str, segment, overlap):
        key = (model, device, segment, overlap)
        if key not in cache:
            cache.clear()
            cache[key] = zoo.load_separator(model, device=device, segment=segment,
                                            overlap=overlap)
        return cache[key]

    while True:
        msg = recv_msg(proto_in)
        if msg is None or msg.get("cmd") == "quit":
            return
        if msg["cmd"] == "warmup":
            try:  # import and exercise the default model once (numba, librosa, ...)
                sep = load(zoo.DEFAULT_MODEL, "cpu", None, None)
                sep.separate(np.zeros((2, sep.samplerate), dtype=np.float32), sep.samplerate)
            except Exception:  # noqa: BLE001 - a real separation will report it
                traceback.print_exc()
            send_msg(proto_out, {"type": "ready"})
            continue
        if msg["cmd"] != "separate":
            continue
        mix = recv_array(proto_in, tuple(msg["shape"]))
        progress = progress_sender(proto_out)

        def partial(p) -> None:
            send_msg(proto_out, {
                "type": "partial", "start": p.start, "end": p.end, "length": p.length,
                "samplerate": p.samplerate, "unavailable": tuple(p.unavailable),
                "stems": [(k, v.shape) for k, v in p.stems.items()]})
            for signal in p.stems.values():
                send_array(proto_out, signal)

        try:
            separator = load(msg["model"], msg["device"], msg["segment"], msg["overlap"])
            result = separator.separate(mix, msg["samplerate"], progress=progress,
                                        partial=partial if msg.get("partial") else None)
        except BaseException as exc:  # noqa: BLE001 - sent to the app as a dialog
            send_error(proto_out, exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                return
            continue
        del mix
        send_msg(proto_out, {
            "type": "result", "stems": [(k, v.shape) for k, v in result.stems.items()],
            "samplerate": result.samplerate, "model": result.model,
            "unavailable": tuple(result.unavailable), "residual_db": result.residual_db,
            "residual_in_other": result.residual_in_other, "notes": list(result.notes)})
        for signal in result.stems.values():
            send_array(proto_out, signal)
        del result


if __name__ == "__main__":
    engine_main()
