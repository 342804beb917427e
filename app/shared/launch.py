"""Starting background jobs from the pages: once per settings, and where a queued run stands.

A double click on a start button reaches the server as two clicks; each started a job, and the page
then followed the second, which waited in the queue behind the first. `start_once` returns the run
already queued or running with the very same command (argv, kind, device) instead of starting a
second one (also one that someone else started: it stays theirs, and counts against their limit only);
the look-up, the limits and the start are one step under a lock (threads of this server and, through
a lock file in the runs folder, other processes).

Fair share of a shared server: a person may have `Limits.per_person` live runs (running + queued) and
everyone together `Limits.server`; a start beyond either is refused with the reason
(`LimitReached`). No Streamlit here.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from learngene.errors import ConfigError

_LOCK = threading.Lock()
START_LOCK = "app-start.lock"  # in the runs folder's lock directory


def same_job(a: Any, b: Any) -> bool:
    """Two `JobSpec`s that run the same command on the same device."""
    return list(a.argv) == list(b.argv) and a.kind == b.kind and a.device == b.device


def live_twin(mgr: Any, spec: Any) -> Any | None:
    """The queued or running run of `mgr`'s folder with the same command as `spec`, if any (the newest)."""
    for info in mgr.list(kind=spec.kind):
        if info.live and same_job(info.spec, spec):
            return info
    return None


class LimitReached(ConfigError):
    """A start refused because a person or the server has as many live runs as allowed."""


def live_counts(mgr: Any, owner: str | None = None) -> tuple[int, int]:
    """(running, queued) runs of `owner` (every owner when None) in `mgr`'s folder."""
    running = queued = 0
    for info in mgr.list():
        if info.live and (owner is None or info.spec.owner == owner):
            running += info.state == "running"
            queued += info.state == "queued"
    return running, queued


def refusal(mgr: Any, owner: str | None, limits: Any, host: bool = False) -> str | None:
    """Why a new run of `owner` may not start now (None: it may)."""
    if limits is None:
        return None
    running, queued = live_counts(mgr)
    if running + queued >= limits.server:
        return (f"the server already has {running + queued} runs queued or running (its limit is {limits.server}); "
                "start again when one has finished")
    if host or owner is None:
        return None
    mine = sum(live_counts(mgr, owner))
    if mine >= limits.per_person:
        return (f"you already have {mine} run(s) queued or running, the most one person may have here "
                f"({limits.running} running + {limits.queued} queued); wait for one to finish or cancel one, "
                "or ask the host for a higher limit")
    return None


def start_once(mgr: Any, spec: Any, limits: Any = None, host: bool = False) -> tuple[str, bool]:
    """Start `spec` unless the same command is already queued or running; returns (run id, started).

    With `limits` (an `app.shared.server.Limits`), a new run is refused (`LimitReached`) when its owner
    (`spec.owner`) or the whole server already has as many live runs as allowed; joining the same
    command that is already live is always allowed. The host is held to the server's limit only.
    """
    from learngene.jobs import slots

    spec = spec.validated()
    lock_dir = Path(mgr.runs_dir) / slots.LOCKS_DIR
    with _LOCK, slots.flocked(lock_dir / START_LOCK):
        twin = live_twin(mgr, spec)
        if twin is not None:
            return twin.run_id, False
        why = refusal(mgr, spec.owner, limits, host)
        if why:
            raise LimitReached(why)
        return mgr.start(spec), True


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def queue_place(info: Any) -> tuple[int, int] | None:
    """(place, of): where a queued run stands among the runs waiting for the same device (1 = next to
    start); None for a run that is not queued."""
    if getattr(info, "state", None) != "queued":
        return None
    from learngene.jobs import slots
    from learngene.jobs.runs import read_status

    runs_dir = Path(info.path).parent
    waiting = []
    for _ticket, run_id in slots.waiting(runs_dir, info.spec.device):
        folder = runs_dir / run_id
        if run_id == info.run_id or ((folder / "config.json").is_file()
                                     and read_status(folder).get("state") == "queued"):
            waiting.append(run_id)
    if info.run_id not in waiting:
        return None
    return waiting.index(info.run_id) + 1, len(waiting)


def queue_text(info: Any) -> str:
    """'next to start' or '3rd in the cpu queue (2 runs ahead)' for a queued run, else ''."""
    place = queue_place(info)
    if place is None:
        return ""
    n, _of = place
    if n == 1:
        return f"next in the {info.spec.device} queue"
    return f"{ordinal(n)} in the {info.spec.device} queue ({n - 1} run{'s' if n > 2 else ''} ahead)"
