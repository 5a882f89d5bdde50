"""The teacher-student capacity test of ``retina_embedded.oms`` (docs/retina.md, "Teacher-student follow-up").

The BN-CNN fitted on ``embedded:oms-gratingmotion`` (Poisson spike counts of the object-motion circuit under the OMS
probe's own stimulus family) orders the probe's conditions as the circuit does but leaves 15-43 spikes/s under global
motion where the circuit leaves 1.6-3.4. This script asks whether that is the spike noise (and the amount of data)
or the model class and fitting protocol, in three subcommands:

* ``fit --seed S --out DIR``: the same BN-CNN and fitting protocol 11 (``retina.fit.fit``, its defaults, as ``zoo
  fit bncnn``), on the same 24000-frame training movie, with the training (and validation) target replaced by its
  noise-free expectation: the circuit's expected rates, smoothed as the recording's ``firing_rate_10ms`` was
  (:func:`expected_target`). The loss is protocol 11's Poisson loss, here with non-integer targets (the same
  minimiser in expectation as with the counts). The held-out r and FEVE are the recording's (its Poisson test
  repeats), as ``zoo fit`` reports them. Writes ``DIR/model.pt``, ``DIR/history.json`` and ``DIR/teacher.json``
  (not ``summary.json``, the name ``zoo score`` reads as a ``zoo fit`` summary). ``--keep-last`` also writes the
  last epoch's weights, calibrated as the kept epoch's are, to ``DIR/last`` (:func:`keep_last_epoch`).
* ``reach``: no fit. Variants of the circuit restricted to what the BN-CNN's graph can compute (its 25-px conv stack
  cannot see a cell's centre and its 14-24 px annulus together, so the annulus can only be subtracted in the dense
  layer, after the rectified layer-2 features and before the softplus; and its only temporal filter is the first
  layer's, before any rectification), scored on the benchmark's probe.
* ``rates [DIR ...]``: the per-condition rates of the circuit and of each fit on held-out movies of the training
  family (``grating_motion(4000, np.random.default_rng(1000))``, frames 50-199 of each segment, mean over the six
  cells) and on the benchmark's probe (``object_motion_sensitivity`` with ``oms_arguments(OMS)``); ``--json`` keeps
  them, ``--figure`` draws them.

Run from the repository root with ``OMP_NUM_THREADS=1``; the recording is ``load_embedded_retina("oms-gratingmotion")``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

CONDITIONS = ("global", "differential", "object", "static")
SETTLE, SEGMENT = 50, 200  # the frames 50-199 of each 200-frame segment


def expected_target(recording, circuit) -> dict:
    """The noise-free counterpart of ``recording``'s training responses: the circuit's expected rates on its movie,
    as counts per frame (``binned``, expected counts) and smoothed as the recording's were (``firing_rates`` with the
    ``centered`` rule, linear in the counts: each key is the expectation of the recorded key)."""
    from neurozoo.datasets.retina_h5 import firing_rates
    from neurozoo.datasets.synthetic_retina import FRAME_RATE

    rates = circuit.rates(np.asarray(recording.stimulus, np.float32))  # (cells, T) spikes/s
    counts = rates / FRAME_RATE
    return {**firing_rates(counts, rule="centered"), "binned": counts.astype(np.float32)}


def noise_free(recording, circuit):
    """``recording`` (a train split) with its responses replaced by :func:`expected_target`, unattached to its file
    (``path`` None: a fit of it records no data hash, so it can never be taken for a fit of the file's counts)."""
    target = expected_target(recording, circuit)
    stimulus = recording.stimulus
    return dataclasses.replace(recording, path=None, responses=target, _stimulus=stimulus)


def _fit(args) -> int:
    import torch

    from neurozoo.datasets.oms_retina import oms_retina
    from neurozoo.datasets.retina_h5 import read_experiment
    from neurozoo.datasets.synthetic_retina import load_embedded_retina
    from neurozoo.retina.fit import create_model, fit

    path = load_embedded_retina("oms-gratingmotion")
    train = noise_free(read_experiment(path, "train"), oms_retina())
    out = Path(args.out)
    torch.manual_seed(args.seed)  # as zoo fit: the initial weights are part of what the seed fixes
    model = create_model("bncnn", n_cells=len(train.cells))
    wall, cpu = time.perf_counter(), time.process_time()
    overrides = {key: getattr(args, key) for key in ("epochs", "l1", "l2", "patience", "lr")
                 if getattr(args, key) is not None}
    result = fit(model, train, out=out, seed=args.seed, progress=False, resume=False, **overrides)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    record = {"data": str(path), "target": "noise-free: the circuit's expected rates (expected_target)",
              "seed": args.seed, "overrides": overrides, "fit_wall_s": round(wall, 1), "fit_cpu_s": round(cpu, 1)}
    _record(result, path, out, record)
    if args.keep_last:
        last = keep_last_epoch(train, out, args.seed, overrides)
        _record(last, path, out / "last", {**record, "kept": "the last epoch (keep_last_epoch)"})
    return 0


def _record(result, path, out: Path, record: dict) -> None:
    """``out/teacher.json``: ``record`` with the fit's epochs and the recording's held-out r and FEVE."""
    from neurozoo.retina.fit import evaluate
    from neurozoo.retina.metrics import summary

    stats = summary(evaluate(result.model, path))
    record = {**record, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
              "best_val_correlation": result.best_val_correlation, "early_stopped": result.early_stopped,
              "torch_threads": result.torch_threads,
              **{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in stats.items()}}
    (out / "teacher.json").write_text(json.dumps(record, indent=1, default=float))
    print(json.dumps(record, indent=1, default=float))


def keep_last_epoch(train, out: Path, seed: int, overrides: dict):
    """The fit in ``out`` with its last epoch kept instead of its best (follow-up E), written to ``out/last``.

    ``retina.fit.fit`` keeps the epoch of best validation correlation; its checkpoint also holds the last epoch's
    weights (``model``, before the output calibration). A copy of that checkpoint whose best epoch is the last one,
    its calibration dropped, is resumed by ``fit`` with the same settings: a finished fit runs no epoch, loads the
    "best" (last) weights and makes the output calibration protocol 11 makes for a kept epoch, then writes
    ``model.pt`` and ``history.json`` there. Returns that ``FitResult``."""
    import torch

    from neurozoo.datasets.torch_files import read_torch_file
    from neurozoo.retina.fit import create_model, fit

    saved = read_torch_file(out / "checkpoint.pt", map_location="cpu")
    last = saved["epoch"] - 1
    saved.update(best_state=saved["model"], best_epoch=last, calibration=None,
                 best_score=saved["history"][last]["val_correlation"])
    (out / "last").mkdir(exist_ok=True)
    torch.save(saved, out / "last" / "checkpoint.pt")
    model = create_model("bncnn", n_cells=len(train.cells))
    result = fit(model, train, out=out / "last", seed=seed, progress=False, resume=True, **overrides)
    if len(result.history) != last + 1 or result.best_epoch != last:
        raise RuntimeError(f"{out / 'last'}: the resumed fit trained or kept another epoch ({result.best_epoch})")
    return result


class PooledAfterRectification:
    """A variant of the object-motion circuit in the BN-CNN's reach: the annulus's pooled ON-OFF subunits
    subtracted from the centre's pooled OFF subunits after both are rectified (the dense layer's place), not from
    each OFF terminal before its rectification; the amacrine's low-pass (after a rectification, beyond the first
    layer's reach) removed; ``k`` the annulus's weight. The output stage (softplus, calibrated on white noise) is the
    circuit's: a softplus of an affine function of the dense layer's sum, as the BN-CNN's output."""

    def __new__(cls, k: float = 1.5):
        from neurozoo.datasets.oms_retina import OMSParams, OMSRetina

        class Variant(OMSRetina):
            def __init__(self):
                self.k = k
                super().__init__(dataclasses.replace(OMSParams(), amacrine_tau=0.0))

            def ganglion_input(self, stimulus):
                x = self.drive(stimulus)
                return (np.maximum(-x, 0.0) @ self.w_centre - self.k * (np.abs(x) @ self.w_annulus)).T

        return Variant()


def probe(system) -> dict:
    """The benchmark's probe on ``system``: per-cell responses above grey and the OMS index."""
    from neurozoo.benchmarks.phenomena import OMS, oms_arguments
    from neurozoo.retina.phenomena.adaptation import object_motion_sensitivity

    return object_motion_sensitivity(system, **oms_arguments(OMS))


def _reach(args) -> int:
    from neurozoo.benchmarks.phenomena import agreement
    from neurozoo.datasets.oms_retina import oms_retina

    truth = probe(oms_retina())
    systems = {"the circuit": oms_retina(), "the circuit, no amacrine low-pass (amacrine_tau 0)":
               oms_retina(amacrine_tau=0.0)}
    for k in args.k:
        systems[f"pooled after rectification, no low-pass, k {k:g}"] = PooledAfterRectification(k)
    rows = []
    for name, system in systems.items():
        res = probe(system)
        score = agreement(res["oms_index"], truth["oms_index"])["value"]
        rows.append({"system": name, "score": score, "oms_index": res["oms_index"].tolist(),
                     **{c: res[c].tolist() for c in ("global", "differential", "object")}})
        print(f"| {name} | {np.nanmin(res['oms_index']):.2f} to {np.nanmax(res['oms_index']):.2f} | "
              f"{min(res['global']):.1f}-{max(res['global']):.1f} / {min(res['differential']):.1f}-"
              f"{max(res['differential']):.1f} / {min(res['object']):.0f}-{max(res['object']):.0f} | {score:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def load_fit(folder):
    import torch

    from neurozoo.retina.fit import create_model

    model = create_model("bncnn", n_cells=6)
    model.load_state_dict(torch.load(Path(folder) / "model.pt", map_location="cpu"))
    return model.eval()


def family_rates(system, movie: dict) -> dict:
    """Mean rate per condition (frames 50-199 of each segment) per cell, and the rates on those frames."""
    from neurozoo.retina.phenomena.responder import as_responder

    rates = as_responder(system)(movie["movie"])  # (cells, T)
    keep = (np.arange(rates.shape[1]) % SEGMENT) >= SETTLE
    per = {name: rates[:, keep & (movie["condition"] == i)].mean(1) for i, name in enumerate(CONDITIONS)}
    return {"per_condition": per, "kept": rates[:, keep]}


def training_movie(n_frames: int) -> dict:
    """The first ``n_frames`` of ``embedded:oms-gratingmotion``'s training movie with their segments' conditions:
    drawn again as :func:`datasets.synthetic_retina.generate_recording` draws it (its generator's first draws), and
    checked against the recording's stimulus (float16 there)."""
    from neurozoo.datasets.retina_h5 import read_experiment
    from neurozoo.datasets.synthetic_retina import KINDS, grating_motion, load_embedded_retina

    movie = grating_motion(n_frames, np.random.default_rng([0, KINDS.index("oms-gratingmotion")]))
    recorded = read_experiment(load_embedded_retina("oms-gratingmotion"), "train").stimulus[:n_frames]
    if not np.array_equal(movie["movie"].astype(np.float16).astype(np.float32), recorded):
        raise RuntimeError("the training movie drawn again differs from the recording's: generate_recording changed")
    movie["movie"] = recorded
    return movie


def _rates(args) -> int:
    from neurozoo.benchmarks.phenomena import agreement
    from neurozoo.datasets.oms_retina import oms_retina
    from neurozoo.datasets.synthetic_retina import grating_motion

    movie = grating_motion(4000, np.random.default_rng(1000))
    if args.train_frames:
        movie = training_movie(args.train_frames)
    systems = {"the circuit": oms_retina(), **{f"pooled after rectification, k {k:g}": PooledAfterRectification(k)
                                               for k in args.variant}, **{Path(d).name: load_fit(d) for d in args.fits}}
    truth_family = family_rates(oms_retina(), movie)
    truth_probe = probe(oms_retina())
    rows = []
    for name, system in systems.items():
        fam = truth_family if name == "the circuit" else family_rates(system, movie)
        pr = truth_probe if name == "the circuit" else probe(system)
        r = [float(np.corrcoef(a, b)[0, 1]) for a, b in zip(fam["kept"], truth_family["kept"])]
        row = {"system": name, "family": {c: float(v.mean()) for c, v in fam["per_condition"].items()},
               "family_per_cell": {c: v.tolist() for c, v in fam["per_condition"].items()}, "r_per_cell": r,
               "probe": {c: pr[c].tolist() for c in ("global", "differential", "object", "oms_index")},
               "score": agreement(pr["oms_index"], truth_probe["oms_index"])["value"]}
        rows.append(row)
        f, p = row["family"], row["probe"]
        print(f"| {name} | {f['global']:.1f} | {f['differential']:.1f} | {f['object']:.1f} | {f['static']:.1f} | "
              f"{min(r):.2f}-{max(r):.2f} | {min(p['oms_index']):.2f} to {max(p['oms_index']):.2f} | "
              f"{min(p['global']):.1f}-{max(p['global']):.1f} / {min(p['differential']):.1f}-"
              f"{max(p['differential']):.1f} / {min(p['object']):.0f}-{max(p['object']):.0f} | {row['score']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def _figure(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = json.loads(Path(args.json).read_text())
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    width = 0.8 / len(rows)
    for j, row in enumerate(rows):
        label = args.labels[j] if args.labels and j < len(args.labels) else row["system"]
        x = np.arange(len(CONDITIONS)) + (j - (len(rows) - 1) / 2) * width
        axes[0].bar(x, [row["family"][c] for c in CONDITIONS], width, label=label)
        x3 = np.arange(3) + (j - (len(rows) - 1) / 2) * width
        axes[1].bar(x3, [np.mean(row["probe"][c]) for c in ("global", "differential", "object")], width, label=label)
    axes[0].set_xticks(range(len(CONDITIONS)), CONDITIONS)
    axes[0].set_title("held-out movies of the training family\n(mean over cells, frames 50-199 of each segment)",
                      fontsize=9)
    axes[0].set_ylabel("spikes/s")
    axes[1].set_xticks(range(3), ("global", "differential", "object"))
    axes[1].set_title("the benchmark's probe (jitter seed 0)\nmean over cells, above grey", fontsize=9)
    axes[1].set_ylabel("spikes/s above grey")
    axes[0].set_yscale("symlog", linthresh=1)
    axes[1].set_yscale("symlog", linthresh=1)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(args.out, dpi=120)
    print(args.out)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="the BN-CNN, protocol 11, on the noise-free expected rates")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", required=True)
    f.add_argument("--epochs", type=int, default=None, help="protocol 11's 40 unless given")
    f.add_argument("--l1", type=float, default=None,
                   help="the L1 penalty on the rates (protocol 11's 1e-3 unless given)")
    f.add_argument("--l2", type=float, default=None, help="the L2 penalty on the weights (1e-3 unless given)")
    f.add_argument("--patience", type=int, default=None, help="epochs without a validation gain (2 unless given)")
    f.add_argument("--lr", type=float, default=None, help="Adam's learning rate (the BN-CNN's 1e-2 unless given)")
    f.add_argument("--keep-last", action="store_true",
                   help="also DIR/last: the last epoch's weights, calibrated as the kept epoch's (keep_last_epoch)")
    f.set_defaults(run=_fit)
    r = sub.add_parser("reach", help="circuit variants within the BN-CNN's graph, on the probe (no fit)")
    r.add_argument("--k", type=float, nargs="*", default=[0.5, 1.0, 1.5])
    r.add_argument("--json")
    r.set_defaults(run=_reach)
    q = sub.add_parser("rates", help="per-condition rates of the circuit and fits")
    q.add_argument("fits", nargs="*")
    q.add_argument("--variant", type=float, nargs="*", default=[], metavar="K",
                   help="also the circuit's variant within the BN-CNN's reach (reach) at these k")
    q.add_argument("--train-frames", type=int, default=0, metavar="N",
                   help="on the first N frames of the fits' own training movie instead of the held-out movies")
    q.add_argument("--json")
    q.set_defaults(run=_rates)
    g = sub.add_parser("figure", help="draw the rates of `rates --json`")
    g.add_argument("--json", required=True)
    g.add_argument("--out", default="docs/figures/retina/oms_teacher.png")
    g.add_argument("--labels", nargs="*")
    g.set_defaults(run=_figure)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
