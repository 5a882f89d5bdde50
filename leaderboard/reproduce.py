"""``zoo reproduce RECORD``: score again what a stored record scored, from the record alone, and compare
(``zoo reproduce DIR/summary.json``, a ``zoo fit``'s summary: :mod:`leaderboard.reproduce_fit`).

Every record that ``zoo score``, ``zoo run`` and ``zoo work`` store keeps what produced it in
``settings["rerun"]``: the command's arguments (``zoo score``) or the job's spec (``zoo run``, ``zoo work``).
The records of ``zoo dynamics`` and ``zoo compare`` keep their arguments (``settings["arguments"]``): the command
line they give is run again into a scratch store, and every number of the settings (fixed points, spectra,
similarity matrices) is compared too.
The rerun computes everything afresh: activations are not read from the activation cache and a retina model is
fitted from scratch in a temporary folder (``--use-caches`` reads both, as a normal run does). It then compares
the value, error, ceiling, raw value, every number per time bin (per cell for retina benchmarks) and every number
of the settings, within the tolerance; and the model, benchmark, seed, data sha256 and every other setting exactly
(:func:`mismatches`): a rerun on other data or with another configuration is not a reproduction, whatever its
numbers. A neural benchmark's data checksums are compared first (:func:`changed_data`): a record whose data have
changed is not scored again. The model is compared by the registered name the record's rerun description keeps, where it keeps one
(:func:`model_identity`): a display name changed since the record is a note. A record edited or cut short is refused naming the field (:func:`checked`).

Tolerance: on the same machine, installation and thread count the harness is deterministic, so the rerun must
be bit-identical (``--tolerance 0``, the default). Across thread counts or machines float sums are grouped
differently; measured differences are in the README ("Reproducing a score").
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Tuple

from neurozoo.datasets.cli_args import add_db_argument, add_device_argument, non_negative
from neurozoo.datasets.errors import DataError, UserFacingError

if TYPE_CHECKING:  # `zoo`'s parser imports this module: the records (pandas, numpy) load when a command runs
    from neurozoo.benchmarks.records import ScoreRecord

COMPARED = ("value", "error", "ceiling", "raw")
#: must equal the rerun's (see mismatches()); the model by its registered name where the record keeps it
#: (model_identity(): a display name changed since the record is a note)
IDENTITY = ("model", "benchmark", "seed", "data_sha256")
#: settings that are not the computation's configuration: the environment and the device (compared apart, in
#: notes: another machine is a reason to give a tolerance, not a different computation), how to rerun (the
#: rerun's own copy of it), the checkpoint's path as given (relative or not; its bytes are checked by sha256
#: before the rerun and its weights by the ``model_sha256`` setting), a fit's progress bar, and what a retina fit's
#: provenance says beyond its settings (``fit_provenance``: how it was come by, which differs by design, e.g. cached
#: then and fitted afresh now; its protocol, thread counts and kept epoch: notes, as the environment's)
UNCOMPARED_SETTINGS = ("environment", "device", "rerun", "checkpoint", "checkpoint_sha256", "progress",
                       "fit_provenance")
#: the same for a ``zoo dynamics`` / ``zoo compare`` record's arguments: the checkpoint's path (absolute since
#: 2026-12-06, as given before; its bytes are checked by the ``checkpoint_sha256`` setting before the rerun)
UNCOMPARED_ARGUMENTS = ("checkpoint",)
#: settings in words that describe another setting compared itself: ``layer_choice``, how ``layer`` was chosen (its words
#: for a model off the released map changed on 2026-12-05: :data:`leaderboard.zoo.FALLBACK_LAYER`). A difference in
#: them is a note, as a setting one of the two records lacks is, not a failure
DESCRIPTIVE_SETTINGS = ("settings.layer_choice",)
MISSING = "(missing)"
#: the checksums of a benchmark's data: the responses (``data_sha256``), the images a neural benchmark's model read
#: (``stimuli_sha256``) and imagenet.val's files (``images_sha256``); a rerun that differs in one is on other data
DATA_CHECKSUMS = ("data_sha256", "settings.stimuli_sha256", "settings.images_sha256")
ANALYSES = ("dynamics", "compare")  # commands whose records keep their arguments: run again from those
PLUGIN_HINT = (" (a model or benchmark that a plugin registered needs that plugin installed, as when the record was "
               "scored: see `zoo list`)")


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
    if not how and analysis == "search":
        settings = record.settings or {}
        raise UserFacingError(f"record {record.id} ({record.model} on {record.benchmark}) is the validation top-1 of "
                              f"zoo search's study {settings.get('study')!r}, trial {settings.get('trial')}: zoo "
                              "reproduce does not train; train its exported spec (OUT/<study>_best<k>.yaml) again with "
                              "zoo train and the record's settings.training (seed "
                              f"{(settings.get('training') or {}).get('seed', record.seed)}), then compare the "
                              "validation top-1 with the stored value (docs/convrnn.md)")
    if not how:
        raise UserFacingError(f"record {record.id} ({record.model} on {record.benchmark}) does not keep how it was "
                              "produced (written by a version before zoo reproduce, or not by zoo score / zoo run / "
                              "zoo work); score it again with zoo score or zoo run")
    checked(record, how)
    if isinstance(how, str):  # zoo dynamics / zoo compare: the weights analysed, where the record keeps their sha256
        settings = record.settings or {}
        if settings.get("checkpoint_sha256") and (settings.get("arguments") or {}).get("checkpoint"):
            _checkpoint({"path": settings["arguments"]["checkpoint"], "sha256": settings["checkpoint_sha256"]}, record)
    from neurozoo.datasets.cache import owned_temporary_folder
    from neurozoo.datasets.provenance import environment
    from neurozoo.retina.embedded_fit import fits_in

    # named with this process's host and pid: a reproduce killed (SIGKILL) left its scratch store and fits in the
    # temporary folder for good; the next one on this host removes it (datasets.cache.owned_temporary_folder)
    with owned_temporary_folder("neurozoo-reproduce-") as scratch:
        try:
            if isinstance(how, str):
                new = _rerun_analysis(record, how, scratch)
            elif use_caches:
                new = _rerun(record, how, device, use_caches)
            else:
                with fits_in(scratch / "fits"):
                    new = _rerun(record, how, device, use_caches)
        except UserFacingError as error:  # e.g. its model is a plugin's, not installed here: name the record
            if str(error).startswith(f"record {record.id}"):
                raise
            raise UserFacingError(f"record {record.id} ({record.model} on {record.benchmark}) cannot be scored again "
                                  f"here: {error}{PLUGIN_HINT if 'unknown' in str(error) else ''}") from None
    new.settings = {"environment": environment(), **(new.settings or {})}  # as the store would add it
    return new


#: what each kind of record keeps to be scored again, and the types it is read as: a record edited by hand or cut
#: short is refused naming the field, before any scoring (it failed with a KeyError or TypeError traceback)
NUMBER, TEXT, OPTIONAL_TEXT, OPTIONAL_INT = (int, float), (str,), (str, type(None)), (int, type(None))  # None: a retina score
SCORE_ARGUMENTS = {"model": TEXT, "benchmark": TEXT, "seed": (int,), "width": NUMBER + (type(None),),
                   "set": (list,), "layers": OPTIONAL_TEXT, "max_features": OPTIONAL_INT, "batch_size": OPTIONAL_INT,
                   "checkpoint": (dict, type(None))}
IMAGENET_ARGUMENTS = {"data": TEXT, "max_images": OPTIONAL_INT, "image_size": (int,)}
CHECKPOINT_FIELDS = {"path": TEXT, "sha256": TEXT}
SPEC_FIELDS = {"family": TEXT, "model": TEXT, "benchmark": TEXT}
SPEC_FAMILY_FIELDS = {"convrnn": {"overrides": (dict,), "score": (dict,)}, "retina": {"score": (dict,)},
                      "submission": {"score": (dict,), "layers": (dict,), "folder": TEXT, "sha256": TEXT}}


def checked(record: ScoreRecord, how) -> None:
    """Refuse, naming the record and the field, a rerun description (``settings["rerun"]`` or the job's spec) that
    lacks a field the rerun reads or holds one of another type."""
    analysis = record.benchmark.split(".", 1)[0] in ANALYSES
    if isinstance(how, str) and analysis:
        return
    kept = "settings.rerun" if (record.settings or {}).get("rerun") else "its leaderboard job's spec, as rerun"
    where = f"record {record.id} ({record.model} on {record.benchmark}): {kept}"
    if not isinstance(how, dict):
        raise DataError(f"{where}: expected a dictionary with its command, found {type(how).__name__} {how!r:.80}; "
                        "the record was edited or cut short: score it again with zoo score or zoo run")
    command = how.get("command")
    if command == "zoo score":
        require(how, SCORE_ARGUMENTS, where)
        if how["checkpoint"] is not None:
            require(how["checkpoint"], CHECKPOINT_FIELDS, f"{where}.checkpoint")
        if "data" in how:  # a benchmark on one's own data: the folder (imagenet.val) or file (retina_h5.heldout)
            require(how, IMAGENET_ARGUMENTS if how["benchmark"] == "imagenet.val" else {"data": TEXT}, where)
        if "cells" in how:  # retina_h5.heldout's --cells SPEC
            require(how, {"cells": TEXT}, where)
    elif command in ("zoo run", "zoo work"):
        require(how, {"spec": (dict,)}, where)
        spec = how["spec"]
        require(spec, SPEC_FIELDS, f"{where}.spec")
        require(spec, SPEC_FAMILY_FIELDS.get(spec["family"], {}), f"{where}.spec")
        if spec.get("checkpoint") is not None:
            require(spec, {"checkpoint": (dict,)}, f"{where}.spec")
            require(spec["checkpoint"], CHECKPOINT_FIELDS, f"{where}.spec.checkpoint")
        from neurozoo.leaderboard.submission import TREE_FORMATS  # (here: the intake's imports load numpy)

        if spec["family"] == "submission" and spec.get("sha256_format") not in (None, *TREE_FORMATS):
            raise DataError(f"{where}.spec.sha256_format: expected one of {', '.join(map(str, TREE_FORMATS))} (or "
                            f"none, format 1), found {spec['sha256_format']!r:.80}")
        if (record.settings or {}).get("split"):
            require(spec, {"split": (dict,)}, f"{where}.spec")
            require(spec["split"], {"key": TEXT, "hidden_fraction": NUMBER}, f"{where}.spec.split")
    else:
        raise DataError(f"{where}.command: expected 'zoo score', 'zoo run' or 'zoo work', found {command!r}")


def require(values: Dict[str, Any], fields: Dict[str, tuple], where: str) -> None:
    """Refuse ``values`` (a JSON object read from ``where``) with a :class:`DataError` naming the field where it lacks
    one of ``fields`` or holds another type than the field's ``types``."""
    for name, types in fields.items():
        if name not in values:
            raise DataError(f"{where}: no field {name!r} (expected {' or '.join(t.__name__ for t in types)}); the "
                            "record was edited or cut short")
        value = values[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise DataError(f"{where}.{name}: expected {' or '.join(t.__name__ for t in types)}, found "
                            f"{type(value).__name__} {value!r:.80}")


def _rerun(record: ScoreRecord, how: Dict[str, Any], device: str, use_caches: bool) -> ScoreRecord:
    command = how.get("command")
    if command == "zoo score":
        from neurozoo.benchmarks.cli import score_from_args
        from neurozoo.benchmarks.retina_file_stimulus import what_dates_it

        checkpoint = _checkpoint(how.get("checkpoint"), record)
        args = argparse.Namespace(model=how["model"], benchmark=how["benchmark"], seed=how["seed"], width=how["width"],
                                  overrides=list(how["set"]), layers=how["layers"], max_features=how["max_features"],
                                  batch_size=how["batch_size"], checkpoint=checkpoint, device=device,
                                  no_cache=not use_caches, data=how.get("data"), max_images=how.get("max_images"),
                                  image_size=how.get("image_size"), workers=None, progress=False,
                                  cross_stimulus=how.get("cross_stimulus", False),
                                  stimulus_class=how.get("stimulus_class"),
                                  heldout_history=how.get("heldout_history", "simulated"),
                                  objective=how.get("objective"),
                                  cells=how.get("cells"),  # retina_h5.heldout's --cells, as given
                                  # scored before a held-out benchmark's stimulus-class rule: rerun as then
                                  before_the_rule=bool(what_dates_it(how["benchmark"], record.settings)))
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
            from neurozoo.leaderboard.submission import changed_since_submitted, tree_format

            changed = changed_since_submitted(Path(spec["folder"]), spec["sha256"], tree_format(spec))
            if changed:
                raise DataError(f"record {record.id}: {changed} ({spec['folder']})")
            from neurozoo.leaderboard.worker import score_submission

            public, hidden = score_submission(spec, sandbox=require_sandbox(), device=device, use_cache=use_caches)
        else:
            from neurozoo.leaderboard.zoo import score_spec

            public, hidden = score_spec(spec, device=device, progress=False, cache=use_caches)
        return hidden if split == "hidden" else public
    raise AssertionError(command)  # checked() refused any other


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
    # zoo run kept --checkpoint MODEL=PATH as given before 2026-12-05: a relative one names the file only from the
    # folder zoo run ran in, and from another one maybe another file (its sha256 tells)
    relative = "" if path.is_absolute() else (
        f" (a relative path, which zoo run kept as given before 2026-12-05: looked for from here, {Path.cwd()}; run "
        "zoo reproduce from the folder zoo run ran in)")
    if not path.is_file():
        raise DataError(f"record {record.id}: its checkpoint {path} is gone (sha256 {saved['sha256'][:12]}){relative}")
    if sha256_file(path) != saved["sha256"]:
        changed = "is not the same file" if relative else "has changed since"
        raise DataError(f"record {record.id}: its checkpoint {path} {changed} (sha256 {saved['sha256'][:12]} "
                        f"then, {sha256_file(path)[:12]} now){relative}")
    return path


class Walked(NamedTuple):
    """:func:`settings_pairs`' walk of two records' settings, ``(path, stored, rerun)`` rows."""
    compared: List[Tuple[str, Any, Any]]
    unpaired: List[Tuple[str, Any, Any]]


def differences(old: ScoreRecord, new: ScoreRecord, walked: Optional[Walked] = None) -> List[Tuple[str, Any, Any]]:
    """``(field, stored, rerun)`` of every compared number: the summary values, each per-bin (per-cell) entry and
    every number of the settings (a ``zoo dynamics`` / ``zoo compare`` record's fixed points, spectra and
    matrices; a score's layer selection, components, features and fit settings). ``walked``: the two records'
    :func:`settings_pairs`, when the caller has them (walked once for this, :func:`mismatches` and :func:`compare`)."""
    walked = settings_pairs(old, new) if walked is None else walked
    pairs = [(name, getattr(old, name), getattr(new, name)) for name in COMPARED]
    pairs += [row for row in walked.compared if _is_number(row[1]) or _is_number(row[2])]
    old_bins, new_bins = old.per_bin or [], new.per_bin or []
    if len(old_bins) != len(new_bins):
        pairs.append(("per_bin rows", len(old_bins), len(new_bins)))
    for index, (a, b) in enumerate(zip(old_bins, new_bins)):
        label = a.get("time_bin_start", a.get("cell", index))
        for key in sorted(set(a) | set(b)):
            if _is_number(a.get(key)) or _is_number(b.get(key)):
                pairs.append((f"per_bin[{label}].{key}", a.get(key), b.get(key)))
    return pairs


def mismatches(old: ScoreRecord, new: ScoreRecord, walked: Optional[Walked] = None,
               how=None) -> List[Tuple[str, Any, Any]]:
    """``(field, stored, rerun)`` of what names the computation where the rerun's differs: the model (by its
    registered name where the record keeps it, :func:`model_identity`), benchmark, seed and data sha256 (one the
    record does not state is left out: :func:`compare` notes it), and every setting that is not a number (layer,
    mapping, time-bin convention, fit batching and loss...; numbers are compared with the tolerance,
    :func:`differences`). A record whose data or configuration is not the rerun's is not reproduced, whatever its
    numbers. ``walked``: as :func:`differences`'; ``how``: the rerun description (default the record's
    ``settings["rerun"]``)."""
    walked = settings_pairs(old, new) if walked is None else walked
    rows = model_identity(old, new, how)[0]
    rows += [(name, getattr(old, name), getattr(new, name)) for name in IDENTITY
             if name != "model" and getattr(old, name) is not None and getattr(old, name) != getattr(new, name)]
    return rows + [(name, a, b) for name, a, b in walked.compared if not (_is_number(a) or _is_number(b)) and a != b]


def registered_model(how) -> Optional[str]:
    """The registered name of the model that a rerun description (a record's ``settings["rerun"]``, or its job's
    spec) names: ``zoo score``'s model argument, a ``zoo run`` / ``zoo work`` spec's ``model``; None where it names
    none (a ``zoo dynamics`` / ``zoo compare`` command line, a record stored before records kept their rerun)."""
    if not isinstance(how, dict):
        return None
    spec = how.get("spec")
    named = spec.get("model") if how.get("command") in ("zoo run", "zoo work") and isinstance(spec, dict) \
        else how.get("model")
    return named if isinstance(named, str) else None


def model_identity(old: ScoreRecord, new: ScoreRecord, how=None) -> Tuple[List[Tuple[str, Any, Any]], List[str]]:
    """``(mismatches, notes)`` of the model. A record's ``model`` is the name it is shown under (``zoo run``'s
    :func:`leaderboard.zoo.display_name`, ``zoo score``'s ``MODEL@checkpoint``), whose wording may change between
    versions; the registered name in its rerun description (``how``, default ``settings["rerun"]``) is the stable
    identity. Where both records keep one, the registered names are compared: equal, a display name other than the
    rerun's is a note, unless it names another model than its registered one (the record's ``model`` column was
    edited: :func:`_registered_part`), which is a mismatch as another registered name is. Where either keeps none,
    the display names must be equal."""
    then = registered_model((old.settings or {}).get("rerun") if how is None else how)
    now = registered_model((new.settings or {}).get("rerun"))
    if old.model is None or old.model == new.model:
        return ([("model (registered name)", then, now)] if then and now and then != now else []), []
    if then is None or now is None or _registered_part(old.model) != then:
        return [("model", old.model, new.model)], []
    if then != now:
        return [("model (registered name)", then, now)], []
    return [], [f"model: stored display name {old.model!r}, rerun {new.model!r}: the same registered model {then!r} "
                "(its display name has changed since the record)"]


def _registered_part(display: str) -> str:
    """The registered name a display name begins with: ``ln (fit 1 epochs)`` -> ``ln``, ``ln@model.pt`` -> ``ln``."""
    return display.split(" (", 1)[0].split("@", 1)[0]


def settings_pairs(old: ScoreRecord, new: ScoreRecord) -> Walked:
    """``(compared, unpaired)``: ``(path, stored, rerun)`` of every leaf of the two records' settings (nested
    dictionaries and lists walked, :data:`UNCOMPARED_SETTINGS` left out); ``unpaired`` holds the settings of a
    score that only one of the two records has (a setting that a later version added, or no longer records: a
    note, so that older records stay reproducible) and those of :data:`DESCRIPTIVE_SETTINGS` that differ, ``compared``
    all others, and a ``training_stimulus`` stored ``unknown`` that the rerun knows (with its ``_from``: the class
    a fit cache folder's weights recorded in their checkpoint, read since 2026-12-06). The settings of a
    ``zoo dynamics`` or ``zoo compare`` record are its results: any one missing on one side is compared (as None)."""
    then, now = (dict(leaves(record.settings or {}, "settings")) for record in (old, new))
    analysis = old.benchmark.split(".", 1)[0] in ANALYSES
    typed = summary_as_typed(old, new)
    # a training stimulus the record did not know (weights without summary.json) that the rerun knows: the class a fit
    # cache folder's weights recorded in their checkpoint, read since 2026-12-06 (embedded_fit.checkpoint_stimulus_class)
    learnt = then.get("settings.training_stimulus") == "unknown" and now.get("settings.training_stimulus") not in (
        None, "unknown")
    compared, unpaired = [], []
    for name in sorted(set(then) | set(now)):
        if (name in then) != (name in now) and not analysis and not name.endswith("]"):
            unpaired.append((name, then.get(name, MISSING), now.get(name, MISSING)))
        elif learnt and name in ("settings.training_stimulus", "settings.training_stimulus_from"):
            unpaired.append((name, then[name], now[name]))
        elif name in DESCRIPTIVE_SETTINGS and not analysis:
            if then[name] != now[name]:
                unpaired.append((name, then[name], now[name]))
        elif typed and then[name] != now[name] and isinstance(now[name], str) \
                and now[name].replace(typed.read, typed.typed) == then[name]:  # the same summary.json, named as typed
            unpaired.append((name, then[name], now[name]))
        else:
            compared.append((name, then.get(name), now.get(name)))
    return Walked(compared, unpaired)


def leaves(value, name: str):
    """``(path, value)`` of every leaf of a record's settings: numbers, strings, None, empty lists and
    dictionaries."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            if key not in {"settings": UNCOMPARED_SETTINGS, "settings.arguments": UNCOMPARED_ARGUMENTS}.get(name, ()):
                yield from leaves(item, f"{name}.{key}")
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from leaves(item, f"{name}[{index}]")
    else:
        yield name, value


def _is_number(value) -> bool:
    return isinstance(value, (int, float))


def gap(stored, rerun_value) -> float:
    """|stored - rerun|; 0 when both are missing (NaN is stored as null), infinite when only one is, or when one is
    not a number (text where the other has a number) and they differ."""
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in (stored, rerun_value)]
    if all(missing):
        return 0.0
    if any(missing):
        return math.inf
    if not (_is_number(stored) and _is_number(rerun_value)):  # text against a number (an edited record): unequal
        return 0.0 if stored == rerun_value else math.inf
    return abs(float(stored) - float(rerun_value))


def compare(old: ScoreRecord, new: ScoreRecord, walked: Optional[Walked] = None,
            pairs: Optional[List[Tuple[str, Any, Any]]] = None, how=None) -> Tuple[float, List[str]]:
    """(largest difference over the compared numbers, notes on what else differs: the model's display name, data,
    code, environment). ``walked`` and ``pairs``: the two records' :func:`settings_pairs` and :func:`differences`,
    when the caller has them; ``how``: as :func:`mismatches`'."""
    walked = settings_pairs(old, new) if walked is None else walked
    pairs = differences(old, new, walked) if pairs is None else pairs
    largest = max((gap(a, b) for _, a, b in pairs), default=0.0)
    notes = model_identity(old, new, how)[1]
    if old.data_sha256 is None:  # a mismatch of a stated one fails the reproduction: mismatches()
        notes.append(f"the record does not state its data sha256; the rerun's data: {new.data_sha256}")
    if old.code_version != new.code_version:
        notes.append(f"code_version: stored {old.code_version}, now {new.code_version}")
    notes += [f"{name}: {'not in the record' if stored == MISSING else f'stored {stored!r}'}, "
              f"{'not in the rerun' if found == MISSING else f'rerun {found!r}'}"
              for name, stored, found in walked.unpaired]
    if old.device and new.device and old.device != new.device:
        notes.append(f"device: stored {old.device}, now {new.device}")
    fitted, refitted = ((record.settings or {}).get("fit_provenance") or {} for record in (old, new))
    spec = rerun_spec((old.settings or {}).get("rerun") if how is None else how)
    notes += [f"fit_provenance.{key}: stored {fitted[key]}, rerun {refitted[key]}"
              for key in sorted(set(fitted) & set(refitted)) if key != "origin" and fitted[key] != refitted[key]
              and not (key == "fit_protocol" and spec.get(key) == fitted[key])]  # protocol_notes says that one
    then, now = (old.settings or {}).get("environment") or {}, (new.settings or {}).get("environment") or {}
    if not then:
        notes.append("the record does not state its environment (stored before records kept Python, torch and numpy "
                     f"versions); now: {', '.join(f'{k} {v}' for k, v in sorted(now.items()))}")
        return largest, notes
    for key in sorted(set(then) | set(now)):
        if then.get(key) != now.get(key):
            notes.append(f"environment.{key}: stored {then.get(key)}, now {now.get(key)}")
    return largest, notes


def protocol_notes(how) -> List[str]:
    """Notes on the versions a ``zoo run`` spec of a retina model states that are not this code's: the fitting
    protocol (a bump changes what a fit with the same settings gives) and the embedded recordings' version (its
    data sha256 is compared too). A note, not a failure: a bump may leave this model's fit unchanged."""
    spec = rerun_spec(how)
    if not spec:
        return []
    notes = _benchmark_version_notes(spec)
    if spec.get("family") != "retina":
        return notes
    from neurozoo.datasets.synthetic_retina import VERSION as RECORDING_VERSION
    from neurozoo.retina.fit import FIT_PROTOCOL

    now = {"fit_protocol": FIT_PROTOCOL, "recording_version": RECORDING_VERSION}
    return notes + [f"spec.{name}: stored {spec[name]}, this code's {value} (the fit or the embedded circuit has "
                    "changed since the record)"
                    for name, value in now.items() if name in spec and spec[name] != value]


def rule_notes(old: ScoreRecord, new: ScoreRecord) -> List[str]:
    """Why the rerun of a held-out record (``retina_h5.heldout``, ``retina_embedded.KIND-heldout``) scored before the
    benchmark's stimulus-class rule (2026-12-04, :func:`benchmarks.retina_file_stimulus.what_dates_it`)
    scored weights of the other class: it reproduces the score as it was recorded, which ``zoo score`` now gives only
    with ``--cross-stimulus``. And why cells whose FEVE the record holds have none in the rerun (:data:`FEVE_RULE`),
    and why its checkpoint's summary.json is named otherwise (:func:`relative_summary_note`)."""
    from neurozoo.benchmarks.retina_file_stimulus import what_dates_it

    notes = relative_summary_note(old, new)
    cells = feve_rule_cells(old.per_bin, new.per_bin)
    if cells:
        notes.append(feve_rule_note(f"record {old.id}", cells))
    cross = (new.settings or {}).get("cross_stimulus")
    dated = what_dates_it(old.benchmark, old.settings)
    if not cross or not dated:
        return notes
    return [f"record {old.id} was scored before {old.benchmark} applied its stimulus-class rule (2026-12-04; {dated}): "
            f"its weights, fitted on {cross['fitted_on']}, were scored on the held-out repeats of "
            f"{cross['scored_on']}, and are rerun so, the protocol it was recorded under; zoo score now refuses that "
            "score without --cross-stimulus, which marks it a cross-stimulus score (as the rerun is)"] + notes


class TypedSummary(NamedTuple):
    """A record's ``settings.fitted_to.summary`` as typed (relative) and the resolved one its rerun read."""
    typed: str
    read: str
    folder: str  # the folder the record was scored from, where ``typed`` is ``read``


#: how a ``zoo score --checkpoint`` record named its weights' summary.json before 2026-12-06 (its rerun description
#: names the checkpoint resolved since records kept one, and the rerun reads the summary.json beside that)
RELATIVE_SUMMARY = "as typed: zoo score kept a relative --checkpoint's summary.json so before 2026-12-06"


def summary_as_typed(old: ScoreRecord, new: ScoreRecord) -> Optional[TypedSummary]:
    """Where ``old`` names its checkpoint's summary.json by a relative path (:data:`RELATIVE_SUMMARY`) and that path
    is the end of the resolved one ``new`` (its rerun) read, both paths and the folder it was typed in: the same file,
    beside the checkpoint whose bytes the rerun checked by the record's sha256. None otherwise (a path with ``..`` or
    one a link resolved elsewhere cannot be told from the record: :func:`relative_summary_note` says so)."""
    then, now = ((record.settings or {}).get("fitted_to") for record in (old, new))
    typed, read = (fitted.get("summary") if isinstance(fitted, dict) else None for fitted in (then, now))
    if not (isinstance(typed, str) and isinstance(read, str)) or typed == read or Path(typed).is_absolute() \
            or not Path(read).is_absolute():
        return None
    parts, resolved = Path(typed).parts, Path(read)
    if ".." in parts or "." in parts or resolved.parts[-len(parts):] != parts:
        return None
    return TypedSummary(typed, read, str(resolved.parents[len(parts) - 1]))


def relative_summary_note(old: ScoreRecord, new: ScoreRecord) -> List[str]:
    """What a record that names its checkpoint's summary.json by a relative path (:data:`RELATIVE_SUMMARY`) is told:
    the same file as the rerun's, from the folder it was typed in (its settings naming it are then notes, not
    differences: :func:`settings_pairs`), or that the record cannot tell (they stay differences)."""
    then = (old.settings or {}).get("fitted_to")
    typed = then.get("summary") if isinstance(then, dict) else None
    if not isinstance(typed, str) or Path(typed).is_absolute():
        return []
    found = summary_as_typed(old, new)
    if found:
        return [f"record {old.id} names its checkpoint's summary.json {found.typed!r} ({RELATIVE_SUMMARY}), the rerun "
                f"{found.read!r}: the same path, typed in {found.folder}, beside the checkpoint whose bytes the "
                "record's sha256 checked; the settings that name it differ only in that"]
    read = ((new.settings or {}).get("fitted_to") or {}).get("summary")
    return [f"record {old.id} names its checkpoint's summary.json {typed!r} ({RELATIVE_SUMMARY}), and the rerun read "
            f"{read!r}, which does not end in that path (a '..' or a link on the way): the record cannot tell whether "
            "they are one file; score the checkpoint again (zoo score ... --checkpoint PATH) for a record that names "
            "it resolved"]


#: retina.metrics.feve's rule since 2026-12-05, which a held-out record scored before it does not follow
FEVE_RULE = ("since 2026-12-05 a cell without explainable variance (its trial-to-trial noise variance as large as its "
             "total variance, e.g. on a short recording) has no FEVE, null in a record (retina.metrics.feve); a record "
             "scored before holds the number its ratio by a non-positive denominator gave")


def feve_rule_note(holder: str, cells: List[str]) -> str:
    """The note saying that ``holder`` (a record, a fit's ``heldout_metrics.csv``) holds FEVEs for ``cells`` that
    the rerun, under :data:`FEVE_RULE`, leaves null."""
    return (f"{holder} holds a FEVE for {', '.join(cells)}, the rerun none: {FEVE_RULE}; "
            f"{'that cell is' if len(cells) == 1 else 'those cells are'} below the explainable-variance filter, out of "
            "the medians")


def feve_rule_cells(stored_rows, rerun_rows) -> List[str]:
    """The cells of retina held-out per-cell rows (dicts with ``cell``, ``feve``, ``explainable_fraction``: a record's
    ``per_bin``, a ``heldout_metrics.csv``'s rows) whose stored FEVE is a number where the rerun's is null because of
    :data:`FEVE_RULE`: the rerun finds the cell's explainable fraction not positive. A FEVE missing for another reason
    is no rule's doing, and is not named."""
    rerun = {row.get("cell"): row for row in rerun_rows or [] if isinstance(row, dict) and "cell" in row}
    cells = []
    for row in stored_rows or []:
        now = rerun.get(row.get("cell")) if isinstance(row, dict) else None
        if not now or not _is_number(row.get("feve")) or math.isnan(row["feve"]) or "feve" not in now:
            continue
        explainable = now.get("explainable_fraction")
        if gap(now["feve"], None) == 0 and _is_number(explainable) and explainable <= 0:
            cells.append(str(row["cell"]))
    return cells


def feve_rule_change(ruled, pairs: List[Tuple[str, Any, Any]], tolerance: float) -> str:
    """What the verdict adds where numbers beyond the ``tolerance`` (of ``pairs``) are among ``ruled``, the names of
    the FEVEs the record holds and the rerun, under :data:`FEVE_RULE`, does not (:func:`feve_rule_cells`): all of
    them, or how many; else ""."""
    ruled = set(ruled)
    beyond = [name for name, a, b in pairs if gap(a, b) > tolerance]
    followed = [name for name in beyond if name in ruled]
    if not followed:
        return ""
    which = "the difference follows" if len(followed) == len(beyond) else \
        f"{len(followed)} of the {len(beyond)} differences ({', '.join(followed)}) follow"
    return (f"; {which} from the FEVE rule of 2026-12-05: the record predates it, holding a FEVE for cells without "
            "explainable variance, which have none since (note above)")


def why_it_differs(old: ScoreRecord, new: ScoreRecord, pairs: List[Tuple[str, Any, Any]], tolerance: float) -> str:
    """What a "NOT reproduced" verdict adds, the known changes its differences follow from: the score's version, the
    measure's, the FEVE rule (each "" where it does not apply)."""
    return (score_version_change(old, new) + measure_version_change(old, new)
            + feve_rule_change(record_feve_rule(old, new), pairs, tolerance))


def record_feve_rule(old: ScoreRecord, new: ScoreRecord) -> List[str]:
    """The names (as :func:`differences` gives them) of the FEVEs a record holds and its rerun does not, under
    :data:`FEVE_RULE`."""
    return [f"per_bin[{cell}].feve" for cell in feve_rule_cells(old.per_bin, new.per_bin)]


def rerun_spec(how) -> Dict[str, Any]:
    """The ``zoo run`` / ``zoo work`` spec of a rerun description (a record's ``settings["rerun"]``), else {}."""
    spec = how.get("spec") if isinstance(how, dict) else None
    return spec if isinstance(spec, dict) else {}


def _benchmark_version_notes(spec: dict) -> List[str]:
    """A note where the benchmark's definition (its registered version, :func:`leaderboard.zoo.benchmark_version`)
    is not the one the record was scored with: a record made before the version existed states none."""
    from neurozoo import benchmarks
    from neurozoo.leaderboard.zoo import benchmark_version

    if spec.get("benchmark") not in benchmarks.BENCHMARKS:
        return []
    stored, now = spec.get("benchmark_version"), benchmark_version(spec["benchmark"]).get("benchmark_version")
    if stored == now:
        return []
    return [f"spec.benchmark_version: stored {'none' if stored is None else stored}, this code's "
            f"{'none' if now is None else now} ({spec['benchmark']}'s measure has changed since the record)"]


def _recorded_threads(record: ScoreRecord) -> Optional[int]:
    """The thread count to rerun ``record`` under: its retina fit's (``settings.fit_provenance.torch_threads``: the
    weights follow it, and a score read from the fit cache ran under another count, which ``environment`` states),
    else the scoring process's."""
    settings = record.settings or {}
    return fit_threads((settings.get("fit_provenance") or {}).get("torch_threads"),
                       (settings.get("environment") or {}).get("torch_threads"))


def fit_threads(fitted, scored: Optional[int]) -> Optional[int]:
    """``fitted`` (a fit's thread counts, :attr:`retina.fit.FitResult.torch_threads`) when it is one count, else
    ``scored``. A fit resumed under another count cannot be run again in one go: said, and the last count used."""
    if not isinstance(fitted, list) or not fitted or not all(isinstance(n, int) for n in fitted):
        return scored
    if len(fitted) > 1:
        print(f"the fit ran under {' then '.join(map(str, fitted))} torch threads (resumed under another count); "
              f"fitting again under {fitted[-1]}: its numbers may differ in the last bits")
    return fitted[-1]


def recorded_blas_threads(settings: Optional[Dict[str, Any]]) -> Optional[int]:
    """The BLAS thread count a record's (or a ``zoo fit`` summary's) ``environment`` states, None where it states
    none (stored before records kept it)."""
    count = ((settings or {}).get("environment") or {}).get("blas_threads")
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def with_threads(threads: Optional[int], run, blas: Optional[int] = None):
    """``run()`` with torch's intra-op thread count, and the BLAS's (``blas``: numpy's and SciPy's), set to the
    record's: float sums are grouped per thread, so another count moves the last bits (README, "Reproducibility and
    interrupted runs")."""
    import contextlib

    import torch

    before = torch.get_num_threads()
    if threads and threads != before:
        print(f"using {threads} torch threads, as the record was scored or fitted (this process had {before})")
        torch.set_num_threads(threads)
    limits = contextlib.nullcontext()
    if blas:
        import scipy.linalg  # noqa: F401  loads SciPy's BLAS now: a limit reaches only the libraries already loaded
        from threadpoolctl import threadpool_limits

        from neurozoo.datasets.provenance import blas_threads

        if blas != blas_threads():
            print(f"using {blas} BLAS threads, as the record was scored (this process had {blas_threads()})")
        limits = threadpool_limits(limits=blas, user_api="blas")
    try:
        with limits:
            return run()
    finally:
        torch.set_num_threads(before)


def add_command(sub) -> None:
    p = sub.add_parser("reproduce", help="score a stored record (or fit a zoo fit summary) again from what it keeps, "
                                         "and compare",
                       description="Rebuild the model, data and settings of a stored score (zoo score, zoo run, "
                                   "zoo work, zoo dynamics or zoo compare) from its record alone, compute it afresh (no activation cache, the "
                                   "retina fit redone in a temporary folder) and compare every number; exit 1 when "
                                   "a difference exceeds --tolerance. Given zoo fit's DIR/summary.json instead, fit "
                                   "the model again on the same recording (its sha256 checked first) with the "
                                   "recorded seed and settings, and compare the held-out numbers.")
    p.add_argument("record", metavar="RECORD", help="record id (zoo score prints it, zoo score --records lists the "
                                                    "store's; the leaderboard's model page shows it), or zoo fit's "
                                                    "DIR/summary.json (or DIR)")
    add_db_argument(p, note=" RECORD is read from, which must exist (not with a zoo fit summary)")
    add_device_argument(p, "the rerun (the model's features, a retina model's fit)",
                        note="; a device other than the record's is noted beside the comparison")
    p.add_argument("--tolerance", type=non_negative, default=0.0,
                   help="largest accepted absolute difference (default 0: bit-identical, as on the same machine "
                        "with the same thread count)")
    p.add_argument("--use-caches", action="store_true",
                   help="read the activation cache and the retina fit cache, as zoo run does (faster, checks less)")
    p.set_defaults(handler=run_reproduce)


def run_reproduce(args) -> int:
    """``zoo reproduce``; a SIGTERM stops it at once, as Ctrl-C does, its scratch folder removed
    (:func:`datasets.termination.sigterm_stops_at_once`: it stores nothing)."""
    from neurozoo.datasets.termination import sigterm_stops_at_once

    with sigterm_stops_at_once():
        return _run_reproduce(args)


def _run_reproduce(args) -> int:
    from neurozoo.leaderboard import reproduce_fit
    from neurozoo.benchmarks.records import missing_store_problem
    from neurozoo.leaderboard.db import LeaderboardDB

    if reproduce_fit.is_fit_summary(args.record):
        return reproduce_fit.run(args)
    args.record = int(args.record)
    missing = missing_store_problem(args.db)  # opening a store creates it: a misspelt --db was left behind, empty
    if missing:
        raise UserFacingError(missing)
    store = LeaderboardDB(args.db)  # the results store with the leaderboard's jobs
    record = store.get(args.record)
    if record is None:
        raise UserFacingError(f"no record {args.record} in {store.shown_url}")
    how = (record.settings or {}).get("rerun") or job_rerun(store, record.id)
    changed = changed_data(record)
    if changed:  # said before the rerun: its numbers, minutes of extraction later, could only be on other data
        for name, stored, found in changed:
            print(f"  differs: {name}: stored {stored!r}, now {found!r}")
        print(f"NOT reproduced: record {record.id}'s {' and '.join(name for name, _, _ in changed)} "
              f"{'is' if len(changed) == 1 else 'are'} not the benchmark's now (its data has changed since it was "
              "scored); not scored again")
        return 1
    new = with_threads(_recorded_threads(record),
                       lambda: rerun(record, device=args.device, use_caches=args.use_caches, how=how),
                       blas=recorded_blas_threads(record.settings))
    walked = settings_pairs(record, new)  # one walk of the two records' settings for the three comparisons
    pairs = differences(record, new, walked)
    largest, notes = compare(record, new, walked, pairs, how)
    notes += protocol_notes(how)
    print(f"record {record.id}: {record.model} on {record.benchmark}, stored {record.value!r}, rerun {new.value!r}")
    for note in rule_notes(record, new):
        print(f"  note: {note}")
    for note in notes:
        print(f"  differs: {note}")
    named = mismatches(record, new, walked, how)
    for name, stored, found in named:
        print(f"  differs: {name}: stored {stored!r}, rerun {found!r}")
    if named:
        fields = ", ".join(name for name, _, _ in named[:5]) + (f" and {len(named) - 5} more" if len(named) > 5 else "")
        data = any(name in DATA_CHECKSUMS for name, _, _ in named)
        print(f"NOT reproduced: record {record.id}'s {fields} {'is' if len(named) == 1 else 'are'} not the rerun's"
              + (" (the benchmark's data has changed since it was scored)" if data else "")
              + (", whatever the numbers" if largest <= args.tolerance else
                 f"; largest difference of the numbers {largest:.3g}")
              + why_it_differs(record, new, pairs, args.tolerance))
        return 1
    if largest <= args.tolerance:
        settings = sum(name.startswith("settings") for name, _, _ in pairs)
        print(f"reproduced: {within_tolerance(largest, args.tolerance)} (value, error, ceiling, raw and "
              f"{len(record.per_bin or [])} per-bin rows" + (f", {settings} numbers of the settings)" if settings else ")"))
        return 0
    print(beyond_tolerance(pairs, largest, args.tolerance) + why_it_differs(record, new, pairs, args.tolerance))
    return 1


def changed_data(record: ScoreRecord) -> List[Tuple[str, Any, Any]]:
    """``(field, stored, now)`` of the checksums of a neural benchmark's data (the responses' ``data_sha256``, the
    images' ``settings.stimuli_sha256``) that the record states and the registered benchmark no longer has: checked
    before any scoring. Empty for other records and a benchmark not registered here (the rerun names that)."""
    from neurozoo import benchmarks
    from neurozoo.benchmarks.neural import NeuralBenchmark

    if record.benchmark not in benchmarks.BENCHMARKS or record.data_sha256 is None:
        return []
    try:
        benchmark = benchmarks.load(record.benchmark)
        if not isinstance(benchmark, NeuralBenchmark):
            return []
        stored_images = (record.settings or {}).get("stimuli_sha256")
        rows = [("data_sha256", record.data_sha256, benchmark.responses_sha256)]
        if stored_images is not None:
            rows.append(("settings.stimuli_sha256", stored_images, benchmark.stimuli_sha256))
    except UserFacingError:  # its data missing here, say: the rerun says so, naming the record
        return []
    return [(name, stored, now) for name, stored, now in rows if stored != now]


def within_tolerance(largest: float, tolerance: float) -> str:
    """How a reproduction within the tolerance is told: bit-identical, or its largest difference."""
    return "bit-identical" if largest == 0 else f"largest difference {largest:.3g} <= tolerance {tolerance:g}"


#: the settings that hold the version of a benchmark's measure: a phenomenon analysis' index or protocol version, the
#: OSR call's (``retina_embedded.osr``; ``osr-mechanism``'s reduced models'). A rerun under another version computes
#: another measure, whose numbers may differ by design
MEASURE_VERSIONS = ("settings.analysis.index_version", "settings.analysis.protocol_version",
                    "settings.osr.call_version", "settings.osr_call_version")


def measure_version_change(old: ScoreRecord, new: ScoreRecord) -> str:
    """What the verdicts on numbers or settings that differ add where the rerun's measure is of another version than
    the record's (:data:`MEASURE_VERSIONS`; a record from before the setting states none): the versions, else ""."""
    then, now = (dict(leaves(record.settings or {}, "settings")) for record in (old, new))
    changed = [f"the record predates {name} (the rerun's {now[name]})" if then.get(name) is None else
               f"the record's {name} is {then[name]}, the rerun's {now[name]}"
               for name in MEASURE_VERSIONS if now.get(name) is not None and then.get(name) != now[name]]
    return f"; the difference follows from the measure's version: {'; '.join(changed)}" if changed else ""


def score_version_change(old: ScoreRecord, new: ScoreRecord) -> str:
    """What the verdicts on numbers or settings that differ add where the rerun's score is of another version than
    the record's (a phenomenon benchmark's ``settings.score_version``; a record from before the setting states none:
    version 1): the change that the difference follows from, else ""."""
    version = (new.settings or {}).get("score_version")
    stored = (old.settings or {}).get("score_version")
    if version is None or stored == version:
        return ""
    from neurozoo.benchmarks.phenomena import SCORE_VERSION_CHANGES

    was = "predates score version" if stored is None else f"is of score version {stored}, the rerun's"
    change = SCORE_VERSION_CHANGES.get(version)
    return f"; the difference follows from the score's version: the record {was} {version}" + (
        f" ({change})" if change else "")


def beyond_tolerance(pairs: List[Tuple[str, Any, Any]], largest: float, tolerance: float) -> str:
    """The verdict line of a reproduction whose largest difference exceeds the tolerance: the worst number and how
    many of ``pairs`` are beyond it."""
    worst = max(pairs, key=lambda row: gap(row[1], row[2]))
    beyond = sum(gap(a, b) > tolerance for _, a, b in pairs)
    return (f"NOT reproduced: largest difference {largest:.3g} > tolerance {tolerance:g} "
            f"({worst[0]}: stored {worst[1]!r}, rerun {worst[2]!r}; {beyond} of {len(pairs)} numbers beyond it)")
