"""The learning curve of a retina fit (``zoo fit``): training loss and validation correlation per epoch, the
best epoch (whose weights are kept) marked, and why the fit stopped; with the held-out metrics, a third panel of each
cell's held-out r beside its repeat-reliability ceiling (the leave-one-out oracle). Drawn once the fit has returned,
from its whole history, never from a fit in progress."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from matplotlib.figure import Figure

#: cells named on the per-cell panel's axis; beyond that every n-th, so that the names stay readable
NAMED_CELLS = 24


def stop_reason(history: List[Dict], epochs: int, patience: int, early_stopped: bool = False) -> str:
    """``early_stopped``: the patience ran out (:attr:`retina.fit.FitResult.early_stopped`); it wins over the epoch
    limit when both came on the last allowed epoch (the fit had converged by its own rule)."""
    if early_stopped or len(history) < epochs:
        return f"early-stopped: {patience} epochs without a gain in validation r"
    return f"stopped at the epoch limit ({epochs}); may not have converged"


def fit_curve_figure(history: List[Dict], best_epoch: int, epochs: int, patience: int, title: str = "",
                     early_stopped: bool = False, cells=None) -> Figure:
    """``cells``: the held-out metrics (:func:`retina.metrics.heldout_metrics`, a frame indexed by cell name), drawn as
    a third panel (:func:`cell_panel`)."""
    epoch = [row["epoch"] + 1 for row in history]  # shown 1-based: "epoch 1" is the first pass over the data
    figure = Figure(figsize=(9 if cells is None else 13.5, 3.6), layout="constrained")
    loss_axis, r_axis, *cell_axis = figure.subplots(1, 2 if cells is None else 3)
    loss_axis.plot(epoch, [row["train_loss"] for row in history], "o-", color="C0", ms=3)
    loss_axis.set(xlabel="epoch (from 1)", ylabel="Poisson loss (up to a constant)", title="training loss")
    r_axis.plot(epoch, [row["val_correlation"] for row in history], "o-", color="C1", ms=3, label="validation r")
    if best_epoch >= 0:
        best = next(row for row in history if row["epoch"] == best_epoch)
        # summary.json and history.json count from 0: the legend names their index too (best_epoch_number, 1-based,
        # is what summary.json gives beside it)
        r_axis.axvline(best_epoch + 1, color="0.5", ls="--", lw=0.8,
                       label=f"best: epoch {best_epoch + 1} (best_epoch {best_epoch} in summary.json, counted from 0), "
                             f"r {best['val_correlation']:.3f} (kept)")
    r_axis.set(xlabel="epoch (from 1)", ylabel="validation r (mean over cells)", title="validation correlation")
    r_axis.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    for axis in (loss_axis, r_axis):
        axis.xaxis.get_major_locator().set_params(integer=True)
    if cells is not None:
        cell_panel(cell_axis[0], cells)
    reason = stop_reason(history, epochs, patience, early_stopped)
    figure.suptitle(f"{title}: {reason}" if title else reason, fontsize=11)
    return figure


def cell_panel(axis, cells) -> None:
    """Per cell, its held-out r (filled: a cell passing the explainable-variance filter, counted in the summary's
    medians; open: left out) on a grey bar up to its oracle correlation, the r a perfect model of the trial average
    would reach on single trials; a cell without an oracle (NaN: fewer than two usable repeats) has no bar."""
    import numpy as np

    from neurozoo.retina.metrics import MIN_EXPLAINABLE

    x = np.arange(len(cells))
    oracle = cells["oracle"].to_numpy(float)
    r = cells["correlation"].to_numpy(float)
    passes = cells["passes"].to_numpy(bool)
    if np.isfinite(oracle).any():
        axis.bar(x, np.nan_to_num(oracle), width=0.7, color="0.85", label="oracle r (repeat reliability)")
    axis.plot(x[passes], r[passes], "o", color="C2", ms=5,
              label=f"held-out r (explainable variance >= {MIN_EXPLAINABLE:g})")
    if (~passes).any():
        axis.plot(x[~passes], r[~passes], "o", mfc="none", color="C2", ms=5, label="held-out r (below: not in medians)")
    step = max(1, int(np.ceil(len(x) / NAMED_CELLS)))
    axis.set_xticks(x[::step], [str(name) for name in cells.index[::step]], rotation=90 if len(x) > 8 else 0,
                    fontsize=7)
    axis.axhline(0, color="0.5", lw=0.6)
    axis.set(xlim=(-0.6, len(x) - 0.4), ylabel="correlation with the trial average",
             title="held-out r per cell vs its oracle")
    axis.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3))


def plot_fit_curve(result, path, title: str = "", cells=None) -> Path:
    """``result``: a finished :class:`retina.fit.FitResult`; ``cells``: its held-out metrics (the per-cell panel)."""
    from neurozoo.datasets.figures import save_figure

    return save_figure(fit_curve_figure(result.history, result.best_epoch, result.config.epochs, result.config.patience,
                                        title, early_stopped=result.early_stopped, cells=cells), path)
