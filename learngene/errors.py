"""Errors raised where input enters the library (CLI, files, configs).

Messages say what was wrong and what to do; the CLI prints them without a traceback and the UI
shows them with `st.error`.
"""

from __future__ import annotations


class LearngeneError(Exception):
    """Base class of the project's user-facing errors."""

    usage = False


class ConfigError(LearngeneError, ValueError):
    """A setting or argument is invalid."""

    usage = True


class DataError(LearngeneError, ValueError):
    """A data set is missing, unreadable, or too small for what was asked."""


class CheckpointError(LearngeneError, ValueError):
    """A checkpoint file is missing, corrupt, or does not fit the architecture."""


class DivergedError(LearngeneError, RuntimeError):
    """Training produced a NaN or infinite loss."""
