"""How a database URL (``--db``, ``--storage``, ``--results``) is shown in messages: with its password hidden.

Commands print the URL they write to (``zoo run: ... database URL``, ``record 3 in URL``); a PostgreSQL URL carries
``user:password@host``, which must not reach a terminal, a log or a CI transcript."""
from __future__ import annotations

import importlib.util


def shown_url(url: str) -> str:
    """``url`` as SQLAlchemy renders it with the password as ``***``; a URL without a password as given (rendering
    percent-encodes a path's ``%`` and non-ASCII letters); a string it cannot parse, cut at 200 characters (it may
    be anything a user typed)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return url if len(url) < 200 else url[:200] + "..."
    return url if parsed.password is None else parsed.render_as_string(hide_password=True)


def stored_line(ids, shown_url: str) -> str:
    """Where the records went: ``record 29 in URL``, ``records 29, 30 in URL`` (one record read "records 29");
    ``shown_url``: :func:`shown_url`'s (a store's ``shown_url``)."""
    return f"{'record' if len(ids) == 1 else 'records'} {', '.join(map(str, ids))} in {shown_url}"


def with_installed_driver(url: str) -> str:
    """``url``, a plain ``postgresql://`` one naming the PostgreSQL driver that is installed. SQLAlchemy 2.1 reads
    ``postgresql://`` as psycopg 3, while the suite installs psycopg2 (``setup.cfg``), so such a URL failed with "No
    module named 'psycopg'" beside a working driver. A URL naming its driver is left as given."""
    if (url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None
            and importlib.util.find_spec("psycopg2") is not None):
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def missing_driver_advice(driver: str) -> str:
    """What to install for a missing database driver (``driver``: the module's or the URL's driver name). It always
    said psycopg2-binary, which the suite installs, so a user of psycopg 3 (``postgresql+psycopg://``) installed it
    and met the same error."""
    if driver in ("psycopg", "postgresql+psycopg"):
        return "pip install 'psycopg[binary]', or write postgresql+psycopg2:// (psycopg2 is installed with the suite)"
    return "for PostgreSQL: pip install psycopg2-binary"
