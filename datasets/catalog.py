"""Registry of raw data files: name -> files pinned by sha256, imported from local sources into the cache.

Nothing is downloaded. A file enters the cache (``$NEUROZOO_CACHE/data/<path>``) only through
``import_files``, which hashes it first; ``fetch`` re-hashes cached files on every use and, for a
file not yet imported, imports it from the default local source (``$NEUROZOO_SHARED_DATA``).
"""
from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from neurozoo.datasets.cache import cache_dir, check_sha256, remove_dead_temporaries, shared_data_dir
from neurozoo.datasets.provenance import sha256_file
from neurozoo.datasets.checksums import SHA256
from neurozoo.datasets.errors import DataError
from neurozoo.datasets.json_files import written_whole


@dataclass(frozen=True)
class DataFile:
    path: str  # relative to the source folder and to the cache's data/ folder
    sha256: str
    size: int

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    files: Tuple[DataFile, ...]
    description: str = ""
    source: str = ""
    license: str = ""
    tags: Dict[str, str] = field(default_factory=dict)

    @property
    def sha256(self) -> Dict[str, str]:
        return {f.path: f.sha256 for f in self.files}


def _files(prefix: str, names: Optional[Sequence[str]] = None) -> Tuple[DataFile, ...]:
    paths = [p for p in SHA256 if p.startswith(prefix)] if names is None else [prefix + n for n in names]
    return tuple(DataFile(p, *SHA256[p]) for p in sorted(paths))


CATALOG: Dict[str, CatalogEntry] = {e.name: e for e in (
    CatalogEntry("cowley2023.v4_210325",
                 _files("v4_cowley2023/", ["images_210325.zip", "responses_210325_raw.npy",
                                           "responses_210325_repeat_averaged.npy"]),
                 "macaque V4, 50 units x 640 images x up to 10 repeats, one 100 ms window",
                 "github.com/cowleygroup/V4_compact_models data_V4_responses/ (Cowley et al. 2023)", "GPL-3.0",
                 {"family": "cowley2023", "region": "V4"}),
    CatalogEntry("cowley2023.v4_190923",
                 _files("v4_cowley2023/", ["images_190923.zip", "responses_190923_repeat_averaged.npy"]),
                 "macaque V4, 33 units x 1200 images, repeat means only",
                 "github.com/cowleygroup/V4_compact_models data_V4_responses/ (Cowley et al. 2023)", "GPL-3.0",
                 {"family": "cowley2023", "region": "V4"}),
    CatalogEntry("zhang_desimone2011.it", _files("it_zhang_desimone2011/"),
                 "macaque IT spike rasters, 132 units, 7 objects x 3 positions, 1 ms bins",
                 "github.com/emeyers/NeuroDecodeR data-raw/raster/ (Zhang et al. 2011)", "GPL-3",
                 {"family": "zhang_desimone2011", "region": "IT"}),
    CatalogEntry("allen_bo.v1_natural_scenes", _files("v1_allen_natural_scenes/"),
                 "mouse V1 (calcium imaging), 212 neurons x 118 natural scenes 31x31 grey, trial averages, "
                 "published split train 100 / test 18 scenes",
                 "github.com/psailamul/Allen_Brain_Observatory (Allen Brain Observatory natural scenes)",
                 "Allen Institute terms of use",
                 {"family": "allen_bo", "region": "V1"}),
)}


def get(name: str) -> CatalogEntry:
    from neurozoo.datasets.registry import UnknownNameError, lookup

    try:  # the registries' one refusal, with close names
        lookup(name, [], "data set", lambda name: " in the catalog", also=CATALOG)
    except UnknownNameError as error:
        raise DataError(str(error)) from None
    return CATALOG[name]


def data_dir() -> Path:
    return cache_dir() / "data"


def cached_path(file: DataFile) -> Path:
    return data_dir() / file.path


def _find_source(file: DataFile, source: Path) -> Optional[Path]:
    """The file under ``source``: at its relative path, or directly inside ``source`` by name."""
    for candidate in (source / file.path, source / file.name):
        if candidate.is_file():
            return candidate
    return None


#: What :func:`import_files` did with a file of a data set (:attr:`ImportedFile.status`): found it in the cache already
#: (its copy re-hashed), copied or linked it in, or replaced a cached copy with it (``force``).
PRESENT, IMPORTED, REPLACED = "already present", "imported", "replaced"


@dataclass(frozen=True)
class ImportedFile:
    """One file of an import: its catalog entry, its path in the cache, what was done (:data:`PRESENT`,
    :data:`IMPORTED`, :data:`REPLACED`; its sha256 verified in each case) and the source file copied or linked (None
    when it was already present; the cached file itself when the source was, which ``force`` leaves as it is)."""
    file: DataFile
    path: Path
    status: str
    origin: Optional[Path] = None


def import_files(name: str, source: Optional[Path] = None, link: bool = False, force: bool = False,
                 report: Optional[Callable[[ImportedFile], None]] = None) -> List[Path]:
    """Hash each file of ``name`` in ``source`` and copy (or symlink) it into the cache; ``report`` is told of each
    file once all are in place (:class:`ImportedFile`: already present, imported or replaced).

    A file already in the cache is re-hashed: a mismatch is an error unless ``force`` replaces it. All or nothing:
    every source file is found and verified before any is written, and the copies, each verified, are renamed into
    place together once all are made; an error or an interruption on the way leaves the cache as it was (until
    2026-12-04 the files before a missing or corrupt one, or before a Ctrl-C, stayed imported: a data set half in the
    cache).
    """
    entry = get(name)
    source = Path(source) if source is not None else shared_data_dir()
    if not source.is_dir():
        state = "is a file, not a folder" if source.exists() else "does not exist"
        raise DataError(f"{source}: source folder for {name!r} {state} (give --from DIR or set NEUROZOO_SHARED_DATA)")
    done, to_write = [], []
    for file in entry.files:  # what to do with each file, every source verified: nothing is written yet
        target = cached_path(file)
        present = target.is_file()
        if present and not force:
            check_sha256(target, file.sha256, f"{name}:{file.path} (re-import with --force)")
            done.append(ImportedFile(file, target, PRESENT))
            continue
        origin = _find_source(file, source)
        if origin is None:
            raise DataError(f"{source}: no file {file.path} (or {file.name}) for data set {name!r}; nothing was imported")
        try:
            check_sha256(origin, file.sha256, f"{name}:{file.path}")
        except DataError as error:
            raise DataError(f"{error}; nothing was imported") from None
        if present and not target.is_symlink() and os.path.samefile(origin, target):
            # the source is the cached copy itself (--from the cache's data folder): a link would replace the data
            # with a link to itself, a copy would copy it onto itself
            done.append(ImportedFile(file, target, PRESENT, origin))
            continue
        done.append(ImportedFile(file, target, REPLACED if present else IMPORTED, origin))
        to_write.append(done[-1])
    with contextlib.ExitStack() as stack:  # each temporary renamed into place as the stack closes, all or none
        for imported in to_write:
            target, origin = imported.path, imported.origin
            target.parent.mkdir(parents=True, exist_ok=True)
            remove_dead_temporaries(target.parent, f"{target.name}.tmp*")  # of an import killed while copying
            remove_dead_temporaries(target.parent, f".{target.name}.tmp*")  # (named so before)
            tmp = stack.enter_context(written_whole(target))
            tmp.unlink(missing_ok=True)  # a dead process's of this pid: symlink_to would fail on it
            if link:
                tmp.symlink_to(origin.resolve())
            else:
                shutil.copyfile(origin, tmp)
                check_sha256(tmp, imported.file.sha256, f"{name}:{imported.file.path} (copy)")
    for imported in done:
        if report is not None:
            report(imported)
    return [imported.path for imported in done]


def fetch(name: str) -> Dict[str, Path]:
    """Verified local paths of every file of ``name`` keyed by file name, importing from the default source if needed."""
    entry = get(name)
    missing = [f for f in entry.files if not cached_path(f).is_file()]
    if missing:
        source = shared_data_dir()
        if not source.is_dir():
            raise DataError(f"{cached_path(missing[0])}: data set {name!r} is not in the cache and the default source "
                            f"{source} does not exist; run `zoo data import {name} --from DIR`")
        import_files(name, source)
    else:
        for file in entry.files:
            check_sha256(cached_path(file), file.sha256, f"{name}:{file.path} (re-import with `zoo data import {name} --force`)")
    return {f.name: cached_path(f) for f in entry.files}


def status(name: str) -> Dict[str, str]:
    """Per file: 'ok', 'missing' or 'MISMATCH' (re-hashes the cached copies)."""
    result = {}
    for file in get(name).files:
        path = cached_path(file)
        if not path.is_file():
            result[file.path] = "missing"
        else:
            result[file.path] = "ok" if sha256_file(path) == file.sha256 else "MISMATCH"
    return result
