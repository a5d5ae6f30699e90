"""Recipes: six stems composed from the best model (or ensemble) for each.

A recipe is a small JSON (or YAML) file naming, for each of the six stems, where it comes
from. Shipped recipes live in resources/recipes/, the user's in `cache_dir()/recipes/`.

    {"name": "my-mix", "title": "My mix", "description": "...",
     "stems": {
       "vocals": "mel_band_roformer_kj_vocals",             # that model's vocals
       "drums": {"average": ["bs_roformer_sw", "htdemucs_6s"]},
       "bass": {"weighted": {"bs_roformer_sw": 2, "htdemucs_6s": 1}},
       "electric_guitar": {"weighted": "sdr", "models": ["bs_roformer_sw", "htdemucs_6s"]},
       "wind": {"model": "stemwright6", "input": "remainder"},
       "other": "residual"}}

A source is a model name, `{"model": NAME}`, `{"average": [NAMES]}`, `{"weighted":
{NAME: WEIGHT}}` or `{"weighted": "sdr", "models": [NAMES]}` (weights = the per-stem SDR
the catalogue reports, the UVR convention); any of them may add `"input": "remainder"`
to run on the mix minus the stems taken from the mix. `"residual"` (at most one stem) is
the mix minus every other stem; without one, the residual is folded into other, as
`Separator` does. A stem left out (or null) is not produced.

Ensembles need no file: `a+b` (or `a@2+b@1`, weighted) is the average of the models'
estimates of every stem they produce.

This module never imports the catalogue (no import cycle): the catalogue hands itself in
as `zoo` where entries are needed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from stemwright.resources import resource_path

from ..errors import ModelError, StemwrightError
from ..progress import CancelCheck
from ..stems import STEM_IDS, StemMapping, get_stem

RECIPE_FORMATS = (".json", ".yaml", ".yml")
MAX_RECIPE_BYTES = 256 * 1024
RESIDUAL = "residual"
INPUTS = ("mix", "remainder")
FAMILY = "recipe"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_TOP_KEYS = {"name", "title", "description", "stems"}
_SOURCE_KEYS = {"model", "average", "weighted", "models", "input"}
#: `a+b` or `a@2+b@1`: an ensemble named on the command line
ENSEMBLE_SEP, WEIGHT_SEP = "+", "@"


class RecipeError(ModelError):
    """A recipe file is malformed, or names models that cannot make what it asks."""


@dataclass(frozen=True)
class StemSource:
    """Where one stem comes from: one model, or a (weighted) average of several; `input`
    is "mix" or "remainder" (the mix minus the stems taken from the mix)."""

    models: tuple[str, ...] = ()
    weights: tuple[float, ...] | None = None  # None: plain average (or one model)
    by_sdr: bool = False  # weights still to be read from the catalogue's SDR
    input: str = "mix"

    @property
    def residual(self) -> bool:
        return not self.models

    def describe(self) -> str:
        """E.g. "htdemucs", "average of a, b", "a (2), b (1)", "mix minus the rest"."""
        if self.residual:
            return "residual (the mix minus the other stems)"
        if len(self.models) == 1:
            text = self.models[0]
        elif self.by_sdr:
            text = "average of " + ", ".join(self.models) + " weighted by reported SDR"
        elif self.weights is None:
            text = "average of " + ", ".join(self.models)
        else:
            text = "weighted " + ", ".join(f"{m} ({w:g})" for m, w in
                                           zip(self.models, self.weights, strict=True))
        return text + (" on the remainder" if self.input == "remainder" else "")


@dataclass(frozen=True)
class Recipe:
    """A named chain: {stem id: StemSource} in canonical order."""

    name: str
    title: str
    description: str
    stems: dict[str, StemSource]
    origin: str = ""  # the file it came from, or why it has none
    shipped: bool = False

    @property
    def produced(self) -> tuple[str, ...]:
        return tuple(s for s in STEM_IDS if s in self.stems)

    @property
    def residual_stem(self) -> str | None:
        return next((s for s, src in self.stems.items() if src.residual), None)

    @property
    def models(self) -> tuple[str, ...]:
        """Every model the recipe runs, each once, in order of first use."""
        return tuple(dict.fromkeys(m for src in self.stems.values() for m in src.models))

    def chain(self) -> list[str]:
        """One line per stem: "vocals <- htdemucs"."""
        return [f"{stem} <- {src.describe()}" for stem, src in self.stems.items()]


# -- parsing -------------------------------------------------------------------------

def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value > 0):
        raise RecipeError(f"{where}: a weight must be a positive number, not {value!r}")
    return float(value)


def _model_list(value: Any, where: str) -> tuple[str, ...]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(m, str) and m.strip() for m in value)):
        raise RecipeError(f"{where}: give a list of model names")
    models = tuple(m.strip() for m in value)
    if len(set(models)) != len(models):
        raise RecipeError(f"{where}: a model is named twice")
    return models


def _parse_source(value: Any, where: str) -> StemSource:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise RecipeError(f"{where}: empty model name")
        return StemSource() if text == RESIDUAL else StemSource((text,))
    if not isinstance(value, dict):
        raise RecipeError(f"{where}: give a model name, \"residual\", or an object with "
                          "model / average / weighted")
    unknown = sorted(set(value) - _SOURCE_KEYS)
    if unknown:
        raise RecipeError(f"{where}.{unknown[0]}: unknown key (use model, average, weighted, "
                          "models, input)")
    kinds = [k for k in ("model", "average", "weighted") if k in value]
    if len(kinds) != 1:
        raise RecipeError(f"{where}: give exactly one of model, average, weighted")
    kind = kinds[0]
    source_in = value.get("input", "mix")
    if source_in not in INPUTS:
        raise RecipeError(f"{where}.input: must be \"mix\" or \"remainder\", not "
                          f"{source_in!r}")
    if "models" in value and value.get("weighted") != "sdr":
        raise RecipeError(f"{where}.models: only with \"weighted\": \"sdr\"")
    if kind == "model":
        model = value["model"]
        if not isinstance(model, str) or not model.strip() or model.strip() == RESIDUAL:
            raise RecipeError(f"{where}.model: give a model name")
        return StemSource((model.strip(),), input=source_in)
    if kind == "average":
        return StemSource(_model_list(value["average"], f"{where}.average"), input=source_in)
    weighted = value["weighted"]
    if weighted == "sdr":
        models = _model_list(value.get("models"), f"{where}.models")
        return StemSource(models, by_sdr=True, input=source_in)
    if not isinstance(weighted, dict) or not weighted:
        raise RecipeError(f"{where}.weighted: give {{model: weight, ...}} or \"sdr\" with "
                          "\"models\"")
    models = _model_list([str(k) for k in weighted], f"{where}.weighted")
    weights = tuple(_number(weighted[k], f"{where}.weighted.{k}") for k in weighted)
    return StemSource(models, weights, input=source_in)


def parse_recipe(data: Any, origin: str, shipped: bool = False) -> Recipe:
    """A Recipe from a parsed file; RecipeError (one line, naming `origin` and the key)."""
    if not isinstance(data, dict):
        raise RecipeError(f"{origin}: a recipe is an object with name and stems")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise RecipeError(f"{origin}: {unknown[0]}: unknown key (a recipe has name, title, "
                          "description, stems)")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RecipeError(f"{origin}: name: give letters, digits, - and _ (at most 64), not "
                          f"{name!r}")
    for key in ("title", "description"):
        if not isinstance(data.get(key, ""), str):
            raise RecipeError(f"{origin}: {key}: must be text")
    stems = data.get("stems")
    if not isinstance(stems, dict) or not stems:
        raise RecipeError(f"{origin}: stems: give {{stem: source}} for "
                          f"{', '.join(STEM_IDS)}")
    parsed: dict[str, StemSource] = {}
    for key, value in stems.items():
        try:
            stem = get_stem(str(key)).id
        except KeyError:
            raise RecipeError(f"{origin}: stems.{key}: unknown stem (use "
                              f"{', '.join(STEM_IDS)})") from None
        if stem in parsed:
            raise RecipeError(f"{origin}: stems.{key}: {stem} is given twice")
        if value is not None:
            parsed[stem] = _parse_source(value, f"{origin}: stems.{key}")
    residual = [s for s, src in parsed.items() if src.residual]
    if len(residual) > 1:
        raise RecipeError(f"{origin}: stems.{residual[1]}: only one stem may be the "
                          f"residual ({residual[0]} already is)")
    if len(parsed) == len(residual):
        raise RecipeError(f"{origin}: stems: name a model for at least one stem")
    ordered = {s: parsed[s] for s in STEM_IDS if s in parsed}
    return Recipe(name, data.get("title") or name, data.get("description", ""), ordered,
                  origin, shipped)


def load_recipe_file(path: str | Path, shipped: bool = False) -> Recipe:
    """Read one recipe file (.json, or .yaml/.yml through the safe loader)."""
    path = Path(path)
    if path.suffix.lower() not in RECIPE_FORMATS:
        raise RecipeError(f"{path.name}: a recipe is a .json or .yaml file")
    try:
        if path.stat().st_size > MAX_RECIPE_BYTES:
            raise RecipeError(f"{path.name}: far too big for a recipe (at most "
                              f"{MAX_RECIPE_BYTES // 1024} KiB)")
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            from ..yaml_safe import safe_yaml_load

            data = safe_yaml_load(path)
    except ModelError:
        raise
    except StemwrightError as exc:  # the YAML loader's one-line refusal
        raise RecipeError(str(exc)) from None
    except (OSError, ValueError, RecursionError) as exc:
        text = " ".join(str(exc).split())[:200]
        raise RecipeError(f"{path.name}: not a readable recipe ({text}); fix or remove "
                          "it") from None
    return parse_recipe(data, path.name, shipped)


def shipped_dir() -> Path:
    """The recipes that come with Stemwright (resources/recipes/)."""
    return resource_path("recipes")


def user_dir(cache: Path) -> Path:
    """The user's recipes: `cache_dir()/recipes/`."""
    return cache / "recipes"


def scan(cache: Path) -> tuple[list[Recipe], list[tuple[str, str]]]:
    """Every readable recipe, shipped first, and (file, reason) for each one skipped."""
    found: dict[str, Recipe] = {}
    bad: list[tuple[str, str]] = []
    for folder, shipped in ((shipped_dir(), True), (user_dir(cache), False)):
        try:
            paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in RECIPE_FORMATS)
        except OSError:  # no such folder (no user recipes yet), or unreadable
            continue
        for path in paths:
            try:
                recipe = load_recipe_file(path, shipped)
            except ModelError as exc:
                bad.append((str(path), str(exc)))
                continue
            if recipe.name in found:
                bad.append((str(path), f"{path.name}: a recipe called '{recipe.name}' "
                            f"already exists ({found[recipe.name].origin}); rename it"))
                continue
            found[recipe.name] = replace(recipe, origin=str(path))
    return list(found.values()), bad


def parse_ensemble(name: str) -> Recipe | None:
    """The in-memory recipe of an ensemble name `a+b` / `a@2+b@1`; None for other names.

    Every stem any member produces is the (weighted) average of the members that produce
    it (`find` spreads the members over the stems each produces)."""
    if ENSEMBLE_SEP not in name:
        return None
    models, weights = [], []
    for part in name.split(ENSEMBLE_SEP):
        model, sep, weight = part.strip().partition(WEIGHT_SEP)
        if not model:
            raise RecipeError(f"ensemble '{name}': empty model name (write a+b, or a@2+b@1 "
                              "with weights)")
        try:
            value = float(weight) if sep else 1.0
        except ValueError:
            value = math.nan
        models.append(model)
        weights.append(_number(value, f"ensemble '{name}': weight of {model}"))
    if len(set(models)) != len(models):
        raise RecipeError(f"ensemble '{name}': a model is named twice")
    source = StemSource(tuple(models), None if len(set(weights)) == 1 else tuple(weights))
    return Recipe(name, "Ensemble: " + ", ".join(models), "average of the models' "
                  "estimates of each stem", {"other": source}, "the command line")


def ensemble_name(models: list[str], weights: list[float] | None) -> str:
    """The name `--ensemble-weights` turns `a+b` into: `a@2+b@1`."""
    if weights is None:
        return ENSEMBLE_SEP.join(models)
    if len(weights) != len(models):
        raise RecipeError(f"--ensemble-weights gives {len(weights)} weights for "
                          f"{len(models)} models")
    return ENSEMBLE_SEP.join(f"{m}{WEIGHT_SEP}{_number(w, '--ensemble-weights'):g}"
                             for m, w in zip(models, weights, strict=True))


# -- the catalogue's side: entries, installation, resolution -------------------------

def find(name: str, zoo: ModuleType) -> Recipe | None:
    """The recipe (or ensemble) called `name`, None if there is none."""
    ensemble = parse_ensemble(name)
    if ensemble is not None:
        return _spread_ensemble(ensemble, zoo)
    if zoo.find_model(name) is not None:  # a model's name is never a recipe's
        return None
    return next((r for r in scan(zoo.cache_dir())[0] if r.name == name), None)


def _spread_ensemble(recipe: Recipe, zoo: ModuleType) -> Recipe:
    """An ensemble's one source spread over every stem its members produce."""
    source = recipe.stems["other"]
    produced: dict[str, list[int]] = {}
    for i, model in enumerate(source.models):
        entry = _member_entry(recipe, model, zoo)
        for stem in entry.mapping.produced:
            produced.setdefault(stem, []).append(i)
    stems = {}
    for stem in STEM_IDS:
        if stem in produced:
            idx = produced[stem]
            stems[stem] = StemSource(
                tuple(source.models[i] for i in idx),
                None if source.weights is None else tuple(source.weights[i] for i in idx))
    return replace(recipe, stems=stems)


def _member_entry(recipe: Recipe, model: str, zoo: ModuleType):
    """The catalogue entry of a recipe's model; RecipeError for unknown names and recipes."""
    entry = zoo.find_model(model)
    if entry is not None:
        return entry
    if any(r.name == model for r in scan(zoo.cache_dir())[0]):
        raise RecipeError(f"{_where(recipe)}: '{model}' is a recipe; a recipe runs models, "
                          "not other recipes")
    raise RecipeError(f"{_where(recipe)}: unknown model '{model}' (see `stemwright models "
                      "list`)")


def _where(recipe: Recipe) -> str:
    return f"recipe '{recipe.name}' ({Path(recipe.origin).name or recipe.origin})"


def recipes(zoo: ModuleType) -> list[Recipe]:
    """The readable recipes whose names no model takes."""
    return [r for r in scan(zoo.cache_dir())[0] if zoo.find_model(r.name) is None]


def skipped(zoo: ModuleType) -> list[tuple[str, str]]:
    """(file, reason) of every recipe file not listed: unreadable, or named like a model."""
    found, bad = scan(zoo.cache_dir())
    return bad + [(r.origin, f"{Path(r.origin).name}: '{r.name}' is a model's name; rename "
                   "the recipe") for r in found if zoo.find_model(r.name) is not None]


def entry_for(recipe: Recipe, zoo: ModuleType):
    """The ModelEntry (family "recipe") the CLI and the app list and load."""
    members = [zoo.find_model(m) for m in recipe.models]
    known = [e for e in members if e is not None]
    licences = list(dict.fromkeys(e.licence for e in known))
    return zoo.ModelEntry(
        recipe.name, recipe.title, FAMILY, StemMapping(recipe.produced), 44100,
        round(sum(e.size_mb for e in known), 1),
        licences[0] if len(licences) == 1 else "of each model (see `stemwright models "
        f"info {recipe.name}`)",
        f"recipe {recipe.origin}",
        (recipe.description + " " if recipe.description else "") + "; ".join(recipe.chain()))


def missing_models(recipe: Recipe, zoo: ModuleType) -> list[str]:
    """The recipe's models not installed (unknown names included)."""
    out = []
    for model in recipe.models:
        if zoo.find_model(model) is None:
            out.append(model)
            continue
        try:
            if not zoo.is_installed(model):
                out.append(model)
        except ModelError:
            out.append(model)
    return out


def _sdr(entry, stem: str) -> float | None:
    for sdr_stem, value in getattr(entry, "sdr", ()) or ():
        if sdr_stem == stem:
            return float(value)
    return None


def resolve(recipe: Recipe, zoo: ModuleType) -> Recipe:
    """Check the recipe against the catalogue before anything loads: every model exists,
    is no recipe and produces each stem asked of it; SDR weights become numbers."""
    stems = {}
    for stem, src in recipe.stems.items():
        weights = src.weights
        for model in src.models:
            entry = _member_entry(recipe, model, zoo)
            if stem not in entry.mapping.produced:
                raise RecipeError(
                    f"{_where(recipe)}: stems.{stem}: model '{model}' does not produce "
                    f"{stem} (it produces {', '.join(entry.mapping.produced)})")
        if src.by_sdr:
            values = []
            for model in src.models:
                value = _sdr(zoo.find_model(model), stem)
                if value is None or value <= 0:
                    raise RecipeError(
                        f"{_where(recipe)}: stems.{stem}: the catalogue reports no {stem} "
                        f"SDR for '{model}', so it cannot weight by SDR; give weights "
                        "instead ({\"weighted\": {MODEL: WEIGHT, ...}})")
                values.append(value)
            weights = tuple(values)
        stems[stem] = replace(src, weights=weights, by_sdr=False)
    return replace(recipe, stems=stems)


def download(recipe: Recipe, zoo: ModuleType,
             progress: Callable[[int, int | None], None] | None = None,
             cancel: CancelCheck | None = None) -> Path:
    """Download every missing model of the recipe that can be downloaded, one after the
    other; ModelError naming the first that cannot (before any download starts)."""
    missing = missing_models(recipe, zoo)
    entries = [zoo.check_downloadable(model) for model in missing]
    expected = int(sum(e.size_mb for e in entries) * 1e6) or None
    done = 0
    for model in missing:
        def step(got: int, total: int | None, base: int = done) -> None:
            if progress is not None:
                progress(base + got, expected)
        folder = zoo.download_model(model, progress=step, cancel=cancel)
        done += sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    return zoo.cache_dir() / "models"


__all__ = ["Recipe", "RecipeError", "StemSource", "parse_recipe", "load_recipe_file",
           "parse_ensemble", "ensemble_name", "scan", "find", "resolve", "entry_for",
           "missing_models", "download", "recipes", "skipped", "shipped_dir", "user_dir"]
