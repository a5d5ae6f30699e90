"""The main window's layout between sessions: geometry, dock sizes and the views' splitter,
kept in `Settings`; first start sizes the docks for the screen, and a window saved on a
bigger screen is brought back inside this one.

The mixer's size (`apply_mixer_size`): "auto" (the default) gives the compact one-row
mixer in a window shorter than `MIXER_COMPACT_BELOW` (a 1366x768 laptop: the lanes get
the room, three stems with their reference lanes) and full strips above it (1600x1000);
"full" or "compact" when the user chose one (View > Mixer strips, the mixer's Compact
button).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, Qt

if TYPE_CHECKING:
    from ..main_window import MainWindow


def restore_layout(window: MainWindow) -> None:
    """Put back the saved geometry, docks and splitter, or size the docks on first start."""
    settings = window.settings
    geometry = settings.window_geometry()
    if geometry is not None:
        window.restoreGeometry(geometry)
    state = settings.window_state()
    if state is not None:
        window.restoreState(state)
    else:
        tall = window.height() >= 940
        mixer = max(window.mixer_panel.minimumHeight() + 24, 360 if tall else 300)
        window.resizeDocks([window.mixer_dock], [mixer], Qt.Orientation.Vertical)
        window.resizeDocks([window.separation_dock], [330], Qt.Orientation.Horizontal)
    splitter = settings.splitter_state()
    if splitter is not None:
        window.splitter.restoreState(splitter)
    else:
        size_splitter(window)
    fit_screen(window)


def size_splitter(window: MainWindow) -> None:
    """The lanes get most of the room; the spectrogram a quarter, or its shortest in a
    short window (the user drags it; a taller window gives the lanes the extra)."""
    total = max(sum(window.splitter.sizes()), window.splitter.height(), 300)
    tall = window.height() >= MIXER_COMPACT_BELOW
    spectrogram = min(max(int(total * (0.28 if tall else 0.12)), 90), 260)
    window.splitter.setSizes([total - spectrogram, spectrogram])


def fit_screen(window: MainWindow) -> None:
    """Keep the window inside the screen's available area (a geometry saved on a bigger
    screen, or a screen smaller than the default size)."""
    screen = window.screen()
    if screen is None:
        return
    area = screen.availableGeometry()
    width, height = min(window.width(), area.width()), min(window.height(), area.height())
    if (width, height) != (window.width(), window.height()):
        window.resize(max(width, window.minimumSizeHint().width()),
                      max(height, window.minimumSizeHint().height()))


MIXER_COMPACT_BELOW = 840  # px of window height: shorter gets the compact mixer ("auto")
QWIDGETSIZE_MAX = 16777215  # Qt's "no maximum" (not exported by PySide6)


def mixer_slim_wanted(window: MainWindow) -> bool:
    """Whether the mixer should be compact now (its setting, and the window's height)."""
    size = window.settings.mixer_size()
    if size == "auto":
        return window.height() < MIXER_COMPACT_BELOW
    return size == "compact"


def apply_mixer_size(window: MainWindow, force: bool = False) -> None:
    """Show the compact or the full mixer as wanted, and size its dock for it: exactly
    one row of slim strips, or at least full strips (faders with dB readouts)."""
    panel = window.mixer_panel
    slim = mixer_slim_wanted(window)
    if slim == panel.slim and not force and not slim:
        return
    changed = slim != panel.slim
    panel.set_slim(slim)
    if slim:
        height = panel.slim_height_hint()
        changed = changed or height != panel.maximumHeight()
        panel.setMinimumHeight(height)
        panel.setMaximumHeight(height)
    else:
        panel.setMaximumHeight(QWIDGETSIZE_MAX)
        panel.setMinimumHeight(panel.full_height_hint(1000))
    if changed:
        dock = window.mixer_dock
        want = panel.minimumHeight() + (0 if slim else 24)
        window.resizeDocks([dock], [want + dock.height() - panel.height()],
                           Qt.Orientation.Vertical)
    for size, action in getattr(window, "mixer_size_actions", {}).items():
        action.setChecked(size == window.settings.mixer_size())


def save_layout(window: MainWindow) -> None:
    """Remember the geometry, docks and splitter for the next start."""
    window.settings.save_window(QByteArray(window.saveGeometry()),
                                QByteArray(window.saveState()),
                                QByteArray(window.splitter.saveState()))
