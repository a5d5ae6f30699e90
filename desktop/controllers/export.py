"""Exporting the separated stems (the export dialog) and fine-tuning a model (the train
dialog) from the main window."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt

from ..dialogs.export import ExportDialog

if TYPE_CHECKING:
    from ..main_window import MainWindow


class ExportController:
    """Opens the export and fine-tune dialogs; `dialog` is the open export dialog."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.dialog = None
        self.train_dialog = None

    def open_train_dialog(self) -> None:
        """The fine-tune dialog; a model it trains is offered in the model selector."""
        from ..dialogs.train import TrainDialog

        panel = self.window.panel
        if self.train_dialog is None:
            self.train_dialog = TrainDialog(self.window)
            self.train_dialog.modelTrained.connect(
                lambda name: (panel.refresh_models(), panel.set_model(name)))
        self.train_dialog.show()
        self.train_dialog.raise_()

    def export_stems(self) -> None:
        """Open the export dialog for the separated stems."""
        w = self.window
        if w.separated is None or w.song is None:
            w.statusBar().showMessage("Separate the song first, then export its stems.", 5000)
            return
        if w.partial is not None:
            w.statusBar().showMessage("The song is still being separated: export its "
                                      "stems when it is done.", 5000)
            return
        result = w.separated.result
        found = w.songs.tempo_key  # None until the background analysis has found it
        tags = getattr(w.song, "tags", None) or {}
        # the model's name for a pattern's {model}; the song's file for "copy the mix"
        model = getattr(result, "model", None) or getattr(
            getattr(w.separated, "options", None), "model", None)
        path = getattr(w.song, "path", None)
        dialog = ExportDialog(w, result.stems, result.samplerate, w.song.name,
                              w.player.mixer, w.settings.qsettings,
                              bpm=found.bpm if found is not None else None,
                              artist=tags.get("artist") or None, model=model or None,
                              song_path=path if path and Path(path).is_file() else None)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        exported = getattr(dialog, "exported", None)
        (exported if exported is not None else dialog.accepted).connect(self._exported)
        dialog.finished.connect(lambda _r: setattr(self, "dialog", None))
        self.dialog = dialog
        dialog.open()

    def _exported(self, paths: list | None = None) -> None:
        self.window.stems_saved = True
        where = f" to {Path(paths[0]).parent}" if paths else ""
        self.window.statusBar().showMessage(f"Export finished{where}.", 8000)
