"""Whose run starts next when a device slot frees: a fair share between the people of one server.

Runs wait in ticket order (`learngene.jobs.slots`), but the next slot does not simply go to the oldest
waiter: it goes to the waiter whose owner has the fewest runs holding a slot of that device now, the
oldest first among equals. A person with a run going therefore waits behind someone who has none,
whenever they queued; one person's own runs keep their order; and runs from the command line (no
owner: the host's) share like one more person. With one person, or no one running, this is the plain
ticket order.

Each waiting supervisor decides for itself (`my_turn`) from the queue files and the run folders; no
process hands out turns, so a crashed supervisor cannot stall the queue. Counting the running runs
reads every run's status; a waiter recounts at most every `RECOUNT_S` seconds.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from learngene.jobs.runs import is_run_id, read_config, read_status

RECOUNT_S = 1.0
HOST = ""  # the owner of a run started without one (the command line)


def owner_of(config: dict[str, Any] | None) -> str:
    """The owner a run's config names; `HOST` for none."""
    spec = (config or {}).get("spec") or {}
    owner = spec.get("owner")
    return owner if isinstance(owner, str) and owner else HOST


def running_by_owner(runs_dir: Path, device: str) -> Counter:
    """How many runs of each owner hold a slot of `device` now (status "running")."""
    counts: Counter = Counter()
    try:
        names = os.listdir(runs_dir)
    except FileNotFoundError:
        return counts
    for name in names:
        if not is_run_id(name) or read_status(runs_dir / name).get("state") != "running":
            continue
        config = read_config(runs_dir / name)
        if config is not None and (config.get("spec") or {}).get("device") == device:
            counts[owner_of(config)] += 1
    return counts


def my_turn(me: tuple[int, str], owner: str, others: Iterable[tuple[int, str]], running: Counter) -> bool:
    """True when no other live waiter (ticket, owner) comes before this one (ticket `me[0]`, `owner`):
    fewer running runs of its owner first, then the older ticket."""
    mine = (running[owner], me[0])
    return all((running[o], t) > mine for t, o in others)


class RunningCounts:
    """`running_by_owner`, counted again at most every `every` seconds."""

    def __init__(self, runs_dir: Path, device: str, every: float = RECOUNT_S):
        self.runs_dir, self.device, self.every = runs_dir, device, every
        self._at = -float("inf")
        self._counts: Counter = Counter()

    def get(self) -> Counter:
        now = time.monotonic()
        if now - self._at >= self.every:
            self._counts, self._at = running_by_owner(self.runs_dir, self.device), now
        return self._counts
