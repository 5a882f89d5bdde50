"""glibc's allocator settings, for torch's CPU tensors (which come straight from malloc): the thresholds above which
blocks are mapped afresh (and unmapped when freed), and handing the heap's free pages back to the system.

Process-wide, from the call on, and not undone: glibc has no getter for them, and setting a threshold turns its
dynamic mmap threshold off for good (``retina.fast_conv.keep_freed_memory`` says why that rules out restoring).
Everything returns False or does nothing where the C library is not glibc."""
from __future__ import annotations

import ctypes
import functools
import platform

#: glibc's malloc.h
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


@functools.lru_cache(maxsize=None)
def _glibc():
    """The C library when it is glibc (loaded once: ``release_free_heap`` runs after every batch), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def set_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    """Serve blocks of ``mmap_threshold`` bytes and more by mmap, smaller ones from the heap, and trim the heap when
    more than ``trim_threshold`` bytes are free at its top; False where glibc is not the C library."""
    libc = _glibc()
    if libc is None:
        return False
    try:
        return (bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold))
                and bool(libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)))
    except AttributeError:
        return False


def release_free_heap() -> None:
    """Return the heap's free pages to the system (glibc ``malloc_trim``)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
