"""Data registry: sha256-pinned files, import into the cache, verify, and `zoo data` commands."""
import argparse
import hashlib
import os
import re
import shutil

import pytest

from neurozoo.datasets import catalog
from neurozoo.datasets.cache import building, cache_dir, read_manifest, verify_folder
from neurozoo.datasets.catalog import CatalogEntry, DataFile
from neurozoo.datasets.cli import add_commands
from neurozoo.datasets.errors import DataError


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A catalog entry of two files in a private source folder and a private cache."""
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "source"
    (source / "toy").mkdir(parents=True)
    files = []
    for name, content in (("a.bin", b"alpha" * 100), ("b.txt", b"beta\n")):
        (source / "toy" / name).write_bytes(content)
        files.append(DataFile(f"toy/{name}", hashlib.sha256(content).hexdigest(), len(content)))
    monkeypatch.setitem(catalog.CATALOG, "toy.set", CatalogEntry("toy.set", tuple(files), "toy files"))
    return source


def zoo_data(*argv):
    parser = argparse.ArgumentParser(prog="zoo")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", *argv])
    return args.handler(args)


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("NEUROZOO_CACHE")
    assert cache_dir() == cache_dir().home() / ".cache" / "neurozoo"


def test_import_from_a_file_or_a_missing_folder_says_which(toy, tmp_path):
    """`zoo data import NAME --from data.zip` (a file) said the source folder "does not exist"."""
    (tmp_path / "data.zip").write_bytes(b"PK")
    for source, state in ((tmp_path / "data.zip", "is a file, not a folder"), (tmp_path / "gone", "does not exist")):
        with pytest.raises(DataError) as raised:
            zoo_data("import", "toy.set", "--from", str(source))
        assert str(raised.value) == (f"{source}: source folder for 'toy.set' {state} (give --from DIR or set "
                                     "NEUROZOO_SHARED_DATA)")
    assert not (cache_dir() / "data").exists()


def test_import_copies_verified_files(toy, capsys):
    assert zoo_data("import", "toy.set", "--from", str(toy)) == 0
    cached = catalog.cached_path(catalog.get("toy.set").files[0])
    assert cached == cache_dir() / "data" / "toy" / "a.bin" and not cached.is_symlink()
    assert cached.read_bytes() == b"alpha" * 100
    assert catalog.status("toy.set") == {"toy/a.bin": "ok", "toy/b.txt": "ok"}
    assert zoo_data("verify", "toy.set") == 0
    assert "ok       toy.set (2 of 2 files)" in capsys.readouterr().out


def test_import_says_per_file_whether_it_was_imported_or_already_present(toy, capsys):
    """`zoo data import` said only "2 file(s) verified", whether it had copied them or found them cached already: each
    file's line now says which (and from where), its sha256 verified either way, and the last line counts them."""
    data = catalog.data_dir()
    assert zoo_data("import", "toy.set", "--from", str(toy)) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"toy.set: toy/a.bin: imported (copied from {toy / 'toy' / 'a.bin'}), sha256 verified",
        f"toy.set: toy/b.txt: imported (copied from {toy / 'toy' / 'b.txt'}), sha256 verified",
        f"toy.set: 2 files verified in {data} (2 imported)"]

    (data / "toy" / "b.txt").unlink()
    assert zoo_data("import", "toy.set", "--from", str(toy), "--link") == 0
    assert capsys.readouterr().out.splitlines() == [
        "toy.set: toy/a.bin: already present, sha256 verified (--force replaces it)",
        f"toy.set: toy/b.txt: imported (linked to {(toy / 'toy' / 'b.txt').resolve()}), sha256 verified",
        f"toy.set: 2 files verified in {data} (1 imported, 1 already present)"]

    assert zoo_data("import", "toy.set", "--from", str(toy), "--force") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"toy.set: toy/a.bin: replaced (copied from {toy / 'toy' / 'a.bin'}), sha256 verified"
    assert lines[2] == f"toy.set: 2 files verified in {data} (2 replaced)"

    (toy / "toy" / "b.txt").write_bytes(b"BETA\n")  # a failure after the first file: nothing is done, nothing said
    (data / "toy" / "b.txt").unlink()
    with pytest.raises(DataError, match=r"b\.txt: sha256 [0-9a-f]{64} does not match .*; nothing was imported$"):
        zoo_data("import", "toy.set", "--from", str(toy))
    assert capsys.readouterr().out == ""


def test_verify_of_an_empty_cache_says_so(toy, capsys):
    """On a fresh machine `zoo data verify` printed nothing and exited 0: silence read as "everything verified"."""
    assert zoo_data("verify") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"nothing to verify in {cache_dir()}: no catalog file imported") and len(out.splitlines()) == 1
    catalog.import_files("toy.set", toy)
    assert zoo_data("verify") == 0
    assert capsys.readouterr().out == "ok       toy.set (2 of 2 files)\n"


def test_verify_names_generated_data_as_zoo_data_list_does(toy, capsys):
    """`zoo data verify ventral_embedded.IT` was refused as "unknown data set ... in the catalog", though `zoo data
    verify` without names checks the generated data: a generated set named is verified as the catalog's are."""
    from neurozoo.datasets.cache import generated
    from neurozoo.datasets.embedded import ventral
    from neurozoo.datasets.synthetic_retina import _embedded_path

    assert zoo_data("verify", "ventral_embedded.IT") == 1  # named, and not generated: a problem, as a missing file
    assert capsys.readouterr().out.splitlines()[0] == ("missing  ventral_embedded.IT: embedded/ventral-v5-seed0 not "
                                                       "generated yet (its first use generates it, e.g. `zoo run`)")
    with building(ventral.folder()) as tmp:  # a stand-in for the generated set: a folder with its manifest
        (tmp / "assembly.nc").write_text("responses")
    recording = _embedded_path("whitenoise", {})[0]
    with generated(recording) as tmp:
        tmp.write_bytes(b"frames")
    assert zoo_data("verify", "ventral_embedded.IT", "embedded:whitenoise") == 0
    assert capsys.readouterr().out.splitlines() == [
        "ok       ventral_embedded.IT (embedded/ventral-v5-seed0, 1 files)",
        f"ok       embedded:whitenoise (retina/{recording.name})"]
    recording.write_bytes(b"FRAMES")
    assert zoo_data("verify", "embedded:whitenoise") == 1
    assert capsys.readouterr().out.startswith(f"MISMATCH embedded:whitenoise: {recording}: sha256 ")
    # the registries' one refusal (datasets.registry.lookup): close names among the catalog's and the generated data
    with pytest.raises(DataError, match=r"^unknown data set 'ventral\.IT'; expected a catalog name or generated data; "
                       r"did you mean ventral_embedded\.IT\b.* \(known: .*embedded:naturalscene, "
                       r"embedded:oms-gratingmotion, embedded:oms-naturalscene, embedded:oms-whitenoise, "
                       r"embedded:whitenoise, .*toy\.set, ventral_embedded\.IT, ventral_embedded\.V4.*\); `zoo data verify` "
                       r"without names checks everything in the cache"):
        zoo_data("verify", "toy.set", "ventral.IT")
    assert capsys.readouterr().out == ""  # refused before any name is verified


def test_import_refuses_a_source_with_the_wrong_checksum(toy):
    (toy / "toy" / "b.txt").write_bytes(b"BETA\n")
    with pytest.raises(DataError, match=r"b\.txt: sha256 [0-9a-f]{64} does not match the expected"):
        catalog.import_files("toy.set", toy)
    assert not catalog.cached_path(catalog.get("toy.set").files[1]).exists()


def test_a_corrupted_cache_file_is_an_error_never_reused(toy, capsys):
    catalog.import_files("toy.set", toy)
    cached = catalog.cached_path(catalog.get("toy.set").files[0])
    cached.write_bytes(b"tampered")
    assert catalog.status("toy.set")["toy/a.bin"] == "MISMATCH"
    assert zoo_data("verify", "toy.set") == 1
    assert "MISMATCH toy.set:toy/a.bin" in capsys.readouterr().out
    with pytest.raises(DataError, match=r"a\.bin: sha256 .* does not match"):
        catalog.fetch("toy.set")
    with pytest.raises(DataError, match="re-import with --force"):
        catalog.import_files("toy.set", toy)
    catalog.import_files("toy.set", toy, force=True)
    assert catalog.fetch("toy.set")["a.bin"].read_bytes() == b"alpha" * 100


def test_link_mode_and_lookup_by_file_name(toy, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("a.bin", "b.txt"):
        os.link(toy / "toy" / name, flat / name)  # the files directly in the folder, without the toy/ prefix
    assert zoo_data("import", "toy.set", "--from", str(flat), "--link") == 0
    cached = catalog.cached_path(catalog.get("toy.set").files[1])
    assert cached.is_symlink() and cached.resolve() == (flat / "b.txt").resolve()


def test_fetch_imports_from_the_default_source(toy, monkeypatch):
    monkeypatch.setenv("NEUROZOO_SHARED_DATA", str(toy))
    paths = catalog.fetch("toy.set")
    assert set(paths) == {"a.bin", "b.txt"} and all(p.is_file() for p in paths.values())
    monkeypatch.setenv("NEUROZOO_SHARED_DATA", str(toy / "nowhere"))
    with pytest.raises(DataError, match="zoo data import other"):
        monkeypatch.setitem(catalog.CATALOG, "other", CatalogEntry("other", (DataFile("x/y.bin", "0" * 64, 1),)))
        catalog.fetch("other")
    with pytest.raises(DataError, match=r"^unknown data set 'nope' in the catalog \(known: .*toy\.set"):
        catalog.fetch("nope")
    with pytest.raises(DataError, match=r"^unknown data set 'toy\.se' in the catalog; did you mean toy\.set\b"):
        catalog.fetch("toy.se")  # the registries' one refusal (datasets.registry.lookup): it had no close names


def test_derived_folder_manifest_detects_changes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    folder = cache_dir() / "converted" / "toy" / "v1"
    with building(folder, {"version": 1}) as tmp:
        (tmp / "x.txt").write_text("x")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "y.txt").write_text("y")
    assert read_manifest(folder)["version"] == 1
    assert set(verify_folder(folder)) == {"x.txt", "sub/y.txt"}
    assert zoo_data("verify") == 0
    (folder / "sub" / "y.txt").write_text("z")
    with pytest.raises(DataError, match=r"y\.txt: sha256 .* differs"):
        verify_folder(folder)
    assert zoo_data("verify") == 1
    assert not list(folder.parent.glob(".v1.*"))  # no temporary folder left behind


def test_failed_build_leaves_nothing(tmp_path):
    folder = tmp_path / "derived"
    with pytest.raises(RuntimeError):
        with building(folder) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("crash")
    assert not folder.exists() and not list(tmp_path.iterdir())


def test_a_temporary_of_another_host_is_left_until_a_day_old_and_one_without_a_writer_goes_then(tmp_path):
    """The review's defects: a temporary counted as abandoned when its pid was not alive on THIS machine, so on a
    cache shared by several machines (an NFS home) one machine deleted another's half-written entry; and a temporary
    without a pid (the checkpoints' ``.tmp`` of before) was never removed. Names carry the host now
    (``.tmp-<host>-<pid>``): this host's go when their process is gone, others only once 24 h untouched."""
    import subprocess
    import sys
    import time

    from neurozoo.datasets.cache import remove_dead_temporaries, temporary_suffix

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    names = {
        "mine_dead": f"a.h5{temporary_suffix(ended.pid)}", "mine_alive": f"b.h5{temporary_suffix()}",
        # written_whole's: the writer's number in its process follows the pid
        "mine_dead_writer": f"f.h5{temporary_suffix(ended.pid)}.3", "mine_alive_writer": f"g.h5{temporary_suffix()}.3",
        "other_host_writer": f"h.h5{temporary_suffix(ended.pid, host='node-7.cluster')}.3",
        "other_host": f"c.h5{temporary_suffix(ended.pid, host='node-7.cluster')}",
        "other_host_old": f"d.h5{temporary_suffix(ended.pid, host='node-7.cluster')}",
        "pid_only": f"run.json.tmp{ended.pid}", "pid_only_old": f"e.json.tmp{ended.pid}",
        "unnamed": ".best.pth.k2j3.tmp", "unnamed_old": ".last.pth.q9z1.tmp",
    }
    day_ago = time.time() - 24 * 3600 - 60
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"half")
        if key.endswith("_old"):
            os.utime(tmp_path / name, (day_ago, day_ago))
    (tmp_path / f"folder{temporary_suffix(ended.pid)}").mkdir()  # not a temporary file: left alone
    remove_dead_temporaries(tmp_path)
    left = {key for key, name in names.items() if (tmp_path / name).exists()}
    assert left == {"mine_alive", "mine_alive_writer", "other_host", "other_host_writer", "pid_only", "unnamed"}
    assert (tmp_path / f"folder{temporary_suffix(ended.pid)}").is_dir()


def test_a_worker_name_reads_back_as_dead_only_for_an_ended_process_of_this_host(monkeypatch):
    """``worker_name`` (``<host>:<pid>``: a leaderboard job's worker, a search trial's ``worker``, the local workers of
    ``zoo search --workers K``) is what ``dead_on_this_host`` reads: a live process's name (this one's, by default) is
    not dead, an ended one's is, and the same pid on another host is not known dead. Both take the host as
    ``socket.gethostname()`` gives it, not ``host_name()``'s file-name form: with a host name that form rewrites, a
    name in that form is another host's."""
    import socket
    import subprocess
    import sys

    from neurozoo.datasets.cache import dead_on_this_host, host_name, worker_name

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert worker_name() == f"{socket.gethostname()}:{os.getpid()}" == worker_name(os.getpid())
    assert not dead_on_this_host(worker_name()) and dead_on_this_host(worker_name(ended.pid))
    assert not dead_on_this_host(f"node-7.cluster:{ended.pid}")
    monkeypatch.setattr(socket, "gethostname", lambda: "lab node:7")  # host_name(): "lab_node_7"
    assert worker_name(ended.pid) == f"lab node:7:{ended.pid}"
    assert dead_on_this_host(worker_name(ended.pid)) and not dead_on_this_host(worker_name())
    assert not dead_on_this_host(f"{host_name()}:{ended.pid}")


def _deep_tree(top, depth: int) -> None:
    """``top/d/d/.../d/f`` ``depth`` folders deep, made through file descriptors (os.makedirs recurses per level)."""
    os.mkdir(top)
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(os.open("f", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    finally:
        os.close(fd)


def test_a_dead_temporary_folder_deeper_than_the_recursion_limit_is_removed(tmp_path):
    """Python 3.11's rmtree raised RecursionError on a tree 1800 folders deep (ignore_errors notwithstanding): such a
    submission scratch folder, left in the store, made every later intake's sweep fail, for every user."""
    import subprocess
    import sys

    from neurozoo.datasets.cache import remove_dead_temporaries, remove_tree, temporary_suffix

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    depth = sys.getrecursionlimit() + 500
    dead = tmp_path / f".unpacking-x{temporary_suffix(ended.pid)}"
    try:
        _deep_tree(dead, depth)
        remove_dead_temporaries(tmp_path, ".unpacking-*", folders=True)
        assert list(tmp_path.iterdir()) == []
        _deep_tree(tmp_path / "deep", depth)
        (tmp_path / "deep" / "g").write_text("x")
        remove_tree(tmp_path / "deep")
        assert list(tmp_path.iterdir()) == []
        remove_tree(tmp_path / "missing")  # as rmtree(ignore_errors=True): nothing to remove, no error
    finally:  # a tree left in tmp_path by a failure here made pytest's own cleanup of old basetemps (rmtree) raise
        # RecursionError at the end of every later session on the host
        for left in tmp_path.iterdir():
            _remove_level_by_level(left)


def test_a_tree_deeper_than_the_open_file_limit_is_removed(tmp_path):
    """shutil.rmtree keeps a file descriptor open for each level it descends: under a soft limit of open files below
    the tree's depth (1024, systemd's default for a service, is below the recursion limit's 1000 levels plus what a
    worker holds open) it met EMFILE before any RecursionError, passed over that subtree under ignore_errors and
    returned, and remove_tree left the whole tree in place without a word (measured: a 1500-deep tree at ulimit -n
    1024 with 40 files open). It now falls back to the level-by-level removal wherever rmtree left the folder."""
    import resource

    from neurozoo.datasets.cache import remove_tree

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = len(os.listdir("/proc/self/fd")) + 200
    try:
        _deep_tree(tmp_path / "deep", 600)  # under the recursion limit: only the descriptors run out
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, soft), hard))
        try:
            remove_tree(tmp_path / "deep")
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert list(tmp_path.iterdir()) == []
    finally:
        for left in tmp_path.iterdir():
            _remove_level_by_level(left)


def test_remove_tree_leaves_a_link_and_what_it_points_to(tmp_path):
    """As shutil.rmtree, which refuses a symbolic link to a folder: the fallback must not empty the link's target."""
    from neurozoo.datasets.cache import remove_tree

    (tmp_path / "target" / "sub").mkdir(parents=True)
    (tmp_path / "target" / "sub" / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    remove_tree(tmp_path / "link")
    assert (tmp_path / "target" / "sub" / "f").read_text() == "x" and (tmp_path / "link").is_symlink()


def _remove_level_by_level(top) -> None:
    """Remove ``top`` without remove_tree (the code under test) and without recursion: the deepest folder first."""
    folders = [str(top)]
    while True:
        inner = os.path.join(folders[-1], "d")
        if not os.path.isdir(inner) or os.path.islink(inner):
            break
        folders.append(inner)
    for folder in reversed(folders):
        for entry in os.scandir(folder):
            if not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.path)
        os.rmdir(folder)


def test_list_shows_catalog_and_registry(toy, capsys):
    assert zoo_data("list") == 0
    out = capsys.readouterr().out
    assert "toy.set" in out and "2 missing" in out
    assert "zhang_desimone2011.it" in out and "ventral_embedded.IT" in out


def test_real_checksums_match_the_shared_data(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path / "cache"))
    catalog.import_files("cowley2023.v4_210325", shared_data, link=True)
    assert set(catalog.status("cowley2023.v4_210325").values()) == {"ok"}
    assert len(catalog.get("zhang_desimone2011.it").files) == 132
    catalog.import_files("allen_bo.v1_natural_scenes", shared_data, link=True)
    assert set(catalog.status("allen_bo.v1_natural_scenes").values()) == {"ok"}
    assert len(catalog.get("allen_bo.v1_natural_scenes").files) == 5


def _dead_pid():
    import subprocess
    import sys

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    return ended.pid


KILLED_BUILD = """
import os, signal, sys
from neurozoo.datasets.cache import building
with building(sys.argv[1]) as tmp:
    (tmp / "half.nc").write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_build_killed_before_its_rename_leaves_a_folder_that_the_next_build_removes(tmp_path):
    """building() made its temporary with mkdtemp (``.<name>.<random>``): a process killed while building left the
    folder for good. It is named like every other temporary now (``...tmp-<host>-<pid>``) and the next build in that
    parent removes a dead writer's; a live one's, and another host's younger than a day, stay."""
    import signal
    import subprocess
    import sys

    from neurozoo.datasets.cache import temporary_suffix

    parent = tmp_path / "converted"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(parent / "v1")], env=env)
    assert killed.returncode == -signal.SIGKILL
    [left] = parent.iterdir()
    assert left.is_dir() and left.name.startswith(".v1.") and (left / "half.nc").is_file()
    alive = parent / f".v2.a1b2c3{temporary_suffix()}"  # a build of this (live) process
    other = parent / f".v3.q9z1x8{temporary_suffix(_dead_pid(), host='node-7.cluster')}"
    alive.mkdir(), other.mkdir()
    with building(parent / "v1") as tmp:
        assert tmp.name.startswith(".v1.") and tmp.name.endswith(temporary_suffix())
        (tmp / "x.txt").write_text("x")
    assert sorted(p.name for p in parent.iterdir()) == sorted([alive.name, other.name, "v1"])
    assert set(verify_folder(parent / "v1")) == {"x.txt"}


def test_an_import_killed_while_copying_leaves_a_temporary_that_the_next_import_removes(toy, monkeypatch):
    """The import writes through datasets.json_files.written_whole: its temporary is ``temporary_path(target)``, and
    the next import removes a dead importer's of that name (and of the name of before, ``.<name>.tmp-...``)."""
    import shutil

    from neurozoo.datasets.cache import temporary_suffix
    from neurozoo.datasets.json_files import temporary_path

    target = catalog.cached_path(catalog.get("toy.set").files[0])
    target.parent.mkdir(parents=True)
    dead = _dead_pid()
    planted = [temporary_path(target, dead, writer=0), temporary_path(target, dead),
               target.with_name(f".{target.name}{temporary_suffix(dead)}")]
    for path in planted:
        path.write_bytes(b"half")
    copies = []
    real_copy = shutil.copyfile
    monkeypatch.setattr(shutil, "copyfile", lambda src, dst: copies.append(dst) or real_copy(src, dst))
    catalog.import_files("toy.set", toy)
    assert copies[0].parent == target.parent and re.fullmatch(re.escape(temporary_path(target).name) + r"\.\d+",
                                                              copies[0].name)
    assert not any(path.exists() for path in planted)
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.bin", "b.txt"]


def test_a_lock_removed_by_its_holder_is_taken_again_on_the_file_now_there(tmp_path):
    """``remove_if``: the holder removes the lock file as it releases it (a fit refused before it made its folder left
    its lock file behind). A process that was waiting on the removed file must not take that one for the lock, while a
    newcomer locks the file now at the path: it locks the file at the path too, and waits for the newcomer."""
    import fcntl
    import threading
    import time

    from neurozoo.datasets.cache import locked

    path = tmp_path / "fit.lock"
    with locked(path, remove_if=lambda: False):
        pass
    assert path.is_file()
    with locked(path, remove_if=lambda: True):
        assert path.is_file()
    assert not path.exists()

    holder = open(path, "a")
    fcntl.flock(holder, fcntl.LOCK_EX)  # the first fit, which will be refused
    entered = threading.Event()

    def waiter():
        with locked(path):
            entered.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)  # the waiter opens the file and waits on it
    path.unlink()  # the holder removes it (as remove_if does) ...
    newcomer = open(path, "a")  # ... a newcomer locks the file now at the path ...
    fcntl.flock(newcomer, fcntl.LOCK_EX)
    fcntl.flock(holder, fcntl.LOCK_UN)  # ... and the first releases the removed one
    holder.close()
    time.sleep(0.3)
    assert not entered.is_set()  # the removed file's lock is no lock: it waits for the newcomer
    fcntl.flock(newcomer, fcntl.LOCK_UN)
    newcomer.close()
    thread.join(10)
    assert entered.is_set()


def test_a_lock_held_elsewhere_says_once_why_it_waits(tmp_path, capsys):
    """A second zoo worker waiting minutes for another's retina fit said nothing: the lock now says why it waits."""
    import fcntl
    import threading
    import time

    from neurozoo.datasets.cache import locked

    path = tmp_path / "fit.lock"
    with locked(path, waiting="waiting for the fit"):  # free: no word
        pass
    assert capsys.readouterr().err == ""
    holder = open(path, "a")
    fcntl.flock(holder, fcntl.LOCK_EX)
    entered = threading.Event()

    def waiter():
        with locked(path, waiting="waiting for the fit"):
            entered.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    # the holder is released only once the waiter has said it waits: after a fixed sleep, a waiter thread not yet
    # scheduled on a loaded machine found the lock free and (rightly) said nothing
    err, deadline = "", time.monotonic() + 60
    while not err.endswith("\n") and time.monotonic() < deadline:
        time.sleep(0.01)
        err += capsys.readouterr().err
    assert err == "waiting for the fit\n" and not entered.is_set()  # it waits for the holder
    fcntl.flock(holder, fcntl.LOCK_UN)
    holder.close()
    thread.join(10)
    assert entered.is_set() and capsys.readouterr().err == ""  # said once


def test_a_lock_held_elsewhere_says_why_it_waits_in_one_write(tmp_path, monkeypatch):
    """On an unbuffered stderr (PYTHONUNBUFFERED) print wrote the waiting line's text and its newline in two writes: a
    Ctrl-C between them (zoo fit waiting for another fit's folder) ran zoo's interruption line on into the waiting
    line, and the test of that stop failed now and then on a loaded machine. The line is one write now."""
    import fcntl
    import sys

    from neurozoo.datasets.cache import locked

    path = tmp_path / "fit.lock"
    holder = open(path, "a")
    fcntl.flock(holder, fcntl.LOCK_EX)
    writes = []

    class Unbuffered:  # each write a write(2) of its own; the first one frees the lock, so the wait ends at once
        def write(self, text):
            writes.append(text)
            fcntl.flock(holder, fcntl.LOCK_UN)
            return len(text)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stderr", Unbuffered())
    with locked(path, waiting="waiting for the fit"):
        pass
    holder.close()
    assert writes == ["waiting for the fit\n"]


def test_a_folder_without_its_manifest_is_named_with_its_remedy(tmp_path, monkeypatch, capsys):
    """A derived folder left without manifest.json (a copy of the cache cut short, the manifest deleted) was rebuilt
    beside it and the rename failed with OSError "Directory not empty" on every later load, naming a temporary; and
    `zoo data verify`, which checks the manifests it finds, passed it over."""
    monkeypatch.setenv("NEUROZOO_CACHE", str(tmp_path))
    folder = tmp_path / "converted" / "toy" / "v1"
    folder.mkdir(parents=True)
    (folder / "assembly.nc").write_text("half a copy")
    with pytest.raises(DataError, match=re.escape(f"{folder}: exists without manifest.json") + r".*delete "
                       + re.escape(str(folder)) + " to rebuild it"):
        with building(folder) as tmp:
            (tmp / "assembly.nc").write_text("whole")
    assert (folder / "assembly.nc").read_text() == "half a copy" and not list(folder.parent.glob(".v1.*"))
    (tmp_path / "embedded" / ".ventral.x.tmp-host-1").mkdir(parents=True)  # a build's temporary: not reported
    capsys.readouterr()
    assert zoo_data("verify") == 1
    assert capsys.readouterr().out.splitlines()[0] == f"MISMATCH {folder}: no manifest.json, so no finished build (a " \
        "copy of the cache cut short, or its manifest deleted); its loader refuses it: delete it to rebuild it"
    shutil.rmtree(folder)
    with building(folder) as tmp:
        (tmp / "assembly.nc").write_text("whole")
    assert set(verify_folder(folder)) == {"assembly.nc"}
    assert zoo_data("verify") == 0


def test_a_forced_import_from_the_cache_itself_keeps_the_data(toy, capsys):
    """`zoo data import NAME --from $NEUROZOO_CACHE/data --link --force` replaced each cached file with a symlink to
    its own path: the data were gone (a symlink loop), and the command ended in a RuntimeError traceback."""
    assert zoo_data("import", "toy.set", "--from", str(toy)) == 0
    data = catalog.data_dir()
    capsys.readouterr()
    for link in (("--link",), ()):
        assert zoo_data("import", "toy.set", "--from", str(data), "--force", *link) == 0
        cached = catalog.cached_path(catalog.get("toy.set").files[0])
        assert not cached.is_symlink() and cached.read_bytes() == b"alpha" * 100
        assert catalog.status("toy.set") == {"toy/a.bin": "ok", "toy/b.txt": "ok"}
        assert capsys.readouterr().out.splitlines()[0] == (
            f"toy.set: toy/a.bin: already present, sha256 verified: the source {data / 'toy' / 'a.bin'} is the cached "
            "file itself")


def test_an_import_that_fails_or_is_interrupted_halfway_leaves_nothing_in_the_cache(toy, monkeypatch):
    """The files before a corrupt or missing one, or before a Ctrl-C, stayed imported: the data set half in the cache
    (`zoo data list`: '1 missing'). Every source is verified before any file is written, and the copies are renamed into
    place together."""
    files = catalog.get("toy.set").files
    (toy / "toy" / "b.txt").write_bytes(b"BETA\n")
    with pytest.raises(DataError, match=r"b\.txt: sha256 [0-9a-f]{64} does not match the expected .*; nothing was imported$"):
        catalog.import_files("toy.set", toy)
    (toy / "toy" / "b.txt").unlink()
    with pytest.raises(DataError, match=r"no file toy/b\.txt \(or b\.txt\) for data set 'toy\.set'; nothing was imported$"):
        catalog.import_files("toy.set", toy)
    assert not catalog.data_dir().exists() or not any(p.is_file() for p in catalog.data_dir().rglob("*"))
    (toy / "toy" / "b.txt").write_bytes(b"beta\n")
    copies, real_copy = [], shutil.copyfile

    def interrupted(src, dst):  # Ctrl-C while the second file is copied
        copies.append(dst)
        if len(copies) == 2:
            raise KeyboardInterrupt
        return real_copy(src, dst)

    monkeypatch.setattr(shutil, "copyfile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        catalog.import_files("toy.set", toy)
    assert len(copies) == 2 and sorted(p.name for p in catalog.data_dir().rglob("*") if p.is_file()) == []
    assert catalog.status("toy.set") == {"toy/a.bin": "missing", "toy/b.txt": "missing"}
    monkeypatch.setattr(shutil, "copyfile", real_copy)
    assert catalog.import_files("toy.set", toy) == [catalog.cached_path(f) for f in files]
    assert catalog.status("toy.set") == {"toy/a.bin": "ok", "toy/b.txt": "ok"}
