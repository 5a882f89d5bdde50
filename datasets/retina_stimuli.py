"""Stimulus generators for the retina's in-silico experiments (``retina.phenomena``), and for the embedded recordings
made of their stimuli (``datasets.synthetic_retina``: ``embedded:oms-gratingmotion`` records the OMS probe's family,
which is why they sit in the data layer). Movies are ``(T, 50, 50)`` float32 in contrast units (0 = grey background,
white noise has sd 1), 10 ms frames; x is the last (column) axis."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

FRAME_SIZE = 50
#: The longest movie an analysis builds: 100000 frames of 50 x 50 float32 are 1 GB (a pre or window of 10**9 failed
#: with a MemoryError for terabytes)
MAX_FRAMES = 100_000


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


def gaussian_noise(sd: np.ndarray, checker: int = 2, seed: int = 0) -> np.ndarray:
    """Gaussian white noise, frame ``t`` with sd ``sd[t]``: squares of ``checker`` px, a new sample every frame
    (``checker=0``: full-field flicker)."""
    rng = np.random.default_rng(seed)
    sd = np.asarray(sd, np.float32)
    if checker == 0:
        return full_field(rng.standard_normal(len(sd)) * sd)
    side = -(-FRAME_SIZE // checker)
    small = rng.standard_normal((len(sd), side, side), dtype=np.float32) * sd[:, None, None]
    return np.repeat(np.repeat(small, checker, 1), checker, 2)[:, :FRAME_SIZE, :FRAME_SIZE]


def white_noise(n_frames: int, contrast: float = 1.0, checker: int = 2, seed: int = 0) -> np.ndarray:
    """Gaussian white noise of sd ``contrast`` (see :func:`gaussian_noise`); one ``seed`` gives the same sample
    scaled at every contrast."""
    return gaussian_noise(np.full(n_frames, contrast, np.float32), checker, seed)


def contrast_switching_noise(low: float = 0.3, high: float = 1.0, block: int = 200, cycles: int = 12, checker: int = 2,
                             seed: int = 0, replay: Optional[Tuple[int, int]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Gaussian white noise whose sd switches: each cycle is ``block`` frames at sd ``low`` then ``block`` at sd
    ``high`` (Smirnakis et al. 1997; Baccus & Meister 2002). Squares of ``checker`` px, a new sample every frame
    (``checker=0``: full-field flicker). Returns ``(movie, sd)`` with ``sd[t]`` the contrast of frame t.

    ``replay=(a, b)``: every block ends with its own frames ``a .. b-1`` shown again (its last ``b - a`` frames
    are a copy of them), so that a system without memory beyond ``b - a`` frames answers the end of the block as
    it answered those frames."""
    sd = np.tile(np.repeat(np.float32([low, high]), block), cycles)
    movie = gaussian_noise(sd, checker, seed)
    if replay is not None:
        a, b = replay
        if not 0 <= a < b <= block - (b - a):
            from neurozoo.datasets.errors import SpecError

            raise SpecError(f"contrast_switching_noise: replay=({a}, {b}) must lie in the block's first frames and end "
                            f"before its copy at frames {block - (b - a)}-{block - 1} (block={block})")
        blocks = np.ascontiguousarray(movie).reshape(cycles * 2, block, *movie.shape[1:])  # a view, written into
        blocks[:, block - (b - a):] = blocks[:, a:b]
        movie = blocks.reshape(movie.shape)
    return movie, sd


def jitter_path(n_frames: int, rng: np.random.Generator, speed: float = 1.0, smoothness: float = 20.0) -> np.ndarray:
    """Eye-movement-like jitter (px): a random walk whose velocity is Gaussian noise low-pass filtered with time
    constant ``smoothness`` frames and scaled to sd ``speed`` px/frame."""
    from scipy import signal

    a = np.exp(-1.0 / smoothness)
    velocity = signal.lfilter([1.0], [1.0, -a], rng.standard_normal(n_frames))
    return np.cumsum(velocity * speed / velocity.std())


OMS_CONDITIONS = ("global", "differential", "object", "static")


def object_motion(condition: str, n_frames: int = 1000, centre: Tuple[float, float] = (25.0, 25.0),
                  radius: float = 12.0, bar_width: int = 4, contrast: float = 0.3, speed: float = 1.0,
                  smoothness: float = 20.0, seed: int = 0, swap_paths: bool = False,
                  background_sign: float = 1.0, phase: float = 0.0) -> np.ndarray:
    """Object-motion stimulus (Olveczky, Baccus & Meister 2003): a disc ("object", ``radius`` px around ``centre``
    = (y, x)) and the background both carry a square-wave grating of ``bar_width`` px bars along x, jittered
    horizontally. ``global``: object and background follow the same jitter path (the whole scene moves, as in a
    fixational eye movement); ``differential``: independent paths; ``object``: the object jitters, the background
    stays still; ``static``: nothing moves. The paths depend only on ``seed``, so conditions share them. Bars have
    hard edges: a sub-pixel shift moves an edge when it crosses a pixel centre. ``swap_paths``: the two jitter paths
    exchange roles (global motion follows the second, differential motion moves the object on the second and the
    background on the first); ``background_sign`` -1: the background's grating is the contrast inverse (the balanced
    protocol of :func:`retina.phenomena.object_motion_sensitivity` averages over both of each). ``phase`` (px) shifts
    both gratings along x before any motion (the probe's 0; ``embedded:oms-gratingmotion`` draws it)."""
    if condition not in OMS_CONDITIONS:
        from neurozoo.datasets.errors import SpecError

        raise SpecError(f"object_motion: condition must be one of {', '.join(OMS_CONDITIONS)}; got {condition!r}")
    rng = np.random.default_rng(seed)
    first = jitter_path(n_frames, rng, speed, smoothness)
    second = jitter_path(n_frames, rng, speed, smoothness)
    if swap_paths:
        first, second = second, first
    still = np.zeros(n_frames)
    shift_object, shift_background = {"global": (first, first), "differential": (first, second),
                                      "object": (first, still), "static": (still, still)}[condition]
    y, x = np.mgrid[:FRAME_SIZE, :FRAME_SIZE] + 0.5
    inside = (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius ** 2
    if inside.all() or not inside.any():  # global and differential motion would be the same movie
        from neurozoo.datasets.errors import SpecError

        raise SpecError(f"object_motion: a disc of radius {radius:g} px around ({centre[0]:.1f}, {centre[1]:.1f}) "
                        f"{'covers the whole' if inside.any() else 'misses every pixel of the'} {FRAME_SIZE}x"
                        f"{FRAME_SIZE} frame, so object and background cannot move apart")

    def texture(shift):  # the bars vary along x only: one row per frame, broadcast over y
        return np.where(((x[0] - phase - shift[:, None]) // bar_width) % 2 == 0, contrast, -contrast)[:, None, :]

    return np.where(inside[None], texture(shift_object), background_sign * texture(shift_background)).astype(np.float32)
