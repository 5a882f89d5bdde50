"""Best configurations of a study as graph specs (YAML that ``convrnn.create_model`` loads), each with a
provenance file beside it, and as score records for the results store.

An exported spec is the trained model: the trial's width multiplier, steps and classes are applied to it, so
``create_model(spec)`` has the trial's parameters and takes its ``best.pth`` weights as they are (it used to be
the configuration at width 1: 5197 parameters for a trial trained with 1385)."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import optuna

from neurozoo.convrnn.search.space import SearchSpace
from neurozoo.datasets.json_files import write_json
from neurozoo.datasets.text_table import counted

BENCHMARK = "search.val_top1"


def best_trials(study: optuna.Study, k: int = 1) -> List[optuna.trial.FrozenTrial]:
    """The ``k`` completed trials with the highest validation top-1, best first (ties: earlier trial)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    return sorted(done, key=lambda t: (-t.value, t.number))[:k]


def trial_config(space: SearchSpace, trial: optuna.trial.FrozenTrial) -> Dict[str, Any]:
    return trial.user_attrs.get("config") or space.config_from_params(trial.params)


#: What a trial keeps of its ``run.json`` in the study (user attribute ``run``, objective.py): what its record and
#: provenance file take from it
RUN_KEYS = ("config", "code_version", "git_commit", "environment", "device", "num_classes", "files_checksum",
            "train_files_sha256", "val_files_sha256")


def trial_run(trial: optuna.trial.FrozenTrial) -> Dict[str, Any]:
    """The trainer's ``run.json`` of the trial (code version, training configuration, data checksums), if kept; else
    its ``RUN_KEYS`` as the study holds them: a trial run on another machine of a study shared through PostgreSQL has
    its ``run.json`` there, and its record took the exporting command's seed, training settings, code version and
    device (and the store this process's versions)."""
    path = Path(trial.user_attrs.get("out", "")) / "run.json"
    if trial.user_attrs.get("out") and path.is_file():
        return json.loads(path.read_text())
    return dict(trial.user_attrs.get("run") or {})


def trial_weights(trial: optuna.trial.FrozenTrial) -> Optional[Path]:
    """The trial's ``best.pth`` (the weights of the epoch its value, the best validation top-1, was measured on),
    resolved; None where its folder is not here (a trial trained on another machine)."""
    path = Path(trial.user_attrs["out"]) / "best.pth" if trial.user_attrs.get("out") else None
    return path.resolve() if path is not None and path.is_file() else None


def weights_digest(weights: Optional[Path]) -> Dict[str, str]:
    """``{"weights_sha256": ...}`` of the trial's weights, as a score of a checkpoint records its sha256: the exported
    spec and its record named ``best.pth`` by path alone, so weights trained again into the folder passed for the
    scored ones. ``{}`` where they are not here."""
    from neurozoo.datasets.provenance import sha256_file

    return {"weights_sha256": sha256_file(weights)} if weights is not None else {}


def model_overrides(trial: optuna.trial.FrozenTrial) -> Dict[str, Any]:
    """The overrides the trial's model was built with on top of its configuration (width, steps, classes)."""
    if "model_overrides" in trial.user_attrs:
        return dict(trial.user_attrs["model_overrides"])
    run = trial_run(trial)  # trials recorded before the attribute existed
    if run:
        return {**run["config"].get("overrides", {}), "num_classes": run["num_classes"]}
    warnings.warn(f"trial {trial.number}: neither its model overrides nor its run.json are kept; the exported spec "
                  "is its configuration without the trial's width multiplier, steps and classes")
    return {}


def spec_name(study_name: str, rank: int) -> str:
    return f"{study_name}_best{rank}"


def export_specs(study: optuna.Study, space: SearchSpace, out_dir, k: int = 1) -> List[Path]:
    """Write the ``k`` best trials' models as ``OUT/<study>_best<rank>.yaml`` with their provenance in
    ``OUT/<study>_best<rank>.json``; returns the spec paths."""
    from neurozoo.datasets.provenance import code_version

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for rank, trial in enumerate(best_trials(study, k), start=1):
        name = spec_name(study.study_name, rank)
        overrides = model_overrides(trial)
        built = ", ".join(f"{key} {value}" for key, value in sorted(overrides.items())) or "as configured"
        epochs = trial.user_attrs.get("epochs_done")
        description = (f"search {study.study_name} (space {space.name}) rank {rank}: trial {trial.number}, "
                       f"val top-1 {trial.value:.2f}% "
                       f"after {'? epochs' if epochs is None else counted(epochs, 'epoch')}; "
                       f"built as trained ({built})")
        config = trial_config(space, trial)
        spec = space.spec(config, name=name, description=description).with_overrides(**overrides)
        path = out_dir / f"{name}.yaml"
        spec.to_yaml(str(path))
        run = trial_run(trial)
        weights = trial_weights(trial)
        provenance = {
            "spec": path.name, "study": study.study_name, "trial": trial.number, "rank": rank,
            "val_top1": trial.value, "val_top5": trial.user_attrs.get("val_top5"),
            "epochs_done": trial.user_attrs.get("epochs_done"), "parameters": trial.user_attrs.get("parameters"),
            # the seed of the command that drew and trained the trial (a study may be continued with another)
            "space": space.name, "space_file": space.path, "space_sha256": space.digest,
            "sampler_seed": (run.get("config") or {}).get("seed", study.user_attrs.get("seed")),
            "params": dict(trial.params), "config": config, "model_overrides": overrides,
            "weights": str(weights) if weights is not None else None, **weights_digest(weights),
            "trial_code_version": run.get("code_version"), "trial_git_commit": run.get("git_commit"),
            "training": run.get("config"), "files_checksum": files_checksum_kind(run),
            "train_files_sha256": run.get("train_files_sha256"), "val_files_sha256": run.get("val_files_sha256"),
            "exported_by": code_version(),
        }
        if "recovered_from" in trial.user_attrs:  # study.record_trained: its folder is trial_<that number>
            provenance["recovered_from"] = trial.user_attrs["recovered_from"]
        write_json(out_dir / f"{name}.json", provenance, indent=2)  # strict JSON (a NaN is null), written whole
        paths.append(path)
    return paths


def score_records(study: optuna.Study, space: SearchSpace, settings, k: int = 1,
                  data_sha256: Optional[str] = None, code_version: Optional[str] = None) -> List[Dict[str, Any]]:
    """Keyword arguments for ``benchmarks.records.ScoreRecord``, one per exported configuration.

    ``value`` is the validation top-1 as a fraction; ``settings`` hold the study, trial, configuration
    and training settings, so the score can be reproduced. Training settings, seed, device, environment, code version
    and data checksum are the trial's own (its ``run.json``): the exporting command may be a later one with other options
    (``--trials 0``); ``settings`` and the arguments stand in only for a trial whose ``run.json`` is gone."""
    from dataclasses import asdict

    records = []
    for rank, trial in enumerate(best_trials(study, k), start=1):
        run = trial_run(trial)
        training = run.get("config") or asdict(settings)
        records.append({
            "model": spec_name(study.study_name, rank),
            "benchmark": BENCHMARK,
            "value": trial.value / 100.0,
            "raw": trial.value,
            "code_version": run.get("code_version") or code_version,
            "git_commit": run.get("git_commit"),
            "data_sha256": run.get("val_files_sha256") or data_sha256,
            "seed": training.get("seed", settings.seed),
            "settings": {"study": study.study_name, "trial": trial.number, "space": space.name,
                         "space_file": space.path, "space_sha256": space.digest, "params": dict(trial.params),
                         "config": trial_config(space, trial), "model_overrides": model_overrides(trial),
                         "training": training, "files_checksum": files_checksum_kind(run),
                         "train_files_sha256": run.get("train_files_sha256"),
                         **weights_digest(trial_weights(trial)),
                         "val_top5": trial.user_attrs.get("val_top5"),
                         "epochs_done": trial.user_attrs.get("epochs_done"),
                         # the versions the trial ran with (without them the store would add the exporting process's)
                         **({"environment": run["environment"]} if run.get("environment") else {})},
            "device": run.get("device") or settings.device,
            "duration_s": trial.duration.total_seconds() if trial.duration else None,
        })
    return records


def files_checksum_kind(run: Dict[str, Any]) -> Optional[str]:
    """What a trial's ``run.json`` data checksums cover (``file_checksums.FILES_CHECKSUMS``): its ``files_checksum``, or
    ``names`` for one written before it was recorded (paths and labels only); None without checksums."""
    from neurozoo.convrnn.training.file_checksums import recorded_files_checksum

    return recorded_files_checksum(run) if run.get("train_files_sha256") else None


def data_checksums(data_dir, kinds=("sizes",)) -> Dict[str, Dict[str, str]]:
    """sha256 of each split's list of relative paths, labels and sizes, as the trainer records them by default
    (``{kind: {"train": ..., "val": ...}}`` for each of ``kinds``, ``file_checksums.FILES_CHECKSUMS``): the folder is
    listed once."""
    from neurozoo.convrnn.training.file_checksums import files_checksum
    from neurozoo.convrnn.training.imagefolder import open_imagenet

    splits = open_imagenet(data_dir)
    return {kind: {name: files_checksum(split, kind) for name, split in splits.items()} for kind in kinds}


def data_checksum(data_dir) -> str:
    """sha256 of the validation split's list of relative paths, labels and sizes, as the trainer records it."""
    digests = data_checksums(data_dir)["sizes"]
    return digests.get("val", digests["train"])
