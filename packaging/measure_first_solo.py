"""Time to first solo in the app (issue 17): from pressing Separate on a 4-minute song to
the moment the first separated stems can be soloed and played (lanes, mixer and player
set up from the first finished region). Prints JSON.

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/measure_first_solo.py [MODEL]

Three times per run: "cold" (the engine process starts and loads the model during the
measurement), "after_warm_up" (as `stemwright gui` does: the window starts the engine and
loads the default model while the user picks a song; measured once that is done) and
"second_song" (the same session, a new song). Measured on the real window, engine child process and
model; the numbers vary with machine load (the load average is printed with them).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from PySide6.QtWidgets import QApplication

from stemwright.desktop.engine.process import engine
from stemwright.desktop.main_window import MainWindow
from stemwright.desktop.settings import Settings

SR = 44100


def _song(path: Path, seconds: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.3 * np.sin(2 * np.pi * 55 * t)
    x = x + 0.3 * rng.standard_normal(len(t)) * np.exp(-(t % 0.5) * 30)
    sf.write(path, np.stack([x, 0.9 * x]).T.astype(np.float32), SR, subtype="PCM_16")
    return path


def _wait(app: QApplication, ready, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not ready():
        app.processEvents()
        time.sleep(0.002)
        if time.monotonic() > end:
            raise TimeoutError("gave up waiting")


def _first_solo(app: QApplication, window: MainWindow, path: Path, model: str) -> float:
    window.open_file(path)
    _wait(app, lambda: window.song is not None and window.song.path == path
          and window.spec_task is None)
    window.panel.set_model(model)
    start = time.monotonic()
    window.separation.separate()
    _wait(app, lambda: window.partial is not None and bool(window.player.stem_ids)
          and window.act_solo.isEnabled())
    elapsed = time.monotonic() - start
    _wait(app, lambda: window.separate_task is None)
    return elapsed


def main() -> int:
    model = sys.argv[1] if len(sys.argv) > 1 else None
    app = QApplication.instance() or QApplication(sys.argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ.setdefault("STEMWRIGHT_CACHE_DIR", str(folder / "cache"))
        load = os.getloadavg()[0]
        figures = {}
        for label, warm_up in (("cold", False), ("after_warm_up", True)):
            engine().shutdown()
            window = MainWindow(Settings(folder / f"{label}.ini"), warm_up_engine=warm_up)
            window.confirm = lambda *_args: True
            window.show()
            model = model or window.panel.current_model()
            if warm_up:
                _wait(app, lambda: engine()._ready)
            figures[label] = _first_solo(app, window, _song(folder / f"{label}.wav", 240.0,
                                                           0), model)
            if warm_up:
                figures["second_song"] = _first_solo(
                    app, window, _song(folder / "second.wav", 240.0, 1), model)
            window.close()
        engine().shutdown()
    print(json.dumps({"model": model, "song_seconds": 240.0,
                      "time_to_first_solo_s": {k: round(v, 2) for k, v in figures.items()},
                      "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
                      "cores": os.cpu_count()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
