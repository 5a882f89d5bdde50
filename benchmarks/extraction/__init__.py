"""Activation extraction: models -> (presentation, neuroid, time_bin) features, reduced and cached."""
from benchmarks.extraction.activations import Stimuli, extract, is_convrnn
from benchmarks.extraction.cache import ActivationCache, stimuli_sha256
from datasets.provenance import module_sha256
from benchmarks.extraction.reduction import RandomProjection
from benchmarks.extraction.time_mapping import BRAINSCORE_BINS, CONVRNN, CORNET_S, StepTable, bins, convrnn, static

__all__ = ["ActivationCache", "BRAINSCORE_BINS", "CONVRNN", "CORNET_S", "RandomProjection", "StepTable", "Stimuli",
           "bins", "convrnn", "extract", "is_convrnn", "static", "stimuli_sha256"]
