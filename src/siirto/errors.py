"""The one exception type the CLI turns into a plain message (no traceback)."""


class SiirtoError(Exception):
    """A problem the user can fix: bad input, missing weights, wrong model for the data."""
