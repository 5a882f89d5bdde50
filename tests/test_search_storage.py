"""`zoo search` opens its --storage once per process."""
import pytest


@pytest.mark.parametrize("workers", ["1", "2"])
def test_zoo_search_opens_its_storage_once(tmp_path, monkeypatch, workers):
    """`zoo search` opened --storage to refuse a bad URL before printing, then again in run_worker (one worker, with
    the heartbeat) and again to export: three engines, each a connection held (PostgreSQL: ~0.4 s each to open).
    The storage opened first serves all three, with the heartbeat settings also where its local workers run the
    trials (it tells their dead trials by them: the "continuing" line)."""
    import optuna

    from neurozoo.convrnn.training.synthetic import write_image_folder
    from neurozoo.leaderboard.cli import main

    write_image_folder(tmp_path / "data", n_classes=2, per_class=2, size=16, val_per_class=1)
    opened, real_init = [], optuna.storages.RDBStorage.__init__

    def counted_init(self, url, *args, **kwargs):
        opened.append(kwargs.get("heartbeat_interval"))
        real_init(self, url, *args, **kwargs)

    monkeypatch.setattr(optuna.storages.RDBStorage, "__init__", counted_init)
    argv = ["search", "--data", str(tmp_path / "data"), "--trials", "0", "--out", str(tmp_path / "out"),
            "--export", "0", "--no-record", "--quiet", "--heartbeat", "30", "--workers", workers]
    assert main(argv) == 0
    assert opened == [30]
    assert optuna.load_study(study_name="rgc_intermediate", storage=f"sqlite:///{tmp_path / 'out' / 'search.sqlite'}")
