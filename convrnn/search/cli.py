"""``zoo search --data DIR --trials N``: TPE search over local cells and feedback motifs.

    zoo search --data /data/imagenet-100 --trials 200 --space rgc_intermediate --epochs 5
    zoo search --data DIR --trials 50 --storage postgresql+psycopg2://user@db/search --study s1   # on each machine

Each command runs --trials trials, split among its --workers local processes; commands on other
machines that name the same --storage and --study join the study and run their own trials. At the
end the best --export configurations are written as graph specs (OUT/<study>_best<k>.yaml, loadable
with convrnn.create_model) and their validation top-1 goes to the results store with provenance.

A trial ends PRUNED (TPE learns from it; it is never exported) when --pruner stops it after an epoch, when its
training diverges (a non-finite loss: "diverged"), or before any training, whatever --pruner: its untrained model's
loss on its first batch exceeds 10 ln(classes) or its logits are not finite ("exploded at initialisation":
typically a draw whose output grows several-fold per time step, which no learning rate trains). The study's totals
count the last two apart; each trial's run.json (OUT/<study>/trial_<N>/run.json) says why it was pruned (pruned:
its epoch, step and reason; diverged: a divergence's), and so does the study: the trial's user attributes
pruned_reason, pruned_epoch and pruned_step (optuna's study.trials_dataframe() shows them).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path

from neurozoo.convrnn.training.cli import (add_amp_argument, add_channels_last_argument, add_hash_images_argument,
                                           add_max_steps_argument)
from neurozoo.convrnn.search.workers import MAX_RETRY, STORAGE_ENV, end_with_parent, remember_contents_checksums
from neurozoo.datasets.termination import raise_if_terminated, sigterm_deferred
from neurozoo.datasets.cli_args import (ShowDefaultsRaw, ZooArgumentParser, add_db_argument, add_device_argument,
                                        at_least, positive)
from neurozoo.datasets.db_urls import shown_url, stored_line
from neurozoo.datasets.text_table import counted, plural


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search local cells and feedback edges of a ConvRNN (optuna TPE + pruning)",
                       description=__doc__, formatter_class=ShowDefaultsRaw)
    add_arguments(p)
    p.set_defaults(handler=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="ImageNet-layout folder with train/<wnid>/ and val/<wnid>/")
    p.add_argument("--trials", type=at_least(0), required=True, help="trials this command runs (split among --workers)")
    p.add_argument("--storage", default=None,
                   help=f"optuna storage URL (default ${STORAGE_ENV}, else sqlite:///OUT/search.sqlite; PostgreSQL for "
                        f"several machines: the variable keeps its password off the command line, which ps shows)")
    p.add_argument("--study", default=None, help="study name (default: the space's name); joined if it exists")
    p.add_argument("--space", default="rgc_intermediate",
                   help="search-space YAML file or built-in space name (convrnn/search/spaces)")
    p.add_argument("--out", default="runs/search", help="folder for trial runs and exported specs")
    p.add_argument("--epochs", type=at_least(1), default=2, help="training epochs per trial (pruning after each)")
    p.add_argument("--image-size", type=at_least(1), default=None,
                   help="side in pixels of every trial's square training and validation images (default: the "
                        "space's image_size, 224 for the built-in spaces)")
    p.add_argument("--width", type=positive, default=0.25,
                   help="width multiplier of every trial's model (default 0.25: a quarter of the base's channels; "
                        "1: the base as written)")
    p.add_argument("--batch-size", type=at_least(1), default=64,
                   help="images per training step of every trial (the study keeps it: a rerun with another is "
                        "refused)")
    p.add_argument("--lr", type=positive, default=None,
                   help="learning rate of every trial, for a space that does not search train.lr, as the built-in "
                        "rgc_local (default 0.05); the default space, rgc_intermediate, searches it: each trial draws "
                        "its own from train.lr, and --lr is refused")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd",
                   help="every trial's optimizer, as zoo train --optimizer: sgd (momentum 0.9, or the space's "
                        "train.momentum) or adamw (the study keeps it: a rerun with another is refused)")
    p.add_argument("--n-steps", type=at_least(1), default=None, help="unrolled steps (default: the spec's)")
    p.add_argument("--image-steps", type=at_least(0), default=None, help="steps the image is shown (default: the spec's)")
    add_max_steps_argument(p)
    p.add_argument("--seed", type=at_least(0), default=0,
                   help="TPE sampler and training seed (trial N draws from (seed, N): a rerun continues the study; the "
                        "study keeps it, and a rerun with another is refused)")
    p.add_argument("--workers", type=at_least(1), default=1, help="local worker processes sharing the study")
    p.add_argument("--data-workers", type=at_least(0), default=0, help="data-loading processes per trial")
    p.add_argument("--pruner", choices=("median", "halving", "none"), default="median",
                   help="how trials are stopped after an epoch (draws that explode at initialisation are pruned before "
                        "training whatever the pruner; the study keeps it: a rerun with another is refused)")
    p.add_argument("--max-total", type=at_least(1), default=None, help="stop once the study holds this many trials")
    p.add_argument("--heartbeat", type=at_least(0), default=60,
                   help="seconds between trial heartbeats (0: none); a trial silent for --grace is marked FAIL and "
                        "recovered (--retries)")
    p.add_argument("--grace", type=at_least(1), default=None, 
                   help="seconds a trial may go without a heartbeat before it is marked FAIL and recovered (default: 2 "
                        "x --heartbeat)")
    p.add_argument("--retries", type=at_least(0), default=MAX_RETRY,
                   help="times a trial whose worker died unfinished (killed, out of memory, a lost machine: its "
                        "heartbeat stale) is run again, from its checkpoint where its folder is readable (0: never); "
                        "one that died after its last epoch was saved is recorded complete instead")
    add_hash_images_argument(p, "the data checks (the study's, which refuses to continue on data whose image was "
                                "edited to the same size, and every trial's run.json: files_checksum contents)",
                             "per command (its workers and trials included; again only after a file changed: its "
                             "size, times or identity)",
                             note=". The study keeps it: continued without it, it still compares and hashes the "
                                  "contents")
    add_device_argument(p, "every trial's training and validation", default="auto")
    add_amp_argument(p, "bfloat16", note=" (zoo train's default --amp-dtype, which zoo search does not take)")
    add_channels_last_argument(p)
    p.add_argument("--export", type=at_least(0), default=1, help="export the best K configurations (0: none)")
    add_db_argument(p, "--results", note=" the exported trials' validation top-1 is recorded in (unless --no-record; "
                                          "not the optuna study, which --storage holds)")
    p.add_argument("--no-record", dest="record", action="store_false", help="do not write scores to the store")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars, search-space summary or totals; optuna logs warnings only")
    p.add_argument("--report", default=None, help=argparse.SUPPRESS)  # a local worker's error goes there (workers.py)


def settings_from_args(args):
    from neurozoo.convrnn.search.objective import TrialSettings

    lr = args.lr if args.lr is not None else TrialSettings.lr
    return TrialSettings(data=args.data, out=args.out, epochs=args.epochs, batch_size=args.batch_size, lr=lr,
                         optimizer=args.optimizer, image_size=args.image_size, width_multiplier=args.width,
                         n_steps=args.n_steps, image_steps=args.image_steps,
                         max_steps_per_epoch=args.max_steps_per_epoch, workers=args.data_workers, seed=args.seed,
                         device=args.device, amp=args.amp, channels_last=args.channels_last, quiet=True,
                         progress=not args.quiet, hash_images=args.hash_images)


def _check_unroll(space, n_steps, image_steps) -> None:
    """Before the study exists, the unroll the trials will use: an impossible one recorded a FAIL trial in the study,
    with optuna's traceback, before the one-line error (a trial's feedback never shortens the image's path)."""
    from neurozoo.convrnn import create_model
    from neurozoo.datasets.errors import SpecError, UserFacingError

    steps = {key: value for key, value in (("n_steps", n_steps), ("image_steps", image_steps)) if value is not None}
    try:
        spec = space.base.with_overrides(**steps)
    except SpecError as error:
        raise UserFacingError(f"--n-steps/--image-steps: {error}") from None
    model = create_model(spec, width_multiplier=0.0625)  # the unroll only: the narrowest model builds fastest
    if model.n_steps <= model.first_readout_step:
        raise UserFacingError(f"--n-steps {model.n_steps}: in {space.base.name} the image first reaches the logits at "
                              f"step {model.first_readout_step}, so no trained output would depend on it; set "
                              f"--n-steps > {model.first_readout_step}")


def run(args: argparse.Namespace) -> int:
    """``zoo search``. A SIGTERM before its first trial (importing optuna and torch, checking the data, opening the
    study) stops it at once (``stopping_at_once``; it killed the command without a word, exit -15), and once the study
    is open (its stale trials recovered, which must not be cut in half) at the safe point before the trials; a local
    worker of ``--workers K`` is left as it was (its command stops it and says why), and ends with its command
    (``workers.end_with_parent``)."""
    from neurozoo.datasets.termination import stopping_at_once

    try:
        if args.report is not None:
            if not end_with_parent():  # its command died as it started: nobody would supervise its trials
                return 130
            remember_contents_checksums()  # the images its command read (--hash-images) are not read again
            return _run(args)
        with sigterm_deferred(), stopping_at_once():
            return _run(args)
    except KeyboardInterrupt:  # here, not in main: `zoo search` printed only its generic "interrupted"
        if args.report is None:  # a local worker is stopped by the command that started it, which says why
            print("zoo search: interrupted (a running trial is marked FAIL, user attribute 'interrupted'; rerun to "
                  "continue the study)", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    import optuna

    from neurozoo.convrnn.search.space import load_space
    from neurozoo.convrnn.search.study import default_storage, make_storage, run_worker, split_trials
    from neurozoo.datasets.errors import UserFacingError

    from neurozoo.convrnn.training.imagefolder import check_imagenet

    # before the study exists: a bad --data (or one without a full --batch-size of images) must not record failed
    # trials; with --trials 0 (an export of the study as it is) nothing trains, so the batch is not checked
    check_imagenet(args.data, require_val=True, batch_size=args.batch_size if args.trials else None)
    space = load_space(args.space)
    if space.cell_weight_decay and args.optimizer != "sgd":
        raise UserFacingError(f"--optimizer {args.optimizer}: space {space.name!r} sets a cell's weight_decay, the "
                              "original's L2 term in the loss, which trials train with SGD only; use --optimizer sgd "
                              "or remove weight_decay from the space's cells")
    if args.lr is not None and "lr" in space.train:  # it was ignored: trials trained at the drawn rate
        raise UserFacingError(f"--lr {args.lr:g}: space {space.name!r} searches the learning rate (train.lr), which "
                              "every trial draws; leave --lr out, or fix or narrow train.lr in a copy of the space "
                              "(e.g. train: {lr: {float: [0.001, 0.01], log: true}}) and run that")
    _check_unroll(space, args.n_steps, args.image_steps)
    storage = args.storage or os.environ.get(STORAGE_ENV) or default_storage(args.out)
    heartbeat = args.heartbeat or None
    grace = args.grace or (2 * args.heartbeat if heartbeat else None)
    # opened once, here, with the heartbeat settings: a storage that cannot be opened is refused before anything is
    # printed; one worker runs its trials on it, --workers K open their own (this process tells their dead trials by
    # these settings, _continued); the export reads it
    one = args.workers == 1
    with sigterm_deferred():  # a database's schema being created, then its stale trials recovered: never cut short
        opened = make_storage(storage, heartbeat, grace, args.retries)
    study_name = args.study or space.name
    if args.image_size is None:
        args.image_size = space.image_size
    settings = settings_from_args(args)
    worker = args.report is not None  # a local worker of --workers K: the command that started it printed this
    if worker:
        logging.getLogger(JOIN_LOGGER).addFilter(_NoJoinMessage())  # it created the study the workers join
    if not worker:  # a rerun after an interruption: what it continues
        continued = _continued(opened, study_name, recover=one)
        if continued:
            print(f"zoo search: continuing study {study_name!r} in {shown_url(storage)}: {continued}", file=sys.stderr)
    if not args.quiet and not worker:
        print(space.summary())
        # how each trial trains: the default width (0.25) quartered a user's own base spec without a word
        print(f"study {study_name!r} in {shown_url(storage)}: {counted(args.trials, 'trial')} over "
              f"{counted(args.workers, 'worker')}; each at width {args.width:g}, {args.image_size} px, "
              f"{counted(args.epochs, 'epoch')}", flush=True)
    if args.quiet:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    raise_if_terminated()  # the safe point before the trials: a SIGTERM while the study was opened stops here
    if one:
        with sigterm_deferred():
            run_worker(space, settings, opened, study_name, args.trials, seed=args.seed, pruner=args.pruner,
                       max_total=args.max_total)
    else:
        from neurozoo.convrnn.search.study import check_data, check_settings, check_space, open_study
        from neurozoo.convrnn.search.workers import run_workers

        study = open_study(study_name, opened, args.seed, args.pruner)  # create once, no race
        check_space(study, space)  # once, not once per worker
        if args.trials:
            check_settings(study, settings, args.seed, args.pruner)
            check_data(study, args.data, args.hash_images)  # the images read here, once: the workers take the sums
        argv = [*_passthrough(args), "--workers", "1", "--study", study_name, "--export", "0", "--no-record"]
        from neurozoo.convrnn.training.file_checksums import CONTENTS_CHECKSUMS

        with sigterm_deferred():
            done = run_workers(argv, [n for n in split_trials(args.trials, args.workers) if n], storage,
                               CONTENTS_CHECKSUMS)
        if done.error is not None:
            raise UserFacingError(done.error + _stopped_trials(study, set(done.names) - {done.reporter}))
        if done.crash is not None:  # any other worker that did not exit 0 is reported as one of these two
            _report_crash(study, done, args.retries)
            return 1
    raise_if_terminated()  # a SIGTERM no trial's safe point saw stops before the export, as it did
    return export(args, space, opened, study_name, settings)


def _continued(storage, study_name: str, recover: bool = True) -> str:
    """The trials a study of that name already holds, by state (interrupted ones counted apart), or "" (none). A trial
    whose worker died (RUNNING, its heartbeat stale) is first recovered (``recover``: the trials run in this process;
    optuna's ``fail_stale_trials``: failed, then recorded complete or queued to run again), or, for ``--workers K``,
    whose workers recover it as the first of them starts a trial, counted apart as dead (``study.stale_trials``):
    either way not as running, which it said of such a trial."""
    import optuna
    from optuna.trial import TrialState

    from neurozoo.convrnn.search.study import fail_stale_trials, stale_trials

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # no such study yet
        return ""
    if recover:
        fail_stale_trials(study)  # a dead worker's trial is counted as failed (or recorded complete), not as running
    dead = [] if recover else stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    if not trials:
        return ""
    interrupted = sum(t.state == TrialState.FAIL and "interrupted" in t.user_attrs for t in trials)
    counts = [(sum(t.state == state for t in trials), state.name.lower()) for state in
              (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)]
    counts[3] = (counts[3][0] - len(dead), counts[3][1])
    counts.insert(4, (len(dead), "dead"))
    shown = ", ".join(f"{n} {name}" for n, name in counts if n)
    beats = "their workers' heartbeats" if len(dead) > 1 else "its worker's heartbeat"
    return (f"{counted(len(trials), 'trial')} so far ({shown})" +
            (f"; {interrupted} interrupted, not run again: new trials follow" if interrupted else "") +
            (f"; {len(dead)} dead ({plural(len(dead), 'trial')} {', '.join(map(str, dead))}: running in the storage, "
             f"{beats} stale): recovered by the first worker to start a trial" if dead else ""))


def _report_crash(study, done, max_retry) -> None:
    """A local worker crashed (a bug) or died without a word (killed, out of memory): its traceback once, then which
    worker, in which trial, and what became of the other workers' trials (stopped, marked FAIL). The trial of a worker
    that died without a word is recovered as its stale heartbeat would have had it (``study.recover_dead_trial``:
    recorded complete after its last epoch, else run again by the rerun, at most ``max_retry`` times); a crashed
    one's only where its last epoch was saved (a bug met again by the same configuration is not retried)."""
    from optuna.trial import TrialState

    from neurozoo.convrnn.search.study import record_trained, recover_dead_trial

    k, name = done.failed, done.reporter
    mine = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker") == name]
    recorded = []
    for trial in mine:  # a worker that died: optuna had no chance to mark its running trial
        if trial.state == TrialState.RUNNING:
            study.tell(trial.number, state=TrialState.FAIL)
            if done.crash:
                record_trained(study, trial)  # a bug after its last epoch was saved: its trained model counts
            else:
                recover_dead_trial(study, trial, max_retry)
            recorded += [t.number for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
                         if t.user_attrs.get("recovered_from") == trial.number]
    failed = [t.number for t in mine if t.state in (TrialState.FAIL, TrialState.RUNNING)]
    marked = f"marked failed; recorded complete as trial {recorded[-1]}" if recorded else "marked failed"
    where = f" in trial {failed[-1]} ({marked})" if failed else ""
    if done.crash:
        print(done.crash.rstrip(), file=sys.stderr)
        what = f"crashed{where}: {done.crash.rstrip().splitlines()[-1]} (traceback above: a bug, please report it)"
    else:
        code = done.codes[k]
        if code == 130:  # its own Ctrl-C / SIGTERM, sent to it alone
            what = f"was interrupted{where}"
        else:
            what = (f"died{where} on signal {-code}" if code < 0 else f"exited with status {code}{where}") + \
                " without a report (killed? out of memory?)"
    others = _stopped_trials(study, set(done.names) - {name})
    stopped = f"stopped the other workers{others}; " if len(done.names) > 1 else ""
    print(f"zoo search: worker {k + 1} of {len(done.names)} ({name}) {what}; {stopped}rerun to continue the study",
          file=sys.stderr)


def _stopped_trials(study, others) -> str:
    """What became of the trials the local workers ``others`` (all but the one that reported the error) ran then:
    stopped for the error (user attribute ``interrupted``), or failed themselves at the same moment."""
    from optuna.trial import TrialState

    failed = [t for t in study.get_trials(deepcopy=False, states=[TrialState.FAIL]) if t.user_attrs.get("worker") in others]
    if not failed:
        return ""
    shown = ", ".join(f"{t.number} ({'stopped' if 'interrupted' in t.user_attrs else 'failed too'})" for t in failed)
    return f" (the other workers' running trial{'s' * (len(failed) > 1)} {shown}: marked failed)"


def _passthrough(args: argparse.Namespace):
    """The options a local worker process inherits."""
    skip = {"trials", "workers", "storage", "study", "export", "record", "db", "report", "handler",
            "command", "amp", "channels_last", "quiet", "hash_images"}
    argv = []
    for key, value in vars(args).items():
        if key in skip or value is None:
            continue
        argv += [f"--{key.replace('_', '-')}", str(value)]
    argv += [flag for flag, on in (("--amp", args.amp), ("--channels-last", args.channels_last),
                                   ("--quiet", args.quiet), ("--hash-images", args.hash_images)) if on]
    return argv


def export(args, space, storage, study_name: str, settings) -> int:
    """Print the study's totals, plot its history, export its best ``--export`` trials and record their scores;
    ``storage``: the opened optuna storage or its URL."""
    import optuna

    from neurozoo.convrnn.search.export import best_trials, data_checksum, export_specs, score_records
    from neurozoo.convrnn.search.study import check_space
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.provenance import code_version

    study = optuna.load_study(study_name=study_name, storage=storage)
    check_space(study, space)
    states = [t.state.name for t in study.trials]
    diverged = sum("diverged" in t.user_attrs for t in study.trials)  # pruned on a non-finite loss (objective.py)
    exploded = sum("exploded" in t.user_attrs for t in study.trials)  # pruned before training (objective.py)
    kinds = ([f"{diverged} diverged: pruned on a non-finite loss"] if diverged else []) + (
        [f"{exploded} exploded at initialisation: pruned before training"] if exploded else [])
    if not args.quiet and args.report is None:  # a local worker: the command that started it prints the totals
        print(f"study {study_name!r}: " + ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
              + (f" ({'; '.join(kinds)})" if kinds else ""))
    if study.trials and (args.export > 0 or args.record):  # not in the worker processes (--export 0 --no-record)
        from neurozoo.convrnn.search.history_figure import plot_search_history

        figure = plot_search_history(study, Path(args.out) / f"{study_name}_history.png")
        if not args.quiet:
            print(f"search history: {figure}")
    if args.export <= 0:
        return 0
    best = best_trials(study, args.export)
    if not best:
        raise UserFacingError(_nothing_to_export(study, space, settings))
    paths = export_specs(study, space, args.out, args.export)
    for trial, path in zip(best, paths):
        print(f"trial {trial.number}: val top-1 {trial.value:.2f}% -> {path}")
    if args.record:
        from neurozoo.benchmarks.records import ResultsStore, ScoreRecord  # the shared results store (lazy: upper layer)

        records = [ScoreRecord(**r) for r in score_records(study, space, settings, args.export,
                                                           data_checksum(args.data), code_version())]
        store = ResultsStore(args.db)
        # a rerun (a finished study continued, an export again) found the same trials best: each kept its record,
        # as zoo run reuses an identical one (ResultsStore.identical: all but time and duration), not one per rerun
        kept = {record.model: store.identical(record) for record in records}
        stored = {model: record.id for model, record in kept.items() if record is not None}
        new = [record for record in records if record.model not in stored]
        ids = store.add_many(new)
        if not args.quiet:  # which store: the line named none (--results, or the default one)
            if new:
                print(f"stored {len(ids)} {'score' if len(ids) == 1 else 'scores'} as "
                      f"{', '.join(r.model for r in new)} ({records[0].benchmark}): "
                      f"{stored_line(ids, store.shown_url)}")
            if stored:
                print(f"stored before with identical settings, data, code and score: {', '.join(stored)} "
                      f"({records[0].benchmark}): {stored_line(list(stored.values()), store.shown_url)}; "
                      "not stored again")
    return 0


def _nothing_to_export(study, space, settings) -> str:
    """Why a study has no trial to export, and what to do: it printed "has no completed trial to export" (exit 1)
    after a study whose every trial diverged, without the advice each diverged trial had printed."""
    from neurozoo.convrnn.search.objective import Objective

    trials = study.trials
    message = f"study {study.study_name!r} has no completed trial to export"
    if not trials:
        return f"{message}: it holds no trial yet; run some (--trials N)"
    diverged = sum("diverged" in t.user_attrs for t in trials)
    if diverged == len(trials):
        every = "its trial" if len(trials) == 1 else f"all {len(trials)} of its trials"
        # the study refuses another --lr or an edited space under its name (check_settings, check_space)
        return (f"{message}: {every} diverged (a non-finite loss); {Objective(space, settings).divergence_advice()}, "
                f"and start a new study with --study NEW_NAME")
    states = [t.state.name.lower() for t in trials]
    shown = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
    return f"{message} ({shown}: only a completed trial is exported); rerun with more --trials to continue it"


def main(argv=None) -> int:
    """``python -m neurozoo.convrnn.search.cli ...`` (what ``--workers K`` launches per worker)."""
    from neurozoo.datasets.errors import UserFacingError

    parser = ZooArgumentParser(prog="zoo search", description=__doc__, formatter_class=ShowDefaultsRaw)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserFacingError as error:
        if args.report:  # a local worker: the command that started it reports the error, once for all workers
            from neurozoo.convrnn.search.workers import write_report

            write_report(args.report, error=str(error))
        else:
            print(f"zoo search: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before run() or after it: nothing to say about trials
        return 130
    except Exception:  # a bug: the command that started this worker prints the traceback once and stops the others
        if not args.report:
            raise
        from neurozoo.convrnn.search.workers import write_report

        write_report(args.report, crash=traceback.format_exc())
        return 1


class _NoJoinMessage(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Using an existing study")


#: The logger optuna says on that a study is joined, not created (optuna.study.study.create_study)
JOIN_LOGGER = "optuna.study.study"


if __name__ == "__main__":
    from neurozoo.datasets.termination import exit_status

    sys.exit(exit_status(main()))  # a worker stopped exits 130, which its command reads, not by SIGINT
