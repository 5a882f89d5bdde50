"""A benchmark score: value, error, ceiling, per-bin values and provenance; converts to a results-store record."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np

if TYPE_CHECKING:  # an annotation only: the metrics import sklearn and scipy.stats (~1 s), which a retina score,
    from neurozoo.benchmarks.metrics.temporal import TemporalScore  # a record or `zoo reproduce` never use
    from neurozoo.benchmarks.records import ScoreRecord  # imported on use: pandas and SQLAlchemy (~0.5 s) would
    # otherwise load with every benchmark module, `zoo list`'s included


@dataclass
class Score:
    value: float
    error: Optional[float] = None
    ceiling: Optional[float] = None  # Spearman-Brown ceiling (r^2 units), mean over the bins the score uses (c > 0)
    raw: Optional[float] = None  # mean raw cross-validated r over the bins the value uses (ceiling > 0)
    per_bin: List[Dict[str, Any]] = field(default_factory=list)
    provenance: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_temporal(cls, temporal: TemporalScore, provenance: Optional[dict] = None) -> "Score":
        table = temporal.table()
        if temporal.ceiling is not None:
            table["ceiling_error"] = temporal.ceiling.error_per_bin
        rows = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
                for row in table.to_dict(orient="records")]
        return cls(value=temporal.value, error=temporal.error,
                   ceiling=temporal.ceiling.value if temporal.ceiling is not None else None,
                   raw=temporal.raw, per_bin=rows, provenance={"settings": dict(temporal.settings), **(provenance or {})})

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.per_bin)

    def to_record(self, model: str, benchmark: str) -> ScoreRecord:
        from neurozoo.benchmarks.records import ScoreRecord

        p = self.provenance
        return ScoreRecord(model=model, benchmark=benchmark, value=self.value, error=self.error, ceiling=self.ceiling,
                           raw=self.raw, per_bin=self.per_bin, code_version=p.get("code_version"),
                           git_commit=p.get("git_commit"), data_sha256=p.get("data_sha256"), seed=p.get("seed"),
                           settings=p.get("settings", {}), device=p.get("device"), duration_s=p.get("duration_s"))

    def __str__(self) -> str:
        ceiling = f", ceiling {self.ceiling:.3f}" if self.ceiling is not None else ""
        error = f" +- {self.error:.3f}" if self.error is not None else ""
        return f"{self.value:.4f}{error} (raw r {self.raw:.4f}{ceiling})" if self.raw is not None else f"{self.value:.4f}{error}"
