"""How many data-loading workers this machine affords (no torch here: ``zoo``'s parser reads the default)."""
from __future__ import annotations

import os

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
