"""ImageNet training of ConvRNNs: image folders, transforms, the training loop, atomic checkpoints,
torchrun-compatible distributed data parallel, JSON-lines metrics. ``zoo train`` is ``cli``."""
from neurozoo.convrnn.training.checkpoint import load_checkpoint, save_checkpoint
from neurozoo.convrnn.training.engine import TrainConfig, Trainer, train, unrolled_loss
from neurozoo.convrnn.training.imagefolder import FlatImageFolder, ImageFolder, imagenet_wnids, open_folder, open_imagenet
from neurozoo.convrnn.training.metrics_log import MetricsLog, read_metrics
from neurozoo.convrnn.training.transforms import build_transform

__all__ = [
    "TrainConfig", "Trainer", "train", "unrolled_loss", "save_checkpoint", "load_checkpoint", "ImageFolder",
    "FlatImageFolder", "imagenet_wnids", "open_folder", "open_imagenet", "MetricsLog", "read_metrics",
    "build_transform",
]
