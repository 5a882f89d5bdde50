"""What a resume checks of the checkpoint it continues from against this run before training on: the fields it
reads, the graph, the steps per epoch and global batch, the settings its optimizer state fixes, and the epochs left;
each refusal says why and what to do instead (:func:`resume_refusal`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from neurozoo.convrnn.spec import spec_difference
from neurozoo.convrnn.training.checkpoint import checkpoint_position
from neurozoo.datasets.errors import UserFacingError
from neurozoo.datasets.text_table import counted

if TYPE_CHECKING:
    from neurozoo.convrnn.training.engine import TrainConfig


def resume_refusal(reason: str, advice: str, kind: type = UserFacingError, sep: str = "; ") -> UserFacingError:
    """A ``kind`` error refusing a checkpoint to resume, ``reason + sep + advice``, that keeps the two apart (attributes
    ``reason``, ``advice``): the advice is zoo train's user's (resume with the checkpoint's setting, or train afresh
    into another --out); a search retrying a dead trial, which trains it afresh itself, quotes the reason alone
    (``convrnn.search.objective``)."""
    error = kind(f"{reason}{sep}{advice}")
    error.reason, error.advice = reason, advice
    return error


#: settings a checkpoint's optimizer state holds: a resume with others is refused (``Trainer.load_state``)
RESUME_FIXED = ("optimizer", "original_weight_decay", "lr", "momentum", "weight_decay")
#: the fields of a checkpoint a resume reads beside those ``checkpoint.load_checkpoint`` requires (``Trainer.load_state``)
RESUMED_STATE = ("optimizer", "scheduler", "scaler")


def autocast_name(config: Dict[str, Any]) -> str:
    """The precision a training config computes in, in words: ``float32`` or ``bfloat16 autocast``."""
    return f"{config.get('amp_dtype', 'bfloat16')} autocast" if config.get("amp") else "float32"


def check_spec(saved: Optional[Dict[str, Any]], current: Optional[Dict[str, Any]], config: TrainConfig,
               where: str) -> None:
    """A spec file edited (or another --set) between the runs builds another graph whose weights may still fit
    the checkpoint's (a cell setting, n_steps, a feedback edge into a cell with its own projection): the resumed
    run trained that graph on, without a word. Checkpoints written before they kept their spec are not checked."""
    difference = spec_difference(saved, current) if saved is not None and current is not None else None
    if difference:
        raise resume_refusal(f"{where}: the checkpoint was trained as another graph than this run builds from "
                             f"{config.model!r} (overrides {config.overrides}): {difference}",
                             "resume with the graph it was trained as (the spec in run.json) or train afresh "
                             "into another --out")


def check_steps_per_epoch(state: Dict[str, Any], config: TrainConfig, world_size: int, steps_per_epoch: int,
                          where: str) -> None:
    """The schedule counts optimizer steps: resumed with another number of steps per epoch (another global
    batch, --max-steps-per-epoch or data), the checkpoint's step count would stand for another point of it.
    Stopped inside an epoch, the checkpoint's position counts batches of its global batch: another one would skip
    other images."""
    epochs, steps, position = int(state["epoch"]), int(state["global_step"]), int(state.get("epoch_steps", 0))
    saved_batch = int((state.get("config") or {}).get("batch_size", 0))
    saved_world = int(state.get("world_size", 1))
    same_batch = saved_batch * saved_world == config.batch_size * world_size
    per_epoch = state.get("steps_per_epoch")
    if per_epoch is None:  # written before checkpoints recorded it: at an epoch end
        if epochs < 1 or steps == epochs * steps_per_epoch:
            return
        per_epoch = steps // epochs
    elif per_epoch == steps_per_epoch and (position == 0 or same_batch):
        return

    def batches(batch_size: int, world_size: int) -> str:
        return (f"global batch {batch_size * world_size} = --batch-size {batch_size} x "
                f"{counted(world_size, 'process', 'processes')}")

    before, now = batches(saved_batch, saved_world), batches(config.batch_size, world_size)
    if per_epoch == steps_per_epoch:
        raise resume_refusal(f"{where}: the checkpoint stopped after {position} batches of epoch {epochs + 1} "
                             f"({before}); this run has {now}, so it would skip other images than those trained",
                             "resume with the same global batch")
    raise resume_refusal(f"{where}: the checkpoint ran {per_epoch} steps per epoch ({before}); this run would "
                         f"run {steps_per_epoch} ({now}), so its learning-rate schedule would be misplaced",
                         "resume with the same global batch, data and --max-steps-per-epoch")


def check_optimizer_settings(saved: Dict[str, Any], config: TrainConfig, where: str) -> None:
    """The settings a checkpoint's optimizer state holds (:data:`RESUME_FIXED`): another optimizer or grouping
    failed inside torch (KeyError 'step', 'different number of parameter groups'), and another --lr, --momentum
    or --weight-decay was silently replaced by the checkpoint's on loading its state."""
    for name in RESUME_FIXED:
        if name not in saved or (name == "momentum" and config.optimizer != "sgd"):
            continue  # a checkpoint written before the setting existed; AdamW has no momentum setting
        before, now = saved[name], getattr(config, name)
        if before != now:
            flag = f"--{name.replace('_', '-')}"
            raise resume_refusal(f"{where}: the checkpoint was trained with {flag} {before}, this run has "
                                 f"{now}; its optimizer state fixes {name}",
                                 f"resume with {flag} {before}, or train afresh into another --out", sep=", so ")


def check_epochs(state: Dict[str, Any], config: TrainConfig, where: str) -> None:
    """A checkpoint that has trained steps past ``--epochs``: the resume had nothing to train, ``zoo train`` said
    "done" and drew the curve titled "finished", while run.json kept ``finished`` false (or, for a checkpoint
    inside the epoch after, said finished beside weights trained on past it)."""
    needed = int(state["epoch"]) + (1 if int(state.get("epoch_steps", 0)) else 0)
    if needed > config.epochs:
        raise resume_refusal(f"{where}: the checkpoint holds {checkpoint_position(state)}, past --epochs "
                             f"{config.epochs}", f"resume with --epochs {needed} or more", sep=": ")
