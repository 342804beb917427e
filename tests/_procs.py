"""Helpers shared by the job-system tests: polling, and killing whatever a test's runs started."""

from __future__ import annotations

import time
from pathlib import Path

from bench._common import kill_processes_naming

LONG = ["selftest", "--records", "100000", "--interval", "0.05"]  # runs until cancelled or killed


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def wait_for_progress(manager, run_id: str, timeout: float = 30.0) -> None:
    """Wait until the run's worker appends a metric record after this call: it is still at work now (a worker
    that was killed, or stopped, appends nothing more). The readiness signal after an action that must leave
    the worker alone: whatever that action sent it has arrived by the time a later record is written."""
    _, offset = manager.read_metrics(run_id)
    wait_until(lambda: manager.read_metrics(run_id, offset)[0], timeout, "the worker's next record")


def kill_runs_under(runs_dir: Path) -> None:
    """SIGKILL every process whose command line or environment names `runs_dir` (what the runs started)."""
    kill_processes_naming(runs_dir)


def clean_up(manager) -> None:
    """After a test: kill every process the manager's runs started (twice: a second pass catches a
    process forked during the first), and reap the supervisors it spawned."""
    for _ in range(2):
        kill_runs_under(manager.runs_dir.resolve())
        time.sleep(0.05)
    for proc in manager._children:
        proc.kill()
        proc.wait(timeout=10)
