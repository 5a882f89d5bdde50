"""Error types shared by every package. A ``UserFacingError`` is printed by ``zoo`` without a traceback."""


class UserFacingError(Exception):
    """Bad input from a user: the message names the file, field and what was expected."""


class SpecError(UserFacingError, ValueError):
    """A model or graph specification is invalid."""


class DataError(UserFacingError, ValueError):
    """A data file or folder is missing, unreadable or malformed."""
