"""Search spaces over local cells and feedback motifs, written down as YAML.

A space names a base graph (a registered model or a spec file), the layers whose cells are searched,
the candidate cells with a distribution per hyperparameter, and the candidate feedback edges (each a
boolean: on or off). Every hyperparameter is one of::

    0.92193                          # fixed value
    {choice: [sigmoid, tanh]}        # categorical (also booleans and kernel sizes)
    {float: [0.0, 2.0]}              # uniform; add `log: true` for log-uniform
    {int: [16, 64], step: 16}        # integer range (`log: true` takes no step above 1)
    {tied: tau_offset, scale: -1.0}  # (cells only) scale x another hyperparameter of the same cell, not searched

Example (see convrnn/search/spaces/)::

    name: rgc_local
    base: rgc_intermediate
    cell_layers: [conv4, conv5, conv6, conv7, conv8, conv9, conv10]   # default: the base's cell layers
    cells:
      rgc: {tau_offset: {float: [0.0, 2.0]}, gate_nonlinearity: {choice: [sigmoid, tanh]}}
      ugrnn: {filter_size: {choice: [3, 5]}}
    wiring: {ugrnn: ugrnn_intermediate}   # optional: the model whose layer wiring a kind's layers take
    feedback:
      candidates: all        # every higher -> lower pair of cell layers, or a list of "conv8->conv5"
      fixed: []              # edges always on
    train: {lr: {float: [0.01, 0.2], log: true}}

A searched layer takes the sampled kind's layer wiring (activation after the convolution, post block, cell
configuration) from the registered spec of that kind's published model with the base's layers (``ugrnn`` on base
``rgc_intermediate``: ``ugrnn_intermediate``), see :mod:`neurozoo.convrnn.wiring`; ``wiring`` names another
model, or ``base`` to keep the base's layers as they are.

A trial's configuration is plain data: ``{"cell": {"kind": ..., **config}, "feedback": [[src, tgt], ...],
"train": {...}}``; :meth:`SearchSpace.spec` turns it into a graph spec that ``convrnn.create_model`` loads.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from neurozoo.convrnn.cells import CELLS, cell_config_keys, create_cell
from neurozoo.convrnn.wiring import LayerWiring, resolve_wiring
from neurozoo.convrnn.spec import GraphSpec, load_spec
from neurozoo.datasets.errors import SpecError, yaml_problem
from neurozoo.datasets.text_table import plural

TRAIN_KEYS = ("lr", "weight_decay", "momentum", "label_smoothing")
SPACE_KEYS = ("name", "description", "base", "image_size", "cell_layers", "cells", "wiring", "feedback", "train",
              "overrides")
#: The image size of a search unless the space or the command line says otherwise: the published models' 224 px,
#: where conv8-conv10 of the intermediate backbone are 7x7.
DEFAULT_IMAGE_SIZE = 224
Edge = Tuple[str, str]


@dataclass
class Param:
    """One searched (or fixed) hyperparameter."""
    name: str
    kind: str  # fixed | choice | float | int | tied
    values: Any = None  # fixed value, list of choices, or the name of the hyperparameter a tied one follows
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: Optional[int] = None

    def suggest(self, trial, key: str):
        if self.kind == "fixed":
            return self.values
        if self.kind == "choice":
            return trial.suggest_categorical(key, list(self.values))
        if self.kind == "float":
            return trial.suggest_float(key, self.low, self.high, log=self.log)
        return trial.suggest_int(key, int(self.low), int(self.high), step=self.step or 1, log=self.log)

    def admits(self, value: Any) -> bool:
        """Whether ``value`` is a point of this distribution (not for a tied one: see ``SearchSpace.outside``)."""
        if self.kind in ("fixed", "choice"):  # True == 1 in Python: a bool is not a number here, nor a number a bool
            return any(value == v and isinstance(value, bool) == isinstance(v, bool)
                       for v in (self.values if self.kind == "choice" else [self.values]))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and (int(value) != value or (value - self.low) % (self.step or 1)):
            return False
        return self.kind != "tied" and self.low <= value <= self.high

    def examples(self) -> List[Any]:
        """Values that together exercise every branch (used to validate against the cell)."""
        if self.kind == "fixed":
            return [self.values]
        if self.kind == "choice":
            return list(self.values)
        return [self.low, self.high] if self.kind == "float" else [int(self.low), int(self.high)]


def parse_param(raw: Any, where: str) -> Param:
    if not isinstance(raw, dict):
        return Param(where, "fixed", raw)
    if "tied" in raw:
        scale = raw.get("scale", 1.0)
        if (set(raw) - {"tied", "scale"} or not isinstance(raw["tied"], str) or isinstance(scale, bool)
                or not isinstance(scale, (int, float))):
            raise SpecError(f"{where}: expected {{tied: OTHER_HYPERPARAMETER, scale: NUMBER}}, got {raw!r}")
        return Param(where, "tied", raw["tied"], float(scale))
    kinds = [k for k in ("choice", "float", "int") if k in raw]
    extra = set(raw) - {"choice", "float", "int", "log", "step"}
    if len(kinds) != 1 or extra:
        raise SpecError(f"{where}: expected a value or one of {{choice: [...]}}, {{float: [low, high]}}, "
                        f"{{int: [low, high]}} (optional log, step), {{tied: OTHER, scale: NUMBER}}, got {raw!r}")
    kind = kinds[0]
    value = raw[kind]
    if kind == "choice":
        if not isinstance(value, list) or not value:
            raise SpecError(f"{where}: 'choice' must be a non-empty list, got {value!r}")
        return Param(where, "choice", value)
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise SpecError(f"{where}: {kind!r} must be a [low, high] pair of numbers, got {value!r}")
    low, high = value
    if not low < high:
        raise SpecError(f"{where}: {kind!r} needs low < high, got [{low}, {high}]")
    log = bool(raw.get("log", False))
    if log and low <= 0:
        raise SpecError(f"{where}: a log range needs low > 0, got {low}")
    if kind == "int" and (int(low) != low or int(high) != high):
        raise SpecError(f"{where}: 'int' bounds must be integers, got [{low}, {high}]")
    step = raw.get("step")
    if step is not None and (kind != "int" or int(step) != step or step < 1):
        raise SpecError(f"{where}: 'step' must be a positive integer on an 'int' range, got {step!r}")
    if step is not None and (high - low) % step:
        raise SpecError(f"{where}: 'step' {step} does not divide [{low}, {high}] (the high end would never be drawn)")
    if log and step not in (None, 1):  # optuna refuses it at the first draw: a failed trial and a traceback
        raise SpecError(f"{where}: 'step' {step} with 'log: true': a log range is drawn in steps of 1 only; give "
                        "one of the two, or a 'choice' of the values")
    return Param(where, kind, None, float(low), float(high), log, None if step is None else int(step))


@dataclass
class SearchSpace:
    name: str
    base: GraphSpec
    cell_layers: List[str]
    cells: Dict[str, Dict[str, Param]]
    candidates: List[Edge]
    fixed_edges: List[Edge] = field(default_factory=list)
    train: Dict[str, Param] = field(default_factory=dict)
    overrides: Dict[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = "<space>"
    image_size: int = DEFAULT_IMAGE_SIZE
    wiring: Dict[str, Dict[str, LayerWiring]] = field(default_factory=dict)  # kind -> layer -> its wiring
    wiring_models: Dict[str, str] = field(default_factory=dict)  # kind -> the model it is wired as (or "base")
    base_ref: Any = None  # the base as given: a registered model's name, or the mapping of its spec (file or inline)
    path: Optional[str] = None  # the resolved file the space was read from; None for one built from a mapping

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_yaml(cls, path) -> "SearchSpace":
        path = os.fspath(path)
        try:
            with open(path) as fh:
                data = yaml.safe_load(fh)
        except FileNotFoundError:
            raise SpecError(f"{path}: no such search-space file") from None
        except yaml.YAMLError as error:
            raise SpecError(f"{path}: not valid YAML: {yaml_problem(error)}") from None
        base_dir = os.path.dirname(os.path.abspath(path))
        space = cls.from_dict(data, source=path, base_dir=base_dir)
        space.path = os.path.realpath(path)
        return space

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "<space>", base_dir: Optional[str] = None) -> "SearchSpace":
        if not isinstance(data, dict):
            raise SpecError(f"{source}: a search space must be a mapping, got {type(data).__name__}")
        unknown = set(data) - set(SPACE_KEYS)
        if unknown:
            raise SpecError(f"{source}: unknown {plural(len(unknown), 'field')} {sorted(unknown)}; "
                            f"allowed: {', '.join(SPACE_KEYS)}")
        if "base" not in data:
            raise SpecError(f"{source}: field 'base' (a registered model name or a graph-spec YAML path) is required")
        base, base_ref = _load_base(data["base"], source, base_dir)
        overrides = data.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise SpecError(f"{source}: field 'overrides' must be a mapping of model overrides, got {overrides!r}")
        if overrides:
            try:
                base = base.with_overrides(**overrides)
            except SpecError as error:  # "spec 'rgc_shallow': unknown override(s)" named neither file nor field
                raise SpecError(f"{source}: field 'overrides': {error}") from None
        names = base.layer_names
        given = data.get("cell_layers")
        if given is not None and (not isinstance(given, list) or not given
                                  or not all(isinstance(name, str) for name in given)):
            raise SpecError(f"{source}: field 'cell_layers' must be a non-empty list of layer names, got {given!r}")
        cell_layers = given or [l.name for l in base.layers if l.cell and l.cell.get("kind") != "identity"]
        if not cell_layers:
            raise SpecError(f"{source}: field 'cell_layers' is needed: base {base.name!r} has no recurrent layers "
                            "to default to")
        for layer in cell_layers:
            if layer not in names:
                raise SpecError(f"{source}: cell_layers names {layer!r}, not a layer of {base.name!r} "
                                f"(layers: {', '.join(names)})")
        cells_raw = data.get("cells")
        if not isinstance(cells_raw, dict) or not cells_raw:
            raise SpecError(f"{source}: field 'cells' must map cell kinds ({', '.join(CELLS.names())}) to their "
                            "hyperparameters")
        cells = {kind: _parse_cell(kind, params, f"{source}: cells.{kind}") for kind, params in cells_raw.items()}
        named = data.get("wiring") or {}
        if not isinstance(named, dict) or not all(isinstance(v, str) for v in named.values()):
            raise SpecError(f"{source}: field 'wiring' must map cell kinds to a registered model name or 'base', "
                            f"got {named!r}")
        for kind in named:
            if kind not in cells:
                raise SpecError(f"{source}: wiring names cell {kind!r}, not among the space's cells ({', '.join(cells)})")
        wiring_models, wiring = resolve_wiring(list(cells), named, base, list(cell_layers), overrides, source)
        candidates, fixed = _parse_feedback(data.get("feedback") or {}, cell_layers, names, source)
        train_raw = data.get("train") or {}
        if not isinstance(train_raw, dict) or set(train_raw) - set(TRAIN_KEYS):
            raise SpecError(f"{source}: field 'train' must be a mapping with keys among {', '.join(TRAIN_KEYS)}, "
                            f"got {train_raw!r}")
        train = {k: parse_param(v, f"{source}: train.{k}") for k, v in train_raw.items()}
        from neurozoo.convrnn.training.engine import SETTING_BOUNDS
        for key, param in train.items():
            if param.kind == "tied":
                raise SpecError(f"{source}: train.{key}: 'tied' links hyperparameters of one cell, not training ones")
            values = {"fixed": [param.values], "choice": param.values}.get(param.kind, [param.low, param.high])
            # TrainConfig.validate's bounds, checked as the space is read: a value a draw could give outside them
            # failed the trial with "--lr must be > 0", of an option not given, or with a TypeError traceback
            ok, expected = SETTING_BOUNDS[key]
            bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v)]
            if bad:
                raise SpecError(f"{source}: train.{key}: expected numbers {expected} (a value, a choice of them or a "
                                f"range), got {bad[0]!r}")
        with_decay = [kind for kind, params in cells.items() if "weight_decay" in params]
        if with_decay and "weight_decay" in train:
            raise SpecError(f"{source}: cells.{with_decay[0]}.weight_decay and train.weight_decay: a cell's weight_decay "
                            "is the original's per-part L2 (trials then train with it, and train.weight_decay would "
                            "be ignored); give one of the two")
        if data.get("name") is not None and not isinstance(data["name"], str):
            raise SpecError(f"{source}: field 'name' must be a string, got {data['name']!r}")
        name = data.get("name") or (os.path.splitext(os.path.basename(source))[0] if source != "<space>" else "search")
        image_size = data.get("image_size", DEFAULT_IMAGE_SIZE)
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
            raise SpecError(f"{source}: field 'image_size' must be an integer >= 8, got {image_size!r}")
        return cls(name=str(name), base=base, cell_layers=list(cell_layers), cells=cells, candidates=candidates,
                   fixed_edges=fixed, train=train, overrides=overrides, description=data.get("description", ""),
                   source=source, image_size=image_size, wiring=wiring, wiring_models=wiring_models,
                   base_ref=base_ref)

    def content(self) -> Dict[str, Any]:
        """What the space's trials are drawn from, as plain data: its parsed fields with the base's spec mapping (a
        registered base by name), not its name, description or file; cells and feedback candidates in their order
        (the order of the cell kinds is that of the drawn categorical)."""
        def param(p: Param) -> Dict[str, Any]:
            return {"kind": p.kind, "values": p.values, "low": p.low, "high": p.high, "log": p.log, "step": p.step}

        return {"base": self.base_ref, "overrides": self.overrides, "cell_layers": list(self.cell_layers),
                "cells": [[kind, {key: param(p) for key, p in params.items()}] for kind, params in self.cells.items()],
                "wiring": self.wiring_models, "candidates": [list(e) for e in self.candidates],
                "fixed": [list(e) for e in self.fixed_edges], "train": {k: param(p) for k, p in self.train.items()},
                "image_size": self.image_size}

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of :meth:`content`: two files with the same name and this digest draw the same
        trials; an edited copy under the same name does not (``study.check_space`` refuses it)."""
        text = json.dumps(self.content(), sort_keys=True, separators=(",", ":"), default=repr)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def cell_weight_decay(self) -> bool:
        """Whether a cell's ``weight_decay`` is set by the space: trials then train with the original's per-part L2
        (``TrainConfig.original_weight_decay``), where it takes effect (SGD only); with the global decay it did not."""
        return any("weight_decay" in params for params in self.cells.values())

    # ------------------------------------------------------------------ sampling
    def sample(self, trial) -> Dict[str, Any]:
        """Draw a configuration through an optuna trial (cell parameters are conditional on the kind)."""
        kinds = list(self.cells)
        kind = trial.suggest_categorical("cell", kinds) if len(kinds) > 1 else kinds[0]
        params = self.cells[kind]
        # the RGC's cell needs an input (utils/median_rgcell.py line 345 asserts cell_residual or input_to_cell):
        # without the residual input_to_cell is True and not drawn, so that a trial never records False for a cell
        # built with True
        needs_input = kind == "rgc" and "input_to_cell" in params
        drawn = {key: param.suggest(trial, f"{kind}.{key}") for key, param in params.items()
                 if param.kind != "tied" and not (needs_input and key == "input_to_cell")}
        if needs_input:
            drawn["input_to_cell"] = (params["input_to_cell"].suggest(trial, f"{kind}.input_to_cell")
                                      if drawn.get("cell_residual", False) else True)
        cell = {"kind": kind}
        for key, param in params.items():
            cell[key] = param.low * drawn[param.values] if param.kind == "tied" else drawn[key]
        edges = list(self.fixed_edges)
        for src, tgt in self.candidates:
            if trial.suggest_categorical(f"fb.{src}->{tgt}", [False, True]):
                edges.append((src, tgt))
        train = {key: param.suggest(trial, f"train.{key}") for key, param in self.train.items()}
        return {"cell": cell, "feedback": [list(e) for e in edges], "train": train}

    def outside(self, kind: str, values: Dict[str, Any]) -> List[str]:
        """The hyperparameters of cell ``kind`` whose value in ``values`` the space cannot produce (missing ones
        and tied ones off their tie included); empty when ``values`` is a point of the space."""
        params = self.cells.get(kind)
        if params is None:
            return [f"cell {kind!r}"]
        problems = []
        for key, param in params.items():
            if key not in values:
                problems.append(f"{key} (missing)")
            elif param.kind == "tied":
                if not math.isclose(values[key], param.low * values.get(param.values, math.nan), rel_tol=1e-12):
                    problems.append(f"{key}={values[key]!r} (tied: {param.low:g} x {param.values})")
            elif not param.admits(values[key]):
                problems.append(f"{key}={values[key]!r}")
        return problems

    def config_from_params(self, params: Dict[str, Any]) -> Dict[str, Any]:
        """The configuration of a finished trial from its ``params`` (replays :meth:`sample`)."""
        import optuna

        return self.sample(optuna.trial.FixedTrial(params))

    def spec(self, config: Dict[str, Any], name: Optional[str] = None, description: str = "") -> GraphSpec:
        """The graph spec of a configuration: the base, whose searched layers take the sampled cell and its kind's
        layer wiring (:mod:`neurozoo.convrnn.wiring`), and the sampled feedback."""
        kind = config["cell"]["kind"]
        data = self.base.to_dict()
        for layer in data["layers"]:
            if layer["name"] in self.cell_layers:
                self.wiring[kind][layer["name"]].apply(layer, config["cell"])
        # an edge the base has keeps its delay and projection (they are not searched; a trial's edge was built at
        # delay 1 whatever the base said); any other sampled edge is the original's one-step 1x1 feedback
        given = {(e["source"], e["target"]): e for e in data["feedback"]}
        data["feedback"] = [given.get((s, t), {"source": s, "target": t}) for s, t in config["feedback"]]
        data["name"] = name or f"{self.name}_trial"
        data["description"] = (description or (
            f"{self.base.name} with {kind} cells at {', '.join(self.cell_layers)}, feedback "
            + (", ".join(f"{s}->{t}" for s, t in config["feedback"]) or "none") + f" (search space {self.name})")
        ) + f"; {kind} layers wired as in {self.wiring_models[kind]}"
        return GraphSpec.from_dict(data, source=f"search space {self.source}")

    def summary(self) -> str:
        n_params = sum(len(p) for p in self.cells.values())
        n_drawn = sum(p.kind not in ("fixed", "tied") for params in self.cells.values() for p in params.values())
        return (f"search space {self.name!r}: base {self.base.name}, cells {', '.join(self.cells)} at "
                f"{len(self.cell_layers)} layers ({n_params} cell hyperparameters, {n_drawn} drawn; layers wired as in "
                + ", ".join(f"{model} ({kind})" for kind, model in self.wiring_models.items())
                + f"), {len(self.candidates)} candidate feedback edges, {len(self.train)} training hyperparameters")


def _load_base(base: Any, source: str, base_dir: Optional[str]) -> Tuple[GraphSpec, Any]:
    """The base's spec and how it was given (see ``SearchSpace.base_ref``)."""
    if isinstance(base, dict):
        return GraphSpec.from_dict(base, source=f"{source}: base"), copy.deepcopy(base)
    if not isinstance(base, str):
        raise SpecError(f"{source}: field 'base' must be a model name, a spec path or a spec mapping, got {base!r}")
    from neurozoo.convrnn.models import MODELS, get_spec

    if base in MODELS:
        return get_spec(base), base
    path = base if os.path.isabs(base) or base_dir is None else os.path.join(base_dir, base)
    if not os.path.exists(path) and os.path.exists(base):
        path = base
    if not os.path.exists(path):
        from neurozoo.datasets.registry import UnknownNameError, lookup

        try:  # the registries' one refusal: close names, every model
            lookup(base, [MODELS], "model", lambda name: "; expected a registered model or an existing spec file")
        except UnknownNameError as error:
            raise SpecError(f"{source}: field 'base': {error}") from None
    spec = load_spec(path)
    with open(path) as fh:  # load_spec read it: YAML (or JSON, which YAML reads)
        return spec, yaml.safe_load(fh)


def _parse_cell(kind: str, params: Any, where: str) -> Dict[str, Param]:
    if kind not in CELLS:
        raise SpecError(f"{where}: unknown cell kind {kind!r} (expected one of {', '.join(CELLS.names())})")
    params = params or {}
    if not isinstance(params, dict):
        raise SpecError(f"{where}: expected a mapping of hyperparameters, got {params!r}")
    valid = cell_config_keys(kind)
    if valid is not None:
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise SpecError(f"{where}: unknown {plural(len(unknown), 'hyperparameter')} {unknown} for cell {kind!r} "
                            f"(valid: {', '.join(valid) or 'none'})")
    parsed = {key: parse_param(raw, f"{where}.{key}") for key, raw in params.items()}
    for key, param in parsed.items():
        if param.kind != "tied":
            continue
        followed = parsed.get(param.values)
        if followed is None or followed.kind == "tied" or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in followed.examples()):
            raise SpecError(f"{where}.{key}: 'tied' must name a numeric, untied hyperparameter of this cell "
                            f"({', '.join(k for k, p in parsed.items() if p.kind != 'tied')}), got {param.values!r}")
    without_input = parsed.get("input_to_cell")
    if (kind == "rgc" and without_input is not None and without_input.examples() == [False]
            and False in (parsed["cell_residual"].examples() if "cell_residual" in parsed else [False])):
        raise SpecError(f"{where}.input_to_cell: false needs cell_residual: true (the RGC's cell needs an input, "
                        "utils/median_rgcell.py asserts cell_residual or input_to_cell): a trial without the residual "
                        "is built with input_to_cell true")
    for key, param in parsed.items():  # every value the space can produce must build a cell
        examples = ([param.low * v for v in parsed[param.values].examples()] if param.kind == "tied"
                    else param.examples())
        for value in examples:
            companion = {"cell_residual": True} if (kind, key, value) == ("rgc", "input_to_cell", False) else {}
            try:
                create_cell(kind, 4, **{key: value, **companion})
            except (SpecError, TypeError, ValueError) as error:
                raise SpecError(f"{where}.{key}: value {value!r} is not accepted by cell {kind!r}: {error}") from None
    return parsed


def _edge(raw: Any, where: str) -> Edge:
    if isinstance(raw, str) and "->" in raw:
        src, tgt = (s.strip() for s in raw.split("->", 1))
        return src, tgt
    if isinstance(raw, (list, tuple)) and len(raw) == 2 and all(isinstance(s, str) for s in raw):
        return raw[0], raw[1]
    if isinstance(raw, dict) and set(raw) == {"source", "target"}:
        return raw["source"], raw["target"]
    raise SpecError(f"{where}: an edge is 'source->target', [source, target] or {{source:, target:}}, got {raw!r}")


def _parse_feedback(raw: Any, cell_layers: Sequence[str], names: Sequence[str], source: str):
    if not isinstance(raw, dict) or set(raw) - {"candidates", "fixed"}:
        raise SpecError(f"{source}: field 'feedback' must be a mapping with 'candidates' (all, none or a list of "
                        f"edges) and optional 'fixed', got {raw!r}")
    cand = raw.get("candidates", "none")
    if cand == "all":
        order = [n for n in names if n in cell_layers]
        edges = [(s, t) for i, t in enumerate(order) for s in order[i + 1:]]
    elif cand in ("none", None):
        edges = []
    elif isinstance(cand, list):
        edges = [_edge(e, f"{source}: feedback.candidates[{i}]") for i, e in enumerate(cand)]
    else:
        raise SpecError(f"{source}: feedback.candidates must be 'all', 'none' or a list of edges, got {cand!r}")
    if not isinstance(raw.get("fixed") or [], list):
        raise SpecError(f"{source}: feedback.fixed must be a list of edges, got {raw['fixed']!r}")
    fixed = [_edge(e, f"{source}: feedback.fixed[{i}]") for i, e in enumerate(raw.get("fixed") or [])]
    for kind, group in (("candidates", edges), ("fixed", fixed)):
        for src, tgt in group:
            for end in (src, tgt):
                if end not in names:
                    raise SpecError(f"{source}: feedback.{kind} edge {src}->{tgt} names {end!r}, not a layer "
                                    f"(layers: {', '.join(names)})")
            if names.index(src) <= names.index(tgt):
                raise SpecError(f"{source}: feedback.{kind} edge {src}->{tgt} must go from a higher layer to a lower one")
    dupes = sorted({f"{s}->{t}" for s, t in edges if edges.count((s, t)) > 1 or (s, t) in fixed})
    if dupes:
        raise SpecError(f"{source}: {plural(len(dupes), 'feedback edge')} {dupes} "
                        "listed twice (or both candidate and fixed)")
    return edges, fixed


def load_space(source) -> SearchSpace:
    """A SearchSpace from a SearchSpace, a mapping, a YAML path or the name of a built-in space."""
    if isinstance(source, SearchSpace):
        return source
    if isinstance(source, dict):
        return SearchSpace.from_dict(copy.deepcopy(source))
    path = os.fspath(source)
    if not os.path.exists(path):
        builtin = os.path.join(os.path.dirname(__file__), "spaces", f"{path}.yaml")
        if os.path.exists(builtin):
            path = builtin
    return SearchSpace.from_yaml(path)


def builtin_spaces() -> List[str]:
    folder = os.path.join(os.path.dirname(__file__), "spaces")
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml"))
