"""What ``$NEUROZOO_CACHE`` holds, by kind, and the removal of what the harness makes again by itself (``zoo cache``).

Sizes are the files' own (``st_size``, no file is read or hashed), so a survey of a large cache takes a walk of its
folders. Removable: the activation cache's entries (:mod:`benchmarks.extraction.cache`): this home's final and
partial ones, those of the partitions signed under another home's secret, and those of the cache's earlier layout,
which no home reads; and the retina fits (:mod:`retina.embedded_fit`). Each is removed only under its lock, taken
exclusively (:func:`datasets.cache.unless_held`): an extraction holds its entries' locks shared from before it reads
them until it has saved them (:meth:`ActivationCache.in_use`), a fit its folder's for as long as it fits or uses the
fit, so an entry in use is left alone and reported. What is removed is made again by the next run that needs it, to
the same features (a fit: the same protocol and seed). The data (imported, converted, generated) are not removed here:
``zoo data`` manages them, and a scoring reads them without a lock.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from neurozoo.benchmarks.extraction.cache import (FINAL_SUFFIX, LOCK_SUFFIX, PARTIAL_SUFFIX, SECRET_FILE, TEMPORARY,
                                                  secret_partition)
from neurozoo.benchmarks.paths import cache_dir, home
from neurozoo.datasets.cache import MANIFEST, remove_dead_temporaries, unless_held

#: a partition's folder name (:func:`secret_partition`): ``s`` and 15 hex digits of a digest keyed by the home's secret
PARTITION = re.compile(r"s[0-9a-f]{15}")


@dataclass(frozen=True)
class Kind:
    name: str
    description: str
    #: the ``zoo cache clear`` options that remove it (none: kept; ``zoo data`` manages it)
    cleared_by: tuple = ()


KINDS = (Kind("final", "activations", ("--all",)),
         Kind("partial", "partial activations (stopped extractions)", ("--partial", "--all")),
         Kind("other-homes", "activations of other homes", ("--other-homes", "--all")),
         Kind("earlier-layout", "activations, earlier layout (read by none)", ("--other-homes", "--all")),
         Kind("fits", "retina fits", ("--fits", "--all")),
         Kind("recordings", "embedded retina recordings"),
         Kind("ventral", "embedded ventral data"),
         Kind("converted", "converted data sets"),
         Kind("imported", "imported data"),
         Kind("other", "other files"))
KIND = {kind.name: kind for kind in KINDS}
#: the kinds each ``zoo cache clear`` option removes
CLEARED = {option: [kind.name for kind in KINDS if option in kind.cleared_by]
           for option in ("--partial", "--other-homes", "--fits", "--all")}


@dataclass
class Entry:
    """One removable (or, for the data kinds, countable) thing: what removing it removes, its size, its newest
    modification time and the lock that guards it (None: nothing uses it, or, for the data, not removable here)."""

    kind: str
    paths: List[Path]
    size: int = 0
    modified: float = 0.0
    lock: Optional[Path] = None
    #: only a lock file left by a process killed while holding it (no entry): removed with its partition, not counted
    lock_only: bool = False


@dataclass
class Survey:
    root: Path
    #: this home's partition (None: this home has no secret yet, so no entry is its own)
    partition: Optional[str]
    entries: List[Entry] = field(default_factory=list)

    def of(self, kind: str) -> List[Entry]:
        return [entry for entry in self.entries if entry.kind == kind and not entry.lock_only]

    def other_partitions(self) -> List[str]:
        return sorted({entry.paths[0].relative_to(self.root / "activations").parts[0]
                       for entry in self.of("other-homes")})


def this_partition() -> Optional[str]:
    """The partition of the entries this home signs, or None when its secret does not exist yet (none can be its own;
    asking :func:`secret_partition` would create the secret)."""
    return secret_partition() if (home() / SECRET_FILE).is_file() else None


def survey(root: Optional[Path] = None) -> Survey:
    """Every entry under the cache ``root`` (default ``$NEUROZOO_CACHE``), by kind."""
    root = Path(root) if root is not None else cache_dir()
    found = Survey(root, this_partition())
    activations = root / "activations"
    for child in _children(activations):
        if child.is_dir() and PARTITION.fullmatch(child.name):
            found.entries += _partition_entries(child, mine=child.name == found.partition)
        else:  # the layout of before the partitions: <key[:2]>/<key>.nc beside <key>.nc.hmac
            found.entries += _grouped(child, "earlier-layout")
    fits = root / "retina" / "fits"
    for child in _children(fits):
        if child.is_dir() and not child.name.startswith("."):  # .<name>.tmp-...: a fit's temporary (none so far)
            found.entries.append(_entry("fits", [child], lock=fits / f"{child.name}{LOCK_SUFFIX}"))
    for child in _data_children(root / "retina"):
        if child != fits:
            found.entries.append(_entry("recordings", [child]))
    for child in _data_children(root / "embedded"):
        found.entries.append(_entry("ventral", [child]))
    for child in _children(root / "converted"):
        found.entries += [_entry("converted", [version]) for version in _children(child)] if child.is_dir() else [
            _entry("converted", [child])]
    for child in _children(root / "data"):
        found.entries.append(_entry("imported", [child]))
    for child in _children(root):
        if child.name not in ("activations", "retina", "embedded", "converted", "data"):
            found.entries.append(_entry("other", [child]))
    return found


def _children(folder: Path) -> List[Path]:
    try:
        return sorted(Path(folder).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _data_children(folder: Path) -> List[Path]:
    """The data sets in a folder of generated data: not the locks that guard their making (``retina/manifest.json.lock``,
    ``embedded/.ventral-v5-seed0.lock``) nor the recordings' manifest of digests, which were counted as recordings."""
    return [child for child in _children(folder)
            if not child.name.endswith(LOCK_SUFFIX) and not child.name.startswith(".") and child.name != MANIFEST]


def _partition_entries(partition: Path, mine: bool) -> List[Entry]:
    """A partition's entries: of this home, each key's final entry and its partial one apart; of another home, each
    key's as one entry (final and partial together)."""
    entries = []
    for folder in _children(partition):
        keys: Dict[str, Dict[str, Path]] = {}
        for path in _children(folder):
            if path.name.startswith("."):  # a save in progress, or a dead one's temporary: remove_dead_temporaries
                continue
            for part, suffix in (("final", FINAL_SUFFIX), ("partial", PARTIAL_SUFFIX), ("lock", LOCK_SUFFIX)):
                if path.name.endswith(suffix):
                    keys.setdefault(path.name[:-len(suffix)], {})[part] = path
                    break
        for key, parts in sorted(keys.items()):
            lock = folder / f"{key}{LOCK_SUFFIX}"
            if mine:
                entries += [_entry(part, [parts[part]], lock=lock) for part in ("final", "partial") if part in parts]
            if not mine and ("final" in parts or "partial" in parts):
                entries.append(_entry("other-homes", [parts[p] for p in ("final", "partial") if p in parts], lock=lock))
            if "final" not in parts and "partial" not in parts:
                entries.append(Entry("other-homes" if not mine else "final", [], lock=lock, lock_only=True))
    return entries


def _grouped(path: Path, kind: str) -> List[Entry]:
    """The files under ``path`` as entries of ``kind``, one per key (the name before its first dot)."""
    if not path.is_dir():
        return [_entry(kind, [path])]
    keys: Dict[tuple, List[Path]] = {}
    for folder, _, files in os.walk(path):
        for name in files:
            keys.setdefault((folder, name.partition(".")[0]), []).append(Path(folder) / name)
    return [_entry(kind, paths) for _, paths in sorted(keys.items())]


def _entry(kind: str, paths: List[Path], lock: Optional[Path] = None) -> Entry:
    size, modified = measured(paths)
    return Entry(kind, paths, size, modified, lock)


def measured(paths: Iterable[Path]) -> tuple:
    """``(bytes, newest modification time)`` of the files at or under ``paths`` (links not followed; missing: 0)."""
    size, modified = 0, 0.0
    for path in paths:
        try:
            status = os.lstat(path)
        except FileNotFoundError:
            continue
        if not os.path.isdir(path) or os.path.islink(path):
            size, modified = size + status.st_size, max(modified, status.st_mtime)
            continue
        for folder, _, files in os.walk(path):
            for name in files:
                try:
                    status = os.lstat(os.path.join(folder, name))
                except FileNotFoundError:
                    continue
                size, modified = size + status.st_size, max(modified, status.st_mtime)
    return size, modified


@dataclass
class Cleared:
    removed: List[Entry] = field(default_factory=list)
    #: entries left alone: an extraction or fit holds their lock
    in_use: List[Entry] = field(default_factory=list)

    def freed(self) -> int:
        return sum(entry.size for entry in self.removed)


def clear(kinds: Sequence[str], older_than_s: Optional[float] = None, dry_run: bool = False,
          root: Optional[Path] = None) -> Cleared:
    """Remove the entries of ``kinds`` (of :data:`CLEARED`'s) last modified more than ``older_than_s`` seconds ago
    (None: all), each under its lock unless another process holds it (then kept, in ``in_use``). ``dry_run``: only
    says what would go (asking each lock, taking none). Folders emptied on the way are removed too."""
    found = survey(root)
    cutoff = None if older_than_s is None else time.time() - older_than_s
    result, emptied = Cleared(), set()
    for entry in found.entries:
        if entry.kind not in kinds or (cutoff is not None and not entry.lock_only and entry.modified > cutoff):
            continue
        if entry.lock_only and (dry_run or cutoff is not None):
            continue
        try:
            guard = unless_held(entry.lock, dry_run) if entry.lock is not None else nullcontext(True)
            with guard as free:
                if not free:  # a lock alone is an extraction that has kept nothing yet: nothing to name
                    result.in_use += [] if entry.lock_only else [entry]
                    continue
                entry.size, _ = measured(entry.paths)  # under the lock: as it is removed (an extraction may have
                if not dry_run:                          # finished between the survey and the lock)
                    for path in entry.paths:
                        _remove(path)
                    emptied.update([path.parent for path in entry.paths] + ([entry.lock.parent] if entry.lock else []))
                if not entry.lock_only:
                    result.removed.append(entry)
        except FileNotFoundError:  # its folder removed meanwhile (another clear): nothing left to remove
            continue
    if not dry_run:
        _remove_empty_folders(found, emptied)
    return result


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_empty_folders(found: Survey, emptied: Iterable[Path]) -> None:
    """Each folder an entry was removed from, and its parents up to ``activations/`` or ``retina/fits/``, if empty
    (the dead temporaries in them removed first); another extraction's save makes its folder again if it must
    (``ActivationCache._write_signed``)."""
    stops = {found.root / "activations", found.root / "retina" / "fits", found.root}
    for folder in sorted(emptied, key=lambda path: -len(path.parts)):
        while folder not in stops and found.root in folder.parents:
            remove_dead_temporaries(folder, TEMPORARY)
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): it and its parents stay
                break
            folder = folder.parent


def size_text(size: int) -> str:
    """Bytes in decimal units, as ``zoo data list`` gives MB: ``0 B``, ``512 B``, ``35.0 MB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
