import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NEUROZOO_SHARED_DATA", REPO.parent / "shared" / "data"))

# Deterministic and quiet on the 2-core CI machine.
torch.set_num_threads(min(2, os.cpu_count() or 1))


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
