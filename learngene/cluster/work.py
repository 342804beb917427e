"""What every Ray task runs first, in the Ray worker process, around the function it was given.

A task runs `pinned(threads, fn, *args)`: `fn` is a module-level function of the library, pickled by
reference, so every worker must have this package installed (on a single machine it has: the workers
use the driver's Python). What `fn` is (a sweep's pair, a study's run) is its caller's business; it
returns results, which the driver records.
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

    exit_with_parent()
    torch.set_num_threads(threads)
    return fn(*args)


_WATCHED: list[int] = []


def exit_with_parent(every_s: float = 0.5) -> None:
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
