"""Retina held-out benchmarks on the embedded ground-truth retina, and on a recording of one's own
(``retina_h5.heldout``), registered in ``benchmarks.BENCHMARKS``.

``retina_embedded.whitenoise-heldout`` and ``retina_embedded.naturalscene-heldout``: a retina model
(a ``retina.MODELS`` name, fitted on the recording's training split, or a fitted module) scored by the
median held-out correlation over cells whose explainable variance is >= 15 % of the total; ceiling: the
median leave-one-out oracle correlation. The retina side (fit loop, metrics) is imported lazily when a
benchmark is created; models are looked up by name in ``retina.MODELS`` only.

``score(..., heldout_history=)`` (``zoo score --heldout-history``): the spike history a spike-history model (the GLM)
predicts the held-out repeats with (:func:`retina.fit.evaluate`): ``"simulated"`` (the default), its own sampled
spikes; ``"observed"``, the test split's binned counts one frame ahead, as deep-retina's scripts/fit_glms.py scores its
GLM (the history then carries the response being predicted). Refused before any fit for a model without spike
history. A spike-history model's score keeps it in its settings (``heldout_history``; one scored before 2026-12-05
has none: simulated, the only mode then), so that a score in one mode is never reused as one in the other; ``zoo
score`` names an observed one's model ``MODEL (observed spike history)``, its own row wherever scores are listed.
The fit is the same in both modes, and the fit cache shares it.

``score(..., objective="deep-retina")`` (``zoo score --objective deep-retina``, the GLM only): the fit setting of ``zoo
fit --objective``, a fit override like any other (a fit cache folder of its own); the score's settings keep it
(``objective``, and the penalty used, ``objective_penalty``), and ``zoo score`` names its model ``MODEL (deep-retina
objective)`` (``MODEL (deep-retina objective, observed spike history)`` with the observed history).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Optional

from neurozoo.benchmarks import BENCHMARKS
from neurozoo.benchmarks.score import Score
from neurozoo.datasets.registry import forwards_keywords
from neurozoo.datasets.termination import SafePoint


@dataclass
class RetinaHeldoutBenchmark:
    kind: str
    sizes: dict = field(default_factory=dict)
    fit_settings: dict = field(default_factory=dict)

    @property
    def identifier(self) -> str:
        return f"retina_embedded.{self.kind}-heldout"

    def score(self, model, seed: int = 0, device: str = "cpu", refit: bool = False, progress: bool = True,
              heldout_history: str = "simulated", **fit_overrides) -> Score:
        """``model``: a ``retina.MODELS`` name (fitted, or loaded from an earlier fit) or a fitted module. Other
        keywords override the fit settings (``epochs``, ``lr``, ``batch_size``...); the neural benchmarks' options
        are refused (:func:`checked_fit_overrides`). ``heldout_history``: see the module docstring."""
        from neurozoo.retina.benchmark import HeldoutBenchmark

        return heldout_score(self, HeldoutBenchmark(self.kind, dict(self.sizes), dict(self.fit_settings)), model,
                             seed, device, refit, progress, heldout_history, fit_overrides, kind=self.kind,
                             sizes=dict(self.sizes))


@dataclass
class RetinaFileHeldoutBenchmark:
    """``retina_h5.heldout``: the held-out benchmark on a deep-retina HDF5 file of one's own (``zoo score MODEL
    retina_h5.heldout --data FILE.h5``): a ``retina.MODELS`` name fitted on the file's train split with the embedded
    benchmarks' protocol (or a fitted module, ``cells=`` naming the file's cells its outputs are where it was fitted to
    some: scored on those), scored on its test repeats as they are. The record keeps the file's
    path and sha256, which ``zoo reproduce`` checks, and its stimulus class (``settings.stimulus_class``: whitenoise,
    naturalscene or unknown, and ``stimulus_class_from``, how it is known: ``stimulus_class`` given here, else the
    file's name or attribute, :func:`datasets.retina_stimulus_class.recording_stimulus_class`), which the fit's
    checkpoint in the fit cache keeps too: a score naming another class than its cached fit was made under is refused
    (:func:`retina.embedded_fit.held_fit`)."""
    fit_settings: dict = field(default_factory=dict)

    identifier = "retina_h5.heldout"

    def score(self, model, data, seed: int = 0, device: str = "cpu", refit: bool = False, progress: bool = True,
              stimulus_class: Optional[str] = None, heldout_history: str = "simulated", **fit_overrides) -> Score:
        from neurozoo.datasets.retina_stimulus_class import experiment_stimulus_class
        from neurozoo.retina.benchmark import HeldoutBenchmark

        path = Path(data).expanduser().resolve()
        # a fit of some of the file's cells (fit setting cells; a fitted module's: the cells it was fitted to) checks
        # those only, as zoo fit --cells
        cells = {**self.fit_settings, **fit_overrides}.get("cells")
        known = experiment_stimulus_class(path, given=stimulus_class, cells=cells)
        return heldout_score(self, HeldoutBenchmark(path.stem, fit_settings=dict(self.fit_settings), data=path,
                                                    stimulus_class=known.name),
                             model, seed, device, refit, progress, heldout_history, fit_overrides, data=str(path),
                             stimulus_class=known.name, stimulus_class_from=known.known_from)


def heldout_score(benchmark, heldout, model, seed: int, device: str, refit: bool, progress: bool,
                  heldout_history: str, fit_overrides: dict, **settings) -> Score:
    """A retina held-out benchmark's :class:`Score` of ``model`` (:meth:`retina.benchmark.HeldoutBenchmark.score`):
    one row per cell, the benchmark's ``settings`` (and a spike-history model's ``heldout_history``) and the summary
    added to the fit's."""
    fit_overrides = checked_fit_overrides(benchmark, fit_overrides)
    result = heldout.score(model, seed=seed, device=device, refit=refit, progress=progress,
                           heldout_history=heldout_history, **fit_overrides)
    per_cell = [{"cell": cell, **{k: (bool(v) if k == "passes" else float(v)) for k, v in row.items()}}
                for cell, row in result.frame.iterrows()]
    provenance = dict(result.provenance)
    if result.heldout_history is not None:
        settings["heldout_history"] = result.heldout_history
    provenance["settings"] = {**provenance.get("settings", {}), **settings, "summary": result.summary,
                              **fit_facts(provenance)}
    return Score(value=result.value, error=result.error, ceiling=result.ceiling,
                 per_bin=per_cell, provenance=provenance)


def _factory(kind: str):
    @forwards_keywords(lambda: partial(RetinaHeldoutBenchmark, kind))  # keywords checked against the class's
    def create(**kwargs) -> RetinaHeldoutBenchmark:
        return RetinaHeldoutBenchmark(kind, **kwargs)

    return create


#: the embedded recordings that have a held-out benchmark, ``retina_embedded.<kind>-heldout``
HELDOUT_KINDS = ("whitenoise", "naturalscene")

for _kind in HELDOUT_KINDS:
    BENCHMARKS.add(f"retina_embedded.{_kind}-heldout", _factory(_kind),
                   description=f"median held-out correlation of a fitted retina model on the embedded ground-truth "
                               f"retina ({_kind}), cells with explainable variance >= 0.15; ceiling: oracle r",
                   family="retina", region="held-out responses", embedded=True,
                   scale="raw")  # value: median r; ceiling: median oracle r (leaderboard.aggregate.on_scale divides)
# on the user's own file (--data): no leaderboard job has one (leaderboard.aggregate.scores_models)
BENCHMARKS.add(RetinaFileHeldoutBenchmark.identifier, RetinaFileHeldoutBenchmark, family="retina",
               region="held-out responses", own_data=True, embedded=False, scale="raw",
               description="median held-out correlation of a retina model fitted on the train split of your own "
                           "deep-retina HDF5 file (zoo score MODEL retina_h5.heldout --data FILE.h5), cells with "
                           "explainable variance >= 0.15; ceiling: oracle r")


#: The neural benchmarks' score options (a layer's features, the activation cache), which no retina benchmark takes.
NEURAL_OPTIONS = ("layers", "max_features", "cache")


#: A retina benchmark's ``score`` arguments that are :class:`retina.fit.FitConfig` settings too: not fit settings there.
SCORE_ARGUMENTS = ("seed", "device", "progress")


def checked_fit_overrides(benchmark, options: dict) -> dict:
    """A retina benchmark's ``score`` keywords beyond its own (``options``), as fit overrides: the neural benchmarks'
    options (:data:`NEURAL_OPTIONS`) do not apply to a retina benchmark, which fits and scores the whole retina model
    on its recording; given (not None), they are refused with a :class:`UserFacingError` naming them (as ``zoo score``
    refuses ``--layers``, ``--max-features`` and ``--no-cache``), not ignored, nor handed to the fit as settings.
    The others, and the benchmark's own ``fit_settings`` (given to ``benchmarks.load``), must be fit settings
    (:func:`retina.fit.checked_fit_settings`, which names the one misspelt and where it was given), before any fit."""
    given = {name: options[name] for name in NEURAL_OPTIONS if options.get(name) is not None}
    if given:
        from neurozoo.datasets.errors import UserFacingError

        raise UserFacingError(f"{benchmark.identifier}.score: {', '.join(f'{k}={v!r}' for k, v in given.items())}: the "
                              "neural benchmarks' options (a layer's features, the activation cache) do not apply "
                              "to a retina benchmark, which fits and scores the whole retina model on its "
                              "recording; leave them out")
    from neurozoo.retina.fit import checked_fit_settings

    checked_fit_settings(benchmark.fit_settings, f"benchmarks.load({benchmark.identifier!r}, fit_settings=...)",
                         SCORE_ARGUMENTS)
    return checked_fit_settings({name: value for name, value in options.items() if name not in NEURAL_OPTIONS},
                                f"{benchmark.identifier}.score", SCORE_ARGUMENTS)


def fitted_or_given(benchmark, model, seed: int, device: str, progress: bool, fit_overrides: dict):
    """(name, module, provenance) of a phenomenon benchmark's model: a registered name is fitted (or read from the
    fit cache) on ``benchmark.kind``'s embedded recording; a module is used as given. ``fit_overrides`` (the score's
    other keywords) are refused where they cannot apply: the neural benchmarks' options (:func:`checked_fit_overrides`)
    and any with a fitted module, the benchmark's own ``fit_settings`` too
    (:func:`retina.benchmark.refuse_fit_overrides_for_module`)."""
    from neurozoo.datasets.synthetic_retina import load_embedded_retina
    from neurozoo.retina.benchmark import refuse_fit_overrides_for_module
    from neurozoo.retina.embedded_fit import fitted_embedded_model
    from neurozoo.retina.fit import provenance

    fit_overrides = checked_fit_overrides(benchmark, fit_overrides)
    refuse_fit_overrides_for_module(benchmark.identifier, model, fit_overrides, fit_settings=benchmark.fit_settings)
    if isinstance(model, str):
        module, info = fitted_embedded_model(model, benchmark.kind, seed=seed, device=device, progress=progress,
                                             sizes=benchmark.sizes, **{**benchmark.fit_settings, **fit_overrides})
        return model, module, info
    return type(model).__name__, model, provenance(load_embedded_retina(benchmark.kind, **benchmark.sizes))


def ground_truth(safe_point: Optional[SafePoint] = None, kind: str = "whitenoise"):
    """The embedded ground-truth circuit that recorded ``kind`` (:func:`datasets.synthetic_retina.circuit_of`: the
    default circuit, or the object-motion circuit for ``oms-*``), which a retina benchmark's analysis probes after
    the model's fit. Its first use in a process builds and calibrates it (0.5-0.9
    CPU-s), writing nothing: with a safe point (``zoo score``'s) a stop during the build is taken at once
    (:func:`datasets.termination.stopping_at_once`), as in the command's setup; it waited for the safe point before
    the first probe stimulus, after the build. Without one (``zoo run``'s job, which is finished and stored first,
    Python's callers) it is built as ever."""
    from neurozoo.datasets.synthetic_retina import circuit_of

    if safe_point is None:
        return circuit_of(kind)
    from neurozoo.datasets.termination import stopping_at_once

    with stopping_at_once():
        return circuit_of(kind)


def stoppable(system, safe_point: Optional[SafePoint]):
    """``system`` (a fitted module, the ground-truth circuit) as a phenomenon analysis probes it, with
    ``safe_point()`` before each stimulus and between the chunks of a long one a module answers
    (:func:`retina.phenomena.responder.as_responder`): the same rates. ``system`` itself without a safe point."""
    if safe_point is None:
        return system
    from neurozoo.retina.phenomena.responder import as_responder

    return as_responder(system, safe_point=safe_point)


def probed_device(model, module, device: str) -> str:
    """The device a phenomenon benchmark probed ``module`` on, which its score records: ``device`` for a registered
    name (fitted there, :func:`fitted_or_given`); for a system given, which is not moved, its own: a module's
    parameters' (or buffers'), else the CPU, where the analyses' stimuli are (a function, the ground-truth circuit).
    A given system's score had recorded the ``device`` argument: ``auto`` as ``auto``, ``cuda`` for a module on the
    CPU."""
    if isinstance(model, str):
        return device
    for tensors in (getattr(module, "parameters", None), getattr(module, "buffers", None)):
        for tensor in tensors() if callable(tensors) else ():
            return str(tensor.device)
    return "cpu"


def phenomenon_provenance(benchmark, name: str, info: dict, seed: int, device: str, started: float,
                          **settings) -> dict:
    """A phenomenon benchmark's provenance: the fit's (``info`` from :func:`fitted_or_given`), the model, seed and
    device, the settings (the fit's, the recording kind and the benchmark's own ``settings``) and the duration
    since ``started`` (``time.perf_counter()``)."""
    import time

    return {**info, "model": name, "seed": seed, "device": device,
            "settings": {**info.get("settings", {}), "kind": benchmark.kind, **fit_facts(info), **settings},
            "duration_s": round(time.perf_counter() - started, 2)}


def fit_facts(info: dict) -> dict:
    """``{"fit_provenance": ...}`` for a score's settings: what the fit's provenance (``info``,
    :func:`retina.fit.provenance`) says beyond its settings, which a rerun needs to give the same weights: the fitting
    protocol, the thread counts its epochs ran under (a score read from the fit cache runs under its own process's
    count, which the record's ``environment`` states), how it was come by, its kept epoch and the fitted weights'
    :func:`~neurozoo.datasets.provenance.module_sha256` (``model_sha256``, as a ConvRNN record's setting; a note,
    not a mismatch, in ``zoo reproduce``: a fit on another CPU differs in the last bits, which a tolerance accepts).
    Empty for a module scored as given."""
    if "fit_origin" not in info:
        return {}
    return {"fit_provenance": {"origin": info["fit_origin"], "fit_protocol": info.get("fit_protocol"),
                               "torch_threads": info.get("fit_torch_threads"), "best_epoch": info.get("best_epoch"),
                               "model_sha256": info.get("model_sha256")}}
