"""The packages import each other only downwards (../shared/DESIGN.md, "Direction of imports"; README, "How the
packages depend on each other"): datasets at the bottom, convrnn and retina on it, benchmarks above them, the
leaderboard on top. The command layer (each package's ``cli`` modules, which `zoo` collects) may reach sideways to
share an option or to store a record; the exceptions below are the only other ones, each with its reason."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("datasets", "convrnn", "retina", "benchmarks", "leaderboard")
BELOW = {"datasets": set(), "convrnn": {"datasets"}, "retina": {"datasets"},
         "benchmarks": {"datasets"}, "leaderboard": {"datasets", "convrnn", "retina", "benchmarks"}}
# The model packages' registries (``convrnn.MODELS``, ``retina.MODELS`` and their ``create_model``, the packages' top
# level): DESIGN.md lets the benchmarks reach models "only through the registries".
REGISTRIES = {"benchmarks": {"neurozoo.convrnn", "neurozoo.retina"}}
# Library modules (not the command layer) that import above or beside their layer, and why:
EXCEPTIONS = {
    # the retina benchmarks score phenomena measured by the retina package's own analyses and fits (the science of
    # a phenomenon lives with the retina models, which know nothing of benchmarks); benchmarks wraps them as
    # scored benchmarks with ceilings and records, as it wraps the metrics
    ("benchmarks", "neurozoo.retina.benchmark"),
    ("benchmarks", "neurozoo.retina.embedded_fit"),
    ("benchmarks", "neurozoo.retina.fit"),
    ("benchmarks", "neurozoo.retina.mechanism"),
    ("benchmarks", "neurozoo.retina.phenomena.osr"),
    ("benchmarks", "neurozoo.retina.phenomena.adaptation"),
    ("benchmarks", "neurozoo.retina.phenomena.analyses"),
    # zoo score's safe point between a phenomenon's probe stimuli: the probed system wrapped as those analyses see it
    ("benchmarks", "neurozoo.retina.phenomena.responder"),
    # imagenet.val scores exactly what zoo train's validation scores (the same folder reader and class index, the
    # same evaluation transform, the one evaluation loop), so that a checkpoint scores the val_top1 it logged; its
    # data checksum is the file-list checksum of zoo train's run.json
    ("benchmarks", "neurozoo.convrnn.training.evaluation"),
    ("benchmarks", "neurozoo.convrnn.training.file_checksums"),
    ("benchmarks", "neurozoo.convrnn.training.loss"),
    ("benchmarks", "neurozoo.convrnn.training.imagefolder"),
    ("benchmarks", "neurozoo.convrnn.training.transforms"),
}


def _is_command_layer(path: Path) -> bool:
    return path.name == "cli.py" or path.name.endswith("_cli.py")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "neurozoo":
            yield from ((node.lineno, f"neurozoo.{alias.name}") for alias in node.names)  # from neurozoo import convrnn
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _crossings():
    """(file:line, importing package, imported module) for every import of another of our packages."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "perf" in path.relative_to(ROOT).parts:  # measurement scripts run from a checkout, not the library
                continue
            for line, module in _imports(path):
                parts = module.split(".")
                if parts[0] == "neurozoo" and len(parts) > 1 and parts[1] in PACKAGES and parts[1] != package:
                    yield f"{path.relative_to(ROOT)}:{line}", package, module, path


def test_library_modules_import_only_downwards():
    wrong = [f"{where}: {module}" for where, package, module, path in _crossings()
             if not _is_command_layer(path) and module.split(".")[1] not in BELOW[package]
             and (package, module) not in EXCEPTIONS and module not in REGISTRIES.get(package, ())]
    assert not wrong, "imports against the direction of ../shared/DESIGN.md:\n" + "\n".join(wrong)


def test_nothing_but_the_leaderboard_imports_the_leaderboard():
    wrong = [f"{where}: {module}" for where, package, module, path in _crossings()
             if module.split(".")[1] == "leaderboard"]
    assert not wrong, "the leaderboard is the top layer:\n" + "\n".join(wrong)


def test_every_exception_is_still_needed():
    used = {(package, module) for _, package, module, _ in _crossings()}
    assert EXCEPTIONS <= used, f"exceptions no module needs any more: {sorted(EXCEPTIONS - used)}"


def test_the_scan_sees_a_wrong_import(tmp_path, monkeypatch):
    """The check itself: a datasets module importing convrnn is reported."""
    bad = tmp_path / "datasets" / "bad.py"
    bad.parent.mkdir()
    bad.write_text("def f():\n    from neurozoo.convrnn.fast import make_fast\n    from neurozoo import retina\n")
    for package in PACKAGES[1:]:
        (tmp_path / package).mkdir()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert [(w, p, m) for w, p, m, _ in _crossings()] == [("datasets/bad.py:2", "datasets", "neurozoo.convrnn.fast"),
                                                          ("datasets/bad.py:3", "datasets", "neurozoo.retina")]
