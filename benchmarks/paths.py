"""Where the harness writes: ``$NEUROZOO_HOME`` (results store, plots) and ``$NEUROZOO_CACHE`` (activations)."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("NEUROZOO_HOME") or Path.home() / ".neurozoo")


def cache_dir() -> Path:
    return Path(os.environ.get("NEUROZOO_CACHE") or home() / "cache")


def results_dir() -> Path:
    return home() / "results"
