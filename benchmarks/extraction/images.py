"""Images of a stimulus set as a normalised tensor for a model."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from neurozoo.benchmarks.extraction.activations import Stimuli
from neurozoo.datasets.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_tensor(pixels: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
              chunk: int = 64) -> torch.Tensor:
    """(N, H, W) or (N, H, W, 3) pixels in [0, 1] (or uint8) -> (N, 3, H, W) normalised float32.

    Converted ``chunk`` images at a time into the output, so memory is the pixels plus the output (640
    ImageNet-size images: 0.1 + 0.4 GB), not three float copies of it."""
    pixels = np.asarray(pixels)
    scale = 255.0 if pixels.dtype == np.uint8 else 1.0
    n, height, width = pixels.shape[:3]
    out = torch.empty((n, 3, height, width), dtype=torch.float32)
    mean_t, std_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    for start in range(0, n, chunk):
        part = torch.from_numpy(np.ascontiguousarray(pixels[start:start + chunk], dtype=np.float32))
        part = part.unsqueeze(-1).expand(-1, -1, -1, 3) if part.ndim == 3 else part
        torch.sub(part.permute(0, 3, 1, 2) / scale, mean_t, out=out[start:start + chunk])
        out[start:start + chunk].div_(std_t)
    return out


def load_stimulus_set(stimulus_set, image_size: Optional[int] = 224) -> Stimuli:
    """Read every image of a ``datasets.stimuli.StimulusSet`` (RGB, resized to ``image_size``; None: the size of
    the first image, which all must share), ImageNet-normalised."""
    from PIL import Image

    if not getattr(stimulus_set, "has_images", True):
        raise DataError(f"stimulus set {getattr(stimulus_set, 'identifier', '?')!r} has no images")
    ids = [str(i) for i in stimulus_set["stimulus_id"]]
    pixels = None
    for i, stimulus_id in enumerate(ids):
        with Image.open(stimulus_set.get_stimulus(stimulus_id)) as image:
            image = image.convert("RGB")
            size = (image_size, image_size) if image_size else image.size
            if pixels is None:
                pixels = np.empty((len(ids), size[1], size[0], 3), dtype=np.uint8)
            if image.size != size:
                if not image_size:
                    raise DataError(f"stimulus {stimulus_id}: image size {image.size} differs from {size}; pass image_size")
                image = image.resize(size, Image.BILINEAR)
            pixels[i] = np.asarray(image)
    objects = np.asarray(stimulus_set["object_name"]).astype(str) if "object_name" in stimulus_set.columns else None
    return Stimuli(ids, to_tensor(pixels), objects)
