"""datasets.json_files: strict JSON for the files people and programs read."""
import json

import numpy as np
import pytest

from processes import live_waiting, run_killed
from neurozoo.datasets.json_files import json_safe, write_json


def strict(text):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_write_json_writes_nan_and_infinity_as_null_and_numpy_as_numbers(tmp_path):
    path = write_json(tmp_path / "s.json", {"median": np.float32("nan"), "r": np.array([0.5, np.inf]), "n": np.int64(3),
                                            "ok": np.bool_(True), "pair": (1, float("-inf")), "where": tmp_path})
    assert strict(path.read_text()) == {"median": None, "r": [0.5, None], "n": 3, "ok": True, "pair": [1, None],
                                        "where": str(tmp_path)}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temporary file left


def test_json_safe_keeps_plain_values_and_names_other_objects():
    assert json_safe({"a": [1, "x", None, 2.5]}) == {"a": [1, "x", None, 2.5]}
    assert json_safe({1: object}) == {"1": repr(object)}
    with pytest.raises(ValueError):
        strict('{"a": NaN}')


def test_save_figure_killed_mid_write_leaves_the_previous_figure_whole(tmp_path, monkeypatch):
    """A process killed while the PNG was being written had left a half-written figure as the final one."""
    from matplotlib.figure import Figure

    from neurozoo.datasets.figures import save_figure

    path = save_figure(Figure(figsize=(2, 2)), tmp_path / "fit.png")
    whole = path.read_bytes()
    assert whole[:4] == b"\x89PNG"

    def dies_mid_write(self, target, **kwargs):
        with open(target, "wb") as handle:
            handle.write(whole[:20])
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(Figure, "savefig", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_figure(Figure(figsize=(2, 2)), path)
    assert path.read_bytes() == whole and [p.name for p in tmp_path.iterdir()] == ["fit.png"]


def test_fsync_flushes_the_data_before_the_rename_and_the_rename_before_the_return(tmp_path, monkeypatch):
    """The one atomic writer now serves the checkpoints, which were flushed to disk before their rename (a power cut
    could otherwise leave the new name on an empty file): ``fsync=True`` flushes the file, then its folder."""
    import os

    from neurozoo.convrnn.training.checkpoint import save_checkpoint
    from neurozoo.datasets.json_files import write_atomic

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.fstat(fd).st_ino)) or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(("replace", os.stat(a).st_ino)) or real_replace(a, b))
    path = write_atomic(tmp_path / "a.json", "{}", fsync=True)
    file, folder = path.stat().st_ino, tmp_path.stat().st_ino
    assert events == [("fsync", file), ("replace", file), ("fsync", folder)] and path.read_text() == "{}"
    events.clear()
    write_atomic(tmp_path / "b.json", "{}")
    assert [kind for kind, _ in events] == ["replace"]
    events.clear()
    checkpoint = save_checkpoint({"model": {}, "epoch": 0, "global_step": 0}, tmp_path / "last.pth")
    assert events == [("fsync", checkpoint.stat().st_ino), ("replace", checkpoint.stat().st_ino), ("fsync", folder)]
    assert not list(tmp_path.glob("last.pth.tmp*"))


def test_the_host_secret_is_flushed_before_it_is_linked_into_place_and_its_folder_after(tmp_path, monkeypatch):
    """secret.key keys the hidden split of every stored leaderboard score and the activation cache's digests; it was
    linked into place unflushed, so a power cut after its first use could leave it empty (refused: "too short") or
    missing, and the key made next differs from the one the stored scores were split by."""
    import os

    from neurozoo.benchmarks.extraction.cache import server_secret

    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / "home"))
    events = []
    real_fsync, real_link = os.fsync, os.link
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.fstat(fd).st_ino)) or real_fsync(fd))
    monkeypatch.setattr(os, "link", lambda a, b: events.append(("link", os.stat(a).st_ino)) or real_link(a, b))
    secret = server_secret()
    path = tmp_path / "home" / "secret.key"
    assert len(secret) == 64 and path.read_bytes() == secret
    assert events == [("fsync", path.stat().st_ino), ("link", path.stat().st_ino), ("fsync", path.parent.stat().st_ino)]
    events.clear()
    assert server_secret() == secret and events == []  # read, not made again
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]


# a first use of the host's secret, its key written to its temporary: it says so, then is killed (SIGKILL) or waits
# for a line on stdin and goes on
SECRET_BEING_WRITTEN = """
import os, signal, sys
fsync = os.fsync
def flushing(fd):
    print("writing", flush=True)
    if sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.readline()
    fsync(fd)
os.fsync = flushing
from neurozoo.benchmarks.extraction.cache import server_secret
server_secret()
"""


def test_the_temporary_of_a_secret_killed_while_written_is_removed_by_the_next_use_and_a_live_ones_kept(
        tmp_path, monkeypatch):
    """A process killed (SIGKILL) while it wrote the host's first secret left its temporary (``.secret.*``, the key
    itself) beside secret.key for good. Named with its host and pid now, it is removed by the next process to use
    the secret; that of a process writing the key at the same time is kept (it unlinks it itself)."""
    import os
    import sys

    from neurozoo.benchmarks.extraction.cache import server_secret

    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "NEUROZOO_HOME": str(home)}
    command = [sys.executable, "-c", SECRET_BEING_WRITTEN]
    assert run_killed(command, env) == "writing\n"
    [dead] = home.iterdir()
    assert dead.name.startswith(".secret.") and len(dead.read_text()) == 64
    with live_waiting(command, env) as live:
        assert live.stdout.readline() == "writing\n"
        [kept] = set(home.iterdir()) - {dead}
        monkeypatch.setenv("NEUROZOO_HOME", str(home))
        secret = server_secret()  # the next use
        assert sorted(home.iterdir()) == sorted([kept, home / "secret.key"])
    assert list(home.iterdir()) == [home / "secret.key"]
    assert (home / "secret.key").read_bytes() == secret  # the live one's key lost the race: not linked over it


def test_two_threads_writing_one_file_each_publish_their_whole_content(tmp_path):
    """The temporary was named by host and pid alone: two threads of one process writing the same file shared it, so
    one could publish a mix of both writes (or find it renamed away by the other). Each writer has its own now."""
    import threading
    import time

    from neurozoo.datasets.json_files import written_whole

    path = tmp_path / "summary.json"
    contents = {name: [name * 4000 + str(i) for i in range(100)] for name in "ab"}
    barrier, errors, seen = threading.Barrier(2), [], set()

    def write(name):
        try:
            barrier.wait(10)
            for content in contents[name]:
                with written_whole(path) as tmp:
                    with open(tmp, "w") as handle:
                        for start in range(0, len(content), 1000):  # in pieces, yielding to the other writer
                            handle.write(content[start:start + 1000])
                            handle.flush()
                            time.sleep(0)
                seen.add(path.read_text())
        except Exception as error:  # noqa: BLE001 -- reported below
            errors.append(repr(error))

    writers = [threading.Thread(target=write, args=(name,)) for name in "ab"]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(30)
    assert errors == []
    assert seen and seen <= set(contents["a"]) | set(contents["b"])  # always one writer's whole content
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
