"""Device slots and the FIFO queue, shared by every supervisor through files in the runs folder.

Layout (all under `<runs>/`):

- `.locks/seq.lock`, `.locks/seq`: a counter, incremented under an exclusive `flock`, that gives
  every run a ticket in creation order.
- `.queue/<device>/<ticket>.<run_id>`: one empty file per run waiting for that device. A waiter
  only tries for a slot when no older live waiter is ahead of it, so runs start in ticket order.
- `.locks/gpu.lock`: the one cuda slot; `.locks/cpu-<i>.lock`: the `max_cpu_jobs` cpu slots. A slot
  is held with `flock` by the supervisor (and inherited by its worker) for the worker's lifetime;
  the kernel drops it when every process holding it is gone, so a crash cannot leak a slot.

A `flock` belongs to a file, not to its path: a lock file deleted (say with the whole runs folder) or
replaced leaves its holder locking a file no one else can open, and the next run would make a fresh
one. So a slot is taken only when the path still names the locked file (`same_file`), and its holder
keeps checking that (the supervisor stops its worker when it no longer does).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

Device = Literal["cpu", "cuda"]
DEVICES: tuple[Device, ...] = ("cpu", "cuda")
LOCKS_DIR = ".locks"
QUEUE_DIR = ".queue"


@contextlib.contextmanager
def flocked(path: Path, create_parent: bool = True) -> Iterator[int]:
    """Hold an exclusive `flock` on `path` (created if missing) for the duration of the block.

    With `create_parent=False` a missing folder raises FileNotFoundError instead of being recreated
    (a run folder that was deleted or moved must not come back empty).
    """
    if create_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def is_locked(path: Path) -> bool:
    """True if some process holds a `flock` on `path` (probed without waiting)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def next_ticket(runs_dir: Path) -> int:
    """The next ticket number; call it while holding `ticket_lock(runs_dir)`."""
    counter = runs_dir / LOCKS_DIR / "seq"
    try:
        last = int(counter.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        last = 0
    tmp = counter.with_name(".seq.tmp")
    tmp.write_text(f"{last + 1}\n")
    os.replace(tmp, counter)
    return last + 1


def ticket_lock(runs_dir: Path) -> contextlib.AbstractContextManager[int]:
    """The lock that makes taking a ticket and enqueueing one step."""
    return flocked(runs_dir / LOCKS_DIR / "seq.lock")


def queue_entry(runs_dir: Path, device: Device, ticket: int, run_id: str) -> Path:
    """Path of the queue file of one waiting run."""
    return runs_dir / QUEUE_DIR / device / f"{ticket:012d}.{run_id}"


def enqueue(runs_dir: Path, device: Device, ticket: int, run_id: str) -> Path:
    """Create the queue file of a run; call it under `ticket_lock` so files appear in ticket order."""
    path = queue_entry(runs_dir, device, ticket, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def waiting(runs_dir: Path, device: Device) -> list[tuple[int, str]]:
    """(ticket, run_id) of every queue file for `device`, oldest first."""
    folder = runs_dir / QUEUE_DIR / device
    out: list[tuple[int, str]] = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return out
    for name in names:
        ticket, _, run_id = name.partition(".")
        if ticket.isdigit() and run_id:
            out.append((int(ticket), run_id))
    return sorted(out)


def dequeue(runs_dir: Path, device: Device, ticket: int, run_id: str) -> None:
    """Remove the queue file of a run (no error if it is already gone)."""
    queue_entry(runs_dir, device, ticket, run_id).unlink(missing_ok=True)


def slot_paths(runs_dir: Path, device: Device, max_cpu_jobs: int) -> list[Path]:
    """The lock files that make up the slots of `device`."""
    locks = runs_dir / LOCKS_DIR
    if device == "cuda":
        return [locks / "gpu.lock"]
    return [locks / f"cpu-{i}.lock" for i in range(max_cpu_jobs)]


def same_file(fd: int, path: Path) -> bool:
    """True if `path` still names the file open as `fd` (not deleted, renamed away or replaced)."""
    try:
        held, named = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def try_acquire(paths: list[Path]) -> tuple[int, Path] | None:
    """Take the first free slot without waiting; returns (open descriptor, lock path) or None.

    The descriptor must stay open while the slot is used; closing it (or dying) frees the slot. A lock
    file that vanished between opening and locking it is no slot (`same_file`); the next poll retries.
    """
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if not same_file(fd, path):
            os.close(fd)
            continue
        return fd, path
    return None
