"""Error types shared by every package (a ``UserFacingError`` is printed by ``zoo`` without a traceback), and the
checks of the Python API's numeric arguments that raise them."""
import math
import numbers
from typing import Callable, Iterable, Optional


class UserFacingError(Exception):
    """Bad input from a user: the message names the file, field and what was expected."""


class SpecError(UserFacingError, ValueError):
    """A model or graph specification is invalid."""


class DataError(UserFacingError, ValueError):
    """A data file or folder is missing, unreadable or malformed."""


def warning_format(prefix: str, default_format: Callable) -> Callable:
    """``warnings.formatwarning`` for a command whose errors read ``PREFIX: error: ...``: a ``UserWarning`` (what the
    suite's own code warns a user of) as one line ``PREFIX: warning: ...``; Python's default added the warning code's
    file, line number and source line. Other categories as ``default_format`` shows them."""
    def format_warning(message, category, filename, lineno, line=None):
        if issubclass(category, UserWarning):
            return f"{prefix}: warning: {message}\n"
        return default_format(message, category, filename, lineno, line)
    return format_warning


def yaml_problem(error: Exception) -> str:
    """A YAML parse error in one line, its problem first and where it is: PyYAML's own text is four lines (the
    context, its position, the problem, its position), each position naming the file again, and a command's error is
    one line (the first alone, "while parsing a flow mapping", said neither what was wrong nor where)."""
    def where(mark) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    problem, mark = getattr(error, "problem", None), getattr(error, "problem_mark", None)
    if not problem:
        return " ".join(str(error).split())
    text = f"{problem} at {where(mark)}" if mark is not None else str(problem)
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context:
        text += f" ({context}" + (f" at {where(context_mark)}" if context_mark is not None else "") + ")"
    return " ".join(text.split())


def did_you_mean(unknown: Iterable[str], known: Iterable[str], n: int = 1, show: Callable[[str], str] = repr) -> str:
    """``"; did you mean 'x'?"``: the known names closest to each unknown one, or ``""`` when none is close; for an
    error message naming unknown fields, keys or registry names. Case is ignored: a name equal to an unknown one but
    for case is its only suggestion, else ``difflib.get_close_matches`` (``n`` each) of the case-folded names
    (``'BNCNN'`` had no suggestion: difflib rated it 0 against ``'bncnn'``)."""
    import difflib

    folded = {}  # case-folded name -> the known names that fold to it
    for name in known:
        folded.setdefault(str(name).casefold(), []).append(name)
    close = []
    for name in unknown:
        key = str(name).casefold()
        matches = [key] if key in folded else difflib.get_close_matches(key, list(folded), n=n)
        close += [original for match in matches for original in folded[match]]
    return f"; did you mean {', '.join(map(show, dict.fromkeys(close)))}?" if close else ""


def check_integer(value, name: str, least: int = 0, error: type = ValueError) -> int:
    """``value`` as an int when it is an integer ``>= least``, else ``error`` naming ``name``: ``"steps: expected an
    integer >= 0, got -1"``. For the Python API's counts (the ``zoo`` commands' options are typed by
    :mod:`datasets.cli_args`); a bool is not a count."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise error(f"{name}: expected an integer >= {least}, got {value!r}")
    return int(value)


def check_number(value, name: str, above: Optional[float] = None, least: Optional[float] = None,
                 error: type = ValueError) -> float:
    """``value`` as a float when it is a finite real number ``> above`` (and ``>= least``), else ``error`` naming
    ``name``: ``"lr: expected a finite number > 0, got nan"``. For the Python API's rates, tolerances and lengths; NaN
    passed every comparison and inf every bound."""
    bounds = " and ".join(f"{sign} {bound:g}" for sign, bound in ((">", above), (">=", least)) if bound is not None)
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or (above is not None and not value > above) or (least is not None and not value >= least)):
        raise error(f"{name}: expected a finite number{' ' + bounds if bounds else ''}, got {value!r}")
    return float(value)
