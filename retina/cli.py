"""Retina subcommands of ``zoo``: ``zoo fit MODEL --data FILE``.

Each subcommand has its own ``_add_<name>(sub)``; ``add_commands`` lists them. The in-silico
phenomena command (``zoo probe``) belongs next to ``_add_fit`` in ``add_commands``.
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from neurozoo.datasets.cli_args import (CELLS_SPEC, add_device_argument, at_least, non_negative, number_in,
                                        positive)
from neurozoo.datasets.json_files import write_atomic, write_json
from neurozoo.datasets.text_table import counted


def add_commands(sub: argparse._SubParsersAction) -> None:
    from neurozoo.retina.probe_cli import add_probe_command

    _add_fit(sub)
    add_probe_command(sub)


# ---- zoo fit --------------------------------------------------------------------------------------
def _add_fit(sub) -> None:
    p = sub.add_parser("fit", help="fit a retina model to a ganglion-cell recording and score it on held-out repeats",
                       description="Fit MODEL (a retina.MODELS name, e.g. ln, glm, bncnn) to the training split of a "
                                   "deep-retina HDF5 file, early-stopping on validation correlation, then report "
                                   "per-cell held-out correlation, FEVE and oracle correlation on its test repeats. "
                                   "SIGTERM or Ctrl-C stops the fit after the epoch under way and its checkpoint "
                                   "(exit 130), saying the command that resumes it (a second Ctrl-C stops at once).")
    p.add_argument("model", help="retina model name (see `zoo list --kind models`)")
    p.add_argument("--data", required=True,
                   help="experiment file (deep-retina HDF5 layout) or an embedded recording: embedded:whitenoise, "
                        "embedded:naturalscene, embedded:oms-whitenoise (the object-motion circuit "
                        "retina_embedded.oms fits on), embedded:oms-naturalscene, embedded:oms-gratingmotion")
    add_stimulus_class_argument(p, note=". Recorded in summary.json (stimulus_class, stimulus_class_from), where zoo "
                                        "score retina_h5.heldout --checkpoint reads the weights' class. A rerun "
                                        "resuming the fit must say the same (a checkpoint written before checkpoints "
                                        "recorded the class takes it unchecked: summary.json's stimulus_class_checked "
                                        "false)")
    p.add_argument("--cells", metavar="SPEC",
                   help=f"the cells to fit and score: comma-separated {CELLS_SPEC} (as deep-retina's "
                        "loadexpt(expt, cells, ...) indexes the file). Default: "
                        "every cell. Recorded in summary.json (provenance.settings.cells, the indices); part of the "
                        "fit cache's key and of what a resume must share")
    p.add_argument("--out", type=Path, help="folder for checkpoint, weights and metrics (default: for embedded:KIND the "
                                            "fit cache that `zoo probe --fit-embedded` and `zoo score` share, one "
                                            "folder per model, data, seed and settings, a finished fit read from it; "
                                            "else $NEUROZOO_HOME/retina/<model>-<recording file's stem>); a rerun on "
                                            "the same data with the same seed and settings resumes from it, and a "
                                            "second zoo fit into a folder being fitted waits for the first")
    # None = retina.fit.FitConfig's default (one place for the fitting protocol's numbers)
    p.add_argument("--epochs", type=at_least(1), help="maximum epochs (default 40)")
    p.add_argument("--lr", type=positive, help="Adam learning rate (default: the model's, else 1e-2)")
    p.add_argument("--batch-size", type=at_least(1), help="targets per step (default 128)")
    p.add_argument("--l2", type=non_negative, help="L2 penalty on weights (default 1e-3)")
    p.add_argument("--filter-l2", type=non_negative, metavar="X",
                   help="ln, glm: put X * sum(k^2) on each cell's assembled stimulus filter k (deep-retina's "
                        "linear_nonlinear: 0.01) in place of --l2 on the filter's stored factors (the default, fitting "
                        "protocol 11); recorded in summary.json (provenance.settings.filter_l2), part of the fit "
                        "cache's key and of what a resume must share (docs/retina.md, \"The LN's filter penalty\")")
    p.add_argument("--l1", type=non_negative, help="L1 penalty on output activity (default 1e-3)")
    p.add_argument("--val-fraction", type=number_in(0, 1, open_low=True, open_high=True),
                   help="the last fraction of each of the training split's 5 blocks that early stopping validates on "
                        "(default 0.1)")
    p.add_argument("--patience", type=at_least(1),
                   help="epochs without a gain of --min-delta in validation correlation before stopping (default: the "
                        "model's default_patience, else 2)")
    p.add_argument("--min-delta", type=non_negative, help="validation correlation gain that counts as progress "
                                                         "(default: the model's default_min_delta, else 0.01)")
    # deep-retina: deepretina/core.py at 0125baa, EarlyStopping(monitor='val_loss') line 47 on loss='poisson' line 35
    p.add_argument("--monitor", choices=("correlation", "poisson"),
                   help="what early stopping and the kept epoch watch on the validation split (default correlation; "
                        "poisson: the loss, as deep-retina's Keras EarlyStopping)")
    add_objective_argument(p, "the fit", note=" (--l2 and --l1 set zoo's penalties, and are refused with deep-retina). "
                                              "Recorded in summary.json (provenance.settings.objective, and in place "
                                              "of l2 and l1 the penalty it used, objective_penalty); part of the fit "
                                              "cache's key and of what a resume must share")
    p.add_argument("--output-calibration", action=argparse.BooleanOptionalAction, default=None,
                   help="after early stopping, fit the output BatchNorm's per-cell gain and offset to the training "
                        "data (default: on for the BN-CNN since fitting protocol 9; docs/retina.md)")
    add_heldout_history_argument(p, note="Recorded in summary.json (heldout_history)")
    p.add_argument("--seed", type=at_least(0), default=0,
                   help="random seed of the fit: the model's initial weights and the order of the training batches; "
                        "recorded in summary.json, part of the fit cache's key and of what a resume must share")
    add_device_argument(p, "the fit and the held-out evaluation")
    p.add_argument("--no-resume", action="store_true",
                   help="start afresh even if --out holds a checkpoint (the earlier fit is kept in OUT/earlier-fit "
                        "until this fit's first checkpoint)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_fit)


# ---- the options zoo score shares with zoo fit (a retina benchmark's fit is zoo fit's): declared once here --------
def add_stimulus_class_argument(p, applies: str = "", note: str = "") -> argparse.Action:
    """``--stimulus-class``; ``applies``: the benchmarks it applies to, before the help (zoo score's)."""
    return p.add_argument("--stimulus-class", metavar="CLASS",
                          help=f"{applies}the stimulus class of --data's file, whitenoise or naturalscene, for a file "
                               f"not named by the deep-retina convention (EXPERIMENT/whitenoise.h5, "
                               f"EXPERIMENT/naturalscene.h5); without it such a file's class is recorded unknown{note}")


def add_objective_argument(p, fit: str, note: str = "") -> argparse.Action:
    """``--objective``: what ``fit`` minimises (retina.fit.OBJECTIVES, not imported here: it would import torch for
    the help)."""
    return p.add_argument("--objective", choices=("zoo", "deep-retina"),
                          help=f"what {fit} minimises: zoo (default), the Poisson loss in spikes/s + an L2 penalty on "
                               f"the weights + an L1 penalty on the rates, every model's protocol; deep-retina (glm), "
                               f"deep-retina's scripts/fit_glms.py objective, dt * the Poisson loss per cell + "
                               f"TensorFlow's L2 (scale * sum(w^2) / 2) at 1e-4 on the stimulus filter and 1e-2 on the "
                               f"post-spike filter and the intercept, no L1{note}")


def add_heldout_history_argument(p, applies: str = "", note: str = "") -> argparse.Action:
    """``--heldout-history`` (retina.fit.HELDOUT_HISTORIES, not imported here: it would import torch for the help);
    ``applies``: the benchmarks it applies to (zoo score's); ``note``: where the choice is kept."""
    return p.add_argument("--heldout-history", choices=("simulated", "observed"), default="simulated",
                          help=f"{applies}the spike history a spike-history model (glm) is scored with on the "
                               f"held-out repeats: simulated (default), its own sampled spikes, 20 trials averaged; "
                               f"observed, the test split's binned counts one frame ahead, as deep-retina's "
                               f"scripts/fit_glms.py (the history then carries the response being predicted). {note}; "
                               f"refused for a model without spike history")


def resolve_data(spec: str) -> Path:
    from neurozoo.datasets.errors import DataError

    from neurozoo.datasets.synthetic_retina import KINDS, load_embedded_retina

    if spec.startswith("embedded:"):
        return load_embedded_retina(spec.split(":", 1)[1])
    path = Path(spec).expanduser()
    if not path.exists():  # anything else about it, read_experiment names
        raise DataError(f"{path}: no such experiment file (or an embedded recording: "
                        f"{', '.join(f'embedded:{kind}' for kind in KINDS)})")
    return path


#: zoo fit's options that are :class:`retina.fit.FitConfig` settings (None: the config's or the model's default)
FIT_OPTIONS = ("epochs", "lr", "batch_size", "l2", "filter_l2", "l1", "val_fraction", "patience", "min_delta", "monitor",
               "objective", "output_calibration")


def run_fit(args) -> int:
    """``zoo fit``, with SIGTERM deferred throughout (:func:`_run_fit`)."""
    from neurozoo.datasets.termination import sigterm_deferred, stopping_at_once

    # one deferral from the start to the results: a SIGTERM is taken at the next safe point (the fit folder's lock,
    # the wait for it, an epoch's end, the results written), never between two of them, where it killed zoo fit
    # without a word (or, arriving as the lock was granted, was dropped and the fit ran to its end); until the first
    # (the lock), at once: zoo fit imports torch and reads the recording there, writing nothing
    with sigterm_deferred(), stopping_at_once():
        return _run_fit(args)


def _run_fit(args) -> int:
    import os
    import sys
    import time

    started = time.perf_counter()  # this command's time, summary.json's provenance.duration_s

    import torch

    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.registry import UnknownNameError
    from neurozoo.datasets.retina_h5 import checked_experiment
    from neurozoo.datasets.retina_stimulus_class import checked_stimulus_class
    from neurozoo.retina.benchmark import unscorable_cells
    from neurozoo.retina.embedded_fit import fit_folder_locked, held_embedded_fit
    from neurozoo.retina.fit import FitConfig, FitInterrupted, checked_config, create_model, fit, provenance

    if args.stimulus_class is not None:  # before the recording is read, or an embedded one generated
        checked_stimulus_class(args.stimulus_class)
    checked_objective_options(args)
    path = resolve_data(args.data)
    with silent_cells_left_out_by("zoo fit"):  # its --cells the way out of a cell silent through train/
        train, test = checked_experiment(path, cells=selected_file_cells(path, args.cells))
    stimulus = fit_stimulus_class(path, args.stimulus_class, cells=train.selection)
    problem = unscorable_cells(path, test)
    if problem:  # the fit is still of use (its weights, the probes), but its held-out medians will be undefined
        print(f"zoo fit: warning: {problem}; fitting anyway: the held-out medians are undefined, the per-cell values "
              "are printed", file=sys.stderr)
    overrides = {key: getattr(args, key) for key in FIT_OPTIONS if getattr(args, key) is not None}
    if train.selection is not None:  # the indices, resolved: one key and one record however the cells were named
        overrides["cells"] = train.selection
    out = None
    try:
        checked_heldout_history(args, n_cells=len(train.cells))  # before a fit that its scoring would then refuse
        if args.out is None and args.data.startswith("embedded:"):
            # the fit cache `zoo probe --fit-embedded`, `zoo score` and `zoo run` read and fill: one fit per model,
            # data, seed and fitting protocol, made by whichever comes first; its results are written while its
            # folder is locked, so that a concurrent --no-resume refit of it cannot remove or mix them
            with held_embedded_fit(args.model, args.data.split(":", 1)[1], seed=args.seed, device=args.device,
                                   progress=not args.quiet, refit=args.no_resume, **overrides) as (result, info):
                out = Path(info["fit_dir"])
                if info["fit_origin"] == "cached":
                    print(f"{args.model} on {args.data}: the finished fit in {out} (the fit cache), read; nothing "
                          "trained (--no-resume fits again)")
                frame, stats, stopped = _save_results(args, path, result, info, out, stimulus, started)
        else:
            torch.manual_seed(args.seed)  # the initial weights are part of what the seed fixes
            model = create_model(args.model, n_cells=len(train.cells))
            home = Path(os.environ.get("NEUROZOO_HOME") or Path.home() / ".neurozoo").expanduser()
            out = args.out or home / "retina" / f"{args.model}-{path.stem}"
            checked_config(model, FitConfig(**overrides), args.model)  # before the lock file beside `out` is made
            if Path(out).exists() and not Path(out).is_dir():  # "OUT: File exists", once the lock was made beside it
                raise UserFacingError(f"--out {out}: is a file, not a folder (zoo fit writes its checkpoint, weights "
                                      "and metrics into a folder)")
            # as the fit cache's folders: a second `zoo fit` into this folder waits, then resumes or reads this fit
            with contextlib.ExitStack() as held:
                try:
                    held.enter_context(fit_folder_locked(out, f"{args.model} on {path.name}", progress=not args.quiet))
                except OSError as error:  # said "/proc/nope.lock: No such file or directory", naming no option
                    raise UserFacingError(f"--out {out}: cannot be made ({error.strerror or error}: "
                                          f"{error.filename or out})") from None
                result = fit(model, train, out=out, resume=not args.no_resume, seed=args.seed, device=args.device,
                             progress=not args.quiet, stimulus_class=stimulus.name, **overrides)
                frame, stats, stopped = _save_results(args, path, result, provenance(path, result), out, stimulus,
                                                      started)
    except UnknownNameError as error:
        raise UserFacingError(str(error)) from None
    except FitInterrupted as error:  # SIGTERM or Ctrl-C: the fit stopped after an epoch's checkpoint
        print(f"zoo fit: interrupted; {error.kept}; to resume it: {resume_command(args, path, out)}", file=sys.stderr)
        return 130
    print(cell_table(frame))
    medians = (f"median held-out r {stats['median_correlation']:.3f} (oracle {stats['median_oracle']:.3f}, FEVE "
               f"{stats['median_feve']:.3f}) over {stats['n_passing']}/{stats['n_cells']} cells with explainable "
               "variance >= 0.15" if stats["n_passing"] else
               f"no median held-out r: none of the {stats['n_cells']} cells has explainable variance >= 0.15")
    print(f"{args.model} on {path.name}: {medians}; saved in {out} (fit_curve.png: learning curve, held-out r per cell "
          "vs its oracle)")
    print(kept_epoch_line(result))
    if stats["median_feve"] < 0:
        print("FEVE below 0: in spikes/s the predictions miss the trial average by more than a constant at each "
              "cell's mean rate would. "
              "Correlation does not see the output's scale and FEVE does: a fit stopped early on correlation can "
              "have the right shape at the wrong scale (--output-calibration fits the BN-CNN's output gain and "
              "offset; docs/retina.md, \"Fitting\").")
    if stopped:
        print(f"zoo fit: interrupted (signal {stopped}) after the fit, during its held-out evaluation, which was "
              f"finished first: the results above are whole and saved in {out}", file=sys.stderr)
        return 130
    return 0


def kept_epoch_line(result) -> str:
    """Which epoch's weights the fit kept, by what, and how long it took: what a protocol's table reports (docs/retina.md)
    and summary.json holds, said where the fit ends."""
    history, best = result.history, result.best_epoch
    if best < 0 or best >= len(history):
        return f"fit: {len(history)} epochs, none kept by its validation score; {fitting_time(result)}"
    monitor = result.config.monitor
    value = (f"validation r {history[best]['val_correlation']:.3f}" if monitor == "correlation" else
             f"validation Poisson loss {history[best]['val_poisson']:.4g}")
    why = "stopped early: no validation gain for the patience" if result.early_stopped else "the epoch limit reached"
    return f"fit: kept epoch {best + 1} of {len(history)} (history.json's epoch {best}; best {value}; {why}), " + \
        fitting_time(result)


def fitting_time(result) -> str:
    """How long ``result``'s fit took: this run's seconds of fitting, and where earlier runs made part of it (a resumed
    fit) the fit's in all (:attr:`retina.fit.FitResult.fit_duration_s`); a finished fit read, the fit's own time, not
    the reading's (read as the fit's time, 1 s had been said for a fit of minutes). A run that fitted no epoch but made
    the output calibration (a fit stopped after its last epoch, before it: :attr:`retina.fit.FitResult.calibrated_now`)
    is a run of fitting, said so, not a read."""
    total, runs = result.fit_duration_s, len(result.fit_stretches)
    unknown = "its time in all unknown: begun before fit times were kept (fit_time.json)"
    if result.epochs_fitted == 0 and not result.calibrated_now:
        took = f"its fitting took {total:.0f} s" if total is not None else unknown
        return f"a finished fit read, no epoch fitted now ({took})"
    only = "no epoch fitted now, its output calibration only: " if result.epochs_fitted == 0 else ""
    if runs <= 1:
        return f"{only}{result.duration_s:.0f} s of fitting"
    in_all = f"{total:.0f} s in all over {runs} runs (resumed)" if total is not None else unknown
    return f"{only}{result.duration_s:.0f} s of fitting now, {in_all}"


#: what an undefined (NaN) value means in each column of zoo fit's cell table (retina.metrics.heldout_metrics)
UNDEFINED_BECAUSE = {
    "correlation": "the cell's trial average is constant (nothing to correlate with)",
    "feve": "no explainable variance (the cell's trial-to-trial noise variance is as large as its total variance, "
            "e.g. on a short recording; retina.metrics.feve): such a cell is below the filter, out of the medians",
    "oracle": "no trial of the cell varies together with the mean of its others (constant trials)",
    "explainable_fraction": "the cell's rate is the same constant in every repeat",
}


def cell_table(frame) -> str:
    """zoo fit's per-cell held-out metrics, to 3 decimals, "n/a" where one is undefined (NaN; blank in
    heldout_metrics.csv, null in JSON), followed by a line for each column holding one, saying what it means there
    (:data:`UNDEFINED_BECAUSE`): every NaN was "-", a FEVE without explainable variance as an undefined correlation."""
    lines = [frame.round(3).to_string(na_rep="n/a")]
    for column in frame.columns:
        missing = int(frame[column].isna().sum())
        if missing:
            lines.append(f"{column} n/a ({counted(missing, 'cell')}): {UNDEFINED_BECAUSE.get(column, 'undefined')}")
    return "\n".join(lines)


def checked_objective_options(args) -> None:
    """``--l2`` or ``--l1`` beside ``--objective deep-retina``, refused by the option's name whatever its value: the
    objective has its own penalty, and :func:`retina.fit.checked_config` sees only a value other than the default
    (``--l2 1e-3`` was accepted, then ignored)."""
    from neurozoo.datasets.errors import UserFacingError

    given = [f"--{name}" for name in ("l2", "l1") if getattr(args, name) is not None]
    if args.objective not in (None, "zoo") and given:
        raise UserFacingError(f"{' and '.join(given)}: the zoo objective's penalties; --objective {args.objective} "
                              "has its own (1e-4 on the stimulus filter, 1e-2 on the post-spike filter and the "
                              "intercept, no L1 on the rates): leave them out")


def checked_heldout_history(args, n_cells: int) -> None:
    """``--heldout-history observed`` for a model without spike history (``uses_history``), refused naming the model:
    :func:`retina.fit.evaluate` would score it as without the option, and summary.json would record a mode that
    produced nothing."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.retina.fit import create_model

    if args.heldout_history != "simulated" and not getattr(create_model(args.model, n_cells=n_cells),
                                                           "uses_history", False):
        raise UserFacingError(f"--heldout-history {args.heldout_history}: the retina model {args.model!r} has no "
                              "spike history to feed (a spike-history model, such as glm, takes it); leave the "
                              "option out")


def selected_file_cells(path: Path, spec):
    """``--cells SPEC`` as the indices of the file's cells it selects (:func:`datasets.retina_h5.selected_cells`,
    refusals naming ``--cells``), None where the option is left out (every cell)."""
    if spec is None:
        return None
    from neurozoo.datasets.retina_h5 import read_experiment, selected_cells

    where = f"--cells {spec}" if spec.strip() else "--cells"
    return selected_cells(spec, read_experiment(path, "train").cells, where=where)


@contextlib.contextmanager
def silent_cells_left_out_by(command: str):
    """A recording's cells silent through ``train/`` that respond in ``test/``, refused inside
    (:class:`datasets.retina_h5.SilentCellsError`), with ``command``'s ``--cells`` that leaves them out as the way out:
    ``(leave it out: zoo fit --cells 0,2)``, where the reader's says ``cells='0,2'``."""
    from neurozoo.datasets.retina_h5 import SilentCellsError

    try:
        yield
    except SilentCellsError as error:
        raise error.leaving_out(f"{command} --cells") from None


def fit_stimulus_class(path: Path, given, cells=None):
    """The stimulus class of the recording ``path`` that ``zoo fit`` records (``given``: ``--stimulus-class``), by
    :func:`datasets.retina_stimulus_class.experiment_stimulus_class` as ``retina_h5.heldout`` reads it. A neurozoo
    embedded recording's class is its ``kind``: another given is refused, as ``zoo score`` takes the class of weights
    fitted to one from the recording itself (:func:`retina.embedded_fit.fitted_recording`), not from the record."""
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.retina_h5 import checked_experiment
    from neurozoo.datasets.retina_stimulus_class import class_by_attribute, experiment_stimulus_class

    known = experiment_stimulus_class(path, given=given, cells=cells)
    kind = class_by_attribute(checked_experiment(path, cells=cells)[0].attrs)
    if given is not None and kind is not None and kind != given:
        raise UserFacingError(f"--stimulus-class {given}: {path} is a neurozoo embedded {kind} recording (attribute "
                              f"kind), which is its class wherever its weights are scored; leave the option out")
    return known


def resume_command(args, path: Path, out) -> str:
    """The ``zoo fit`` command that resumes the fit ``args`` asked for: its model, data, seed and settings, its folder
    (``--out``, absolute; none for the fit cache, which the settings name), without ``--no-resume`` (the checkpoint
    being resumed is this fit's own)."""
    import shlex

    data = args.data if args.data.startswith("embedded:") else str(path.resolve())
    command = ["zoo", "fit", args.model, "--data", data]
    if args.out is not None or not args.data.startswith("embedded:"):
        command += ["--out", str(Path(out).resolve())]
    for key in FIT_OPTIONS:
        value, option = getattr(args, key), "--" + key.replace("_", "-")
        if isinstance(value, bool):
            command.append(option if value else "--no-" + option[2:])
        elif value is not None:
            command += [option, str(value)]
    if args.cells is not None:  # the checkpoint records the selection: a resume without it would be refused
        command += ["--cells", args.cells]
    if args.stimulus_class is not None:  # the checkpoint records it: a resume without it would be refused
        command += ["--stimulus-class", args.stimulus_class]
    if args.heldout_history != "simulated":  # the scoring asked for, when the resumed fit is scored
        command += ["--heldout-history", args.heldout_history]
    command += ["--seed", str(args.seed), "--device", args.device] + (["--quiet"] if args.quiet else [])
    return shlex.join(command)


def _save_results(args, path: Path, result, info: dict, out: Path, stimulus, started: float):
    """``(per-cell held-out metrics, their summary, signal)`` of ``result``, written to ``out``
    (``heldout_metrics.csv``, ``fit_curve.png``, ``summary.json``, which records ``stimulus``, the recording's
    :func:`fit_stimulus_class`, and as ``provenance.duration_s`` this command's seconds since ``started``
    (``time.perf_counter()``), beside the fit's own in all its runs, ``fit_duration_s``), each whole or not at all. A
    SIGTERM meanwhile (the evaluation takes seconds) waits until they are written, and ``signal`` is its number (else
    None), for zoo fit to exit 130: taken here, it would stop zoo fit with the fit finished and its results not
    written; ignored, zoo fit would exit 0 to a scheduler that had asked it to stop."""
    from neurozoo.datasets.termination import sigterm_deferred, termination_requested

    with sigterm_deferred():
        return (*_evaluate_and_write(args, path, result, info, out, stimulus, started), termination_requested())


def _evaluate_and_write(args, path: Path, result, info: dict, out: Path, stimulus, started: float):
    import time

    from neurozoo.retina.embedded_fit import weights_sha256
    from neurozoo.retina.fit import evaluate
    from neurozoo.retina.metrics import summary

    frame = evaluate(result.model, path, device=args.device, heldout_history=args.heldout_history,
                     cells=result.config.cells)
    stats = summary(frame)
    checked = class_checked(path, result)
    write_atomic(out / "heldout_metrics.csv", frame.to_csv())
    # "data" as given (what the summary shows); "data_absolute" resolved, which zoo reproduce reads, so that a relative
    # --data reproduces from any folder, not only from the one zoo fit ran in
    record = {"model": args.model, "data": str(path), "data_absolute": str(path.resolve()),
              # the recording's stimulus class (whitenoise, naturalscene or unknown) and how it was known: zoo score
              # retina_h5.heldout --checkpoint reads it as the weights' (benchmarks.retina_file_stimulus)
              "stimulus_class": stimulus.name, "stimulus_class_from": stimulus.known_from,
              # false: the fit's checkpoint (written before checkpoints recorded the class) records none to check it by
              "stimulus_class_checked": checked, **stats,
              # the spike history the held-out metrics above were predicted with (--heldout-history): "simulated",
              # the model's own sampled spikes, or "observed", the test counts one frame ahead (deep-retina's); null
              # for a model without spike history, which neither concerns
              "heldout_history": args.heldout_history if getattr(result.model, "uses_history", False) else None,
              "best_epoch": result.best_epoch,
              # fit_curve.png numbers epochs from 1, best_epoch (as history.json) from 0: the kept epoch as the figure
              # says it, beside the index readers of earlier summaries use
              "best_epoch_number": result.best_epoch + 1 if result.best_epoch >= 0 else None,
              "epoch_numbering": "best_epoch and history.json's epochs count from 0; best_epoch_number and "
                                 "fit_curve.png count from 1",
              "best_val_correlation": result.best_val_correlation,
              "output_calibration": result.extra.get("output_calibration"),
              # the weights this summary describes: `zoo probe --checkpoint` refuses others found beside it
              "weights_sha256": weights_sha256(out),
              "provenance": info}
    # this command's time (a cached fit: the reading and the evaluation), not the fit's, which is fit_duration_s: a
    # cached zoo fit wrote its reading's seconds where the fit's had been
    record["provenance"] = {**info, "duration_s": round(time.perf_counter() - started, 2)}
    figure = out / "fit_curve.png"
    # a cached fit's curve is the one drawn when it was made (a refit removes it): not drawn again, which spared a
    # cached `zoo fit` matplotlib's import, a tenth of its time
    if info.get("fit_origin") != "cached" or not figure.is_file():
        from neurozoo.retina.fit_figure import plot_fit_curve

        figure = plot_fit_curve(result, figure, title=f"{args.model} on {path.name}", cells=frame)
    record["figure"] = str(figure)
    write_json(out / "summary.json", record)  # strict JSON: a median over no passing cell is null, not NaN
    if not checked and stimulus.known:
        import sys

        print(f"note: {out / 'checkpoint.pt'}: written before checkpoints recorded the stimulus class, so the class of "
              f"{path} is recorded as said now, {stimulus.name} ({stimulus.known_from}), unchecked against the one the "
              "fit was begun under (summary.json: stimulus_class_checked false); --no-resume fits it afresh under "
              "this class", file=sys.stderr)
    return frame, stats


def class_checked(path: Path, result) -> bool:
    """Whether the stimulus class zoo fit records for ``result`` was checked against the one its checkpoint records:
    False where a checkpoint written before checkpoints recorded it was resumed or read
    (:attr:`retina.fit.FitResult.stimulus_class_checked`), unless ``path`` is a neurozoo embedded recording, whose
    class (its ``kind`` attribute) is in the bytes the checkpoint's sha256 was checked against."""
    from neurozoo.datasets.retina_h5 import checked_experiment
    from neurozoo.datasets.retina_stimulus_class import class_by_attribute

    return result.stimulus_class_checked or class_by_attribute(
        checked_experiment(path, cells=result.config.cells)[0].attrs) is not None
