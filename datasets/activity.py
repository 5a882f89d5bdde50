"""What a long job is doing, told to whoever shows its progress: ``zoo run``'s and ``zoo work``'s job bar
(:func:`leaderboard.scorer.work`) listens while it scores a job, and a retina fit inside the job tells it that a fit
begins (not cached), each epoch it ends, and that it has ended. Without a listener (``zoo fit``, ``zoo score``,
Python) telling does nothing. It is display only: nothing told reaches a result, a record's settings or a cache key.

Lines for the user that the code in the block writes to stderr (:func:`say`; ``resuming CHECKPOINT: ...``) and its
warnings go through the listener's ``write`` where it has one (a bar: the line above it, the bar redrawn under it,
not broken by it); elsewhere they are printed to stderr as without a listener."""
from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Optional

#: ``listener(text, begins)``: ``begins`` True for a new stretch of work (``fitting ln on embedded:whitenoise ...``,
#: said once), False for a step of it (``epoch 3 of at most 40``), None where the stretch has ended and ``text`` says
#: what was done (``ln fitted on embedded:whitenoise``): shown until the job's next stretch, said in no line
Listener = Callable[[str, Optional[bool]], None]

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


def tell(text: str, begins: bool = False) -> None:
    """Tell the listener of the block this runs in (:func:`listening`), if any, what is being done."""
    listener = _listener.get()
    if listener is not None:
        listener(text, begins)


def tell_ended(text: str) -> None:
    """Tell the listener of the block this runs in, if any, that the stretch of work told begun has ended: ``text``
    says what was done (``ln fitted on embedded:whitenoise``), instead of its last step."""
    listener = _listener.get()
    if listener is not None:
        listener(text, None)


def say(text: str) -> None:
    """A line for the user on stderr: through the ``write`` of the block this runs in (:func:`listening`), if it has
    one, else printed (flushed), as without a listener."""
    write = _write.get()
    if write is not None:
        write(text)
    else:
        print(text, file=sys.stderr, flush=True)
