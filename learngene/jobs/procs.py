"""Process identity and signalling helpers for the job supervisor (Linux `/proc`).

A pid alone does not name a process: pids are reused. We pair every pid we record with its start
time (field 22 of `/proc/<pid>/stat`, clock ticks since boot), and only trust or signal a pid whose
start time still matches. Where `/proc` is missing the checks fall back to `kill(pid, 0)`.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

_PROC = Path("/proc")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start ticks) of `pid` from /proc, or None if there is no such process."""
    try:
        data = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # Field 2 (comm) may hold spaces and parentheses, so split after the last ')'.
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return rest[0].decode(), int(rest[19])  # rest[0] is field 3, rest[19] is field 22
    except (IndexError, ValueError):
        return None


def start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot, or None if unknown."""
    info = _stat(pid)
    return info[1] if info else None


def boot_id() -> str | None:
    """This boot's id, so that a status written before a reboot is not mistaken for a live one."""
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def is_alive(pid: int | None, start: int | None = None) -> bool:
    """True if `pid` runs (zombies count as dead) and, when `start` is given, started then."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if not _PROC.joinpath("self").exists():  # no procfs: the best we can do
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    info = _stat(pid)
    if info is None or info[0] in ("Z", "X"):
        return False
    return start is None or info[1] == start


def kill_process(pid: int | None, start: int | None, sig: int = signal.SIGKILL) -> bool:
    """Signal one process if it is still the one that started at `start`; True if sent."""
    if not pid or pid <= 1 or pid == os.getpid() or not is_alive(pid, start):
        return False
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_group(pgid: int | None, leader_start: int | None, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group (a worker and its children); True if sent.

    The group is ours while its id is not held by a different process: Linux keeps a pid number
    allocated while a group uses it, so a leader pid with another start time means our group is gone.
    """
    if not pgid or pgid <= 1 or pgid == os.getpgrp():
        return False
    info = _stat(pgid)
    if info is not None and leader_start is not None and info[1] != leader_start:
        return False
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def signal_name(sig: int) -> str:
    """'SIGKILL' for 9, or 'signal N' when Python does not know it."""
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
