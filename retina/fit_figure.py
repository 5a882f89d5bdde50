"""The learning curve of a retina fit (``zoo fit``): training loss and validation correlation per epoch, the
best epoch (whose weights are kept) marked, and why the fit stopped. Drawn once the fit has returned, from its
whole history, never from a fit in progress."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from matplotlib.figure import Figure


def stop_reason(history: List[Dict], epochs: int, patience: int, early_stopped: bool = False) -> str:
    """``early_stopped``: the patience ran out (:attr:`retina.fit.FitResult.early_stopped`); it wins over the epoch
    limit when both came on the last allowed epoch (the fit had converged by its own rule)."""
    if early_stopped or len(history) < epochs:
        return f"early-stopped: {patience} epochs without a gain in validation r"
    return f"stopped at the epoch limit ({epochs}); may not have converged"


def fit_curve_figure(history: List[Dict], best_epoch: int, epochs: int, patience: int, title: str = "",
                     early_stopped: bool = False) -> Figure:
    epoch = [row["epoch"] + 1 for row in history]  # shown 1-based: "epoch 1" is the first pass over the data
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    loss_axis, r_axis = figure.subplots(1, 2)
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
    reason = stop_reason(history, epochs, patience, early_stopped)
    figure.suptitle(f"{title}: {reason}" if title else reason, fontsize=11)
    return figure


def plot_fit_curve(result, path, title: str = "") -> Path:
    """``result``: a finished :class:`retina.fit.FitResult`."""
    from neurozoo.datasets.figures import save_figure

    return save_figure(fit_curve_figure(result.history, result.best_epoch, result.config.epochs, result.config.patience,
                                        title, early_stopped=result.early_stopped), path)
