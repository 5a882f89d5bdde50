"""What a long job is doing, told to whoever shows its progress: ``zoo run``'s and ``zoo work``'s job bar
(:func:`leaderboard.scorer.work`) listens while it scores a job, and the job tells it what it does: a retina fit, that it
begins (not cached), each epoch it ends, and that it has ended; an extraction of activations, each batch it begins
(:func:`benchmarks.extraction.extract`); the scoring of features, each split it scores
(:func:`leaderboard.zoo.score_splits`). Without a listener (``zoo fit``, ``zoo score``, Python) telling does nothing.
It is display only: nothing told reaches a result, a record's settings or a cache key.

Lines for the user that the code in the block writes to stderr (:func:`say`; ``resuming CHECKPOINT: ...``) and its
warnings go through the listener's ``write`` where it has one (a bar: the line above it, the bar redrawn under it,
not broken by it); elsewhere they are printed to stderr as without a listener."""
from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Optional

#: ``listener(text, begins, why)``: ``begins`` True for a new stretch of work (``fitting ln on embedded:whitenoise``,
#: ``extracting activations``), False for a step of it (``epoch 3 of at most 40``, ``batch 3 of 10``), None where the
#: stretch has ended and ``text`` says what was done (``ln fitted on embedded:whitenoise``): shown until the job's next
#: stretch, said in no line. ``why``: why a stretch begun is done (``not cached yet; later runs reuse it``), or None: a
#: stretch with a why is worth a line of its own, ``TEXT (WHY)``, said once; the bar shows what and how far, without it
Listener = Callable[[str, Optional[bool], Optional[str]], None]

_listener: ContextVar[Optional[Listener]] = ContextVar("neurozoo_activity_listener", default=None)
_write: ContextVar[Optional[Callable[[str], None]]] = ContextVar("neurozoo_activity_write", default=None)


@contextmanager
def listening(listener: Listener, write: Optional[Callable[[str], None]] = None) -> Iterator[None]:
    """``listener`` is told what the code run in the block is doing (:func:`tell`); with ``write``, the block's lines
    (:func:`say`) and warnings are written through it (``tqdm.write``: the bar is redrawn under them)."""
    token, written = _listener.set(listener), _write.set(write)
    shown = warnings.showwarning
    if write is not None:  # restored after the block (work() scores one job at a time, in its one thread)
        def showwarning(message, category, filename, lineno, file=None, line=None):
            if file is not None and file is not sys.stderr:
                return shown(message, category, filename, lineno, file, line)
            write(warnings.formatwarning(message, category, filename, lineno, line).rstrip("\n"))

        warnings.showwarning = showwarning
    try:
        yield
    finally:
        warnings.showwarning = shown
        _write.reset(written)
        _listener.reset(token)


def tell(text: str, begins: bool = False, why: Optional[str] = None) -> None:
    """Tell the listener of the block this runs in (:func:`listening`), if any, what is being done: ``begins``, a new
    stretch of work, else a step of the one under way; ``why`` (a stretch begun only): why it is done, said with it in
    a line of its own (:data:`Listener`)."""
    if why is not None and not begins:
        raise ValueError(f"tell({text!r}): why={why!r} is said of a stretch begun (begins=True), not of a step")
    listener = _listener.get()
    if listener is not None:
        listener(text, begins, why)


def tell_ended(text: str) -> None:
    """Tell the listener of the block this runs in, if any, that the stretch of work told begun has ended: ``text``
    says what was done (``ln fitted on embedded:whitenoise``), instead of its last step."""
    listener = _listener.get()
    if listener is not None:
        listener(text, None, None)


def say(text: str) -> None:
    """A line for the user on stderr: through the ``write`` of the block this runs in (:func:`listening`), if it has
    one, else printed (flushed), as without a listener."""
    write = _write.get()
    if write is not None:
        write(text)
    else:
        print(text, file=sys.stderr, flush=True)
