"""Opening and closing songs in the main window: the file dialog, the demo song, recent
files, drag and drop, and the background load whose result replaces the current song."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QUrl
from PySide6.QtWidgets import QFileDialog

from stemwright import resources
from stemwright.models.errors import StemwrightError

from ..dialogs import messages as dialogs
from ..engine import protocol
from ..engine.child import ANALYSIS_CHILD, start_child
from ..engine.workers import LoadedSong, LoadTask, Task
from ..views.beat_grid import BeatGrid
from ..views.waveform import format_time

if TYPE_CHECKING:
    from stemwright.models.analysis.tempo_key import TempoKey

    from ..main_window import MainWindow

AUDIO_FILTER = ("Audio files (*.wav *.flac *.mp3 *.ogg *.oga *.opus *.m4a *.aac *.aif *.aiff "
                "*.wma *.mp4 *.mkv *.webm *.mov);;All files (*)")
APP_NAME = "Stemwright"


#: running tempo-and-key tasks, kept alive until their thread ends (see `TempoKeyTask`)
_ANALYSES: set[TempoKeyTask] = set()


class TempoKeyTask(Task):
    """Find a loaded song's tempo and key in the background (bounded: the first two
    minutes, see `detect_tempo_key`).

    Its first run imports librosa, which takes seconds and cannot be cancelled midway,
    so the task has no Qt parent and is held in `_ANALYSES` until it ends: closing the
    window meanwhile must not destroy a running thread (Qt aborts the process).
    """

    title = "Finding the tempo and key"

    def __init__(self, song: LoadedSong) -> None:
        super().__init__(None)
        self.song = song
        _ANALYSES.add(self)
        self.finished.connect(lambda: _ANALYSES.discard(self))

    def work(self) -> TempoKey:
        """Downmix and resample here (numpy, soxr: they release the interpreter lock),
        then let the analysis child (`serve_analysis`) run librosa, so its import and
        numba compilation never hold this process's lock while the window plays or
        separates."""
        from stemwright.models.analysis.tempo_key import TempoKey, analysis_input

        mono = analysis_input(self.song.data, self.song.samplerate)
        self.check_cancel()
        proc = start_child(ANALYSIS_CHILD)
        self.on_cancel = proc.kill
        try:
            protocol.send_msg(proc.stdin, {"type": "analyse", "samples": mono.shape[-1]})
            protocol.send_array(proc.stdin, mono)
            proc.stdin.close()
            answer = protocol.recv_msg(proc.stdout)
        except (OSError, EOFError) as exc:
            self.check_cancel()
            raise RuntimeError(f"the tempo and key analysis stopped: {exc}") from exc
        finally:
            proc.stdout.close()
            proc.wait()
        self.check_cancel()
        if answer is None:
            raise RuntimeError("the tempo and key analysis ended without an answer")
        if answer.get("type") == "error":
            raise answer["exc"]
        return TempoKey(answer["bpm"], np.asarray(answer["beats"], dtype=np.float64),
                        answer["key"], float(answer["confidence"]))

    def cancel(self) -> None:
        super().cancel()
        kill = getattr(self, "on_cancel", None)
        if kill is not None:
            kill()


class SongController:
    """Loads songs into the window and clears it again; `tempo_key` is the current
    song's tempo and key once found (None until then)."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.tempo_key: TempoKey | None = None
        self.tempo_task: TempoKeyTask | None = None

    def open_dialog(self) -> None:
        """Ask for a file and open it."""
        w = self.window
        path, _ = QFileDialog.getOpenFileName(w, "Open a song", w.settings.last_folder(),
                                              AUDIO_FILTER)
        if path:
            self.open_file(path)

    def open_demo(self) -> None:
        """Open the bundled demo song, a generated multitrack song, with its true stems
        as reference lanes (no mapping dialog: its metadata maps every track)."""
        from stemwright.models.multitrack.folders import scan_folder
        path = resources.demo_song()
        try:
            songs = scan_folder(path).songs if (path / "mix.flac").is_file() else []
        except StemwrightError:
            songs = []
        if not songs:
            dialogs.show_error(self.window, "Demo song", "The demo song is not installed.",
                               "Open one of your own songs with File > Open.")
            return
        self.window.multitrack.load(songs[0])

    def open_file(self, path: str | Path) -> LoadTask | None:
        """Decode `path` in the background; the song replaces the current one when ready."""
        w = self.window
        path = Path(path)
        if path.is_dir() and path.resolve() == resources.demo_song().resolve():
            self.open_demo()
            return None
        if path.is_dir() or path.name.lower().endswith(".stem.mp4"):
            w.multitrack.open_folder(path)  # a multitrack song (an NI Stems file is one)
            return None
        if not w.confirm_discard(f"Open {path.name}"):
            return None
        task = LoadTask(path, w)
        task.succeeded.connect(lambda song, t=task: self.show_loaded(t, song))
        return self.start_load(task, f"Loading {path.name}...")

    def start_load(self, task, message: str):
        """Run a song-loading task (replacing any running one) with progress in the status
        bar; the caller connects `succeeded`."""
        w = self.window
        if w.load_task is not None:
            w.load_task.cancel()
        w.load_task = task
        task.progressed.connect(lambda f, _e, _m, t=task: self._progress(t, f))
        task.failed.connect(lambda exc, t=task: self._failed(t, exc))
        task.cancelled.connect(lambda t=task: self._ended(t, "Loading cancelled."))
        w.start_task(task)
        w.statusBar().showMessage(message)
        w.task_progress.setValue(0)
        w.task_progress.setVisible(True)
        return task

    def _progress(self, task: LoadTask, fraction: float) -> None:
        if task is self.window.load_task:
            self.window.task_progress.setValue(int(fraction * 1000))

    def _ended(self, task: LoadTask, message: str) -> bool:
        w = self.window
        if task is not w.load_task:
            return False
        w.load_task = None
        w.task_progress.setVisible(False)
        w.statusBar().showMessage(message, 5000)
        return True

    def _failed(self, task: LoadTask, exc: BaseException) -> None:
        if self._ended(task, "Could not open the song."):
            dialogs.show_exception(self.window, exc, "Could not open the song",
                                   context=f"{task.path.name} could not be opened.")

    def show_loaded(self, task: LoadTask, song: LoadedSong) -> None:
        """A load task finished: `song` replaces the current song (unless `task` was
        replaced by a later load)."""
        w = self.window
        if not self._ended(task, f"Opened {song.path.name}"):
            return
        w.separation.cancel_silently()
        if hasattr(w.player, "clear_sources"):
            w.player.clear_sources()
        else:
            w.player.stop()
        w.song = song
        w.separated = None
        w.partial = None
        w.stems_saved = True
        w.spectra.clear()
        title = song.tags.get("title") if song.tags else None
        w.waveform.set_song(song.envelope, _lane_title(song, title))
        w.spectrogram.clear()
        w.spectrogram.set_sources([])
        w.spectrogram.set_duration(song.duration)
        w.spectrogram.set_loop(None)
        w.act_loop.setChecked(False)
        w.player.set_sources(song.data, None, song.samplerate)
        w.stems.set_mixer_stems((), ())
        w.panel.set_song_loaded(True)
        w.settings.add_recent_file(song.path)
        w.setWindowTitle(f"{song.path.name} \u2014 {APP_NAME}")
        channels = {1: "mono", 2: "stereo"}.get(song.data.shape[0],
                                                 f"{song.data.shape[0]} channels")
        w.song_label.setText(f"{song.path.name}  \u00b7  {format_time(song.duration)}  "
                             f"\u00b7  {song.samplerate / 1000:g} kHz  \u00b7  {channels}")
        w.spectra.request(w.spectrogram.current_source())
        w.separation.offer_session(song)
        w.transport.tick()
        w.update_actions()
        w.songLoaded.emit(song)
        self.analyse(song)

    def analyse(self, song: LoadedSong) -> TempoKeyTask:
        """Find `song`'s tempo and key in the background; when found (and `song` is still
        the current song) they are added to the song's info line ("84 bpm, Eb major")."""
        self._stop_analysis()
        task = TempoKeyTask(song)
        task.succeeded.connect(lambda found, t=task: self._analysed(t, found))
        task.failed.connect(lambda _exc, t=task: self._analysis_ended(t))
        task.cancelled.connect(lambda t=task: self._analysis_ended(t))
        self.tempo_task = task
        self.window.start_task(task)
        return task

    def _stop_analysis(self) -> None:
        if self.tempo_task is not None:
            self.tempo_task.cancel()
        self.tempo_task = None
        self.tempo_key = None

    def _analysis_ended(self, task: TempoKeyTask) -> bool:
        """True when `task` is the current analysis (a replaced one is ignored). A failed
        analysis only leaves the tempo unknown: it is a nicety, not worth a dialog."""
        if task is not self.tempo_task:
            return False
        self.tempo_task = None
        return True

    def _analysed(self, task: TempoKeyTask, found: TempoKey) -> None:
        w = self.window
        if not self._analysis_ended(task) or w.song is not task.song:
            return
        self.tempo_key = found
        text = found.describe()
        try:
            # the loop snaps to this grid; bar lines on the ruler and the navigator
            w.waveform.set_beat_grid(BeatGrid.from_analysis(found.beats, found.bpm,
                                                            task.song.duration))
            if text:
                w.song_label.setText(f"{w.song_label.text()}  \u00b7  {text}")
        except RuntimeError:  # the window was closed meanwhile
            pass

    def close_song(self) -> None:
        """Close the current song (asks first if separated stems were never exported)."""
        w = self.window
        if w.song is None or not w.confirm_discard("Close the song"):
            return
        self._stop_analysis()
        w.separation.cancel_silently()
        w.player.stop()
        if hasattr(w.player, "clear_sources"):
            w.player.clear_sources()
        w.song = None
        w.separated = None
        w.partial = None
        w.stems_saved = True
        w.spectra.clear()
        w.waveform.clear()
        w.spectrogram.clear()
        w.spectrogram.set_sources([])
        w.stems.set_mixer_stems((), ())
        w.panel.set_song_loaded(False)
        w.panel.offer_restore(None)
        w.separation.session = None
        w.setWindowTitle(APP_NAME)
        w.song_label.setText("No song")
        w.update_actions()

    def fill_recent_menu(self) -> None:
        w = self.window
        menu = w.recent_menu
        menu.clear()
        recent = w.settings.recent_files()
        for i, path in enumerate(recent):
            act = menu.addAction(f"&{i + 1 if i < 9 else 0}  {Path(path).name}")
            act.setToolTip(path)
            act.setStatusTip(path)
            act.triggered.connect(lambda _c=False, p=path: self.open_file(p))
        if not recent:
            menu.addAction("No recent songs").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear list", self._clear_recent)

    def _clear_recent(self) -> None:
        self.window.settings.clear_recent_files()
        self.fill_recent_menu()

    @staticmethod
    def dropped_file(event) -> str | None:
        """The local file (or folder) a drag carries, if any."""
        mime = event.mimeData()
        if mime is None or not mime.hasUrls():
            return None
        for url in mime.urls():
            if isinstance(url, QUrl) and url.isLocalFile() and Path(url.toLocalFile()).exists():
                return url.toLocalFile()
        return None


def _lane_title(song: LoadedSong, title: str | None) -> str:
    artist = song.tags.get("artist") if song.tags else None
    if title and artist:
        return f"Mixture \u2014 {artist}: {title}"
    if title:
        return f"Mixture \u2014 {title}"
    return f"Mixture \u2014 {song.path.name}"
