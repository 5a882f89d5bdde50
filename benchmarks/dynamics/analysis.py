"""Run the fixed-point analysis of a :class:`cases.Case` and the comparison of systems; figures and records.

Records (one row each, ``benchmarks.records``):
- ``dynamics.fixed_points[/condition]``: value = number of stable fixed points; settings hold the finder
  settings, the counts of fixed/slow/saddle points and, per point, q, stability and the 6 largest eigenvalues.
- ``compare.<metric>`` with model ``A ~ B``: per_bin = for each bin of A, the similarity to the same bin of B
  when both share one time grid, else the best bin of B (``best_b_start``); value = their mean.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import xarray as xr

from neurozoo.benchmarks.dynamics.cases import Case
from neurozoo.benchmarks.dynamics.fixedpoints import FixedPoints, find_fixed_points, sample_states
from neurozoo.benchmarks.dynamics.plots import plot_similarity_over_time, plot_spectra, plot_trajectories
from neurozoo.benchmarks.dynamics.similarity import similarity_over_time, trajectory_similarity
from neurozoo.benchmarks.dynamics.trajectories import from_states, pca_trajectories, record_convrnn
from neurozoo.benchmarks.records import ScoreRecord

N_EIGENVALUES_STORED = 6


def analyse(case: Case, n_initial: int = 256, noise: float = 0.05, seed: int = 0, **finder) -> Dict[str, FixedPoints]:
    finder = {"dt": case.step_ms, "time_unit": case.time_unit, **case.finder, **{k: v for k, v in finder.items() if v is not None}}
    return {condition: find_fixed_points(system, sample_states(case.states[condition], n_initial, noise, seed), **finder)
            for condition, system in case.maps.items()}


def figures(case: Case, results: Dict[str, FixedPoints], out: Path, stem: str) -> List[Path]:
    """Per condition: trajectories in the PCA plane of the visited states with the fixed points, and spectra."""
    paths = []
    for condition, found in results.items():
        states = case.states[condition]
        ids = [f"trial{i:03d}" for i in range(states.shape[1])]
        activity = from_states(states, ids, case.step_ms, name=case.name, time_unit=case.time_unit,
                               rows="stimuli" if case.stimuli is not None else "trials")
        projection, explained, pca = pca_trajectories(activity, 2)
        points = pca.transform(found.points) if len(found) else None
        name = condition.replace(" ", "_").replace("/", "_")
        # a ConvRNN's fixed points are those of its cell under the held image: mark that image's trajectory
        held = case.settings.get("image_index") if case.stimuli is not None else None
        held_label = "" if held is None else f"held: {condition} ({case.labels[condition][held]})"
        paths.append(plot_trajectories(projection, out / f"{stem}_{name}_trajectories.png", case.labels.get(condition),
                                       explained, points, found.stable, title=f"{case.name}: {condition}",
                                       highlight=held, highlight_label=held_label, legend_title=case.label_name))
        paths.append(plot_spectra(found, out / f"{stem}_{name}_spectra.png", title=f"{case.name}: {condition}",
                                  time_unit=case.time_unit))
    if case.stimuli is not None:  # a ConvRNN: each layer's output every 10 ms, from the step it first responds
        images, ids, labels = case.stimuli
        model = case.model
        layers = case.settings.get("trajectory_layers") or [case.settings["layer"]]
        n_steps = max(model.n_steps, model.image_steps + max(model.first_output_step(l) for l in layers) + 8)
        outputs = record_convrnn(model, images, ids, layers, n_steps=n_steps)  # long enough for the offset response
        for layer in layers:
            responding = outputs[layer].isel(time_bin=slice(model.first_output_step(layer), None))
            projection, explained, _ = pca_trajectories(responding, 2)
            suffix = "" if len(layers) == 1 else f"_{layer}"
            paths.append(plot_trajectories(projection, out / f"{stem}_layer_output_trajectories{suffix}.png", labels,
                                           explained, title=f"{case.model_name(layer)} output: image for "
                                           f"{model.image_steps} steps (0-{10 * model.image_steps} ms), then gray"))
    return paths


def provenance(seed: Optional[int] = None, data_sha256: Optional[str] = None) -> Dict:
    from neurozoo.datasets.provenance import code_version, device_name, git_commit

    return {"code_version": code_version(), "git_commit": git_commit(), "device": device_name(),
            "seed": seed, "data_sha256": data_sha256}


def dynamics_records(case: Case, results: Dict[str, FixedPoints], duration_s: float, seed: int,
                     data_sha256: Optional[str] = None) -> List[ScoreRecord]:
    records = []
    for condition, found in results.items():
        table = found.table()
        points = [{"q": float(row.q), "kind": row.kind, "stable": bool(row.stable), "n_unstable": int(row.n_unstable),
                   "n_unstable_is_lower_bound": bool(row.n_unstable_is_lower_bound),
                   "eigenvalues_re": found.eigenvalues[i, :N_EIGENVALUES_STORED].real,
                   "eigenvalues_im": found.eigenvalues[i, :N_EIGENVALUES_STORED].imag,
                   **({} if found.n_searches is None else {"n_searches": int(found.n_searches[i])})}
                  for i, row in enumerate(table.itertuples())]
        benchmark = "dynamics.fixed_points" + ("" if len(results) == 1 else f"/{condition}")
        records.append(ScoreRecord(model=case.name, benchmark=benchmark, value=float(found.summary()["n_stable_fixed"]),
                                   settings={**case.settings, **found.settings, **found.summary(),
                                             "condition": condition, "points": points},
                                   duration_s=duration_s, **provenance(seed, data_sha256)))
    return records


def compare(systems: Dict[str, xr.DataArray], metrics=("rsa", "cka", "debiased_cka")) -> Dict[str, Dict[str, xr.DataArray]]:
    """{"A ~ B": {metric: (time_bin_a, time_bin_b) matrix, "procrustes": window similarity if grids match}}."""
    names = list(systems)
    out = {}
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            pair = {metric: similarity_over_time(systems[first], systems[second], metric) for metric in metrics}
            if _same_grid(systems[first], systems[second]):
                pair["procrustes"] = trajectory_similarity(systems[first], systems[second])
            out[f"{first} ~ {second}"] = pair
    return out


def _same_grid(a: xr.DataArray, b: xr.DataArray) -> bool:
    return a.sizes["time_bin"] == b.sizes["time_bin"] and np.allclose(a["time_bin_start"].values, b["time_bin_start"].values)


def compare_records(systems: Dict[str, xr.DataArray], results, duration_s: float, data_sha256=None,
                    seed: Optional[int] = None, settings: Optional[dict] = None) -> List[ScoreRecord]:
    """``seed`` and ``settings`` (how the systems were made: checkpoint, steps, model overrides...) go into every
    record: an untrained ConvRNN's weights and a trained example depend on them."""
    records, settings = [], settings or {}
    for pair, by_metric in results.items():
        first, second = pair.split(" ~ ")
        a = systems[first]
        same = _same_grid(systems[first], systems[second])
        for metric, matrix in by_metric.items():
            if metric == "procrustes":
                value = float(matrix.values[0])  # NaN when a trajectory is constant (e.g. a layer not reached yet)
                records.append(ScoreRecord(model=pair, benchmark="compare.procrustes",
                                           value=value if np.isfinite(value) else None,
                                           settings={**settings, "window_bins": matrix.attrs["window_bins"]},
                                           duration_s=duration_s, **provenance(seed, data_sha256)))
                continue
            values = matrix.values
            rows = []
            for i, start in enumerate(a["time_bin_start"].values):
                row = {"time_bin_start": float(start), "time_bin_end": float(a["time_bin_end"].values[i]),
                       "value": None, "best_b_start": None}
                j = i if same else (int(np.nanargmax(values[i])) if np.isfinite(values[i]).any() else None)
                # None where the bin, or on a shared grid B's same bin, carries no information (e.g. a silent layer);
                # B's alone gave NaN with B's bin named as the match
                if j is not None and np.isfinite(values[i, j]):
                    row.update(value=float(values[i, j]), best_b_start=float(matrix["time_bin_b"].values[j]))
                rows.append(row)
            finite = [r["value"] for r in rows if r["value"] is not None and np.isfinite(r["value"])]
            records.append(ScoreRecord(model=pair, benchmark=f"compare.{metric}",
                                       value=float(np.mean(finite)) if finite else None, per_bin=rows,
                                       settings={**settings, "matrix": values, "bins_a": matrix["time_bin_a"].values,
                                                 "bins_b": matrix["time_bin_b"].values, "same_grid": same,
                                                 "n_stimuli": matrix.attrs["n_stimuli"]},
                                       duration_s=duration_s, **provenance(seed, data_sha256)))
    return records


def compare_figures(results, out: Path, stem: str, systems: Optional[Dict[str, xr.DataArray]] = None) -> List[Path]:
    """A (bin x bin) similarity figure per pair; with ``systems``, also each system's PCA trajectories."""
    paths = []
    for name, activity in (systems or {}).items():
        projection, explained, _ = pca_trajectories(activity, 2)
        paths.append(plot_trajectories(projection, out / f"{stem}_{file_name(name)}_trajectories.png",
                                       explained=explained,
                                       title=f"{name}: {activity.sizes['stimulus_id']} "
                                             f"{activity.attrs.get('rows', 'stimuli')}"))
    for pair, by_metric in results.items():
        matrices = {f"{metric}": m for metric, m in by_metric.items() if metric != "procrustes"}
        name = file_name(pair)
        procrustes = by_metric.get("procrustes")
        suffix = "" if procrustes is None else f" (trajectory Procrustes {float(procrustes.values[0]):.3f})"
        first, second = pair.split(" ~ ")
        axes = [(system, (systems or {}).get(system, xr.DataArray()).attrs.get("time_unit", "ms"))
                for system in (first, second)]
        paths.append(plot_similarity_over_time(matrices, out / f"{stem}_{name}.png", title=pair + suffix, axes=axes))
    return paths


def file_name(text: str) -> str:
    """A system's, pair's or run's name as part of a file name: "A ~ B" -> "A__B", ":" and "/" -> "-"."""
    return text.replace(" ~ ", "__").replace(":", "-").replace("/", "-")


class Timer:
    """The seconds spent inside its ``with`` blocks, summed (``seconds``): a run's duration counts its check (a
    ConvRNN built before the results store is opened) and its analysis, not what is done between them."""

    def __init__(self):
        self.seconds = 0.0

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self.start
