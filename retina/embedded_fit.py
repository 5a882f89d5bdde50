"""A retina model fitted to an embedded ground-truth recording, cached on disk and shared by the OSR probe,
the OSR benchmark and the held-out benchmark (same folder layout as :mod:`retina.benchmark`)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import nn


def fit_dir(path: Path, name: str, kind: str, seed: int) -> Path:
    from retina.fit import provenance

    return path.parent / "fits" / f"{name}-{kind}-{provenance(path)['data_sha256'][:12]}-seed{seed}"


def fitted_embedded_model(name: str, kind: str = "whitenoise", seed: int = 0, device: str = "cpu",
                          progress: bool = True, sizes: Optional[dict] = None, **fit_settings) -> Tuple[nn.Module, dict]:
    """``(model, provenance)``: ``name`` fitted to the embedded recording ``kind`` (reused when already fitted)."""
    from datasets.retina_h5 import read_experiment
    from datasets.synthetic_retina import load_embedded_retina
    from retina.fit import create_model, fit, provenance

    path = load_embedded_retina(kind, **(sizes or {}))
    torch.manual_seed(seed)
    model = create_model(name, n_cells=len(read_experiment(path, "train").cells))
    out = fit_dir(path, name, kind, seed)
    result = fit(model, path, out=out, seed=seed, device=device, progress=progress, **fit_settings)
    info = provenance(path, result)
    info["fit_dir"] = str(out)
    return result.model.eval(), info


def load_checkpoint(model: nn.Module, checkpoint) -> nn.Module:
    """Load weights saved by :func:`retina.fit.fit` (``model.pt`` state dict or ``checkpoint.pt``)."""
    from datasets.errors import DataError

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise DataError(f"{checkpoint}: no such checkpoint file")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as error:
        raise DataError(f"{checkpoint}: does not hold weights of {type(model).__name__} with "
                        f"{getattr(model, 'n_cells', '?')} cells ({str(error).splitlines()[0]})") from None
    return model.eval()
