"""ImageNet training of ConvRNNs: image folders, transforms, the training loop, atomic checkpoints,
torchrun-compatible distributed data parallel, JSON-lines metrics. ``zoo train`` is ``cli``."""
from neurozoo.datasets.lazy_exports import lazy_exports

# imported on first use (see there): ``zoo`` imports this package's ``cli`` without torch
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "neurozoo.convrnn.training.checkpoint": ["load_checkpoint", "save_checkpoint"],
    "neurozoo.convrnn.training.engine": ["TrainConfig", "Trainer", "train"],
    "neurozoo.convrnn.training.loss": ["unrolled_loss"],
    "neurozoo.convrnn.training.imagefolder": ["FlatImageFolder", "ImageFolder", "imagenet_wnids", "open_folder", "open_imagenet"],
    "neurozoo.convrnn.training.metrics_log": ["MetricsLog", "read_metrics"],
    "neurozoo.convrnn.training.transforms": ["build_transform"],
})
