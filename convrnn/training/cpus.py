"""How many data-loading workers this machine affords (no torch here: ``zoo``'s parser reads the default), and what
a run on its CPU would do that its options did not ask for."""
from __future__ import annotations

import os
from typing import List

from neurozoo.datasets.text_table import counted

MAX_DEFAULT_WORKERS = 4


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (a container's, a batch scheduler's or ``taskset``'s
    limit), where the platform has one (Linux), else every CPU of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers() -> int:
    """``min(4, available CPUs - 1)``: one CPU stays with the training loop. A fixed 4 on a 2-CPU machine made torch
    warn that the DataLoader asked for more workers than the machine suggests, and the workers fought the loop."""
    return max(0, min(MAX_DEFAULT_WORKERS, available_cpus() - 1))


def cpu_path_problems(device, *, amp: bool = False, amp_dtype: str = "bfloat16", compile: bool = False,
                      compile_backend: str = "inductor", workers: int = 0) -> List[str]:
    """What a run on ``device`` would do that its options did not ask for, where that device is a CPU: one sentence
    each, for ``zoo train`` and ``zoo score`` to warn with before any work. None on a GPU."""
    if not str(device).startswith("cpu"):
        return []
    problems = []
    if amp and amp_dtype == "float16":
        problems.append("--amp-dtype float16 on a CPU: float16 convolutions have no fast CPU kernels, so autocast runs "
                        "them about 16x slower than float32 (a 3x3 convolution's forward and backward, AVX-512 CPU, "
                        "torch 2.13), and its gradient scaler guards against an underflow bfloat16 does not have; "
                        "--amp-dtype bfloat16 (the default) is the CPU's fast path")
    if compile and compile_backend == "inductor":
        problems.append("--compile on a CPU (inductor): the first training step waits while C++ kernels are generated "
                        "and compiled for the unrolled graph (minutes: about 160 s for the tests' tiny ConvRNN on 2 "
                        "cores), and validation compiles its own; --compile-backend eager checks the graph capture in "
                        "seconds, without speeding anything up")
    cpus = available_cpus()
    if workers >= cpus:
        problems.append(f"--workers {workers} on a CPU run with {counted(cpus, 'CPU')}: "
                        "the loading processes take the cores "
                        f"the model computes on; {default_workers()} (min(4, CPUs - 1), the default) leaves one to it")
    return problems
