"""Dynamics analysis of recurrent models: fixed and slow points with their linearisation (``fixedpoints``), state
maps for torch RNNs and ConvRNN cells (``adapters``), trajectories (``trajectories``), similarity over time
(``similarity``), ground-truth systems and trained examples (``cases``, ``tasks``, ``examples``), and the
``zoo dynamics`` / ``zoo compare`` commands (``cli``)."""
from neurozoo.benchmarks.dynamics.fixedpoints import FixedPoints, Linearisation, find_fixed_points, sample_states

__all__ = ["FixedPoints", "Linearisation", "find_fixed_points", "sample_states"]
