"""Rendered objects for the embedded benchmark: 8 filled shapes at three variation levels, drawn with PIL.

Variation levels follow MajajHong2015's V0 / V3 / V6: V0 shows every object at the centre, at the
reference size and upright; V3 and V6 jitter position, size and in-plane rotation within growing
ranges. Backgrounds are smooth random textures whose contrast grows with the level (so V0 images
of one object differ only in their background). Every image is a pure function of (seed, index).
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

OBJECTS = ("ellipse", "square", "triangle", "star", "cross", "ring", "arrow", "tee")
#: level -> (max |offset| as a fraction of the image, size range, max |rotation| deg, background contrast)
VARIATIONS: Dict[str, Tuple[float, Tuple[float, float], float, float]] = {
    "V0": (0.0, (1.0, 1.0), 0.0, 0.06),
    "V3": (0.12, (0.8, 1.15), 45.0, 0.1),
    "V6": (0.25, (0.6, 1.3), 180.0, 0.22),
}
SUPERSAMPLE = 4
OBJECT_RADIUS = 0.3  # object half-extent at size 1, as a fraction of the image side


def _circle(radius_x: float, radius_y: float, n: int = 48) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([radius_x * np.cos(t), radius_y * np.sin(t)], 1)


def _rectangle(x0, y0, x1, y1) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def object_polygons(name: str) -> List[Tuple[np.ndarray, int]]:
    """(polygon in unit coordinates, y up, fill 255 or hole 0), drawn in order."""
    if name == "ellipse":
        return [(_circle(0.95, 0.55), 255)]
    if name == "square":
        return [(_rectangle(-0.7, -0.7, 0.7, 0.7), 255)]
    if name == "triangle":
        angles = np.deg2rad([90, 210, 330])
        return [(0.95 * np.stack([np.cos(angles), np.sin(angles)], 1), 255)]
    if name == "star":
        angles = np.deg2rad(90 + 36 * np.arange(10))
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return [(np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1), 255)]
    if name == "cross":
        return [(_rectangle(-0.9, -0.22, 0.9, 0.22), 255), (_rectangle(-0.22, -0.9, 0.22, 0.9), 255)]
    if name == "ring":
        return [(_circle(0.9, 0.9), 255), (_circle(0.5, 0.5), 0)]
    if name == "arrow":
        return [(_rectangle(-0.95, -0.15, 0.25, 0.15), 255), (np.array([[0.2, -0.55], [0.95, 0.0], [0.2, 0.55]]), 255)]
    if name == "tee":
        return [(_rectangle(-0.85, 0.5, 0.85, 0.9), 255), (_rectangle(-0.2, -0.9, 0.2, 0.5), 255)]
    raise KeyError(name)


def _background(rng: np.random.Generator, size: int, contrast: float) -> np.ndarray:
    """Smooth colour texture around mean gray: coarse noise upsampled plus finer noise, (size, size, 3) in [0, 1]."""
    layers = []
    for cells, weight in ((4, 0.7), (12, 0.3)):
        coarse = rng.standard_normal((cells, cells, 3)).astype(np.float32)
        channels = [np.asarray(Image.fromarray(coarse[..., c]).resize((size, size), Image.BICUBIC)) for c in range(3)]
        layers.append(weight * np.stack(channels, -1))
    texture = sum(layers)
    texture = texture / (texture.std() + 1e-8)
    return np.clip(0.5 + contrast * texture, 0.0, 1.0)


def render(name: str, level: str, rng: np.random.Generator, size: int = 64) -> Tuple[np.ndarray, dict]:
    """One image (size, size, 3) uint8 and its latent parameters."""
    max_offset, (size_lo, size_hi), max_rotation, contrast = VARIATIONS[level]
    params = {"position_x": float(rng.uniform(-max_offset, max_offset)), "position_y": float(rng.uniform(-max_offset, max_offset)),
              "size": float(rng.uniform(size_lo, size_hi)), "rotation": float(rng.uniform(-max_rotation, max_rotation)),
              "background_contrast": contrast}
    brightness = float(rng.uniform(0.8, 0.95)) if rng.random() < 0.5 else float(rng.uniform(0.05, 0.2))
    params["object_brightness"] = brightness
    big = size * SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    theta = np.deg2rad(params["rotation"])
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    centre = np.array([0.5 + params["position_x"], 0.5 - params["position_y"]]) * big
    for polygon, fill in object_polygons(name):
        points = polygon @ rotation.T * (OBJECT_RADIUS * params["size"] * big)
        points[:, 1] *= -1  # y up -> image rows down
        draw.polygon([tuple(p) for p in points + centre], fill=fill)
    alpha = np.asarray(mask.resize((size, size), Image.BOX), dtype=np.float32)[..., None] / 255.0
    pixels = _background(rng, size, contrast) * (1 - alpha) + brightness * alpha
    return np.round(pixels * 255).astype(np.uint8), params


def render_set(seed: int, per_object_level: int = 12, size: int = 64):
    """All images, object-major then level, and one record of labels and latents per image."""
    images, records = [], []
    for o, name in enumerate(OBJECTS):
        for v, level in enumerate(VARIATIONS):
            for k in range(per_object_level):
                index = len(images)
                rng = np.random.default_rng([seed, o, v, k])
                pixels, params = render(name, level, rng, size)
                images.append(pixels)
                records.append({"stimulus_id": f"ventral_{index:04d}", "filename": f"ventral_{index:04d}.png",
                                "object_name": name, "variation": level, **params})
    return np.stack(images), records
