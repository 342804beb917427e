"""Durable run-folder primitives shared by workers, the job manager and the UI.

A run folder is the source of truth for a job (see DESIGN.md §2). Records are appended as JSON lines,
flushed per record, and JSON state files are replaced atomically, so that a reader never sees a
half-written record and a crash never loses what was written before it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

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


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as JSON to `path` via a temporary file and `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, FILE_MODE)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_jsonable(obj), f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Read a JSON file; return `default` when it is missing; ValueError when it is not JSON (or not UTF-8)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None


class JsonlWriter:
    """Append-only JSON-lines file; each record is flushed (and fsynced) as it is written."""

    def __init__(self, path: str | os.PathLike, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
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
