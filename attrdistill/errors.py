"""The errors a user can fix. The CLI prints these as one line; anything else keeps its traceback.

    raise DataError(f"{path}:{line}: field 'label' is empty")

Each is also a ValueError or RuntimeError, so code (and tests) that catch those still do.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of the errors whose message says what to change: a config, a data file, the order of stages."""


class ConfigError(UserError, ValueError):
    """A config file, override or model setting that cannot work; the message names the field."""


class DataError(UserError, ValueError):
    """Input data that cannot be read as the task needs; the message names the file, line or field."""


class StageError(UserError, RuntimeError):
    """A stage that cannot run now: its inputs are missing or stale, or training diverged."""
