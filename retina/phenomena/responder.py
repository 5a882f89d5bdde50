"""One calling convention for every system probed: ``responder(stimulus (T, 50, 50)) -> rates (n_cells, T)``."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from neurozoo.datasets.errors import UserFacingError
from neurozoo.datasets.termination import SafePoint
from neurozoo.datasets.text_table import plural

N_FRAMES = 40


class NonFiniteRates(UserFacingError, ValueError):
    """A system answered a phenomenon probe with NaN or inf rates (a diverged fit, NaN weights): the analyses ran on
    and called nothing (an OSR of no cell) without a word. ``zoo score`` prints it; ``zoo run`` records it as the
    job's failure, as any other error of one model on one benchmark."""


def check_rates_finite(rates: np.ndarray, protocol: str, probe: str, system: str = "system") -> None:
    """:class:`NonFiniteRates` naming ``protocol``, ``probe`` and the cells whose ``rates (cells, T)`` hold NaN or
    inf."""
    bad = ~np.isfinite(rates)
    if bad.any():
        cells = np.flatnonzero(bad.any(1))
        shown = ", ".join(map(str, cells[:10])) + (f", ... ({len(cells)} cells)" if len(cells) > 10 else "")
        raise NonFiniteRates(f"{protocol}: {system}'s rates to {probe} are NaN or inf in "
                             f"{plural(len(cells), 'cell')} {shown} of "
                             f"{len(rates)} ({int(bad.sum())} values of {bad.size}); expected finite rates (a diverged "
                             "fit or NaN weights)")


def as_responder(system, device: str = "cpu", safe_point: Optional[SafePoint] = None,
                 protocol: Optional[str] = None) -> Callable[..., np.ndarray]:
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
    With ``protocol`` (the analysis's name), rates holding NaN or inf are a :class:`NonFiniteRates` naming it, the
    ``probe`` the responder was called with (``respond(movie, probe="flash train of period 6")``) and the cells; a
    wrapper without it (a benchmark's safe point) leaves the check to the analysis's own responder, which names them.
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

    # a wrapper's: the system it wraps; a function's (or module's) own name, else its class's (a model, the circuit)
    name = getattr(system, "system_name", None) or getattr(system, "__name__", None) or type(system).__name__

    def respond_checked(stimulus, probe: str = "the probe"):
        if safe_point is not None:
            safe_point()
        rates = respond(stimulus)
        if rates.ndim != 2 or rates.shape[1] != len(stimulus) or not len(rates):
            # an analysis indexed it as (cells, frames): an IndexError, a reduction of an empty window, or wrong times
            raise ValueError(f"system {name}: expected rates (cells, {len(stimulus)}) for a movie of "
                             f"{len(stimulus)} frames, at least one cell; got shape {rates.shape}")
        if protocol is not None:
            check_rates_finite(rates, protocol, probe, system=name)
        return rates

    respond_checked.system_name = name
    return respond_checked
