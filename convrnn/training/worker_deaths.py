"""A data-loading worker that dies (SIGKILL: the out-of-memory killer; a crash) as a stop request of the trainer, like
a SIGTERM: the run stops at its next batch with a checkpoint of the last step trained (``Trainer._stop_point``).

torch learns of the death from SIGCHLD: its handler (set once per process by the first loader iterator with workers)
raises ``RuntimeError("DataLoader worker (pid N) is killed by signal: Killed.")`` wherever the main thread is, in a
forward pass or half-way through an optimizer step, whose weights could then not be checkpointed; while the trainer
waits for a batch, the loader raises it (or "DataLoader worker (pid(s) N) exited unexpectedly"). The run died without
a checkpoint: the steps since the last one were lost (an epoch without ``--checkpoint-every``)."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Optional

from neurozoo.datasets.errors import UserFacingError

#: how torch's errors of a dead loading worker begin (its SIGCHLD handler's and the loader's)
DIED = "DataLoader worker (pid"


class WorkerDied(UserFacingError):
    """A data-loading worker died (SIGKILL: the out-of-memory killer; a crash; ``worker_deaths``): raised on every
    rank at the same step, after the checkpoint of the last step trained was written, as a stop (SIGTERM) does
    (``Trainer._stop_point``)."""


#: what a worker killed by SIGKILL says, besides torch's line
KILLED_WORKER = ("SIGKILL: the out-of-memory killer, unless someone sent it; fewer --workers or a smaller --batch-size "
                 "need less memory")


def worker_death(error: Optional[BaseException]) -> Optional[str]:
    """``error``'s line when it says that a loading worker died, else None; the line of its cause when that says it
    too: the SIGCHLD handler's error raised while the loader waits for a batch becomes the loader's "exited
    unexpectedly", which loses the signal."""
    if not isinstance(error, RuntimeError) or not str(error).startswith(DIED):
        return None
    return worker_death(error.__cause__) or str(error).strip()


class WorkerDeaths:
    """The first loading worker death this process's trainer learnt of (``died``, torch's line), kept for its next
    stop point: inside :meth:`deferred` torch's SIGCHLD handler does not raise where the main thread happens to be,
    except while :meth:`next` waits for a batch."""

    def __init__(self):
        self.died: Optional[str] = None
        self._waiting = False

    @contextmanager
    def deferred(self):
        """Within the block, a worker's death is recorded, not raised (outside the main thread, where no handler can
        be set, the block runs unchanged)."""
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGCHLD"):
            yield
            return
        try:  # torch's private helper: a torch that moved it leaves the block unchanged (the death raised as before)
            from torch.utils.data._utils.signal_handling import _set_SIGCHLD_handler
        except ImportError:
            yield
            return

        _set_SIGCHLD_handler()  # torch's, set now (else by the block's first iterator, above this one's)
        torch_handler = signal.getsignal(signal.SIGCHLD)

        def handler(signum, frame):
            try:
                if callable(torch_handler):
                    torch_handler(signum, frame)
            except RuntimeError as error:
                line = worker_death(error)
                if line is None or self._waiting:
                    raise
                self.died = self.died or line

        signal.signal(signal.SIGCHLD, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGCHLD, torch_handler)

    def next(self, batches):
        """``next(batches, None)``; None too once a worker has died (``died`` says how), the batches already loaded
        left unread: the stop comes at the first batch after the death was learnt of."""
        if self.died is None:
            self._waiting = True
            try:
                return next(batches, None)
            except RuntimeError as error:
                self.died = worker_death(error)
                if self.died is None:
                    raise
            finally:
                self._waiting = False
        return None
