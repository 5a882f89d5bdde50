"""The released weights of dicarlolab/CORnet (REFERENCE.md section 2) in our CORnets' names (convrnn.cornet), and back.

The file format. The original's ``cornet.get_model`` (cornet/__init__.py at commit c04c1c0, lines 14-23) wraps every
model in ``torch.nn.DataParallel`` (line 18), downloads
``https://s3.amazonaws.com/cornet-models/cornet_{letter}-{HASH}.pth`` (line 20) and loads its ``'state_dict'``
strictly (lines 21-22); run.py's ``train`` saves ``{..., 'epoch', 'state_dict': model.state_dict()}`` of that
DataParallel model (run.py at commit 16cb100, lines 147-151). So the released files (``cornet_z-5c427c9c.pth``,
``cornet_rt-933c001c.pth``, ``cornet_s-1d3f7974.pth``: the HASH of cornet_z.py line 5, cornet_rt.py and cornet_s.py
line 6) are a dict with ``'state_dict'``, every key of which starts with ``module.``, beside ``'epoch'`` (and, by
the project's notes, ``'arch'``; the released files themselves were not available here to check).

The names that differ from ours (every other parameter and buffer has the same name and shape):

* every CORnet's readout ``decoder.linear`` (cornet_z.py at 4577028 line 55, cornet_s.py at f037fa9 line 112,
  cornet_rt.py at c04c1c0 line 86) is our ``readout``;
* CORnet-S's V1 is a named ``nn.Sequential`` (cornet_s.py lines 94-105): its ``conv1``, ``norm1``, ``conv2``,
  ``norm2`` are our ``V1.0``, ``V1.1``, ``V1.4``, ``V1.5``;
* CORnet-S's BatchNorm of step t, ``norm1_{t}``, ``norm2_{t}``, ``norm3_{t}`` (cornet_s.py lines 58-61), is entry t
  of our ModuleLists ``norm1``, ``norm2``, ``norm3``.

CORnet-RT: the released file is the one the original's ``cornet_rt()`` loads strictly into its current
``CORnet_RT`` (biological unrolling), so it fits cornet_rt.py's names and shapes, which are ours. The original's
README also keeps the legacy CORnet-R file (``cornet_r-5930a990.pth``): the same modules with the same names and
shapes (cornet/cornet_r.py), but a non-biological unrolling (each area reads the current step's output of the area
below), which the README keeps only as a legacy version, "not doing a biological temporal unrolling as described in
the pre-print". Its keys cannot tell it
from a CORnet-RT file, so a file under the original's name for another CORnet is refused by its name.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from neurozoo.convrnn.cornet import _CORnet
from neurozoo.datasets.errors import DataError
from neurozoo.datasets.torch_files import model_state, mismatch

SOURCE = "dicarlolab/CORnet"
#: the released files, as cornet/__init__.py line 20 names them (HASH: cornet_z.py line 5, cornet_rt.py, cornet_s.py line 6)
RELEASED = {"cornet_z": "cornet_z-5c427c9c.pth", "cornet_rt": "cornet_rt-933c001c.pth",
            "cornet_s": "cornet_s-1d3f7974.pth"}
_RELEASE_NAME = re.compile(r"cornet_([a-z]+)-[0-9a-f]{8}\.pth")
_READOUT = "decoder.linear."
_S_V1 = {"V1.0.": "V1.conv1.", "V1.1.": "V1.norm1.", "V1.4.": "V1.conv2.", "V1.5.": "V1.norm2."}


def original_name(ours: str) -> str:
    """Our parameter or buffer name (any of the three CORnets) -> the original's, without ``module.``."""
    if ours.startswith("readout."):
        return _READOUT + ours[len("readout."):]
    for prefix, name in _S_V1.items():
        if ours.startswith(prefix):
            return name + ours[len(prefix):]
    parts = ours.split(".")
    if len(parts) == 4 and re.fullmatch(r"norm\d", parts[1]) and parts[2].isdigit():  # V2.norm1.0.weight
        return f"{parts[0]}.{parts[1]}_{parts[2]}.{parts[3]}"
    return ours


def original_names(model: _CORnet) -> Dict[str, str]:
    """``{our name: the original's}`` for every entry of ``model``'s state dict."""
    return {name: original_name(name) for name in model.state_dict()}


def to_original(model: _CORnet, prefix: str = "module.") -> Dict[str, Any]:
    """``model``'s state dict under the original's names, with DataParallel's ``prefix`` (as the released files)."""
    return {prefix + original_name(name): value for name, value in model.state_dict().items()}


def is_original(saved: Any) -> bool:
    """Whether ``saved`` (a checkpoint as read) holds a CORnet state dict in the original's names: its readout is
    ``decoder.linear`` (ours is ``readout``), with or without ``module.``, bare or under ``'state_dict'``."""
    try:
        state = model_state(saved)
    except DataError:
        return False
    return any(key.startswith(_READOUT) for key in state)


def from_original(model: _CORnet, saved: Any, path) -> Dict[str, Any]:
    """The state dict of ``model`` (in our names) from ``saved``, a checkpoint in the original's format read from
    ``path``: the whole ``{'epoch', 'arch', 'state_dict'}`` dict or a bare state dict, with or without ``module.``.
    A ``DataError`` naming the file, the first missing or unexpected parameter (in the original's names) and the first
    shape that differs, where it does not fit (another CORnet's file, another width than the release's)."""
    what = f"checkpoint {path} ({SOURCE} format)"
    _check_release_name(model, path, what)
    state = model_state(saved, what)
    names = original_names(model)
    expected = {names[key]: value for key, value in model.state_dict().items()}
    # BatchNorm's batch counter: older torch versions saved none, and torch's own loading fills it in (it does not
    # change an evaluation's outputs)
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    problem = mismatch(expected, state)
    if problem:
        hint = (f"; the released CORnets are at width multiplier 1 (this {type(model).__name__} has "
                f"{model.readout.in_features} IT channels, the release 512)" if "shape" in problem else "")
        raise DataError(f"{what} does not fit {type(model).__name__}: {problem}{hint}")
    return {ours: state[theirs] for ours, theirs in names.items()}


def release_record(saved: Any, path) -> Dict[str, Any]:
    """What the score's provenance keeps of a converted file: its origin, its label and, where the file has them, the
    original's ``epoch`` and ``arch``."""
    record: Dict[str, Any] = {"format": SOURCE, "label": release_label(path), "file": Path(path).name,
                              "converted": "original parameter names mapped to ours (convrnn.cornet_weights)"}
    if isinstance(saved, dict):
        for key in ("epoch", "arch"):
            if isinstance(saved.get(key), (int, float, str)):
                record[key] = saved[key]
    return record


def release_label(path) -> str:
    """The weights' label (a score's ``weights`` setting, ``zoo run``'s and the leaderboard's) of a converted file."""
    return f"published weights of {SOURCE} ({Path(path).name}), converted to our names"


def checkpoint_state(model, saved: Any, path, what: str,
                     release_model: Optional[Callable[[], _CORnet]] = None) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    """``(state dict in our names, release record or None)`` of a checkpoint ``saved`` read from ``path``: a CORnet's
    file in the original's format is converted (:func:`from_original`); anything else is taken as it is
    (``model_state``: a state dict, ``{'model': ...}`` or ``{'state_dict': ...}``). ``release_model``: builds the
    CORnet a file in the original's format is converted for, where that is not ``model`` (``zoo run`` runs a release
    at its own width, 1, whatever the run's width); called only for such a file."""
    if isinstance(model, _CORnet) and is_original(saved):
        return from_original(model if release_model is None else release_model(), saved, path), release_record(saved, path)
    return model_state(saved, what), None


def _check_release_name(model: _CORnet, path, what: str) -> None:
    """A file under the original's name for another CORnet: the legacy CORnet-R file has CORnet-RT's very keys."""
    match = _RELEASE_NAME.fullmatch(Path(path).name)
    ours = type(model).__name__.replace("CORnet", "cornet_").lower()  # CORnetRT -> cornet_rt
    if match and f"cornet_{match.group(1)}" != ours:
        letter = match.group(1)
        detail = (" (the legacy CORnet-R, unrolled non-biologically: the original's README asks for CORnet-RT "
                  "instead, and it is not built here)" if letter == "r" else "")
        raise DataError(f"{what}: its name is the original's release of cornet_{letter}{detail}, not of {ours} "
                        f"({RELEASED.get(ours, 'no release')})")
