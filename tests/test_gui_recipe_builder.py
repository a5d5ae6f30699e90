"""Issue 16 in the app: build an ensemble or a recipe in a dialog (no JSON to edit); the
engine's parser validates it, errors show in the dialog, the file lands atomically in the
user's recipes folder (never replaced without asking), and the picker lists and selects
it, recipes set apart with a tooltip naming each stem's source.

Only built-in models (classic, hpss, repet, stemwright6); nothing separates."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QDialog  # noqa: E402

from stemwright.desktop.dialogs import recipe_builder  # noqa: E402
from stemwright.desktop.dialogs.recipe_builder import RecipeBuilderDialog  # noqa: E402
from stemwright.desktop.panels.separation import SeparationPanel  # noqa: E402
from stemwright.models.zoo import catalog as zoo  # noqa: E402
from stemwright.models.zoo import recipes  # noqa: E402

pytestmark = pytest.mark.usefixtures("desktop_isolation")  # never the real user's cache


def _dialog(qtbot) -> RecipeBuilderDialog:
    dialog = RecipeBuilderDialog()
    qtbot.addWidget(dialog)
    return dialog


def _user_file(name: str):
    return recipes.user_dir(zoo.cache_dir()) / f"{name}.json"


def test_ensemble_is_written_valid_and_loads(qtbot):
    dialog = _dialog(qtbot)
    assert {"classic", "hpss", "repet", "stemwright6"} <= set(dialog.member_checks)
    assert not any(e.family == recipes.FAMILY for e in dialog.models)  # no recipes
    dialog.name_edit.setText("hpss-classic")
    dialog.member_checks["hpss"].setChecked(True)
    dialog.member_checks["classic"].setChecked(True)
    dialog.mode_combo.setCurrentIndex(dialog.mode_combo.findData(recipe_builder.WEIGHTED))
    dialog.weight_spins["hpss"].setValue(3.0)
    assert dialog.save()
    assert dialog.result() == QDialog.DialogCode.Accepted
    path = _user_file("hpss-classic")
    data = json.loads(path.read_text())
    assert data["stems"]["drums"] == {"weighted": {"hpss": 3.0, "classic": 1.0}}
    assert data["stems"]["vocals"] == "classic"  # only classic makes vocals
    assert not list(path.parent.glob("*.part"))  # the temp file was renamed
    recipe = recipes.load_recipe_file(path)
    assert recipe.stems["other"].models == ("classic", "hpss")
    assert recipe.stems["drums"].weights == (1.0, 3.0)
    sep = zoo.load_separator("hpss-classic", device="cpu")
    assert set(sep.members) == {"hpss", "classic"}


def test_recipe_per_stem_with_remainder_and_residual_loads(qtbot):
    dialog = _dialog(qtbot)
    dialog.tabs.setCurrentIndex(1)
    choose = {"vocals": "repet", "drums": "hpss", "bass": "classic",
              "electric_guitar": "stemwright6", "wind": "", "other": "residual"}
    for stem, source in choose.items():
        combo = dialog.source_combos[stem]
        combo.setCurrentIndex(combo.findData(source))
        assert combo.currentData() == source
    assert not dialog.remainder_checks["other"].isEnabled()  # residual: no input
    dialog.remainder_checks["vocals"].setChecked(True)
    dialog.name_edit.setText("my_recipe")
    dialog.title_edit.setText("My recipe")
    assert dialog.save(), dialog.error_label.text()
    data = json.loads(_user_file("my_recipe").read_text())
    assert data["stems"]["vocals"] == {"model": "repet", "input": "remainder"}
    assert "wind" not in data["stems"] and data["stems"]["other"] == "residual"
    sep = zoo.load_separator("my_recipe", device="cpu")
    assert set(sep.members) == {"repet", "hpss", "classic", "stemwright6"}
    assert zoo.get_entry("my_recipe").mapping.produced == (
        "vocals", "drums", "bass", "electric_guitar", "other")


@pytest.mark.parametrize("setup, message", [
    (lambda d: d.member_checks["hpss"].setChecked(True), "two or more"),
    (lambda d: (d.member_checks["hpss"].setChecked(True),
                d.member_checks["repet"].setChecked(True),
                d.mode_combo.setCurrentIndex(2)), "reports no"),  # no SDR for built-ins
    (lambda d: (d.member_checks["hpss"].setChecked(True),
                d.member_checks["repet"].setChecked(True),
                d.name_edit.setText("bad name!")), "name"),
    (lambda d: (d.member_checks["hpss"].setChecked(True),
                d.member_checks["repet"].setChecked(True),
                d.name_edit.setText("classic")), "model's name"),
    (lambda d: (d.member_checks["hpss"].setChecked(True),
                d.member_checks["repet"].setChecked(True),
                d.name_edit.setText("fast")), "comes with Stemwright"),
    (lambda d: (d.tabs.setCurrentIndex(1), d.name_edit.setText("two-residuals"),
                [d.source_combos[s].setCurrentIndex(1) for s in ("bass", "other")]),
     "only one stem may be the residual"),
])
def test_bad_input_shows_an_error_and_writes_nothing(qtbot, setup, message):
    dialog = _dialog(qtbot)
    dialog.name_edit.setText("ok-name")
    setup(dialog)
    assert not dialog.save()
    assert dialog.error_label.isVisibleTo(dialog) and message in dialog.error_label.text()
    assert "\n" not in dialog.error_label.text()  # one line, no traceback
    assert dialog.saved_name is None
    folder = recipes.user_dir(zoo.cache_dir())
    assert not folder.exists() or not any(folder.iterdir())
    dialog.name_edit.setText("x")  # editing clears the error
    assert not dialog.error_label.isVisibleTo(dialog)


def test_an_existing_file_is_replaced_only_when_the_user_agrees(qtbot):
    path = _user_file("mine")
    path.parent.mkdir(parents=True)
    path.write_text('{"name": "mine", "stems": {"vocals": "repet"}}')
    dialog = _dialog(qtbot)
    dialog.name_edit.setText("mine")
    dialog.member_checks["hpss"].setChecked(True)
    dialog.member_checks["repet"].setChecked(True)
    asked = []
    dialog.confirm = lambda *a: asked.append(a) or False
    assert not dialog.save() and asked
    assert json.loads(path.read_text())["stems"] == {"vocals": "repet"}  # untouched
    dialog.confirm = lambda *a: True
    assert dialog.save()
    assert json.loads(path.read_text())["stems"]["vocals"] == "repet"
    assert json.loads(path.read_text())["stems"]["other"] == {"average": ["hpss", "repet"]}


def test_picker_lists_recipes_apart_with_a_tooltip_and_selects_the_new_one(qtbot,
                                                                          monkeypatch):
    panel = SeparationPanel()
    qtbot.addWidget(panel)
    combo = panel.model_combo
    shipped = combo.findData("fast")
    assert shipped > combo.findData("classic")
    assert "recipe" in combo.itemText(shipped).lower()
    tip = combo.itemData(shipped, Qt.ItemDataRole.ToolTipRole)
    assert "Vocals \u2190 htdemucs" in tip and "residual" in tip

    def fake_exec(dialog):
        dialog.name_edit.setText("picked")
        dialog.member_checks["hpss"].setChecked(True)
        dialog.member_checks["classic"].setChecked(True)
        assert dialog.save()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(RecipeBuilderDialog, "exec", fake_exec)
    assert panel.new_recipe_button.isEnabled()
    assert panel.new_recipe() == "picked"
    assert panel.current_model() == "picked"
    index = combo.findData("picked")
    assert "(recipe)" in combo.itemText(index)
    assert "download" not in combo.itemText(index)  # built-in members: ready to run
    assert "average of classic, hpss" in combo.itemData(index, Qt.ItemDataRole.ToolTipRole)
    assert combo.findData("picked") > combo.findData("repet")
    assert "drums &lt;- average of classic, hpss" in panel.model_info.text()  # not a tag
