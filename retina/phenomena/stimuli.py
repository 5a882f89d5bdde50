"""Stimulus generators for the in-silico experiments. Movies are ``(T, 50, 50)`` float32 in contrast units
(0 = grey background, white noise has sd 1), 10 ms frames; x is the last (column) axis."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

FRAME_SIZE = 50


def full_field(values: Sequence[float], size: int = FRAME_SIZE) -> np.ndarray:
    """A spatially uniform movie whose frame ``t`` has intensity ``values[t]``."""
    values = np.asarray(values, np.float32)
    return np.broadcast_to(values[:, None, None], (len(values), size, size)).copy()


def flashes(onsets: Sequence[int], n_frames: int, flash_frames: int = 2, intensity: float = -2.0) -> np.ndarray:
    trace = np.zeros(n_frames, np.float32)
    for onset in onsets:
        trace[onset:onset + flash_frames] = intensity
    return full_field(trace)


def flash_train(period: int, n_flashes: int = 8, flash_frames: int = 2, intensity: float = -2.0, pre: int = 60,
                post: int = 60) -> Tuple[np.ndarray, int, int]:
    """Omitted-stimulus protocol: ``n_flashes`` full-field flashes every ``period`` frames, then one omitted.

    Returns ``(movie, last_flash_onset, omitted_onset)``."""
    onsets = pre + period * np.arange(n_flashes)
    movie = flashes(onsets, pre + n_flashes * period + post, flash_frames, intensity)
    return movie, int(onsets[-1]), int(onsets[-1] + period)


def step(intensity: float = 1.0, pre: int = 60, duration: int = 100, post: int = 100) -> np.ndarray:
    """Grey, then a full-field step of ``intensity`` for ``duration`` frames, then grey."""
    trace = np.zeros(pre + duration + post, np.float32)
    trace[pre:pre + duration] = intensity
    return full_field(trace)


def paired_flash(gap: int, flash_frames: int = 2, intensity: float = -2.0, pre: int = 60,
                 post: int = 80) -> Tuple[np.ndarray, int, int]:
    """Two flashes, the second ``gap`` frames after the first's onset: ``(movie, first_onset, second_onset)``."""
    movie = flashes([pre, pre + gap], pre + gap + post, flash_frames, intensity)
    return movie, pre, pre + gap


def grating(bar_width: int, phase: float = 0.0, contrast: float = 1.0, size: int = FRAME_SIZE) -> np.ndarray:
    """A square-wave grating of bars ``bar_width`` px wide along x, shifted by ``phase`` (fraction of a period)."""
    x = np.arange(size) + phase * 2 * bar_width
    return (contrast * np.where((x // bar_width) % 2 == 0, 1.0, -1.0) * np.ones((size, 1))).astype(np.float32)


def reversing_grating(bar_width: int = 8, phase: float = 0.0, half_period: int = 25, n_reversals: int = 8,
                      contrast: float = 1.0, pre: int = 50) -> np.ndarray:
    """Grey for ``pre`` frames, then a grating whose contrast reverses every ``half_period`` frames."""
    pattern = grating(bar_width, phase, contrast)
    signs = np.repeat(np.where(np.arange(n_reversals) % 2 == 0, 1.0, -1.0), half_period).astype(np.float32)
    return np.concatenate([np.zeros((pre, FRAME_SIZE, FRAME_SIZE), np.float32), signs[:, None, None] * pattern])


def bar_frames(positions: Sequence[float], width: float = 4.0, intensity: float = 1.0,
               size: int = FRAME_SIZE) -> np.ndarray:
    """A vertical bar (full height) centred at x = ``positions[t]`` in frame t (anti-aliased edges)."""
    x = np.arange(size) + 0.5
    positions = np.asarray(positions, np.float64)[:, None]
    cover = np.clip(np.minimum(x + 0.5 - (positions - width / 2), (positions + width / 2) - (x - 0.5)), 0, 1)
    cover[~np.isfinite(positions[:, 0])] = 0
    return (intensity * cover[:, None, :] * np.ones((1, size, 1))).astype(np.float32)


def moving_bar(speed: float = 1.0, width: float = 4.0, intensity: float = 1.0, start: float = -10.0,
               pre: int = 40, post: int = 40) -> Tuple[np.ndarray, np.ndarray]:
    """A bar sweeping along +x at ``speed`` px/frame from ``start`` to past the frame: ``(movie, positions)``
    with ``positions[t]`` the bar centre (NaN while absent)."""
    n_move = int(np.ceil((FRAME_SIZE + 10 - start) / speed))
    positions = np.concatenate([np.full(pre, np.nan), start + speed * np.arange(n_move), np.full(post, np.nan)])
    return bar_frames(positions, width, intensity), positions


def reversing_bar(reverse_at: float = 30.0, speed: float = 1.0, width: float = 4.0, intensity: float = 1.0,
                  start: float = -10.0, pre: int = 40, post: int = 60, reverse: bool = True) -> Tuple[np.ndarray, np.ndarray, int]:
    """A bar moving along +x that reverses direction when its centre reaches ``reverse_at`` (``reverse=False``:
    the control, which keeps going). Returns ``(movie, positions, reversal_frame)``."""
    n_out = int(np.ceil((reverse_at - start) / speed))
    out = start + speed * np.arange(n_out + 1)
    back = out[-1] - speed * np.arange(1, n_out + 1) if reverse else out[-1] + speed * np.arange(1, n_out + 1)
    positions = np.concatenate([np.full(pre, np.nan), out, back, np.full(post, np.nan)])
    return bar_frames(positions, width, intensity), positions, pre + n_out


def flashed_bar(position: float, width: float = 4.0, intensity: float = 1.0, flash_frames: int = 5, pre: int = 40,
                post: int = 40) -> np.ndarray:
    positions = np.full(pre + flash_frames + post, np.nan)
    positions[pre:pre + flash_frames] = position
    return bar_frames(positions, width, intensity)
