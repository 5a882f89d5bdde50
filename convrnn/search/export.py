"""Best configurations of a study as graph specs (YAML that ``convrnn.create_model`` loads) and as
score records with provenance for the results store."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional

import optuna

from neurozoo.convrnn.search.space import SearchSpace

BENCHMARK = "search.val_top1"


def best_trials(study: optuna.Study, k: int = 1) -> List[optuna.trial.FrozenTrial]:
    """The ``k`` completed trials with the highest validation top-1, best first (ties: earlier trial)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    return sorted(done, key=lambda t: (-t.value, t.number))[:k]


def trial_config(space: SearchSpace, trial: optuna.trial.FrozenTrial) -> Dict[str, Any]:
    return trial.user_attrs.get("config") or space.config_from_params(trial.params)


def spec_name(study_name: str, rank: int) -> str:
    return f"{study_name}_best{rank}"


def export_specs(study: optuna.Study, space: SearchSpace, out_dir, k: int = 1) -> List[Path]:
    """Write the ``k`` best configurations as ``OUT/<study>_best<rank>.yaml``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for rank, trial in enumerate(best_trials(study, k), start=1):
        name = spec_name(study.study_name, rank)
        description = (f"search {study.study_name} (space {space.name}) rank {rank}: trial {trial.number}, "
                       f"val top-1 {trial.value:.2f}% after {trial.user_attrs.get('epochs_done', '?')} epoch(s)")
        spec = space.spec(trial_config(space, trial), name=name, description=description)
        path = out_dir / f"{name}.yaml"
        spec.to_yaml(str(path))
        paths.append(path)
    return paths


def score_records(study: optuna.Study, space: SearchSpace, settings, k: int = 1,
                  data_sha256: Optional[str] = None, code_version: Optional[str] = None) -> List[Dict[str, Any]]:
    """Keyword arguments for ``benchmarks.records.ScoreRecord``, one per exported configuration.

    ``value`` is the validation top-1 as a fraction; ``settings`` hold the study, trial, configuration
    and training settings, so the score can be reproduced."""
    from dataclasses import asdict

    records = []
    for rank, trial in enumerate(best_trials(study, k), start=1):
        records.append({
            "model": spec_name(study.study_name, rank),
            "benchmark": BENCHMARK,
            "value": trial.value / 100.0,
            "raw": trial.value,
            "code_version": code_version,
            "data_sha256": data_sha256,
            "seed": settings.seed,
            "settings": {"study": study.study_name, "trial": trial.number, "space": space.name,
                         "space_file": space.source, "params": dict(trial.params),
                         "config": trial_config(space, trial), "training": asdict(settings),
                         "val_top5": trial.user_attrs.get("val_top5"),
                         "epochs_done": trial.user_attrs.get("epochs_done")},
            "device": settings.device,
            "duration_s": trial.duration.total_seconds() if trial.duration else None,
        })
    return records


def data_checksum(data_dir) -> str:
    """sha256 of the validation split's (relative path, label) list, as the trainer records it."""
    from neurozoo.convrnn.training.engine import file_list_sha256
    from neurozoo.convrnn.training.imagefolder import open_imagenet

    splits = open_imagenet(data_dir)
    return file_list_sha256(splits.get("val", splits["train"]))
