"""A wheel or sdist built from a git checkout carries the commit (setup.py writes neurozoo/datasets/_build_info.py),
so two wheels of different commits no longer both report a bare ``0.1.0``. Builds offline from a clone of HEAD."""
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from neurozoo.datasets import provenance

def _can_build_offline() -> bool:
    if importlib.util.find_spec("setuptools") is None:
        return False
    return (importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
            or importlib.util.find_spec("wheel") is not None)


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("git") is None, reason="needs git to clone the checkout"),
              pytest.mark.skipif(not _can_build_offline(), reason="building offline (pip --no-build-isolation) "
                                 "needs setuptools with bdist_wheel (>= 70.1) or the wheel package installed")]


def _run(args, cwd):
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A clone of the suite's HEAD (builds write build/ and *.egg-info; the worktree stays untouched)."""
    head = _run(["git", "rev-parse", "HEAD"], provenance.REPO)
    clone = tmp_path_factory.mktemp("clone") / "neurozoo"
    _run(["git", "clone", "-q", "--no-checkout", "--shared", str(provenance.REPO), str(clone)], provenance.REPO)
    _run(["git", "checkout", "-q", head], clone)
    return clone, head


def _wheel(source, out):
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(out), str(source)], source)
    (wheel,) = out.glob("neurozoo-*.whl")
    return wheel


def _code_version_of(wheel, unpacked):
    """code_version() and git_commit() of the wheel's own provenance module, imported from the unzipped wheel."""
    zipfile.ZipFile(wheel).extractall(unpacked)
    script = ("from neurozoo.datasets import provenance as p; "
              "print(p.__file__); print(p.code_version()); print(p.git_commit()); print(p.code_diff_sha256())")
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    out = subprocess.run([sys.executable, "-c", script], cwd=unpacked, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    where, version, commit, diff = out.stdout.split("\n")[:4]
    assert Path(where).resolve().is_relative_to(Path(unpacked).resolve())
    _code_version_of.diff = diff  # the uncommitted changes' sha256 it states (None: none)
    return version, commit


def test_a_wheel_reports_the_commit_it_was_built_from(checkout, tmp_path):
    clone, head = checkout
    version, commit = _code_version_of(_wheel(clone, tmp_path / "whl"), tmp_path / "unzipped")
    assert version == f"{provenance.package_version()}+g{head[:12]}"  # before: "0.1.0", whatever the commit
    assert commit == head


def test_a_wheel_from_a_changed_checkout_says_dirty_and_one_from_no_checkout_no_commit(checkout, tmp_path):
    clone, head = checkout
    changed = tmp_path / "changed"
    shutil.copytree(clone, changed, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    (changed / "README.md").write_text("changed\n")
    from neurozoo.datasets.git_checkout import checkout_diff_sha256

    edits = checkout_diff_sha256(changed)
    assert _code_version_of(_wheel(changed, tmp_path / "w1"), tmp_path / "u1")[1] == head + "-dirty"
    # which uncommitted changes, as a checkout's records say (environment.code_diff_sha256): a -dirty wheel said
    # none, so two wheels of one commit with other edits could not be told apart
    assert len(edits) == 64 and _code_version_of.diff == edits
    shutil.rmtree(changed / ".git")  # a plain copy of the files: no commit to state, and none invented
    assert _code_version_of(_wheel(changed, tmp_path / "w2"), tmp_path / "u2") == (provenance.package_version(),
                                                                                    "None")


def test_a_wheel_built_from_an_sdist_keeps_the_checkout_commit(checkout, tmp_path):
    """An unpacked sdist is no checkout: the commit comes from the _build_info.py the sdist carries."""
    clone, head = checkout
    _run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "sdist")], clone)
    (archive,) = (tmp_path / "sdist").glob("neurozoo-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (source,) = (tmp_path / "unpacked").iterdir()
    assert _code_version_of(_wheel(source, tmp_path / "whl"), tmp_path / "unzipped")[1] == head
