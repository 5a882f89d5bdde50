"""``zoo reproduce RECORD``: score again what a stored record scored, from the record alone, and compare.

Every record that ``zoo score``, ``zoo run`` and ``zoo work`` store keeps what produced it in
``settings["rerun"]``: the command's arguments (``zoo score``) or the job's spec (``zoo run``, ``zoo work``).
The records of ``zoo dynamics`` and ``zoo compare`` keep their arguments (``settings["arguments"]``): the command
line they give is run again into a scratch store, and every number of the settings (fixed points, spectra,
similarity matrices) is compared too.
The rerun computes everything afresh: activations are not read from the activation cache and a retina model is
fitted from scratch in a temporary folder (``--use-caches`` reads both, as a normal run does). It then compares
the value, error, ceiling, raw value and every number per time bin (per cell for retina benchmarks).

Tolerance: on the same machine, installation and thread count the harness is deterministic, so the rerun must
be bit-identical (``--tolerance 0``, the default). Across thread counts or machines float sums are grouped
differently; measured differences are in the README ("Reproducing a score").
"""
from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from neurozoo.datasets.cli_args import non_negative
from neurozoo.datasets.errors import DataError, UserFacingError

if TYPE_CHECKING:  # `zoo`'s parser imports this module: the records (pandas, numpy) load when a command runs
    from neurozoo.benchmarks.records import ScoreRecord

COMPARED = ("value", "error", "ceiling", "raw")
ANALYSES = ("dynamics", "compare")  # commands whose records keep their arguments: run again from those


def rerun(record: ScoreRecord, device: str = "cpu", use_caches: bool = False,
          how: Optional[Dict[str, Any]] = None) -> ScoreRecord:
    """A new record of the same model on the same benchmark, computed from ``record.settings["rerun"]`` (or
    ``how``: the same, found elsewhere, see :func:`job_rerun`)."""
    how = how or (record.settings or {}).get("rerun") or analysis_command(record)
    analysis = record.benchmark.split(".", 1)[0]
    if not how and analysis in ANALYSES:
        raise UserFacingError(f"record {record.id} ({record.model} on {record.benchmark}) does not keep its "
                              f"arguments (stored by a version before zoo {analysis} kept them); run zoo {analysis} "
                              "again")
    if not how:
        raise UserFacingError(f"record {record.id} ({record.model} on {record.benchmark}) does not keep how it was "
                              "produced (written by a version before zoo reproduce, or not by zoo score / zoo run / "
                              "zoo work); score it again with zoo score or zoo run")
    from neurozoo.datasets.provenance import environment
    from neurozoo.retina.embedded_fit import fits_in

    with tempfile.TemporaryDirectory(prefix="neurozoo-reproduce-") as scratch:
        if isinstance(how, str):
            new = _rerun_analysis(record, how, Path(scratch))
        elif use_caches:
            new = _rerun(record, how, device, use_caches)
        else:
            with fits_in(Path(scratch) / "fits"):
                new = _rerun(record, how, device, use_caches)
    new.settings = {"environment": environment(), **(new.settings or {})}  # as the store would add it
    return new


def _rerun(record: ScoreRecord, how: Dict[str, Any], device: str, use_caches: bool) -> ScoreRecord:
    command = how.get("command")
    if command == "zoo score":
        from neurozoo.benchmarks.cli import score_from_args

        checkpoint = _checkpoint(how.get("checkpoint"), record)
        args = argparse.Namespace(model=how["model"], benchmark=how["benchmark"], seed=how["seed"], width=how["width"],
                                  overrides=list(how["set"]), layers=how["layers"], max_features=how["max_features"],
                                  batch_size=how["batch_size"], checkpoint=checkpoint, device=device,
                                  no_cache=not use_caches)
        score, name = score_from_args(args)
        return score.to_record(name, how["benchmark"])
    if command in ("zoo run", "zoo work"):
        spec = how["spec"]
        split = (record.settings or {}).get("split")
        if split:
            from neurozoo.leaderboard.zoo import split_key_id

            if spec["split"]["key"] != split_key_id():
                raise UserFacingError(f"record {record.id}: its public/hidden split was drawn with another host's "
                                      f"secret (key {spec['split']['key']}, this home's {split_key_id()}); reproduce "
                                      "it with the $NEUROZOO_HOME that scored it")
        if spec.get("checkpoint"):
            _checkpoint(spec["checkpoint"], record)
        if command == "zoo work":
            from neurozoo.leaderboard.sandbox import require_sandbox
            from neurozoo.leaderboard.worker import score_submission

            public, hidden = score_submission(spec, sandbox=require_sandbox(), device=device, use_cache=use_caches)
        else:
            from neurozoo.leaderboard.zoo import score_spec

            public, hidden = score_spec(spec, device=device, progress=False, cache=use_caches)
        return hidden if split == "hidden" else public
    raise UserFacingError(f"record {record.id}: unknown rerun command {command!r}")


def _rerun_analysis(record: ScoreRecord, command: str, scratch: Path) -> ScoreRecord:
    """Run ``command`` (``zoo dynamics ...`` / ``zoo compare ...``) again, without its figures, into a scratch store
    and folder; its record of the same model and benchmark."""
    import shlex

    from neurozoo.benchmarks.records import ResultsStore
    from neurozoo.leaderboard.cli import build_parser

    print(f"running again: {command}")
    db = f"sqlite:///{scratch / 'rerun.sqlite'}"
    args = build_parser().parse_args(shlex.split(command)[1:] + ["--db", db, "--out", str(scratch / "out")])
    args.handler(args, draw=False)  # the records are compared; figures would go with the scratch folder
    for new in ResultsStore(db).records():
        if (new.model, new.benchmark) == (record.model, record.benchmark):
            return new
    raise UserFacingError(f"record {record.id}: `{command}` made no record of {record.model} on {record.benchmark}")


def analysis_command(record: ScoreRecord) -> Optional[str]:
    """The ``zoo dynamics`` / ``zoo compare`` command line that made ``record``, from the arguments it keeps
    (``settings["arguments"]``); None for the records of other commands."""
    command = record.benchmark.split(".", 1)[0]
    arguments = (record.settings or {}).get("arguments")
    if command not in ANALYSES or not isinstance(arguments, dict):
        return None
    from neurozoo.benchmarks.dynamics.cli import command_line

    return command_line(command, arguments)


def job_rerun(db, record_id: int) -> Optional[Dict[str, Any]]:
    """How a leaderboard job's record was produced, from the job's spec: records that zoo run and zoo work stored
    before they kept it themselves are reproducible too."""
    for job in db.jobs(status="done"):
        if record_id in (job["score_id"], job["hidden_score_id"]):
            family = job["spec"].get("family")
            return {"command": "zoo work" if family == "submission" else "zoo run", "spec": job["spec"]}
    return None


def _checkpoint(saved: Optional[Dict[str, str]], record: ScoreRecord) -> Optional[Path]:
    """The checkpoint a record was scored with, if it is still there with the same bytes."""
    if not saved:
        return None
    from neurozoo.datasets.provenance import sha256_file

    path = Path(saved["path"])
    if not path.is_file():
        raise DataError(f"record {record.id}: its checkpoint {path} is gone (sha256 {saved['sha256'][:12]})")
    if sha256_file(path) != saved["sha256"]:
        raise DataError(f"record {record.id}: its checkpoint {path} has changed since (sha256 {saved['sha256'][:12]} "
                        f"then, {sha256_file(path)[:12]} now)")
    return path


def differences(old: ScoreRecord, new: ScoreRecord) -> List[Tuple[str, Any, Any]]:
    """``(field, stored, rerun)`` of every compared number, the summary values and each per-bin (per-cell) entry."""
    pairs = [(name, getattr(old, name), getattr(new, name)) for name in COMPARED]
    if old.benchmark.split(".", 1)[0] in ANALYSES:  # their numbers are in the settings: points, spectra, matrices
        then, now = (dict(_numbers(record.settings or {}, "settings")) for record in (old, new))
        pairs += [(name, then.get(name), now.get(name)) for name in sorted(set(then) | set(now))]
    old_bins, new_bins = old.per_bin or [], new.per_bin or []
    if len(old_bins) != len(new_bins):
        pairs.append(("per_bin rows", len(old_bins), len(new_bins)))
    for index, (a, b) in enumerate(zip(old_bins, new_bins)):
        label = a.get("time_bin_start", a.get("cell", index))
        for key in sorted(set(a) | set(b)):
            if isinstance(a.get(key), (int, float)) or isinstance(b.get(key), (int, float)):
                pairs.append((f"per_bin[{label}].{key}", a.get(key), b.get(key)))
    return pairs


def _numbers(value, name: str):
    """``(path, number)`` of every number in a record's settings (the environment, compared apart, aside)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key != "environment":
                yield from _numbers(item, f"{name}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{name}[{index}]")
    elif isinstance(value, (int, float)):
        yield name, value


def gap(stored, rerun_value) -> float:
    """|stored - rerun|; 0 when both are missing (NaN is stored as null), infinite when only one is."""
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in (stored, rerun_value)]
    if all(missing):
        return 0.0
    if any(missing):
        return math.inf
    return abs(float(stored) - float(rerun_value))


def compare(old: ScoreRecord, new: ScoreRecord) -> Tuple[float, List[str]]:
    """(largest difference over the compared numbers, notes on what else differs: data, code, environment)."""
    pairs = differences(old, new)
    largest = max((gap(a, b) for _, a, b in pairs), default=0.0)
    notes = []
    if old.data_sha256 != new.data_sha256:
        notes.append(f"data sha256 {str(old.data_sha256)[:12]} then, {str(new.data_sha256)[:12]} now")
    if old.code_version != new.code_version:
        notes.append(f"code {old.code_version} then, {new.code_version} now")
    then, now = (old.settings or {}).get("environment") or {}, (new.settings or {}).get("environment") or {}
    if not then:
        notes.append("the record does not state its environment (stored before records kept Python, torch and numpy "
                     f"versions); now: {', '.join(f'{k} {v}' for k, v in sorted(now.items()))}")
        return largest, notes
    for key in sorted(set(then) | set(now)):
        if then.get(key) != now.get(key):
            notes.append(f"{key} {then.get(key)} then, {now.get(key)} now")
    return largest, notes


def _recorded_threads(record: ScoreRecord) -> Optional[int]:
    return ((record.settings or {}).get("environment") or {}).get("torch_threads")


def _with_threads(threads: Optional[int], run):
    """``run()`` with torch's intra-op thread count set to the record's: float sums are grouped per thread, so
    another count moves the last bits (README, "Reproducibility and interrupted runs")."""
    import torch

    before = torch.get_num_threads()
    if threads and threads != before:
        print(f"using {threads} torch threads, as the record was scored (this process had {before})")
        torch.set_num_threads(threads)
    try:
        return run()
    finally:
        torch.set_num_threads(before)


def add_command(sub) -> None:
    p = sub.add_parser("reproduce", help="score a stored record again from what it keeps, and compare",
                       description="Rebuild the model, data and settings of a stored score (zoo score, zoo run, "
                                   "zoo work, zoo dynamics or zoo compare) from its record alone, compute it afresh (no activation cache, the "
                                   "retina fit redone in a temporary folder) and compare every number; exit 1 when "
                                   "a difference exceeds --tolerance.")
    p.add_argument("record", type=int, help="record id (zoo score prints it; the leaderboard's model page shows it)")
    p.add_argument("--db", help="SQLAlchemy URL of the results store (default: $NEUROZOO_HOME/results.sqlite)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--tolerance", type=non_negative, default=0.0,
                   help="largest accepted absolute difference (default 0: bit-identical, as on the same machine "
                        "with the same thread count)")
    p.add_argument("--use-caches", action="store_true",
                   help="read the activation cache and the retina fit cache, as zoo run does (faster, checks less)")
    p.set_defaults(handler=run_reproduce)


def run_reproduce(args) -> int:
    from neurozoo.leaderboard.db import LeaderboardDB

    store = LeaderboardDB(args.db)  # the results store with the leaderboard's jobs
    record = store.get(args.record)
    if record is None:
        raise UserFacingError(f"no record {args.record} in {store.shown_url}")
    how = (record.settings or {}).get("rerun") or job_rerun(store, record.id)
    new = _with_threads(_recorded_threads(record),
                        lambda: rerun(record, device=args.device, use_caches=args.use_caches, how=how))
    largest, notes = compare(record, new)
    print(f"record {record.id}: {record.model} on {record.benchmark}, stored {record.value!r}, rerun {new.value!r}")
    for note in notes:
        print(f"  differs: {note}")
    if largest <= args.tolerance:
        what = "bit-identical" if largest == 0 else f"largest difference {largest:.3g} <= tolerance {args.tolerance:g}"
        settings = sum(name.startswith("settings") for name, _, _ in differences(record, new))
        print(f"reproduced: {what} (value, error, ceiling, raw and {len(record.per_bin or [])} per-bin rows"
              + (f", {settings} numbers of the settings)" if settings else ")"))
        return 0
    worst = max(differences(record, new), key=lambda row: gap(row[1], row[2]))
    print(f"NOT reproduced: largest difference {largest:.3g} > tolerance {args.tolerance:g} "
          f"({worst[0]}: stored {worst[1]!r}, rerun {worst[2]!r})")
    return 1
