"""Every exception xpnet raises on purpose.

Each derives from :class:`XpnetError` *and* from the builtin exception that
describes it, so ``except ValueError`` keeps working and ``except XpnetError``
catches everything xpnet reports about its input. The ``xpnet`` command turns
an :class:`XpnetError` into its one-line message; any other exception is a bug
and keeps its traceback.

This module imports nothing from xpnet, so every floor can use it.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendMismatchError",
    "CheckpointError",
    "DataError",
    "InputError",
    "InputTypeError",
    "MissingKeyError",
    "RunError",
    "SweepError",
    "TrainingDivergedError",
    "XpnetError",
]


class XpnetError(Exception):
    """Base class of every error xpnet raises about what it was given."""


class InputError(XpnetError, ValueError):
    """An argument has a wrong value or shape (the message names it)."""


class InputTypeError(XpnetError, TypeError):
    """An argument has a wrong type or dtype (the message names it)."""


class MissingKeyError(XpnetError, KeyError):
    """A required key is missing from a parameter dict."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BackendError(XpnetError, RuntimeError):
    """A backend was asked for that is unknown, not installed or not usable."""


class BackendMismatchError(XpnetError, TypeError):
    """Arrays from two different backends (or devices) were mixed in one call."""


class DataError(XpnetError, RuntimeError):
    """The data set is missing, corrupt, unsafe or could not be downloaded."""


class CheckpointError(XpnetError, RuntimeError):
    """A checkpoint or model file could not be written or read."""


class RunError(XpnetError, RuntimeError):
    """A run folder cannot be created, is not a run, or does not fit the options."""


class SweepError(XpnetError, RuntimeError):
    """A hyperparameter sweep cannot start, resume or continue."""


class TrainingDivergedError(XpnetError, FloatingPointError):
    """The training loss became NaN or infinite."""
