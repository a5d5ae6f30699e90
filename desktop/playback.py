"""Playback of the song and its live remix through PortAudio (sounddevice).

`Player` owns a `MixerState` and a `models.mixing.BlockMixer`; the PortAudio callback asks
the block mixer for each block (precomputed gains, linear per-block ramps, no locks, no Qt)
and only writes plain attributes that a GUI timer reads: position, meter peaks, underflow
count, end of song. Without sounddevice, PortAudio or an output device the player reports
`available = False` with a reason and every other method still works (silently).

A device that refuses the song's sample rate gets the song at its own default rate: the
sources are resampled once (soxr, on a background thread, never in the audio callback),
with a `notice`, and playback starts when they are ready.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from stemwright.models.audio.resample import resample
from stemwright.models.remix.mixer import BlockMixer, MixerState, gain_to_db

#: Frames per audio block: 1024 at 44.1 kHz is 23 ms, so a mixer change is heard within
#: 23 ms (plus the device latency) and the callback has 23 ms of slack per block.
BLOCK_SIZE = 1024
POLL_MS = 33  # GUI refresh of position and end-of-song
FALLBACK_RATES = (48000, 44100, 96000, 88200, 32000, 22050)  # tried after the default
RESAMPLE_QUALITY = "HQ"  # playback only: soxr HQ is transparent and ~40% faster than VHQ


def load_sounddevice() -> tuple[Any | None, str]:
    """Import sounddevice; returns (module, "") or (None, why it is unusable)."""
    try:
        import sounddevice as sd
    except OSError as exc:  # the Python package is there but libportaudio is not
        return None, (f"PortAudio is not installed ({exc}); install the libportaudio2 "
                      "package to hear playback")
    except ImportError as exc:
        return None, f"the sounddevice package is missing ({exc})"
    except Exception as exc:  # noqa: BLE001 - PortAudio init can fail in odd ways
        return None, f"the audio system could not be started ({exc})"
    return sd, ""


class Player(QObject):
    """Plays the mixture or the live remix of the stems; never raises at construction."""

    positionChanged = Signal(float)
    stateChanged = Signal(str)
    errorOccurred = Signal(str)
    notice = Signal(str)  # something the user should know that is not an error
    _resampled = Signal(object)  # from the resampling thread: (token, rate, sources|error)

    def __init__(self, parent: QObject | None = None, blocksize: int = BLOCK_SIZE) -> None:
        super().__init__(parent)
        self.mixer = MixerState()
        self.blocksize = int(blocksize)
        self.underflows = 0
        self.callbacks = 0
        self._samplerate = 44100  # of the loaded sources as they are played
        self._song_rate = 44100  # of the sources as they were given
        self._song_length = 0
        self._rate_ok: dict[tuple, bool] = {}
        self._resample_token: object | None = None
        self._resampled.connect(self._install_resampled)
        self._engine: BlockMixer | None = None
        self._stream: Any = None
        self._device: int | None = None
        self._state = "stopped"
        self._stream_done = threading.Event()
        self._callback_error: str | None = None
        self._sd, self.unavailable_reason = load_sounddevice()
        if self._sd is not None and not self.output_devices():
            self.unavailable_reason = "no audio output device was found"
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._last_position = -1.0

    # -- availability and devices -------------------------------------------------------
    @property
    def available(self) -> bool:
        """True when playback can be heard (sounddevice, PortAudio and an output device)."""
        return self._sd is not None and not self.unavailable_reason

    def output_devices(self) -> list[tuple[int, str]]:
        """(index, "name (host API)") of every device with output channels."""
        if self._sd is None:
            return []
        try:
            devices = self._sd.query_devices()
            apis = self._sd.query_hostapis()
        except Exception:  # noqa: BLE001
            return []
        out = []
        for i, dev in enumerate(devices):
            if dev.get("max_output_channels", 0) > 0:
                api = apis[dev["hostapi"]]["name"] if dev.get("hostapi") is not None else ""
                out.append((i, f"{dev['name']} ({api})" if api else dev["name"]))
        return out

    def output_device(self) -> int | None:
        """The chosen output device index (None: the system default)."""
        return self._device

    def set_output_device(self, index: int | None) -> None:
        """Use device `index` (None: system default); playback continues on the new one."""
        if index is not None and index not in {i for i, _ in self.output_devices()}:
            self.errorOccurred.emit(f"audio device {index} has no outputs or is gone")
            return
        was_playing = self._state == "playing"
        if was_playing:
            self._halt()
        self._close_stream()
        self._device = index
        self._resample_token = None  # the new device may take other rates
        if was_playing and not self._start_stream():
            self._set_state("paused")

    # -- sources ------------------------------------------------------------------------
    def set_sources(self, mix: np.ndarray | None, stems: dict[str, np.ndarray] | None,
                    samplerate: int) -> None:
        """Load the mixture [C, T] and (optionally) its stems.

        When the new audio has the same rate and length as what is loaded (the stems of
        the song that is playing arrive), position, loop and playing go on seamlessly;
        otherwise playback stops at the start. Call `clear_sources` for another song.
        The arrays are used in place (not copied) when they are float32 [1 or 2, T]: do
        not modify them while they are loaded.
        """
        engine = BlockMixer(mix, stems)  # validates before anything changes
        old = self._engine
        was_playing = self._state == "playing"
        if was_playing:
            self._halt()
        self._close_stream()
        same_song = (old is not None and int(samplerate) == self._song_rate
                     and engine.length == self._song_length)
        if same_song:  # the old sources may have been resampled for the device
            _carry_position(old, engine, int(samplerate) / self._samplerate)
        self._samplerate = self._song_rate = int(samplerate)
        self._song_length = engine.length
        self._resample_token = None  # a resampling of the old sources is moot
        self._engine = engine
        for stem_id in engine.stem_ids:
            self.mixer.channel(stem_id)
        self._push_gains()
        engine.reset_for_start()
        if not same_song:
            self._set_state("stopped")
        elif was_playing and not self._start_stream():
            self._set_state("paused")
        self.positionChanged.emit(self.position())

    def clear_sources(self) -> None:
        """Unload the audio (e.g. when another song is opened)."""
        self.stop()
        self._close_stream()
        self._engine = None
        self._resample_token = None
        self._song_length = 0
        self.positionChanged.emit(0.0)

    @property
    def samplerate(self) -> int:
        return self._samplerate

    @property
    def stem_ids(self) -> tuple[str, ...]:
        return self._engine.stem_ids if self._engine is not None else ()

    # -- mixer --------------------------------------------------------------------------
    def set_channel(self, stem_id: str, **changes: Any) -> None:
        """Change a stem's channel, e.g. set_channel("vocals", mute=True, gain_db=-6)."""
        ch = self.mixer.channel(stem_id)
        for key, value in changes.items():
            if not hasattr(ch, key):
                raise AttributeError(f"mixer channels have no '{key}'")
            setattr(ch, key, value)
        self._push_gains()

    def set_master_db(self, db: float) -> None:
        self.mixer.master_db = float(db)
        self._push_gains()

    def set_ab(self, source: str) -> None:
        """"mix" plays the original mixture, "remix" the stems through the mixer."""
        if source not in ("mix", "remix"):
            raise ValueError("source must be 'mix' or 'remix'")
        self.mixer.source = source
        self._push_gains()

    def set_mixer_state(self, state: MixerState) -> None:
        """Replace the whole mixer state (e.g. restored from a session)."""
        self.mixer = state
        self._push_gains()

    def refresh_mixer(self) -> None:
        """Apply edits made directly on `mixer`."""
        self._push_gains()

    def _push_gains(self) -> None:
        if self._engine is not None:
            self._engine.set_gains(self._engine.gains_for(self.mixer))

    # -- meters -------------------------------------------------------------------------
    def levels(self) -> dict[str, float]:
        """Peak dBFS per stem, "mix" and "master" since the last call (-inf when silent)."""
        if self._engine is None:
            return {"master": -math.inf}
        peaks = self._engine.take_peaks()
        out = {s: gain_to_db(float(p)) for s, p in zip(self._engine.stem_ids, peaks,
                                                      strict=False)}
        out["mix"] = gain_to_db(float(peaks[self._engine.mix_index]))
        out["master"] = gain_to_db(float(peaks[-1]))
        return out

    # -- transport ----------------------------------------------------------------------
    def state(self) -> str:
        return self._state

    def duration(self) -> float:
        if self._engine is None:
            return 0.0
        return self._engine.length / self._samplerate

    def position(self) -> float:
        """Seconds from the start of the song of what is heard now.

        While playing, the mixer reads ahead of the loudspeaker by the device's output
        latency; that is taken off (inside a loop, just after a wrap, what is heard is
        still the end of the loop).
        """
        engine = self._engine
        if engine is None:
            return 0.0
        seek = engine._seek_to
        if seek is not None:
            return min(seek, engine.length) / self._samplerate
        frame = engine.position
        stream = self._stream
        if self._state == "playing" and stream is not None:
            latency = int(float(getattr(stream, "latency", 0.0) or 0.0) * self._samplerate)
            loop = engine.loop
            if (loop is not None and engine.wrapped and loop[0] <= frame < loop[1]
                    and frame - latency < loop[0]):
                frame = max(loop[0], loop[1] - (loop[0] - (frame - latency)))
            else:
                frame = max(0, frame - latency)
        return min(frame, engine.length) / self._samplerate

    def seek(self, seconds: float) -> None:
        """Jump to `seconds` (crossfaded while playing)."""
        if self._engine is None:
            return
        self._engine.seek(int(round(max(0.0, seconds) * self._samplerate)))
        if self._state != "playing":
            self._engine.reset_for_start()
        self.positionChanged.emit(self.position())

    def set_loop(self, start_s: float, end_s: float) -> None:
        """Loop between two times (seconds); playback wraps at the end."""
        if self._engine is None:
            return
        start, end = sorted((start_s, end_s))
        try:
            self._engine.set_loop(int(start * self._samplerate), int(end * self._samplerate))
        except ValueError as exc:
            self.errorOccurred.emit(str(exc))

    def clear_loop(self) -> None:
        if self._engine is not None:
            self._engine.clear_loop()

    def loop(self) -> tuple[float, float] | None:
        if self._engine is None or self._engine.loop is None:
            return None
        a, b = self._engine.loop
        return a / self._samplerate, b / self._samplerate

    def play(self) -> None:
        """Start or resume playback (does nothing, with a notice, when unavailable)."""
        if self._engine is None or self._state == "playing":
            return
        if not self.available:
            self.errorOccurred.emit(f"Playback unavailable: {self.unavailable_reason}")
            return
        if self._start_stream():
            self._set_state("playing")

    def _start_stream(self) -> bool:
        """Open (if needed) and start the stream from the engine's position. When the
        device refuses the rate, resample for it first (the stream starts when ready)."""
        assert self._engine is not None
        if self._resample_token is not None:
            return True  # resampling for the device: it starts the stream when done
        if self._stream is None:
            rate = self._playable_rate(self._samplerate)
            if rate is not None and rate != self._samplerate:
                self._resample_for(rate)
                return True
        self._engine.reset_for_start()
        try:
            if self._stream is None:
                self._open_stream()
            else:
                self._stream.stop()  # a stream ended by the callback must be stopped first
            self._stream_done.clear()
            self._stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudio errors vary by host API
            self._close_stream()
            self.errorOccurred.emit(f"could not start playback: {exc}")
            return False
        self._timer.start()
        return True

    def pause(self) -> None:
        """Pause (fading out over one block); `play` resumes at the same place."""
        if self._state != "playing":
            return
        self._halt()
        self._set_state("paused")

    def stop(self) -> None:
        """Stop and go back to the start (or the loop start)."""
        if self._state == "playing":
            self._halt()
        if self._engine is not None:
            self._engine.seek(self._engine.loop[0] if self._engine.loop else 0)
            self._engine.reset_for_start()
        if self._state != "stopped":
            self._set_state("stopped")
        self.positionChanged.emit(self.position())

    def toggle_play(self) -> None:
        """Play when paused or stopped, pause when playing."""
        if self._state == "playing":
            self.pause()
        else:
            self.play()

    def close(self) -> None:
        """Release the audio device (call on application exit)."""
        self.stop()
        self._close_stream()

    # -- sample rates the device accepts --------------------------------------------------
    def _out_channels(self) -> int:
        info = self._sd.query_devices(self._device, "output")
        return 2 if info["max_output_channels"] >= 2 else 1

    def rate_supported(self, rate: int) -> bool:
        """Whether the output device accepts `rate` Hz (PortAudio's check, cached)."""
        if self._sd is None:
            return True
        key = (self._device, int(rate))
        if key not in self._rate_ok:
            try:
                self._sd.check_output_settings(device=self._device, samplerate=int(rate),
                                               channels=self._out_channels(),
                                               dtype="float32")
                self._rate_ok[key] = True
            except Exception:  # noqa: BLE001 - PortAudioError or an odd host API
                self._rate_ok[key] = False
        return self._rate_ok[key]

    def device_default_rate(self) -> int | None:
        """The output device's own default sample rate (None if unknown)."""
        try:
            return int(self._sd.query_devices(self._device, "output")["default_samplerate"])
        except Exception:  # noqa: BLE001
            return None

    def _playable_rate(self, rate: int) -> int | None:
        """`rate` if the device takes it, else its default rate (or a common one)."""
        try:
            if self.rate_supported(rate):
                return rate
            candidates = [self.device_default_rate(), *FALLBACK_RATES]
            return next((r for r in candidates if r and r != rate and self.rate_supported(r)),
                        None)
        except Exception:  # noqa: BLE001 - let opening the stream report the problem
            return None

    def _resample_for(self, rate: int) -> None:
        """Resample every source to `rate` on a background thread (once per song or
        stems); `_install_resampled` swaps them in and starts the stream."""
        engine = self._engine
        assert engine is not None
        token = object()
        self._resample_token = token
        src_rate = self._samplerate
        sources = list(engine.sources)
        self.notice.emit(f"The output device does not play {src_rate} Hz: playing at "
                         f"{rate} Hz (resampled for playback; exports are unchanged).")

        def work() -> None:
            try:
                out = [resample(x, src_rate, rate, RESAMPLE_QUALITY) for x in sources]
            except Exception as exc:  # noqa: BLE001 - reported on the GUI thread
                self._resampled.emit((token, None, str(exc)))
            else:
                self._resampled.emit((token, rate, out))

        threading.Thread(target=work, name="stemwright-resample", daemon=True).start()

    def _install_resampled(self, payload: tuple) -> None:
        """GUI thread: the resampled sources are ready (ignored if no longer wanted)."""
        token, rate, out = payload
        old = self._engine
        if token is not self._resample_token or old is None:
            return
        self._resample_token = None
        if rate is None:
            self.errorOccurred.emit(f"could not resample for the output device: {out}")
            if self._state == "playing":
                self._set_state("paused")
            return
        stems = dict(zip(old.stem_ids, out[:-1], strict=True)) if old.stem_ids else None
        engine = BlockMixer(out[-1], stems)
        _carry_position(old, engine, rate / self._samplerate)
        self._samplerate = rate
        self._engine = engine
        self._push_gains()
        engine.reset_for_start()
        if self._state == "playing" and not self._start_stream():
            self._set_state("paused")

    # -- internals ----------------------------------------------------------------------
    def _halt(self) -> None:
        """Fade out over one block and wait (bounded) for the callback to finish."""
        self._timer.stop()
        if self._engine is not None and self._stream is not None:
            self._engine.request_stop()
            latency = float(getattr(self._stream, "latency", 0.1) or 0.1)
            self._stream_done.wait(timeout=min(1.0, 0.05 + 3 * latency))
            try:
                self._stream.stop()
            except Exception:  # noqa: BLE001
                self._close_stream()

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.stateChanged.emit(state)

    def _open_stream(self) -> None:
        sd = self._sd
        device = self._device
        info = sd.query_devices(device, "output")
        channels = 2 if info["max_output_channels"] >= 2 else 1
        self._stream = sd.OutputStream(
            samplerate=self._samplerate, blocksize=self.blocksize, device=device,
            channels=channels, dtype="float32", latency="low", callback=self._callback,
            finished_callback=self._stream_done.set)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        self._timer.stop()
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:  # noqa: BLE001
                pass

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio thread: mix one block. Never touches Qt, never blocks."""
        if status.output_underflow:
            self.underflows += 1
        self.callbacks += 1
        engine = self._engine
        if engine is None:
            outdata.fill(0)
            raise self._sd.CallbackStop
        try:
            keep_going = engine.render(outdata)
        except Exception as exc:  # noqa: BLE001 - reported by the GUI timer
            outdata.fill(0)
            self._callback_error = str(exc)
            raise self._sd.CallbackAbort from exc
        if not keep_going:
            raise self._sd.CallbackStop

    def _poll(self) -> None:
        """GUI timer: publish the position, notice the end of the song or an error."""
        if self._callback_error:
            message, self._callback_error = self._callback_error, None
            self.errorOccurred.emit(f"playback stopped: {message}")
        pos = self.position()
        if pos != self._last_position:
            self._last_position = pos
            self.positionChanged.emit(pos)
        stream = self._stream
        ended = stream is None or (self._stream_done.is_set() and not stream.active)
        if self._state == "playing" and ended:
            self._timer.stop()
            finished = self._engine is not None and self._engine.finished
            if stream is not None:
                try:
                    stream.stop()
                except Exception:  # noqa: BLE001
                    self._close_stream()
            if finished:
                self.stop()
            else:
                self._set_state("paused")


def _carry_position(old: BlockMixer, new: BlockMixer, scale: float) -> None:
    """Give `new` the playing position and loop of `old`, scaled by a rate ratio."""
    frame = old._seek_to if old._seek_to is not None else old.position
    new.seek(int(round(frame * scale)))
    if old.loop is not None:
        start, end = (int(round(f * scale)) for f in old.loop)
        if end - start >= 1:
            new.set_loop(start, end)


def wait_for(predicate: Any, timeout: float = 2.0, step: float = 0.005) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass (tests and scripts)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
