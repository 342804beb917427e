"""Errors raised where input enters the library (CLI, files, configs).

Messages say what was wrong and what to do; the CLI prints them without a traceback and the UI
shows them with `st.error`.
"""

from __future__ import annotations

import os
from pathlib import Path


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


def check_file(path: str | os.PathLike, what: str, hint: str = "", error: type[LearngeneError] = CheckpointError) -> Path:
    """`path` as a Path when it is a regular file; else raise `error` saying what it is instead.

    A folder named like a file (``x.safetensors/``) is reported as a folder, not as missing.
    `hint` (e.g. "; create one with ...") is appended to the "does not exist" message only.
    """
    p = Path(path)
    if p.is_dir():
        raise error(f"{what} {p} is a directory, not a file; give the path of the file itself")
    if not p.exists():
        raise error(f"{what} {p} does not exist{hint}")
    if not p.is_file():
        raise error(f"{what} {p} is not a regular file")
    return p
