"""A recipe as one separator: member models run once each, stems taken, averaged, summed.

`RecipeSeparator.separate` runs every model the recipe names once on the mix (a model
giving several stems runs once), then the models asked to work on the remainder (the mix
minus the stems taken from the mix) once each, averages ensembles with the recipe's
weights, and forms the residual (mix minus the stems): it is the recipe's "residual"
stem, or is folded into other, so the stems always add up to the mix. One progress
callback spans the whole chain (each run gets an equal share) and `cancel` is checked
between and inside the runs. Recipes report no partial stems (`partial` is ignored): a
stem is final only when every model of the chain has run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from ..audio import channels as chan
from ..errors import ModelError
from ..progress import CancelCheck, Progress, ProgressCallback, check_cancel
from ..stems import StemMapping
from ..zoo.recipes import Recipe
from .separator import ModelPass, PartialCallback, SeparationResult, Separator, energy_db
from .separator import _validate_mix as validate_mix

MemberLoader = Callable[[str], Separator]


class _ChainProgress:
    """Scales each run's progress into its share of the whole chain; never goes back."""

    def __init__(self, callback: ProgressCallback | None, runs: int, seconds: float) -> None:
        self.callback, self.runs, self.seconds = callback, max(runs, 1), seconds
        self.start = time.monotonic()
        self.best = 0.0

    def send(self, fraction: float, message: str = "") -> None:
        if self.callback is None:
            return
        self.best = max(self.best, min(1.0, fraction))
        elapsed = time.monotonic() - self.start
        eta = elapsed * (1 - self.best) / self.best if self.best > 0 else None
        self.callback(Progress(self.best, self.best * self.seconds, self.seconds, eta,
                               message))

    def member(self, index: int, model: str) -> ProgressCallback:
        def report(p: Progress) -> None:
            self.send((index + min(max(p.fraction, 0.0), 1.0)) / self.runs,
                      f"{model}: {p.message}" if p.message else "")
        return report


class RecipeSeparator(Separator):
    """The separator of a resolved recipe (`zoo.recipes.resolve`): its members, loaded
    once each, in `members` (segment, overlap, half and batch size went to them)."""

    def __init__(self, recipe: Recipe, members: dict[str, Separator],
                 device: str | torch.device = "auto", **_options: object) -> None:
        super().__init__(device)
        self.recipe = recipe
        self.members = members
        self.name = recipe.name
        self.mapping = StemMapping(recipe.produced)
        for stem, src in recipe.stems.items():
            if src.by_sdr:
                raise ModelError(f"recipe '{recipe.name}': stems.{stem}: SDR weights are "
                                 "not resolved (load it through the zoo)")
            for model in src.models:
                if model not in members:
                    raise ModelError(f"recipe '{recipe.name}': model '{model}' is not loaded")
                if stem not in members[model].mapping.produced:
                    raise ModelError(
                        f"recipe '{recipe.name}': stems.{stem}: model '{model}' does not "
                        f"produce {stem} (it produces "
                        f"{', '.join(members[model].mapping.produced)})")

    def passes(self) -> list[ModelPass]:
        raise ModelError(f"recipe '{self.name}' runs its member models through separate(); "
                         "it has no network passes of its own")

    def to(self, device: torch.device) -> None:
        self.device = device
        for sep in self.members.values():
            sep.to(device)

    def _runs(self) -> list[tuple[str, str]]:
        """(input, model) of every run in order: the mix's models, then the remainder's."""
        out = []
        for where in ("mix", "remainder"):
            models = [m for src in self.recipe.stems.values() if src.input == where
                      for m in src.models]
            out += [(where, m) for m in dict.fromkeys(models)]
        return out

    def separate(self, mix: np.ndarray, samplerate: int,
                 progress: ProgressCallback | None = None, cancel: CancelCheck | None = None,
                 residual_to_other: bool = True,
                 partial: PartialCallback | None = None) -> SeparationResult:
        """Run the chain on `mix` [C, T]; the stems add up to the mix (see the module).
        `partial` is ignored: recipes report no partial stems."""
        mix = validate_mix(mix, samplerate)
        reference = mix if mix.shape[0] <= 2 else chan.downmix_to_stereo(mix)
        runs = self._runs()
        chain = _ChainProgress(progress, len(runs), mix.shape[-1] / samplerate)
        chain.send(0.0)
        sums: dict[str, np.ndarray] = {}
        stems: dict[str, np.ndarray] = {}
        notes: list[str] = []
        remainder = None
        for index, (where, model) in enumerate(runs):
            check_cancel(cancel)
            if where == "remainder" and remainder is None:
                self._finish("mix", sums, stems)
                remainder = reference.astype(np.float32, copy=True)
                for signal in stems.values():
                    remainder -= signal
            result = self.members[model].separate(
                mix if where == "mix" else remainder, samplerate,
                progress=chain.member(index, model), cancel=cancel, residual_to_other=False)
            notes += [f"{model}: {n}" for n in result.notes if "residual" not in n]
            for stem, src in self.recipe.stems.items():
                if src.input == where and model in src.models:
                    weight = np.float32(1.0 if src.weights is None else
                                        src.weights[src.models.index(model)])
                    signal = result.stems[stem]
                    if stem in sums:
                        sums[stem] += weight * signal
                    else:
                        sums[stem] = signal * weight if weight != 1.0 else signal
            del result
        check_cancel(cancel)
        self._finish("mix", sums, stems)
        self._finish("remainder", sums, stems)
        residual = reference.astype(np.float32, copy=True)
        for signal in stems.values():
            residual -= signal
        residual_db = energy_db(residual, reference)
        in_other = False
        own = self.recipe.residual_stem
        if own is not None:
            stems[own] = residual
            in_other = own == "other"
        elif residual_to_other and "other" in stems:
            stems["other"] += residual
            in_other = True
        elif residual_to_other:
            notes.append("recipe has no 'other' stem: the residual was not folded in")
        stems = {s: stems[s] for s in self.mapping.produced}
        notes = [f"{s} <- {src.describe()}" for s, src in self.recipe.stems.items()] + notes
        chain.send(1.0)
        return SeparationResult(stems=stems, samplerate=samplerate, model=self.name,
                                unavailable=self.mapping.unavailable, residual_db=residual_db,
                                residual_in_other=in_other, notes=notes)

    def _finish(self, where: str, sums: dict[str, np.ndarray],
                stems: dict[str, np.ndarray]) -> None:
        """Move the stems taken from `where` out of `sums` into `stems`, each divided by
        its total weight: a plain or weighted average (one model: itself)."""
        for stem, src in self.recipe.stems.items():
            if src.input != where or src.residual or stem not in sums:
                continue
            signal = sums.pop(stem)
            total = len(src.models) if src.weights is None else sum(src.weights)
            if total != 1.0:
                signal /= np.float32(total)
            stems[stem] = signal


def load_recipe_separator(recipe: Recipe, load: MemberLoader, device: str = "auto",
                          **options: object) -> RecipeSeparator:
    """Load each model of a resolved recipe once (`load(name)`) and wrap them; a member
    that cannot load raises ModelError naming the recipe."""
    members: dict[str, Separator] = {}
    for model in recipe.models:
        try:
            members[model] = load(model)
        except ModelError as exc:
            raise ModelError(f"recipe '{recipe.name}': {exc}") from exc
    return RecipeSeparator(recipe, members, device=device, **options)


__all__ = ["RecipeSeparator", "load_recipe_separator"]
