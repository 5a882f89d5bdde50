"""What a long job is doing, told to whoever shows its progress: ``zoo run``'s and ``zoo work``'s job bar
(:func:`leaderboard.scorer.work`) listens while it scores a job, and a retina fit inside the job tells it that a fit
begins (not cached) and each epoch it ends. Without a listener (``zoo fit``, ``zoo score``, Python) telling does
nothing. It is display only: nothing told reaches a result, a record's settings or a cache key."""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, Optional

#: ``listener(text, begins)``: ``begins`` True for a new stretch of work (``fitting ln on embedded:whitenoise ...``,
#: said once), False for a step of it (``epoch 3 of at most 40``)
Listener = Callable[[str, bool], None]

_listener: ContextVar[Optional[Listener]] = ContextVar("neurozoo_activity_listener", default=None)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """``listener`` is told what the code run in the block is doing (:func:`tell`)."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def tell(text: str, begins: bool = False) -> None:
    """Tell the listener of the block this runs in (:func:`listening`), if any, what is being done."""
    listener = _listener.get()
    if listener is not None:
        listener(text, begins)
