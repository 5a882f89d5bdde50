"""Provenance of a record: the code version of a checkout, of an installed copy and of a bare source tree."""
import shutil
import subprocess

import pytest

from neurozoo.datasets import provenance


@pytest.fixture
def fresh_commit_cache():
    provenance.git_commit.cache_clear()
    yield
    provenance.git_commit.cache_clear()


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
