"""Stemwright's separation engine, headless (never imports Qt).

The public API, for scripts and notebooks:

    from stemwright.models import load_separator, load_audio, save_audio

    audio = load_audio("song.flac")
    sep = load_separator("stemwright6")          # or any name of `list_models()`
    result = sep.separate(audio.data, audio.samplerate)
    for stem, data in result.stems.items():      # stem ids: STEMS
        save_audio(f"{stem}.wav", data, result.samplerate)

Subpackages, one concern each: `audio` (reading, writing, channels, resampling),
`separation` (the Separator, chunked inference, devices, Demucs/Open-Unmix backends), `zoo`
(the model catalogue, downloads, checkpoints), `architectures` (the registry and one module
per trainable network), `classic` (weight-free methods and oracles), `multitrack` (song
folders and their mixdown to six stems), `remix` (live mixing and stem export), `training`,
`evaluation` (BSS Eval metrics and reports), `benchmarks`, `synthetic` (`stemwright synth`'s
song generator) and `cli`. Names here load on first use, so `import stemwright.models` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["STEMS", "Separator", "SeparationResult", "load_separator", "list_models",
           "load_audio", "save_audio"]

_WHERE = {
    "STEMS": ("stems", "STEM_IDS"),
    "Separator": ("separation.separator", "Separator"),
    "SeparationResult": ("separation.separator", "SeparationResult"),
    "load_separator": ("zoo.catalog", "load_separator"),
    "list_models": ("zoo.catalog", "list_models"),
    "load_audio": ("audio.io", "load_audio"),
    "save_audio": ("audio.io", "save_audio"),
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _WHERE[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
