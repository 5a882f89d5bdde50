"""Load on a local leaderboard server: N concurrent page loads and M concurrent submissions (loopback only).

    python benchmarks/perf/leaderboard_load.py --pages 200 --submissions 20 --concurrency 16 [--db URL]

Starts the web app with uvicorn on 127.0.0.1 (a free port) over a fresh SQLite database (or ``--db``, e.g.
the PostgreSQL test database), fills it with a synthetic board (``--models`` x the registered benchmarks),
then fires the requests from a thread pool, and prints latency percentiles per kind side by side and the
throughput. It checks that every accepted submission is in the database with its jobs queued (none lost) and
exits non-zero otherwise. Bounded: every request has a timeout, the run has ``--max-seconds``.
"""
from __future__ import annotations

import argparse
import io
import socket
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

MODEL_PY = "import torch\n\ndef create_model(weights):\n    return torch.nn.Conv2d(3, 4, 3)\n"


def fill(db, n_models: int, benchmarks):
    from neurozoo.benchmarks.records import ScoreRecord

    rng = np.random.default_rng(0)
    for m in range(n_models):
        for benchmark in benchmarks:
            job = db.enqueue(f"model{m:03d}", benchmark, {"load": m})
            db.claim("load", ids=[job])
            bins = [{"time_bin_start": 70 + 10 * i, "time_bin_end": 80 + 10 * i, "value": float(rng.uniform()),
                     "ceiling": 0.8} for i in range(19)]
            db.finish(job, "load", ScoreRecord(f"model{m:03d}", benchmark, float(rng.uniform()), per_bin=bins))


def archive(i: int, benchmark: str) -> bytes:
    import yaml

    meta = {"name": f"load-{i:04d}", "authors": ["load test"], "description": "load", "licence": "MIT",
            "benchmarks": [benchmark], "layers": {"V4": "x", "IT": "x"}}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in (("metadata.yaml", yaml.safe_dump(meta)), ("model.py", MODEL_PY)):
            data = text.encode()
            info = tarfile.TarInfo(f"sub/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def percentiles(values):
    if not values:
        return "-"
    p = np.percentile(np.asarray(values) * 1000, [50, 90, 99])
    return f"p50 {p[0]:7.1f} ms  p90 {p[1]:7.1f} ms  p99 {p[2]:7.1f} ms  max {max(values) * 1000:7.1f} ms"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--submissions", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--db", help="SQLAlchemy URL (default: a fresh SQLite file)")
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args(argv)

    import httpx
    import uvicorn

    from neurozoo import benchmarks
    from neurozoo.leaderboard.db import LeaderboardDB
    from neurozoo.leaderboard.web import create_app

    scratch = Path(tempfile.mkdtemp(prefix="neurozoo-load-"))
    db = LeaderboardDB(args.db or f"sqlite:///{scratch / 'load.sqlite'}")
    names = [e.name for e in benchmarks.BENCHMARKS.entries() if not e.name.endswith("-decoding")]
    fill(db, args.models, names)
    token = db.create_token("load-tester")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(db=db, submissions_dir=scratch / "subs"), host="127.0.0.1",
                                           port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    latency = {"ranking page": [], "model page": [], "submission": []}
    accepted, errors = [], []
    deadline = time.time() + args.max_seconds

    def request(kind, i):
        if time.time() > deadline:
            errors.append(f"{kind} {i}: skipped, past --max-seconds")
            return
        with httpx.Client(base_url=base, timeout=60) as client:
            started = time.perf_counter()
            if kind == "submission":
                response = client.post("/api/submissions", content=archive(i, names[0]),
                                       headers={"Authorization": f"Bearer {token}"})
            elif kind == "model page":
                response = client.get(f"/models/model{i % args.models:03d}")
            else:
                response = client.get("/")
            latency[kind].append(time.perf_counter() - started)
        if response.status_code not in (200, 201):
            errors.append(f"{kind} {i}: HTTP {response.status_code} {response.text[:200]}")
        elif kind == "submission":
            accepted.append(response.json()["id"])

    work = [("ranking page", i) for i in range(args.pages // 2)] + [("model page", i) for i in range(args.pages - args.pages // 2)]
    work += [("submission", i) for i in range(args.submissions)]
    order = np.random.default_rng(1).permutation(len(work))
    started = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        list(pool.map(lambda k: request(*work[k]), order))
    elapsed = time.perf_counter() - started
    server.should_exit = True

    stored = {row["id"]: row for row in db.submissions()}
    lost = [i for i in accepted if i not in stored or len(stored[i]["jobs"]) != 1]
    print(f"database {db.engine.dialect.name}; {args.models} models x {len(names)} benchmarks; "
          f"concurrency {args.concurrency}; {len(work)} requests in {elapsed:.1f} s ({len(work) / elapsed:.1f} req/s)")
    for kind, values in latency.items():
        print(f"  {kind:13s} n={len(values):4d}  {percentiles(values)}")
    print(f"  submissions accepted {len(accepted)}/{args.submissions}, in the database {len(stored)}, lost {len(lost)}")
    for error in errors[:10]:
        print("  error:", error)
    return 1 if lost or errors or len(accepted) != args.submissions else 0


if __name__ == "__main__":
    sys.exit(main())
