"""The retina models' key numbers under the current fitting protocol, as one markdown table.

For every registered retina model (``retina.MODELS``; ``--models`` to choose) and the embedded recordings
(``embedded:whitenoise``, ``embedded:naturalscene``, and ``embedded:oms-whitenoise``, the object-motion circuit's, on
which ``retina_embedded.oms`` protocol version 2 fits its models): the fit that ``zoo run`` scores (seed 0, the zoo's
budget of at most ``retina.embedded_fit.DEFAULT_FIT_EPOCHS`` epochs, early-stopped; :func:`retina.embedded_fit.
fitted_embedded_model`, cached per model, data sha256, seed and fitting protocol, so a cached fit is read, not
redone), then every registered retina benchmark defined on that recording (``benchmarks.BENCHMARKS``, family
``retina``: the held-out one per recording, the phenomena on white noise, OMS on the OMS recording) scored on it as ``zoo run`` scores it.
Columns: epochs run (best epoch, numbered from 0 as in the fit's ``history.json``), the held-out benchmark's median
r, FEVE and oracle r, each phenomenon benchmark's score, and the fit's wall and CPU seconds on this host ("cached"
when the fit was read from the cache: ``--refit`` times every fit afresh; "resumed": only the rest of a fit killed
part-way was timed; both decided by the fit under its lock, so a fit another process was making, waited for, is
"cached"). A cached or resumed fit's cell adds the fit's own recorded time where its folder kept it ("recorded 22 s
over 2 runs": :attr:`retina.fit.FitResult.fit_duration_s`, every run's wall seconds of fitting from ``fit_time.json``,
timed when and where each run was made, under its load; no CPU seconds are kept), said so in a note under the table:
a time another run recorded, not this run's measurement. The header gives the date, the host's CPU,
the code version, the fitting protocol and torch. float32 fits take other paths on other CPUs' kernels, so the
numbers belong to the host named.

    python benchmarks/retina_table.py [--models bncnn,ln] [--kinds whitenoise,naturalscene,oms-whitenoise] [--refit]
        [--device cpu] [--json FILE]
    python benchmarks/retina_table.py --from-json FILE   # the table of a saved run, nothing fitted

Progress goes to stderr, the table to stdout. Measured 2026-12-02 on 2 shared cores: a BN-CNN fit takes 74-138
CPU-s per recording, ``bncnn2016`` 149-264, the others 4-11; every model's fits and benchmarks 24.5 min from an
empty fit cache (load average 2-12), 69 s with the fits cached (the same numbers); before the OMS recording was added
(2026-12-05: its generation and fits, ``zoo score MODEL retina_embedded.oms`` from an empty cache, 45 s to 8 min a
model on a loaded machine, docs/retina.md "OMS"). Measured tables: README ("Retina
models") and docs/retina.md ("Measured").
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the zoo CLI sets it (leaderboard/cli.py); before torch loads

from neurozoo.datasets.json_files import write_json  # noqa: E402
from neurozoo.datasets.text_table import plural  # noqa: E402

KINDS = ("whitenoise", "naturalscene", "oms-whitenoise")  # the last: retina_embedded.oms's (its own circuit's)


def retina_benchmarks(kinds: Sequence[str] = KINDS) -> Dict[str, List[str]]:
    """Recording kind -> the registered retina benchmarks scored on its fit (held-out first, then the others in
    registry order)."""
    from neurozoo import benchmarks

    names = [e.name for e in benchmarks.BENCHMARKS.entries()
             if e.tags.get("family") == "retina" and not e.tags.get("own_data")]  # retina_h5.heldout: no kind
    by_kind: Dict[str, List[str]] = {kind: [] for kind in kinds}
    for name in names:
        kind = benchmarks.load(name).kind
        if kind in by_kind:
            by_kind[kind].append(name)
    for kind in by_kind:
        by_kind[kind].sort(key=lambda name: not name.endswith("-heldout"))
    return by_kind


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(model: str, kind: str, names: Sequence[str], seed: int = 0, device: str = "cpu", refit: bool = False,
            progress: bool = True, sizes: Optional[dict] = None, fit_settings: Optional[dict] = None) -> dict:
    """One table row: ``model`` fitted to the embedded recording ``kind`` (or read from the fit cache), then scored by
    the benchmarks ``names``. ``fit_settings``: the fit's overrides (default: the zoo's, ``epochs`` its budget)."""
    from neurozoo import benchmarks
    from neurozoo.retina.embedded_fit import DEFAULT_FIT_EPOCHS, fitted_embedded_model

    sizes = dict(sizes or {})
    fit_settings = dict(fit_settings) if fit_settings is not None else {"epochs": DEFAULT_FIT_EPOCHS}
    load = os.getloadavg()[0]  # the machine may be shared: the wall time depends on it, the CPU time less
    tic, cpu_tic = time.perf_counter(), _cpu_seconds()
    _, info = fitted_embedded_model(model, kind, seed=seed, device=device, progress=progress, sizes=sizes, refit=refit,
                                    **fit_settings)
    wall, cpu = time.perf_counter() - tic, _cpu_seconds() - cpu_tic
    # decided by the fit under its lock (looked at before it, a fit another process was making, waited for and then
    # read, was "resumed" with the wait as its time); "resumed": a fit killed part-way left its checkpoint and no
    # history.json, and this run's time is only that of the rest
    cached, resumed = info["fit_origin"] == "cached", info["fit_origin"] == "resumed"
    history = json.loads((Path(info["fit_dir"]) / "history.json").read_text())
    # fit_recorded_s: the fit's own time in all its runs as its folder recorded it (retina.fit_time; None: unknown, a
    # fit begun before fit times were kept), not measured here; fit_runs: those runs
    row = {"model": model, "kind": kind, "epochs": len(history["history"]), "best_epoch": history["best_epoch"],
           "fit_wall_s": None if cached else wall, "fit_cpu_s": None if cached else cpu, "cached": cached,
           "resumed": resumed, "fit_recorded_s": info["fit_duration_s"], "fit_runs": len(info["fit_stretches"]),
           "load_average": [load, os.getloadavg()[0]], "fit_dir": info["fit_dir"], "code_version": info["code_version"],
           "scores": {}}
    for name in names:
        tic = time.perf_counter()
        # as zoo run scores a retina job (leaderboard.zoo._score_spec): the model's name, the fit's settings as overrides
        score = benchmarks.load(name, sizes=sizes).score(model, seed=seed, device=device, progress=progress,
                                                         **fit_settings)
        row["scores"][name] = score.value
        if name.endswith("-heldout"):
            summary = score.provenance["settings"]["summary"]
            row.update(heldout_r=summary["median_correlation"], feve=summary["median_feve"],
                       oracle=summary["median_oracle"])
        if progress:
            print(f"  {model} {kind} {name}: {score.value:.3f} ({time.perf_counter() - tic:.1f} s)", file=sys.stderr,
                  flush=True)
    return row


#: /proc/cpuinfo flags named in the host's description: the vector units whose kernels a float32 fit runs on
ISA_FLAGS = {"avx512f": "AVX-512", "amx_tile": "AMX", "avx2": "AVX2"}


def host_cpu() -> str:
    """The CPU's model name and vector units (/proc/cpuinfo), else the platform's processor string."""
    from neurozoo.datasets.provenance import cpu_info, cpu_model

    flags = set(cpu_info().get("flags", "").split())
    units = [name for flag, name in ISA_FLAGS.items() if flag in flags]
    return cpu_model() + (f" ({', '.join(units)})" if units else "")


def header() -> List[str]:
    import torch

    from neurozoo.datasets.provenance import code_version
    from neurozoo.retina.fit import FIT_PROTOCOL

    return [f"date {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; host {host_cpu()}, "
            f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads); "
            f"code {code_version()}; fitting protocol {FIT_PROTOCOL}; seed 0"]


def _number(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


#: the note under a table where a cell gives a fit's recorded time (:func:`fit_time_cell`)
RECORDED_NOTE = ("recorded: the fit's own wall seconds of fitting in all its runs, as its folder's fit_time.json "
                 "kept them (retina.fit.FitResult.fit_duration_s), timed when and where each run was made, under "
                 "its load; not measured by this run, and no CPU seconds are kept. The other times are this run's "
                 "measurement of the fit, the recording's reading included")


def fit_time_cell(row: dict) -> str:
    """The table's fit-time cell of ``row``: this run's measured wall (CPU) seconds, else "cached"; a cached or resumed
    fit's own recorded time added where known (its runs before this one were not measured here)."""
    cell = "cached" if row["cached"] else f"{row['fit_wall_s']:.0f} ({row['fit_cpu_s']:.0f})"
    if row.get("resumed"):
        cell += ", resumed"
    recorded = row.get("fit_recorded_s")  # absent from runs saved before it was kept
    if (row["cached"] or row.get("resumed")) and recorded is not None:
        runs = row.get("fit_runs", 1)
        cell += f", recorded {recorded:.0f} s" + (f" over {runs} runs" if runs > 1 else "")
    return cell


def markdown(rows: Sequence[dict], by_kind: Dict[str, List[str]]) -> str:
    """The rows as a markdown table: one row per (model, recording); a benchmark not defined on a row's recording
    shows "–". Where a cell gives a fit's recorded time, :data:`RECORDED_NOTE` follows the table."""
    phenomena = list(dict.fromkeys(name for names in by_kind.values() for name in names
                                   if not name.endswith("-heldout")))
    columns = (["model", "recording", "epochs (best)", "held-out r", "FEVE", "oracle r"]
               + [name.split(".", 1)[1] for name in phenomena] + ["fit wall s (CPU s)"])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        time_ = fit_time_cell(row)
        cells = [f"`{row['model']}`", row["kind"], f"{row['epochs']} ({row['best_epoch']})",
                 _number(row.get("heldout_r")), _number(row.get("feve")), _number(row.get("oracle"))]
        cells += [_number(row["scores"].get(name)) for name in phenomena] + [time_]
        lines.append("| " + " | ".join(cells) + " |")
    if any(", recorded " in fit_time_cell(row) for row in rows):
        lines += ["", RECORDED_NOTE]
    return "\n".join(lines)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def report(run: dict) -> str:
    """A run's header lines, its duration and load, and its table (``run``: what ``--json`` writes)."""
    rows = run["rows"]
    by_kind = retina_benchmarks(list(dict.fromkeys(row["kind"] for row in rows)))
    loads = [load for row in rows for load in _as_list(row.get("load_average", []))]
    timing = [f"{len(rows)} fits and their benchmarks" + (f" in {run['seconds']:.0f} s" if "seconds" in run else "")]
    if loads:
        timing.append(f"load average {min(loads):.1f}-{max(loads):.1f} before and after the fits")
    return "\n".join(list(run["header"]) + ["; ".join(timing), "", markdown(rows, by_kind)])


def main(argv=None) -> int:
    """The command line; a refused option is one line on stderr and exit status 2, as every zoo command's."""
    from neurozoo import retina

    from neurozoo.datasets.cli_args import ZooArgumentParser
    from neurozoo.datasets.errors import UserFacingError

    parser = ZooArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated retina.MODELS names (default: every registered one)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated embedded recordings")
    parser.add_argument("--refit", action="store_true", help="fit afresh (replacing the cached fits) and time each fit")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the run (header and rows) to this file, row by row")
    parser.add_argument("--from-json", type=Path, metavar="FILE",
                        help="fit nothing: print the table of a run saved with --json (also of an interrupted one)")
    args = parser.parse_args(argv)
    if args.from_json:
        print(report(json.loads(args.from_json.read_text())))
        return 0
    models = args.models.split(",") if args.models else retina.list_models()
    kinds = args.kinds.split(",")
    try:  # the registry's one refusal (zoo score's and zoo run's): close names, every retina model
        for model in models:
            retina.MODELS.get(model)
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise UserFacingError(f"--kinds: unknown {plural(len(unknown), 'recording')} {', '.join(unknown)}; "
                                  f"choose from {', '.join(KINDS)}")
    except UserFacingError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    by_kind = retina_benchmarks(kinds)
    started = time.perf_counter()
    run = {"header": header(), "rows": []}
    for model in models:
        for kind in kinds:
            print(f"{model} on embedded:{kind} (load average {os.getloadavg()[0]:.1f}) ...", file=sys.stderr, flush=True)
            run["rows"].append(measure(model, kind, by_kind[kind], device=args.device, refit=args.refit))
            if args.json:  # kept as it goes: a long run interrupted still leaves its finished rows
                write_json(args.json, run, indent=1)
    run["seconds"] = time.perf_counter() - started
    if args.json:
        write_json(args.json, run, indent=1)
    print(report(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
