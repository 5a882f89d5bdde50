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


def test_a_results_store_in_a_folder_that_is_not_there_is_refused_before_the_score_is_computed(tmp_path, monkeypatch,
                                                                                                  capsys):
    """A --db whose SQLite file is not there yet is created as the record is stored (a refused command leaves no empty
    store); but one in a folder that is not there either could never be created, and was found only then, the score
    computed first and lost."""
    from neurozoo.benchmarks import cli

    monkeypatch.setattr(cli, "score_from_args", lambda *a, **k: pytest.fail("scored before checking the store"))
    db = f"sqlite:///{tmp_path / 'no such folder' / 'r.sqlite'}"
    assert main(["score", "ln", "retina_embedded.whitenoise-heldout", "--db", db, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"zoo score: error: --db {db!r}: cannot open the SQLite file") and "no such folder" in error
    assert not (tmp_path / "no such folder").exists() and not (tmp_path / "out").exists()
