"""Converters from published recordings (imported into the cache by the catalog) to assemblies + stimulus sets.

Each converter writes its output once into ``$NEUROZOO_CACHE/converted/<name>/<key>/`` (key: converter
version and the sha256 of its inputs) as ``assembly.nc`` + ``stimulus_set.csv`` + ``stimulus_set/``
(images), with a manifest; later loads re-hash that folder and read it back.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Dict

from neurozoo.datasets import Recording
from neurozoo.datasets.cache import building, cache_dir, verify_folder

ASSEMBLY_FILE = "assembly.nc"
STIMULUS_FILE = "stimulus_set.csv"


def converted_folder(name: str, version: int) -> Path:
    from neurozoo.datasets import catalog

    inputs = "".join(f"{f.path}={f.sha256}\n" for f in catalog.get(name).files)
    key = hashlib.sha256(f"{name}\n{version}\n{inputs}".encode()).hexdigest()[:16]
    return cache_dir() / "converted" / name / f"v{version}-{key}"


def load_converted(name: str, version: int, convert: Callable[[Dict[str, Path], Path], None],
                   nan_policy: str = "raise") -> Recording:
    """Fetch the raw files, convert them once (``convert(files, folder)``), then load and validate the result."""
    from neurozoo.datasets import catalog
    from neurozoo.datasets.assembly import load_assembly
    from neurozoo.datasets.stimuli import load_stimulus_set

    folder = converted_folder(name, version)
    if not (folder / "manifest.json").is_file():
        files = catalog.fetch(name)
        with building(folder, {"name": name, "converter_version": version}) as tmp:
            convert(files, tmp)
    verify_folder(folder)
    stimulus_set = load_stimulus_set(folder / STIMULUS_FILE, identifier=name)
    assembly = load_assembly(folder / ASSEMBLY_FILE, stimulus_set=stimulus_set, nan_policy=nan_policy)
    return Recording(assembly, stimulus_set)
