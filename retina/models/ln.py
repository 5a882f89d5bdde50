"""Linear-nonlinear (LN) baseline: a low-rank spatiotemporal filter per cell and a fitted softplus.

``rate = alpha * softplus(beta * <k, window> + b)`` with ``k = sum_r temporal_r (40) x spatial_r (50x50)``
per cell (``rank`` separable components; rank 1-2 is the classic space-time separable LN model). The published
LN baseline (deep-retina ``models.linear_nonlinear``: ``Dense`` on the flattened window, then softplus) has a
full-rank filter: ``rank=40`` (a 40 x 2500 filter has rank <= 40). It overfits the embedded recording (held-out r
0.449 against 0.547 at rank 2; docs/retina.md, "LN, GLM and phenomenon protocols against the original code").
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from neurozoo.datasets.registry import forwards_keywords

N_FRAMES = 40
FRAME_SIZE = 50


class LowRankFilter(nn.Module):
    """Per-cell spatiotemporal filter of rank ``rank``: windows (B, 40, 50, 50) -> drive (B, n_cells)."""

    def __init__(self, n_cells: int, rank: int = 2, n_frames: int = N_FRAMES, frame_size: int = FRAME_SIZE):
        super().__init__()
        self.n_cells, self.rank, self.n_frames, self.frame_size = n_cells, rank, n_frames, frame_size
        # Stored scaled by sqrt(size) so that Adam's per-entry steps suit a unit-norm filter of 100k entries.
        self.spatial_scale, self.temporal_scale = frame_size ** -1.0, n_frames ** -0.5
        self.spatial = nn.Parameter(torch.randn(n_cells * rank, frame_size * frame_size) * 0.05)
        self.temporal = nn.Parameter(torch.randn(n_cells * rank, n_frames) * 0.5)

    def weights(self):
        return self.spatial * self.spatial_scale, self.temporal * self.temporal_scale

    def forward(self, x):
        if x.dim() != 4 or x.shape[1:] != (self.n_frames, self.frame_size, self.frame_size):
            raise ValueError(f"expected stimulus windows (batch, {self.n_frames}, {self.frame_size}, {self.frame_size}); "
                             f"got {tuple(x.shape)}")
        spatial, temporal = self.weights()
        projected = x.flatten(2) @ spatial.T  # (B, 40, cells * rank)
        drive = (projected * temporal.T).sum(1)  # (B, cells * rank)
        return drive.view(-1, self.n_cells, self.rank).sum(-1)

    def forward_movie(self, movie):
        """Drive ``(T, n_cells)`` of every window of a contiguous movie ``(T + 39, 50, 50)``."""
        spatial, temporal = self.weights()
        projected = movie.flatten(1) @ spatial.T  # (T + 39, cells * rank): each frame projected once
        drive = (projected.unfold(0, self.n_frames, 1) * temporal).sum(-1)  # (T, cells * rank)
        return drive.view(-1, self.n_cells, self.rank).sum(-1)

    @torch.no_grad()
    def init_from_sta(self, sta: torch.Tensor):
        """Start from the best rank-``rank`` approximation (SVD) of each cell's spike-triggered average,
        scaled to unit norm (unit drive sd under unit-variance white noise)."""
        for c in range(self.n_cells):
            u, s, vh = torch.linalg.svd(sta[c].reshape(self.n_frames, -1), full_matrices=False)
            s = s[:self.rank] / s[:self.rank].square().sum().sqrt().clamp_min(1e-12)
            rows = slice(c * self.rank, (c + 1) * self.rank)
            self.temporal[rows] = (u[:, :self.rank] * s.sqrt()).T / self.temporal_scale
            self.spatial[rows] = vh[:self.rank] * s.sqrt()[:, None] / self.spatial_scale

    @torch.no_grad()
    def scale_drive(self, windows: torch.Tensor, sd: float):
        """Rescale each cell's filter so that its drive on ``windows`` (a sample of the training stimulus) has
        standard deviation ``sd``. The STA start is scaled for white noise; under natural scenes (strong
        spatial correlations) the same filter's drive is ~50x larger, which an exponential link cannot fit."""
        drive = self(windows)
        gain = (sd / drive.std(0).clamp_min(1e-9)).sqrt().repeat_interleave(self.rank)[:, None]
        self.spatial.mul_(gain)
        self.temporal.mul_(gain)

    def squared_norm(self) -> torch.Tensor:
        """``sum(filters() ** 2)`` over every cell, without assembling the filters: ``||sum_r t_r (x) s_r||^2 =
        sum_{r, r'} <s_r, s_r'> <t_r, t_r'>`` per cell (the Gram of the factors). A function of the filter alone, so
        unchanged when a factor is scaled by ``a`` and its partner by ``1 / a`` (what a penalty on the stored
        factors is not: ``retina.fit.FitConfig.filter_l2``)."""
        spatial, temporal = self.weights()
        s = spatial.view(self.n_cells, self.rank, -1)
        t = temporal.view(self.n_cells, self.rank, -1)
        return ((s @ s.transpose(1, 2)) * (t @ t.transpose(1, 2))).sum()

    def filters(self) -> torch.Tensor:
        """The full filters ``(n_cells, 40, 50, 50)``."""
        spatial, temporal = self.weights()
        t = temporal.view(self.n_cells, self.rank, self.n_frames)
        s = spatial.view(self.n_cells, self.rank, self.frame_size, self.frame_size)
        return torch.einsum("crt,crhw->cthw", t, s)


class LN(nn.Module):
    def __init__(self, n_cells: int = 5, rank: int = 2, n_frames: int = N_FRAMES, frame_size: int = FRAME_SIZE):
        super().__init__()
        self.n_cells, self.frame_size = n_cells, frame_size
        self.filter = LowRankFilter(n_cells, rank, n_frames, frame_size)
        self.alpha = nn.Parameter(torch.ones(n_cells))
        self.beta = nn.Parameter(torch.ones(n_cells))
        self.bias = nn.Parameter(torch.zeros(n_cells))

    def gain(self) -> torch.Tensor:
        """The output gain ``|alpha|``. ``init_from_data`` starts ``alpha`` at the cell's mean rate (over 0.69), about
        1e-3 for a cell with no spikes in the training split (a dead channel, a cell lost early: common in real
        recordings), and Adam's first steps (1e-2) carried it below 0: the model's rates went negative and the fit
        was refused as if the model could not give rates >= 0. ``|alpha|`` is ``alpha`` wherever ``alpha > 0``, value
        and gradient, so every fit that ran before gives the same weights."""
        return self.alpha.abs()

    def forward(self, x):
        return self.gain() * F.softplus(self.beta * self.filter(x) + self.bias)

    def init_from_sta(self, sta):
        self.filter.init_from_sta(sta)

    def init_from_stimulus(self, windows: torch.Tensor):
        """Unit drive sd on the training stimulus (the STA start assumes white noise)."""
        self.filter.scale_drive(windows, 1.0)

    def forward_movie(self, movie):
        return self.gain() * F.softplus(self.beta * self.filter.forward_movie(movie) + self.bias)

    @torch.no_grad()
    def init_from_data(self, mean_rate: torch.Tensor):
        """Start at the cells' mean rates (``softplus(0) * alpha = mean``), so training starts from the right scale."""
        self.alpha.copy_(mean_rate.clamp_min(1e-3) / F.softplus(torch.zeros(())))


@forwards_keywords(lambda: LN)
def ln(n_cells: int = 5, **kwargs) -> LN:
    return LN(n_cells=n_cells, **kwargs)
