"""Process identity and signalling helpers for the job supervisor (Linux `/proc`).

A pid alone does not name a process: pids are reused, and status.json (which records them) is a plain
file that anyone can edit. So a process is signalled only when it is *proven* to be the run's own:

- it started at the recorded time (field 22 of `/proc/<pid>/stat`, clock ticks since boot), and
- its environment carries the run's token (`LEARNGENE_RUN_TOKEN`, a random value kept in the run's
  config.json and given to its supervisor and worker; children inherit it). A worker forked by the fork
  server (warm start) shows the server's environment in `/proc/<pid>/environ`; it overwrites the server's
  placeholder there with its run's token before its pid is reported (`forkserver.mark_environ`), so the
  same proof holds, and the placeholder itself proves nothing.

Without `/proc` nothing can be proven and nothing is signalled (the supervisor signals its own unreaped
worker without these helpers). Liveness checks fall back to `kill(pid, 0)`.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

_PROC = Path("/proc")
TOKEN_ENV = "LEARNGENE_RUN_TOKEN"
# What the fork server carries in place of a token (see `learngene.jobs.forkserver`): it proves nothing.
TOKEN_PLACEHOLDER = "x" * 32


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, process group, start ticks) of `pid` from /proc, or None if there is no such process."""
    try:
        data = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # Field 2 (comm) may hold spaces and parentheses, so split after the last ')'.
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return rest[0].decode(), int(rest[2]), int(rest[19])  # fields 3 (state), 5 (pgrp), 22 (start)
    except (IndexError, ValueError):
        return None


def start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot, or None if unknown."""
    info = _stat(pid)
    return info[2] if info else None


def carries_token(pid: int, token: str | None) -> bool:
    """True if `pid`'s environment holds `LEARNGENE_RUN_TOKEN=<token>` (False when unreadable, and for the
    fork server's placeholder, which the server and its keepers carry)."""
    if not token or token == TOKEN_PLACEHOLDER:
        return False
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()  # the environment it was started with
    except OSError:
        return False
    return f"{TOKEN_ENV}={token}".encode() in environ.split(b"\0")


def is_ours(pid: int, start: int | None, token: str | None) -> bool:
    """True if `pid` runs, started at `start` and carries the run's token: proven to be the run's process."""
    return start is not None and is_alive(pid, start) and carries_token(pid, token)


def group_members(pgid: int) -> list[int]:
    """Pids of the live processes whose process group is `pgid` (empty without /proc)."""
    out = []
    try:
        names = [n for n in os.listdir(_PROC) if n.isdigit()]
    except OSError:
        return out
    for name in names:
        info = _stat(int(name))
        if info is not None and info[1] == pgid and info[0] not in ("Z", "X"):
            out.append(int(name))
    return out


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
    return start is None or info[2] == start


def _valid_pid(pid: object) -> bool:
    return isinstance(pid, int) and not isinstance(pid, bool) and pid > 1


def kill_process(pid: int | None, start: int | None, sig: int = signal.SIGKILL, *, token: str | None = None) -> bool:
    """Signal one process if it is proven to be the run's own (`is_ours`); True if sent."""
    if not _valid_pid(pid) or pid == os.getpid() or not is_ours(pid, start, token):
        return False
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def owns_group(pgid: int | None, leader_start: int | None, token: str | None) -> bool:
    """True if process group `pgid` is proven to be the run's worker and its children (reading only).

    While the leader lives it must be the run's worker: started at `leader_start`, carrying `token`,
    still leading `pgid`. Once it is gone (or a zombie), a member must carry the token: Linux keeps a
    pid number allocated while a group uses it, so the group is still the one the worker made.
    """
    if not _valid_pid(pgid) or not token or pgid == os.getpgrp():
        return False
    info = _stat(pgid)
    if info is not None and info[0] not in ("Z", "X"):
        return info[1] == pgid and is_ours(pgid, leader_start, token)
    if info is not None and info[2] != leader_start:  # a zombie of another process holds the number
        return False
    return any(carries_token(pid, token) for pid in group_members(pgid))


def kill_group(
    pgid: int | None, leader_start: int | None, sig: int = signal.SIGKILL, *, token: str | None = None
) -> bool:
    """Signal a whole process group (a worker and its children) proven to be the run's own (`owns_group`);
    True if sent."""
    if not owns_group(pgid, leader_start, token):
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
