"""Commands show a database URL with its password hidden (``datasets.db_urls.shown_url``): `zoo run`, `zoo score`,
`zoo dynamics`, `zoo submission`, `zoo reproduce`, `zoo work` and `zoo search` printed a PostgreSQL URL's
``user:password@`` whole (the README's own examples pass one with --db and --storage)."""
import importlib.util

import pytest

from neurozoo.datasets.db_urls import shown_url
from neurozoo.leaderboard.cli import main


def test_shown_url_hides_the_password_and_keeps_the_rest():
    assert (shown_url("postgresql+psycopg2://alice:s3cret@db.example:5432/board?sslmode=require")
            == "postgresql+psycopg2://alice:***@db.example:5432/board?sslmode=require")
    assert shown_url("sqlite:////tmp/results.sqlite") == "sqlite:////tmp/results.sqlite"
    assert shown_url("sqlite:////home/zoë/100%/results.sqlite") == "sqlite:////home/zoë/100%/results.sqlite"  # not %C3%AB
    assert shown_url("not a url") == "not a url"


@pytest.fixture
def url_with_password(postgres_url):
    if not postgres_url:
        pytest.skip("NEUROZOO_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)")
    from sqlalchemy.engine import make_url

    password = make_url(postgres_url).password
    if not password:
        pytest.skip("the test PostgreSQL URL has no password to hide")
    return postgres_url, password


@pytest.mark.parametrize("command", [["submission", "999"], ["reproduce", "999"], ["work"]])
def test_commands_name_a_postgres_database_without_its_password(url_with_password, capsys, command):
    url, password = url_with_password
    assert main(command + ["--db", url]) == 2
    err = capsys.readouterr().err
    assert ":***@" in err and f":{password}@" not in err


def test_zoo_run_prints_its_database_without_the_password(url_with_password, capsys):
    url, password = url_with_password
    main(["run", "--models", "rgc_shallow", "--benchmarks", "zhang_desimone2011.IT-decoding", "--db", url,
          "--no-progress"])  # a data-only benchmark: no job to score, the database line all the same
    out = capsys.readouterr().out
    assert "database postgresql" in out and ":***@" in out and f":{password}@" not in out


@pytest.mark.parametrize("url, message", [
    ("mysql+pymysql://alice:s3cret@db.example/search", "its database driver is not installed (mysql+pymysql); for "
     "PostgreSQL: pip install psycopg2-binary"),
    # psycopg 3 named: the advice was psycopg2-binary, which is installed, so the same error came again
    ("postgresql+psycopg://alice:s3cret@db.example/search", "its database driver is not installed "
     "(postgresql+psycopg); pip install 'psycopg[binary]', or write postgresql+psycopg2:// (psycopg2 is installed "
     "with the suite)"),
    ("mysql+nosuchdriver://alice:s3cret@db.example/search", "Can't load plugin: sqlalchemy.dialects:mysql.nosuchdriver; "
     "expected a database URL such as sqlite:///search.sqlite or postgresql+psycopg2://user@host/db"),
    # a database that cannot be reached or created: SQLAlchemy's OperationalError, a traceback
    ("postgresql+psycopg2://alice:s3cret@127.0.0.1:1/search", 'cannot open the database: connection to server at '
     '"127.0.0.1", port 1 failed: Connection refused'),
    ("sqlite:////nonexistent-folder/search.sqlite", "cannot open the database: unable to open database file"),
])
def test_a_search_storage_that_cannot_be_opened_is_one_line_without_the_password(url, message):
    """optuna 5 raises its own ImportError for a missing database driver, which the search's ModuleNotFoundError
    handler did not catch, and SQLAlchemy's errors for an unknown driver or a database it cannot open were not caught
    either: tracebacks (and the handler's message printed the URL whole)."""
    from neurozoo.convrnn.search.study import make_storage
    from neurozoo.datasets.errors import UserFacingError

    for module in ("pymysql", "psycopg"):
        if f"+{module}:" in url and importlib.util.find_spec(module):
            pytest.skip(f"{module} is installed here: its driver is not missing")
    with pytest.raises(UserFacingError) as caught:
        make_storage(url, heartbeat_interval=None)
    assert str(caught.value) == f"--storage '{url.replace(':s3cret@', ':***@')}': {message}"


@pytest.mark.parametrize("content", [b"SQLite format 3\x00" + bytes(range(256)) * 20, b"not a database at all\n" * 300])
def test_a_damaged_search_storage_file_is_one_line_naming_it(tmp_path, content):
    """A search.sqlite cut short (a full disk, a copy interrupted) or overwritten raised SQLAlchemy's DatabaseError
    ("database disk image is malformed", "file is not a database") as a traceback from zoo search."""
    from neurozoo.convrnn.search.study import make_storage
    from neurozoo.datasets.errors import UserFacingError

    path = tmp_path / "my search" / "search.sqlite"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(UserFacingError) as caught:
        make_storage(f"sqlite:///{path}", heartbeat_interval=None)
    message = str(caught.value)
    assert message.startswith(f"--storage 'sqlite:///{path}': cannot read the database (") and "\n" not in message
    assert "(file is not a database)" in message or "malformed" in message
    assert path.read_bytes() == content  # left as it was, for the user to restore


@pytest.fixture
def only_psycopg2(monkeypatch):
    """psycopg2 installed (the suite's dependency) and psycopg 3 not, whatever this environment holds."""
    pytest.importorskip("psycopg2")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else find_spec(name, *a))


def test_a_plain_postgresql_url_opens_with_the_installed_psycopg2(only_psycopg2):
    """SQLAlchemy 2.1 reads ``postgresql://`` as psycopg 3: the README's `zoo search --storage postgresql://...`, and
    such a --db, failed with "No module named 'psycopg'" (and advice to install the psycopg2 already there). Port 1
    refuses the connection: the driver loaded and tried it."""
    from neurozoo.benchmarks.records import DatabaseUnavailable, ResultsStore
    from neurozoo.convrnn.search.study import make_storage
    from neurozoo.datasets.db_urls import with_installed_driver
    from neurozoo.datasets.errors import UserFacingError

    url = "postgresql://alice:s3cret@127.0.0.1:1/board"
    assert with_installed_driver(url) == "postgresql+psycopg2://alice:s3cret@127.0.0.1:1/board"
    assert with_installed_driver("postgresql+psycopg://a@h/db") == "postgresql+psycopg://a@h/db"  # a driver named
    with pytest.raises(DatabaseUnavailable) as caught:
        ResultsStore(url)
    assert "Connection refused" in str(caught.value) and "psycopg'" not in str(caught.value)
    assert "postgresql://alice:***@127.0.0.1:1/board" in str(caught.value)  # shown as given
    with pytest.raises(UserFacingError) as caught:
        make_storage(url, heartbeat_interval=None)
    assert "cannot open the database" in str(caught.value) and "Connection refused" in str(caught.value)


def test_a_results_store_naming_a_missing_psycopg_says_what_to_install():
    """--db postgresql+psycopg://... said only "No module named 'psycopg'"; the search's storage advised psycopg2-binary,
    which the suite installs, so the same error came again."""
    from neurozoo.benchmarks.records import DatabaseUnavailable, ResultsStore

    if importlib.util.find_spec("psycopg"):
        pytest.skip("psycopg is installed here: its driver is not missing")
    with pytest.raises(DatabaseUnavailable) as caught:
        ResultsStore("postgresql+psycopg://alice:s3cret@127.0.0.1/x")
    assert str(caught.value) == ("--db 'postgresql+psycopg://alice:***@127.0.0.1/x': no database driver for this URL's "
                                 "scheme (No module named 'psycopg'); pip install 'psycopg[binary]', or write "
                                 "postgresql+psycopg2:// (psycopg2 is installed with the suite)")
