"""The web app (FastAPI + Jinja2): public read pages and a token-protected submission API.

GET  /                      ranking (sortable client-side, no external assets)
GET  /models/{name}         one model: aggregates, scores per benchmark, time courses, provenance (a name may hold "/")
GET  /benchmarks/{name}     one benchmark: every model's score, error, ceiling, provenance; the time courses together
GET  /api/ranking           the ranking as JSON
POST /api/submissions       body: a .zip or .tar.gz submission; header ``Authorization: Bearer <token>``
GET  /api/submissions/{id}  status and PUBLIC-split scores, for the submitting user only
A page that does not exist is an HTML page with status 404 (under /api/: JSON).
"""

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from neurozoo.datasets.cache import remove_dead_owned, temporary_suffix

#: ``.upload-<random>.tmp-<host>-<pid>``: a submission's archive in the store while it is received and queued
UPLOAD_TEMPORARY = ".upload-"


class PageCache:
    """Rendered pages, valid while the database's board version is unchanged.

    A request never waits for the database or a render, except the very first request of a page: the board
    version is re-read at most once per ``ttl_s`` seconds by one background thread, and after a change requests
    keep getting the previous rendering while that thread reads the rows and renders the new one (stale while
    revalidating). A new score shows within about a second. ``peek`` is the non-blocking path for the event
    loop; ``entry`` also makes a missing page (in a worker thread)."""

    def __init__(self, db, ttl_s: float = 1.0, max_pages: int = 4096):
        from concurrent.futures import ThreadPoolExecutor

        self.db, self.ttl_s, self.max_pages = db, ttl_s, max_pages
        self._lock = threading.Lock()
        self._version: Any = None
        self._checked = float("-inf")
        self._pages: Dict[Any, Tuple[Any, Any]] = {}
        self._pending: set = set()  # page keys being rendered, and "version" while the version is being read
        self._background = ThreadPoolExecutor(1, thread_name_prefix="page-render")

    def _read_version(self) -> None:
        try:
            version = self.db.board_version()
            with self._lock:
                self._version, self._checked = version, time.monotonic()
        finally:
            with self._lock:
                self._pending.discard("version")

    def _current(self):
        """The board version; called under the lock. Only the first call reads the database here; later ones
        schedule a background re-read once ``ttl_s`` has passed and answer with the version known now."""
        if self._version is None:
            self._version, self._checked = self.db.board_version(), time.monotonic()
        elif time.monotonic() - self._checked >= self.ttl_s and "version" not in self._pending:
            self._pending.add("version")
            self._background.submit(self._read_version)
        return self._version

    def _store(self, key, version, page) -> None:
        with self._lock:
            self._pending.discard(key)
            if len(self._pages) >= self.max_pages:
                self._pages.clear()
            self._pages[key] = (version, page)

    def _refresh(self, key, version, make) -> None:
        try:
            self._store(key, version, make())
        except Exception:  # the stale page stays; the next request after ttl_s tries again
            with self._lock:
                self._pending.discard(key)

    def peek(self, key, make: Callable[[], Any], version: Any = None) -> Optional[Tuple[Any, Any]]:
        """(the version it was made for, the page) for ``key`` if any rendering of it exists (scheduling a
        background re-render when it is stale), else None; never blocks on the database or a render.
        ``version``: what the page depends on, when not the whole board (a model page: its own score rows)."""
        with self._lock:
            if version is None:
                if self._version is None:
                    return None
                version = self._current()
            cached = self._pages.get(key)
            if cached is not None and cached[0] != version and key not in self._pending:
                self._pending.add(key)
                self._background.submit(self._refresh, key, version, make)
            return cached

    def entry(self, key, make: Callable[[], Any], version: Any = None) -> Tuple[Any, Any]:
        """Like ``peek``, but a page never rendered is made here (blocking)."""
        cached = self.peek(key, make, version)
        if cached is not None:
            return cached
        with self._lock:
            version = self._current() if version is None else version
        page = make()
        self._store(key, version, page)
        return version, page

    def get(self, key, make: Callable[[], Any], version: Any = None):
        return self.entry(key, make, version)[1]

    async def aentry(self, key, make: Callable[[], Any], version: Any = None) -> Tuple[Any, Any]:
        """``entry`` for the event loop: a hit is answered in the loop, a miss is made in a worker thread."""
        from starlette.concurrency import run_in_threadpool

        cached = self.peek(key, make, version)
        return cached if cached is not None else await run_in_threadpool(self.entry, key, make, version)

    async def aget(self, key, make: Callable[[], Any], version: Any = None):
        return (await self.aentry(key, make, version))[1]


#: headers of every response: no type guessed from the bytes, and on the pages scripts from this server's own files only
#: (sort.js, fold.js), nothing loaded from elsewhere, no form, no frame around them. The pages show submitters' text
#: escaped (Jinja) and figures drawn here (views.line_chart_svg), so no script of theirs runs; this keeps it so were an
#: escape ever missed. Inline style attributes stay allowed (an aggregate's indent).
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"),
                    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self' "
                                                 b"'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
                                                 b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
                    (b"referrer-policy", b"same-origin"))


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response (a plain ASGI wrapper: an upload's body
    streams through untouched)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


def warm_up() -> None:
    """Import what the first submission and the first page would import (model and benchmark registries, the
    figures' tick helpers: matplotlib's locator): seconds of imports under the GIL would otherwise stall every
    reader once, at the first upload or page."""
    from neurozoo.leaderboard.aggregate import registry_tree
    from neurozoo.leaderboard.submission import builtin_model_names
    from neurozoo.leaderboard.views import ticks
    from neurozoo.retina.phenomena.figures import index_ticks

    builtin_model_names()
    registry_tree()
    ticks(0.0, 1.0), index_ticks(0, 1)


def create_app(db_url: Optional[str] = None, submissions_dir: Optional[Path] = None, db=None):
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.concurrency import run_in_threadpool

    from neurozoo.benchmarks.paths import home
    from neurozoo.leaderboard.db import LeaderboardDB
    from neurozoo.leaderboard.render import STATIC, model_keys, render, safe_name
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.leaderboard.submission import MAX_TOTAL_BYTES, NameTaken, submit
    from neurozoo.leaderboard.views import benchmark_page, board, has_benchmark_page, model_page

    db = db or LeaderboardDB(db_url)
    store = Path(submissions_dir or home() / "submissions")
    # no /docs or /redoc: FastAPI serves them with scripts from a CDN, so offline they were blank pages; the API's
    # machine-readable description stays at /openapi.json
    app = FastAPI(title="neurozoo leaderboard", docs_url=None, redoc_url=None)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.state.db = db

    @app.exception_handler(StarletteHTTPException)
    async def not_found_page(request: Request, error: StarletteHTTPException):
        """A page (not under /api/) that does not exist is an HTML page with its status; the API answers JSON."""
        if error.status_code != 404 or request.url.path.startswith("/api/"):
            return await http_exception_handler(request, error)
        message = error.detail if error.detail != "Not Found" else f"No page at {request.url.path[:200]}."
        return HTMLResponse(render("not_found.html", static="/static", home="/", message=message), status_code=404)

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
    model_link = lambda model: f"/models/{safe_name(model)}"
    benchmark_link = lambda benchmark: f"/benchmarks/{safe_name(benchmark)}"

    def fetch_records():
        (rows, outdated), failures, metadata = db.board_scores(), db.failed_jobs(), db.submission_metadata()
        by_model: Dict[str, list] = {}
        for row in rows:
            by_model.setdefault(row.model, []).append(row)
        failed_by_model: Dict[str, list] = {}
        for job in failures:
            failed_by_model.setdefault(job["model"], []).append(job)
        # a model page's version: what it shows (render.model_key), so that a new score re-renders only the pages it
        # changes, where every model's page had followed the board's version
        ranks, keys = model_keys(rows, failures, outdated, metadata,
                                 {*by_model, *failed_by_model, *(job["model"] for job in outdated)})
        return rows, by_model, failed_by_model, metadata, outdated, ranks, keys

    flat = lambda by_model: [job for jobs in by_model.values() for job in jobs]

    async def records():
        """(version, (rows, rows by model, failed jobs by model, submissions' metadata by model, outdated jobs, the
        model pages' ranks and each model page's key)): every score row of the board, read once per board version in the
        background and shared by all pages; a page is tagged with the version of the rows it was built on (a model
        page: with its key)."""
        return await pages.aentry("records", fetch_records)

    # Read pages are coroutines: a cached page is answered in the event loop, without a thread hop.
    @app.get("/", response_class=HTMLResponse)
    async def index():
        version, (rows, _, failed, metadata, outdated, _, _) = await records()
        return await pages.aget("/", lambda: render("index.html", static="/static", home="/",
                                                    model_link=model_link,
                                                    benchmark_link=benchmark_link,
                                                    **board(db, rows, metadata, outdated, flat(failed))),
                                version=version)

    @app.get("/models/{name:path}", response_class=HTMLResponse)  # :path: a name may hold a "/"
    async def model(name: str):
        _, (rows, by_model, failed_by_model, metadata, outdated, ranks, keys) = await records()
        mine, failed = by_model.get(name, []), failed_by_model.get(name, [])
        outdated = [job for job in outdated if job["model"] == name]
        if not mine and not failed and not outdated:
            raise HTTPException(404, f"No scores for model {name[:100]!r}. A submission's jobs show here once "
                                     "scored or failed; its status (queued, running, failed and why) is at "
                                     "/api/submissions/ID or `zoo submission ID`.")
        return await pages.aget(("model", name), lambda: render("model.html", static="/static", home="/",
                                                                model_link=model_link,
                                                                benchmark_link=benchmark_link,
                                                                **model_page(db, name, rows, failed, metadata,
                                                                             outdated, ranks=ranks)),
                                version=keys[name])

    @app.get("/benchmarks/{name:path}", response_class=HTMLResponse)
    async def benchmark(name: str):
        version, (rows, _, failed, _, outdated, _, _) = await records()
        # only whether the page exists is asked here; the page (its rows sorted, its figure drawn: 5 ms on a board of
        # 200 models) is made once a board version, in the cache: it was made for every request, in the event loop
        if not has_benchmark_page(name, rows, outdated):
            raise HTTPException(404, f"No benchmark {name[:100]!r}.")
        return await pages.aget(("benchmark", name), lambda: render(
            "benchmark.html", static="/static", home="/", model_link=model_link, benchmark_link=benchmark_link,
            **benchmark_page(name, rows, outdated, flat(failed))), version=version)

    @app.get("/api/ranking")
    async def api_ranking():
        version, (rows, _, failed, metadata, outdated, _, _) = await records()

        def make():
            context = board(db, rows, metadata, outdated, flat(failed))
            return [{"rank": r["rank"], "model": r["model"], "weights": r.get("weights"),
                     "overall_data": context["ranked"],  # the kind of data the overall (and rank) averages
                     **({"authors": r["submitted"]["authors"], "licence": r["submitted"]["licence"]}
                        if r["submitted"] else {}),
                     "ranked_among": r["ranked_among"],  # the models of the same coverage the rank compares with
                     "scores": {k: {"value": v[0], "error": v[3], "error_bound": v[4], "scored": v[1],
                                    "of": v[2]}
                                for k, v in r["nodes"].items()},
                     "latest_run_failed": {benchmark: {"job": job["job"], "when": job["when"], "reason": job["reason"]}
                                           for benchmark, job in r["failed"].items()}}
                    for r in context["rows"]]

        return await pages.aget("/api/ranking", make, version=version)

    @app.post("/api/submissions", status_code=201)
    async def api_submit(request: Request):
        # the token is looked up in a worker thread: in the event loop, a database slow to answer (a PostgreSQL server
        # restarting, unreachable) held every reader's page, cached ones too, for as long, at any POST with any token
        user = await run_in_threadpool(user_of, request)
        store.mkdir(parents=True, exist_ok=True)
        # streamed to disk as it arrives (it was held in memory, up to the cap); the file is "upload" in messages.
        # Named with this process's host and pid: a server killed (SIGKILL) while receiving or queueing an upload left
        # it in the store for good; the next upload removes the dead ones of this host, never a live process's
        remove_dead_owned(store, UPLOAD_TEMPORARY)
        upload = tempfile.NamedTemporaryFile(dir=store, prefix=UPLOAD_TEMPORARY, suffix=temporary_suffix(),
                                             delete=False, buffering=0)
        try:
            with upload:
                size = 0
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_TOTAL_BYTES:
                        raise HTTPException(413, f"submission larger than {MAX_TOTAL_BYTES // 2 ** 20} MiB")
                    upload.write(chunk)  # to the page cache: no wait on the disk in the event loop
            if not size:
                raise HTTPException(400, "empty body: send the submission archive (.zip or .tar.gz) as the request "
                                         "body")
            return await queue(upload.name, user)
        finally:
            os.unlink(upload.name)

    async def queue(upload: str, user: str):
        def shown(error: Exception) -> str:  # the upload's temporary file is "upload", not a path on this host
            return str(error).replace(upload, "upload").replace(Path(upload).name, "upload")

        try:
            submission_id = await run_in_threadpool(submit, db, Path(upload), store, user=user)
        except NameTaken as error:
            return JSONResponse({"detail": shown(error)}, status_code=409)
        except UserFacingError as error:  # invalid or corrupt submission: the message names file and field
            return JSONResponse({"detail": shown(error)}, status_code=422)
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
                         "outdated": job["outdated"],
                         "public_score": None if public is None else
                         {"value": public.value, "ceiling": public.ceiling, "raw": public.raw, "per_bin": public.per_bin}})
        withdrawn = row["withdrawals"][-1] if row["withdrawn_at"] is not None else None
        return {"id": row["id"], "name": row["name"], "status": row["status"], "jobs": jobs,
                "withdrawn": None if withdrawn is None else {"at": withdrawn["at"], "reason": withdrawn["reason"]},
                "note": "scores on the public split only; the leaderboard ranks the hidden split"}

    return app
