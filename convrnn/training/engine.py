"""Supervised ImageNet training of an unrolled ConvRNN: one ``Trainer`` per process.

Reproducibility: the model is initialised from ``seed`` on every rank; shuffling comes from a
``DistributedSampler`` (a pure function of seed and epoch, also for one process); each image's augmentation is
seeded from (seed, epoch, image index) (``sampling.SeededSamples``), whatever the loading worker, the number of
workers or of processes. A checkpoint is written at epoch ends, every ``checkpoint_every`` steps, and when a stop
is requested (SIGTERM, a first Ctrl-C, an image found unreadable or holding NaN/inf pixels, or a loading worker's
death: every rank stops at the same step, see ``Trainer._stop_point``), never of weights that diverged
(``Diverged``); it holds the number of batches trained in the current epoch, so a resumed run skips those images
without loading them, and the global random states of every rank (for models that draw random numbers themselves),
so that resuming from it gives the weights an uninterrupted run would have.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import os
import random
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, default_collate

from neurozoo.convrnn.network import non_finite_images
from neurozoo.convrnn.spec import check_image_size
from neurozoo.convrnn.training.cpus import cpu_path_problems, default_workers
from neurozoo.convrnn.training.checkpoint import capture_rng_state, checkpoint_position, load_checkpoint, restore_rng_state, save_checkpoint
from neurozoo.convrnn.training.evaluation import evaluation_sums, topk_correct
from neurozoo.convrnn.training.distributed import (DistInfo, all_gather_objects, all_reduce_sum, auto_device, barrier,
                                                   init_distributed, max_over_ranks, shutdown)
from neurozoo.convrnn.training import file_checksums  # its CONTENTS_CHECKSUMS as the module holds it now (tests replace it)
from neurozoo.convrnn.training.file_checksums import (FILES_CHECKSUM_WORDS, FILES_CHECKSUMS, file_list_sha256,
                                                      files_checksum, files_state_sha256, hashed_files_checksum)
from neurozoo.convrnn.training.imagefolder import class_difference, open_imagenet, raised_in_worker
from neurozoo.convrnn.training.loss import model_answer, step_logits, unrolled_loss
from neurozoo.convrnn.training.metrics_log import MetricsLog
from neurozoo.convrnn.training.optim import build_optimizer, build_scheduler, schedule_changes
from neurozoo.convrnn.training.rank_agreement import (RanksDisagree, check_ranks_agree, data_difference, data_view,
                                                      resume_difference)
from neurozoo.convrnn.training.resume_checks import (RESUMED_STATE, autocast_name, check_epochs, check_optimizer_settings,
                                                     check_spec, check_steps_per_epoch, resume_refusal)
from neurozoo.convrnn.training.run_record import earlier_segments, utc_time
from neurozoo.convrnn.training.sampling import EpochOrder, SeededSamples
from neurozoo.datasets.termination import sigterm_deferred, sigterm_from, termination_requested
from neurozoo.convrnn.training.stops import (STOPPED_AT_ONCE, STOPPING, UNREADABLE_DATA, WORKER_DIED, DataErrorMidRun,
                                             error_line, image_name, non_finite_flag, ranks_lines)
from neurozoo.convrnn.training.transforms import build_transform
from neurozoo.convrnn.training.worker_deaths import KILLED_WORKER, WorkerDeaths, WorkerDied
from neurozoo.datasets.cache import remove_dead_temporaries
from neurozoo.datasets.errors import DataError, UserFacingError
from neurozoo.datasets.json_files import write_json
from neurozoo.datasets.model_modes import eval_mode
from neurozoo.datasets.provenance import code_version, environment, git_commit, module_sha256
from neurozoo.datasets.torch_files import UnreadableTorchFile, state_mismatch
from neurozoo.datasets.text_table import counted, plural

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")
LOSS_STEPS = ("final", "all")
AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


#: the numeric settings' bounds, (test of a value, what it must be), checked in this order by
#: :meth:`TrainConfig.validate` and, for the hyperparameters a search draws, by its space (search/space.py)
SETTING_BOUNDS = {"lr": (lambda v: v > 0, "> 0"), "workers": (lambda v: v >= 0, ">= 0"),
                  "warmup_epochs": (lambda v: v >= 0, ">= 0"), "momentum": (lambda v: v >= 0, ">= 0"),
                  "weight_decay": (lambda v: v >= 0, ">= 0"), "step_epochs": (lambda v: v >= 1, ">= 1"),
                  "gamma": (lambda v: v > 0, "> 0"), "min_lr": (lambda v: v >= 0, ">= 0"),
                  "label_smoothing": (lambda v: 0 <= v <= 1, "in [0, 1]"),
                  "grad_clip": (lambda v: v is None or v > 0, "> 0"),
                  "max_steps_per_epoch": (lambda v: (v or 0) >= 0, ">= 0 (0: whole epochs)"),
                  "checkpoint_every": (lambda v: v >= 0, ">= 0 (0: at epoch ends only)"),
                  "log_every": (lambda v: v >= 0, ">= 0 (0: no step logs)")}


@dataclass
class TrainConfig:
    model: str
    data: str
    out: str = "runs/train"
    epochs: int = 90
    batch_size: int = 256  # per process
    lr: float = 0.01  # 0.1 diverged within 4 steps for rgc_intermediate (no normalisation): docs/convrnn.md
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4  # not applied to biases and normalisation parameters
    original_weight_decay: bool = False  # the original's L2 scales per part (model.weight_decay_groups()) instead
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    step_epochs: int = 30  # step schedule: multiply by gamma every step_epochs epochs
    gamma: float = 0.1
    min_lr: float = 0.0
    loss_steps: str = "final"
    label_smoothing: float = 0.0
    grad_clip: Optional[float] = None
    image_size: int = 224
    augment: bool = True
    workers: int = field(default_factory=default_workers)  # min(4, available CPUs - 1)
    hash_images: bool = False  # run.json's data checksums cover each image's bytes, not only its size (FILES_CHECKSUMS)
    seed: int = 0
    resume: Optional[str] = None  # a checkpoint path, or "auto": OUT/last.pth when it exists
    device: str = "auto"
    amp: bool = False
    amp_dtype: str = "bfloat16"
    channels_last: bool = False
    fast: bool = False  # the ConvRNN fast path (convrnn.fast; eager): fused input convolutions, channels-last implied
    compile: bool = False
    compile_backend: str = "inductor"
    deterministic: bool = True
    max_steps_per_epoch: Optional[int] = None
    checkpoint_every: int = 0  # steps; 0: checkpoints at epoch ends (and on SIGTERM) only
    log_every: int = 50
    quiet: bool = False
    overrides: Dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        for name, value, allowed in (("optimizer", self.optimizer, OPTIMIZERS), ("schedule", self.schedule, SCHEDULES),
                                     ("loss_steps", self.loss_steps, LOSS_STEPS), ("amp_dtype", self.amp_dtype, AMP_DTYPES)):
            if value not in allowed:
                raise UserFacingError(f"--{name.replace('_', '-')} {value!r}: expected one of {', '.join(allowed)}")
        for name in ("epochs", "batch_size", "image_size"):
            if getattr(self, name) < 1:
                raise UserFacingError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name, (ok, expected) in SETTING_BOUNDS.items():
            if not ok(getattr(self, name)):
                raise UserFacingError(f"--{name.replace('_', '-')} must be {expected}, got {getattr(self, name)}")
        # a setting of an option that is off did nothing, and run.json recorded it as if it had (amp_dtype float16)
        for name, value, default, switch, on in (("amp_dtype", self.amp_dtype, "bfloat16", "amp", self.amp),
                                                 ("compile_backend", self.compile_backend, "inductor", "compile",
                                                  self.compile)):
            if value != default and not on:
                raise UserFacingError(f"--{name.replace('_', '-')} {value} takes effect with --{switch} only, which "
                                      f"is off: add --{switch}, or drop --{name.replace('_', '-')}")
        if self.original_weight_decay and self.optimizer != "sgd":
            raise UserFacingError(f"--original-weight-decay is the original's L2 term in the loss (tf l2_regularizer), "
                                  f"which SGD's weight decay equals; --optimizer {self.optimizer} decouples the decay from "
                                  f"the gradient, another regulariser: use --optimizer sgd, or --weight-decay")


class Diverged(FloatingPointError):
    """A non-finite training or validation loss, or weights: raised on every rank at the same point, before anything
    of it is checkpointed (``last.pth`` and ``best.pth`` keep the last finite weights); ``run.json`` records it
    (``diverged``: epoch, step, error)."""

    def __init__(self, message: str, epoch: int, step: int):
        super().__init__(message)
        self.epoch, self.step = epoch, step


# ---------------------------------------------------------------------------- pieces
def to_channels_last(model: nn.Module) -> nn.Module:
    """``model.to(memory_format=torch.channels_last)``, but buffers of 1 x 1 pixels keep contiguous strides (the same
    memory either way): DDP's buffer synchronisation before every forward fails on a channels-last (N, C, 1, 1)
    buffer (torch 2.x: 'some elements of the input tensor and the written-to tensor refer to a single memory
    location'), which a ConvRNN has (its mean-gray blank image)."""
    model.to(memory_format=torch.channels_last)
    for module in model.modules():
        for name, buffer in module._buffers.items():
            if buffer is not None and buffer.dim() == 4 and buffer.shape[-2:] == (1, 1):
                module._buffers[name] = buffer.clone(memory_format=torch.contiguous_format)
    return model


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------- trainer
class Trainer:
    """Builds data, model, optimizer and schedule for one process; ``fit()`` trains.

    ``model`` (optional) replaces ``convrnn.create_model(config.model, ...)``; it must return an
    object with ``.logits`` (T, B, K), may give its answer as ``.final_logits`` (B, K) (else the last step is
    its answer) and may define ``first_readout_step``. ``resume_state``: the checkpoint ``config.resume`` names, read
    already (``checkpoint.load_checkpoint``; a search reads a dead trial's to check it first), not read again."""

    #: what a first Ctrl-C during ``fit`` says: a search trial says its own (it is never resumed: objective.py)
    stopping = STOPPING

    def __init__(self, config: TrainConfig, model: Optional[nn.Module] = None,
                 resume_state: Optional[Dict[str, Any]] = None):
        config.validate()
        # the device ``auto`` gives (``auto_device``, zoo train's rule), which run.json and the checkpoints record: a
        # Python caller's ``device="auto"`` (TrainConfig's default, a search's trials) had been recorded as ``auto``.
        # A copy: the caller's config is left as given
        self.config = config = replace(config, device=auto_device(config.device))
        self._determinism = (torch.are_deterministic_algorithms_enabled(),
                             torch.is_deterministic_algorithms_warn_only_enabled())
        self.dist: DistInfo = init_distributed(config.device)
        try:
            self._setup(model, resume_state)
        except RanksDisagree:
            # raised on every rank at the same point: they leave the group together (shutdown: a barrier, then
            # destroy). Left to the process's exit, the gloo group aborted a rank now and then at exit ("terminate
            # called without an active exception", SIGABRT: 4 of 70 two-rank refusals on 2 busy cores; CI 2026-12-04)
            self._release()
            raise
        except BaseException:
            # a refusal (--out holds a run, ranks that disagree, a bad checkpoint) had left deterministic algorithms
            # turned on in the caller's process. The process group is left to the process's exit: destroying a gloo
            # group while the other ranks, refused too, exit aborted a rank ("terminate called without an active
            # exception", SIGABRT; CI 2026-12-04 07:05)
            self._release(destroy_group=False)
            raise

    def _setup(self, model: Optional[nn.Module], resume_state: Optional[Dict[str, Any]] = None) -> None:
        config = self.config
        self.device = self.dist.device
        self.channels_last = config.channels_last or config.fast
        if self.dist.is_main:
            for problem in cpu_path_problems(self.device, amp=config.amp, amp_dtype=config.amp_dtype,
                                             compile=config.compile, compile_backend=config.compile_backend,
                                             workers=config.workers):
                warnings.warn(problem)
        self._configure_backends()
        self.out = Path(config.out)
        self.history: List[Dict[str, Any]] = []
        self.epoch = 0  # completed epochs
        self.global_step = 0
        self.best_top1 = -1.0
        self.epoch_steps = 0  # batches of epoch ``self.epoch`` trained (== steps_per_epoch: stopped in its validation)
        # this rank's sums (loss * n, top-1, top-5 hits, n) of the epoch so far: logged steps, then the unlogged window
        self.epoch_sums = torch.zeros(2, 4, dtype=torch.float64, device=self.device)
        self.epoch_lr = config.lr  # the learning rate of the epoch's last step so far
        self._stop_flag = torch.zeros(1, dtype=torch.int64, device=self.device)
        self.worker_deaths = WorkerDeaths()

        if config.fast and model is None:
            self._check_fast_path()  # before the data are listed and hashed (minutes on ImageNet)
        self._build_data()
        self.data_views = self._data_view()
        check_ranks_agree(self.dist, self.data_views, data_difference, f"--data {config.data}", "sees other data",
                          "a shared file system or identical copies")
        self.data_checksums = self._data_checksums()
        seed_all(config.seed)  # the same initial weights on every rank
        self.model = model if model is not None else self._create_model()
        check_image_size(self.model, config.image_size)
        self.model.to(self.device)
        if config.fast:
            self._refuse_without_fast_path(self.model)
            # the fast path's autocast is --amp's (none without it); the layout is set below, where 1 x 1 buffers
            # keep their strides for DDP; compiling is --compile's (the whole model)
            self.model.to_fast(dtype=AMP_DTYPES[config.amp_dtype] if config.amp else None, channels_last=False,
                               compile="none")
        if self.channels_last:
            to_channels_last(self.model)
        self.first_readout_step = int(getattr(self.model, "first_readout_step", 0))
        n_steps = getattr(self.model, "n_steps", None)
        if n_steps is not None and n_steps <= self.first_readout_step:
            raise UserFacingError(f"{config.model} with n_steps={n_steps}: the image first reaches the logits at step "
                                  f"{self.first_readout_step}, so no trained output would depend on it; "
                                  f"set n_steps > {self.first_readout_step}")
        self.train_model = self.model
        if self.dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=self._has_unused_parameters())
        self.eval_model = self.model
        if config.compile:
            self.train_model = torch.compile(self.train_model, backend=config.compile_backend)
            self.eval_model = torch.compile(self.model, backend=config.compile_backend)
        self.optimizer = build_optimizer(self.model, config)
        self.scheduler = build_scheduler(self.optimizer, config, self.steps_per_epoch)
        self.amp_dtype = AMP_DTYPES[config.amp_dtype]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp and self.amp_dtype == torch.float16)
        seed_all(config.seed + self.dist.rank)  # random streams of the model (augmentation: sampling.SeededSamples)

        if self.dist.is_main and self.out.is_dir():
            # left by a kill while writing a checkpoint or run.json (a live writer's are its own: another run may
            # still be writing here, and this one may be about to refuse the folder)
            remove_dead_temporaries(self.out, "*.pth.tmp*")
            remove_dead_temporaries(self.out, ".*.pth.*.tmp*")  # the checkpoints' temporaries of before
            remove_dead_temporaries(self.out, "run.json.tmp*")
        resume = self._resume_path()
        if not config.resume and (self.out / "last.pth").is_file():
            raise UserFacingError(f"--out {self.out} already holds a run (last.pth): pass --resume to continue it, "
                                  f"or choose another --out (starting afresh would overwrite its checkpoints)")
        if resume is not None:  # refused before the log is opened: a bad checkpoint leaves no empty metrics.jsonl
            try:
                saved = resume_state if resume_state is not None else load_checkpoint(resume, map_location="cpu")
            except UnreadableTorchFile as error:
                raise resume_refusal(f"{error}", "a damaged checkpoint cannot be resumed: --resume PATH resumes "
                                     "another one (best.pth: the best epoch's), or start afresh with another --out",
                                     DataError) from None
            self.load_state(saved, resume)
            if self.dist.is_main:
                done = int(saved["epoch"]) >= config.epochs and not int(saved.get("epoch_steps", 0))
                # a finished run resumed as it was: nothing is trained, which it did not say
                left = f"; nothing left to train at --epochs {config.epochs}: a higher --epochs trains on" if done else ""
                print(f"resuming {resume}: {checkpoint_position(saved)}{left}", file=sys.stderr, flush=True)
        check_ranks_agree(self.dist, self._resume_view(resume), resume_difference, f"--out {self.out}",
                          "starts at another point", "a shared file system: rank 0 alone writes the checkpoints")
        # the setup's first writes: a block of their own, which ends zoo train's stretch where a stop is taken at once
        # (stopping_at_once: the data listed and hashed, the model built, all writing nothing), so that a SIGTERM
        # from here on waits for the first safe point; a stop inside it is taken as the block ends
        with sigterm_deferred():
            self.log = MetricsLog(self.out / "metrics.jsonl", enabled=self.dist.is_main)
            if resume is not None:
                self.log.truncate_after(self.global_step, self.epoch)
            elif self.dist.is_main:
                self.log.truncate_after(0)  # a fresh run in a used folder starts a fresh log
            if self.dist.is_main:
                self._write_run_info(resume)
                if self.epoch < config.epochs:  # zoo train's curve of a finished part, which said "finished" beside a
                    # run resumed for more epochs and then stopped or diverged; drawn again when the run is done
                    (self.out / "training_curve.png").unlink(missing_ok=True)

    # ------------------------------------------------------------------ setup
    def _configure_backends(self) -> None:
        if self.config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    def _build_data(self) -> None:
        c, d = self.config, self.dist
        splits = open_imagenet(c.data, build_transform(c.image_size, train=True, augment=c.augment),
                               build_transform(c.image_size, train=False))
        self.train_set = splits["train"]
        self.val_set = splits.get("val")
        if self.val_set is None and d.is_main:  # a split named otherwise (validation/, valid/) trained unvalidated
            others = sorted(p.name for p in Path(c.data).iterdir() if p.is_dir() and p.name != "train")
            warnings.warn(f"{c.data} has no val/ folder: no validation, so no val_top1 and no best.pth (last.pth "
                          f"only)" + (f"; its other folders: {', '.join(others)}" if others else ""))
        self.classes = list(self.train_set.classes)
        self.generator = torch.Generator()
        self.generator.manual_seed(c.seed + d.rank)
        # drop_last: the tail of the shuffled order that does not divide among the ranks is left out, not padded
        # with copies of the first images, so an epoch has N // (W * B) steps of distinct images, as one process
        # with the global batch W * B (the loader drops the incomplete batch either way)
        self.train_sampler = EpochOrder(self.train_set, num_replicas=d.world_size, rank=d.rank,
                                        shuffle=True, seed=c.seed, drop_last=True)
        pin = self.device.type == "cuda"
        self.train_loader = DataLoader(SeededSamples(self.train_set, c.seed), batch_size=c.batch_size,
                                       sampler=self.train_sampler,
                                       num_workers=c.workers, pin_memory=pin, drop_last=True, generator=self.generator,
                                       worker_init_fn=functools.partial(sigterm_from, os.getpid()))
        if len(self.train_loader) == 0:
            raise DataError(f"{self.train_set.root}: {len(self.train_set)} training images give no full batch of "
                            f"{c.batch_size} per process on "
                            f"{counted(d.world_size, 'process', 'processes')}; lower --batch-size")
        self.steps_per_epoch = len(self.train_loader)
        if c.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, c.max_steps_per_epoch)
        self.val_loader = None
        if self.val_set is not None:
            shard = list(range(d.rank, len(self.val_set), d.world_size))  # every image exactly once over ranks
            self.val_loader = DataLoader(self.val_set, batch_size=c.batch_size, sampler=shard, num_workers=c.workers,
                                         pin_memory=pin, generator=torch.Generator().manual_seed(c.seed),
                                         worker_init_fn=functools.partial(sigterm_from, os.getpid()))

    def _data_view(self) -> Dict[str, Any]:
        return {"classes": self.classes, "train": data_view(self.train_set), "val": data_view(self.val_set)}

    def _data_checksums(self) -> Dict[str, Any]:
        """run.json's checksums of the splits' files and their kind (``files_checksum``, :data:`FILES_CHECKSUMS`):
        the names, labels and sizes every rank compared (``data_views``), or with ``--hash-images`` each image's
        sha256 instead of its size, the files read by the ranks in turn (each every world_size-th) and joined; in one
        process, not read again where this process knows the checksum of the files as they are
        (:data:`CONTENTS_CHECKSUMS`: a search's later trials)."""
        kind = hashed_files_checksum(self.config.hash_images)
        checksums: Dict[str, Any] = {"files_checksum": kind}
        for name, split in (("train", self.train_set), ("val", self.val_set)):
            if split is None or kind == "sizes":
                checksums[f"{name}_files_sha256"] = (self.data_views[name] or {}).get("files_sha256")
                continue
            # one process: the checksum of the same unchanged files computed before (a search's earlier trial, its
            # command's data check), not every image read again; ranks would each need to agree on whether they knew it
            state = None if self.dist.distributed else files_state_sha256(split)
            if state in file_checksums.CONTENTS_CHECKSUMS:
                checksums[f"{name}_files_sha256"] = file_checksums.CONTENTS_CHECKSUMS[state]
                continue
            from neurozoo.datasets.provenance import sha256_file

            rank, world_size = self.dist.rank, self.dist.world_size
            if self.dist.is_main and not self.config.quiet:
                print(f"--hash-images: reading the {len(split)} images of {split.root}", file=sys.stderr, flush=True)
            mine = split.samples[rank::world_size]
            with self._progress(len(mine), f"hashing {name}") as bar:  # minutes on ImageNet: rank 0's share shown
                share = []
                for path, _ in mine:
                    share.append(sha256_file(path))
                    bar.update()
            shares = all_gather_objects(share)
            digests: List[str] = [""] * len(split)
            for share_rank, share in enumerate(shares):
                digests[share_rank::world_size] = share
            checksums[f"{name}_files_sha256"] = file_list_sha256(split, contents=True, file_sha256=digests)
            if state is not None:
                file_checksums.CONTENTS_CHECKSUMS[state] = checksums[f"{name}_files_sha256"]
        return checksums

    def _resume_view(self, resume: Optional[Path]) -> Dict[str, Any]:
        position = {"epoch": self.epoch, "epoch_steps": self.epoch_steps, "global_step": self.global_step,
                    "steps_per_epoch": self.steps_per_epoch}
        return {"checkpoint": str(resume) if resume is not None else None,
                "position": checkpoint_position(position) if resume is not None else None}

    def _check_fast_path(self) -> None:
        """``--fast`` on a model without a fast path, refused from its class (built on the meta device)."""
        from neurozoo import convrnn

        try:
            with torch.device("meta"):
                model = convrnn.create_model(self.config.model, **self.config.overrides)
        except Exception:  # noqa: BLE001 -- not buildable without its data (or not at all): refused where it is built
            return
        self._refuse_without_fast_path(model)

    def _refuse_without_fast_path(self, model: nn.Module) -> None:
        if not hasattr(model, "to_fast"):
            raise UserFacingError(f"--fast: {self.config.model} has no fast path (ConvRNNs have one)")

    def _create_model(self) -> nn.Module:
        from neurozoo import convrnn

        overrides = dict(self.config.overrides)
        overrides.setdefault("num_classes", len(self.classes))
        return convrnn.create_model(self.config.model, **overrides)

    def _has_unused_parameters(self) -> bool:
        """Whether the loss leaves some parameters without gradient (a short unroll read at its final step
        never reaches some recurrent weights; the max-confidence decoder's softmax_beta only picks the step);
        DDP must then search for them every step."""
        channels = getattr(getattr(self.model, "spec", None), "input_channels", 3)
        probe = torch.zeros(2, channels, self.config.image_size, self.config.image_size, device=self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        with eval_mode(self.model):  # no batch-norm statistics from the probe
            loss = unrolled_loss(self.model(probe), torch.zeros(2, dtype=torch.long, device=self.device), self.config.loss_steps,
                                 self.first_readout_step)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        return any(g is None for g in grads)

    def _resume_path(self) -> Optional[Path]:
        resume = self.config.resume
        if not resume:
            return None
        if resume == "auto":
            path = self.out / "last.pth"
            return path if path.is_file() else None
        return Path(resume)

    def _write_run_info(self, resume) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        earlier = earlier_segments(resume, self.out)
        self._warn_of_other_data(earlier[-1] if earlier else None, resume)
        segment = {
            "config": asdict(self.config),
            "code_version": code_version(),
            "git_commit": git_commit(),
            "environment": environment(),
            "device": str(self.device) + (f" ({torch.cuda.get_device_name(self.device)})" if self.device.type == "cuda" else ""),
            "world_size": self.dist.world_size,
            # the folder the part ran in, from which its config's relative paths (--data, --out, --resume, a spec
            # file) are read: a run resumed from another folder recorded each part's --data as typed there
            "working_directory": os.getcwd(),
            # config.data as given, resolved: a relative --data said where the images were only from the folder the
            # run was started in (zoo fit's summary.json keeps data_absolute too)
            "data_absolute": str(Path(self.config.data).resolve()),
            # the files each part trained on (a resume rewrote the top level's with its own): files_checksum says
            # what train_files_sha256 and val_files_sha256 cover (FILES_CHECKSUMS)
            **self.data_checksums,
        }
        info = {
            **segment,
            "num_classes": len(self.classes),
            "train_images": len(self.train_set),
            "val_images": len(self.val_set) if self.val_set is not None else 0,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            # the graph trained, overrides applied: a spec file's path alone (config.model) left the architecture
            # unrecorded once the file was edited or moved
            "spec": self._spec(),
            "resumed_from": str(resume) if resume else None,  # the latest part's; every part's: segments
            "finished": False,  # until fit() has completed every epoch: a killed run never looks finished
            "final_epoch": None,
            "diverged": None,  # {"epoch", "step", "error"} once this part stopped on a non-finite loss or weights
            "pruned": None,  # {"epoch", "step", "reason"} once the caller ended this part early (record_pruned)
            # every start and resume with its settings and code from the step it started at: a resume rewrote the
            # run's record with its own, so steps trained before it under --amp, --fast or other code left no trace.
            # outcome: how the part ended (_record_run), null while it trains or when it was killed without a word;
            # resumed_from: the checkpoint it started from (the top level kept the latest resume's only)
            "segments": earlier + [{"start_step": self.global_step, "started_at": utc_time(time.time()),
                                    "resumed_from": self._resume_source(resume), **segment, "outcome": None}],
        }
        write_json(self.out / "run.json", info, indent=2)  # whole or not at all: the search's export reads it

    def _warn_of_other_data(self, before: Optional[Dict[str, Any]], resume) -> None:
        """Say so when a resume trains on other files than the part of the run before (``before``, its segment, by
        the checksums it recorded, compared by their kind): a corrupt image replaced by a readable one, as zoo train
        advises, or another copy of --data, images added or removed. Not refused (the replaced image is the remedy);
        each segment of run.json keeps its own data checksums. A part checksummed by contents (--hash-images) is
        compared only by a resume that reads them too."""
        kind = before.get("files_checksum") if isinstance(before, dict) else None
        mine = self.data_checksums["files_checksum"]
        if kind not in FILES_CHECKSUMS or (kind == "contents" and mine != "contents"):
            return
        differing = []
        for name, split in (("train", self.train_set), ("val", self.val_set)):
            key = f"{name}_files_sha256"
            if kind == mine or split is None:
                now = self.data_checksums[key]
            else:
                now = files_checksum(split, kind)
            if before.get(key) != now:
                differing.append(f"{name}/")
        if differing:
            warnings.warn(f"--resume {resume}: --data {self.config.data} has other files in {' and '.join(differing)} "
                          f"than the part of the run before this one had (sha256 of their {FILES_CHECKSUM_WORDS[kind]}: "
                          f"an image replaced, edited, added or removed); run.json's segments record each part's")

    def _resume_source(self, resume) -> Optional[Dict[str, Any]]:
        """What a segment records of the checkpoint it resumed (None: a fresh start): its path, position and the
        time it was written."""
        if resume is None:
            return None
        return {"checkpoint": str(resume), "epoch": self.epoch, "epoch_steps": self.epoch_steps,
                "step": self.global_step, "written_at": utc_time(Path(resume).stat().st_mtime)}

    def _record_run(self, outcome: str, error: Optional[str] = None, reason: Optional[str] = None, **fields) -> None:
        """Record how this part ended in its segment (``outcome`` finished, stopped, diverged or pruned; the step
        reached; ``error``, or a pruning's ``reason``) and set ``fields`` at run.json's top level (rank 0)."""
        path = self.out / "run.json"
        run = {**json.loads(path.read_text()), **fields}
        said = {key: value for key, value in (("error", error), ("reason", reason)) if value}
        run["segments"][-1].update(outcome=outcome, end_step=self.global_step, **said)
        write_json(path, run, indent=2)  # whole or not at all

    def record_pruned(self, reason: str) -> None:
        """Record in run.json that the caller ends the run here, between ``fit`` calls, for ``reason``: a search trial
        pruned before training (a draw that explodes at initialisation) or by the study's pruner after an epoch. Its
        run.json said what a run killed without a word says (``finished`` false, the segment's ``outcome`` null); now
        ``pruned`` holds ``{"epoch", "step", "reason"}`` (the epochs and steps trained) and the segment's ``outcome``
        is ``pruned``. ``finished`` stays false."""
        if self.dist.is_main:
            self._record_run("pruned", reason=reason,
                             pruned={"epoch": self.epoch, "step": self.global_step, "reason": reason})

    def record_stopped(self, error: BaseException) -> None:
        """Record in run.json that the run stopped on ``error`` (the segment's ``outcome`` ``stopped``, its ``error``
        the exception's type and message; rank 0): a stop or a failure in ``fit``, or a search trial's stop between its
        trainer's setup and ``fit`` (convrnn.search.objective)."""
        if self.dist.is_main:
            self._record_run("stopped", f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> Dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "sampler_epoch": self.epoch,  # the next set_epoch value
            "epoch_steps": self.epoch_steps,  # batches of that epoch already trained: a resumed run skips them
            "epoch_lr": self.epoch_lr,
            "steps_per_epoch": self.steps_per_epoch,
            "sample_seeds": True,  # augmentation seeded per image (sampling.SeededSamples); absent in older checkpoints
            "global_step": self.global_step,
            "best_top1": self.best_top1,
            "config": asdict(self.config),
            "classes": self.classes,
            "world_size": self.dist.world_size,
            "spec": self._spec(),  # the graph trained: a resume that builds another is refused (load_state)
        }

    def load_state(self, state: Dict[str, Any], path=None) -> None:
        """Continue from ``state`` (a checkpoint read from ``path``, which every refusal names)."""
        where = f"--resume {path}" if path is not None else "--resume"
        missing = [key for key in RESUMED_STATE if key not in state]
        if missing:  # a KeyError once the weights were loaded
            raise DataError(f"{where}: the checkpoint lacks {plural(len(missing), 'field')} {missing}, "
                            "which a resume reads; not written by "
                            f"`zoo train`?")
        saved = state.get("config") or {}
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError:
            raise UserFacingError(
                f"{where}: the checkpoint's weights do not fit this model (checkpoint: model {saved.get('model')!r}, "
                f"overrides {saved.get('overrides')}; this run: model {self.config.model!r}, overrides "
                f"{self.config.overrides}); {state_mismatch(self.model, state['model'])}") from None
        check_spec(state.get("spec"), self._spec(), self.config, where)
        check_steps_per_epoch(state, self.config, self.dist.world_size, self.steps_per_epoch, where)
        check_optimizer_settings(saved, self.config, where)
        check_epochs(state, self.config, where)
        if "amp" in saved and autocast_name(saved) != autocast_name(asdict(self.config)):
            warnings.warn(f"{where}: the checkpoint's steps were trained in {autocast_name(saved)}, this run trains on "
                          f"in {autocast_name(asdict(self.config))}; run.json's segments record each part's settings")
        self.optimizer.load_state_dict(state["optimizer"])
        schedule = dict(vars(self.scheduler.lr_lambdas[0]))
        self.scheduler.load_state_dict(state["scheduler"])  # restores the checkpoint's LRFactor fields too...
        if vars(self.scheduler.lr_lambdas[0]) != schedule:  # ...but this run's settings (e.g. more epochs) win
            warnings.warn("learning-rate schedule changed on resume: "
                          f"{schedule_changes(vars(self.scheduler.lr_lambdas[0]), schedule, self.steps_per_epoch)}; "
                          f"this run's schedule goes on from optimizer step {self.scheduler.last_epoch}")
            vars(self.scheduler.lr_lambdas[0]).update(schedule)
            factor = self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
            for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
                group["lr"] = base * factor
            self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        if self.scaler.is_enabled() and not state.get("scaler"):  # trained without float16 autocast
            warnings.warn(f"{where}: the checkpoint was trained without --amp-dtype float16, so it has no gradient "
                          f"scale: the scaler starts afresh")
        else:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.best_top1 = float(state.get("best_top1", -1.0))
        self.epoch_steps = int(state.get("epoch_steps", 0))
        self.epoch_lr = float(state.get("epoch_lr", self.config.lr))
        self.epoch_sums.zero_()
        if self.dist.is_main and state.get("epoch_sums") is not None:  # summed over the ranks that saved them
            self.epoch_sums.copy_(state["epoch_sums"])
        if state.get("classes") is not None and list(state["classes"]) != self.classes:
            raise resume_refusal(f"{where}: {self.config.data}: "
                                 f"{class_difference(list(state['classes']), self.classes)}",
                                 "resume with the data the checkpoint was trained on", DataError)
        if not state.get("sample_seeds") and self.config.augment:
            warnings.warn("--resume: the checkpoint was written by a version whose augmentation drew from each loading "
                          "worker's random stream; this version seeds each image's augmentation from (seed, epoch, "
                          "image), so the run continues from the checkpoint's weights exactly but its later crops and "
                          "flips differ from those that version would have drawn")
        rng = state.get("rng") or []
        if len(rng) == self.dist.world_size:
            restore_rng_state(rng[self.dist.rank], self.generator)
        else:
            warnings.warn(f"checkpoint holds RNG states of {counted(len(rng), 'process', 'processes')}, this run has "
                          f"{self.dist.world_size}: the global random streams (of a model that draws random numbers "
                          "itself; not augmentation, which is seeded per image) restart from the seed")
            seed_all(self.config.seed + 1000 * self.epoch + self.dist.rank)
            self.generator.manual_seed(self.config.seed + 1000 * self.epoch + self.dist.rank)

    def _spec(self) -> Optional[Dict[str, Any]]:
        """The model's graph spec as data (overrides and classes applied), None for a model without one."""
        spec = getattr(self.model, "spec", None)
        return spec.to_dict() if hasattr(spec, "to_dict") else None

    def save(self, is_best: bool) -> None:
        """Checkpoint (rank 0) with every rank's RNG state and, inside an epoch, the epoch's metric sums so far; in
        data-parallel runs also checks that the replicas still hold bit-identical weights, which DDP should
        guarantee. Every rank must call it at the same step."""
        self._refuse_non_finite_weights()  # last.pth and best.pth keep the last finite weights
        digest = module_sha256(self.model) if self.dist.distributed else None
        gathered = all_gather_objects({"rng": capture_rng_state(self.generator), "weights": digest,
                                       "sums": self.epoch_sums.cpu()})
        if len({g["weights"] for g in gathered}) > 1:
            raise RuntimeError(f"at step {self.global_step} the {self.dist.world_size} replicas hold different weights: "
                               f"{[g['weights'][:12] for g in gathered]}")
        if self.dist.is_main:
            state = self.state_dict()
            state["rng"] = [g["rng"] for g in gathered]
            state["epoch_sums"] = torch.stack([g["sums"] for g in gathered]).sum(0)
            state["replica_weights_sha256"] = [g["weights"] for g in gathered] if digest else []
            # best.pth first: a kill between the two leaves last.pth an epoch back, whose rerun writes best.pth
            # again; the other way round last.pth held the new best_top1 and best.pth never got its weights
            if is_best:
                save_checkpoint(state, self.out / "best.pth")
            save_checkpoint(state, self.out / "last.pth")
        barrier()

    def _refuse_non_finite_weights(self) -> None:
        """``Diverged`` on every rank when any rank's weights (parameters or buffers) hold a NaN or an infinity, made
        so by a step whose own loss was finite (an overflowing gradient): called by every rank at the same point,
        before each checkpoint and before an epoch's row is logged, so that neither records them."""
        floating = [(name, value) for name, value in self.model.state_dict().items() if value.is_floating_point()]
        # one device-to-host read for all of them (a test per tensor waited for the device once per tensor)
        finite = torch.stack([torch.isfinite(value).all() for _, value in floating]).tolist() if floating else []
        mine = next((name for (name, _), ok in zip(floating, finite) if not ok), None)
        found = next((name for name in all_gather_objects(mine) if name), None)
        if found:
            epoch = self.epoch + (1 if self.epoch_steps else 0)  # the epoch whose last step trained them
            raise Diverged(f"the weights are non-finite ({found}) after step {self.global_step} (epoch {epoch}, "
                           f"learning rate {self.epoch_lr:g}); not checkpointed", epoch, self.global_step)

    # ------------------------------------------------------------------ loops
    def _autocast(self):
        if not self.config.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _batch(self, images, target):
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, target.to(self.device, non_blocking=True)

    def _progress(self, total: int, desc: str):
        from tqdm.auto import tqdm

        quiet = self.config.quiet or not self.dist.is_main or not sys.stderr.isatty()
        return tqdm(total=total, desc=desc, disable=quiet, leave=False, dynamic_ncols=True)

    def _next_batch(self, batches, names=None):
        """The next of ``batches`` (None past their end) on the device, read before a safe point (``_stop_point``): an
        unreadable image (a ``DataError`` from the loader, maybe raised in a loading worker), a batch holding a NaN or
        an infinite pixel (a transform or dataset of one's own can make them; the model refuses them,
        ``check_finite_images``), a loading worker's death (``worker_deaths``) or, under torchrun, any other error
        raised in loading the batch (its traceback printed on its rank) is a stop request like a SIGTERM, so that
        every rank stops at the same step, and none waits in the next all-reduce for a rank that failed. ``names``:
        the image names of batch positions (``_train_image_names``), for the NaN/inf line."""
        raised = False
        try:
            batch, unreadable = self.worker_deaths.next(batches), None
        except DataError as error:
            batch, unreadable = None, raised_in_worker(error)
        except Exception as error:  # a transform or dataset of one's own: raised on one rank alone, it left the others
            if not self.dist.distributed:  # waiting in the next all-reduce; one process raises it as it is
                raise
            traceback.print_exc()  # where it was raised (a loading worker's traceback is in torch's message)
            where = (f"step {self.global_step + 1}" if self.model.training
                     else f"validation after step {self.global_step}")
            batch, unreadable, raised = None, f"loading its batch of {where} raised {error_line(error)}", True
        images = None
        if batch is not None and isinstance(batch[0], torch.Tensor):  # on the device, tested for NaN/inf there
            images = batch[0].to(self.device, non_blocking=True)  # (then a no-op of _batch's)
        self._stop_point(unreadable, images, names, raised)
        return None if batch is None else self._batch(batch[0] if images is None else images, batch[1])

    def _stop_point(self, unreadable: Optional[str] = None, images: Optional[torch.Tensor] = None,
                    names=None, raised: bool = False) -> None:
        """When a SIGTERM or a first Ctrl-C has reached any rank (inside ``sigterm_deferred``), any rank could not
        read its batch (``unreadable``: the error's line; ``raised``: under torchrun, another error than
        ``DataError``), any rank's batch (``images``) holds a NaN or an infinity, or any rank's loading worker died,
        every rank stops here at the same step: the request is reduced with MAX over the ranks (a one-element
        all-reduce per batch: a signal number, ``UNREADABLE_DATA`` or ``WORKER_DIED``; the test of the images,
        ``non_finite_flag``, is joined to it on the device, so it costs no collective of its own). A stop saves the
        checkpoint of this step (rank 0 writes it; an unreadable batch or a dead worker at an epoch's start, with
        nothing trained since the epoch-end checkpoint, saves nothing) and raises ``KeyboardInterrupt("signal N")``, or
        on every rank ``DataErrorMidRun`` naming every failing rank's file (an image with NaN/inf pixels: with its rank
        and step), else ``WorkerDied`` naming every rank's dead worker."""
        # a worker ended by the SIGTERM that stops the run (sent to its process group) is part of that stop
        died = None if termination_requested() else self.worker_deaths.died
        mine = UNREADABLE_DATA if unreadable else WORKER_DIED if died else termination_requested() or 0
        code = max_over_ranks(mine, self._stop_flag, None if images is None else non_finite_flag(images))
        if code >= UNREADABLE_DATA:
            non_finite = None if unreadable or images is None else self._non_finite_line(images, names)
            kind = "non-finite" if non_finite else "raised" if raised else "unreadable"
            gathered = all_gather_objects((unreadable or non_finite, died, kind))
            if not any(line or death for line, death, _ in gathered):  # finite pixels whose sum overflowed
                return  # (non_finite_flag): nothing is wrong; a signal that came meanwhile stops the next batch
            if self.epoch_steps:
                self.save(is_best=False)
            kinds = [kind for line, _, kind in gathered if line]
            files = ranks_lines([line for line, _, _ in gathered],
                                always=self.dist.distributed and any(kind != "unreadable" for kind in kinds))
            if files:
                raise DataErrorMidRun("; ".join(files), files=len(files), non_finite=kinds.count("non-finite"),
                                      raised=kinds.count("raised"))
            deaths = ranks_lines([f"{line} ({KILLED_WORKER})" if line and line.endswith("signal: Killed.") else line
                                  for _, line, _ in gathered])
            raise WorkerDied(f"{'a data-loading worker' if len(deaths) == 1 else 'data-loading workers'} died: "
                             f"{'; '.join(deaths)}")
        if code:
            self.save(is_best=False)
            raise KeyboardInterrupt(f"signal {code}")

    def _non_finite_line(self, images: torch.Tensor, names=None) -> Optional[str]:
        """What is wrong with this rank's batch ``images`` when some hold NaN/inf pixels (None if none do): which
        images (``names`` of their batch positions, else the positions) and where in the run."""
        bad = non_finite_images(images)
        if not bad:
            return None
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        if names:
            shown = names(bad[:3])
            which = f"image {shown[0]} holds" if len(bad) == 1 else f"images {', '.join(shown)}{more} hold"
        else:
            shown = ", ".join(map(str, bad[:3]))
            which = (f"the image at batch index {shown} holds" if len(bad) == 1
                     else f"the images at batch indices {shown}{more} hold")
        where = (f"in the batch of step {self.global_step + 1}" if self.model.training
                 else f"in validation after step {self.global_step}")
        return (f"{which} NaN/inf pixels {where} (epoch {self.epoch + 1}); expected finite pixels (a decoded image "
                f"file holds none: they come from a transform or dataset)")

    def _train_image_names(self, positions: List[int]) -> List[str]:
        """The images at ``positions`` of the training batch about to be trained (batch ``epoch_steps`` of the
        epoch's order on this rank)."""
        start = self.epoch_steps * self.config.batch_size
        indices = self.train_sampler.indices(start, start + self.config.batch_size)
        return [image_name(self.train_set, indices[position]) for position in positions]

    def _val_image_names(self, number: int, positions: List[int]) -> List[str]:
        """The images at ``positions`` of this rank's validation batch ``number``."""
        shard, size = self.val_loader.sampler, self.config.batch_size
        return [image_name(self.val_set, shard[number * size + position]) for position in positions]

    @torch.no_grad()
    def first_batch_output(self):
        """``(loss, logits)`` of the model as it is now on the first training batch of epoch 1, as that step's
        forward computes them (train mode, autocast, its loss), without a gradient; ``logits``: (T, B, K).

        The batch is read from the dataset here, not from the loader (whose iterator draws from its generator), and
        the model's buffers (normalisation statistics) and the random streams are put back: the run then trains
        exactly as it would have without this look."""
        self.train_sampler.set_epoch(0)  # train_one_epoch sets its own
        keys = list(itertools.islice(iter(self.train_sampler), self.config.batch_size))
        images, target = self._batch(*default_collate([self.train_loader.dataset[key] for key in keys]))
        buffers = {name: buffer.clone() for name, buffer in self.model.named_buffers()}
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), self._autocast():
                self.model.train()
                output = self.model(images)
        finally:
            for name, buffer in self.model.named_buffers():
                buffer.copy_(buffers[name])
        c = self.config
        loss = unrolled_loss(output, target, c.loss_steps, self.first_readout_step, c.label_smoothing)
        return float(loss), step_logits(output).float()

    def train_one_epoch(self, epoch: int) -> Dict[str, float]:
        """Train the batches of ``epoch`` from ``self.epoch_steps`` on (a resumed run's position; the images before
        it are never loaded); returns the epoch's training row."""
        c = self.config
        self.train_model.train()
        self.train_sampler.set_epoch(epoch, skip=self.epoch_steps * c.batch_size)
        totals, window = self.epoch_sums  # loss * n, top-1, top-5 hits, n: logged steps; steps since the last log
        # images this process trained of the epoch and of the window: a resumed epoch's sums also count those trained
        # before the resume, which this process did not time (its images/s divided them by the resumed part's time)
        trained = window_trained = 0
        start = window_start = time.perf_counter()
        bar = self._progress(self.steps_per_epoch, f"epoch {epoch + 1}/{c.epochs}")
        bar.update(self.epoch_steps)
        batches = iter(self.train_loader) if self.epoch_steps < self.steps_per_epoch else iter(())
        while self.epoch_steps < self.steps_per_epoch:
            images, target = self._next_batch(batches, self._train_image_names)
            with self._autocast():
                output = self.train_model(images)
            loss = unrolled_loss(output, target, c.loss_steps, self.first_readout_step, c.label_smoothing)
            # decided by all ranks together: a rank that raised alone left the others in backward()'s gradient
            # all-reduce (gloo: a traceback; NCCL: waiting until torchrun killed them); what to lower (zoo train's
            # --lr, a search space's train.lr) is said by the caller
            if max_over_ranks(int(not torch.isfinite(loss)), self._stop_flag):
                losses = all_gather_objects(loss.item())
                rank, value = next((r, v) for r, v in enumerate(losses) if not math.isfinite(v))
                on = f" on rank {rank}" if len(losses) > 1 else ""
                raise Diverged(f"loss is {value} at step {self.global_step}{on} (epoch {epoch + 1}, learning rate "
                               f"{self.optimizer.param_groups[0]['lr']:g})", epoch + 1, self.global_step)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if c.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.epoch_lr = self.optimizer.param_groups[0]["lr"]
            self.scheduler.step()
            self.global_step += 1
            self.epoch_steps += 1
            trained += len(target)
            window_trained += len(target)
            with torch.no_grad():
                top1, top5 = topk_correct(model_answer(output).float(), target)
                window += torch.stack([loss.detach().double() * len(target), top1.double(), top5.double(),
                                       torch.tensor(float(len(target)), dtype=torch.float64, device=self.device)])
            bar.update()
            if c.log_every and self.global_step % c.log_every == 0:
                totals += window
                sums = all_reduce_sum(torch.cat([window, window.new_tensor([window_trained])]))
                row = self._row(sums[:4], time.perf_counter() - window_start, images=sums[4].item())
                window.zero_()
                window_trained = 0
                window_start = time.perf_counter()
                self.log.write(kind="iter", epoch=epoch + 1, step=self.global_step, lr=self.epoch_lr, **row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", top1=f"{row['top1']:.1f}")
            if c.checkpoint_every and self.global_step % c.checkpoint_every == 0 and \
                    self.epoch_steps < self.steps_per_epoch:  # the epoch's end writes its own
                self.save(is_best=False)
        bar.close()
        sums = all_reduce_sum(torch.cat([totals + window, totals.new_tensor([trained])]))
        return {**self._row(sums[:4], time.perf_counter() - start, images=sums[4].item()), "lr": self.epoch_lr}

    @staticmethod
    def _row(sums: torch.Tensor, seconds: float, images: Optional[float] = None) -> Dict[str, float]:
        """The metrics of ``sums`` (loss * n, top-1, top-5 hits, n); ``images``: those timed by ``seconds`` (n)."""
        loss, top1, top5, n = sums.tolist()
        images = n if images is None else images
        n = max(n, 1.0)
        return {"loss": loss / n, "top1": 100 * top1 / n, "top5": 100 * top5 / n,
                "images_per_s": images / max(seconds, 1e-9)}

    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        """Cross-entropy, top-1 and top-5 (percent) of the model's answer (``model_answer``: its decoder's output
        when it has one, else the last step) over the whole val split, all ranks."""
        if self.val_loader is None:
            return {}
        start = time.perf_counter()
        bar = self._progress(len(self.val_loader), "val")
        with eval_mode(self.model):
            sums = evaluation_sums(self.eval_model, self._val_batches(), self.device, self.first_readout_step,
                                   self._autocast, bar.update)["answer"]
        bar.close()
        row = self._row(all_reduce_sum(sums), time.perf_counter() - start)
        return {f"val_{k}": v for k, v in row.items()}

    def _val_batches(self):
        """This rank's validation batches, on the device, each read before a stop point (``_next_batch``); a stop
        there keeps the epoch's training: validation is rerun on resume."""
        # every rank passes the same number of stop points (rank 0's shard has the most batches): they all-reduce
        rounds = math.ceil(math.ceil(len(self.val_set) / self.dist.world_size) / self.config.batch_size)
        batches = iter(self.val_loader)
        for number in range(rounds):
            batch = self._next_batch(batches, functools.partial(self._val_image_names, number))
            if batch is not None:
                yield batch

    def fit(self, until_epoch: Optional[int] = None) -> Dict[str, Any]:
        """Train from the current epoch to ``config.epochs`` (or ``until_epoch``); returns the last epoch row.

        SIGTERM and a first Ctrl-C stop it at the next batch with a checkpoint of that step (``_stop_point``); a second
        Ctrl-C stops it at once (the first one used to, losing the steps since the last checkpoint). A loading worker's
        death stops it as SIGTERM does (``WorkerDied``; it was torch's RuntimeError, raised wherever the main thread
        was, and no checkpoint). A divergence (``Diverged``) is recorded in run.json before it is raised, a stop in this part's
        segment."""
        deaths = self.worker_deaths.deferred() if self.config.workers else contextlib.nullcontext()
        with sigterm_deferred(self.stopping if self.dist.is_main else "", sigint_again=STOPPED_AT_ONCE), deaths:
            try:
                return self._fit(until_epoch)
            except Diverged as error:
                if self.dist.is_main:
                    self._record_run("diverged", str(error),
                                     diverged={"epoch": error.epoch, "step": error.step, "error": str(error)})
                raise
            except BaseException as error:  # a stop (SIGTERM, Ctrl-C, an unreadable image) or a failure
                self.record_stopped(error)
                raise

    def _fit(self, until_epoch: Optional[int]) -> Dict[str, Any]:
        end = self.config.epochs if until_epoch is None else min(until_epoch, self.config.epochs)
        for epoch in range(self.epoch, end):
            start = time.perf_counter()
            train = self.train_one_epoch(epoch)
            val = self.evaluate()
            if val and not math.isfinite(val["val_loss"]):  # the same on every rank (reduced): diverged weights, which
                # were checkpointed as the epoch's (and as best.pth when their NaN logits happened to rank well)
                raise Diverged(f"validation loss is {val['val_loss']} after epoch {epoch + 1} (step "
                               f"{self.global_step}, learning rate {self.epoch_lr:g})", epoch + 1, self.global_step)
            self._refuse_non_finite_weights()  # without val/ too: the epoch's row would be logged, then not saved
            self.epoch = epoch + 1
            self.epoch_steps = 0
            self.epoch_sums.zero_()
            is_best = bool(val) and val["val_top1"] > self.best_top1
            if is_best:
                self.best_top1 = val["val_top1"]
            row = self.log.write(kind="epoch", epoch=self.epoch, step=self.global_step, **train, **val,
                                 seconds=time.perf_counter() - start)
            self.history.append(row)
            self.save(is_best)
            if self.dist.is_main and not self.config.quiet:
                # the log keeps a non-finite value as null (JSON has no inf/nan): say so, not a TypeError
                shown = ", ".join(f"{k} {'non-finite' if v is None else format(v, '.4g')}" for k, v in row.items()
                                  if k not in ("kind", "epoch", "step"))
                print(f"epoch {self.epoch}/{self.config.epochs} step {self.global_step}: {shown}", flush=True)
        if self.epoch == self.config.epochs and self.dist.is_main:
            self._record_run("finished", finished=True, final_epoch=self.epoch)
        return self.history[-1] if self.history else {}

    def close(self) -> None:
        self.log.close()
        self._release()

    def _release(self, destroy_group: bool = True) -> None:
        """What the trainer set in its process: the process group, torch's deterministic-algorithms setting."""
        if destroy_group:
            shutdown(self.dist)
        # only where it was changed: torch's setter sets its compiler's configuration too, importing it (seconds),
        # which a trainer stopped at once in its setup before setting it (a search trial's, zoo train's:
        # datasets.termination.stopping_at_once) spent as it stopped
        now = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
        compiler = getattr(sys.modules.get("torch._inductor.config"), "deterministic", self._determinism[0])
        if now != self._determinism or compiler != self._determinism[0]:
            torch.use_deterministic_algorithms(self._determinism[0], warn_only=self._determinism[1])


def train(config: TrainConfig, model: Optional[nn.Module] = None) -> Dict[str, Any]:
    """Train (or resume) per ``config``; returns the final epoch's metrics row."""
    trainer = Trainer(config, model)
    try:
        return trainer.fit()
    finally:
        trainer.close()
