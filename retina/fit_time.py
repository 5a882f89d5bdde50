"""How long fitting a retina model took, over every run of :func:`retina.fit.fit` that made it.

A fit with an output folder may be made in several runs (stretches): one stopped by SIGTERM, Ctrl-C or a kill, then
resumed from its ``checkpoint.pt``, perhaps more than once. Each run's seconds are kept in the folder's
:data:`FIT_TIME` (``fit_time.json``), not in the checkpoint: two fits with the same settings write checkpoints with
the same bytes, and a time inside would make them differ. The file is rewritten whole (atomically, flushed) before
each checkpoint is written, with this run's seconds up to that checkpoint and the sha256 of the checkpoint's bytes;
it keeps the mark of the checkpoint before too. A resumed run keeps of it exactly what led to the checkpoint it
resumes, found by that sha256 (:meth:`FitTime.resumed`), so that a kill between the two writes, either way round,
neither counts a run twice nor takes another fit's time (a file left beside another checkpoint matches none). Where
nothing matches (a fit begun before fit times were kept, a kill right after the first write of a checkpoint whose
file was lost), the epochs before are one stretch of unknown time (``seconds`` None) and the total is unknown (None):
never a number that leaves them out. A run that fits no epoch and calibrates nothing (a finished fit read again, the
fit cache's every score) is no stretch and leaves the file as it was.

Format: ``{"stretches": [...], "current": [...]}``, each entry ``{"epochs": [first, end], "seconds": s,
"checkpoint_sha256": hex}``: the earlier runs' stretches, then up to two marks of the run under way (the last
checkpoint's, and the one about to be written). ``epochs``: the run fitted epochs ``first`` to ``end - 1``
(``history.json``'s numbering); ``[n, n]``: no epoch, the output calibration only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

#: The file beside ``checkpoint.pt`` that keeps the fit's time per run (:class:`FitTime`).
FIT_TIME = "fit_time.json"


class FitTime:
    """The stretches of fitting that made one fit: the earlier runs' (read from :data:`FIT_TIME`) and this run's,
    counted from ``started`` (``time.perf_counter()`` at the run's start) to its last :meth:`mark`. ``out``: the fit's
    folder (None: a fit without one, whose time is this run's only and written nowhere)."""

    def __init__(self, out: Optional[Path], started: float, first_epoch: int = 0,
                 earlier: Optional[List[dict]] = None):
        self.path = Path(out) / FIT_TIME if out is not None else None
        self.started, self.first_epoch = started, first_epoch
        self.earlier = list(earlier or [])
        self.marks: List[dict] = []  # this run's, the last two

    @classmethod
    def resumed(cls, out: Path, started: float, checkpoint_sha256: str, epoch: int) -> "FitTime":
        """The time of the fit in ``out`` whose checkpoint (``epoch`` epochs fitted) has the sha256
        ``checkpoint_sha256``: the stretches of :data:`FIT_TIME` that led to it, else one of unknown time."""
        return cls(out, started, epoch, _stretches_to(Path(out) / FIT_TIME, checkpoint_sha256, epoch))

    def mark(self, epoch: int, checkpoint_sha256: Optional[str], now: float) -> float:
        """This run has fitted up to ``epoch`` epochs (and the calibration, where it made one) at ``now``, and the
        checkpoint with those bytes (``checkpoint_sha256``; None: none is kept) is about to be written, or is the one
        there: recorded, and the file rewritten before that checkpoint is. Returns this run's seconds."""
        seconds = now - self.started
        self.marks = [*self.marks[-1:], {"epochs": [self.first_epoch, epoch], "seconds": seconds,
                                         "checkpoint_sha256": checkpoint_sha256}]
        if self.path is not None:
            from neurozoo.datasets.json_files import write_json

            write_json(self.path, {"stretches": self.earlier, "current": self.marks}, fsync=True)
        return seconds

    def stretches(self) -> List[dict]:
        """``[{"epochs": [first, end], "seconds": s or None}, ...]``: the earlier runs', then this run's where it
        fitted anything (:meth:`mark`)."""
        return [{"epochs": list(s["epochs"]), "seconds": s["seconds"]} for s in [*self.earlier, *self.marks[-1:]]]

    def total(self) -> Optional[float]:
        """The seconds of every stretch, summed; None where one's time is unknown."""
        seconds = [s["seconds"] for s in self.stretches()]
        return None if any(s is None for s in seconds) else float(sum(seconds))


def _stretches_to(path: Path, checkpoint_sha256: str, epoch: int) -> List[dict]:
    """The stretches in ``path`` (:data:`FIT_TIME`) that led to the checkpoint with the sha256 ``checkpoint_sha256``:
    the earlier runs', and the mark of the last run that names it; where none does (or the file is missing or not one
    this module wrote), one stretch of ``epoch`` epochs and unknown time. A timing file never stops a resume."""
    unknown = [{"epochs": [0, epoch], "seconds": None, "checkpoint_sha256": checkpoint_sha256}]
    try:
        saved = json.loads(path.read_text())
        stretches, current = list(saved["stretches"]), list(saved["current"])
        if not all(_is_stretch(entry) for entry in [*stretches, *current]):
            return unknown
        for mark in reversed(current):
            if mark["checkpoint_sha256"] == checkpoint_sha256:
                return [*stretches, mark]
        if stretches and stretches[-1]["checkpoint_sha256"] == checkpoint_sha256:  # the last run died before its
            return stretches  # first checkpoint: what it did is not in the checkpoint resumed
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return unknown


def _is_stretch(entry) -> bool:
    """Whether ``entry`` is a stretch as :class:`FitTime` writes one (a file edited by hand is not read)."""
    return (isinstance(entry, dict) and isinstance(entry.get("epochs"), list) and len(entry["epochs"]) == 2
            and all(isinstance(e, int) for e in entry["epochs"])
            and (entry.get("seconds") is None or isinstance(entry["seconds"], (int, float)))
            and isinstance(entry.get("checkpoint_sha256"), (str, type(None))))
