"""Reading the PyTorch files users give (``--checkpoint``, fit and training checkpoints): one loader, one error.

Every file is read with ``weights_only=True``: tensors, numbers, strings and containers only, so that loading a
file never runs code from it (a pickled object would). A missing file, or one that is no such PyTorch file, gets a
``DataError`` naming it; torch's own message is not passed on (it suggests ``weights_only=False``, which would run
the file's code)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from neurozoo.datasets.errors import DataError


def read_torch_file(path, what: str = "checkpoint", map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, or a ``DataError`` naming ``what`` and ``path``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # pickle, zip, unpickler and torch errors alike
        raise DataError(f"{what} {path}: not a readable PyTorch file of tensors ({type(error).__name__}; expected "
                        "what torch.save writes from state dicts)") from None


def model_state(saved: Any, what: str = "checkpoint") -> dict:
    """The parameter dict in ``saved``: a state dict or ``{"model": state dict}`` (as ``zoo train`` and ``zoo fit``
    save them), with DataParallel's ``module.`` prefixes dropped."""
    state = saved.get("model", saved) if isinstance(saved, dict) else saved
    if not isinstance(state, dict):
        raise DataError(f"{what}: holds no state dict (expected {{parameter name: tensor}} or {{'model': {{...}}}}), "
                        f"got {type(state).__name__}")
    return {key[7:] if key.startswith("module.") else key: value for key, value in state.items()}
