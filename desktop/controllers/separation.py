"""Separating the window's song: starting and cancelling separation tasks, the partial
stems shown while the model runs, applying a finished separation in small steps, keeping
its stems on disk and restoring them later (the separation panel's actions)."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer

from stemwright.models.stems import STEM_IDS, get_stem
from stemwright.models.zoo import catalog as zoo

from ..dialogs import messages as dialogs
from ..engine.workers import (
    LoadedSong,
    PartialSeparation,
    RestoreSessionTask,
    SaveSessionTask,
    SeparatedSong,
    SeparateTask,
    SeparationOptions,
    find_session,
)
from ..panels.separation import format_duration

if TYPE_CHECKING:
    from ..main_window import MainWindow

STEP_MS = 8  # pause between the steps of a UI update split to keep the window responsive


class SeparationController:
    """Runs separations of `window.song`; the results live on the window (`separated`,
    `partial`, `separate_task`, `stems_saved`)."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.session: dict | None = None  # a saved separation of the current song

    def separate(self, options: SeparationOptions | None = None) -> SeparateTask | None:
        """Separate the current song in the background with the panel's (or given) options."""
        w = self.window
        if w.song is None or w.separate_task is not None:
            return None
        options = options or w.panel.options()
        task = SeparateTask(w.song.data, w.song.samplerate, options, w)
        w.separate_task = task
        w.separationStarted.emit(task)
        task.progressed.connect(lambda f, eta, msg, t=task: self._progress(t, f, eta, msg))
        task.partialReady.connect(lambda p, t=task: self._partial(t, p))
        task.succeeded.connect(lambda out, t=task: self._done(t, out))
        task.failed.connect(lambda exc, t=task: self._failed(t, exc))
        task.cancelled.connect(lambda t=task: self._cancelled(t))
        w.panel.set_separating(True)
        w.task_progress.setValue(0)
        w.task_progress.setVisible(True)
        w.start_task(task)
        w.update_actions()
        return task

    def _progress(self, task: SeparateTask, fraction: float, eta, message: str) -> None:
        w = self.window
        if task is not w.separate_task:
            return
        w.panel.set_progress(fraction, eta, message)
        w.task_progress.setValue(int(fraction * 1000))

    def _partial(self, task: SeparateTask, p: PartialSeparation) -> None:
        """Stems of the finished part arrived: show lanes, mixer and player at once (the
        player plays the buffers as they fill), then only move the pending shade."""
        w = self.window
        song = w.song
        if task is not w.separate_task or song is None or task.mix is not song.data:
            return
        first = w.partial is not p
        w.partial = p
        w.waveform.set_pending(p.final_until_seconds)
        if not first:
            w.waveform.schedule_redraw()
            return
        title = model_title(task.options.model)
        stems = tuple(s for s in STEM_IDS if s in p.stems)
        unavailable = tuple(p.unavailable)

        def lane(stem_id: str):
            def show() -> None:
                w.waveform.set_stem(stem_id, p.envelopes.get(stem_id),
                                    stem_id in unavailable, title)
            return show

        def playback() -> None:
            w.player.set_sources(song.data, p.stems, p.samplerate)

        def mixer() -> None:
            w.stems.set_mixer_stems(stems, unavailable, None)
            if w.waveform.selected_stem() not in stems and stems:
                w.stems.select(stems[0])
            w.update_actions()
            w.statusBar().showMessage("The first stems are ready: play and solo them "
                                      "while the rest is separated.", 5000)

        self.run_steps([lane(s) for s in STEM_IDS] + [playback, mixer],
                       lambda: w.song is song and w.partial is p)

    def _drop_partial(self) -> None:
        """Take back the stems shown while separating (cancelled or failed): the earlier
        separation comes back, or only the mixture."""
        w = self.window
        if w.partial is None:
            return
        w.partial = None
        w.waveform.set_pending(None)
        if w.song is None:
            return
        if w.separated is not None:
            saved = w.stems_saved
            self.apply(w.separated, "", on_disk=True, announce=False)
            w.stems_saved = saved
        else:
            w.waveform.clear_stems()
            w.player.set_sources(w.song.data, None, w.song.samplerate)
            w.stems.set_mixer_stems((), ())
        w.update_actions()

    def _ended(self, task: SeparateTask, message: str) -> bool:
        w = self.window
        if task is not w.separate_task:
            return False
        w.separate_task = None
        w.task_progress.setVisible(False)
        w.panel.finish(message)
        w.update_actions()
        return True

    def _cancelled(self, task: SeparateTask) -> None:
        if self._ended(task, "Separation cancelled; nothing was changed."):
            self._drop_partial()

    def _failed(self, task: SeparateTask, exc: BaseException) -> None:
        if self._ended(task, "Separation failed."):
            self._drop_partial()
            self.window.separationFinished.emit(None)
            dialogs.show_exception(self.window, exc, "Separation failed",
                                   context=f"The model '{task.options.model}' could not "
                                           "separate this song.")

    def _done(self, task: SeparateTask, out: SeparatedSong) -> None:
        w = self.window
        if w.song is None or task.mix is not w.song.data:
            self._ended(task, "")
            return
        result = out.result
        title = model_title(result.model)
        summary = f"Separated with {title} in {format_duration(out.seconds)}."
        residual = result.residual_db
        if residual is not None and math.isfinite(residual) and residual > -60:
            summary += (f" What the model left unassigned ({residual:.0f} dB) was added to "
                        "Other." if result.residual_in_other
                        else f" {residual:.0f} dB of the song is in no stem.")
        for note in result.notes:
            summary += f"\n{note}"
        self._ended(task, summary)
        w.panel.set_progress(1.0, None)
        self.apply(out, summary, on_disk=False)

    def apply(self, out: SeparatedSong, summary: str, on_disk: bool,
              announce: bool = True) -> None:
        """Show a separation: lanes, player, mixer, spectrogram sources; then keep its
        stems on disk (unless they came from there) and emit `separationFinished`
        (unless `announce` is off: an earlier separation shown again)."""
        w = self.window
        result = out.result
        title = model_title(result.model)
        w.separated = out
        w.partial = None
        w.waveform.set_pending(None)
        w.stems_saved = on_disk
        w.panel.offer_restore(None)
        w.spectra.drop_stems()
        song = w.song
        stems, unavailable = tuple(result.stems), tuple(result.unavailable)

        # Applied in small steps, one per event-loop turn, so the window keeps drawing
        # and reacting while lanes, player and mixer take the stems in.
        def lane(stem_id: str):
            def show() -> None:
                w.waveform.set_stem(stem_id, out.envelopes.get(stem_id),
                                    stem_id in unavailable, title)
            return show

        def playback() -> None:
            w.player.set_sources(song.data, result.stems, result.samplerate)

        def mixer() -> None:
            w.stems.set_mixer_stems(stems, unavailable, out.null_db)
            if not w.waveform.selected_stem() and stems:
                w.stems.select(stems[0])

        def finish() -> None:
            w.spectrogram.set_sources([(s, get_stem(s).name) for s in stems])
            if w.transport.loop_range() is not None:
                w.spectrogram.set_loop(w.transport.loop_range())
            source = w.spectrogram.current_source()
            if source != "mix":
                w.spectra.request(source)
            w.update_actions()
            if not announce:
                return
            w.statusBar().showMessage(summary.split("\n")[0], 8000)
            if not on_disk:
                self._keep_stems(song, out)
            w.separationFinished.emit(out)

        self.run_steps([lane(s) for s in STEM_IDS] + [playback, mixer, finish],
                       lambda: w.song is song and w.separated is out)

    def _keep_stems(self, song: LoadedSong, out: SeparatedSong) -> None:
        """Write the stems to the session cache in the background."""
        w = self.window
        task = SaveSessionTask(song.path, out, w)
        task.succeeded.connect(lambda _p, o=out: self._stems_kept(o))
        task.failed.connect(lambda exc: w.statusBar().showMessage(
            f"The stems could not be kept on disk ({exc}); export them to keep them.",
            10000))
        w.start_task(task)

    def _stems_kept(self, out: SeparatedSong) -> None:
        if self.window.separated is out:
            self.window.stems_saved = True
        self.window.stemsKept.emit(out)

    def restore_stems(self) -> RestoreSessionTask | None:
        """Bring back the stems of an earlier separation of the current song."""
        w = self.window
        meta = self.session
        if w.song is None or meta is None or w.separate_task is not None:
            return None
        song = w.song
        task = RestoreSessionTask(meta, song.data.shape[-1], w)
        title = model_title(meta.get("model", ""))
        task.succeeded.connect(lambda out: self._restored(song, out, title))
        task.failed.connect(lambda exc: dialogs.show_exception(
            w, exc, "Could not restore the stems",
            context="The stems kept from the earlier separation could not be read."))
        w.panel.offer_restore(None)
        w.statusBar().showMessage("Restoring the stems...")
        w.start_task(task)
        return task

    def _restored(self, song: LoadedSong, out: SeparatedSong, title: str) -> None:
        if self.window.song is not song:
            return
        summary = f"Restored the stems separated earlier with {title}."
        self.window.panel.finish(summary, 1.0)
        self.apply(out, summary, on_disk=True)

    def offer_session(self, song: LoadedSong) -> None:
        """Offer the stems of an earlier separation of `song`, if some were kept."""
        panel = self.window.panel
        meta = find_session(song.path)
        if meta is None or int(meta.get("samplerate", 0)) != song.samplerate:
            self.session = None
            panel.offer_restore(None)
            return
        self.session = meta
        age = _age(time.time() - float(meta.get("created", time.time())))
        panel.offer_restore("Restore earlier stems")
        panel.status.setText(f"This song was separated {age} with "
                             f"{model_title(meta.get('model', ''))}: restore its stems "
                             "instead of separating again.")

    def run_steps(self, steps: list, still_valid) -> None:
        """Run `steps` a few ms apart while `still_valid()` holds (a real timer, not a
        posted call, so input, painting and other timers get their turn in between)."""
        if not steps or not still_valid():
            return
        steps[0]()
        if len(steps) > 1:
            QTimer.singleShot(STEP_MS, self.window,
                              lambda: self.run_steps(steps[1:], still_valid))

    def cancel(self) -> None:
        if self.window.separate_task is not None:
            self.window.separate_task.cancel()

    def cancel_silently(self) -> None:
        """Cancel a running separation because another song replaces this one."""
        w = self.window
        task, w.separate_task = w.separate_task, None
        if task is not None:
            task.cancel()
            w.task_progress.setVisible(False)
            w.panel.finish("Separation cancelled: another song was opened.")

    def cancel_all(self) -> None:
        """Esc: cancel loading and separating."""
        w = self.window
        if w.load_task is not None:
            w.load_task.cancel()
        self.cancel()
        if w.panel.downloading():
            w.panel.download_task.cancel()


def model_title(name: str) -> str:
    try:
        return zoo.get_entry(name).title
    except Exception:  # noqa: BLE001 - a removed custom model still has a name
        return name


def _age(seconds: float) -> str:
    """"a moment ago", "5 minutes ago", "3 hours ago", "2 days ago"."""
    minutes = seconds / 60
    if minutes < 1:
        return "a moment ago"
    if minutes < 60:
        return f"{minutes:.0f} minute{'s' if round(minutes) != 1 else ''} ago"
    hours = minutes / 60
    if hours < 24:
        return f"{hours:.0f} hour{'s' if round(hours) != 1 else ''} ago"
    days = hours / 24
    return f"{days:.0f} day{'s' if round(days) != 1 else ''} ago"
