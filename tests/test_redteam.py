"""Red team: every attack of issue 12 as a submission (or the intake step it targets), each asserting that it
is held. Submissions run in the real bubblewrap sandbox; without bwrap the sandboxed ones skip with the reason."""
import ctypes.util
import importlib.util
import os
import socket
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from neurozoo.leaderboard.db import DONE, FAILED
from neurozoo.leaderboard.sandbox import Limits, sandbox_problem
from neurozoo.leaderboard.scorer import work
from neurozoo.leaderboard.submission import submit
from neurozoo.leaderboard.worker import score_job

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("_lb_sub", HERE / "test_leaderboard_submission.py")
lb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lb)
db = lb.db  # the fixture: a fresh database with the small lbtest.V4 benchmark registered

needs_sandbox = pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox: {sandbox_problem()}")
SECCOMP = ctypes.util.find_library("seccomp")
needs_seccomp = pytest.mark.skipif(SECCOMP is None, reason="libseccomp is not installed (apt-get install libseccomp2)")

HONEST = lb.MODEL.format(mode="ok")


def submission(tmp_path, name, attack="", create_attack="", with_weights=True, **meta):
    """The honest two-layer model of test_leaderboard_submission plus ``attack`` at import time and
    ``create_attack`` inside create_model; ``meta`` changes metadata.yaml (``model_name``: its name)."""
    import yaml

    weights_field = meta.pop("weights", None)
    folder = lb.make_submission(tmp_path / name, name=meta.pop("model_name", name), weights=with_weights, **meta)
    if weights_field is not None:
        changed = {**yaml.safe_load((folder / "metadata.yaml").read_text()), "weights": weights_field}
        (folder / "metadata.yaml").write_text(yaml.safe_dump(changed))
    source = HONEST.replace("def create_model(weights):\n", "def create_model(weights):\n"
                            + textwrap.indent(textwrap.dedent(create_attack), "    ") + "\n")
    (folder / "model.py").write_text(textwrap.dedent(attack) + "\n" + source)
    return folder


def score(db, folder, limits=None, user=None):
    """Submit ``folder`` and score it in the sandbox; returns the submission's row.

    No test bounds the seconds a scoring took (on a loaded machine they stretch without limit): which limit stopped
    a job is told by its error, and a job that ran on past the limit under test is stopped at its wall-clock limit,
    which the error names."""
    submission_id = submit(db, folder, db.url_folder / "store", user=user)
    ids = [j["id"] for j in db.submission(submission_id)["jobs"]]
    work(db, lambda job: score_job(job, limits=limits or Limits(wall_s=120, memory_bytes=3 * 2 ** 30)), ids=ids,
         progress=False)
    return db.submission(submission_id)


@pytest.fixture
def board(db, tmp_path):
    db.url_folder = tmp_path
    return db


def hidden_value(db, row):
    return db.score_for_job(row["jobs"][0], hidden=True).value


# ----------------------------------------------------------------------------------- forged results
@needs_sandbox
def test_forged_result_from_atexit_is_not_read(board, tmp_path):
    honest = score(board, submission(tmp_path, "honest"))
    assert honest["status"] == DONE, honest["jobs"][0]["error"]
    forged = '''
    import atexit, json, os
    channel = os.dup(int(os.environ["NEUROZOO_RESULT_FD"]))  # survives the runner closing its own copy
    def forge():
        record = {"model": "honest", "benchmark": "lbtest.V4", "value": 1.0, "per_bin": [{"value": "x"}]}
        for path in ("result.json", "/tmp/result.json", "../result.json"):
            try:
                open(path, "w").write(json.dumps({"public": record, "hidden": record}))
            except OSError:
                pass
        os.write(channel, json.dumps(record).encode())
    atexit.register(forge)
    '''
    row = score(board, submission(tmp_path, "forger", attack=forged))
    assert row["status"] == FAILED and "more than the requested arrays" in row["jobs"][0]["error"]
    values = [r.value for r in board.leaderboard_records()]
    assert values == [hidden_value(board, honest)] and 1.0 not in values  # the honest model's score is intact


# ---------------------------------------------------------------------- what the model process can see
PROBE = '''
import json, os, socket
FOUND = {{}}
def _try(name, action):
    try:
        FOUND[name] = repr(action())[:80]
    except Exception as error:
        FOUND[name] = "refused " + type(error).__name__
_try("home", lambda: os.listdir({home!r}))
_try("secret", lambda: open({home!r} + "/secret.key").read())
_try("cache", lambda: os.listdir({cache!r}))
_try("database", lambda: open({database!r}, "rb").read(16))
_try("store", lambda: os.listdir({store!r}))
_try("checkout", lambda: os.listdir({checkout!r}))
_try("parent_environ", lambda: [v for v in open("/proc/1/environ").read().split("\\0") if "SECRET" in v or "DB" in v])
_try("host_processes", lambda: len([p for p in os.listdir("/proc") if p.isdigit()]))
_try("env", lambda: sorted(os.environ))
_try("loopback", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
_try("outside", lambda: socket.create_connection(("1.1.1.1", 53), timeout=2))
_try("write_package", lambda: open(os.path.join(os.path.dirname(socket.__file__), "evil.py"), "w"))
import neurozoo.leaderboard as _lb
_try("write_neurozoo", lambda: open(os.path.join(list(_lb.__path__)[0], "evil.py"), "w"))
_try("write_submission", lambda: open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "evil"), "w"))
_try("tmp", lambda: open({scratch!r}, "w").write("ok"))
_try("benchmark", lambda: __import__("neurozoo.benchmarks", fromlist=["load"]).load("lbtest.V4").assembly)
raise SystemExit("\\n".join(f"PROBE {{k}}={{v}}" for k, v in FOUND.items()))
'''


@needs_sandbox
def test_model_process_sees_no_data_database_secrets_network_or_host(board, tmp_path, monkeypatch):
    from neurozoo.benchmarks.extraction.cache import server_secret
    from neurozoo.benchmarks.paths import cache_dir, home

    server_secret()  # exists, as on a server
    other = board.submission(submit(board, submission(tmp_path, "other"), tmp_path / "store"))  # another one, stored
    monkeypatch.setenv("NEUROZOO_DB_SECRET", "postgresql://user:SECRETPASSWORD@db/x")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    scratch = f"/tmp/nz-probe-{os.getpid()}-{time.time_ns()}"  # a name no other test or process uses
    probe = PROBE.format(home=str(home()), cache=str(cache_dir()), database=str(tmp_path / "lb.sqlite"),
                         checkout=str(HERE),  # the tests folder: the checkout's root is not mounted, only packages
                         store=str(tmp_path / "store"), port=listener.getsockname()[1], scratch=scratch)
    row = score(board, submission(tmp_path, "probe", attack=probe))
    listener.close()
    error = row["jobs"][0]["error"]
    assert row["status"] == FAILED and "PROBE " in error, error
    found = dict(line.split("PROBE ", 1)[1].split("=", 1) for line in error.splitlines() if "PROBE " in line)
    for name in ("home", "secret", "cache", "database", "store", "checkout", "loopback", "outside", "write_package",
                 "write_neurozoo", "write_submission", "benchmark"):
        assert found[name].startswith("refused"), (name, found[name])
    assert found["parent_environ"] == "[]" and "SECRETPASSWORD" not in error
    assert int(found["host_processes"]) <= 3  # its own PID namespace: bwrap's init and the job
    assert "NEUROZOO_DB_SECRET" not in found["env"] and "SECRET" not in found["env"]
    assert found["tmp"] == "2" and not Path(scratch).exists()  # a private writable tmpfs
    assert Path(other["folder"]).is_dir() and not (Path(other["folder"]) / "evil").exists()


STORE_PROBE = '''
import os
FOUND = {{}}
for name, action in (("store", lambda: os.listdir({store!r})), ("other", lambda: open({other!r}).read(40))):
    try:
        FOUND[name] = repr(action())[:80]
    except Exception as error:
        FOUND[name] = "refused " + type(error).__name__
raise SystemExit("\\n".join(f"PROBE {{k}}={{v}}" for k, v in FOUND.items()))
'''


@needs_sandbox
def test_a_store_inside_a_bound_folder_is_hidden_from_the_job(board, tmp_path, monkeypatch):
    """The store was hidden only as part of $NEUROZOO_HOME (its default, $NEUROZOO_HOME/submissions): one the operator
    placed elsewhere (zoo serve --submissions, zoo submit --store) inside a folder the sandbox binds (the Python
    environment's) was bound with it, and a job read every other submission's files there (model.py, weights)."""
    from neurozoo.leaderboard import sandbox

    environment = tmp_path / "env"
    store = environment / "store"
    bound = sandbox.environment_paths()
    monkeypatch.setattr(sandbox, "environment_paths", lambda: [*bound, environment])
    other = board.submission(submit(board, submission(tmp_path, "other"), store))
    assert Path(other["folder"]).parent == store and (Path(other["folder"]) / "model.py").is_file()
    probe = STORE_PROBE.format(store=str(store), other=str(Path(other["folder"]) / "model.py"))
    submission_id = submit(board, submission(tmp_path, "probe", attack=probe), store)
    work(board, lambda job: score_job(job, limits=Limits(wall_s=120, memory_bytes=3 * 2 ** 30)),
         ids=[j["id"] for j in board.submission(submission_id)["jobs"]], progress=False)
    error = board.submission(submission_id)["jobs"][0]["error"]
    found = dict(line.split("PROBE ", 1)[1].split("=", 1) for line in error.splitlines() if "PROBE " in line)
    assert found == {"store": "[]", "other": "refused FileNotFoundError"}, error  # an empty tmpfs covers it


HOST_COUNTERS = """
import json, os
read = {}
for name in ("loadavg", "uptime", "stat", "meminfo", "vmstat", "diskstats", "interrupts", "pressure/cpu",
             "sys/fs/file-nr"):
    try:
        read[name] = open("/proc/" + name).read()
    except OSError as error:
        read[name] = "refused " + str(error.errno)
read["cpu_count"] = os.cpu_count()
print(json.dumps(read))
"""


@needs_sandbox
def test_the_hosts_load_memory_and_cpu_counters_are_masked(monkeypatch):
    """/proc/loadavg, /proc/meminfo, /proc/stat (and vmstat, uptime's idle time, interrupts, disk and stall counters,
    the host's open files) are the kernel's counts for the whole host, in no namespace: a job sampling them saw when
    the host, another job or the scorer was busy (here: the host's CPU time, its load, its free memory). Each is now
    a read-only file of the same form with the counters zero, the CPUs /proc/stat lists kept (glibc counts them when
    /sys is missing, as in the sandbox: os.cpu_count() is unchanged) and the job's limit as its memory."""
    import json

    from neurozoo.leaderboard import proc_masks, sandbox

    outcome = sandbox.run([sys.executable, "-c", HOST_COUNTERS], limits=Limits(wall_s=30, memory_bytes=2 ** 30))
    assert outcome.returncode == 0 and outcome.killed is None, outcome
    read = json.loads(outcome.console)
    host_cpus = [line.split()[0] for line in Path("/proc/stat").read_text().splitlines() if line.startswith("cpu")]
    stat_lines = [line.split() for line in read["stat"].splitlines()]
    assert [fields[0] for fields in stat_lines if fields[0].startswith("cpu")] == host_cpus
    assert {value for fields in stat_lines if fields[0] != "btime" for value in fields[1:]} <= {"0", "1"}
    assert read["loadavg"] == "0.00 0.00 0.00 1/1 1\n" and read["uptime"].split()[1] == "0.00"
    memory = {line.split(":")[0]: line.split()[1] for line in read["meminfo"].splitlines()}
    assert (memory["MemTotal"], memory["MemFree"], memory["MemAvailable"], memory["Cached"]) == \
        (str(2 ** 20), str(2 ** 20), str(2 ** 20), "0")
    for name in ("vmstat", "diskstats", "interrupts", "pressure/cpu", "sys/fs/file-nr"):
        assert read[name] == ("" if os.path.exists(f"/proc/{name}") else "refused 2"), (name, read[name][:100])
    assert read["cpu_count"] == len(host_cpus) - 1  # 'cpu' (the sum) and one line per CPU
    monkeypatch.setattr(proc_masks, "masks", lambda memory_bytes: {})  # the CPU count came from /proc/stat before too
    unmasked = json.loads(sandbox.run([sys.executable, "-c", HOST_COUNTERS], limits=Limits(wall_s=30)).console)
    assert unmasked["cpu_count"] == read["cpu_count"] and unmasked["loadavg"] != read["loadavg"]


MORE_HOST_COUNTERS = """
import json, os
read = {}
for name in ("sys/fs/inode-state", "sys/fs/aio-nr", "sys/kernel/pty/nr", "swaps", "slabinfo", "timer_list",
             "vmallocinfo"):
    try:
        read[name] = open("/proc/" + name).read()
    except OSError as error:
        read[name] = "refused " + str(error.errno)
print(json.dumps(read))
"""


@needs_sandbox
def test_the_hosts_inode_aio_pty_swap_and_kernel_memory_counters_are_masked():
    """More host-wide counters of /proc in no namespace, beside those the test above covers: the host's inode counts
    (``sys/fs/inode-state``, inode-nr's twin with more fields: it read 90548 inodes, changing as the host made
    files, while inode-nr read empty), its AIO contexts (``sys/fs/aio-nr``), its pseudo-terminals in use (``sys/kernel
    /pty/nr``: one per terminal session on the host, the operator's logins included), its swap in use (``swaps``) and,
    where the worker runs as root (the job's user is the worker's own outside its namespace, so the owner's read bit
    passes), the kernel's slab and vmalloc use and timers (``slabinfo``, ``vmallocinfo``, ``timer_list``: mode 0400,
    every slab cache's object count, which moves with whatever the host does). Each is now an empty read-only file,
    as ``sys/fs/inode-nr`` is; a file this kernel lacks is refused as before."""
    import json

    from neurozoo.leaderboard import sandbox

    outcome = sandbox.run([sys.executable, "-c", MORE_HOST_COUNTERS], limits=Limits(wall_s=30, memory_bytes=2 ** 30))
    assert outcome.returncode == 0 and outcome.killed is None, outcome
    read = json.loads(outcome.console)
    for name, value in read.items():
        assert value == ("" if os.path.exists(f"/proc/{name}") else "refused 2"), (name, value[:100])


CPUINFO = """
import json, torch
print(json.dumps({"cpuinfo": open("/proc/cpuinfo").read(), "capability": torch.backends.cpu.get_cpu_capability()}))
"""


@needs_sandbox
def test_the_hosts_cpu_frequencies_are_masked_and_torch_sees_the_same_cpu():
    """/proc/cpuinfo's 'cpu MHz' is each CPU's frequency now, which follows the host's load where the host scales it
    (here it read the host's own value, sampled as the job read it). torch reads the file, so it stays, the host's
    line for line, but each frequency is a constant: half its processor's bogomips (measured at boot). torch's CPU
    capability (the vector instructions its kernels use) is the same inside and outside."""
    import json

    import torch

    from neurozoo.leaderboard import sandbox

    outcome = sandbox.run([sys.executable, "-c", CPUINFO], limits=Limits(wall_s=60))
    assert outcome.returncode == 0 and outcome.killed is None, outcome
    read = json.loads(outcome.console)
    host = Path("/proc/cpuinfo").read_text()
    frequency = [line.partition(":")[0].strip().lower().startswith("cpu mhz") for line in host.splitlines()]
    assert [line for line, mhz in zip(read["cpuinfo"].splitlines(), frequency) if not mhz] == \
        [line for line, mhz in zip(host.splitlines(), frequency) if not mhz]  # processors, flags, model kept
    assert len(read["cpuinfo"].splitlines()) == len(frequency)
    for inside, block in zip(read["cpuinfo"].split("\n\n"), host.split("\n\n")):
        fields = [line.partition(":") for line in inside.splitlines()]
        bogomips = [value.strip() for name, _, value in fields if name.strip().lower() == "bogomips"]
        nominal = f"{float(bogomips[0]) / 2:.3f}" if bogomips else "0.000"
        mhz = {value.strip() for name, _, value in fields if name.strip().startswith("cpu MHz")}
        assert mhz <= {nominal}, (block.splitlines()[:1], mhz, nominal)
    assert read["capability"] == torch.backends.cpu.get_cpu_capability()


MODEL_OUTPUT = """
import os, torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
                            torch.nn.Flatten(), torch.nn.Linear(128, 10))
with torch.no_grad():
    out = model(torch.rand(4, 3, 32, 32))
print(os.cpu_count(), torch.get_num_threads(), out.numpy().tobytes().hex())
"""


@needs_sandbox
def test_a_model_computes_the_same_activations_under_the_proc_masks(monkeypatch):
    """torch reads /proc/cpuinfo (kept but its frequencies) and the CPU count (from /proc/stat, masked with its CPUs
    kept): a model's activations, its CPU and thread counts are byte for byte those of a sandbox without the masks."""
    from neurozoo.leaderboard import proc_masks, sandbox

    masked = sandbox.run([sys.executable, "-c", MODEL_OUTPUT], limits=Limits(wall_s=60))
    monkeypatch.setattr(proc_masks, "masks", lambda memory_bytes: {})
    unmasked = sandbox.run([sys.executable, "-c", MODEL_OUTPUT], limits=Limits(wall_s=60))
    assert masked.returncode == 0 and len(masked.console) > 4 * 10 * 4 * 2, masked  # 40 float32s in hex
    assert masked.console == unmasked.console


def test_the_recordings_folder_is_hidden_whether_or_not_its_variable_is_set(monkeypatch, tmp_path):
    """The sandbox covered the recordings' folder (held-out responses among them) only where $NEUROZOO_SHARED_DATA was
    set; unset, the harness reads its default beside the checkout, which a bound Python prefix can hold."""
    from neurozoo.datasets.cache import shared_data_dir
    from neurozoo.leaderboard.sandbox import hidden_paths

    monkeypatch.delenv("NEUROZOO_SHARED_DATA", raising=False)
    assert Path(os.path.realpath(shared_data_dir())) in hidden_paths()
    monkeypatch.setenv("NEUROZOO_SHARED_DATA", str(tmp_path))
    assert Path(os.path.realpath(tmp_path)) in hidden_paths()


# ------------------------------------------------------------------------------------ job lifetime
@needs_sandbox
def test_daemons_die_with_the_job_and_cannot_hold_the_scorer(board, tmp_path):
    marker = f"nz-daemon-{os.getpid()}-{time.time_ns()}"
    daemon = f'''
    import os, subprocess, sys
    if os.fork() == 0:  # a setsid daemon holding stdout, meant to outlive the job
        os.setsid()
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", "{marker}"])
    '''
    row = score(board, submission(tmp_path, "daemon", attack=daemon), limits=Limits(wall_s=60))
    assert row["status"] == DONE, row["jobs"][0]["error"]  # not blocked by the daemon's open pipe to its limit
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                leftovers.append(pid)
        except OSError:
            pass
    assert leftovers == []


MEMORY_HOG = '''
import os
children = []
for _ in range(3):  # three children, each under the limit, together over it
    pid = os.fork()
    if pid == 0:
        block = bytearray(400 * 2 ** 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        import time; time.sleep(60)
        os._exit(0)
    children.append(pid)
import time; time.sleep(60)
'''


@needs_sandbox
@pytest.mark.parametrize("enforcement", ["cgroup-or-watchdog", "watchdog"])
def test_memory_limit_holds_for_the_whole_job(board, tmp_path, monkeypatch, enforcement):
    from neurozoo.leaderboard import sandbox

    if enforcement == "watchdog":
        monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    row = score(board, submission(tmp_path, f"hog-{enforcement}", attack=MEMORY_HOG),
                limits=Limits(wall_s=50, memory_bytes=2 ** 30))
    error = row["jobs"][0]["error"]
    assert row["status"] == FAILED and "memory limit of 1.00 GiB" in error, error  # not the wall-clock limit


FILL_TMPFS = """
import os, sys, time
try:
    open("/dev/evil", "w")
    print("dev writable")
except OSError as error:
    print("dev refused", error.errno)
with open(sys.argv[1] + "/fill", "wb") as handle:
    for _ in range(200):  # under the tmpfs's own cap (the memory limit), but with the heap below, over the limit
        handle.write(b"x" * 2 ** 20)
print("filled", flush=True)
heap = bytearray(150 * 2 ** 20)
for i in range(0, len(heap), 4096):
    heap[i] = 1
time.sleep(20)
"""


@needs_sandbox
@pytest.mark.parametrize("enforcement", ["cgroup-or-watchdog", "watchdog"])
@pytest.mark.parametrize("folder", ["/dev/shm", "/tmp"])
def test_files_in_memory_count_against_the_memory_limit(monkeypatch, enforcement, folder):
    """/tmp and /dev/shm are tmpfs (host memory): without a cgroup the watchdog had counted only resident memory,
    and /dev itself was a writable tmpfs without a size limit, so a job could fill the host's memory."""
    from neurozoo.leaderboard import sandbox

    if enforcement == "watchdog":
        monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    outcome = sandbox.run([sys.executable, "-c", FILL_TMPFS, folder],
                          limits=Limits(memory_bytes=256 * 2 ** 20, wall_s=30))
    # killed for its memory, not at the wall-clock limit (nor ended on its own, 20 s after filling)
    assert outcome.killed and "memory limit of 0.25 GiB" in outcome.killed, (outcome.killed, outcome.console)
    assert b"dev refused 30" in outcome.console  # EROFS


WRITE_EACH = """
import sys
for folder in sys.argv[1:]:
    try:
        with open(folder.rstrip("/") + "/written", "wb") as handle:
            handle.write(b"x" * 2 ** 20)
        print("wrote", folder, flush=True)
    except OSError as error:
        print("refused", folder, error.errno, flush=True)
"""


@needs_sandbox
def test_the_sandboxs_root_and_the_folders_bwrap_makes_in_it_are_read_only(monkeypatch):
    """bwrap's root is a tmpfs holding the folders it makes for its mounts (/etc for the loader's files, the
    parents of the Python environment and of neurozoo's folders): it was writable, and not a mount the watchdog counts
    (/tmp, /dev/shm), so without a cgroup a job's files there were host memory no limit saw: 200 MiB written to /etc
    beside a 150 MiB heap ran to its end under a 256 MiB limit (that tmpfs holds up to half the host's memory)."""
    from neurozoo.leaderboard import sandbox

    monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    made = sorted({str(Path(*path.parts[:2])) for path in sandbox.environment_paths()} - {"/usr", "/tmp"})
    folders = ["/", "/etc", *made]
    outcome = sandbox.run([sys.executable, "-c", WRITE_EACH, *folders, "/tmp", "/dev/shm"],
                          limits=Limits(memory_bytes=256 * 2 ** 20, wall_s=30))
    console = outcome.console.decode()
    assert outcome.returncode == 0 and outcome.killed is None, console
    for folder in folders:
        assert f"refused {folder} 30" in console, (folder, console)  # EROFS
    assert "wrote /tmp" in console and "wrote /dev/shm" in console  # the job's own, counted, tmpfs mounts


OPEN_SYSCTLS_FOR_WRITING = """
import os, sys
for path in sys.argv[1:]:
    try:
        os.close(os.open(path, os.O_WRONLY))  # opened only: nothing is written
        print("opened", path)
    except OSError as error:
        print("refused", path, error.errno)
print("read", open("/proc/sys/vm/swappiness").read().strip())
"""


@needs_sandbox
def test_the_hosts_kernel_settings_in_proc_sys_are_read_only_in_the_sandbox():
    """bwrap covers /proc/sys with a read-only mount only where its own access(W_OK) on the folder passes, and the
    folder says no to everyone (r-xr-xr-x): left writable. The kernel lets a sysctl be written by whoever's user is
    root outside every namespace, capabilities or not, and the job's user is the worker's own there: a job of a worker
    run as root (as on the development host and in CI) changed the host's settings (vm.swappiness 60 -> 61, read on
    the host after the job; 764 of them opened for writing), kernel.core_pattern among them, whose '|program' the
    kernel runs as root on the host at the next crash. /proc/sys is now bound read-only: readable, never written.
    (A worker of another user is refused by the files' modes either way.)"""
    from neurozoo.leaderboard import sandbox

    sysctls = [path for path in ("/proc/sys/vm/swappiness", "/proc/sys/kernel/core_pattern") if os.path.exists(path)]
    outcome = sandbox.run([sys.executable, "-c", OPEN_SYSCTLS_FOR_WRITING, *sysctls], limits=Limits(wall_s=30))
    console = outcome.console.decode()
    assert outcome.returncode == 0 and outcome.killed is None, console
    assert sysctls and "opened" not in console, console
    for path in sysctls:
        assert f"refused {path}" in console, console
    assert f"read {Path('/proc/sys/vm/swappiness').read_text().strip()}" in console  # readable as before


@needs_sandbox
def test_where_the_workers_proc_has_no_sysctls_the_sandboxs_are_covered_not_bound(monkeypatch):
    """A worker whose /proc is mounted subset=pid has no /proc/sys to bind read-only: bwrap would fail to start every
    job. The sandbox's own /proc/sys is then covered by an empty read-only tmpfs: the job sees no sysctl, as the worker
    does, and writes none."""
    from neurozoo.leaderboard import sandbox

    hidden = lambda path: str(path) == "/proc/sys" or str(path).startswith("/proc/sys/")
    isdir, exists = os.path.isdir, os.path.exists
    monkeypatch.setattr(os.path, "isdir", lambda path: False if hidden(path) else isdir(path))
    monkeypatch.setattr(os.path, "exists", lambda path: False if hidden(path) else exists(path))
    assert sandbox.read_only_sysctls()[0] == "--tmpfs"
    code = "import os; print(sorted(os.listdir('/proc/sys')))\n" + OPEN_SYSCTLS_FOR_WRITING.split("print(\"read\"")[0]
    outcome = sandbox.run([sys.executable, "-c", code, "/proc/sys/vm/swappiness"], limits=Limits(wall_s=30))
    console = outcome.console.decode()
    assert outcome.returncode == 0 and outcome.killed is None, console
    assert console.splitlines()[0] == "[]" and "refused /proc/sys/vm/swappiness" in console, console


@needs_sandbox
def test_the_tmpfs_covering_a_hidden_folder_inside_a_bound_one_is_read_only(monkeypatch, tmp_path):
    """A hidden folder ($NEUROZOO_HOME, the cache, $HOME, the recordings) inside a bound one is covered by a tmpfs, which
    was writable by the job, of no size cap and not a mount the watchdog counts (/tmp, /dev/shm): without a cgroup its
    files were host memory no limit saw, as in bwrap's root before it was made read-only."""
    from neurozoo.leaderboard import sandbox

    environment = tmp_path / "env"
    secret = environment / "home"
    secret.mkdir(parents=True)
    (secret / "secret.key").write_bytes(b"K" * 32)
    bound = sandbox.environment_paths()
    monkeypatch.setattr(sandbox, "environment_paths", lambda: [*bound, environment])
    monkeypatch.setattr(sandbox, "hidden_paths", lambda: [secret])
    monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    probe = WRITE_EACH + "import os; print('holds', os.listdir(sys.argv[1]), flush=True)\n"
    outcome = sandbox.run([sys.executable, "-c", probe, str(secret), str(environment)],
                          limits=Limits(memory_bytes=256 * 2 ** 20, wall_s=30))
    console = outcome.console.decode()
    assert outcome.returncode == 0 and outcome.killed is None, console
    assert f"refused {secret} 30" in console and f"refused {environment} 30" in console, console  # EROFS
    assert "holds []" in console, console  # covered: the key is not seen
    assert not (secret / "written").exists()


@needs_sandbox
@pytest.mark.parametrize("spelled", ["through the link", "resolved"])
def test_a_hidden_folder_under_a_bound_folder_reached_through_a_link_is_covered(monkeypatch, tmp_path, spelled):
    """A bound folder is mounted at the path it is named by, a link's target under the link's name (a virtual
    environment ``/opt/env`` linked to ``/data/env``); a hidden folder was compared by its resolved path with the bound
    folders' names as given, so a store in that environment (``/data/env/store``, or ``/opt/env/store`` as the operator
    named it) was never inside one, left uncovered, and the job listed every submission at ``/opt/env/store``."""
    from neurozoo.leaderboard import sandbox

    real = tmp_path / "real"
    (real / "store" / "other").mkdir(parents=True)
    (real / "store" / "other" / "model.py").write_text("secret")
    link = tmp_path / "env"
    link.symlink_to(real, target_is_directory=True)
    store = link / "store" if spelled == "through the link" else real / "store"
    bound = sandbox.environment_paths()
    monkeypatch.setattr(sandbox, "environment_paths", lambda: [*bound, link])
    probe = "import os, sys; print('holds', sorted(os.listdir(sys.argv[1])), flush=True)"
    outcome = sandbox.run([sys.executable, "-c", probe, str(link / "store")], hidden=[str(store)],
                          limits=Limits(memory_bytes=256 * 2 ** 20, wall_s=30))
    console = outcome.console.decode()
    assert outcome.returncode == 0 and outcome.killed is None, console
    assert "holds []" in console, console  # covered where the job sees it: under the link's name


@needs_sandbox
def test_a_store_inside_a_hidden_folder_inside_a_bound_one_lets_the_job_start(monkeypatch, tmp_path):
    """The default store ($NEUROZOO_HOME/submissions), hidden itself since the store is, lies inside
    $NEUROZOO_HOME, hidden too: where that lay inside a bound folder, bwrap covered $NEUROZOO_HOME with an empty
    read-only tmpfs, then had no folder in it to mount the store's on, and every job failed to start."""
    from neurozoo.leaderboard import sandbox

    environment = tmp_path / "env"
    home = environment / "home"
    (home / "submissions" / "other").mkdir(parents=True)
    bound = sandbox.environment_paths()
    monkeypatch.setattr(sandbox, "environment_paths", lambda: [*bound, environment])
    monkeypatch.setattr(sandbox, "hidden_paths", lambda: [home])
    probe = "import os, sys; print('holds', sorted(os.listdir(sys.argv[1])), flush=True)"
    outcome = sandbox.run([sys.executable, "-c", probe, str(home)], hidden=[str(home / "submissions")],
                          limits=Limits(memory_bytes=256 * 2 ** 20, wall_s=30))
    console = outcome.console.decode()
    assert outcome.returncode == 0 and outcome.killed is None, console
    assert "holds []" in console, console


MANY_FOLDERS = """
import os, sys, time
for i in range(200000):  # empty: no data block, only the kernel's inode and name for each
    os.mkdir(f"{sys.argv[1]}/d{i}_" + "x" * 200)
print("made them all", flush=True)
time.sleep(20)
"""


@needs_sandbox
@pytest.mark.parametrize("enforcement", ["cgroup-or-watchdog", "watchdog"])
def test_empty_files_in_memory_count_against_the_memory_limit(monkeypatch, enforcement):
    """Without a cgroup the watchdog counted a tmpfs's data blocks only: a job under a 256 MiB limit made 1.17
    million empty folders in /tmp in 20 s, 1.46 GiB of host kernel memory (inodes and names) that no limit saw,
    and with the default 30 min would have gone on to the host's whole memory."""
    from neurozoo.leaderboard import sandbox

    if enforcement == "watchdog":
        monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    outcome = sandbox.run([sys.executable, "-c", MANY_FOLDERS, "/tmp"], limits=Limits(memory_bytes=128 * 2 ** 20,
                                                                                        wall_s=60))
    # 200000 folders are 390 MiB at INODE_BYTES: killed for its memory, not at the wall clock, nor ended by itself
    assert outcome.killed and "memory limit of 0.12 GiB" in outcome.killed, (outcome.killed, outcome.console[-300:])
    assert b"made them all" not in outcome.console


MEMFD = """
import os, time
files = [os.memfd_create(f"m{i}") for i in range(4)]  # anonymous files: in no folder, in no process's resident size
for i in range(400):
    os.write(files[i % 4], b"x" * 2 ** 20)
print("filled", flush=True)
time.sleep(20)
"""


@needs_sandbox
@pytest.mark.parametrize("enforcement", ["cgroup-or-watchdog", "watchdog"])
def test_anonymous_memory_files_count_against_the_memory_limit(monkeypatch, enforcement):
    """memfd_create's files are shared memory in no mount and, written but not mapped, in no process's resident
    size: without a cgroup the watchdog saw none of the 400 MiB a job under a 128 MiB limit wrote to them (nor does
    RLIMIT_AS bound them), and it ended by itself. The filter now refuses memfd_create (below); the watchdog still
    counts the files held open, for an operator who runs without the filter."""
    from neurozoo.leaderboard import sandbox, seccomp

    monkeypatch.setenv(seccomp.OPT_OUT, "1")
    if enforcement == "watchdog":
        monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    outcome = sandbox.run([sys.executable, "-c", MEMFD], limits=Limits(memory_bytes=128 * 2 ** 20, wall_s=60))
    assert outcome.killed and "memory limit of 0.12 GiB" in outcome.killed, (outcome.killed, outcome.console[-300:])


MAPPED_MEMFD = """
import ctypes, errno, mmap, os, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
for i in range(8):
    try:
        fd = os.memfd_create(f"m{i}")
    except OSError as error:
        raise SystemExit("memfd_create refused " + errno.errorcode[error.errno])
    for _ in range(48):  # 48 MiB open at a time: under the limit while the watchdog sees the descriptor
        os.write(fd, b"x" * 2 ** 20)
    libc.mmap(None, mmap.PAGESIZE, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED: one page mapped keeps the whole file
    os.close(fd)
    time.sleep(0.5)
print("held MiB", 8 * 48, flush=True)
time.sleep(5)
"""


@needs_sandbox
@needs_seccomp
def test_anonymous_memory_files_are_refused(monkeypatch):
    """A memory file stays alive while any page of it is mapped: a job wrote 48 MiB to a memfd, mapped one page with
    libc's mmap (Python's mmap keeps a duplicate descriptor, which the watchdog counts), closed the descriptor and
    did it again: without a cgroup it held 384 MiB under a 128 MiB limit, in no process's resident size, no mount and
    no open file, unseen. The filter refuses memfd_create (and memfd_secret) with ENOSYS."""
    from neurozoo.leaderboard import sandbox

    monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    outcome = sandbox.run([sys.executable, "-c", MAPPED_MEMFD], limits=Limits(memory_bytes=128 * 2 ** 20, wall_s=60))
    assert outcome.killed is None and b"memfd_create refused ENOSYS" in outcome.console, (outcome.killed,
                                                                                          outcome.console)


KERNEL_BUFFERS = {"sockets": """
import os, socket, time
for _ in range(3):  # four processes
    if os.fork() == 0:
        break
held, queued = [], 0
for _ in range(450):
    a, b = socket.socketpair()  # data sent and not read is the kernel's memory, in no process's resident size
    a.setblocking(False)
    try:
        while True:
            queued += a.send(b"x" * 65536)
    except BlockingIOError:
        held.append((a, b))
print("queued MiB", queued >> 20, flush=True)
time.sleep(10)
""", "epoll": """
import os, select, time
for _ in range(3):  # four processes
    if os.fork() == 0:
        break
targets = [os.eventfd(0) for _ in range(500)]
polls = [select.epoll() for _ in range(500)]
for poll in polls:
    for target in targets:
        poll.register(target, select.EPOLLIN)  # a watch: about 200 bytes of kernel memory
print("watching", flush=True)
time.sleep(10)
"""}


@needs_sandbox
@pytest.mark.parametrize("held", ["sockets", "epoll"])
def test_kernel_buffers_count_against_the_memory_limit_without_a_cgroup(monkeypatch, held):
    """Without a cgroup the watchdog saw none of the kernel memory behind a job's open files: four processes under a
    128 MiB limit held 400 MiB in socket pairs (more with SO_SNDBUF raised to the host's wmem_max), or a million epoll
    watches (200 MB of unreclaimable slab; the host allows 4% of its memory), and ended by themselves. Each socket now
    counts at the most its buffers can hold, each pipe at its default capacity, each epoll watch EPOLL_WATCH_BYTES."""
    from neurozoo.leaderboard import sandbox

    monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    outcome = sandbox.run([sys.executable, "-c", KERNEL_BUFFERS[held]], limits=Limits(memory_bytes=128 * 2 ** 20,
                                                                                      wall_s=60))
    assert outcome.killed and "memory limit of 0.12 GiB" in outcome.killed, (outcome.killed, outcome.console[-300:])


SMALL_KERNEL_OBJECTS = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
made = []
while True:
    fd = libc.timerfd_create(1, 0) if len(made) % 2 else libc.eventfd(0, 0)  # CLOCK_MONOTONIC
    if fd < 0:
        break
    made.append(fd)
print(len(made), errno.errorcode[ctypes.get_errno()])
"""


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfd_open")
def test_small_kernel_objects_behind_descriptors_count_against_the_memory_limit():
    """The watchdog counted the kernel memory of memory files, pipes, sockets and epoll instances held open, but
    nothing for the other descriptors: an eventfd, timerfd, signalfd or pidfd is 200 to 460 bytes of unreclaimable
    slab each, in no process's resident size, so without a cgroup a job of 256 processes at 1024 descriptors each could
    hold 114 MiB of them unseen. Each descriptor the watchdog does not count otherwise now counts OPEN_FILE_BYTES."""
    import ctypes
    import signal

    from neurozoo.leaderboard import sandbox

    libc = ctypes.CDLL(None, use_errno=True)
    mask = ctypes.c_uint64(1 << (signal.SIGUSR2 - 1))
    before = sandbox.open_files([os.getpid()])
    held = []
    try:
        for _ in range(50):
            held += [os.eventfd(0), libc.timerfd_create(time.CLOCK_MONOTONIC, 0),
                     libc.signalfd(-1, ctypes.byref(mask), 0), os.pidfd_open(os.getpid())]
        assert min(held) >= 0, os.strerror(ctypes.get_errno())
        after = sandbox.open_files([os.getpid()])
    finally:
        for fd in held:
            if fd >= 0:
                os.close(fd)
    assert after[0] - before[0] >= 200 * 455  # each at least a timerfd's slab, the largest measured
    assert (after[0] - before[0], after[1] - before[1]) == (200 * sandbox.OPEN_FILE_BYTES, 0)


@needs_sandbox
def test_a_sandboxed_process_holds_at_most_1024_descriptors():
    """What bounds those objects with or without a cgroup: RLIMIT_NOFILE, 1024 descriptors a process."""
    from neurozoo.leaderboard import sandbox

    outcome = sandbox.run([sys.executable, "-c", SMALL_KERNEL_OBJECTS], limits=Limits(wall_s=30))
    made, why = outcome.console.split()
    assert 1000 <= int(made) <= sandbox.MAX_OPEN_FILES - 3 and why == b"EMFILE", outcome


MANY_MAPS = """
import ctypes, mmap, os, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
for _ in range(9):  # ten processes
    if os.fork() == 0:
        break
pages = 24000  # 94 MiB of address space, under RLIMIT_AS
base = libc.mmap(None, pages * mmap.PAGESIZE, 0, 0x4022, -1, 0)  # PROT_NONE; private, anonymous, no reserve
for page in range(0, pages, 2):  # every other page readable: no two neighbours merge, one map per page
    libc.mprotect(base + page * mmap.PAGESIZE, mmap.PAGESIZE, 1)
print("mapped", flush=True)
time.sleep(3)
"""


@needs_sandbox
def test_memory_maps_count_against_the_memory_limit_without_a_cgroup(monkeypatch):
    """Each memory map (VMA) is kernel memory in no resident size, as are page tables: 25 processes under a 256 MiB
    limit, each alternating the protection of the pages of a 195 MiB mapping, held 270 MiB of unreclaimable slab beside
    207 MiB resident, and ended by themselves. The watchdog now counts each process's page tables and its maps at the
    most it can have (one per page mapped, vm.max_map_count at most)."""
    from neurozoo.leaderboard import sandbox

    monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    outcome = sandbox.run([sys.executable, "-c", MANY_MAPS], limits=Limits(memory_bytes=128 * 2 ** 20, wall_s=60))
    assert outcome.killed and "memory limit of 0.12 GiB" in outcome.killed, (outcome.killed, outcome.console[-300:])


EPOLL_WATCHES = """
import os, select, time
targets = [os.eventfd(0) for _ in range(500)]
polls = [select.epoll() for _ in range(40)]
for poll in polls:
    for target in targets:
        poll.register(target, select.EPOLLIN)
print("watching", 40 * 500, flush=True)
time.sleep(5)
"""


@needs_sandbox
@pytest.mark.parametrize("enforcement", ["cgroup-or-watchdog", "watchdog"])
def test_a_job_holds_at_most_an_eighth_of_the_host_users_epoll_watches(monkeypatch, enforcement):
    """Epoll watches are charged to the host user the job's uid maps to (fs.epoll.max_user_watches, 5.5 million here),
    with a cgroup or without: a job under the default 8 GiB limit could take them all, and every process of the
    operator's user, the web server's event loop among them, could then watch no new connection until it ended. A job
    may now hold an eighth of them (here, with the limit lowered to 10000, 20000 watches end the job)."""
    from neurozoo.leaderboard import sandbox

    if enforcement == "watchdog":
        monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    monkeypatch.setattr(sandbox, "epoll_watch_limit", lambda: 10000)
    outcome = sandbox.run([sys.executable, "-c", EPOLL_WATCHES], limits=Limits(wall_s=60))
    assert outcome.killed == "it held more than 10000 epoll watches, an eighth of the host user's quota", outcome


SYSTEM_V_SEGMENTS = """
import ctypes, errno, time
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
size, held = 64 * 2 ** 20, 0
for _ in range(6):
    ident = libc.shmget(0, size, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    if ident < 0:
        raise SystemExit("shmget refused " + errno.errorcode[ctypes.get_errno()])
    address = libc.shmat(ident, None, 0)
    ctypes.memset(address, 1, size)  # its pages: resident in this process only while attached
    libc.shmdt(ctypes.c_void_p(address))
    held += size
print("held MiB", held >> 20, flush=True)
time.sleep(5)
"""


@needs_sandbox
@needs_seccomp
def test_system_v_shared_memory_is_refused(monkeypatch):
    """A System V segment outlives its detaching in the job's IPC namespace, in no process's resident size and in no
    mount: without a cgroup, a job under a 128 MiB limit held 384 MiB in six detached segments, unseen. The filter
    refuses System V IPC (shmget, msgget, semget: EPERM); POSIX shared memory is a file in the counted /dev/shm."""
    from neurozoo.leaderboard import sandbox

    monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    outcome = sandbox.run([sys.executable, "-c", SYSTEM_V_SEGMENTS], limits=Limits(memory_bytes=128 * 2 ** 20, wall_s=60))
    assert outcome.killed is None and b"shmget refused EPERM" in outcome.console, (outcome.killed, outcome.console)


BOMBS = {"forks": """
import os, time
made = 0
for _ in range(120):
    try:
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        made += 1
    except OSError:
        break
print("made", made, flush=True)
time.sleep(2)
""", "threads": """
import threading, time
threading.stack_size(65536)
made, release = 0, threading.Event()
try:
    for _ in range(3000):
        threading.Thread(target=release.wait, daemon=True).start()
        made += 1
except RuntimeError:
    pass
print("made", made, flush=True)
time.sleep(5)
"""}


@needs_sandbox
@pytest.mark.parametrize("enforcement", ["cgroup-or-watchdog", "watchdog"])
@pytest.mark.parametrize("bomb", ["forks", "threads"])
def test_processes_and_threads_are_limited_with_or_without_a_pids_cgroup(monkeypatch, enforcement, bomb):
    """Without a writable cgroup nothing had limited the job's processes: a fork bomb could fill the host's
    process table. The watchdog then counted processes only, while a pids cgroup counts threads too (each takes a
    host PID): one process ran 3000 threads under a limit of 40, and could have filled the host's PID table (32768
    here). The watchdog now counts both."""
    from neurozoo.leaderboard import sandbox

    if enforcement == "watchdog":
        monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    outcome = sandbox.run([sys.executable, "-c", BOMBS[bomb]], limits=Limits(wall_s=30, max_processes=40))
    if outcome.killed is None:  # a pids cgroup refused the task past the limit
        made = int(outcome.console.split(b"made ")[1].split()[0])
        assert enforcement != "watchdog" and 20 <= made < 40, outcome
    else:
        assert outcome.killed == "it ran more than the limit of 40 processes (threads included)", outcome.console


KERNEL_CALLS = """
import ctypes, errno, fcntl, os, resource, sys
libc = ctypes.CDLL(None, use_errno=True)
S = ctypes.c_char_p
_, pipe_end = os.pipe()
F_SETPIPE_SZ = 1031
ARGS = {"fcntl": (pipe_end, ctypes.c_long(F_SETPIPE_SZ | 1 << 32), 1 << 20),  # upper bits the kernel drops
        "add_key": (S(b"user"), S(b"nz"), S(b"x"), 1, -2), "keyctl": (0, -4, 0), "request_key": (S(b"user"), S(b"nz"), None, -2),
        "inotify_init": (), "inotify_init1": (0,), "inotify_add_watch": (-1, S(b"/tmp"), 0xfff),
        "fanotify_init": (0, 0), "fanotify_mark": (-1, 1, 1, -100, S(b"/tmp")), "io_uring_setup": (1, None),
        "perf_event_open": (None, 0, -1, -1, 0), "userfaultfd": (1,), "bpf": (0, None, 0)}
def outcome(result):
    return "ok" if result >= 0 else errno.errorcode[ctypes.get_errno()]
for name, number in (a.split("=") for a in sys.argv[1:]):
    print(name, outcome(libc.syscall(int(number), *ARGS[name])))
print("msgqueue", resource.getrlimit(resource.RLIMIT_MSGQUEUE),
      outcome(libc.mq_open(S(b"/nz"), os.O_CREAT | os.O_RDWR, 0o600, None)))
print("userns", outcome(libc.unshare(0x10000000)))  # CLONE_NEWUSER
print("inet", outcome(libc.socket(2, 1, 0)), outcome(libc.socket(1, 1, 0)))  # AF_INET, AF_UNIX; SOCK_STREAM
event, timer = (ctypes.c_int * 16)(0, 0, 0, 1), ctypes.c_void_p()  # a struct sigevent with SIGEV_NONE
timers = next((n for n in range(5000) if libc.timer_create(1, event, ctypes.byref(timer)) != 0), 5000)
print("timers", timers, outcome(-1))
def refused(action):
    try:
        action()
        return "ok"
    except OSError as error:
        return errno.errorcode[error.errno]
print("pipe_size", refused(lambda: fcntl.fcntl(pipe_end, F_SETPIPE_SZ, 1 << 20)))
print("pty", refused(os.openpty))
"""


def kernel_calls(names, **kwargs):
    """{name: 'ok' or the errno's name} for each system call of ``KERNEL_CALLS`` (its number from libseccomp),
    plus 'msgqueue' and 'userns', made in the sandbox."""
    from neurozoo.leaderboard import sandbox

    resolve = ctypes.CDLL(SECCOMP).seccomp_syscall_resolve_name if names else None
    argv = [f"{name}={resolve(name.encode())}" for name in names]
    outcome = sandbox.run([sys.executable, "-c", KERNEL_CALLS, *argv], limits=Limits(wall_s=30), **kwargs)
    assert outcome.returncode == 0 and outcome.killed is None, outcome
    return dict(line.split(" ", 1) for line in outcome.console.decode().splitlines())


FILTERED = ["add_key", "keyctl", "request_key", "inotify_init", "inotify_init1", "inotify_add_watch", "fanotify_init",
            "fanotify_mark"]


@needs_sandbox
@needs_seccomp
def test_kernel_keyrings_and_file_watches_are_refused_in_the_sandbox():
    """Keys (add_key, keyctl, request_key) live in the kernel's keyrings, some outside every namespace of the job: a
    job found the host user's own keyrings in /proc/keys ('_uid.0' where the operator is root) and added keys to them,
    which outlived it and which the next job read (a channel between submissions), against the host user's key quota. inotify and fanotify watches on the folders bound from the host (the Python
    environment, the checkout's packages) report the host's own reads of them: when another job or the scorer runs.
    A seccomp filter now refuses each with EPERM (inotify_add_watch and fanotify_mark whatever their descriptor)."""
    calls = kernel_calls(FILTERED)
    assert {name: calls[name] for name in FILTERED} == {name: "EPERM" for name in FILTERED}


@needs_sandbox
@needs_seccomp
def test_the_sandbox_makes_unix_sockets_only_and_no_io_uring():
    """The job has no network, yet made TCP sockets on its loopback: a connection holds megabytes of the host's memory
    in its buffers (tcp_rmem, tcp_wmem), in no process's resident size, and counts against the host's TCP memory.
    io_uring runs operations (sockets among them) that no seccomp filter sees. Both are refused (EPERM)."""
    calls = kernel_calls(["io_uring_setup"])
    assert (calls["inet"], calls["io_uring_setup"]) == ("EPERM ok", "EPERM")


@needs_sandbox
@needs_seccomp
def test_kernel_interfaces_that_exploits_use_are_refused():
    """perf_event_open, userfaultfd (user-mode faults: unprivileged since Linux 5.11) and bpf serve no model, and
    each has a long record of kernel exploits; perf counters also time the code of whatever shares the core."""
    calls = kernel_calls(["perf_event_open", "userfaultfd", "bpf"])
    assert [calls[name] for name in ("perf_event_open", "userfaultfd", "bpf")] == ["EPERM"] * 3


@needs_sandbox
def test_posix_message_queues_and_queued_signals_are_bounded_in_the_sandbox():
    """A POSIX message queue is kernel memory charged to the host user's RLIMIT_MSGQUEUE (800 KiB), not to the job:
    the job could use it up for every process of that user, and the watchdog saw none of it. The job's limit is 0.
    Likewise each POSIX timer takes one of the host user's queued signals (RLIMIT_SIGPENDING, 96361 here, counted
    for the user's every process): a job made them all. It may now make 256 at most."""
    calls = kernel_calls([])
    assert calls["msgqueue"] == "(0, 0) EMFILE"
    timers, why = calls["timers"].split()
    assert 200 <= int(timers) <= 256 and why == "EAGAIN", calls["timers"]  # less the signals the job's others hold


QUEUED_SOCKETS = {"in-flight": """
import array, socket
keep, holder = socket.socketpair()
def hold():  # a socket sent over `holder` and closed lives on in the queue of `keep`, in no process's descriptors
    x, y = socket.socketpair()
    holder.sendmsg([b"!"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [x.fileno()]))])
    x.close()
    return y
""", "datagrams": """
import socket
receivers = []
def hold():  # up to 11 messages queue at a receiver, each kept after its sender is closed
    if len(receivers) * 11 <= made[0]:
        receivers.append(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
        receivers[-1].bind(f"\\0nz-dgram-{len(receivers)}")
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.connect(receivers[-1].getsockname())
    return sender
"""}
for backlog in (4096, 128):  # 128: the filter's largest
    QUEUED_SOCKETS[f"backlog {backlog}"] = f"""
import socket
listeners = []
def hold():  # a connection the listener never accepts keeps what its closed client sent
    if len(listeners) * {backlog + 1} <= made[0]:
        listeners.append(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        listeners[-1].bind(f"\\0nz-listener-{{len(listeners)}}")
        listeners[-1].listen({backlog})
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(listeners[-1].getsockname())
    return client
"""
HOLD_SOCKETS = """
import errno, socket, time
made = [0]
try:
%s
    held = 0
    while held < 256 * 2 ** 20:
        sender = hold()
        made[0] += 1
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 30)  # the host's wmem_max, doubled
        size = sender.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2
        sender.setblocking(False)
        try:
            while True:
                held += sender.send(b"x" * size)
        except BlockingIOError:
            pass
        sender.close()  # what it sent stays queued
except PermissionError as error:
    raise SystemExit("refused " + errno.errorcode[error.errno])
print("held MiB", held >> 20, flush=True)
time.sleep(5)
"""


@needs_sandbox
@needs_seccomp
@pytest.mark.parametrize("queue", QUEUED_SOCKETS)
def test_unix_socket_queues_that_outlive_their_senders_are_refused_or_counted(monkeypatch, queue):
    """The watchdog counted each socket a process holds open at what its buffer holds at most, but a socket's queue
    can hold what closed sockets sent: without a cgroup, a job under a 128 MiB limit held 604 MiB in sockets sent in
    flight over a socket pair and closed (in no process's descriptors), 308 MiB in 7 datagram sockets, each holding 11
    messages of 4 MiB from closed senders, and 604 MiB in connections that one listening socket (backlog 4096) never
    accepted; each ended by itself. The filter now refuses sendmsg, datagram sockets and a backlog over 128, and the
    watchdog counts each connection waiting at a listening socket."""
    from neurozoo.leaderboard import sandbox

    monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    attack = HOLD_SOCKETS % textwrap.indent(QUEUED_SOCKETS[queue], "    ")
    outcome = sandbox.run([sys.executable, "-c", attack], limits=Limits(memory_bytes=128 * 2 ** 20, wall_s=60))
    if queue == "backlog 128":
        assert outcome.killed and "memory limit of 0.12 GiB" in outcome.killed, (outcome.killed, outcome.console)
    else:
        assert outcome.killed is None and outcome.console.strip().endswith(b"refused EPERM"), (outcome.killed,
                                                                                             outcome.console[-300:])


STREAM_PAIRS = """
import multiprocessing, socket, torch
from torch.utils.data import DataLoader
torch.multiprocessing.set_sharing_strategy("file_system")  # the default passes descriptors (sendmsg)
batches = [b.tolist() for b in DataLoader(torch.arange(4.0), batch_size=2, num_workers=2)]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind("\\0nz-server")
server.listen()  # Python's default backlog, 128
a, b = socket.socketpair()
a.sendall(b"x" * 100000)
received = b""
while len(received) < 100000:
    received += b.recv(100000)
ours, theirs = multiprocessing.Pipe()
ours.send({"k": 1})
with multiprocessing.get_context("fork").Pool(2) as pool:
    print(len(received), theirs.recv(), pool.map(abs, [-1, -2, 3]), batches)
"""


@needs_sandbox
@needs_seccomp
def test_stream_socket_pairs_and_multiprocessing_work_in_the_sandbox():
    """What the socket refusals above leave: socket pairs, a listening socket of Python's default backlog,
    multiprocessing's Pipe and a fork Pool, and DataLoader workers sharing tensors through files (torch's shared-memory
    manager listens with a backlog of 10)."""
    from neurozoo.leaderboard import sandbox

    outcome = sandbox.run([sys.executable, "-c", STREAM_PAIRS], limits=Limits(wall_s=60))
    assert outcome.console == b"100000 {'k': 1} [1, 2, 3] [[0.0, 1.0], [2.0, 3.0]]\n", outcome


@needs_sandbox
@needs_seccomp
def test_pipes_cannot_be_enlarged_and_no_pseudo_terminal_opens():
    """A pipe enlarged to 1 MiB (F_SETPIPE_SZ) holds 16 times what the watchdog counts for it: a job under a 128 MiB
    limit held 60 MiB more so, until the host user's pipe quota (fs.pipe-user-pages-soft, 64 MiB, shared with the
    operator's own processes) ran out. A pseudo-terminal (/dev/ptmx) is kernel memory the watchdog counts at nothing,
    and all but the host's reserve are shared by every container: a job held 1500 of the 3072. The filter refuses
    F_SETPIPE_SZ (its upper 32 bits, which the kernel drops, set or not); /dev/pts is an empty read-only tmpfs."""
    calls = kernel_calls(["fcntl"])
    assert (calls["fcntl"], calls["pipe_size"], calls["pty"]) == ("EPERM", "EPERM", "ENOENT"), calls


OWN_TMPFS = "unshare -Urm sh -c 'mount -t tmpfs none /tmp && head -c 300000000 /dev/zero > /tmp/fill && echo filled'"


@needs_sandbox
@pytest.mark.parametrize("bwrap_refuses", [True, False], ids=["disable-userns", "seccomp"])
def test_the_sandbox_cannot_make_nested_user_namespaces(monkeypatch, bwrap_refuses):
    """In a user namespace of its own a job is root again, with every capability over the mounts and namespaces it
    makes there: without a cgroup, a job under a 128 MiB limit mounted a tmpfs of its own and held 300 MiB in it,
    unseen by the watchdog (it counts the sandbox's /tmp and /dev/shm). bwrap's --disable-userns now refuses it
    (ENOSPC: a limit of one namespace); where bwrap is older than 0.8, the seccomp filter refuses unshare and clone
    with CLONE_NEWUSER (EPERM)."""
    from neurozoo.leaderboard import sandbox

    if bwrap_refuses and not sandbox.bwrap_disables_userns():
        pytest.skip("bwrap older than 0.8 has no --disable-userns")
    if not bwrap_refuses:
        if SECCOMP is None:
            pytest.skip("libseccomp is not installed (apt-get install libseccomp2)")
        monkeypatch.setattr(sandbox, "bwrap_disables_userns", lambda: False)
    assert kernel_calls([])["userns"] == ("ENOSPC" if bwrap_refuses else "EPERM")
    monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    outcome = sandbox.run(["/bin/sh", "-c", OWN_TMPFS], limits=Limits(memory_bytes=128 * 2 ** 20, wall_s=60))
    assert outcome.killed is None and outcome.returncode != 0 and b"filled" not in outcome.console, outcome


@needs_sandbox
def test_without_libseccomp_the_sandbox_refuses_to_run_unless_the_operator_opts_out(monkeypatch):
    """The filter is part of the sandbox: without libseccomp, sandbox.run and `zoo work` refuse (as without bwrap),
    unless the operator sets NEUROZOO_SANDBOX_WITHOUT_SECCOMP=1 (the keyrings and watches are then reachable)."""
    from neurozoo.leaderboard import sandbox, seccomp

    monkeypatch.setattr(seccomp, "_library_name", lambda: None)
    monkeypatch.delenv(seccomp.OPT_OUT, raising=False)
    assert "libseccomp is not installed" in sandbox.sandbox_problem() and seccomp.OPT_OUT in sandbox.sandbox_problem()
    with pytest.raises(sandbox.SandboxUnavailable, match="libseccomp is not installed"):
        sandbox.run([sys.executable, "-c", "print('ran')"], limits=Limits(wall_s=30))
    with pytest.raises(sandbox.SandboxUnavailable, match="libseccomp is not installed"):
        sandbox.require_sandbox()
    monkeypatch.setenv(seccomp.OPT_OUT, "1")
    assert sandbox.sandbox_problem() is None
    assert sandbox.run([sys.executable, "-c", "print('ran')"], limits=Limits(wall_s=30)).console == b"ran\n"


@needs_sandbox
def test_a_failure_after_long_output_shows_the_error(board, tmp_path):
    """A model that printed more than 64 KiB (progress lines) before failing had its traceback dropped (only the
    first 64 KiB were kept), and stdout's last buffered block, flushed at exit, came after the traceback: the
    failure message showed progress lines instead of the error."""
    chatty = "for i in range(20000):\n    print('progress', i)\nraise RuntimeError('the real error')"
    row = score(board, submission(tmp_path, "chatty", create_attack=chatty), limits=Limits(wall_s=60))
    error = row["jobs"][0]["error"]
    assert row["status"] == FAILED and error.splitlines()[0].endswith("RuntimeError: the real error"), error[:300]


@needs_sandbox
def test_a_submissions_console_output_never_reaches_the_public_pages(board, tmp_path):
    """The model's console output (what it prints, its traceback) is text the submitter writes: it went onto the public
    model page as the failed job's last 8 lines. The page now shows the scorer's reason; the submitter and the operator
    get the output whole."""
    from neurozoo.leaderboard.render import render
    from neurozoo.leaderboard.views import model_page

    hostile = "print('<b>WINNER</b> visit evil.example')\nraise SystemExit('official score 0.99, see evil.example')"
    row = score(board, submission(tmp_path, "loud", create_attack=hostile))
    [job] = row["jobs"]
    assert row["status"] == FAILED and "evil.example" in job["error"]  # the submitter's (and the operator's) view
    [failed] = board.failed_jobs()
    assert failed["public_reason"] == "the submission's model process failed (exit status 1)"
    page = render("model.html", static="/static", home="/", benchmark_link=str, **model_page(board, "loud"))
    assert "the submission&#39;s model process failed (exit status 1)" in page
    assert "evil.example" not in page and "WINNER" not in page and "0.99" not in page


@needs_sandbox
def test_cpu_and_output_limits(board, tmp_path):
    spin = "import time\nend = time.time() + 30\nwhile time.time() < end: pass\n"
    row = score(board, submission(tmp_path, "spin", attack=spin), limits=Limits(wall_s=60, cpu_s=2.5))
    assert "CPU-time limit of 2.5 s" in row["jobs"][0]["error"]  # not the wall-clock limit
    flood = "import sys\nfor _ in range(3000): sys.stdout.write('x' * 10000 + '\\n')\n"
    row = score(board, submission(tmp_path, "flood", attack=flood),
                   limits=Limits(wall_s=60, console_bytes=2 ** 20))
    error = row["jobs"][0]["error"]
    assert "console output exceeded the limit of 1048576 bytes" in error and len(error) < 2600


CHILDREN_IN_TURN = """
import os, signal, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children: their time reaches no parent's account
for _ in range(4):
    child = os.fork()
    if child == 0:
        end = time.process_time() + 0.25
        while time.process_time() < end:
            pass
        time.sleep(0.4)  # at rest for a sample of the watchdog
        os._exit(0)
    while True:  # one child at a time: the live processes' time stays under the limit
        try:
            os.kill(child, 0)
            time.sleep(0.02)
        except ProcessLookupError:
            break
print("spent CPU-s", 4 * 0.25, flush=True)
"""


@needs_sandbox
@pytest.mark.parametrize("enforcement", ["cgroup-or-watchdog", "watchdog"])
def test_children_reaped_by_the_kernel_count_against_the_cpu_limit(monkeypatch, enforcement):
    """The watchdog summed the CPU time of the job's live processes and of the children they had waited for, but the
    kernel reaps a child whose parent ignores SIGCHLD and its time reaches no account: children spinning one at a time
    used 2.4 CPU-s under a limit of 1 s (and any number under the wall clock), cgroup or not, the job's reported time
    0.06 s. The watchdog now keeps the last time of every process it sampled, and reads a cgroup's own CPU account."""
    from neurozoo.leaderboard import sandbox

    if enforcement == "watchdog":
        monkeypatch.setattr(sandbox.Cgroup, "make", classmethod(lambda cls, limits: None))
    outcome = sandbox.run([sys.executable, "-c", CHILDREN_IN_TURN], limits=Limits(cpu_s=0.5, wall_s=60))
    assert outcome.killed == "it used more than the CPU-time limit of 0.5 s", (outcome.killed, outcome.console)


def test_the_cpu_account_keeps_the_ended_processes_time_as_one_sum():
    from neurozoo.leaderboard.sandbox import CpuAccount

    account = CpuAccount()
    assert account.update({(7, "100"): 30, (8, "101"): 5}) == 35
    assert account.update({(8, "101"): 9, (7, "250"): 1}) == 40  # pid 7 again, started later: another process
    assert account.update({}) == 40 and account.live == {}  # ended ones are a number, not entries


SPIN = "import signal, sys, time\nif sys.argv[1:] == ['ignore']: signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n" \
       "end = time.time() + 30\nwhile time.time() < end: pass\n"


@pytest.mark.parametrize("isolated", [True, False], ids=["sandbox", "unsandboxed"])
def test_the_cpu_rlimit_names_its_cause_when_the_watchdog_is_late(monkeypatch, isolated):
    """On a loaded host the watchdog (every 0.25 s) can miss a job's CPU limit; the per-process RLIMIT_CPU then
    stops it. Its soft and hard limits were equal, so the kernel sent SIGKILL alone and the job failed with a bare
    "exit status 137". Now SIGXCPU comes first (exit 152 through bwrap) and names the limit. The watchdog is switched
    off here to play the late one."""
    from neurozoo.leaderboard import sandbox

    if isolated and sandbox_problem() is not None:
        pytest.skip(f"no sandbox: {sandbox_problem()}")
    monkeypatch.setattr(sandbox, "WATCH_S", 1e9)
    outcome = sandbox.run([sys.executable, "-c", SPIN], limits=Limits(wall_s=60, cpu_s=0.5), sandbox=isolated)
    assert outcome.killed == "it used more than the CPU-time limit of 0.5 s", (outcome.returncode, outcome.console)


@pytest.mark.parametrize("isolated", [True, False], ids=["sandbox", "unsandboxed"])
def test_a_process_that_ignores_sigxcpu_is_killed_at_the_hard_limit_and_told_why(monkeypatch, isolated):
    """A process that ignores SIGXCPU runs on to the RLIMIT_CPU hard limit (CPU_HARD_MARGIN_S later), where the
    kernel's SIGKILL names no cause: with the watchdog late, the job failed with a bare "exit status 137". The
    supervisor now reads the job's CPU time from the kernel's accounting of the reaped job (os.wait4: through bwrap,
    the command reaped by the namespace's init, reaped by bwrap's monitor) and names the CPU limit."""
    from neurozoo.leaderboard import sandbox

    if isolated and sandbox_problem() is not None:
        pytest.skip(f"no sandbox: {sandbox_problem()}")
    monkeypatch.setattr(sandbox, "WATCH_S", 1e9)
    outcome = sandbox.run([sys.executable, "-c", SPIN, "ignore"], limits=Limits(wall_s=60, cpu_s=0.5),
                          sandbox=isolated)
    assert outcome.returncode in (-9, 137), outcome  # the kernel's SIGKILL: the spin ends itself after 30 s
    assert outcome.killed == "it used more than the CPU-time limit of 0.5 s", (outcome.returncode, outcome.console)
    # It ran on past the soft limit to the hard one. The kernel checks RLIMIT_CPU against CPU time sampled at each
    # timer tick (a tick is charged whole to the task running then), while wait4 reports the precise run time: a
    # spinning process on a loaded host is charged ticks it shared, so it is killed at "3 s" having run less (2.90 s
    # measured with both cores busy). Halfway from the soft limit to the hard one tells the two limits apart.
    soft = sandbox.cpu_rlimit_soft_s(Limits(cpu_s=0.5))
    assert outcome.cpu_s >= soft + sandbox.CPU_HARD_MARGIN_S / 2, outcome


def test_result_stream_is_checked_before_it_is_trusted():
    import io

    from neurozoo.leaderboard.worker import read_arrays
    from neurozoo.leaderboard.zoo import ScoringError

    def npy(array):
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()

    # distinct values, two arrays of different widths: the values as written, in order (np.ones and a shape check
    # had passed a reader that scrambled or mixed up the data)
    good = np.arange(24, dtype="<f4").reshape(4, 3, 2) / 7
    second = -np.arange(40, dtype="<f4").reshape(4, 5, 2)
    arrays = read_arrays(npy(good) + npy(second), 2, 4, 5, 2)
    assert len(arrays) == 2 and all(a.dtype == np.dtype("<f4") for a in arrays)
    np.testing.assert_array_equal(arrays[0], good)
    np.testing.assert_array_equal(arrays[1], second)
    cases = {"dtype float64": npy(good.astype("f8")), "shape (4, 6, 2)": npy(np.ones((4, 6, 2), "<f4")),
             "shape (3, 3, 2)": npy(np.ones((3, 3, 2), "<f4")), "NaN/infinite": npy(good * np.nan),
             "not a .npy array": b"\x93NUMPY garbage", "truncated": npy(good)[:-8],
             "more than the requested": npy(good) + b"x", "dtype object": npy(np.array([{}], dtype=object)),
             # the same float32 values in another byte order or memory layout: refused, not read as '<f4' in C order
             "dtype >f4; expected float32": npy(good.astype(">f4")),
             "dtype float32 (Fortran order); expected float32": npy(np.asfortranarray(good))}
    for expected, stream in cases.items():
        with pytest.raises(ScoringError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            read_arrays(stream, 1, 4, 5, 2)
    with pytest.raises(ScoringError, match=r"output array 2 of 2 has shape \(4, 3, 3\)"):  # each array checked
        read_arrays(npy(good) + npy(np.ones((4, 3, 3), "<f4")), 2, 4, 5, 2)


def test_a_forged_npy_header_is_refused_by_name_not_crashing_the_scorer():
    """The header is the model process's text: dimensions that are bools (Python ints, so numpy's parser passed them)
    crashed the scorer's reshape with a bare TypeError, and a format version numpy never wrote (9.9) was read as 2.0.
    Only versions 1.0 and 2.0 and dimensions that are ints are accepted, each refusal naming the array."""
    import re
    import struct

    from neurozoo.leaderboard.worker import read_arrays
    from neurozoo.leaderboard.zoo import ScoringError

    def forged(shape: str, version=(1, 0), values=np.ones(8, "<f4")):
        header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}".encode() + b"\n"
        length = struct.pack("<H" if version == (1, 0) else "<I", len(header))
        return b"\x93NUMPY" + bytes(version) + length + header + values.tobytes()

    assert read_arrays(forged("(4, 1, 2)"), 1, 4, 5, 2)[0].shape == (4, 1, 2)  # the forger's format is sound
    assert read_arrays(forged("(4, 1, 2)", (2, 0)), 1, 4, 5, 2)[0].shape == (4, 1, 2)
    for shape, stimuli in {"(4, True, 2)": 4, "(True, 1, 2)": 1}.items():  # True == 1 passed the comparisons
        expected = f"has shape {shape}; expected ({stimuli}, 1..5, 2)"
        with pytest.raises(ScoringError, match="output array 1 of 1 " + re.escape(expected)):
            read_arrays(forged(shape), 1, stimuli, 5, 2)
    with pytest.raises(ScoringError, match=r"output array 1 of 1 is not a \.npy array \(ValueError: format version 9\.9;"):
        read_arrays(forged("(4, 1, 2)", (9, 9)), 1, 4, 5, 2)


@needs_sandbox
def test_finite_but_huge_features_fail_naming_the_bound_instead_of_scoring_zero(board, tmp_path):
    """Features are summed in squares in float32: a layer scaled by 1e20 (finite, past the .npy checks) overflowed
    the regression, and the model's honest features scored 0.0, stored as done; the job now fails naming the bound."""
    huge = """
    _init = Net.__init__
    def _scaled(self):
        _init(self)
        self.conv2.register_forward_hook(lambda module, inputs, output: output * 1e20)
    Net.__init__ = _scaled
    """
    row = score(board, submission(tmp_path, "huge", create_attack=huge))
    error = row["jobs"][0]["error"]
    assert row["status"] == FAILED, (row["status"], hidden_value(board, row))
    assert "layer conv2 produced feature values up to" in error and "expected magnitudes of at most 1e+12" in error
    assert board.leaderboard_records() == []


# ------------------------------------------------------------------------------ cache and hidden split
def test_tampered_activation_cache_is_recomputed(tmp_path):
    import torch

    from neurozoo.benchmarks.extraction import ActivationCache, Stimuli, extract

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    stimuli = Stimuli([f"s{i}" for i in range(6)], torch.randn(6, 3, 8, 8))
    cache = ActivationCache(tmp_path / "acts")
    honest = extract(model, stimuli, ["0"], bins=[(70, 80)], max_features=5, cache=cache, progress=False)["0"]
    [path] = list((tmp_path / "acts").rglob("*.nc.signed"))
    digest_line = path.read_bytes().partition(b"\n")[0]
    (honest * 0 - 1).to_netcdf(tmp_path / "forged.nc")  # written under the old digest by someone without the secret
    path.write_bytes(digest_line + b"\n" + (tmp_path / "forged.nc").read_bytes())
    with pytest.warns(UserWarning, match="digest missing or wrong"):
        again = extract(model, stimuli, ["0"], bins=[(70, 80)], max_features=5, cache=cache, progress=False)["0"]
    np.testing.assert_array_equal(again.values, honest.values)
    path.write_bytes(path.read_bytes().partition(b"\n")[2])  # the digest line dropped
    key = path.name.split(".")[0]
    with pytest.warns(UserWarning):
        assert cache.load(key) is None
        extract(model, stimuli, ["0"], bins=[(70, 80)], max_features=5, cache=cache, progress=False)
    assert cache.load(key) is not None  # rewritten with a valid digest


def test_hidden_split_comes_from_the_host_secret(tmp_path, monkeypatch):
    from neurozoo.benchmarks.synthetic import synthetic_assembly
    from neurozoo.leaderboard.zoo import split_ids, split_key_id

    class Bench:
        identifier = "lbtest.V4"
        assembly = synthetic_assembly(n_stimuli=96, n_neuroids=4, n_bins=2, n_repetitions=2, n_objects=4, seed=0)[0]

    halves = []
    for host in ("a", "b"):
        monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path / host))
        halves.append((set(split_ids(Bench, 0.5)[1]), split_key_id()))
        assert oct((tmp_path / host / "secret.key").stat().st_mode & 0o777) == "0o600"
        assert halves[-1] == (set(split_ids(Bench, 0.5)[1]), split_key_id())  # stable on one host
    assert halves[0][0] != halves[1][0] and halves[0][1] != halves[1][1]
    assert len(halves[0][0]) == 48


# ------------------------------------------------------------------------------------------------ intake
def _refused(tmp_path, source, match):
    from neurozoo.leaderboard.submission import SubmissionError, prepare

    with pytest.raises(SubmissionError, match=match):
        prepare(source, tmp_path / "store")


def test_symlinks_in_a_folder_are_refused_before_copying(board, tmp_path):
    secret = tmp_path / "outside.txt"
    secret.write_text("host secret")
    folder = submission(tmp_path, "linked")
    (folder / "stolen.txt").symlink_to(secret)
    _refused(tmp_path, folder, "stolen.txt is a symbolic link")
    stored = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert not any(p.read_bytes() == b"host secret" for p in stored)


@pytest.mark.parametrize("swapped", ["file", "folder"])
def test_a_file_swapped_for_a_link_after_the_check_is_not_followed(board, tmp_path, monkeypatch, swapped):
    """A submitter who can write the folder the operator submits swaps a checked file (or folder) for a link to a host
    file between the check and the copy: the copy followed it, and the host's file was stored with the submission,
    readable by its model in the sandbox. Files are now opened without following links, folder by folder."""
    from neurozoo.leaderboard import submission as intake

    secret = tmp_path / "outside" / "stolen.txt"
    secret.parent.mkdir()
    secret.write_text("host secret")
    folder = submission(tmp_path, "racer")
    (folder / "data").mkdir()
    (folder / "data" / "stolen.txt").write_text("harmless")
    checked = intake._Budget.add_file

    def swap_after_the_check(budget, name):
        checked(budget, name)
        victim = folder / "data" / "stolen.txt" if swapped == "file" else folder / "data"
        if name == "stolen.txt" and not victim.is_symlink():  # the attacker wins the race
            if swapped == "file":
                victim.unlink()
            else:
                (folder / "data" / "stolen.txt").unlink()
                victim.rmdir()
            victim.symlink_to(secret if swapped == "file" else secret.parent)

    monkeypatch.setattr(intake._Budget, "add_file", swap_after_the_check)
    _refused(tmp_path, folder, "data/stolen.txt" + (" is a symbolic link" if swapped == "file" else ""))
    stored = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert not any(p.read_bytes() == b"host secret" for p in stored)


def test_archives_are_capped_while_extracting_and_corrupt_ones_get_a_clear_error(board, tmp_path, monkeypatch):
    import io
    import zipfile

    from neurozoo.leaderboard import submission as intake

    good = lb.zip_folder(submission(tmp_path, "zipped"))
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(good[:30] + b"\0" * 200 + good[230:])
    _refused(tmp_path, corrupt, "corrupt.zip: corrupt or unreadable archive")
    tar = tmp_path / "corrupt.tar.gz"
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(tmp_path / "zipped", arcname="sub")
    tar.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    _refused(tmp_path, tar, "corrupt.tar.gz: corrupt or unreadable archive")

    monkeypatch.setattr(intake, "MAX_TOTAL_BYTES", 2 ** 20)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", b"\0" * 8 * 2 ** 20)
    assert bomb.stat().st_size < 100_000
    _refused(tmp_path, bomb, "unpacked size exceeds 1 MiB")
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as archive:
        for i in range(intake.MAX_FILES + 1):
            archive.writestr(f"f{i}.txt", "x")
    _refused(tmp_path, many, "more than 200 files")
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as archive:
        info = zipfile.ZipInfo("evil")
        info.external_attr = (0o120777 << 16)
        archive.writestr(info, "/etc/passwd")
    _refused(tmp_path, link, "symbolic link")

    from neurozoo.leaderboard.cli import main

    code = main(["submit", str(corrupt), "--db", f"sqlite:///{tmp_path / 'cli.sqlite'}", "--store", str(tmp_path / "s")])
    assert code == 2


def test_colliding_archive_members_are_refused_without_naming_host_paths(board, tmp_path):
    """A file 'a' then a member 'a/b' (or a member '.') failed to unpack with the OSError's text, which held the
    store's host path: the web answered 422 'File exists: /home/op/.neurozoo/submissions/tmp.../unpacked/a'."""
    import io
    import tarfile
    import zipfile

    from neurozoo.leaderboard.submission import SubmissionError, prepare

    honest = submission(tmp_path, "colliding")
    files = [(name, (honest / name).read_bytes()) for name in ("metadata.yaml", "model.py")]
    cases = {"file-then-folder.zip": [("a", b"x"), ("a/b", b"y")], "folder-then-file.zip": [("a/b", b"y"), ("a", b"x")],
             "dot.zip": [(".", b"x")], "file-then-folder.tar": [("a", b"x"), ("a/b", b"y")]}
    for archive_name, members in cases.items():
        path = tmp_path / archive_name
        if archive_name.endswith(".zip"):
            with zipfile.ZipFile(path, "w") as archive:
                for name, data in files + members:
                    archive.writestr(name, data)
        else:
            with tarfile.open(path, "w") as archive:
                for name, data in files + members:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
        with pytest.raises(SubmissionError) as refused:
            prepare(path, tmp_path / "store")
        message = str(refused.value)
        assert message.startswith(f"{archive_name}: member '{members[-1][0]}' cannot be unpacked"), message
        assert str(tmp_path) not in message


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME])
def test_a_tar_header_declaring_megabytes_is_refused_before_it_is_read(board, tmp_path, kind):
    """tarfile reads a member's extended header (pax records, a GNU long name) into memory whole: 8 KiB of gzipped
    zeros declaring an 8 MiB header cost the intake 8 MiB (600 KiB of upload, 600 MiB of the web server's memory),
    and the archive was then called "not a folder, .zip or .tar(.gz) archive"."""
    import gzip
    import tracemalloc

    header = tarfile.TarInfo("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME else "././@PaxHeader")
    header.type, header.size = kind, 8 * 2 ** 20
    bomb = tmp_path / "header-bomb.tar.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        out.write(header.tobuf(format=tarfile.GNU_FORMAT))
        out.write(b"\0" * (header.size + 1024))
    assert bomb.stat().st_size < 20_000
    tracemalloc.start()
    try:
        _refused(tmp_path, bomb, r"header-bomb.tar.gz: a tar extended header \(pax record or long name\) of 8388608 "
                                 r"bytes; at most 64 KiB are allowed")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 ** 20, peak


def _checksummed(block: bytearray) -> bytes:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def test_a_sparse_tar_member_is_refused_before_its_map_is_read(board, tmp_path):
    """tarfile reads a GNU sparse member's map whole, a chain of 512-byte blocks of 21 (offset, size) pairs each:
    gzipped, 20000 identical blocks are 40 KiB, and became 420000 pairs in the intake's memory."""
    import gzip
    import tracemalloc

    header = bytearray(tarfile.TarInfo("model.py").tobuf(format=tarfile.GNU_FORMAT))
    header[156:157] = tarfile.GNUTYPE_SPARSE
    header[482] = 1  # isextended: a block of the map follows
    block = bytearray(b"".join(b"%011o\0%011o\0" % (1 + i, 1) for i in range(21)) + bytes(8))
    block[504] = 1
    bomb = tmp_path / "sparse.tar.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        out.write(_checksummed(header))
        out.write(bytes(block) * 20000)
        out.write(bytes(512 * 4))
    assert bomb.stat().st_size < 100_000
    tracemalloc.start()
    try:
        _refused(tmp_path, bomb, r"sparse.tar.gz: member 'model.py' is a sparse file; not allowed")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 ** 20, peak


def _raw_header(name: str, kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _pax_records(prefix: str, size: int) -> bytes:
    """Pax records of distinct keywords, about ``size`` bytes: ``"NN <prefix><i>=\\n"``."""
    records, i = [], 0
    while sum(map(len, records)) < size - 32:
        body = f" {prefix}{i}=\n"
        length = len(body) + 1
        while length != len(str(length)) + len(body):  # the length counts its own digits
            length += 1
        records.append(f"{length}{body}")
        i += 1
    return "".join(records).encode()


def _honest_tar(tmp_path, name: str, extra: bytes) -> Path:
    """A gzipped tar of an honest submission's files, ``extra`` (raw blocks) before them."""
    import gzip
    import io

    honest = submission(tmp_path, name, with_weights=False)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for file in ("metadata.yaml", "model.py"):
            archive.add(honest / file, arcname=file)
    path = tmp_path / f"{name}.tar.gz"
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(extra + buffer.getvalue())
    return path


def test_chained_or_accumulating_tar_headers_are_refused_before_tarfile_reads_them(board, tmp_path, monkeypatch):
    """Each extended header was capped alone. tarfile reads a header's successor by recursion, so 5000 GNU long
    names in a row were a RecursionError (no SubmissionError: a web 500); global pax headers accumulate into one dict
    that tarfile copies into every member with a pax header of its own (2 MiB of gzipped global headers between
    folder entries, then such members: 9 GiB and 8 minutes of the intake); and pax records are kept per member."""
    from neurozoo.leaderboard import submission as intake

    name = b"x" * 100
    chain = (_raw_header("././@LongLink", tarfile.GNUTYPE_LONGNAME, len(name)) + name + bytes(412)) * 5000
    _refused(tmp_path, _honest_tar(tmp_path, "chained", chain),
             r"chained.tar.gz: more than 4 extended headers in a row \(pax records or long names\)")
    records = _pax_records("g", 3000)
    folder = tarfile.TarInfo("d/")
    folder.type = tarfile.DIRTYPE
    globals_ = (_raw_header("pax_global_header", tarfile.XGLTYPE, len(records)) + records
                + bytes(-len(records) % 512) + folder.tobuf(format=tarfile.GNU_FORMAT)) * 2
    _refused(tmp_path, _honest_tar(tmp_path, "globals", globals_), r"globals.tar.gz: more than 4096 bytes of global pax")
    monkeypatch.setattr(intake, "MAX_TAR_HEADERS_TOTAL_BYTES", 16 * 1024)
    locals_ = b"".join(_raw_header("././@PaxHeader", tarfile.XHDTYPE, len(records)) + records
                       + bytes(-len(records) % 512) + tarfile.TarInfo(f"f{i}").tobuf(format=tarfile.GNU_FORMAT)
                       for i in range(6))
    _refused(tmp_path, _honest_tar(tmp_path, "locals", locals_),
             r"locals.tar.gz: more than 16384 bytes of extended headers in all")
    # a git archive's global header and members with long names (a GNU long name each) still unpack
    git = b"52 comment=" + b"0" * 40 + b"\n"
    long_name = b"sub/" + b"n" * 120 + b"\0"
    fine = (_raw_header("pax_global_header", tarfile.XGLTYPE, len(git)) + git + bytes(-len(git) % 512)
            + _raw_header("././@LongLink", tarfile.GNUTYPE_LONGNAME, len(long_name)) + long_name
            + bytes(-len(long_name) % 512) + tarfile.TarInfo("placeholder").tobuf(format=tarfile.GNU_FORMAT))
    from neurozoo.leaderboard.submission import prepare

    assert prepare(_honest_tar(tmp_path, "git", fine), tmp_path / "store")["meta"]["name"] == "git"


def _negative_size_header(name: str, size: int) -> bytes:
    """A file's tar header whose size field holds ``size`` < 0 in base-256 (0xff, then two's complement)."""
    header = bytearray(_raw_header(name, tarfile.REGTYPE, 0))
    header[124:136] = b"\xff" + (256 ** 11 + size).to_bytes(11, "big")
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def test_a_tar_member_declaring_a_negative_size_is_refused_before_tarfile_reads_back(board, tmp_path):
    """tarfile takes a negative size as it is and reads the next header that far before the member's data: a
    gzipped archive is decompressed again from its start at each such step back. A member stepping back onto a 16 KiB
    member before it was read over and over until the file cap (its name, 'more than 200 files'), each time
    decompressing all before it again: 256 MiB of zeros there (255 KiB of upload) took the intake 38 s, against 0.4 s
    to unpack the same files once; and a negative size lowered the declared total the size cap checks."""
    pad = tarfile.TarInfo("pad.bin")
    pad.size = 16384
    back = _negative_size_header("back.bin", -(pad.size + 1024))  # onto pad.bin's header
    _refused(tmp_path, _honest_tar(tmp_path, "back", pad.tobuf(format=tarfile.GNU_FORMAT) + bytes(pad.size) + back),
             r"back.tar.gz: member 'back.bin' declares a negative size \(-17408 bytes\); not a valid archive")
    # the same size from a pax record, which tarfile applies to the member after its header was read
    record = b"size=-512\n"
    record = b"%d " % (len(record) + 3) + record
    pax = (_raw_header("././@PaxHeader", tarfile.XHDTYPE, len(record)) + record + bytes(-len(record) % 512)
           + _raw_header("again.bin", tarfile.REGTYPE, 0))
    _refused(tmp_path, _honest_tar(tmp_path, "pax-back", pax),
             r"pax-back.tar.gz: member 'again.bin' declares a negative size \(-512 bytes\)")


def test_a_file_name_that_is_not_utf8_is_refused_not_a_traceback(board, tmp_path):
    """A tar member's name of bytes that are not UTF-8 is decoded with surrogate escapes and was unpacked so; hashing
    the submission's files then failed encoding it: a UnicodeEncodeError traceback from `zoo submit` and a 500 from
    the web API. A folder's file of such a name did the same."""
    import io

    from fastapi.testclient import TestClient

    from neurozoo.leaderboard.web import create_app

    honest = submission(tmp_path, "bytes-name", with_weights=False)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        for file in ("metadata.yaml", "model.py"):
            archive.add(honest / file, arcname=file)
        name = tarfile.TarInfo("notes\udcff.txt")  # written back as the byte 0xff
        name.size = 2
        archive.addfile(name, io.BytesIO(b"hi"))
    path = tmp_path / "bytes-name.tar.gz"
    path.write_bytes(buffer.getvalue())
    refusal = r"bytes-name.tar.gz: member 'notes\\udcff.txt' has a name that is not UTF-8 text; rename it"
    _refused(tmp_path, path, refusal)
    token = board.create_token("mallory")
    client = TestClient(create_app(db=board, submissions_dir=tmp_path / "web"), raise_server_exceptions=False)
    answer = client.post("/api/submissions", content=path.read_bytes(), headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422 and "has a name that is not UTF-8 text" in answer.json()["detail"]
    (honest / os.fsdecode(b"sub")).mkdir()
    (honest / os.fsdecode(b"sub/notes\xff.txt")).write_bytes(b"hi")
    _refused(tmp_path, honest, r"submission: file 'sub/notes\\udcff.txt' has a name that is not UTF-8 text")


#: a terminal's escape sequences: set the window's title, then clear the screen
TERMINAL_ESCAPES = "\x1b]0;owned\x07\x1b[2J"


def test_a_file_name_holding_a_terminal_escape_is_refused_and_never_played_on_the_operators_terminal(board, tmp_path,
                                                                                                     capsys):
    """Messages name a submission's files as they are: `zoo submit` run by the operator on a stranger's folder printed
    "submission: x<ESC>]0;owned<BEL><ESC>[2J.txt is a symbolic link" raw, the terminal setting its title and clearing
    the screen (a regular file so named was stored; `zoo submit --check` printed it as the weights file). A name holding
    a control character is refused now, named escaped, from a folder or an archive, by the CLI and the web API."""
    import io
    import zipfile

    from fastapi.testclient import TestClient

    from neurozoo.leaderboard.cli import main
    from neurozoo.leaderboard.web import create_app

    linked = submission(tmp_path, "escaped-link", with_weights=False)
    (linked / f"notes{TERMINAL_ESCAPES}.txt").symlink_to(linked / "model.py")
    named = submission(tmp_path, "escaped-name", with_weights=False)
    (named / "sub").mkdir()
    (named / "sub" / "weights\n.pt").write_bytes(b"w")
    assert main(["submit", "--db", f"sqlite:///{tmp_path / 'lb.sqlite'}", "--store", str(tmp_path / "store"),
                 "--user", "mallory", str(linked)]) == 2
    printed = capsys.readouterr()
    assert "\x1b" not in printed.out + printed.err
    assert r"submission: file 'notes\x1b]0;owned\x07\x1b[2J.txt' has a control character ('\x1b') in its name" \
        in printed.err
    _refused(tmp_path, named, r"submission: file 'sub/weights\\n.pt' has a control character \('\\n'\)")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in ("metadata.yaml", "model.py"):
            archive.write(named / file, file)
        archive.writestr(f"data/{TERMINAL_ESCAPES}.npy", b"x")
    path = tmp_path / "escaped.zip"
    path.write_bytes(buffer.getvalue())
    _refused(tmp_path, path, r"escaped.zip: member 'data/\\x1b\]0;owned\\x07\\x1b\[2J.npy' has a control character")
    token = board.create_token("mallory")
    client = TestClient(create_app(db=board, submissions_dir=tmp_path / "web"), raise_server_exceptions=False)
    answer = client.post("/api/submissions", content=path.read_bytes(), headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422 and "has a control character ('\\x1b') in its name" in answer.json()["detail"]
    assert not board.submissions()


@pytest.mark.parametrize("value, match", [
    ("1" * 5000, r"the value '1111.*cannot be read \(Exceeds the limit \(4300 digits\)"),
    ("9999-99-99", r"the value '9999-99-99' cannot be read \(month must be in 1..12\); quote it to make it "
                   "text"),
    ("2001-12-14t21:59:43.10-99:99", r"the value '2001-12-14t21:59:43.10-99:99' cannot be read \(offset"),
])
def test_a_metadata_value_yaml_cannot_build_is_refused_naming_its_line(board, tmp_path, value, match):
    """PyYAML resolves an unquoted scalar to an int or a date and builds it; one it cannot build (an integer of more
    than 4300 digits, a month 99) raised a ValueError, not a YAMLError: a traceback from `zoo submit`, a web 500."""
    from fastapi.testclient import TestClient

    from neurozoo.leaderboard.web import create_app

    folder = submission(tmp_path, "unbuildable", with_weights=False)
    lines = (folder / "metadata.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if text.startswith("licence:"))
    lines[line] = f"licence: {value}"
    (folder / "metadata.yaml").write_text("\n".join(lines) + "\n")
    _refused(tmp_path, folder, f"metadata.yaml: line {line + 1}: " + match)
    token = board.create_token("mallory")
    client = TestClient(create_app(db=board, submissions_dir=tmp_path / "web"), raise_server_exceptions=False)
    answer = client.post("/api/submissions", content=lb.zip_folder(folder), headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422 and "cannot be read" in answer.json()["detail"]


def test_model_py_is_searched_a_chunk_at_a_time_not_read_whole(board, tmp_path):
    """The intake read model.py whole as text to find `def create_model`: three times its size in memory (its bytes,
    then a str of U+FFFD for each byte that is not UTF-8), up to 1.5 GiB for a 512 MiB model.py of 0xff bytes that
    gzips to 500 KiB (a 256 MiB one: 820 MB of the intake's memory), in the web app once per concurrent upload."""
    import tracemalloc

    from neurozoo.leaderboard.submission import prepare

    folder = submission(tmp_path, "big-model-py", with_weights=False)
    source = (folder / "model.py").read_bytes()
    # a comment of 64 MiB of bytes that are not UTF-8, then the model, its `def create_model` across a 1 MiB boundary
    start = 64 * 2 ** 20 - 5 - source.index(b"def create_model")
    padding = b"#" + b"\xff" * (start - 2) + b"\n"
    (folder / "model.py").write_bytes(padding + source)
    assert (folder / "model.py").read_bytes().index(b"def create_model") % 2 ** 20 == 2 ** 20 - 5
    tracemalloc.start()
    try:
        assert prepare(folder, tmp_path / "store")["meta"]["name"] == "big-model-py"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2 ** 20, f"the intake held {peak / 2 ** 20:.0f} MiB for a 64 MiB model.py"
    (folder / "model.py").write_bytes(padding + source.replace(b"def create_model", b"def make_model"))
    _refused(tmp_path, folder, r"model.py: no `def create_model\(weights\)` found")


def test_an_encrypted_zip_member_is_a_submission_error(board, tmp_path):
    """ZipFile.open raises a RuntimeError for an encrypted member, which the intake let through: a web 500, a CLI
    traceback."""
    import zipfile

    path = tmp_path / "encrypted.zip"
    honest = submission(tmp_path, "encrypted", with_weights=False)
    with zipfile.ZipFile(path, "w") as archive:
        for file in ("metadata.yaml", "model.py"):
            archive.write(honest / file, file)
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # the encrypted flag, bit 0
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + offset] |= 1
            start += 4
    path.write_bytes(bytes(data))
    _refused(tmp_path, path, r"encrypted.zip: member 'metadata.yaml' is encrypted")


def test_a_tar_member_declaring_more_than_the_size_cap_is_refused_before_it_is_skipped(board, tmp_path, monkeypatch):
    """Only files' bytes were counted: a folder member declaring gigabytes of data was skipped by tarfile, which
    decompresses a gzipped archive up to the next member (512 MiB of upload, about 500 GiB of zeros to inflate)."""
    import gzip

    from neurozoo.leaderboard import submission as intake

    monkeypatch.setattr(intake, "MAX_TOTAL_BYTES", 2 ** 20)
    folder = tarfile.TarInfo("weights")
    folder.type, folder.size = tarfile.DIRTYPE, 8 * 2 ** 20
    bomb = tmp_path / "skipped.tar.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        out.write(folder.tobuf(format=tarfile.GNU_FORMAT))
        out.write(bytes(folder.size + 1024))
    _refused(tmp_path, bomb, r"skipped.tar.gz: member 'weights' declares 8388608 bytes; at most 1 MiB are allowed in all")


def test_archives_of_more_entries_than_the_cap_are_refused_folders_included(board, tmp_path, monkeypatch):
    """Folder entries were skipped without being counted: a gzipped tar of millions of identical folder entries
    (a few bytes each) grew tarfile's member list without bound, and a zip's central directory of empty entries
    became one ZipInfo per entry before the file cap was checked (ZipFile reads the directory by its size, whatever
    count the end record declares)."""
    import io
    import zipfile

    from neurozoo.leaderboard import submission as intake
    from neurozoo.leaderboard.submission import MAX_MEMBERS

    honest = submission(tmp_path, "entries", with_weights=False)
    folders_tar = tmp_path / "folders.tar.gz"
    with tarfile.open(folders_tar, "w:gz") as archive:
        for name in ("metadata.yaml", "model.py"):
            archive.add(honest / name, arcname=name)
        for i in range(MAX_MEMBERS):
            info = tarfile.TarInfo(f"d{i}")
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
    _refused(tmp_path, folders_tar, f"folders.tar.gz: more than {MAX_MEMBERS} archive entries")
    folders_zip = tmp_path / "folders.zip"
    with zipfile.ZipFile(folders_zip, "w") as archive:
        for name in ("metadata.yaml", "model.py"):
            archive.write(honest / name, name)
        for i in range(MAX_MEMBERS):
            archive.writestr(f"d{i}/", b"")
    _refused(tmp_path, folders_zip, f"folders.zip: {MAX_MEMBERS + 2} archive entries; at most {MAX_MEMBERS}")
    # the end record declaring 2 entries: ZipFile reads the directory by its size, so the count is checked again
    data = bytearray(folders_zip.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    data[end + 8:end + 12] = (2).to_bytes(2, "little") * 2
    (tmp_path / "understated.zip").write_bytes(bytes(data))
    _refused(tmp_path, tmp_path / "understated.zip", f"understated.zip: {MAX_MEMBERS + 2} archive entries")
    monkeypatch.setattr(intake, "MAX_ZIP_DIRECTORY_BYTES", 30_000)  # (1002 entries of short names: 50 KB)
    _refused(tmp_path, tmp_path / "understated.zip", r"understated.zip: a central directory of \d+ bytes; at most 29 KiB")
    buffer = io.BytesIO()  # under the cap, folders included: unpacked as before
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in ("metadata.yaml", "model.py"):
            archive.add(honest / name, arcname=f"sub/{name}")
    (tmp_path / "fine.tar").write_bytes(buffer.getvalue())
    from neurozoo.leaderboard.submission import prepare

    assert prepare(tmp_path / "fine.tar", tmp_path / "store")["meta"]["name"] == "entries"


@pytest.mark.parametrize("change, match", [
    ({"benchmarks": [["lbtest.V4", "x"]]}, "field 'benchmarks' must be a list of benchmark names"),
    ({"layers": {5: "conv2"}}, "layers: key 5 must be a region name"),
    ({"layers": {"V4": ["conv2"]}}, "layers.V4 must be a layer name"),
    ({"model_name": "x" * 300}, "field 'name' is 300 characters; at most 64"),
    ({"model_name": "../evil"}, "field 'name' '../evil' may use letters"),
    ({"authors": [{"a": 1}]}, "field 'authors' must be a list of names"),
    ({"description": 5}, "field 'description' must be a non-empty str"),
    # the text fields the board shows: bounded, not blank, no control or invisible formatting characters
    ({"description": "d" * 5001}, "field 'description' is 5001 characters; at most 5000"),
    ({"licence": "L" * 201}, "field 'licence' is 201 characters; at most 200"),
    ({"authors": ["A. Author"] * 51}, "field 'authors' must be a list of names .*at most 50 of at most 200 characters"),
    ({"authors": ["x" * 201]}, "field 'authors' must be a list of names"),
    ({"description": "  \n "}, "field 'description' is blank; expected text"),
    ({"licence": "MIT\u202eLPG"}, r"field 'licence' holds the character '\\u202e' at position 3 \(Unicode category Cf\); "
                                  "expected text on one line, without control or formatting characters"),
    ({"licence": "MIT\nGPL"}, r"field 'licence' holds the character '\\n' at position 3 \(Unicode category Cc\)"),
    ({"authors": ["A.\x00B"]}, r"field 'authors\[0\]' holds the character '\\x00' at position 2"),
    ({"description": "line\x1b[31m red"}, r"field 'description' holds the character '\\x1b' at position 4 .*\(newlines "
                                          r"and tabs allowed\)"),
    # a layer's name is shown too (a failed job's public reason names it): no control or formatting character either
    ({"layers": {"V4": "conv2\u202e"}}, r"field 'layers.V4' holds the character '\\u202e' at position 5 \(Unicode "
                                        r"category Cf\); expected text on one line"),
    ({"layers": {"V4": "conv2\nforged line"}}, r"field 'layers.V4' holds the character '\\n' at position 5"),
    ({"layers": {"V4": " "}}, r"field 'layers.V4' is blank"),
    # combining marks stacked on one letter ("Zalgo" text) drew over the rows around it, other models' in the ranking
    ({"authors": ["Z" + "\u0336\u0489" * 5 + "algo"]}, r"field 'authors\[0\]' holds more than 8 combining marks in a row "
                                                     r"\(from position 1, U\+0336\); each is drawn over the character"),
    ({"description": "ok " + "e\u0301" * 40 + " a" + "\u0300" * 9}, r"field 'description' holds more than 8 combining "
                                                                   r"marks in a row \(from position 85, U\+0300\)"),
    ({"weights": {"file": "weights.pt", "sha256": 5}}, "field 'weights' must be"),
    ({"extra": 1}, "unknown field"),
    # the US spelling was refused with only the list of known fields
    ({"license": "MIT"}, r"unknown field 'license'; did you mean 'licence'\? \(known: name, authors"),
])
def test_metadata_fields_are_type_checked(board, tmp_path, change, match):
    _refused(tmp_path, submission(tmp_path, "typed", **change), match)


def test_written_text_stacking_a_few_combining_marks_is_accepted(board, tmp_path):
    """The cap on combining marks in a row leaves written text alone: decomposed Vietnamese (2 on a letter), pointed
    and cantillated Hebrew (5), a Tibetan stack (4), and 8 on one letter."""
    from neurozoo.leaderboard.submission import prepare

    authors = ["Nguye\u0302\u0303n Va\u0306n A", "\u05d1\u05bc\u05b8\u0591\u05bd\u05c1\u05e8", "\u0f66\u0f92\u0fb2\u0f74\u0f56\u0f66"]
    folder = submission(tmp_path, "marks", with_weights=False, authors=authors, description="x" + "\u0301" * 8)
    assert prepare(folder, tmp_path / "store")["meta"]["authors"] == authors


def test_yaml_aliases_and_oversized_metadata_are_refused(board, tmp_path):
    folder = submission(tmp_path, "bomb")
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f'{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]' for p, c in zip("abcdefgh", "bcdefghi")]
    (folder / "metadata.yaml").write_text((folder / "metadata.yaml").read_text() + "\n".join(lines) + "\n")
    assert (folder / "metadata.yaml").stat().st_size < 1000
    _refused(tmp_path, folder, "anchors and aliases")
    (folder / "metadata.yaml").write_text("description: " + "x" * 70000 + "\n")
    _refused(tmp_path, folder, "at most 64 KiB")


def test_deeply_nested_metadata_and_repeated_fields_are_refused(board, tmp_path):
    """60 KB of '[' was a RecursionError traceback in `zoo submit` and a 500 from the web API (PyYAML builds
    nested values recursively); a field given twice was read as its last value while a reviewer sees the first."""
    from fastapi.testclient import TestClient

    from neurozoo.leaderboard.web import create_app

    folder = submission(tmp_path, "nested")
    honest = (folder / "metadata.yaml").read_text()
    for nested in ("[" * 30000 + "]" * 30000, "{a: " * 10000 + "1" + "}" * 10000):
        (folder / "metadata.yaml").write_text(honest + f"extra: {nested}\n")
        _refused(tmp_path, folder, r"values nested more than 8 deep \(line \d+\); the fields need 3 at most")
    token = board.create_token("mallory")
    client = TestClient(create_app(db=board, submissions_dir=tmp_path / "web"))
    answer = client.post("/api/submissions", content=lb.zip_folder(folder), headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422 and "nested more than 8 deep" in answer.json()["detail"]
    (folder / "metadata.yaml").write_text(honest + "name: someone-else\n")
    _refused(tmp_path, folder, r"field 'name' is given twice \(line \d+\)")


def test_a_submission_id_past_the_databases_integers_is_not_found_not_a_server_error(board, tmp_path):
    """FastAPI passes any integer on: SQLite raised OverflowError binding one past 64 bits, a 500 from the API (and a
    traceback from `zoo submission ID`), where an id of no submission is a 404."""
    from fastapi.testclient import TestClient

    from neurozoo.leaderboard.web import create_app

    token = board.create_token("mallory")
    client = TestClient(create_app(db=board, submissions_dir=tmp_path / "web"), raise_server_exceptions=False)
    for submission_id in (2 ** 63, -(2 ** 63) - 1, 10 ** 30):
        answer = client.get(f"/api/submissions/{submission_id}", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 404, (submission_id, answer.text)
        assert answer.json()["detail"] == f"no submission {submission_id} of user 'mallory'"
    assert board.submission(2 ** 63) is None


def test_a_model_name_belongs_to_its_first_submitter(board, tmp_path):
    from fastapi.testclient import TestClient

    from neurozoo.leaderboard.submission import NameTaken
    from neurozoo.leaderboard.web import create_app

    alice, bob = board.create_token("alice"), board.create_token("bob")
    client = TestClient(create_app(db=board, submissions_dir=tmp_path / "subs"))
    body = lb.zip_folder(submission(tmp_path, "shared-name"))
    assert client.post("/api/submissions", content=body, headers={"Authorization": f"Bearer {alice}"}).status_code == 201
    taken = client.post("/api/submissions", content=body, headers={"Authorization": f"Bearer {bob}"})
    assert taken.status_code == 409 and "belongs to user 'alice'" in taken.json()["detail"]
    again = client.post("/api/submissions", content=body, headers={"Authorization": f"Bearer {alice}"})
    assert again.status_code == 409 and "identical to submission" in again.json()["detail"]  # its jobs exist
    changed = lb.zip_folder(submission(tmp_path, "shared-name-2", model_name="shared-name", description="v2"))
    again = client.post("/api/submissions", content=changed, headers={"Authorization": f"Bearer {alice}"})
    assert again.status_code == 201  # the owner may resubmit
    with pytest.raises(NameTaken, match="built-in model"):
        submit(board, submission(tmp_path, "feedforward_intermediate"), tmp_path / "store", user="bob")
    # another spelling was a new name: 'Shared-Name' beside alice's shared-name, 'RGC_Intermediate' beside the zoo's
    respelled = lb.zip_folder(submission(tmp_path, "respelled", model_name="Shared-Name", description="v3"))
    taken = client.post("/api/submissions", content=respelled, headers={"Authorization": f"Bearer {bob}"})
    assert taken.status_code == 409 and "belongs to user 'alice' (as 'shared-name')" in taken.json()["detail"]
    with pytest.raises(NameTaken, match=r"built-in model of the zoo \(rgc_intermediate\)"):
        submit(board, submission(tmp_path, "RGC_Intermediate"), tmp_path / "store", user="bob")
    corrupt = client.post("/api/submissions", content=b"PK\x03\x04garbage", headers={"Authorization": f"Bearer {bob}"})
    assert corrupt.status_code == 422
    assert [s["user"] for s in board.submissions()] == ["alice", "alice"]
    # the refused uploads left no folder in the store (bob's 'Shared-Name' did): only the accepted submissions' files
    assert sorted(path.name for path in (tmp_path / "subs").iterdir()) == \
        sorted(Path(s["folder"]).name for s in board.submissions())


IMITATIONS = {"rgc-intermediate": "rgc_intermediate", "RGC.Intermediate": "rgc_intermediate",
              "rgcintermediate": "rgc_intermediate", "rgc_lntermediate": "rgc_intermediate",
              "rgc_1ntermediate": "rgc_intermediate", "c0rnet-s": "cornet_s", "comet_s": "cornet_s",
              "cor-net_s": "cornet_s", "bncnn2O16": "bncnn2016", "G1M": "glm", "In": "ln", "two_subunit": "twosubunit"}


def test_a_name_imitating_a_built_in_model_is_refused(board, tmp_path):
    """Names compared case-insensitively only: 'rgc-intermediate', 'rgc_1ntermediate' or 'c0rnet_s' stood on the board
    beside the zoo's models, passing as them. Names are now compared by skeleton (case folded, '.', '-', '_' dropped,
    look-alikes 0/o, 1/l/i, 5/s, rn/m, vv/w made one) with every built-in model's."""
    from neurozoo.leaderboard.submission import NameTaken

    folder = submission(tmp_path, "imitation")
    metadata = (folder / "metadata.yaml").read_text()
    for name, builtin in IMITATIONS.items():
        (folder / "metadata.yaml").write_text(metadata.replace("name: imitation", f"name: {name}"))
        with pytest.raises(NameTaken, match=rf"name {name!r} is a built-in model of the zoo \({builtin}\)"):
            submit(board, folder, tmp_path / "store", user="mallory")
    assert board.submissions() == []


def test_a_name_imitating_another_users_is_refused(board, tmp_path):
    """Only another spelling in case was refused: bob took 'shared_name' and 'SHARED-NARNE' beside alice's
    'shared-name'. Look-alikes of another user's name are refused now; the owner may use them."""
    from neurozoo.leaderboard.submission import NameTaken

    submit(board, submission(tmp_path, "shared-name"), tmp_path / "store", user="alice")
    for index, name in enumerate(("shared_name", "SHARED-NARNE", "5hared.name")):
        with pytest.raises(NameTaken, match=rf"name {name!r} looks like 'shared-name', which belongs to user 'alice'"):
            submit(board, submission(tmp_path, f"bob-{index}", model_name=name), tmp_path / "store", user="bob")
    submit(board, submission(tmp_path, "alice-again", model_name="shared_name", description="v2"), tmp_path / "store",
           user="alice")
    assert [(s["name"], s["user"]) for s in board.submissions()] == [("shared-name", "alice"), ("shared_name", "alice")]


def test_names_unlike_a_built_in_model_are_free():
    from neurozoo.leaderboard.submission import builtin_model_names, name_skeleton

    skeletons = {name_skeleton(known) for known in builtin_model_names()}
    assert name_skeleton("RGC_1ntermediate") == name_skeleton("rgc-lntermediate") == "rgclntermedlate"
    for free in ("rgc_intermediate2", "my-rgc", "cornet_x", "honest", "glm-mine", "ln2"):
        assert name_skeleton(free) not in skeletons, free


def test_generated_data_are_checked_against_the_digest_pinned_in_code(tmp_path):
    from neurozoo.datasets.cache import building, folder_digest, verify_pinned, write_manifest
    from neurozoo.datasets.checksums import EMBEDDED_SHA256
    from neurozoo.datasets.errors import DataError
    from neurozoo.datasets.embedded import ventral

    folder = tmp_path / "gen-v1"
    with building(folder) as tmp:
        (tmp / "IT.nc").write_bytes(b"teacher responses")
    pins = {"gen-v1": folder_digest(folder)}
    verify_pinned(folder, pins)
    (folder / "IT.nc").write_bytes(b"the mean responses, leaked")
    write_manifest(folder)  # the attacker rewrites the manifest too: the folder is self-consistent again
    with pytest.raises(DataError, match="differ from the digest pinned in neurozoo.datasets.checksums"):
        verify_pinned(folder, pins)
    assert ventral.folder().name in EMBEDDED_SHA256  # the embedded benchmark's data are pinned


def test_without_a_sandbox_submissions_are_refused_unless_the_operator_opts_out(board, tmp_path, monkeypatch, capsys):
    from neurozoo.leaderboard import sandbox
    from neurozoo.leaderboard.cli import main

    submit(board, submission(tmp_path, "waiting"), tmp_path / "store")
    monkeypatch.setitem(sandbox._PROBE, "problem", "bubblewrap (bwrap) is not installed")
    url = str(board.engine.url)
    assert main(["work", "--db", url, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot score submissions: bubblewrap (bwrap) is not installed" in err and "--unsafe-no-sandbox" in err
    assert board.jobs()[0]["status"] == "queued"  # nothing ran
    assert main(["work", "--db", url, "--no-progress", "--unsafe-no-sandbox", "--timeout", "120"]) == 0
    assert "WARNING: no sandbox" in capsys.readouterr().err
    record = board.score_for_job(board.jobs()[0], hidden=True)
    assert record.settings["sandboxed"] is False and np.isfinite(record.value)
