"""One `neurozoo` import namespace: the wheel installs nothing top-level but `neurozoo`, holds every package
folder and data file of the repository, and no code imports the folders by their bare names (which would
shadow, or be shadowed by, Hugging Face's `datasets`). The install beside Hugging Face's `datasets` in a
fresh environment is checked by .ci/namespace_check."""
import ast
import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("convrnn", "retina", "benchmarks", "datasets", "leaderboard")


def _python_files():
    for folder in (*FOLDERS, "tests"):
        yield from (REPO / folder).rglob("*.py")


def _bare_module(name: str) -> bool:
    return name.split(".")[0] in FOLDERS


def test_no_code_imports_a_folder_by_its_bare_name():
    offenders = []
    for path in _python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and node.value.count(".") >= 1 and " " not in node.value and node.value.islower()
                  and node.value.split(".")[0] in FOLDERS and node.value.split(".")[1].isidentifier()
                  and not node.value.endswith((".py", ".yaml", ".json", ".h5", ".nc"))):
                names = [node.value]  # module names in strings: import_module, `python -m`, registries
            offenders += [f"{path.relative_to(REPO)}:{node.lineno}: {name}" for name in names if _bare_module(name)]
    assert not offenders, "bare top-level imports (use neurozoo.<package>):\n" + "\n".join(offenders)


def test_entry_point_and_plugin_groups_use_the_namespace():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    scripts = config["options.entry_points"]["console_scripts"]
    assert "zoo = neurozoo.leaderboard.cli:main" in scripts


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel, built without network from a copy of the tracked files (no build/ left in the checkout)."""
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    for name in ("setup.py", "tests/test_namespace.py"):  # also before they are committed
        shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(source)], check=True, capture_output=True)
    (path,) = out.glob("neurozoo-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_installs_only_the_namespace(wheel):
    top_level = {name.split("/")[0] for name in wheel.namelist()}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"neurozoo"}
    assert "neurozoo/__init__.py" not in wheel.namelist()  # implicit namespace: plugins may add neurozoo.*


def test_wheel_holds_every_package_and_data_file(wheel):
    names = set(wheel.namelist())
    for folder in FOLDERS:
        for init in (REPO / folder).rglob("__init__.py"):
            assert f"neurozoo/{init.relative_to(REPO).as_posix()}" in names
    for data in ("convrnn/specs/*.yaml", "convrnn/search/spaces/*.yaml", "leaderboard/templates/*.html",
                 "leaderboard/static/*"):
        files = list(REPO.glob(data))
        assert files, data
        for path in files:
            assert f"neurozoo/{path.relative_to(REPO).as_posix()}" in names
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "zoo = neurozoo.leaderboard.cli:main" in wheel.read(entry_points).decode()
