"""What this installation can do: `stemwright doctor`, and the one-line cause of an
unexpected error.

Every runtime dependency with a native part is loaded for real (torchaudio's library,
libsndfile, FFmpeg through PyAV, soxr, PortAudio, the Qt platform plugin), so a broken
install is found by one command instead of by the first separation that needs it. The
same checks back a test (tests/test_diagnostics.py), so CI fails with the same words.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .wording import count

#: The install command printed when a dependency is broken.
REINSTALL = "bash packaging/install.sh (or: pip install -c packaging/requirements.lock .)"


@dataclass
class Check:
    """One line of the report. `required`: the separation engine cannot work without it."""

    name: str
    ok: bool
    detail: str
    required: bool = True

    @property
    def status(self) -> str:
        return "ok" if self.ok else ("FAIL" if self.required else "missing")


def installed_version(dist: str) -> str | None:
    """The installed distribution's version, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def pinned_version(dist: str) -> str | None:
    """The exact version Stemwright's own metadata pins `dist` to (`dist==X`), or None."""
    try:
        requires = metadata.requires("stemwright") or []
    except metadata.PackageNotFoundError:
        return None
    for req in requires:
        name, sep, version = req.partition("==")
        if sep and name.strip().lower() == dist and ";" not in version:
            return version.strip()
    return None


def _base(version: str) -> str:
    """'2.11.0+cu130' -> '2.11.0'."""
    return version.split("+", 1)[0]


def torch_pair_problem() -> str | None:
    """Why the installed torch and torchaudio cannot work together, or None.

    torchaudio's native library is built against one torch release; any other release fails
    to load it with an undefined symbol. The pair is right when the versions are equal, or
    equal to the pair Stemwright pins.
    """
    torch_v, audio_v = installed_version("torch"), installed_version("torchaudio")
    if torch_v is None or audio_v is None:
        missing = "torch" if torch_v is None else "torchaudio"
        return f"{missing} is not installed: reinstall with {REINSTALL}"
    pins = pinned_version("torch"), pinned_version("torchaudio")
    if _base(torch_v) == _base(audio_v) or (_base(torch_v), _base(audio_v)) == pins:
        return None
    want = (f"torch=={pins[0]} torchaudio=={pins[1]}" if all(pins) else
            f"torchaudio=={_base(torch_v)}")
    return (f"torchaudio {audio_v} does not match torch {torch_v}: reinstall the tested pair "
            f"with pip install {want} (or {REINSTALL})")


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a `raise ... from` / implicit context chain."""
    seen = {id(exc)}
    while True:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None or id(nxt) in seen:
            return exc
        seen.add(id(nxt))
        exc = nxt


def explain(exc: BaseException) -> str:
    """One line saying what really went wrong in an unexpected error.

    A native library that will not load is named with its loader's reason (the undefined
    symbol), and a torch/torchaudio mismatch is reported as such with the fix.
    """
    text = f"{type(exc).__name__}: {exc}"
    chain = []
    node: BaseException | None = exc
    while node is not None and len(chain) < 20:
        chain.append(node)
        node = node.__cause__ or node.__context__
    words = " ".join(str(e) for e in chain).lower()
    if "torchaudio" in words or "libtorch" in words or "undefined symbol" in words:
        problem = torch_pair_problem()
        if problem:
            return problem
    cause = root_cause(exc)
    if cause is not exc and str(cause) and str(cause) not in str(exc):
        text += f" (cause: {type(cause).__name__}: {cause})"
    return " ".join(text.split())


# -- the checks --------------------------------------------------------------------------

def _check(name: str, fn: Callable[[], str], required: bool = True) -> Check:
    try:
        return Check(name, True, fn(), required)
    except Exception as exc:  # noqa: BLE001 - a failed check is a line of the report
        return Check(name, False, explain(exc), required)


def _torch() -> str:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i} ({torch.cuda.get_device_name(i)})"
                    for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devices.append("mps")
    return f"torch {torch.__version__}; devices: {', '.join(devices)}"


def _torchaudio() -> str:
    problem = torch_pair_problem()
    if problem:
        raise RuntimeError(problem)
    import torch
    import torchaudio
    import torchaudio.functional as F

    F.resample(torch.zeros(1, 64), 44100, 48000)  # loads libtorchaudio's kernels
    return f"torchaudio {torchaudio.__version__} (native library loads)"


def _soundfile() -> str:
    import soundfile

    formats = soundfile.available_formats()
    need = [f for f in ("WAV", "FLAC", "OGG", "MP3") if f not in formats]
    if need:
        raise RuntimeError(f"libsndfile {soundfile.__libsndfile_version__} cannot read "
                           f"{', '.join(need)}")
    return f"soundfile {soundfile.__version__}, libsndfile {soundfile.__libsndfile_version__}"


def _pyav() -> str:
    import av

    for codec in ("aac", "mp3float", "flac"):
        av.codec.Codec(codec, "r")
    versions = getattr(av, "library_versions", {})
    ffmpeg = ".".join(map(str, versions.get("libavcodec", ())))
    return f"PyAV {av.__version__} (libavcodec {ffmpeg or '?'}; AAC, MP3, FLAC decoders)"


def _soxr() -> str:
    import numpy as np  # lazy: doctor reports a broken numpy instead of failing to start
    import soxr

    soxr.resample(np.zeros((64, 2), np.float32), 44100, 48000)
    return f"soxr {soxr.__version__}"


def _portaudio() -> str:
    import sounddevice as sd

    devices = sd.query_devices()
    outputs = [d for d in devices if d["max_output_channels"] > 0]
    try:
        default = sd.query_devices(kind="output")["name"]
    except Exception:  # noqa: BLE001 - no default output is a detail, not a failure
        default = "none"
    version = sd.get_portaudio_version()[1].split(",")[0]
    return f"{version}; {count(len(outputs), 'output device')}, default: {default}"


_QT_PROBE = (
    "import sys\n"
    "from PySide6 import __version__ as v\n"
    "from PySide6.QtGui import QGuiApplication\n"
    "import pyqtgraph\n"
    "app = QGuiApplication(sys.argv[:1])\n"
    "print(v, app.platformName(), pyqtgraph.__version__)\n")


def qt_platform(platform_name: str | None = None, timeout: float = 30.0) -> str:
    """Start Qt with a platform plugin in a child process (Qt aborts the process when the
    plugin cannot load, so never in ours); return 'PySide6 X, platform Y'."""
    env = dict(os.environ)
    if platform_name:
        env["QT_QPA_PLATFORM"] = platform_name
    proc = subprocess.run([sys.executable, "-c", _QT_PROBE], env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        reason = next((ln for ln in lines if "could not" in ln.lower() or "cannot" in
                       ln.lower() or "error" in ln.lower()), lines[-1] if lines else "")
        raise RuntimeError(f"Qt cannot start ({reason.strip() or f'exit {proc.returncode}'}); "
                           "install the system libraries Qt needs (packaging/install.sh)")
    version, name, graph = proc.stdout.strip().rpartition("\n")[-1].split(" ")
    return f"PySide6 {version}, platform plugin '{name}', pyqtgraph {graph}"


def _qt() -> str:
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    chosen = os.environ.get("QT_QPA_PLATFORM")
    return qt_platform(None if (has_display or chosen) else "offscreen") + (
        "" if has_display or chosen else " (no display here: checked offscreen)")


def _default_model() -> str:
    from .zoo import catalog as zoo  # lazy: doctor must start even when numpy is broken

    entry = zoo.get_entry(zoo.DEFAULT_MODEL)
    if entry.family != "embedded":
        return entry.name
    path = Path(zoo.embedded_checkpoint())
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: reinstall with {REINSTALL}")
    return f"{entry.name} ({path.stat().st_size / 1e6:.1f} MB, {path})"


def _synth_tools() -> str:
    from .synthetic.render import check_tools

    tools = check_tools()
    fonts = tools.soundfonts
    kits = tools.drumkits
    drums = count(len(kits), "Hydrogen drum kit") if kits else (
        "GM drum kits only (recorded kits: apt-get install hydrogen-drumkits hydrogen-data "
        "avldrums.lv2-soundfont)")
    return f"FluidSynth, espeak-ng, {count(len(fonts), 'soundfont')}, {drums}"


def _cache() -> str:
    from .zoo.catalog import cache_dir  # lazy: doctor must start even when numpy is broken

    folder = cache_dir()
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 1e9
    if not os.access(probe, os.W_OK):
        raise RuntimeError(f"{folder}: not writable (set STEMWRIGHT_CACHE_DIR)")
    used = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6 \
        if folder.is_dir() else 0.0
    return f"{folder} ({used:.0f} MB used, {free:.1f} GB free)"


def run_checks(gui: bool = True) -> list[Check]:
    """Every check of `stemwright doctor`, in report order."""
    checks = [
        Check("python", True, f"{platform.python_version()} ({sys.executable})"),
        Check("stemwright", True, installed_version("stemwright") or "not installed"),
        _check("torch", _torch),
        _check("torchaudio", _torchaudio),
        _check("soundfile", _soundfile),
        _check("pyav", _pyav),
        _check("soxr", _soxr),
        _check("audio output", _portaudio, required=False),
    ]
    if gui:
        checks.append(_check("qt", _qt, required=False))
    checks += [_check("default model", _default_model),
               _check("synth tools", _synth_tools, required=False),
               _check("cache", _cache)]
    return checks


def report_lines(checks: list[Check]) -> list[str]:
    """The checks as aligned text lines."""
    width = max(len(c.name) for c in checks)
    return [f"{c.status:7} {c.name.ljust(width)}  {c.detail}" for c in checks]


def as_json(checks: list[Check]) -> list[dict]:
    """The checks as JSON-ready dicts."""
    return [{**asdict(c), "status": c.status} for c in checks]


def import_all_runtime_modules() -> list[str]:
    """Import every runtime dependency by its import name; the names that failed, with
    their reason (for the test that guards fresh installs)."""
    failed = []
    for module in ("torch", "torchaudio", "numpy", "soundfile", "soxr", "av", "sounddevice",
                   "PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets", "pyqtgraph",
                   "demucs", "openunmix", "asteroid_filterbanks", "safetensors", "librosa",
                   "tqdm", "yaml", "pedalboard", "mido"):
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - collected for the report
            failed.append(f"{module}: {explain(exc)}")
    return failed
