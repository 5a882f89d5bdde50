"""One search trial: sample a configuration, write its graph spec, train it with ``convrnn.training``
and report validation top-1 after every epoch so that the pruner can stop poor trials early.

A trial runs in ``OUT/<study>/trial_<number>`` (studies sharing ``--out`` and the default storage kept their
trials apart only by number, so a second study's trial 0 overwrote the first study's spec and config, then
stopped on its checkpoint).

A trial whose training diverges (the trainer stops on a non-finite loss, ``FloatingPointError``) ends PRUNED with
the user attribute ``diverged`` (``{"epoch", "error"}``), keeping the values it reported before. It ended FAIL, and
TPE ignores failed trials, so the sampler kept drawing from a region that diverges; a pruned trial is one it learns
from, ranked below every completed trial (and, with no epoch reported, below every other pruned one).

Before training, the untrained model is run once on the trial's first batch (no gradient, ``initial_explosion``): a
draw whose logits are non-finite or whose loss exceeds ``EXPLOSION_BOUND`` x ln(classes) ends PRUNED at once with the
user attribute ``exploded`` (``{"loss", "growth", "error"}``). Such draws (an RGC memory factor or time decay above 1)
came out of initialisation with logits growing 5-8-fold per time step and a first loss of ~5e4, then "diverged" within
2-4 steps whatever the learning rate, recorded as if the rate were to blame. Only untrained weights are looked at: a
trial resumed from a checkpoint (``TrialSettings.extra`` ``resume``, or a dead trial run again:
:func:`retry_checkpoints`; a trial interrupted by SIGTERM or Ctrl-C ends FAIL and is not run again; one killed after its
last epoch's checkpoint is recorded complete, ``study.record_trained``) trains on from its checkpoint's epoch without
the look. Its value is its best epoch's top-1, the checkpoint's included (``Trainer.best_top1``); one whose checkpoint
holds all its epochs scores its final weights and returns that best (it trained nothing and returned -inf). The
checkpoint's best epoch's weights come along into the trial's folder (:func:`carry_best_weights`). A trial's
``val_top5`` is its best epoch's, as its value and best.pth are (it was the last epoch's).

A SIGTERM (or a local worker's, from its command) in a trial's setup stops it at once where nothing is written (its
trainer's imports, data and model, the look at its first batch: ``datasets.termination.stopping_at_once``), else at the
next safe point, the setup's (its draw and files, the trainer's log and run.json, are never cut short); the trial is
marked FAIL (``interrupted``) as a stop mid-epoch marks it, and its run.json, once written, says it stopped. It waited
for the whole setup (3 s idle, 17 s at a load of 16), then stopped at the first batch.

A pruned trial's ``run.json`` says so (``Trainer.record_pruned``): ``pruned`` holds the epochs and steps it trained
and the reason, the explosion's line or "pruned at step N (epoch E of K) by MedianPruner: val top-1 X%", and its
segment's ``outcome`` is ``pruned``; it said what a run killed without a word says (``finished`` false, ``outcome``
null). A diverged trial's says ``diverged`` (the trainer records it). The study keeps every pruned trial's reason too
(:func:`pruned`: user attributes ``pruned_reason``, ``pruned_epoch``, ``pruned_step``)."""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import optuna

from neurozoo.convrnn.search.export import RUN_KEYS
from neurozoo.convrnn.search.space import SearchSpace
from neurozoo.datasets.cache import worker_name
from neurozoo.datasets.json_files import write_json
from neurozoo.datasets.text_table import counted


@dataclass
class TrialSettings:
    """Training settings shared by every trial (the searched ones come from the space's ``train``)."""
    data: str
    out: str = "runs/search"
    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    optimizer: str = "sgd"
    image_size: int = 224
    width_multiplier: float = 0.25
    n_steps: Optional[int] = None
    image_steps: Optional[int] = None
    max_steps_per_epoch: Optional[int] = None
    workers: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    channels_last: bool = False
    quiet: bool = True
    progress: bool = False  # a line per trial epoch (the trainer itself stays quiet)
    hash_images: bool = False  # run.json's data checksums cover each image's bytes (zoo train --hash-images)
    extra: Dict[str, Any] = field(default_factory=dict)  # other TrainConfig fields


EXPLOSION_BOUND = 10  # x ln(classes): the loss of a uniform guess is ln(C), an untrained model's is near it


def initial_explosion(loss: float, logits, num_classes: int) -> Optional[Dict[str, Any]]:
    """The ``exploded`` record (``loss``, ``growth``, ``error``) of an untrained model whose first loss ``loss`` and
    (T, B, K) ``logits`` rule training out, or None.

    A loss L above the uniform guess's ln(C) needs logit gaps of at least about L - ln(C), so a loss above
    10 ln(C) (69 for 1000 classes, 11 for 3) means logits tens of units apart before any update: the softmax saturates
    and the first gradients are as large as the logits. ``growth``: the ratio of the largest |logit| of the last two
    finite time steps (None with fewer than two)."""
    import torch

    if math.isfinite(loss) and loss <= EXPLOSION_BOUND * math.log(num_classes) and bool(torch.isfinite(logits).all()):
        return None
    peaks = [float(step.abs().max()) for step in logits]  # the largest |logit| of each time step
    finite = [(t, peak) for t, peak in enumerate(peaks) if math.isfinite(peak)]
    error = f"exploded at initialisation: loss {loss:.4g} at step 0"
    if len(finite) < len(peaks):
        error += f", output non-finite from time step {next(t for t, p in enumerate(peaks) if not math.isfinite(p))}"
    growth = finite[-1][1] / finite[-2][1] if len(finite) >= 2 and finite[-2][1] > 0 else None
    if growth is not None:
        error += (f", output grows {growth:.3g}x per time step (largest |logit| {finite[-1][1]:.3g} at time step "
                  f"{finite[-1][0]})")
    return {"loss": loss if math.isfinite(loss) else str(loss), "growth": growth, "error": error}


def trial_folder(out, study_name: str, number: int) -> Path:
    return Path(out) / study_name / f"trial_{number:05d}"


def pruned(trial: optuna.Trial, trainer, reason: str) -> optuna.TrialPruned:
    """The ``TrialPruned`` that ends ``trial`` for ``reason``, recorded first in the study as the user attributes
    ``pruned_reason``, ``pruned_epoch`` and ``pruned_step`` (the epochs and optimizer steps trained, as run.json's
    ``pruned``): optuna keeps no message with a pruned trial, so why it stopped was in run.json and optuna's log only,
    not in ``study.trials_dataframe()`` or a study shared with other machines."""
    trial.set_user_attr("pruned_reason", reason)
    trial.set_user_attr("pruned_epoch", trainer.epoch)
    trial.set_user_attr("pruned_step", trainer.global_step)
    return optuna.TrialPruned(reason)


def carry_best_weights(checkpoint: Path, trainer, folder: Path) -> None:
    """Copy into a resumed trial's ``folder`` the ``best.pth`` beside the ``checkpoint`` it resumed, when that file
    holds the checkpoint's best epoch (its ``best_top1``, written at or before its step). The trainer writes a best.pth
    only for an epoch that beats ``best_top1``, so a trial whose best epoch preceded the resume (one resumed after its
    last epoch, always) had none in its folder: its value was that epoch's, its export named no weights."""
    from neurozoo.datasets.errors import DataError
    from neurozoo.datasets.json_files import written_whole
    from neurozoo.datasets.torch_files import read_torch_file

    source = checkpoint.parent / "best.pth"
    if not source.is_file():
        return
    try:
        state = read_torch_file(source, mmap=True)  # the counters, not the weights
    except DataError:  # a damaged best.pth: the trial's weights stay unrecorded, as before
        return
    if not isinstance(state, dict) or "global_step" not in state:  # not a trainer's checkpoint
        return
    if float(state.get("best_top1", -1.0)) == trainer.best_top1 and int(state["global_step"]) <= trainer.global_step:
        with written_whole(folder / "best.pth") as tmp:
            shutil.copyfile(source, tmp)


def retry_checkpoints(trial: optuna.Trial) -> List[Path]:
    """The checkpoints a trial run again after its worker died may resume from (``study.recover_dead_trial``): the
    ``last.pth`` of each of its earlier runs' folders (user attribute ``resume_from``, newest first) that is on this
    machine; none for any other trial, and where none is here (the dead run's machine kept them: it trains afresh, as a
    new trial of the same parameters). The objective resumes from the first it can (:func:`read_retry_checkpoint`, then
    the trainer's own checks)."""
    checkpoints = [Path(folder) / "last.pth" for folder in trial.user_attrs.get("resume_from") or ()]
    return [checkpoint for checkpoint in checkpoints if checkpoint.is_file()]


def read_retry_checkpoint(checkpoint: Path, train: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """A dead trial's ``checkpoint`` as read (``checkpoint.load_checkpoint``), which the trainer resumes without reading
    it again (``Trainer(resume_state=)``: it was read twice), and why the trial run again with the searched training
    hyperparameters ``train`` cannot resume it (:func:`checkpoint_refusal`), or None. A file that is no trainer's
    checkpoint (cut short, not a zip or pickle, other fields) gives ``(None, load_checkpoint's refusal)``, naming the
    file."""
    from neurozoo.convrnn.training.checkpoint import load_checkpoint
    from neurozoo.datasets.errors import DataError

    try:
        state = load_checkpoint(checkpoint)
    except DataError as error:
        return None, str(error)
    return state, checkpoint_refusal(checkpoint, state, train)


def checkpoint_refusal(checkpoint: Path, state: Dict[str, Any], train: Dict[str, Any]) -> Optional[str]:
    """Why a dead trial's ``checkpoint``, read as ``state`` (:func:`read_retry_checkpoint`), cannot be resumed by the
    trial run again with the searched training hyperparameters ``train`` (its configuration's ``train``), or None: one
    whose recorded training configuration is not the trial's (the file of another configuration in that folder:
    another study's trial of the same number in a relative --out, say). The graph it was trained as, its weights'
    shapes, its optimizer settings and data are checked by the trainer as it resumes (``Trainer.load_state``). Such a
    checkpoint stopped the whole study with its trainer's error, or, differing in train.label_smoothing only (which a
    resume does not compare), was trained on."""
    saved = state.get("config")
    if not isinstance(saved, dict):
        return f"checkpoint {checkpoint} records no training configuration (field 'config'); not written by `zoo train`?"
    other = [key for key, value in train.items() if saved.get(key) != value]
    if other:
        return (f"checkpoint {checkpoint} was trained with {', '.join(f'train.{k} {saved.get(k)!r}' for k in other)}; "
                f"this trial's configuration has {', '.join(f'train.{k} {train[k]!r}' for k in other)}")
    return None


def refused_checkpoints(trial: optuna.Trial, refused: List[Dict[str, str]], resumed: bool) -> None:
    """Record in the trial's user attribute ``resume_refused`` the checkpoints of its earlier runs it did not resume
    from (``[{"checkpoint", "error"}]``, newest first), and warn of each, naming the file and what is wrong with it;
    ``resumed``: whether it resumed from an older one (else it trains afresh from its parameters)."""
    import warnings

    trial.set_user_attr("resume_refused", refused)
    for entry in refused:
        warnings.warn(f"trial {trial.number} (trial {trial.user_attrs.get('retry_of')} run again): not resumed from "
                      f"{entry['checkpoint']}: {entry['error']}; "
                      f"{'resumed from an older run' if resumed else 'trained afresh from its parameters'} "
                      f"(user attribute resume_refused)", stacklevel=3)


class Objective:
    """``study.optimize(Objective(space, settings))``: returns the best validation top-1 (percent)."""

    def __init__(self, space: SearchSpace, settings: TrialSettings):
        self.space = space
        self.settings = settings
        self.interrupted: Optional[int] = None  # the number of the trial a Ctrl-C or SIGTERM stopped

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._run(trial)
        except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM (datasets.termination): optuna marks it FAIL
            trial.set_user_attr("interrupted", str(error) or "KeyboardInterrupt")  # e.g. "signal 15"
            self.interrupted = trial.number  # its unread last.pth is removed once it is FAIL: drop_unread_checkpoint
            raise

    def divergence_advice(self) -> str:
        """What lowers a diverging trial's learning rate: --lr is refused where the space searches train.lr."""
        if "lr" in self.space.train:
            return f"space {self.space.name!r} searches train.lr: narrow its range in a copy of the space (--space)"
        return "lower --lr"

    def _run(self, trial: optuna.Trial) -> float:
        from neurozoo.convrnn.training.engine import TrainConfig, Trainer  # imported with the space (SETTING_BOUNDS)
        from neurozoo.datasets.errors import DataError
        from neurozoo.datasets.termination import raise_if_terminated, stopping_at_once

        s = self.settings
        raise_if_terminated()  # a stop as optuna began the trial: nothing written yet
        # its draw and files (the storage's calls, spec.yaml, config.json): a stop there waits for the next safe point,
        # the trainer's setup's (a fraction of a second)
        config = self.space.sample(trial)
        folder = trial_folder(s.out, trial.study.study_name, trial.number)
        if folder.is_dir() and any(folder.iterdir()):
            from neurozoo.datasets.errors import UserFacingError

            raise UserFacingError(f"{folder} already holds the files of a trial {trial.number} (of a study of the "
                                  f"same name deleted from the storage?); choose another --out or --study")
        folder.mkdir(parents=True, exist_ok=True)
        spec = self.space.spec(config, name=f"{self.space.name}_trial{trial.number}")
        spec_path = folder / "spec.yaml"
        spec.to_yaml(str(spec_path))
        write_json(folder / "config.json", config, indent=2)  # whole or not at all: a kill mid-write tears no file
        trial.set_user_attr("config", config)
        trial.set_user_attr("out", str(folder))
        trial.set_user_attr("worker", worker_name())

        overrides = {"width_multiplier": s.width_multiplier, "n_steps": s.n_steps, "image_steps": s.image_steps}
        fields = dict(
            model=str(spec_path), data=s.data, out=str(folder), epochs=s.epochs, batch_size=s.batch_size,
            lr=s.lr, optimizer=s.optimizer, image_size=s.image_size, workers=s.workers, seed=s.seed,
            device=s.device, amp=s.amp, channels_last=s.channels_last, quiet=s.quiet,
            max_steps_per_epoch=s.max_steps_per_epoch, log_every=0, hash_images=s.hash_images,
            overrides={k: v for k, v in overrides.items() if v is not None},
        )
        if self.space.cell_weight_decay:  # the cells' own L2 scales, as the original trained them
            fields["original_weight_decay"] = True
        fields.update(s.extra)
        fields.update(config["train"])  # searched training hyperparameters win
        # the trainer's setup (torch's backends, its data and model: seconds, 17 s at a load of 16) writes nothing until
        # its log and run.json, a deferred block of its own that ends this stretch: a stop is taken at once until then
        with stopping_at_once():
            trainer, refused = self._resumed_trainer(trial, fields, config["train"]) if "resume" not in s.extra \
                else (None, [])
            if trainer is None:
                trainer = Trainer(TrainConfig(**fields))
        # an interrupted trial is marked FAIL and never resumed (a retry is a new trial): the trainer's own note said it
        # stopped "with a checkpoint of the step reached", as if the checkpoint would be used
        trainer.stopping = (f"stopping trial {trial.number} at the next batch; it is marked FAIL (user attribute "
                            f"'interrupted') and not run again: a rerun continues the study with new trials")
        if refused:  # said once the trainer is built: an error of no checkpoint's stops the study, as it did
            refused_checkpoints(trial, refused, resumed=trainer.config.resume is not None)
        train_config = trainer.config
        best = float("-inf")  # the best epoch's top-1: the trial's value
        try:
            if trainer.val_loader is None:
                raise DataError(f"{s.data}: the search scores trials on val/ and this folder has none")
            trial.set_user_attr("parameters", sum(p.numel() for p in trainer.model.parameters()))
            # what the trained model was built with on top of spec.yaml: an exported spec must carry it too
            trial.set_user_attr("model_overrides", {**train_config.overrides, "num_classes": len(trainer.classes)})
            run_json = folder / "run.json"
            if run_json.is_file():  # the study keeps it too: the file stays on this machine (export.trial_run)
                run = json.loads(run_json.read_text())
                trial.set_user_attr("run", {key: run.get(key) for key in RUN_KEYS})
            try:
                # a stop in the trainer's writes, or since, is taken here; the look writes nothing (the model's buffers
                # and random streams are put back), so one in it is taken at once
                with stopping_at_once():
                    # the look is at untrained weights: a trial resumed from a checkpoint (``extra`` resume) passed it
                    exploded = None if trainer.global_step else initial_explosion(*trainer.first_batch_output(),
                                                                                   len(trainer.classes))
            except KeyboardInterrupt as error:  # run.json says so, as of a stop in the trial's batches
                trainer.record_stopped(error)
                raise
            if exploded:  # before any update: not a learning-rate divergence (see the module docstring)
                trial.set_user_attr("exploded", exploded)
                trainer.record_pruned(exploded["error"])  # run.json: pruned, and why, not a run killed unfinished
                if s.progress:
                    print(f"trial {trial.number}: {exploded['error']}; pruned, not trained", flush=True)
                raise pruned(trial, trainer, exploded["error"])
            resumed_at = trainer.epoch
            if trainer.global_step:  # resumed (not "auto": the folder was empty): its checkpoint's best epoch counts,
                best = trainer.best_top1  # and its weights come along
                carry_best_weights(Path(train_config.resume), trainer, folder)
            for epoch in range(trainer.epoch, s.epochs):  # a resumed trial trains on from its checkpoint's epoch
                try:
                    row = trainer.fit(until_epoch=epoch + 1)
                except DataError as error:  # a corrupt image: every later trial would read it too
                    message = str(error)  # one line, also from a DataLoader worker (Trainer.fit)
                    trial.set_user_attr("data_error", message)
                    raise DataError(f"{message}; the study stops at trial {trial.number} (marked failed): repair "
                                    "or remove the file, then rerun to continue the study") from None
                except FloatingPointError as error:  # the trainer's non-finite loss: see the module docstring
                    error = f"{error}; {self.divergence_advice()}"
                    trial.set_user_attr("diverged", {"epoch": epoch + 1, "error": error})
                    if s.progress:
                        print(f"trial {trial.number} epoch {epoch + 1}/{s.epochs}: diverged ({error}); pruned",
                              flush=True)
                    raise pruned(trial, trainer, f"diverged in epoch {epoch + 1}: {error}") from None
                accuracy = float(row["val_top1"])
                if accuracy > best:  # a new best epoch (the trainer's best.pth; the first of equal ones): its top-5
                    # goes with the value and the exported weights; it was the last epoch's, whatever epoch was best
                    best = accuracy
                    trial.set_user_attr("val_top5", float(row.get("val_top5", float("nan"))))
                trial.report(accuracy, epoch)
                trial.set_user_attr("epochs_done", epoch + 1)
                if s.progress:
                    print(f"trial {trial.number} epoch {epoch + 1}/{s.epochs}: val top-1 {accuracy:.2f}% "
                          f"(train loss {row['loss']:.4g}, {row['seconds']:.0f} s)", flush=True)
                if epoch + 1 < s.epochs and trial.should_prune():  # after the last epoch there is nothing to save
                    reason = (f"pruned at step {trainer.global_step} (epoch {epoch + 1} of {s.epochs}) by "
                              f"{type(trial.study.pruner).__name__}: val top-1 {accuracy:.2f}%")
                    trainer.record_pruned(reason)
                    raise pruned(trial, trainer, reason)
            if resumed_at >= s.epochs:  # resumed from a checkpoint of every epoch: nothing was trained
                best = max(best, self._score_finished(trial, trainer))
        finally:
            trainer.close()
        # the best epoch's top-1, those of a resumed trial's checkpoint included (its ``best_top1``): a trial resumed
        # after a better epoch than any it trained on returned its own epochs' best, not the uninterrupted trial's
        return best

    def _resumed_trainer(self, trial: optuna.Trial, fields: Dict[str, Any], train: Dict[str, Any]):
        """The trainer of a dead trial run again, resumed from the first of its earlier runs' checkpoints it can be
        (:func:`retry_checkpoints`): on from its last saved epoch; None for any other trial, and where each is refused
        (:func:`read_retry_checkpoint`, or the trainer's own refusal as it resumes: another graph, weights of other
        shapes, other optimizer settings or classes): the trial then trains afresh from its parameters. Returns it and
        the refusals (``[{"checkpoint", "error"}]``, :func:`refused_checkpoints`). A damaged checkpoint stopped the
        whole study with the trainer's error (one without an optimizer state, with a KeyError)."""
        from neurozoo.convrnn.training.engine import TrainConfig, Trainer
        from neurozoo.datasets.errors import UserFacingError

        refused = []
        for checkpoint in retry_checkpoints(trial):
            state, error = read_retry_checkpoint(checkpoint, train)
            if error is None:
                try:
                    trainer = Trainer(TrainConfig(**fields, resume=str(checkpoint)), resume_state=state)
                except UserFacingError as refusal:  # an error of no checkpoint's: training afresh meets it again
                    # the trainer's reason without zoo train's advice (resume_checks.resume_refusal: resume with the
                    # checkpoint's setting, or train afresh into another --out): the trial trains afresh itself
                    error = getattr(refusal, "reason", str(refusal))
                else:
                    trial.set_user_attr("resumed_from", str(checkpoint))
                    if self.settings.progress:
                        print(f"trial {trial.number}: trial {trial.user_attrs['retry_of']} run again, from "
                              f"{checkpoint}", flush=True)
                    return trainer, refused
            refused.append({"checkpoint": str(checkpoint), "error": error})
        return None, refused

    def _score_finished(self, trial: optuna.Trial, trainer) -> float:
        """The value of a trial resumed from a checkpoint that holds all its epochs: the loop trained nothing and it
        returned -inf (or, under ``study.optimize``, a trial COMPLETE at -inf, ranked below every pruned one). Its
        final weights are scored on val/ (its last epoch's top-1, reported as a trained trial's is) and run.json
        records it finished (``Trainer.fit`` with no epoch left to train); returns that top-1. The trial's value is the
        checkpoint's best epoch's top-1 (``best_top1``), as the uninterrupted trial returned, or this top-1 for a
        checkpoint that recorded none."""
        trainer.fit()  # nothing to train: records the run finished
        accuracy = float(trainer.evaluate()["val_top1"])
        trial.report(accuracy, trainer.epoch - 1)
        trial.set_user_attr("epochs_done", trainer.epoch)
        if self.settings.progress:
            print(f"trial {trial.number}: resumed from a checkpoint of {'its' if trainer.epoch == 1 else 'all'} "
                  f"{counted(trainer.epoch, 'epoch')}, nothing to "
                  f"train: val top-1 {accuracy:.2f}%", flush=True)
        return accuracy
