"""What `stemwright models list/info` say about each model, recipes included, and the
ensemble syntax of `stemwright separate -m a+b` (see zoo/recipes.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import StemwrightError
from ..zoo import catalog as zoo
from ..zoo import recipes

READY = "recipe: ready"
ENSEMBLE_HELP = ("an ensemble: MODEL+MODEL (e.g. htdemucs+htdemucs_ft) averages the models' "
                 "estimates of each stem, MODEL@W+MODEL@W weights them")


def model_state(e: zoo.ModelEntry) -> str:
    """"built in", "installed", "not downloaded", "import only"; for a recipe "recipe:
    ready" or "recipe: N missing" (its models not installed)."""
    if e.family == recipes.FAMILY:
        missing = recipes.missing_models(_recipe(e.name), zoo)
        return f"recipe: {len(missing)} missing" if missing else READY
    if e.family in ("classic", "embedded"):  # embedded: listed only when present
        return "built in"
    if zoo.is_installed(e.name):
        return "installed"
    return "not downloaded" if e.downloadable else "import only"


def _recipe(name: str) -> recipes.Recipe:
    recipe = recipes.find(name, zoo)
    if recipe is None:
        raise StemwrightError(f"'{name}' is not a recipe")
    return recipe


def recipe_chain(name: str) -> list[str]:
    """One line per stem of recipe `name`: "vocals <- htdemucs"."""
    return _recipe(name).chain()


def model_details(e: zoo.ModelEntry, state: str) -> list[str]:
    """`models info` / `models list --verbose`: what the model is, and how to get it."""
    if e.family == recipes.FAMILY:
        recipe = _recipe(e.name)
        lines = [recipe.description] if recipe.description else []
        lines += recipe.chain()
        for model in recipe.models:
            entry = zoo.find_model(model)
            lines.append(f"{model}: {model_state(entry) if entry else 'unknown model'}"
                         f"{f'; licence: {entry.licence}' if entry else ''}")
        lines.append(f"file: {recipe.origin}")
        if state != READY:
            lines.append(f"get its models with `stemwright models download {e.name}` (or "
                         "import them; see `stemwright models info MODEL`)")
        return lines
    lines = [e.description, f"source: {e.source}"]
    if state == "import only":
        lines.append(f"import only: {zoo.import_hint(e)}")
        lines += [f"{f.target or 'file'}: {f.url}" for f in e.files]
    elif state == "not downloaded":
        lines.append(f"get it with `stemwright models download {e.name}`")
    record = zoo.roformer_record(e.name) if e.family == "roformer" else None
    if record is not None:
        lines += [f"{name}: sha256 {record['sha256'].get(role, '?')}"
                  for role, name in record["files"].items()]
    return lines


def warn_unreadable_recipes() -> None:
    """One warning line per recipe file that was skipped, and why."""
    for path, reason in recipes.skipped(zoo):
        print(f"stemwright: warning: skipped recipe {reason} (in {Path(path).parent})",
              file=sys.stderr)


def download_names(names: list[str]) -> list[str]:
    """`models download` names with each recipe replaced by its missing models."""
    out: list[str] = []
    for name in names:
        entry = zoo.get_entry(name)
        if entry.family == recipes.FAMILY:
            missing = recipes.missing_models(_recipe(name), zoo)
            if not missing:
                print(f"{name}: every model of the recipe is installed")
            out += missing
        else:
            out.append(name)
    return list(dict.fromkeys(out))


def ensemble_model(model: str, weights: str | None) -> str:
    """The model name `separate` runs: `-m a+b --ensemble-weights 2,1` -> `a@2+b@1`."""
    if weights is None:
        return model
    if recipes.ENSEMBLE_SEP not in model:
        raise StemwrightError("--ensemble-weights needs an ensemble: -m MODEL+MODEL (e.g. "
                              "-m htdemucs+htdemucs_ft --ensemble-weights 2,1)")
    try:
        values = [float(w) for w in weights.split(",")]
    except ValueError:
        raise StemwrightError(f"--ensemble-weights '{weights}': give numbers separated by "
                              "commas, one per model (e.g. 2,1)") from None
    models = [m.partition(recipes.WEIGHT_SEP)[0].strip()
              for m in model.split(recipes.ENSEMBLE_SEP)]
    return recipes.ensemble_name(models, values)


__all__ = ["ENSEMBLE_HELP", "model_state", "model_details", "recipe_chain",
           "warn_unreadable_recipes", "download_names", "ensemble_model"]
