"""SIGTERM (``kill``, a cluster's preemption, a service manager stopping ``zoo work``, ``zoo search --workers K``
stopping its other workers) as a request to stop, raised as ``KeyboardInterrupt("signal 15")`` only at safe
points (:func:`raise_if_terminated`): before each training or validation batch of the ConvRNN trainer (which
first agrees on the stop with its other ranks and saves a checkpoint, :func:`termination_requested`), between the
activation extraction batches of ``zoo score`` (imagenet.val's evaluation batches, a retina benchmark's probe
stimuli: :data:`SafePoint`), between search trials and in a trial's setup (``convrnn.search.objective``), in the
loop of a command that waits for its workers, while ``zoo work`` supervises a sandboxed job, and between the jobs
of ``zoo work`` and ``zoo run`` (a job scored in-process is finished and stored first), and at the end of each
epoch of a retina fit (:func:`retina.fit.fit`, which defers Ctrl-C there too: ``sigint_note``), and, for a
request none of those saw, at the end of the outermost deferred block (:func:`sigterm_deferred`). Before the work
begins, where a stop leaves nothing partial (a retina benchmark's or ``zoo fit``'s imports and reading of their
input, a trainer's setup, a search trial's look at its untrained model), it is raised at once:
:func:`stopping_at_once`.

The handler used to raise the interrupt itself, wherever Python happened to be. Inside a garbage-collector callback
(optuna collects garbage after each trial) Python prints "Exception ignored in ..." with a traceback and drops the
exception, so the process ran on as if never asked to stop; inside a database call it can leave the session half
done. A stop raised at once (:func:`stopping_at_once`, :func:`sigterm_stops_at_once`) can still meet such a
callback, as can a second Ctrl-C in a block that defers Ctrl-C (``sigint_note``: "stop now", anywhere in the block):
while their stretch (that block) is open, ``sys.unraisablehook`` is :func:`_redeliver`, which knows the handler's own
``KeyboardInterrupt`` (that instance, no other) and has the handler raise it again in the code right after the
callback, without printing it; anything else goes to the hook it replaced, put back after the stretch. It used to be
dropped: the stop came at the next safe point (seconds later, in a search trial's setup), or, with none (``zoo
reproduce``, a stretch's block without one), never. Ctrl-C (SIGINT) keeps Python's own behaviour, except in a block
that defers it too (``sigint_note``), where the first Ctrl-C is a request like SIGTERM's and a second one raises
``KeyboardInterrupt`` at once.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import _thread
from contextlib import contextmanager, nullcontext
from typing import Callable, Dict, Optional

_requested: Optional[int] = None  # the signal number of a pending request
_taken = False  # whether a safe point has seen the pending request (raised it or returned it to act on)
_depth = 0  # how many sigterm_deferred blocks are open (the trainer's inside ``zoo train``'s or a search trial's)
_at_once: Optional[int] = None  # the depth of the block whose stopping_at_once stretch is open, its work not begun
_foreign: Dict[int, bytes] = {}  # signal number -> the C library's action of a handler set from C, as restored
_raised: Optional[KeyboardInterrupt] = None  # the stop a handler last raised at once, known if Python drops it
_raised_signal = 0  # its signal number
_again: Optional[KeyboardInterrupt] = None  # a dropped stop re-delivered (:func:`_redeliver`): its handler raises it
_hooks = 0  # how many stretches that stop at once are open, with :func:`_redeliver` as sys.unraisablehook
_previous_hook = None  # the sys.unraisablehook that :func:`_redeliver` replaced and hands other exceptions to


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
    (``signal.getsignal`` gives None: an embedding program's) is left in place likewise, as Python's ``signal.signal``
    cannot reinstall it. A Ctrl-C one is deferred all the same and put back through the C library's ``sigaction``
    after the block (it was replaced by the default, so the embedding program's Ctrl-C handling was lost for good);
    ``signal.getsignal`` gives SIG_DFL for it from then on (Python's table cannot hold None again), which later blocks
    tell from a default one (:func:`_set_from_c`). Without a C library ``sigaction`` to read it with, it is left in
    place, as SIGTERM's is.

    The outermost block's end is the last safe point: a request no safe point saw (:func:`raise_if_terminated`,
    :func:`termination_requested`) is acted on there, once the handlers are restored, as ``KeyboardInterrupt("signal
    N")``, or handed to the SIGTERM (SIGINT) handler the block replaced when that was one set from Python (other than
    Python's Ctrl-C one). It used to be forgotten: a SIGTERM that came after the last safe point (as ``zoo fit``
    printed its results, as ``zoo run``'s last job was stored) let the command exit 0 as if never asked to stop. A
    block that ends with an exception is stopping its caller already: that exception goes on unchanged.

    ``sigint_note``: Ctrl-C is deferred too; the first one writes ``Ctrl-C: <note> (Ctrl-C again stops at once)`` to
    stderr (a Ctrl-C that seemed to do nothing for the minute an epoch takes invited a kill -9) and records the
    request, a second raises ``KeyboardInterrupt(sigint_again)`` where Python is (``sigint_again``: what stopping at
    once lost and kept, which ``zoo``'s exit line prints; a bare ``KeyboardInterrupt`` without it); one Python drops
    in a garbage-collector callback is raised right after it, as a stop at once is (:func:`_redeliver`, installed for
    the whole block). An empty note defers Ctrl-C without a word (the ranks of a torchrun other than rank 0, which
    says it for them)."""
    global _requested, _depth, _taken, _at_once
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum, frame):
        global _requested, _at_once, _taken, _again
        if _again is not None and signum == _raised_signal:  # a stop Python dropped, re-delivered: raised again, not
            again, _again = _again, None  # recorded again
            _stop(signum, KeyboardInterrupt(*again.args))
        if signum == signal.SIGINT and _requested is not None:  # a second Ctrl-C: at once
            _stop(signum, KeyboardInterrupt(*([sigint_again] if sigint_again else [])))
        if signum == signal.SIGINT and sigint_note:  # os.write: a print here could meet one the interrupted code made
            os.write(2, f"\nCtrl-C: {sigint_note} (Ctrl-C again stops at once)\n".encode())
        _requested = _requested or signum
        if _at_once is not None and _at_once == _depth:  # this block's stretch before its work: stopping_at_once
            _at_once, _taken = None, True  # raised, as a safe point raises it
            _stop(_requested)

    # a SIGTERM or Ctrl-C the process was told to ignore (`trap '' TERM`, a scheduler's or a script's background job)
    # stays ignored: no handler replaces SIG_IGN. A SIGTERM handler set from C (getsignal: None; an embedding
    # program's) stays too (restoring None failed with a TypeError); a Ctrl-C one is put back through the C library
    sigterm_handler = signal.getsignal(signal.SIGTERM)
    defer_sigterm = sigterm_handler is not signal.SIG_IGN and sigterm_handler is not None
    previous = signal.signal(signal.SIGTERM, request) if defer_sigterm else None
    sigint_handler = signal.getsignal(signal.SIGINT)
    defer_sigint = sigint_note is not None and sigint_handler is not signal.SIG_IGN
    foreign_sigint = _set_from_c(signal.SIGINT, sigint_handler) if defer_sigint else None
    if foreign_sigint is False:  # set from C, and no C library to put it back with: left in place, as SIGTERM's
        defer_sigint = False
    previous_sigint = signal.signal(signal.SIGINT, request) if defer_sigint else None
    _at_once = None  # a block of its own ends a stopping_at_once stretch around it, for good
    _depth += 1
    ended = False
    try:
        with _redelivering() if defer_sigint else nullcontext():  # a second Ctrl-C stops at once anywhere in it
            yield
        ended = True
    finally:
        _depth -= 1
        _at_once = None
        if defer_sigterm:
            signal.signal(signal.SIGTERM, previous)
        if defer_sigint and foreign_sigint:
            # Python's table can only be told SIG_DFL (not None), and SIGINT is blocked meanwhile: a Ctrl-C between
            # the two would have met the default and killed the program; one blocked reaches the C handler after
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _restore_c_action(signal.SIGINT, foreign_sigint)
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        elif defer_sigint:
            signal.signal(signal.SIGINT, signal.SIG_DFL if previous_sigint is None else previous_sigint)
        if _depth == 0:
            # read after the handlers are restored: a signal from here on goes to them, none recorded is missed
            unseen = _requested if not _taken else None
            _requested, _taken = None, False
            if unseen is not None and ended:
                _act_on(unseen, previous if unseen == signal.SIGTERM else (foreign_sigint or previous_sigint))


def _act_on(signum: int, handler) -> None:
    """The outermost block's end acting on a request no safe point saw (:func:`sigterm_deferred`): ``handler``, the
    one the block replaced and restored (the C library's action of one set from C: bytes)."""
    if isinstance(handler, bytes) or (callable(handler) and handler is not signal.default_int_handler):
        signal.raise_signal(signum)  # the handler the block replaced, restored: it runs before the next line
    else:
        raise KeyboardInterrupt(f"signal {signum}")


#: bytes enough for the C library's ``struct sigaction`` (152 on Linux's glibc, 16 on macOS), read and written whole
_SIGACTION_BYTES = 512


def _c_action(signum: int) -> Optional[bytes]:
    """The C library's ``sigaction`` for ``signum`` (the handler, mask and flags, as opaque bytes), or None where there
    is none to ask (no C library ``sigaction``: Windows)."""
    try:
        import ctypes

        action = ctypes.create_string_buffer(_SIGACTION_BYTES)
        if ctypes.CDLL(None).sigaction(signum, None, action) != 0:
            return None
        return action.raw
    except (OSError, AttributeError, TypeError):
        return None


def _set_from_c(signum: int, handler) -> Optional[bytes]:
    """For a block about to replace ``signum``'s handler (``handler``, Python's ``signal.getsignal``): the C library's
    action of a handler set from C, which Python cannot reinstall (``getsignal`` gives None: an embedding program's,
    set before Python started; or one that an earlier block put back, which Python's table gives as SIG_DFL since),
    to put back with :func:`_restore_c_action`; False for one set from C that cannot be read (no C library
    ``sigaction``); None for one Python set."""
    if handler is not None and not (handler is signal.SIG_DFL and signum in _foreign):
        return None
    action = _c_action(signum)
    if handler is None:
        return action or False
    # the same C function still (the handler comes first in the struct; glibc leaves bytes of the mask unset)
    return action if action is not None and _handler_of(action) == _handler_of(_foreign[signum]) else None


def _handler_of(action: bytes) -> bytes:
    """The handler's address in a C library ``struct sigaction`` (:func:`_c_action`), its first member."""
    import ctypes

    return action[:ctypes.sizeof(ctypes.c_void_p)]


def _restore_c_action(signum: int, action: bytes) -> None:
    """Put back the C library's ``action`` for ``signum`` (:func:`_set_from_c`), after Python's ``signal.signal`` set
    SIG_DFL in its table: a handler set from C runs again, though ``signal.getsignal`` gives SIG_DFL for it (the
    limit: Python's table cannot hold None again), which :data:`_foreign` tells from a default one."""
    import ctypes

    ctypes.CDLL(None).sigaction(signum, ctypes.create_string_buffer(action, len(action)), None)
    _foreign[signum] = _c_action(signum)


@contextmanager
def stopping_at_once():
    """Inside :func:`sigterm_deferred`, a stretch before its work begins, where a stop would leave nothing partial
    (imports, reading and checking the input, building the model): a SIGTERM (or a deferred Ctrl-C) pending as it
    begins, or arriving within it, raises ``KeyboardInterrupt("signal N")`` at once, wherever Python is, as Python's
    own Ctrl-C does, rather than at the first safe point, which a retina benchmark's ``zoo score`` or ``zoo fit``
    reached only after importing torch and scipy (~4 CPU-s). The stretch ends, for good, at the first safe point of
    its block (:func:`raise_if_terminated`, :func:`termination_requested`: the work has begun, and stops there from
    now on) or the first deferred block opened inside it (a lock's wait, a fit, whose writes wait for their safe
    points), and at its own end. A stop raised where Python drops exceptions (a garbage-collector callback's
    "Exception ignored in") is raised again right after the callback (:func:`_redeliver`). Outside a deferred block (or
    the main thread) it changes nothing."""
    global _at_once
    if _depth == 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    raise_if_terminated()
    outer, _at_once = _at_once, _depth
    try:
        with _redelivering():
            yield
    finally:
        _at_once = outer if _at_once is not None else None


@contextmanager
def sigterm_stops_at_once():
    """For a command that writes nothing a stop could leave partial (``zoo reproduce``: it scores into a scratch store
    and fits in a temporary folder, and prints its verdict at the end): SIGTERM raises ``KeyboardInterrupt("signal
    15")`` where Python is, as Python's Ctrl-C does, so the command exits 130 saying so and its temporary folder is
    removed. It was SIGTERM's default: killed without a word (exit -15), the folder left behind. A deferred block
    inside (a fit's) defers it as ever, and hands one no safe point saw back to this handler as it ends. A SIGTERM the
    process ignores, or one set from C, is left alone, as :func:`sigterm_deferred` leaves it; so is one outside the
    main thread. A stop Python drops in a garbage-collector callback is raised right after it (:func:`_redeliver`)."""
    before = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if before is None or before is signal.SIG_IGN:
        yield
        return

    def stop(signum, frame):
        global _again
        _again = None  # re-delivered or not: raised once
        _stop(signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        with _redelivering():
            yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _stop(signum: int, stop: Optional[KeyboardInterrupt] = None) -> None:
    """A handler's stop at once: ``stop`` (default ``KeyboardInterrupt("signal N")``; a second Ctrl-C's has its block's
    words), remembered so that :func:`_redeliver` knows it if Python drops it."""
    global _raised, _raised_signal
    _raised, _raised_signal = KeyboardInterrupt(f"signal {signum}") if stop is None else stop, signum
    raise _raised


class _Trip(int):
    """A signal number whose ``pending`` marks it arrived, for its Python handler to run at Python's next check for
    signals (``_thread.interrupt_main``), read as an attribute: a call's end is such a check, an attribute's is not."""

    pending = property(_thread.interrupt_main)


def _redeliver(unraisable) -> None:
    """``sys.unraisablehook`` while a stretch that stops at once is open (:func:`_redelivering`): the stop a handler
    raised inside a garbage-collector callback (a ``__del__``, a weakref callback), which Python drops there, is
    delivered again, to be raised in the code right after the callback; anything else goes to the hook it replaced."""
    global _raised, _again
    if _raised is None or unraisable.exc_value is not _raised:
        return _previous_hook(unraisable)
    _raised, _again = None, _raised  # a stop dropped again (the next __del__ of a chain) comes here again
    # last, and read as an attribute: a call here would let the handler run at its end, inside this hook, where its
    # exception is dropped again; nothing checks for signals from here until the code after the callback
    _Trip(_raised_signal).pending


@contextmanager
def _redelivering():
    """Install :func:`_redeliver` for the block (the outermost of such blocks), and put the hook back after it."""
    global _hooks, _previous_hook, _raised, _again
    if _hooks == 0:
        _previous_hook, sys.unraisablehook = sys.unraisablehook, _redeliver
    _hooks += 1
    try:
        yield
    finally:
        _hooks -= 1
        if _hooks == 0:
            if sys.unraisablehook is _redeliver:  # one installed meanwhile (a test's) is left in place
                sys.unraisablehook = _previous_hook
            _previous_hook, _raised, _again = None, None, None


def exit_status(code: int) -> int:
    """``code``, for a ``python -m`` entry point's ``sys.exit(exit_status(main()))``: so that the process exits with
    it. CPython remembers a ``KeyboardInterrupt`` that ended an ``exec`` or ``eval`` of a string (``dataclasses`` and
    ``namedtuple`` build their methods so, as a module defining them is imported) even once it was caught, and a
    ``-m`` run whose ``main`` returned then killed itself by SIGINT (exit -2) instead of exiting with ``code``: a
    SIGTERM stopping ``zoo`` in its start-up printed its line, "interrupted; signal 15", then exited -2, not 130,
    about one time in five (as did a ``zoo search`` worker, whose command reads 130 as the worker's own stop). A
    string's ``exec`` that ends normally clears what was remembered (``run_eval_code_obj``, CPython's pythonrun.c).
    The console script ``zoo`` (a file) exits through another path, with ``code`` either way."""
    exec("")  # an empty string's: its normal end is what clears the remembered interrupt
    return code


def termination_requested() -> Optional[int]:
    """The signal number of a SIGTERM (or a deferred Ctrl-C) received inside :func:`sigterm_deferred` and not yet
    ended with it, else None (for a safe point that must do something first: the trainer agrees with its other ranks
    and saves). A caller given a signal number acts on it: the block's end then does not (:func:`sigterm_deferred`)."""
    global _taken
    _work_begins()
    _taken = _taken or _requested is not None
    return _requested


def raise_if_terminated() -> None:
    """A safe point: raise ``KeyboardInterrupt("signal 15")`` if a SIGTERM (or a deferred Ctrl-C: "signal 2") arrived
    inside :func:`sigterm_deferred`."""
    global _taken
    _work_begins()
    if _requested is not None:
        _taken = True
        raise KeyboardInterrupt(f"signal {_requested}")


def _work_begins() -> None:
    """A safe point reached: the :func:`stopping_at_once` stretch of its block, if any, ends."""
    global _at_once
    if _at_once is not None and _at_once == _depth:
        _at_once = None


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


#: Linux's prctl option that asks the kernel for a signal once the thread that started this process ends
PR_SET_PDEATHSIG = 1


def signal_when_parent_dies(signum: int) -> bool:
    """Ask the kernel for ``signum`` once the thread that started this process ends (Linux's
    ``prctl(PR_SET_PDEATHSIG)``), so that a child killed with its parent (SIGKILL, the out-of-memory killer) does not
    run on unsupervised. False where it cannot be asked (not Linux, no C library ``prctl``): the child then outlives
    its parent. Safe between fork and exec (a ``preexec_fn``): one C call, nothing imported that is not loaded."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):
        return False
    return True
