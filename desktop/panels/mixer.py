"""The mixer: one strip per stem (mute, solo, fader, pan, meter), master, A/B and null test.

The panel only edits the player's `MixerState` through `Player.set_channel` and friends;
every gain computation lives in `models.mixing`. Meters are refreshed by a timer that
reads `Player.levels()` (peaks the audio callback collected), so the GUI never waits on
the audio thread.

Mouse: double-click a fader or pan slider to reset it; click a strip to select its stem.

The window sizes the mixer dock for full strips (`full_height_hint`); only a dock the
user makes shorter turns compact, and compact strips still show their fader and its dB
readout (next to M/S).

Slim mode (`set_slim`, the window's "compact mixer", the default in a short window such
as a 1366x768 laptop's) shows one row of `SlimStrip`s instead: name, M/S, a horizontal
fader with its dB readout and a thin meter, about 55 px tall, so the lanes get the room.
Slim strips drive the full strips' controls, so there is one state whichever shows.
The strips themselves (`ChannelStrip`, `SlimStrip`, `LevelMeter`) are in `strips`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpacerItem,
    QVBoxLayout,
    QWidget,
)

from stemwright.models.remix.mixer import FADER_FLOOR_DB, describe_null_test
from stemwright.models.stems import STEM_IDS, get_stem

from ..playback import Player
from .strips import (
    DIM_TEXT,
    FADER_MAX_DB,
    FADER_STEPS_PER_DB,
    MASTER_COMPACT_LABEL,
    MASTER_SPACING,
    MASTER_SPACING_COMPACT,
    METER_MIN,
    METER_MIN_COMPACT,
    PANEL_BG,
    REFRESH_MS,
    SCROLL_MIN_HEIGHT,
    STRIP_BG,
    STRIP_BG_SELECTED,
    STRIP_WIDTH,
    TEXT,
    ChannelStrip,
    LevelMeter,
    ResetSlider,
    SlimStrip,
    db_to_fader,
    fader_to_db,
    format_gain,
    format_pan,
)

STYLE = f"""
MixerPanel, #mixerStrips {{ background: {PANEL_BG}; }}
ChannelStrip {{ background: {STRIP_BG}; border: 1px solid #2a2f3a; border-radius: 4px; }}
ChannelStrip[selected="true"] {{ background: {STRIP_BG_SELECTED}; border: 1px solid #5a86c8; }}
ChannelStrip[available="false"] {{ background: #17181b; border: 1px dashed #2a2d33; }}
QLabel {{ color: {TEXT}; }}
QLabel#dim {{ color: {DIM_TEXT}; }}
QLabel#notice {{ color: #f3c969; }}
QLabel#compactGain {{ color: {TEXT}; font-size: 8pt; }}
QPushButton#mute, QPushButton#solo {{
    min-width: 22px; max-width: 22px; min-height: 20px; max-height: 20px;
    padding: 0; border-radius: 3px; font-weight: bold;
    color: {TEXT}; background: #2b303b; border: 1px solid #3a404d; }}
QPushButton#mute:checked {{ background: #e05a47; color: #111; border-color: #e05a47; }}
QPushButton#solo:checked {{ background: #f2c94c; color: #111; border-color: #f2c94c; }}
QPushButton#mute:disabled, QPushButton#solo:disabled {{ color: #4a4f59; background: #1f2228; }}
QPushButton#ab {{ padding: 3px 10px; color: {TEXT}; background: #2b303b;
    border: 1px solid #3a404d; }}
QPushButton#ab:checked {{ background: #3d6fb6; border-color: #5a86c8; color: white; }}
QPushButton#ab:disabled {{ color: #4a4f59; }}
SlimStrip {{ background: {STRIP_BG}; border: 1px solid #2a2f3a; border-radius: 4px; }}
SlimStrip[selected="true"] {{ background: {STRIP_BG_SELECTED}; border: 1px solid #5a86c8; }}
SlimStrip[available="false"] {{ background: #17181b; border: 1px dashed #2a2d33; }}
QLabel#slimGain {{ color: {TEXT}; font-size: 8pt; }}
"""


class MixerPanel(QWidget):
    """Live mixer over a `Player`: stem strips, master, A/B (mixture/remix), null test.

    The six strips are built once and reused (`set_stems` only shows, hides or greys
    them). In a short dock the strips turn compact (no pan/gain readouts) and, shorter
    still, scroll vertically instead of being cut off.
    """

    selectedStemChanged = Signal(str)
    mixerChanged = Signal()
    abChanged = Signal(str)  # "mix" or "remix", whoever changed it
    slimRequested = Signal(bool)  # the user pressed the Compact button

    def __init__(self, player: Player, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.player = player
        self.strips: dict[str, ChannelStrip] = {}
        self._all_strips: dict[str, ChannelStrip] = {}
        self.selected: str | None = None
        self.null_db: float | None = None
        self.compact = False
        self.slim = False
        self._master_spacer: QSpacerItem | None = None
        self.setStyleSheet(STYLE)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        outer.setSpacing(6)

        top = QHBoxLayout()
        top.setSpacing(6)
        self._top_row = top
        top.addWidget(QLabel("Listen to:", self))
        self.ab_mix = QPushButton("A  Mixture", self)
        self.ab_remix = QPushButton("B  Remix", self)
        self.ab_group = QButtonGroup(self)
        self.ab_group.setExclusive(True)
        for b, tip in ((self.ab_mix, "The original song, untouched (B)"),
                       (self.ab_remix, "The stems through this mixer (B)")):
            b.setObjectName("ab")
            b.setCheckable(True)
            b.setToolTip(tip)
            self.ab_group.addButton(b)
            top.addWidget(b)
        self.ab_remix.setChecked(True)
        self.ab_mix.toggled.connect(self._on_ab)
        top.addSpacing(10)
        self.null_label = QLabel(describe_null_test(None), self)
        self.null_label.setToolTip(
            "Level of the song minus the sum of all stems, relative to the song. "
            "-inf dB: the stems add back up to the song exactly.")
        self.null_label.setMinimumWidth(40)
        self.null_label.setSizePolicy(QSizePolicy.Policy.Ignored,
                                      QSizePolicy.Policy.Preferred)
        top.addWidget(self.null_label, 1)
        self.slim_button = QPushButton("Compact", self)
        self.slim_button.setObjectName("ab")
        self.slim_button.setCheckable(True)
        self.slim_button.setToolTip("Compact mixer: one row of strips with horizontal "
                                    "faders, more room for the lanes")
        self.slim_button.clicked.connect(self.slimRequested)
        top.addWidget(self.slim_button)
        self.output_label = QLabel("Output:", self)
        top.addWidget(self.output_label)
        self.device_combo = QComboBox(self)
        self.device_combo.setMinimumWidth(120)
        self.device_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.device_combo.setMinimumContentsLength(14)
        self.device_combo.activated.connect(self._on_device)
        top.addWidget(self.device_combo)
        outer.addLayout(top)

        self.notice = QLabel(self)
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        outer.addWidget(self.notice)

        # strips and master scroll together: sideways when the dock is narrow, up and
        # down when it is too short even for compact strips
        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.scroll.setMinimumWidth(110)
        self.scroll.setMinimumHeight(SCROLL_MIN_HEIGHT)
        self.strip_host = QWidget()
        self.strip_host.setObjectName("mixerStrips")
        self.strip_row = QHBoxLayout(self.strip_host)
        self.strip_row.setContentsMargins(0, 0, 0, 0)
        self.strip_row.setSpacing(6)
        for stem_id in STEM_IDS:
            strip = ChannelStrip(stem_id, True, self.strip_host)
            strip.hide()
            self.strip_row.addWidget(strip)
            self._all_strips[stem_id] = strip
            self._wire(strip)
        self.strip_row.addStretch(1)
        self.master = self._build_master()
        self.strip_row.addWidget(self.master)
        self.scroll.setWidget(self.strip_host)
        self.scroll.viewport().installEventFilter(self)
        outer.addWidget(self.scroll, 1)
        self._full_height = self._strips_min_height(False)
        self._build_slim(outer)

        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh_meters)
        self.player.stateChanged.connect(self._on_player_state)
        self.refresh_devices()
        self._update_notice()
        self.set_stems([], [], None)

    # -- building ---------------------------------------------------------------------
    def _build_master(self) -> QFrame:
        frame = QFrame(self.strip_host)
        frame.setObjectName("master")
        frame.setFixedWidth(STRIP_WIDTH)
        frame.setStyleSheet(f"QFrame#master {{ background: {STRIP_BG}; "
                            "border: 1px solid #3a404d; border-radius: 4px; }")
        lay = QVBoxLayout(frame)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        swatch = QFrame(frame)
        swatch.setFixedHeight(5)
        swatch.setStyleSheet("background: #e8ecf2; border: none; border-radius: 2px;")
        lay.addWidget(swatch)
        name = QLabel("Master", frame)
        name.setAlignment(Qt.AlignmentFlag.AlignCenter)
        name.setStyleSheet("font-weight: bold;")
        lay.addWidget(name)
        self.master_compact = QLabel("0.0 dB", frame)  # the readout of compact strips
        self.master_compact.setObjectName("compactGain")
        self.master_compact.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.master_compact.setFixedHeight(MASTER_COMPACT_LABEL)
        self.master_compact.setVisible(False)
        lay.addWidget(self.master_compact)
        # lines the fader up with the stem faders (buttons, pan, pan readout)
        self._master_spacer = QSpacerItem(0, MASTER_SPACING, QSizePolicy.Policy.Minimum,
                                          QSizePolicy.Policy.Fixed)
        lay.addItem(self._master_spacer)
        fader_row = QHBoxLayout()
        fader_row.setSpacing(6)
        self.master_fader = ResetSlider(Qt.Orientation.Vertical, 0, frame)
        self.master_fader.setRange(int(FADER_FLOOR_DB * FADER_STEPS_PER_DB),
                                   int(FADER_MAX_DB * FADER_STEPS_PER_DB))
        self.master_fader.setToolTip("Master volume in dB (double-click: 0 dB)")
        self.master_fader.valueChanged.connect(self._on_master)
        self.master_meter = LevelMeter(frame, width=14)
        fader_row.addStretch(1)
        fader_row.addWidget(self.master_fader)
        fader_row.addWidget(self.master_meter)
        fader_row.addStretch(1)
        lay.addLayout(fader_row, 1)
        self.master_label = QLabel("0.0 dB", frame)
        self.master_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.master_label)
        return frame

    def _build_slim(self, outer: QVBoxLayout) -> None:
        """The slim row (hidden until `set_slim`): a strip per stem and the master."""
        self.slim_scroll = QScrollArea(self)
        self.slim_scroll.setWidgetResizable(True)
        self.slim_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.slim_scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.slim_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        host = QWidget()
        host.setObjectName("mixerStrips")
        row = QHBoxLayout(host)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        self.slim_strips: dict[str, SlimStrip] = {}
        for stem_id in STEM_IDS:
            slim = SlimStrip(stem_id, host)
            slim.hide()
            row.addWidget(slim)
            self.slim_strips[stem_id] = slim
            full = self._all_strips[stem_id]
            # the slim controls drive the full strip's (one state, one set of slots)
            slim.mute.toggled.connect(full.mute.setChecked)
            slim.solo.toggled.connect(full.solo.setChecked)
            slim.fader.valueChanged.connect(full.fader.setValue)
            slim.clicked.connect(self.select_stem)
        self.slim_master = SlimStrip("master", host)
        self.slim_master.fader.valueChanged.connect(self.master_fader.setValue)
        row.addWidget(self.slim_master)
        self.slim_host = host
        self.slim_scroll.setWidget(host)
        self.slim_scroll.setVisible(False)
        outer.addWidget(self.slim_scroll)

    def set_slim(self, slim: bool) -> None:
        """One row of slim strips (True) or the full strips."""
        slim = bool(slim)
        self.slim_button.setChecked(slim)
        if slim == self.slim:
            return
        self.slim = slim
        self.scroll.setVisible(not slim)
        self.slim_scroll.setVisible(slim)
        margin = 4 if slim else 6
        self.layout().setContentsMargins(margin, margin, margin, margin)
        self.layout().setSpacing(margin)
        self._update_notice()

    def slim_height_hint(self) -> int:
        """Height the panel needs in slim mode (top row and one row of slim strips)."""
        outer = self.layout()
        margins = outer.contentsMargins()
        strips = (self.slim_strips["vocals"], self.slim_master)  # with and without M/S
        for strip in strips:
            strip.layout().activate()
        self.slim_host.layout().activate()
        # a sideways scroll bar only when the strips do not fit across
        room = self.width() - margins.left() - margins.right()
        narrow = self.slim_host.minimumSizeHint().width() > room
        scroll_bar = self.slim_scroll.horizontalScrollBar().sizeHint().height() if narrow \
            else 0
        return (margins.top() + margins.bottom() + self._top_row.sizeHint().height()
                + outer.spacing() + max(max(strip.sizeHint().height(),
                                            strip.minimumSizeHint().height())
                                        for strip in strips) + scroll_bar + 2)

    def fader_widget(self, stem_id: str) -> QSlider:
        """The fader of `stem_id` ("master" too) that shows now (slim or full)."""
        if stem_id == "master":
            return self.slim_master.fader if self.slim else self.master_fader
        return self.slim_strips[stem_id].fader if self.slim else \
            self._all_strips[stem_id].fader

    def _show_slim_state(self, stem_id: str) -> None:
        slim = self.slim_strips[stem_id]
        if slim.available:
            ch = self.player.mixer.channel(stem_id)
            slim.show_state(ch.gain_db, ch.mute, ch.solo)

    # -- short docks: compact strips, then scrolling ------------------------------------
    def _strips_min_height(self, compact: bool) -> int:
        """Height strips and master need to show everything (in full or compact form),
        measured on a live and a greyed strip."""
        was = self.compact
        self.set_compact(compact)
        live, greyed = self._all_strips["vocals"], self._all_strips["wind"]
        greyed_was = greyed.available
        greyed.set_available(False)
        height = 0
        for widget in (live, greyed, self.master):
            widget.layout().activate()
            height = max(height, widget.minimumSizeHint().height())
        greyed.set_available(bool(greyed_was))
        self.set_compact(was)
        return height

    def full_height_hint(self, width: int | None = None) -> int:
        """Height the panel needs to show full strips (faders, meters, pan and dB
        readouts) without compacting or scrolling, at `width` (default: its own)."""
        outer = self.layout()
        margins = outer.contentsMargins()
        height = margins.top() + margins.bottom() + self._top_row.sizeHint().height()
        height += outer.spacing() + self._full_height
        if not self.notice.isHidden():
            text_width = max((width or self.width()) - margins.left() - margins.right(), 300)
            height += self.notice.heightForWidth(text_width) + outer.spacing()
        # room for a sideways scroll bar when the strips are wider than the dock
        return height + self.scroll.horizontalScrollBar().sizeHint().height() + 6

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if obj is self.scroll.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_height(event.size().height())
        return super().eventFilter(obj, event)

    def _fit_height(self, height: int) -> None:
        """Compact strips when the full ones would not fit (with a little hysteresis)."""
        if self.compact:
            compact = height < self._full_height + 4
        else:
            compact = height < self._full_height
        self.set_compact(compact)

    def set_compact(self, compact: bool) -> None:
        """Compact strips: no pan/gain readouts, shorter meters (short mixer docks)."""
        if compact == self.compact:
            return
        self.compact = compact
        for strip in self._all_strips.values():
            strip.set_compact(compact)
        if self._master_spacer is not None:
            self._master_spacer.changeSize(0, MASTER_SPACING_COMPACT if compact
                                           else MASTER_SPACING, QSizePolicy.Policy.Minimum,
                                           QSizePolicy.Policy.Fixed)
        self.master_label.setVisible(not compact)
        self.master_compact.setVisible(compact)
        self.master_meter.setMinimumHeight(METER_MIN_COMPACT if compact else METER_MIN)
        self.master.layout().invalidate()
        self.strip_row.invalidate()

    # -- stems ------------------------------------------------------------------------
    def set_stems(self, available_ids: Iterable[str], unavailable_ids: Iterable[str],
                  null_db: float | None) -> None:
        """Show a strip per stem (unavailable ones greyed) and the null-test result.

        Cheap (well under a millisecond when the stems are the same as before): the six
        strips always exist and are only shown, hidden or greyed, never rebuilt.
        """
        available = [get_stem(s).id for s in available_ids]
        unavailable = [get_stem(s).id for s in unavailable_ids if get_stem(s).id
                       not in available]
        strips: dict[str, ChannelStrip] = {}
        for stem_id, strip in self._all_strips.items():  # canonical order
            shown = stem_id in available or stem_id in unavailable
            if shown:
                strip.set_available(stem_id in available)
                strips[stem_id] = strip
            if strip.isHidden() == shown:
                strip.setVisible(shown)
            slim = self.slim_strips[stem_id]
            if shown:
                slim.set_available(stem_id in available)
            if slim.isHidden() == shown:
                slim.setVisible(shown)
        self.strips = strips
        self.sync_from_player()
        self.set_null_db(null_db)
        self.ab_remix.setEnabled(bool(available))
        if not available:  # only the mixture can play; the player's choice is kept
            self.ab_mix.blockSignals(True)
            self.ab_mix.setChecked(True)
            self.ab_mix.blockSignals(False)
        if self.selected not in available:
            self.select_stem(None)

    def _wire(self, strip: ChannelStrip) -> None:
        sid = strip.stem_id
        strip.mute.toggled.connect(lambda on, s=sid: self._set(s, mute=on))
        strip.solo.toggled.connect(lambda on, s=sid: self._set(s, solo=on))
        strip.fader.valueChanged.connect(
            lambda v, s=sid: self._set(s, gain_db=fader_to_db(v)))
        strip.pan.valueChanged.connect(lambda v, s=sid: self._set(s, pan=v / 100.0))
        strip.clicked.connect(self.select_stem)

    def set_null_db(self, null_db: float | None) -> None:
        """Update the null-test readout."""
        self.null_db = null_db
        self.null_label.setText(describe_null_test(null_db))
        good = null_db is not None and null_db < -60
        style = "" if null_db is None else f"color: {'#7ed957' if good else '#f3c969'};"
        if style != self.null_label.styleSheet():
            self.null_label.setStyleSheet(style)

    # -- state ------------------------------------------------------------------------
    def sync_from_player(self) -> None:
        """Show the player's mixer state on every control (e.g. after a session load)."""
        mixer = self.player.mixer
        for stem_id, strip in self.strips.items():
            if not strip.available:
                continue
            ch = mixer.channel(stem_id)
            strip.show_state(ch.gain_db, ch.pan, ch.mute, ch.solo)
            self._show_slim_state(stem_id)
        self.master_fader.blockSignals(True)
        self.master_fader.setValue(db_to_fader(mixer.master_db))
        self.master_fader.blockSignals(False)
        self.slim_master.show_state(mixer.master_db)
        self.master_label.setText(f"{format_gain(mixer.master_db)} dB")
        self.master_compact.setText(f"{format_gain(mixer.master_db)} dB")
        for b in (self.ab_mix, self.ab_remix):
            b.blockSignals(True)
        (self.ab_mix if mixer.source == "mix" else self.ab_remix).setChecked(True)
        for b in (self.ab_mix, self.ab_remix):
            b.blockSignals(False)
        self._dim_for_solo()

    def _set(self, stem_id: str, **changes: object) -> None:
        self.player.set_channel(stem_id, **changes)
        ch = self.player.mixer.channel(stem_id)
        self.strips[stem_id].show_state(ch.gain_db, ch.pan, ch.mute, ch.solo)
        self._show_slim_state(stem_id)
        self._dim_for_solo()
        self.mixerChanged.emit()

    def _dim_for_solo(self) -> None:
        """Grey the names of stems that are silent because of mute or another's solo."""
        mixer = self.player.mixer
        any_solo = any(mixer.channel(s).solo and not mixer.channel(s).mute
                       for s, st in self.strips.items() if st.available)
        for stem_id, strip in self.strips.items():
            if not strip.available:
                continue
            ch = mixer.channel(stem_id)
            strip.set_name_dim(ch.mute or (any_solo and not ch.solo))
            self.slim_strips[stem_id].set_name_dim(ch.mute or (any_solo and not ch.solo))

    def toggle_mute(self, stem_id: str) -> None:
        """Flip a stem's mute (keyboard shortcut target)."""
        strip = self.strips.get(get_stem(stem_id).id)
        if strip is not None and strip.available:
            strip.mute.toggle()

    def toggle_solo(self, stem_id: str) -> None:
        """Flip a stem's solo (keyboard shortcut target)."""
        strip = self.strips.get(get_stem(stem_id).id)
        if strip is not None and strip.available:
            strip.solo.toggle()

    def select_stem(self, stem_id: str | None) -> None:
        """Highlight a strip and announce it (the window highlights its lane)."""
        if stem_id is not None:
            stem_id = get_stem(stem_id).id
        if stem_id == self.selected:
            return
        self.selected = stem_id
        for sid, strip in self._all_strips.items():
            strip.set_selected(sid == stem_id)
            self.slim_strips[sid].set_selected(sid == stem_id)
        if stem_id is not None:
            self.selectedStemChanged.emit(stem_id)

    def _on_master(self, value: int) -> None:
        db = fader_to_db(value)
        self.player.set_master_db(db)
        self.master_label.setText(f"{format_gain(db)} dB")
        self.master_compact.setText(f"{format_gain(db)} dB")
        self.slim_master.show_state(db)
        self.mixerChanged.emit()

    def _on_ab(self, mix_checked: bool) -> None:
        source = "mix" if mix_checked else "remix"
        self.player.set_ab(source)
        self.mixerChanged.emit()
        self.abChanged.emit(source)

    def set_ab(self, source: str) -> None:
        """Select "mix" (A) or "remix" (B) from code or a shortcut."""
        (self.ab_mix if source == "mix" else self.ab_remix).setChecked(True)

    def toggle_ab(self) -> None:
        self.set_ab("remix" if self.player.mixer.source == "mix" else "mix")

    # -- devices and notice -----------------------------------------------------------
    def refresh_devices(self) -> None:
        """Fill the output device list (system default first)."""
        self.device_combo.clear()
        if not self.player.available:
            self.device_combo.addItem("No audio output", None)
            self.device_combo.setEnabled(False)
            return
        self.device_combo.setEnabled(True)
        self.device_combo.addItem("System default", None)
        for index, name in self.player.output_devices():
            self.device_combo.addItem(name, index)
        current = self.device_combo.findData(self.player.output_device())
        self.device_combo.setCurrentIndex(max(0, current))

    def _on_device(self, row: int) -> None:
        self.player.set_output_device(self.device_combo.itemData(row))

    def _update_notice(self) -> None:
        # slim: the status bar's "no audio output" says it in one line
        if self.player.available or self.slim:
            self.notice.hide()
        else:
            self.notice.setText(f"Playback is off: {self.player.unavailable_reason}. "
                                "Separating, mixing and exporting still work.")
            self.notice.show()

    # -- meters -----------------------------------------------------------------------
    def refresh_meters(self) -> None:
        """Read the player's peaks and move the meters (called by the timer)."""
        levels = self.player.levels()
        for stem_id, strip in self.strips.items():
            if strip.available:
                level = levels.get(stem_id, -math.inf)
                (self.slim_strips[stem_id].meter if self.slim else strip.meter).set_level(level)
        master = levels.get("master", -math.inf)
        (self.slim_master.meter if self.slim else self.master_meter).set_level(master)
        shown = self.slim_strips if self.slim else self.strips
        meters = [shown[s].meter for s in self.strips] + [
            self.slim_master.meter if self.slim else self.master_meter]
        if self.player.state() != "playing" and all(m.level_db == -math.inf for m in meters):
            self._timer.stop()  # everything has fallen to the floor

    def _on_player_state(self, state: str) -> None:
        if state == "playing" and self.isVisible():
            self._timer.start()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self.player.state() == "playing":
            self._timer.start()

    def hideEvent(self, event) -> None:  # noqa: N802
        super().hideEvent(event)
        self._timer.stop()


__all__ = ["MixerPanel", "LevelMeter", "ChannelStrip", "SlimStrip", "ResetSlider", "db_to_fader",
           "fader_to_db", "format_gain", "format_pan"]
