"""Running the songs of a `stemwright separate` batch (see `batch` for what is run): one
after another in this process, or in `--jobs` worker processes, with Ctrl+C and SIGTERM
(what torchrun sends) stopping cleanly: workers stop at their next cancel check and the
export in progress removes its temporaries."""

from __future__ import annotations

import contextlib
import queue
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..audio.io import audio_info
from ..diagnostics import explain
from ..errors import Cancelled, StemwrightError
from ..separation.devices import configure_cpu_threads
from ..zoo import catalog as zoo
from .batch import Settings, Song, Summary, _print, failure_text, separate_song


def run_serial(todo: Sequence[Song], settings: Settings, summary: Summary, total: int,
               threads: int | None, bar_factory: Callable) -> None:
    """Separate the songs one after another in this process (a separator loaded once)."""
    sep = zoo.load_separator(settings.model, device=settings.device,
                             segment=settings.segment, overlap=settings.overlap,
                             half=settings.half)
    if threads is not None and sep.device.type == "cpu":
        configure_cpu_threads(threads)
    previous = _raise_on_sigterm()
    try:
        for song in todo:
            audio_seconds = _seconds(song.path)
            where = f"[{len(summary.outcomes) + 1}/{total}] " if total > 1 else ""
            bar = bar_factory(audio_seconds, f"{where}{song.name[:30]} [{settings.model}]")

            def progress(p, bar=bar) -> None:
                bar.n = round(p.seconds_done, 1)
                bar.refresh()
                if p.message:
                    bar.write(f"note: {p.message}")

            try:
                line, status = separate_song(sep, song, settings, progress), "done"
            except (Cancelled, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - one bad song never stops the others
                if settings.debug:
                    raise
                line, status = failure_text(song, exc), "failed"
            finally:
                bar.close()
            summary.add(song, status, line, _print)
    finally:
        _restore_sigterm(previous)


def _seconds(path: Path) -> float:
    try:
        return max(audio_info(path).duration, 0.1)
    except StemwrightError:
        return 1.0


def _raise_on_sigterm():
    """Make SIGTERM (what torchrun sends its workers to stop) end the run like Ctrl+C,
    so exports clean up their temporaries. Only possible in the main thread."""
    try:
        return signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    except (ValueError, AttributeError):
        return None


def _sigterm_to_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _restore_sigterm(previous) -> None:
    if previous is not None:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)


# -- parallel worker processes ---------------------------------------------------------

_STOP = {"flag": False}


def _on_sigterm(signum, frame) -> None:
    _STOP["flag"] = True


def _stopped() -> bool:
    return _STOP["flag"]


def _worker_main(wid: int, settings: Settings, threads: int, tasks, results) -> None:
    """A worker process: separate songs from `tasks` until a None, reporting on `results`.
    Ctrl+C is the parent's to handle; SIGTERM (the parent cancelling) stops at the next
    check, and the export in progress cleans up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        sep = zoo.load_separator(settings.model, device="cpu", segment=settings.segment,
                                 overlap=settings.overlap, half=settings.half)
        configure_cpu_threads(threads)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        text = " ".join(str(exc).split()) if isinstance(exc, StemwrightError) else \
            f"unexpected error: {explain(exc)}"
        results.put(("fatal", wid, text))
        return
    while not _stopped():
        item = tasks.get()
        if item is None:
            break
        index, song = item
        results.put(("start", wid, index))

        def progress(p, index=index) -> None:
            if p.message:
                results.put(("note", wid, index, p.message))

        try:
            line = separate_song(sep, song, settings, progress, cancel=_stopped)
        except Cancelled:
            results.put(("end", wid, index, "cancelled", ""))
            break
        except Exception as exc:  # noqa: BLE001 - one bad song never stops the others
            results.put(("end", wid, index, "failed", failure_text(song, exc)))
            continue
        results.put(("end", wid, index, "done", line))


def _songs_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="song", leave=False, dynamic_ncols=True,
                disable=None)


def run_parallel(todo: Sequence[Song], settings: Settings, summary: Summary, jobs: int,
                 threads: int) -> None:
    """Separate the songs in `jobs` worker processes, each with `threads` torch threads;
    one overall bar (songs done/total) and a line per song. Ctrl+C or SIGTERM stops the
    workers (each export cleans up its temporaries) and raises KeyboardInterrupt."""
    import multiprocessing as mp  # lazy: only parallel runs start processes

    ctx = mp.get_context("spawn")  # no fork of a process that holds torch threads
    tasks, results = ctx.Queue(), ctx.Queue()
    for item in enumerate(todo):
        tasks.put(item)
    for _ in range(jobs):
        tasks.put(None)
    bar = _songs_bar(len(todo), f"{summary.rank.label}songs")

    def out(text: str, error: bool) -> None:
        bar.write(text, file=sys.stderr if error else sys.stdout)

    procs = []
    previous = _raise_on_sigterm()
    try:
        with _sigint_ignored():  # children start with Ctrl+C ignored: the parent decides
            for wid in range(jobs):
                p = ctx.Process(target=_worker_main, name=f"stemwright-separate-{wid}",
                                args=(wid, settings, threads, tasks, results), daemon=True)
                p.start()
                procs.append(p)
        _collect(todo, procs, results, summary, out, bar)
    except BaseException:
        _stop_workers(procs)
        raise
    finally:
        bar.close()
        _restore_sigterm(previous)
        for p in procs:
            p.join(timeout=5)
        for q in (tasks, results):
            q.cancel_join_thread()
            q.close()


def _collect(todo, procs, results, summary: Summary, out, bar) -> None:
    pending = set(range(len(todo)))
    running: dict[int, int] = {}
    while pending:
        try:
            msg = results.get(timeout=0.5)
        except queue.Empty:
            for wid, p in enumerate(procs):
                if not p.is_alive() and wid in running:
                    index = running.pop(wid)
                    pending.discard(index)
                    summary.add(todo[index], "failed", failure_text(
                        todo[index], StemwrightError(f"the worker process ended unexpectedly "
                                                     f"(exit code {p.exitcode}); too little "
                                                     "memory? try fewer --jobs")), out)
                    bar.update(1)
            if pending and not any(p.is_alive() for p in procs):
                for index in sorted(pending):
                    summary.add(todo[index], "failed", failure_text(
                        todo[index], StemwrightError("not separated: every worker process "
                                                     "ended")), out)
                return
            continue
        kind, wid = msg[0], msg[1]
        if kind == "fatal":
            raise StemwrightError(msg[2])
        if kind == "start":
            running[wid] = msg[2]
        elif kind == "note":
            out(f"note: {todo[msg[2]].label}: {msg[3]}", False)
        elif kind == "end":
            _, _, index, status, text = msg
            running.pop(wid, None)
            pending.discard(index)
            if status == "cancelled":  # someone else stopped that worker
                status, text = "failed", failure_text(todo[index], StemwrightError(
                    "not finished: its worker process was stopped (SIGTERM)"))
            summary.add(todo[index], status, text, out)
            bar.update(1)


def _stop_workers(procs) -> None:
    """SIGTERM every worker (it stops at its next check and cleans up), then wait a
    little, then kill what is left."""
    for p in procs:
        if p.is_alive():
            with contextlib.suppress(OSError):
                p.terminate()
    for p in procs:
        p.join(timeout=20)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to do
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
