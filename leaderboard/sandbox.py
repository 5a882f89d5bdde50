"""Run untrusted code in a bubblewrap sandbox with hard limits on the whole job.

What the sandbox gives the code (see leaderboard/SECURITY.md for the threat model):

- its own network namespace (no interface but an unconnected loopback), PID namespace (every descendant,
  ``setsid`` daemons included, dies when the job ends: the namespace's init exits with the job's main
  process), IPC, UTS and cgroup namespaces; its own user namespace with uid/gid 65534 and no capabilities, in which
  it can make no user namespace of its own;
- a seccomp filter (:mod:`leaderboard.seccomp`) refusing the kernel's keyrings and file watches, sockets but unix
  ones, unix datagram sockets, passing descriptors (``sendmsg``, ``sendmmsg``), a listen backlog over 128, enlarging pipes, io_uring
  and anonymous memory files; no POSIX message queues (``RLIMIT_MSGQUEUE`` 0),
  :data:`MAX_OPEN_FILES` open files per process, :data:`QUEUED_SIGNALS` queued signals;
- a read-only view of the Python environment (interpreter, standard library, site-packages, the neurozoo
  package) and of the paths given in ``read_only``; private writable tmpfs mounts at ``/tmp`` and
  ``/dev/shm`` (each capped at the memory limit); a fresh ``/proc`` of its own namespace, the host-wide counters in it
  covered by neutral read-only files (:mod:`leaderboard.proc_masks`), and a minimal, read-only
  ``/dev`` without pseudo-terminals (:data:`NO_PSEUDO_TERMINALS`). Nothing else of the host: not ``$NEUROZOO_HOME``,
  the data cache, the recordings folder (:func:`hidden_paths`), the database, other submissions (the store, given
  in ``hidden``), nor the host's ``/proc``; any of those that lie inside a bound folder are covered by an empty tmpfs;
- an empty environment apart from PATH, HOME/TMPDIR (/tmp) and thread counts.

Limits, enforced whatever way the job ends:

- memory of the whole job: a memory cgroup (v1 or v2) when one can be made, with a pids limit; otherwise
  ``RLIMIT_AS`` on every process plus a watchdog that sums the resident memory of all the job's
  processes, the files in its tmpfs mounts (their data, and :data:`INODE_BYTES` of kernel memory for each file
  or folder) and the anonymous files (``memfd_create``, for an operator without the filter), pipes, sockets,
  epoll watches and other descriptors (eventfd, timerfd, ...) its processes hold open and the connections waiting
  at its listening sockets (:func:`open_files`),
  and their page tables and memory maps (:func:`address_space_bytes`), and kills the job above the limit;
- CPU time: ``RLIMIT_CPU`` on every process (SIGXCPU just past the limit, SIGKILL 2 CPU-s later, for a process
  that ignores SIGXCPU: named from the kernel's account of the job's CPU time, see :data:`REAPER`) plus the
  watchdog's sum over the job (every process it sampled, and a cgroup's own account: :func:`usage`); wall clock;
- epoll watches, charged to the host user whatever the cgroup: an eighth of its quota (:func:`epoll_watch_limit`);
- processes: the cgroup's pids limit, else the watchdog's count of the job's processes and their threads (the
  pids cgroup's tasks);
- output: the result channel (a pipe whose fd is ``$NEUROZOO_RESULT_FD``) and the console (stdout + stderr) are read by this process through
  pipes with byte caps; a job that writes more is killed. Reads never block on a pipe a daemon holds
  open: the job ends when its main process ends, and the whole namespace is killed then.
"""
from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from neurozoo.datasets.errors import UserFacingError
from neurozoo.datasets.termination import raise_if_terminated, signal_when_parent_dies
from neurozoo.leaderboard import proc_masks, seccomp

UNSAFE_FLAG = "--unsafe-no-sandbox"
SANDBOX_UID = 65534
WATCH_S = 0.25  # the watchdog's period: memory and CPU of every process of the job
CPU_HARD_MARGIN_S = 2  # CPU seconds between a process's SIGXCPU and its SIGKILL
PAGE = os.sysconf("SC_PAGE_SIZE")
#: Open files per process (RLIMIT_NOFILE): each pipe or socket holds kernel memory (:func:`open_files`), and the
#: watchdog reads every process's descriptors at each sample; hosts' hard limits reach 2**20.
MAX_OPEN_FILES = 1024
QUEUED_SIGNALS = 256  # RLIMIT_SIGPENDING (signals the kernel sends, as SIGCHLD and SIGKILL, are never refused)
#: Run between the supervisor and bwrap (``python -I -S -c REAPER bwrap ...``): a child subreaper
#: (``PR_SET_CHILD_SUBREAPER``, 36) that waits for every process below it and exits with bwrap's status. bwrap's
#: monitor exits as soon as the namespace's init reports the command's status, without reaping that init, so the
#: CPU time of the job's processes (the init's children's time) never reached the supervisor's ``wait4``: a process
#: SIGKILLed at its RLIMIT_CPU hard limit ended as a bare "exit status 137". Reparented to this reaper and reaped by
#: it, the init's account reaches the supervisor through the reaper's own.
REAPER = """
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
child = os.fork()
if child == 0:
    try:
        os.execv(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
code = 255
while True:
    try:
        pid, status = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    if pid == child:
        code = os.waitstatus_to_exitcode(status)
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""
TICKS = os.sysconf("SC_CLK_TCK")


class SandboxUnavailable(UserFacingError):
    """No sandbox can be made on this host: untrusted code is refused."""


@dataclass
class Limits:
    memory_bytes: int = 8 * 2 ** 30
    cpu_s: float = 3600.0
    wall_s: float = 1800.0
    result_bytes: int = 256 * 2 ** 20
    console_bytes: int = 4 * 2 ** 20  # kept: the last 64 KiB; more than this kills the job
    max_processes: int = 256


@dataclass
class Outcome:
    returncode: Optional[int]
    result: bytes
    console: bytes  # the last 64 KiB the job printed
    killed: Optional[str] = None  # why the job was killed (limit), None if it ended by itself
    peak_memory_bytes: int = 0
    cpu_s: float = 0.0


def bwrap_path() -> Optional[str]:
    return shutil.which("bwrap")


_PROBE: Dict[str, object] = {}


def sandbox_problem() -> Optional[str]:
    """None if a bubblewrap sandbox with its seccomp filter can be made here, else why not (cached per process)."""
    if "problem" in _PROBE:
        return _PROBE["problem"] or seccomp.problem()
    path = bwrap_path()
    if path is None:
        problem = "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    else:
        filter_fd, mask_fds = None, []
        try:  # the filter and the /proc masks too, as run() makes them: a kernel without seccomp, or a bwrap older
            # than 0.5 (no --perms), fails here, not in every job
            if seccomp.problem() is None and not seccomp.opted_out():
                filter_fd = seccomp.filter_fd(not bwrap_disables_userns())
            masks, mask_fds = proc_masks.bwrap_arguments(2 ** 30)
            argv = _bwrap_argv(path, {}, [], proc_masks=masks) + \
                (["--seccomp", str(filter_fd)] if filter_fd is not None else [])
            probe = subprocess.run(argv + ["/bin/true"], capture_output=True, timeout=30,
                                   pass_fds=tuple(mask_fds) + ((filter_fd,) if filter_fd is not None else ()))
            problem = None if probe.returncode == 0 else \
                f"bwrap cannot create namespaces here: {probe.stderr.decode(errors='replace').strip()[:300]}"
        except (OSError, subprocess.TimeoutExpired) as error:
            problem = f"bwrap failed to start: {error}"
        finally:
            proc_masks.close(mask_fds)
            if filter_fd is not None:
                os.close(filter_fd)
    _PROBE["problem"] = problem
    return problem or seccomp.problem()


def bwrap_disables_userns() -> bool:
    """bwrap can keep the job from making user namespaces of its own (``--disable-userns``, bwrap 0.8); else the
    seccomp filter refuses them (:func:`leaderboard.seccomp.filter_fd`)."""
    if "disable_userns" not in _PROBE:
        try:
            shown = subprocess.run([bwrap_path() or "bwrap", "--help"], capture_output=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            shown = b""
        _PROBE["disable_userns"] = b"--disable-userns" in shown
    return bool(_PROBE["disable_userns"])


def require_sandbox(unsafe: bool = False) -> bool:
    """True if jobs will be sandboxed; raises SandboxUnavailable unless ``unsafe`` allows running without."""
    problem = sandbox_problem()
    if problem is None:
        return True
    if unsafe:
        return False
    raise SandboxUnavailable(f"cannot score submissions: {problem}. Submitted code only runs sandboxed; install "
                             f"bubblewrap, or pass {UNSAFE_FLAG} to run it WITHOUT isolation (only for code you trust)")


# --------------------------------------------------------------------------------------------- mounts
PACKAGES = ("datasets", "convrnn", "retina", "benchmarks", "leaderboard")  # setup.py's FOLDERS


def environment_paths() -> List[Path]:
    """Folders the interpreter, its packages and neurozoo's packages live in (read-only in the sandbox): the
    Python prefixes, each ``neurozoo.<package>`` folder (an editable install maps them onto the checkout's
    folders; the checkout root itself is not bound), a folder that holds a ``neurozoo`` symlink on ``sys.path``,
    and a ``neurozoo`` namespace folder itself where it is a plain folder (``pip install --target DIR``, or a
    folder of symlinks to the packages, with ``DIR`` on ``PYTHONPATH``: binding only its packages left
    ``neurozoo`` unimportable in the sandbox, every job failing with ``No module named 'neurozoo.leaderboard'``).
    Other entries of ``sys.path`` (a script's folder, the current folder, plugins) are not bound."""
    import importlib.util

    import neurozoo

    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix),
             Path(os.path.realpath(sys.executable)).parent.parent}
    for name in PACKAGES:
        spec = importlib.util.find_spec(f"neurozoo.{name}")
        for location in (spec.submodule_search_locations or []) if spec else []:
            paths.update({Path(location), Path(os.path.realpath(location))})
    for entry in neurozoo.__path__:
        if os.path.islink(entry):  # e.g. <folder>/neurozoo -> checkout root, with <folder> on sys.path
            paths.add(Path(entry).parent)
        else:  # <folder>/neurozoo/<package>: the namespace folder (sandbox_python_path puts <folder> on the path)
            paths.add(Path(entry))
    paths = {p for p in paths if p.exists() and str(p) != "/" and p != Path(os.path.realpath("/tmp"))}
    outermost = []
    for path in sorted(paths, key=lambda p: len(p.parts)):
        if not any(path.is_relative_to(kept) for kept in outermost):
            outermost.append(path)
    return outermost


def sandbox_python_path(bound: Sequence[Path]) -> str:
    """This interpreter's ``sys.path`` entries inside ``bound``, and those whose ``neurozoo`` folder is bound (the
    folder above a bound namespace folder, which holds nothing else the sandbox sees)."""
    return os.pathsep.join(p for p in sys.path if p and os.path.isabs(p) and os.path.exists(p)
                           and any(Path(p).is_relative_to(b) or Path(p) / "neurozoo" == b for b in bound))


def hidden_paths() -> List[Path]:
    """Host folders the sandbox must never see, covered by tmpfs where they lie inside a bound folder. The recordings'
    folder is the one the harness reads, ``$NEUROZOO_SHARED_DATA`` or, unset, its default beside the checkout (it was
    hidden only when the variable was set, yet a virtual environment ``~/env`` holding the checkout ``~/env/neurozoo``
    is bound whole, and with it the default ``~/env/shared/data``)."""
    from neurozoo.benchmarks.paths import cache_dir, home
    from neurozoo.datasets.cache import shared_data_dir

    return [Path(os.path.realpath(p)) for p in (home(), cache_dir(), Path.home(), shared_data_dir())]


def _system_binds() -> List[str]:
    argv = []
    for name in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    for name in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"):
        if os.path.exists(name):
            argv += ["--ro-bind", name, name]
    return argv


#: bwrap's ``/dev/pts`` (through which ``/dev/ptmx`` opens) covered by an empty read-only tmpfs: a pseudo-terminal's
#: buffers are kernel memory behind a descriptor the watchdog counts at nothing (45 KiB each), and every devpts but the
#: host's own shares ``kernel.pty.max`` less ``kernel.pty.reserve`` (3072 by default): a job held 1500 of them with three
#: processes (500 each, under their 1024 open files), and with seven would hold them all, leaving no terminal to any
#: container on the host until it ended.
NO_PSEUDO_TERMINALS = ("--tmpfs", "/dev/pts", "--remount-ro", "/dev/pts")
#: bwrap's root, the tmpfs holding the folders it makes for its mounts (``/etc``, ``/work``, ``/root``, ...), made
#: read-only once every mount is in place: it was writable and no size-capped mount of the job's, so without a cgroup
#: the watchdog, which counts the files of ``/tmp`` and ``/dev/shm``, saw none of its files (200 MiB in ``/etc`` and a
#: 150 MiB heap ran on under a 256 MiB limit; the tmpfs holds up to half the host's memory)
READ_ONLY_ROOT = ("--remount-ro", "/")
#: ``/proc/sys`` bound read-only over the sandbox's ``/proc``: bwrap covers it only where its own ``access(W_OK)`` on the
#: folder passes, and the folder (r-xr-xr-x) refuses everyone, so it stayed writable; the kernel lets a sysctl be written
#: by a user that is root outside every namespace, capabilities or not, and the job's user is the worker's own there: a
#: job of a worker run as root set the host's kernel settings (``kernel.core_pattern``, whose ``|program`` the kernel
#: runs as root on the host). The source is the host's ``/proc/sys``, read as the sandbox's: a namespaced setting (net,
#: ipc, uts, ``ns_last_pid``) is the reading process's own namespace's either way. Before the masks, which cover files
#: inside it. Where the worker's ``/proc`` shows no ``sys`` (mounted ``subset=pid``), :func:`read_only_sysctls` covers
#: it with an empty read-only tmpfs instead (the job then sees no sysctl, as the worker does).
READ_ONLY_SYSCTLS = ("--ro-bind", "/proc/sys", "/proc/sys")


def read_only_sysctls() -> Tuple[str, ...]:
    """bwrap's arguments that make the sandbox's ``/proc/sys`` read-only (:data:`READ_ONLY_SYSCTLS`)."""
    return READ_ONLY_SYSCTLS if os.path.isdir("/proc/sys") else ("--tmpfs", "/proc/sys", "--remount-ro", "/proc/sys")


def _bwrap_argv(bwrap: str, read_only: Dict[str, str], env_paths: Sequence[Path],
                tmp_bytes: int = 2 ** 30, proc_masks: Sequence[str] = (), hidden: Sequence[str] = ()) -> List[str]:
    """``proc_masks``: :func:`leaderboard.proc_masks.bwrap_arguments`'s, covering the host's counters in ``/proc``;
    ``hidden``: host folders covered as :func:`hidden_paths`' are, where they lie inside a bound folder."""
    argv = [bwrap, "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            *(["--disable-userns"] if bwrap_disables_userns() else []),
            "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv",
            "--proc", "/proc", *read_only_sysctls(), *proc_masks, "--dev", "/dev", *NO_PSEUDO_TERMINALS,
            "--size", str(tmp_bytes), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
            "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    argv += _system_binds()
    bound = []
    for path in env_paths:
        argv += ["--ro-bind", str(path), str(path)]
        bound.append(path)
    for host, inside in read_only.items():
        argv += ["--ro-bind", str(host), inside]
    for covered in covered_paths([*hidden_paths(), *map(Path, hidden)], bound):
        # read-only too: a writable tmpfs of no size cap, which the watchdog does not count, as bwrap's root was
        argv += ["--tmpfs", str(covered), "--remount-ro", str(covered)]
    return argv + list(READ_ONLY_ROOT)


def covered_paths(secrets: Sequence[Path], bound: Sequence[Path]) -> List[Path]:
    """Where, inside the sandbox, each folder of ``secrets`` that lies inside a folder of ``bound`` shows: under the
    bound folder's name, which bwrap mounts its target at. Both are compared resolved: a bound folder named through a
    link (a virtual environment ``/opt/env`` linked to ``/data/env``) holds ``/data/env/store`` at ``/opt/env/store``,
    and a hidden folder compared by its resolved path with the bound folders' names as given was never inside one,
    left uncovered, seen whole by the job. A folder inside another one covered is left out: the other's empty,
    read-only tmpfs hides it already, and has no folder to mount a second one on (bwrap failed to start the job)."""
    inside = set()
    for secret in {Path(os.path.realpath(s)) for s in secrets}:
        for folder in bound:
            real = Path(os.path.realpath(folder))
            if secret.is_relative_to(real) and secret.is_dir():
                inside.add(Path(folder) / secret.relative_to(real))
    covered = []
    for path in sorted(inside, key=lambda p: len(p.parts)):
        if not any(path.is_relative_to(outer) for outer in covered):
            covered.append(path)
    return covered


def sandbox_environment(threads: int = 1, python_path: str = "") -> Dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
            "NEUROZOO_HOME": "/tmp/home", "NEUROZOO_CACHE": "/tmp/cache", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": python_path,
            "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


# --------------------------------------------------------------------------------------------- cgroups
class Cgroup:
    """A memory (+ pids, + CPU accounting) cgroup for one job, v1 or v2; ``Cgroup.make`` returns None where none is
    writable."""

    def __init__(self, memory: Path, pids: Optional[Path], v2: bool, cpu: Optional[Path] = None):
        self.memory, self.pids, self.v2, self.cpu = memory, pids, v2, cpu

    @classmethod
    def make(cls, limits: Limits) -> Optional["Cgroup"]:
        name = f"neurozoo-sandbox-{uuid.uuid4().hex[:12]}"
        root = Path("/sys/fs/cgroup")
        try:
            if (root / "cgroup.controllers").is_file():  # v2, unified: cpu.stat accounts CPU time in every group
                group = root / name
                group.mkdir()
                (group / "memory.max").write_text(str(limits.memory_bytes))
                if (group / "memory.swap.max").exists():
                    (group / "memory.swap.max").write_text("0")
                if (group / "pids.max").exists():
                    (group / "pids.max").write_text(str(limits.max_processes))
                return cls(group, None, True)
            group = root / "memory" / name
            group.mkdir()
            (group / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
            swap = group / "memory.memsw.limit_in_bytes"
            if swap.exists():
                try:
                    swap.write_text(str(limits.memory_bytes))
                except OSError:
                    pass
            return cls(group, _v1_group(root / "pids" / name, {"pids.max": str(limits.max_processes)}), False,
                       _v1_group(root / "cpuacct" / name, {}))
        except OSError:
            return None

    def groups(self) -> List[Path]:
        return [g for g in (self.memory, self.pids, self.cpu) if g is not None]

    def join_file(self) -> List[str]:
        return [str(g / "cgroup.procs") for g in self.groups()]

    def cpu_s(self) -> float:
        """CPU seconds of every process that ran in the group, those the kernel reaped itself included (a process
        whose parent ignores SIGCHLD: its time reaches no parent's account); 0 where the group accounts none."""
        try:
            if self.v2:
                for line in (self.memory / "cpu.stat").read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) / 1e6
            elif self.cpu is not None:
                return int((self.cpu / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError):
            pass
        return 0.0

    def processes(self) -> List[int]:
        try:
            return [int(p) for p in (self.memory / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def peak(self) -> int:
        for name in ("memory.max_usage_in_bytes", "memory.peak"):
            try:
                return int((self.memory / name).read_text())
            except (OSError, ValueError):
                continue
        return 0

    def oom_killed(self) -> bool:
        counters = {}
        for name in ("memory.events", "memory.oom_control", "memory.failcnt", "memory.memsw.failcnt"):
            try:
                text = (self.memory / name).read_text()
            except OSError:
                continue
            if name.endswith("failcnt"):
                counters[name] = int(text or 0)
            else:
                counters.update({f"{name}:{k}": int(v) for k, v in (line.split() for line in text.splitlines())})
        return any(v > 0 for k, v in counters.items() if k.endswith(("failcnt", ":oom_kill")))

    def oom_kills(self) -> int:
        """How many of the job's processes the kernel killed at the limit (the job is then ended whole)."""
        for name in ("memory.events", "memory.oom_control"):
            try:
                for line in (self.memory / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
            except (OSError, ValueError):
                continue
        return 0

    def kill_all(self) -> None:
        for _ in range(50):
            pids = self.processes()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        self.kill_all()
        for group in self.groups():
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)


def _v1_group(group: Path, settings: Dict[str, str]) -> Optional[Path]:
    """``group`` made under a cgroup v1 controller's folder with ``settings`` written, or None where it cannot be."""
    try:
        group.mkdir()
    except OSError:
        return None
    try:
        for key, value in settings.items():
            (group / key).write_text(value)
    except OSError:
        group.rmdir()
        return None
    return group


# ------------------------------------------------------------------------------------------ process tree
def descendants(root: int) -> List[int]:
    """``root`` and every process below it (reparented daemons stay below the namespace's init)."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


class CpuAccount:
    """The own CPU ticks of every process of a job the watchdog sampled: the live ones' last values, by pid and start
    time (a reused pid is another process), and the sum of those of the ended ones (kept as one number: a job that
    starts processes without end would otherwise grow the supervisor's memory)."""

    def __init__(self):
        self.ended, self.live = 0, {}

    def update(self, live: Dict[tuple, int]) -> int:
        self.ended += sum(ticks for key, ticks in self.live.items() if key not in live)
        self.live = live
        return self.ended + sum(live.values())


def usage(pids: Sequence[int], account: Optional[CpuAccount] = None) -> tuple:
    """(resident bytes, CPU seconds, threads) summed over ``pids``. CPU seconds: the live processes' own time and their
    waited-for children's, or, if more, the own time of every process of the job ever sampled (``account``): a process
    whose parent ignores SIGCHLD is reaped by the kernel, and its time reaches no parent's account (children spinning
    in turn had used 2.4 CPU-s under a limit of 1 s, unseen). Threads, as a pids cgroup counts them: each takes a host
    PID, so a job's threads alone can fill the host's PID table."""
    rss, ticks, threads, own = 0, 0, 0, {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
            own[(pid, fields[19])] = int(fields[11]) + int(fields[12])  # field 19: the start time
            threads += int(fields[17])  # num_threads
            with open(f"/proc/{pid}/statm") as handle:
                rss += int(handle.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    ticks = max(ticks, (account or CpuAccount()).update(own))
    return rss, ticks / TICKS, threads


#: Kernel memory of one memory map (a VMA, its place in the process's tree and its links: 25 processes of 25000 maps
#: each took 270 MiB of unreclaimable slab)
MAP_BYTES = 256


def max_map_count() -> int:
    try:
        with open("/proc/sys/vm/max_map_count") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 65530  # the kernel's default


def address_space_bytes(pids: Sequence[int]) -> int:
    """Kernel memory behind the address spaces of ``pids`` that no resident size shows: their page tables (``VmPTE``:
    a page touched and dropped again in each 2 MiB leaves 8 MiB of them per 4 GiB mapped, nothing resident) and their
    memory maps, each :data:`MAP_BYTES`, counted at the most they can be: one per page mapped (``VmSize``), at most
    ``vm.max_map_count`` per process. Uncounted, 25 processes under a 256 MiB limit, each alternating the protection of
    the pages of a 195 MiB mapping (one map per page), held 270 MiB of kernel memory beside 207 MiB resident."""
    limit, total = max_map_count(), 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if line.startswith(("VmPTE:", "VmSize:")))
            total += int(fields["VmPTE"].split()[0]) * 1024
            total += min(limit, int(fields["VmSize"].split()[0]) * 1024 // PAGE) * MAP_BYTES
        except (OSError, KeyError, ValueError, IndexError):  # ended meanwhile, or a zombie (no address space)
            continue
    return total


MEMORY_FILESYSTEMS = ("tmp", "dev/shm")  # the job's writable tmpfs mounts: their files are host memory
#: Host kernel memory charged per file or folder in the job's tmpfs mounts: an inode and its name (dentry) take
#: 1.3 KiB of slab (measured: 1.17 million empty folders of 200-character names, 1.46 GiB). Files' blocks alone had
#: counted nothing for an empty one: a job under a 256 MiB limit made 1.46 GiB of them in 20 s, unseen.
INODE_BYTES = 2048


def _inside(pids: Sequence[int], namespace: str):
    """The processes of ``pids`` in a ``namespace`` (``mnt``, ``net``) other than the scorer's: the sandbox's, not
    bwrap's monitor nor a process not in the sandbox yet."""
    host = os.readlink(f"/proc/self/ns/{namespace}")
    for pid in pids:
        try:
            if os.readlink(f"/proc/{pid}/ns/{namespace}") != host:
                yield pid
        except OSError:  # ended meanwhile
            continue


def tmpfs_bytes(pids: Sequence[int]) -> int:
    """Bytes of files in the job's tmpfs mounts, their data blocks plus :data:`INODE_BYTES` per file or folder, seen
    through the first process inside its mount namespace (the watchdog's share of memory that no process's resident
    size shows)."""
    for pid in _inside(pids, "mnt"):
        try:
            total = 0
            for name in MEMORY_FILESYSTEMS:
                info = os.statvfs(f"/proc/{pid}/root/{name}")
                total += (info.f_blocks - info.f_bfree) * info.f_frsize + (info.f_files - info.f_ffree) * INODE_BYTES
            return total
        except OSError:
            continue
    return 0


def waiting_connections(pids: Sequence[int]) -> int:
    """Unix sockets of the job's network namespace that no descriptor holds: connections in a listening socket's queue,
    not accepted (``/proc/net/unix`` lists them with inode 0), each holding what its client sent, closed or not (a
    listening socket of backlog 4096 held 604 MiB so under a 128 MiB limit; the filter now caps the backlog at
    :data:`leaderboard.seccomp.LISTEN_BACKLOG`). The filter refuses ``sendmsg``, so no other socket lives on without a
    descriptor."""
    for pid in _inside(pids, "net"):
        try:
            with open(f"/proc/{pid}/net/unix") as handle:
                return sum(1 for line in handle if line.split()[6:7] == ["0"])  # Num RefCount ... St Inode Path
        except OSError:
            continue
    return 0


#: What an open pipe holds at most: its default capacity (16 pages). The filter refuses enlarging one (F_SETPIPE_SZ).
PIPE_BYTES = 64 * 1024
#: Kernel memory of one epoll watch (measured: a million watches, 206 MB of unreclaimable slab)
EPOLL_WATCH_BYTES = 256
#: Kernel memory of any other open file: its open file description and, for the kernel's small objects behind a
#: descriptor (eventfd, timerfd, signalfd, pidfd), their own state (measured, unreclaimable slab per descriptor: a
#: timerfd 455 bytes, an eventfd 297, a signalfd 246, a pidfd or a plain file 211). Counted at nothing, a job of the
#: default 256 processes, each at its :data:`MAX_OPEN_FILES`, could hold 114 MiB of timerfds (256 x 1024 x 455 bytes)
#: unseen without a cgroup.
OPEN_FILE_BYTES = 512


def socket_bytes() -> int:
    """What an open socket holds at most: twice ``net.core.wmem_max`` (SO_SNDBUF doubles what it is given; unix
    sockets charge the data they send, unread, to the sender). The sandbox's filter refuses every socket but a unix
    one (:mod:`leaderboard.seccomp`), so TCP's larger buffers are out of reach."""
    try:
        with open("/proc/sys/net/core/wmem_max") as handle:
            return 2 * int(handle.read())
    except (OSError, ValueError):
        return 2 * 212992  # the kernel's default


def epoll_watch_limit() -> int:
    """The most epoll watches a job may hold: an eighth of ``fs.epoll.max_user_watches``. Watches are charged to the
    host user the job's uid maps to, cgroup or not, and a job under the default 8 GiB limit could hold all of them
    (5.5 million here, 1.4 GiB as the watchdog counts them), leaving every process of the operator's user, ``zoo
    serve`` among them, unable to watch a new connection or file until it ended."""
    try:
        with open("/proc/sys/fs/epoll/max_user_watches") as handle:
            return int(handle.read()) // 8
    except (OSError, ValueError):
        return 100000


def open_files(pids: Sequence[int]) -> Tuple[int, int]:
    """(bytes, epoll watches) of the files ``pids`` hold open. Watches: each epoll instance's, for
    :func:`epoll_watch_limit`. Bytes: host memory no process's resident size shows, each file once (by inode),
    with :data:`INODE_BYTES` for its inode: anonymous files (``memfd_create``), their data blocks (written but not
    mapped they are in no mount and not bounded by ``RLIMIT_AS``: a job under a 128 MiB limit held 400 MiB in them,
    unseen); pipes, :data:`PIPE_BYTES`; sockets, :func:`socket_bytes` (data sent and not read: four processes under a
    128 MiB limit held 400 MiB in socket pairs, unseen), and as much for each connection waiting in a listening
    socket's queue (:func:`waiting_connections`); epoll instances, :data:`EPOLL_WATCH_BYTES` per watch (four
    processes under a 128 MiB limit held a million watches, 200 MB, unseen); any other descriptor (eventfd, timerfd,
    signalfd, pidfd, a plain file), :data:`OPEN_FILE_BYTES`, once per descriptor."""
    files: Dict[tuple, int] = {}
    per_socket, watches = None, 0
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            try:
                target = os.readlink(path)
                if target.startswith("/memfd:"):
                    info = os.stat(path)
                    files[(info.st_dev, info.st_ino)] = info.st_blocks * 512 + INODE_BYTES
                elif target.startswith(("pipe:", "socket:")):
                    if target.startswith("socket:") and per_socket is None:
                        per_socket = socket_bytes()
                    files[(0, target)] = (PIPE_BYTES if target.startswith("pipe:") else per_socket) + INODE_BYTES
                elif target == "anon_inode:[eventpoll]":  # one inode for every epoll instance: each fd counted
                    with open(f"/proc/{pid}/fdinfo/{fd}", "rb") as handle:  # a line per watch: not read whole
                        count = sum(1 for line in handle if line.startswith(b"tfd:"))
                    files[(pid, fd)] = count * EPOLL_WATCH_BYTES + INODE_BYTES
                    watches += count
                else:
                    files[(pid, fd)] = OPEN_FILE_BYTES
            except OSError:  # closed meanwhile
                continue
    waiting = waiting_connections(pids)
    return sum(files.values()) + (waiting * (socket_bytes() + INODE_BYTES) if waiting else 0), watches


# ------------------------------------------------------------------------------------------------- run
def _preexec(limits: Limits, cgroup_files: Sequence[str], address_space: bool):
    def apply():
        import resource

        for path in cgroup_files:  # join before exec: every later process is born inside the cgroup
            with open(path, "w") as handle:
                handle.write(str(os.getpid()))
        if address_space:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        soft = cpu_rlimit_soft_s(limits)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + CPU_HARD_MARGIN_S))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))  # POSIX message queues: the host user's kernel memory
        # queued signals (a POSIX timer takes one each): the host user's quota, counted for all of the user's processes
        resource.setrlimit(resource.RLIMIT_SIGPENDING, (QUEUED_SIGNALS, QUEUED_SIGNALS))
        resource.setrlimit(resource.RLIMIT_NOFILE, (MAX_OPEN_FILES, MAX_OPEN_FILES))
        _die_with_parent()
    return apply


def cpu_rlimit_soft_s(limits: Limits) -> int:
    """Each process's ``RLIMIT_CPU`` soft limit (whole seconds, past the job's limit): the kernel sends SIGXCPU there,
    which names the cause, and SIGKILL at the hard limit ``CPU_HARD_MARGIN_S`` later, for a process that ignores
    SIGXCPU. Equal soft and hard limits made the kernel send SIGKILL alone: a job the watchdog had not caught yet
    (a loaded host) ended with a bare "exit status 137"."""
    return int(limits.cpu_s) + 1


def killed_by_cpu_rlimit(returncode: Optional[int], job_cpu_s: float = 0.0, limits: Optional[Limits] = None) -> bool:
    """The per-process ``RLIMIT_CPU`` ended the job's main process: SIGXCPU (``-SIGXCPU`` without a sandbox,
    ``128 + SIGXCPU`` through bwrap, which exits with its child's status), or SIGKILL (``-9``, ``137``) to a job whose
    processes used more CPU time than ``limits`` allow (``job_cpu_s``: summed over every process of the job, from the
    kernel's accounting when it was reaped): a process that ignores SIGXCPU is killed at the hard limit, and SIGKILL
    itself names no cause."""
    if returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        return True
    return (returncode in (-signal.SIGKILL, 128 + signal.SIGKILL) and limits is not None
            and job_cpu_s > limits.cpu_s)


def _die_with_parent() -> None:
    """The job is killed if the scorer itself dies (its limits die with it)."""
    signal_when_parent_dies(signal.SIGKILL)


class Cancelled(BaseException):
    """The job was cancelled while its process ran (its submission withdrawn, or its run otherwise no longer its
    worker's: :class:`leaderboard.scorer.Heartbeat`): raised by :func:`run` once the process group is killed. A
    BaseException, like KeyboardInterrupt, so that no scorer turns it into a failed job."""


#: the event that cancels the job :func:`run` runs in this thread (context): set by its worker's
#: :class:`leaderboard.scorer.Heartbeat` (its status check or lease renewal) once the job is no longer that worker's to
#: run. One per job (:func:`cancelled_by`): a single event for the process had let two workers in one process (threads)
#: cancel each other's job, and each job's start cleared the other's cancellation.
_CANCEL: ContextVar[Optional[threading.Event]] = ContextVar("neurozoo_sandbox_cancel", default=None)


@contextlib.contextmanager
def cancelled_by(event: threading.Event):
    """Within the block, :func:`run` called in this thread (or context) kills its job and raises :class:`Cancelled`
    within its poll once ``event`` is set; other threads' jobs are not this event's."""
    token = _CANCEL.set(event)
    try:
        yield event
    finally:
        _CANCEL.reset(token)


def run(command: Sequence[str], read_only: Optional[Dict[str, str]] = None, limits: Optional[Limits] = None,
        sandbox: bool = True, threads: int = 1, poll_s: float = 0.1, hidden: Sequence[str] = ()) -> Outcome:
    """Run ``command`` (inside the sandbox unless ``sandbox=False``); the job writes its result to the file
    descriptor named by ``$NEUROZOO_RESULT_FD``.

    ``read_only`` maps host paths to paths inside the sandbox; ``hidden`` names host folders the job must not see
    besides :func:`hidden_paths`' (the submission store, which the operator may place anywhere: ``zoo serve
    --submissions``, ``zoo submit --store``), covered by an empty read-only tmpfs where they lie inside a bound
    folder. Without a sandbox (the operator's explicit unsafe choice) the same limits apply, with ``read_only`` paths
    used in place, and the job's home, cache and temporary folder are a scratch folder of its own
    (``$TMPDIR/neurozoo-unsandboxed-*``), removed after it; named with this process's host and pid, since one killed
    (SIGKILL) never removed it: the next unsandboxed job on this host does
    (:func:`datasets.cache.owned_temporary_folder`)."""
    if sandbox:
        return _run(command, read_only, limits, None, threads, poll_s, hidden)
    from neurozoo.datasets.cache import owned_temporary_folder

    with owned_temporary_folder("neurozoo-unsandboxed-") as scratch:
        return _run(command, read_only, limits, str(scratch), threads, poll_s)


def _run(command: Sequence[str], read_only: Optional[Dict[str, str]], limits: Optional[Limits], scratch: Optional[str],
         threads: int, poll_s: float, hidden: Sequence[str] = ()) -> Outcome:
    """:func:`run`, sandboxed without ``scratch``, else not, in ``scratch``."""
    limits = limits or Limits()
    read_only = dict(read_only or {})
    sandbox = scratch is None
    if sandbox:
        bwrap = bwrap_path()
        if bwrap is None:
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
        if seccomp.problem():
            raise SandboxUnavailable(seccomp.problem())
        bound = environment_paths()
        masks, mask_fds = proc_masks.bwrap_arguments(limits.memory_bytes)
        argv = _bwrap_argv(bwrap, read_only, bound, limits.memory_bytes, masks, hidden)
        for key, value in sandbox_environment(threads, sandbox_python_path(bound)).items():
            argv += ["--setenv", key, value]
        argv += ["--chdir", "/tmp", "--"] + list(command)
        env = {"PATH": "/usr/bin:/bin"}  # bwrap's own (it is the namespace's init: its environ is visible)
        bwrap_dir = os.path.dirname(bwrap)
        if bwrap_dir not in env["PATH"].split(":"):
            env["PATH"] += ":" + bwrap_dir
    else:
        mask_fds = []
        argv, env = list(command), sandbox_environment(threads, os.pathsep.join(p for p in sys.path if p))
        env.update(HOME=scratch, TMPDIR=scratch, NEUROZOO_HOME=f"{scratch}/home", NEUROZOO_CACHE=f"{scratch}/cache")
    try:
        filter_fd = seccomp.filter_fd(not bwrap_disables_userns()) if sandbox and not seccomp.opted_out() else None
    except BaseException:
        proc_masks.close(mask_fds)
        raise
    cgroup = Cgroup.make(limits)
    result_read, result_write = os.pipe()
    console_read, console_write = os.pipe()
    os.set_inheritable(result_write, True)
    passed = (result_write,) + ((filter_fd,) if filter_fd is not None else ()) + tuple(mask_fds)
    if sandbox:
        argv[argv.index("--chdir"):argv.index("--chdir")] = ["--setenv", "NEUROZOO_RESULT_FD", str(result_write)] + \
            (["--seccomp", str(filter_fd)] if filter_fd is not None else [])
        argv = [sys.executable, "-I", "-S", "-c", REAPER] + argv
    else:
        env["NEUROZOO_RESULT_FD"] = str(result_write)
    try:
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=console_write,
                                   stderr=console_write, pass_fds=passed, start_new_session=True,
                                   close_fds=True, cwd=scratch or "/",
                                   preexec_fn=_preexec(limits, cgroup.join_file() if cgroup else [], cgroup is None))
    except BaseException:
        for fd in (result_read, console_read, console_write) + passed:
            os.close(fd)
        if cgroup:
            cgroup.remove()
        raise
    for fd in passed + (console_write,):
        os.close(fd)
    try:
        return _supervise(process, result_read, console_read, limits, cgroup, poll_s, _CANCEL.get())
    except (KeyboardInterrupt, Cancelled):  # Ctrl-C, a SIGTERM or a cancellation taken at _supervise's safe point
        _kill(process, cgroup)
        raise
    finally:
        os.close(result_read)
        os.close(console_read)
        if cgroup:
            cgroup.remove()


def _kill(process: subprocess.Popen, cgroup: Optional[Cgroup]) -> None:
    for pid in reversed(descendants(process.pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if cgroup:
        cgroup.kill_all()


def _reap(process: subprocess.Popen):
    """Reap the job's main process if it has ended (without waiting), setting ``process.returncode``; returns its
    ``resource.struct_rusage``, else None. ``os.wait4`` rather than ``Popen.poll``: the usage it reports covers every
    process of the job that was reaped below it (through bwrap: the command, reaped by the namespace's init, reaped
    by the reaper once bwrap's monitor has exited: :data:`REAPER`), the CPU time of a process SIGKILLed at its
    ``RLIMIT_CPU`` hard limit included."""
    if process.returncode is not None:
        return None
    try:
        pid, status, rusage = os.wait4(process.pid, os.WNOHANG)
    except ChildProcessError:  # reaped elsewhere: Popen knows its status
        process.poll()
        return None
    if pid == 0:
        return None
    process.returncode = os.waitstatus_to_exitcode(status)
    return rusage


CONSOLE_KEPT = 64 * 1024


def _keep(buffer: bytearray, chunk: bytes, console: bool, cap: int) -> None:
    """Of the console, the last ``CONSOLE_KEPT`` bytes (a traceback comes last); of the result, up to ``cap``."""
    if console:
        buffer += chunk
        del buffer[:-CONSOLE_KEPT]
    else:
        buffer += chunk[:max(cap - len(buffer), 0)]


def _supervise(process, result_fd: int, console_fd: int, limits: Limits, cgroup: Optional[Cgroup],
               poll_s: float, cancel: Optional[threading.Event] = None) -> Outcome:
    selector = selectors.DefaultSelector()
    buffers = {result_fd: bytearray(), console_fd: bytearray()}
    totals = {result_fd: 0, console_fd: 0}
    caps = {result_fd: limits.result_bytes, console_fd: limits.console_bytes}
    for fd in buffers:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    started = time.monotonic()
    killed, peak, cpu = None, 0, 0.0
    account = CpuAccount()
    watch_limit = epoll_watch_limit()
    next_watch = 0.0
    reaped = None  # the job's resource usage, once its main process is reaped
    while (reaped := _reap(process)) is None and process.returncode is None:
        raise_if_terminated()
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        for key, _ in selector.select(timeout=poll_s):
            try:
                chunk = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                selector.unregister(key.fd)
                continue
            totals[key.fd] += len(chunk)
            _keep(buffers[key.fd], chunk, key.fd == console_fd, caps[key.fd])
            if totals[key.fd] > caps[key.fd]:
                what = "result" if key.fd == result_fd else "console output"
                killed = f"its {what} exceeded the limit of {caps[key.fd]} bytes"
        now = time.monotonic()
        if killed is None and now - started > limits.wall_s:
            killed = f"it exceeded the wall-clock limit of {limits.wall_s:g} s"
        if killed is None and now >= next_watch:
            next_watch = now + WATCH_S
            pids = descendants(process.pid)
            rss, cpu, threads = usage(pids, account)
            if cgroup is not None:
                cpu = max(cpu, cgroup.cpu_s())
            files, watches = open_files(pids)
            if cgroup is None:  # a memory cgroup charges tmpfs and memfd pages and kernel memory to the job itself
                rss += tmpfs_bytes(pids) + files + address_space_bytes(pids)
            peak = max(peak, rss)
            if rss > limits.memory_bytes or (cgroup is not None and cgroup.oom_kills()):
                killed = f"it used more than the memory limit of {limits.memory_bytes / 2 ** 30:.2f} GiB"
            elif cpu > limits.cpu_s:
                killed = f"it used more than the CPU-time limit of {limits.cpu_s:g} s"
            elif max(len(pids), threads) > limits.max_processes + 3:  # the reaper, bwrap's monitor and the
                # namespace's init are not the job's; threads count as a pids cgroup counts them (3000 threads had run
                # under a limit of 40 processes)
                killed = f"it ran more than the limit of {limits.max_processes} processes (threads included)"
            elif watches > watch_limit:
                killed = f"it held more than {watch_limit} epoll watches, an eighth of the host user's quota"
        if killed is not None:
            _kill(process, cgroup)
            break
    # The main process has ended (or was killed): end whatever is left of the job, then drain what is
    # already in the pipes without waiting for writers that may still hold them.
    _kill(process, cgroup)
    deadline = time.monotonic() + 10
    while reaped is None and process.returncode is None and time.monotonic() < deadline:
        reaped = _reap(process)
        if reaped is None:
            time.sleep(0.01)
    job_cpu = reaped.ru_utime + reaped.ru_stime if reaped is not None else 0.0
    cpu = max(cpu, job_cpu, cgroup.cpu_s() if cgroup is not None else 0.0)
    for fd in list(buffers):
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            totals[fd] += len(chunk)
            _keep(buffers[fd], chunk, fd == console_fd, caps[fd])
            if totals[fd] > caps[fd] and killed is None:
                killed = f"its {'result' if fd == result_fd else 'console output'} exceeded the limit of {caps[fd]} bytes"
                break
    selector.close()
    if cgroup is not None:
        peak = max(peak, cgroup.peak())
        if killed is None and cgroup.oom_killed():
            killed = f"it used more than the memory limit of {limits.memory_bytes / 2 ** 30:.2f} GiB (cgroup)"
    if killed is None and killed_by_cpu_rlimit(process.returncode, job_cpu, limits):
        killed = f"it used more than the CPU-time limit of {limits.cpu_s:g} s"
    return Outcome(process.returncode, bytes(buffers[result_fd]), bytes(buffers[console_fd]), killed, peak, cpu)
