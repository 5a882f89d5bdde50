"""Results store: round trip, filtering, transactional batches, provenance fields, JSON safety."""
from datetime import datetime, timezone

import numpy as np
import pytest
import torch
from sqlalchemy.exc import IntegrityError

from neurozoo.datasets.provenance import code_version, sha256_array
from neurozoo.benchmarks.records import ResultsStore, ScoreRecord


def _record(model="m1", benchmark="b1", value=0.5, **kw):
    return ScoreRecord(model=model, benchmark=benchmark, value=value, error=0.01, ceiling=0.8, raw=0.63,
                       per_bin=[{"time_bin_start": 70, "time_bin_end": 80, "value": np.float64(0.4)},
                                {"time_bin_start": 80, "time_bin_end": 90, "value": np.nan}],
                       code_version=code_version(), data_sha256="ab" * 32, seed=1,
                       settings={"mapping": "pls", "layers": ("conv5", "conv6"), "n": np.int64(25)},
                       device="cpu", duration_s=1.5, **kw)


def test_round_trip_and_query(tmp_path):
    store = ResultsStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    first = store.add(_record())
    store.add(_record(model="m2", value=0.7))
    store.add(_record(value=0.6))
    record = store.get(first)
    assert record.model == "m1" and record.value == 0.5 and record.ceiling == 0.8
    assert record.per_bin[0]["value"] == 0.4 and record.per_bin[1]["value"] is None  # NaN stored as null
    environment = record.settings.pop("environment")  # added to every record: the versions a rerun must match
    assert record.settings == {"mapping": "pls", "layers": ["conv5", "conv6"], "n": 25}
    assert environment["torch"] == torch.__version__ and environment["numpy"] == np.__version__
    assert record.created_at is not None and record.code_version.startswith("0.")
    frame = store.query(model="m1")
    assert list(frame["value"]) == [0.5, 0.6] and set(frame["benchmark"]) == {"b1"}
    assert len(store.query()) == 3 and len(store.query(benchmark="nope")) == 0
    latest = store.query(latest=True)
    assert sorted(zip(latest["model"], latest["value"])) == [("m1", 0.6), ("m2", 0.7)]
    # a second store on the same file sees the rows
    assert len(ResultsStore(store.url).query()) == 3


def test_batch_write_is_all_or_nothing(tmp_path):
    store = ResultsStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    bad = _record(model=None)  # NOT NULL violated inside the batch, by the database when the batch is flushed
    with pytest.raises(IntegrityError, match=r"NOT NULL constraint failed: scores\.model"):  # the table and field
        store.add_many([_record(), bad])
    assert len(store.query()) == 0
    ids = store.add_many([_record(), _record(model="m3")])
    assert len(ids) == 2 and len(store.query()) == 2


def test_default_location_is_neurozoo_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "home"))
    store = ResultsStore()
    store.add(_record(created_at=datetime(2026, 1, 2, tzinfo=timezone.utc)))
    assert (tmp_path / "home" / "results.sqlite").is_file()
    assert store.query()["created_at"].iloc[0].year == 2026


def test_data_checksum_depends_on_values_and_coords():
    import xarray as xr

    a = xr.DataArray(np.arange(6.0).reshape(2, 3), dims=("x", "y"), coords={"x": ["a", "b"]})
    assert sha256_array(a) == sha256_array(a.copy())
    assert sha256_array(a) != sha256_array(a + 1e-12)
    assert sha256_array(a) != sha256_array(a.assign_coords(x=["a", "c"]))


@pytest.mark.parametrize("filters", [{}, {"model": "m1"}, {"benchmark": "b1"}, {"model": "m1", "benchmark": "b1"}])
def test_a_record_cut_short_is_named_whatever_the_records_filter(tmp_path, filters):
    """records(model=...) or records(benchmark=...) alone (zoo results --model, query(model=...)) built the error
    message from ``whereclause.clauses``, which a single condition lacks: an AttributeError traceback, not the
    DataError naming the record that no filter or both filters gave."""
    import sqlite3

    from neurozoo.datasets.errors import DataError

    db_file = tmp_path / "r.sqlite"
    store = ResultsStore(f"sqlite:///{db_file}")
    store.add(_record(model="m2"))
    bad = store.add(_record())
    with sqlite3.connect(db_file) as connection:
        connection.execute("UPDATE scores SET settings = ? WHERE id = ?", ('{"mapping": "pl', bad))
    with pytest.raises(DataError, match=rf"^record {bad} in .*: its settings is not readable JSON"):
        store.records(**filters)
    with pytest.raises(DataError, match=rf"^record {bad} in .*: its settings is not readable JSON"):
        store.query(**filters)


def test_every_provenance_field_round_trips_and_a_rerun_on_other_data_or_seed_is_no_duplicate(tmp_path):
    """The provenance a rerun is checked against (data checksum, seed, commit, device) is stored and read back as
    given, and :meth:`ResultsStore.identical` (``zoo score`` reusing a record instead of storing a duplicate) matches
    a record only where all of it agrees: a score of other data or another seed is a new result, not the stored one.
    (The round trip above never read them back; a store that dropped the checksum, or matched records without it,
    passed.)"""
    from dataclasses import replace

    store = ResultsStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    record = _record(git_commit="0123abcd" * 5)
    stored = store.get(store.add(record))
    assert (stored.data_sha256, stored.seed, stored.git_commit, stored.device) == ("ab" * 32, 1, "0123abcd" * 5, "cpu")
    again = _record(git_commit="0123abcd" * 5, created_at=datetime(2020, 1, 2, tzinfo=timezone.utc))  # another time
    assert store.identical(again).id == stored.id
    for changed in ({"data_sha256": "cd" * 32}, {"seed": 2}, {"git_commit": "fedc" * 10}, {"device": "cuda"}):
        assert store.identical(replace(_record(git_commit="0123abcd" * 5), **changed)) is None, changed
