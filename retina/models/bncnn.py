"""BN-CNN retina models (McIntosh, Maheswaranathan, Nayebi, Ganguli & Baccus, NIPS 2016).

Input: stimulus windows ``(batch, 40, 50, 50)`` -- the 40 most recent 10 ms frames as channels, oldest
first, so channel ``c`` of the window ending at frame ``t`` is frame ``t - 39 + c``. Output: firing
rates ``(batch, n_cells)``. Valid convolutions: 50 -> 36 (15x15) -> 26 (11x11).

Every model here also has ``forward_movie(movie)``: a contiguous movie chunk ``(T + 39, 50, 50)``
gives the rates of its ``T`` windows at once, sharing the first layer's work between overlapping
windows (see :mod:`retina.fast_conv`). Both paths use the same parameters and the same BatchNorm
modules, so with the same weights they agree to float tolerance.

Training on contiguous chunks (random chunk starts, :func:`retina.fit.fit` with ``forward_movie``)
instead of random single windows changes what a batch is, and so BatchNorm's batch statistics (the
running statistics used at test time average over many batches and are unaffected). Measured on the
pre-BatchNorm output of a BN-CNN, 512-window batches, 6000-frame movies (sd of the batch mean in units
of the population sd; random windows: 0.042, i.i.d. 1/sqrt(512) = 0.044):

* white noise (frames independent): contiguous chunks 0.039 -- as good as random windows; batch
  variance spread 0.059 vs 0.058. No effect.
* natural scenes (jittered images, a new image every 100 frames): contiguous chunks 0.264 -- six times
  noisier batch statistics (a chunk covers ~5 fixations); batch variance spread 0.36 vs 0.08.

For such stimuli pass several shorter chunks as one batch, ``forward_movie`` of ``(N, T + 39, 50, 50)``:
BatchNorm then pools all ``N * T`` windows, and the first layer still shares work within each chunk
(its cost per window grows only by the factor ``(T + 39) / T``).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from neurozoo.datasets.registry import forwards_keywords
from neurozoo.retina.fast_conv import (SECOND_LAYER_METHODS, conv2d_fft, conv_first_layer, normals_ahead,
                                       resolve_method, unit_batchnorm_noise_relu)

N_FRAMES = 40
FRAME_SIZE = 50


class GaussianNoise(nn.Module):
    """Adds N(0, std^2) noise in training mode only (Keras ``GaussianNoise``)."""

    def __init__(self, std: float = 0.05):
        super().__init__()
        self.std = std

    def forward(self, x):
        if self.training and self.std > 0:
            return x + self.std * torch.randn_like(x)
        return x

    def extra_repr(self):
        return f"std={self.std}"


class ParametricSoftplus(nn.Module):
    """``alpha * softplus(beta * x)`` per output cell (the 2016 model's output nonlinearity)."""

    def __init__(self, n_cells: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(n_cells))
        self.beta = nn.Parameter(torch.ones(n_cells))

    def forward(self, x):
        return self.alpha * F.softplus(self.beta * x)


class UnitBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the flattened units of a feature map ``(B, C, H, W)``: one mean, variance, gain and offset
    per unit (channel and position), as the published BN-CNN (``Flatten -> BatchNorm1d(C*H*W) -> Reshape``)."""

    def __init__(self, shape, eps: float = 1e-3, momentum: float = 0.01):
        super().__init__(int(torch.tensor(shape).prod()), eps=eps, momentum=momentum)
        self.shape = tuple(shape)

    def forward(self, x):
        return super().forward(x.flatten(1)).view(x.shape)


#: published BatchNorm settings (Keras defaults in deep-retina; torch-deep-retina torchdeepretina/models.py at 00bb0ca,
#: BNCNN: eps=1e-3 at lines 48, 56 and 60, momentum=bn_moment, TDRModel's default .01 at line 13)
BN_EPS, BN_MOMENTUM = 1e-3, 0.01
OUTPUT_SCALES = ("none", "data")


class RetinaCNN(nn.Module):
    """Two valid conv layers and a dense read-out.

    Defaults are the published BN-CNN (torch-deep-retina ``models.BNCNN``): convolutions with bias, BatchNorm1d
    over the flattened units after each layer (eps 1e-3, momentum 0.01), Gaussian noise 0.05, ReLU, a dense
    layer without bias, BatchNorm1d over the cells, softplus -- 138,362 parameters for 5 cells. The 2016 variant
    is the same graph without BatchNorm, with a biased dense layer and a parametric softplus.

    Named deviation ``output_scale="data"`` (default ``"none"``, as published): rates are ``output_scale *
    softplus(.)`` with a fixed per-cell scale set from the training data's mean rates (:meth:`init_from_data`),
    so that a fit to rates in spikes/s does not spend thousands of Adam steps growing the last gain.
    """

    def __init__(self, n_cells: int = 5, channels=(8, 8), kernel_sizes=(15, 11), n_frames: int = N_FRAMES,
                 frame_size: int = FRAME_SIZE, batchnorm: bool = True, noise_std: float = 0.05,
                 parametric_softplus: bool = False, first_layer: str = "auto", output_scale: str = "none",
                 bn_eps: float = BN_EPS, bn_momentum: float = BN_MOMENTUM, second_layer: str = "auto"):
        super().__init__()
        if output_scale not in OUTPUT_SCALES:
            raise ValueError(f"output_scale must be one of {OUTPUT_SCALES}; got {output_scale!r}")
        self.n_cells, self.n_frames, self.frame_size = n_cells, n_frames, frame_size
        # how forward_movie computes layer 1 ("auto", "fft", "conv3d", ...) and conv2 ("auto", "fft": conv2d_fft,
        # "direct": conv2d); "auto" per device: the FFTs on the CPU, cuDNN's direct convolutions elsewhere
        # (retina.fast_conv.resolve_method)
        self.first_layer = first_layer
        if second_layer not in SECOND_LAYER_METHODS:
            raise ValueError(f"second_layer must be one of {SECOND_LAYER_METHODS}; got {second_layer!r}")
        self.second_layer = second_layer
        self.scale_from_data = output_scale == "data"
        c1, c2 = channels
        k1, k2 = kernel_sizes
        side = frame_size - k1 + 1 - k2 + 1
        if side <= 0:
            raise ValueError(f"frame_size={frame_size} too small for kernels {kernel_sizes}")
        self.hidden_shapes = ((c1, frame_size - k1 + 1, frame_size - k1 + 1), (c2, side, side))

        def norm(shape):
            return UnitBatchNorm(shape, bn_eps, bn_momentum) if batchnorm else nn.Identity()

        self.conv1 = nn.Conv2d(n_frames, c1, k1, bias=True)
        self.bn1 = norm(self.hidden_shapes[0])
        self.noise1 = GaussianNoise(noise_std)
        self.conv2 = nn.Conv2d(c1, c2, k2, bias=True)
        self.bn2 = norm(self.hidden_shapes[1])
        self.noise2 = GaussianNoise(noise_std)
        self.dense = nn.Linear(c2 * side * side, n_cells, bias=not batchnorm)
        self.bn3 = nn.BatchNorm1d(n_cells, eps=bn_eps, momentum=bn_momentum) if batchnorm else nn.Identity()
        self.output_nonlinearity = ParametricSoftplus(n_cells) if parametric_softplus else nn.Softplus()
        self.register_buffer("output_scale", torch.ones(n_cells))  # rates per unit of the network's output

    @property
    def default_lr(self) -> float:
        """Adam's rate: 1e-2 as published for the BN-CNN (BatchNorm makes each layer invariant to its weights'
        scale); without BatchNorm a 1e-2 step is as large as the weights themselves (~1/sqrt(fan-in)) and the
        fit collapses to a constant rate, so the 2016 variant uses 3e-4 (measured on a 4000-frame embedded
        recording, 8 epochs: held-out r 0.27 at 3e-4, 0.12 at 1e-3, constant output at 3e-3 and 1e-2)."""
        return 1e-2 if self.has_batchnorm else 3e-4

    @property
    def default_output_calibration(self) -> bool:
        """After early stopping, fit the output BatchNorm's gain and offset to the training data
        (:func:`retina.fit.calibrate_output`; fitting protocol 9). With ``output_scale="data"`` too: on embedded white
        noise it raised that fit's FEVE from 0.264 (one cell at -0.97) to 0.502, on natural scenes it lowered it from
        0.187 to 0.142 (docs/retina.md)."""
        return self.has_batchnorm

    @property
    def has_batchnorm(self) -> bool:
        return isinstance(self.bn1, nn.BatchNorm1d)

    # The network after the first convolution; shared by both input paths and by attribution.
    def layer1(self, pre, noise: Optional[torch.Tensor] = None):
        return self._norm_noise_relu(pre, self.bn1, self.noise1, noise)

    def layer2(self, h1, fft: bool = False, noise: Optional[torch.Tensor] = None):
        """The second layer; ``fft``: its convolution by :func:`conv2d_fft` (``forward_movie``'s fast path)."""
        pre2 = conv2d_fft(h1, self.conv2.weight, self.conv2.bias) if fft else self.conv2(h1)
        return self._norm_noise_relu(pre2, self.bn2, self.noise2, noise)

    def _fused(self, norm) -> bool:
        return self.training and isinstance(norm, UnitBatchNorm) and norm.momentum is not None

    def _norm_noise_relu(self, pre, norm, noise_layer, noise=None):
        """ReLU(noise(BatchNorm(pre))); in training with BatchNorm in one pass split over threads
        (:func:`retina.fast_conv.unit_batchnorm_noise_relu`: the same layer and the same noise draw, to the last bit).
        ``noise``: the standard normal draw, if made beforehand (``forward_movie``)."""
        if self._fused(norm):
            return unit_batchnorm_noise_relu(pre, norm, noise_layer.std, noise)
        return F.relu(noise_layer(norm(pre)))

    def readout(self, h2):
        return self.output_scale * self.output_nonlinearity(self.bn3(self.dense(h2.flatten(1))))

    def forward(self, x):
        self._check_windows(x)
        return self.readout(self.layer2(self.layer1(self.conv1(x))))

    def forward_movie(self, movie, method: Optional[str] = None):
        """Rates ``(T, n_cells)`` for every 40-frame window of a contiguous movie ``(T + 39, H, W)``, or
        ``(N * T, n_cells)`` for a batch of chunks ``(N, T + 39, H, W)`` (chunk by chunk).

        Equal to ``self(windows(movie))``; BatchNorm (training mode) takes its statistics over all these
        windows, exactly as if they had been one batch of the plain model.
        """
        if movie.dim() not in (3, 4) or movie.shape[-2:] != (self.frame_size, self.frame_size) \
                or movie.shape[-3] < self.n_frames:
            raise ValueError(f"{type(self).__name__} expects a movie ({self.n_frames - 1} + T frames, {self.frame_size}, "
                             f"{self.frame_size}) or chunks (N, {self.n_frames - 1} + T, {self.frame_size}, "
                             f"{self.frame_size}), T >= 1; got {tuple(movie.shape)}")
        take_noise = self._noise_ahead(movie)  # drawn while the first layer runs
        pre = conv_first_layer(movie, self.conv1.weight, self.conv1.bias, method=method or self.first_layer)
        noise1, noise2 = take_noise()
        fft2 = resolve_method(self.second_layer, movie.device, layer=2) == "fft"
        return self.readout(self.layer2(self.layer1(pre, noise1), fft=fft2, noise=noise2))

    def _noise_ahead(self, movie):
        """A function giving both hidden layers' standard normal draws ``[noise1, noise2]`` (None: drawn by the layer
        itself) for a training step on ``movie``, started before the first layer (:func:`retina.fast_conv.normals_ahead`:
        the values, in the order, that the layers' own draws would give)."""
        layers = [(self.bn1, self.noise1), (self.bn2, self.noise2)]
        n_windows = movie.shape[-3] - self.n_frames + 1
        batch = n_windows * (movie.shape[0] if movie.dim() == 4 else 1)
        drawing = [i for i, (_, noise) in enumerate(layers) if noise.std > 0]
        if movie.device.type != "cpu" or not all(self._fused(norm) for norm, _ in layers) or batch < 2 or not drawing:
            return lambda: [None, None]
        take = normals_ahead([(batch, math.prod(self.hidden_shapes[i])) for i in drawing], movie.dtype)

        def taken():
            drawn = iter(take())
            return [next(drawn) if i in drawing else None for i in range(2)]
        return taken

    @torch.no_grad()
    def init_from_data(self, mean_rate: torch.Tensor):
        """With ``output_scale="data"`` (a named deviation), put the output in the recording's units: rates = ``output_scale * softplus(.)`` with ``output_scale``
        (a fixed per-cell buffer) chosen so the initial mean output is the cell's mean rate.

        The recordings are in spikes/s (mean ~25), softplus of a unit-variance BatchNorm output is ~0.8 on
        average, and Adam at 1e-2 moves a gain or bias by ~0.01 per step: learning the scale takes thousands
        of steps (and a held-out FEVE below zero until it is learned). Raising the last BatchNorm's gain
        instead makes every step of the lower layers 25x larger in output units and the fit noisy. A fixed
        scale leaves the learned parameters at their natural unit scale, like fitting ``rate / mean``."""
        if self.scale_from_data:
            self.output_scale.copy_(mean_rate.clamp_min(1e-3).to(self.output_scale) / 0.8)
        if not self.has_batchnorm:
            self._unit_variance_init()

    @torch.no_grad()
    def _unit_variance_init(self, n_windows: int = 256, seed: int = 0):
        """Without BatchNorm (the 2016 variant), start each layer as the BN-CNN starts: weights rescaled so its
        pre-activations have unit variance and zero mean over white noise (the recordings' contrast units),
        layer by layer (LSUV, Mishkin & Matas 2016). PyTorch's default initialisation leaves the read-out's
        input a ~1e-2 fraction of unit scale and the fit collapses to a constant rate."""
        movie = torch.randn(n_windows + self.n_frames - 1, self.frame_size, self.frame_size,
                            generator=torch.Generator().manual_seed(seed)).to(self.conv1.weight)
        x = conv_first_layer(movie, self.conv1.weight, None, method=self.first_layer)
        h = F.relu(self._standardize(self.conv1, x, dims=(0, 2, 3)))
        x = F.conv2d(h, self.conv2.weight)
        h = F.relu(self._standardize(self.conv2, x, dims=(0, 2, 3)))
        self._standardize(self.dense, F.linear(h.flatten(1), self.dense.weight), dims=(0,))

    @staticmethod
    def _standardize(layer: nn.Module, pre: torch.Tensor, dims) -> torch.Tensor:
        """Rescale ``layer``'s weight (and set its bias) so that ``pre`` (its bias-free output) becomes zero-mean,
        unit-variance per output channel; returns the standardised output."""
        shape = [1] * pre.dim()
        shape[1] = -1
        mean, std = pre.mean(dims), pre.std(dims).clamp_min(1e-6)
        layer.weight.div_(std.view(-1, *[1] * (layer.weight.dim() - 1)))
        if layer.bias is not None:
            layer.bias.copy_(-mean / std)
        return (pre - mean.view(shape)) / std.view(shape)

    def _check_windows(self, x):
        if x.dim() != 4 or x.shape[1] != self.n_frames or x.shape[2] != self.frame_size or x.shape[3] != self.frame_size:
            raise ValueError(f"{type(self).__name__} expects stimulus windows (batch, {self.n_frames}, "
                             f"{self.frame_size}, {self.frame_size}); got {tuple(x.shape)}")


BNCNN = RetinaCNN


def windows(movie: torch.Tensor, n_frames: int = N_FRAMES) -> torch.Tensor:
    """All ``n_frames`` windows of a movie ``(T + n_frames - 1, H, W)`` -> ``(T, n_frames, H, W)`` (a strided view)."""
    return movie.unfold(0, n_frames, 1).permute(0, 3, 1, 2)


@forwards_keywords(lambda: RetinaCNN)
def bncnn(n_cells: int = 5, **kwargs) -> RetinaCNN:
    return RetinaCNN(n_cells=n_cells, **kwargs)


@forwards_keywords(lambda: RetinaCNN)
def bncnn2016(n_cells: int = 5, **kwargs) -> RetinaCNN:
    kwargs.setdefault("channels", (16, 8))
    kwargs.setdefault("kernel_sizes", (15, 9))
    kwargs.setdefault("batchnorm", False)
    kwargs.setdefault("parametric_softplus", True)
    kwargs.setdefault("noise_std", 0.1)  # the 2016 model's Gaussian noise (REFERENCE section 4)
    kwargs.setdefault("output_scale", "data")  # named deviation: no BatchNorm gain to learn the scale
    return RetinaCNN(n_cells=n_cells, **kwargs)
