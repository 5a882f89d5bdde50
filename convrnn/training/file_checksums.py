"""Checksums of a split's file list (an image folder's ``samples``), as run.json records the data a run trained on
(``files_checksum``: what they cover, :data:`FILES_CHECKSUMS`) and ``imagenet.val`` its data: relative paths and labels,
with each file's size or its bytes' sha256; and the contents checksums this process computed already, reused while
no file has changed (:data:`CONTENTS_CHECKSUMS`)."""
from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, List, Optional


def file_list_sha256(dataset, sizes: bool = False, contents: bool = False,
                     file_sha256: Optional[List[str]] = None) -> str:
    """Checksum of the (relative path, label) list of a split: cheap, and changes when files do. ``sizes``: each
    file's size in bytes too (``imagenet.val``'s data checksum: an image re-encoded under its name to another size
    changes it). ``contents``: each file's sha256 too (``imagenet.val``'s ``images_sha256``: an image edited to the
    same size changes it; every byte is read), or ``file_sha256``, those of the samples in order, computed already."""
    from neurozoo.datasets.provenance import sha256_file

    digest = hashlib.sha256()
    for index, (path, label) in enumerate(dataset.samples):
        size = f"\t{os.path.getsize(path)}" if sizes else ""
        content = f"\t{file_sha256[index] if file_sha256 is not None else sha256_file(path)}" if contents else ""
        digest.update(f"{os.path.relpath(path, dataset.root)}\t{label}{size}{content}\n".encode())
    return digest.hexdigest()


#: What a split's ``files_sha256`` covers, by run.json's ``files_checksum``: each image's relative path and label,
#: and its size ("sizes", the default: one stat per file) or its bytes' sha256 ("contents", ``--hash-images``: every
#: byte read). A run.json without ``files_checksum`` (before 2026-12-05) hashed the paths and labels only ("names"):
#: an image replaced by another under its name left it unchanged.
FILES_CHECKSUMS = {"names": {}, "sizes": {"sizes": True}, "contents": {"contents": True}}
#: what each kind of :data:`FILES_CHECKSUMS` covers, in words
FILES_CHECKSUM_WORDS = {"names": "relative paths and labels", "sizes": "relative paths, labels and sizes",
                        "contents": "relative paths, labels and each file's sha256"}


def recorded_files_checksum(record: Dict[str, Any]) -> str:
    """The kind of data checksums a record holds (run.json, one of its segments, a search study's data): its
    ``files_checksum``, or ``names`` for one written before the kind was recorded (:data:`FILES_CHECKSUMS`)."""
    return record.get("files_checksum") or "names"


def hashed_files_checksum(hash_images: bool) -> str:
    """The kind of data checksums (:data:`FILES_CHECKSUMS`) a run records with ``--hash-images`` or without: each
    image's bytes ("contents"), or its size ("sizes"). ``zoo train``'s and ``zoo search``'s option alike."""
    return "contents" if hash_images else "sizes"


def files_checksum(split, kind: str = "sizes") -> str:
    """:func:`file_list_sha256` of ``split`` of the kind ``kind`` (:data:`FILES_CHECKSUMS`); of its contents, the one
    this process computed already while no file has changed since (:func:`files_state_sha256`)."""
    if kind != "contents":
        return file_list_sha256(split, **FILES_CHECKSUMS[kind])
    state = files_state_sha256(split)
    if state not in CONTENTS_CHECKSUMS:
        CONTENTS_CHECKSUMS[state] = file_list_sha256(split, contents=True)
    return CONTENTS_CHECKSUMS[state]


#: The contents checksums (``files_checksum`` "contents", every byte read) this process computed or was given, by the
#: :func:`files_state_sha256` of their split read just before: a search hashed every image once per trial, so a study
#: of 20 trials on ImageNet read the whole set 20 times (``sha256_file``'s cache holds 256 files). A file edited,
#: replaced, added or removed since changes the key, and the split is read again. ``zoo search --workers K`` hands its
#: workers its own (``convrnn.search.workers``): the images are read once per command.
CONTENTS_CHECKSUMS: Dict[str, str] = {}


def files_state_sha256(split) -> str:
    """sha256 of ``split``'s list of relative paths, labels and file states (``provenance.file_state``: identity,
    size, modification and change times), one stat per file, none read: what tells whether a contents checksum
    computed before still holds (:data:`CONTENTS_CHECKSUMS`). An edit changes the change time whatever it does to the
    modification time, a file renamed over the old one its identity; only one within the file system's clock tick of
    the reading, to the same size, in place, goes unseen (as ``provenance.sha256_file``'s own cache)."""
    from neurozoo.datasets.provenance import file_state

    digest = hashlib.sha256()
    for path, label in split.samples:
        (device, inode), size, (modified, changed) = file_state(path)
        digest.update(f"{os.path.relpath(path, split.root)}\t{label}\t{device}:{inode}\t{size}\t{modified}\t{changed}\n"
                      .encode())
    return digest.hexdigest()
