"""Atomic checkpoints and the RNG state that makes a resumed run equal an uninterrupted one.

A checkpoint is written to a temporary file in the destination folder, flushed to disk, then moved
over the destination with ``os.replace`` (atomic on POSIX; ``datasets.json_files.written_whole``): a kill at any
moment leaves either the previous checkpoint or the new one, never a torn file.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from neurozoo.datasets.errors import DataError
from neurozoo.datasets.json_files import written_whole
from neurozoo.datasets.torch_files import read_torch_file
from neurozoo.datasets.text_table import plural


def save_checkpoint(state: Dict[str, Any], path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's host and pid end the temporary's name: a trainer starting in this folder removes only dead
    # processes' temporaries
    with written_whole(path, fsync=True) as tmp, open(tmp, "wb") as handle:
        torch.save(state, handle)
    return path


def checkpoint_position(state: Dict[str, Any]) -> str:
    """Where a checkpoint stands, as ``zoo train`` tells it: ``step N (the end of epoch E)``, or inside an epoch
    ``step N (K of M batches of epoch E)``."""
    epoch, position, step = int(state["epoch"]), int(state.get("epoch_steps", 0)), int(state["global_step"])
    where = (f"the end of epoch {epoch}" if not position else
             f"{position} of {state.get('steps_per_epoch', '?')} batches of epoch {epoch + 1}")
    return f"step {step} ({where})"


def what_was_kept(out: Path, first: str = "", how: str = "") -> str:
    """What a stopped ``zoo train`` leaves in ``out`` to continue from, and how: ``first`` is what to do before the
    rerun (e.g. replace a corrupt image), ``how`` replaces the rerun's advice."""
    last = Path(out) / "last.pth"
    if not last.is_file():
        return f"no checkpoint had been written, so {out} holds none to resume"
    how = how or f"{first}rerun the same command with --resume to continue from it"
    try:  # memory-mapped: the counters without reading the weights
        position = checkpoint_position(read_torch_file(last, mmap=True))
    except Exception:  # noqa: BLE001 (the resume reports a damaged file by name)
        return f"{last} is the last checkpoint: {how}"
    return f"{last} holds {position}: {how}"


def load_checkpoint(path, map_location="cpu") -> Dict[str, Any]:
    path = Path(path)
    state = read_torch_file(path, map_location=map_location)
    if not isinstance(state, dict):
        raise DataError(f"checkpoint {path} holds an object of type {type(state).__name__}, not the dict of fields `zoo train` writes "
                        "(model, epoch, global_step, ...)")
    missing = {"model", "epoch", "global_step"} - set(state)
    if missing:
        raise DataError(f"checkpoint {path} lacks {plural(len(missing), 'field')} {sorted(missing)}; "
                        "not written by `zoo train`?")
    return state


def trained_num_classes(saved: Any) -> Optional[int]:
    """The number of classes a ``zoo train`` checkpoint (``saved``, as read) was trained on: its readout's size,
    from the class folders of its data (``classes``); None for any other file. Its model is built with this many
    outputs whatever the spec says (1000 for the registered models)."""
    if (isinstance(saved, dict) and isinstance(saved.get("config"), dict) and isinstance(saved.get("model"), dict)
            and isinstance(saved.get("classes"), (list, tuple)) and saved["classes"]):
        return len(saved["classes"])
    return None


def with_trained_settings(overrides: Optional[Dict[str, Any]], saved: Any) -> Dict[str, Any]:
    """``overrides`` on top of the model settings a ``zoo train`` checkpoint ``saved`` was trained with (its
    ``--width`` and ``--set``) and its data's classes: the readout's classes were refused as a shape mismatch (and
    ``zoo run`` offers no ``--set`` to give them), and a setting the weights fit either way (``n_steps``, a cell's gate
    offset) stayed the registered model's, so another graph than the one trained was scored, without a word. An
    override given wins over the checkpoint's."""
    classes = trained_num_classes(saved)
    if classes is None:
        return dict(overrides or {})
    trained = dict(saved["config"].get("overrides") or {})
    trained.setdefault("num_classes", classes)
    return {**trained, **(overrides or {})}


def trained_as_hint(saved: Any, name: str, overrides: Optional[Dict[str, Any]] = None) -> str:
    """For a refusal of weights that do not fit ``name`` (it listed the parameters that differ, not the cause the
    checkpoint's config names): ``" (it was trained as 'X' by zoo train: score it as that model)"`` (for a spec file
    X, which the zoo commands refuse, how to register it) where ``saved`` (a
    checkpoint as read) is a ``zoo train`` checkpoint of another model, else the ``overrides`` given (``--width``,
    ``--set``) that differ from the settings it was trained with, which they override; ``""`` otherwise."""
    config = saved.get("config") if isinstance(saved, dict) else None
    trained = config.get("model") if isinstance(config, dict) else None
    if isinstance(trained, str) and trained != name:
        if trained.endswith((".yaml", ".yml")):  # a spec file's (a search trial's): the zoo commands refuse a path
            return (f" (it was trained as {trained!r} by zoo train, a spec file: register that spec under a name, "
                    "README: Your own ConvRNN, and score it as that model)")
        return f" (it was trained as {trained!r} by zoo train: score it as that model)"
    if trained_num_classes(saved) is None:
        return ""
    settings = {"width_multiplier": 1, **with_trained_settings({}, saved)}  # width 1 unless --width was given
    differing = [key for key, value in (overrides or {}).items() if key in settings and settings[key] != value]
    if not differing:
        return ""
    return (" (it was trained with " + ", ".join(f"{key}={settings[key]!r}" for key in differing) + "; the "
            + ", ".join(f"{key}={overrides[key]!r}" for key in differing) + " given (--width, --set) overrides that: "
            "leave it out, the checkpoint's settings are used)")


def trained_graph_difference(model: torch.nn.Module, saved: Any, overrides: Optional[Dict[str, Any]]) -> Optional[str]:
    """The first difference between the graph a ``zoo train`` checkpoint ``saved`` was trained as (its ``spec``) and
    ``model``'s, None for the same graph (or a checkpoint without a spec). The fields that the given ``overrides``
    change are left out (the layers too for a cell override): those differences were asked for. A checkpoint trained
    from a spec file or another registered model (a search trial's) whose weights fit was otherwise scored as this
    model, with its gate constants, nonlinearities or decoder, without a word."""
    from neurozoo.convrnn.spec import spec_difference

    trained, built = (saved or {}).get("spec") if isinstance(saved, dict) else None, getattr(model, "spec", None)
    if not isinstance(trained, dict) or not hasattr(built, "to_dict"):
        return None
    ignore = set(overrides or {}) | ({"layers"} if set(overrides or {}) & {"cell", "cell_kind", "wiring"} else set())
    return spec_difference(trained, built.to_dict(), ignore=ignore)


def capture_rng_state(generator: torch.Generator = None) -> Dict[str, Any]:
    """Python, numpy, torch (CPU and CUDA) and data-loader generator states, in torch-loadable types."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def restore_rng_state(state: Dict[str, Any], generator: torch.Generator = None) -> None:
    random.setstate(_as_tuples(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "loader" in state:
        generator.set_state(state["loader"])


def _as_tuples(value):
    """``random.setstate`` needs tuples; some serialisers give lists back."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
