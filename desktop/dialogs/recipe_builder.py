"""Build an ensemble or a recipe without editing JSON (issue 16).

Two tabs: an ensemble (two or more installed models, averaged, weighted, or weighted by
the SDR the catalogue reports) and a recipe (a source per stem: a model that makes it,
the residual, or nothing, optionally run on what is left). The dialog only assembles the
recipe file's dict: the engine's parser and resolver (`zoo.recipes`) validate it, and
their one-line errors are shown in the dialog. The file is written atomically into the
user's recipes folder, never over another one without asking.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from stemwright.models.errors import ModelError, StemwrightError
from stemwright.models.stems import STEM_IDS, get_stem
from stemwright.models.zoo import catalog as zoo
from stemwright.models.zoo import recipes

#: the ensemble's ways of combining its members
AVERAGE, WEIGHTED, BY_SDR = "average", "weighted", "sdr"
NOT_PRODUCED = ""  # a recipe stem's combo data: the stem is not made


def installed_models() -> list[zoo.ModelEntry]:
    """The models that can run now (built in, or every file installed); no recipes."""
    out = []
    for entry in zoo.list_models():
        if entry.family == recipes.FAMILY:
            continue
        try:
            ready = not entry.needs_download or zoo.is_installed(entry.name)
        except StemwrightError:
            ready = False
        if ready:
            out.append(entry)
    return out


def ensemble_data(name: str, title: str, members: list[zoo.ModelEntry], mode: str,
                  weights: dict[str, float] | None = None) -> dict[str, Any]:
    """The recipe dict of an ensemble: each stem any member makes is combined (`mode`)
    over the members that make it, as `stemwright separate -m a+b` does."""
    stems: dict[str, Any] = {}
    for stem in STEM_IDS:
        names = [e.name for e in members if stem in e.mapping.produced]
        if len(names) == 1:
            stems[stem] = names[0]
        elif names and mode == BY_SDR:
            stems[stem] = {"weighted": "sdr", "models": names}
        elif names and mode == WEIGHTED:
            stems[stem] = {"weighted": {n: (weights or {}).get(n, 1.0) for n in names}}
        elif names:
            stems[stem] = {"average": names}
    how = {AVERAGE: "average", WEIGHTED: "weighted average",
           BY_SDR: "average weighted by reported SDR"}.get(mode, mode)
    return {"name": name, "title": title or "Ensemble: " + ", ".join(e.name for e in members),
            "description": f"Ensemble ({how}) of " + ", ".join(e.name for e in members) + ".",
            "stems": stems}


def recipe_data(name: str, title: str,
                choices: dict[str, tuple[str, bool]]) -> dict[str, Any]:
    """The recipe dict of {stem: (source, on the remainder)}; source is a model name,
    "residual", or "" (not produced: left out of the file)."""
    stems: dict[str, Any] = {}
    for stem, (source, remainder) in choices.items():
        if source == recipes.RESIDUAL:
            stems[stem] = recipes.RESIDUAL
        elif source:
            stems[stem] = {"model": source, "input": "remainder"} if remainder else source
    return {"name": name, "title": title or name, "description": "Built in the app.",
            "stems": stems}


def target_path(name: str) -> Path:
    """Where the recipe called `name` is written: `cache_dir()/recipes/NAME.json`."""
    return recipes.user_dir(zoo.cache_dir()) / f"{name}.json"


def validate(data: dict[str, Any]) -> recipes.Recipe:
    """The engine's checks (parser, then catalogue), plus: the name is free (no model,
    no shipped recipe, no other user file). RecipeError, one line, if not."""
    recipe = recipes.parse_recipe(data, "the new recipe")
    if zoo.find_model(recipe.name) is not None:
        raise recipes.RecipeError(f"'{recipe.name}' is a model's name; choose another name")
    target = target_path(recipe.name)
    for other in recipes.scan(zoo.cache_dir())[0]:
        if other.name != recipe.name:
            continue
        if other.shipped:
            raise recipes.RecipeError(f"'{recipe.name}' is a recipe that comes with "
                                      "Stemwright; choose another name")
        if Path(other.origin).resolve() != target.resolve():
            raise recipes.RecipeError(f"'{recipe.name}' is already the name of "
                                      f"{other.origin}; choose another name")
    return recipes.resolve(recipe, zoo)


def write_recipe(data: dict[str, Any], path: Path) -> Path:
    """Write the recipe JSON to `path` atomically (a temp file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class RecipeBuilderDialog(QDialog):
    """Make an ensemble or a recipe; `saved_name` is the new recipe's name once saved."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New ensemble or recipe")
        self.saved_name: str | None = None
        self.saved_path: Path | None = None
        #: asks before replacing a file; tests replace it
        self.confirm: Callable[[str, str], bool] = self._ask
        self.models = installed_models()

        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("my-ensemble (letters, digits, - and _)")
        self.title_edit = QLineEdit()
        self.title_edit.setPlaceholderText("Shown in the model list (optional)")
        top = QFormLayout()
        top.addRow("Name", self.name_edit)
        top.addRow("Title", self.title_edit)

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #ff6b6b")
        self.error_label.setVisible(False)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._ensemble_tab(), "Ensemble")
        self.tabs.addTab(self._recipe_tab(), "Recipe")

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        for edit in (self.name_edit, self.title_edit):
            edit.textChanged.connect(self._clear_error)
        self.resize(560, 460)

    # -- tabs -------------------------------------------------------------------------
    def _ensemble_tab(self) -> QWidget:
        page = QWidget()
        grid = QGridLayout()
        grid.addWidget(QLabel("<b>Model</b>"), 0, 0)
        grid.addWidget(QLabel("<b>Stems</b>"), 0, 1)
        grid.addWidget(QLabel("<b>Weight</b>"), 0, 2)
        self.member_checks: dict[str, QCheckBox] = {}
        self.weight_spins: dict[str, QDoubleSpinBox] = {}
        for row, entry in enumerate(self.models, start=1):
            check = QCheckBox(entry.title)
            check.setToolTip(entry.name)
            check.toggled.connect(self._mode_changed)
            spin = QDoubleSpinBox()
            spin.setRange(0.1, 100.0)
            spin.setSingleStep(0.5)
            spin.setValue(1.0)
            spin.setEnabled(False)
            stems = QLabel(", ".join(get_stem(s).name for s in entry.mapping.produced))
            stems.setStyleSheet("color: #aab2bf")
            grid.addWidget(check, row, 0)
            grid.addWidget(stems, row, 1)
            grid.addWidget(spin, row, 2)
            self.member_checks[entry.name] = check
            self.weight_spins[entry.name] = spin
        grid.setColumnStretch(1, 1)
        self.mode_combo = QComboBox()
        self.mode_combo.addItem("Plain average", AVERAGE)
        self.mode_combo.addItem("Weighted (a weight per model)", WEIGHTED)
        self.mode_combo.addItem("Weighted by reported SDR", BY_SDR)
        self.mode_combo.setToolTip("How the ticked models' estimates of each stem are "
                                   "combined; SDR weights come from the catalogue")
        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        mode_row = QHBoxLayout()
        mode_row.addWidget(QLabel("Combine"))
        mode_row.addWidget(self.mode_combo, 1)
        layout = QVBoxLayout(page)
        hint = QLabel("Tick two or more installed models: every stem is the average of "
                      "the ticked models that make it.")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        layout.addLayout(grid)
        layout.addLayout(mode_row)
        layout.addStretch(1)
        return page

    def _recipe_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout()
        self.source_combos: dict[str, QComboBox] = {}
        self.remainder_checks: dict[str, QCheckBox] = {}
        for stem in STEM_IDS:
            combo = QComboBox()
            combo.addItem("Not produced", NOT_PRODUCED)
            combo.addItem("Residual (the mix minus the other stems)", recipes.RESIDUAL)
            for entry in self.models:
                if stem in entry.mapping.produced:
                    combo.addItem(entry.title, entry.name)
            index = combo.findData(zoo.DEFAULT_MODEL)
            combo.setCurrentIndex(index if index >= 0 else 0)
            remainder = QCheckBox("on what is left")
            remainder.setToolTip("Run this model on the mix minus the stems the other "
                                 "models took from the mix")
            combo.currentIndexChanged.connect(self._source_changed)
            remainder.toggled.connect(self._clear_error)
            row = QHBoxLayout()
            row.addWidget(combo, 1)
            row.addWidget(remainder)
            form.addRow(get_stem(stem).name, row)
            self.source_combos[stem] = combo
            self.remainder_checks[stem] = remainder
        layout = QVBoxLayout(page)
        hint = QLabel("Pick where each stem comes from. Without a residual stem, what the "
                      "models leave out is added to Other.")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        layout.addLayout(form)
        layout.addStretch(1)
        self._source_changed()
        return page

    def _mode_changed(self, *_args) -> None:
        weighted = self.mode_combo.currentData() == WEIGHTED
        for name, spin in self.weight_spins.items():
            spin.setEnabled(weighted and self.member_checks[name].isChecked())
        self._clear_error()

    def _source_changed(self, *_args) -> None:
        for stem, combo in self.source_combos.items():
            is_model = combo.currentData() not in (NOT_PRODUCED, recipes.RESIDUAL)
            self.remainder_checks[stem].setEnabled(is_model)
            if not is_model:
                self.remainder_checks[stem].setChecked(False)
        self._clear_error()

    # -- the recipe -------------------------------------------------------------------
    def is_ensemble(self) -> bool:
        return self.tabs.currentIndex() == 0

    def data(self) -> dict[str, Any]:
        """The recipe file's dict from the current choices (not validated yet)."""
        name, title = self.name_edit.text().strip(), self.title_edit.text().strip()
        if self.is_ensemble():
            members = [e for e in self.models if self.member_checks[e.name].isChecked()]
            if len(members) < 2:
                raise recipes.RecipeError("tick two or more models for an ensemble")
            weights = {e.name: self.weight_spins[e.name].value() for e in members}
            return ensemble_data(name, title, members, str(self.mode_combo.currentData()),
                                 weights)
        return recipe_data(name, title, {
            stem: (str(combo.currentData() or ""), self.remainder_checks[stem].isChecked())
            for stem, combo in self.source_combos.items()})

    def show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def _clear_error(self, *_args) -> None:
        self.show_error("")

    def save(self) -> bool:
        """Validate, ask before replacing, write; True (and accept) once written."""
        try:
            data = self.data()
            recipe = validate(data)
        except ModelError as exc:
            self.show_error(str(exc))
            return False
        path = target_path(recipe.name)
        if path.exists() and not self.confirm(
                "Replace recipe?", f"A recipe file {path.name} already exists in "
                f"{path.parent}. Replace it?"):
            self.show_error(f"{path.name} exists; choose another name")
            return False
        try:
            write_recipe(data, path)
        except OSError as exc:
            self.show_error(f"could not write {path}: {exc.strerror or exc}")
            return False
        self.saved_name, self.saved_path = recipe.name, path
        self.accept()
        return True

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes
                                      | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes


def recipe_tooltip(name: str) -> str:
    """One line per stem of recipe `name` ("Vocals <- htdemucs"), or "" if unreadable."""
    try:
        recipe = recipes.find(name, zoo)
    except StemwrightError:
        return ""
    if recipe is None:
        return ""
    lines = [recipe.title] + [f"{get_stem(stem).name} \u2190 {src.describe()}"
                              for stem, src in recipe.stems.items()]
    missing = sorted(set(STEM_IDS) - set(recipe.stems))
    if missing:
        lines.append("Not produced: " + ", ".join(get_stem(s).name for s in missing))
    return "\n".join(lines)


__all__ = ["RecipeBuilderDialog", "installed_models", "ensemble_data", "recipe_data",
           "validate", "write_recipe", "target_path", "recipe_tooltip"]
