"""Load on a local leaderboard: concurrent page readers while submissions queue and are scored (loopback only).

    python benchmarks/perf/leaderboard_load.py --readers 100 --submissions 50 [--workers 1] [--db URL]

Runs the deployment as separate processes: ``zoo serve`` (uvicorn) over a fresh SQLite database (or ``--db``)
pre-filled with a synthetic board (``--models`` x the registered benchmarks), and ``--workers`` scorer
processes that score submissions in the bubblewrap sandbox (``--unsafe-no-sandbox`` where there is none).
Submissions are tiny two-layer models on a small image benchmark registered by an entry-point plugin (96
stimuli of 32x32, 3 time bins; it declares synthetic data, ``embedded``, as a plugin must to be in an overall),
so the run stays short while every job goes the full path: upload, intake,
queue, sandboxed model process, trusted scoring, database.

Phase 1 (baseline): ``--readers`` concurrent readers for ``--baseline-seconds``, nothing else running.
Phase 2 (load): the same readers while ``--submissions`` archives are POSTed through the API and scored.
A reader loads the ranking page or a model page, waits a think time uniform in [0.5, 1.5] x ``--think``
seconds, and repeats. Prints latency percentiles per phase and page kind side by side with their ratio, the
scoring throughput, and checks that every accepted submission is in the database with its job done (none
lost, none failed); exits non-zero otherwise. Bounded by ``--max-seconds``.
"""
from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import numpy as np

PLUGIN = textwrap.dedent('''
    import torch

    from neurozoo.benchmarks.extraction import Stimuli
    from neurozoo.benchmarks.neural import NeuralBenchmark
    from neurozoo.benchmarks.synthetic import synthetic_assembly


    def make():
        benchmark = NeuralBenchmark(
            "lbload.V4", "V4",
            lambda: synthetic_assembly(n_stimuli=96, n_neuroids=10, n_bins=3, n_repetitions=4, n_objects=4, seed=0)[0],
            lambda: Stimuli([f"s{i:05d}" for i in range(96)],
                            torch.randn(96, 3, 32, 32, generator=torch.Generator().manual_seed(0))))
        benchmark.embedded = True  # synthetic data, declared as a plugin declares it: the board's normal path
        return benchmark
''')

MODEL_PY = textwrap.dedent('''
    import torch
    from torch import nn


    def create_model(weights):
        torch.manual_seed({seed})
        return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2))
''')


def fill(db, n_models: int, benchmarks):
    from neurozoo.benchmarks.records import ScoreRecord

    rng = np.random.default_rng(0)
    for m in range(n_models):
        for benchmark in benchmarks:
            job = db.enqueue(f"model{m:03d}", benchmark, {"load": m})
            claimed = db.claim("load", ids=[job])
            bins = [{"time_bin_start": 70 + 10 * i, "time_bin_end": 80 + 10 * i, "value": float(rng.uniform()),
                     "ceiling": 0.8} for i in range(19)]
            db.finish(job, "load", ScoreRecord(f"model{m:03d}", benchmark, float(rng.uniform()), per_bin=bins),
                      lease_token=claimed["lease_token"])


def archive(i: int) -> bytes:
    import yaml

    meta = {"name": f"load-{i:04d}", "authors": ["load test"], "description": "load", "licence": "MIT",
            "benchmarks": ["lbload.V4"], "layers": {"V4": "2"}}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in (("metadata.yaml", yaml.safe_dump(meta)), ("model.py", MODEL_PY.format(seed=i))):
            data = text.encode()
            info = tarfile.TarInfo(f"sub/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def percentiles(values):
    if not values:
        return [float("nan")] * 4
    p = np.percentile(np.asarray(values) * 1000, [50, 90, 99])
    return [p[0], p[1], p[2], max(values) * 1000]


def plugin_environment(scratch: Path) -> dict:
    root = scratch / "plugin"
    (root / "lbload_plugin-0.0.dist-info").mkdir(parents=True)
    (root / "lbload_plugin.py").write_text(PLUGIN)
    (root / "lbload_plugin-0.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: lbload-plugin\nVersion: 0.0\n")
    (root / "lbload_plugin-0.0.dist-info" / "entry_points.txt").write_text("[neurozoo.benchmarks]\nlbload.V4 = lbload_plugin:make\n")
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
                NEUROZOO_HOME=str(scratch / "home"), NEUROZOO_CACHE=str(scratch / "cache"), OMP_NUM_THREADS="1",
                MKL_NUM_THREADS="1")


async def readers(base: str, n: int, think: float, n_models: int, stop: asyncio.Event, latency: dict, errors: list):
    import httpx

    rng = np.random.default_rng(2)

    async def reader(k: int, client):
        await asyncio.sleep(float(rng.uniform(0, think)))  # readers arrive spread over one think time
        i = 0
        while not stop.is_set():
            kind = "ranking page" if (k + i) % 2 == 0 else "model page"
            path = "/" if kind == "ranking page" else f"/models/model{(k * 7 + i) % n_models:03d}"
            started = time.perf_counter()
            try:
                response = await client.get(path)
                if response.status_code != 200:
                    errors.append(f"{path}: HTTP {response.status_code}")
            except httpx.HTTPError as error:
                errors.append(f"{path}: {type(error).__name__}")
            latency[kind].append(time.perf_counter() - started)
            i += 1
            await asyncio.sleep(float(rng.uniform(0.5, 1.5)) * think)

    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        await asyncio.gather(*(reader(k, client) for k in range(n)))


async def loop_lag(stop: asyncio.Event, lags: list, every: float = 0.01):
    """How late this (the readers') event loop wakes up: a page latency includes it, so it is reported beside
    the latencies (a stalled load generator is not a slow server)."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(every)
        lags.append(time.perf_counter() - started - every)


async def submitter(base: str, token: str, n: int, accepted: list, errors: list, latency: list):
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        for i in range(n):
            started = time.perf_counter()
            response = await client.post("/api/submissions", content=archive(i),
                                         headers={"Authorization": f"Bearer {token}"})
            latency.append(time.perf_counter() - started)
            if response.status_code == 201:
                accepted.append(response.json()["id"])
            else:
                errors.append(f"submission {i}: HTTP {response.status_code} {response.text[:200]}")


def worker_loop(argv) -> int:
    """One scorer process: score queued jobs until ``--until`` submissions are finished (or the deadline)."""
    from neurozoo.leaderboard.db import LeaderboardDB
    from neurozoo.leaderboard.sandbox import Limits, require_sandbox
    from neurozoo.leaderboard.scorer import work
    from neurozoo.leaderboard.worker import score_job

    url, until, deadline, unsafe = argv[0], int(argv[1]), float(argv[2]), argv[3] == "1"
    os.nice(10)  # as `zoo work` does by default: page readers keep priority over scoring
    db = LeaderboardDB(url)
    sandbox = require_sandbox(unsafe)
    limits = Limits(wall_s=120, memory_bytes=3 * 2 ** 30)
    while time.time() < deadline:
        work(db, lambda job: score_job(job, sandbox=sandbox, limits=limits), progress=False)
        finished = [s for s in db.submissions() if s["status"] in ("done", "failed")]
        if len(finished) >= until:
            return 0
        time.sleep(0.5)
    return 1


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker-loop":
        return worker_loop(argv[1:])
    from neurozoo.datasets.cli_args import ZooArgumentParser

    parser = ZooArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=100)
    parser.add_argument("--think", type=float, default=1.0, help="mean think time of a reader (s)")
    parser.add_argument("--submissions", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1, help="scorer processes")
    parser.add_argument("--models", type=int, default=20, help="synthetic models on the board")
    parser.add_argument("--baseline-seconds", type=float, default=20)
    parser.add_argument("--db", help="SQLAlchemy URL (default: a fresh SQLite file)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args(argv)
    from neurozoo.datasets.provenance import run_provenance_line

    print(run_provenance_line(), flush=True)  # the code and versions these figures are of
    from neurozoo.datasets.cache import owned_temporary_folder

    # the plugin, home, cache, database and submissions: every run left them in the temporary folder; now removed at
    # the end, and a killed run's by the next run (datasets.cache.owned_temporary_folder)
    with owned_temporary_folder("neurozoo-load-") as scratch:
        return load_test(args, scratch)


def load_test(args, scratch: Path) -> int:
    """:func:`main`'s run, its files in ``scratch``."""
    env = plugin_environment(scratch)
    os.environ.update({k: env[k] for k in ("NEUROZOO_HOME", "NEUROZOO_CACHE")})
    from neurozoo import benchmarks
    from neurozoo.leaderboard.db import LeaderboardDB
    from neurozoo.datasets.text_table import counted

    url = args.db or f"sqlite:///{scratch / 'load.sqlite'}"
    db = LeaderboardDB(url)
    names = [e.name for e in benchmarks.BENCHMARKS.entries() if not e.name.endswith("-decoding")]
    fill(db, args.models, names)
    token = db.create_token("load-tester")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    processes = [subprocess.Popen([sys.executable, "-m", "neurozoo.leaderboard.cli", "serve", "--db", url, "--port",
                                   str(port), "--submissions", str(scratch / "subs")], env=env)]
    try:
        import httpx

        for _ in range(600):
            try:
                if httpx.get(base + "/", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        phases = {}
        lags = {"baseline": [], "under load": []}
        errors: list = []

        async def baseline():
            stop = asyncio.Event()
            latency = {"ranking page": [], "model page": []}
            task = asyncio.create_task(readers(base, args.readers, args.think, args.models, stop, latency, errors))
            lag = asyncio.create_task(loop_lag(stop, lags["baseline"]))
            await asyncio.sleep(args.baseline_seconds)
            stop.set()
            await task
            await lag
            return latency

        phases["baseline"] = asyncio.run(baseline())
        accepted: list = []
        post_latency: list = []
        started = time.time()
        deadline = started + args.max_seconds
        processes += [subprocess.Popen([sys.executable, __file__, "--worker-loop", url, str(args.submissions),
                                        str(deadline), "1" if args.unsafe_no_sandbox else "0"], env=env)
                      for _ in range(args.workers)]

        async def under_load():
            stop = asyncio.Event()
            latency = {"ranking page": [], "model page": []}
            task = asyncio.create_task(readers(base, args.readers, args.think, args.models, stop, latency, errors))
            lag = asyncio.create_task(loop_lag(stop, lags["under load"]))
            await submitter(base, token, args.submissions, accepted, errors, post_latency)
            while time.time() < deadline:
                rows = await asyncio.to_thread(db.submissions)  # never block the readers' loop on the database
                if len([s for s in rows if s["status"] in ("done", "failed")]) >= len(accepted):
                    break
                await asyncio.sleep(1)
            stop.set()
            await task
            await lag
            return latency

        phases["under load"] = asyncio.run(under_load())
        elapsed = time.time() - started
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    stored = {row["id"]: row for row in db.submissions()}
    lost = [i for i in accepted if i not in stored or len(stored[i]["jobs"]) != 1]
    done = [i for i in accepted if i in stored and stored[i]["status"] == "done"]
    failed = [(i, stored[i]["jobs"][0]["error"]) for i in accepted if i in stored and stored[i]["status"] == "failed"]
    print(f"database {db.engine.dialect.name}; board {args.models} models x {len(names)} benchmarks; {args.readers} "
          f"readers, think time {args.think:g} s; {counted(args.workers, 'scorer process', 'scorer processes')}")
    print(f"{'':14s} {'phase':11s} {'n':>6s} {'p50 ms':>8s} {'p90 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} "
          f"{'>300 ms':>8s}  p99 vs baseline")
    for kind in ("ranking page", "model page"):
        base_p = percentiles(phases["baseline"][kind])
        for phase in ("baseline", "under load"):
            p = percentiles(phases[phase][kind])
            ratio = f"x{p[2] / base_p[2]:.2f}" if phase != "baseline" else ""
            slow = np.mean(np.asarray(phases[phase][kind]) > 0.3) * 100 if phases[phase][kind] else float("nan")
            print(f"{kind:14s} {phase:11s} {len(phases[phase][kind]):6d} " + " ".join(f"{v:8.1f}" for v in p)
                  + f" {slow:7.2f}%  {ratio}")
    for phase, values in lags.items():
        p = percentiles(values)
        print(f"{'load generator':14s} {phase:11s} {len(values):6d} " + " ".join(f"{v:8.1f}" for v in p)
              + "  (its own event-loop lag: part of every latency above)")
    p = percentiles(post_latency)
    print(f"{'submission':14s} {'POST':11s} {len(post_latency):6d} " + " ".join(f"{v:8.1f}" for v in p))
    print(f"submissions: accepted {len(accepted)}/{args.submissions}, done {len(done)}, failed {len(failed)}, "
          f"lost {len(lost)}; scored in {elapsed:.0f} s ({len(done) / elapsed * 60:.1f} jobs/min)")
    for error in (errors + [f"submission {i}: {e}" for i, e in failed])[:10]:
        print("  error:", error)
    return 1 if lost or failed or errors or len(done) != args.submissions else 0


if __name__ == "__main__":
    sys.exit(main())
