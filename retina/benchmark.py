"""Held-out benchmark on the embedded ground-truth retina: fit (or load a fitted) model, score it per cell.

``HeldoutBenchmark(kind)`` fits a ``retina.MODELS`` model to the embedded recording ``kind``
(:func:`datasets.synthetic_retina.load_embedded_retina`) with :func:`retina.fit.fit`, or takes an already
fitted module, and scores it on the test repeats: the value is the median over cells passing the
explainable-variance filter (>= 0.15) of the Pearson correlation with the trial average; the ceiling is
the median leave-one-out oracle correlation of the same cells. ``HeldoutBenchmark(data=FILE)`` does the same on a
deep-retina HDF5 file of one's own (``retina_h5.heldout``), its fits cached by the file's sha256. Fits are kept in
``$NEUROZOO_CACHE/retina/fits/<model>-<kind>-<data sha256[:12]>-seed<seed>-fit<settings hash>/``
(:func:`retina.embedded_fit.fit_dir`) and reused (the fit loop resumes a finished checkpoint without
training further), so a score is computed once per model, data, seed and fitting protocol. ``benchmarks/retina.py`` registers the benchmarks in ``benchmarks.BENCHMARKS``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd
from torch import nn


@dataclass
class HeldoutResult:
    value: float  # median held-out correlation over cells passing the filter
    error: float  # standard error of that median over cells (bootstrap)
    ceiling: float  # median oracle correlation over the same cells
    frame: pd.DataFrame  # per cell: correlation, feve, oracle, explainable_fraction, noise_var, passes
    summary: dict
    provenance: dict = field(default_factory=dict)
    # the spike history the held-out metrics were predicted with (retina.fit.evaluate): a spike-history model's
    # "simulated" or "observed", None for a model without one
    heldout_history: Optional[str] = None


def _bootstrap_median_se(values: np.ndarray, n: int = 1000, seed: int = 0) -> float:
    if len(values) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    return float(np.median(rng.choice(values, (n, len(values))), axis=1).std())


def refuse_fit_overrides_for_module(identifier: str, model, fit_overrides: dict, refit: bool = False,
                                    fit_settings: Optional[dict] = None) -> None:
    """A :class:`UserFacingError` naming ``fit_overrides`` (and ``refit=True``) given with an already fitted module
    ``model``, and the benchmark's own ``fit_settings`` (given when it was loaded): they set how a registered model is
    fitted, and cannot apply to a module fitted before (scored as it is, they would be dropped unsaid: an untrained
    module scored with ``fit_settings={"epochs": 3}`` is not fitted for 3 epochs). A ``retina.MODELS`` name takes
    them; a benchmark loaded without ``fit_settings`` scores a module."""
    given = [f"{k}={v!r}" for k, v in {**fit_overrides, **({"refit": refit} if refit else {})}.items()]
    if fit_settings:
        given.append(f"fit_settings={fit_settings!r} (the benchmark's, given when it was loaded)")
    if given and not isinstance(model, str):
        from neurozoo.datasets.errors import UserFacingError

        raise UserFacingError(f"{identifier}.score: {', '.join(given)}: fit settings do not apply to an already "
                              f"fitted module ({type(model).__name__}), which is scored as it is; pass a registered "
                              "retina model's name to fit it with them, or leave them out (load the benchmark "
                              "without fit_settings to score a fitted module)")


def unscorable_cells(path, test) -> Optional[str]:
    """What is wrong with ``path``'s ``test/repeats`` when no cell's explainable variance reaches the filter (the score,
    the median over passing cells, would be NaN, recorded after a fit of minutes), else None. The repeats alone decide
    it, over the frames :func:`~neurozoo.retina.fit.evaluate` scores (from the first full window on)."""
    from neurozoo.datasets.retina_h5 import N_FRAMES
    from neurozoo.retina.metrics import MIN_EXPLAINABLE, explainable_fraction

    fractions = explainable_fraction(test.repeats[:, :, N_FRAMES - 1:])
    if (fractions >= MIN_EXPLAINABLE).any():
        return None
    shown = ", ".join(f"{cell} {value:.3f}" for cell, value in zip(test.cells, fractions))
    return (f"{path}: dataset test/repeats: no cell's explainable variance reaches {MIN_EXPLAINABLE} of its total over "
            f"the {test.repeats.shape[1]} repeats ({shown}), so no cell can be scored (held-out medians are over the "
            "cells passing that filter); more repeats, a longer test movie or more reliable cells give it some")


def module_selection(model: nn.Module, path, cells) -> list:
    """The indices into ``path``'s cells that ``cells`` selects (:func:`datasets.retina_h5.selected_cells`, file
    order) for a fitted ``model`` whose outputs are those cells, or every cell of the file (its outputs of those cells
    are then scored: :func:`scored_outputs`); a ``DataError`` naming both where the model's output count is another
    (its outputs would be scored against other cells' responses)."""
    from neurozoo.datasets.errors import DataError
    from neurozoo.datasets.retina_h5 import read_experiment

    test = read_experiment(path, "test", cells=cells)
    n_cells = getattr(model, "n_cells", None)
    if n_cells is not None and n_cells not in (len(test.cells), test.file_cells):
        raise DataError(f"cells {cells!r}: selects {len(test.cells)} of {path}'s cells ({', '.join(test.cells)}), but "
                        f"the fitted {type(model).__name__} has {n_cells} outputs; expected the cells it was fitted "
                        f"to, or all {test.file_cells} of the file's")
    return [int(i) for i in test.selection]


def scored_outputs(model: nn.Module, selection: list) -> Optional[list]:
    """The outputs of a fitted ``model`` of every cell of a file that a selection of its cells (``selection``, the
    file's indices: :func:`module_selection`) scores, those indices; None where its outputs are the selection's own
    (a fit of those cells) or it does not say its output count."""
    n_cells = getattr(model, "n_cells", None)
    return list(selection) if n_cells is not None and n_cells != len(selection) else None


def refuse_unscorable_cells(path, test) -> None:
    """A ``DataError`` with :func:`unscorable_cells`' message, if it has one."""
    from neurozoo.datasets.errors import DataError

    problem = unscorable_cells(path, test)
    if problem:
        raise DataError(problem)


#: The held-out benchmark's name on a file of one's own, as :mod:`benchmarks.retina` registers it (written out: the
#: retina package imports nothing of the benchmarks, ../shared/DESIGN.md; tests/test_retina_h5_benchmark.py checks)
FILE_HELDOUT = "retina_h5.heldout"


@dataclass
class HeldoutBenchmark:
    kind: str = "whitenoise"
    sizes: dict = field(default_factory=dict)  # passed to load_embedded_retina (defaults: full-size recording)
    fit_settings: dict = field(default_factory=dict)  # FitConfig overrides (epochs, lr, batch_size, ...)
    data: Optional[Path] = None  # a deep-retina HDF5 file of one's own instead of the embedded recording kind
    stimulus_class: Optional[str] = None  # data's stimulus class, kept in its fit's checkpoint (fitted_file_model)

    @property
    def identifier(self) -> str:
        if self.data is not None:
            return FILE_HELDOUT
        return f"retina_embedded.{self.kind}-heldout"

    @property
    def path(self) -> Path:
        return self.checked_path(self.fit_settings.get("cells"))

    def checked_path(self, cells=None) -> Path:
        """The recording scored, a file of one's own checked first (:func:`checked_experiment`; ``cells``: the fit
        setting's selection, the only cells checked and scored)."""
        if self.data is not None:
            from neurozoo.datasets.retina_h5 import checked_experiment

            refuse_unscorable_cells(self.data, checked_experiment(self.data, cells=cells)[1])
            return Path(self.data)
        from neurozoo.datasets.synthetic_retina import load_embedded_retina

        return load_embedded_retina(self.kind, **self.sizes)

    def score(self, model: Union[str, nn.Module], seed: int = 0, device: str = "cpu", refit: bool = False,
              progress: bool = True, heldout_history: str = "simulated", **fit_overrides) -> HeldoutResult:
        """Score a ``retina.MODELS`` name (fitted here with ``fit_overrides`` over :attr:`fit_settings`, or loaded from
        an earlier fit) or a fitted module (scored as it is: fit overrides, ``refit`` and :attr:`fit_settings` are
        refused with it, :func:`refuse_fit_overrides_for_module`). ``heldout_history``: the spike history a
        spike-history model (the GLM) is scored with (:func:`retina.fit.evaluate`), refused before any fit for
        another model; the fit is the same either way (the fit cache shares it).

        ``cells`` (:attr:`retina.fit.FitConfig.cells`: indices and/or names of the recording's cells): for a name,
        the cells it is fitted to and scored on; for a fitted module, the cells its outputs are (a ``zoo fit --cells``
        fit's, which its summary.json records), scored on those alone, its output count checked against them, or, for
        a module of every cell of the file, the cells whose outputs are scored (:func:`scored_outputs`). Either way the
        score's settings keep the selection (``cells``, the indices)."""
        from neurozoo.datasets.torch_devices import auto_device
        from neurozoo.retina.embedded_fit import fitted_embedded_model, fitted_file_model
        from neurozoo.retina.fit import check_heldout_history, create_model, evaluate, provenance
        from neurozoo.retina.metrics import summary

        device = auto_device(device)  # "auto": the device it gives, which the fit and the scoring use and info records
        named = isinstance(model, str)  # observed: the registered model built small, for its uses_history, unfitted
        # a fitted module's cells are the ones it was fitted to, no fit setting: scored on those
        module_cells = None if named else fit_overrides.pop("cells", None)
        refuse_fit_overrides_for_module(self.identifier, model, fit_overrides, refit, self.fit_settings)
        check_heldout_history(create_model(model, n_cells=1) if named and heldout_history == "observed" else model,
                              heldout_history, name=model if named else None)
        started = time.perf_counter()
        path = self.checked_path({**self.fit_settings, **fit_overrides}.get("cells") if named else module_cells)
        info = provenance(path)
        fit_info, outputs = {}, None
        if module_cells is not None:
            fit_info = {"settings": {"cells": module_selection(model, path, module_cells)}}
            # weights of every cell of the file, scored on some (a cell silent through train/ left out, say)
            outputs = scored_outputs(model, fit_info["settings"]["cells"])
        if isinstance(model, str):
            name, settings = model, {**self.fit_settings, **fit_overrides}
            if self.data is not None:
                module, fit_info = fitted_file_model(name, path, seed=seed, device=device, progress=progress,
                                                     refit=refit, stimulus_class=self.stimulus_class, **settings)
            else:
                module, fit_info = fitted_embedded_model(name, self.kind, seed=seed, device=device, progress=progress,
                                                         sizes=self.sizes, refit=refit, **settings)
        else:
            name, module = type(model).__name__, model
        # a fit of some of the file's cells (fit setting cells) is scored on those: its settings name them (resolved)
        frame = evaluate(module, path, device=device, heldout_history=heldout_history,
                         cells=None if outputs else fit_info.get("settings", {}).get("cells"), outputs=outputs)
        stats = summary(frame)
        kept = frame[frame["passes"]]
        info.update(fit_info)
        info.update(benchmark=self.identifier, model=name, seed=seed, device=device,
                    duration_s=round(time.perf_counter() - started, 2))
        return HeldoutResult(value=stats["median_correlation"], error=_bootstrap_median_se(kept["correlation"].to_numpy()),
                             ceiling=stats["median_oracle"], frame=frame, summary=stats, provenance=info,
                             heldout_history=heldout_history if getattr(module, "uses_history", False) else None)
