"""Activation extraction: models -> (presentation, neuroid, time_bin) features, reduced and cached."""
from neurozoo.benchmarks.extraction.activations import Stimuli, extract, is_convrnn
from neurozoo.benchmarks.extraction.cache import ActivationCache, stimuli_sha256
from neurozoo.benchmarks.extraction.reduction import RandomProjection
from neurozoo.benchmarks.extraction.time_mapping import (BRAINSCORE_BINS, CONVRNN, CORNET_RT, CORNET_S, CORNET_TIMING,
                                                         CORNET_Z, StepBins, StepTable, bins, convrnn, model_timing,
                                                         static)

__all__ = ["ActivationCache", "BRAINSCORE_BINS", "CONVRNN", "CORNET_RT", "CORNET_S", "CORNET_TIMING", "CORNET_Z",
           "RandomProjection", "StepBins", "StepTable", "Stimuli", "bins", "convrnn", "extract", "is_convrnn",
           "model_timing", "static", "stimuli_sha256"]
