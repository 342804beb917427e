"""Background jobs: every slow step runs as `python -m learngene <command>` in its own process.

Contract between the job manager and a worker command:

- The manager creates the run folder `<runs>/<run_id>/` and starts the worker with the environment
  variable `LEARNGENE_RUN_DIR=<run folder>` (also `LEARNGENE_RUN_ID`, `LEARNGENE_DEVICE`; a cpu run
  gets `CUDA_VISIBLE_DEVICES=""`). When `JobSpec.pass_run_dir` is true (the default) it also appends
  `--run-dir <run folder>` to the worker's argv, so the command must accept that option.
- The worker appends metric records as JSON lines to `<run>/metrics.jsonl` (use
  `learngene.runlog.JsonlWriter`), may replace `<run>/progress.json` atomically with
  `{"done": n, "total": m, "message": str}` (`learngene.runlog.atomic_write_json`), writes its
  outputs under `<run>/outputs/`, and prints to stdout/stderr (captured in `<run>/log.txt`).
- The worker exits 0 when done, 3 (`runlog.EXIT_DIVERGED`) when training diverged, anything else
  when it failed. SIGTERM means "cancelled": stop soon (SIGKILL follows after a grace period). Child
  processes must stay in the worker's process group; they are killed with it. Supervisor and worker
  carry `LEARNGENE_RUN_TOKEN` in their environment (children inherit it): only processes proven by it
  and their start time to be the run's own are ever signalled.

Warm start (`learngene.jobs.warm`, `learngene.jobs.forkserver`): unless `$LEARNGENE_WARM_START` is "0" or
the manager is told otherwise, the supervisor and the worker are forked by the runs folder's fork server,
a process of its own that has torch, timm, the library and the shipped data loaded; they keep all of the
above (the worker's environment, its process group, its log, its exit code reaching the supervisor), and
the run's token still proves them in `/proc/<pid>/environ`. Whenever the server cannot serve, both start
cold as `python -m ...`; status.json says which (`start`: "warm" or "cold", `warm_refused`: why not).

States: queued → running → done | diverged | failed | cancelled (queued → cancelled too). A reader
that finds a queued/running run whose supervisor is gone records "failed" with the reason; readers
never signal anything, so a worker that outlived its supervisor runs on (reported as
`RunInfo.leftover_worker`, with the command that stops it) until it ends or is cancelled. A run whose
status.json fails validation reads as "unreadable" (with the reason) and is never acted on.
"""

from learngene.jobs.manager import JobManager, default_max_cpu_jobs
from learngene.jobs.runs import LIVE_STATES, STATES, TERMINAL_STATES, JobSpec, RunInfo, State

__all__ = [
    "JobManager",
    "JobSpec",
    "LIVE_STATES",
    "RunInfo",
    "STATES",
    "State",
    "TERMINAL_STATES",
    "default_max_cpu_jobs",
]
