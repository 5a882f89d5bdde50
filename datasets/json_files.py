"""JSON files that people and other programs read (summaries, histories, probe records): strict JSON, where a NaN
or an infinity is ``null`` (Python's ``json`` writes a bare ``NaN``, which JSON readers reject) and numpy values are
plain numbers; written whole or not at all (a temporary file renamed into place: ``write_atomic``, for any text or
bytes)."""
from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator, Optional, Union


def finite(value) -> Optional[float]:
    """``float(value)``, or None for None, NaN and infinities."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def json_safe(obj: Any) -> Any:
    """``obj`` made JSON-serialisable, recursively: numpy scalars and arrays -> numbers and lists, NaN -> None,
    tuples -> lists, paths -> strings; anything else -> its ``repr``."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return finite(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


#: Numbers the writers of this process: two threads writing one file must not share a temporary.
_WRITERS = itertools.count()


def temporary_path(path, pid: Optional[int] = None, host: Optional[str] = None, writer: Optional[int] = None) -> Path:
    """``<path>.tmp-<host>-<pid>.<writer>``: where :func:`written_whole`'s ``writer``-th call of this process (unless
    ``pid`` and ``host`` are given) writes ``path``; a cleanup matches it with the pattern ``<name>.tmp*`` and reads
    the host and pid in it (:func:`datasets.cache.remove_dead_temporaries`). Without ``writer``, the name of before."""
    from neurozoo.datasets.cache import temporary_suffix  # here: zoo's parser imports this module, cache needs numpy

    path = Path(path)
    return path.with_name(path.name + temporary_suffix(pid, host) + ("" if writer is None else f".{writer}"))


@contextlib.contextmanager
def written_whole(path, fsync: bool = False, replace=None) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` (:func:`temporary_path`, this call's own: threads of one process
    writing one file each write theirs) to write; on success it is renamed over ``path`` (atomic on POSIX), on an
    error removed: a reader, or a rerun after a kill, sees the old file or the new one, never half of one (nor a mix
    of two writers'). ``fsync``: the data reach the disk before the rename and the rename before the return,
    so that a power cut too leaves the old file or the new one (without, a crash of the machine may leave the new
    name on an empty file); costs a disk flush. The caller must have closed the file it wrote. ``replace(tmp, path)``:
    the rename (default ``os.replace``), for a caller that does more in the same step (:func:`datasets.cache.generated`
    records the digest)."""
    path = Path(path)
    tmp = temporary_path(path, writer=next(_WRITERS))
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        (replace or os.replace)(tmp, path)
        if fsync:
            _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)  # the data of the file (or the entries of a folder), whoever wrote them
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomic(path, data: Union[str, bytes], fsync: bool = False) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` whole or not at all (:func:`written_whole`); returns the
    path."""
    with written_whole(path, fsync=fsync) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


def write_json(path, obj: Any, indent: int = 1, fsync: bool = False) -> Path:
    """Write ``json_safe(obj)`` to ``path`` atomically (``fsync``: flushed to disk, :func:`written_whole`); returns
    the path."""
    return write_atomic(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False), fsync=fsync)
