"""Dynamics analysis of recurrent models: fixed and slow points with their linearisation (``fixedpoints``), state
maps for torch RNNs and ConvRNN cells (``adapters``), trajectories (``trajectories``), similarity over time
(``similarity``), ground-truth systems and trained examples (``cases``, ``tasks``, ``examples``), and the
``zoo dynamics`` / ``zoo compare`` commands (``cli``)."""
from neurozoo.datasets.lazy_exports import lazy_exports

# imported on first use (see there): ``zoo`` imports this package's ``cli`` without torch
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "neurozoo.benchmarks.dynamics.fixedpoints": ["FixedPoints", "Linearisation", "find_fixed_points", "sample_states"],
})
