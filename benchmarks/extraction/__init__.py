"""Activation extraction: models -> (presentation, neuroid, time_bin) features, reduced and cached."""
from neurozoo.benchmarks.extraction.activations import Stimuli, extract, is_convrnn
from neurozoo.benchmarks.extraction.cache import ActivationCache, stimuli_sha256
from neurozoo.benchmarks.extraction.reduction import RandomProjection
from neurozoo.benchmarks.extraction.time_mapping import (CONVRNN, CORNET_RT, CORNET_S, CORNET_TIMING, CORNET_Z,
                                                         NAYEBI_FITTING_BINS, StepBins, StepTable, bins, convrnn,
                                                         model_timing, static)

__all__ = ["ActivationCache", "CONVRNN", "CORNET_RT", "CORNET_S", "CORNET_TIMING", "CORNET_Z", "NAYEBI_FITTING_BINS",
           "RandomProjection", "StepBins", "StepTable", "Stimuli", "bins", "convrnn", "extract", "is_convrnn",
           "model_timing", "static", "stimuli_sha256"]


def __getattr__(name: str):
    """``BRAINSCORE_BINS``, the former name of ``NAYEBI_FITTING_BINS``: through time_mapping, which warns."""
    if name == "BRAINSCORE_BINS":
        from neurozoo.benchmarks.extraction import time_mapping

        return getattr(time_mapping, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
