"""The hidden teacher of the embedded benchmark: a seeded random-weight conv net with known temporal dynamics.

Areas V1 -> V4 -> IT (on 64x64 images: V1 a 5x5/2 convolution and 2x2 average pooling, 16 channels at
16x16; V4 3x3/2, 32 channels at 8x8; IT 3x3/2, 64 channels at 4x4) plus an IT -> V4 feedback path (1x1
convolution, upsampled x2). Time runs in 10 ms steps; step t covers [10t, 10t + 10) ms, the image is
shown for the first ``image_steps`` (default 10, 100 ms) and then replaced by mean gray, exactly as for
the ConvRNNs (``forward`` follows their contract, so the benchmark harness records the teacher like any
ConvRNN). Per area and channel c:

    drive(t) = relu(conv(out_below(t - delay)) [+ 0.5 * feedback(out_IT(t - 2)) for V4])
    h(t)     = h(t-1) + alpha_c (drive(t) - h(t-1))        leaky integration
    a(t)     = a(t-1) + alpha_a,c (h(t) - a(t-1))          adaptation
    out(t)   = relu(h - beta_c a) + 0.5 relu(beta_c a - h)  onset transient, offset rebound

Half of each area's channels are transient (tau 10-20 ms, adaptation tau 30 ms, strength 0.85-1),
half sustained (tau 40-100 ms, adaptation tau 200 ms, strength 0-0.2). Feedforward delays are 4
steps into V1 (retina/LGN), 2 into V4 and 2 into IT, so IT's first drive arrives at 80 ms, 20 ms
after V4's.

A recorded neuron reads its area's output linearly: a non-negative mix of one transient and one
sustained readout template (12 templates for V4, 16 for IT; each a Gaussian spatial window, sigma 1
cell of 8x8 for V4 and 1.5 of 4x4 for IT, times two channels of its group). Its stimulus selectivity
therefore shifts from the transient to the sustained template during the response, which a static
feedforward model cannot follow, and the population is low-dimensional (rank <= templates), as
recordings are. Rate = ``baseline + gain * readout`` spikes/s (gain calibrated so the peak of the
stimulus-mean response is the neuron's drawn peak rate, 80-250 spikes/s; baseline 5-30); the
expected spike count per 10 ms bin is rate / 100. Trials draw Poisson counts from that rate times a
per-trial log-normal gain (sd 0.15), see ``datasets.embedded.ventral``.

Measured with the harness's span-time PLS (25 components, r^2/ceiling, seed 0), V4 / IT:

* the benchmark as run (``benchmark.score(teacher)``: 1000 projected features): 0.88 / 0.83;
* the teacher's unprojected layer: 0.90 / 0.86 (PLS with 50 components 0.93 / 0.89, ridge 0.92 / 0.90 --
  25 components cannot hold the time-varying mix of 2 x 12 / 2 x 16 read-out templates);
* the matched feed-forward control (same weights, no dynamics, one static bin): 0.85 / 0.80, below the
  teacher in every bin (V4 at 70 ms: 0.55 vs 0.70);
* shuffled teacher features: |score| < 0.05.

The leaderboard's zoo runs at 200 features per layer: the teacher would score 0.79 / 0.78 there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STEP_MS = 10
N_STEPS = 26
IMAGE_STEPS = 10
BIN_STARTS = tuple(range(70, 260, STEP_MS))  # 19 bins [70, 80) .. [250, 260): steps 7..25
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNELS = {"V1": 16, "V4": 32, "IT": 64}
DELAYS = {"V1": 4, "V4": 2, "IT": 2}
FEEDBACK_DELAY = 2
FEEDBACK_GAIN = 0.5
TRANSIENT = ((10.0, 20.0), (0.85, 1.0))  # channel time constant range (ms), adaptation strength range
SUSTAINED = ((40.0, 100.0), (0.0, 0.2))
TAU_ADAPTATION_MS = (30.0, 200.0)  # transient, sustained channels
OFFSET_GAIN = 0.5
READOUT = {"V4": (1.0, 12), "IT": (1.5, 16)}  # spatial sigma (cells), number of readout templates
TRIAL_GAIN_SD = 0.15


@dataclass
class TeacherOutput:
    recorded: Dict[str, torch.Tensor] = field(default_factory=dict)  # layer -> (T, B, C, H, W)


def to_input(pixels: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 pixels -> ImageNet-normalised (N, 3, H, W) float32, the teacher's (and harness's) input."""
    tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32) / 255.0).permute(0, 3, 1, 2)
    return (tensor - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def _rectify(difference: torch.Tensor) -> torch.Tensor:
    """relu(d) + OFFSET_GAIN * relu(-d): the sustained-minus-adapted response plus an offset rebound."""
    return (1.0 + OFFSET_GAIN) * F.relu(difference) - OFFSET_GAIN * difference


class VentralTeacher(nn.Module):
    layer_names = ("V1", "V4", "IT")
    regions = ("V4", "IT")
    image_size = 64

    def __init__(self, seed: int = 0, n_neurons: Optional[Dict[str, int]] = None):
        super().__init__()
        self.seed = seed
        n_neurons = dict(n_neurons or {"V4": 40, "IT": 60})
        g = torch.Generator().manual_seed(seed)
        self.convs = nn.ModuleDict({
            "V1": nn.Conv2d(3, CHANNELS["V1"], 5, stride=2, padding=2, bias=False),
            "V4": nn.Conv2d(CHANNELS["V1"], CHANNELS["V4"], 3, stride=2, padding=1, bias=False),
            "IT": nn.Conv2d(CHANNELS["V4"], CHANNELS["IT"], 3, stride=2, padding=1, bias=False),
        })
        self.feedback = nn.Conv2d(CHANNELS["IT"], CHANNELS["V4"], 1, bias=False)
        for name, conv in [*self.convs.items(), ("feedback", self.feedback)]:
            weight = torch.randn(conv.weight.shape, generator=g) * math.sqrt(2.0 / conv.weight[0].numel())
            if name == "V1":  # zero-mean filters: uniform gray drives nothing
                weight -= weight.mean(dim=(1, 2, 3), keepdim=True)
            conv.weight.data.copy_(weight)
        for name, c in CHANNELS.items():  # first half transient channels, second half sustained
            half = c // 2
            (tau_lo, tau_hi), (beta_lo, beta_hi) = TRANSIENT
            tau = [tau_lo + (tau_hi - tau_lo) * torch.rand(half, generator=g, dtype=torch.float64)]
            beta = [beta_lo + (beta_hi - beta_lo) * torch.rand(half, generator=g)]
            (tau_lo, tau_hi), (beta_lo, beta_hi) = SUSTAINED
            tau.append(tau_lo + (tau_hi - tau_lo) * torch.rand(c - half, generator=g, dtype=torch.float64))
            beta.append(beta_lo + (beta_hi - beta_lo) * torch.rand(c - half, generator=g))
            self.register_buffer(f"alpha_{name}", (1 - torch.exp(-STEP_MS / torch.cat(tau))).float().view(1, c, 1, 1))
            self.register_buffer(f"beta_{name}", torch.cat(beta).view(1, c, 1, 1))
        for name, c in CHANNELS.items():
            tau_a = torch.tensor([TAU_ADAPTATION_MS[0]] * (c // 2) + [TAU_ADAPTATION_MS[1]] * (c - c // 2))
            self.register_buffer(f"alpha_adaptation_{name}", (1 - torch.exp(-STEP_MS / tau_a)).view(1, c, 1, 1))
        sizes = {"V1": self.image_size // 4, "V4": self.image_size // 8, "IT": self.image_size // 16}
        for region, n in n_neurons.items():
            sigma, n_templates = READOUT[region]
            size, channels = sizes[region], CHANNELS[region]
            centres = (size / 4 + (size / 2) * torch.rand(n_templates, 2, generator=g))
            # float64, then rounded: float32 exp (MKL's vector math, by instruction set) and sums (by SIMD width)
            # differ in their last bits between CPUs, and the generated data are pinned by digest
            grid, centres64 = torch.arange(size, dtype=torch.float64) + 0.5, centres.double()
            spatial = torch.exp(-((grid.view(1, size, 1) - centres64[:, 0].view(-1, 1, 1)) ** 2
                                  + (grid.view(1, 1, size) - centres64[:, 1].view(-1, 1, 1)) ** 2) / (2 * sigma ** 2))
            spatial = (spatial / spatial.sum(dim=(1, 2), keepdim=True)).float()
            mixture = torch.zeros(n_templates, channels)
            half = channels // 2
            for k in range(n_templates):  # even templates read transient channels, odd ones sustained channels
                group = torch.randperm(half, generator=g)[:2] + (0 if k % 2 == 0 else half)
                mixture[k, group] = 0.5 + 0.5 * torch.rand(2, generator=g)
            templates = (mixture.view(n_templates, channels, 1, 1) * spatial.view(n_templates, 1, size, size)).flatten(1)
            weights = torch.zeros(n, n_templates)
            for i in range(n):  # one transient and one sustained template: selectivity shifts during the response
                transient = 2 * torch.randint(n_templates // 2, (1,), generator=g)
                weights[i, transient] = 0.3 + 0.7 * torch.rand(1, generator=g)
                sustained = 2 * torch.randint(n_templates // 2, (1,), generator=g) + 1
                weights[i, sustained] = 0.3 + 0.7 * torch.rand(1, generator=g)
            # Each row of ``weights`` has two non-zero entries: the sum of the two scaled templates is rounded the
            # same on every CPU, where a matrix product's kernels (FMA or not, by instruction set) are not.
            readout = (weights[:, :, None] * templates[None]).sum(1)
            self.register_buffer(f"readout_{region}", readout.view(n, channels, size, size))
            self.register_buffer(f"baseline_{region}", 5.0 + 25.0 * torch.rand(n, generator=g))
            self.register_buffer(f"peak_{region}", 80.0 + 170.0 * torch.rand(n, generator=g))
            self.register_buffer(f"gain_{region}", torch.ones(n))
        self.requires_grad_(False)

    def n_neurons(self, region: str) -> int:
        return getattr(self, f"readout_{region}").shape[0]

    # ----------------------------------------------------------------- dynamics
    def forward(self, images: torch.Tensor, n_steps: int = N_STEPS, image_steps: int = IMAGE_STEPS,
                record: Optional[Sequence[str]] = None) -> TeacherOutput:
        """Unroll ``n_steps`` 10 ms steps; returns every recorded layer's output at every step, (T, B, C, H, W).

        Runs on one intra-op thread: the tensors are tiny, and on a busy CPU the thread pool's spinning
        costs 10-50x more than the work (measured 3.9 s vs 0.08 s CPU for 48 images on 2 shared cores).
        """
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._unroll(images, n_steps, image_steps, record)
        finally:
            torch.set_num_threads(threads)

    def _unroll(self, images, n_steps, image_steps, record) -> TeacherOutput:
        images = self._resize(images)
        record = list(self.layer_names if record is None else record)
        unknown = [r for r in record if r not in self.layer_names]
        if unknown:
            raise KeyError(f"teacher has no layer {unknown[0]!r} (layers: {self.layer_names})")
        mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=images.dtype).view(1, 3, 1, 1)
        centred = (images * std + mean - 0.5) / 0.25  # mean gray -> 0
        image_drive = F.avg_pool2d(F.relu(self.convs["V1"](centred)), 2)
        # V1's drive is the fixed map D while the image is on and 0 after; its dynamics are linear in D and
        # the rectifications commute with D >= 0, so out_V1(t) = D * k_c(t) with a per-channel time course k.
        v1_course = self._v1_course(n_steps, image_steps).to(images.dtype)
        history: Dict[str, list] = {"V1": [image_drive * v1_course[t] if v1_course[t].any() else None for t in range(n_steps)],
                                     "V4": [], "IT": []}
        h: Dict[str, torch.Tensor] = {}
        a: Dict[str, torch.Tensor] = {}

        def past(name: str, t: int, delay: int) -> Optional[torch.Tensor]:
            return history[name][t - delay] if t - delay >= 0 else None

        for t in range(n_steps):
            v4 = self._conv_or_zero("V4", past("V1", t, DELAYS["V4"]), image_drive)
            top = past("IT", t, FEEDBACK_DELAY)
            if top is not None:
                v4 = v4 + FEEDBACK_GAIN * F.interpolate(self.feedback(top), size=v4.shape[-2:], mode="nearest")
            drive = F.relu(v4)
            history["V4"].append(self._integrate("V4", drive, h, a))
            drive = F.relu(self._conv_or_zero("IT", past("V4", t, DELAYS["IT"]), drive))
            history["IT"].append(self._integrate("IT", drive, h, a))
        zero = torch.zeros_like(image_drive)
        history["V1"] = [zero if out is None else out for out in history["V1"]]
        return TeacherOutput({name: torch.stack(history[name]) for name in record})

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        """The data were generated from 64x64 images; other sizes (e.g. a harness's 224) are resized back."""
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        return images

    def _integrate(self, name: str, drive: torch.Tensor, h: dict, a: dict) -> torch.Tensor:
        """One step of leaky integration and adaptation; returns the area's output."""
        if name not in h:
            h[name], a[name] = torch.zeros_like(drive), torch.zeros_like(drive)
        h[name] = torch.lerp(h[name], drive, getattr(self, f"alpha_{name}"))
        a[name] = torch.lerp(a[name], h[name], getattr(self, f"alpha_adaptation_{name}"))
        difference = torch.addcmul(h[name], getattr(self, f"beta_{name}"), a[name], value=-1.0)
        return _rectify(difference)

    def _v1_course(self, n_steps: int, image_steps: int) -> torch.Tensor:
        """k_c(t), (T, 1, C, 1, 1): V1's output per unit of image drive, from the same update as the other areas."""
        h = a = torch.zeros_like(self.alpha_V1)
        course = []
        for t in range(n_steps):
            shown = 1.0 if 0 <= t - DELAYS["V1"] < image_steps else 0.0
            h = torch.lerp(h, torch.full_like(h, shown), self.alpha_V1)
            a = torch.lerp(a, h, self.alpha_adaptation_V1)
            course.append(_rectify(h - self.beta_V1 * a))
        return torch.stack(course)

    def _conv_or_zero(self, name: str, source: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        if source is not None:
            return self.convs[name](source)
        # no output from below yet: zero drive at this area's size (each area halves the size of the one below)
        return like.new_zeros((like.shape[0], CHANNELS[name], like.shape[2] // 2, like.shape[3] // 2))

    # ----------------------------------------------------------------- neurons
    @torch.no_grad()
    def readouts(self, images: torch.Tensor, regions: Sequence[str] = ("V4", "IT"), batch_size: int = 48) -> Dict[str, torch.Tensor]:
        """Uncalibrated linear readouts (B, n_neurons, n_steps) of each region's layer."""
        out = {region: [] for region in regions}
        for start in range(0, images.shape[0], batch_size):
            recorded = self.forward(images[start:start + batch_size], record=list(regions)).recorded
            for region in regions:
                weights = getattr(self, f"readout_{region}")
                out[region].append(torch.einsum("tbchw,nchw->bnt", recorded[region], weights))
        return {region: torch.cat(chunks) for region, chunks in out.items()}

    def calibrate(self, images: torch.Tensor) -> None:
        """Set each neuron's gain so its stimulus-mean response peaks at its drawn peak rate."""
        self.calibrate_from(self.readouts(images))

    def calibrate_from(self, raw: Dict[str, torch.Tensor]) -> None:
        for region, values in raw.items():
            peak = values.mean(0).amax(-1).clamp_min(1e-6)
            getattr(self, f"gain_{region}").copy_((getattr(self, f"peak_{region}") - getattr(self, f"baseline_{region}")) / peak)

    def rates_from(self, raw: Dict[str, torch.Tensor], bins: bool = True) -> Dict[str, torch.Tensor]:
        """Expected spike counts per 10 ms bin from uncalibrated readouts (B, n, steps)."""
        result = {}
        for region, values in raw.items():
            rate = getattr(self, f"baseline_{region}").view(1, -1, 1) + getattr(self, f"gain_{region}").view(1, -1, 1) * values
            counts = rate * (STEP_MS / 1000.0)
            result[region] = counts[:, :, BIN_STARTS[0] // STEP_MS:] if bins else counts
        return result

    @torch.no_grad()
    def responses(self, images: torch.Tensor, regions: Sequence[str] = ("V4", "IT"), bins: bool = True) -> Dict[str, torch.Tensor]:
        """Noiseless expected spike counts per 10 ms bin, (B, n_neurons, 19 bins 70..260 ms) per region.

        ``bins=False`` returns all 26 steps instead of the 19 recorded bins.
        """
        return self.rates_from(self.readouts(images, regions), bins)

    @torch.no_grad()
    def features(self, images: torch.Tensor, layers: Sequence[str] = ("V4", "IT"), feedforward: bool = False,
                 batch_size: int = 48) -> Dict[str, torch.Tensor]:
        """Layer outputs flattened, (B, C*H*W, 19 bins). ``feedforward=True``: the same weights without dynamics
        (instantaneous rectified convolutions of the image, no delays, integration, adaptation or feedback),
        one static bin (B, C*H*W, 1) -- the matched feedforward control."""
        chunks = {layer: [] for layer in layers}
        for start in range(0, images.shape[0], batch_size):
            batch = self._resize(images[start:start + batch_size])
            if feedforward:
                mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
                std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
                x = (batch * std + mean - 0.5) / 0.25
                outputs = {}
                for name in self.layer_names:
                    x = F.relu(self.convs[name](x))
                    x = F.avg_pool2d(x, 2) if name == "V1" else x
                    outputs[name] = x
                for layer in layers:
                    chunks[layer].append(outputs[layer].flatten(1)[:, :, None])
            else:
                recorded = self.forward(batch, record=list(layers)).recorded
                for layer in layers:
                    steps = recorded[layer][BIN_STARTS[0] // STEP_MS:]  # (19, B, C, H, W)
                    chunks[layer].append(steps.flatten(2).permute(1, 2, 0))
        return {layer: torch.cat(c) for layer, c in chunks.items()}
