"""Entry point of the evaluation process (`python -m` this module; see `child`): one
request on stdin, progress, songs and the report as messages on stdout. Imports no Qt.
"""

from __future__ import annotations

from .protocol import child_streams, progress_sender, recv_msg, send_error, send_msg


def evaluate_main() -> None:
    """Entry point of the evaluation process: one request on stdin, messages on stdout."""
    proto_in, proto_out = child_streams()
    from stemwright.models.evaluation.evaluate import evaluate

    msg = recv_msg(proto_in)
    if msg is None:
        return
    progress = progress_sender(proto_out)
    try:
        report = evaluate(msg["source"], msg["models"], msg["oracles"],
                          procedure=msg["procedure"], device=msg["device"], progress=progress,
                          on_song=lambda s: send_msg(proto_out, {"type": "song", "song": s}))
    except BaseException as exc:  # noqa: BLE001 - sent to the window as a dialog
        send_error(proto_out, exc)
        return
    send_msg(proto_out, {"type": "report", "report": report})


if __name__ == "__main__":
    evaluate_main()
