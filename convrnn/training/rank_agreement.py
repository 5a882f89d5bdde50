"""Whether the ranks of a torchrun see the same data and start from the same point (:func:`check_ranks_agree`):
each rank's view against rank 0's before any training, every rank refusing together (``RanksDisagree``)."""
from __future__ import annotations

import socket
from typing import Any, Dict, Optional

from neurozoo.convrnn.training.distributed import DistInfo, all_gather_objects
from neurozoo.convrnn.training.file_checksums import files_checksum
from neurozoo.convrnn.training.imagefolder import class_difference
from neurozoo.datasets.errors import UserFacingError


class RanksDisagree(UserFacingError):
    """The ranks of a torchrun see different data or resume from different points (a node with its own copy of
    ``--data`` or ``--out``): raised on every rank at the same point, before any training; rank 0 says it."""


def data_view(split) -> Optional[Dict[str, Any]]:
    """What every rank must see alike of a split: its image count and the checksum of its file names, labels and sizes
    (:func:`files_checksum`)."""
    return None if split is None else {"images": len(split), "files_sha256": files_checksum(split, "sizes")}


def data_difference(first: Dict[str, Any], other: Dict[str, Any]) -> Optional[str]:
    """How ``other`` rank's data (``Trainer._data_view``) differs from rank 0's (``first``), in words; None if alike."""
    if first["classes"] != other["classes"]:
        return class_difference(first["classes"], other["classes"], other="rank 0")
    for split in ("train", "val"):
        mine, theirs = other[split], first[split]
        if mine == theirs:
            continue
        if mine is None or theirs is None:
            here, there = ("absent", "present") if mine is None else ("present", "absent")
            return f"{split}/ is {here} there, {there} on rank 0"
        if mine["images"] != theirs["images"]:
            return f"{mine['images']} images in {split}/, rank 0 has {theirs['images']}"
        return (f"the file names or sizes of its {mine['images']} images in {split}/ differ from rank 0's (sha256 of "
                f"the list)")
    return None


def resume_difference(first: Dict[str, Any], other: Dict[str, Any]) -> Optional[str]:
    """How ``other`` rank's starting point (``Trainer._resume_view``) differs from rank 0's (``first``); None if alike."""
    if first["position"] == other["position"]:
        return None

    def start(view: Dict[str, Any], who: str) -> str:
        if view["checkpoint"] is None:
            return f"{who} found no checkpoint and starts afresh"
        return f"{who} resumes {view['checkpoint']} at {view['position']}"

    return f"{start(other, 'it')}, {start(first, 'rank 0')}"


def check_ranks_agree(dist: DistInfo, view: Dict[str, Any], difference, where: str, sees: str, how: str) -> None:
    """Every rank's ``view`` against rank 0's (``difference(rank 0's, other) -> words or None``); ``where``,
    ``sees`` and ``how`` word the refusal. Each rank reads ``--data`` and ``--out`` itself: on nodes with their own copies,
    another class list trained each class under other labels without a word, and another image count gave another
    number of steps per epoch, so the ranks waited for each other's all-reduces for ever (a hang); a rank that
    found no checkpoint to resume trained from scratch beside ranks that resumed. All ranks raise together, so
    none waits for another."""
    if not dist.distributed:
        return
    views = all_gather_objects({"host": socket.gethostname(), "view": view})
    for rank, other in enumerate(views[1:], start=1):
        words = difference(views[0]["view"], other["view"])
        if words is not None:
            raise RanksDisagree(f"{where}: rank {rank} (host {other['host']}) {sees} than rank 0 (host "
                                f"{views[0]['host']}): {words}; every node must see the same {where.split()[0]} "
                                f"folder ({how})")
