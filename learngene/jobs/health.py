"""Is a live-looking run really live? The verdict a reader derives from the run folder.

status.json says "queued" or "running" as long as its supervisor never wrote a final state. The
supervisor may have been killed, the machine restarted, or the process frozen, so a reader checks:

1. the supervisor's lock (`.supervisor.lock`, held with `flock` for its whole life) is still held;
2. its pid is alive and started at the recorded time (pids are reused);
3. its heartbeat (monotonic clock, refreshed every ~1 s) is fresher than `stale_after_s`.

If any check fails, the reader records "failed" (or "cancelled" when a cancel was asked for) with the
reason and the log tail, and marks the status `supervisor_lost`. Readers never send a signal: listing
or showing runs (the CLI, the app's pages, a waiting supervisor judging the runs ahead of it) only
reports. A worker that outlived its supervisor keeps working, and keeps its device slot, until it ends
or someone stops it with an explicit cancel (`JobManager.cancel`, `python -m learngene jobs cancel ID`),
which signals it only once it is proven to be the run's own (recorded start time and the run's token
in its environment, see `procs`). While such a worker runs, readers say so (`leftover_worker`, and a
note in the reason naming the cancel command). A status that is not queued/running (finished, or
"unreadable") is shown as it is and never acted on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from learngene.jobs import procs, slots
from learngene.jobs.runs import (
    LIVE_STATES,
    SUPERVISOR_LOCK,
    TERMINAL_STATES,
    cancel_requested,
    failure_tail,
    update_status,
)

START_GRACE_S = 30.0  # a supervisor that has not taken its lock this long after creation never started
DEFAULT_STALE_AFTER_S = 15.0


def gone_reason(run_dir: Path, config: dict[str, Any], status: dict[str, Any], stale_after_s: float) -> str | None:
    """Why the supervisor of a queued/running run is gone, or None while it is alive or starting."""
    if status.get("state") not in LIVE_STATES:
        return None
    locked = slots.is_locked(run_dir / SUPERVISOR_LOCK)
    pid = status.get("supervisor_pid")
    if not pid:
        if locked:
            return None
        age = time.time() - float(config.get("created_at", 0.0))
        if age < START_GRACE_S:
            return None
        return f"the supervisor never started ({age:.0f} s after the run was created); see supervisor.log"
    boot = status.get("boot_id")
    if boot and procs.boot_id() and boot != procs.boot_id():
        return "the machine restarted while the run was live"
    if not procs.is_alive(pid):
        return f"the supervisor (pid {pid}) is gone"
    if not procs.is_alive(pid, status.get("supervisor_start")):
        return f"the supervisor (pid {pid}) is gone and its pid was reused"
    if not locked:
        return f"the supervisor (pid {pid}) no longer holds its lock"
    beat = status.get("heartbeat_mono")
    if beat is not None:
        silent = time.monotonic() - float(beat)
        if silent > stale_after_s:
            return f"no heartbeat from the supervisor (pid {pid}) for {silent:.0f} s"
    return None


def leftover_worker(config: dict[str, Any], status: dict[str, Any]) -> int | None:
    """The pid of a finished run's worker that still runs (its supervisor was lost), or None.

    Reading only: the worker counts only when proven the run's own (start time and token), and the
    check is one `/proc` read for a worker that is gone.
    """
    if status.get("state") not in TERMINAL_STATES or not status.get("supervisor_lost"):
        return None
    pid = status.get("worker_pid")
    return pid if procs.is_ours(pid, status.get("worker_start"), config.get("token")) else None


def leftover_note(run_id: str, pid: int) -> str:
    return f"its worker (pid {pid}) is still running; stop it with `python -m learngene jobs cancel {run_id}`"


def reconcile(run_dir: Path, config: dict[str, Any], status: dict[str, Any], stale_after_s: float) -> dict[str, Any]:
    """The status a reader should show; records a verdict in status.json when the supervisor is gone.

    Never signals anything: a worker left running is reported (see `leftover_worker`), not killed.
    """
    if status.get("state") not in LIVE_STATES or gone_reason(run_dir, config, status, stale_after_s) is None:
        return status

    def verdict(current: dict[str, Any]) -> dict[str, Any] | None:
        reason = gone_reason(run_dir, config, current, stale_after_s)  # re-check under the status lock
        if reason is None:
            return None
        cancelled = cancel_requested(run_dir)
        return {
            **current,
            "state": "cancelled" if cancelled else "failed",
            "reason": f"cancelled; {reason}" if cancelled else reason,
            "ended_at": time.time(),
            "log_tail": failure_tail(run_dir),
            "supervisor_lost": True,
        }

    status = update_status(run_dir, verdict)
    if status.get("state") in TERMINAL_STATES:
        dequeue_run(run_dir, config)
    return status


def dequeue_run(run_dir: Path, config: dict[str, Any]) -> None:
    """Remove a run's queue file (it is finished or gone); the runs folder is the run's parent."""
    slots.dequeue(run_dir.parent, config["spec"]["device"], int(config["ticket"]), run_dir.name)
