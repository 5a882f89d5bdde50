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
    once per ``ttl_s`` seconds, so many readers cost one cheap query per second, and a new score shows within
    ``ttl_s``. After a change, one request re-renders a page while the others get the previous rendering
    (stale while revalidating), so a finished job never makes every reader wait."""

    def __init__(self, db, ttl_s: float = 1.0, max_pages: int = 4096):
        self.db, self.ttl_s, self.max_pages = db, ttl_s, max_pages
        self._lock = threading.Lock()
        self._version: Any = None
        self._checked = float("-inf")
        self._pages: Dict[Any, Tuple[Any, Any]] = {}
        self._rendering: set = set()

    def _current(self):
        now = time.monotonic()
        if now - self._checked >= self.ttl_s:
            self._version, self._checked = self.db.board_version(), now
        return self._version

    def get(self, key, make: Callable[[], Any], stale_ok: bool = True):
        with self._lock:
            version = self._current()
            cached = self._pages.get(key)
            if cached is not None and (cached[0] == version or (stale_ok and key in self._rendering)):
                return cached[1]
            self._rendering.add(key)
        try:
            page = make()
        finally:
            with self._lock:
                self._rendering.discard(key)
        with self._lock:
            if len(self._pages) >= self.max_pages:
                self._pages.clear()
            self._pages[key] = (version, page)
        return page


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

    records_lock = threading.Lock()

    def records():  # every score row of the board, read once per board version and shared by all pages
        with records_lock:  # one reader fetches, the others wait for it: a page is never built on stale rows
            return pages.get("records", db.leaderboard_records, stale_ok=False)

    @app.get("/", response_class=HTMLResponse)
    def index():
        return pages.get("/", lambda: render("index.html", static="/static", home="/",
                                             model_link=lambda m: f"/models/{safe_name(m)}", **board(db, records())))

    @app.get("/models/{name}", response_class=HTMLResponse)
    def model(name: str):
        def make():
            page = model_page(db, name, records())
            return None if page is None else render("model.html", static="/static", home="/", **page)

        html = pages.get(("model", name), make) if len(name) <= 255 else None
        if html is None:
            raise HTTPException(404, f"no scores for model {name[:100]!r}")
        return html

    @app.get("/api/ranking")
    def api_ranking():
        def make():
            context = board(db, records())
            return [{"rank": r["rank"], "model": r["model"], "weights": r.get("weights"),
                     "scores": {k: {"value": v[0], "scored": v[1], "of": v[2]} for k, v in r["nodes"].items()}}
                    for r in context["rows"]]

        return pages.get("/api/ranking", make)

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
