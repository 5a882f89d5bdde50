"""Convolutional recurrent networks: cells with gating and bypassing, long-range feedback,
biological unrolling, ImageNet training, and the search over cells and feedback motifs."""
from neurozoo.convrnn.models import MODELS, build, create_model, get_spec, list_models
from neurozoo.convrnn.network import ConvRNN, UnrollOutput, max_confidence_decoder
from neurozoo.convrnn.spec import FeedbackSpec, GraphSpec, LayerSpec, load_spec

__all__ = [
    "MODELS", "build", "create_model", "get_spec", "list_models", "ConvRNN", "UnrollOutput",
    "max_confidence_decoder", "GraphSpec", "LayerSpec", "FeedbackSpec", "load_spec",
]
