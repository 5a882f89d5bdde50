"""SIGTERM (``kill``, a cluster's preemption, a service manager stopping ``zoo work``, ``zoo search --workers K``
stopping its other workers) as a request to stop, raised as ``KeyboardInterrupt("signal 15")`` only at safe points
(:func:`raise_if_terminated`): before each training or validation batch of the ConvRNN trainer (which first agrees
on the stop with its other ranks and saves a checkpoint, :func:`termination_requested`), between the activation
extraction batches of ``zoo score`` (imagenet.val's evaluation batches, a retina benchmark's probe stimuli:
:data:`SafePoint`), between search trials, in the loop of a command that waits for its workers, while ``zoo work``
supervises a sandboxed job, and between the jobs of ``zoo work`` and ``zoo run`` (a job scored in-process is
finished and stored first), and at the end of each epoch of a retina fit (:func:`retina.fit.fit`, which defers Ctrl-C
there too: ``sigint_note``), and, for a request none of those saw, at the end of the outermost deferred block
(:func:`sigterm_deferred`).

The handler used to raise the interrupt itself, wherever Python happened to be. Inside a garbage-collector callback
(optuna collects garbage after each trial) Python prints "Exception ignored in ..." with a traceback and drops the
exception, so the process ran on as if never asked to stop; inside a database call it can leave the session half
done. Ctrl-C (SIGINT) keeps Python's own behaviour, except in a block that defers it too (``sigint_note``), where the
first Ctrl-C is a request like SIGTERM's and a second one raises ``KeyboardInterrupt`` at once.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Callable, Optional

_requested: Optional[int] = None  # the signal number of a pending request
_taken = False  # whether a safe point has seen the pending request (raised it or returned it to act on)
_depth = 0  # how many sigterm_deferred blocks are open (the trainer's inside ``zoo train``'s or a search trial's)


@contextmanager
def sigterm_deferred(sigint_note: Optional[str] = None, sigint_again: Optional[str] = None):
    """Within the block, SIGTERM only records the request (:func:`raise_if_terminated` raises it). Outside the main
    thread, where no handler can be installed, the block runs unchanged. Blocks nest: a request stays pending until
    the outermost block ends (an inner block ending normally cleared it, so the outer one ran on as if never asked).
    A SIGTERM the process was told to ignore (SIG_IGN as the block begins: started by a parent that ignores it, ``trap
    '' TERM``) stays ignored in and after the block, as an ignored Ctrl-C does: the block's handler replaced SIG_IGN,
    so such a process stopped at its next safe point. Its children inherit SIG_IGN: one that it stops with SIGTERM
    gets the default back (``convrnn.search.workers``); a data-loading worker's SIG_IGN is replaced by torch's worker
    handler and :func:`sigterm_from`, so the trainer's exit still ends its workers. A SIGTERM handler set from C
    (``signal.getsignal`` gives None: an embedding program's) is left in place likewise, as Python could not restore
    it (Ctrl-C's is replaced and the default restored after the block).

    The outermost block's end is the last safe point: a request no safe point saw (:func:`raise_if_terminated`,
    :func:`termination_requested`) is acted on there, once the handlers are restored, as ``KeyboardInterrupt("signal
    N")``, or handed to the SIGTERM (SIGINT) handler the block replaced when that was one set from Python (other than
    Python's Ctrl-C one). It used to be forgotten: a SIGTERM that came after the last safe point (as ``zoo fit``
    printed its results, as ``zoo run``'s last job was stored) let the command exit 0 as if never asked to stop. A
    block that ends with an exception is stopping its caller already: that exception goes on unchanged.

    ``sigint_note``: Ctrl-C is deferred too; the first one writes ``Ctrl-C: <note> (Ctrl-C again stops at once)`` to
    stderr (a Ctrl-C that seemed to do nothing for the minute an epoch takes invited a kill -9) and records the
    request, a second raises ``KeyboardInterrupt(sigint_again)`` where Python is (``sigint_again``: what stopping at
    once lost and kept, which ``zoo``'s exit line prints; a bare ``KeyboardInterrupt`` without it). An empty note
    defers Ctrl-C without a word (the ranks of a torchrun other than rank 0, which says it for them)."""
    global _requested, _depth, _taken
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum, frame):
        global _requested
        if signum == signal.SIGINT and _requested is not None:
            raise KeyboardInterrupt(*([sigint_again] if sigint_again else []))
        if signum == signal.SIGINT and sigint_note:  # os.write: a print here could meet one the interrupted code made
            os.write(2, f"\nCtrl-C: {sigint_note} (Ctrl-C again stops at once)\n".encode())
        _requested = _requested or signum

    # a SIGTERM or Ctrl-C the process was told to ignore (`trap '' TERM`, a scheduler's or a script's background job)
    # stays ignored: no handler replaces SIG_IGN. A SIGTERM handler set from C (getsignal: None; an embedding
    # program's) stays too: Python has no way to put it back, and restoring None failed with a TypeError
    sigterm_handler = signal.getsignal(signal.SIGTERM)
    defer_sigterm = sigterm_handler is not signal.SIG_IGN and sigterm_handler is not None
    previous = signal.signal(signal.SIGTERM, request) if defer_sigterm else None
    defer_sigint = sigint_note is not None and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    previous_sigint = signal.signal(signal.SIGINT, request) if defer_sigint else None
    _depth += 1
    ended = False
    try:
        yield
        ended = True
    finally:
        _depth -= 1
        if defer_sigterm:
            signal.signal(signal.SIGTERM, previous)
        if defer_sigint:  # None: a handler not set from Python, which leaves no way back to it but the default
            signal.signal(signal.SIGINT, signal.SIG_DFL if previous_sigint is None else previous_sigint)
        if _depth == 0:
            # read after the handlers are restored: a signal from here on goes to them, none recorded is missed
            unseen = _requested if not _taken else None
            _requested, _taken = None, False
            if unseen is not None and ended:
                _act_on(unseen, previous if unseen == signal.SIGTERM else previous_sigint)


def _act_on(signum: int, handler) -> None:
    """The outermost block's end acting on a request no safe point saw (:func:`sigterm_deferred`)."""
    if callable(handler) and handler is not signal.default_int_handler:
        signal.raise_signal(signum)  # the handler the block replaced, restored: it runs before the next line
    else:
        raise KeyboardInterrupt(f"signal {signum}")


def termination_requested() -> Optional[int]:
    """The signal number of a SIGTERM (or a deferred Ctrl-C) received inside :func:`sigterm_deferred` and not yet
    ended with it, else None (for a safe point that must do something first: the trainer agrees with its other ranks
    and saves). A caller given a signal number acts on it: the block's end then does not (:func:`sigterm_deferred`)."""
    global _taken
    _taken = _taken or _requested is not None
    return _requested


def raise_if_terminated() -> None:
    """A safe point: raise ``KeyboardInterrupt("signal 15")`` if a SIGTERM (or a deferred Ctrl-C: "signal 2") arrived
    inside :func:`sigterm_deferred`."""
    global _taken
    if _requested is not None:
        _taken = True
        raise KeyboardInterrupt(f"signal {_requested}")


#: A scorer's safe point, handed to the functions that score (``safe_point=``; ``zoo score``'s raises
#: ``KeyboardInterrupt`` there on a pending SIGTERM, :func:`raise_if_terminated`): called between the units of their
#: work, by a loop over batches with how far it is, ``safe_point(done, total)`` (the activation extraction,
#: imagenet.val's evaluation), and without arguments between the stages of a retina benchmark's analysis (each probe
#: stimulus, each chunk of a long one a model answers, each integrated-gradients step). It changes no number: the
#: work is the same, cut at the same places.
SafePoint = Callable[..., None]


def sigterm_from(parent: int, worker_id: int = 0) -> None:
    """A data-loading worker's ``worker_init_fn`` (``functools.partial(sigterm_from, os.getpid())`` in the trainer
    and imagenet.val's loader):
    the worker exits on a SIGTERM sent by ``parent`` (multiprocessing's ``terminate`` when the trainer shuts its
    workers down or exits) and ignores one sent by anyone else (a scheduler signalling every process of a job: SLURM);
    the trainer, signalled too, stops at its next safe point and shuts the worker down. Without it a worker died of
    such a signal (torch's worker handler re-raises a SIGTERM not sent by the worker's parent process), and the
    trainer failed at once ("DataLoader worker ... is killed by signal: Terminated") without saving its step; ignoring
    every SIGTERM instead (SIG_IGN) hangs the trainer's exit, which terminates and then joins its workers.

    Python handlers are not told the sender, so SIGTERM is blocked in the worker and a thread takes it with
    ``sigwaitinfo``, whose ``si_pid`` names the sender."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def take_sigterm() -> None:
        while True:
            if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
                os._exit(0)

    threading.Thread(target=take_sigterm, name="sigterm-from-trainer", daemon=True).start()
