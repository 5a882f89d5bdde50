import os
import signal
from pathlib import Path

# One intra-op thread: the tests run many small tensors, where OpenMP threads cost more than they
# give, and two spinning threads on a busy 2-core machine slow a step by 10-100x. Subprocesses
# (torchrun workers, CLI runs) inherit the setting through the environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NEUROZOO_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# The Ctrl-C tests raise SIGINT in this process or send it to a child. A background job of a shell without job
# control (`pytest ... &` in a script, CI runners) starts with SIGINT ignored, which Python keeps, as would every
# child: those tests then failed for how the suite was started. Python's own handler, as in a terminal (a child gets
# it back too: exec resets a handled signal to its default, and Python then installs its handler).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


GIB_PER_WORKER = 4  # the suite's largest process peaked at 2.6 GB (2026-12-02)


def _cgroup_limit(name: str):
    """A cgroup v2 limit of this process's group as its fields, or None where there is none (``max``, no file)."""
    try:
        fields = Path("/sys/fs/cgroup", name).read_text().split()
    except OSError:
        return None
    return None if not fields or fields[0] == "max" else [int(f) for f in fields]


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per CPU this process may use (its affinity, and a cgroup CPU quota: a container may
    see all of its host's cores and be allowed two), and no more than memory holds."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_limit("cpu.max")
    if quota:
        cpus = min(cpus, max(1, quota[0] // quota[1]))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _cgroup_limit("memory.max")
    if limit:
        memory = min(memory, limit[0])
    return max(1, min(cpus, memory // (GIB_PER_WORKER * 2 ** 30)))


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> str:
    """The test session's data cache (``$NEUROZOO_TEST_CACHE`` if set): generated data and fits are made once per
    session, by whichever worker of a parallel run (pytest-xdist) asks first, and read by the others, as processes
    of one host share a user's cache (its folders are written atomically and locked, a fit is locked). The embedded
    ventral data took 10 s per worker. A test that damages or deletes a cached file works on a private copy
    (``NEUROZOO_CACHE`` of its own): another worker may be reading that file at that moment."""
    if os.environ.get("NEUROZOO_TEST_CACHE"):
        return os.environ["NEUROZOO_TEST_CACHE"]
    return str(_run_folder(tmp_path_factory) / "cache")


def _run_folder(tmp_path_factory) -> Path:
    """The folder of the whole test run: a parallel run's workers share it, the parent of their own temporary
    folders."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def built_once(tmp_path_factory):
    """``built_once(name, make)``: the value ``make()`` returns, made once per test session by whichever process asks
    first, every worker of a parallel run included, and loaded by the others (for expensive fixtures: a module-scoped
    fixture is made again in each pytest-xdist worker that runs one of its module's tests; the trained dynamics
    examples were 150 CPU-s, three times in one run). The maker saves it with ``torch.save`` (pickle; tensors and
    arrays byte for byte, so a loaded value is the made one) under a lock (:func:`neurozoo.datasets.cache.locked`),
    into the folder the workers share, the parent of their own temporary folders; an error in ``make`` leaves nothing
    and the next asker makes it again."""
    from neurozoo.datasets.cache import locked

    folder = _run_folder(tmp_path_factory) / "built-once"

    def build(name: str, make):
        path = folder / f"{name}.pt"
        with locked(folder / f"{name}.lock", waiting=f"waiting for another worker to build {name}"):
            if path.exists():
                return torch.load(path, weights_only=False)
            value = make()
            partial = path.with_name(path.name + ".partial")
            torch.save(value, partial)
            os.replace(partial, path)
            return value

    return build


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch, session_cache):
    """Each test session writes generated data and results into its own cache and home."""
    monkeypatch.setenv("NEUROZOO_CACHE", session_cache)
    monkeypatch.setenv("NEUROZOO_HOME", str(tmp_path_factory.getbasetemp() / "home"))


@pytest.fixture(autouse=True)
def _plugins_loaded_in_the_test_only(monkeypatch):
    """The installed packages' entries a test loads (test_plugins installs some in a folder put on sys.path) are left
    out of the next tests' records: ``environment.plugins`` (``datasets.registry.loaded_plugins``) lists every plugin
    its process used, so a record made in the test's process after them differed from one of a fresh ``zoo`` process
    (a rerun in process then stored a second record instead of reusing the first: test_score_stop)."""
    from neurozoo.datasets import registry

    monkeypatch.setattr(registry, "_LOADED_PLUGINS", dict(registry._LOADED_PLUGINS))


@pytest.fixture(autouse=True)
def _seeded_global_generators():
    """Each test starts from the same state of the global random generators (torch's, NumPy's, Python's). A test
    that draws from them without seeding them itself (``torch.randn``, a model's initial weights) drew whatever
    the tests run before it in its worker had left: its numbers changed with the order and the split of a
    parallel run, and a tolerance that held for most draws failed now and then."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module's tests: tiny convolutions are overhead-bound, and on a busy 2-core machine
    OpenMP spin-waiting makes two threads up to ~30x slower than one (a module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def python_ctrl_c():
    """Ctrl-C as Python sets it up (``KeyboardInterrupt``) for this test and the processes it starts. A suite run in
    the background of a non-interactive shell (``pytest ... &``) inherits SIGINT ignored, and there the tests of
    Ctrl-C failed: a Ctrl-C the process was told to ignore stays ignored, by design."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, signal.SIG_DFL if before is None else before)


@pytest.fixture
def signal_in_epoch(monkeypatch):
    """``signal_in_epoch(epoch, signum)``: this process gets ``signum`` during the validation of the ``epoch``-th epoch
    (from 1) that retina fits train from now on, before that epoch's checkpoint: a fixed point to stop a fit at."""
    from neurozoo.retina import fit as fitting

    def arm(epoch: int, signum: int) -> None:
        correlation, calls = fitting._mean_correlation, []

        def validation(*args):
            calls.append(1)
            if len(calls) == epoch:
                os.kill(os.getpid(), signum)
            return correlation(*args)

        monkeypatch.setattr(fitting, "_mean_correlation", validation)

    return arm


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real recordings not found at {SHARED_DATA} (set NEUROZOO_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def untagged_plugin(monkeypatch) -> str:
    """The name of a V4 benchmark registered, for this test only, as an entry point registers a plugin: without
    tags, its region only on the benchmark itself (its data are never loaded)."""
    from neurozoo import benchmarks
    from neurozoo.benchmarks.neural import NeuralBenchmark
    from neurozoo.datasets.registry import Entry

    name = "lbtest.V4"

    def make():
        return NeuralBenchmark(name, "V4", load_assembly=None, load_stimuli=None)

    monkeypatch.setitem(benchmarks.BENCHMARKS._entries, name, Entry(name, make, "(plugin lbtest_plugin:make)"))
    return name


@pytest.fixture
def postgres_url():
    """A URL of the test PostgreSQL (``$NEUROZOO_TEST_POSTGRES_URL``) whose search path is a scratch schema of this
    test's own, dropped after it; None when no PostgreSQL is set. The database is shared by the workers of a
    parallel run and by other runs: a fixed schema name let one test drop the schema under another's tables, and
    two tests create the same tables at once in a fresh database."""
    url = os.environ.get("NEUROZOO_TEST_POSTGRES_URL")
    if not url:
        yield None
        return
    import uuid

    from sqlalchemy import create_engine, text

    schema, admin = f"nz_test_{os.getpid()}_{uuid.uuid4().hex[:8]}", create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
