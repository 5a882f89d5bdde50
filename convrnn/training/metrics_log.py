"""Training metrics as JSON lines: one object per row, flushed as written, readable mid-run."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

from neurozoo.datasets.json_files import write_atomic


class MetricsLog:
    """Appends rows to ``path``; ``enabled=False`` (ranks other than 0) writes nothing."""

    def __init__(self, path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self._handle = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")

    def write(self, **row: Any) -> Dict[str, Any]:
        row = {k: _plain(v) for k, v in row.items()}
        if self._handle is not None:
            self._handle.write(json.dumps(row) + "\n")
            self._handle.flush()
        return row

    def truncate_after(self, global_step: int, epochs: Optional[int] = None) -> None:
        """Drop rows logged after ``global_step`` (written by a run killed after its last checkpoint), and the rows of
        epochs after ``epochs`` (a checkpoint taken in an epoch's validation, at its last step, lacks its row)."""
        if self._handle is None:
            return
        self._handle.close()
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= global_step and
                not (epochs is not None and r.get("kind") == "epoch" and r.get("epoch", 0) > epochs)]
        # renamed into place: a kill or a full disk mid-rewrite leaves the whole log, not the rows written so far
        write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._handle = open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_metrics(path, kind: Optional[str] = None) -> List[Dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a kill mid-write
                continue
            if kind is None or row.get("kind") == kind:
                rows.append(row)
    return rows


def _plain(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
