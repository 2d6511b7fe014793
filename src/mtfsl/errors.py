"""User-facing errors: caught at the entry point and printed as one line, no traceback."""

from __future__ import annotations


class MtfslError(Exception):
    """An error the user can fix (bad config, bad data, missing file)."""


class ConfigError(MtfslError):
    """A config value is invalid; the message names the key and what was expected."""


class DataError(MtfslError):
    """Input data is missing or malformed; the message names the file (and line)."""
