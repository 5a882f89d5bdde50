"""``zoo train MODEL --data DIR``: supervised ImageNet training of a ConvRNN (torchrun-compatible).

    zoo train rgc_shallow --data /data/imagenet --epochs 90 --batch-size 256 --amp --channels-last
    torchrun --nproc-per-node 8 -m neurozoo.convrnn.training rgc_intermediate --data /data/imagenet --resume auto
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from neurozoo.convrnn.training.cpus import default_workers
from neurozoo.datasets.cli_args import (MACHINE_DEFAULT, ShowDefaultsRaw, ZooArgumentParser, add_device_argument,
                                        at_least, non_negative, number_in, positive)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a ConvRNN on an ImageNet-layout folder (train/ and val/ of WNID folders)",
                       description=__doc__, formatter_class=ShowDefaultsRaw)
    add_arguments(p)
    p.set_defaults(handler=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registered model name or path to a YAML graph spec")
    p.add_argument("--data", required=True, help="folder with train/<wnid>/*.JPEG and val/<wnid>/*.JPEG; class index "
                   "= position of the WNID among the sorted train/ folders")
    p.add_argument("--out", default="runs/train", help="folder for metrics.jsonl, run.json, last.pth, best.pth")
    p.add_argument("--epochs", type=at_least(1), default=90, help="epochs to train")
    p.add_argument("--batch-size", type=at_least(1), default=256, help="images per process and step")
    p.add_argument("--lr", type=positive, default=0.01,
                   help="peak learning rate (after warmup) (default: %(default)s; 0.1, the default before 2026-12-04, "
                        "diverged within 4 steps for rgc_intermediate, whose layers have no normalisation)")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd", help="sgd (with --momentum) or adamw")
    p.add_argument("--momentum", type=non_negative, default=0.9, help="SGD's momentum (unused by adamw)")
    p.add_argument("--weight-decay", type=non_negative, default=1e-4, help="on weights only, not on biases and norms")
    p.add_argument("--original-weight-decay", action="store_true",
                   help="the original's L2 scales instead: 2.03e-4 on median RGC kernels, 1e-4 on the feedforward "
                        "and readout weights and biases, none elsewhere (model.weight_decay_groups()); with --optimizer sgd "
                        "only, whose decay equals the original's L2 loss term")
    p.add_argument("--schedule", choices=("cosine", "step", "constant"), default="cosine",
                   help="learning-rate schedule after the warmup, set every step: cosine (from --lr down to --min-lr at "
                        "the end of training), step (--lr times --gamma every --step-epochs epochs) or constant")
    p.add_argument("--warmup-epochs", type=non_negative, default=0.0,
                   help="epochs of linear warmup before the schedule (fractions allowed; 0: none): the learning rate "
                        "rises every step, from --lr divided by the warmup's steps to --lr")
    p.add_argument("--step-epochs", type=at_least(1), default=30, help="step schedule: decay every this many epochs")
    p.add_argument("--gamma", type=positive, default=0.1, help="step schedule: decay factor")
    p.add_argument("--min-lr", type=non_negative, default=0.0, help="cosine schedule: final learning rate")
    p.add_argument("--loss-steps", choices=("final", "all"), default="final",
                   help="final: cross-entropy of the model's answer (its decoder's output for *_tmaxconf / *_dthresh, "
                        "else the last step), as the original; all: the mean over every step's logits from the first readout")
    p.add_argument("--label-smoothing", type=number_in(0, 1), default=0.0,
                   help="label smoothing of the cross-entropy (0: none)")
    p.add_argument("--grad-clip", type=positive, default=None,
                   help="clip the gradient norm to this value (default: no clipping)")
    p.add_argument("--image-size", type=at_least(1), default=224,
                   help="side in pixels of the square images trained on (random resized crops) and validated on "
                        "(resized, then center-cropped)")
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="train on the evaluation transform (resize + center crop) instead of random crops and flips")
    p.add_argument("--workers", type=at_least(0), default=default_workers(),
                   help="data-loading processes per training process (default: min(4, available CPUs - 1)"
                        f"{MACHINE_DEFAULT}; 0 loads in the training process)")
    add_hash_images_argument(p, "run.json's data checksums (train_files_sha256, val_files_sha256)",
                             "before training, split among the processes",
                             note="; run.json's files_checksum says which (contents or sizes)")
    p.add_argument("--seed", type=at_least(0), default=0,
                   help="random seed of the initial weights (the same on every process), each epoch's image order and "
                        "each image's augmentation")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                   help="continue from CHECKPOINT; without a value (or 'auto'): OUT/last.pth if it exists")
    add_device_argument(p, "training and validation", default="auto",
                        note="; under torchrun auto and cuda give each process cuda:LOCAL_RANK")
    add_amp_argument(p, "--amp-dtype")
    p.add_argument("--amp-dtype", choices=("bfloat16", "float16"), default="bfloat16",
                   help="with --amp (refused without it): float16 adds a gradient scaler")
    add_channels_last_argument(p)
    p.add_argument("--fast", action="store_true",
                   help="the ConvRNN fast path (fused input convolutions, channels-last; with --amp its autocast): the "
                        "same function and weights; 3.3-4.3x the reference path's images/s with --amp on an H200 "
                        "(benchmarks/perf/convrnn_gpu_speed.py)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--compile-backend", default="inductor", help="with --compile (refused without it)")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                   help="torch.use_deterministic_algorithms (warn only) and no cuDNN autotuning")
    add_max_steps_argument(p)
    p.add_argument("--checkpoint-every", type=at_least(0), default=0, metavar="STEPS",
                   help="also write last.pth every this many steps inside epochs (0, the default: at epoch ends only); "
                        "a resumed run starts at the step saved, skipping the images trained on. SIGTERM and Ctrl-C "
                        "save at the next step anyway: this bounds what a SIGKILL or a lost node costs")
    p.add_argument("--log-every", type=at_least(0), default=50, help="write a metrics row every this many steps")
    p.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    from neurozoo.convrnn.cli import add_override_arguments

    add_override_arguments(p)  # --width W and --set KEY=VALUE, e.g. --set n_steps=10


# ---- the options zoo search shares with zoo train (its trials are zoo train's training): declared once here --------
def add_hash_images_argument(p: argparse.ArgumentParser, checks: str, when: str, note: str = "") -> argparse.Action:
    """``--hash-images``: ``checks`` (what covers the images) read each image's bytes, once ``when``."""
    return p.add_argument("--hash-images", action="store_true",
                          help=f"{checks} cover each image's bytes (its sha256), so that an image edited to the same "
                               f"size changes them: reads ALL images once {when} (ImageNet: about 150 GB). Without it "
                               f"they cover each image's relative path, label and size (one stat per file){note}")


def add_amp_argument(p: argparse.ArgumentParser, dtype: str, note: str = "") -> argparse.Action:
    """``--amp``: autocast to ``dtype`` (zoo train's ``--amp-dtype``; zoo search's trials: bfloat16, TrainConfig's
    default, since it has no ``--amp-dtype``)."""
    return p.add_argument("--amp", action="store_true",
                          help=f"mixed precision: training and validation autocast to {dtype}, on the CPU as on a "
                               f"GPU{note}")


def add_channels_last_argument(p: argparse.ArgumentParser) -> argparse.Action:
    return p.add_argument("--channels-last", action="store_true",
                          help="channels-last memory format for model and images")


def add_max_steps_argument(p: argparse.ArgumentParser) -> argparse.Action:
    """``--max-steps-per-epoch``; 0, as none given, trains whole epochs (``TrainConfig.max_steps_per_epoch``)."""
    return p.add_argument("--max-steps-per-epoch", type=at_least(0), default=None,
                          help="at most this many steps per epoch (quick runs; 0 or none given: whole epochs)")


def config_from_args(args: argparse.Namespace):
    from neurozoo.convrnn.cli import overrides_from_args
    from neurozoo.convrnn.training.engine import TrainConfig

    fields = set(TrainConfig.__dataclass_fields__) - {"overrides"}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in fields}, overrides=overrides_from_args(args))


def check_spec_builds(path: str, overrides: dict) -> None:
    """A spec file's cell configs (an unknown key, a cell_depth of -5) are checked only as its cells are built, which
    came after the data folder was refused (or listed and hashed): the model is built here on the meta device (no
    weights allocated), so the spec's own refusal comes first. A model not buildable there is built, and refused,
    where it is trained, as before."""
    import torch

    from neurozoo import convrnn
    from neurozoo.datasets.errors import UserFacingError

    try:
        with torch.device("meta"):
            convrnn.create_model(path, **overrides)
    except UserFacingError:
        raise
    except Exception:  # noqa: BLE001 -- not buildable on meta (see leaderboard.zoo's model check)
        return


def how_to_mend(error) -> str:
    """What to do before ``--resume`` after ``DataErrorMidRun``: replace the unreadable files, mend what gave images
    NaN/inf pixels (no file: a transform or dataset) or what raised another error, or several; the image order stays
    either way."""
    non_finite, raised = error.non_finite, error.raised
    unreadable = error.files - non_finite - raised
    steps = []
    if unreadable:
        which = "the file" if error.files == 1 else "each unreadable file" if non_finite or raised else "each file"
        steps.append(f"replace {which} by a readable image of the same name")
    if non_finite:
        steps.append(f"make the transform or dataset give {'that image' if non_finite == 1 else 'those images'} "
                     "finite pixels")
    if raised:
        steps.append(f"mend what raised {'the error' if raised == 1 else 'the errors'}, whose traceback is above")
    return f"{' and '.join(steps)} (the image order stays), then "


def run(args: argparse.Namespace) -> int:
    from neurozoo.convrnn.training.checkpoint import what_was_kept
    from neurozoo.convrnn.training.engine import train
    from neurozoo.convrnn.training.rank_agreement import RanksDisagree
    from neurozoo.convrnn.training.stops import STOPPED_AT_ONCE, DataErrorMidRun
    from neurozoo.convrnn.training.worker_deaths import WorkerDied
    from neurozoo.datasets.errors import DataError, UserFacingError
    from neurozoo.datasets.termination import sigterm_deferred, stopping_at_once

    from neurozoo.convrnn.models import MODELS, is_spec_path, load_spec

    # the model (the first argument) is named first, not after the data folder is refused, or listed and hashed
    # (minutes): a typo in the name (the registry's one refusal: close names, every ConvRNN), and a spec file that is
    # not there or not a spec (refused after the data folder until 2026-12-05)
    if is_spec_path(args.model):
        load_spec(args.model)
    else:
        MODELS.get(args.model)
    config = config_from_args(args)
    if is_spec_path(args.model):
        check_spec_builds(args.model, config.overrides)
    # SIGTERM (kill, a scheduler's preemption) stops the run at the next batch with a checkpoint of that step, every
    # rank of a torchrun at the same step (Trainer._stop_point); the block covers the setup too (listing the data).
    # Ctrl-C does so once training has started (Trainer.fit); before, it stops at once, nothing being trained yet.
    # So does SIGTERM in one process's setup, until its first write (the log, run.json: Trainer._setup): listing and
    # hashing the data (--hash-images: minutes on ImageNet) and building the model write nothing. Not under torchrun,
    # whose ranks meet in collectives there: one rank stopped alone would leave the others waiting in one
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    try:
        with sigterm_deferred(), stopping_at_once() if single else contextlib.nullcontext():
            train(config)
    except KeyboardInterrupt as error:  # Ctrl-C: the generic "interrupted" said nothing of what was kept
        if int(os.environ.get("RANK", "0")) == 0:
            lost = f"{error}; " if str(error) == STOPPED_AT_ONCE else ""  # a second Ctrl-C, not the step's stop
            print(f"zoo train: interrupted; {lost}{what_was_kept(Path(args.out))}", file=sys.stderr)
        return 130
    except DataErrorMidRun as error:  # a corrupt image: named, with what the run keeps and how it goes on
        if int(os.environ.get("RANK", "0")) != 0:  # every rank stopped at the same step; rank 0 says it once
            return 2
        raise DataError(f"{error}; {what_was_kept(Path(args.out), how_to_mend(error))}") from None
    except WorkerDied as error:  # a loading worker killed (the out-of-memory killer): what the run keeps, how to go on
        if int(os.environ.get("RANK", "0")) != 0:
            return 2
        raise UserFacingError(f"{error}; {what_was_kept(Path(args.out))}") from None
    except FloatingPointError as error:  # a non-finite loss or weights (engine.Diverged): it was a traceback, and the
        # same resume diverges again
        if int(os.environ.get("RANK", "0")) != 0:
            return 2
        how = ("a rerun with --resume diverges there again (it keeps the checkpoint's --lr): train afresh into another "
               "--out, with a lower --lr or --grad-clip")
        raise UserFacingError(f"{error}; {what_was_kept(Path(args.out), how=how)}") from None
    except RanksDisagree:  # raised on every rank at once: rank 0 says it
        if int(os.environ.get("RANK", "0")) != 0:
            return 2
        raise
    # drawn also when a resumed run had no epoch left: a run killed before its curve gets it here
    if int(os.environ.get("RANK", "0")) == 0:
        from neurozoo.convrnn.training import curve

        out = Path(args.out)
        curve.plot_training_curve(out / "metrics.jsonl", config.epochs, out / "training_curve.png", title=config.model)
        if not args.quiet:
            print(f"done: checkpoints, metrics.jsonl and training_curve.png in {args.out}")
    return 0


def main(argv=None) -> int:
    """``python -m neurozoo.convrnn.training MODEL --data DIR ...`` (what torchrun launches)."""
    import warnings

    from neurozoo.convrnn.training.distributed import checked_device
    from neurozoo.datasets.errors import UserFacingError, warning_format

    parser = ZooArgumentParser(prog="python -m neurozoo.convrnn.training", description=__doc__,
                               formatter_class=ShowDefaultsRaw)
    add_arguments(parser)
    args = parser.parse_args(argv)
    # its warnings one line each, as its errors and zoo train's (a resume's "learning-rate schedule changed" came
    # with the file, line and source of engine.py under torchrun)
    default_format = warnings.formatwarning
    warnings.formatwarning = warning_format("train", default_format)
    try:
        # as `zoo train` (leaderboard.cli): --device auto recorded as the device it gives, cpu or cuda; each process
        # then takes its own GPU (cuda:LOCAL_RANK) in Trainer, as there
        args.device = checked_device(args.device)
        return run(args)
    except UserFacingError as error:
        print(f"train: error: {error}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = default_format
