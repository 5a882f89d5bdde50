"""Error types shared by every package. A ``UserFacingError`` is printed by ``zoo`` without a traceback."""
from typing import Callable, Iterable


class UserFacingError(Exception):
    """Bad input from a user: the message names the file, field and what was expected."""


class SpecError(UserFacingError, ValueError):
    """A model or graph specification is invalid."""


class DataError(UserFacingError, ValueError):
    """A data file or folder is missing, unreadable or malformed."""


def did_you_mean(unknown: Iterable[str], known: Iterable[str], n: int = 1, show: Callable[[str], str] = repr) -> str:
    """``"; did you mean 'x'?"``: the known names closest to each unknown one (``difflib.get_close_matches``, ``n``
    each), or ``""`` when none is close; for an error message naming unknown fields, keys or registry names."""
    import difflib

    known = list(known)
    close = [match for name in unknown for match in difflib.get_close_matches(name, known, n=n)]
    return f"; did you mean {', '.join(map(show, dict.fromkeys(close)))}?" if close else ""
