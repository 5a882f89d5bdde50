"""Where the harness writes: ``$NEUROZOO_HOME`` (results store, plots) and ``$NEUROZOO_CACHE`` (activations)."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("NEUROZOO_HOME") or Path.home() / ".neurozoo").expanduser()


def cache_dir() -> Path:
    """Same place as ``datasets``' cache: ``$NEUROZOO_CACHE``, default ``~/.cache/neurozoo``."""
    return Path(os.environ.get("NEUROZOO_CACHE") or Path.home() / ".cache" / "neurozoo").expanduser()


def results_dir() -> Path:
    return home() / "results"
