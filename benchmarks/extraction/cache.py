"""On-disk activation cache keyed by what determines the activations.

key = sha256(model weights and buffers) + sha256(stimulus ids and pixels) + extraction settings (with a ConvRNN's
graph, its spec) + layer. A changed weight changes the model hash, and a changed cell setting that is no weight (a
gate offset, a nonlinearity) the graph, so a changed model can never read a stale cache (until 2026-12-04 the graph
was not keyed: another gate offset with the same weights was served the first model's activations).

Integrity: each entry is one file ``<key>.nc.signed``: a line with an HMAC-SHA256 of the netCDF bytes keyed by
the host's secret (:func:`server_secret`, ``$NEUROZOO_HOME/secret.key``, not in the cache folder), then those
bytes. A read hashes the bytes it then parses (a private copy, so the file cannot change in between) and treats a
missing or wrong digest as a miss: the activations are recomputed and the entry rewritten. Whoever can write the
cache folder but not read the secret therefore cannot make a model score with activations it did not
produce. Only trusted code writes here: submitted models run sandboxed, without a view of the cache.

Digest and data land together in one rename, so concurrent writers or a kill mid-write leave the entry either
complete and valid or as it was (an earlier layout, ``<key>.nc`` beside ``<key>.nc.hmac``, renamed the two one
after the other and could leave a mismatched pair; its entries, in the folder above the partitions, are no longer
read).

Partial entries: an extraction stopped between batches (``zoo score``'s SIGTERM) keeps the batches it finished, so
the rerun resumes after them. Each finished batch of a layer is one file ``<key>.partial/batch-<k>.signed`` (the
layer's final key), written as the batch comes out of the model: a digest line (its own purpose, so no partial file
is ever valid as a final entry), a JSON header (the key, the batch and :func:`resume_settings`: batch size, device,
torch, the CPU's thread count, what a bit-identical resumption also needs) and the batch's ``(images, features,
time_bins)`` float32 array in ``.npy`` bytes, renamed into place whole. One file per batch: the writes cost what the features weigh (a file
rewritten after each batch cost the square), and a SIGKILL loses at most the batch in progress. A rerun reads the
batches ``0, 1, ...`` up to the first missing, unreadable or foreign one (with a warning for the last two), removes
that one and those after it, and computes the rest; the final entry's save removes the folder (one left by a kill
between the two goes with the final entry's next read, :meth:`ActivationCache.load`). A partial of
settings never run again stays, as final entries do, until ``zoo cache clear`` (:mod:`benchmarks.cache_contents`).

In use: an extraction (and the leaderboard worker, for a submission's layers: :func:`leaderboard.worker.model_features`)
holds a shared lock on each of its keys (:meth:`ActivationCache.in_use`, the file ``<key>.lock`` beside the entry) from
before it reads the entry until it has saved it; ``zoo cache clear`` removes an entry only under that lock taken
exclusively, and leaves the entries of a running extraction alone, saying so.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import secrets
import shutil
import tempfile
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence

import numpy as np
import torch
import xarray as xr

from neurozoo.benchmarks.paths import cache_dir, home
from neurozoo.datasets.cache import locked, remove_dead_owned_once, remove_dead_temporaries, temporary_suffix

SECRET_FILE = "secret.key"
TEMPORARY = ".*.tmp*"  # ``.<key>.<random>.tmp-<host>-<pid>``: a save in progress, or one killed mid-write
PARTIAL_BATCH = re.compile(r"batch-(\d+)\.signed")
FINAL_SUFFIX, PARTIAL_SUFFIX, LOCK_SUFFIX = ".nc.signed", ".partial", ".lock"  # of ``<key>``, in ``<root>/<key[:2]>/``


def server_secret() -> bytes:
    """The host's random secret (created on first use, mode 0600, under ``$NEUROZOO_HOME``). It keys the
    activation cache's digests and the leaderboard's hidden split; it never leaves the trusted side."""
    path = home() / SECRET_FILE
    remove_dead_owned_once(path.parent, SECRET_TEMPORARY)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        # named with this process's host and pid (SECRET_TEMPORARY)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=SECRET_TEMPORARY, suffix=temporary_suffix())
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
            # on disk before the link, and the link after it: a power cut right after a first use left an empty
            # secret.key (refused) or none, so a new key, and another hidden split than the scores stored with it
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # atomic, and never replaces a secret another process made first
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    value = path.read_text().strip()
    if len(value) < 32:
        from neurozoo.datasets.errors import DataError

        raise DataError(f"{path}: the secret key is too short; delete the file to make a new one")
    return value.encode()


#: ``.secret.<random>.tmp-<host>-<pid>``: the key being written by :func:`server_secret`; one killed (SIGKILL) while
#: writing its key, or between linking it into place and unlinking its temporary, left it beside secret.key for good
#: (a 64-hex-digit key, mode 0600): the next process to use the secret removes it (``remove_dead_owned_once``)
SECRET_TEMPORARY = ".secret."

#: ``neurozoo-activations-<random>.tmp-<host>-<pid>.nc``: the verified bytes of an entry being read
#: (:meth:`ActivationCache.load`), in the system's temporary folder; one killed (the out-of-memory killer) while it
#: read an entry left its copy (all of that layer's activations) there for good: the next read removes it
COPY_TEMPORARY = "neurozoo-activations-"


def keyed_digest(purpose: str, data: bytes) -> str:
    return hmac.new(server_secret(), purpose.encode() + b"\0" + data, hashlib.sha256).hexdigest()


def secret_partition() -> str:
    """A folder name for the entries signed with this host's secret: a keyed digest, which tells nothing of it."""
    return "s" + keyed_digest("activation-cache-partition", b"")[:15]


def stimuli_sha256(stimulus_ids, images: torch.Tensor, chunks: Optional[Iterable[torch.Tensor]] = None) -> str:
    """Hash of the ids and the images; ``chunks``: the images in consecutive slices along the first dimension,
    ``images`` then only needs ``dtype`` and ``shape`` (the same hash, never the whole tensor at once)."""
    digest = hashlib.sha256("\x1f".join(map(str, stimulus_ids)).encode())
    digest.update(f"{images.dtype}:{tuple(images.shape)}".encode())
    for chunk in ([images] if chunks is None else chunks):
        chunk = chunk.detach().to("cpu").contiguous()
        digest.update(chunk.view(torch.uint8).numpy())  # the buffer itself: no copy of every pixel
    return digest.hexdigest()


def cache_key(model_hash: str, stimuli_hash: str, settings: dict, layer: str) -> str:
    payload = json.dumps({"model": model_hash, "stimuli": stimuli_hash, "settings": settings, "layer": layer},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class ActivationCache:
    """``root`` default: ``$NEUROZOO_CACHE/activations/<partition>``, one partition per secret
    (:func:`secret_partition`). Homes share ``$NEUROZOO_CACHE`` but not their secret, and an entry is only valid
    under the secret that signed it; in one folder each new home found every entry "modified or written by
    someone else", recomputed it and overwrote it with its own, so two homes invalidated each other's entries."""

    def __init__(self, root: Optional[Path] = None):
        self.root = Path(root) if root is not None else cache_dir() / "activations" / secret_partition()
        remove_dead_temporaries(self.root, f"*/{TEMPORARY}")

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{FINAL_SUFFIX}"

    def lock_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{LOCK_SUFFIX}"

    @contextmanager
    def in_use(self, keys: Iterable[str]) -> Iterator[None]:
        """The entries of ``keys`` held for the block (shared: other extractions of them go on too) against ``zoo cache
        clear``, which removes an entry only under its lock taken exclusively; each lock file goes with its last
        holder. A clear that is removing one of them delays the block until it is done (moments)."""
        with ExitStack() as held:
            for key in sorted(set(keys)):  # one order: no two holders wait on each other
                held.enter_context(locked(self.lock_path(key), shared=True, remove_if=lambda: True))
            yield

    def load(self, key: str) -> Optional[xr.DataArray]:
        path = self.path(key)
        if not path.is_file():
            return None
        expected, _, data = path.read_bytes().partition(b"\n")
        if not hmac.compare_digest(expected, keyed_digest("activation-cache:" + key, data).encode()):
            warnings.warn(f"{path}: digest missing or wrong (the file was modified or written by someone else); "
                          "recomputing the activations", stacklevel=2)
            return None
        remove_dead_owned_once(Path(tempfile.gettempdir()), COPY_TEMPORARY)
        # parse exactly the bytes that were verified; named with this process's host and pid (COPY_TEMPORARY)
        with tempfile.NamedTemporaryFile(prefix=COPY_TEMPORARY, suffix=temporary_suffix() + ".nc") as copy:
            copy.write(data)
            copy.flush()
            with xr.open_dataarray(copy.name) as array:
                array = array.load()
        for name in ("stimulus_id", "neuroid_id", "layer", "object_name"):
            if name in array.coords:
                array = array.assign_coords({name: (array[name].dims, np.asarray(array[name].values).astype(str))})
        if self.partial_folder(key).is_dir():  # left by a kill between the final entry's rename and its removal (save):
            self.remove_partial(key)  # read by nothing now the final entry is whole, kept for good otherwise
        return array

    def save(self, key: str, array: xr.DataArray) -> Path:
        """Write the final entry of ``key``, then remove its partial entry (:meth:`load_partial`)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_temporaries(path.parent, TEMPORARY)
        data = array.to_netcdf(engine="netcdf4")  # netCDF4 (HDF5) bytes in memory, as a file would hold them
        self._write_signed(path, key, keyed_digest("activation-cache:" + key, data), data)
        self.remove_partial(key)
        return path

    def _write_signed(self, path: Path, key: str, digest: str, data: bytes) -> None:
        """``path`` := the digest line, then ``data``, in one rename: readers see all of it or what was there."""
        try:
            descriptor, temporary = tempfile.mkstemp(dir=self.root / key[:2], prefix=f".{key}.",
                                                   suffix=temporary_suffix())  # host and pid: remove_dead_temporaries
        except FileNotFoundError:  # the folder, found empty, removed by zoo cache clear since it was made
            (self.root / key[:2]).mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=self.root / key[:2], prefix=f".{key}.",
                                                   suffix=temporary_suffix())
        try:
            with os.fdopen(descriptor, "wb") as handle:  # written once: digest line, then the data
                handle.write(digest.encode() + b"\n")
                handle.write(data)
            os.replace(temporary, path)  # atomic: readers see the whole entry, digest and data, or none of it
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def partial_folder(self, key: str) -> Path:
        """The folder of the finished batches of ``key``'s interrupted extraction (module docstring)."""
        return self.root / key[:2] / f"{key}{PARTIAL_SUFFIX}"

    def save_partial(self, key: str, batch: int, resume: dict, values: np.ndarray) -> Path:
        """Keep batch ``batch`` (``(images, features, time_bins)`` float32) of ``key``'s extraction under ``resume``
        (:func:`resume_settings`) for a rerun, in one rename (its temporary beside the final entries, where
        :func:`remove_dead_temporaries` finds it)."""
        folder = self.partial_folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(values), allow_pickle=False)
        data = json.dumps({"key": key, "batch": batch, "resume": resume}, sort_keys=True).encode() + b"\n"
        data += buffer.getvalue()
        path = folder / f"batch-{batch:05d}.signed"
        self._write_signed(path, key, keyed_digest(PARTIAL_PURPOSE + key, data), data)
        return path

    def load_partial(self, key: str, resume: dict, rows: Sequence[int]) -> List[np.ndarray]:
        """The batches ``0, 1, ...`` of ``key``'s interrupted extraction kept under ``resume``, up to the first one
        missing, unreadable or not of this extraction (warned about; ``rows``: each batch's number of images); that one
        and those after it are removed, so that no batch of another extraction is ever read with this one's."""
        folder = self.partial_folder(key)
        batches: List[np.ndarray] = []
        if not folder.is_dir():
            return batches
        for batch, expected in enumerate(rows):
            path = folder / f"batch-{batch:05d}.signed"
            if not path.is_file():
                break
            problem, values = _read_partial_batch(path, key, batch, resume, (expected,) + (
                batches[0].shape[1:] if batches else (None, None)))
            if problem:
                warnings.warn(f"{path}: {problem}; not used: the extraction keeps the {batch} partial batches before "
                              f"it and extracts the other {len(rows) - batch} of {len(rows)} again", stacklevel=2)
                break
            batches.append(values)
        self._remove_partial_batches(folder, first=len(batches))
        return batches

    def _remove_partial_batches(self, folder: Path, first: int) -> None:
        for path in folder.iterdir():
            match = PARTIAL_BATCH.fullmatch(path.name)
            if match and int(match[1]) >= first:
                path.unlink(missing_ok=True)

    def remove_partial(self, key: str) -> None:
        shutil.rmtree(self.partial_folder(key), ignore_errors=True)


#: the digest purpose of a partial batch: never that of a final entry, so no partial file is valid as one
PARTIAL_PURPOSE = "activation-cache-partial:"


def resume_settings(batch_size: int, device: torch.device) -> dict:
    """What a partial entry's batches must share with the extraction resuming them, beyond the final key (which
    keys the features, and leaves these out: they change them within float precision): the batch size (the batches'
    boundaries; a convolution's low bits can depend on it), the device (a GPU by its name), torch (its kernels) and,
    on the CPU, torch's thread count (it groups the float sums: 1 and 2 threads gave a tiny ConvRNN's features
    differing in most values, by up to ~1e-6 relative, 2026-12-04; a GPU's kernels do not depend on it).
    Features stitched from two of them would equal no uninterrupted extraction's bit for bit."""
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    settings = {"batch_size": int(batch_size), "device": name, "torch": torch.__version__}
    if device.type == "cpu":
        settings["torch_threads"] = torch.get_num_threads()
    return settings


def _read_partial_batch(path: Path, key: str, batch: int, resume: dict, shape: tuple):
    """``(problem, None)``, or ``(None, values)`` for a partial batch that is this extraction's batch ``batch`` of
    ``shape`` (None: any size there)."""
    expected, _, data = path.read_bytes().partition(b"\n")
    if not hmac.compare_digest(expected, keyed_digest(PARTIAL_PURPOSE + key, data).encode()):
        return "digest missing or wrong (cut short, or modified or written by someone else)", None
    header, _, body = data.partition(b"\n")
    header = json.loads(header)  # signed: written by save_partial
    if header.get("key") != key or header.get("batch") != batch:
        return f"it is batch {header.get('batch')} of the extraction {header.get('key')}, not batch {batch} of {key}", None
    if header.get("resume") != resume:
        kept = header.get("resume") or {}
        differ = [f"{name} {kept.get(name)!r}, not {value!r}" for name, value in resume.items() if kept.get(name) != value]
        return f"extracted with another {', '.join(differ) or 'setting'}", None
    try:
        values = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        return f"no .npy array after the header ({error})", None
    if values.dtype != np.float32 or values.ndim != 3 or any(
            want is not None and got != want for got, want in zip(values.shape, shape)):
        return (f"holds a {values.dtype} array of shape {values.shape}, not float32 (images, features, time_bins) of "
                f"{tuple('any' if want is None else want for want in shape)}"), None
    return None, values
