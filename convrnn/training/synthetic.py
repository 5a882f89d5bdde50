"""A small ImageNet-layout folder whose classes differ by colour and stripe orientation.

For tests, smoke runs and throughput checks of the data pipeline without ImageNet: each class has
its own colour and stripe direction, so a model that learns at all separates the classes fast."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

COLOURS = np.array([(220, 40, 40), (40, 200, 40), (40, 60, 220), (230, 210, 40), (200, 40, 200), (40, 210, 210),
                    (240, 140, 20), (130, 130, 130)], dtype=np.float64)


def class_image(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """RGB uint8 image of class ``label``: a class colour modulated by stripes in a class direction."""
    y, x = np.mgrid[0:size, 0:size] / size
    angle = np.pi * (label % 4) / 4
    period = 4 + 2 * (label // 4) + rng.uniform(-0.5, 0.5)
    phase = rng.uniform(0, 2 * np.pi)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * period * (np.cos(angle) * x + np.sin(angle) * y) + phase)
    colour = COLOURS[label % len(COLOURS)] * rng.uniform(0.8, 1.0)
    image = colour * (0.35 + 0.65 * stripes)[..., None] + rng.normal(0, 8, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_image_folder(root, n_classes: int = 4, per_class: int = 8, size: int = 32, val_per_class: int = 4,
                       seed: int = 0, wnids: Sequence[str] = None, greyscale_every: int = 0) -> Path:
    """``root/train/<wnid>/*.JPEG`` and ``root/val/<wnid>/*.JPEG`` (``val_per_class=0``: no val/).

    WNIDs default to ImageNet-like ``n000000XX`` names; ``greyscale_every=k`` saves every k-th image
    in mode "L" to exercise the RGB conversion."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    wnids = list(wnids) if wnids is not None else [f"n{i + 1:08d}" for i in range(n_classes)]
    count = 0
    for split, n in (("train", per_class), ("val", val_per_class)):
        for label, wnid in enumerate(wnids):
            if n == 0:
                continue
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = Image.fromarray(class_image(label, size, rng))
                count += 1
                if greyscale_every and count % greyscale_every == 0:
                    image = image.convert("L")
                image.save(folder / f"{wnid}_{i}.JPEG", quality=95)
    return root
