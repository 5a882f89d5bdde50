"""neurozoo.convrnn.search: YAML search spaces, seeded TPE studies with pruning, workers sharing one study,
a killed worker, export of the best configurations as loadable specs and as scored records."""
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml

from processes import live_waiting, run_killed
from neurozoo import convrnn
from neurozoo.convrnn.search import SearchSpace, builtin_spaces, load_space, open_study, split_trials
from neurozoo.convrnn.search.study import make_pruner, make_storage
from neurozoo.datasets.errors import SpecError

REPO = Path(__file__).resolve().parents[1]

TINY_BASE = {
    "name": "tiny4", "n_steps": 6, "image_steps": 4,
    "layers": [
        {"name": "conv1", "channels": 8, "kernel": 3, "stride": 2, "pool": {"kernel": 2, "stride": 2}},
        {"name": "conv2", "channels": 8, "kernel": 3, "cell": {"kind": "rgc", "cell_depth": 4}},
        {"name": "conv3", "channels": 16, "kernel": 3, "stride": 2, "cell": {"kind": "rgc", "cell_depth": 4}},
    ],
}
TINY_SPACE = {
    "name": "tiny", "base": "tiny_base.yaml",
    "cells": {"rgc": {"tau_bias": {"float": [-3.0, 3.0]}, "gate_nonlinearity": {"choice": ["sigmoid", "tanh"]},
                      "cell_depth": {"choice": [4, 8]}, "out_residual": {"choice": [True, False]}},
              "timedecay": {"memory_decay": {"float": [0.1, 0.9]}}},
    "wiring": {"rgc": "rgc_intermediate", "timedecay": "timedecay_intermediate"},  # no published model has its layers
    "feedback": {"candidates": "all"},
    "train": {"weight_decay": {"float": [1e-5, 1e-3], "log": True}},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny search space file and a 3-class, 32 px image folder."""
    from neurozoo.convrnn.training.synthetic import write_image_folder

    root = tmp_path_factory.mktemp("search")
    (root / "tiny_base.yaml").write_text(yaml.safe_dump(TINY_BASE))
    (root / "tiny_space.yaml").write_text(yaml.safe_dump(TINY_SPACE))
    write_image_folder(root / "data", n_classes=3, per_class=6, size=32, val_per_class=3)
    return root


def search_argv(tiny, out, trials, *extra, storage=None, study="tiny"):
    argv = ["--data", str(tiny / "data"), "--trials", str(trials), "--space", str(tiny / "tiny_space.yaml"),
            "--out", str(out), "--epochs", "1", "--image-size", "32", "--width", "1", "--batch-size", "6",
            "--study", study, "--quiet", *extra]
    return argv + (["--storage", storage] if storage else [])


# ---------------------------------------------------------------------------- spaces
def test_builtin_spaces_cover_every_rgc_switch_and_build_models():
    assert {"rgc_intermediate", "rgc_local"} <= set(builtin_spaces())
    space = load_space("rgc_intermediate")
    rgc = space.cells["rgc"]
    # every argument of the original cell that configs/median_rgcell_cfg.py (lines 14-52) or models/model_func.py
    # (lines 131-135) sets
    median = {"tau_depth_separable", "tau_filter_size", "residual_to_out_gate", "feedback_activation",
              "residual_to_cell_gate", "out_residual", "feedback_depth_separable", "tau_nonlinearity",
              "ff_depth_separable", "gate_nonlinearity", "cell_to_out", "input_to_cell", "cell_residual",
              "in_out_depth_separable", "layer_norm", "input_activation", "ff_filter_size", "feedback_filter_size",
              "feedback_entry", "input_to_out", "in_out_filter_size", "tau_offset", "tau_multiplier", "tau_bias",
              "out_activation", "weight_decay", "init_scale", "cell_depth", "gate_depth_separable",
              "gate_filter_size", "gate_offset", "gate_multiplier", "gate_bias", "cell_activation"}
    assert median <= set(rgc), median - set(rgc)
    assert {"residual_to_cell_tau", "residual_to_out_tau", "input_to_tau", "input_to_gate"} <= set(rgc)
    assert len(rgc) == 38
    assert space.image_size == 224  # conv8-conv10 are 7x7 there
    assert set(space.cells) == {"rgc", "ugrnn", "timedecay"}
    assert len(space.candidates) == 21  # every higher -> lower pair of conv4..conv10
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(3):
        config = space.sample(study.ask())
        spec = space.spec(config)
        assert {l.cell["kind"] for l in spec.layers if l.name in space.cell_layers} == {config["cell"]["kind"]}
        assert [[e.source, e.target] for e in spec.feedback] == config["feedback"]
    for _ in range(6):  # every sampled configuration builds and runs
        spec = space.spec(space.sample(study.ask()))
        model = convrnn.create_model(spec.to_dict(), width_multiplier=0.0625, num_classes=5)
        assert model(torch.zeros(1, 3, 32, 32), n_steps=3).logits.shape == (3, 1, 5)
    local = load_space("rgc_local")
    assert local.candidates == [] and len(local.fixed_edges) == 5
    assert local.spec(local.sample(optuna.create_study().ask())).feedback[0].source == "conv8"


def test_a_trial_keeps_the_delay_and_projection_of_the_bases_edge():
    """A base edge conv3 -> conv2 of delay 2 (identity projection), searched or fixed, was built at delay 1 with a 1x1
    projection in every trial that drew it: the base's timing changed silently."""
    base = {**TINY_BASE, "layers": [dict(layer) for layer in TINY_BASE["layers"]],
            "feedback": [{"source": "conv3", "target": "conv2", "delay": 2}]}
    base["layers"][2]["channels"] = 8
    base["feedback"].append({"source": "conv3", "target": "conv1", "delay": 3, "projection": "identity"})
    for feedback in ({"candidates": "all"}, {"candidates": "none", "fixed": ["conv3->conv2"]}):
        space = load_space({"name": "delays", "base": base, "cells": {"rgc": {}}, "feedback": feedback,
                            "cell_layers": ["conv2", "conv3"]})
        config = {"cell": {"kind": "rgc"}, "feedback": [["conv3", "conv2"]], "train": {}}
        (edge,) = space.spec(config).feedback
        assert (edge.source, edge.target, edge.delay, edge.projection) == ("conv3", "conv2", 2, "conv1x1")
    wide = load_space({"name": "delays", "base": base, "cells": {"rgc": {}},
                       "feedback": {"candidates": ["conv3->conv1", "conv2->conv1"]}})
    edges = wide.spec({"cell": {"kind": "rgc"}, "feedback": [["conv3", "conv1"], ["conv2", "conv1"]], "train": {}}).feedback
    assert [(e.delay, e.projection) for e in edges] == [(3, "identity"), (1, "conv1x1")]


# configs/median_rgcell_cfg.py median_config_dict["model_params"]["cell_params"] (convrnns commit cab32bb, lines
# 14-52), activations by name; the four switches it leaves out at utils/median_rgcell.py's defaults (False, lines 48,
# 50, 52, 53)
MEDIAN_AS_SEARCHED = {
    "tau_depth_separable": True, "tau_filter_size": 7, "residual_to_out_gate": False, "feedback_activation": "elu",
    "residual_to_cell_gate": False, "out_residual": True, "feedback_depth_separable": True,
    "tau_nonlinearity": "sigmoid", "ff_depth_separable": False, "gate_nonlinearity": "tanh", "cell_to_out": False,
    "input_to_cell": True, "cell_residual": False, "in_out_depth_separable": False, "layer_norm": False,
    "input_activation": "elu", "ff_filter_size": 2, "feedback_filter_size": 8, "feedback_entry": "input",
    "input_to_out": True, "in_out_filter_size": 3, "tau_offset": 0.9219348064291611,
    "tau_multiplier": -0.9219348064291611, "tau_bias": 4.147336708899556, "out_activation": "elu",
    "weight_decay": 0.0002033999204146308, "init_scale": 0.6393378386273998, "cell_depth": 64,
    "gate_depth_separable": True, "gate_filter_size": 7, "gate_offset": 0.7006566684988862,
    "gate_multiplier": -0.7006566684988862, "gate_bias": 2.776542926439013, "cell_activation": "elu",
    "residual_to_cell_tau": False, "residual_to_out_tau": False, "input_to_tau": False, "input_to_gate": False,
}
# models/model_func.py model_func: the released rgc_intermediate overrides the feedback entries (lines 131-135)
MEDIAN_AS_RELEASED = {**MEDIAN_AS_SEARCHED, "feedback_activation": "identity", "feedback_entry": "out",
                      "feedback_depth_separable": False, "feedback_filter_size": 1}


def test_the_median_cell_is_a_point_of_the_builtin_spaces_with_its_gates_tied():
    """The review's defects: the median cell as searched (8x8 feedback kernel) was outside the space (feedback
    kernels {1, 3}), and gate offset and multiplier were drawn apart although the search drew one number per gate
    (the median has multiplier = -offset to the last digit)."""
    space = load_space("rgc_intermediate")
    assert space.outside("rgc", MEDIAN_AS_SEARCHED) == [] and space.outside("rgc", MEDIAN_AS_RELEASED) == []
    assert space.outside("rgc", {**MEDIAN_AS_SEARCHED, "tau_multiplier": -0.5}) == [
        "tau_multiplier=-0.5 (tied: -1 x tau_offset)"]
    assert space.outside("rgc", {**MEDIAN_AS_SEARCHED, "feedback_filter_size": 9}) == ["feedback_filter_size=9"]
    local = load_space("rgc_local")
    assert local.outside("rgc", {k: MEDIAN_AS_SEARCHED[k] for k in local.cells["rgc"]}) == []
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        trial = study.ask()
        cell = space.sample(trial)["cell"]
        if cell["kind"] == "rgc":
            assert cell["tau_multiplier"] == -cell["tau_offset"] and cell["gate_multiplier"] == -cell["gate_offset"]
            assert "rgc.tau_multiplier" not in trial.params and space.outside("rgc", cell) == []
            assert space.config_from_params(trial.params)["cell"] == cell
    assert sum(p.kind != "tied" for p in space.cells["rgc"].values()) == 36  # searched; 38 set


def test_a_bool_is_not_a_point_of_a_numeric_parameter_nor_a_number_of_a_boolean_one():
    """The review's defect: True == 1 in Python, so a choice of numbers admitted True (and a boolean choice 1)."""
    from neurozoo.convrnn.search.space import parse_param

    numbers, switch, fixed = (parse_param({"choice": [1, 3]}, "n"), parse_param({"choice": [False, True]}, "b"),
                              parse_param(0, "z"))
    assert numbers.admits(1) and numbers.admits(3.0) and not numbers.admits(True)
    assert switch.admits(True) and not switch.admits(1) and not switch.admits(0)
    assert fixed.admits(0) and not fixed.admits(False)
    assert parse_param({"int": [0, 4]}, "i").admits(1) and not parse_param({"int": [0, 4]}, "i").admits(True)
    assert not parse_param({"float": [0.0, 2.0]}, "f").admits(True)
    space = load_space("rgc_intermediate")  # out_residual is a boolean choice, cell_depth a choice of numbers
    assert space.outside("rgc", {**MEDIAN_AS_SEARCHED, "out_residual": 1}) == ["out_residual=1"]


def _trial(space, kind, **params):
    """A fixed trial drawing ``kind`` with ``params``, no feedback edge and lr 0.05."""
    return optuna.trial.FixedTrial({"cell": kind, **params, "train.lr": 0.05,
                                    **{f"fb.{s}->{t}": False for s, t in space.candidates}})


def _wiring(layer):
    return layer.activation, layer.post, {k: v for k, v in layer.cell.items() if k != "kind"}


@pytest.mark.parametrize("kind, params, published", [
    ("ugrnn", {"ugrnn.filter_size": 5}, "ugrnn_intermediate"),
    ("timedecay", {"timedecay.memory_decay": 0.3}, "timedecay_intermediate"),
    ("rgc", None, "rgc_intermediate"),
])
def test_a_sampled_cell_takes_its_published_models_layer_wiring(kind, params, published):
    space = load_space("rgc_intermediate")
    if params is None:  # an RGC trial: every searched hyperparameter at its lowest value
        params = {f"rgc.{k}": p.examples()[0] for k, p in space.cells["rgc"].items()}
    config = space.sample(_trial(space, kind, **params))
    spec, reference = space.spec(config), convrnn.models.get_spec(published)
    base = convrnn.models.get_spec("rgc_intermediate")
    for name in space.cell_layers:
        layer = spec.layer(name)
        activation, post, _ = _wiring(reference.layer(name))
        assert (layer.activation, layer.post) == (activation, post)
        assert layer.cell == config["cell"]  # these published cells set no configuration of their own
        # the base keeps the backbone: channels, kernel, stride, pool
        assert (layer.channels, layer.kernel, layer.stride, layer.pool) == (
            base.layer(name).channels, base.layer(name).kernel, base.layer(name).stride, base.layer(name).pool)
    conv7 = spec.layer("conv7")
    # convrnns models/rgc_intermediate_t22.json conv4-conv10 (lines 197-715): pre_memory activation null (conv4 line
    # 234), no post (conv4's post_memory, lines 259-276, a max_pool only); models/ugrnn_intermediate.json
    # conv4-conv10 (lines 222-789): pre_memory elu (line 259); post_memory conv 3x3, residual_add, elu (lines 277-291)
    if kind == "rgc":
        assert (conv7.activation, conv7.post) == ("identity", None)
    else:
        assert (conv7.activation or spec.activation, conv7.post) == ("elu", {"kernel": 3, "residual": True})
    assert [l.name for l in spec.layers if l.post] == ([] if kind == "rgc" else space.cell_layers)
    assert f"{kind} layers wired as in {published}" in spec.description


def test_published_cell_configurations_come_along_and_unpublished_cells_need_a_named_wiring():
    space = load_space({"base": "rgc_intermediate", "cells": {"simplernn": {"filter_size": {"choice": [3, 5]}},
                                                              "lstm": {}}})
    spec = space.spec(space.sample(_trial(space, "simplernn", **{"simplernn.filter_size": 5})))
    # simplernn_intermediate's cell (no layer norm, weight decay 1e-4) with the sampled filter size on top
    assert spec.layer("conv9").cell == {"kind": "simplernn", "filter_size": 5, "layer_norm": False,
                                        "weight_decay": 1e-4}
    spec = space.spec(space.sample(_trial(space, "lstm")))
    assert spec.layer("conv4").cell == {"kind": "lstm", "filter_size": 3, "weight_decay": 1e-4}
    # the shallow family: rgc_shallow's own per-layer cells are kept under the sampled values (they were dropped)
    shallow = load_space({"base": "rgc_shallow", "cells": {"rgc": {"tau_bias": {"float": [-1.0, 1.0]}}, "ugrnn": {}}})
    assert shallow.wiring_models == {"rgc": "rgc_shallow", "ugrnn": "ugrnn_shallow"}
    spec = shallow.spec(shallow.sample(_trial(shallow, "rgc", **{"rgc.tau_bias": 0.5})))
    assert [spec.layer(n).cell["cell_depth"] for n in ("conv3", "conv4", "conv5")] == [256, 256, 512]
    assert spec.layer("conv5").cell["tau_bias"] == 0.5 and spec.layer("conv5").cell["tau_multiplier"] == -1.0
    spec = shallow.spec(shallow.sample(_trial(shallow, "ugrnn")))
    assert (spec.layer("conv4").activation, spec.layer("conv4").post) == ("identity", None)  # ugrnn_shallow's
    # no released model has GRU or intersection-RNN layers: the space must say which wiring they take
    for kind in ("gru", "intersectionrnn", "identity"):
        with pytest.raises(SpecError, match=f"no published model of cell '{kind}'.*'wiring: {{{kind}: MODEL}}'"):
            load_space({"base": "rgc_intermediate", "cells": {kind: {}}})
    lent = load_space({"base": "rgc_intermediate", "cells": {"gru": {}}, "wiring": {"gru": "ugrnn_intermediate"}})
    conv8 = lent.spec(lent.sample(_trial(lent, "gru"))).layer("conv8")
    assert (conv8.activation, conv8.post, conv8.cell) == (None, {"kernel": 3, "residual": True}, {"kind": "gru"})
    # a base whose searched layers carry the kind and no released model of it has those layers: wired as the base
    assert load_space({"base": "rgc_resnet18", "cells": {"rgc": {}}}).wiring_models == {"rgc": "base"}
    kept = load_space({"base": "rgc_intermediate", "cells": {"gru": {}}, "wiring": {"gru": "base"}})
    conv8 = kept.spec(kept.sample(_trial(kept, "gru"))).layer("conv8")
    assert (conv8.activation, conv8.post, conv8.cell) == ("identity", None, {"kind": "gru"})


def test_a_ugrnn_trial_carries_the_image_and_learns_only_with_its_own_wiring():
    """The review's defect: UGRNN cells in the RGC's layers (no activation, no residual) shrank conv10's output
    to ~1e-6 and gave every image the same logits, so the loss sat at ln(n_classes)."""
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(4)
    measured = {}
    for wiring in ({}, {"ugrnn": "base"}):  # published (the default), then the base's (the former behaviour)
        space = load_space({"base": "rgc_intermediate", "cells": {"ugrnn": {"filter_size": 3}}, "wiring": wiring})
        torch.manual_seed(0)
        spec = space.spec(space.sample(_trial(space, "ugrnn")))
        model = convrnn.create_model(spec.to_dict(), width_multiplier=0.125, num_classes=4)
        with torch.no_grad():
            out = model(x, record=["conv10"])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        losses = []
        for _ in range(5):
            loss = torch.nn.functional.cross_entropy(model(x).logits[-1], labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        measured[space.wiring_models["ugrnn"]] = (out.recorded["conv10"][-1].std().item(),
                                                  out.logits[-1].std(0).mean().item(), losses)
    sd, spread, losses = measured["ugrnn_intermediate"]
    assert 0.2 < sd < 5 and spread > 1e-3  # measured 0.55 and 8.5e-3
    assert losses[-1] < losses[0] - 0.05  # measured 1.389 -> 1.280
    sd, spread, losses = measured["base"]
    assert sd < 1e-4 and spread < 1e-6  # measured 1.4e-6 and 2.4e-8
    assert losses == pytest.approx([math.log(4)] * 5, abs=1e-4)


def test_sampling_is_seeded_and_replayable(tiny):
    space = load_space(tiny / "tiny_space.yaml")

    def draws(seed):
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        out = []
        for _ in range(4):
            trial = study.ask()
            out.append(space.sample(trial))
            study.tell(trial, 0.0)
        return out, study

    first, study = draws(7)
    assert draws(7)[0] == first and draws(8)[0] != first
    for config, trial in zip(first, study.trials):  # a finished trial's params give back its configuration
        assert space.config_from_params(trial.params) == config


def _run_study(space, storage, name, n_trials, seed=0):
    """``n_trials`` trials in a freshly opened study object (as a new process would open it), each scored by a
    fixed function of its configuration; returns the study's params in trial order."""
    study = open_study(name, storage, seed=seed, pruner="none")
    for _ in range(n_trials):
        trial = study.ask()
        config = space.sample(trial)
        score = config["train"]["weight_decay"] * 1e3 + (config["cell"]["kind"] == "rgc") + len(config["feedback"])
        study.tell(trial, score)
    return [t.params for t in study.trials]


def test_a_resumed_study_continues_the_seeded_sequence_without_repeating_it(tiny, tmp_path):
    """The review's defect: TPESampler(seed) restarts its random state in every process, so a study run again with
    the same seed drew its first start-up configurations again (resumed trials 3, 4 = trials 0, 1)."""
    space = load_space(tiny / "tiny_space.yaml")
    storage = make_storage(f"sqlite:///{tmp_path / 's.sqlite'}", heartbeat_interval=None)
    whole = _run_study(space, storage, "whole", 8)
    _run_study(space, storage, "resumed", 3)
    _run_study(space, storage, "resumed", 2)
    resumed = _run_study(space, storage, "resumed", 3)
    assert resumed == whole  # the same sequence as one uninterrupted run: nothing lost or repeated
    assert all(whole[i] != whole[j] for i in range(8) for j in range(i))
    assert _run_study(space, storage, "other_seed", 3, seed=1) != whole[:3]


def test_a_trial_records_the_input_to_cell_its_rgc_is_built_with():
    """The review's defect: input_to_cell False without cell_residual (a cell without input) was drawn, recorded in
    the trial's params and built as True, so TPE credited False with True's score; it is now drawn only when the
    residual gives the cell an input."""
    space = load_space("rgc_intermediate")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        cell = space.sample(trial)["cell"]
        if cell["kind"] == "rgc":
            assert cell["input_to_cell"] == trial.params.get("rgc.input_to_cell", True)
            assert cell["input_to_cell"] or cell["cell_residual"]
            assert ("rgc.input_to_cell" in trial.params) == cell["cell_residual"]
            assert space.config_from_params(trial.params)["cell"] == cell
            seen.add((cell["cell_residual"], cell["input_to_cell"]))
    assert seen == {(False, True), (True, True), (True, False)}


@pytest.mark.parametrize("patch, message", [
    ({"cells": {"rgc": {"tau_bias": {"float": [3.0, -3.0]}}}}, "cells.rgc.tau_bias: 'float' needs low < high"),
    ({"cells": {"rgc": {"tau_bais": 1.0}}}, "unknown hyperparameter ['tau_bais'] for cell 'rgc'"),
    ({"cells": {"rgc": {"gate_nonlinearity": {"choice": ["sigmoid", "softplus"]}}}}, "value 'softplus' is not accepted"),
    ({"cells": {"lstmx": {}}}, "unknown cell kind 'lstmx'"),
    ({"cells": {"rgc": {"tau_multiplier": {"tied": "tau_ofset"}}}}, "'tied' must name a numeric, untied hyperparameter"),
    # the RGC's cell needs an input: a trial drawing cell_residual false was built with input_to_cell true, silently
    # against the space's fixed false
    ({"cells": {"rgc": {"input_to_cell": False, "cell_residual": {"choice": [True, False]}}}},
     "cells.rgc.input_to_cell: false needs cell_residual: true"),
    ({"cells": {"rgc": {"input_to_cell": False}}}, "cells.rgc.input_to_cell: false needs cell_residual: true"),
    ({"cells": {"rgc": {"tau_multiplier": {"tied": "tau_offset", "scale": "minus"}}}}, "expected {tied: OTHER"),
    ({"train": {"lr": {"tied": "weight_decay"}}}, "'tied' links hyperparameters of one cell, not training ones"),
    ({"cells": {"rgc": {"tau_bias": {"float": [0, 1], "lo": 2}}}}, "expected a value or one of"),
    ({"feedback": {"candidates": ["conv2->conv3"]}}, "must go from a higher layer to a lower one"),
    ({"feedback": {"candidates": ["conv9->conv2"]}}, "names 'conv9', not a layer"),
    ({"feedback": {"candidates": ["conv3->conv2"], "fixed": ["conv3->conv2"]}}, "listed twice"),
    ({"cell_layers": ["conv7"]}, "cell_layers names 'conv7'"),
    ({"train": {"batch": 3}}, "keys among lr, weight_decay"),
    # accepted, then each trial failed: "--lr must be > 0" of an option not given, or a TypeError traceback
    ({"train": {"lr": -0.5}}, "train.lr: expected numbers > 0 (a value, a choice of them or a range), got -0.5"),
    ({"train": {"lr": "abc"}}, "train.lr: expected numbers > 0 (a value, a choice of them or a range), got 'abc'"),
    ({"train": {"momentum": {"choice": [0.9, "high"]}}}, "train.momentum: expected numbers >= 0 (a value, a choice of "
                                                         "them or a range), got 'high'"),
    ({"train": {"label_smoothing": {"float": [0.0, 1.5]}}}, "train.label_smoothing: expected numbers in [0, 1]"),
    ({"feedback": {"fixed": "conv3->conv2"}}, "feedback.fixed must be a list of edges, got 'conv3->conv2'"),
    ({"cell_layers": "conv2"}, "field 'cell_layers' must be a non-empty list of layer names, got 'conv2'"),
    ({"cells": {"rgc": {"cell_depth": {"int": [4, 8], "step": 3}}}}, "'step' 3 does not divide [4, 8]"),
    # accepted, then optuna's ValueError at the first draw: a FAIL trial in the study and a traceback
    ({"cells": {"rgc": {"cell_depth": {"int": [2, 8], "step": 2, "log": True}}}},
     "cells.rgc.cell_depth: 'step' 2 with 'log: true': a log range is drawn in steps of 1 only"),
    ({"name": ["x"]}, "field 'name' must be a string, got ['x']"),
    ({"cells": {"rgc": {"weight_decay": 1e-4}}, "wiring": {"rgc": "rgc_intermediate"}},
     "cells.rgc.weight_decay and train.weight_decay"),
    ({"base": "no_such_model"}, "field 'base': unknown model 'no_such_model'; expected a registered model or an "
                                "existing spec file (known: "),
    # the registries' one refusal (datasets.registry.lookup): a misspelt name had no close names
    ({"base": "rgc_shalow"}, "field 'base': unknown model 'rgc_shalow'; expected a registered model or an existing "
                             "spec file; did you mean rgc_shallow"),
    ({"colour": 1}, "unknown field ['colour']"),
    # said "spec 'tiny': unknown override(s)" without the space file or its field
    ({"overrides": {"colour": 1}}, "field 'overrides': spec 'tiny4': unknown override ['colour']"),
    ({"wiring": {"lstm": "ugrnn_intermediate"}}, "wiring names cell 'lstm', not among the space's cells"),
    ({"wiring": {"rgc": "no_such_model"}}, "'wiring: {rgc: no_such_model}': unknown model 'no_such_model'; expected a "
                                           "registered model or 'base' (known: base, "),
    ({"wiring": {"rgc": "feedforward_intermediate"}}, "has no recurrent layer to take the wiring from"),
    ({"wiring": {"rgc": "rgc_shallow", "timedecay": "base"}}, "rgc_shallow' has no layer 'conv2' wired for 'rgc'"),
])
def test_invalid_spaces_fail_with_the_field_named(tiny, patch, message):
    data = {**TINY_SPACE, **patch}
    path = tiny / "bad_space.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as info:
        SearchSpace.from_yaml(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_median_pruner_stops_a_trial_below_the_running_median():
    study = open_study("prune", optuna.storages.InMemoryStorage(), seed=0, pruner="median")
    for curve in ([50, 60, 70], [52, 62, 72]):  # two start-up trials
        trial = study.ask()
        for epoch, value in enumerate(curve):
            trial.report(value, epoch)
        study.tell(trial, curve[-1])
    good, bad = study.ask(), study.ask()
    good.report(55, 0)
    bad.report(10, 0)
    assert not good.should_prune() and bad.should_prune()
    assert isinstance(make_pruner("halving"), optuna.pruners.SuccessiveHalvingPruner)
    assert split_trials(7, 3) == [3, 2, 2] and sum(split_trials(5, 8)) == 5


# ---------------------------------------------------------------------------- zoo search
@pytest.mark.parametrize("url, workers, message", [  # libpq's own words vary with its version: only their start
    ("postgresql+psycopg2://alice:s3cret@127.0.0.1:1/search", "1",
     "--storage 'postgresql+psycopg2://alice:***@127.0.0.1:1/search': cannot open the database: "),
    ("postgresql+psycopg2://alice:s3cret@127.0.0.1:1/search", "2",
     "--storage 'postgresql+psycopg2://alice:***@127.0.0.1:1/search': cannot open the database: "),
    ("sqlite:////nonexistent-folder/search.sqlite", "1",
     "--storage 'sqlite:////nonexistent-folder/search.sqlite': cannot open the database: unable to open database file"),
])
def test_zoo_search_refuses_a_storage_it_cannot_open_before_printing_anything(tiny, tmp_path, capsys, url, workers,
                                                                              message):
    """The search space's summary and the study line (naming the storage) were printed before the storage was
    opened, so the one-line refusal came after a screenful that read as if the search had started."""
    from neurozoo.leaderboard.cli import main

    argv = search_argv(tiny, tmp_path / "run", 1, "--workers", workers, storage=url)
    argv.remove("--quiet")  # the summary is printed without --quiet only
    assert main(["search", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"zoo search: error: {message}") and err.count("\n") == 1, err
    assert "s3cret" not in err and (url.startswith("postgresql") or err == f"zoo search: error: {message}\n")
    assert not (tmp_path / "run" / "tiny").exists()  # no trial folder


def test_zoo_search_says_the_width_size_and_epochs_its_trials_train_at(tiny, tmp_path, capsys):
    """--width defaults to 0.25: a user's own base spec (16 and 32 channels) trained at 4 and 8, and neither the
    help nor the printed study line said so (the exported spec's description was the first place it showed)."""
    from neurozoo.leaderboard.cli import main

    argv = [a for a in search_argv(tiny, tmp_path / "run", 0, "--export", "0", "--no-record") if a != "--quiet"]
    del argv[argv.index("--width"):argv.index("--width") + 2]  # the default
    assert main(["search", *argv]) == 0
    assert "0 trials over 1 worker; each at width 0.25, 32 px, 1 epoch" in capsys.readouterr().out


def test_zoo_search_exports_the_trained_models_with_provenance_and_records_scores(tiny, tmp_path):
    """The exported spec is the trained model (the review's defect: it was the configuration at width 1, 5197
    parameters for a trial trained at width 0.5 with 1385, so the trial's weights did not fit it)."""
    import json

    from neurozoo.benchmarks.records import ResultsStore
    from neurozoo.leaderboard.cli import main

    out = tmp_path / "run"
    results = f"sqlite:///{tmp_path / 'results.sqlite'}"
    argv = search_argv(tiny, out, 3, "--export", "2", "--results", results)
    argv[argv.index("--width") + 1] = "0.5"
    assert main(["search", *argv, "--n-steps", "5"]) == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}")
    assert [t.number for t in study.trials] == [0, 1, 2]
    # one epoch each: a trial is never pruned after its last epoch (trial 2, below the median, used to be)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert all(len(t.intermediate_values) == 1 for t in study.trials)  # val top-1 reported per epoch
    ranked = sorted([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE],
                    key=lambda t: (-t.value, t.number))
    assert [Path(t.user_attrs["out"]) for t in study.trials] == [out / "tiny" / f"trial_{n:05d}" for n in range(3)]
    assert (out / "tiny_history.png").read_bytes()[:4] == b"\x89PNG"  # the search history figure

    best, trial = out / "tiny_best1.yaml", ranked[0]
    model = convrnn.create_model(str(best))  # no overrides: the spec alone is the trained model
    spec = model.spec
    assert spec.name == "tiny_best1" and f"trial {trial.number}" in spec.description
    assert (spec.n_steps, spec.num_classes, spec.layer("conv2").channels) == (5, 3, 4)
    assert sum(p.numel() for p in model.parameters()) == trial.user_attrs["parameters"]
    config = trial.user_attrs["config"]
    assert spec.layer("conv2").cell["kind"] == config["cell"]["kind"]
    assert [[e.source, e.target] for e in spec.feedback] == config["feedback"]
    # the trial's checkpoint loads as it is, and gives the outputs of the model the trainer built
    weights = torch.load(Path(trial.user_attrs["out"]) / "best.pth", map_location="cpu", weights_only=False)["model"]
    model.load_state_dict(weights)
    trained = convrnn.create_model(str(Path(trial.user_attrs["out"]) / "spec.yaml"), width_multiplier=0.5, n_steps=5,
                                   num_classes=3)
    trained.load_state_dict(weights)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x).logits, trained(x).logits) and model(x).logits.shape == (5, 2, 3)
    provenance = json.loads((out / "tiny_best1.json").read_text())
    assert provenance["trial"] == trial.number and provenance["val_top1"] == trial.value
    assert provenance["model_overrides"] == {"width_multiplier": 0.5, "n_steps": 5, "num_classes": 3}
    assert provenance["config"] == config and provenance["sampler_seed"] == 0
    assert provenance["training"]["seed"] == 0 and provenance["training"]["image_size"] == 32
    assert provenance["trial_code_version"] and provenance["exported_by"]
    assert Path(provenance["weights"]) == (Path(trial.user_attrs["out"]) / "best.pth").resolve()
    assert (out / "tiny_best2.yaml").exists() and (out / "tiny_best2.json").exists()
    # the weights scored and the space drawn from by checksum, not by path alone (both could change under the name)
    from neurozoo.datasets.provenance import sha256_file

    space_sha256 = load_space(str(tiny / "tiny_space.yaml")).digest
    assert provenance["weights_sha256"] == sha256_file(provenance["weights"])
    assert provenance["space_sha256"] == space_sha256

    frame = ResultsStore(results).query(benchmark="search.val_top1")
    assert list(frame.model) == ["tiny_best1", "tiny_best2"]
    assert frame.value.tolist() == pytest.approx([ranked[0].value / 100, ranked[1].value / 100])
    row = frame.iloc[0]
    assert len(row.data_sha256) == 64 and row.seed == 0 and row.code_version
    assert row.settings["trial"] == ranked[0].number and row.settings["training"]["image_size"] == 32
    assert row.settings["config"] == config and row.settings["model_overrides"]["width_multiplier"] == 0.5
    assert row.settings["weights_sha256"] == provenance["weights_sha256"]
    assert row.settings["space_sha256"] == space_sha256
    assert row.settings["train_files_sha256"] == json.loads((Path(trial.user_attrs["out"]) / "run.json").read_text())[
        "train_files_sha256"]


def test_a_later_export_records_how_the_trial_was_trained_not_the_exporting_commands_options(tiny, tmp_path):
    """The review's defect: the search.val_top1 record took its training settings, seed, code version and data
    checksum from the command that exported it, so `zoo search --trials 0 --export 1` (export only, without every
    option of the search repeated) recorded width 0.5, 7 epochs and seed 0 for a trial trained at width 1, 1 epoch,
    seed 3 (and its .json provenance beside the spec said the truth)."""
    from neurozoo.benchmarks.records import ResultsStore
    from neurozoo.leaderboard.cli import main

    out, results = tmp_path / "run", f"sqlite:///{tmp_path / 'results.sqlite'}"
    assert main(["search", *search_argv(tiny, out, 2, "--export", "0", "--no-record", "--seed", "3")]) == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}")
    for trial in study.trials:  # as if trained on another machine: the record must say that machine's versions
        run_json = Path(trial.user_attrs["out"]) / "run.json"
        run = json.loads(run_json.read_text())
        run_json.write_text(json.dumps({**run, "environment": {**run["environment"], "torch_threads": 97}}))
    argv = search_argv(tiny, out, 0, "--export", "2", "--results", results)
    argv[argv.index("--width") + 1], argv[argv.index("--epochs") + 1] = "0.5", "7"
    assert main(["search", *argv]) == 0
    rows = ResultsStore(results).query(benchmark="search.val_top1")
    assert sorted(rows.settings.map(lambda settings: settings["trial"])) == [0, 1]
    for _, row in rows.iterrows():
        trial = study.trials[row.settings["trial"]]
        run = json.loads((Path(trial.user_attrs["out"]) / "run.json").read_text())
        seed = 3  # the exporting command's is 0 (a study continued with another seed is refused)
        assert row.settings["training"] == run["config"]
        assert (run["config"]["epochs"], run["config"]["seed"], run["config"]["overrides"]["width_multiplier"]) == (
            1, seed, 1.0)
        assert row.seed == seed and row.data_sha256 == run["val_files_sha256"] and row.device == run["device"]
        assert (row.code_version, row.git_commit) == (run["code_version"], run["git_commit"])
        assert row.settings["environment"] == run["environment"] and run["environment"]["torch_threads"] == 97
        provenance = json.loads((out / f"{row.model}.json").read_text())
        assert provenance["training"] == row.settings["training"] and provenance["trial"] == trial.number
        assert provenance["sampler_seed"] == seed


def test_a_rerun_that_finds_the_same_best_trial_stores_no_second_record_of_it(tiny, tmp_path, capsys):
    """Each rerun of a finished study (--trials 0, or a continued one whose new trials are worse) added another
    search.val_top1 record of the same best trial: one record per trial and score, as zoo run reuses its own."""
    from neurozoo.benchmarks.records import ResultsStore
    from neurozoo.leaderboard.cli import main

    out, results = tmp_path / "run", f"sqlite:///{tmp_path / 'results.sqlite'}"
    argv = search_argv(tiny, out, 1, "--results", results)
    assert main(["search", *argv]) == 0
    (first,) = ResultsStore(results).records(benchmark="search.val_top1")
    argv[argv.index("--trials") + 1] = "0"
    argv.remove("--quiet")
    capsys.readouterr()
    assert main(["search", *argv]) == 0
    assert [r.id for r in ResultsStore(results).records(benchmark="search.val_top1")] == [first.id]
    assert (f"stored before with identical settings, data, code and score: tiny_best1 (search.val_top1): record "
            f"{first.id} in {results}; not stored again\n") in capsys.readouterr().out  # which store: none was named
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}")
    study.add_trial(optuna.trial.create_trial(params=study.trials[0].params, distributions=study.trials[0].distributions,
                                              value=study.trials[0].value + 1, user_attrs=study.trials[0].user_attrs))
    assert main(["search", *argv]) == 0  # another best trial: recorded
    rows = ResultsStore(results).records(benchmark="search.val_top1")
    assert [r.settings["trial"] for r in rows] == [0, 1] and rows[1].raw == first.raw + 1


def test_an_exported_trial_says_what_its_data_checksums_cover_also_for_a_run_json_of_before_the_kinds():
    """A trial's run.json without files_checksum (before 2026-12-05) hashed the paths and labels only: its export says
    "names", not nothing (which read as this version's sizes); a run.json without checksums has no kind."""
    from neurozoo.convrnn.search.export import files_checksum_kind

    assert files_checksum_kind({"train_files_sha256": "a" * 64}) == "names"
    assert files_checksum_kind({"train_files_sha256": "a" * 64, "files_checksum": "contents"}) == "contents"
    assert files_checksum_kind({}) is None


def test_an_export_on_another_machine_records_the_trials_own_provenance(tiny, tmp_path, capsys):
    """A study shared through PostgreSQL: a trial run on machine B keeps its run.json on B, and the export at the end of
    a command on machine A recorded A's seed, training settings, code version and device for it (the fallback for a
    lost run.json). The study now holds what the record takes from run.json."""
    import shutil

    from neurozoo.benchmarks.records import ResultsStore
    from neurozoo.leaderboard.cli import main

    out, results = tmp_path / "run", f"sqlite:///{tmp_path / 'results.sqlite'}"
    assert main(["search", *search_argv(tiny, out, 1, "--export", "0", "--no-record", "--seed", "3")]) == 0
    (trial,) = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials
    run_json = Path(trial.user_attrs["out"]) / "run.json"
    run = json.loads(run_json.read_text())
    shutil.rmtree(run_json.parent)  # machine A has no folder of machine B's trial
    argv = search_argv(tiny, out, 0, "--export", "1", "--results", results, "--seed", "0")
    argv[argv.index("--width") + 1] = "0.5"
    argv.remove("--quiet")
    capsys.readouterr()
    assert main(["search", *argv]) == 0
    (_, row), = ResultsStore(results).query(benchmark="search.val_top1").iterrows()
    # "1 score(s)" before; then no store named (--results, or the default one)
    assert f"\nstored 1 score as {row.model} (search.val_top1): record {row.id} in {results}\n" in capsys.readouterr().out
    assert row.settings["training"] == run["config"]  # not the exporting command's: width 0.5, seed 0
    assert (row.seed, run["config"]["seed"], row.settings["training"]["overrides"]["width_multiplier"]) == (3, 3, 1.0)
    assert (row.code_version, row.git_commit, row.device) == (run["code_version"], run["git_commit"], run["device"])
    assert row.data_sha256 == run["val_files_sha256"] and row.settings["environment"] == run["environment"]
    assert row.settings["files_checksum"] == run["files_checksum"] == "sizes"  # what the data checksums cover
    provenance = json.loads((out / "tiny_best1.json").read_text())
    assert provenance["training"] == run["config"] and provenance["sampler_seed"] == 3
    assert provenance["files_checksum"] == "sizes" and provenance["train_files_sha256"] == run["train_files_sha256"]
    assert provenance["trial_code_version"] == run["code_version"] and provenance["weights"] is None


def test_a_second_study_in_the_same_out_folder_keeps_its_trials_apart(tiny, tmp_path):
    """The review's defect: trial folders were OUT/trial_<n> for every study, so a second study's trial 0 wrote
    its spec and config over the first study's, then stopped on the first study's checkpoint (exit 2)."""
    from neurozoo.leaderboard.cli import main

    out = tmp_path / "run"
    for study in ("first", "second"):
        assert main(["search", *search_argv(tiny, out, 1, "--export", "1", "--no-record", study=study)]) == 0
    storage = f"sqlite:///{out / 'search.sqlite'}"
    trials = [optuna.load_study(study_name=study, storage=storage).trials[0] for study in ("first", "second")]
    for study, trial in zip(("first", "second"), trials):
        folder = out / study / "trial_00000"
        assert trial.state == optuna.trial.TrialState.COMPLETE and trial.user_attrs["out"] == str(folder)
        assert json.loads((folder / "config.json").read_text()) == trial.user_attrs["config"]
    # the same seed gives the same configuration and the same score
    assert trials[0].params == trials[1].params and trials[0].value == trials[1].value
    # the study's space, not another one: its trials' configurations belong to it
    other = tmp_path / "other_space.yaml"
    other.write_text(yaml.safe_dump({**TINY_SPACE, "name": "other", "base": str(tiny / "tiny_base.yaml")}))
    argv = search_argv(tiny, out, 1, "--export", "1", "--no-record", study="first")
    argv[argv.index("--space") + 1] = str(other)
    assert main(["search", *argv]) == 2
    assert len(optuna.load_study(study_name="first", storage=storage).trials) == 1
    # a trial folder left by a deleted study of the same name is refused before anything is written over it
    optuna.delete_study(study_name="first", storage=storage)
    before = (out / "first" / "trial_00000" / "config.json").read_text()
    assert main(["search", *search_argv(tiny, out, 1, "--export", "0", "--no-record", study="first")]) == 2
    assert (out / "first" / "trial_00000" / "config.json").read_text() == before


def test_a_full_disk_while_a_trial_writes_its_config_tears_no_file_and_the_study_goes_on(tiny, tmp_path, monkeypatch):
    """A trial's config.json was written in place: a kill or a full disk mid-write left half a JSON file in the trial
    folder beside its spec. It is renamed into place whole now (datasets.json_files.write_json): the interrupted
    trial's folder holds no config.json and no temporary, the trial is FAIL, and the rerun's next trial completes."""
    from full_disk import files_limited_to

    from neurozoo.convrnn.search.objective import TrialSettings
    from neurozoo.convrnn.search.study import run_worker

    space = load_space(tiny / "tiny_space.yaml")
    out, url = tmp_path / "run", f"sqlite:///{tmp_path / 'search.sqlite'}"
    settings = TrialSettings(data=str(tiny / "data"), out=str(out), epochs=1, batch_size=6, image_size=32,
                             width_multiplier=1.0, max_steps_per_epoch=1)
    real = {name: getattr(Path, name) for name in ("write_text", "write_bytes")}

    def half_written(name):  # the config's write (either writer) runs out of disk half-way; other files are unlimited
        def write(path, data, *args, **kwargs):
            if not path.name.startswith("config.json"):
                return real[name](path, data, *args, **kwargs)
            with files_limited_to(len(data) // 2):
                return real[name](path, data, *args, **kwargs)
        return write

    for name in real:
        monkeypatch.setattr(Path, name, half_written(name))
    with pytest.raises(OSError):
        run_worker(space, settings, url, "tiny", 1, heartbeat_interval=None)
    monkeypatch.undo()
    folder = out / "tiny" / "trial_00000"
    assert sorted(p.name for p in folder.iterdir()) == ["spec.yaml"]  # no torn config.json, no temporary beside it
    study = run_worker(space, settings, url, "tiny", 1, heartbeat_interval=None)
    failed, done = study.trials
    assert (failed.state, done.state) == (optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE)
    assert json.loads((out / "tiny" / "trial_00001" / "config.json").read_text()) == done.user_attrs["config"]


def test_an_edited_copy_of_the_space_under_its_name_is_refused_by_the_study(tiny, tmp_path, capsys):
    """The review's defect: the study recorded only the space's name, so an edited copy of the space file under the
    same name joined a study whose trials were drawn from the other content."""
    from neurozoo.convrnn.search.study import record_space
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.leaderboard.cli import main

    out, edited = tmp_path / "run", tmp_path / "edited" / "tiny_space.yaml"
    edited.parent.mkdir()
    edited.write_text(yaml.safe_dump({**TINY_SPACE, "base": str(tiny / "tiny_base.yaml"),
                                      "train": {"weight_decay": {"float": [1e-4, 1e-2], "log": True}}}))
    moved = tmp_path / "moved.yaml"  # the same content elsewhere, its base given by another path: the same space
    moved.write_text(yaml.safe_dump({**TINY_SPACE, "base": str(tiny / "tiny_base.yaml"), "description": "moved"}))
    assert load_space(moved).digest == load_space(tiny / "tiny_space.yaml").digest != load_space(edited).digest
    assert main(["search", *search_argv(tiny, out, 0, "--export", "0", "--no-record")]) == 0
    storage = f"sqlite:///{out / 'search.sqlite'}"
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert study.user_attrs["space_sha256"] == load_space(tiny / "tiny_space.yaml").digest
    argv = search_argv(tiny, out, 0, "--export", "0", "--no-record")
    argv[argv.index("--space") + 1] = str(edited)
    capsys.readouterr()
    assert main(["search", *argv]) == 2
    error = capsys.readouterr().err
    for part in (str(tiny / "tiny_space.yaml"), str(edited), load_space(edited).digest[:16],
                 study.user_attrs["space_sha256"][:16], "--study NEW_NAME"):
        assert part in error
    argv[argv.index("--space") + 1] = str(moved)
    assert main(["search", *argv]) == 0
    # a study of before the digest: accepted, and the digest of the space it is run with recorded
    old = open_study("old", make_storage(storage, None), seed=0, pruner="none")
    old.set_user_attr("space", "tiny")
    old.enqueue_trial({})
    old.tell(old.ask(), 1.0)
    with pytest.warns(UserWarning, match="started before space contents were recorded"):
        record_space(old, load_space(tiny / "tiny_space.yaml"))
    with pytest.raises(UserFacingError, match="same name with other content"):
        record_space(optuna.load_study(study_name="old", storage=storage), load_space(edited))


def test_the_file_of_a_space_built_from_a_mapping_is_none_not_a_path_in_the_current_folder(tiny, tmp_path,
                                                                                             monkeypatch):
    """The review's defect: an exported spec's provenance resolved the label "<space>" of a space built from a
    mapping against the current folder (``/cwd/<space>``), as if it had been read from there."""
    from neurozoo.convrnn.search.export import export_specs, score_records
    from neurozoo.convrnn.search.objective import TrialSettings

    monkeypatch.chdir(tmp_path)
    from_file = load_space(tiny / "tiny_space.yaml")
    for space, expected in ((load_space({**TINY_SPACE, "base": str(tiny / "tiny_base.yaml")}), None),
                            (from_file, str((tiny / "tiny_space.yaml").resolve()))):
        assert space.path == expected
        study = optuna.create_study(study_name=f"s{expected is None}", direction="maximize")
        trial = study.ask()
        trial.set_user_attr("config", space.sample(trial))
        trial.set_user_attr("model_overrides", {})
        study.tell(trial, 50.0)
        export_specs(study, space, tmp_path / "out")
        provenance = json.loads((tmp_path / "out" / f"{study.study_name}_best1.json").read_text())
        assert provenance["space_file"] == expected
        assert score_records(study, space, TrialSettings(data="d"))[0]["settings"]["space_file"] == expected


EXPORT_ONE = """
import resource, signal, sys
import optuna
from neurozoo.convrnn.search import load_space
from neurozoo.convrnn.search.export import export_specs

space = load_space(sys.argv[1])
study = optuna.create_study(study_name="tiny", direction="maximize", sampler=optuna.samplers.RandomSampler(int(sys.argv[3])))
trial = study.ask()
trial.set_user_attr("config", space.sample(trial))
trial.set_user_attr("model_overrides", {})
study.tell(trial, 50.0)
if len(sys.argv) > 4:  # files may grow to this many bytes: the process is killed (SIGXFSZ) by a write beyond
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it (the write would raise instead)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[4]), resource.RLIM_INFINITY))
export_specs(study, space, sys.argv[2])
"""


def test_an_export_killed_mid_write_leaves_the_previous_spec_whole(tiny, tmp_path, monkeypatch):
    """The review's defect: OUT/<study>_best<k>.yaml was written in place, so a process killed mid-write left a torn
    spec as the final file; it is now written to a temporary file renamed into place (``write_atomic``)."""
    def export(seed, *limit):
        return subprocess.run([sys.executable, "-c", EXPORT_ONE, str(tiny / "tiny_space.yaml"), str(tmp_path), str(seed),
                               *limit], capture_output=True, text=True)

    monkeypatch.setattr(sys, "argv", ["-c", str(tiny / "tiny_space.yaml"), str(tmp_path), "0"])
    exec(EXPORT_ONE, {})  # the first, whole export in this process: only the killed one needs a process of its own
    spec = tmp_path / "tiny_best1.yaml"
    before = spec.read_text()
    assert len(before) > 600 and convrnn.create_model(str(spec)) is not None
    killed = export(1, "512")
    assert killed.returncode == -signal.SIGXFSZ, killed.stderr
    assert spec.read_text() == before  # whole: the previous spec (it was cut at 512 bytes)
    assert [p.stat().st_size for p in tmp_path.glob("tiny_best1.yaml.tmp*")] == [512]  # what the kill left


def test_a_searched_cell_weight_decay_takes_effect(tiny, tmp_path):
    """The review's defect: the RGC's weight_decay (one of the 38, the original's L2 on the cell's kernels) was
    drawn but trials trained with the global --weight-decay, so two trials differing only in it ended with the
    same weights, bit for bit. Trials of a space that sets a cell's weight_decay now train with the per-part L2."""
    from neurozoo.convrnn.search import Objective, TrialSettings
    from neurozoo.leaderboard.cli import main

    space = load_space({**TINY_SPACE, "base": str(tiny / "tiny_base.yaml"), "train": {},
                        "cells": {"rgc": {"weight_decay": {"choice": [0.0, 0.5]}}}, "wiring": {"rgc": "rgc_intermediate"}})
    assert space.cell_weight_decay and load_space("rgc_intermediate").cell_weight_decay
    settings = TrialSettings(data=str(tiny / "data"), out=str(tmp_path / "run"), epochs=1, batch_size=6,
                             image_size=32, width_multiplier=1.0)
    study = optuna.create_study(direction="maximize")
    for decay in (0.0, 0.5):
        study.enqueue_trial({"rgc.weight_decay": decay, "fb.conv3->conv2": False})
    study.optimize(Objective(space, settings), n_trials=2)

    def cell_norm(trial):
        state = torch.load(Path(trial.user_attrs["out"]) / "last.pth", map_location="cpu", weights_only=False)
        return sum(v.norm() ** 2 for k, v in state["model"].items() if ".cell." in k and v.ndim == 4).sqrt().item()

    free, decayed = (cell_norm(t) for t in study.trials)
    assert decayed < 0.99 * free  # 3 SGD steps at lr 0.05 with L2 0.5: 16.18 against 17.47 (equal before)
    bad = tmp_path / "decay_adamw.yaml"
    bad.write_text(yaml.safe_dump({**TINY_SPACE, "base": str(tiny / "tiny_base.yaml"), "train": {},
                                   "cells": {"rgc": {"weight_decay": 1e-4}}, "wiring": {"rgc": "rgc_intermediate"}}))
    argv = search_argv(tiny, tmp_path / "run2", 1, "--optimizer", "adamw")
    argv[argv.index("--space") + 1] = str(bad)
    assert main(["search", *argv]) == 2 and not (tmp_path / "run2").exists()


def test_a_library_searchs_trials_record_the_device_auto_gives(tiny, tmp_path):
    """``TrialSettings``' default ``device="auto"`` went into every trial's TrainConfig as given, so a Python caller's
    trials recorded ``auto`` (run.json's config, the study's ``run`` attribute, an exported score's training
    settings), where zoo search's record the device (its --device is resolved first): the Trainer resolves it now."""
    from neurozoo.convrnn.search import Objective, TrialSettings
    from neurozoo.convrnn.search.export import score_records
    from neurozoo.convrnn.training.distributed import auto_device

    space = load_space(tiny / "tiny_space.yaml")
    settings = TrialSettings(data=str(tiny / "data"), out=str(tmp_path / "run"), epochs=1, batch_size=6,
                             image_size=32, width_multiplier=1.0, max_steps_per_epoch=1)
    assert settings.device == "auto"
    study = optuna.create_study(direction="maximize")
    study.optimize(Objective(space, settings), n_trials=1)
    trial, device = study.trials[0], auto_device("auto")
    run = json.loads((Path(trial.user_attrs["out"]) / "run.json").read_text())
    assert run["config"]["device"] == trial.user_attrs["run"]["config"]["device"] == device
    assert score_records(study, space, settings)[0]["settings"]["training"]["device"] == device

# ---------------------------------------------------------------------------- ground truth
# The image is shown at step 0 only and the answer is read at step 5: through the feedforward path alone the last
# readout sees only the grey that follows (conv1 -> conv2 -> conv3 -> readout takes 3 steps), so a model without
# memory answers every image alike and scores exactly chance, 100/3 %. Memory comes from a time-decay cell with
# decay 0.9 (not 0) or from the feedback loop conv3 -> conv2; with either, the colour classes are easy. Drawn at
# random, 5 configurations in 8 have memory (the space holds 6, 4 of them with memory).
MEMORY_BASE = {"name": "memory3", "n_steps": 6, "image_steps": 1, "layers": [
    {"name": "conv1", "channels": 8, "kernel": 3, "stride": 2, "pool": {"kernel": 2, "stride": 2}},
    {"name": "conv2", "channels": 8, "kernel": 3, "cell": {"kind": "identity"}},
    {"name": "conv3", "channels": 8, "kernel": 3, "stride": 2, "cell": {"kind": "identity"}}]}
MEMORY_SPACE = {"name": "memory", "base": MEMORY_BASE, "cell_layers": ["conv2", "conv3"],
                "cells": {"identity": {}, "timedecay": {"memory_decay": {"choice": [0.0, 0.9]}, "trainable": False}},
                "wiring": {"identity": "base", "timedecay": "base"}, "feedback": {"candidates": ["conv3->conv2"]}}
MEMORY_SEEDS, MEMORY_TRIALS, START_UP = 32, 15, 5  # START_UP: open_study's TPE n_startup_trials
# Of the 320 proposals TPE makes past its start-up trials in the 32 searches, at least 240 (75 %) have memory.
# Measured (2026-12-03): 280; and 264 to 286 for every order of the 4 memory configurations' scores, ties included
# (TPE reads the scores only through their order, and a CPU that flips a validation prediction can reorder them;
# the memory-less ones are at exactly chance, asserted). A sampler blind to the scores proposes memory 5 times in
# 8: 185 to 204 of 320 with optuna's RandomSampler over 6 sets of 32 seeds (200 expected, standard deviation 8.7).
MEMORY_PROPOSED_AT_LEAST = 240


def _has_memory(config):
    return bool(config["feedback"]) or (config["cell"]["kind"] == "timedecay" and config["cell"]["memory_decay"] > 0)


def _key(config) -> str:
    return json.dumps(config, sort_keys=True)


def test_the_search_finds_the_memory_a_task_needs_and_scores_ablations_at_chance(tmp_path):
    """Ground truth: a task that only models with memory can solve. The objective must score the ablated
    configurations (no feedback edge, decay 0) at exactly chance and their intact twins far above it, and TPE,
    past its start-up trials, must propose memory far more often than a search blind to the scores (5 in 8), over
    32 searches: one search's last 5 proposals were asserted to hold 4 with memory, and held exactly 4, so a CPU that
    flipped a validation prediction (reordering two scores) could fail it."""
    from neurozoo.convrnn.search import TrialSettings, export_specs, run_worker
    from neurozoo.convrnn.search.objective import Objective
    from neurozoo.convrnn.training.synthetic import write_image_folder

    data = write_image_folder(tmp_path / "data", n_classes=3, per_class=8, size=16, val_per_class=4)
    space = load_space(MEMORY_SPACE)
    settings = TrialSettings(data=str(data), out=str(tmp_path / "run"), epochs=6, batch_size=6, lr=0.05,
                             image_size=16, width_multiplier=1.0)
    url = f"sqlite:///{tmp_path / 'memory.sqlite'}"
    study = open_study("memory", make_storage(url, heartbeat_interval=None), seed=0, pruner="none")
    pairs = [({"cell": "identity", "fb.conv3->conv2": True}, {"cell": "identity", "fb.conv3->conv2": False}),
             ({"cell": "timedecay", "timedecay.memory_decay": 0.9, "fb.conv3->conv2": False},
              {"cell": "timedecay", "timedecay.memory_decay": 0.0, "fb.conv3->conv2": False})]
    for intact, ablated in pairs:
        study.enqueue_trial(intact)
        study.enqueue_trial(ablated)
    study = run_worker(space, settings, url, "memory", 4, seed=0, pruner="none", heartbeat_interval=None)
    trials = study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    values = [t.value for t in trials]
    # the objective: ablated twins at exactly chance, intact ones far above (measured 91.7, 100)
    assert values[1] == values[3] == pytest.approx(100 / 3, abs=1e-9)
    assert values[0] >= 75 and values[2] >= 75
    exported = convrnn.create_model(str(export_specs(study, space, tmp_path / "run")[0])).spec
    assert exported.feedback or exported.layer("conv2").cell == {"kind": "timedecay", "memory_decay": 0.9,
                                                                 "trainable": False}

    # The search, over many seeds: each configuration is trained once, on its first proposal (the objective's
    # training is seeded by the settings alone, so training it again gives its score again).
    scores, train = {_key(t.user_attrs["config"]): t.value for t in trials}, Objective(space, settings)

    def objective(trial):
        config = space.sample(trial)
        if _key(config) not in scores:
            scores[_key(config)] = train(trial)
        trial.set_user_attr("config", config)
        return scores[_key(config)]

    proposed = []
    for seed in range(MEMORY_SEEDS):
        search = open_study(f"memory-{seed}", optuna.storages.InMemoryStorage(), seed=seed, pruner="none")
        search.optimize(objective, n_trials=MEMORY_TRIALS)
        assert _has_memory(search.best_trial.user_attrs["config"]) and search.best_value >= 90
        proposed += [_has_memory(t.user_attrs["config"]) for t in search.trials[START_UP:]]
    memory = {key: _has_memory(json.loads(key)) for key in scores}
    assert len(scores) == 6 and all(v == pytest.approx(100 / 3, abs=1e-9) for k, v in scores.items() if not memory[k])
    assert all(v >= 60 for k, v in scores.items() if memory[k])  # measured 91.7 to 100
    assert sum(proposed) >= MEMORY_PROPOSED_AT_LEAST, f"{sum(proposed)} of {len(proposed)} proposals with memory"


def _shared_storage(tmp_path, request):
    """The PostgreSQL scratch database when NEUROZOO_TEST_POSTGRES_URL names one (in a schema of this test's own,
    conftest postgres_url), else a SQLite file: the same code path (optuna RDB storage); only PostgreSQL spans
    machines."""
    return request.getfixturevalue("postgres_url") or f"sqlite:///{tmp_path / 'shared.sqlite'}"


def _study_name(request):
    return f"{request.node.name[5:20]}_{os.getpid()}_{int(time.time() * 1000) % 10**9}"


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _in_worker_environment(monkeypatch, tmp_path):
    """What a command run as ``python -m neurozoo.convrnn.search.cli`` with ``_env()`` in ``tmp_path`` sees, for a
    command run in this process (the worker processes it starts inherit it): no interpreter and torch to start."""
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    monkeypatch.chdir(tmp_path)


def test_two_workers_split_one_study_without_duplicates(tiny, tmp_path, request, monkeypatch, capfd):
    """... and receive the storage URL in their environment: on their command line, ``ps`` showed its password to
    every user of the machine. No password is printed either."""
    from sqlalchemy.engine import make_url

    from neurozoo.convrnn.search.cli import main

    url, name = _shared_storage(tmp_path, request), _study_name(request)
    # no pruner: whether a trial is pruned depends on which of the two workers reports first
    argv = search_argv(tiny, tmp_path / "run", 4, "--workers", "2", "--export", "1", "--no-record", "--pruner", "none",
                       storage=url, study=name)
    argv.remove("--quiet")  # the progress lines too, where the storage is named
    _in_worker_environment(monkeypatch, tmp_path)
    started, popen = [], subprocess.Popen

    def spy(args, **kwargs):
        started.append((list(args), kwargs.get("env")))
        return popen(args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    assert main(argv) == 0  # it starts the two worker processes
    workers = [(args, env) for args, env in started if "neurozoo.convrnn.search.cli" in args]
    assert len(workers) == 2
    for args, env in workers:
        assert "--storage" not in args and not any(url in a for a in args)
        assert env["NEUROZOO_SEARCH_STORAGE"] == url
    printed = "".join(capfd.readouterr())
    # the preamble and the totals once, from this command: each worker printed them again (K interleaved copies),
    # its own share as "2 trials over 1 worker", and optuna's "Using an existing study" on joining
    assert printed.count("search space 'tiny': ") == 1 and printed.count(f"study {name!r} in ") == 1
    assert f"study {name!r} in {'sqlite:///' if url.startswith('sqlite') else ''}" in printed
    assert "4 trials over 2 workers" in printed and "over 1 worker;" not in printed
    assert "Using an existing study" not in printed and printed.count(f"study {name!r}: 4 complete") == 1
    assert len(re.findall(r"^trial \d+ epoch 1/1: val top-1 ", printed, re.M)) == 4  # a line per trial, named
    password = make_url(url).password
    assert password is None or f":{password}@" not in printed
    study = optuna.load_study(study_name=name, storage=url)
    numbers = sorted(t.number for t in study.trials)
    assert numbers == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    workers = [t.user_attrs["worker"] for t in study.trials]
    assert len(set(workers)) == 2 and sorted(workers.count(w) for w in set(workers)) == [2, 2]
    assert (tmp_path / "run" / f"{name}_best1.yaml").exists()


def _forget_trial_settings(url, name):
    """Let the next command train the study's trials otherwise (here: many epochs, to stop a trial mid-way, and
    one): a study refuses it (``check_settings``), which these tests are not about."""
    optuna.load_study(study_name=name, storage=url).set_user_attr("trial_settings", {})


def test_killed_worker_leaves_the_study_usable(tiny, tmp_path, request, monkeypatch):
    url, name = _shared_storage(tmp_path, request), _study_name(request)
    slow = search_argv(tiny, tmp_path / "run", 1, "--epochs", "500", "--heartbeat", "1", "--grace", "2",
                       "--export", "0", storage=url, study=name)
    proc = subprocess.Popen([sys.executable, "-m", "neurozoo.convrnn.search.cli", *slow], env=_env(), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    storage = make_storage(url, heartbeat_interval=None)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:  # wait until its trial is running and has reported an epoch
            time.sleep(0.5)
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            try:
                trials = optuna.load_study(study_name=name, storage=storage).trials
            except KeyError:
                continue
            if trials and trials[0].intermediate_values:
                break
        else:
            pytest.fail("the first worker never started a trial")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = optuna.load_study(study_name=name, storage=storage).trials[0]
    assert killed.state == optuna.trial.TrialState.RUNNING  # nothing marked it yet
    # past the 2 s grace period by more than a second: SQLite's CURRENT_TIMESTAMP, which optuna's heartbeat check
    # reads, has whole seconds, so a heartbeat 2.5-3 s old could read as 2 s old and not stale (1 run in 5 failed)
    time.sleep(3.5)
    _forget_trial_settings(url, name)
    # --retries 0: the dead trial is not run again (study.recover_dead_trial), the next of the sequence is drawn
    resume = search_argv(tiny, tmp_path / "run", 1, "--heartbeat", "1", "--grace", "2", "--export", "1",
                         "--no-record", "--retries", "0", storage=url, study=name)
    from neurozoo.convrnn.search.cli import main

    _in_worker_environment(monkeypatch, tmp_path)
    assert main(resume) == 0  # the next worker, in this process
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert [t.number for t in trials] == [0, 1]
    assert trials[0].state == optuna.trial.TrialState.FAIL  # failed by the heartbeat check
    assert trials[1].state == optuna.trial.TrialState.COMPLETE
    assert trials[1].params != trials[0].params  # the rerun draws trial 1's configuration, not trial 0's again
    assert (tmp_path / "run" / f"{name}_best1.yaml").exists()


@pytest.mark.parametrize("entry", [["neurozoo.convrnn.search.cli"], ["neurozoo.leaderboard.cli", "search"]])
def test_a_terminated_worker_marks_its_trial_failed_at_once(tiny, tmp_path, request, entry):
    """SIGTERM (kill, preemption) used to leave the trial RUNNING until a later worker's heartbeat check (for good
    with --heartbeat 0); it is now FAIL at once, without a value, and the finished trials stay as they were. The
    command says so, also as ``zoo search`` (which printed only "interrupted")."""
    url, name = _shared_storage(tmp_path, request), _study_name(request)
    argv = search_argv(tiny, tmp_path / "run", 2, "--heartbeat", "0", "--export", "0", storage=url, study=name)
    argv[argv.index("--epochs") + 1] = "1"
    from neurozoo.convrnn.search.cli import main

    assert main([*argv[:3], "1", *argv[4:]]) == 0  # one finished trial
    _forget_trial_settings(url, name)
    argv[argv.index("--epochs") + 1] = "500"
    proc = subprocess.Popen([sys.executable, "-m", *entry, *argv], env=_env(), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    storage = make_storage(url, heartbeat_interval=None)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:  # until the second trial has reported an epoch
            time.sleep(0.5)
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            trials = optuna.load_study(study_name=name, storage=storage).trials
            if len(trials) == 2 and trials[1].intermediate_values:
                break
        else:
            pytest.fail("the second trial never reported an epoch")
    finally:
        proc.terminate()
        code = proc.wait(timeout=60)
    error = proc.stderr.read().decode()
    assert code == 130 and error.splitlines()[-1] == ("zoo search: interrupted (a running trial is marked FAIL, user "
                                                      "attribute 'interrupted'; rerun to continue the study)"), error
    first, stopped = optuna.load_study(study_name=name, storage=storage).trials
    assert first.state == optuna.trial.TrialState.COMPLETE and first.value is not None
    assert stopped.state == optuna.trial.TrialState.FAIL and stopped.value is None


def test_a_bad_data_folder_is_refused_before_the_study_exists(tmp_path, capsys):
    from neurozoo.leaderboard.cli import main

    out = tmp_path / "search"
    (tmp_path / "no_train").mkdir()
    for data, message in ((tmp_path / "missing", "does not exist"), (tmp_path / "no_train", "has no train/ folder")):
        assert main(["search", "--data", str(data), "--trials", "1", "--out", str(out), "--quiet"]) == 2
        assert capsys.readouterr().err == (f"zoo search: error: data folder {data} {message} "
                                           "(expected train/<wnid>/*.JPEG and val/<wnid>/*.JPEG)\n")
    assert not out.exists()  # no study, so no failed trial was recorded in it
    # the folder's other faults, found when each trial opened it: a traceback and a FAIL trial per command
    from PIL import Image

    for split in ("train", "val"):
        for wnid in ("n01", "n02"):
            (tmp_path / "ok" / split / wnid).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / "ok" / split / wnid / "0.png")
    (tmp_path / "ok" / "train" / "n02" / "0.png").rename(tmp_path / "n02.png")
    (tmp_path / "ok" / "val" / "n03").mkdir()
    for fix, message in ((lambda: None, f"{tmp_path}/ok/val has class folder n03 that the training split does not have"),
                         (lambda: (tmp_path / "ok" / "val" / "n03").rmdir(),
                          f"class folder {tmp_path}/ok/train/n02 has no images"),
                         (lambda: (tmp_path / "n02.png").rename(tmp_path / "ok" / "train" / "n02" / "0.png"),
                          f"data folder {tmp_path / 'ok'} has no val/ folder")):
        fix()
        if "val/ folder" in message:
            (tmp_path / "ok" / "val").rename(tmp_path / "val_ok")
        assert main(["search", "--data", str(tmp_path / "ok"), "--trials", "1", "--out", str(out), "--quiet"]) == 2
        assert capsys.readouterr().err.startswith(f"zoo search: error: {message}")
        assert not out.exists()
    (tmp_path / "val_ok").rename(tmp_path / "ok" / "val")
    # --n-steps shorter than the spec's image_steps: optuna's traceback, a FAIL trial in the study, then the error
    assert main(["search", "--data", str(tmp_path / "ok"), "--trials", "1", "--out", str(out), "--quiet",
                 "--batch-size", "2", "--n-steps", "6"]) == 2  # a full batch of its 2 images: the unroll is refused
    assert capsys.readouterr().err == ("zoo search: error: --n-steps/--image-steps: rgc_intermediate with overrides "
                                       "['n_steps'] (spec 'rgc_intermediate'): need integers n_steps >= 1 and 0 <= "
                                       "image_steps <= n_steps, got n_steps=6, image_steps=12 (the steps the image is "
                                       "shown, [0, image_steps): 12 unless the spec or an override gives it); set "
                                       "image_steps <= n_steps too, e.g. image_steps=6\n")
    assert main(["search", "--data", str(tmp_path / "ok"), "--trials", "1", "--out", str(out), "--quiet",
                 "--batch-size", "2", "--n-steps", "6", "--image-steps", "3"]) == 2
    assert capsys.readouterr().err == ("zoo search: error: --n-steps 6: in rgc_intermediate the image first reaches "
                                       "the logits at step 10, so no trained output would depend on it; set "
                                       "--n-steps > 10\n")
    assert not out.exists()


def test_a_data_folder_without_a_full_batch_is_refused_before_the_study_exists(tmp_path, capsys):
    """Four training images at --batch-size 8 were found too few by each trial's trainer: optuna's 'Trial 0 failed'
    warning and a FAIL trial recorded in the study, then the error."""
    from neurozoo.convrnn.training.synthetic import write_image_folder
    from neurozoo.leaderboard.cli import main

    data = write_image_folder(tmp_path / "data", n_classes=2, per_class=2, size=16, val_per_class=1)
    out = tmp_path / "search"
    assert main(["search", "--data", str(data), "--trials", "1", "--batch-size", "8", "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err == (f"zoo search: error: {data / 'train'}: 4 training images give no full batch of "
                                       "8 per process on 1 process; lower --batch-size\n")
    assert not out.exists()


def test_a_train_folder_unlike_val_is_refused_before_the_study_exists(tmp_path, capsys):
    """The up-front check looked at train/ only for val/'s classes: a train/ with a class val/ lacks (trials trained on
    it, none scored on it) was accepted without a word, and a flat val/ whose WNIDs train/ lacks was found by the
    first trial, which failed in the study."""
    from PIL import Image

    from neurozoo.leaderboard.cli import main

    data, out = tmp_path / "data", tmp_path / "search"
    for split, wnids in (("train", ("n00000001", "n00000002", "n00000003")), ("val", ("n00000001", "n00000002"))):
        for wnid in wnids:
            (data / split / wnid).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(data / split / wnid / "0.png")

    def refused(message):
        assert main(["search", "--data", str(data), "--trials", "1", "--out", str(out), "--quiet"]) == 2
        assert capsys.readouterr().err == f"zoo search: error: {message}\n"
        assert not out.exists()

    refused(f"{data}/train has class folder n00000003 that val/ does not have; trials train on train/ and are "
            f"scored on val/, so train/ must hold the class folders of val/, no more (2 in {data}/val)")
    (data / "train").rename(tmp_path / "train")
    (data / "train").mkdir()  # empty
    refused(f"image folder {data}/train has no class folders (expected {data}/train/<wnid>/<image>.JPEG)")
    (data / "train").rmdir()
    (tmp_path / "train").rename(data / "train")
    (data / "train" / "n00000003" / "0.png").unlink()
    (data / "train" / "n00000003").rmdir()
    for wnid in ("n00000001", "n00000002"):  # a flat val/ naming a class train/ lacks
        (data / "val" / wnid / "0.png").unlink()
        (data / "val" / wnid).rmdir()
    Image.new("RGB", (8, 8)).save(data / "val" / "n00000001_0.png")
    Image.new("RGB", (8, 8)).save(data / "val" / "n00000009_0.png")
    refused(f"{data}/val has class folder n00000009 that the training split does not have; train/ and val/ must "
            "use the same WNIDs")


def test_a_corrupt_image_stops_every_local_worker_with_one_error(tiny, tmp_path, monkeypatch, capfd):
    """With --workers 2, each worker failed a trial of its own on the same image, printed its own error line and the
    command exited 1 with their exit codes. Now the first error stops the other worker: one line naming the file,
    exit 2; the trial that read the image is FAIL with its data_error, the other worker's running trial FAIL too,
    either stopped (interrupted: signal 15) or failed on the image at the same moment; none is left RUNNING."""
    from neurozoo.convrnn.training.synthetic import write_image_folder

    data = tmp_path / "data"
    write_image_folder(data, n_classes=3, per_class=6, size=32, val_per_class=3)
    bad = sorted((data / "train").rglob("*.JPEG"))[1]
    bad.write_bytes(bad.read_bytes()[:400])
    out = tmp_path / "run"
    argv = search_argv(tiny, out, 4, "--export", "0", "--workers", "2")
    argv[argv.index("--data") + 1] = str(data)
    code, error = _command_here(monkeypatch, capfd, _planted(tmp_path), argv)
    errors = [line for line in error.splitlines() if line.startswith("zoo search: error:")]
    assert code == 2 and "Traceback" not in error and len(errors) == 1, error
    assert error.splitlines()[-1] == errors[0] and errors[0].startswith(f"zoo search: error: cannot read image {bad}: ")
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials
    # one trial per worker (neither reads an image before both are in a trial: WORKERS_BARRIER)
    assert len(trials) == 2 and all(t.state == optuna.trial.TrialState.FAIL for t in trials)
    assert all(t.user_attrs.get("interrupted") == "signal 15" or t.user_attrs["data_error"].startswith(
        f"cannot read image {bad}: ") for t in trials)
    named = int(re.search(r"the study stops at trial (\d+)", errors[0]).group(1))
    (other,) = [t for t in trials if t.number != named]
    assert "data_error" in trials[named].user_attrs
    assert errors[0].endswith(f"the other workers' running trial {other.number} ("
                              f"{'stopped' if 'interrupted' in other.user_attrs else 'failed too'}): marked failed)")


WORKERS_BARRIER = """
import os, time
from neurozoo.convrnn.training import engine

_fit = engine.Trainer.fit


def _when_every_worker_trains(self, until_epoch=None):
    # No worker trains before the other has begun a trial of its own: on a loaded machine one worker could meet the
    # bad image or the bug while the other was still importing torch (no trial yet, no SIGTERM handler: it died on
    # signal 15), and a test about stopping the other worker's running trial had none to stop.
    folder = os.environ["WORKERS_BARRIER"]
    open(os.path.join(folder, str(os.getpid())), "a").close()
    deadline = time.monotonic() + 240
    while len(os.listdir(folder)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return _fit(self, until_epoch=until_epoch)


if "WORKERS_BARRIER" in os.environ:
    engine.Trainer.fit = _when_every_worker_trains
"""

PLANTED_BUG = """
import os, signal
from neurozoo.convrnn.training import engine

fit = engine.Trainer.fit


def planted(self, until_epoch=None):  # the first worker to reach epoch 3 of a trial meets a bug
    if until_epoch == 3:
        try:
            os.close(os.open(os.environ["PLANTED_BUG_FLAG"], os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            pass
        else:
            if os.environ["PLANTED_BUG"] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("planted bug")
    return fit(self, until_epoch=until_epoch)


engine.Trainer.fit = planted
"""


def _planted(tmp_path, *code, workers=2, **env):
    """The environment of a search command whose Python processes (the command's, each worker's) first run ``code``
    (a sitecustomize module), with ``env``; with ``workers=2`` the two workers start training together
    (WORKERS_BARRIER)."""
    (tmp_path / "plant").mkdir()
    (tmp_path / "plant" / "sitecustomize.py").write_text("\n".join((WORKERS_BARRIER,) + code))
    env = {**_env(), **env}
    if workers == 2:
        (tmp_path / "barrier").mkdir()
        env["WORKERS_BARRIER"] = str(tmp_path / "barrier")
    env["PYTHONPATH"] = str(tmp_path / "plant") + os.pathsep + env["PYTHONPATH"]
    return env


def _command_here(monkeypatch, capfd, env, argv):
    """The exit status and standard error of the search command ``argv`` run in this process with the environment
    ``env`` of ``_planted`` (no interpreter and torch to start for it): its local workers, processes of their own
    started with this environment, run the planted code and write to this process's standard error, read here with
    the command's own lines as a ``python -m neurozoo.convrnn.search.cli`` child's ``stderr`` would hold them. The
    planted code patches training alone, which the command leaves to its workers."""
    from neurozoo.convrnn.search.cli import main

    for key, value in env.items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)
    capfd.readouterr()
    code = main(argv)
    return code, capfd.readouterr().err


@pytest.mark.parametrize("bug", ["raise", "kill"])
def test_a_crashed_worker_stops_the_others_and_shows_its_traceback_once(tiny, tmp_path, monkeypatch, capfd, bug):
    """A worker that met a bug (an exception other than an error for the user) printed its traceback twice (optuna's
    log of the failed trial, then Python's) while the other worker ran its trials to the end, and the command exited
    1 with "worker exit codes [...]". Now the others stop at once (their running trial FAIL, interrupted), the
    traceback comes once, followed by a line naming the worker and its trial; exit 1. A worker killed without a word
    (``kill``: SIGKILL, as the out-of-memory killer) stops the others too, and its trial, left RUNNING by the dead
    worker, is marked FAIL."""
    env = _planted(tmp_path, PLANTED_BUG, PLANTED_BUG=bug, PLANTED_BUG_FLAG=str(tmp_path / "flag"))
    out = tmp_path / "run"
    argv = search_argv(tiny, out, 4, "--export", "0", "--workers", "2", "--epochs", "20", "--pruner", "none")
    code, error = _command_here(monkeypatch, capfd, env, argv)
    last = error.splitlines()[-1]
    found = re.fullmatch(r"zoo search: worker ([12]) of 2 \((\S+:\d+)\) (.*); stopped the other workers \(the other "
                         r"workers' running trial (\d+) \(stopped\): marked failed\); rerun to continue the study", last)
    assert code == 1 and found, error
    every = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials
    trials = [t for t in every if t.state != optuna.trial.TrialState.WAITING]
    # one trial per worker (both are in a trial before either trains: WORKERS_BARRIER)
    assert len(trials) == 2 and all(t.state == optuna.trial.TrialState.FAIL for t in trials), error
    (crashed,) = [t for t in trials if t.user_attrs["worker"] == found.group(2)]
    (stopped,) = [t for t in trials if t is not crashed]
    # killed without a word, mid-training: queued to run again from its checkpoint (study.recover_dead_trial), as its
    # stale heartbeat would have had it; a bug is not run again, nor is a trial stopped for another worker's error
    queued = [t for t in every if t.state == optuna.trial.TrialState.WAITING]
    assert [(t.params, t.user_attrs) for t in queued] == ([(crashed.params, {
        "retry_of": crashed.number, "resume_from": [crashed.user_attrs["out"]]})] if bug == "kill" else [])
    assert stopped.number == int(found.group(4)) and stopped.user_attrs["interrupted"] == "signal 15"
    assert "interrupted" not in crashed.user_attrs and crashed.user_attrs["epochs_done"] == 2
    if bug == "raise":
        assert error.count("Traceback (most recent call last)") == 1 and error.count("RuntimeError: planted bug") == 2
        assert error.index("Traceback") > error.index(f"Trial {crashed.number} failed with parameters")
        assert last.split(") ", 1)[1].startswith(f"crashed in trial {crashed.number} (marked failed): RuntimeError: "
                                                  "planted bug (traceback above: a bug, please report it)")
        assert error.splitlines()[-2] == "RuntimeError: planted bug"
    else:
        assert "Traceback" not in error
        assert found.group(3) == (f"died in trial {crashed.number} (marked failed) on signal 9 without a report "
                                  "(killed? out of memory?)")


def test_a_search_started_with_sigterm_ignored_still_stops_its_workers_when_one_crashes(tiny, tmp_path, monkeypatch,
                                                                                       capfd):
    """Started with SIGTERM ignored (``trap '' TERM``, a parent that ignores it), which the command's deferred blocks
    leave ignored (datasets.termination), its workers inherited SIG_IGN: the SIGTERM with which the command stops them
    once one crashed did nothing, and the other worker ran its trials to the end. The workers get SIGTERM's default
    back: the other worker stops at once, its running trial marked failed (interrupted), as without the trap."""
    env = _planted(tmp_path, PLANTED_BUG, PLANTED_BUG="raise", PLANTED_BUG_FLAG=str(tmp_path / "flag"))
    out = tmp_path / "run"
    argv = search_argv(tiny, out, 2, "--export", "0", "--workers", "2", "--epochs", "40", "--pruner", "none")
    # the command in this process, with SIGTERM ignored as a process started under ``trap '' TERM`` finds it (what
    # its workers then inherit); the test's own disposition back afterwards
    before = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        code, error = _command_here(monkeypatch, capfd, env, argv)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert code == 1 and re.fullmatch(
        r"zoo search: worker [12] of 2 \(\S+:\d+\) crashed in trial \d+ \(marked failed\): RuntimeError: planted bug "
        r"\(traceback above: a bug, please report it\); stopped the other workers \(the other workers' running trial "
        r"\d+ \(stopped\): marked failed\); rerun to continue the study", error.splitlines()[-1]), error
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials
    assert sorted(t.user_attrs.get("interrupted", "") for t in trials) == ["", "signal 15"]
    assert all(t.state == optuna.trial.TrialState.FAIL and t.user_attrs["epochs_done"] < 40 for t in trials)


def _children(pid):
    """The process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid):
    """Whether ``pid`` runs: a zombie (dead, not reaped by the process it was handed to) has ended."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's (workers.end_with_parent)")
def test_the_workers_end_when_their_command_is_killed_alone(tiny, tmp_path):
    """A command killed alone (SIGKILL, the out-of-memory killer) left its workers running their trials unsupervised
    (here for 500 epochs), and a rerun started two more beside them. The kernel now sends each worker SIGTERM when
    the command dies: each stops at its next safe point (before its next batch), its running trial marked FAIL
    (interrupted), as the command's own SIGTERM would.

    Killed once both train (each trial has recorded an epoch), so that the work left before that safe point is a
    batch, and how soon a worker stopped is counted in its trial's epochs, which a busy machine does not stretch: it
    finishes at most the epoch under way as the command died. The command used to be killed as soon as the workers
    had set up their trials, before the trainer was even imported, and a worker stopped only after importing it,
    writing its run's provenance and a first forward pass: 3 s on an idle machine, over the 20 s the test allowed
    at a load of 13 to 19 on 2 cores. The time limits below only end a hung run."""
    out = tmp_path / "run"
    argv = search_argv(tiny, out, 2, "--export", "0", "--workers", "2", "--epochs", "500", "--pruner", "none")
    proc = subprocess.Popen([sys.executable, "-m", "neurozoo.convrnn.search.cli", *argv], env=_env(), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    storage, workers = None, []

    def trials():
        return optuna.load_study(study_name="tiny", storage=storage).trials

    deadline = time.time() + 300  # the slow start of three processes importing torch on a busy machine
    try:
        while time.time() < deadline:  # until each worker trains a trial of its own
            time.sleep(0.5)
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            if len(_children(proc.pid)) < 2:  # started once the study exists, whose schema this must not race
                continue
            storage = storage or make_storage(f"sqlite:///{out / 'search.sqlite'}", heartbeat_interval=None)
            try:
                running = [t for t in trials() if t.state == optuna.trial.TrialState.RUNNING]
            except KeyError:
                continue
            if len(running) == 2 and all(t.user_attrs.get("epochs_done", 0) >= 1 for t in running):
                break
        else:
            pytest.fail("the two workers never trained an epoch each")
        from neurozoo.datasets.cache import worker_name

        workers = _children(proc.pid)
        assert len(workers) == 2 and {worker_name(pid) for pid in workers} == {
            t.user_attrs["worker"] for t in running}
        os.kill(proc.pid, signal.SIGKILL)  # the command alone, not its workers
        proc.wait()  # dead: the kernel has signalled its workers
        at_kill = {t.number: t.user_attrs["epochs_done"] for t in trials()}
        deadline = time.time() + 120
        while any(_alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers), "a worker ran on after its command was killed"
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ended = trials()
    assert len(ended) == 2 and all(t.state == optuna.trial.TrialState.FAIL for t in ended)
    assert [t.user_attrs.get("interrupted") for t in ended] == ["signal 15", "signal 15"]
    # each stopped within the epoch it was training as its command died, far from its trial's 500
    assert all(at_kill[t.number] <= t.user_attrs["epochs_done"] <= at_kill[t.number] + 1 for t in ended), (
        at_kill, [t.user_attrs["epochs_done"] for t in ended])


# `zoo search --workers K` as it waits for its workers, its reports folder made: it prints the folder, then is killed
# (SIGKILL, the out-of-memory killer) or waits for a line on stdin. Its one worker exits at once (no --data: exit 2).
COMMAND_WAITING_FOR_ITS_WORKERS = """
import os, signal, sys
from neurozoo.convrnn.search import workers
def waiting(procs, reports):
    print(reports[0].parent, flush=True)
    if sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.readline()
workers._wait = waiting
workers.run_workers([], [1], "sqlite://")
"""


def test_the_reports_folder_of_a_killed_search_is_removed_by_the_next_and_a_live_ones_kept(tmp_path, monkeypatch):
    """`zoo search --workers K` killed (SIGKILL) left its workers' reports folder (/tmp/zoo-search-*) for good. Named
    with its host and pid now, it is removed by the next such command, and a concurrent live command's is kept (its
    own, removed as it ends)."""
    import tempfile

    from neurozoo.convrnn.search.workers import run_workers

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**_env(), "TMPDIR": str(scratch)}
    command = [sys.executable, "-c", COMMAND_WAITING_FOR_ITS_WORKERS]
    dead = Path(run_killed(command, env, timeout=60).strip())
    assert dead.parent == scratch and dead.name.startswith("zoo-search-") and dead.is_dir()
    with live_waiting(command, env) as live:
        kept = Path(live.stdout.readline().strip())
        assert kept.parent == scratch and kept.is_dir()
        monkeypatch.setattr(tempfile, "tempdir", str(scratch))
        run_workers([], [1], "sqlite://")  # the next command: its worker exits at once
        assert sorted(scratch.iterdir()) == [kept]  # the dead command's gone, the live one's kept, this one's removed
    assert live.returncode == 0 and list(scratch.iterdir()) == []


PDEATHSIG_OF_A_WORKER = """
import ctypes
from neurozoo.convrnn.search.workers import end_with_parent
ended = end_with_parent()
signal = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(signal), 0, 0, 0)  # PR_GET_PDEATHSIG
print(ended, signal.value)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's (workers.end_with_parent)")
def test_a_worker_whose_command_died_before_it_asked_to_end_with_it_stops():
    """The kernel signals a worker only for a parent that dies after the request: one whose command had already died
    (its parent is then the process it was handed to) is told to stop, not left to run unsupervised."""
    def worker(parent):
        done = subprocess.run([sys.executable, "-c", PDEATHSIG_OF_A_WORKER], capture_output=True, text=True,
                              env={**_env(), "NEUROZOO_SEARCH_PARENT": str(parent)}, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert worker(os.getpid()) == ["True", str(int(signal.SIGTERM))]  # this process started it and runs
    assert worker(os.getpid() + 1_000_000)[0] == "False"  # no pid's: its command is gone


def test_a_bug_in_a_one_process_search_shows_its_traceback_once(tiny, tmp_path):
    """optuna logged the failed trial with the traceback, then ``study.optimize`` raised the exception again and
    Python printed it a second time. The trial's line stays; the traceback comes once, at the end."""
    env = _planted(tmp_path, PLANTED_BUG, workers=1, PLANTED_BUG="raise", PLANTED_BUG_FLAG=str(tmp_path / "flag"))
    argv = search_argv(tiny, tmp_path / "run", 1, "--export", "0", "--epochs", "3", "--pruner", "none")
    done = subprocess.run([sys.executable, "-m", "neurozoo.leaderboard.cli", "search", *argv], env=env, timeout=300,
                          capture_output=True, text=True)
    error = done.stderr
    assert done.returncode == 1 and error.count("Traceback (most recent call last)") == 1, error
    assert error.index("Trial 0 failed with parameters") < error.index("Traceback")
    assert error.splitlines()[-1] == "RuntimeError: planted bug"


@pytest.mark.parametrize("searches_lr", [False, True])
def test_a_diverging_trial_is_pruned_and_marked_diverged_so_that_tpe_learns_from_it(tiny, tmp_path, capsys,
                                                                                     searches_lr):
    """A trial whose loss went non-finite (the trainer's FloatingPointError) ended FAIL, which TPE ignores: the
    sampler never learnt that the region diverges. It ends PRUNED now (TPE ranks it below every completed trial),
    marked ``diverged`` with the epoch, and shown so in the summary and the history figure. Its advice is what
    applies: --lr is refused where the space searches train.lr (it said "lower --lr" there too)."""
    from neurozoo.leaderboard.cli import main

    out = tmp_path / "run"
    argv = search_argv(tiny, out, 1, "--export", "0")
    if searches_lr:  # SGD at lr 1e6: the loss is NaN at once
        (tmp_path / "tiny_base.yaml").write_text(yaml.safe_dump(TINY_BASE))
        (tmp_path / "lr_space.yaml").write_text(yaml.safe_dump(dict(TINY_SPACE, train={"lr": {"choice": [1e6]}})))
        argv[argv.index("--space") + 1] = str(tmp_path / "lr_space.yaml")
        advice = "space 'tiny' searches train.lr: narrow its range in a copy of the space (--space)"
    else:
        argv += ["--lr", "1e6"]
        advice = "lower --lr"
    argv.remove("--quiet")
    assert main(["search", *argv]) == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}")
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.user_attrs["diverged"]["epoch"] == 1
    error = trial.user_attrs["diverged"]["error"]  # nan or inf: that depends on the kernels
    assert re.fullmatch(r"loss is (nan|inf) at step \d \(epoch 1, learning rate \d+\); " + re.escape(advice),
                        error), error
    assert trial.user_attrs["pruned_reason"] == f"diverged in epoch 1: {error}"
    assert trial.user_attrs["pruned_epoch"] == 0
    text = capsys.readouterr().out
    assert f"trial 0 epoch 1/1: diverged ({error}); pruned" in text
    assert "study 'tiny': 1 pruned (1 diverged: pruned on a non-finite loss)" in text
    assert (out / "tiny_history.png").read_bytes()[:4] == b"\x89PNG"


def test_a_study_whose_every_trial_diverged_says_so_in_one_error_line_with_the_advice(tiny, tmp_path, capsys):
    """It ended "zoo search: study 'tiny' has no completed trial to export" (exit 1), not in the one-line error format
    (exit 2), and without the advice the diverged trial had printed (which needs a new study: this one refuses another
    --lr)."""
    from neurozoo.leaderboard.cli import main

    out = tmp_path / "run"
    assert main(["search", *search_argv(tiny, out, 1, "--lr", "1e6", "--no-record")]) == 2
    assert capsys.readouterr().err.endswith(
        "zoo search: error: study 'tiny' has no completed trial to export: its trial diverged (a non-finite loss); "
        "lower --lr, and start a new study with --study NEW_NAME\n")
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED]
    assert not (out / "tiny_best1.yaml").exists()


@pytest.mark.parametrize("data_workers", [0, 1])
def test_a_corrupt_image_found_mid_trial_stops_the_study_naming_the_file(tiny, tmp_path, data_workers):
    """The up-front check (check_imagenet) looks at folders and file names, so a truncated JPEG passes it and is found
    when a trial reads it: the trial ended FAIL with optuna's traceback (and through a DataLoader worker, the
    worker's traceback inside the error's message). Now the failed trial's line stays, without a traceback; the
    study stops there with one error naming the file, and the trial records the data error."""
    from neurozoo.convrnn.training.synthetic import write_image_folder

    data = tmp_path / "data"
    write_image_folder(data, n_classes=3, per_class=6, size=32, val_per_class=3)
    bad = sorted((data / "train").rglob("*.JPEG"))[1]
    bad.write_bytes(bad.read_bytes()[:400])
    out = tmp_path / "run"
    argv = search_argv(tiny, out, 3, "--export", "0", "--data-workers", str(data_workers))
    argv[argv.index("--data") + 1] = str(data)
    # in a process of its own: what optuna's log handler writes is what the user sees
    done = subprocess.run([sys.executable, "-m", "neurozoo.convrnn.search.cli", *argv], env=_env(), timeout=300,
                          capture_output=True, text=True)
    error = done.stderr
    assert done.returncode == 2 and "Traceback" not in error and "Trial 0 failed with parameters" in error, error
    last = error.splitlines()[-1]
    assert last.startswith(f"zoo search: error: cannot read image {bad}: ") and last.endswith(
        "; the study stops at trial 0 (marked failed): repair or remove the file, then rerun to continue the study")
    (trial,) = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["data_error"].startswith(f"cannot read image {bad}: ")


def test_a_rerun_of_an_interrupted_study_says_what_it_continues(tiny, tmp_path, capsys, monkeypatch):
    """`zoo search` interrupted (Ctrl-C, SIGTERM) says "rerun to continue the study"; the rerun then went on without
    a word of the trials the study held, nor that the interrupted one is not run again. It says so now."""
    from neurozoo.convrnn.search import objective
    from neurozoo.leaderboard.cli import main

    out = tmp_path / "run"
    assert main(["search", *search_argv(tiny, out, 1, "--export", "0", "--no-record")]) == 0
    assert "continuing" not in capsys.readouterr().err  # a new study continues nothing
    run = objective.Objective._run

    def interrupted(self, trial):
        raise KeyboardInterrupt

    monkeypatch.setattr(objective.Objective, "_run", interrupted)
    assert main(["search", *search_argv(tiny, out, 1, "--export", "0", "--no-record")]) == 130
    capsys.readouterr()
    monkeypatch.setattr(objective.Objective, "_run", run)
    assert main(["search", *search_argv(tiny, out, 1, "--export", "0", "--no-record")]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f"zoo search: continuing study 'tiny' in sqlite:///{out / 'search.sqlite'}: 2 trials so far (1 complete, "
        "1 fail); 1 interrupted, not run again: new trials follow")


def test_ctrl_c_in_a_trial_says_the_trial_is_marked_failed_and_not_run_again(tiny, tmp_path, capfd, monkeypatch):
    """The first Ctrl-C in a trial said "stopping at the next batch, with a checkpoint of the step reached" (the
    trainer's note for zoo train, which resumes it): an interrupted trial is marked FAIL and never resumed."""
    from neurozoo.convrnn.training.engine import Trainer
    from neurozoo.datasets.termination import raise_if_terminated
    from neurozoo.leaderboard.cli import main

    def ctrl_c(self, until_epoch=None):  # the user's Ctrl-C as the first batch trains
        os.kill(os.getpid(), signal.SIGINT)
        raise_if_terminated()

    monkeypatch.setattr(Trainer, "_fit", ctrl_c)
    out = tmp_path / "run"
    assert main(["search", *search_argv(tiny, out, 1, "--export", "0")]) == 130
    error = capfd.readouterr().err
    assert ("\nCtrl-C: stopping trial 0 at the next batch; it is marked FAIL (user attribute 'interrupted') and not run "
            "again: a rerun continues the study with new trials (Ctrl-C again stops at once)\n") in error, error
    assert "checkpoint" not in error
    (trial,) = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs["interrupted"] == "signal 2"


def test_an_interrupted_trial_leaves_no_last_pth_that_nothing_reads(tiny, tmp_path, capfd, monkeypatch):
    """A trial stopped by SIGTERM (or Ctrl-C) is marked FAIL and never run again, yet its folder kept last.pth (the
    stop's checkpoint of its step in epoch 2) that nothing read. It is removed once the trial is FAIL; the weights of
    its best epoch (best.pth), its metrics and run.json stay."""
    from neurozoo.convrnn.training.engine import Trainer
    from neurozoo.leaderboard.cli import main

    fit, saved = Trainer.fit, []

    def sigterm_in_epoch_2(self, until_epoch=None):  # a preemption as epoch 2 starts: the stop point saves last.pth
        if until_epoch == 2:
            saved.append((self.out / "last.pth").is_file())
            os.kill(os.getpid(), signal.SIGTERM)
        return fit(self, until_epoch=until_epoch)

    monkeypatch.setattr(Trainer, "fit", sigterm_in_epoch_2)
    out = tmp_path / "run"
    argv = search_argv(tiny, out, 1, "--export", "0")
    argv[argv.index("--epochs") + 1] = "2"
    assert main(["search", *argv]) == 130
    capfd.readouterr()
    (trial,) = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs["interrupted"] == "signal 15"
    folder = Path(trial.user_attrs["out"])
    assert saved == [True] and trial.user_attrs["epochs_done"] == 1  # epoch 1's checkpoint was there
    assert not (folder / "last.pth").exists()
    assert {"best.pth", "metrics.jsonl", "run.json", "spec.yaml"} <= {f.name for f in folder.iterdir()}


@pytest.mark.parametrize("where", ["_configure_backends", "first_batch_output"])
def test_a_sigterm_in_a_trials_setup_stops_it_at_once(tiny, tmp_path, capfd, monkeypatch, where):
    """A SIGTERM in a trial's setup waited for all of it (its trainer's imports, data and model, its run's provenance,
    a first forward pass: 3 s on an idle machine, 17 s at a load of 16) before the trial stopped at its first batch.
    The trainer writes nothing until its log and run.json, nor does the look at its untrained model's first batch
    (objective.initial_explosion), so a stop is now taken at once in either (datasets.termination.stopping_at_once):
    here as the trainer sets torch's backends up (seconds of importing torch's compiler) and as the model is about to
    run. The trial is marked FAIL (interrupted) as a stop mid-epoch marks it; its folder holds its spec and
    configuration, and its run.json once written, which says it stopped (it said what a run killed without a word
    says)."""
    from neurozoo.convrnn.training.engine import Trainer
    from neurozoo.leaderboard.cli import main

    setup, ran = getattr(Trainer, where), []

    def signalled(self):
        os.kill(os.getpid(), signal.SIGTERM)
        ran.append(where)
        return setup(self)

    monkeypatch.setattr(Trainer, where, signalled)
    out = tmp_path / "run"
    assert main(["search", *search_argv(tiny, out, 1, "--export", "0")]) == 130
    capfd.readouterr()
    (trial,) = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs["interrupted"] == "signal 15"
    assert ran == [] and "epochs_done" not in trial.user_attrs
    folder = Path(trial.user_attrs["out"])
    if where == "_configure_backends":  # before the trainer wrote anything
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "spec.yaml"]
        return
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "metrics.jsonl", "run.json", "spec.yaml"]
    segment = json.loads((folder / "run.json").read_text())["segments"][-1]
    assert (segment["outcome"], segment["error"], segment["end_step"]) == ("stopped", "KeyboardInterrupt: signal 15", 0)


SIGTERM_IN_SETUP = """
import os, signal, time
from neurozoo.convrnn.training import engine

_configure_backends = engine.Trainer._configure_backends


def _signalled_in_setup(self):
    # a worker's trial's trainer begins its setup (torch's backends set: seconds of importing its compiler): SIGTERM
    # to the command that started the worker, then on once the command has stopped the worker (SIGTERM)
    got, handler = [], signal.getsignal(signal.SIGTERM)

    def noted(signum, frame):
        got.append(signum)
        handler(signum, frame)  # datasets.termination's: records the stop, or raises it at once

    signal.signal(signal.SIGTERM, noted)
    os.kill(int(os.environ["NEUROZOO_SEARCH_PARENT"]), signal.SIGTERM)
    deadline = time.monotonic() + 120
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    return _configure_backends(self)


if "NEUROZOO_SEARCH_PARENT" in os.environ:  # workers.PARENT_ENV: a local worker
    engine.Trainer._configure_backends = _signalled_in_setup
"""


def test_a_command_signalled_as_its_worker_sets_a_trial_up_stops_at_once(tiny, tmp_path):
    """zoo search --workers K signalled while a worker sets its trial up stops its workers (SIGTERM): the worker took
    the stop only at its trial's first batch, after all its setup (test_a_sigterm_in_a_trials_setup_stops_it_at_once),
    and the command waited for it. It now stops at once, its trial marked FAIL (interrupted), its folder holding its
    spec and configuration only. One trial over two workers: one worker process runs it."""
    out = tmp_path / "run"
    argv = search_argv(tiny, out, 1, "--export", "0", "--workers", "2")
    done = subprocess.run([sys.executable, "-m", "neurozoo.convrnn.search.cli", *argv], timeout=300,
                          env=_planted(tmp_path, SIGTERM_IN_SETUP, workers=1), capture_output=True, text=True)
    assert (done.returncode, done.stderr.splitlines()[-1]) == (130, (
        "zoo search: interrupted (a running trial is marked FAIL, user attribute 'interrupted'; rerun to continue the "
        "study)")), done.stderr[-3000:]
    (trial,) = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs["interrupted"] == "signal 15"
    # stopped before its trainer wrote anything (at its first batch: metrics.jsonl and run.json written)
    assert sorted(p.name for p in Path(trial.user_attrs["out"]).iterdir()) == ["config.json", "spec.yaml"]
    assert "parameters" not in trial.user_attrs and "epochs_done" not in trial.user_attrs


def test_a_sigterm_before_the_first_trial_starts_none(tiny, tmp_path, capfd, monkeypatch):
    """A SIGTERM while the study is opened and its data checked (--hash-images: every image read) used to let the
    first trial begin, then stop it at its first batch, marked FAIL: a trial number spent on nothing. It stops at the
    safe point before the first trial: the study holds none."""
    from neurozoo.convrnn.search import study as search_study
    from neurozoo.leaderboard.cli import main

    check_data = search_study.check_data

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return check_data(*args, **kwargs)

    monkeypatch.setattr(search_study, "check_data", signalled)
    out = tmp_path / "run"
    assert main(["search", *search_argv(tiny, out, 1, "--export", "0")]) == 130
    capfd.readouterr()
    assert optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials == []
    assert not (out / "tiny").exists()


def test_only_a_failed_trials_checkpoint_is_dropped():
    """drop_unread_checkpoint: a trial the storage still holds RUNNING (its process killed before optuna recorded
    the failure) keeps its last.pth, which its retry resumes from; once FAIL, the file goes."""
    import tempfile

    from neurozoo.convrnn.search.study import drop_unread_checkpoint

    study = optuna.create_study()
    trial = study.ask()
    with tempfile.TemporaryDirectory() as folder:
        trial.set_user_attr("out", folder)
        (Path(folder) / "last.pth").write_bytes(b"checkpoint")
        drop_unread_checkpoint(study, trial.number)
        assert (Path(folder) / "last.pth").read_bytes() == b"checkpoint"
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        drop_unread_checkpoint(study, trial.number)
        assert not (Path(folder) / "last.pth").exists() and Path(folder).is_dir()


KILLED_AFTER_THE_LAST_EPOCH = """
import os, signal
from neurozoo.convrnn.training import engine

fit = engine.Trainer.fit


def killed(self, until_epoch=None):  # SIGKILL once the last epoch's checkpoint is saved, before optuna hears of it
    row = fit(self, until_epoch=until_epoch)
    if self.epoch == self.config.epochs:
        os.kill(os.getpid(), signal.SIGKILL)
    return row


engine.Trainer.fit = killed
"""


def test_a_trial_killed_after_its_last_epoch_was_saved_is_recorded_complete_by_the_rerun(tiny, tmp_path, capsys):
    """A trial whose worker died after the checkpoint of its last epoch (before optuna recorded it complete) was
    marked FAIL by the rerun (stale heartbeat), which TPE and the export ignore, so its
    trained model was lost to the study, and the rerun said "1 running" of it. The rerun records it complete now, as a
    new trial (``recovered_from``), with the value the trial would have returned (its best epoch's top-1) and its
    epochs' values, from its folder; the export (here by --trials 0) takes it, with its weights."""
    from neurozoo.leaderboard.cli import main

    out, storage = tmp_path / "run", f"sqlite:///{tmp_path / 'run' / 'search.sqlite'}"
    argv = search_argv(tiny, out, 1, "--epochs", "2", "--heartbeat", "1", "--grace", "2", "--no-record")
    env = _planted(tmp_path, KILLED_AFTER_THE_LAST_EPOCH, workers=1)
    done = subprocess.run([sys.executable, "-m", "neurozoo.convrnn.search.cli", *argv], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    (killed,) = optuna.load_study(study_name="tiny", storage=storage).trials
    assert killed.state == optuna.trial.TrialState.RUNNING and list(killed.intermediate_values) == [0]
    folder = Path(killed.user_attrs["out"])
    epochs = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    top1 = [row["val_top1"] for row in epochs if row["kind"] == "epoch"]
    assert len(top1) == 2
    time.sleep(3.5)  # its heartbeat stale (see test_killed_worker_leaves_the_study_usable)
    capsys.readouterr()
    assert main(["search", *search_argv(tiny, out, 0, "--epochs", "2", "--heartbeat", "1", "--grace", "2",
                                        "--no-record")]) == 0
    err = capsys.readouterr().err
    failed, recorded = optuna.load_study(study_name="tiny", storage=storage).trials
    assert failed.state == optuna.trial.TrialState.FAIL and recorded.state == optuna.trial.TrialState.COMPLETE
    assert recorded.value == max(top1) and recorded.intermediate_values == {0: top1[0], 1: top1[1]}
    assert recorded.params == failed.params and recorded.user_attrs["config"] == failed.user_attrs["config"]
    assert recorded.user_attrs["recovered_from"] == 0 and recorded.user_attrs["epochs_done"] == 2
    assert f"zoo search: trial 0 died after its last epoch was saved: recorded complete from {folder} (val top-1 " \
           f"{max(top1):.2f}%; user attribute recovered_from 0)" in err
    assert "2 trials so far (1 complete, 1 fail)" in err
    provenance = json.loads((out / "tiny_best1.json").read_text())
    assert provenance["trial"] == 1 and provenance["weights"] == str((folder / "best.pth").resolve())
    # the folder is the killed trial's (trial_00000), named by the number the provenance carries
    assert provenance["recovered_from"] == 0 and folder.name == f"trial_{provenance['recovered_from']:05d}"


def test_an_lr_given_to_a_space_that_searches_it_is_refused(tiny, tmp_path, capsys):
    """--lr was ignored when the space searches train.lr (the built-in ones do): the trials trained at the drawn
    rates, and a user lowering --lr after 'diverged (...; lower --lr)' lowered nothing."""
    from neurozoo.leaderboard.cli import main

    space = dict(TINY_SPACE, train={"lr": {"float": [0.01, 0.2], "log": True}})
    (tmp_path / "tiny_base.yaml").write_text(yaml.safe_dump(TINY_BASE))
    (tmp_path / "lr_space.yaml").write_text(yaml.safe_dump(space))
    argv = search_argv(tiny, tmp_path / "run", 1, "--export", "0", "--lr", "0.001")
    argv[argv.index("--space") + 1] = str(tmp_path / "lr_space.yaml")
    assert main(["search", *argv]) == 2
    assert capsys.readouterr().err.startswith("zoo search: error: --lr 0.001: space 'tiny' searches the learning rate "
                                              "(train.lr), which every trial draws; leave --lr out")
    assert not (tmp_path / "run" / "search.sqlite").exists()  # refused before the study exists


@pytest.fixture(scope="module")
def one_trial_study(tiny, tmp_path_factory, session_cache):
    """The out folder of ``zoo search`` of one trial of the tiny space (study 'tiny', no export), made once per
    process with the test session's cache and home (which the function-scoped ``_isolated_cache`` sets only later):
    the tests of a continued study copy it (``_continued``) rather than each running that search first."""
    from neurozoo.leaderboard.cli import main

    out = tmp_path_factory.mktemp("one-trial") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROZOO_CACHE", session_cache)
        patch.setenv("NEUROZOO_HOME", str(tmp_path_factory.getbasetemp() / "home"))
        assert main(["search", *search_argv(tiny, out, 1, "--export", "0")]) == 0
    return out


def _continued(one_trial_study, out):
    """A copy in ``out`` of ``one_trial_study``'s folder, the study to continue (its trial 0 names its folder in the
    fixture's by its absolute path, which these tests only read)."""
    import shutil

    shutil.copytree(one_trial_study, out)


def test_a_study_continued_with_other_training_settings_is_refused(tiny, tmp_path, capsys, one_trial_study):
    """A rerun with another --width, --epochs or --image-size (a forgotten option, its default then) joined the study
    silently: its trials were ranked with those trained otherwise, by TPE and by the export's best."""
    from neurozoo.leaderboard.cli import main

    out = tmp_path / "run"
    study = _searched_once(one_trial_study, out)
    assert study.user_attrs["trial_settings"]["width_multiplier"] == 1 and len(study.trials) == 1
    capsys.readouterr()
    argv = search_argv(tiny, out, 1, "--export", "0")
    argv[argv.index("--width") + 1] = "0.5"
    assert main(["search", *argv]) == 2
    assert capsys.readouterr().err.endswith("\nzoo search: error: study 'tiny' trains its trials with --width 1.0; this "
                                       "command gives 0.5, whose trials' values would be ranked with theirs (TPE and "
                                       "the export): rerun with --width 1.0, or start another --study\n")
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials) == 1
    assert main(["search", *argv[:-2], "--trials", "0"]) == 0  # an export by a later command need not repeat them


def _searched_once(one_trial_study, out):
    """The study of one ``zoo search`` trial on the tiny data, in ``out`` (a copy of ``one_trial_study``'s)."""
    _continued(one_trial_study, out)
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}")


def _continued_on(tiny, out, data, capsys, *extra):
    """``zoo search`` continuing the study in ``out`` with one trial on ``--data data`` (and the options ``extra``):
    its exit code and stderr."""
    from neurozoo.leaderboard.cli import main

    capsys.readouterr()
    argv = search_argv(tiny, out, 1, "--export", "0", *extra)
    argv[argv.index("--data") + 1] = str(data)
    code = main(["search", *argv])
    return code, capsys.readouterr().err


def test_a_study_continued_on_other_data_is_refused(tiny, tmp_path, capsys, one_trial_study):
    """The data's path is not compared (other machines mount it elsewhere), and nothing else was: a rerun with --data
    naming a 5-class folder continued a study of 3-class trials, and its 20 % trials were ranked with their 67 %."""
    import shutil

    from neurozoo.convrnn.training.synthetic import write_image_folder

    out = tmp_path / "run"
    study = _searched_once(one_trial_study, out)
    run = json.loads((Path(study.trials[0].user_attrs["out"]) / "run.json").read_text())
    assert study.user_attrs["data"] == {"data": str((tiny / "data").resolve()), "val_files_sha256": run["val_files_sha256"],
                                        "train_files_sha256": run["train_files_sha256"], "files_checksum": "sizes"}
    assert run["files_checksum"] == "sizes"
    write_image_folder(tmp_path / "five", n_classes=5, per_class=2, size=32, val_per_class=1)
    code, err = _continued_on(tiny, out, tmp_path / "five", capsys)
    assert code == 2
    assert f"zoo search: error: study 'tiny' trains and scores its trials on {(tiny / 'data').resolve()} (its val/ file " \
           f"list has sha256 {run['val_files_sha256'][:16]}, of its relative paths, labels and sizes); --data " \
           f"{tmp_path / 'five'} has another val/" in err
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials) == 1
    shutil.copytree(tiny / "data", tmp_path / "copy")  # the same data elsewhere (another machine's mount) joins
    assert _continued_on(tiny, out, tmp_path / "copy", capsys)[0] == 0
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials) == 2


def test_a_study_continued_on_another_train_folder_is_refused(tiny, tmp_path, capsys, one_trial_study):
    """Only val/ was compared: a rerun whose train/ lost images (a half-copied folder) or gained some joined the study,
    its trials trained on other data ranked with the others."""
    import shutil

    out = tmp_path / "run"
    recorded = _searched_once(one_trial_study, out).user_attrs["data"]["train_files_sha256"]
    shutil.copytree(tiny / "data", tmp_path / "fewer")
    next(iter(sorted((tmp_path / "fewer" / "train").glob("*/*")))).unlink()
    code, err = _continued_on(tiny, out, tmp_path / "fewer", capsys)
    assert code == 2
    assert f"zoo search: error: study 'tiny' trains and scores its trials on {(tiny / 'data').resolve()} (its train/ " \
           f"file list has sha256 {recorded[:16]}, of its relative paths, labels and sizes); --data " \
           f"{tmp_path / 'fewer'} has another train/ (sha256 " in err
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials) == 1


def _replace_an_image(folder):
    """Replace ``folder``'s first training image by another class's image under its name (another size): its path
    and label stay, its pixels and bytes do not."""
    images = sorted((folder / "train").glob("*/*"))
    size = images[0].stat().st_size
    images[0].write_bytes(images[-1].read_bytes())
    assert images[0].stat().st_size != size
    return images[0]


def test_a_study_continued_on_a_train_folder_with_an_image_replaced_under_its_name_is_refused(tiny, tmp_path, capsys,
                                                                                             one_trial_study):
    """The study compared the lists of relative paths and labels only: a train/ whose image was replaced by another
    (another class's, under the same name) joined the study, its trials trained on other pixels ranked with the
    others. The lists now hold each file's size too."""
    import shutil

    out = tmp_path / "run"
    _searched_once(one_trial_study, out)
    shutil.copytree(tiny / "data", tmp_path / "replaced")
    _replace_an_image(tmp_path / "replaced")
    code, err = _continued_on(tiny, out, tmp_path / "replaced", capsys)
    assert code == 2 and "has another train/ (sha256 " in err, err
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials) == 1


def test_a_study_that_recorded_file_names_only_is_compared_by_them_then_records_sizes(tiny, tmp_path, capsys,
                                                                                      one_trial_study):
    """A study started before the sizes were recorded keeps the sha256 of its splits' (relative path, label) lists
    and no ``files_checksum``: compared with this version's lists of paths, labels and sizes it would be refused on
    its own data. It is compared by names and labels (another folder is still refused, naming them), then records
    this command's sizes, so that an image replaced under its name from then on is refused."""
    import shutil

    from neurozoo.convrnn.training.file_checksums import file_list_sha256
    from neurozoo.convrnn.training.imagefolder import open_imagenet
    from neurozoo.convrnn.training.synthetic import write_image_folder

    out = tmp_path / "run"
    study = _searched_once(one_trial_study, out)
    sizes = dict(study.user_attrs["data"])
    names = {f"{split}_files_sha256": file_list_sha256(folder) for split, folder in open_imagenet(tiny / "data").items()}
    assert names["train_files_sha256"] != sizes["train_files_sha256"]
    study.set_user_attr("data", {"data": sizes["data"], **names})  # as the version before recorded it
    write_image_folder(tmp_path / "five", n_classes=5, per_class=2, size=32, val_per_class=1)
    code, err = _continued_on(tiny, out, tmp_path / "five", capsys)
    assert code == 2 and (f"(its val/ file list has sha256 {names['val_files_sha256'][:16]}, of its relative paths "
                          f"and labels); --data {tmp_path / 'five'} has another val/") in err, err

    shutil.copytree(tiny / "data", tmp_path / "copy")
    assert _continued_on(tiny, out, tmp_path / "copy", capsys)[0] == 0  # its own data, elsewhere
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}")
    assert len(study.trials) == 2 and study.user_attrs["data"] == sizes
    _replace_an_image(tmp_path / "copy")
    code, err = _continued_on(tiny, out, tmp_path / "copy", capsys)
    assert code == 2 and "of its relative paths, labels and sizes); --data" in err, err


def _edit_an_image_to_the_same_size(folder):
    """Change a byte in the middle of ``folder``'s first training image: its path, label and size stay."""
    image = sorted((folder / "train").glob("*/*"))[0]
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0x01
    image.write_bytes(bytes(data))
    return image


def test_a_study_started_with_hash_images_refuses_an_image_edited_to_the_same_size(tiny, tmp_path, capsys):
    """zoo train's --hash-images for zoo search: every trial's run.json covers each image's bytes (files_checksum
    contents) and so does the study's data check, by file_checksums' functions (files_checksum, recorded_files_checksum): a
    study started with it refuses to continue on data whose image was edited under its name to the same size (the
    sizes check let it join), also when continued without --hash-images (the study's kind holds), which still records
    and hashes as the study does. Its own data, elsewhere, joins."""
    import shutil

    from neurozoo.convrnn.training.file_checksums import file_list_sha256
    from neurozoo.convrnn.training.imagefolder import open_imagenet
    from neurozoo.leaderboard.cli import main

    out, storage = tmp_path / "run", f"sqlite:///{tmp_path / 'run' / 'search.sqlite'}"
    assert main(["search", *search_argv(tiny, out, 1, "--export", "0", "--no-record", "--hash-images")]) == 0
    study = optuna.load_study(study_name="tiny", storage=storage)
    splits = open_imagenet(tiny / "data")
    contents = {f"{split}_files_sha256": file_list_sha256(folder, contents=True) for split, folder in splits.items()}
    assert study.user_attrs["data"] == {"data": str((tiny / "data").resolve()), "files_checksum": "contents",
                                        **contents}
    run = json.loads((Path(study.trials[0].user_attrs["out"]) / "run.json").read_text())
    assert run["files_checksum"] == "contents" and run["config"]["hash_images"] is True
    assert run["train_files_sha256"] == contents["train_files_sha256"]

    shutil.copytree(tiny / "data", tmp_path / "edited")
    image = _edit_an_image_to_the_same_size(tmp_path / "edited")
    assert image.stat().st_size == (tiny / "data" / image.relative_to(tmp_path / "edited")).stat().st_size
    for hashed in (["--hash-images"], []):
        code, err = _continued_on(tiny, out, tmp_path / "edited", capsys, *hashed)
        assert code == 2 and (f"(its train/ file list has sha256 {contents['train_files_sha256'][:16]}, of its "
                              f"relative paths, labels and each file's sha256); --data {tmp_path / 'edited'} has "
                              f"another train/ (sha256 ") in err, err
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 1

    shutil.copytree(tiny / "data", tmp_path / "copy")
    assert _continued_on(tiny, out, tmp_path / "copy", capsys)[0] == 0  # without --hash-images: the study's kind
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert len(study.trials) == 2 and study.user_attrs["data"]["files_checksum"] == "contents"
    run = json.loads((Path(study.trials[1].user_attrs["out"]) / "run.json").read_text())
    assert run["files_checksum"] == "contents" and run["val_files_sha256"] == contents["val_files_sha256"]


def _counting_image_reads(monkeypatch, data):
    """How many times each image under ``data`` is hashed in this process (``provenance.sha256_file``, which the
    trainer and the data checks call: its own cache holds 256 files, so on ImageNet each call reads the file)."""
    from neurozoo.convrnn.training import file_checksums
    from neurozoo.datasets import provenance

    monkeypatch.setattr(file_checksums, "CONTENTS_CHECKSUMS", {}, raising=False)  # none of an earlier test's
    reads, hashed = {}, provenance.sha256_file

    def counted(path, *args, **kwargs):
        if Path(path).resolve().is_relative_to(Path(data).resolve()):
            reads[str(Path(path).resolve())] = reads.get(str(Path(path).resolve()), 0) + 1
        return hashed(path, *args, **kwargs)

    monkeypatch.setattr(provenance, "sha256_file", counted)
    return reads


def _images(data):
    return sorted(str(path.resolve()) for path in Path(data).glob("*/*/*"))


def test_a_search_with_hash_images_reads_each_image_once_per_command(tiny, tmp_path, monkeypatch):
    """--hash-images read every image once for the study's data check, then again in every trial (20 trials on
    ImageNet: the set read 21 times). Now once per command; each trial's run.json still records the same contents
    checksum, the one file_list_sha256 computes from every byte."""
    from neurozoo.convrnn.training.file_checksums import file_list_sha256
    from neurozoo.convrnn.training.imagefolder import open_imagenet
    from neurozoo.leaderboard.cli import main

    reads = _counting_image_reads(monkeypatch, tiny / "data")
    out = tmp_path / "run"
    assert main(["search", *search_argv(tiny, out, 3, "--export", "0", "--no-record", "--hash-images",
                                        "--pruner", "none")]) == 0
    assert sorted(reads) == _images(tiny / "data") and set(reads.values()) == {1}, reads
    contents = {split: file_list_sha256(folder, contents=True) for split, folder in open_imagenet(tiny / "data").items()}
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}")
    assert len(study.trials) == 3
    for trial in study.trials:
        run = json.loads((Path(trial.user_attrs["out"]) / "run.json").read_text())
        assert run["files_checksum"] == "contents"
        assert (run["train_files_sha256"], run["val_files_sha256"]) == (contents["train"], contents["val"])


def test_an_image_edited_between_the_trials_of_a_search_is_read_again(tiny, tmp_path, monkeypatch):
    """The checksum a trial records is of the files it trained on: an image edited (to the same size) after the
    first trial was hashed gives the second trial's run.json the edited data's checksum, as when every trial read
    every image, and only the edited split is read again."""
    import shutil

    from neurozoo.convrnn.search.objective import Objective
    from neurozoo.convrnn.training.file_checksums import file_list_sha256
    from neurozoo.convrnn.training.imagefolder import open_imagenet
    from neurozoo.leaderboard.cli import main

    data = tmp_path / "data"
    shutil.copytree(tiny / "data", data)
    before = {split: file_list_sha256(folder, contents=True) for split, folder in open_imagenet(data).items()}
    reads = _counting_image_reads(monkeypatch, data)
    run, edited = Objective._run, []

    def edit_before_the_second_trial(self, trial):
        if trial.number == 1:
            edited.append(_edit_an_image_to_the_same_size(data))
        return run(self, trial)

    monkeypatch.setattr(Objective, "_run", edit_before_the_second_trial)
    argv = search_argv(tiny, tmp_path / "run", 2, "--export", "0", "--no-record", "--hash-images", "--pruner", "none")
    argv[argv.index("--data") + 1] = str(data)
    assert main(["search", *argv]) == 0
    reads = dict(reads)  # the search's
    after = {split: file_list_sha256(folder, contents=True) for split, folder in open_imagenet(data).items()}
    assert after["train"] != before["train"] and after["val"] == before["val"]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'run' / 'search.sqlite'}")
    recorded = [json.loads((Path(t.user_attrs["out"]) / "run.json").read_text()) for t in study.trials]
    assert [r["train_files_sha256"] for r in recorded] == [before["train"], after["train"]]
    assert [r["val_files_sha256"] for r in recorded] == [before["val"], before["val"]]
    train = [path for path in _images(data) if "/train/" in path]
    assert [reads[path] for path in train] == [2] * len(train)  # the check's (and trial 0's), then trial 1's
    assert {reads[path] for path in _images(data) if path not in train} == {1}


def test_the_local_workers_of_a_search_read_no_image_their_command_read(tiny, tmp_path, monkeypatch):
    """--workers K with --hash-images: each worker read every image in its data check and again in each trial (the
    command itself, none: K x (1 + trials) reads). The command reads them once and hands its checksums to the workers
    (workers.CHECKSUMS_ENV), which read none while the files are as they were."""
    from neurozoo.convrnn.search.cli import main

    reads = _counting_image_reads(monkeypatch, tiny / "data")
    log, hooks = tmp_path / "worker-reads.txt", tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(  # each worker's reads, appended to the log
        "import os\n"
        "if os.environ.get('WORKER_READS_LOG'):\n"
        "    from neurozoo.datasets import provenance\n"
        "    hashed = provenance.sha256_file\n"
        "    def counted(path, *args, **kwargs):\n"
        "        with open(os.environ['WORKER_READS_LOG'], 'a') as log:\n"
        "            log.write(os.path.realpath(path) + '\\n')\n"
        "        return hashed(path, *args, **kwargs)\n"
        "    provenance.sha256_file = counted\n"
        "    with open(os.environ['WORKER_READS_LOG'], 'a') as log:\n"
        "        log.write('started\\n')\n")
    _in_worker_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("PYTHONPATH", f"{hooks}{os.pathsep}{os.environ['PYTHONPATH']}")
    monkeypatch.setenv("WORKER_READS_LOG", str(log))
    argv = search_argv(tiny, tmp_path / "run", 2, "--workers", "2", "--export", "0", "--no-record", "--hash-images",
                       "--pruner", "none")
    assert main(argv) == 0
    assert sorted(reads) == _images(tiny / "data") and set(reads.values()) == {1}, reads
    lines = log.read_text().splitlines()
    assert lines.count("started") >= 2  # the hook counted in each worker (and in any other process started)
    assert [line for line in lines if line.startswith(str((tiny / "data").resolve()))] == []
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'run' / 'search.sqlite'}")
    assert len(study.trials) == 2 and study.user_attrs["data"]["files_checksum"] == "contents"
    for trial in study.trials:
        run = json.loads((Path(trial.user_attrs["out"]) / "run.json").read_text())
        assert run["val_files_sha256"] == study.user_attrs["data"]["val_files_sha256"]


@pytest.mark.parametrize("hashed", [True, False])
def test_the_local_workers_of_a_search_hash_the_images_as_their_command_says(tiny, hashed):
    """--workers K passes --hash-images on to each worker as the flag it is (a bare value would be refused by the
    worker's parser), and leaves it out without it."""
    from neurozoo.convrnn.search.cli import ZooArgumentParser, _passthrough, add_arguments

    parser = ZooArgumentParser(prog="zoo search")
    add_arguments(parser)
    argv = search_argv(tiny, "run", 4, "--workers", "2", *(["--hash-images"] if hashed else []))
    passed = _passthrough(parser.parse_args(argv))
    assert ("--hash-images" in passed) == hashed
    worker = parser.parse_args([*passed, "--trials", "2", "--workers", "1"])  # as workers.run_workers starts one
    assert worker.hash_images is hashed and worker.data == str(tiny / "data")


def test_a_study_of_sizes_continued_with_hash_images_is_compared_by_sizes_then_records_contents(tiny, tmp_path, capsys,
                                                                                                one_trial_study):
    """A study started without --hash-images recorded the sizes: continued with it, it is compared by them (its own
    data joins), then records the contents, so that an image edited to the same size is refused from then on."""
    import shutil

    out = tmp_path / "run"
    _searched_once(one_trial_study, out)
    shutil.copytree(tiny / "data", tmp_path / "copy")
    assert _continued_on(tiny, out, tmp_path / "copy", capsys, "--hash-images")[0] == 0
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}")
    assert study.user_attrs["data"]["files_checksum"] == "contents"
    _edit_an_image_to_the_same_size(tmp_path / "copy")
    code, err = _continued_on(tiny, out, tmp_path / "copy", capsys)
    assert code == 2 and "of its relative paths, labels and each file's sha256); --data" in err, err


def test_a_study_continued_with_another_pruner_or_seed_is_refused(tiny, tmp_path, capsys, one_trial_study):
    """--pruner and --seed were not compared: a rerun with --pruner halving stopped its trials by another rule than the
    study's median-pruned ones, and one with --seed 1 drew from another seed, both ranked with the earlier trials."""
    from neurozoo.leaderboard.cli import main

    out = tmp_path / "run"
    storage = f"sqlite:///{out / 'search.sqlite'}"
    study = _searched_once(one_trial_study, out)
    assert (study.user_attrs["pruner"], study.user_attrs["seed"]) == ("median", 0)
    capsys.readouterr()
    for option, value, message in (
            ("--pruner", "halving", "prunes its trials with --pruner median; this command gives --pruner halving, whose "
                                    "trials would be stopped by another rule than its earlier ones"),
            ("--seed", "1", "draws its trials with --seed 0; this command gives --seed 1, whose trials would be drawn "
                            "from another seed (a sequence no rerun replays)")):
        for workers in ("1", "2"):
            assert main(["search", *search_argv(tiny, out, 1, "--export", "0", option, value, "--workers", workers)]) == 2
            assert capsys.readouterr().err.endswith(
                f"zoo search: error: study 'tiny' {message} and ranked with theirs (TPE and the export): rerun with "
                f"{option} {study.user_attrs[option[2:]]}, or start a new study with --study NEW_NAME\n")
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 1
    assert main(["search", *search_argv(tiny, out, 1, "--export", "0", "--pruner", "median", "--seed", "0")]) == 0
    assert main(["search", *search_argv(tiny, out, 0, "--pruner", "none", "--no-record")]) == 0  # an export: not compared
    assert main(["search", *search_argv(tiny, out, 1, "--export", "0", "--pruner", "none", study="other")]) == 0
    assert optuna.load_study(study_name="other", storage=storage).user_attrs["pruner"] == "none"



def test_a_local_worker_killed_after_its_last_epoch_was_saved_has_its_trial_recorded_complete(one_trial_study,
                                                                                               tmp_path, capsys):
    """`zoo search --workers K` finds a worker dead without a report (SIGKILL, the out-of-memory killer) right after
    the checkpoint of its trial's last epoch, before optuna heard of it: the trial, RUNNING with its folder whole (as
    KILLED_AFTER_THE_LAST_EPOCH leaves it), is marked FAIL and recorded complete (``recovered_from``) with its value,
    not queued to run again. The command's line said only "died in trial 1 (marked failed)" of a trial it had just
    recorded complete, and "stopped the other workers" where there was none."""
    import shutil

    from neurozoo.convrnn.search.cli import _report_crash
    from neurozoo.convrnn.search.workers import WorkerRun

    out = tmp_path / "run"
    study = _searched_once(one_trial_study, out)
    (trained,) = study.trials
    folder, name = out / "tiny" / "trial_00001", "thishost:4242"
    shutil.copytree(trained.user_attrs["out"], folder)  # a whole trial's folder: last.pth of its last epoch
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, params=trained.params, distributions=trained.distributions,
        user_attrs={"config": trained.user_attrs["config"], "out": str(folder), "worker": name}))
    capsys.readouterr()
    _report_crash(study, WorkerRun(codes=[-signal.SIGKILL], names=[name], failed=0, crash=""), 2)
    err = capsys.readouterr().err.splitlines()
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                                         optuna.trial.TrialState.COMPLETE]  # none WAITING: nothing to run again
    recorded = trials[2]
    assert recorded.value == trained.value and recorded.params == trained.params
    assert recorded.user_attrs["recovered_from"] == 1 and recorded.user_attrs["out"] == str(folder)
    assert err[0].startswith(f"zoo search: trial 1 died after its last epoch was saved: recorded complete from "
                             f"{folder}")
    assert err[-1] == (f"zoo search: worker 1 of 1 ({name}) died in trial 1 (marked failed; recorded complete as trial "
                       f"2) on signal 9 without a report (killed? out of memory?); rerun to continue the study")
    # told of the same dead trial again (the heartbeat of another process): it is recorded already, not queued
    from neurozoo.convrnn.search.study import recover_dead_trial

    loaded = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}")
    recover_dead_trial(loaded, trials[1])
    assert [t.state for t in loaded.trials] == [t.state for t in trials]


class WorkerDied(BaseException):
    """A worker's death (SIGKILL, a lost machine) right after a saved epoch: nothing in it runs on, its trial stays
    RUNNING (no ``study.optimize`` to tell it)."""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("epochs", [2, 1])
def test_a_trial_of_a_worker_dead_on_another_machine_is_recovered_once_its_heartbeat_is_stale(
        tiny, tmp_path, request, monkeypatch, capsys, backend, epochs):
    """A trial whose worker died on another machine of a shared study (its heartbeat stale, its worker another host's:
    no process of this machine to look for) was marked FAIL by the next worker and never run again: with its epoch 1
    of 2 saved it stayed FAIL for good, TPE and the export ignoring its configuration. It is run again now (optuna's
    ``RetryHeartbeatStaleTrialCallback``: a WAITING trial with its parameters, user attribute ``retry_of``) and the
    worker that takes it resumes from the dead run's checkpoint (its folder readable here, as on a shared file
    system), training epoch 2 only; one whose last epoch was saved (epochs=1) is recorded complete from its folder
    instead (``recovered_from``), not run again. The heartbeat's age is set in the database, not waited for."""
    import warnings
    from datetime import datetime

    import sqlalchemy

    from neurozoo.convrnn.search.objective import Objective, TrialSettings
    from neurozoo.convrnn.search.space import load_space
    from neurozoo.convrnn.training import engine
    from neurozoo.leaderboard.cli import main

    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 's.sqlite'}"
    if url is None:
        pytest.skip("no PostgreSQL (set NEUROZOO_TEST_POSTGRES_URL)")
    out, name = tmp_path / "run", _study_name(request)
    storage = make_storage(url, heartbeat_interval=1, grace_period=2)
    study = open_study(name, storage, seed=0, pruner="median")
    with warnings.catch_warnings():  # "Heartbeat of storage is supposed to be used with Study.optimize": none runs
        warnings.simplefilter("ignore", UserWarning)
        trial = study.ask()  # the other machine's worker
    settings = TrialSettings(data=str(tiny / "data"), out=str(out), epochs=epochs, image_size=32, batch_size=6,
                             width_multiplier=1.0, device="cpu")
    fit = engine.Trainer.fit

    def dies_after_epoch_one(self, until_epoch=None):
        row = fit(self, until_epoch=until_epoch)
        if self.epoch == 1:
            raise WorkerDied
        return row

    with monkeypatch.context() as patch:
        patch.setattr(engine.Trainer, "fit", dies_after_epoch_one)
        with pytest.raises(WorkerDied):
            Objective(load_space(str(tiny / "tiny_space.yaml")), settings)(trial)
    trial.set_user_attr("worker", "othermachine:4242")
    storage.record_heartbeat(trial._trial_id)
    with storage.engine.begin() as connection:  # its last heartbeat long ago: its machine is gone
        connection.execute(sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = :then WHERE trial_id = :id"),
                           {"then": datetime(2000, 1, 1), "id": trial._trial_id})
    dead = Path(trial.user_attrs["out"])
    assert json.loads((dead / "run.json").read_text())["config"]["epochs"] == epochs
    (saved,) = [json.loads(line) for line in (dead / "metrics.jsonl").read_text().splitlines()
                if json.loads(line)["kind"] == "epoch"]  # its epoch 1, saved before it died (never reported)
    capsys.readouterr()
    argv = search_argv(tiny, out, 1 if epochs == 2 else 0, "--epochs", str(epochs), "--heartbeat", "1", "--grace", "2",
                       "--export", "0", "--no-record", storage=url, study=name)
    _in_worker_environment(monkeypatch, tmp_path)
    assert main(["search", *argv]) == 0  # the next worker, on this machine
    err = capsys.readouterr().err
    first, *others = optuna.load_study(study_name=name, storage=url).trials
    assert first.state == optuna.trial.TrialState.FAIL and first.user_attrs["worker"] == "othermachine:4242"
    (again,) = others  # no new draw: the worker's one trial is the dead one run again
    assert again.state == optuna.trial.TrialState.COMPLETE and again.params == first.params
    assert again.user_attrs["epochs_done"] == epochs
    # recovered before the rerun counts the study, which says what follows (it said "1 running")
    assert f"2 trials so far ({'1 complete, 1 fail' if epochs == 1 else '1 fail, 1 waiting'})" in err
    if epochs == 1:
        assert again.user_attrs["recovered_from"] == 0 and again.user_attrs["out"] == str(dead)
        assert again.value == saved["val_top1"] and again.intermediate_values == {0: saved["val_top1"]}
        assert "retry_of" not in again.user_attrs
        assert f"zoo search: trial 0 died after its last epoch was saved: recorded complete from {dead}" in err
        return
    assert again.user_attrs["retry_of"] == 0 and again.user_attrs["resumed_from"] == str(dead / "last.pth")
    assert list(again.intermediate_values) == [1]  # epoch 2 only: epoch 1 came from the checkpoint
    run = json.loads((Path(again.user_attrs["out"]) / "run.json").read_text())
    assert run["finished"] is True and run["segments"][-1]["resumed_from"]["checkpoint"] == str(dead / "last.pth")
    assert run["segments"][-1]["start_step"] == saved["step"] > 0
    assert again.value == max(saved["val_top1"], again.intermediate_values[1])  # the checkpoint's best epoch counts
    assert (f"zoo search: trial 0 died unfinished: queued to run again (user attribute retry_of 0), to resume from its "
            f"checkpoint in {dead} where the worker that runs it can read it") in err


def _queued_again(study, dead, **params):
    """Trial 0 of ``study`` dead and run again, as ``study.recover_dead_trial`` queues it: WAITING, with its
    parameters (``params`` changed) and ``dead`` the folder of its earlier run (user attributes retry_of, resume_from)."""
    (trained,) = study.trials
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params={**trained.params, **params},
        distributions=trained.distributions, user_attrs={"retry_of": 0, "resume_from": [str(dead)]}))
    return trained


def _without_optimizer(path):
    state = torch.load(path, weights_only=True)
    del state["optimizer"]
    torch.save(state, path)


#: damaged checkpoints, and the start of the reason each is refused (``{path}``: the checkpoint, escaped)
DAMAGED_CHECKPOINTS = {
    "cut short": (lambda path: path.write_bytes(path.read_bytes()[:path.stat().st_size // 2]),
                  r"checkpoint {path}: not a readable PyTorch file of tensors \("),
    "not a zip or pickle": (lambda path: path.write_bytes(b"not a checkpoint at all"),
                            r"checkpoint {path}: not a readable PyTorch file of tensors \("),
    "other fields": (lambda path: torch.save({"weights": torch.ones(1)}, path),
                     r"checkpoint {path} lacks fields \['epoch', 'global_step', 'model'\]"),
    "no optimizer state": (_without_optimizer,
                           r"--resume {path}: the checkpoint lacks field \['optimizer'\], which a resume reads"),
}


@pytest.mark.parametrize("damage", list(DAMAGED_CHECKPOINTS))
def test_a_dead_trial_whose_checkpoint_is_damaged_is_run_again_afresh_saying_why(tiny, tmp_path, one_trial_study,
                                                                                damage):
    """A dead trial run again resumed from its earlier run's last.pth whatever the file held: a damaged one (cut short
    by a full disk, another file) stopped the whole study with the trainer's error (one without its optimizer state,
    with a KeyError and a traceback). The trial now warns, naming the file and what is wrong with it, records it
    (user attribute resume_refused) and trains afresh from its parameters: the same training as the first run's."""
    import shutil

    from neurozoo.leaderboard.cli import main

    out = tmp_path / "run"
    study = _searched_once(one_trial_study, out)
    dead = out / "tiny" / "dead_run"
    shutil.copytree(study.trials[0].user_attrs["out"], dead)
    checkpoint = dead / "last.pth"
    damaged, reason = DAMAGED_CHECKPOINTS[damage]
    damaged(checkpoint)
    trained = _queued_again(study, dead)
    reason = reason.format(path=re.escape(str(checkpoint)))
    with pytest.warns(UserWarning, match=rf"^trial 1 \(trial 0 run again\): not resumed from {re.escape(str(checkpoint))}: "
                                         rf"{reason}.*; trained afresh from its parameters \(user attribute "
                                         rf"resume_refused\)$"):
        assert main(["search", *search_argv(tiny, out, 1, "--export", "0")]) == 0
    _, again = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials
    assert again.state == optuna.trial.TrialState.COMPLETE and again.params == trained.params
    assert "resumed_from" not in again.user_attrs
    (refused,) = again.user_attrs["resume_refused"]
    assert refused["checkpoint"] == str(checkpoint) and re.match(reason, refused["error"])
    assert "another --out" not in refused["error"]  # zoo train's advice: the search trains afresh itself
    assert list(again.intermediate_values) == [0] and again.user_attrs["epochs_done"] == 1
    assert again.value == trained.value  # trained afresh: the first run's training again
    run = json.loads((Path(again.user_attrs["out"]) / "run.json").read_text())
    assert run["finished"] is True and [segment["resumed_from"] for segment in run["segments"]] == [None]


def test_a_dead_trial_run_again_reads_its_checkpoint_once(tiny, tmp_path, one_trial_study, monkeypatch):
    """A retried trial read its dead run's last.pth twice: to check it (objective.checkpoint_refusal), then in the
    trainer, which resumed it. It is read once now, the trainer given the state read (``resume_state``), and the
    trial resumes from it as before."""
    import shutil

    from neurozoo.convrnn.training import checkpoint as checkpoints
    from neurozoo.leaderboard.cli import main

    out = tmp_path / "run"
    study = _searched_once(one_trial_study, out)
    dead = out / "tiny" / "dead_run"
    shutil.copytree(study.trials[0].user_attrs["out"], dead)
    trained = _queued_again(study, dead)
    reads, read = [], checkpoints.read_torch_file

    def counted(path, *args, **kwargs):
        reads.append(Path(path))
        return read(path, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "read_torch_file", counted)
    assert main(["search", *search_argv(tiny, out, 1, "--export", "0")]) == 0
    _, again = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials
    assert again.user_attrs["resumed_from"] == str(dead / "last.pth") and again.params == trained.params
    assert reads.count(dead / "last.pth") == 1, reads
    run = json.loads((Path(again.user_attrs["out"]) / "run.json").read_text())
    assert run["segments"][-1]["resumed_from"]["checkpoint"] == str(dead / "last.pth")
    # the dead run's part, then this one's from the checkpoint's step (its epoch held all: nothing left to train)
    assert [segment["start_step"] > 0 for segment in run["segments"]] == [False, True]


@pytest.mark.parametrize("other", ["graph", "training"])
def test_a_dead_trial_run_again_never_resumes_the_checkpoint_of_another_configuration(tiny, tmp_path, one_trial_study,
                                                                                     other):
    """The folder a dead trial ran in may hold another configuration's last.pth (another study's trial of that number
    under a relative --out on another machine): resumed, the trial trained that configuration's weights on, or the
    trainer's refusal stopped the whole study. Another graph (a cell's parameter) and other searched training
    hyperparameters (train.weight_decay) are refused like a damaged file: the trial trains afresh, saying why."""
    from neurozoo.leaderboard.cli import main

    out = tmp_path / "run"
    study = _searched_once(one_trial_study, out)
    (trained,) = study.trials
    name, distribution = next((key, d) for key, d in trained.distributions.items()
                              if isinstance(d, optuna.distributions.FloatDistribution)
                              and key.startswith("train.") == (other == "training"))
    value = distribution.low if trained.params[name] != distribution.low else distribution.high
    checkpoint = Path(trained.user_attrs["out"]) / "last.pth"  # trial 0's, of its own configuration
    _queued_again(study, checkpoint.parent, **{name: value})
    reason = (rf"checkpoint {re.escape(str(checkpoint))} was trained with {re.escape(name)} {trained.params[name]!r}; "
              rf"this trial's configuration has {re.escape(name)} {value!r}" if other == "training" else
              rf"--resume {re.escape(str(checkpoint))}: the checkpoint was trained as another graph than this run "
              rf"builds from")
    with pytest.warns(UserWarning, match=rf"^trial 1 \(trial 0 run again\): not resumed from "
                                         rf"{re.escape(str(checkpoint))}: {reason}.*; trained afresh") as caught:
        assert main(["search", *search_argv(tiny, out, 1, "--export", "0")]) == 0
    _, again = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'search.sqlite'}").trials
    assert again.state == optuna.trial.TrialState.COMPLETE and again.params[name] == value
    assert "resumed_from" not in again.user_attrs and re.match(reason, again.user_attrs["resume_refused"][0]["error"])
    # the trainer's refusal (another graph) without zoo train's advice ("... or train afresh into another --out"):
    # the search trains the trial afresh itself
    refusals = [str(w.message) for w in caught if "not resumed from" in str(w.message)]
    refusals.append(again.user_attrs["resume_refused"][0]["error"])
    assert len(refusals) == 2 and not [text for text in refusals if "another --out" in text or "resume with" in text]
    assert list(again.intermediate_values) == [0]
    run = json.loads((Path(again.user_attrs["out"]) / "run.json").read_text())
    assert [segment["resumed_from"] for segment in run["segments"]] == [None]
    assert run["config"]["weight_decay"] == again.params.get("train.weight_decay", run["config"]["weight_decay"])


def test_the_command_of_local_workers_counts_a_trial_whose_heartbeat_is_stale_as_dead_not_running(tiny, tmp_path,
                                                                                                    capsys):
    """`zoo search --workers K` opened the storage without a heartbeat (its workers run the trials), so its
    "continuing" line counted a dead worker's trial (RUNNING in the storage, its heartbeat stale) as running until a
    worker recovered it. It tells such a trial by optuna's own test (the storage's ``_get_stale_trial_ids``, by the
    command's --heartbeat and --grace) and counts it apart, dead, awaiting its recovery by the first worker to start a
    trial; a trial whose heartbeat is fresh is running. The heartbeat's age is set in the database."""
    import warnings
    from datetime import datetime

    import sqlalchemy

    from neurozoo.leaderboard.cli import main

    out = tmp_path / "run"
    out.mkdir()
    url = f"sqlite:///{out / 'search.sqlite'}"
    storage = make_storage(url, heartbeat_interval=60, grace_period=120)
    study = open_study("tiny", storage, seed=0, pruner="median")
    with warnings.catch_warnings():  # "Heartbeat of storage is supposed to be used with Study.optimize": none runs
        warnings.simplefilter("ignore", UserWarning)
        dead, alive = study.ask(), study.ask()
    for trial in (dead, alive):
        storage.record_heartbeat(trial._trial_id)
    with storage.engine.begin() as connection:  # its worker's last heartbeat long ago
        connection.execute(sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = :then WHERE trial_id = :id"),
                           {"then": datetime(2000, 1, 1), "id": dead._trial_id})
    capsys.readouterr()
    assert main(["search", *search_argv(tiny, out, 0, "--workers", "2", "--heartbeat", "60", "--export", "0",
                                        "--no-record")]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f"zoo search: continuing study 'tiny' in {url}: 2 trials so far (1 running, 1 dead); 1 dead (trial 0: "
        f"running in the storage, its worker's heartbeat stale): recovered by the first worker to start a trial")
    # told, not recovered: that is the workers' (the first to start a trial fails it, then runs it again)
    trials = optuna.load_study(study_name="tiny", storage=url).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.RUNNING] * 2


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_recovered_not_left_running(tmp_path, request,
                                                                                              capsys, backend):
    """optuna records a trial's first heartbeat as its objective starts, after the trial is created and drawn, and its
    stale check skips a running trial without one: a zoo search killed in between (kill -9 a few seconds in, the
    hard-kill audit) left the trial RUNNING for good, never failed nor run again, whatever the reruns. The check now
    gives such a trial a heartbeat (not failed at once: its worker may be alive and about to beat); once that is older
    than the grace period the trial is failed and queued again as any dead worker's. The age is set in the database,
    not waited for."""
    import warnings
    from datetime import datetime

    import sqlalchemy

    from neurozoo.convrnn.search.study import fail_stale_trials

    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 's.sqlite'}"
    if url is None:
        pytest.skip("no PostgreSQL (set NEUROZOO_TEST_POSTGRES_URL)")
    storage = make_storage(url, heartbeat_interval=1, grace_period=2)
    study = open_study(_study_name(request), storage, seed=0, pruner="median")
    with warnings.catch_warnings():  # "Heartbeat of storage is supposed to be used with Study.optimize": none runs
        warnings.simplefilter("ignore", UserWarning)
        silent, alive = study.ask(), study.ask()  # the killed worker's trial (no heartbeat ever), and a live one's
    fail_stale_trials(study)  # the rerun's check
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.RUNNING] * 2  # neither failed at once
    storage.record_heartbeat(alive._trial_id)  # the live worker's own first heartbeat: the row is there, renewed
    with storage.engine.begin() as connection:  # the silent trial's heartbeat now older than the grace period
        changed = connection.execute(sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = :then WHERE trial_id = :id"),
                                     {"then": datetime(2000, 1, 1), "id": silent._trial_id}).rowcount
    assert changed == 1  # the check gave it one (optuna's own gave none)
    fail_stale_trials(study)  # a later check
    dead, live, again = study.trials
    assert (dead.state, live.state) == (optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING)
    assert again.state == optuna.trial.TrialState.WAITING and again.user_attrs["retry_of"] == dead.number == 0
    assert "zoo search: trial 0 died unfinished: queued to run again (user attribute retry_of 0)" in capsys.readouterr().err
    # run again, it draws the configuration the dead trial 0 would have drawn (it died before drawing), not trial 2's
    drawn = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    straight = open_study("straight", optuna.storages.InMemoryStorage(), seed=0, pruner="median")
    expected = [straight.ask(drawn).params["x"] for _ in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        retried = study.ask(drawn)
    assert retried.number == 2 and retried.params["x"] == expected[0] != expected[2]



@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_trial_of_a_worker_dead_on_this_host_is_recovered_at_once_not_counted_running(tmp_path, request, capsys,
                                                                                        backend):
    """A zoo search killed (SIGKILL, the out-of-memory killer) and run again within the grace period (2 minutes by
    default) said "1 trial(s) so far (1 running)" of the dead process's trial and ran its new trials beside it; the
    trial was recovered only by a later command, once its heartbeat was stale. A trial whose worker is a process of
    this host that no longer exists is recovered at once, as zoo run and zoo work release such a worker's job; a live
    process's trial, and another host's (whose process this host cannot see), wait for their heartbeat as before."""
    import warnings

    from neurozoo.convrnn.search.study import fail_stale_trials
    from neurozoo.datasets.cache import worker_name

    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 's.sqlite'}"
    if url is None:
        pytest.skip("no PostgreSQL (set NEUROZOO_TEST_POSTGRES_URL)")
    storage = make_storage(url, heartbeat_interval=60, grace_period=120)  # zoo search's defaults: nothing stale yet
    study = open_study(_study_name(request), storage, seed=0, pruner="median")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with warnings.catch_warnings():  # "Heartbeat of storage is supposed to be used with Study.optimize": none runs
        warnings.simplefilter("ignore", UserWarning)
        trials = [study.ask() for _ in range(3)]
    for trial, worker in zip(trials, (worker_name(gone.pid), worker_name(), f"othermachine:{gone.pid}")):
        trial.set_user_attr("worker", worker)
        storage.record_heartbeat(trial._trial_id)  # all fresh: the killed one beat seconds before it died
    fail_stale_trials(study)  # the rerun's check
    dead, live, other, again = study.trials
    assert [t.state for t in (dead, live, other)] == [optuna.trial.TrialState.FAIL] + [
        optuna.trial.TrialState.RUNNING] * 2
    assert again.state == optuna.trial.TrialState.WAITING and again.user_attrs["retry_of"] == dead.number == 0
    assert "zoo search: trial 0 died unfinished: queued to run again (user attribute retry_of 0)" in capsys.readouterr().err
    fail_stale_trials(study)  # told again: recovered once
    assert len(study.trials) == 4

def test_trials_that_diverge_at_the_search_defaults_explode_before_any_update_whatever_the_lr():
    """Why --lr keeps its default 0.05 (zoo train's went from 0.1 to 0.01): on a CPU at the defaults (SGD, momentum
    0.9, width 0.25, 224 px, batch 4, constant rate, 6 steps; docs/convrnn.md), timedecay and most RGC draws of the
    built-in spaces diverged within 1-5 steps at 0.05 and as often at 0.01 (ugrnn trained at both), because they
    diverge before training: draws 1 and 2 of rgc_local (seed 0) come out of initialisation with logits growing about
    5-8-fold per time step, so that their first loss is ~5e4 and no learning rate saves them; the search prunes them
    before training as exploded at initialisation (the next test). Draw 0 stays bounded."""
    space = load_space("rgc_local")
    study = open_study("s", make_storage("sqlite:///:memory:", heartbeat_interval=None), seed=0, pruner="none")
    peaks = []
    for _ in range(3):
        trial = study.ask()
        config = space.sample(trial)
        study.tell(trial, 0.0)
        torch.manual_seed(0)
        model = convrnn.create_model(space.spec(config), width_multiplier=0.25, num_classes=10).eval()
        with torch.no_grad():
            logits = model(torch.randn(2, 3, 64, 64)).logits
        peaks.append([float(logits[t].abs().max()) for t in range(logits.shape[0])])
    assert max(peaks[0]) < 2
    for peak in peaks[1:]:
        assert peak[-1] > 1e5 and peak[-1] / peak[-2] > 4  # and still growing at the last step


def test_a_draw_that_explodes_at_initialisation_is_pruned_before_any_update_with_its_own_reason(tiny, tmp_path,
                                                                                             monkeypatch, capsys):
    """Draw 1 of rgc_local (seed 0; the test above) trained: its first loss was ~5e4 and it "diverged" within 2-4
    steps, recorded as a learning-rate divergence after the time of those steps. The objective now looks at the
    untrained model on the trial's first batch (one forward, no gradient) and ends such a trial PRUNED before any
    optimiser step, marked ``exploded`` with its loss and the growth of its output per time step, and counted apart
    in the study's summary."""
    from argparse import Namespace

    from neurozoo.convrnn.search import cli
    from neurozoo.convrnn.search.objective import Objective, TrialSettings
    from neurozoo.convrnn.training.engine import Trainer

    def no_training(self, epoch):
        raise AssertionError("an exploding draw was trained")

    monkeypatch.setattr(Trainer, "train_one_epoch", no_training)
    space = load_space("rgc_local")
    storage = f"sqlite:///{tmp_path / 's.sqlite'}"
    study = open_study("s", storage, seed=0, pruner="none")
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # draw 0, not run: trial 1 is draw 1
    settings = TrialSettings(data=str(tiny / "data"), out=str(tmp_path / "run"), image_size=64, batch_size=2,
                             device="cpu", progress=True)
    study.optimize(Objective(space, settings), n_trials=1)
    trial = study.trials[1]
    assert trial.state == optuna.trial.TrialState.PRUNED and "diverged" not in trial.user_attrs
    exploded = trial.user_attrs["exploded"]
    assert exploded["loss"] > 1e3 > 10 * math.log(3) and exploded["growth"] > 4, exploded
    assert re.fullmatch(r"exploded at initialisation: loss \S+ at step 0, output grows \S+x per time step "
                        r"\(largest \|logit\| \S+ at time step 16\)", exploded["error"]), exploded["error"]
    assert f"trial 1: {exploded['error']}; pruned, not trained" in capsys.readouterr().out
    args = Namespace(quiet=False, report=None, export=0, record=False, out=str(tmp_path / "run"))
    assert cli.export(args, space, storage, "s", settings) == 0
    assert capsys.readouterr().out == ("study 's': 1 fail, 1 pruned (1 exploded at initialisation: pruned before "
                                       "training)\n")


def test_the_look_at_the_untrained_model_leaves_a_sound_draw_training_as_before(tiny, tmp_path, monkeypatch):
    """A sound draw passes the look (its first loss near ln 3) and trains to the same weights as without it: the
    first batch is read from the dataset, not the loader, and the buffers and random streams are put back."""
    from neurozoo.convrnn.search.objective import Objective, TrialSettings
    from neurozoo.convrnn.training.engine import Trainer

    space = SearchSpace.from_dict(TINY_SPACE, base_dir=str(tiny))
    looks = []
    look = Trainer.first_batch_output

    def recorded(self):
        looks.append(look(self))
        return looks[-1]

    weights = []
    for checked in (True, False):
        monkeypatch.setattr(Trainer, "first_batch_output", recorded if checked else
                            lambda self: (0.0, torch.zeros(1, 1, 3)))
        study = open_study("s", make_storage(f"sqlite:///{tmp_path / f'{checked}.sqlite'}", heartbeat_interval=None),
                           seed=0, pruner="none")
        settings = TrialSettings(data=str(tiny / "data"), out=str(tmp_path / str(checked)), image_size=32,
                                 batch_size=6, width_multiplier=1.0, device="cpu")
        study.optimize(Objective(space, settings), n_trials=1)
        (trial,) = study.trials
        assert trial.state == optuna.trial.TrialState.COMPLETE and "exploded" not in trial.user_attrs
        weights.append(torch.load(Path(trial.user_attrs["out"]) / "last.pth", weights_only=False)["model"])
    (loss, logits), = looks
    assert abs(loss - math.log(3)) < 0.5 and logits.shape[1:] == (6, 3) and torch.isfinite(logits).all()
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name


def test_a_draw_pruned_at_initialisation_says_so_and_why_in_its_run_json(tiny, tmp_path):
    """The study recorded why an exploding draw was pruned (user attribute ``exploded``), but the trial's own run.json
    said only what a run killed without a word says (``finished`` false, its segment's ``outcome`` null). It says now
    that the trial was pruned, at which step and why, in the study's words, and never that it finished."""
    from neurozoo.convrnn.search.objective import Objective, TrialSettings

    storage = f"sqlite:///{tmp_path / 's.sqlite'}"
    study = open_study("s", storage, seed=0, pruner="none")
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # draw 0, not run: trial 1 is draw 1 (it explodes)
    settings = TrialSettings(data=str(tiny / "data"), out=str(tmp_path / "run"), image_size=64, batch_size=2,
                             device="cpu")
    study.optimize(Objective(load_space("rgc_local"), settings), n_trials=1)
    trial = study.trials[1]
    assert trial.state == optuna.trial.TrialState.PRUNED
    reason = trial.user_attrs["exploded"]["error"]
    assert reason.startswith("exploded at initialisation: loss ")
    folder = Path(trial.user_attrs["out"])
    run = json.loads((folder / "run.json").read_text())
    assert run["finished"] is False and run["final_epoch"] is None and run["diverged"] is None
    assert run["pruned"] == {"epoch": 0, "step": 0, "reason": reason}
    (segment,) = run["segments"]
    assert segment["outcome"] == "pruned" and segment["end_step"] == 0 and segment["reason"] == reason
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "metrics.jsonl", "run.json", "spec.yaml"]
    # and the study keeps it as well (optuna keeps no message with a pruned trial)
    assert {key: trial.user_attrs[key] for key in ("pruned_reason", "pruned_epoch", "pruned_step")} == \
        {"pruned_reason": reason, "pruned_epoch": 0, "pruned_step": 0}


def test_zoo_search_help_says_what_a_pruned_trial_is_and_where_it_says_why(capsys):
    """--help said nothing of the trials pruned before training (a draw that explodes at initialisation, whatever
    --pruner, also "none") nor of diverged ones, though the study's totals count them apart."""
    from neurozoo.convrnn.search.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the options' help
    assert ("before any training, whatever --pruner: its untrained model's loss on its first batch exceeds "
            "10 ln(classes)") in text, text
    assert '"exploded at initialisation"' in text and '"diverged"' in text
    assert ("each trial's run.json (OUT/<study>/trial_<N>/run.json) says why it was pruned (pruned: its epoch, step "
            "and reason; diverged: a divergence's)") in text
    assert "how trials are stopped after an epoch (draws that explode at initialisation are pruned before training " \
           "whatever the pruner;" in text


def test_zoo_search_help_says_which_spaces_the_lr_applies_to(capsys):
    """It said only "default 0.05", which never applies to the default space: rgc_intermediate searches train.lr."""
    from neurozoo.convrnn.search.objective import TrialSettings
    from neurozoo.leaderboard.cli import main

    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("--lr LR learning rate of every trial, for a space that does not search train.lr, as the built-in "
            "rgc_local (default 0.05); the default space, rgc_intermediate, searches it: each trial draws its own from "
            "train.lr, and --lr is refused") in text
    # what it says is so: the spaces named, the default space and the default rate
    assert ["lr" in load_space(name).train for name in ("rgc_local", "rgc_intermediate")] == [False, True]
    assert "--space SPACE search-space YAML file or built-in space name (convrnn/search/spaces) (default: " \
           "rgc_intermediate)" in text
    assert TrialSettings.lr == 0.05


def _pruned_after_epoch_one(tiny, out, **extra):
    """A trial of the tiny space trained for one of two epochs and stopped there by a pruner that stops every trial
    (``ThresholdPruner``: below 101 % top-1), as the median pruner stops a poor one; its study."""
    return _two_epoch_trial(tiny, out, optuna.pruners.ThresholdPruner(lower=101), **extra)


def _two_epoch_trial(tiny, out, pruner, earlier=(), **extra):
    """The study of one trial of the tiny space (its first draw, seed 0) trained for two epochs under ``pruner``,
    after the ``earlier`` trials (``optuna.trial.create_trial``); ``extra``: its other TrainConfig fields
    (``resume``)."""
    from neurozoo.convrnn.search.objective import Objective, TrialSettings

    space = SearchSpace.from_dict(TINY_SPACE, base_dir=str(tiny))
    study = optuna.create_study(study_name="s", direction="maximize", pruner=pruner,
                                sampler=optuna.samplers.TPESampler(seed=0))
    study.add_trials(earlier)
    settings = TrialSettings(data=str(tiny / "data"), out=str(out), epochs=2, image_size=32, batch_size=6,
                             width_multiplier=1.0, device="cpu", extra=extra)
    study.optimize(Objective(space, settings), n_trials=1)
    return study


def test_a_trial_stopped_by_the_pruner_says_so_and_why_in_its_run_json(tiny, tmp_path):
    """A trial the pruner stopped after an epoch left a run.json that read as a run killed without a word
    (``finished`` false, its segment's ``outcome`` null). It says now that the trial was pruned, at which step, by which
    pruner and at what validation top-1: the value the trial reported."""
    (trial,) = _pruned_after_epoch_one(tiny, tmp_path / "run").trials
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.user_attrs["epochs_done"] == 1
    accuracy = trial.intermediate_values[0]
    run = json.loads((Path(trial.user_attrs["out"]) / "run.json").read_text())
    steps = 3  # 18 training images in batches of 6
    reason = f"pruned at step {steps} (epoch 1 of 2) by ThresholdPruner: val top-1 {accuracy:.2f}%"
    assert run["finished"] is False and run["final_epoch"] is None and run["diverged"] is None
    assert run["pruned"] == {"epoch": 1, "step": steps, "reason": reason}
    (segment,) = run["segments"]
    assert segment["outcome"] == "pruned" and segment["end_step"] == steps and segment["reason"] == reason


def test_a_trial_the_median_pruner_stops_keeps_why_in_the_study(tiny, tmp_path):
    """optuna keeps no message with a pruned trial: why the pruner stopped it was in its run.json and optuna's log
    only, not in the study (``trials_dataframe``, a study shared with other machines). The study keeps it now, as the
    user attributes ``pruned_reason``, ``pruned_epoch`` and ``pruned_step``: here the median pruner (``--pruner
    median``) stops a trial after epoch 1 of 2, below two earlier trials' 101 %."""
    from neurozoo.convrnn.search.study import make_pruner

    earlier = [optuna.trial.create_trial(value=101.0, intermediate_values={0: 101.0, 1: 101.0}) for _ in range(2)]
    study = _two_epoch_trial(tiny, tmp_path / "run", make_pruner("median"), earlier=earlier)
    trial = study.trials[2]
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.user_attrs["epochs_done"] == 1
    reason = f"pruned at step 3 (epoch 1 of 2) by MedianPruner: val top-1 {trial.intermediate_values[0]:.2f}%"
    assert (trial.user_attrs["pruned_reason"], trial.user_attrs["pruned_epoch"], trial.user_attrs["pruned_step"]) == \
        (reason, 1, 3)
    assert json.loads((Path(trial.user_attrs["out"]) / "run.json").read_text())["pruned"]["reason"] == reason
    frame = study.trials_dataframe()
    assert list(frame["user_attrs_pruned_reason"].fillna("")) == ["", "", reason]


def test_the_explosion_check_looks_at_a_fresh_trial_only_not_at_a_resumed_ones_trained_weights(tiny, tmp_path,
                                                                                               monkeypatch):
    """The look at the untrained model (``Trainer.first_batch_output``) ran whatever the weights: a trial resumed from a
    checkpoint (``TrialSettings.extra`` ``resume``, as ``zoo search`` resumes a dead trial it runs again) was looked at
    on its trained weights and could be pruned as "exploded at initialisation". It also could not resume at all: its
    first epoch was already trained, so the trainer returned no row for it (KeyError 'val_top1'). A fresh trial is
    looked at once; a resumed one is not, and trains on from its checkpoint's epoch."""
    from neurozoo.convrnn.training.engine import Trainer

    looks = []
    look = Trainer.first_batch_output

    def counted(self):
        looks.append(self.global_step)
        return look(self)

    monkeypatch.setattr(Trainer, "first_batch_output", counted)
    (pruned,) = _pruned_after_epoch_one(tiny, tmp_path / "fresh").trials
    assert looks == [0] and pruned.state == optuna.trial.TrialState.PRUNED
    checkpoint = Path(pruned.user_attrs["out"]) / "last.pth"
    # epoch 2 is the trial's last: it is not pruned after it
    (resumed,) = _pruned_after_epoch_one(tiny, tmp_path / "resumed", resume=str(checkpoint)).trials
    assert looks == [0], "a resumed trial was looked at as if untrained"
    assert resumed.state == optuna.trial.TrialState.COMPLETE and resumed.user_attrs["epochs_done"] == 2
    assert list(resumed.intermediate_values) == [1] and resumed.value == resumed.intermediate_values[1]
    run = json.loads((Path(resumed.user_attrs["out"]) / "run.json").read_text())
    assert run["finished"] is True and run["segments"][-1]["resumed_from"]["checkpoint"] == str(checkpoint)
    assert run["segments"][-1]["start_step"] == 3 and run["segments"][-1]["outcome"] == "finished"


def test_a_trial_resumed_from_a_checkpoint_of_all_its_epochs_returns_the_uninterrupted_trials_value(tiny, tmp_path):
    """A trial resumed (``TrialSettings.extra`` ``resume``) from a checkpoint that already holds all its epochs trained
    nothing and returned -inf: optuna recorded it COMPLETE at -inf, below every pruned trial, with no epochs_done, and
    its folder held no weights (the trainer writes best.pth for an epoch it trains). It returns the value of the
    trained model, the one the uninterrupted trial returned (its best epoch's top-1), reports its last epoch's top-1 as
    that trial did, its run.json says finished and its folder holds the best epoch's weights, which its export names."""
    from neurozoo.convrnn.search.export import export_specs

    (whole,) = _two_epoch_trial(tiny, tmp_path / "whole", optuna.pruners.NopPruner()).trials
    assert whole.state == optuna.trial.TrialState.COMPLETE and sorted(whole.intermediate_values) == [0, 1]
    trained = Path(whole.user_attrs["out"])
    study = _two_epoch_trial(tiny, tmp_path / "resumed", optuna.pruners.NopPruner(), resume=str(trained / "last.pth"))
    (resumed,) = study.trials
    assert resumed.state == optuna.trial.TrialState.COMPLETE
    assert resumed.value == whole.value == max(whole.intermediate_values.values())
    assert resumed.intermediate_values == {1: whole.intermediate_values[1]}  # the final weights scored again
    assert resumed.user_attrs["epochs_done"] == 2
    folder = Path(resumed.user_attrs["out"])
    run = json.loads((folder / "run.json").read_text())
    assert run["finished"] is True and run["final_epoch"] == 2
    assert run["segments"][-1]["outcome"] == "finished" and run["segments"][-1]["start_step"] == 6
    assert (folder / "best.pth").read_bytes() == (trained / "best.pth").read_bytes()
    export_specs(study, SearchSpace.from_dict(TINY_SPACE, base_dir=str(tiny)), tmp_path / "export")
    assert json.loads((tmp_path / "export" / "s_best1.json").read_text())["weights"] == str(folder / "best.pth")


def test_a_trial_resumed_after_its_best_epoch_returns_that_epochs_top1(tiny, tmp_path, monkeypatch):
    """The value of a trial is its best epoch's top-1; a resumed trial returned the best of the epochs it trained
    itself, so one whose checkpoint held a better epoch than those after the resume scored below the uninterrupted
    trial, and its folder held no weights of that epoch. Here epoch 2 scores half epoch 1's (as a later epoch may
    score lower): the value is epoch 1's, which the checkpoint holds (``best_top1``), with epoch 1's weights."""
    from neurozoo.convrnn.training.engine import Trainer

    (pruned,) = _pruned_after_epoch_one(tiny, tmp_path / "first").trials
    first = pruned.intermediate_values[0]
    assert first > 0
    evaluate = Trainer.evaluate
    monkeypatch.setattr(Trainer, "evaluate", lambda self: {**(row := evaluate(self)), "val_top1": row["val_top1"] / 2})
    trained = Path(pruned.user_attrs["out"])
    (resumed,) = _pruned_after_epoch_one(tiny, tmp_path / "resumed", resume=str(trained / "last.pth")).trials
    assert resumed.state == optuna.trial.TrialState.COMPLETE and resumed.intermediate_values[1] <= first / 2
    assert resumed.value == first
    assert (Path(resumed.user_attrs["out"]) / "best.pth").read_bytes() == (trained / "best.pth").read_bytes()
    assert "val_top5" not in resumed.user_attrs  # epoch 1's top-5 is not in its checkpoint; not epoch 2's instead


def test_a_trials_top5_is_its_best_epochs_as_its_value_and_weights_are(tiny, tmp_path, monkeypatch):
    """A trial's value is its best epoch's top-1 and its exported weights are that epoch's (best.pth), but its
    ``val_top5`` (in the export's provenance and score record) was its last epoch's. Here epoch 2 scores below epoch
    1 with another top-5: the trial keeps epoch 1's."""
    from neurozoo.convrnn.training.engine import Trainer

    evaluate, rows = Trainer.evaluate, []

    def second_epoch_worse(self):
        rows.append(evaluate(self))
        if self.epoch == 1:  # epoch 2's validation
            return {**rows[-1], "val_top1": rows[-1]["val_top1"] / 2, "val_top5": 12.5}
        return rows[-1]

    monkeypatch.setattr(Trainer, "evaluate", second_epoch_worse)
    (trial,) = _two_epoch_trial(tiny, tmp_path / "run", optuna.pruners.NopPruner()).trials
    assert trial.value == trial.intermediate_values[0] == rows[0]["val_top1"] > trial.intermediate_values[1]
    assert trial.user_attrs["val_top5"] == rows[0]["val_top5"] != 12.5 and trial.user_attrs["epochs_done"] == 2


def test_a_space_that_searches_the_lr_records_it_as_searched_and_resumes_whatever_the_default_lr(tmp_path):
    """The study recorded the command's default --lr (0.05) even where the space draws every trial's rate; with
    another default, its rerun was refused ('trains its trials with --lr 0.05') and --lr 0.05 is refused for such a
    space: the study could not be resumed. Old studies that recorded a number for it are resumed too."""
    from neurozoo.convrnn.search.objective import TrialSettings
    from neurozoo.convrnn.search.study import check_settings, objective_settings
    from neurozoo.datasets.errors import UserFacingError

    (tmp_path / "tiny_base.yaml").write_text(yaml.safe_dump(TINY_BASE))
    searched = SearchSpace.from_dict(dict(TINY_SPACE, train={"lr": {"float": [0.01, 0.2], "log": True}}),
                                     base_dir=str(tmp_path))
    fixed_lr = SearchSpace.from_dict(TINY_SPACE, base_dir=str(tmp_path))
    old_default, new_default = TrialSettings(data="d", lr=0.05), TrialSettings(data="d", lr=0.1)
    recorded = objective_settings(old_default, searched)
    assert recorded["lr"] == "searched" and recorded["epochs"] == 1
    assert objective_settings(old_default, fixed_lr)["lr"] == 0.05
    study = optuna.create_study(study_name="s")
    study.set_user_attr("trial_settings", recorded)
    check_settings(study, new_default, space=searched)  # resumed under another default
    old = optuna.create_study(study_name="old")  # recorded by an earlier version: the number
    old.set_user_attr("trial_settings", objective_settings(old_default))
    check_settings(old, new_default, space=searched)
    with pytest.raises(UserFacingError, match="trains its trials with --epochs 1"):
        check_settings(old, TrialSettings(data="d", lr=0.1, epochs=2), space=searched)  # the rest still compared
    with pytest.raises(UserFacingError, match="trains its trials with --lr 0.05; this command gives 0.1"):
        check_settings(old, new_default, space=fixed_lr)  # a space without train.lr: --lr is the trials' rate


@pytest.mark.parametrize("marker", ["optuna", "alembic"])
def test_a_sigterm_as_zoo_search_starts_stops_it_saying_so_and_never_cuts_the_study_opening_short(tiny, tmp_path,
                                                                                                   marker):
    """A SIGTERM in zoo search's first seconds (importing optuna and torch, checking the data, opening the study) was
    SIGTERM's default: killed without a word, exit -15, wherever it was, a study's schema or its stale trials'
    recovery included. Now, before the study is opened, it stops at once (optuna's import does not finish, nothing is
    written); while it is opened (alembic imported as optuna creates the schema), the opening is finished first and
    the command stops at the safe point before the trials: the storage is whole, with no study or trial yet."""
    from test_score_stop import SIGNAL_AT_IMPORT

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "NEUROZOO_HOME": str(tmp_path / "home")}
    stopped = subprocess.run([sys.executable, "-c", SIGNAL_AT_IMPORT, marker, "search", *search_argv(tiny, out, 1)],
                             capture_output=True, text=True, timeout=300, env=env)
    assert (stopped.returncode, stopped.stderr.splitlines()[-1]) == (130, (
        "zoo search: interrupted (a running trial is marked FAIL, user attribute 'interrupted'; rerun to continue the "
        "study)")), stopped.stderr[-3000:]
    assert stopped.stdout.splitlines()[-1] == f"signalled: True; {marker} imported: {marker == 'alembic'}"
    if marker == "optuna":
        assert not out.exists()
    else:
        # the schema whole (optuna opens it), no study yet: the study is created with the first trial's worker
        assert optuna.get_all_study_names(storage=f"sqlite:///{out / 'search.sqlite'}") == []
        assert sorted(p.name for p in out.iterdir()) == ["search.sqlite"]
