"""Images of a stimulus set as a normalised tensor for a model."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from neurozoo.benchmarks.extraction.activations import Stimuli
from neurozoo.benchmarks.extraction.cache import stimuli_sha256
from neurozoo.datasets.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_tensor(pixels: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
              chunk: int = 64) -> torch.Tensor:
    """(N, H, W) or (N, H, W, 3) pixels in [0, 1] (or uint8) -> (N, 3, H, W) normalised float32.

    Converted ``chunk`` images at a time into the output, so memory is the pixels plus the output (640
    ImageNet-size images: 0.1 + 0.4 GB), not three float copies of it."""
    pixels = np.asarray(pixels)
    n, height, width = pixels.shape[:3]
    out = torch.empty((n, 3, height, width), dtype=torch.float32)
    for start in range(0, n, chunk):
        _normalise(pixels[start:start + chunk], mean, std, out=out[start:start + chunk])
    return out


def _normalise(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float], out: torch.Tensor) -> torch.Tensor:
    scale = 255.0 if pixels.dtype == np.uint8 else 1.0
    part = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
    part = part.unsqueeze(-1).expand(-1, -1, -1, 3) if part.ndim == 3 else part
    torch.sub(part.permute(0, 3, 1, 2) / scale, torch.tensor(mean).view(1, 3, 1, 1), out=out)
    return out.div_(torch.tensor(std).view(1, 3, 1, 1))


class PixelStimuli(Stimuli):
    """Stimuli kept as their (N, H, W[, 3]) pixels (uint8: a quarter of float32), normalised batch by batch.

    ``batch`` gives the same float32 values as ``to_tensor`` of all of them; ``images`` builds the whole
    normalised tensor on each access (for code that wants it; the extraction reads batches)."""

    def __init__(self, ids, pixels: np.ndarray, object_name=None, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD):
        pixels = np.asarray(pixels)
        if pixels.ndim not in (3, 4) or (pixels.ndim == 4 and pixels.shape[-1] != 3):
            raise DataError(f"stimuli: pixels must be (N, H, W) or (N, H, W, 3); got {pixels.shape}")
        self.ids, self.object_name = ids, object_name
        self.pixels, self.mean, self.std = pixels, tuple(mean), tuple(std)
        self.shape = (pixels.shape[0], 3) + pixels.shape[1:3]
        self._check(self.shape)

    @property
    def images(self) -> torch.Tensor:
        return to_tensor(self.pixels, self.mean, self.std)

    def __repr__(self) -> str:
        return f"PixelStimuli({len(self.ids)} images {self.shape[1:]}, pixels {self.pixels.dtype})"

    def batch(self, start: int, stop: int) -> torch.Tensor:
        pixels = self.pixels[start:stop]
        return _normalise(pixels, self.mean, self.std, torch.empty((len(pixels),) + self.shape[1:]))

    def sha256(self) -> str:  # the hash of the normalised images, computed a batch at a time
        return stimuli_sha256(self.ids, torch.empty(self.shape, device="meta"),
                              (self.batch(start, start + 64) for start in range(0, self.shape[0], 64)))

    def select(self, index) -> "PixelStimuli":
        """The stimuli at ``index`` (integer positions), still as pixels."""
        index = np.asarray(index)
        return PixelStimuli([self.ids[i] for i in index], self.pixels[index],
                            None if self.object_name is None else np.asarray(self.object_name)[index], self.mean, self.std)


def load_stimulus_set(stimulus_set, image_size: Optional[int] = 224) -> Stimuli:
    """Read every image of a ``datasets.stimuli.StimulusSet`` (RGB, resized to ``image_size``; None: the size of
    the first image, which all must share), ImageNet-normalised as each batch is read (:class:`PixelStimuli`)."""
    from PIL import Image

    from neurozoo.datasets.image_files import load_rgb

    if not getattr(stimulus_set, "has_images", True):
        raise DataError(f"stimulus set {getattr(stimulus_set, 'identifier', '?')!r} has no images")
    ids = [str(i) for i in stimulus_set["stimulus_id"]]
    pixels = None
    for i, stimulus_id in enumerate(ids):
        with load_rgb(stimulus_set.get_stimulus(stimulus_id), f" (stimulus_id {stimulus_id!r})") as image:
            size = (image_size, image_size) if image_size else image.size
            if pixels is None:
                pixels = np.empty((len(ids), size[1], size[0], 3), dtype=np.uint8)
            if image.size != size:
                if not image_size:
                    raise DataError(f"stimulus {stimulus_id}: image size {image.size} differs from {size}; pass image_size")
                image = image.resize(size, Image.BILINEAR)
            pixels[i] = np.asarray(image)
    objects = np.asarray(stimulus_set["object_name"]).astype(str) if "object_name" in stimulus_set.columns else None
    return PixelStimuli(ids, pixels, objects)
