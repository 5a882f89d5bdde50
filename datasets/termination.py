"""SIGTERM (``kill``, a cluster's preemption, a service manager stopping ``zoo work``, ``zoo search --workers K``
stopping its other workers) as a request to stop, raised as ``KeyboardInterrupt("signal 15")`` only at safe points
(:func:`raise_if_terminated`): before each training or validation batch of the ConvRNN trainer, between search
trials, in the loop of a command that waits for its workers, while ``zoo work`` supervises a sandboxed job and
between its jobs.

The handler used to raise the interrupt itself, wherever Python happened to be. Inside a garbage-collector callback
(optuna collects garbage after each trial) Python prints "Exception ignored in ..." with a traceback and drops the
exception, so the process ran on as if never asked to stop; inside a database call it can leave the session half
done. Ctrl-C (SIGINT) keeps Python's own behaviour.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Optional

_requested: Optional[int] = None  # the signal number of a pending request


@contextmanager
def sigterm_deferred():
    """Within the block, SIGTERM only records the request (:func:`raise_if_terminated` raises it). Outside the main
    thread, where no handler can be installed, the block runs unchanged."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum, frame):
        global _requested
        _requested = signum

    previous = signal.signal(signal.SIGTERM, request)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _requested = None


def raise_if_terminated() -> None:
    """A safe point: raise ``KeyboardInterrupt("signal 15")`` if a SIGTERM arrived inside :func:`sigterm_deferred`."""
    if _requested is not None:
        raise KeyboardInterrupt(f"signal {_requested}")
