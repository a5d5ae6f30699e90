"""The spectrogram under the lanes: computing it (mixture or a stem) on a worker thread,
the cache of finished ones, showing/hiding it and its frequency axis; and the lanes'
own spectrograms (View > Lanes show spectrograms), computed the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.workers import SpectrogramTask
from ..views.spectrogram import Spectrogram
from ..views.waveform_data import Envelope

SILENT = 1e-6  # a lane this quiet keeps its (flat) waveform

if TYPE_CHECKING:
    from ..main_window import MainWindow


class SpectrogramController:
    """Feeds `window.spectrogram` with spectrograms of the song and its stems."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.cache: dict[str, Spectrogram] = {}

    def clear(self) -> None:
        self.cache.clear()

    def drop_stems(self) -> None:
        """Forget the stems' spectrograms (a new separation); the mixture's stays."""
        for key in list(self.cache):
            if key != "mix":
                del self.cache[key]

    def request(self, key: str) -> None:
        """Show the spectrogram of `key` ("mix" or a stem), computing it if needed."""
        w = self.window
        if w.song is None or not w.spectrogram.isVisible() and key == "":
            return
        if key in self.cache:
            w.spectrogram.set_spectrogram(self.cache[key])
            return
        if key == "mix":
            signal = w.song.data
        elif w.separated is not None and key in w.separated.result.stems:
            signal = w.separated.result.stems[key]
        else:
            return
        if w.spec_task is not None:
            w.spec_task.cancel()
        task = SpectrogramTask(signal, w.song.samplerate, key, w)
        w.spec_task = task
        task.succeeded.connect(lambda spec, t=task: self._done(t, spec))
        task.failed.connect(lambda exc, t=task: self._failed(t, exc))
        w.spectrogram.set_busy("computing...")
        w.start_task(task)

    def _done(self, task: SpectrogramTask, spec: Spectrogram) -> None:
        w = self.window
        if task is w.spec_task:
            w.spec_task = None
        if w.song is None or task.samplerate != w.song.samplerate:
            return
        self.cache[spec.key] = spec
        if spec.key == w.spectrogram.current_source():
            w.spectrogram.set_spectrogram(spec)

    def _failed(self, task: SpectrogramTask, exc: BaseException) -> None:
        w = self.window
        if task is w.spec_task:
            w.spec_task = None
            w.spectrogram.set_busy(f"spectrogram failed: {exc}")

    def log_frequency_changed(self, on: bool) -> None:
        self.window.settings.set_log_frequency(on)
        self.window.act_log_freq.setChecked(on)

    def toggle(self, on: bool) -> None:
        self.window.spectrogram.setVisible(on)
        self.window.settings.set_show_spectrogram(on)

    # -- spectrograms in the lanes ----------------------------------------------------
    def lanes_toggle(self, on: bool) -> None:
        """Lanes draw spectrograms (on) or waveforms (off); remembered in the settings."""
        w = self.window
        w.settings.set_lane_spectrograms(on)
        if w.act_lane_spectra.isChecked() != bool(on):
            w.act_lane_spectra.setChecked(bool(on))
        w.waveform.set_lane_spectrograms(on, self._lane_request)

    def _lane_request(self, key: str, envelope: Envelope) -> None:
        """Compute lane `key`'s spectrogram on a worker (the mixture's may be cached)."""
        w = self.window
        if envelope.peak <= SILENT:  # all dB bins equal: a flat line says it better
            w.waveform.set_lane_spectrogram(envelope, None)
            return
        mix = self.cache.get("mix")
        if key == "mix" and mix is not None and mix.length == envelope.length and \
                mix.samplerate == envelope.samplerate:
            w.waveform.set_lane_spectrogram(envelope, mix)
            return
        task = SpectrogramTask(envelope.data, envelope.samplerate, key, w)
        task.succeeded.connect(lambda spec, e=envelope: w.waveform.set_lane_spectrogram(e, spec))
        task.failed.connect(lambda _exc, e=envelope: w.waveform.set_lane_spectrogram(e, None))
        w.start_task(task)
