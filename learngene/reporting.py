"""Progress and metrics reporting for workers.

A `Reporter` is what a long-running command talks to: it prints a progress bar on the terminal,
and when the command runs as a job (a run folder is assigned) it appends metric records to the run
folder's `metrics.jsonl` and keeps `progress.json` current. The training loop only sees callbacks.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from learngene.runlog import (
    METRICS_FILE,
    PROGRESS_FILE,
    JsonlWriter,
    atomic_write_json,
    claim_run_dir,
    run_dir_from_env,
)


class Reporter:
    """Metrics + progress sink for one command.

    Args:
        run_dir: the run folder; defaults to `$LEARNGENE_RUN_DIR`; None means terminal only.
        total: number of progress units (e.g. epochs over all models of the command).
        desc: label of the progress bar.
        quiet: no progress bar.
    """

    def __init__(self, run_dir: str | Path | None = None, total: int | None = None, desc: str = "",
                 quiet: bool = False):
        self.run_dir = Path(run_dir) if run_dir else run_dir_from_env()
        self._claim = claim_run_dir(self.run_dir) if self.run_dir else None  # one writer per run folder
        self._metrics = JsonlWriter(self.run_dir / METRICS_FILE) if self.run_dir else None
        self.total, self.done, self.message = total, 0, desc
        self._bar = None if quiet else tqdm(total=total, desc=desc, file=sys.stderr, mininterval=1.0,
                                            dynamic_ncols=True)
        self._last_progress_write = 0.0
        self._write_progress(force=True)

    @property
    def outputs_dir(self) -> Path | None:
        """`<run>/outputs`, where a job's files go, or None outside a job."""
        if self.run_dir is None:
            return None
        out = self.run_dir / "outputs"
        out.mkdir(parents=True, exist_ok=True)
        return out

    def metric(self, record: dict[str, Any]) -> None:
        """Append one record (flushed at once) to the run's metrics."""
        if self._metrics is not None:
            self._metrics.write({"t": time.time(), **record})

    def advance(self, n: int = 1, message: str | None = None, **postfix: Any) -> None:
        self.done += n
        if message is not None:
            self.message = message
        if self._bar is not None:
            if message is not None:
                self._bar.set_description(message, refresh=False)
            if postfix:
                self._bar.set_postfix({k: _short(v) for k, v in postfix.items()}, refresh=False)
            self._bar.update(n)
        self._write_progress()

    def write(self, text: str) -> None:
        """Print a line on stdout without breaking the progress bar (the job log keeps it)."""
        if self._bar is not None:
            self._bar.clear()
        print(text, flush=True)
        if self._bar is not None:
            self._bar.refresh()

    def set_message(self, message: str) -> None:
        self.message = message
        if self._bar is not None:
            self._bar.set_description(message)
        self._write_progress(force=True)

    def _write_progress(self, force: bool = False) -> None:
        if self.run_dir is None:
            return
        now = time.time()
        if force or now - self._last_progress_write > 0.5 or (self.total and self.done >= self.total):
            atomic_write_json(self.run_dir / PROGRESS_FILE,
                              {"done": self.done, "total": self.total, "message": self.message, "t": now})
            self._last_progress_write = now

    def close(self) -> None:
        self._write_progress(force=True)
        if self._bar is not None:
            self._bar.close()
        if self._metrics is not None:
            self._metrics.close()
        if self._claim is not None:
            self._claim.release()

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _short(v: Any) -> Any:
    return f"{v:.4g}" if isinstance(v, float) else v
