"""``zoo reproduce DIR/summary.json``: fit again what ``zoo fit`` fitted, from its ``summary.json`` alone, and compare.

``zoo fit`` keeps no record in the results store: its ``summary.json`` (``retina/cli.py``) states the model, the
recording (path and sha256), the seed and every resolved fit setting (``provenance.settings``), the fitting protocol
and the environment, and ``heldout_metrics.csv`` beside it the per-cell numbers. The rerun refuses a recording that
is gone or whose sha256 is not the recorded one (naming the file) before anything is fitted, then fits the model from
scratch in a temporary folder with the recorded settings and torch thread count (as ``zoo fit`` does: the seed, the
model's initial weights, the fit), scores it on the test repeats and compares the summary's numbers (the medians
over passing cells, the cell counts, the kept epoch and its validation correlation, the output calibration's) and
every per-cell number of ``heldout_metrics.csv`` within the tolerance; a fitting protocol, code version, device or
environment other than the record's, and rerun weights whose sha256 is not the recorded one, are notes, as for the
store's records (:mod:`leaderboard.reproduce`).
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

from neurozoo.datasets.errors import DataError, UserFacingError
from neurozoo.leaderboard.reproduce import (beyond_tolerance, feve_rule_cells, feve_rule_change, feve_rule_note,
                                           fit_threads, gap, leaves, recorded_blas_threads, require, with_threads,
                                           within_tolerance)

#: summary.json's fields that the rerun reads, and their types (a summary edited or cut short is refused naming one)
SUMMARY_FIELDS = {"model": (str,), "data": (str,), "provenance": (dict,)}
PROVENANCE_FIELDS = {"data_sha256": (str,), "seed": (int,), "settings": (dict,)}
#: the summary's numbers that a rerun gives again (``retina.metrics.summary`` and the kept epoch's)
NUMBERS = ("median_correlation", "median_feve", "median_oracle", "n_cells", "n_passing", "best_epoch",
           "best_val_correlation")
#: numbers only a summary holds (history.json has the kept epoch too): a JSON file without any is not one cut short
SUMMARY_ONLY = ("median_correlation", "n_cells", "n_passing")
#: fit settings that do not change the result: the device (compared apart, in a note) and the progress bar
UNCOMPARED = ("device", "progress")
#: how many numbers beyond the tolerance are printed one by one
SHOWN = 20


def is_fit_summary(argument: str) -> bool:
    """Whether ``zoo reproduce``'s argument names a ``zoo fit`` summary (a ``.json`` file, or a folder holding
    ``summary.json``) rather than a record id."""
    return not argument.isdigit()


def summary_path(argument: str) -> Path:
    path = Path(argument).expanduser()
    if path.is_dir():
        path = path / "summary.json"
    if not path.is_file():
        raise UserFacingError(f"{argument}: neither a record id nor a zoo fit summary.json (no such file; zoo fit --out "
                              "DIR writes DIR/summary.json)")
    return path


def read_summary(path: Path) -> Dict[str, Any]:
    """``path``'s summary, refused naming the field where it lacks one the rerun reads or holds another type."""
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable zoo fit summary.json ({getattr(error, 'strerror', None) or error})") \
            from None
    if not isinstance(summary, dict):
        raise DataError(f"{path}: expected zoo fit's summary (a JSON object), found {type(summary).__name__}")
    if not any(name in summary for name in SUMMARY_ONLY):  # another JSON file (history.json, a probe's record)
        raise DataError(f"{path}: not a zoo fit summary.json (none of its {', '.join(SUMMARY_ONLY)})"
                        f"{other_record(summary)}; zoo reproduce takes a record id or zoo fit's DIR/summary.json")
    require(summary, SUMMARY_FIELDS, str(path))
    require(summary["provenance"], PROVENANCE_FIELDS, f"{path}: provenance")
    return summary


def other_record(record: Dict[str, Any]) -> str:
    """What a JSON object that is no zoo fit summary is, where it says (a ``zoo probe`` record keeps the probe's
    arguments), as a phrase after the file's name; else ``""``."""
    arguments = (record.get("provenance") or {}).get("arguments") if isinstance(record.get("provenance"), dict) else None
    if not (isinstance(arguments, dict) and arguments.get("command") == "probe"):
        return ""
    return (f": the record of zoo probe {arguments.get('phenomenon')}, which zoo reproduce does not rerun (run the probe "
            "again with the arguments it keeps, provenance.arguments, into another --out, and compare the JSON files)")


def recording(path: Path, summary: Dict[str, Any]) -> Path:
    """The recording the fit read, if it is still there with the same bytes (refused, naming it, if not): by its
    resolved path (``data_absolute``), which reads from any folder, or, in a summary written before zoo fit recorded
    it, by ``data`` as given to zoo fit (a relative one from the folder zoo fit ran in)."""
    from neurozoo.datasets.provenance import sha256_file
    from neurozoo.datasets.synthetic_retina import embedded_kind

    if "data_absolute" in summary:
        require(summary, {"data_absolute": (str,)}, str(path))
    data = Path(summary.get("data_absolute") or summary["data"])
    digest = summary["provenance"]["data_sha256"]
    kind = embedded_kind(data, digest)
    again = (f" (embedded:{kind}: `zoo fit {summary['model']} --data embedded:{kind}` generates it again, at its "
             "default size)") if kind else ""
    if not data.is_file():
        where = " (a relative path: from the folder zoo fit ran in)" if not data.is_absolute() else ""
        raise DataError(f"{path}: its recording {data}{where} is gone (sha256 {digest[:12]}){again}; the fit is "
                        "reproduced on the very data it read")
    now = sha256_file(data)
    if now != digest:
        raise DataError(f"{path}: its recording {data} has changed since the fit (sha256 {digest[:12]} then, "
                        f"{now[:12]} now): not the data it was fitted to")
    return data


def fit_config(path: Path, summary: Dict[str, Any], device: str):
    """The :class:`retina.fit.FitConfig` the fit used, from ``provenance.settings``, on ``device``."""
    from neurozoo.datasets.errors import SpecError
    from neurozoo.retina.fit import RECORDED_ONLY, FitConfig, checked_fit_settings

    recorded = {name: value for name, value in summary["provenance"]["settings"].items() if name not in RECORDED_ONLY}
    try:
        settings = checked_fit_settings(recorded, f"{path}: provenance.settings")
    except SpecError as error:
        raise DataError(f"{error}; not a fit of this version: it cannot be made again as it was") from None
    if settings.get("seed", summary["provenance"]["seed"]) != summary["provenance"]["seed"]:
        raise DataError(f"{path}: provenance.settings.seed {settings['seed']} is not provenance.seed "
                        f"{summary['provenance']['seed']}; the summary was edited")
    return FitConfig(**{**settings, "device": device, "progress": False})


def refit(path: Path, summary: Dict[str, Any], data: Path, device: str, scratch: Path):
    """``(fit result, per-cell held-out metrics, weights sha256)`` of the model fitted again as ``zoo fit`` fitted
    it: the seed set before the model is made (its initial weights), then the fit from scratch in ``scratch``."""
    import torch

    from neurozoo.datasets.registry import UnknownNameError
    from neurozoo.datasets.retina_h5 import read_experiment
    from neurozoo.retina.embedded_fit import weights_sha256
    from neurozoo.retina.fit import HELDOUT_HISTORIES, create_model, evaluate, fit

    config = fit_config(path, summary, device)
    # scored in the mode its held-out metrics were (zoo fit --heldout-history; a summary without it: simulated)
    history = summary.get("heldout_history") or "simulated"
    if history not in HELDOUT_HISTORIES:  # before the fit
        raise DataError(f"{path}: heldout_history {history!r}: expected one of {', '.join(HELDOUT_HISTORIES)} (or "
                        "null); the summary was edited")
    torch.manual_seed(config.seed)
    try:
        model = create_model(summary["model"], n_cells=len(read_experiment(data, "train", cells=config.cells).cells))
    except UnknownNameError as error:
        raise UserFacingError(f"{path}: {error}") from None
    result = fit(model, data, config=config, out=scratch, resume=False)
    return result, evaluate(result.model, data, device=device, heldout_history=history,
                           cells=result.config.cells), weights_sha256(scratch)


def stored_metrics(path: Path):
    """``heldout_metrics.csv`` beside ``path`` as a frame (a row per cell), or None where there is none; refused,
    naming it, where it does not parse: it was read after the fit, and an empty or cut-short file ended the
    reproduction in pandas' EmptyDataError or ParserError traceback once the model was fitted again."""
    import pandas as pd

    metrics = path.parent / "heldout_metrics.csv"
    if not metrics.is_file():
        return None
    try:
        return pd.read_csv(metrics, index_col=0)
    except ValueError as error:  # pandas' EmptyDataError and ParserError, a UnicodeDecodeError
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{metrics}: not a readable CSV file ({reason}); expected zoo fit's per-cell held-out metrics "
                        "(a header, then a row per cell); the file was edited or cut short") from None


def number_pairs(path: Path, summary: Dict[str, Any], result, frame,
                 stored) -> Tuple[List[Tuple[str, Any, Any]], List[str]]:
    """``(pairs, mismatches)``: ``(field, stored, rerun)`` of every compared number (:data:`NUMBERS`, the output
    calibration's, each per-cell number of ``stored``, :func:`stored_metrics`, each numeric fit setting), and the
    names of what must be equal and is not (the cells, a text setting)."""
    import pandas as pd

    from neurozoo.retina.metrics import summary as medians

    now = {**medians(frame), "best_epoch": result.best_epoch, "best_val_correlation": result.best_val_correlation}
    pairs = [(name, summary.get(name), now[name]) for name in NUMBERS]
    calibration = dict(leaves(summary.get("output_calibration"), "output_calibration"))
    rerun_calibration = dict(leaves(result.extra.get("output_calibration"), "output_calibration"))
    pairs += [(name, calibration.get(name), rerun_calibration.get(name))
              for name in sorted(set(calibration) | set(rerun_calibration))]
    mismatched = []
    stored_settings, rerun_settings = summary["provenance"]["settings"], _settings(result)
    for name in sorted(set(stored_settings) & set(rerun_settings) - set(UNCOMPARED)):
        a, b = stored_settings[name], rerun_settings[name]
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            pairs.append((f"settings.{name}", a, b))
        elif a != b:
            mismatched.append((f"settings.{name}", a, b))
    metrics = path.parent / "heldout_metrics.csv"
    if stored is not None:  # the rerun's read back from its CSV text, as the stored were: like compared with like
        rerun = pd.read_csv(io.StringIO(frame.to_csv()), index_col=0)
        if list(stored.index) != list(rerun.index) or list(stored.columns) != list(rerun.columns):
            mismatched.append((f"{metrics.name} cells and columns", [*stored.index, *stored.columns],
                               [*rerun.index, *rerun.columns]))
        else:
            pairs += [(f"{metrics.name}[{cell}].{column}", _plain(stored.at[cell, column]), _plain(rerun.at[cell, column]))
                      for cell in stored.index for column in stored.columns]
    return pairs, mismatched


def fit_feve_rule(stored, frame) -> List[str]:
    """The cells whose FEVE the stored ``heldout_metrics.csv`` (``stored``, or None) holds and the rerun's per-cell
    metrics (``frame``) leave null under the FEVE rule (:func:`leaderboard.reproduce.feve_rule_cells`): a fit
    summarised before it."""
    if stored is None:
        return []

    def rows(table):
        return [{"cell": cell, **{column: _plain(value) for column, value in row.items()}}
                for cell, row in table.to_dict("index").items()]

    return feve_rule_cells(rows(stored), rows(frame))


def _settings(result) -> Dict[str, Any]:
    """The rerun's settings as its summary would state them (:func:`retina.fit.recorded_settings`)."""
    from neurozoo.retina.fit import recorded_settings

    return recorded_settings(result.config, result.model)


def _plain(value):
    """A CSV cell as a Python number (numpy's bool and float as bool and float), for :func:`leaderboard.reproduce.gap`."""
    return value.item() if hasattr(value, "item") else value


def notes(path: Path, summary: Dict[str, Any], result, weights: Dict[str, str]) -> List[str]:
    """What differs but does not fail the reproduction: settings one side lacks, the fitting protocol, code
    version, device, environment, the weights' sha256 (its numbers decide)."""
    from neurozoo.datasets.provenance import code_version, environment
    from neurozoo.retina.fit import FIT_PROTOCOL

    provenance, said = summary["provenance"], []
    stored_settings, rerun_settings = provenance["settings"], _settings(result)
    said += [f"settings.{name}: not in the summary (a setting added since), rerun {rerun_settings[name]!r}"
             for name in sorted(set(rerun_settings) - set(stored_settings) - set(UNCOMPARED))]
    if provenance.get("fit_protocol") != FIT_PROTOCOL:
        said.append(f"fit_protocol: stored {provenance.get('fit_protocol')}, this code's {FIT_PROTOCOL} (the fit has "
                    "changed since the summary)")
    if provenance.get("code_version") != code_version():
        said.append(f"code_version: stored {provenance.get('code_version')}, now {code_version()}")
    if stored_settings.get("device") != result.config.device:
        said.append(f"device: stored {stored_settings.get('device')}, now {result.config.device}")
    then, now = provenance.get("environment") or {}, environment()
    said += [f"environment.{key}: stored {then.get(key)}, now {now.get(key)}"
             for key in sorted(set(then) | set(now)) if then.get(key) != now.get(key)]
    if not (path.parent / "heldout_metrics.csv").is_file():
        said.append(f"heldout_metrics.csv: not beside {path.name}; the per-cell numbers are not compared")
    recorded = summary.get("weights_sha256") or {}
    if "model.pt" in recorded and recorded["model.pt"] != weights.get("model.pt"):
        said.append(f"weights: model.pt sha256 stored {recorded['model.pt'][:12]}, rerun "
                    f"{str(weights.get('model.pt'))[:12]}")
    return said


def run(args) -> int:
    """``zoo reproduce DIR/summary.json``: exit 0 when every number is within ``--tolerance``, 1 when not."""
    if args.db:
        raise UserFacingError("--db: a zoo fit summary is a file of its own, not a record in a results store")
    if args.use_caches:
        raise UserFacingError("--use-caches: a zoo fit summary is always fitted again from scratch (there is no "
                              "activation or fit cache to read)")
    path = summary_path(args.record)
    summary = read_summary(path)
    data = recording(path, summary)  # before any fitting
    stored = stored_metrics(path)  # and so is the per-cell table
    threads = fit_threads(summary["provenance"].get("fit_torch_threads"),
                          (summary["provenance"].get("environment") or {}).get("torch_threads"))
    from neurozoo.datasets.cache import owned_temporary_folder

    # named with this process's host and pid: a refit killed (SIGKILL) left its fit in the temporary folder for good;
    # the next one on this host removes it (datasets.cache.owned_temporary_folder)
    with owned_temporary_folder("neurozoo-reproduce-fit-") as scratch:
        result, frame, weights = with_threads(threads, lambda: refit(path, summary, data, args.device, scratch),
                                              blas=recorded_blas_threads(summary["provenance"]))
    pairs, mismatched = number_pairs(path, summary, result, frame, stored)
    largest = max((gap(a, b) for _, a, b in pairs), default=0.0)
    stored_r, rerun_r = summary.get("median_correlation"), next(b for name, _, b in pairs if name == "median_correlation")
    print(f"{path}: {summary['model']} fitted to {data} (seed {summary['provenance']['seed']}), stored median held-out "
          f"r {stored_r!r}, rerun {rerun_r!r}")
    for note in notes(path, summary, result, weights):
        print(f"  differs: {note}")
    ruled = fit_feve_rule(stored, frame)
    if ruled:
        print(f"  note: {feve_rule_note('heldout_metrics.csv', ruled)}")
    beyond = [row for row in pairs if gap(row[1], row[2]) > args.tolerance]
    for name, stored, found in mismatched + beyond[:SHOWN]:
        print(f"  differs: {name}: stored {stored!r}, rerun {found!r}")
    if len(beyond) > SHOWN:
        print(f"  ... and {len(beyond) - SHOWN} more numbers beyond the tolerance")
    cells = sum(name.startswith("heldout_metrics.csv") for name, _, _ in pairs)
    if mismatched:
        print(f"NOT reproduced: {', '.join(name for name, _, _ in mismatched)} not the rerun's"
              + (", whatever the numbers" if not beyond else f"; largest difference of the numbers {largest:.3g}"))
        return 1
    if not beyond:
        print(f"reproduced: {within_tolerance(largest, args.tolerance)} ({len(pairs) - cells} numbers of the summary "
              f"and {cells} per-cell numbers of heldout_metrics.csv)")
        return 0
    print(beyond_tolerance(pairs, largest, args.tolerance)
          + feve_rule_change([f"heldout_metrics.csv[{cell}].feve" for cell in ruled], pairs, args.tolerance))
    return 1
