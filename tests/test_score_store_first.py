"""`zoo score` opens its results store (--db) before it computes the score: a damaged one is refused first."""
import pytest

from neurozoo.leaderboard.cli import main


@pytest.mark.parametrize("content", [b"this is not a SQLite database\n" * 200, b"SQLite format 3\x00" + b"\x00" * 84],
                         ids=["not-sqlite", "cut-short"])
def test_a_damaged_results_store_is_refused_before_the_score_is_computed(content, tmp_path, monkeypatch, capsys):
    """A file that is not a SQLite database, or one cut short after its header, was found only as the record was
    stored: the whole score (a retina fit, a phenomena probe) was computed first, and lost."""
    from neurozoo.benchmarks import cli

    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(content)
    monkeypatch.setattr(cli, "score_from_args", lambda *a, **k: pytest.fail("scored before opening the store"))
    db = f"sqlite:///{damaged}"
    assert main(["score", "ln", "retina_embedded.whitenoise-heldout", "--db", db, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"zoo score: error: --db {db!r}: cannot open the database (") and len(error.splitlines()) == 1
    assert damaged.read_bytes() == content and not (tmp_path / "out").exists()
