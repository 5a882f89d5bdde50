"""Optuna studies for the ConvRNN search: seeded TPE, a pruner on per-epoch validation accuracy, and
RDB storage shared by any number of workers.

The sampler draws trial N from a random state seeded by (seed, N), not by a state that runs on from the start of
the process: a study stopped and run again (or joined by another worker) goes on with new configurations instead
of replaying the first ones, and for a fixed seed trial N's configuration depends only on N and the trials finished
before it, not on where the runs were stopped (a trial stopped by Ctrl-C or SIGTERM ends FAIL, ``interrupted``, and
is not run again: trial N + 1 draws from (seed, N + 1) as in an uninterrupted study). A trial whose worker died
unfinished is different: it is run again as trial N + 1, which replays its draw (from (seed, ``retry_of``)), so the
next new trial, N + 2, draws from (seed, N + 2), and the configuration of (seed, N + 1) is never drawn. Trial numbers
are the only draw index that stays unique across concurrent workers, so a study whose workers died evaluates other
configurations after the retry than one whose workers did not.

SQLite (the default) serves the workers of one machine; a PostgreSQL URL
(``postgresql+psycopg2://user@host/db``) lets workers on several machines join the same study
(``load_if_exists``) and split the trials. Each worker runs its own ``n_trials``, so the trials of K
workers add up exactly, and optuna numbers every trial uniquely in the storage. A heartbeat marks
the trial of a worker that died (SIGKILL, lost machine) as FAIL once it is ``grace_period`` seconds
stale, when the next worker on any machine starts a trial (optuna compares the heartbeat with the database's clock,
not a process id, so a worker on another machine counts as one here); the study stays usable and the trial is
recovered (:func:`recover_dead_trial`): recorded complete if its last epoch was saved, else run again.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import json
import logging
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import optuna
import sqlalchemy.exc

from neurozoo.convrnn.search.objective import Objective, TrialSettings
from neurozoo.convrnn.search.space import SearchSpace
from neurozoo.convrnn.search.workers import MAX_RETRY
from neurozoo.datasets.termination import raise_if_terminated
from neurozoo.datasets.db_urls import missing_driver_advice, shown_url, with_installed_driver
from neurozoo.datasets.errors import UserFacingError
from neurozoo.datasets.text_table import counted

PRUNERS = ("median", "halving", "none")


def default_storage(out) -> str:
    path = Path(out).expanduser().resolve() / "search.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def make_storage(url: str, heartbeat_interval: Optional[int] = 60, grace_period: Optional[int] = None,
                 max_retry: Optional[int] = MAX_RETRY):
    """An ``RDBStorage`` with a heartbeat (``heartbeat_interval=None``: no heartbeat) whose stale trials (a worker
    dead here or on another machine) are recovered by :func:`recover_dead_trial`, each run again at most
    ``max_retry`` times (None: no limit)."""
    if "://" not in url:
        raise UserFacingError(f"--storage {shown_url(url)!r}: expected a database URL such as sqlite:///search.sqlite or "
                              "postgresql+psycopg2://user@host/db")
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        with warnings.catch_warnings():  # heartbeats are marked experimental; we rely on them deliberately
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            recover = functools.partial(recover_dead_trial, max_retry=max_retry) if heartbeat_interval else None
            return HeartbeatStorage(
                with_installed_driver(url), engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                grace_period=grace_period if heartbeat_interval else None, **{STALE_TRIAL_CALLBACK: recover})
    except ImportError as error:  # optuna raises its own ImportError for a missing driver (optuna 5)
        from sqlalchemy.engine import make_url

        driver = getattr(error, "name", None) or make_url(url).drivername
        raise UserFacingError(f"--storage {shown_url(url)!r}: its database driver is not installed ({driver}); "
                              f"{missing_driver_advice(driver)}") from None
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError) as error:
        raise UserFacingError(f"--storage {shown_url(url)!r}: {error}; expected a database URL such as "
                              "sqlite:///search.sqlite or postgresql+psycopg2://user@host/db") from None
    except sqlalchemy.exc.OperationalError as error:  # no server there, a wrong password, a folder that is not there
        cause = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise UserFacingError(f"--storage {shown_url(url)!r}: cannot open the database: {cause}") from None
    except sqlalchemy.exc.DatabaseError as error:  # a truncated or overwritten SQLite file: "malformed", "not a database"
        cause = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise UserFacingError(f"--storage {shown_url(url)!r}: cannot read the database ({cause}): the file is damaged "
                              "or not a database; restore it from a copy, or start afresh with another --out or "
                              "--storage") from None


class HeartbeatStorage(optuna.storages.RDBStorage):
    """optuna's ``RDBStorage`` whose heartbeat also tells the trial of a worker that died before the trial's first
    heartbeat. optuna records that one as the objective starts, after the trial was created and its configuration
    drawn, and its stale check skips a running trial without a heartbeat: a worker killed in between (``kill -9``
    a few seconds into ``zoo search``, found by a hard-kill audit) left its trial RUNNING for good, never failed
    nor run again, and the study counted it running in every later command. Each stale check (optuna's, as a trial
    starts, and :func:`fail_stale_trials`) now first gives such a trial a heartbeat, dated by the database as
    optuna's are: a live worker's own heartbeats keep it fresh, a dead one's goes stale after the grace period and
    the trial is recovered as any other (:func:`recover_dead_trial`)."""

    def _get_stale_trial_ids(self, study_id: int) -> list:
        from optuna.storages._rdb import models

        with self.engine.connect() as connection:
            silent = connection.execute(
                sqlalchemy.select(models.TrialModel.trial_id)
                .where(models.TrialModel.study_id == study_id,
                       models.TrialModel.state == optuna.trial.TrialState.RUNNING,
                       ~sqlalchemy.exists().where(models.TrialHeartbeatModel.trial_id == models.TrialModel.trial_id))
            ).scalars().all()
        for trial_id in silent:
            self.record_heartbeat(trial_id)
        stale = super()._get_stale_trial_ids(study_id)
        return stale + [trial_id for trial_id in self._dead_here(study_id) if trial_id not in stale]

    def _dead_here(self, study_id: int) -> list:
        """The RUNNING trials whose worker (user attribute ``worker``, ``<host>:<pid>``) is a process of this host
        that no longer exists: dead, whatever its heartbeat's age. A ``zoo search`` killed (SIGKILL, the
        out-of-memory killer) and run again within the grace period (2 minutes by default) counted its trial
        running ("1 trial(s) so far (1 running)") and left it so, to be recovered only by a later command; as
        ``zoo run`` and ``zoo work`` release a dead local worker's job at once
        (:func:`leaderboard.scorer.release_dead_workers`), it is recovered at once. Another host's trials wait for
        their heartbeat, as before: this host cannot see their processes."""
        from optuna.storages._rdb import models

        from neurozoo.datasets.cache import dead_on_this_host

        with self.engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.select(models.TrialModel.trial_id, models.TrialUserAttributeModel.value_json)
                .join(models.TrialUserAttributeModel,
                      models.TrialUserAttributeModel.trial_id == models.TrialModel.trial_id)
                .where(models.TrialModel.study_id == study_id,
                       models.TrialModel.state == optuna.trial.TrialState.RUNNING,
                       models.TrialUserAttributeModel.key == "worker")).all()
        return [trial_id for trial_id, value in rows if dead_on_this_host(str(json.loads(value)))]

    def record_heartbeat(self, trial_id: int) -> None:
        """optuna's, once more where its first heartbeat met another process's first for the same trial (the one
        above): the row is then there, and is renewed. Raised in a worker's heartbeat thread, the error ended its
        heartbeats, and its live trial went stale."""
        try:
            super().record_heartbeat(trial_id)
        except sqlalchemy.exc.IntegrityError:
            super().record_heartbeat(trial_id)


#: The ``RDBStorage`` argument of the callback for a trial failed by the heartbeat: ``failed_trial_callback`` before
#: optuna 4.9, ``heartbeat_stale_trial_callback`` since (the old name deprecated, and gone in optuna 6)
STALE_TRIAL_CALLBACK = ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in
                        inspect.signature(optuna.storages.RDBStorage.__init__).parameters else "failed_trial_callback")

#: optuna's callback that queues a stale trial again, WAITING, with its parameters (``RetryFailedTrialCallback`` before
#: optuna 4.9)
RetryStaleTrial = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
    optuna.storages.RetryFailedTrialCallback


def recover_dead_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial,
                       max_retry: Optional[int] = MAX_RETRY) -> None:
    """What becomes of a trial marked FAIL because its worker died without a word (SIGKILL, out of memory, a lost
    machine; told by its stale heartbeat on any machine, or by ``zoo search --workers K`` that started the worker):
    recorded complete if its last epoch was saved (:func:`record_trained`), else queued to run again with the same
    parameters, at most ``max_retry`` times (optuna's ``RetryHeartbeatStaleTrialCallback``: a new WAITING trial, which
    the next worker to start a trial takes first). The new trial's user attribute ``retry_of`` is the dead trial's
    number and ``resume_from`` the folders of its earlier runs, newest first: the worker that runs it resumes from the
    first whose ``last.pth`` it can read and is of its configuration (the objective: a refused one is its user
    attribute ``resume_refused``), a worker on a machine without them trains it afresh. Such a
    trial used to stay FAIL: its configuration was never run to the end, nor its epochs used."""
    if record_trained(study, trial):
        return
    folders = [trial.user_attrs["out"]] if trial.user_attrs.get("out") else []
    queued = copy.deepcopy(trial)
    # optuna's callback copies every user attribute: the dead run's folder, epochs, worker, best top-5 are not the
    # new trial's (the objective sets its own)
    queued.user_attrs = {"retry_of": trial.number,
                         "resume_from": folders + list(trial.user_attrs.get("resume_from") or [])}
    before = len(study.get_trials(deepcopy=False))
    with warnings.catch_warnings():  # experimental, as the heartbeat (make_storage)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryStaleTrial(max_retry=max_retry)(study, queued)
    if len(study.get_trials(deepcopy=False)) == before:  # retried max_retry times already
        print(f"zoo search: trial {trial.number} died unfinished; not run again: its configuration was retried "
              f"{counted(max_retry, 'time')} already (--retries)", file=sys.stderr, flush=True)
        return
    where = f", to resume from its checkpoint in {folders[0]} where the worker that runs it can read it" \
        if folders else ""
    print(f"zoo search: trial {trial.number} died unfinished: queued to run again (user attribute retry_of "
          f"{trial.number}){where}", file=sys.stderr, flush=True)


def record_trained(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
    """A trial marked FAIL because its worker died (its heartbeat went stale, or ``zoo search --workers K`` found its
    worker dead) after the checkpoint of its last epoch was saved: recorded again as a COMPLETE trial (user attribute
    ``recovered_from``: its number) with the value the trial would have returned, the best epoch's top-1 (the
    checkpoint's ``best_top1``), its epochs' top-1 as intermediate values and the best epoch's top-5 (its
    ``metrics.jsonl``), its parameters, configuration and folder. Such a trial ended FAIL, which TPE and the export
    ignore, its trained model lost to the study; optuna cannot turn a failed trial into a complete one, so the record
    is a new trial. Only where its folder is on this machine; the heartbeat fails a trial in one process only
    (optuna's ``fail_stale_trials``), so it is recorded once. Returns whether the trial is recorded complete."""
    from neurozoo.convrnn.search.export import RUN_KEYS
    from neurozoo.convrnn.training.metrics_log import read_metrics
    from neurozoo.datasets.errors import DataError
    from neurozoo.datasets.torch_files import read_torch_file

    folder = Path(trial.user_attrs.get("out") or "")
    if not trial.user_attrs.get("out") or not (folder / "last.pth").is_file():
        return False
    if any(t.user_attrs.get("recovered_from") == trial.number for t in study.get_trials(deepcopy=False)):
        return True  # recorded complete already: told twice of one dead trial, it is neither recorded nor run again
    try:
        state = read_torch_file(folder / "last.pth", mmap=True)  # the counters, not the weights
    except DataError:
        return False
    epochs = int((state.get("config") or {}).get("epochs", -1))
    if int(state["epoch"]) != epochs or state.get("epoch_steps") or float(state.get("best_top1", -1.0)) < 0:
        return False  # not trained to its last epoch (run again instead: recover_dead_trial), or never scored
    try:
        rows = [r for r in read_metrics(folder / "metrics.jsonl", kind="epoch")
                if r.get("epoch", 0) <= epochs and r.get("val_top1") is not None]
    except OSError:
        rows = []
    best = float(state["best_top1"])
    attrs = {**trial.user_attrs, "recovered_from": trial.number, "epochs_done": epochs}
    top5 = next((r.get("val_top5") for r in rows if r["val_top1"] == best), None)  # the first best epoch's
    attrs.pop("val_top5", None)
    if top5 is not None:
        attrs["val_top5"] = float(top5)
    try:
        run = json.loads((folder / "run.json").read_text())
        attrs["run"] = {key: run.get(key) for key in RUN_KEYS}
    except (OSError, ValueError):
        pass
    study.add_trial(optuna.trial.create_trial(
        value=best, params=trial.params, distributions=trial.distributions, user_attrs=attrs,
        intermediate_values={int(r["epoch"]) - 1: float(r["val_top1"]) for r in rows}))
    print(f"zoo search: trial {trial.number} died after its last epoch was saved: recorded complete from {folder} "
          f"(val top-1 {best:.2f}%; user attribute recovered_from {trial.number})", file=sys.stderr, flush=True)
    return True


def fail_stale_trials(study: optuna.Study) -> None:
    """optuna's ``fail_stale_trials`` (where the study's storage has a heartbeat): the trials of dead workers FAIL,
    those trained to their last epoch recorded complete (:func:`record_trained`). optuna does it as a trial starts;
    done before a rerun counts the study, it said "1 running" of a dead worker's trial."""
    with warnings.catch_warnings():  # experimental, as the heartbeat (make_storage)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def stale_trials(study: optuna.Study) -> Sequence[int]:
    """The numbers of the study's RUNNING trials whose worker died, by optuna's own test (the storage's
    ``_get_stale_trial_ids``, which :func:`fail_stale_trials` applies: a heartbeat older than the grace period by the
    database's clock), without failing them; none where the study's storage has no heartbeat. For ``zoo search
    --workers K``, whose workers recover them as they start their trials: its "continuing" line counted them running."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return []
    stale = set(storage._get_stale_trial_ids(study._study_id))
    return [t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if t._trial_id in stale]


def make_pruner(kind: str = "median", warmup_epochs: int = 0) -> optuna.pruners.BasePruner:
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup_epochs)
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise UserFacingError(f"--pruner {kind!r}: expected one of {', '.join(PRUNERS)}")


def trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededTPE(optuna.samplers.BaseSampler):
    """``TPESampler`` whose random state is seeded by (seed, trial number) at the start of every trial.

    A plain ``TPESampler(seed)`` starts its random state afresh in every process, so a study resumed with the same
    seed drew its first start-up configurations again (trials 3 and 4 of a resumed 3-trial study repeated trials
    0 and 1); workers on one study no longer need distinct seeds either, as their trial numbers differ."""

    def __init__(self, seed: int = 0, **tpe_options: Any):
        self.seed = int(seed)
        self.tpe_options = tpe_options
        self._tpe = optuna.samplers.TPESampler(seed=trial_seed(self.seed, 0), **tpe_options)

    def before_trial(self, study, trial) -> None:
        # a dead trial queued again (recover_dead_trial) draws as the dead one: one killed before it drew its
        # configuration (the window before its first heartbeat, HeartbeatStorage) drew trial N+1's in its retry, and
        # the uninterrupted study's trial N was never run (the parameters it drew before it died are fixed anyway)
        number = trial.user_attrs.get("retry_of", trial.number)
        self._tpe = optuna.samplers.TPESampler(seed=trial_seed(self.seed, number), **self.tpe_options)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial) -> Dict[str, Any]:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space) -> Dict[str, Any]:
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution) -> Any:
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._tpe.after_trial(study, trial, state, values)


def open_study(name: str, storage, seed: int = 0, pruner: str = "median") -> optuna.Study:
    """Create the study or join it; ``constant_liar`` keeps parallel TPE workers apart."""
    sampler = TrialSeededTPE(seed, constant_liar=True, n_startup_trials=5)
    return optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=make_pruner(pruner),
                               direction="maximize", load_if_exists=True)


def check_space(study: optuna.Study, space: SearchSpace) -> None:
    """Refuse a space other than the one the study was run with (its trials' configurations belong to that one;
    TPE would mix the two, and an exported spec would take the other space's base and wiring): another name, or
    the same name with other content (an edited copy of the file), told by the digest of the space's content."""
    recorded = study.user_attrs.get("space")
    if recorded is not None and recorded != space.name:
        raise UserFacingError(f"study {study.study_name!r} searches space {recorded!r}; this command gives space "
                              f"{space.name!r} ({space.source}): pass --space {recorded}, or another --study")
    digest = study.user_attrs.get("space_sha256")
    if digest is not None and digest != space.digest:
        recorded_file = study.user_attrs.get("space_file") or "a mapping"
        raise UserFacingError(
            f"study {study.study_name!r} searches space {space.name!r} as in {recorded_file} "
            f"(content sha256 {digest[:16]}); this command gives {space.source} (sha256 {space.digest[:16]}), a space "
            f"of the same name with other content, from which the study's trials were not drawn: pass the study's "
            f"space file, or start a new study of the edited space with --study NEW_NAME")


def record_space(study: optuna.Study, space: SearchSpace) -> None:
    """:func:`check_space`, then record the space's name, content digest and file in the study. A study started
    before digests were recorded (its space's name only) is accepted and takes this space's digest from now on."""
    check_space(study, space)
    if "space_sha256" not in study.user_attrs:
        if "space" in study.user_attrs:  # run before, by a version that recorded the name only
            warnings.warn(f"study {study.study_name!r} was started before space contents were recorded: taking "
                          f"{space.source} (sha256 {space.digest[:16]}) as its space; another content under the name "
                          f"{space.name!r} is refused from now on")
        study.set_user_attr("space_sha256", space.digest)
        study.set_user_attr("space_file", space.path)  # None: built from a mapping
    study.set_user_attr("space", space.name)


#: The trial settings that fix what a trial's value measures, with their option: a study continued with another of
#: them ranked trials trained differently against each other (TPE's model and the exported best alike). The data's
#: path is not one (workers on other machines mount it elsewhere; its content is, :func:`check_data`), nor the
#: device or precision.
OBJECTIVE_SETTINGS = {"epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "optimizer": "--optimizer",
                      "image_size": "--image-size", "width_multiplier": "--width", "n_steps": "--n-steps",
                      "image_steps": "--image-steps", "max_steps_per_epoch": "--max-steps-per-epoch"}

#: The options that fix how the study draws and stops its trials, each in the user attribute of its name, with what
#: another value would do: continued with another --pruner, a study stopped its new trials by another rule than its
#: earlier ones (a trial pruned after epoch 1 under one runs on under the other) and ranked them together; with
#: another --seed its configurations came from two seeds, a sequence that no rerun replays. The space is one too
#: (:func:`check_space`); the sampler (seeded TPE) and the direction (maximise val top-1) are no options.
STUDY_OPTIONS = {"pruner": ("--pruner", "prunes its trials with", "stopped by another rule than its earlier ones"),
                 "seed": ("--seed", "draws its trials with", "drawn from another seed (a sequence no rerun replays)")}


#: The recorded ``lr`` of a study whose space sets train.lr: its trials train at the space's rate, not --lr's
SEARCHED = "searched"


def objective_settings(settings: TrialSettings, space: Optional[SearchSpace] = None) -> Dict[str, Any]:
    """The :data:`OBJECTIVE_SETTINGS` values; ``lr`` is :data:`SEARCHED` where ``space`` sets train.lr (--lr is
    refused there and the trials ignore ``settings.lr``, which is then only the command's default: recorded, it
    would have made the study refuse every rerun once that default changed, with no --lr to give the old one back)."""
    values = {name: getattr(settings, name) for name in OBJECTIVE_SETTINGS}
    values["max_steps_per_epoch"] = values["max_steps_per_epoch"] or None  # 0 and None: whole epochs
    if space is not None and "lr" in space.train:
        values["lr"] = SEARCHED
    return values


def check_settings(study: optuna.Study, settings: TrialSettings, seed: Optional[int] = None,
                   pruner: Optional[str] = None, space: Optional[SearchSpace] = None) -> None:
    """Refuse training settings other than those the study's trials were trained with, and a seed or pruner other
    than the study's (recorded by :func:`run_worker`; a study of an earlier version recorded none of the settings, nor
    its pruner, and takes this command's). ``None``: not compared. Where ``space`` sets train.lr the learning rate is
    not compared (the space is, :func:`check_space`), also against a study that recorded a number for it."""
    recorded = study.user_attrs.get("trial_settings") or {}
    for name, value in objective_settings(settings, space).items():
        if value == SEARCHED:
            continue
        if name in recorded and recorded[name] != value:
            flag = OBJECTIVE_SETTINGS[name]
            raise UserFacingError(f"study {study.study_name!r} trains its trials with {flag} {recorded[name]}; this "
                                  f"command gives {value}, whose trials' values would be ranked with theirs (TPE and "
                                  f"the export): rerun with {flag} {recorded[name]}, or start another --study")
    for name, value in (("pruner", pruner), ("seed", seed)):
        stored = study.user_attrs.get(name)
        if value is not None and stored is not None and stored != value:
            flag, verb, effect = STUDY_OPTIONS[name]
            raise UserFacingError(f"study {study.study_name!r} {verb} {flag} {stored}; this command gives {flag} "
                                  f"{value}, whose trials would be {effect} and ranked with theirs (TPE and the "
                                  f"export): rerun with {flag} {stored}, or start a new study with --study NEW_NAME")


def check_data(study: optuna.Study, data, hash_images: bool = False) -> Tuple[str, Dict[str, str]]:
    """Refuse data other than the data the study's trials were trained and scored on, told by the checksums of its
    splits' lists of relative paths, labels and sizes, or with ``--hash-images`` each image's sha256 instead of its size
    (``export.data_checksums``, ``file_checksums.files_checksum``; val/'s is the records' data sha256), so that a copy mounted
    elsewhere is the same data. Returns the kind the study keeps from now on (``file_checksums.FILES_CHECKSUMS``: its own, or
    this command's where that covers more: ``hash_images``, ``file_checksums.hashed_files_checksum``) and the checksums of
    that kind by split. A study continued on another folder (10 classes instead of 3) ranked its trials' top-1 with the
    others' (TPE and the export alike); so did one continued on another train/ (other training images beside the same
    val/), as only val/ was compared. A study of an earlier version recorded no data, or val/'s only, and takes this
    command's (:func:`run_worker`); one that recorded the paths and labels only (no ``files_checksum``: before
    2026-12-05) is compared by those, then takes this command's sizes (:func:`run_worker`): an image replaced under its
    name since is not seen, one replaced later is. One that recorded contents is compared by them, with or without
    ``--hash-images``: an image edited to the same size is refused."""
    from neurozoo.convrnn.search.export import data_checksums
    from neurozoo.convrnn.training.file_checksums import (FILES_CHECKSUM_WORDS, FILES_CHECKSUMS, hashed_files_checksum,
                                                          recorded_files_checksum)

    recorded = study.user_attrs.get("data") or {}
    kind = recorded_files_checksum(recorded)
    if kind not in FILES_CHECKSUMS:
        raise UserFacingError(f"study {study.study_name!r} recorded its data's checksums of a kind this version does "
                              f"not know (files_checksum {kind!r}; known: {', '.join(FILES_CHECKSUMS)}): continue it "
                              f"with the version that started it, or start another --study")
    kept = max(kind, hashed_files_checksum(hash_images), key=list(FILES_CHECKSUMS).index)  # the one covering more
    digests = data_checksums(data, kinds=tuple(dict.fromkeys((kind, kept))))
    covered = FILES_CHECKSUM_WORDS[kind]
    for split in ("val", "train"):
        key = f"{split}_files_sha256"
        if key in recorded and recorded[key] != digests[kind].get(split):
            raise UserFacingError(
                f"study {study.study_name!r} trains and scores its trials on {recorded['data']} (its {split}/ file "
                f"list has sha256 {recorded[key][:16]}, of its {covered}); --data {data} has another {split}/ "
                f"(sha256 {(digests[kind].get(split) or 'none')[:16]}), whose trials' values would be ranked with "
                f"theirs (TPE and the export): rerun with the study's data (a copy anywhere: the paths compared are "
                f"relative), or start another --study")
    return kept, digests[kept]


def run_worker(space: SearchSpace, settings: TrialSettings, storage: Union[str, optuna.storages.BaseStorage],
               study_name: str, n_trials: int, *, seed: int = 0, pruner: str = "median", max_total: Optional[int] = None,
               heartbeat_interval: Optional[int] = 60, grace_period: Optional[int] = None) -> optuna.Study:
    """Run ``n_trials`` trials of the study in this process (fewer if ``max_total`` trials already exist).
    ``storage``: a URL, opened with the heartbeat settings (:func:`make_storage`), or a storage already opened (its
    own heartbeat settings hold)."""
    if isinstance(storage, str):
        storage = make_storage(storage, heartbeat_interval, grace_period)
    study = open_study(study_name, storage, seed, pruner)
    record_space(study, space)
    if n_trials:  # --trials 0 (an export by a later command) need not repeat the search's options
        check_settings(study, settings, seed, pruner, space)
        kind, digests = check_data(study, settings.data, settings.hash_images)
        if kind == "contents":  # the trials' run.json as the study's: each image's bytes (zoo train --hash-images)
            settings = dataclasses.replace(settings, hash_images=True)
        if "trial_settings" not in study.user_attrs:
            study.set_user_attr("trial_settings", objective_settings(settings, space))
        data = study.user_attrs.get("data") or {"data": str(Path(settings.data).resolve())}
        files = {f"{split}_files_sha256": digest for split, digest in digests.items()}
        # a new study, or one of an earlier version (val/'s checksum only; paths and labels only), or one continued
        # with --hash-images, checked above by what it recorded: this command's checksums from now on (check_data)
        current = {**data, "files_checksum": kind, **files}
        if current != data:
            study.set_user_attr("data", current)
        if "pruner" not in study.user_attrs:
            study.set_user_attr("pruner", pruner)
    if "seed" not in study.user_attrs:
        study.set_user_attr("seed", seed)
    callbacks = [lambda study, trial: raise_if_terminated()]  # between trials too: the next may not start
    if max_total is not None:
        from optuna.study import MaxTrialsCallback

        callbacks.append(MaxTrialsCallback(max_total, states=None))
        if len(study.trials) >= max_total:
            return study
    objective = Objective(space, settings)
    # the safe point before the first trial: a stop while the study was opened and its data checked (--hash-images:
    # every image read) begins no trial (one begun was marked FAIL at its first safe point: a number spent on nothing)
    raise_if_terminated()
    with failed_trials_logged_without_traceback():
        try:
            study.optimize(objective, n_trials=n_trials, callbacks=callbacks, gc_after_trial=True)
        except KeyboardInterrupt:
            if objective.interrupted is not None:
                drop_unread_checkpoint(study, objective.interrupted)
            raise
    return study


def drop_unread_checkpoint(study: optuna.Study, number: int) -> None:
    """Remove the ``last.pth`` of trial ``number``, stopped by Ctrl-C or SIGTERM, once the storage holds it FAIL: such
    a trial is never run again (a rerun goes on with new trials), so its checkpoint (the stop's, or its last epoch's)
    was read by nothing, a model's weights and optimizer state left in its folder. A trial still RUNNING there (its
    process killed before optuna recorded the failure) keeps it, for its retry (:func:`recover_dead_trial`). Its
    ``best.pth``, ``metrics.jsonl`` and ``run.json`` stay."""
    for trial in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.FAIL]):
        if trial.number == number and trial.user_attrs.get("out"):
            (Path(trial.user_attrs["out"]) / "last.pth").unlink(missing_ok=True)


#: The logger optuna reports a failed trial on, with its exception's traceback (optuna.study._optimize)
OPTIMIZE_LOGGER = "optuna.study._optimize"


class _NoTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


@contextmanager
def failed_trials_logged_without_traceback():
    """optuna logs a trial that raised with the exception's traceback, then ``study.optimize`` raises the exception
    again: the failed trial's line is kept, its traceback dropped. For a :class:`UserFacingError` (a corrupt image
    found mid-trial, a trial folder already in use) the message names the cause, the file included, and the
    traceback only buried it; so for a KeyboardInterrupt (Ctrl-C, a SIGTERM: the line says which), whose traceback
    shows only where the process happened to be. Any other exception is a bug, whose traceback is shown once, where
    the command ends (by Python, or for a local worker by ``zoo search --workers K``, workers.py); it was shown
    twice. The study stops on it, as optuna stops on any exception; ``zoo search --workers K`` then stops its other
    workers."""
    logger, kept = logging.getLogger(OPTIMIZE_LOGGER), _NoTraceback()
    logger.addFilter(kept)
    try:
        yield
    finally:
        logger.removeFilter(kept)


def split_trials(total: int, workers: int) -> Sequence[int]:
    """Trials per worker: ``total`` split as evenly as possible."""
    return [total // workers + (k < total % workers) for k in range(workers)]

