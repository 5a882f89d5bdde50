"""``zoo probe PHENOMENON MODEL [--checkpoint PATH | --fit-embedded]``: an in-silico experiment on a retina model
next to the ground-truth circuit's (figure + numbers). Phenomena: ``osr`` (omitted-stimulus response),
``adaptation`` (contrast adaptation), ``gain-control`` (fast contrast adaptation: LN models at two contrasts),
``oms`` (object-motion sensitivity); ``reduction`` (attribution and reduced models, :mod:`retina.reduction_probe`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from neurozoo.datasets.cell_names import cell_name
from neurozoo.datasets.cli_args import CELLS_SPEC, add_device_argument, at_least, integer_list, positive
from neurozoo.datasets.json_files import write_json

#: zoo probe gain-control --frames' largest (per contrast)
MAX_GAIN_CONTROL_FRAMES = 50000


#: zoo probe osr --periods' longest (frames): retina.phenomena.osr.MAX_PERIOD, not imported here (numpy, at every zoo
#: start); tests/test_cli_args.py holds them equal
MAX_OSR_PERIOD = 100


#: what a probe's --seed draws besides the --fit-embedded fit, where that is nothing
FIT_SEED_ONLY = "; unused with --checkpoint"


def _model_args(p: argparse.ArgumentParser, out_help: str, kinds=("whitenoise", "naturalscene"), kind="whitenoise",
                kind_help: str = "embedded recording (fixes the number of cells and the ground truth)",
                seed_also: str = FIT_SEED_ONLY,
                device_for: str = "the fit with --fit-embedded (the probe's responses are computed on the CPU)",
                ) -> None:
    """The options every probe takes; ``seed_also``: what else its ``--seed`` draws; ``device_for``: what its
    ``--device`` runs."""
    p.add_argument("model", help="retina model name (retina.MODELS, e.g. bncnn)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="weights saved by `zoo fit` (model.pt or checkpoint.pt)")
    source.add_argument("--fit-embedded", action="store_true",
                        help="fit MODEL to the embedded recording first (cached; reused on later runs)")
    p.add_argument("--kind", default=kind, choices=list(kinds), help=kind_help)
    p.add_argument("--out", type=Path, default=Path("."), help=f"{out_help} (default: the current folder)")
    p.add_argument("--epochs", type=at_least(1), default=None,
                   help="with --fit-embedded: most training epochs (default: 40, early-stopped, as zoo fit and zoo run "
                        "fit)")
    p.add_argument("--seed", type=at_least(0), default=0,
                   help="random seed of the fit with --fit-embedded (its initial weights and batch order; one fit "
                        f"cache folder per seed){seed_also}")
    add_device_argument(p, device_for)
    p.add_argument("--quiet", action="store_true", help="with --fit-embedded: no progress bar while it fits")


def _contrast_args(p: argparse.ArgumentParser) -> None:
    """The two contrasts of ``zoo probe adaptation`` and ``gain-control``; :func:`_check_contrasts` orders them."""
    p.add_argument("--low", type=positive, default=0.3, help="low contrast (noise sd)")
    p.add_argument("--high", type=positive, default=1.0, help="high contrast (noise sd)")


def _check_contrasts(args) -> None:
    from neurozoo.datasets.errors import UserFacingError

    if not (0 < args.low < args.high):
        raise UserFacingError(f"--low/--high: need 0 < low < high contrast; got {args.low}, {args.high}")


def add_probe_command(sub: argparse._SubParsersAction) -> None:
    probe = sub.add_parser("probe", help="in-silico experiments on a retina model, model vs ground truth (osr: "
                                         "omitted-stimulus response, adaptation and gain-control: contrast "
                                         "adaptation, oms: object-motion sensitivity), and attribution with model "
                                         "reduction (reduction)")
    phenomena = probe.add_subparsers(dest="phenomenon", metavar="PHENOMENON")
    phenomena.required = True
    p = phenomena.add_parser("osr", help="omitted-stimulus response: latency vs flash period, model vs ground truth",
                             description="Run the OSR period sweep (2-frame dark flashes of intensity -2, 8 flashes, "
                                         "one omitted) on MODEL and on the embedded ground-truth circuit; write "
                                         "osr.png (latency vs period, side by side) and osr.json.")
    _model_args(p, "folder for osr.png and osr.json")
    p.add_argument("--periods", type=at_least(3, MAX_OSR_PERIOD), nargs="+", default=[6, 8, 10, 12, 14, 16],
                   help="flash periods in frames (10 ms); each longer than the 2-frame flash, at least 3")
    p.set_defaults(handler=run_probe_osr)

    p = phenomena.add_parser("adaptation", help="contrast adaptation: rate after a contrast switch, model vs ground truth",
                             description="White noise switching between a low and a high contrast; the rate after "
                                         "each switch (averaged over cycles), the adaptation index (early vs late "
                                         "rate in high contrast) and the decay time constant, on MODEL and on the "
                                         "ground-truth circuit; write adaptation.png and adaptation.json.")
    _model_args(p, "folder for adaptation.png and adaptation.json",
                seed_also="; also of the contrast-switching noise, the same movie for MODEL and the ground truth")
    _contrast_args(p)
    p.add_argument("--block", type=at_least(139, 5000), default=200,
                   help="frames per contrast block (139 to 5000: the early window, frames 40-70 after the switch, and "
                        "its replay with the 39 frames before it at the block's end)")
    p.add_argument("--cycles", type=at_least(2, 100), default=12,
                   help="low-high cycles (the first is dropped; at most 100)")
    p.set_defaults(handler=run_probe_adaptation)

    p = phenomena.add_parser("gain-control", help="fast contrast adaptation: LN model at low and high contrast, "
                                                  "model vs ground truth",
                             description="White noise at a low and at a high contrast (the same sample scaled): per "
                                         "cell an LN model at each (rank-1 STA filter, normalised; binned "
                                         "nonlinearity), the gain ratio high/low (slope of the nonlinearities) and "
                                         "the filter's peak latency at each contrast, on MODEL and on the ground-"
                                         "truth circuit; write gain-control.png and gain-control.json.")
    _model_args(p, "folder for gain-control.png and gain-control.json",
                seed_also="; also of the white noise, one sample for both contrasts and for MODEL and the ground "
                          "truth")
    _contrast_args(p)
    p.add_argument("--frames", type=at_least(3000, MAX_GAIN_CONTROL_FRAMES), default=8000,
                   help="frames per contrast (the first 200 are left out: the system settling; fewer than 3000 read a "
                        f"fixed cell as adapting; at most {MAX_GAIN_CONTROL_FRAMES})")
    p.set_defaults(handler=run_probe_gain_control)

    p = phenomena.add_parser("oms", help="object-motion sensitivity: differential vs global jitter, model vs ground truth",
                             description="A jittered grating disc centred on each cell's receptive field (the "
                                         "circuit's cell positions; the fitted model's cells are the circuit's) "
                                         "over a jittered grating background: responses to global, differential "
                                         "and object-only motion and the OMS index, on MODEL and on the ground-"
                                         "truth circuit; write oms.png and oms.json. Protocol version 2 (default) "
                                         "is retina_embedded.oms's: the object-motion circuit's six cells (a model "
                                         "fitted on embedded:oms-whitenoise), its settings (400 frames, radius 12 "
                                         "px, jitter seed 0), each condition the mean of four movies; version 1 "
                                         "(the record's): the default circuit's cells, one movie per condition, "
                                         "--frames and --radius.")
    _model_args(p, "folder for oms.png and oms.json",
                kinds=("oms-whitenoise", "oms-naturalscene", "oms-gratingmotion", "whitenoise", "naturalscene"),
                kind=None,
                kind_help="embedded recording the model is fitted on (--fit-embedded) and whose circuit is the "
                          "ground truth: protocol version 2's is oms-whitenoise (the default; oms-naturalscene, the "
                          "same circuit under natural scenes with moving objects, or oms-gratingmotion, under the "
                          "probe's jittered gratings at other positions and paths, for a fit to it), version 1's "
                          "whitenoise (the default) or naturalscene",
                seed_also="; with --protocol-version 1 also of the jitter (version 2's is its protocol's, 0)")
    p.add_argument("--protocol-version", type=int, choices=(1, 2), default=2,
                   help="2 (default): retina_embedded.oms's protocol on the object-motion circuit; 1: the retired "
                        "one on the default circuit (a known false positive, kept for the record)")
    p.add_argument("--frames", type=at_least(200, 20000), default=None,
                   help="protocol version 1: frames per motion condition (default 1000, at most 20000)")
    p.add_argument("--radius", type=positive, default=None, help="protocol version 1: object radius (px, default 12)")
    p.set_defaults(handler=run_probe_oms)

    _add_reduction(phenomena)


def _add_reduction(phenomena) -> None:
    from neurozoo.retina.reduction_probe import DEFAULT_FRAMES, run_probe_reduction

    p = phenomena.add_parser("reduction", help="attribution and model reduction (Tanaka et al. 2019): units ranked "
                                               "per cell, reduced models with the top k units vs the full model",
                             description="Per cell: MODEL's hidden units (--layer) ranked by integrated gradients "
                                         "on a stretch of the recording's held-out stimulus (one attribution per "
                                         "cell, reused for every --k), the reduced model keeping the top k units "
                                         "(the others held by --fill) and the kept units' summed contributions, "
                                         "each against the full model (correlation, variance explained: 1 - MSE / "
                                         "variance, so an offset counts); write "
                                         "reduction.png and reduction.json.")
    _model_args(p, "folder for reduction.png and reduction.json",
                device_for="the fit with --fit-embedded, the attribution and the reduced models")
    p.add_argument("--data", help="the recording the checkpoint was fitted to (deep-retina HDF5 file, or "
                                  "embedded:whitenoise / embedded:naturalscene); its test split's stimulus is "
                                  "analysed (default: the recording named by the summary.json that zoo fit --out "
                                  "wrote beside --checkpoint; with --fit-embedded the embedded recording --kind)")
    p.add_argument("--cells", metavar="SPEC",
                   help=f"cells to analyse, as zoo fit --cells takes them: comma-separated {CELLS_SPEC}; "
                        "those of a zoo fit --cells fit among the cells it fitted; "
                        "default all (reduction.png draws the first 10 of them, reduction.json all)")
    p.add_argument("--layer", type=int, choices=(1, 2), default=1, help="hidden layer whose units are ranked")
    p.add_argument("--k", type=integer_list(1), default=[1, 2, 4, 8],
                   help="numbers of kept units, comma-separated (default 1,2,4,8; each at most the layer's units)")
    p.add_argument("--steps", type=at_least(1, 1024), default=32,
                   help="integration steps of the integrated gradients (default 32)")
    p.add_argument("--start", type=at_least(0), default=0, help="first window of the held-out stimulus")
    p.add_argument("--frames", type=at_least(2, 100000), default=None,
                   help=f"windows analysed (default {DEFAULT_FRAMES}, or what the stimulus holds)")
    # the choices are checked by retina.reduction's own checks (importing it here would import torch for every `zoo`)
    p.add_argument("--fill", default="baseline", help="what dropped units hold: baseline (default: their activity on "
                                                      "the grey stimulus), zero, mean or pruned")
    p.add_argument("--rule", default="midpoint", help="integration rule: midpoint (default) or right "
                                                      "(torch-deep-retina's)")
    p.add_argument("--site", default="post", help="attributed tensor: post (default, after the ReLU) or pre "
                                                  "(torch-deep-retina's: the BatchNorm output)")
    p.add_argument("--by", default="abs", help="ranking score: abs (default), abs_positions or signed "
                                               "(retina.attribution.unit_scores)")
    p.set_defaults(handler=run_probe_reduction)


def _load_model(args, refuse=None):
    """``(model, info)``: fitted on the embedded recording (--fit-embedded) or loaded from --checkpoint, whose
    ``summary.json`` (:func:`retina.embedded_fit.fitted_recording`) is read once, before the weights are loaded:
    ``refuse(n_cells, fitted_to)``, where given, refuses them first (``zoo probe oms``: another circuit's cells)."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.registry import UnknownNameError
    from neurozoo.datasets.synthetic_retina import circuit_of
    from neurozoo.retina.embedded_fit import checkpoint_cells, fitted_embedded_model, fitted_recording, load_checkpoint
    from neurozoo.retina.fit import create_model

    from neurozoo.datasets.provenance import code_version, environment, git_commit, sha256_file

    try:
        if args.fit_embedded:
            settings = {"epochs": args.epochs} if args.epochs is not None else {}
            model, info = fitted_embedded_model(args.model, args.kind, seed=args.seed, device=args.device,
                                                progress=not args.quiet, **settings)
            info["fitted_to"] = {"rule": "--fit-embedded", "circuit_cells": True, "data": info["data_path"],
                                 "embedded": args.kind}
        else:  # a fit to the embedded recordings has the circuit's cells; one to a lab's recording its own
            circuit_cells = len(circuit_of(args.kind).cell_types)  # the object-motion circuit's 6 for oms version 2
            n_cells = checkpoint_cells(args.model, args.checkpoint) or circuit_cells
            # which recording: zoo fit's summary.json beside the weights names it; without one, the cell count
            fitted_to = fitted_recording(args.checkpoint, n_cells, circuit_cells)
            if refuse is not None:
                refuse(n_cells, fitted_to)
            model = load_checkpoint(create_model(args.model, n_cells=n_cells), args.checkpoint)
            info = {"code_version": code_version(), "git_commit": git_commit(), "checkpoint": str(args.checkpoint),
                    "checkpoint_sha256": sha256_file(args.checkpoint), "n_cells": n_cells, "fitted_to": fitted_to}
            print(f"{args.checkpoint}: {fitted_to['reason']}")
    except UnknownNameError as error:
        raise UserFacingError(str(error)) from None
    # what a rerun needs: the probe's arguments as given, and the versions beside the code
    info["arguments"] = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
                         if key != "handler"}
    info["environment"] = environment()
    return model, info


def fitted_cell_names(info) -> list:
    """The names of the loaded model's cells in the recording it was fitted to: the file's (``cell03``, ``cell05``)
    for a fit of some of its cells (``zoo fit --cells``, which its summary.json records:
    :func:`retina.embedded_fit.fitted_recording`), else ``cell01`` onwards."""
    return [cell_name(i) for i in (info["fitted_to"].get("cells") or range(info["n_cells"]))]


def _circuit_cells(info) -> bool:
    """Whether the model's cells are the embedded circuit's (a fit to an embedded recording), so that the probe
    compares them with the ground truth cell by cell (:func:`retina.embedded_fit.fitted_recording` says by which
    rule)."""
    return info["fitted_to"]["circuit_cells"]


def _not_circuit_cells(info, kind: str) -> str:
    """Why the model's cells are not the circuit's, in a phrase: their count, or the recording summary.json names."""
    from neurozoo.datasets.synthetic_retina import circuit_of

    if info["fitted_to"]["rule"] == "cell count":
        return f"{info['n_cells']} cells, not the embedded circuit's {len(circuit_of(kind).cell_types)}"
    return info["fitted_to"]["reason"]


def _needs_circuit_cells(args, info, phenomenon: str) -> None:
    from neurozoo.datasets.errors import UserFacingError

    if not _circuit_cells(info):
        raise UserFacingError(
            f"{args.checkpoint}: {_not_circuit_cells(info, args.kind)}: "
            f"`zoo probe {phenomenon}` compares each cell with the circuit's cell of the same number (`oms` centres "
            "its objects on them), so it runs on fits to the embedded recordings; `zoo probe osr` (full-field flashes) runs on a fit "
            "to your own recording")


def _make_out(out: Path) -> None:
    from neurozoo.datasets.errors import UserFacingError

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserFacingError(f"--out {out}: cannot create the folder ({error.strerror})") from None


def figure_path(out: Path, name: str) -> Path:
    """``out/name.png``, after removing the previous run's ``out/name.json``: the figure is written before the record,
    so a kill between the two had left a new figure beside a record of another run (another model, other cells)."""
    (out / f"{name}.json").unlink(missing_ok=True)
    return out / f"{name}.png"


def _write(args, name, record):
    return write_json(args.out / f"{name}.json", record)


def run_probe_osr(args) -> int:
    from neurozoo.datasets.synthetic_retina import default_retina
    from neurozoo.retina.phenomena.osr import compare_to_ground_truth, omitted_stimulus_response, plot_osr

    from neurozoo.retina.phenomena.osr import check_protocol

    check_protocol(args.periods, 8, 2, -2.0, 40, 60)  # a bad --periods fails before the model is loaded
    _make_out(args.out)  # before the model is fitted or loaded
    model, info = _load_model(args)
    fitted = omitted_stimulus_response(model, periods=args.periods)
    if not _circuit_cells(info):  # a fit to a lab's own recording: its cells are not the circuit's to compare with
        names = fitted_cell_names(info)
        figure = plot_osr({args.model: fitted}, figure_path(args.out, "osr"), names=names,
                          title=f"omitted-stimulus response ({args.checkpoint.name}, {info['n_cells']} cells)")
        write_json(args.out / "osr.json", {"model": args.model, "cells": names, "model_osr": fitted.summary(),
                                           "provenance": info, "figure": str(figure)})
        why = (f"its {info['n_cells']} cells are not the embedded circuit's" if info["fitted_to"]["rule"] == "cell count"
               else info["fitted_to"]["reason"])
        print(f"{args.model}: OSR in {int(fitted.is_osr.sum())}/{len(fitted.is_osr)} cells ({why}: no ground-truth "
              "comparison)")
        for c in range(len(fitted.slope)):
            print(f"  {names[c]}: slope {fitted.slope[c]:6.2f} (R^2 {fitted.r2[c]:.2f})  "
                  f"OSR {'yes' if fitted.is_osr[c] else 'no'}")
        print(f"wrote {Path(figure).resolve()} and {(args.out / 'osr.json').resolve()}")
        return 0
    truth = omitted_stimulus_response(default_retina(), periods=args.periods)
    comparison = compare_to_ground_truth(fitted, truth)
    figure = plot_osr({args.model: fitted, "ground truth": truth}, figure_path(args.out, "osr"),
                      title=f"omitted-stimulus response ({args.kind})")
    record = {"model": args.model, "kind": args.kind, "model_osr": fitted.summary(), "truth_osr": truth.summary(),
              "comparison": comparison, "provenance": info, "figure": str(figure)}
    write_json(args.out / "osr.json", record)
    print(f"{args.model}: OSR in {int(fitted.is_osr.sum())}/{len(fitted.is_osr)} cells; ground truth: "
          f"{int(truth.is_osr.sum())}/{len(truth.is_osr)}; score {comparison['value']:.3f}")
    for row in comparison["cells"]:
        # a cell without a latency has no slope nor R^2 (the figure's "no response to time"): printed "nan (R^2 0.00)"
        slope = (f"{row['model_slope']:6.2f} (R^2 {row['model_r2']:.2f})" if row["model_slope"] == row["model_slope"]
                 else "   n/a (no response to time)")
        print(f"  {cell_name(row['cell'])}: slope model {slope} truth {row['truth_slope']:5.2f}  "
              f"OSR {'yes' if row['model_osr'] else 'no'}")
    print(f"wrote {Path(figure).resolve()} and {(args.out / 'osr.json').resolve()}")
    return 0


def run_probe_adaptation(args) -> int:
    from neurozoo.datasets.synthetic_retina import default_retina
    from neurozoo.retina.phenomena.adaptation import (INDEX_VERSION, TAU_VERSION, compare_indices,
                                                      contrast_adaptation, plot_adaptation, tau_summary)

    _check_contrasts(args)
    _make_out(args.out)  # before the model is fitted or loaded
    model, info = _load_model(args)
    _needs_circuit_cells(args, info, "adaptation")
    settings = {"low": args.low, "high": args.high, "block": args.block, "cycles": args.cycles, "seed": args.seed,
                "index_version": INDEX_VERSION}
    truth = contrast_adaptation(default_retina(), **settings)
    fitted = contrast_adaptation(model, **settings)
    comparison = compare_indices(fitted["adaptation_index"], truth["adaptation_index"])
    figure = plot_adaptation({args.model: fitted, "ground truth": truth}, figure_path(args.out, "adaptation"),
                             title=f"contrast adaptation, sd {args.low} <-> {args.high} ({args.kind})")
    keys = ("adaptation_index", "recovery_index", "reason", "tau_high", "tau_low", "tau_high_reason", "tau_low_reason",
            "early_high", "late_high")
    path = _write(args, "adaptation", {"model": args.model, "kind": args.kind, "settings": settings,
                                       "tau_version": TAU_VERSION,
                                       "model_adaptation": {k: fitted[k] for k in keys},
                                       "truth_adaptation": {k: truth[k] for k in keys},
                                       "comparison": comparison, "provenance": info, "figure": str(figure)})
    model_tau, truth_tau = (tau_summary(result["tau_high"], result["adaptation_index"]) for result in (fitted, truth))
    # every index undefined (a silent model: NaN where the high block's windows are at rounding level) printed "nan"
    model_index, truth_index = (median_or_why(result["adaptation_index"], "adaptation index", "no cell has a rate "
                                              "above rounding level in the high block's windows")
                                for result in (fitted, truth))
    print(f"{args.model}: {model_index}, {model_tau} (ground truth: {truth_index}, {truth_tau}); across cells r = "
          f"{_r_or_why(comparison['pearson_r'], fitted['adaptation_index'], truth['adaptation_index'])}")
    for i in range(len(fitted["adaptation_index"])):
        print(f"  {cell_name(i)}: index model {index_or_reason(fitted, 'adaptation_index', i):>6} truth "
              f"{index_or_reason(truth, 'adaptation_index', i)}   tau model {_ms(fitted, i):>7} "
              f"truth {_ms(truth, i):>7}")
    print(f"wrote {Path(figure).resolve()} and {Path(path).resolve()}")
    return 0


def _r_or_why(r: float, model, truth) -> str:
    """``compare_indices``'s r across cells, or why there is none (a printed ``nan`` said neither): fewer than 3 cells
    with an index in both (a silent model's are undefined), or indices the same in every cell."""
    import numpy as np

    if r == r:
        return f"{r:.2f}"
    if (np.isfinite(np.asarray(model, float)) & np.isfinite(np.asarray(truth, float))).sum() < 3:
        return "n/a (fewer than 3 cells have an index in both)"
    return "n/a (the model's or the truth's index is the same in every cell, up to rounding)"


def _ms(result, i: int) -> str:
    """Cell ``i``'s time constant ``tau_high`` (frames) as ms; ``-`` where the cell does not adapt (its index,
    printed beside it, says so), else why an adapting cell has none (``tau_high_reason``: no decay of the expected
    sign, or one not resolved by the trace it is fitted on; the ground truth's cell12 printed 4409 ms for a decay
    fitted within 1.5 s)."""
    import math

    tau, reason = result["tau_high"][i], result["tau_high_reason"][i]
    if math.isfinite(tau):
        return f"{10 * tau:.0f} ms"
    return "-" if reason.startswith("no adaptation") else f"n/a ({reason})"


def _oms_protocol(args):
    """``(circuit, object_motion_sensitivity's keywords)`` of ``zoo probe oms``'s ``--protocol-version``, ``args.kind``
    set to its recording. Version 2 is retina_embedded.oms's, its settings read from
    :func:`benchmarks.phenomena.oms_arguments` (the one definition; ``--seed`` is the fit's, the jitter's is the
    protocol's); version 1, the retired one, the default circuit's cells, one movie per condition, ``--frames`` and
    ``--radius``. A recording or option the version does not take is refused."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.synthetic_retina import OMS_KINDS, circuit_of

    if args.protocol_version == 2:
        from neurozoo.benchmarks.phenomena import KIND, OMS, oms_arguments

        args.kind = args.kind or KIND["oms"]
        if args.kind not in OMS_KINDS:
            others = " and ".join(f"embedded:{kind}" for kind in OMS_KINDS if kind != KIND["oms"])
            raise UserFacingError(f"--kind {args.kind}: protocol version 2 (retina_embedded.oms's) probes the "
                                  f"object-motion circuit, whose recordings are embedded:{KIND['oms']} (the default: "
                                  f"leave --kind out), {others}; --protocol-version 1 probes the default circuit's")
        given = [f"--{name}" for name in ("frames", "radius") if getattr(args, name) is not None]
        if given:
            raise UserFacingError(f"{' and '.join(given)}: protocol version 2 runs retina_embedded.oms's settings "
                                  f"({OMS['n_frames']} frames, radius {OMS['radius']:g} px); they apply to "
                                  "--protocol-version 1")
        return circuit_of(args.kind), oms_arguments(OMS)
    args.kind = args.kind or "whitenoise"
    if args.kind in OMS_KINDS:
        raise UserFacingError(f"--kind {args.kind}: protocol version 1 probes the default circuit (embedded:whitenoise "
                              "or embedded:naturalscene); the object-motion circuit's is version 2 (the default)")
    circuit = circuit_of(args.kind)
    return circuit, {"centres": circuit.positions, "n_frames": args.frames or 1000,
                     "radius": 12.0 if args.radius is None else args.radius, "seed": args.seed}


def _refuse_other_circuit(args, n_cells: int, fitted_to: dict) -> None:
    """Weights of another circuit's cells than the protocol version's (:func:`retina.embedded_fit.
    refuse_other_circuits_cells`, zoo score's refusal); a fit to a lab's recording is refused by
    :func:`_needs_circuit_cells` instead, for what it was fitted to."""
    from neurozoo.retina.embedded_fit import refuse_other_circuits_cells

    if args.protocol_version == 2:
        compared_by, ending = ("`zoo probe oms` (protocol version 2, retina_embedded.oms's)",
                               "; --protocol-version 1 probes the default circuit's cells")
    else:
        compared_by, ending = ("`zoo probe oms --protocol-version 1`",
                               "; a fit to embedded:oms-whitenoise is probed by version 2 (the default)")
    refuse_other_circuits_cells(args.checkpoint, args.model, n_cells, fitted_to, args.kind, compared_by,
                                other_remedy=", or --fit-embedded", ending=ending)


def run_probe_oms(args) -> int:
    from neurozoo.datasets import retina_stimuli as stimuli
    from neurozoo.retina.phenomena.adaptation import compare_indices, object_motion_sensitivities, plot_oms

    circuit, settings = _oms_protocol(args)
    for centre in settings["centres"]:  # a --radius whose disc covers a frame fails here, not after a fit of minutes
        stimuli.object_motion("static", 2, tuple(centre), settings["radius"])
    _make_out(args.out)  # before the model is fitted or loaded
    model, info = _load_model(args, refuse=lambda n_cells, fitted_to: _refuse_other_circuit(args, n_cells, fitted_to))
    _needs_circuit_cells(args, info, "oms")
    results = object_motion_sensitivities({"truth": circuit, "model": model}, **settings)  # each movie made once
    truth, fitted = results["truth"], results["model"]
    comparison = compare_indices(fitted["oms_index"], truth["oms_index"])
    figure = plot_oms({args.model: fitted, "ground truth": truth}, figure_path(args.out, "oms"),
                      title=f"object-motion sensitivity ({args.kind}, protocol version {args.protocol_version})")
    keys = ("oms_index", "reason", "global", "differential", "object", "baseline")
    path = _write(args, "oms", {"model": args.model, "kind": args.kind, "protocol_version": args.protocol_version,
                                "settings": settings,
                                "model_oms": {k: fitted[k] for k in keys}, "truth_oms": {k: truth[k] for k in keys},
                                "comparison": comparison, "provenance": info, "figure": str(figure)})
    print(oms_summary(args.model, fitted, truth, comparison))
    for i, (m, t) in enumerate(zip(fitted["oms_index"], truth["oms_index"])):
        print(f"  {cell_name(i)}: OMS index model {index_or_reason(fitted, 'oms_index', i)} truth "
              f"{index_or_reason(truth, 'oms_index', i)}")
    print(f"wrote {Path(figure).resolve()} and {Path(path).resolve()}")
    return 0


def oms_summary(model: str, fitted, truth, comparison) -> str:
    """``zoo probe oms``'s first line: the model's median index beside the truth's (:func:`median_or_why`: over how
    many cells), or that no cell answered the motion (every index undefined; it printed "median nan" and "same sign
    in nan%"), and the sign agreement as a count of the cells with an index in both (:func:`same_sign_count`)."""
    model_index, truth_index = (median_or_why(result["oms_index"], "OMS index", "no cell has a motion response")
                                for result in (fitted, truth))
    line = f"{model}: {model_index} (ground truth: {truth_index})"
    if not comparison["n_compared"]:  # no cell with both indices: no sign to compare
        return line
    return f"{line}; {same_sign_count(comparison)}"


def same_sign_count(comparison) -> str:
    """:func:`retina.phenomena.adaptation.compare_indices`'s sign agreement in words, over the cells it is taken on:
    'same sign in 1 of 1 cell with an index in both (5 of 6 without)'. As a percentage alone it read "same sign in
    100%" for an LN fit with a motion response in 1 cell of 6 (its index 0.0045 against the truth's 0.85)."""
    from neurozoo.datasets.text_table import plural

    compared, total = comparison["n_compared"], comparison["n_cells"]
    line = (f"same sign in {comparison['n_same_sign']} of {compared} {plural(compared, 'cell')} with an index in "
            "both")
    return line if compared == total else f"{line} ({total - compared} of {total} without)"


def median_or_why(values, what: str, why: str) -> str:
    """``zoo probe``'s one wording of a measure's median over cells: '<what> median 0.52 of 6/6 cells' (over how many
    of the cells it is taken: those with a value; "median 0.00" over 1 cell of 6 had read as the cells' median), or,
    where no cell has one (every value undefined, NaN), 'no <what>: <why>', the measure's own reason (the probes
    printed "median nan", and each of the OMS, adaptation and gain-control lines had worded it its own way)."""
    import numpy as np

    from neurozoo.retina.phenomena.adaptation import nanmedian

    values = np.asarray(values, float)
    median = nanmedian(values)
    if median != median:
        return f"no {what}: {why}"
    return f"{what} median {median:.2f} of {int(np.isfinite(values).sum())}/{len(values)} cells"


def index_or_reason(result, key: str, i: int) -> str:
    """Cell ``i``'s index ``result[key]`` (the OMS index, the adaptation index), or why it has none (``reason``; a
    printed ``nan`` said neither)."""
    index = result[key][i]
    return f"{index:5.2f}" if index == index else f"n/a ({result['reason'][i]})"


GAIN_CONTROL_KEYS = ("gain_ratio", "gain_low", "gain_high", "latency_low", "latency_high", "latency_shift", "adapting",
                     "reason", "sta_peak_low", "sta_peak_high")
#: where docs/retina.md says why the ground truth's cells read "STA not resolved" (tests/test_phenomena_gain_control.py
#: checks that the section is there)
STA_NOT_RESOLVED_DOCS = 'docs/retina.md, fast contrast adaptation: Why the ground truth reads "STA not resolved"'


def run_probe_gain_control(args) -> int:
    import numpy as np

    from neurozoo.datasets.synthetic_retina import default_retina
    from neurozoo.retina.phenomena.adaptation import (MAX_GAIN_RATIO, MIN_PEAK_SHIFT_FRAMES, STA_NOISE_REACH_LEVEL,
                                                      compare_indices, contrast_gain_control, plot_gain_control)

    _check_contrasts(args)
    _make_out(args.out)  # before the model is fitted or loaded
    model, info = _load_model(args)
    _needs_circuit_cells(args, info, "gain-control")
    settings = {"low": args.low, "high": args.high, "frames": args.frames, "seed": args.seed}
    truth = contrast_gain_control(default_retina(), **settings)
    fitted = contrast_gain_control(model, **settings)
    with np.errstate(invalid="ignore"):  # a negative ratio (a sign flip) has no log: NaN, left out of the r
        log_ratios = np.log(fitted["gain_ratio"]), np.log(truth["gain_ratio"])
    comparison = {"log_gain_ratio": compare_indices(*log_ratios),
                  "latency_shift": compare_indices(fitted["latency_shift"], truth["latency_shift"])}
    figure = plot_gain_control({args.model: fitted, "ground truth": truth}, figure_path(args.out, "gain-control"),
                               title=f"fast contrast adaptation, sd {args.low:g} vs {args.high:g} ({args.kind})")
    call = {"max_gain_ratio": MAX_GAIN_RATIO, "min_peak_shift_frames": MIN_PEAK_SHIFT_FRAMES}  # what "adapting" means
    # what "STA not resolved" means: the threshold, and what noise unrelated to the rates reaches (sta_peak_*: per cell)
    sta = {"resolve_sd": truth["resolve_sd"], "noise_reach_sd": truth["sta_noise_reach"],
           "noise_reach_level": STA_NOISE_REACH_LEVEL}
    path = _write(args, "gain-control", {"model": args.model, "kind": args.kind, "settings": settings, "call": call,
                                         "sta": sta, "model_gain_control": {k: fitted[k] for k in GAIN_CONTROL_KEYS},
                                         "truth_gain_control": {k: truth[k] for k in GAIN_CONTROL_KEYS},
                                         "comparison": comparison, "provenance": info, "figure": str(figure)})
    # a system with no resolved ratio in any cell (a short run, a silent model) printed "median nan"
    model_ratio, truth_ratio = (median_or_why(result["gain_ratio"], "gain ratio high/low",
                                              "no cell's gain ratio resolved (per cell below: why)")
                                for result in (fitted, truth))
    print(f"{args.model}: {model_ratio}, adapting in {int(fitted['adapting'].sum())}/{len(fitted['adapting'])} cells "
          f"(ground truth: {truth_ratio}, {int(truth['adapting'].sum())}/{len(truth['adapting'])})")
    for i in range(len(fitted["gain_ratio"])):
        print(f"  {cell_name(i)}: model {_gain_control_row(fitted, i)}\n          truth {_gain_control_row(truth, i)}")
    if any(name is not None for result in (fitted, truth) for name in result["sta_unresolved"]):
        print(_sta_not_resolved_legend(truth, args.frames))
    print(f"wrote {Path(figure).resolve()} and {Path(path).resolve()}")
    return 0


def _sta_unresolved(result, i):
    """``(contrast, peak)`` where cell ``i``'s reason is an STA not resolved (the contrast
    :func:`retina.phenomena.adaptation.contrast_gain_control` records in ``sta_unresolved``, whose STA peak it found
    below ``resolve_sd`` null sds, and that peak in null sds), else None. The contrast is the recorded one: the test
    (peak < resolve_sd x null sd) and the recorded ratio (peak / null sd) can fall either side of ``resolve_sd`` by
    rounding, where a search by the ratio found none (StopIteration)."""
    name = result["sta_unresolved"][i]
    if name is None:
        return None
    return name, result[f"sta_peak_{name}"][i]


def _sta_not_resolved_legend(result, frames: int) -> str:
    """What "STA not resolved" means, said once under the cells' lines: the threshold, what noise unrelated to the
    rates reaches, what each side of it means (:func:`retina.phenomena.adaptation.sta_noise_reach`), and where
    docs/retina.md says why the ground truth reads it."""
    from neurozoo.retina.phenomena.adaptation import STA_NOISE_REACH_LEVEL

    reach, runs = result["sta_noise_reach"], round(1 / (1 - STA_NOISE_REACH_LEVEL))
    return (f"STA not resolved: the cell's spike-triggered average peaks below resolve_sd ({result['resolve_sd']:g}) "
            "times its null sd, the sd of the STA of noise unrelated to its rates. Such noise reaches "
            f"{reach:.2f} null sd in 1 run of {runs}: a peak beyond it is a filter too weak for {frames} frames, which "
            f"more frames resolve (--frames, at most {MAX_GAIN_CONTROL_FRAMES}); a peak within it is not told from "
            "noise: no linear response at that contrast, or one too weak to tell, which more frames need not "
            f"resolve. Why the ground truth's cells read so: {STA_NOT_RESOLVED_DOCS}.")


def _gain_control_row(result, i) -> str:
    """One system's numbers for cell ``i``: gain ratio, peak latency low -> high (ms), the call; or the reason, an
    unresolved STA's in the legend's terms (:func:`_sta_not_resolved_legend`): its peak beside ``resolve_sd``, and
    whether it is beyond what noise unrelated to the rates reaches, a weak filter that more frames resolve."""
    unresolved = _sta_unresolved(result, i)
    if unresolved is not None:
        name, peak = unresolved
        reach = result["sta_noise_reach"]
        where = (f"beyond the {reach:.2f} noise reaches: a weak filter, more --frames resolve it" if peak > reach
                 else f"within the {reach:.2f} noise reaches: not told from noise")
        return (f"n/a (STA not resolved at {name} contrast: peak {peak:.2f} null sd < resolve_sd "
                f"{result['resolve_sd']:g}, {where})")
    if result["reason"][i]:
        return f"n/a ({result['reason'][i]})"
    return (f"gain ratio {result['gain_ratio'][i]:5.2f}  latency {10 * result['latency_low'][i]:3.0f} -> "
            f"{10 * result['latency_high'][i]:3.0f} ms  adapting {'yes' if result['adapting'][i] else 'no'}")
