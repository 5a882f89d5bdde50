"""torchrun-compatible process groups: RANK / WORLD_SIZE / LOCAL_RANK from the environment,
NCCL on GPUs and gloo on CPU. A single process (no WORLD_SIZE, or 1) needs no process group."""
from __future__ import annotations

import atexit
import os
import sys
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, List, Optional

import torch
import torch.distributed as dist

from neurozoo.datasets.errors import UserFacingError
from neurozoo.datasets.torch_devices import auto_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def checked_device(name: str) -> str:
    """``--device`` as a command uses and records it (:func:`auto_device`), refused first where it names no device
    of this machine (:func:`resolve_device`'s refusals), before any work: what ``zoo``'s commands
    (``leaderboard.cli``) and the torchrun entry (``python -m neurozoo.convrnn.training``) do with it, so that the
    two record the same ``config.device`` for the same run (the entry had recorded ``auto``)."""
    resolve_device(name)
    return auto_device(name)


def resolve_device(name: str, local_rank: int = 0, world_size: int = 1) -> torch.device:
    """``auto`` -> the local GPU when there is one, else CPU (:func:`auto_device`); ``cuda`` -> ``cuda:LOCAL_RANK``
    modulo the visible GPUs (a launcher that shows each process only its own GPU, e.g. SLURM with one GPU per task,
    gives LOCAL_RANK 0..7 and one visible device: cuda:0). An explicit ``cuda:N`` in a multi-process run must be that
    GPU."""
    name = auto_device(name)
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserFacingError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserFacingError(f"--device {name}: this torch build or machine has no CUDA GPU")
        own = local_rank % max(1, torch.cuda.device_count())
        if device.index is None:
            device = torch.device("cuda", own)
        elif world_size > 1 and device.index != own:
            raise UserFacingError(f"--device {name} in a run of {world_size} processes: this process (LOCAL_RANK "
                                  f"{local_rank}) has GPU cuda:{own}, and every process given cuda:{device.index} would "
                                  f"share one GPU; pass --device cuda (or auto)")
    return device


#: what a process of a multi-process run needs besides WORLD_SIZE (torchrun sets them all)
LAUNCH_VARIABLES = ("RANK", "MASTER_ADDR", "MASTER_PORT")


def launch_problem(environ) -> Optional[str]:
    """What keeps a process whose environment sets WORLD_SIZE > 1 from joining its run, in words; None if nothing.
    Without RANK every process took rank 0; without MASTER_ADDR or MASTER_PORT torch failed with a traceback."""
    world_size = int(environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    missing = [name for name in LAUNCH_VARIABLES if not environ.get(name)]
    if missing:
        return (f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: launch with torchrun (it sets RANK, "
                f"LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT for every process), or set them on each process")
    rank = int(environ["RANK"])
    if not 0 <= rank < world_size:
        return f"RANK={rank} with WORLD_SIZE={world_size}: expected 0..{world_size - 1}"
    return None


def init_distributed(device: str = "auto") -> DistInfo:
    problem = launch_problem(os.environ)
    if problem:
        raise UserFacingError(problem)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank, world_size)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        kwargs = {"device_id": resolved} if resolved.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
        global _joined_group
        _joined_group = True
    return DistInfo(rank, world_size, local_rank, resolved)


#: whether this process joined a multi-process group (:func:`init_distributed`): :func:`exit_process` reads it
_joined_group = False


def exit_process(code: int) -> None:
    """End a training entry point's process with ``code``. A process that joined a multi-process group and ends with
    0 ends by ``os._exit`` once its exit handlers ran and its output is flushed, skipping the interpreter's
    finalization and C++'s static destructors: torch's DistributedDataParallel keeps the gloo group, and its three
    threads, alive after ``destroy_process_group`` (measured with torch 2.13: the group's threads still run once the
    wrapper is freed and collected), so the group was torn down by the exit itself, and a rank that had finished its
    work and left the group cleanly aborted there now and then ("terminate called without an active exception",
    SIGABRT; torchrun then reported a finished run as failed). Everything the run writes is closed before this
    (checkpoints, logs, the run record); ``atexit`` handlers run (logging's flush among them), and only what exists to
    tear the process down is skipped. Any other status exits as usual: torchrun stops every rank as soon as one fails,
    and a rank 1 that failed at once cut rank 0 short before the line saying why (its finalization's time had let
    rank 0 say it). A process that joined no group exits as usual."""
    if not _joined_group or code != 0:
        sys.exit(code)
    atexit._run_exitfuncs()  # as the interpreter's exit would (logging.shutdown, tqdm's monitor join, tempfiles)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said there
            pass
    os._exit(code)


#: how long a rank leaving the run waits for the others at the barrier before it destroys the process group
SHUTDOWN_TIMEOUT = timedelta(seconds=60)


def shutdown(info: DistInfo, timeout: timedelta = SHUTDOWN_TIMEOUT) -> bool:
    """Leave the process group once every rank has come to leave it: a barrier, then destroy. A gloo group destroyed
    while a peer was already exiting aborted a rank now and then ("terminate called without an active exception",
    SIGABRT; CI, once in ~50 two-rank runs); torch's own tests barrier before destroying. The gloo barrier is
    ``monitored_barrier``, bounded by ``timeout``; NCCL has none, so its ``barrier`` (on this process's GPU, untested
    here: no GPU in CI) waits up to the group's own timeout. When a rank does not come (it died, or is stuck
    elsewhere) the group is left to the process's exit: False, and nothing raised, since this runs in ``finally``
    blocks where an error would hide the one that brought us here."""
    if not (info.distributed and dist.is_initialized()):
        return True
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timeout)
        else:
            dist.barrier()
    except RuntimeError as error:  # DistBackendError included
        warnings.warn(f"rank {info.rank}: not every rank came to leave the process group ({error}); "
                      f"left it to the process's exit", RuntimeWarning)
        return False
    dist.destroy_process_group()
    return True


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks in place (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def max_over_ranks(value: int, buffer: torch.Tensor, also: Optional[torch.Tensor] = None) -> int:
    """The largest ``value`` of all ranks (``value`` itself in a single process). ``buffer``: a one-element integer
    tensor on this process's device (NCCL reduces only GPU tensors), reused so that a call allocates nothing; the
    call waits for every rank, so all must make it at the same point. ``also``: a one-element integer tensor on that
    device, computed there (e.g. a test of the batch), joined to ``value`` before the reduction: one all-reduce and one
    device-to-host read for both (a single process reads it too)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value if also is None else max(value, int(also.item()))
    buffer.fill_(value)
    if also is not None:
        torch.maximum(buffer, also.reshape(buffer.shape).to(buffer.dtype), out=buffer)
    dist.all_reduce(buffer, op=dist.ReduceOp.MAX)
    return int(buffer.item())


def all_gather_objects(obj: Any) -> List[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
