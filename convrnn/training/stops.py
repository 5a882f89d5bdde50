"""A run's stop at a safe point (``Trainer._stop_point``), where every rank stops at the same step: the stop codes
the ranks reduce with MAX (a signal number, an unreadable batch, a dead loading worker), the test of a batch's pixels
joined to them, the error raised on every rank and the lines that name each failing rank's file, and what a Ctrl-C
says."""
from __future__ import annotations

from typing import Any, List, Optional

import torch

from neurozoo.convrnn.network import may_hold_non_finite
from neurozoo.convrnn.training.imagefolder import raised_in_worker
from neurozoo.datasets.errors import DataError


class DataErrorMidRun(DataError):
    """Data found unreadable once training has started (a corrupt image), a batch holding NaN/inf pixels, or, under
    torchrun, another error raised in loading a batch: one line naming the file (``files``: of each rank that found
    one; ``non_finite`` and ``raised``: how many of those lines are of NaN/inf pixels and of other errors), raised on
    every rank at the same step, after the checkpoint of the last step trained was written, as a stop (SIGTERM) does
    (``Trainer._stop_point``)."""

    def __init__(self, message: str, files: int = 1, non_finite: int = 0, raised: int = 0):
        super().__init__(message)
        self.files = files
        self.non_finite = non_finite
        self.raised = raised


# the stop codes of a rank that could not read its batch or whose loading worker died, above every signal number
# (the codes are reduced with MAX)
UNREADABLE_DATA = 1 << 16
WORKER_DIED = UNREADABLE_DATA + 1


def ranks_lines(lines: List[Optional[str]], always: bool = False) -> List[str]:
    """The lines of the ranks that have one (``lines``: every rank's, gathered), each naming its rank when there
    are several, or ``always`` (a line that does not name a file of the rank's own)."""
    failed = [(rank, line) for rank, line in enumerate(lines) if line]
    return [line if len(failed) == 1 and not always else f"rank {rank}: {line}" for rank, line in failed]


def non_finite_flag(images: Any) -> Optional[torch.Tensor]:
    """``UNREADABLE_DATA`` if a pixel of ``images`` may be NaN or infinite, else 0: a one-element tensor on their
    device, computed there without reading it back (``max_over_ranks`` joins it to the stop flag). Their sum (in at
    least float32), which a NaN or an infinity makes non-finite: one pass over the batch without the boolean tensor of
    ``isfinite(images).all()`` (64 images of 224 x 224 on one CPU thread: 6.6 ms against 168 ms; a float64 sum took
    82 ms). Finite pixels whose sum overflows (values near 1e30) raise it too: ``Trainer._stop_point`` then finds no
    image to name and goes on. None for anything but a floating-point tensor."""
    if not (isinstance(images, torch.Tensor) and images.is_floating_point()):
        return None
    return may_hold_non_finite(images).long() * UNREADABLE_DATA


def error_line(error: BaseException) -> str:
    """``Type: message`` of ``error`` in one line, its last (a loading worker's error: the one it raised there)."""
    lines = raised_in_worker(error).strip().splitlines()
    text = lines[-1] if lines else ""
    name = type(error).__qualname__
    for prefix in (f"{type(error).__module__}.{name}: ", f"{name}: "):
        text = text[len(prefix):] if text.startswith(prefix) else text
    return f"{name}: {text}" if text else name


def image_name(dataset: Any, index: int) -> str:
    """Image ``index`` of ``dataset`` as a user finds it: its file (an ``ImageFolder``'s ``samples``), else its
    index."""
    samples = getattr(dataset, "samples", None)
    try:
        return str(samples[index][0])
    except (TypeError, IndexError, KeyError):
        return f"{index} of {type(dataset).__name__}"


#: what the first Ctrl-C says (``Trainer.fit`` defers it as a SIGTERM), and the interrupt a second one raises at once
STOPPING = "stopping at the next batch, with a checkpoint of the step reached"
STOPPED_AT_ONCE = "stopped at once by a second Ctrl-C: the steps since the last checkpoint were lost"
