"""What a Ray task runs: plain functions of the library, called in a Ray worker process.

Each function here is pickled by reference (`learngene.cluster.work.NAME`), so every worker must have
this package installed (on a single machine it has: the workers use the driver's Python). None of
them writes a file or a metric: they return results, which the driver records.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any


def pinned(threads: int, fn: Callable, *args: Any) -> Any:
    """`fn(*args)` with torch limited to `threads` threads (a task's CPUs), as a local `--threads` run.

    The task also ends its process if the raylet that started it goes away: a job cancelled with
    SIGTERM to its process group stops the Ray it started at once, and a worker busy training would
    otherwise train on, orphaned, until it next talks to Ray."""
    import torch

    _exit_with_parent()
    torch.set_num_threads(threads)
    return fn(*args)


_WATCHED: list[int] = []


def _exit_with_parent(every_s: float = 0.5) -> None:
    """Start (once per process) a thread that exits this process when its parent process changes."""
    if _WATCHED:
        return
    parent = os.getppid()
    _WATCHED.append(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-raylet", daemon=True).start()


def sweep_unit(recipe, source, jobs: list, batched: bool) -> list:
    """Train the pairs of `jobs` (`learngene.descend.sweep._Job`): one pair, or one batched group."""
    from learngene.descend.compare import train_pair
    from learngene.descend.sweep import _train_group_batched

    if batched:
        return _train_group_batched(recipe, source, jobs, None)
    return [train_pair(recipe, source, job.task, job.cfg, None, seed=job.seed, tags=job.tags) for job in jobs]


_WARM: set[str] = set()  # keys of the study contexts this worker process has warmed up


def study_unit(context, runs: list, batched: bool) -> list[tuple[list[int], list, float, str, str]]:
    """Train runs of a study (`learngene.descend.advantages.Run`) with `context` (its `RunContext`):
    one run, or a group to train as one batched model. Returns, per part trained together,
    (positions in `runs`, histories, wall seconds, timing label, rate kind); a group that cannot be
    batched is trained one run after another, as the local study does.

    A worker's first run of a study is preceded by one untimed epoch, as the local study does once,
    so that no timed run pays for first-call costs."""
    if context.key not in _WARM:
        context.warm_up()
        _WARM.add(context.key)
    if batched and len(runs) > 1:
        out = context.train_batched(runs)
        if not isinstance(out, str):
            histories, wall = out
            return [(list(range(len(runs))), histories, wall, f"batched x{len(runs)} (amortised, ray)", "batched")]
    parts = []
    for i, run in enumerate(runs):
        history, wall = context.train_one(run)
        parts.append(([i], [history], wall, "sequential (ray)", "sequential"))
    return parts
