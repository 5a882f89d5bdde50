"""The learning curve of a ``zoo train`` run, from its whole metrics.jsonl (resumed runs included): training
loss per logged step and its mean over each epoch, with the validation loss at each epoch's end, and top-1 per epoch
(a run shorter than ``--log-every`` steps logs no step, and its loss panel showed validation alone). Drawn after training
returns; a run that has not reached its last epoch is titled as such, never as a finished run (a resume with epochs
left to train removes the curve of the part before, ``Trainer._setup``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from matplotlib.figure import Figure


def training_curve_figure(rows: List[Dict[str, Any]], epochs: int, title: str = "") -> Figure:
    steps = [r for r in rows if r.get("kind") == "iter"]
    ends = [r for r in rows if r.get("kind") == "epoch"]
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    loss_axis, top1_axis = figure.subplots(1, 2)
    if steps:
        loss_axis.plot([r["step"] for r in steps], [r["loss"] for r in steps], color="C0", lw=0.8,
                       label="training (logged steps)")
    validated = [r for r in ends if "val_loss" in r]
    if validated:
        loss_axis.plot([r["step"] for r in validated], [r["val_loss"] for r in validated], "o-", color="C1", ms=4,
                       label="validation (epoch end)")
    trained = [r for r in ends if "loss" in r]
    if trained:  # at the epoch's last step, as the validation loss beside it
        loss_axis.plot([r["step"] for r in trained], [r["loss"] for r in trained], "s--", color="C0", ms=3, lw=0.8,
                       label="training (epoch mean)")
    loss_axis.set(xlabel="training step", ylabel="cross-entropy loss", title="loss")
    top1_axis.plot([r["epoch"] for r in ends], [r["top1"] for r in ends], "o-", color="C0", ms=4,
                   label="training (epoch mean)")
    if validated:
        top1_axis.plot([r["epoch"] for r in validated], [r["val_top1"] for r in validated], "o-", color="C1", ms=4,
                       label="validation")
    top1_axis.set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="top-1")
    top1_axis.xaxis.get_major_locator().set_params(integer=True)
    for axis in (loss_axis, top1_axis):
        if axis.get_lines():
            axis.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    done = ends[-1]["epoch"] if ends else 0
    state = f"finished, {done} epochs" if done >= epochs else f"in progress: epoch {done} of {epochs}"
    figure.suptitle(f"{title}: {state}" if title else state, fontsize=11)
    return figure


def plot_training_curve(metrics_path, epochs: int, path, title: str = "") -> Path:
    from neurozoo.convrnn.training.metrics_log import read_metrics

    from neurozoo.datasets.figures import save_figure

    figure = training_curve_figure(read_metrics(metrics_path), epochs, title)
    return save_figure(figure, path)
