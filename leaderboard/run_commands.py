"""``zoo run`` (score the built-in zoo), ``zoo serve`` (web app), ``zoo token create|revoke|list``, ``zoo submit``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neurozoo.datasets.cli_args import add_db_argument, add_device_argument, at_least, positive
from neurozoo.datasets.text_table import counted

def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="score the built-in zoo on the default benchmarks, write the leaderboard",
                       description="Queue every model of the default zoo (the registered models not tagged "
                                   "default_zoo=False) on every default (embedded-data) benchmark, score "
                                   "the jobs not done yet (finished results are reused, keyed by model, benchmark and "
                                   "settings hash), write the database and a static HTML report, print the ranking. "
                                   "ConvRNNs are untrained (random weights) unless --checkpoint is given.")
    p.add_argument("--models", help="comma-separated model names (default: the default zoo, every registered "
                                    "model not tagged default_zoo=False)")
    p.add_argument("--benchmarks", help="comma-separated benchmark names (default: the embedded-data ones)")
    add_device_argument(p, "the models scored (their features; a retina model's fit)")
    add_db_argument(p)
    p.add_argument("--width-multiplier", type=positive, default=0.125,
                   help="ConvRNN width (default 0.125, CPU-friendly)")
    p.add_argument("--max-features", type=at_least(1), default=200, help="random-projection features per layer")
    p.add_argument("--checkpoint", action="append", default=[], metavar="MODEL=PATH",
                   help="trained weights for a ConvRNN of the run, or a CORnet's file released by dicarlolab/CORnet "
                        "(converted, run at width 1) (repeatable; retina models are fitted by their benchmarks)")
    p.add_argument("--fit-epochs", type=at_least(1), help="retina fitting budget in epochs (default 40, early-stopped)")
    p.add_argument("--report", type=Path, help="folder for the static HTML report (default: next to the database)")
    p.add_argument("--retry-failed", action="store_true", help="queue failed jobs again")
    _add_scorer_arguments(p)
    p.set_defaults(handler=_run)

    p = sub.add_parser("serve", help="serve the leaderboard web app")
    add_db_argument(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=at_least(1, 65535), default=8000, help="TCP port (default 8000)")
    p.add_argument("--submissions", type=Path, help="folder for uploaded submissions (default: $NEUROZOO_HOME/submissions)")
    p.set_defaults(handler=_serve)

    p = sub.add_parser("token", help="create, revoke and list submission tokens")
    tsub = p.add_subparsers(dest="token_command", required=True)
    c = tsub.add_parser("create", help="create a token for USER (printed once; only its hash is stored)")
    c.add_argument("user", metavar="USER",
                   help="the user the token is for: the owner of the submissions uploaded with it")
    add_db_argument(c)
    c.set_defaults(handler=_token_create)
    r = tsub.add_parser("revoke", help="revoke TOKEN, or every token of --user USER (refused from then on)")
    r.add_argument("token", nargs="?", metavar="TOKEN", help="the token to revoke (or --user instead)")
    r.add_argument("--user", help="revoke every token of this user")
    add_db_argument(r)
    r.set_defaults(handler=_token_revoke)
    t = tsub.add_parser("list", help="list tokens (of --user USER, or all): id, user, sha256 prefix, created, revoked; "
                                     "never the secret, which is not stored")
    t.add_argument("--user", help="only this user's tokens (default: every user's)")
    add_db_argument(t)
    t.set_defaults(handler=_token_list)

    p = sub.add_parser("submit", help="validate a submission (folder or archive) and queue its jobs",
                       description="Checks metadata.yaml, model.py, sizes, weight checksums and requirements.txt and "
                                   "queues one job per benchmark; `zoo work` scores them in isolated workers (smoke "
                                   "forward pass first). With --check: the same checks and a dry run of the model on "
                                   "two images of each benchmark, nothing queued (exit status 0 or 1).")
    p.add_argument("path", type=Path, metavar="PATH", help="the submission: a folder, or an archive of one")
    p.add_argument("--check", action="store_true",
                   help="only check: intake as the server does it, the files compared with the database's "
                        "submissions (--db, or the default one where it exists) as zoo submit compares them, then the "
                        "model's features on two images of each benchmark in the sandbox; nothing stored, queued or "
                        "uploaded")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="with --check where no sandbox can be made: run the dry run WITHOUT isolation (your own code)")
    add_db_argument(p)
    p.add_argument("--user", help="owner (default: none; the web API sets it from the token)")
    p.add_argument("--store", type=Path, help="where accepted submissions are kept (default: $NEUROZOO_HOME/submissions)")
    p.set_defaults(handler=_submit)

    p = sub.add_parser("submission", help="status and public-split scores of a submission; withdraw or restore it")
    p.add_argument("id", type=at_least(1), metavar="ID", help="the submission's id (zoo submit prints it)")
    add_db_argument(p)
    change = p.add_mutually_exclusive_group()
    change.add_argument("--withdraw", action="store_true",
                        help="take it off the board (its scores leave the pages, its queued and running jobs are "
                             "cancelled; nothing is deleted); needs --reason")
    change.add_argument("--restore", action="store_true", help="undo --withdraw: its scores are back, its cancelled "
                                                               "jobs queued again")
    p.add_argument("--reason", help="why (recorded with the withdrawal or restoration)")
    p.add_argument("--by", help="who (recorded; default: the login name)")
    p.set_defaults(handler=_submission_status)

    p = sub.add_parser("work", help="score every queued job (submissions run in isolated, limited workers)")
    add_db_argument(p)
    add_device_argument(p, "the jobs' models (a submission's in its sandbox, a built-in one in this process)")
    p.add_argument("--timeout", type=positive, default=1800.0, help="wall-clock limit per submission job, in seconds")
    p.add_argument("--memory-gb", type=positive, default=8.0,
                   help="memory limit of a submission's whole sandboxed job (GiB)")
    p.add_argument("--cpu-s", type=positive,
                   help="CPU-time limit of a submission's whole job, in seconds (default: 2 x --timeout)")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="score submissions even where no bubblewrap sandbox can be made: their code then runs "
                        "WITHOUT isolation (network, files, database reachable). Only for code you trust.")
    p.add_argument("--retry-submission", type=at_least(1), action="append", default=[], metavar="ID",
                   help="queue the failed jobs of submission ID again first (repeatable): after a fix on the server's "
                        "side, since the submitter cannot submit the same files twice")
    p.add_argument("--rescore-outdated", action="store_true",
                   help="queue the submissions' outdated jobs again first (scored under an earlier version of their "
                        "benchmark, or on another secret's split), under the current version and this host's split "
                        "(the board does not rank outdated scores)")
    p.add_argument("--nice", type=at_least(-20, 19), default=10,
                   help="scheduling niceness of the scorer and its jobs (default 10: page readers keep priority)")
    _add_scorer_arguments(p)
    p.set_defaults(handler=_work)

    from neurozoo.leaderboard.reproduce import add_command as add_reproduce

    add_reproduce(sub)


def _add_scorer_arguments(p) -> None:
    """The options of the scorer that zoo run and zoo work share (leaderboard.scorer.work)."""
    p.add_argument("--lease", type=positive, default=60.0,
                   help="job lease in seconds: how long a claimed job stays this process's without a renewal "
                        "(its heartbeat renews it every third of that); the job of a scorer that died on another host "
                        "goes back to the queue when its lease expires")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _split(value):
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _run(args) -> int:
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.termination import sigterm_deferred
    from neurozoo.leaderboard.run import RunInterrupted, run_zoo

    checkpoints = {}
    for item in args.checkpoint:
        model, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise UserFacingError(f"--checkpoint {item!r}: expected MODEL=PATH to an existing file")
        check_checkpoint(item, path)
        checkpoints[model] = path
    # SIGTERM (kill, a scheduler's preemption, a service manager's stop) is taken between jobs: the job being scored
    # is finished and stored, no other is started (leaderboard.scorer.work); it used to kill the run outright. A retina
    # job's fit takes it at its epoch's end (retina.fit.FitInterrupted): that job is handed back, its checkpoint kept
    result = None
    try:
        with sigterm_deferred():
            result = run_zoo(args.db, _split(args.models), _split(args.benchmarks), args.device, args.width_multiplier,
                             args.max_features, checkpoints, args.report, args.lease, args.retry_failed,
                             progress=not args.no_progress, fit_epochs=args.fit_epochs)
    except RunInterrupted as error:
        print(f"zoo run: interrupted; {error}", file=sys.stderr)
        return 130
    except KeyboardInterrupt as error:
        if result is None:
            raise
        # a SIGTERM after the last job (as the report was written): acted on as the deferral ended, all being done
        count = len(result["ids"])
        print(f"zoo run: interrupted; {error} after {'its' if count == 1 else 'all'} {counted(count, 'job')} "
              f"{'was' if count == 1 else 'were'} done and stored and the report written ({result['report']}): "
              "nothing was lost", file=sys.stderr)
        return 130
    return 1 if result["failed"] else 0


def check_checkpoint(item: str, path: str) -> None:
    """A checkpoint must be a PyTorch state dict (or {'model': ...} or {'state_dict': ...}) of tensors, loadable without
    pickle."""
    import torch

    from neurozoo.datasets.errors import DataError, UserFacingError
    from neurozoo.datasets.torch_files import model_state, read_torch_file

    try:
        state = model_state(read_torch_file(path))
    except DataError as error:
        raise UserFacingError(f"--checkpoint {item!r}: {error}") from None
    if not state or not all(torch.is_tensor(v) for v in state.values()):
        raise UserFacingError(f"--checkpoint {item!r}: {path} holds no state dict of tensors "
                              "(expected {parameter name: tensor}, {'model': {...}} or {'state_dict': {...}})")


def _serve(args) -> int:
    import uvicorn

    from neurozoo.leaderboard.connections import server_config
    from neurozoo.leaderboard.web import create_app, warm_up

    listener = _listen(args.host, args.port)
    app = create_app(args.db, args.submissions)
    warm_up()
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving the leaderboard at http://{shown}:{args.port}/ (Ctrl-C stops)", flush=True)
    # a connection that sends no request in time, or one past a client's share, is closed (leaderboard.connections)
    uvicorn.Server(server_config(app)).run(sockets=[listener])
    return 0


def _listen(host: str, port: int):
    """Bind before anything else, so a busy port or an unknown host is a one-line error rather than uvicorn's log."""
    import socket

    from neurozoo.datasets.errors import UserFacingError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listener = socket.socket(family, kind, proto)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError as error:
        raise UserFacingError(f"--host {host!r} --port {port}: cannot listen there ({error.strerror or error})") from None
    return listener


def _token_create(args) -> int:
    from neurozoo.leaderboard.db import LeaderboardDB

    token = LeaderboardDB(args.db).create_token(args.user)
    print(token)
    return 0


def _token_revoke(args) -> int:
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.leaderboard.db import LeaderboardDB

    try:
        count = LeaderboardDB(args.db).revoke_tokens(token=args.token, user=args.user)
    except ValueError as error:
        raise UserFacingError(f"token revoke: {error}") from None
    if not count:
        raise UserFacingError("no live token of user " + repr(args.user) if args.user
                              else "no live token matches (unknown or already revoked)")
    print(f"revoked {counted(count, 'token')}" + (f" of {args.user}" if args.user else ""))
    return 0


def _token_list(args) -> int:
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.datasets.text_table import format_table
    from neurozoo.leaderboard.db import LeaderboardDB

    tokens = LeaderboardDB(args.db).tokens(user=args.user)
    if not tokens and args.user is not None:
        raise UserFacingError(f"token list: no token of user {args.user!r}")
    print(format_table(("id", "user", "sha256 prefix", "created", "revoked"),
                       [(t["id"], t["user"], t["sha256_prefix"], t["created_at"].isoformat(timespec="seconds"),
                         "yes" if t["revoked"] else "no") for t in tokens]))
    return 0


def _submit(args) -> int:
    if args.check:
        return _check_submission(args)
    from neurozoo.benchmarks.paths import home
    from neurozoo.leaderboard.db import LeaderboardDB, check_user_name
    from neurozoo.leaderboard.submission import submit

    if args.user is not None:
        check_user_name(args.user, "--user")
    db = LeaderboardDB(args.db)
    submission_id = submit(db, args.path, args.store or home() / "submissions", user=args.user)
    row = db.submission(submission_id)
    print(f"submission {submission_id} ({row['name']}): {counted(len(row['jobs']), 'job')} queued; run `zoo work` to score")
    return 0


def _check_submission(args) -> int:
    import shlex

    from neurozoo.benchmarks.records import missing_sqlite_file
    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.leaderboard.db import LeaderboardDB, holds_submissions
    from neurozoo.leaderboard.sandbox import Limits, sandbox_problem
    from neurozoo.leaderboard.submission_check import check
    from neurozoo.leaderboard.zoo import ScoringError

    problem = sandbox_problem()
    if problem:
        print(f"sandbox: {problem}")
    sandbox = True if not problem else (False if args.unsafe_no_sandbox else None)
    # the database zoo submit would store it in, where it holds submissions (a SQLite file not there, or a results
    # store without the leaderboard's tables, holds none, and the check adds nothing to either): the same files under
    # the same name were said to be queued, which zoo submit refuses
    db = None if missing_sqlite_file(args.db) or not holds_submissions(args.db) else LeaderboardDB(args.db)
    try:
        check(args.path, sandbox, Limits(wall_s=600, cpu_s=1200), say=lambda line: print(line, flush=True), db=db)
    except (UserFacingError, ScoringError) as error:
        print(f"check failed: {error}")
        return 1
    print(f"check passed: `zoo submit {shlex.quote(str(args.path))}` (or the web upload) would queue it; only the "
          "server knows whether another user owns the name")
    return 0


def _work(args) -> int:
    from neurozoo.datasets.termination import sigterm_deferred
    from neurozoo.leaderboard.db import LeaderboardDB
    from neurozoo.leaderboard.scorer import release_dead_workers, work
    from neurozoo.leaderboard.worker import score_job

    from neurozoo.leaderboard.sandbox import Limits, require_sandbox

    db = LeaderboardDB(args.db)
    for submission_id in args.retry_submission:
        row = db.submission(submission_id)
        if row is None or row["withdrawn_at"] is not None:
            from neurozoo.datasets.errors import UserFacingError

            raise UserFacingError(f"--retry-submission {submission_id}: " + (
                f"no submission {submission_id} in {db.shown_url}" if row is None else
                f"submission {submission_id} is withdrawn (zoo submission {submission_id} --restore first)"))
        count = db.requeue_failed([job["id"] for job in row["jobs"]])
        print(f"zoo work: submission {submission_id} ({row['name']}): {counted(count, 'failed job')} queued again",
              file=sys.stderr)
    if args.rescore_outdated:
        rescored = db.rescore_outdated()
        print(f"zoo work: {counted(len(rescored), 'outdated submission job')} queued under their benchmarks' current version"
              + (f": {rescored}" if rescored else ""), file=sys.stderr)
    jobs = db.jobs()
    if not jobs:
        from neurozoo.datasets.errors import UserFacingError

        raise UserFacingError(f"the database {db.shown_url} holds no jobs "
                              "(is --db right? queue work with `zoo submit` or `zoo run`)")
    pending = [j for j in jobs if j["status"] in ("queued", "running")]
    sandbox = True
    if any(j["spec"].get("family") == "submission" for j in pending):
        sandbox = require_sandbox(unsafe=args.unsafe_no_sandbox)
        if not sandbox:
            print("zoo work: WARNING: no sandbox; submitted code runs without isolation (--unsafe-no-sandbox)",
                  file=sys.stderr)
    released = release_dead_workers(db)
    if released:  # as zoo run says it
        print(f"zoo work: resuming {counted(len(released), 'job')} left running by a worker that died: {released}",
              file=sys.stderr)
    if args.nice:
        import os

        from neurozoo.datasets.errors import UserFacingError

        try:
            os.nice(args.nice)
        except PermissionError:
            raise UserFacingError(f"--nice {args.nice}: a negative niceness (higher priority) needs root; "
                                  "use 0 or more") from None
    limits = Limits(memory_bytes=int(args.memory_gb * 2 ** 30), wall_s=args.timeout,
                    cpu_s=args.cpu_s or 2 * args.timeout)
    try:
        with sigterm_deferred():  # a service manager's stop ends it like Ctrl-C: its job goes back to the queue
            counts = work(db, lambda job: score_job(job, args.device, sandbox=sandbox, limits=limits),
                          lease_s=args.lease, progress=not args.no_progress)
    except KeyboardInterrupt as error:
        from neurozoo.leaderboard.run import stopped_jobs

        # what was kept, as zoo run says it: it printed only "zoo work: interrupted; signal 15" (a bare "interrupted"
        # on Ctrl-C), whether the job under way had been stored or handed back, and nothing of how to go on
        kept = stopped_jobs(db, [job["id"] for job in pending], 0, error, then=": run zoo work again to score them",
                            then_none=": nothing was lost")
        print(f"zoo work: interrupted; {kept}", file=sys.stderr)
        return 130
    print(f"done {counts['done']}, failed {counts['failed']}")
    print(where_scores_are(db, pending))
    return 1 if counts["failed"] else 0


def where_scores_are(db, jobs) -> str:
    """Where `zoo work`'s scores (and failures) of ``jobs`` are seen: its last line said only how many were done and
    failed. A submission's jobs: `zoo submission ID` (their public-split scores, or why they failed); any: the board."""
    submissions = sorted({job["submission_id"] for job in jobs if job.get("submission_id") is not None})
    board = f"the board: zoo serve --db {db.shown_url}"
    if not submissions:
        return f"see the scores on {board}"
    shown = ", ".join(f"zoo submission {submission_id}" for submission_id in submissions)
    return f"see the scores: {shown} (each job's public-split score, or why it failed); {board}"


def _submission_status(args) -> int:
    import getpass

    from neurozoo.datasets.errors import UserFacingError
    from neurozoo.leaderboard.db import LeaderboardDB

    if (args.reason is not None or args.by is not None) and not (args.withdraw or args.restore):
        given = " and ".join(flag for flag, value in (("--reason", args.reason), ("--by", args.by)) if value is not None)
        raise UserFacingError(f"{given}: recorded with --withdraw or --restore only (without either, nothing is "
                              "changed: it was ignored)")
    db = LeaderboardDB(args.db)
    if args.withdraw:
        cancelled = db.withdraw_submission(args.id, args.reason, args.by or getpass.getuser())
        print(f"submission {args.id}: withdrawn, {counted(cancelled, 'queued or running job')} cancelled")
    elif args.restore:
        queued = db.restore_submission(args.id, args.by or getpass.getuser(), args.reason)
        print(f"submission {args.id}: restored, {counted(queued, 'job')} queued again")
    row = db.submission(args.id)
    if row is None:
        raise UserFacingError(f"no submission {args.id} in {db.shown_url}")
    print(f"submission {row['id']} {row['name']} ({row['sha256'][:12]}): {row['status']}")
    for event in row["withdrawals"]:
        why = f": {event['reason']}" if event["reason"] else ""
        print(f"  {event['action']} by {event['by']} at {event['at']}{why}")
    for job in row["jobs"]:
        public = db.score_for_job(job) if job["status"] == "done" else None
        detail = f"public-split score {public.value:.4f}" if public is not None else (job["error"] or "")
        if job["outdated"]:
            detail += f" (outdated, not ranked: {job['outdated']})"
        # an error of several lines (a model process's console) indented under its job, not at the listing's margin
        detail = detail.replace("\n", "\n    ")
        print(f"  {job['benchmark']}: {job['status']} {detail}".rstrip())
    print("(the leaderboard ranks the hidden split; its scores are not shown to submitters)")
    return 0
