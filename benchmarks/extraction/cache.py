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
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import warnings
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch
import xarray as xr

from neurozoo.benchmarks.paths import cache_dir, home
from neurozoo.datasets.cache import remove_dead_temporaries, temporary_suffix

SECRET_FILE = "secret.key"
TEMPORARY = ".*.tmp*"  # ``.<key>.<random>.tmp-<host>-<pid>``: a save in progress, or one killed mid-write


def server_secret() -> bytes:
    """The host's random secret (created on first use, mode 0600, under ``$NEUROZOO_HOME``). It keys the
    activation cache's digests and the leaderboard's hidden split; it never leaves the trusted side."""
    path = home() / SECRET_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret.")
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(temporary, path)  # atomic, and never replaces a secret another process made first
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    value = path.read_text().strip()
    if len(value) < 32:
        from neurozoo.datasets.errors import DataError

        raise DataError(f"{path}: the secret key is too short; delete the file to make a new one")
    return value.encode()


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
        return self.root / key[:2] / f"{key}.nc.signed"

    def load(self, key: str) -> Optional[xr.DataArray]:
        path = self.path(key)
        if not path.is_file():
            return None
        expected, _, data = path.read_bytes().partition(b"\n")
        if not hmac.compare_digest(expected, keyed_digest("activation-cache:" + key, data).encode()):
            warnings.warn(f"{path}: digest missing or wrong (the file was modified or written by someone else); "
                          "recomputing the activations", stacklevel=2)
            return None
        with tempfile.NamedTemporaryFile(suffix=".nc") as copy:  # parse exactly the bytes that were verified
            copy.write(data)
            copy.flush()
            with xr.open_dataarray(copy.name) as array:
                array = array.load()
        for name in ("stimulus_id", "neuroid_id", "layer", "object_name"):
            if name in array.coords:
                array = array.assign_coords({name: (array[name].dims, np.asarray(array[name].values).astype(str))})
        return array

    def save(self, key: str, array: xr.DataArray) -> Path:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_temporaries(path.parent, TEMPORARY)
        data = array.to_netcdf(engine="netcdf4")  # netCDF4 (HDF5) bytes in memory, as a file would hold them
        digest = keyed_digest("activation-cache:" + key, data).encode()
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.",
                                               suffix=temporary_suffix())  # host and pid: see remove_dead_temporaries
        try:
            with os.fdopen(descriptor, "wb") as handle:  # written once: digest line, then the data
                handle.write(digest + b"\n")
                handle.write(data)
            os.replace(temporary, path)  # atomic: readers see the whole entry, digest and data, or none of it
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path
