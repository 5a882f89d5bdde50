"""The first BN-CNN layer over a contiguous movie chunk, computed once for all its overlapping windows.

Consecutive 40-frame windows share 39 frames. Instead of a batch of windows ``(T, 40, 50, 50)`` (a
40-fold copy of the movie) convolved with ``conv1`` (about 200 MFLOP per window, almost all of the
model's arithmetic), the layer is a single 3D correlation of the movie ``(T + 39, 50, 50)`` with the
kernel ``(40, 15, 15)`` per output channel: output ``t`` is window ``t``'s conv1 response exactly.

Methods (all exact up to float rounding; autograd flows through each):

* ``"fft"``: 3D real FFT of the movie (each frame transformed once), multiplied by the kernels'
  FFTs (``conj`` for correlation), one inverse FFT per output channel. Circular wrap-around never
  reaches the valid outputs, so no padding beyond a fast FFT length is needed. Cost per frame is a few
  MFLOP instead of ~200.
* ``"fft_taps"``: spatial FFT of each frame once, then the 40 temporal taps summed in the spatial
  frequency domain (a tap loop); the same idea with the time axis done directly.
* ``"conv3d"``: ``torch.nn.functional.conv3d`` with the kernel reshaped to ``(C, 1, 40, 15, 15)``.
* ``"windows"``: the plain reference -- unfold the windows and use ``conv2d``.

``"auto"`` is ``"fft"`` (fastest on CPU; see benchmarks/perf/retina_fit_speed.py).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.nn import functional as F

METHODS = ("auto", "fft", "fft_taps", "conv3d", "windows")


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (FFT-friendly length)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < 2 * n:
        p35 = p5
        while p35 < 2 * n:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def conv_first_layer(movie: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                     method: str = "auto") -> torch.Tensor:
    """conv1 pre-activations ``(T, C, H-k+1, W-k+1)`` of all windows of ``movie`` ``(T + n_taps - 1, H, W)``.

    ``movie`` may also be a batch of equally long chunks ``(N, T + n_taps - 1, H, W)``; the output is then
    ``(N * T, C, ...)``, chunk by chunk (several short chunks per batch: see :mod:`retina.models.bncnn`).
    ``weight``: ``(C, n_taps, k, k)`` (a ``Conv2d`` weight with the frames as input channels).
    """
    if movie.dim() == 4:
        if movie.shape[1] < weight.shape[1]:
            raise ValueError(f"movie chunks have {movie.shape[1]} frames; need at least {weight.shape[1]} (one window)")
        if method in ("auto", "fft"):
            out = _fft3d(movie, weight, movie.shape[1] - weight.shape[1] + 1)
            out = out.reshape((-1,) + out.shape[2:])
        else:
            out = torch.cat([conv_first_layer(chunk, weight, None, method) for chunk in movie])
        return out if bias is None else out + bias[:, None, None]
    if movie.dim() != 3:
        raise ValueError(f"movie must be (frames, height, width) or (chunks, frames, height, width); "
                         f"got shape {tuple(movie.shape)}")
    n_out, n_taps, kh, kw = weight.shape
    length, height, width = movie.shape
    n_windows = length - n_taps + 1
    if n_windows < 1:
        raise ValueError(f"movie has {length} frames; need at least {n_taps} (one window)")
    method = "fft" if method == "auto" else method
    if method == "windows":
        out = F.conv2d(movie.unfold(0, n_taps, 1).permute(0, 3, 1, 2), weight)
    elif method == "conv3d":
        out = F.conv3d(movie[None, None], weight[:, None])[0].transpose(0, 1)
    elif method == "fft":
        out = _fft3d(movie, weight, n_windows)
    elif method == "fft_taps":
        out = _fft_taps(movie, weight, n_windows)
    else:
        raise ValueError(f"unknown first-layer method {method!r}; choose one of {METHODS}")
    if bias is not None:
        out = out + bias[:, None, None]
    return out


def _fft3d(movie, weight, n_windows):
    # Separable transforms, each axis as late / as small as possible: the kernel's spatial FFT runs on
    # its 40 taps only (not on the zero-padded time axis), and the inverse keeps only valid outputs
    # before each further axis is transformed. ``movie``: (L, H, W) -> (T, C, h, w), or a batch of chunks
    # (N, L, H, W) -> (N, T, C, h, w).
    n_out, n_taps, kh, kw = weight.shape
    length, height, width = movie.shape[-3:]
    n_time = _fast_len(length)
    movie_f = torch.fft.fft(torch.fft.rfft2(movie), n=n_time, dim=-3)                      # (..., Lf, H, W//2+1)
    kernel_f = torch.fft.fft(torch.fft.rfft2(weight, s=(height, width)), n=n_time, dim=1)  # (C, Lf, H, W//2+1)
    out = torch.fft.ifft(kernel_f.conj() * movie_f.unsqueeze(-4), dim=-3)[..., :n_windows, :, :]
    out = torch.fft.ifft(out, dim=-2)[..., :height - kh + 1, :]
    out = torch.fft.irfft(out, n=width, dim=-1)[..., :width - kw + 1]
    return out.transpose(-4, -3)


def _fft_taps(movie, weight, n_windows):
    n_out, n_taps, kh, kw = weight.shape
    length, height, width = movie.shape
    movie_f = torch.fft.rfft2(movie)                                              # each frame once
    kernel_f = torch.fft.rfft2(weight, s=(height, width)).conj()                  # (C, taps, H, W//2+1)
    acc = movie_f[0:n_windows, None] * kernel_f[None, :, 0]
    for tap in range(1, n_taps):
        acc = acc + movie_f[tap:tap + n_windows, None] * kernel_f[None, :, tap]
    out = torch.fft.irfft2(acc, s=(height, width))
    return out[..., :height - kh + 1, :width - kw + 1]
