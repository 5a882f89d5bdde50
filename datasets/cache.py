"""The local data cache: where imported, converted and generated data live, and how they are pinned.

``$NEUROZOO_CACHE`` (default ``~/.cache/neurozoo``) holds

- ``data/<path>``: raw files imported from a local source (``zoo data import``), pinned by sha256;
- ``converted/<name>/<key>/`` and ``embedded/<key>/``: derived folders written once, with a
  ``manifest.json`` listing the sha256 of every file in them.

Every read re-hashes: a mismatch raises ``DataError``; a cached file is never silently re-used.
Derived folders are written into a temporary sibling and renamed into place, so a crashed or
concurrent writer never leaves a half-written folder behind.
"""
from __future__ import annotations

import functools
import glob
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple, Union

from neurozoo.datasets.errors import DataError
from neurozoo.datasets.json_files import write_atomic, written_whole
from neurozoo.datasets.provenance import sha256_file

MANIFEST = "manifest.json"
#: A manifest key: the folder's files are generated one at a time, each on its first use (the embedded retina
#: recordings), and the manifest grows by :func:`generated`; a listed file that is gone is not an error (it is
#: generated again on its next use), one that differs is.
MADE_ON_USE = "made_on_use"


def cache_dir() -> Path:
    return Path(os.environ.get("NEUROZOO_CACHE") or Path.home() / ".cache" / "neurozoo").expanduser()


def process_alive(pid: int) -> bool:
    """Whether a process of this host with ``pid`` exists (one of another user counts): its temporary files or
    leases are still its own."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _worker_host() -> str:
    """The host part of :func:`worker_name`, as :func:`dead_on_this_host` compares it: ``socket.gethostname()`` as it
    is, not :func:`host_name`'s file-name form (a name with other characters would not match itself)."""
    return socket.gethostname()


def worker_name(pid: Optional[int] = None) -> str:
    """``<host>:<pid>``, this process's unless ``pid`` is given: the name of a leaderboard job's worker and of a search
    trial's (its ``worker`` user attribute, and the local workers of ``zoo search --workers K``), which
    :func:`dead_on_this_host` reads back."""
    return f"{_worker_host()}:{os.getpid() if pid is None else pid}"


def dead_on_this_host(worker: str) -> bool:
    """Whether ``worker``, named ``<host>:<pid>`` (:func:`worker_name`: a leaderboard job's worker, a search trial's),
    is a process of this host that no longer exists. Another host's, or a name of another form, is not known dead: it
    waits for its lease or heartbeat."""
    name, _, pid = (worker or "").rpartition(":")
    return name == _worker_host() and pid.isdigit() and not process_alive(int(pid))


#: How long a temporary whose writer this host cannot check (another host's, or one named before the host was) stays
#: untouched before it counts as abandoned: far longer than any write, which keeps touching its file.
TEMPORARY_MAX_AGE_S = 24 * 3600


def host_name() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"


def temporary_suffix(pid: Optional[int] = None, host: Optional[str] = None) -> str:
    """``.tmp-<host>-<pid>``: ends the name of a file being written (this process's unless given), so that
    :func:`remove_dead_temporaries` can tell whose it is."""
    return f".tmp-{host or host_name()}-{os.getpid() if pid is None else pid}"


def remove_tree(folder: Path) -> None:
    """``shutil.rmtree(folder, ignore_errors=True)``, also for a tree deeper than Python's recursion limit, where
    Python 3.11's rmtree raises ``RecursionError`` whatever ``ignore_errors`` says: a submission's archive of files
    1800 folders deep, left in the store as a scratch folder, made every later intake's sweep of dead scratch folders
    fail, for every user (the intake now refuses such files, ``leaderboard.submission.MAX_DEPTH``; a store may
    still hold one). Such a tree is taken apart level by level: each folder's subfolders are moved up to ``folder``
    itself, so no path grows long and nothing recurses. So is one that rmtree returned from without removing: it holds a
    file descriptor open per level, and under a soft limit of open files below the depth (1024, systemd's default for a
    service) it met EMFILE before the recursion limit and passed over the rest, silently under ``ignore_errors``. A
    symbolic link is left, as rmtree leaves it."""
    try:
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.lexists(folder):
            return
    except RecursionError:
        pass
    if os.path.islink(folder):  # rmtree refuses a link to a folder: its target is not ours to empty
        return
    folder, pending, emptied, moves = Path(folder), [Path(folder)], [], 0
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    moves += 1
                    moved = folder / f".up-{moves}"
                    os.rename(entry.path, moved)
                    pending.append(moved)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue
        emptied.append(current)
    for current in reversed(emptied):  # the moved folders first, ``folder`` last
        try:
            os.rmdir(current)
        except OSError:
            pass


def remove_dead_temporaries(folder: Path, pattern: str = "*.tmp*", max_age_s: float = TEMPORARY_MAX_AGE_S,
                            folders: bool = False) -> None:
    """Remove the half-written temporaries (``<name>.tmp-<host>-<pid>``, :func:`temporary_suffix`, or
    ``<name>.tmp-<host>-<pid>.<writer>``, :func:`datasets.json_files.temporary_path`) in ``folder`` of
    processes killed while writing (a live process's are its own business): nothing reads them, so they would
    otherwise stay for good. A pid names a process of its own host only, and a cache may be shared by several
    machines (an NFS home): a temporary of this host goes when its process is gone; one of another host, or one
    named without host and pid (``.tmp<pid>`` and the checkpoints' ``.tmp`` of before), only once untouched for
    ``max_age_s`` (24 h). Folders matching ``pattern`` are left alone unless ``folders`` (:func:`building`'s
    temporary folders): a caller's pattern must not reach a user's own folder."""
    host, now = host_name(), time.time()
    for temporary in Path(folder).glob(pattern):
        writer = temporary.name.rpartition(".tmp")[2]
        owner, _, pid = writer[1:].rpartition("-") if writer.startswith("-") else ("", "", "")
        pid = pid.partition(".")[0]  # written_whole's number of the writer in its process follows the pid
        try:
            is_folder = temporary.is_dir() and not temporary.is_symlink()
            if is_folder and not folders:
                continue
            if owner == host and pid.isdigit():
                abandoned = not process_alive(int(pid))
            else:
                abandoned = now - temporary.lstat().st_mtime > max_age_s
            if abandoned and is_folder:
                remove_tree(temporary)
            elif abandoned:
                temporary.unlink(missing_ok=True)
        except FileNotFoundError:  # its writer renamed it into place meanwhile
            continue


def remove_dead_owned(folder: Path, prefix: str, folders: bool = False) -> None:
    """Remove what processes of this host that are gone left in ``folder`` under ``prefix``, named with their owner
    (``<prefix><random>.tmp-<host>-<pid>...``, :func:`temporary_suffix`): a process killed with SIGKILL (the
    out-of-memory killer) never ran its cleanup, and nothing else would remove it. A live process's stays, and so does
    another host's or one named without its owner (none provably abandoned). ``folders``: folders too."""
    remove_dead_temporaries(folder, f"{glob.escape(prefix)}*.tmp-*", max_age_s=math.inf, folders=folders)


#: :func:`remove_dead_owned` once per process, folder and prefix: for temporaries made often (every read of a cached
#: entry, every first use of the secret), whose dead owners' leftovers need one sweep, not one per use
remove_dead_owned_once = functools.lru_cache(maxsize=None)(remove_dead_owned)


@contextmanager
def owned_temporary_folder(prefix: str, parent: Optional[Path] = None) -> Iterator[Path]:
    """``tempfile.TemporaryDirectory(prefix=prefix, dir=parent)`` (mode 0700; default parent: the system's temporary
    folder) whose name ends with its host and pid (:func:`temporary_suffix`), after the folders of that prefix left in
    ``parent`` by processes of this host that are gone are removed: a process killed with SIGKILL (the out-of-memory
    killer) never ran its TemporaryDirectory's cleanup, and nothing else would remove the folder. A folder of a live
    process (a concurrent run's, or one whose dead owner's pid a new process took) stays, and so does one of another
    host (a shared ``parent``) or one named before its owner was (without host and pid): none provably abandoned."""
    parent = Path(parent if parent is not None else tempfile.gettempdir())
    remove_dead_owned(parent, prefix, folders=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=temporary_suffix(), dir=parent))
    try:
        yield folder
    finally:
        remove_tree(folder)


def shared_data_dir() -> Path:
    """The local folder of published recordings (``$NEUROZOO_SHARED_DATA``, default ``<repo>/../shared/data``)."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("NEUROZOO_SHARED_DATA") or default).expanduser()


def check_sha256(path: Path, expected: str, what: str = "") -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(f"{path}: sha256 {actual} does not match the expected {expected}"
                        f"{' for ' + what if what else ''}; the file is corrupted or a different version")


# ---------------------------------------------------------------- derived folders with a manifest
def write_manifest(folder: Path, extra: Optional[dict] = None) -> Dict[str, str]:
    files = {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps({"files": files, **(extra or {})}, indent=1, sort_keys=True))
    return files


def read_manifest(folder: Path, remedy: str = "delete the folder to rebuild it") -> dict:
    """The folder's manifest; ``remedy``: what the error of an unreadable one tells the user to do."""
    try:
        return json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{folder}/{MANIFEST}: unreadable manifest ({error}); {remedy}") from None


def verify_folder(folder: Path, made_on_use: bool = False) -> Dict[str, str]:
    """Re-hash every file listed in the folder's manifest; raise ``DataError`` on a missing (unless the folder's
    files are :data:`MADE_ON_USE`) or changed file. Returns the verified ``{file: sha256}``. ``made_on_use``: the
    caller knows the folder is one of :data:`MADE_ON_USE` files (an unreadable manifest cannot say so), so the error
    of an unreadable one gives their remedy (:func:`_made_on_use_manifest`), not the derived folders'."""
    folder = Path(folder)
    manifest = _made_on_use_manifest(folder) if made_on_use else read_manifest(folder)
    on_use = bool(manifest.get(MADE_ON_USE))
    verified = {}
    for relative, expected in manifest["files"].items():
        path = folder / relative
        if not path.is_file():
            if on_use:
                continue
            raise DataError(f"{path}: listed in {folder / MANIFEST} but missing; delete {folder} to rebuild it")
        verified[relative] = verify_file(path, expected, folder, on_use)
    return verified


def verify_file(path: Path, expected: str, folder: Path, on_use: bool) -> str:
    """Re-hash one file that ``folder``'s manifest lists with sha256 ``expected``; returns it, or raises ``DataError``
    saying what to delete (the file, one of :data:`MADE_ON_USE` files, or its derived folder)."""
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(f"{path}: sha256 {actual} differs from {expected} recorded in {folder / MANIFEST}; "
                        f"the cached file was modified: delete {path if on_use else folder} to "
                        f"{'generate it again' if on_use else 'rebuild it'}")
    return actual


@contextmanager
def locked(path: Path, waiting: Optional[str] = None, stoppable: bool = False,
           remove_if: Optional[Callable[[], bool]] = None, shared: bool = False) -> Iterator[None]:
    """An exclusive lock on the file ``path`` (created if missing) between processes of this host (``flock``).
    ``waiting``: a line printed to stderr when another holder makes this one wait (a wait of minutes says why).
    ``stoppable``: the wait is a safe point (:mod:`datasets.termination`), for a caller that has done nothing yet: a
    SIGTERM or Ctrl-C then raises ``KeyboardInterrupt`` (``"signal N"``; empty for an undeferred Ctrl-C) at once,
    without the lock. Otherwise a SIGTERM inside ``sigterm_deferred`` waits for the lock, and one outside kills.
    ``remove_if``: asked when the block ends, the lock still held; True removes the lock file (nothing is left that
    it guards, e.g. a fit refused before it made its folder). A holder that waited on a file removed meanwhile takes
    the lock again on the file now at ``path``: the lock is the file's that ``path`` names, never one unlinked.
    ``shared``: a shared lock, which any number of holders hold at once and which keeps out only an exclusive one (an
    extraction's on its cache entries, :meth:`ActivationCache.in_use`, against ``zoo cache clear``'s,
    :func:`unless_held`); ``remove_if`` then removes the file only when this holder was the last."""
    import fcntl
    import sys

    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    while True:
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # again: an emptied folder removed meanwhile (zoo cache)
        try:
            handle = open(path, "a")
        except FileNotFoundError:
            if not Path(path).parent.is_dir():  # removed between the mkdir and the open: make it again
                continue
            raise  # a folder that takes no file (/proc): retrying looped for good
        try:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting:  # in one write: print writes the text and its newline apart on an unbuffered stderr
                    # (PYTHONUNBUFFERED), and a Ctrl-C between the two ran zoo's interruption line on into this one
                    sys.stderr.write(f"{waiting}\n")
                    sys.stderr.flush()
                    waiting = None  # said once, however often the file is replaced under it
                if stoppable:
                    _wait_stoppably(handle, mode)
                else:
                    fcntl.flock(handle, mode)
        except BaseException:
            handle.close()
            raise
        if _names(path, handle):
            break
        handle.close()  # the holder before removed the file: lock the one now at ``path``
    with handle:
        try:
            yield
        finally:
            if remove_if is not None and (not shared or _upgraded(handle)) and remove_if():
                Path(path).unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _upgraded(handle) -> bool:
    """Whether a shared lock became exclusive: True when no other process holds the file (flock lets go of the shared
    lock first, so a False leaves none)."""
    import fcntl

    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def unless_held(path: Path, dry_run: bool = False) -> Iterator[bool]:
    """``path``'s lock (:func:`locked`) taken exclusively unless another process holds it: yields True, the lock held
    for the block and its file removed at the end (it guards what the block removed), or False, nothing taken (an
    extraction or fit is using what it guards). ``dry_run``: only asks, creating and removing nothing (no file: no
    holder)."""
    import fcntl

    while True:
        try:
            handle = open(path, "r" if dry_run else "a")
        except FileNotFoundError:
            if dry_run:
                yield True
                return
            raise
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            yield False
            return
        if dry_run or _names(path, handle):
            break
        handle.close()  # its last holder removed it meanwhile: ask the file now at ``path``
    with handle:
        try:
            if dry_run:
                fcntl.flock(handle, fcntl.LOCK_UN)
            yield True
        finally:
            if not dry_run:
                Path(path).unlink(missing_ok=True)
                fcntl.flock(handle, fcntl.LOCK_UN)


def _names(path: Path, handle) -> bool:
    """Whether ``path`` still names the open file ``handle`` (not removed, nor replaced by another file)."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(handle.fileno())
    return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)


def _wait_stoppably(handle, mode: Optional[int] = None) -> None:
    """``flock`` retried every 0.1 s under ``sigterm_deferred``: a blocking ``flock`` interrupted by a handled signal is
    resumed (PEP 475), so a request recorded by the handler would wait for the lock."""
    import fcntl

    from neurozoo.datasets.termination import raise_if_terminated, sigterm_deferred

    with sigterm_deferred():
        while True:
            raise_if_terminated()
            try:
                fcntl.flock(handle, (fcntl.LOCK_EX if mode is None else mode) | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                time.sleep(0.1)


def _made_on_use_manifest(folder: Path) -> dict:
    """The manifest of a :data:`MADE_ON_USE` folder. It lists files generated one at a time beside others that it does
    not list (the retina recordings beside their cached fits), so an unreadable one is to be deleted alone, not with
    its folder as :func:`read_manifest` says of a derived folder."""
    return read_manifest(folder, f"delete this file alone (the files it listed are then unverified until generated "
                                 f"again; the rest of {folder} stays)")


@contextmanager
def generated(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``, one of :data:`MADE_ON_USE` files, to generate it into; once it is
    written its sha256 is recorded in the folder's manifest and then it is renamed into place, one step under the
    manifest's lock (when two processes generate it at once, the digest recorded last is of the file that stays). A
    stop at any point leaves no file in place without its digest: before the record, the file of before (or none);
    between the record and the rename, a file of before that differs from it (or none), which its next use generates
    again. The file used to be renamed into place first and its digest recorded after, and a stop in between left it
    unverifiable, listed as ``unknown`` by ``zoo data verify`` and used without a check."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(path.parent, f"{path.name}.tmp*")  # of generators killed meanwhile

    def record_then_rename(tmp: Path, path: Path) -> None:
        with locked(path.parent / f"{MANIFEST}.lock"):
            _record(tmp, path)
            os.replace(tmp, path)

    with written_whole(path, replace=record_then_rename) as tmp:
        yield tmp


def _record(written: Path, path: Path) -> str:
    """Record the sha256 of ``written`` as ``path``'s in its folder's manifest, the manifest's lock held."""
    folder = path.parent
    digest = sha256_file(written)
    manifest = _made_on_use_manifest(folder) if (folder / MANIFEST).is_file() else {"files": {}, MADE_ON_USE: True}
    manifest["files"][path.name] = digest
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    return digest


def recorded_sha256(path: Path) -> Optional[str]:
    """The sha256 recorded for ``path`` in its folder's manifest, or None (none recorded, or no manifest)."""
    path = Path(path)
    if not (path.parent / MANIFEST).is_file():
        return None
    return _made_on_use_manifest(path.parent)["files"].get(path.name)


def folder_digest(folder: Path) -> str:
    """sha256 of the folder's verified ``{file: sha256}`` (the value :data:`checksums.EMBEDDED_SHA256` pins)."""
    import hashlib

    files = verify_folder(folder)
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def verify_pinned(folder: Path, pins: Dict[str, Union[str, Tuple[str, ...]]]) -> None:
    """Verify a generated folder against its manifest and, when its name is pinned, against the digest(s) pinned
    in code: a cache whose files AND manifest were rewritten is refused, not used. A pin may list several
    digests: the builds of the same generator on CPUs whose random or math kernels differ in their last bits."""
    folder = Path(folder)
    actual = folder_digest(folder)
    expected = pins.get(folder.name)
    accepted = (expected,) if isinstance(expected, str) else tuple(expected or ())
    if accepted and actual not in accepted:
        raise DataError(f"{folder}: contents (digest {actual}) differ from the digest pinned in "
                        f"neurozoo.datasets.checksums ({' or '.join(accepted)}); the cached data were modified "
                        f"(or this CPU computes the generator's numbers differently): delete {folder} to rebuild it")


@contextmanager
def building(folder: Path, extra: Optional[dict] = None) -> Iterator[Path]:
    """Build a derived folder atomically: yields a temporary folder that becomes ``folder`` on success. The temporary
    (``.<name>.<random>.tmp-<host>-<pid>``) of a build killed before its rename, here or in a sibling folder, is
    removed by the next build in this parent once its writer is dead (:func:`remove_dead_temporaries`)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(folder.parent, ".*.tmp-*", folders=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=temporary_suffix(), dir=folder.parent))
    try:
        yield tmp
        write_manifest(tmp, extra)
        try:
            os.replace(tmp, folder)
        except OSError as error:  # another process finished first: keep its folder (verified by the caller)
            if not (folder / MANIFEST).is_file():  # no build's: every build renames its folder in with its manifest
                raise DataError(f"{folder}: exists without {MANIFEST}, so it is no finished build (a copy of the cache "
                                f"cut short, or its manifest deleted) and the new build cannot replace it "
                                f"({error.strerror}); delete {folder} to rebuild it") from None
    finally:
        if tmp.exists():
            remove_tree(tmp)
