"""Helpers shared by the job-system tests: polling, and killing whatever a test's runs started."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

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


def kill_runs_under(runs_dir: Path) -> None:
    """SIGKILL every process whose command line or environment names `runs_dir` (what the runs started)."""
    needle = str(runs_dir).encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            data = Path(f"/proc/{name}/cmdline").read_bytes() + Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if needle in data:
            try:
                os.kill(int(name), signal.SIGKILL)
            except OSError:
                pass
