"""JSON files that people and other programs read (summaries, histories, probe records): strict JSON, where a NaN
or an infinity is ``null`` (Python's ``json`` writes a bare ``NaN``, which JSON readers reject) and numpy values are
plain numbers; written whole or not at all (a temporary file renamed into place: ``write_atomic``, for any text or
bytes)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Optional, Union


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


def write_atomic(path, data: Union[str, bytes]) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` whole or not at all: into the sibling ``<name>.tmp-<host>-<pid>``,
    renamed into place, so a process killed mid-write leaves the previous file (or none), never a torn one; returns
    the path."""
    from neurozoo.datasets.cache import temporary_suffix  # here: zoo's parser imports this module, cache needs numpy

    path = Path(path)
    tmp = path.with_name(path.name + temporary_suffix())
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path, obj: Any, indent: int = 1) -> Path:
    """Write ``json_safe(obj)`` to ``path`` atomically; returns the path."""
    return write_atomic(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False))
