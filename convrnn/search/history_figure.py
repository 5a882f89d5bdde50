"""The search history (``zoo search``): each trial's validation top-1 by trial number, the best so far, the
pruned trials at the last value they reported, and the diverged ones (pruned, user attribute ``diverged``) and those
that exploded at initialisation (``exploded``) on the bottom edge, as they have no accuracy to show. Drawn from the study as it stands when the command ends; the title
counts the trials still running or waiting, so a study that other workers are still extending is never shown as
finished."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure


def search_history_figure(trials, title: str = "") -> Figure:
    """``trials``: optuna FrozenTrials."""
    from optuna.trial import TrialState

    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    diverged = [t for t in pruned if "diverged" in t.user_attrs]
    exploded = [t for t in pruned if "exploded" in t.user_attrs]  # pruned before training: nothing reported
    pruned = [t for t in pruned if t.intermediate_values and "diverged" not in t.user_attrs]
    figure = Figure(figsize=(7, 3.8), layout="constrained")
    axis = figure.subplots()
    axis.plot([t.number for t in complete], [t.value for t in complete], "o", color="C0", ms=4, label="complete")
    if pruned:
        axis.plot([t.number for t in pruned], [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
                  "x", color="C3", ms=5, label="pruned (last reported)")
    if diverged:
        axis.plot([t.number for t in diverged], [0.0] * len(diverged), "v", color="C1", ms=6, clip_on=False,
                  transform=axis.get_xaxis_transform(), label="diverged (pruned)")
    if exploded:
        axis.plot([t.number for t in exploded], [0.0] * len(exploded), "^", color="C4", ms=6, clip_on=False,
                  transform=axis.get_xaxis_transform(), label="exploded at initialisation (pruned)")
    best, running = [], float("-inf")
    for trial in sorted(complete, key=lambda t: t.number):
        running = max(running, trial.value)
        best.append((trial.number, running))
    if best:
        axis.step(*zip(*best), where="post", color="0.3", lw=1, label="best so far")
    axis.set(xlabel="trial", ylabel="validation top-1 (%)")
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4)
    counts = {state: sum(t.state == state for t in trials) for state in TrialState}
    unfinished = counts[TrialState.RUNNING] + counts[TrialState.WAITING]
    state = (f"{counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned"
             + (f" ({len(diverged)} diverged)" if diverged else "")
             + (f" ({len(exploded)} exploded at initialisation)" if exploded else "")
             + f", {counts[TrialState.FAIL]} failed" + (f", {unfinished} still running" if unfinished else ""))
    figure.suptitle(f"{title}: {state}" if title else state, fontsize=11)
    return figure


def plot_search_history(study, path, title: str = "") -> Path:
    from neurozoo.datasets.figures import save_figure

    figure = search_history_figure(study.trials, title or f"study {study.study_name!r}")
    return save_figure(figure, path)
