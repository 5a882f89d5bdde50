"""The static report's cost of one new score: every page rendered against only the pages it changed.

    python benchmarks/perf/leaderboard_report.py [--models 200] [--repeat 3]

Fills a fresh SQLite board (a temporary folder) with ``--models`` models scored on the two embedded ventral
benchmarks (with per-bin time courses, as ``zoo run``'s; overalls spread evenly), writes the report into a fresh folder
(every page rendered), then stores one new score of the last model on V4 (a run of it with other settings) and writes
the report into the same folder again, for two new scores:

- last: it stays last (0.100 -> 0.101): no other model's rank moves; its page, V4's page and the index are rendered;
- middle: 0.100 -> 1.0 moves its overall to the middle of the ranking, past three quarters of the models, whose pages
  are rendered again too.

Prints each write's CPU seconds (the process's, all of it in this process: rendering and the SQLite reads; median of
``--repeat`` runs on copies of the board) and the ratio side by side. On a
version of the report that renders every page each time both writes take as long.
"""
from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

V4, IT = "ventral_embedded.V4-temporal", "ventral_embedded.IT-temporal"


def score(db, model: str, benchmark: str, value: float, run: int = 0) -> None:
    from neurozoo.benchmarks.records import ScoreRecord

    per_bin = [{"time_bin_start": 70 + 10 * i, "time_bin_end": 80 + 10 * i, "value": value, "error": 0.01,
                "ceiling": 0.8, "raw": value} for i in range(19)]
    settings = {"weights": "untrained, random weights", "layer": "conv6"}
    job = db.enqueue(model, benchmark, {"m": model, "run": run})
    claimed = db.claim("perf", ids=[job])
    db.finish(job, "perf", ScoreRecord(model, benchmark, value, error=0.01, ceiling=0.8, per_bin=per_bin,
                                       settings=settings), lease_token=claimed["lease_token"])


def timed(db, folder: Path) -> float:
    from neurozoo.leaderboard.render import write_report

    started = time.process_time()  # CPU seconds: on a shared machine the wall clock measured its other work
    write_report(db, folder)
    return time.process_time() - started


def main() -> None:
    from neurozoo.datasets.cli_args import ZooArgumentParser

    parser = ZooArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from neurozoo.datasets.provenance import run_provenance_line

    print(run_provenance_line(), flush=True)  # the code and versions these figures are of
    from neurozoo.datasets.cache import owned_temporary_folder
    from neurozoo.leaderboard.db import LeaderboardDB

    # a killed run's board and reports are removed by the next run (datasets.cache.owned_temporary_folder)
    with owned_temporary_folder("neurozoo-report-perf-") as tmp:
        db = LeaderboardDB(f"sqlite:///{tmp / 'board.sqlite'}")
        started = time.perf_counter()
        for i in range(args.models):
            for benchmark in (V4, IT):
                score(db, f"model{i:04d}", benchmark, 0.1 + 0.6 * i / args.models)
        timed(db, tmp / "warm-up")  # imports, registries and the figures' first drawing: not the report's own cost
        db.dispose()
        print(f"board: {args.models} models x 2 benchmarks, filled in {time.perf_counter() - started:.1f} s")
        print(f"{'new score':10} {'all pages CPU s':>16} {'after it CPU s':>15} {'ratio':>7}")
        for case, value in (("last", 0.101), ("middle", 1.0)):
            full, after = [], []
            for run in range(args.repeat):
                copy = tmp / f"{case}{run}.sqlite"
                shutil.copy(tmp / "board.sqlite", copy)
                db = LeaderboardDB(f"sqlite:///{copy}")
                folder = tmp / f"report-{case}{run}"
                full.append(timed(db, folder))
                score(db, "model0000", V4, value, run=1)
                after.append(timed(db, folder))
                db.dispose()
                shutil.rmtree(folder)
            full_s, after_s = statistics.median(full), statistics.median(after)
            print(f"{case:10} {full_s:16.2f} {after_s:15.2f} {full_s / after_s:6.1f}x")


if __name__ == "__main__":
    main()
