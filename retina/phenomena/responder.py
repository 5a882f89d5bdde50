"""One calling convention for every system probed: ``responder(stimulus (T, 50, 50)) -> rates (n_cells, T)``."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from neurozoo.datasets.termination import SafePoint

N_FRAMES = 40


def as_responder(system, device: str = "cpu",
                 safe_point: Optional[SafePoint] = None) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap ``system`` so it maps a movie ``(T, 50, 50)`` to rates ``(n_cells, T)`` aligned frame by frame.

    ``safe_point()`` (:data:`datasets.termination.SafePoint`, ``zoo score``'s): called before each movie, and a torch
    model's between the chunks it is run in (``retina.fit.predict``); the rates are those without it. An analysis
    given the responder (a callable) runs with it unchanged.

    * a torch model (windows -> rates): the movie is preceded by 39 grey (zero) frames so that frame ``t``'s
      rate comes from the window ending at ``t``; run in eval mode (``retina.fit.predict``);
    * an object with ``simulate(stimulus)`` (the ground-truth circuit, or the ``datasets.synthetic_retina``
      module): its expected rates;
    * any other callable with that signature: used as it is.

    Rates of another shape than ``(n_cells >= 1, T)`` for a movie of ``T`` frames are a ``ValueError`` naming the shape.
    """
    try:
        import torch

        is_module = isinstance(system, torch.nn.Module)
    except ImportError:  # pragma: no cover
        is_module = False
    if is_module:
        from neurozoo.retina.fit import predict

        def respond(stimulus):
            stimulus = np.asarray(stimulus, np.float32)
            padded = np.concatenate([np.zeros((N_FRAMES - 1,) + stimulus.shape[1:], np.float32), stimulus])
            return np.asarray(predict(system, padded, device=device, safe_point=safe_point), np.float64)
    elif hasattr(system, "simulate"):
        def respond(stimulus):
            return np.asarray(system.simulate(np.asarray(stimulus, np.float32)), np.float64)
    elif callable(system):
        def respond(stimulus):
            return np.asarray(system(np.asarray(stimulus, np.float32)), np.float64)
    else:
        raise TypeError(f"cannot probe {type(system).__name__}: need a torch model, an object with simulate(), or a "
                        "callable")

    def respond_checked(stimulus):
        if safe_point is not None:
            safe_point()
        rates = respond(stimulus)
        if rates.ndim != 2 or rates.shape[1] != len(stimulus) or not len(rates):
            # an analysis indexed it as (cells, frames): an IndexError, a reduction of an empty window, or wrong times
            raise ValueError(f"system {type(system).__name__}: expected rates (cells, {len(stimulus)}) for a movie of "
                             f"{len(stimulus)} frames, at least one cell; got shape {rates.shape}")
        return rates

    return respond_checked
