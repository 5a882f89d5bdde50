"""Provenance of a score: code version, data checksums, device."""
from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def git_commit() -> Optional[str]:
    """The checkout's commit (with ``-dirty`` when tracked files changed), or None outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5)
        if commit.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_version() -> str:
    try:
        return version("neurozoo")
    except PackageNotFoundError:
        return "unknown"


def code_version() -> str:
    """``<package version>+g<commit>`` when the commit is known, else the package version."""
    commit = git_commit()
    return f"{package_version()}+g{commit[:12]}{'-dirty' if commit.endswith('-dirty') else ''}" if commit else package_version()


def sha256_array(array) -> str:
    """Checksum of an array's values, shape and dtype (of an xarray object: of its values and coordinates)."""
    digest = hashlib.sha256()
    if hasattr(array, "coords"):
        for name in sorted(array.coords):
            digest.update(name.encode())
            digest.update(sha256_array(np.asarray(array[name].values).astype(str)).encode())
        array = array.values
    array = np.ascontiguousarray(array)
    digest.update(str((array.shape, array.dtype.str)).encode())
    digest.update(array.tobytes() if array.dtype != object else repr(array.tolist()).encode())
    return digest.hexdigest()


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def device_name(device=None) -> str:
    import platform

    import torch

    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(torch.device(device))}"
    return f"cpu:{platform.processor() or platform.machine()}"
