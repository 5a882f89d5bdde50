"""``zoo cache``: what the cache holds, by kind, and ``zoo cache clear``, on a cache made by real extractions: what is
removed and what is kept, an entry a running extraction uses left alone, and the rerun after a clear extracting the
same features again."""
import os
import re
import time

import pytest

from neurozoo.benchmarks.cache_contents import size_text
from neurozoo.benchmarks.extraction import ActivationCache
from neurozoo.benchmarks.extraction.cache import secret_partition
from neurozoo.datasets.cache import locked
from neurozoo.leaderboard.cli import main
from neurozoo.retina.embedded_fit import fit_lock
from test_extraction_resume import (N_BATCHES, _assert_identical, _counted, _extract, _stopped_at, _toy,  # noqa: F401
                                    _uninterrupted, stimuli)

LAYERS = ["conv1", "conv2"]


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "home"))
    return tmp_path / "cache"


def _size(paths) -> int:
    return sum(path.stat().st_size for path in paths if path.is_file())


def _files(root):
    """Every file under ``root`` with its bytes: what a clear must leave as it was."""
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


def _populated(stimuli, tmp_path, monkeypatch):
    """A cache as extractions leave it: this home's two final entries (LAYERS, 20 features) and a stopped extraction's
    partial entries (LAYERS, 30 features: batches 0 and 1 of each), another home's final entry (conv2) in its own
    partition, an entry of the earlier layout and a retina fit's folder (a fit takes minutes; its folder is files)."""
    cache = ActivationCache()
    _extract(_toy(), stimuli, LAYERS, cache)
    _stopped_at(_toy(), stimuli, LAYERS, cache, stop_before=2, max_features=30)
    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "other-home"))
    other = ActivationCache()
    _extract(_toy(), stimuli, ["conv2"], other)
    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "home"))
    earlier = other.root.parent / "ab"
    earlier.mkdir()
    (earlier / "ab12.nc").write_bytes(b"x" * 1000)
    (earlier / "ab12.nc.hmac").write_text("0" * 64)
    fit = other.root.parents[1] / "retina" / "fits" / "ln-whitenoise-0123456789ab-seed0-fit01234567"
    fit.mkdir(parents=True)
    (fit / "checkpoint.pt").write_bytes(b"f" * 5000)
    (fit / "history.json").write_text("{}")
    return cache, other


def _run(capsys, *argv):
    code = main(["cache", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _row(out: str, kind: str) -> list:
    (line,) = [line for line in out.splitlines() if line.startswith(kind + "  ")]
    return re.split(r"\s{2,}", line)


def test_zoo_cache_counts_and_sizes_each_kind(stimuli, tmp_path, monkeypatch, cache_root, capsys):
    cache, other = _populated(stimuli, tmp_path, monkeypatch)
    assert cache.root.name == secret_partition() and other.root.name != cache.root.name
    finals, partials = list(cache.root.rglob("*.nc.signed")), list(cache.root.rglob("*.partial/*"))
    assert len(finals) == 2 and len(partials) == 4 and not list(cache_root.rglob("*.lock"))  # no extraction runs
    code, out, _ = _run(capsys)
    assert code == 0
    assert f"cache: {cache_root}" in out and f"activations/{cache.root.name}/" in out
    assert _row(out, "activations") == ["activations", "2", size_text(_size(finals)), "0",
                                        f"activations/{cache.root.name}/", "--all"]
    assert _row(out, "partial activations (stopped extractions)")[1:4] == [
        "2 (4 batches)", size_text(_size(partials)), "0"]
    assert _row(out, "activations of other homes")[1:3] == ["1 in 1 partitions",
                                                            size_text(_size(other.root.rglob("*")))]
    assert _row(out, "activations, earlier layout (read by none)")[1:3] == ["1", "1.1 kB"]  # 1000 + 64 bytes
    assert _row(out, "retina fits")[1:3] == ["1", "5.0 kB"]
    assert _run(capsys, "info")[1] == out


def test_clear_partial_removes_only_the_partial_entries_and_the_rerun_extracts_the_same_features(
        stimuli, tmp_path, monkeypatch, cache_root, capsys):
    cache, other = _populated(stimuli, tmp_path, monkeypatch)
    partials = sorted(cache.root.rglob("*.partial"))
    freed = _size(cache.root.rglob("*.partial/*"))
    before = _files(cache_root)
    code, out, _ = _run(capsys, "clear", "--partial", "--dry-run")
    assert code == 0 and _files(cache_root) == before
    assert [line.split(" (")[0] for line in out.splitlines()[:2]] == [
        f"would remove {path.relative_to(cache_root)}" for path in partials]
    assert f"would free {size_text(freed)} in {cache_root} (2 partial activations" in out

    code, out, _ = _run(capsys, "clear", "--partial")
    assert code == 0 and f"freed {size_text(freed)} in {cache_root} (2 partial activations" in out
    assert not list(cache_root.rglob("*.partial")) and not list(cache_root.rglob("*.lock"))
    assert _files(cache_root) == {path: data for path, data in before.items() if ".partial" not in str(path)}
    assert _run(capsys, "clear", "--partial")[1].startswith(f"nothing to remove in {cache_root}: no partial")

    model = _counted(_toy())
    _assert_identical(_extract(model, stimuli, LAYERS, cache, max_features=30),
                      _uninterrupted(_toy, stimuli, LAYERS, tmp_path, max_features=30))
    assert model.passes == N_BATCHES  # the batches kept are gone: all extracted again


def test_clear_other_homes_removes_the_partitions_signed_by_other_secrets(stimuli, tmp_path, monkeypatch, cache_root,
                                                                          capsys):
    """This home is the one whose secret signs its partition's name (``$NEUROZOO_HOME/secret.key``): its entries stay,
    the other home's partition goes whole, and so does the earlier layout's entry; that home then extracts again."""
    cache, other = _populated(stimuli, tmp_path, monkeypatch)
    freed = _size(other.root.rglob("*")) + 1064
    mine = _files(cache.root)
    code, out, _ = _run(capsys, "clear", "--other-homes")
    assert code == 0 and f"freed {size_text(freed)} in {cache_root}" in out
    assert f"this home, whose activation entries stay: {tmp_path / 'home'}" in out
    assert sorted(path.name for path in (cache_root / "activations").iterdir()) == [cache.root.name]
    assert _files(cache.root) == mine and (cache_root / "retina" / "fits").is_dir()

    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "other-home"))
    model = _counted(_toy())
    _assert_identical(_extract(model, stimuli, ["conv2"], ActivationCache()),
                      _uninterrupted(_toy, stimuli, ["conv2"], tmp_path))
    assert model.passes == N_BATCHES


def test_a_home_without_a_secret_owns_no_partition_and_zoo_cache_makes_none(stimuli, tmp_path, monkeypatch, cache_root,
                                                                            capsys):
    _populated(stimuli, tmp_path, monkeypatch)
    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "new-home"))
    code, out, _ = _run(capsys)
    assert code == 0 and "no secret.key yet, so no activation entry is its own" in out
    assert _row(out, "activations")[1] == "0" and _row(out, "activations of other homes")[1] == "5 in 2 partitions"
    assert not (tmp_path / "new-home").exists()


def test_an_entry_a_running_extraction_uses_is_kept_and_the_extraction_finishes_with_the_same_features(
        stimuli, tmp_path, monkeypatch, cache_root, capsys):
    """zoo cache clear --all while an extraction resumes the stopped one: that extraction holds its entries' locks,
    so its partial entry (the batches it read and those it has kept since) stays and is named, everything else goes,
    and the extraction ends with the uninterrupted run's features, its final entries saved."""
    cache, other = _populated(stimuli, tmp_path, monkeypatch)
    running = sorted(cache.root.rglob("*.partial"))
    cleared = []

    def clear_there(done, total):
        if done == 3:
            cleared.append(_run(capsys, "clear", "--all", "--dry-run"))
            cleared.append(_run(capsys, "clear", "--all"))
            assert sorted(path.name for path in running[0].iterdir()) == [f"batch-0000{k}.signed" for k in range(3)]

    model = _counted(_toy())
    features = _extract(model, stimuli, LAYERS, cache, max_features=30, safe_point=clear_there)
    assert model.passes == N_BATCHES - 2  # resumed after the two batches kept, none lost to the clear
    _assert_identical(features, _uninterrupted(_toy, stimuli, LAYERS, tmp_path, max_features=30))
    (dry, dry_out, _), (code, out, _) = cleared
    assert dry == code == 1
    for text in (dry_out, out):
        kept = [line for line in text.splitlines() if line.startswith("kept ")]
        assert [line.split(" (")[0] for line in kept] == [f"kept {path.relative_to(cache_root)}" for path in running]
        assert all("in use by an extraction running now" in line for line in kept)
    assert "kept 2 in use" in out and out.count("\nremoved ") + out.startswith("removed ") == 2 + 1 + 1 + 1
    assert sorted(path.relative_to(cache.root) for path in cache_root.rglob("*") if path.is_file()) == sorted(
        path.relative_to(cache.root) for path in cache.root.rglob("*.nc.signed"))  # the running extraction's finals
    assert len(list(cache.root.rglob("*.nc.signed"))) == 2 and not list(cache_root.rglob("*.lock"))


def test_clear_older_than_removes_only_the_entries_not_modified_since(stimuli, tmp_path, monkeypatch, cache_root,
                                                                      capsys):
    cache, other = _populated(stimuli, tmp_path, monkeypatch)
    old = sorted(cache.root.rglob("*.nc.signed"))[0]
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))
    before = _files(cache_root)
    code, out, _ = _run(capsys, "clear", "--all", "--older-than", "5")
    assert code == 0 and out.splitlines()[0] == f"removed {old.relative_to(cache_root)} ({size_text(len(before[old]))})"
    assert _files(cache_root) == {path: data for path, data in before.items() if path != old}


def test_clear_fits_leaves_a_fit_in_progress(stimuli, tmp_path, monkeypatch, cache_root, capsys):
    """A fit holds its folder's lock (retina.embedded_fit.fit_folder_locked) while it fits or is used: kept."""
    _populated(stimuli, tmp_path, monkeypatch)
    fits = cache_root / "retina" / "fits"
    (done,) = list(fits.iterdir())
    busy = fits / "bncnn-whitenoise-0123456789ab-seed0-fit01234567"
    busy.mkdir()
    (busy / "checkpoint.pt").write_bytes(b"c" * 300)
    with locked(fit_lock(busy)):
        code, out, _ = _run(capsys, "clear", "--fits")
    assert code == 1 and f"removed {done.relative_to(cache_root)} (5.0 kB)" in out
    assert f"kept {busy.relative_to(cache_root)} (300 B): in use by a fit running now" in out
    assert sorted(path.name for path in fits.iterdir()) == [busy.name, f"{busy.name}.lock"]  # the holder's lock


def test_clear_without_what_to_clear_is_refused_and_zoo_help_lists_the_command(cache_root, capsys):
    code, out, err = _run(capsys, "clear")
    assert code == 2 and out == ""
    assert err.startswith("zoo cache: error: name what to clear: --partial, --other-homes, --fits, --all")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert re.search(r"^\s+cache\s+the cache \(\$NEUROZOO_CACHE\): info on what it holds", capsys.readouterr().out, re.M)
    with pytest.raises(SystemExit) as exit_:
        main(["cache", "clear", "--older-than", "-1"])
    assert exit_.value.code == 2


def test_the_data_rows_count_the_data_not_their_locks_or_manifest(cache_root, capsys):
    """After the docs' commands (four embedded retina recordings, the embedded ventral data) `zoo cache` said "6"
    embedded retina recordings and "2" embedded ventral data sets: retina/manifest.json and its lock, and the ventral
    set's lock file `.ventral-v5-seed0.lock`, were counted as entries of their own."""
    retina, ventral = cache_root / "retina", cache_root / "embedded"
    (retina / "fits").mkdir(parents=True)
    for name in ("whitenoise-1706b011a5.h5", "naturalscene-1706b011a5.h5"):
        (retina / name).write_bytes(b"r" * 3000)
    (retina / "manifest.json").write_text("{}")
    (retina / "manifest.json.lock").write_bytes(b"")
    (ventral / "ventral-v5-seed0").mkdir(parents=True)
    (ventral / "ventral-v5-seed0" / "assembly.nc").write_bytes(b"v" * 2000)
    (ventral / ".ventral-v5-seed0.lock").write_bytes(b"")
    code, out, _ = _run(capsys)
    assert code == 0
    assert _row(out, "embedded retina recordings")[1:3] == ["2", "6.0 kB"]
    assert _row(out, "embedded ventral data")[1:3] == ["1", "2.0 kB"]


def test_a_save_whose_folder_a_clear_removed_meanwhile_makes_it_again(stimuli, tmp_path, monkeypatch, cache_root):
    """zoo cache clear removes the folders it empties; a save made without the entry's lock (the leaderboard worker's
    were, until it held them) that had made its folder just before found it gone as it wrote (mkstemp's
    FileNotFoundError): it makes it again."""
    import tempfile

    features, cache, key = _extract(_toy(), stimuli, ["conv2"], False)["conv2"], ActivationCache(), "ab" + "0" * 62
    real, removed = tempfile.mkstemp, []

    def after_a_clear(*args, dir=None, **kwargs):
        if dir == cache.root / "ab" and not removed:
            os.rmdir(dir)  # empty: the clear's rmdir between the save's mkdir and its write
            removed.append(dir)
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", after_a_clear)
    path = cache.save(key, features)
    assert removed == [path.parent] and cache.load(key).identical(features)


def test_a_clear_while_a_leaderboard_worker_saves_a_submissions_layers_keeps_them(stimuli, monkeypatch, cache_root):
    """The leaderboard worker (worker.model_features) read and saved a submission's entries without their locks: a
    zoo cache clear between the saves of its two layers removed the entry it had just written. It now holds them as an
    extraction does, from before it reads until it has saved every layer: the clear leaves them, as in use."""
    from types import SimpleNamespace

    import numpy as np

    from neurozoo.benchmarks import cache_contents
    from neurozoo.leaderboard import submission, worker

    benchmark = SimpleNamespace(stimuli=stimuli, bins=[(70, 80), (80, 90)], extraction={})
    spec = {"sha256": "ab" * 32, "folder": "/store/sub", "layers": {"V4": "conv1", "IT": "conv2"},
            "score": {"max_features": 4, "seed": 0}}
    values = [np.full((10, 4, 2), k, dtype=np.float32) for k in (1, 2)]  # conv1's, conv2's
    monkeypatch.setattr(submission, "changed_since_submitted", lambda folder, sha256, version: None)
    monkeypatch.setattr(worker, "run_model", lambda images, request, *_: values[:len(request["layers"])])
    save, saved, cleared = ActivationCache.save, [], []

    def cleared_after_the_first(cache, key, array):
        saved.append(save(cache, key, array))
        if len(saved) == 1:
            cleared.append(cache_contents.clear(["final"]))
        return saved[-1]

    monkeypatch.setattr(ActivationCache, "save", cleared_after_the_first)
    features = worker.model_features(benchmark, spec, "conv1", limits=None, sandbox=False)
    [clear] = cleared
    assert clear.removed == [] and [entry.paths for entry in clear.in_use] == [[saved[0]]]
    assert [path.is_file() for path in saved] == [True, True] and not list(cache_root.rglob("*.lock"))
    monkeypatch.setattr(worker, "run_model", lambda *a: pytest.fail("ran the model: an entry was lost"))
    for layer, expected in zip(("conv1", "conv2"), values):
        again = worker.model_features(benchmark, spec, layer, limits=None, sandbox=False)
        np.testing.assert_array_equal(again.values, expected)
    np.testing.assert_array_equal(features.values, values[0])


def test_an_extraction_that_has_kept_nothing_yet_keeps_its_lock_and_is_not_named(stimuli, tmp_path, monkeypatch,
                                                                                 cache_root, capsys):
    """Its lock file is all there is of it (no batch finished): the clear leaves the lock to its holder and names
    nothing kept; a lock file left by a process killed while holding it goes."""
    cache, _ = _populated(stimuli, tmp_path, monkeypatch)
    dead = cache.lock_path("ef" + "1" * 62)
    dead.parent.mkdir()
    dead.touch()
    with cache.in_use(["cd" + "0" * 62]):
        code, out, _ = _run(capsys, "clear", "--all")
        assert cache.lock_path("cd" + "0" * 62).is_file()
    assert code == 0 and "kept" not in out and not dead.exists() and not dead.parent.exists()
    assert out.count("removed ") == 2 + 2 + 1 + 1 + 1 and not list(cache_root.rglob("*.lock"))
