"""Convolutional recurrent networks: cells with gating and bypassing, long-range feedback,
biological unrolling, ImageNet training, and the search over cells and feedback motifs."""
from neurozoo.datasets.lazy_exports import lazy_exports

# imported on first use (see there): ``zoo`` imports this package's ``cli`` without torch
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    # a checkpoint's state dict in a model's names: a CORnet's released file (dicarlolab/CORnet's names) converted
    "neurozoo.convrnn.cornet_weights": ["checkpoint_state"],
    "neurozoo.convrnn.models": ["MODELS", "build", "create_model", "get_spec", "list_models"],
    "neurozoo.convrnn.network": ["ConvRNN", "UnrollOutput", "max_confidence_decoder"],
    "neurozoo.convrnn.spec": ["FeedbackSpec", "GraphSpec", "LayerSpec", "check_image_size", "load_spec", "spec_graph"],
    # a zoo train checkpoint's model is built with its settings and data's classes (zoo score, zoo run, BrainModel)
    # and refused where it was trained as another graph than the name builds
    "neurozoo.convrnn.training.checkpoint": ["trained_as_hint", "trained_graph_difference", "with_trained_settings"],
})
