"""Errors raised where input enters the library (CLI, files, configs).

Messages say what was wrong and what to do; the CLI prints them without a traceback and the UI
shows them with `st.error`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
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


class StorageError(LearngeneError, OSError):
    """A file could not be written: the disk is full, the folder is read-only, or access is denied."""


_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def storage_error(exc: OSError, path: str | os.PathLike | None) -> StorageError:
    """A one-line StorageError for an OSError met while writing `path` (the file or folder being written)."""
    err = _storage_error(exc, str(path) if path is not None else (exc.filename or "the output folder"))
    err.errno = exc.errno
    return err


def _storage_error(exc: OSError, where: str) -> StorageError:
    if exc.errno in _FULL:
        return StorageError(f"disk full at {where} (no space left on the device); free some space or write "
                            "elsewhere, then run it again")
    if exc.errno == errno.EROFS:
        return StorageError(f"cannot write {where}: it is on a read-only file system")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StorageError(f"cannot write {where}: permission denied")
    return StorageError(f"cannot write {where}: {exc.strerror or type(exc).__name__}")


def is_storage_failure(exc: BaseException) -> bool:
    """Whether `exc` is an OSError that says the disk or folder refuses writes (full, read-only, denied)."""
    return isinstance(exc, OSError) and exc.errno in (_FULL | {errno.EROFS, errno.EACCES, errno.EPERM})


@contextmanager
def writing(path: str | os.PathLike | None) -> Iterator[None]:
    """Within the block, an OSError saying the disk is full, read-only or denied becomes the StorageError of
    writing `path`; other errors pass unchanged."""
    try:
        yield
    except LearngeneError:
        raise
    except OSError as exc:
        if not is_storage_failure(exc):  # e.g. a folder deleted meanwhile: the caller's own business
            raise
        raise storage_error(exc, path) from exc
