"""The original TensorFlow variable names of a ConvRNN, and loading weights given under those names.

Names follow the variable scopes of neuroailab/convrnns: ``models/model_func.py`` opens ``tnn_model`` (line 165);
each node opens its own name (``utils/cells.py`` GenFuncCell, line 95, ``utils/median_rgcell.py``
tnn_median_ReciprocalGateCell, line 1069); ``pre_<i>`` / ``post_<i>`` number the JSON's pre_memory / post_memory
functions (utils/cells.py lines 115 and 161); the cell opens its class name
(``ReciprocalGateCell``, ``ConvUGRNNCell``, ...) and, for the RGC, the ``input`` / ``cell`` / ``out`` scopes of
``ReciprocalGateCell.__call__``. Kernels are stored HWIO ([kh, kw, in, out]; depthwise [kh, kw, in, 1]; fc
[in, out]) and transposed here onto PyTorch's OIHW.

``tf_variables(model)`` lists ``name -> (parameter, kind)``; ``load_tf_variables(model, arrays)`` copies arrays
keyed by those names (a checkpoint's extra variables, e.g. optimizer slots, are reported, not loaded).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import nn

from neurozoo.convrnn import cells as C
from neurozoo.datasets.errors import SpecError
from neurozoo.datasets.text_table import counted

#: kinds of layout change: "conv" HWIO->OIHW, "depthwise" HWI1->I1HW, "fc" IO->OI, "vector" as is
Entry = Tuple[nn.Parameter, str]


def _conv_entries(prefix: str, module: nn.Module, *, separable_scope: Optional[str] = None,
                  weights: str = "weights", bias: str = "bias") -> Dict[str, Entry]:
    """A SameConv2d (``prefix + weights`` / ``prefix + bias``) or a SeparableConv2d (``_ds_conv`` scope:
    utils/cell_utils.py lines 129-163, ``depthwise_weights``, ``pointwise_weights``, ``bias``)."""
    if isinstance(module, C.SeparableConv2d):
        scope = f"{prefix}{separable_scope}/"
        out = {scope + "depthwise_weights": (module.depthwise.weight, "depthwise"),
               scope + "pointwise_weights": (module.pointwise.weight, "conv")}
        if module.pointwise.bias is not None:
            out[scope + "bias"] = (module.pointwise.bias, "vector")
        return out
    out = {prefix + weights: (module.weight, "conv")}
    if module.bias is not None:
        out[prefix + bias] = (module.bias, "vector")
    return out


def _median_rgc(scope: str, cell: C.ReciprocalGatedCell) -> Dict[str, Entry]:
    """utils/median_rgcell.py ReciprocalGateCell (class from line 10): non-separable kernels are
    ``<scope>/<a>_to_<b>_weights`` (``cell_to_cell_weights`` line 298, ``out_to_cell_weights`` line 321, ...),
    separable ones ``_ds_conv`` scopes (tau, out_to_cell, input_to_cell, gate, cell_to_out, feedback, ...)."""
    s = f"{scope}/ReciprocalGateCell/"
    out: Dict[str, Entry] = {}

    def add(module, sub, sep_scope, name):
        if module is not None:
            out.update(_conv_entries(s + sub, module, separable_scope=sep_scope, weights=f"{name}_weights",
                                     bias=f"{name}_bias"))

    add(cell.input_to_cell_conv, "cell/", "input_to_cell", "input_to_cell")
    add(cell.res_to_cell, "cell/", "res_to_cell", "residual_to_cell")
    add(cell.cell_tau, "cell/", "tau", "cell_to_cell")
    add(cell.cell_gate, "cell/", "out_to_cell", "out_to_cell")
    add(cell.input_to_cell_tau, "cell/", None, "input_to_cell_tau")
    add(cell.res_to_cell_tau, "cell/", None, "residual_to_cell_tau")
    add(cell.input_to_cell_gate, "cell/", None, "input_to_cell_gate")
    add(cell.res_to_cell_gate, "cell/", None, "residual_to_cell_gate")
    add(cell.input_to_out_conv, "out/", "input_to_out", "input_to_out")
    add(cell.out_tau, "out/", "tau", "out_to_out")
    add(cell.out_gate, "out/", "gate", "cell_to_out")  # the non-separable out gate uses cell_to_out_weights
    add(cell.cell_to_out_conv, "out/", "cell_to_out", "cell_to_out")
    add(cell.input_to_out_tau, "out/", None, "input_to_out_tau")
    add(cell.res_to_out_tau, "out/", None, "residual_to_out_tau")
    add(cell.input_to_out_gate, "out/", None, "input_to_out_gate")
    add(cell.res_to_out_gate, "out/", "residual_to_out_gate", "residual_to_out_gate")
    entry = {"out": "out/", "cell": "cell/", "input": "input/"}[cell.feedback_entry]
    add(cell.feedback_conv, entry, "feedback", f"feedback_to_{cell.feedback_entry}")
    if cell.residual is not None and cell.residual.projection is not None:
        out[s + "out/residual_add_weights"] = (cell.residual.projection.weight, "conv")
    for norm, sub in ((cell.cell_norm, "cell/"), (cell.out_norm, "out/")):
        if norm is not None:
            out[s + sub + "layer_norm/gamma"] = (norm.weight, "vector")
            out[s + sub + "layer_norm/beta"] = (norm.bias, "vector")
    return out


def _cells_rgc(scope: str, cell: C.ReciprocalGatedCell) -> Dict[str, Entry]:
    """utils/cells.py ReciprocalGateCell (conv_bias=False; class line 886): every temporal op is
    ``_apply_temporal_op`` (lines 1394-1457) with a scope (input_to_cell, tau, gate, residual_to_out_gate, ...)
    holding ``weights`` (``_conv`` line 1205; no bias) or, separable, ``depthwise_weights``, ``pointwise_weights``
    and ``bias`` (``_ds_conv`` lines 1301-1361). The bypass is scope ``out/res_add`` (line 1694)."""
    s = f"{scope}/ReciprocalGateCell/"
    out: Dict[str, Entry] = {}
    pairs = [(cell.input_to_cell_conv, "cell/input_to_cell"), (cell.res_to_cell, "cell/res_to_cell"),
             (cell.cell_tau, "cell/tau"), (cell.cell_gate, "cell/gate"), (cell.out_tau, "out/tau"),
             (cell.out_gate, "out/gate"), (cell.cell_to_out_conv, "out/gate"),
             (cell.res_to_out_gate, "out/residual_to_out_gate")]
    entry = {"out": "out/feedback", "cell": "cell/feedback", "input": "input/feedback"}[cell.feedback_entry]
    pairs.append((cell.feedback_conv, entry))
    for module, name in pairs:
        if module is None:
            continue
        if isinstance(module, C.SeparableConv2d):
            out.update(_conv_entries(s + name.rsplit("/", 1)[0] + "/", module, separable_scope=name.rsplit("/", 1)[1]))
        else:
            out.update(_conv_entries(s + name + "/", module))
    if isinstance(cell.input_to_out_conv, C.SeparableConv2d):  # _ds_conv scope "input_to_out" (lines 1614-1633)
        out.update(_conv_entries(s + "out/", cell.input_to_out_conv, separable_scope="input_to_out"))
    elif cell.input_to_out_conv is not None:  # the kernel alone (line 1636; input_to_out_bias, 1651, is never added)
        out[s + "out/input_to_out_weights"] = (cell.input_to_out_conv.weight, "conv")
    if cell.residual is not None and cell.residual.projection is not None:
        out[s + "out/res_add/residual_add_weights"] = (cell.residual.projection.weight, "conv")
    return out


def cell_variables(scope: str, cell: C.RecurrentCell) -> Dict[str, Entry]:
    """The original variable names of one cell inside node ``scope`` (e.g. "tnn_model/conv4")."""
    if isinstance(cell, C.ReciprocalGatedCell):
        return _median_rgc(scope, cell) if cell.conv_bias else _cells_rgc(scope, cell)
    if isinstance(cell, C.TimeDecayCell):
        return {f"{scope}/memory_decay": (cell.memory_decay, "vector")}
    if isinstance(cell, C.UGRNNCell):
        return _conv_entries(f"{scope}/ConvUGRNNCell/", cell.conv)
    if isinstance(cell, C.ConvLSTMCell):
        return _conv_entries(f"{scope}/ConvLSTMCell/", cell.conv)
    if isinstance(cell, C.ConvIntersectionRNNCell):
        return _conv_entries(f"{scope}/ConvIntersectionRNNCell/", cell.conv)
    if isinstance(cell, C.ConvGRUCell):
        return {**_conv_entries(f"{scope}/ConvGRUCell/gates/", cell.gates),
                **_conv_entries(f"{scope}/ConvGRUCell/candidates/", cell.candidates)}
    if isinstance(cell, C.ConvSimpleRNNCell):
        out = {**_conv_entries(f"{scope}/ConvNormBasicCell/s/", cell.state_conv),
               **_conv_entries(f"{scope}/ConvNormBasicCell/i/", cell.input_conv)}
        if cell.norm is not None:
            out[f"{scope}/ConvNormBasicCell/layer_norm/gamma"] = (cell.norm.weight, "vector")
            out[f"{scope}/ConvNormBasicCell/layer_norm/beta"] = (cell.norm.bias, "vector")
        return out
    if isinstance(cell, C.IdentityCell):
        return {}
    raise SpecError(f"no TensorFlow variable names known for cell {type(cell).__name__}")


def tf_variables(model, root: str = "tnn_model") -> Dict[str, Entry]:
    """``original variable name -> (parameter, layout)`` for every parameter the original model has."""
    if model.spec.timm_backbone:
        raise SpecError(f"model {model.spec.name!r} has a timm backbone: the original has no such variables")
    out: Dict[str, Entry] = {}
    for name, layer in model.layers.items():
        scope = f"{root}/{name}"
        conv = layer.stage[0]
        out[f"{scope}/pre_0/weights_basenet"] = (conv.weight, "conv")
        if conv.bias is not None:
            out[f"{scope}/pre_0/bias"] = (conv.bias, "vector")
        out.update(cell_variables(scope, layer.cell))
        if layer.post is not None:
            out.update(_conv_entries(f"{scope}/post_0/", layer.post.conv))
            if layer.post.residual is not None and layer.post.residual.projection is not None:
                out[f"{scope}/post_1/residual_add_weights"] = (layer.post.residual.projection.weight, "conv")
    if model.spec.readout_kernel:  # rgc_shallow: dropout (pre_0), conv (pre_1)
        out.update(_conv_entries(f"{root}/imnetds/pre_1/", model.readout))
    else:  # global_pool, dropout, flatten, fc (pre_3)
        out[f"{root}/imnetds/pre_3/weights"] = (model.readout.weight, "fc")
        out[f"{root}/imnetds/pre_3/bias"] = (model.readout.bias, "vector")
    if model.softmax_beta is not None:  # decoders.softmax(scope="normalize")
        out[f"{root}/normalize/softmax_beta"] = (model.softmax_beta, "vector")
    for name, merge in model.feedback.items():
        if merge.project is not None:
            raise SpecError(f"model {model.spec.name!r}: feedback into {name!r} goes to a cell without its own "
                            "feedback convolution; no released model has such an edge")
    return out


def to_torch(array: np.ndarray, layout: str) -> torch.Tensor:
    a = np.asarray(array)
    if layout == "conv":
        a = a.transpose(3, 2, 0, 1)
    elif layout == "depthwise":
        a = a.transpose(2, 3, 0, 1)
    elif layout == "fc":
        a = a.T
    return torch.from_numpy(np.ascontiguousarray(a))


def to_tf(param: torch.Tensor, layout: str) -> np.ndarray:
    a = param.detach().cpu().numpy()
    if layout == "conv":
        return np.ascontiguousarray(a.transpose(2, 3, 1, 0))
    if layout == "depthwise":
        return np.ascontiguousarray(a.transpose(2, 3, 0, 1))
    if layout == "fc":
        return np.ascontiguousarray(a.T)
    return a


def load_tf_variables(model, arrays: Mapping[str, np.ndarray], strict: bool = True) -> List[str]:
    """Copy ``arrays`` (original name -> array) into ``model``; returns the names that were not used.

    ``strict``: every parameter of the model must be given, with the original's shape."""
    entries = tf_variables(model)
    missing = sorted(set(entries) - set(arrays))
    if strict and missing:
        raise SpecError(f"checkpoint lacks {counted(len(missing), 'variable')} of {model.spec.name!r}, "
                        f"e.g. {missing[:3]}")
    with torch.no_grad():
        for name, (param, layout) in entries.items():
            if name not in arrays:
                continue
            value = to_torch(arrays[name], layout).to(param.dtype)
            if tuple(value.shape) != tuple(param.shape):
                raise SpecError(f"variable {name!r}: shape {list(np.shape(arrays[name]))} does not fit "
                                f"{model.spec.name!r} (expected {list(to_tf(param, layout).shape)})")
            param.copy_(value)
    return sorted(set(arrays) - set(entries))
