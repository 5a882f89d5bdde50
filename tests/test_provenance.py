"""Provenance of a record: the code version of a checkout, of an installed copy and of a bare source tree."""
import shutil
import subprocess

import pytest

from neurozoo.datasets import provenance


@pytest.fixture
def fresh_commit_cache():
    provenance.git_commit.cache_clear()
    provenance.code_diff_sha256.cache_clear()
    yield
    provenance.git_commit.cache_clear()
    provenance.code_diff_sha256.cache_clear()


def _git(folder, *args) -> str:
    return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}).stdout.strip()


@pytest.fixture
def committed_repository():
    """``make(folder, {name: text})``: a new git repository at ``folder`` holding those files in one commit; its
    HEAD commit."""
    if shutil.which("git") is None:
        pytest.skip("needs git")

    def make(folder, files) -> str:
        _git(folder, "init", "-q")
        for name, text in files.items():
            (folder / name).write_text(text)
        _git(folder, "add", *files)
        _git(folder, "commit", "-q", "-m", "x")
        return _git(folder, "rev-parse", "HEAD")

    return make


def test_an_installed_copy_inside_another_repository_reports_no_commit(tmp_path, monkeypatch, fresh_commit_cache,
                                                                       committed_repository):
    """A wheel in a project's .venv lies inside the project's repository: that repository's HEAD is not the
    suite's code version (before the fix: its commit, and -dirty from its files)."""
    project = tmp_path / "project"
    installed = project / ".venv" / "site-packages" / "neurozoo"
    installed.mkdir(parents=True)
    committed_repository(project, {"notes.txt": "x"})
    monkeypatch.setattr(provenance, "REPO", installed.resolve())
    monkeypatch.setattr(provenance, "build_commit", lambda: None)  # a copy built outside any checkout
    assert provenance.git_commit() is None
    assert "+g" not in provenance.code_version()


def test_a_checkout_reports_its_own_commit(tmp_path, monkeypatch, fresh_commit_cache, committed_repository):
    head = committed_repository(tmp_path, {"setup.cfg": "[metadata]\nversion = 9.8.7\n"})
    monkeypatch.setattr(provenance, "REPO", tmp_path.resolve())
    assert provenance.git_commit() == head
    (tmp_path / "setup.cfg").write_text("[metadata]\nversion = 9.8.8\n")
    provenance.git_commit.cache_clear()
    assert provenance.git_commit() == head + "-dirty"


def test_an_untracked_module_makes_the_checkout_dirty_but_ignored_runs_and_a_venv_do_not(
        tmp_path, monkeypatch, fresh_commit_cache, committed_repository):
    """Before: --untracked-files=no, so a new module not yet added, which changes what runs, left the version clean."""
    head = committed_repository(tmp_path, {"setup.cfg": "[metadata]\nversion = 9.8.7\n", ".gitignore": "/runs/\n"})
    monkeypatch.setattr(provenance, "REPO", tmp_path.resolve())
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "score.json").write_text("{}")  # ignored
    (tmp_path / "env" / "lib").mkdir(parents=True)  # a virtual environment, not in .gitignore
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / "env" / "lib" / "site.py").write_text("x = 1\n")
    assert provenance.git_commit() == head and provenance.code_diff_sha256() is None
    digests = []
    for text in ("SCALE = 2\n", "SCALE = 3\n", "SCALE = 2\n"):
        (tmp_path / "new_module.py").write_text(text)
        provenance.git_commit.cache_clear()
        provenance.code_diff_sha256.cache_clear()
        assert provenance.git_commit() == head + "-dirty"
        digests.append(provenance.environment()["code_diff_sha256"])
    assert len(digests[0]) == 64 and digests[0] != digests[1] and digests[0] == digests[2]  # its contents count
    (tmp_path / "new_module.py").rename(tmp_path / "other_module.py")
    provenance.code_diff_sha256.cache_clear()
    assert provenance.code_diff_sha256() != digests[0]  # and its name


def test_a_source_tree_never_installed_states_its_setup_cfg_version(tmp_path, monkeypatch, fresh_commit_cache):
    def not_installed(name):
        raise provenance.PackageNotFoundError(name)

    (tmp_path / "setup.cfg").write_text("[metadata]\nname = neurozoo\nversion = 9.8.7\n")
    monkeypatch.setattr(provenance, "REPO", tmp_path.resolve())
    monkeypatch.setattr(provenance, "version", not_installed)
    assert provenance.package_version() == "9.8.7"
    assert provenance.code_version() == "9.8.7"  # not a git checkout: no commit, no crash


def test_environment_states_the_versions_a_score_depends_on():
    import numpy as np
    import torch

    env = provenance.environment()
    assert env["torch"] == torch.__version__ and env["numpy"] == np.__version__
    assert env["python"].count(".") == 2 and env["torch_threads"] == torch.get_num_threads()
    # the metrics' linear algebra and splits, and the BLAS's threads, which move a score's last bits as torch's do
    import scipy
    import sklearn
    from threadpoolctl import threadpool_info

    assert env["scipy"] == scipy.__version__ and env["sklearn"] == sklearn.__version__ and env["cpu"]
    assert env["blas_threads"] == max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")


def test_environment_states_the_variables_that_change_numbers_only_where_set(monkeypatch):
    """MKL_CBWR, ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY... pick other kernels (README): a record did not say them."""
    for name in provenance.NUMERIC_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not set(provenance.NUMERIC_VARIABLES) & set(provenance.environment())
    monkeypatch.setenv("MKL_CBWR", "AVX2")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # moves no number: not recorded
    env = provenance.environment()
    assert {name: env[name] for name in set(env) & {*provenance.NUMERIC_VARIABLES, "OMP_WAIT_POLICY"}} == {
        "MKL_CBWR": "AVX2", "OPENBLAS_NUM_THREADS": "1"}


def test_an_installed_copy_reports_the_commit_it_was_built_from(monkeypatch, fresh_commit_cache, tmp_path):
    monkeypatch.setattr(provenance, "REPO", tmp_path.resolve())  # not a checkout
    monkeypatch.setattr(provenance, "package_version", lambda: "0.1.0")
    monkeypatch.setattr(provenance, "build_commit", lambda: "0123456789abcdef0123-dirty")
    assert provenance.code_version() == "0.1.0+g0123456789ab-dirty"


def test_a_live_checkout_wins_over_a_stale_build_commit(tmp_path, monkeypatch, fresh_commit_cache,
                                                       committed_repository):
    """An editable install in a checkout reports the commit checked out now, not one written at install time."""
    head = committed_repository(tmp_path, {"a.txt": "x"})
    monkeypatch.setattr(provenance, "REPO", tmp_path.resolve())
    monkeypatch.setattr(provenance, "build_commit", lambda: "f" * 40)
    assert provenance.git_commit() == head


def test_a_file_replaced_with_the_same_size_and_times_is_hashed_again(tmp_path):
    """The digest was remembered per (path, size, modification time): a recording replaced atomically (a new file
    renamed over it) with the same size, within one tick of the file-system clock, kept the old file's digest, so a
    score's provenance named data it was not computed from."""
    import hashlib
    import os

    from neurozoo.datasets.provenance import sha256_file

    path = tmp_path / "recording.h5"
    path.write_bytes(b"a" * 64)
    assert sha256_file(path) == hashlib.sha256(b"a" * 64).hexdigest()
    before = os.stat(path)
    new = tmp_path / "recording.h5.part"
    new.write_bytes(b"b" * 64)
    os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns))  # one clock tick: the same modification time
    os.replace(new, path)
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns and os.stat(path).st_size == before.st_size
    assert sha256_file(path) == hashlib.sha256(b"b" * 64).hexdigest()


def test_probe_refuses_weights_that_are_not_those_summary_json_describes(tmp_path, capsys):
    """zoo probe --checkpoint DIR/model.pt reads which recording the weights were fitted to from zoo fit's
    summary.json beside them; it recorded no digest of the weights, so another fit's summary.json beside swapped
    weights was trusted. zoo fit now records the sha256 of model.pt and checkpoint.pt, and the probe refuses other
    weights naming both files; a summary.json without the digest (an older zoo fit's) is trusted with a warning."""
    import json

    import torch

    from neurozoo.datasets.provenance import sha256_file
    from neurozoo.datasets.synthetic_retina import load_embedded_retina
    from neurozoo.leaderboard.cli import main as zoo
    from neurozoo.retina.fit import create_model

    data = load_embedded_retina("whitenoise", n_train=2500, n_test=200, n_repeats=2)
    fit = tmp_path / "fit"
    assert zoo(["fit", "ln", "--data", str(data), "--epochs", "1", "--quiet", "--out", str(fit)]) == 0
    weights, summary = fit / "model.pt", fit / "summary.json"
    record = json.loads(summary.read_text())
    assert record["weights_sha256"] == {name: sha256_file(fit / name) for name in ("model.pt", "checkpoint.pt")}

    def probe(checkpoint) -> int:
        return zoo(["probe", "osr", "ln", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "probe"),
                    "--periods", "6", "10", "14"])

    for checkpoint in (weights, fit / "checkpoint.pt"):
        assert probe(checkpoint) == 0
        fitted_to = json.loads((tmp_path / "probe" / "osr.json").read_text())["provenance"]["fitted_to"]
        assert fitted_to["rule"] == "summary.json" and fitted_to["weights_checked"] is True
    torch.manual_seed(1)
    torch.save(create_model("ln", n_cells=12).state_dict(), weights)  # another model's weights, same shapes
    capsys.readouterr()
    assert probe(weights) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{weights}: not the weights that {summary} describes (sha256 " in err
    assert f"model.pt {record['weights_sha256']['model.pt'][:12]}" in err
    del record["weights_sha256"]  # as an older zoo fit wrote it
    summary.write_text(json.dumps(record))
    with pytest.warns(UserWarning, match=f"{summary}: records no sha256 of the weights .* model.pt is taken"):
        assert probe(weights) == 0
    fitted_to = json.loads((tmp_path / "probe" / "osr.json").read_text())["provenance"]["fitted_to"]
    assert fitted_to["rule"] == "summary.json" and fitted_to["weights_checked"] is False


def test_a_dirty_checkout_states_a_digest_of_its_changes(tmp_path, monkeypatch, fresh_commit_cache,
                                                         committed_repository):
    """-dirty said only that there were uncommitted changes: two runs on different edits had the same code version,
    and a rerun on other edits differed with no reason named."""
    committed_repository(tmp_path, {"setup.cfg": "[metadata]\nversion = 9.8.7\n"})
    monkeypatch.setattr(provenance, "REPO", tmp_path.resolve())
    assert provenance.code_diff_sha256() is None and "code_diff_sha256" not in provenance.environment()
    digests = []
    for edit in ("9.8.8", "9.8.9", "9.8.8"):
        (tmp_path / "setup.cfg").write_text(f"[metadata]\nversion = {edit}\n")
        provenance.git_commit.cache_clear()
        provenance.code_diff_sha256.cache_clear()
        assert provenance.git_commit().endswith("-dirty")
        digests.append(provenance.environment()["code_diff_sha256"])
    assert len(digests[0]) == 64 and digests[0] != digests[1] and digests[0] == digests[2]


def test_a_score_recorded_from_a_dirty_checkout_says_so_and_a_clean_one_does_not(tmp_path, monkeypatch,
                                                                                 fresh_commit_cache,
                                                                                 committed_repository):
    """What a stored record (not only provenance's functions) states of the code: the commit, -dirty in its
    git_commit and code_version once a tracked file changed, and the digest of those changes in its environment."""
    import numpy as np
    import torch

    from neurozoo.benchmarks.extraction import Stimuli
    from neurozoo.benchmarks.neural import NeuralBenchmark
    from neurozoo.benchmarks.records import ResultsStore
    from neurozoo.benchmarks.synthetic import as_features, synthetic_assembly

    repo = tmp_path / "repo"
    repo.mkdir()
    head = committed_repository(repo, {"setup.cfg": "[metadata]\nversion = 9.8.7\n"})
    monkeypatch.setattr(provenance, "REPO", repo.resolve())
    version = provenance.package_version()
    assembly, clean = synthetic_assembly(n_stimuli=48, n_neuroids=6, n_bins=2, n_repetitions=4, n_objects=4, seed=0)
    ids = list(clean["stimulus_id"].values)
    benchmark = NeuralBenchmark("provtest.V4", "V4", lambda: assembly, lambda: Stimuli(ids, torch.zeros(48, 3, 8, 8)))
    signal = np.einsum("pnt,nf->pft", clean.values, np.random.default_rng(1).normal(size=(6, 12)))
    features = as_features(signal.astype(np.float32), clean)
    store = ResultsStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    records = []
    for edit in (None, "9.8.8"):
        if edit:
            (repo / "setup.cfg").write_text(f"[metadata]\nversion = {edit}\n")
            provenance.git_commit.cache_clear()
            provenance.code_diff_sha256.cache_clear()
        records.append(store.get(store.add(benchmark.score_features(features).to_record("m", "provtest.V4"))))
    before, after = records
    assert (before.git_commit, before.code_version) == (head, f"{version}+g{head[:12]}")
    assert "code_diff_sha256" not in before.settings["environment"]
    assert (after.git_commit, after.code_version) == (f"{head}-dirty", f"{version}+g{head[:12]}-dirty")
    assert after.settings["environment"]["code_diff_sha256"] == provenance.checkout_diff_sha256(repo)
    assert after.value == before.value and after.data_sha256 == before.data_sha256


PERF_SCRIPTS = ("convrnn_gpu_profile", "convrnn_gpu_speed", "depthwise_conv_speed", "extraction_speed",
                "leaderboard_load", "leaderboard_report", "metric_speed", "retina_fit_speed", "train_command_speed",
                "train_throughput")


class Stated(BaseException):
    """Raised by the code version: the script asked for it."""


class NotStated(BaseException):
    """Raised by the script's first use of its arguments: it went on to measure without stating its code."""


@pytest.mark.parametrize("script", PERF_SCRIPTS)
def test_every_perf_script_states_its_code_version_before_it_measures(script, monkeypatch):
    """The perf scripts print the figures the README quotes, and none named the code it measured (some the torch
    version or CPU): a figure could not be measured again on its code. Each asks for the code version as soon as its
    arguments are parsed; here that stops it, and a script that reads an argument first is stopped there, so the
    test measures nothing."""
    import argparse
    import importlib
    import sys

    def stop():
        raise Stated

    class Trapped(argparse.Namespace):
        def __getattribute__(self, name):
            # --threads may come first: it sets the thread count that the stated environment holds
            if not name.startswith("__") and name != "threads":
                raise NotStated(f"{script} read --{name} before stating its code version")
            return super().__getattribute__(name)

    parse = argparse.ArgumentParser.parse_args
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args",
                        lambda self, *a, **k: Trapped(**vars(parse(self, *a, **k))))
    monkeypatch.setattr(provenance, "code_version", stop)
    monkeypatch.setattr(sys, "argv", [script])  # leaderboard_report reads sys.argv
    main = importlib.import_module(f"neurozoo.benchmarks.perf.{script}").main
    with pytest.raises(Stated):
        main() if script == "leaderboard_report" else main([])


def test_the_provenance_line_names_the_code_and_the_versions(monkeypatch, fresh_commit_cache):
    import torch

    monkeypatch.setattr(provenance, "code_version", lambda: "9.9.9+gabc")
    line = provenance.run_provenance_line()
    assert line.startswith("code 9.9.9+gabc; python ") and f"torch {torch.__version__}" in line
    assert f"torch_threads {torch.get_num_threads()}" in line
