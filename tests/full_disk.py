"""A disk that fills up mid-write, for the tests of what an interrupted write leaves on disk."""
import contextlib
import resource


@contextlib.contextmanager
def files_limited_to(size: int):
    """Inside, a file of this process may grow to ``size`` bytes: a write beyond fails part-way with ``OSError``
    (EFBIG, as ENOSPC on a full disk; Python ignores SIGXFSZ), whatever writer the code under test uses. Keep the
    block free of other writes (output captured to a file counts too)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
