"""The leaderboard's job lifecycle as the tests drive it: a call made for a claim names the claim's lease token, which
the job dict that ``LeaderboardDB.claim`` returns carries (``heartbeat``, ``finish``, ``fail`` and ``release`` require
it)."""


def finish_claim(db, job, record, **options) -> bool:
    """``db.finish`` for the claim ``job`` (what ``db.claim`` returned): its worker and lease token."""
    return db.finish(job["id"], job["worker"], record, lease_token=job["lease_token"], **options)


def fail_claim(db, job, reason, **options) -> bool:
    """``db.fail`` for the claim ``job`` (what ``db.claim`` returned): its worker and lease token."""
    return db.fail(job["id"], job["worker"], reason, lease_token=job["lease_token"], **options)
