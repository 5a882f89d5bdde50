"""Where the harness writes: ``$NEUROZOO_HOME`` (results store, plots) and ``$NEUROZOO_CACHE`` (activations)."""
from __future__ import annotations

import os
from pathlib import Path

from neurozoo.datasets.cache import cache_dir  # noqa: F401  (one cache for the whole suite)


def home() -> Path:
    return Path(os.environ.get("NEUROZOO_HOME") or Path.home() / ".neurozoo").expanduser()


def results_dir() -> Path:
    return home() / "results"
