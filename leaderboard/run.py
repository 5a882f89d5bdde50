"""The main job, ``zoo run``: queue the built-in zoo on the default benchmarks, score what is not done yet,
write the leaderboard database and a static HTML report, print the ranking.

Stopped part-way (Ctrl-C; SIGTERM inside the command's ``datasets.termination.sigterm_deferred`` block, taken between
jobs so that the job being scored is finished and stored, or, in a retina job's fit, at the end of an epoch, after its
checkpoint: :class:`retina.fit.FitInterrupted`, the job handed back to the queue), it raises :class:`RunInterrupted`
and writes no report: every job is done (its score stored whole) or queued again, and the same command continues (a
stopped fit resumed from its checkpoint)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence


class RunInterrupted(KeyboardInterrupt):
    """``zoo run`` stopped before its last job; the message says what was kept and how to continue."""


def run_zoo(db_url: Optional[str] = None, models: Optional[Sequence[str]] = None,
            benchmark_names: Optional[Sequence[str]] = None, device: str = "cpu", width_multiplier: float = 0.125,
            max_features: int = 200, checkpoints: Optional[Dict[str, str]] = None, report: Optional[Path] = None,
            lease_s: float = 60.0, retry_failed: bool = False, progress: bool = True, echo=print,
            fit_epochs: Optional[int] = None) -> Dict:
    from neurozoo.datasets.text_table import counted
    from neurozoo.leaderboard.db import LeaderboardDB
    from neurozoo.leaderboard.render import write_report
    from neurozoo.leaderboard.scorer import release_dead_workers, work
    from neurozoo.leaderboard.zoo import DEFAULT_FIT_EPOCHS, score_spec, zoo_specs

    layer_notes = []
    specs, skipped = zoo_specs(models, benchmark_names, width_multiplier, max_features, checkpoints,
                               fit_epochs or DEFAULT_FIT_EPOCHS,  # before the database: a refused name writes nothing
                               layer_notes=layer_notes)
    db = LeaderboardDB(db_url)
    ids = [db.enqueue(spec_name(s), s["benchmark"], s) for s in specs]
    if retry_failed:
        db.requeue_failed(ids)
    released = release_dead_workers(db)
    jobs = db.jobs(ids=ids)
    done_before = sum(j["status"] == "done" for j in jobs)
    echo(f"zoo run: {counted(len(ids), 'job')} ({done_before} already done, reused), database {db.shown_url}")
    if released:
        echo(f"resuming {counted(len(released), 'job')} left running by a scorer that died: {released}")
    for note in skipped:
        echo(f"skipped: {note}")
    for note in layer_notes:
        echo(f"layers: {note}")
    try:
        counts = work(db, lambda job: score_spec(job["spec"], device=device), ids=ids, lease_s=lease_s,
                      progress=progress)
    except KeyboardInterrupt as error:  # the scorer has handed the job it was scoring back to the queue
        raise RunInterrupted(stopped_jobs(db, ids, done_before, error)) from None
    jobs = db.jobs(ids=ids)
    for note in scored_layers_notes(db, jobs):
        echo(f"layers: {note}")
    failed = [j for j in jobs if j["status"] == "failed"]
    for job in failed:
        echo(f"FAILED {job['model']} on {job['benchmark']}: {job['error']}")
    report = Path(report) if report else Path(db_path_folder(db.url)) / "leaderboard_report"
    index = write_report(db, report)
    echo(format_ranking(db))
    echo(f"report: {index}")
    return {"ids": ids, "reused": done_before, "counts": counts, "failed": len(failed), "report": index, "db": db}


def scored_layers_notes(db, jobs) -> List[str]:
    """The ``layers:`` lines (:func:`leaderboard.zoo.layers_note`) of the models whose layers were not known before
    scoring, a ConvRNN that cannot be built on the meta device (a plugin's: ``zoo_specs`` commits it to no layer, and
    it got no line): the layers its done jobs scored where ``zoo run`` chose them (``layer_choice``
    :data:`~leaderboard.zoo.FALLBACK_LAYER`), read from their records' settings, so the model is not built again."""
    from neurozoo.leaderboard.aggregate import benchmark_region
    from neurozoo.leaderboard.db import DONE
    from neurozoo.leaderboard.zoo import FALLBACK_LAYER, layers_note

    chosen: Dict[str, Dict[str, str]] = {}
    for job in jobs:
        spec = job["spec"]
        if spec.get("family") != "convrnn" or "layer" in spec or job["status"] != DONE:
            continue
        record = db.score_for_job(job)
        settings = (record.settings or {}) if record is not None else {}
        if settings.get("layer_choice") == FALLBACK_LAYER:
            chosen.setdefault(spec["model"], {}).setdefault(benchmark_region(spec["benchmark"]), settings["layer"])
    return [layers_note(model, list(regions.items())) for model, regions in chosen.items()]


#: how ``zoo run`` stopped part-way goes on (:func:`stopped_jobs`)
RERUN = " and no report was written: rerun the same command to continue (finished results are reused)"


def stopped_jobs(db, ids, done_before: int, error: KeyboardInterrupt, then: str = RERUN,
                 then_none: Optional[str] = None) -> str:
    """What a scorer stopped part-way (``zoo run``, ``zoo work``) leaves of the jobs ``ids``: how many are done
    (stored whole), the checkpoint of a retina fit stopped part-way, and how to continue: ``then``, or ``then_none``
    where none of them is left to score (a stop as the last one was stored; default ``then``)."""
    from neurozoo.datasets.text_table import counted
    from neurozoo.leaderboard.db import DONE, FAILED, QUEUED, RUNNING
    from neurozoo.retina.fit import FitInterrupted

    statuses = [j["status"] for j in db.jobs(ids=ids)]
    done, failed = statuses.count(DONE), statuses.count(FAILED)
    fit = ""
    if isinstance(error, FitInterrupted):
        how = f" (signal {error.signum})"
        fit = (f"; the job being scored was handed back, its fit's {error.epochs_done} of at most {error.epochs} "
               f"epochs kept in {error.checkpoint} for the rerun to resume")
    else:
        how = f" ({error})" if str(error) else ""
    failures = f", {failed} failed" if failed else ""
    if statuses.count(QUEUED) + statuses.count(RUNNING):
        others = f"the others are queued{then}"
    else:
        others = f"none is left to score{then if then_none is None else then_none}"
    return (f"stopped{how} with {done} of {counted(len(ids), 'job')} done and stored ({done - done_before} in this "
            f"run){failures}{fit}; {others}")


def spec_name(spec) -> str:
    from neurozoo.leaderboard.zoo import display_name

    return display_name(spec)


def db_path_folder(url: str) -> str:
    from neurozoo.benchmarks.paths import home

    if url.startswith("sqlite:///"):
        return str(Path(url[len("sqlite:///"):]).parent)
    return str(home())


def format_ranking(db) -> str:
    from neurozoo.datasets.text_table import format_table
    from neurozoo.leaderboard.views import PRINTED_MISSING_NOTE, board

    context = board(db)
    regions = [name for name, depth, leaf in context["columns"] if depth <= 2 and not leaf]
    # the error taken as independent, then its upper bound whatever the scores' correlation where it differs, as on
    # the page (its hover): "0.300 \u00b1 0.025 (\u2264 0.035)"
    bound = lambda node: "" if node[4] is None or f"{node[4]:.3f}" == f"{node[3]:.3f}" else f" (\u2264 {node[4]:.3f})"
    error = lambda node: "" if node[3] is None else f" \u00b1 {node[3]:.3f}{bound(node)}"
    fmt = lambda node: "-" if node[0] is None else f"{node[0]:.3f}{error(node)} ({node[1]}/{node[2]})"
    among = lambda row: (f"{row['ranked_among']['scored_on']} ({row['ranked_among']['models']})"
                         if row["ranked_among"] else "not ranked")
    rows = [(row["rank"] or "-", row["model"], fmt(row["nodes"]["overall"]), among(row),
             *[fmt(row["nodes"][r]) for r in regions], row.get("weights") or "") for row in context["rows"]]
    table = format_table(("rank", "model", context["overall_label"], "ranked among (models)", *regions, "weights"),
                         rows)
    return "\n".join([table, context["rank_note"], context["data_note"], context["scale_note"], PRINTED_MISSING_NOTE,
                      *(f"not ranked: {o['model']} on {o['benchmark']} (job {o['job']}): {o['reason']}; "
                        f"scored again by {o['again']}" for o in context["outdated"])])
