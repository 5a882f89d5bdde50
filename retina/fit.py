"""Fitting retina models to ganglion-cell recordings, and scoring them on held-out repeats.

Interface (stable; other modules build on it):

* A model is an ``nn.Module``: ``model(windows (B, 40, 50, 50)) -> rates (B, n_cells)`` (spikes/s, the
  units of the file's ``firing_rate_10ms``). Optional hooks the loop uses when present:
  ``forward_movie(movie (T + 39, 50, 50)) -> (T, n_cells)`` (all windows of a contiguous chunk at once;
  then batches are contiguous chunks of ``batch_size`` targets in shuffled order), ``uses_history = True``
  (then ``history=`` ``(B, n_cells, H)`` binned counts of the ``H = model.history`` frames before the
  target are passed, and ``forward_movie(movie, history=...)``), ``init_from_data(mean_rate (n_cells,))``
  (called once before training), ``init_from_sta(sta (n_cells, 40, 50, 50))`` (the spike-triggered
  average of the training split, before ``init_from_data``), ``init_from_stimulus(windows (N, 40, 50, 50))``
  (a sample of training windows, after ``init_from_sta``), ``param_groups(lr)`` (Adam parameter
  groups), ``predict_movie`` (GLM: autoregressive held-out prediction), ``validation_response`` (the response
  early stopping watches; default the smoothed ``firing_rate_10ms``).
* Units: the embedded recordings' rates are spikes/s (mean about 25, peaks near 300 under white
  noise). A model whose output starts near 1 (softplus after BatchNorm) needs its output scale set in
  ``init_from_data`` or fitted after the stop (``default_output_calibration``, :func:`calibrate_output`) -- Adam at
  1e-2 needs thousands of steps to grow it, and early stopping on correlation does not wait for them.
* ``fit(model, data, config=None, out=None, **overrides) -> FitResult``: ``data`` is an experiment file
  (:mod:`datasets.retina_h5`) or a train ``Recording``. Loss: Poisson NLL + ``l2`` * sum of squared weights
  (parameters with ndim > 1, biases excepted, or the model's ``penalised_weights()``) + ``l1`` * mean over the batch
  of the summed |rates| (``objective="deep-retina"``: deep-retina's GLM objective instead,
  :func:`deep_retina_objective`); Adam; early stopping on the mean validation correlation (contiguous validation blocks,
  :func:`datasets.retina_h5.split_blocks`; ``monitor="poisson"``: on the validation Poisson loss), then, for the
  BN-CNN (``output_calibration``, protocol 9), the output BatchNorm's per-cell gain and offset fitted alone to the
  training data (:func:`calibrate_output`).
  With ``out``, a checkpoint is written atomically after every epoch and a rerun resumes from it, if it fits the
  same recording (sha256) with the same ``RESUME_FIXED`` settings under the same ``FIT_PROTOCOL`` and model, and the
  same ``stimulus_class`` where both runs say one (else a ``DataError``, :class:`ResumeRefused` for other settings;
  another architecture of the same class is named by its first differing shape). The checkpoint's
  fitted model, the one saved as ``model.pt``, is :func:`fitted_weights`'s (its ``"model"`` entry is the last epoch's,
  before calibration). SIGTERM or Ctrl-C lets the epoch under way finish and write its checkpoint, then raises
  :class:`FitInterrupted` with no final weights written (a second Ctrl-C stops at once); the rerun resumes to the
  uninterrupted fit's weights, bit for bit.
* Protocol numbers (:class:`FitConfig`): Adam at the model's rate (1e-2 for the BN-CNN, as published), L2 1e-3, L1
  1e-3, up to 40 epochs; early stopping after ``patience`` epochs without a gain of ``min_delta`` in validation
  correlation (the best epoch's weights are kept; patience and gain: the model's ``default_patience`` and
  ``default_min_delta``, else 2 and 0.01; the GLM's are 3 and 0.001, protocol 10; its softplus link and penalty on the
  post-spike filter, protocol 11; protocol 6 gives every other built-in model patience 2 again -- protocol 5's
  patience 1 for the BN-CNN stopped its natural-scene fit at validation r 0.466, 0.526, 0.523, held-out r 0.539, where
  patience 2 reaches 0.573 in 7 epochs). Deviation: batches of 128
  targets, not the published ~2600-5000 -- an embedded recording has 24000 training frames, so a published batch
  gives 5-9 steps per epoch. Measured fits of every built-in model: docs/retina.md, "Measured"
  (benchmarks/retina_table.py); the fit's speed: benchmarks/perf/retina_fit_speed.py.
* ``predict(model, stimulus, ...) -> (n_cells, T - 39)`` rates for targets 39..T-1 of a movie.
* ``evaluate(model, path) -> pandas.DataFrame`` of :func:`retina.metrics.heldout_metrics` on the test split.
* ``create_model(name, n_cells, **kwargs)`` / ``builtin_models()``: :func:`retina.create_model` and
  :func:`retina.list_models` (the registry imports the built-in models).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from neurozoo import retina
from neurozoo.datasets.errors import DataError, SpecError
from neurozoo.datasets.json_files import write_json
from neurozoo.datasets.retina_h5 import N_FRAMES, Recording, StimulusWindows, narrowed, read_experiment, split_blocks
from neurozoo.datasets.termination import SafePoint, sigterm_deferred, termination_requested
from neurozoo.datasets.torch_devices import auto_device
from neurozoo.datasets.torch_files import read_torch_file, state_mismatch

FRAME_RATE = 100.0  # frames per second of the deep-retina recordings
EVAL_CHUNK = 512  # targets per forward pass when nothing is trained (validation, prediction)
# training targets the output calibration uses (two parameters per cell), in chunks spread over the training split: on
# the embedded white-noise recording 4281 of them took 1.7 CPU-s and gave held-out FEVE 0.432, all 21,405 ~10 CPU-s and
# 0.437 (3257: 0.443; 7538: 0.427; 2026-12-02)
CALIBRATION_TARGETS = 4000
# validation targets (10 s at 100 Hz) below which a fit warns that early stopping watches too few frames: a 2000-frame
# recording passes split_blocks with 5 validation targets, one per block, and its validation r (-0.33 in one 2-epoch
# BN-CNN fit whose held-out r was 0.24) chose the kept epoch silently
MIN_VALIDATION_TARGETS = 1000
# bump when the loop or a model's initialisation changes what a fit with given settings yields; 7: no L2 on the
# two-subunit model's (2, n_cells) subunit biases (the BN-CNN's, LN's and GLM's fits are unchanged); 8: the GLM's
# early stopping watches the binned counts, not the smoothed rate, which discarded its post-spike filter (the others
# are unchanged); 9: after early stopping the BN-CNN's output BatchNorm gain and offset are fitted to the training data
# (calibrate_output; the others are unchanged); 10: the GLM's early stopping counts a validation gain of 0.001 as progress
# and waits 3 epochs (``default_min_delta``, ``default_patience``): at 0.01 and 2 it stopped after 3 of the ~24 epochs
# its validation correlation rose for (the others are unchanged); 11: the GLM's link is softplus and its L2 penalty acts
# on the post-spike filter itself, as deep-retina's scripts/fit_glms.py: with the exp link and the penalty's refractory
# prior it fell short of the LN model on LN cells (retina/models/glm.py; the others are unchanged)
FIT_PROTOCOL = 11


def builtin_models() -> List[str]:
    """The registered retina models (the registry imports the built-in ones on its first look-up)."""
    return retina.list_models()


def create_model(name: str, n_cells: int, **kwargs) -> nn.Module:
    return retina.create_model(name, n_cells=n_cells, **kwargs)


@dataclass
class FitConfig:
    epochs: int = 40
    lr: Optional[float] = None  # default: the model's ``default_lr`` or 1e-2 (the published BN-CNN rate)
    batch_size: int = 128  # published: ~2600-5000; see the module docstring
    l2: float = 1e-3
    l1: float = 1e-3
    response: Optional[str] = None  # default: the model's ``fit_response`` or "firing_rate_10ms"
    val_fraction: float = 0.1
    n_blocks: int = 5
    patience: Optional[int] = None  # default: the model's ``default_patience`` or 2
    # a validation score (the correlation, or minus the Poisson loss) this much above the reference resets the patience;
    # default: the model's ``default_min_delta`` or 0.01
    min_delta: Optional[float] = None
    monitor: str = "correlation"  # what early stopping and the best epoch watch: "correlation" or "poisson" (loss)
    # what the training steps minimise (OBJECTIVES): "zoo", the Poisson loss in spikes/s + l2 + l1 (every model), or
    # "deep-retina", deep-retina's scripts/fit_glms.py objective for the GLM (deep_retina_objective; l2 and l1 unused)
    objective: str = "zoo"
    # where the L2 acts on a low-rank stimulus filter (retina.models.ln.LowRankFilter: ln, glm): None (protocol 11), on
    # its stored factors under ``l2`` as every weight; a number, ``filter_l2 * sum(k^2)`` on each assembled filter ``k``
    # (deep-retina's linear_nonlinear: 0.01) in place of that (docs/retina.md, "The LN's filter penalty")
    filter_l2: Optional[float] = None
    # after early stopping, fit the output BatchNorm's per-cell gain and offset alone to the training data (Poisson);
    # default: the model's ``default_output_calibration`` (the BN-CNN: True), else False
    output_calibration: Optional[bool] = None
    # the file's cells fitted and scored (``zoo fit --cells``; deep-retina's ``loadexpt(expt, cells, ...)``): their
    # indices into the file, or a text or list of indices and names that the fit resolves against the file
    # (datasets.retina_h5.selected_cells) to the indices, sorted; None: every cell, in file order
    cells: Optional[Any] = None
    seed: int = 0
    # a torch device: "cpu", "cuda", "cuda:N", or "auto" (a GPU where torch sees one, else the CPU:
    # datasets.torch_devices.auto_device, which resolved_config applies, so the fit uses and records cpu or cuda)
    device: str = "cpu"
    max_steps_per_epoch: Optional[int] = None
    # "chunks" (contiguous chunks of targets through forward_movie), "windows" (shuffled windows), or "auto": chunks
    # for a model with forward_movie, else windows (resolved_config; by the model alone, never by the device)
    batching: str = "auto"
    progress: bool = True


def checked_fit_settings(settings: Mapping[str, Any], source: str, own_arguments: Sequence[str] = ()) -> dict:
    """``settings`` as a dict, refused where a name is not a :class:`FitConfig` setting with a one-line
    :class:`SpecError` naming where they came from (``source``, e.g. ``benchmarks.load('...', fit_settings=...)``),
    each unknown name, the close match (:func:`datasets.errors.did_you_mean`) and the valid names: a misspelt
    ``epoch=3`` ended in a bare ``TypeError`` inside ``FitConfig``. ``own_arguments``: settings the caller takes as
    arguments of its own (a retina benchmark's ``score(seed=..., device=...)``), refused here too, never passed twice.
    The one check of fit settings' names, for every path that builds a ``FitConfig`` from what a user gave
    (:func:`fit`'s keywords, the embedded fit, the retina benchmarks' ``fit_settings`` and ``score`` keywords, the
    settings of a ``zoo fit`` summary that ``zoo reproduce`` fits again)."""
    from neurozoo.datasets.errors import SpecError, did_you_mean

    valid = [f.name for f in dataclasses.fields(FitConfig) if f.name not in own_arguments]
    unknown = [name for name in settings if name not in valid]
    if unknown:
        names = ", ".join(map(repr, unknown))
        verb = "is not a fit setting" if len(unknown) == 1 else "are not fit settings"
        own = [name for name in own_arguments if name in unknown]
        aside = f"; give {', '.join(own)} as an argument of its own" if own else ""
        raise SpecError(f"{source}: {names} {verb}{did_you_mean(unknown, valid)} (the fit settings: "
                        f"{', '.join(valid)}{aside})")
    return dict(settings)


#: What a resumed fit must share with its checkpoint: the settings that set the path of the optimisation (the
#: stopping rules, device and progress bar may change between runs, e.g. a rerun with more epochs).
RESUME_FIXED = ("lr", "batch_size", "l2", "l1", "response", "val_fraction", "n_blocks", "seed", "max_steps_per_epoch",
                "batching", "monitor", "objective", "filter_l2", "cells")


#: What :attr:`FitConfig.objective` may be: the zoo's one protocol, or deep-retina's GLM objective
#: (:func:`deep_retina_objective`, for a model with ``deep_retina_penalty()``).
OBJECTIVES = ("zoo", "deep-retina")


#: What early stopping may watch on the validation split: the mean correlation (scale-free) or minus the Poisson loss.
MONITORS = ("correlation", "poisson")


#: What a finished fit leaves in ``out`` beside its checkpoint (``zoo fit`` adds the last three).
RESULT_FILES = ("model.pt", "history.json", "summary.json", "heldout_metrics.csv", "fit_curve.png")

#: The folder in ``out`` where a fresh fit keeps the earlier fit until its own first checkpoint (:func:`_set_aside`).
EARLIER_FIT = "earlier-fit"


@dataclass
class FitResult:
    model: nn.Module
    history: List[dict]
    best_epoch: int
    best_val_correlation: float
    config: FitConfig
    checkpoint: Optional[Path] = None
    duration_s: float = 0.0
    extra: dict = field(default_factory=dict)
    data_sha256: Optional[str] = None  # of the recording file read (None: fitted to a Recording held in memory only)
    early_stopped: bool = False  # the patience ran out (possibly on the last allowed epoch too)
    # torch's thread counts its epochs ran under, in order of first use (several: resumed under another count; empty:
    # a cached fit from before checkpoints recorded them): float sums are grouped per thread, so the weights follow
    # them, and a score read from the fit cache later runs under its own process's count
    torch_threads: List[int] = field(default_factory=list)
    # False where a checkpoint written before checkpoints recorded the recording's stimulus class (2026-12-04) was
    # resumed or read under a class the caller named: that class is taken as told, unchecked against the one the fit
    # was begun under (zoo fit's summary.json says so, stimulus_class_checked); True otherwise
    stimulus_class_checked: bool = True
    # the epochs this call trained: 0 where it resumed a finished fit (read from its checkpoint, the fit cache's or
    # --out's), whose duration_s is then the reading's, not the fitting's (fit_duration_s is the fit's); None: not
    # counted
    epochs_fitted: Optional[int] = None
    # seconds of fitting in all: every run (stretch) that made this fit, a resumed one's earlier runs included, a read
    # none (retina.fit_time); None where a stretch's time is unknown (begun before fit times were kept). duration_s is
    # this call's alone
    fit_duration_s: Optional[float] = None
    # those runs in order, [{"epochs": [first, end], "seconds": s or None}, ...] (retina.fit_time.FitTime.stretches)
    fit_stretches: List[dict] = field(default_factory=list)
    # this call made the output calibration (calibrate_output) rather than read it or make none; with epochs_fitted
    # 0, a fit resumed after its last epoch and before its calibration: this run's fitting was the calibration alone
    # (its stretch [n, n]), not a finished fit read
    calibrated_now: bool = False


#: what a fit refused to resume its output folder's checkpoint (another recording, other settings, other weights)
#: says to do, in Python's words and in zoo fit's
ANOTHER_FOLDER_OR_AFRESH = "use another output folder (out= / --out) or start afresh (resume=False / --no-resume)"


class ResumeRefused(DataError):
    """:func:`fit`'s refusal to resume the checkpoint ``checkpoint`` of a fit with other settings (``changed``, e.g.
    ``["stimulus_class naturalscene -> whitenoise"]``), before anything is fitted or written. A caller whose user
    does not call fit itself (the fit cache, :func:`retina.embedded_fit.held_fit`) says how to start afresh its own
    way."""

    def __init__(self, checkpoint: Path, changed: Sequence[str],
                 advice: str = ANOTHER_FOLDER_OR_AFRESH):
        self.checkpoint, self.changed = checkpoint, list(changed)
        super().__init__(f"{checkpoint}: a fit with other settings ({', '.join(changed)}); {advice}")


class FitInterrupted(KeyboardInterrupt):
    """A fit stopped by SIGTERM or Ctrl-C at a safe point of :func:`fit`: the end of an epoch (after its checkpoint),
    or after the last one and the output calibration, before the final weights. No final weights or history were
    written; ``checkpoint`` (None for a fit without ``out``) holds ``epochs_done`` epochs, and a fit with the same
    ``out`` and settings resumes from it to the weights an uninterrupted fit gives. A ``KeyboardInterrupt``, so that
    whatever handles Ctrl-C (``zoo``'s exit 130, a scorer handing its job back to the queue) handles it. ``seconds``:
    this run's fitting time up to that checkpoint, which a resumed fit counts in its total (:mod:`retina.fit_time`)."""

    def __init__(self, signum: int, checkpoint: Optional[Path], epochs_done: int, epochs: int,
                 resume: Optional[str] = None, seconds: Optional[float] = None):
        self.signum, self.checkpoint, self.epochs_done, self.epochs = signum, checkpoint, epochs_done, epochs
        #: this run's seconds of fitting up to its last checkpoint: the stretch a resume adds its own to
        #: (:mod:`retina.fit_time`); None where not said
        self.seconds = seconds
        fitted = f"{epochs_done} of at most {epochs} epochs fitted"
        kept = (f"{fitted}, kept in {checkpoint}" if checkpoint is not None
                else f"{fitted} and lost (a fit without out= keeps no checkpoint)")
        #: what was kept; ``resume`` (how to go on, for a caller whose user does not call fit itself) follows it
        self.kept = f"fit stopped (signal {signum}) before its final weights: {kept}"
        super().__init__(f"{self.kept}; {resume}" if resume else self.kept)


#: What :attr:`FitConfig.batching` may be (:func:`resolved_config` resolves ``"auto"`` to one of the other two).
BATCHINGS = ("auto", "chunks", "windows")


#: The :class:`FitConfig` settings whose None means "the model's own" (:func:`resolved_config`).
MODEL_DEFAULTS = {"response": ("fit_response", "firing_rate_10ms", str), "lr": ("default_lr", 1e-2, float),
                  "patience": ("default_patience", 2, int), "min_delta": ("default_min_delta", 0.01, float),
                  "output_calibration": ("default_output_calibration", False, bool)}


def resolved_config(model: nn.Module, config: FitConfig) -> FitConfig:
    """``config`` with each setting left None (:data:`MODEL_DEFAULTS`) set to ``model``'s own (its attribute, else the
    zoo's default), ``batching`` resolved (:func:`resolved_batching`) and a ``device`` ``"auto"`` resolved
    (:func:`datasets.torch_devices.auto_device`, the commands' rule): the settings the fit uses and records."""
    return dataclasses.replace(config, batching=resolved_batching(model, config.batching),
                               device=auto_device(config.device),
                               **{name: kind(getattr(model, attribute, default))
                                  for name, (attribute, default, kind) in MODEL_DEFAULTS.items()
                                  if getattr(config, name) is None})


def resolved_batching(model: nn.Module, batching: str) -> str:
    """``"chunks"`` or ``"windows"``: how a fit of ``model`` with ``batching`` (:data:`BATCHINGS`) draws its batches;
    ``"auto"`` is chunks for a model with ``forward_movie`` (the fast path), else windows."""
    from neurozoo.datasets.errors import SpecError

    if batching not in BATCHINGS:
        raise SpecError(f"fit settings: batching must be one of {BATCHINGS} (got {batching!r})")
    if batching == "chunks" and not hasattr(model, "forward_movie"):
        raise SpecError(f"fit settings: batching 'chunks' needs {type(model).__name__}.forward_movie")
    if batching == "auto":
        return "chunks" if hasattr(model, "forward_movie") else "windows"
    return batching


def checked_config(model: nn.Module, config: FitConfig, name: Optional[str] = None) -> FitConfig:
    """:func:`resolved_config`, refused with a one-line :class:`SpecError` where the loop cannot use it with
    ``model`` (:func:`_check_config`; output calibration for a model without an output BatchNorm). Callers that
    name or lock a fit's folder check first, so that bad settings leave nothing behind. ``name``: the model's name as
    the user gave it (``bncnn``), which the refusal names (default: the model's class)."""
    from neurozoo.datasets.errors import SpecError

    config = resolved_config(model, config)
    _check_config(config)
    if config.objective == "deep-retina" and not hasattr(model, "deep_retina_penalty"):
        raise SpecError(f"fit settings: --objective deep-retina (objective='deep-retina': deep-retina's GLM objective, "
                        f"scripts/fit_glms.py) applies to {', '.join(deep_retina_objective_models()) or 'no model'} "
                        f"only, the retina models that name its penalty groups (deep_retina_penalty()); "
                        f"{name or type(model).__name__} names none")
    if config.filter_l2 is not None and not low_rank_filters(model):
        raise SpecError(f"fit settings: --filter-l2 (filter_l2: the L2 on a low-rank stimulus filter, assembled) applies "
                        f"to models with a LowRankFilter (ln, glm); {name or type(model).__name__} has none")
    if config.output_calibration and not _has_output_batchnorm(model):
        raise SpecError(f"fit settings: output_calibration needs a model whose output BatchNorm1d (bn3) has a gain and "
                        f"offset; {type(model).__name__} has none")
    return config


def deep_retina_objective_models() -> List[str]:
    """The registered retina models that ``objective="deep-retina"`` can fit: those whose model class has
    ``deep_retina_penalty()``, read from the class their factory makes (:func:`made_class`) without making one. A
    factory that does not say its class is built with one cell to see (the global random generators left as they
    were; one that cannot be built is left out). Each model was built to list them, a plugin's included (until
    2026-12-05)."""
    from neurozoo import retina

    names = []
    for name in sorted(retina.list_models()):
        made = made_class(retina.MODELS.get(name).resolve())
        if made is None:
            try:
                with torch.random.fork_rng(devices=[]):
                    made = type(create_model(name, n_cells=1))
            except Exception:  # a plugin that fails to build is not one to name here; zoo fit of it says why
                continue
        if hasattr(made, "deep_retina_penalty"):
            names.append(name)
    return names


def made_class(factory) -> Optional[type]:
    """The class a registry factory makes, read without calling it: the factory where it is a class, else its return
    annotation, read through the factories it forwards its keywords to (:func:`datasets.registry.forwards_keywords`:
    ``lazy_factory``'s ``glm`` -> ``GLM``); None where none says a class."""
    import functools
    import typing

    from neurozoo.datasets.registry import forwarding_chain

    for factory in forwarding_chain(factory):
        while isinstance(factory, functools.partial):
            factory = factory.func
        if isinstance(factory, type):
            return factory
        try:
            made = typing.get_type_hints(factory).get("return")
        except Exception:  # an annotation that does not resolve (or no function to read) says nothing
            made = None
        if isinstance(made, type):
            return made
    return None


def _check_config(config: FitConfig) -> None:
    """A one-line :class:`SpecError` for settings the loop cannot use (``patience=0`` would stop before the first
    epoch and return the untrained model as if fitted)."""
    from neurozoo.datasets.errors import SpecError

    problems = [f"{name} must be at least 1 (got {getattr(config, name)})"
                for name in ("epochs", "patience", "batch_size", "n_blocks") if getattr(config, name) < 1]
    if not 0 < config.lr < math.inf:  # lr 0 would "fit" nothing and store the initial weights as the fit
        problems.append(f"lr must be a finite number > 0 (got {config.lr})")
    problems += [f"{name} must be a finite number >= 0 (got {getattr(config, name)})"
                 for name in ("l2", "l1", "min_delta") if not 0 <= getattr(config, name) < math.inf]
    if config.filter_l2 is not None and not 0 <= config.filter_l2 < math.inf:
        problems.append(f"filter_l2 must be None or a finite number >= 0 (got {config.filter_l2})")
    if config.monitor not in MONITORS:
        problems.append(f"monitor must be one of {MONITORS} (got {config.monitor!r})")
    if config.objective not in OBJECTIVES:
        problems.append(f"objective must be one of {OBJECTIVES} (got {config.objective!r})")
    elif config.objective != "zoo":  # its penalty is its own: l2 and l1 would be ignored, unsaid
        problems += [f"{name} is the zoo objective's (objective {config.objective!r} has its own penalty{extra}): "
                     f"leave it at its default {getattr(FitConfig, name)} (got {getattr(config, name)})"
                     for name, extra in (("l2", ""), ("l1", " and no L1 on the rates"), ("filter_l2", ""))
                     if getattr(config, name) != getattr(FitConfig, name)]
    if not 0 < config.val_fraction < 1:
        problems.append(f"val_fraction must be between 0 and 1 (got {config.val_fraction})")
    if problems:
        raise SpecError("fit settings: " + "; ".join(problems))


def poisson_loss(rates: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return (rates - target * torch.log(rates + eps)).mean()


def regularization(model: nn.Module, rates: torch.Tensor, l2: float, l1: float,
                   filter_l2: Optional[float] = None) -> torch.Tensor:
    """L1 on the rates plus L2 on the weights: parameters with ndim > 1 (as Keras' kernel regularisers on the
    published model's kernels), never a bias, whatever its shape; a model whose parameters are not the weights
    they stand for names its weights itself (``penalised_weights()``, e.g. the GLM's post-spike filter).
    ``filter_l2`` (:attr:`FitConfig.filter_l2`): None, a low-rank filter's stored factors are weights as any; a
    number, each :func:`low_rank_filters`' factors leave the ``l2`` sum and ``filter_l2 * sum(k^2)`` of its assembled
    filter ``k`` (``LowRankFilter.squared_norm()``) is added instead."""
    penalty = rates.abs().sum(1).mean() * l1
    filters = low_rank_filters(model) if filter_l2 is not None else []
    if l2:
        own = getattr(model, "penalised_weights", None)
        weights = own() if own is not None else [p for name, p in model.named_parameters()
                                                 if p.requires_grad and p.dim() > 1 and not name.endswith("bias")]
        factors = {id(p) for f in filters for p in (f.spatial, f.temporal)}
        weights = [w for w in weights if id(w) not in factors]
        if weights:
            penalty = penalty + l2 * sum((w ** 2).sum() for w in weights)
    if filter_l2:
        penalty = penalty + filter_l2 * sum(f.squared_norm() for f in filters)
    return penalty


def low_rank_filters(model: nn.Module) -> List[nn.Module]:
    """The low-rank stimulus filters (``retina.models.ln.LowRankFilter``) in ``model``: what ``filter_l2`` acts on."""
    from neurozoo.retina.models.ln import LowRankFilter

    return [m for m in model.modules() if isinstance(m, LowRankFilter)]


#: deep-retina's scripts/fit_glms.py (64a39f3) loss constants: ``epsilon = 1e-6``, ``dt = 1e-2`` (lines 91-92)
DEEP_RETINA_EPSILON, DEEP_RETINA_DT = 1e-6, 1e-2


def deep_retina_objective(model: nn.Module, rates: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """deep-retina's scripts/fit_glms.py objective (64a39f3), for ``rates`` and ``target`` ``(B, n_cells)`` in
    spikes/s: ``loss = dt * mean(pred - rate * log(pred + 1e-6))`` (lines 91-94) per cell, summed over the cells, plus
    the model's ``deep_retina_penalty()`` (the GLM's: TensorFlow's ``scale * sum(w^2) / 2`` per group, lines 32-45 and
    88; no penalty on the rates). Theirs fits one cell at a time; the sum gives each cell's parameters (the GLM's are
    per cell) the gradient of its own fit. Against the zoo's objective the loss is ``dt * n_cells`` times ours (up to
    the epsilon): a constant factor that alone would not move the optimum, but it sets the loss's weight against the
    penalty, so the penalty scales are deep-retina's only beside this loss."""
    loss = DEEP_RETINA_DT * (rates - target * torch.log(rates + DEEP_RETINA_EPSILON)).mean(0).sum()
    return loss + model.deep_retina_penalty()


# ---- batches --------------------------------------------------------------------------------------
class _Data:
    """Tensors of one split plus helpers to run a model on a set of target frames."""

    def __init__(self, recording: Recording, response: str, history: int, device):
        self.recording = recording
        self.target = torch.as_tensor(recording.response(response))  # before the movie: gigabytes for a real one
        self.movie = torch.as_tensor(recording.stimulus, dtype=torch.float32)
        if response == "binned":  # counts per frame -> spikes/s, the units of the firing rates
            self.target = self.target * FRAME_RATE
        self.binned = torch.as_tensor(recording.responses["binned"]) if "binned" in recording.responses else None
        if history and self.binned is None:
            recording.response("binned")  # the DataError naming it, its shape and what the file holds
        self.history = history
        self.device = device
        self.windows = StimulusWindows(self.movie, self.target, binned=self.binned, history=history)

    def first_target(self) -> int:
        return max(N_FRAMES - 1, self.history)

    def chunk(self, model, start: int, stop: int) -> torch.Tensor:
        """Rates ``(stop - start, C)`` for the contiguous targets ``start .. stop - 1`` via ``forward_movie``."""
        movie = self.movie[start - N_FRAMES + 1:stop].to(self.device)
        if self.history:
            hist = self.binned[:, start - self.history:stop - 1].unfold(1, self.history, 1).permute(1, 0, 2)
            return model.forward_movie(movie, history=hist.to(self.device))
        return model.forward_movie(movie)

    def windows_batch(self, model, index: torch.Tensor) -> torch.Tensor:
        batch = self.windows.batch(index)
        x = batch["stimulus"].to(self.device)
        if self.history:
            return model(x, history=batch["history"].to(self.device))
        return model(x)


def _runs(targets: np.ndarray):
    """Contiguous runs ``(start, stop)`` of a sorted array of frame indices."""
    breaks = np.flatnonzero(np.diff(targets) != 1) + 1
    return [(int(r[0]), int(r[-1]) + 1) for r in np.split(targets, breaks) if len(r)]


def _chunks(targets: np.ndarray, size: int, offset: int = 0):
    """Contiguous ``(start, stop)`` chunks of ``size`` targets covering each run of ``targets``.

    ``offset`` (in ``[0, size)``) shifts the chunk boundaries (the fit draws a new one every epoch, so a
    frame does not always sit at the same place in its batch). No chunk is shorter than ``size // 2`` unless
    its whole run is: a short piece at either end of a run joins its neighbour (BatchNorm needs a batch)."""
    out = []
    for start, stop in _runs(targets):
        bounds = list(range(start + offset % size, stop, size)) if stop - start > size else []
        edges = sorted({start, *bounds, stop})
        pieces = list(zip(edges[:-1], edges[1:]))
        if len(pieces) > 1 and pieces[0][1] - pieces[0][0] < size // 2:
            pieces[:2] = [(pieces[0][0], pieces[1][1])]
        if len(pieces) > 1 and pieces[-1][1] - pieces[-1][0] < size // 2:
            pieces[-2:] = [(pieces[-2][0], pieces[-1][1])]
        out += pieces
    return out


def _predict_targets(model, data: _Data, targets: np.ndarray, batch_size: int, use_chunks: bool) -> torch.Tensor:
    outs = []
    with torch.no_grad():
        if use_chunks:
            for a, b in _chunks(targets, batch_size):
                outs.append(data.chunk(model, a, b).cpu())
        else:
            pos = {int(t): i for i, t in enumerate(data.windows.targets.tolist())}
            index = torch.as_tensor([pos[int(t)] for t in targets])
            for part in index.split(batch_size):
                outs.append(data.windows_batch(model, part).cpu())
    return torch.cat(outs)  # (len(targets), C)


def _mean_correlation(pred: torch.Tensor, target: torch.Tensor) -> float:
    from neurozoo.retina.metrics import correlation

    r = correlation(pred.T.numpy(), target.T.numpy())
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


def spike_triggered_average(movie: torch.Tensor, target: torch.Tensor, targets: np.ndarray,
                            n_frames: int = N_FRAMES) -> torch.Tensor:
    """Response-weighted mean window minus the mean window, per cell: ``(C, n_frames, H, W)``.

    One matrix product: a ``(C * n_frames, T)`` weight matrix (the responses shifted by each lag)
    times the movie ``(T, H * W)``. The weights are divided by their sum whatever its scale (a cell without a
    positive sum, which has no STA, by 1e-9 as before): a floor of 1e-9 on every sum had shrunk the STA of a cell
    at rates below about 1e-13 spikes/s (``contrast_gain_control`` measured the adapting test cell at 1e-16 of its
    rates with a gain ratio of -0.41 for its 0.42)."""
    T, H, W = movie.shape
    C = target.shape[0]
    t = torch.as_tensor(targets, dtype=torch.long)
    y = target[:, t].float()
    weights = torch.zeros(C, n_frames, T)
    for lag in range(n_frames):
        weights[:, lag, t - n_frames + 1 + lag] = y
    total = y.sum(1)
    total = torch.where(total > 0, total, torch.full_like(total, 1e-9))
    sta = (weights.view(C * n_frames, T) @ movie.reshape(T, H * W)).view(C, n_frames, H, W) / total[:, None, None, None]
    return sta - movie.mean(0)


# ---- checkpoints ----------------------------------------------------------------------------------
def _atomic_save(obj, path: Path) -> None:
    """``obj`` written to ``path`` whole or not at all: :func:`_atomic_write` of :func:`_saved_bytes`."""
    _atomic_write(_saved_bytes(obj), path)


def _saved_bytes(obj) -> bytes:
    """``torch.save``'s bytes of ``obj``, saved to a buffer: ``torch.save`` to a path names the archive inside after
    the file, and the temporary's name holds the host and pid, so two fits with one seed wrote weights with different
    sha256 (a buffer's bytes are those an open file gets). In hand before the file is written, for the checkpoint's
    sha256 that the fit's time names first (:mod:`retina.fit_time`)."""
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _atomic_write(data: bytes, path: Path) -> None:
    """``data`` written to ``path`` (:func:`datasets.json_files.write_atomic`), flushed to disk before the rename and
    the rename after it (``fsync``), as ``zoo train``'s checkpoints: without, a power cut after an epoch could leave
    ``checkpoint.pt`` (or ``model.pt``) an empty file under its new name, the fit's epochs lost (``--out``: refused
    until ``--no-resume``; the fit cache: fitted again from the start)."""
    from neurozoo.datasets.json_files import write_atomic

    write_atomic(path, data, fsync=True)


def _save_checkpoint(obj, checkpoint: Path, fit_time, epoch: int, now: float) -> str:
    """The checkpoint ``obj`` written to ``checkpoint`` after the fit's time up to ``now`` (``fit_time``,
    :class:`retina.fit_time.FitTime`) names its bytes' sha256, which it returns: a kill between the two writes leaves a
    time that matches the checkpoint there (the one before, or this one), never one counted twice."""
    import hashlib

    data = _saved_bytes(obj)
    digest = hashlib.sha256(data).hexdigest()
    fit_time.mark(epoch, digest, now)
    _atomic_write(data, checkpoint)
    return digest


# ---- the loop -------------------------------------------------------------------------------------
def _train_steps(model, d: _Data, optimizer, batches, config: FitConfig, use_chunks: bool) -> float:
    """One epoch's training steps over ``batches``; the summed Poisson loss."""
    device = d.device
    total = 0.0
    for batch in batches:
        if use_chunks:
            rates = d.chunk(model, *batch)
            target = d.target[:, batch[0]:batch[1]].T.to(device)
        else:
            rates = d.windows_batch(model, batch)
            target = d.target[:, d.windows.targets[batch]].T.to(device)
        if rates.shape != target.shape:  # a model of one's own: broadcasting gave a RuntimeError from the loss
            raise SpecError(f"retina model {type(model).__name__}: returned rates of shape {tuple(rates.shape)} for "
                            f"{len(target)} stimulus windows; expected (windows, n_cells) = {tuple(target.shape)}, "
                            "one rate per cell of the recording")
        if bool((rates < 0).any()):  # the Poisson loss's log of a negative rate: a NaN loss, fitted on without a word
            raise SpecError(f"retina model {type(model).__name__}: returned negative rates (the lowest "
                            f"{float(rates.detach().min()):.3g}); the Poisson loss needs rates >= 0 (end the model with a "
                            "softplus, ReLU or exp)")
        loss = poisson_loss(rates, target)  # the zoo's, recorded (train_loss) whatever the objective
        if config.objective == "deep-retina":
            objective = deep_retina_objective(model, rates, target)
        else:
            objective = loss + regularization(model, rates, config.l2, config.l1, config.filter_l2)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        total += float(loss.detach())
    return total


def fit(model: nn.Module, data: Union[str, Path, Recording], config: Optional[FitConfig] = None,
        out: Optional[Union[str, Path]] = None, resume: bool = True, stimulus_class: Optional[str] = None,
        **overrides) -> FitResult:
    """Train ``model`` on the training split of ``data`` (see module docstring); returns the best model.

    ``stimulus_class``: the recording's stimulus class as the caller knows it (``zoo fit``:
    :func:`datasets.retina_stimulus_class.recording_stimulus_class`, ``unknown`` included), kept in the checkpoint: a
    resume that says another is refused as a fit with other settings (:class:`ResumeRefused`), since one recording has
    one class; None says nothing (nothing checked, a resumed checkpoint's kept). A checkpoint that records none
    (written before checkpoints recorded it) is resumed or read under the class named, which the result says is
    unchecked (``FitResult.stimulus_class_checked`` False).

    SIGTERM or Ctrl-C stops it at its next safe point (:func:`_stop_point`) with :class:`FitInterrupted`; a second
    Ctrl-C stops it at once, losing the epoch under way."""
    kept = (f"the last checkpoint written, if any, is kept in {Path(out) / 'checkpoint.pt'}" if out is not None
            else "nothing is kept (a fit without out= keeps no checkpoint)")
    with sigterm_deferred("stopping after this epoch and its checkpoint",
                          sigint_again=f"fit stopped at once by a second Ctrl-C: the epoch under way was lost; {kept}"):
        return _fit(model, data, config, out, resume, overrides, stimulus_class)


def _stop_point(checkpoint: Optional[Path], state: dict, config: FitConfig, seconds: Optional[float]) -> None:
    """A safe point of :func:`fit`, at the end of each epoch (after its checkpoint) and before the final weights: a
    SIGTERM or Ctrl-C that arrived since (:mod:`datasets.termination`) ends the fit here with :class:`FitInterrupted`,
    all that was done in the checkpoint (``seconds``: this run's fitting time up to it)."""
    signum = termination_requested()
    if signum:
        raise FitInterrupted(signum, checkpoint, state["epoch"], config.epochs, seconds=seconds)


def _clock() -> float:
    """The fit's clock (seconds, monotonic): ``time.perf_counter``, one name for the tests to replace."""
    return time.perf_counter()


def _fit(model: nn.Module, data: Union[str, Path, Recording], config: Optional[FitConfig],
         out: Optional[Union[str, Path]], resume: bool, overrides: dict,
         stimulus_class: Optional[str] = None) -> FitResult:
    from tqdm.auto import tqdm

    from neurozoo.datasets.activity import say, tell
    from neurozoo.retina.fit_time import FitTime

    started = _clock()
    config = checked_config(model, dataclasses.replace(config or FitConfig(),
                                                      **checked_fit_settings(overrides, "neurozoo.retina.fit.fit")))
    recording = narrowed(data, config.cells) if isinstance(data, Recording) else \
        read_experiment(data, "train", cells=config.cells)
    config = dataclasses.replace(config, cells=recording.selection)  # the indices (a text given: resolved), or None
    device = torch.device(config.device)
    history = int(getattr(model, "history", 0)) if getattr(model, "uses_history", False) else 0
    d = _Data(recording, config.response, history, device)
    # early stopping watches the smoothed rate when the file has it (the binned counts are too noisy), unless the
    # model names its own validation response (a spike-history model: see GLM.validation_response)
    val_key = getattr(model, "validation_response", None) or (
        "firing_rate_10ms" if "firing_rate_10ms" in recording.responses else config.response)
    n_cells = d.target.shape[0]
    if getattr(model, "n_cells", n_cells) != n_cells:
        raise DataError(f"{recording.path}: the model has {model.n_cells} outputs but the recording has {n_cells} cells")
    use_chunks = config.batching == "chunks"
    try:
        train_t, val_t = split_blocks(d.movie.shape[0], config.val_fraction, config.n_blocks,
                                      window=d.first_target() + 1)
    except DataError as error:
        raise DataError(f"{recording.path}: dataset {recording.split}/stimulus: {error}") from None
    warn_of_few_validation_targets(recording, len(val_t), config, d.first_target() + 1)
    val_target = torch.as_tensor(recording.response(val_key))[:, val_t].T
    if val_key == "binned":
        val_target = val_target * FRAME_RATE

    torch.manual_seed(config.seed)
    model.to(device)
    groups = model.param_groups(config.lr) if hasattr(model, "param_groups") else model.parameters()
    optimizer_state = None  # a resumed fit's; the optimizer is made only when there are epochs to run (below)
    # best_score / best_state: the best epoch (its weights are returned); reference: the score that last reset the
    # patience (an epoch must beat it by min_delta to count as progress); calibration: the output calibration of the
    # best epoch, kept so that a finished fit read again (every cached benchmark score) does not repeat it
    state = {"epoch": 0, "history": [], "best_score": -np.inf, "best_epoch": -1, "best_state": None, "bad_epochs": 0,
             "reference": -np.inf, "calibration": None, "torch_threads": []}
    checkpoint = Path(out) / "checkpoint.pt" if out is not None else None
    class_checked = True  # see FitResult.stimulus_class_checked
    # the fit's time over its runs (retina.fit_time); checkpoint_sha256: of the checkpoint last written or resumed
    fit_time, checkpoint_sha256 = FitTime(out, started), None
    data_sha256 = None  # hashed once: the checkpoint's resume check and provenance() use it
    if recording.path is not None and Path(recording.path).is_file():
        from neurozoo.datasets.provenance import sha256_file

        data_sha256 = sha256_file(recording.path)
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        from neurozoo.datasets.cache import remove_dead_temporaries

        remove_dead_temporaries(checkpoint.parent)
    if checkpoint is not None and resume and checkpoint.is_file():
        try:
            saved = read_torch_file(checkpoint, map_location=device)
        except DataError as error:
            raise DataError(f"{error}; delete it, or start afresh (resume=False / --no-resume)") from None
        if saved.get("model_class") != type(model).__name__:
            raise DataError(f"{checkpoint}: checkpoint of a {saved.get('model_class')}, not a {type(model).__name__}; "
                            f"{ANOTHER_FOLDER_OR_AFRESH}")
        # two recordings named alike share `zoo fit`'s default folder (day1/expt.h5, day2/expt.h5): resuming would report
        # one recording's fit as the other's, or a fit of another seed or learning rate as this one
        if saved.get("data_sha256") not in (None, data_sha256):
            raise DataError(f"{checkpoint}: a fit to other data (sha256 {saved['data_sha256'][:12]}; {recording.path}: "
                            f"{data_sha256[:12]}); {ANOTHER_FOLDER_OR_AFRESH}")
        then = dict(saved.get("config", {}))
        if "batching" in then:  # a checkpoint written before batching was resolved holds "auto"
            then["batching"] = resolved_batching(model, then["batching"])
        # a checkpoint written before the objective was a setting was fitted under the zoo's: a deep-retina fit must
        # not resume it (compared as any setting, not skipped as one it lacks)
        then.setdefault("objective", "zoo")
        then.setdefault("filter_l2", None)  # likewise, before filter_l2 was a setting: on the stored factors
        then.setdefault("cells", None)  # likewise, before cells was a setting: every cell of the file
        # as recorded: under the deep-retina objective its penalty (objective_penalty), not the l2 and l1 it does not
        # use; a checkpoint written before it recorded them so (l2 and l1, no objective_penalty) resumes, those skipped
        now = recorded_settings(config, model)
        now.setdefault("cells", None)  # every cell, which the record leaves unstated
        changed = [f"{key} {then[key]} -> {now[key]}" for key in (*RESUME_FIXED, *RECORDED_ONLY)
                   if key in then and key in now and then[key] != now[key]]
        # a fit begun under another fitting protocol (or before checkpoints recorded it) would be finished under this
        # one: two protocols mixed in one fit, unsaid (the fit cache's folder names the protocol; --out DIR does not)
        if saved.get("fit_protocol") != FIT_PROTOCOL:
            then_protocol = saved.get("fit_protocol", "unrecorded (written before checkpoints recorded it)")
            changed.insert(0, f"fit protocol {then_protocol} -> {FIT_PROTOCOL}")
        # the class zoo fit was told (or read) the recording holds: another now is one of the two said wrongly, and the
        # summary would record the new one for weights fitted under the old (None, either side: nothing was said). A
        # checkpoint that records none (written before checkpoints recorded it, or by a caller that said none) takes
        # the class named now, unchecked (stimulus_class_checked), and records it from its next epoch on
        then_class = saved.get("stimulus_class")
        if stimulus_class is None:
            stimulus_class = then_class
        elif then_class is None:
            class_checked = False
        elif then_class != stimulus_class:
            changed.append(f"stimulus_class {then_class} -> {stimulus_class}")
        if changed:
            raise ResumeRefused(checkpoint, changed)
        try:
            model.load_state_dict(saved["model"])
        except ValueError as error:  # the model's own reason, e.g. a GLM's weights of the other link
            raise DataError(f"{checkpoint}: {error}; {ANOTHER_FOLDER_OR_AFRESH}") from None
        except RuntimeError:  # one class, other layers (bncnn2016's weights in a bncnn fit's folder, or the reverse)
            mismatch = state_mismatch(model, saved["model"])
            raise DataError(f"{checkpoint}: weights of another {type(model).__name__} ({mismatch}); "
                            f"{ANOTHER_FOLDER_OR_AFRESH}") from None
        optimizer_state = saved["optimizer"]
        state.update({k: saved.get(k, state[k]) for k in state})
        torch.set_rng_state(saved["torch_rng"])
        _drop_earlier_fit(Path(out))  # this fit has its checkpoint (one killed before it dropped the earlier)
        from neurozoo.datasets.provenance import sha256_file

        checkpoint_sha256 = sha256_file(checkpoint)
        fit_time = FitTime.resumed(Path(out), started, checkpoint_sha256, state["epoch"])
    else:
        if out is not None:  # a fresh fit in a used folder: the earlier fit is set aside, out of the resume's way
            _set_aside(Path(out))
        if hasattr(model, "init_from_sta"):
            model.init_from_sta(spike_triggered_average(d.movie, d.target, train_t).to(device))
        if hasattr(model, "init_from_stimulus"):
            sample = np.random.default_rng([config.seed, 1]).choice(train_t, min(2048, len(train_t)), replace=False)
            index = torch.as_tensor(np.searchsorted(d.windows.targets.numpy(), np.sort(sample)))
            model.init_from_stimulus(d.windows.batch(index)["stimulus"].to(device))
        if hasattr(model, "init_from_data"):
            model.init_from_data(d.target[:, train_t].mean(1).to(device))

    finished = state["bad_epochs"] >= config.patience or state["epoch"] >= config.epochs  # a resumed, finished fit
    epochs_before = state["epoch"]
    if optimizer_state is not None and not finished:  # said: a resume looked like a fresh fit (through zoo run's bar)
        say(f"resuming {checkpoint}: {state['epoch']} of at most {config.epochs} epochs fitted")
    optimizer = None
    if not finished:  # a finished fit read again (a cached score, `zoo fit`'s second run) makes none: torch's
        optimizer = torch.optim.Adam(groups, lr=config.lr)  # optimizers import torch._dynamo on first use (3-5 s)
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
    epochs = tqdm(range(state["epoch"], config.epochs), desc=f"fit {type(model).__name__}",
                  disable=not config.progress or finished, initial=state["epoch"], total=config.epochs)
    # on the CPU the fast path's layers split their work over torch's threads (torch's own threading did not
    # shorten a step on 2 cores; see retina.fast_conv.split_threads)
    from neurozoo.retina.fast_conv import keep_freed_memory, split_threads

    if device.type == "cpu":
        keep_freed_memory()  # no page faults on each step's large temporaries (see there)
    threads = torch.get_num_threads()  # the fit's: within split_threads torch runs single-threaded
    epochs_began = time.perf_counter()  # zoo run's job bar: the epochs' mean time (display only, not _clock's)
    with split_threads(threads if use_chunks and device.type == "cpu" else 1):
        for epoch in epochs:
            if state["bad_epochs"] >= config.patience:
                break
            model.train()
            if threads not in state["torch_threads"]:
                state["torch_threads"] = [*state["torch_threads"], threads]
            rng = np.random.default_rng([config.seed, epoch])
            if use_chunks:
                chunks = _chunks(train_t, config.batch_size, offset=int(rng.integers(config.batch_size)))
                order = rng.permutation(len(chunks))
                batches = [chunks[i] for i in order]
            else:
                pos = torch.as_tensor(np.searchsorted(d.windows.targets.numpy(), rng.permutation(train_t)))
                batches = list(pos.split(config.batch_size))
            if config.max_steps_per_epoch:
                batches = batches[:config.max_steps_per_epoch]
            total = _train_steps(model, d, optimizer, batches, config, use_chunks)
            model.eval()
            # no gradient and BatchNorm in eval mode: the chunk length changes nothing but the speed (longer chunks
            # share the first layer's transforms over more windows)
            val_pred = _predict_targets(model, d, val_t, max(config.batch_size, EVAL_CHUNK), use_chunks)
            val_r = _mean_correlation(val_pred, val_target)
            val_loss = float(poisson_loss(val_pred, val_target))
            score = val_r if config.monitor == "correlation" else -val_loss
            state["history"].append({"epoch": epoch, "train_loss": total / max(len(batches), 1),
                                     "val_correlation": val_r, "val_poisson": val_loss})
            if np.isfinite(score) and score > state["best_score"]:
                state.update(best_score=score, best_epoch=epoch,
                             best_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            if np.isfinite(score) and score >= state["reference"] + config.min_delta:
                state.update(reference=score, bad_epochs=0)
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch + 1
            epochs.set_postfix(loss=f"{total / max(len(batches), 1):.4f}", val_r=f"{val_r:.3f}")
            # to zoo run's job bar, which hides this one; with this run's mean epoch time: the rest of the fit takes at
            # most that times the epochs left (the epochs' lengths are alike; early stopping may end it sooner)
            each = (time.perf_counter() - epochs_began) / (state["epoch"] - epochs_before)
            seconds = f"{each:.0f}" if each >= 10 else f"{each:.2g}"  # 35, 2.1, 0.034
            tell(f"epoch {state['epoch']} of at most {config.epochs}, {seconds} s each")
            if checkpoint is not None:
                checkpoint_sha256 = _save_checkpoint(
                    {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "config": recorded_settings(config, model), "torch_rng": torch.get_rng_state(),
                     "model_class": type(model).__name__, "data_sha256": data_sha256, "fit_protocol": FIT_PROTOCOL,
                     "stimulus_class": stimulus_class, **state}, checkpoint, fit_time, state["epoch"], _clock())
                _drop_earlier_fit(Path(out))
            else:
                fit_time.mark(state["epoch"], None, _clock())
            _stop_point(checkpoint, state, config, fit_time.marks[-1]["seconds"])
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    model.eval()
    extra, calibrated_now = {}, False
    if config.output_calibration:
        done = state["calibration"]
        if done is not None and done["best_epoch"] == state["best_epoch"]:
            with torch.no_grad():
                model.bn3.weight.copy_(done["gain"])
                model.bn3.bias.copy_(done["offset"])
        else:
            with split_threads(torch.get_num_threads() if use_chunks and device.type == "cpu" else 1):
                info = calibrate_output(model, d, _spread(train_t, CALIBRATION_TARGETS), use_chunks)
            calibrated_now = True
            done = {"best_epoch": state["best_epoch"], "gain": model.bn3.weight.detach().cpu().clone(),
                    "offset": model.bn3.bias.detach().cpu().clone(), "info": info}
            if checkpoint is not None and checkpoint.is_file():
                checkpoint_sha256 = _save_checkpoint({**read_torch_file(checkpoint, map_location="cpu"),
                                                      "calibration": done}, checkpoint, fit_time, state["epoch"],
                                                     _clock())
            else:
                fit_time.mark(state["epoch"], None, _clock())
        extra["output_calibration"] = done["info"]
    # a stop asked for in the last epoch or the calibration: no final files
    _stop_point(checkpoint, state, config, fit_time.marks[-1]["seconds"] if fit_time.marks else None)
    best_r = state["history"][state["best_epoch"]]["val_correlation"] if state["best_epoch"] >= 0 else float("nan")
    ended = _clock()
    if fit_time.marks:  # this run fitted: its stretch ends here, counted before history.json says the fit finished
        fit_time.mark(state["epoch"], checkpoint_sha256, ended)
    result = FitResult(model, state["history"], state["best_epoch"], float(best_r), config, checkpoint,
                       ended - started, extra=extra, data_sha256=data_sha256,
                       early_stopped=state["bad_epochs"] >= config.patience,
                       torch_threads=list(state["torch_threads"]), stimulus_class_checked=class_checked,
                       epochs_fitted=state["epoch"] - epochs_before, fit_duration_s=fit_time.total(),
                       fit_stretches=fit_time.stretches(), calibrated_now=calibrated_now)
    if out is not None:
        _atomic_save(model.state_dict(), Path(out) / "model.pt")
        write_json(Path(out) / "history.json", {"config": recorded_settings(config, model), "history": state["history"],
                                                "best_epoch": state["best_epoch"],
                                                "best_val_correlation": result.best_val_correlation,
                                                # whether the patience stopped the fit, after which epoch (as
                                                # numbered in history; None: it ran to the epoch limit)
                                                "early_stopped": result.early_stopped,
                                                "stopped_after_epoch": (state["history"][-1]["epoch"]
                                                                        if result.early_stopped else None)})
    return result


def _set_aside(out: Path) -> None:
    """A fresh fit in the used folder ``out``: the earlier fit's checkpoint and results are moved into ``out/``
    :data:`EARLIER_FIT`, the checkpoint first, each by one rename. From that first rename on no resume can take the
    earlier fit for this one's (a resume reads ``out/checkpoint.pt`` only), nor its results stand beside this fit's
    checkpoints as its own; and the earlier fit is not lost before this fit has something to show: it is removed when
    this fit writes its first checkpoint (:func:`_drop_earlier_fit`). A kill before that (``kill -9`` in the first
    epoch) leaves it there whole, to be moved back by hand. An ``earlier-fit`` folder left by such a kill holds the
    last fit that had a checkpoint, and is kept: only what of it had not been moved yet joins it; a checkpoint in
    ``out`` beside it is newer (killed between its first checkpoint and the removal) and replaces it. The fit's time
    (:data:`retina.fit_time.FIT_TIME`) goes with its checkpoint; one without a checkpoint to go with (a fresh fit's,
    killed before its first checkpoint was written) is removed: a time of nothing kept."""
    import os
    import shutil

    from neurozoo.datasets.activity import say
    from neurozoo.retina.fit_time import FIT_TIME

    aside = out / EARLIER_FIT
    if (out / FIT_TIME).exists() and not (out / "checkpoint.pt").exists() and (
            (aside / FIT_TIME).exists() or not (aside / "checkpoint.pt").exists()):
        (out / FIT_TIME).unlink()
    earlier = [name for name in ("checkpoint.pt", FIT_TIME) + RESULT_FILES if (out / name).exists()]
    if not earlier:
        return
    if "checkpoint.pt" in earlier and aside.exists():
        shutil.rmtree(aside)
    aside.mkdir(exist_ok=True)
    for name in earlier:
        os.replace(out / name, aside / name)
    say(f"{out}: the earlier fit in it set aside in {aside} until this fit's first checkpoint")  # through zoo run's bar


def _drop_earlier_fit(out: Path) -> None:
    """The earlier fit that :func:`_set_aside` kept, removed: this fit has a checkpoint in ``out``."""
    import shutil

    if (out / EARLIER_FIT).is_dir():
        shutil.rmtree(out / EARLIER_FIT)


def fitted_weights(saved: Mapping[str, Any]) -> tuple:
    """``(state dict, shortfalls)``: the weights :func:`fit` returns and saves as ``model.pt``, from the
    ``checkpoint.pt`` it keeps (``saved``): the best epoch's, with the output calibration made for that epoch.
    ``saved["model"]`` is the last epoch's, before calibration: another model (read as the fit's, the probes and
    ``zoo score --checkpoint`` had analysed it). ``shortfalls``: where these are not a finished fit's weights, in
    phrases (the fit unfinished: its best epoch so far; the calibration not yet made)."""
    state = dict(saved.get("best_state") or saved["model"])  # no finite validation score: fit returns the last
    config, best = saved.get("config") or {}, saved.get("best_epoch", -1)
    shortfalls = []
    if saved.get("bad_epochs", 0) < config.get("patience", 0) and saved.get("epoch", 0) < config.get("epochs", 0):
        shortfalls.append(f"an unfinished fit ({saved['epoch']} of at most {config['epochs']} epochs): its best epoch "
                          f"so far ({best + 1})")
    calibration = saved.get("calibration")
    if calibration is not None and calibration["best_epoch"] == best:
        state.update({"bn3.weight": calibration["gain"], "bn3.bias": calibration["offset"]})
    elif config.get("output_calibration"):
        shortfalls.append("without the output calibration zoo fit makes after its last epoch")
    return state, shortfalls


def warn_of_few_validation_targets(recording: Recording, n_targets: int, config: FitConfig, window: int) -> None:
    """A warning where early stopping would watch fewer than :data:`MIN_VALIDATION_TARGETS` validation frames."""
    if n_targets < MIN_VALIDATION_TARGETS:
        import warnings

        where = recording.path if recording.path is not None else "a recording held in memory"
        warnings.warn(f"{where}: early stopping and the kept epoch watch the correlation over {n_targets} "
                      f"validation frames (the last {config.val_fraction:g} of each of {config.n_blocks} blocks of "
                      f"{recording.n_frames} frames, less a {window}-frame window each), fewer than "
                      f"{MIN_VALIDATION_TARGETS}: the validation r is noise at this size; a longer recording, or a "
                      "larger val_fraction (zoo fit --val-fraction), gives it more", stacklevel=3)


def _spread(targets: np.ndarray, n: int) -> np.ndarray:
    """About ``n`` of ``targets`` (all of them if fewer), in contiguous ``EVAL_CHUNK``-target chunks spread evenly."""
    chunks = _chunks(targets, EVAL_CHUNK)
    kept = chunks[::max(1, len(targets) // n)]
    return np.concatenate([np.arange(a, b) for a, b in kept])


def _has_output_batchnorm(model: nn.Module) -> bool:
    bn = getattr(model, "bn3", None)
    return isinstance(bn, nn.BatchNorm1d) and bn.affine and bn.running_mean is not None


def calibrate_output(model: nn.Module, d: _Data, targets: np.ndarray, use_chunks: bool = True) -> dict:
    """Fit the output BatchNorm's per-cell gain and offset alone by the Poisson loss on ``targets``, the rest fixed.

    In eval mode the BN-CNN's output is ``softplus(gain * xhat + offset)`` with ``xhat`` the normalised drive of the
    dense layer, so this is a convex problem in two parameters per cell (softplus is convex and log-softplus
    concave), solved by L-BFGS on a drive computed once. Early stopping on the validation correlation (which does
    not see the output's scale) ends a fit before Adam at 1e-2 has grown the gain to the recording's spikes/s,
    which FEVE needs: see docs/retina.md ("Fitting", protocol 9)."""
    if not _has_output_batchnorm(model):
        raise ValueError(f"output calibration needs a model whose output BatchNorm1d (bn3) has a gain and offset "
                         f"and running statistics; {type(model).__name__} has none")
    bn = model.bn3
    drives = []
    hook = bn.register_forward_hook(lambda module, inputs, output: drives.append(inputs[0].detach().cpu()))
    try:
        model.eval()
        _predict_targets(model, d, targets, EVAL_CHUNK, use_chunks)
    finally:
        hook.remove()
    xhat = ((torch.cat(drives).double() - bn.running_mean.detach().cpu().double())
            / torch.sqrt(bn.running_var.detach().cpu().double() + bn.eps))
    target = d.target[:, targets].T.double()
    scale = getattr(model, "output_scale", torch.ones(xhat.shape[1])).detach().cpu().double()
    gain = bn.weight.detach().cpu().double().clone().requires_grad_()
    offset = bn.bias.detach().cpu().double().clone().requires_grad_()

    def loss():
        return poisson_loss(scale * nn.functional.softplus(gain * xhat + offset), target)

    optimizer = torch.optim.LBFGS([gain, offset], max_iter=200, tolerance_grad=1e-9, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        value = loss()
        value.backward()
        return value
    with torch.no_grad():
        before = float(loss())
    optimizer.step(closure)
    with torch.no_grad():
        bn.weight.copy_(gain.to(bn.weight))
        bn.bias.copy_(offset.to(bn.bias))
        after = float(loss())
    return {"n_targets": int(len(targets)), "train_poisson_before": before, "train_poisson_after": after,
            "gain": gain.detach().tolist(), "offset": offset.detach().tolist()}


# ---- prediction and held-out scoring --------------------------------------------------------------
def predict(model: nn.Module, stimulus, batch_size: int = EVAL_CHUNK, device: str = "cpu", n_samples: int = 20,
            seed: int = 0, safe_point: Optional[SafePoint] = None, observed_history=None) -> np.ndarray:
    """Rates ``(n_cells, T - 39)`` for the windows ending at frames 39 .. T-1 of ``stimulus (T, 50, 50)``.

    A spike-history model (``uses_history``) is run autoregressively on its own sampled spikes
    (``predict_movie``), ``n_samples`` trials averaged: the held-out trial average has no observed history.
    ``observed_history``: binned spike counts ``(n_cells, T)`` observed with ``stimulus``; a spike-history model is
    then run open loop, each frame predicted from the counts of the frames before it (zeros before frame 0), as
    deep-retina's scripts/fit_glms.py scores its GLM (:func:`evaluate`'s ``heldout_history="observed"``).
    ``safe_point()`` (``zoo score``'s, :data:`datasets.termination.SafePoint`): called between the ``batch_size``
    chunks of windows, the same chunks as without it. ``device``: a torch device, or ``"auto"``
    (:func:`datasets.torch_devices.auto_device`: a GPU where torch sees one, else the CPU)."""
    device = auto_device(device)
    movie = torch.as_tensor(np.asarray(stimulus, np.float32))
    # another size failed inside the model ("mat1 and mat2 shapes ..."); a model that does not say its frame size (a
    # plugin's) is checked for the windows only
    size = getattr(model, "frame_size", None)
    if movie.dim() != 3 or movie.shape[0] < N_FRAMES or (size is not None and tuple(movie.shape[1:]) != (size, size)):
        frames = f"the model's {size}x{size} frames" if size is not None else "frames (H, W)"
        shape = f"(T >= {N_FRAMES}, {size}, {size})" if size is not None else f"(T >= {N_FRAMES}, H, W)"
        raise DataError(f"stimulus: expected shape {shape}, one {N_FRAMES}-frame window or more of {frames}, got "
                        f"{tuple(movie.shape)}")
    if not torch.isfinite(movie).all():  # predicted NaN rates without a word
        first = tuple(int(i) for i in torch.nonzero(~torch.isfinite(movie))[0])
        raise DataError(f"stimulus: {int((~torch.isfinite(movie)).sum())} NaN/inf values, the first at frame "
                        f"{first[0]}, pixel {first[1:]}; expected finite intensities")
    model = model.to(device).eval()
    T = movie.shape[0]
    with torch.no_grad():
        if getattr(model, "uses_history", False):
            from neurozoo.datasets.retina_h5 import movie_windows

            drive = torch.cat([model.filter(w.to(device)).cpu()
                               for w in _after_safe_points(movie_windows(movie).split(batch_size), safe_point)])
            if observed_history is not None:
                return _open_loop(model.cpu(), drive, observed_history, T).T.numpy()
            return model.predict_movie(drive, n_samples=n_samples, seed=seed).T.numpy()
        if hasattr(model, "forward_movie"):
            from neurozoo.retina.fast_conv import split_threads

            with split_threads(torch.get_num_threads() if torch.device(device).type == "cpu" else 1):
                outs = [model.forward_movie(movie[a - N_FRAMES + 1:min(a + batch_size, T)].to(device)).cpu()
                        for a in _after_safe_points(range(N_FRAMES - 1, T, batch_size), safe_point)]
        else:
            from neurozoo.datasets.retina_h5 import movie_windows

            outs = [model(w.to(device)).cpu()
                    for w in _after_safe_points(movie_windows(movie).split(batch_size), safe_point)]
    return torch.cat(outs).T.numpy()


def _open_loop(model: nn.Module, drive: torch.Tensor, counts, T: int) -> torch.Tensor:
    """Rates ``(T - 39, n_cells)`` of a spike-history model for targets 39 .. T-1, each from its stimulus drive and
    the observed counts of the ``model.history`` frames before it (zeros before the recording's first frame)."""
    counts = torch.as_tensor(np.asarray(counts, np.float32))
    if counts.shape != (drive.shape[1], T):
        raise DataError(f"observed_history: expected binned counts (n_cells, T) = ({drive.shape[1]}, {T}), the "
                        f"model's cells and the stimulus's frames; got {tuple(counts.shape)}")
    padded = torch.cat([counts.new_zeros(counts.shape[0], model.history), counts], 1)
    windows = padded.unfold(1, model.history, 1)[:, N_FRAMES - 1:T]  # target t: counts of frames t-H .. t-1
    return model.rate(drive, windows.transpose(0, 1))


def _after_safe_points(chunks, safe_point: Optional[SafePoint]):
    """``chunks``, with ``safe_point()`` called before each one after the first."""
    for k, chunk in enumerate(chunks):
        if safe_point is not None and k:
            safe_point()
        yield chunk


HELDOUT_HISTORIES = ("simulated", "observed")


def check_heldout_history(model: nn.Module, heldout_history: str, name: Optional[str] = None) -> None:
    """A :class:`DataError` for a ``heldout_history`` (:func:`evaluate`) that is none of :data:`HELDOUT_HISTORIES`, or
    ``"observed"`` for a model without spike history (``uses_history``; ``name``: its registered name, for the
    message), which would be scored simulated and said observed: checked before a fit too (the held-out benchmarks)."""
    if heldout_history not in HELDOUT_HISTORIES:
        raise DataError(f"heldout_history must be one of {HELDOUT_HISTORIES}, got {heldout_history!r}")
    if heldout_history == "observed" and not getattr(model, "uses_history", False):
        shown = repr(name) if name else type(model).__name__
        raise DataError(f"heldout_history='observed': the retina model {shown} has no spike history to feed (a "
                        "spike-history model, such as the GLM, takes it); leave it at 'simulated'")


def evaluate(model: nn.Module, path, device: str = "cpu", target_lag: int = 0, heldout_history: str = "simulated",
             cells=None, outputs=None, **kwargs):
    """Per-cell held-out metrics on the test split of ``path`` (targets 39 .. T-1 of the test movie).

    ``target_lag=1``: deep-retina's alignment (:class:`~neurozoo.datasets.retina_h5.StimulusWindows`), the window
    of frames t-40 .. t-1 predicting the response at t (targets 40 .. T-1), for weights fitted that way.
    ``heldout_history`` (spike-history models): ``"simulated"`` (ours) runs the model on its own sampled spikes;
    ``"observed"`` feeds it the test split's binned counts (the repeats' average) one frame ahead, as deep-retina's
    scripts/fit_glms.py (64a39f3, lines 136-138: the test feed's ``spkhist``) -- the history then carries the response
    being predicted. ``cells``: the cells the model was fitted to (:attr:`FitConfig.cells`; None, all), the only ones
    scored. ``outputs``: the file's cells scored of a model of every cell (indices, file order; None: all), its
    outputs run as fitted and the others' rows left out."""
    from neurozoo.retina.metrics import heldout_metrics

    if target_lag not in (0, 1):
        raise DataError(f"target_lag must be 0 (ours) or 1 (deep-retina's), got {target_lag}")
    check_heldout_history(model, heldout_history)
    test = read_experiment(path, "test", cells=cells)
    if heldout_history == "observed":
        kwargs["observed_history"] = test.response("binned")
    prediction = predict(model, test.stimulus, device=device, **kwargs)  # windows ending at frames 39 .. T-1
    prediction = prediction[:, :prediction.shape[1] - target_lag]
    repeats, names = test.repeats, test.cells
    if outputs is not None:
        prediction, repeats, names = prediction[outputs], repeats[outputs], [names[i] for i in outputs]
    return heldout_metrics(prediction, repeats[:, :, N_FRAMES - 1 + target_lag:], cells=names)


#: what :func:`recorded_settings` states beside the :class:`FitConfig` settings: no setting of a fit (a reader that
#: makes the fit again from the recorded settings, ``zoo reproduce DIR/summary.json``, leaves it out)
RECORDED_ONLY = ("objective_penalty",)


def recorded_settings(config: FitConfig, model: nn.Module) -> dict:
    """The settings a fit's record states (:func:`provenance`'s ``settings``: ``zoo fit``'s summary.json, a retina
    benchmark's score; its ``history.json``'s and checkpoint's ``config``, which listed l2 and l1 until 2026-12-05):
    every :class:`FitConfig` setting (``cells`` only where a selection was fitted), but under an objective with its
    own penalty (``"deep-retina"``) not ``l2`` and ``l1``, which it does not use (:func:`checked_config` keeps them at
    their defaults), and instead the penalty it does use, ``objective_penalty`` (the model's
    ``deep_retina_penalty_scales``). The zoo objective's are every setting, as before the option."""
    settings = asdict(config)
    if config.cells is None:  # every cell: not stated, as before the setting (the records of such fits unchanged)
        del settings["cells"]
    else:  # a list, as JSON reads it back (history.json, summary.json): the checkpoint's compares equal to it
        settings["cells"] = [int(i) for i in config.cells]
    if config.objective != "zoo":
        del settings["l2"], settings["l1"]
        settings["objective_penalty"] = dict(model.deep_retina_penalty_scales)
    return settings


def provenance(path, result: Optional[FitResult] = None) -> dict:
    """Code version, data checksum, seed, settings and device of a fit (for records and benchmarks); the checksum
    is the one ``result``'s fit took of the recording it read, else ``path``'s. Its times: ``duration_s``, this call
    of :func:`fit` (a finished fit read again: the reading's; a caller states its own command's in its place, as
    ``zoo fit``'s summary.json and a benchmark's score do), ``fit_duration_s``, the fit's own in all runs (None:
    unknown), and ``fit_stretches``, those runs (:attr:`FitResult.fit_stretches`)."""
    from neurozoo.datasets.provenance import code_version, environment, git_commit, sha256_file

    data_sha256 = result.data_sha256 if result is not None and result.data_sha256 else sha256_file(path)
    # the fitting protocol and the thread count change a fit's weights as the code version does (README,
    # "Reproducibility"): zoo fit's summary.json stated neither
    info = {"code_version": code_version(), "git_commit": git_commit(), "data_sha256": data_sha256,
            "data_path": str(path), "torch": torch.__version__, "fit_protocol": FIT_PROTOCOL,
            "environment": environment()}
    if result is not None:
        info.update(seed=result.config.seed, settings=recorded_settings(result.config, result.model),
                    device=result.config.device,
                    duration_s=round(result.duration_s, 2),
                    fit_duration_s=round(result.fit_duration_s, 2) if result.fit_duration_s is not None else None,
                    fit_stretches=[{**s, "seconds": round(s["seconds"], 2) if s["seconds"] is not None else None}
                                   for s in result.fit_stretches],
                    best_epoch=result.best_epoch,
                    model_class=type(result.model).__name__, fit_torch_threads=result.torch_threads or None)
    return info
