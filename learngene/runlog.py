"""Durable run-folder primitives shared by workers, the job manager and the UI.

A run folder is the source of truth for a job (see docs/design.md). Records are appended as JSON lines,
flushed per record, and JSON state files are replaced atomically, so that a reader never sees a
half-written record and a crash never loses what was written before it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from learngene.errors import writing

# Exit codes of `python -m learngene ...` workers, read by the job manager.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3

RUN_DIR_ENV = "LEARNGENE_RUN_DIR"
METRICS_FILE = "metrics.jsonl"
PROGRESS_FILE = "progress.json"


def _jsonable(value: Any) -> Any:
    """Map NaN/inf to None and tensors/numpy scalars to Python numbers, so output is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return _jsonable(value.item())
    return value


FILE_MODE = 0o644
"""Mode of files written via a temporary file (mkstemp makes them 0600: unreadable to other users)."""


MAX_JSON_BYTES = 16 * 2**20
"""The most bytes a JSON file (a card, a split file, a status or config file) may have to be read."""


def json_bytes(obj: Any) -> bytes:
    """`obj` as the strict, indented JSON text the project writes (NaN/inf as null)."""
    return json.dumps(_jsonable(obj), indent=2, sort_keys=True).encode()


def _write_temp(path: Path, data: bytes) -> Path:
    """`data` in a new temporary file beside `path` (flushed to disk, mode FILE_MODE); removed on failure."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def commit_files(files: list[tuple[str | os.PathLike, bytes]]) -> None:
    """Write every (path, bytes) to a temporary file first, then rename them into place in order.

    Files that belong together (weights and their card) are written as a pair: when the disk fills up or
    the folder refuses writes, nothing is renamed and no temporary file is left, so the old pair (if any)
    stays whole. Raises `StorageError` naming the file ("disk full at PATH").
    """
    done: list[Path] = []
    current: Path | None = None
    try:
        for path, data in files:
            current = Path(path)
            with writing(current):
                current.parent.mkdir(parents=True, exist_ok=True)
                done.append(_write_temp(current, data))
        for tmp, (path, _) in zip(done, files, strict=True):
            current = Path(path)
            with writing(current):
                os.replace(tmp, path)
    finally:
        for tmp in done:
            tmp.unlink(missing_ok=True)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as JSON to `path` via a temporary file and `os.replace` (`StorageError` when it cannot)."""
    commit_files([(path, json_bytes(obj))])


def read_json(path: str | os.PathLike, default: Any = None, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Read a JSON file of at most `max_bytes`; `default` when it is missing; ValueError when it is not
    JSON (or not UTF-8, or larger)."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        return default
    if len(data) > max_bytes:
        raise ValueError(f"{path} is larger than {max_bytes // 2**20} MiB; not read")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None


def read_bounded(path: str | os.PathLike, max_bytes: int, what: str) -> bytes:
    """The bytes of the regular file `path`, refused (ValueError naming `what`) above `max_bytes`: a device
    such as /dev/zero or a huge file is never read into memory."""
    p = Path(path)
    if p.exists() and not p.is_file():
        raise ValueError(f"{what} {p} is not a regular file")
    with open(p, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{what} {p} is larger than {max_bytes / 2**20:g} MiB; not read")
    return data


class JsonlWriter:
    """Append-only JSON-lines file; each record is flushed (and fsynced) as it is written."""

    def __init__(self, path: str | os.PathLike, fsync: bool = True):
        self.path = Path(path)
        with writing(self.path.parent):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        with writing(self.path):
            self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        with writing(self.path):
            self._f.write(json.dumps(_jsonable(record), sort_keys=True) + "\n")
            self._f.flush()
            if self._fsync:
                os.fsync(self._f.fileno())

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_jsonl(path: str | os.PathLike, offset: int = 0) -> tuple[list[dict], int]:
    """Read complete JSON lines from byte `offset` on.

    Returns the records and the offset just past the last complete line, so a caller can poll
    incrementally. A trailing line without its newline (a writer mid-append, or one killed there)
    is not returned and not skipped: the next call starts at it again. A complete line that is not
    valid JSON is skipped.
    """
    records: list[dict] = []
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return records, offset
    end = data.rfind(b"\n")
    if end < 0:
        return records, offset
    for line in data[: end + 1].splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, too many digits or too deeply nested
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records, offset + end + 1


def run_dir_from_env() -> Path | None:
    """The run folder a job manager assigned to this worker, if any."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


WRITER_LOCK = ".writer.lock"
"""The lock file a command holds in its run folder while it writes there: one writer per run folder."""


class RunFolderClaim:
    """An exclusive claim on a run folder, held from `claim_run_dir` until `release` (or the process ends:
    the lock is an flock, which the kernel drops with the process, so a killed writer never leaves a stale
    claim)."""

    def __init__(self, run_dir: Path, fd: int):
        self.run_dir, self._fd = run_dir, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def claim_run_dir(run_dir: str | os.PathLike) -> RunFolderClaim:
    """Claim `run_dir` for this process's writes; a `ConfigError` in one line when another process writes
    there already (two commands given the same --run-dir would mix their metrics and overwrite each
    other's summary)."""
    import fcntl

    from learngene.errors import ConfigError

    folder = Path(run_dir)
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / WRITER_LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise ConfigError(f"run folder {folder} is being written by another command{who}; give each run its own "
                          "--run-dir, or wait until that one ends") from None
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    return RunFolderClaim(folder, fd)
