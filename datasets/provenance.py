"""Provenance of every score and fit: code version, checksums of data files, arrays and model weights, device.

In the lowest package so that convrnn, retina, benchmarks and leaderboard record the same things the same way."""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional

import numpy as np

from neurozoo.datasets.git_checkout import checkout_commit, checkout_diff_sha256

REPO = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def git_commit() -> Optional[str]:
    """The commit of this code (with ``-dirty`` when tracked files had changed), or None when unknown.

    First the live checkout the code runs from (an editable install in a checkout reports the commit checked out
    now, not the one it was installed at); else the commit a wheel or sdist was built from, which setup.py writes
    into ``_build_info.py``; else None (a copy built outside a git checkout)."""
    return checkout_commit(REPO) or build_commit()


@lru_cache(maxsize=1)
def code_diff_sha256() -> Optional[str]:
    """sha256 of the uncommitted changes of a ``-dirty`` checkout (:func:`git_commit`), or of the checkout a ``-dirty``
    wheel or sdist was built from (setup.py embeds it), else None: the code version says only that there were some."""
    commit = git_commit()
    if not (commit and commit.endswith("-dirty")):
        return None
    return checkout_diff_sha256(REPO) if checkout_commit(REPO) else build_diff_sha256()


def build_commit() -> Optional[str]:
    """The commit setup.py embedded when this copy was built (``-dirty`` appended when its tree had changed)."""
    try:
        from neurozoo.datasets import _build_info
    except ImportError:
        return None
    commit = getattr(_build_info, "COMMIT", None)
    return commit + ("-dirty" if getattr(_build_info, "DIRTY", False) else "") if commit else None


def build_diff_sha256() -> Optional[str]:
    """The sha256 of the uncommitted changes setup.py embedded when this copy was built from a ``-dirty`` checkout
    (None for a clean one, and for a copy built before it was embedded)."""
    try:
        from neurozoo.datasets import _build_info
    except ImportError:
        return None
    return getattr(_build_info, "DIFF_SHA256", None)


def package_version() -> str:
    """The installed distribution's version; for a source tree that was never installed, setup.cfg's."""
    try:
        return version("neurozoo")
    except PackageNotFoundError:
        import configparser

        config = configparser.ConfigParser()
        config.read(REPO / "setup.cfg")
        return config.get("metadata", "version", fallback="unknown")


#: environment variables that change a score's last bits (README, "Reproducibility"): the kernels MKL, oneDNN and
#: torch pick by the CPU's instruction set, and the thread counts of OpenMP and the BLAS
NUMERIC_VARIABLES = ("MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
                     "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def environment() -> dict:
    """The versions a score depends on beside the code: Python, torch, numpy, SciPy and scikit-learn (the metrics'
    linear algebra and splits), the platform and CPU (its instruction set picks the kernels), and the thread counts
    of torch and of the BLAS (float sums are grouped by thread, so either count can change the last bits); those of
    :data:`NUMERIC_VARIABLES` that are set (only those, under their own names); for a ``-dirty`` checkout, the sha256
    of its uncommitted changes; and the plugins used (the installed packages' models and benchmarks: their package
    and version)."""
    import platform
    import sys

    import torch

    from neurozoo.datasets.registry import loaded_plugins

    plugins = loaded_plugins()  # only when there are: the records of the suite's own models state what they did
    diff = code_diff_sha256()
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "scipy": _distribution_version("scipy"), "sklearn": _distribution_version("scikit-learn"),
            "platform": f"{sys.platform}-{platform.machine()}", "cpu": cpu_model(),
            "torch_threads": torch.get_num_threads(), "blas_threads": blas_threads(),
            **{name: os.environ[name] for name in NUMERIC_VARIABLES if name in os.environ},
            **({"code_diff_sha256": diff} if diff else {}),
            **({"plugins": plugins} if plugins else {})}


def _distribution_version(name: str) -> Optional[str]:
    """An installed distribution's version, read without importing it (scikit-learn takes ~1 s to import)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def blas_threads() -> Optional[int]:
    """The thread count of the BLAS that numpy and SciPy call (OpenBLAS, MKL; the largest where several are
    loaded), None where none is: the PLS mapping and the ceilings' linear algebra group their sums by it, which moves
    the last bits of a score as torch's count does (measured: ``OPENBLAS_NUM_THREADS=1`` against 2 moved a ConvRNN's
    V4 score by 3.4e-8, torch's count unchanged)."""
    from threadpoolctl import threadpool_info

    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(counts) if counts else None


def code_version() -> str:
    """``<package version>+g<commit>[-dirty]`` when the commit is known (of the checkout, else the one the wheel or
    sdist was built from), else the package version."""
    commit = git_commit()
    return f"{package_version()}+g{commit[:12]}{'-dirty' if commit.endswith('-dirty') else ''}" if commit else package_version()


def run_provenance() -> dict:
    """What a measurement outside the results store states of its run, as a score record does: the code version, the
    commit and :func:`environment` (the perf scripts' JSON, whose figures the README quotes)."""
    return {"code_version": code_version(), "git_commit": git_commit(), "environment": environment()}


def run_provenance_line(stated: Optional[dict] = None) -> str:
    """:func:`run_provenance` (or ``stated``, one it returned) as one line, which the perf scripts print before their
    figures: a figure copied into the README named no code version, so it could not be measured again on the code it
    came from."""
    stated = stated or run_provenance()
    versions = "; ".join(f"{key} {value}" for key, value in stated["environment"].items() if value is not None)
    return f"code {stated['code_version']}; {versions}"


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


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes; remembered per (path, file identity, size, modification and change times), since
    the same recordings are hashed by every fit and score of a run. The identity (device, inode) tells a file
    replaced atomically (a new file renamed over the old) within one tick of the file-system clock, with the same
    size and times, from the one hashed before."""
    return _sha256_file(str(Path(path).resolve()), file_state(path), chunk)


def file_state(path) -> tuple:
    """What tells one version of a file from another without reading it, for a cache of what was read from it
    (:func:`sha256_file`, ``datasets.retina_h5.read_experiment``): its identity (device, inode), size, and
    modification and change times."""
    stat = os.stat(path)
    return (stat.st_dev, stat.st_ino), stat.st_size, (stat.st_mtime_ns, stat.st_ctime_ns)


@lru_cache(maxsize=256)
def _sha256_file(path: str, state: tuple, chunk: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def sha1_file(path, chunk: int = 1 << 20) -> str:
    """sha1 of a file's bytes: the digest Brain-Score pins its data files by (brainio ``fetch_file(..., sha1=)``).
    Not cached: it is read once, to check a file against the digest a Brain-Score data plugin publishes."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def module_sha256(model) -> str:
    """Hash of a torch module's class and every parameter and buffer (name, dtype, shape, bytes), 0-dim buffers
    included: equal exactly when the weights are bit-identical."""
    import torch

    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def cpu_info() -> dict:
    """/proc/cpuinfo's first processor as ``{field: value}`` ("model name", "flags", ...); empty where there is none."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {}
    info = {}
    for key, _, value in (line.partition(":") for line in lines if ":" in line):
        info.setdefault(key.strip(), value.strip())
    return info


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else the platform's processor string."""
    import platform

    return cpu_info().get("model name") or platform.processor() or platform.machine()


def device_name(device=None) -> str:
    import platform

    import torch

    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(torch.device(device))}"
    return f"cpu:{platform.processor() or platform.machine()}"
