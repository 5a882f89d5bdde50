"""ImageNet train / eval transforms (timm): RandomResizedCrop + horizontal flip for training,
resize to size / 0.875 + center crop for evaluation, both normalised with ImageNet mean/std."""
from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_PCT = 0.875


def build_transform(image_size: int, train: bool, augment: bool = True, interpolation: str = "bilinear"):
    """``augment=False`` gives the evaluation transform for training too (deterministic inputs)."""
    import neurozoo.datasets.torchvision_compat  # noqa: F401  (before timm)
    from timm.data import create_transform

    if train and augment:
        return create_transform(image_size, is_training=True, color_jitter=None, interpolation=interpolation,
                                mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return create_transform(image_size, is_training=False, crop_pct=CROP_PCT, interpolation=interpolation,
                            mean=IMAGENET_MEAN, std=IMAGENET_STD)
