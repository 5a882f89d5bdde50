import os
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


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session writes generated data and results into its own cache and home."""
    root = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("NEUROZOO_CACHE", os.environ.get("NEUROZOO_TEST_CACHE", str(root / "cache")))
    monkeypatch.setenv("NEUROZOO_HOME", str(root / "home"))


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real recordings not found at {SHARED_DATA} (set NEUROZOO_SHARED_DATA)")
    return SHARED_DATA
