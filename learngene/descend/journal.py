"""A journal of finished runs: one JSON line per run, appended under a lock and fsync'd, so a long
study (`learngene.descend.advantages`) that is stopped or killed restarts where it stopped.

Each entry is keyed by the run's identity (what it is) and a fingerprint (what decides its result);
an entry is reused only when both match.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from learngene.runlog import read_jsonl


class RunJournal:
    """The journal file at `path` (created on the first append)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def load(self) -> dict[tuple[tuple, str], dict[str, Any]]:
        """Entries by (identity, fingerprint). A line cut short by a kill is ended, so the next entry
        starts on a line of its own (the cut line is skipped as invalid JSON).

        Reads and repairs under the lock `append` takes, so a line another study is still writing is
        neither read half-written nor split; the repair newline is appended (append mode), never
        written over bytes that arrived in the meantime."""
        if not self.path.exists():
            return {}
        with open(self.path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            records, _ = read_jsonl(self.path)
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    f.write(b"\n")  # append mode: lands at the end whatever the position
                    f.flush()
                    os.fsync(f.fileno())
        found = {}
        for rec in records:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                found[(tuple(rec["identity"]), rec["fingerprint"])] = rec
        return found

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Append entries (each with `identity` and `fingerprint`) as whole lines; studies sharing the
        file take turns through an exclusive lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps({**e, "identity": list(e["identity"])}) + "\n" for e in entries)
        with open(self.path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
