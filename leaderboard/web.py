"""The web app (FastAPI + Jinja2): public read pages and a token-protected submission API.

GET  /                      ranking (sortable client-side, no external assets)
GET  /models/{name}         one model: aggregates, scores per benchmark, time courses, provenance
GET  /api/ranking           the ranking as JSON
POST /api/submissions       body: a .zip or .tar.gz submission; header ``Authorization: Bearer <token>``
GET  /api/submissions/{id}  status and PUBLIC-split scores, for the submitting user only
"""

import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple


class PageCache:
    """Rendered pages, valid while the database's board version is unchanged. The version is read at most
    once per ``ttl_s`` seconds, so many readers cost one cheap query per second. After a change, requests
    keep getting the previous rendering while one background thread reads the rows and renders the new one
    (stale while revalidating): no reader waits for the database or a render, except the very first of a page.
    A new score shows within about a second."""

    def __init__(self, db, ttl_s: float = 1.0, max_pages: int = 4096):
        from concurrent.futures import ThreadPoolExecutor

        self.db, self.ttl_s, self.max_pages = db, ttl_s, max_pages
        self._lock = threading.Lock()
        self._version: Any = None
        self._checked = float("-inf")
        self._pages: Dict[Any, Tuple[Any, Any]] = {}
        self._rendering: set = set()
        self._renderer = ThreadPoolExecutor(1, thread_name_prefix="page-render")

    def _current(self):
        now = time.monotonic()
        if now - self._checked >= self.ttl_s:
            self._version, self._checked = self.db.board_version(), now
        return self._version

    def _store(self, key, version, page) -> None:
        with self._lock:
            self._rendering.discard(key)
            if len(self._pages) >= self.max_pages:
                self._pages.clear()
            self._pages[key] = (version, page)

    def _refresh(self, key, version, make) -> None:
        try:
            self._store(key, version, make())
        except Exception:  # the stale page stays; the next request after ttl_s tries again
            with self._lock:
                self._rendering.discard(key)

    def entry(self, key, make: Callable[[], Any], version: Any = None) -> Tuple[Any, Any]:
        """(the version it was made for, the page) for ``key``; ``version``: what the page depends on, when
        not the whole board (a model page: its own score rows), so other changes do not re-render it."""
        with self._lock:
            version = self._current() if version is None else version
            cached = self._pages.get(key)
            if cached is not None and cached[0] == version:
                return cached
            if cached is not None:
                if key not in self._rendering:
                    self._rendering.add(key)
                    self._renderer.submit(self._refresh, key, version, make)
                return cached
        page = make()
        self._store(key, version, page)
        return version, page

    def get(self, key, make: Callable[[], Any], version: Any = None):
        return self.entry(key, make, version)[1]


def warm_up() -> None:
    """Import what the first submission and the first page would import (model and benchmark registries):
    seconds of imports under the GIL would otherwise stall every reader once, at the first upload."""
    from neurozoo.leaderboard.aggregate import registry_tree
    from neurozoo.leaderboard.submission import builtin_model_names

    builtin_model_names()
    registry_tree()


def create_app(db_url: Optional[str] = None, submissions_dir: Optional[Path] = None, db=None):
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool

    from neurozoo.benchmarks.paths import home
    from neurozoo.leaderboard.db import LeaderboardDB
    from neurozoo.leaderboard.render import STATIC, render, safe_name
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.leaderboard.submission import MAX_TOTAL_BYTES, NameTaken, submit
    from neurozoo.leaderboard.views import board, model_page

    db = db or LeaderboardDB(db_url)
    store = Path(submissions_dir or home() / "submissions")
    app = FastAPI(title="neurozoo leaderboard")
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.state.db = db

    def user_of(request: Request) -> str:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        user = db.user_for_token(token)
        if user is None:
            raise HTTPException(401, "a valid token is required: header 'Authorization: Bearer <token>' "
                                     "(create one with `zoo token create USER`)")
        return user

    pages = PageCache(db)
    app.state.pages = pages

    def fetch_records():
        rows = db.leaderboard_records()
        by_model: Dict[str, list] = {}
        for row in rows:
            by_model.setdefault(row.model, []).append(row)
        return rows, by_model

    def records():
        """(version, (rows, rows by model)): every score row of the board, read once per board version in the
        background and shared by all pages; a page is tagged with the version of the rows it was built on."""
        return pages.entry("records", fetch_records)

    @app.get("/", response_class=HTMLResponse)
    def index():
        version, (rows, _) = records()
        return pages.get("/", lambda: render("index.html", static="/static", home="/",
                                             model_link=lambda m: f"/models/{safe_name(m)}", **board(db, rows)),
                         version=version)

    @app.get("/models/{name}", response_class=HTMLResponse)
    def model(name: str):
        mine = records()[1][1].get(name)
        if not mine:
            raise HTTPException(404, f"no scores for model {name[:100]!r}")
        return pages.get(("model", name), lambda: render("model.html", static="/static", home="/",
                                                         **model_page(db, name, mine)),
                         version=tuple((r.id, r.benchmark) for r in mine))

    @app.get("/api/ranking")
    def api_ranking():
        version, (rows, _) = records()

        def make():
            context = board(db, rows)
            return [{"rank": r["rank"], "model": r["model"], "weights": r.get("weights"),
                     "scores": {k: {"value": v[0], "scored": v[1], "of": v[2]} for k, v in r["nodes"].items()}}
                    for r in context["rows"]]

        return pages.get("/api/ranking", make, version=version)

    @app.post("/api/submissions", status_code=201)
    async def api_submit(request: Request):
        user = user_of(request)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_TOTAL_BYTES:
                raise HTTPException(413, f"submission larger than {MAX_TOTAL_BYTES // 2 ** 20} MiB")
        if not body:
            raise HTTPException(400, "empty body: send the submission archive (.zip or .tar.gz) as the request body")

        def store_and_queue():
            store.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=store, suffix=".upload") as handle:
                handle.write(body)
                handle.flush()
                return submit(db, Path(handle.name), store, user=user)

        try:
            submission_id = await run_in_threadpool(store_and_queue)
        except NameTaken as error:
            return JSONResponse({"detail": str(error)}, status_code=409)
        except UserFacingError as error:  # invalid or corrupt submission: the message names file and field
            return JSONResponse({"detail": str(error)}, status_code=422)
        return {"id": submission_id, "status": "queued"}

    @app.get("/api/submissions/{submission_id}")
    def api_submission(submission_id: int, request: Request):
        user = user_of(request)
        row = db.submission(submission_id)
        if row is None or row["user"] != user:
            raise HTTPException(404, f"no submission {submission_id} of user {user!r}")
        jobs = []
        for job in row["jobs"]:
            public = db.score_for_job(job) if job["status"] == "done" else None
            jobs.append({"benchmark": job["benchmark"], "status": job["status"], "error": job["error"],
                         "public_score": None if public is None else
                         {"value": public.value, "ceiling": public.ceiling, "raw": public.raw, "per_bin": public.per_bin}})
        return {"id": row["id"], "name": row["name"], "status": row["status"], "jobs": jobs,
                "note": "scores on the public split only; the leaderboard ranks the hidden split"}

    return app
