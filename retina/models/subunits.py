"""Two-subunit model: a rectified ON and a rectified OFF subunit per cell, converging at a softplus.

``rate = alpha * softplus(w_on * relu(<k_on, window> + b_on) + w_off * relu(<k_off, window> + b_off) + b)``
with ``k_on``, ``k_off`` low-rank spatiotemporal filters (as the LN model's). It is the smallest model with the
structure Tanaka et al. (2019) found for the omitted-stimulus response -- two rectified pathways of opposite
polarity combined nonlinearly -- and no more (no hidden layer shared across cells, no recurrence). The ON
filter starts from the spike-triggered average, the OFF filter from its mirror image.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from neurozoo.datasets.registry import forwards_keywords
from neurozoo.retina.models.ln import FRAME_SIZE, N_FRAMES, LowRankFilter


class TwoSubunit(nn.Module):
    def __init__(self, n_cells: int = 5, rank: int = 2, n_frames: int = N_FRAMES, frame_size: int = FRAME_SIZE):
        super().__init__()
        self.n_cells = n_cells
        self.frame_size = frame_size
        self.on = LowRankFilter(n_cells, rank, n_frames, frame_size)
        self.off = LowRankFilter(n_cells, rank, n_frames, frame_size)
        self.subunit_bias = nn.Parameter(torch.zeros(2, n_cells))
        self.weights = nn.Parameter(torch.ones(2, n_cells))
        self.alpha = nn.Parameter(torch.ones(n_cells))
        self.bias = nn.Parameter(torch.zeros(n_cells))

    def _combine(self, on, off):
        on = F.relu(on + self.subunit_bias[0])
        off = F.relu(off + self.subunit_bias[1])
        # |alpha|: the LN model's gain (LN.gain), which a cell with no training spikes drove below 0
        return self.alpha.abs() * F.softplus(self.weights[0] * on + self.weights[1] * off + self.bias)

    def subunits(self, x):
        """The two rectified subunit outputs ``(B, 2, n_cells)`` for windows ``x``."""
        return torch.stack([F.relu(self.on(x) + self.subunit_bias[0]), F.relu(self.off(x) + self.subunit_bias[1])], 1)

    def forward(self, x):
        return self._combine(self.on(x), self.off(x))

    def forward_movie(self, movie):
        return self._combine(self.on.forward_movie(movie), self.off.forward_movie(movie))

    @torch.no_grad()
    def init_from_sta(self, sta):
        self.on.init_from_sta(sta)
        self.off.init_from_sta(-sta)

    def init_from_stimulus(self, windows: torch.Tensor):
        self.on.scale_drive(windows, 1.0)
        self.off.scale_drive(windows, 1.0)

    @torch.no_grad()
    def init_from_data(self, mean_rate: torch.Tensor):
        self.alpha.copy_(mean_rate.clamp_min(1e-3) / F.softplus(torch.ones(())))


@forwards_keywords(lambda: TwoSubunit)
def twosubunit(n_cells: int = 5, **kwargs) -> TwoSubunit:
    return TwoSubunit(n_cells=n_cells, **kwargs)
