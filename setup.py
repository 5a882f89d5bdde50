"""Installs the repository's top-level folders under one import namespace, ``neurozoo``.

The folders stay where they are (``convrnn/``, ``retina/``, ...); ``package_dir`` maps each onto
``neurozoo.<folder>``, so nothing is installed as a top-level ``datasets`` or ``benchmarks`` (which
would shadow Hugging Face's ``datasets``). ``neurozoo`` itself is an implicit namespace package, so
third-party plugins may add ``neurozoo.*`` packages of their own. Metadata lives in setup.cfg.

A wheel or sdist built from a git checkout carries the commit in a generated ``neurozoo/datasets/_build_info.py``
(git-ignored), so scores made with an installed copy still name the code they came from.
"""
import importlib.util
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

FOLDERS = ("convrnn", "retina", "benchmarks", "datasets", "leaderboard")
ROOT = Path(__file__).resolve().parent
BUILD_INFO = Path("datasets") / "_build_info.py"


def _git_checkout():
    """datasets/git_checkout.py loaded by path: the suite itself is not importable while it is being built."""
    spec = importlib.util.spec_from_file_location("_neurozoo_git_checkout", ROOT / "datasets" / "git_checkout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_build_info(target: Path, commit, diff=None) -> None:
    """Writes the checkout's ``commit`` (:func:`_checkout_commit`) and ``diff``, the sha256 of a ``-dirty`` one's
    uncommitted changes (:func:`_checkout_diff`); outside a checkout (building from an unpacked sdist) the file the
    sdist carries, or None when there is none (never a stale one left in build/ by an earlier build)."""
    git = _git_checkout()
    carried = ROOT / BUILD_INFO
    text = git.build_info_source(commit, diff) if commit or not carried.exists() else carried.read_text()
    if target.exists():  # may be a hard link to the source copy (sdist): replace, never write through it
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def _checkout_commit():
    return _git_checkout().checkout_commit(ROOT)


def _checkout_diff(commit):
    """sha256 of the uncommitted changes of a ``-dirty`` checkout (None otherwise): two dirty builds of one commit
    differ in it when their edits do."""
    return _git_checkout().checkout_diff_sha256(ROOT) if commit and commit.endswith("-dirty") else None


class BuildPyWithCommit(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:  # an editable install reads the live checkout instead
            commit = _checkout_commit()
            _write_build_info(Path(self.build_lib) / "neurozoo" / BUILD_INFO, commit, _checkout_diff(commit))


class SdistWithCommit(sdist):
    def make_release_tree(self, base_dir, files):
        commit = _checkout_commit()  # before the release tree, an untracked folder in the checkout, makes it -dirty
        diff = _checkout_diff(commit)  # and before it is counted among the untracked files
        super().make_release_tree(base_dir, files)
        _write_build_info(Path(base_dir) / BUILD_INFO, commit, diff)


packages = [f"neurozoo.{package}" for folder in FOLDERS
            for package in find_packages(include=[folder, f"{folder}.*"])]

setup(packages=packages, package_dir={f"neurozoo.{folder}": folder for folder in FOLDERS},
      cmdclass={"build_py": BuildPyWithCommit, "sdist": SdistWithCommit})
