"""benchmarks/perf's scripts make their temporary folders as every command does (``datasets.cache.owned_temporary_folder``):
named with their host and pid, so that a run killed with SIGKILL leaves nothing for good. They were plain
``tempfile`` folders (leaderboard_load's never removed at all): a killed run's data, homes and checkpoints stayed."""
import ast
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parents[1] / "benchmarks" / "perf"


class Reached(Exception):
    """Raised by the patched step that runs in the script's temporary folder: the benchmark itself is not run."""


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_no_perf_script_makes_a_plain_temporary_folder():
    plain = []
    for script in sorted(PERF.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "tempfile"
                    and node.attr in ("mkdtemp", "TemporaryDirectory")):
                plain.append(f"{script.name}:{node.lineno} tempfile.{node.attr}")
    assert plain == []


def _leaderboard_report(monkeypatch, reached):
    module = importlib.import_module("neurozoo.benchmarks.perf.leaderboard_report")
    monkeypatch.setattr(module, "timed", lambda db, folder: reached())
    monkeypatch.setattr(sys, "argv", ["leaderboard_report.py", "--models", "1"])
    module.main()


def _leaderboard_load(monkeypatch, reached):
    module = importlib.import_module("neurozoo.benchmarks.perf.leaderboard_load")
    monkeypatch.setattr(module, "plugin_environment", lambda scratch: reached())
    module.main([])


def _metric_speed(monkeypatch, reached):
    module = importlib.import_module("neurozoo.benchmarks.perf.metric_speed")
    monkeypatch.setattr(module, "scaling", lambda args, folder, env: reached())
    module.main(["--no-compare", "--scaling"])


def _train_command_speed(monkeypatch, reached):
    module = importlib.import_module("neurozoo.benchmarks.perf.train_command_speed")
    monkeypatch.setattr("neurozoo.convrnn.training.synthetic.write_image_folder", lambda *a, **k: reached())
    module.main(["--steps", "2", "--log-every", "1", "--device", "cpu"])


def _retina_fit_speed(monkeypatch, reached):
    module = importlib.import_module("neurozoo.benchmarks.perf.retina_fit_speed")
    monkeypatch.setattr(module.subprocess, "run", lambda *a, **k: reached())
    module.fit_to_convergence()


@pytest.mark.parametrize("prefix, run", [
    ("neurozoo-report-perf-", _leaderboard_report), ("neurozoo-load-", _leaderboard_load),
    ("neurozoo-metric-speed-", _metric_speed), ("neurozoo-train-speed-", _train_command_speed),
    ("neurozoo-fit-speed-", _retina_fit_speed),
])
def test_a_perf_scripts_temporary_is_owned_and_a_killed_runs_is_removed_by_the_next(prefix, run, monkeypatch,
                                                                                     tmp_path):
    """Each script up to the step that runs in its temporary folder (the benchmark is not run): the folder is named
    with this process's host and pid, a dead owner's one of the same prefix is gone by then, a live other process's
    stays, and the script's own is removed when it stops."""
    from neurozoo.datasets.cache import temporary_suffix

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    killed = tmp_path / f"{prefix}old{temporary_suffix(_dead_pid())}"
    (killed / "data").mkdir(parents=True)
    (killed / "data" / "images.npy").write_bytes(b"\0" * 1024)
    live = tmp_path / f"{prefix}live{temporary_suffix(1)}"  # pid 1: a live process's (init), never removed
    live.mkdir()
    seen = []

    def reached():
        seen.extend(sorted(p.name for p in tmp_path.iterdir()))
        raise Reached

    with pytest.raises(Reached):
        run(monkeypatch, reached)
    [own] = [name for name in seen if name != live.name]
    assert own.startswith(prefix) and own.endswith(temporary_suffix())
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]  # the killed run's and its own removed
