"""Reading the PyTorch files users give (``--checkpoint``, fit and training checkpoints): one loader, one error.

Every file is read with ``weights_only=True``: tensors, numbers, strings and containers only, so that loading a
file never runs code from it (a pickled object would). A missing file, or one that is no such PyTorch file, gets a
``DataError`` naming it; torch's own message is not passed on (it suggests ``weights_only=False``, which would run
the file's code)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from neurozoo.datasets.errors import DataError


class UnreadableTorchFile(DataError):
    """A file that exists but is no PyTorch file of tensors (damaged, cut short, or another format)."""


def check_torch_path(path, what: str = "checkpoint") -> Path:
    """``path`` if it is a file, else a ``DataError`` naming ``what``: a folder (the files in it that it may mean) or a
    path that is not there. For a caller that reads the file later but must refuse a bad path first (``zoo score``
    hashes its --checkpoint for the record before loading it: mkdir's or open's bare 'No such file or directory')."""
    path = Path(path)
    if path.is_dir():  # a fit's or a training run's output folder, given for the weights in it
        held = sorted(child.name for child in path.glob("*.pt"))
        raise DataError(f"{what} {path} is a folder, not a file: give the file in it"
                        + (f" ({', '.join(held)})" if held else " (it holds no .pt file)"))
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    return path


def read_torch_file(path, what: str = "checkpoint", map_location: Any = "cpu", mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``, or a ``DataError`` naming ``what`` and ``path``
    (``UnreadableTorchFile`` when the file exists but cannot be read). ``mmap``: tensors are mapped, not read (for
    a few counters of a large checkpoint)."""
    import torch

    path = check_torch_path(path, what)
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # pickle, zip, unpickler and torch errors alike
        raise UnreadableTorchFile(f"{what} {path}: not a readable PyTorch file of tensors ({type(error).__name__}; expected "
                        "what torch.save writes from state dicts)") from None


def model_state(saved: Any, what: str = "checkpoint") -> dict:
    """The parameter dict in ``saved``: a state dict, ``{"model": state dict}`` (as ``zoo train`` and ``zoo fit``
    save them) or ``{"state_dict": state dict, ...}`` (as PyTorch's ImageNet example and dicarlolab/CORnet's run.py
    save them), with DataParallel's ``module.`` prefixes dropped."""
    state = saved
    if isinstance(saved, dict):
        state = next((saved[key] for key in ("model", "state_dict") if isinstance(saved.get(key), dict)), saved)
    if not isinstance(state, dict):
        raise DataError(f"{what}: holds no state dict (expected {{parameter name: tensor}}, {{'model': {{...}}}} or "
                        f"{{'state_dict': {{...}}}}), got {type(state).__name__}")
    return {key[7:] if key.startswith("module.") else key: value for key, value in state.items()}


def state_mismatch(model, state: dict) -> str:
    """Where ``state`` does not fit ``model``, named: missing and unexpected parameters, the first shape that
    differs (torch's own message starts with a line that names none of them)."""
    return mismatch(model.state_dict(), state) or "parameters do not fit"


def mismatch(expected: dict, state: dict) -> str:
    """Where ``state`` does not fit ``expected`` (name -> tensor), named as :func:`state_mismatch` names it; ``""``
    where every name and shape agrees."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    resized = [key for key in expected if key in state and hasattr(state[key], "shape")
               and tuple(state[key].shape) != tuple(expected[key].shape)]

    def some(keys):
        return keys[0] + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")

    parts = ([f"missing {some(missing)}"] if missing else []) + ([f"unexpected {some(unexpected)}"] if unexpected else [])
    if resized:
        key, more = resized[0], len(resized) - 1
        parts.append(f"{key} has shape {tuple(state[key].shape)}, the model's is {tuple(expected[key].shape)}"
                     + (f" ({more} more {'shapes differ' if more > 1 else 'shape differs'})" if more else ""))
    return "; ".join(parts)
