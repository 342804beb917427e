"""Start, cancel, list and read background runs; the dashboard's only door to running work.

`JobManager` keeps no state of its own beyond where the runs folder is: every answer is derived from
the run folders, so a new manager (after a page reload or a server restart) sees exactly what the
old one saw. Starting a run writes its folder and launches a detached supervisor process
(`learngene.jobs.supervisor`); nothing here waits for work, imports torch or touches CUDA.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from learngene.errors import ConfigError, LearngeneError
from learngene.jobs import procs, slots, warm
from learngene.jobs.health import DEFAULT_STALE_AFTER_S, leftover_note, leftover_worker, reconcile
from learngene.jobs.runs import (
    CANCEL_FILE,
    CONFIG_FILE,
    LOG_FILE,
    OUTPUTS_DIR,
    STATUS_FILE,
    SUPERVISOR_LOCK,
    SUPERVISOR_LOG,
    UNREADABLE,
    JobSpec,
    RunInfo,
    State,
    build_info,
    cancel_requested,
    is_run_id,
    new_run_id,
    read_config,
    read_status,
    resolve_run_dir,
    tail_lines,
    update_status,
)
from learngene.runlog import METRICS_FILE, atomic_write_json, read_jsonl

# The folder that holds the `learngene` package; put on PYTHONPATH so the supervisor and worker
# import this same code whether or not the package is installed.
_CODE_ROOT = Path(__file__).resolve().parents[2]


def default_max_cpu_jobs() -> int:
    """Half the cores, at least one: a training run uses several threads."""
    return max(1, (os.cpu_count() or 2) // 2)


class JobManager:
    """Background runs under `runs_dir`, one folder each.

    Args:
        runs_dir: where run folders live (created on first start).
        max_cpu_jobs: how many cpu runs may work at once; more wait in the queue. Recorded in each
            run's config, so runs started by differently configured managers keep their own limit.
        grace_s: seconds between SIGTERM and SIGKILL when a run is cancelled.
        stale_after_s: a supervisor silent this long is judged dead.
        warm_start: fork workers from the runs folder's fork server (started on demand, kept across jobs;
            see `learngene.jobs.warm`), falling back to a cold start whenever it cannot serve; default
            `$LEARNGENE_WARM_START` (on unless "0"). Recorded in each run's config.
    """

    def __init__(
        self,
        runs_dir: str | os.PathLike = "runs",
        max_cpu_jobs: int | None = None,
        grace_s: float = 5.0,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        warm_start: bool | None = None,
    ):
        self.runs_dir = Path(runs_dir).absolute()
        self.max_cpu_jobs = default_max_cpu_jobs() if max_cpu_jobs is None else int(max_cpu_jobs)
        if self.max_cpu_jobs < 1:
            raise ConfigError(f"max_cpu_jobs must be at least 1, got {max_cpu_jobs}")
        if grace_s < 0 or stale_after_s <= 0:
            raise ConfigError("grace_s must be >= 0 and stale_after_s > 0")
        self.grace_s = float(grace_s)
        self.stale_after_s = float(stale_after_s)
        self.warm_start = warm.enabled(warm_start)
        self._children: list[subprocess.Popen] = []
        self._lock = threading.Lock()

    # -- starting ---------------------------------------------------------------------------------
    def start(self, spec: JobSpec) -> str:
        """Create the run folder, queue the run and launch its supervisor; returns the run id at once."""
        spec = spec.validated()
        self._reap()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        run_id, run_dir = self._new_run_dir(spec.kind)
        command = [sys.executable, "-m", warm.ENTRY, *spec.argv]
        if spec.pass_run_dir:
            command += ["--run-dir", str(run_dir)]
        config = {
            "run_id": run_id,
            "spec": spec.to_dict(),
            "command": command,
            "created_at": time.time(),
            "created_at_iso": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "python": sys.executable,
            "cwd": os.getcwd(),
            "max_cpu_jobs": self.max_cpu_jobs,
            "grace_s": self.grace_s,
            "stale_after_s": self.stale_after_s,
            # The run's mark on its own processes: given to the supervisor and worker in their environment,
            # it is what proves a pid from status.json to be this run's before anything is signalled.
            "token": secrets.token_hex(16),
            "warm": self.warm_start,
        }
        with slots.ticket_lock(self.runs_dir):
            config["ticket"] = slots.next_ticket(self.runs_dir)
            atomic_write_json(run_dir / CONFIG_FILE, config)
            atomic_write_json(run_dir / STATUS_FILE, {"state": "queued", "updated_at": time.time()})
            (run_dir / SUPERVISOR_LOCK).touch()
            slots.enqueue(self.runs_dir, spec.device, config["ticket"], run_id)
        if not (self.warm_start and self.warm_up() and self._fork_supervisor(run_dir, config)):
            self._launch_supervisor(run_dir, config)
        return run_id

    def warm_up(self) -> bool:
        """Start the runs folder's fork server unless one runs (it loads for a few seconds, in its own
        process); True if one runs now. A server that cannot start only means cold starts. Does nothing
        (False) for a manager without warm start."""
        if not self.warm_start:
            return False
        self._reap()
        try:
            proc = warm.start_server(self.runs_dir, self._supervisor_env(), cwd=os.getcwd())
        except OSError as exc:
            print(f"warning: no warm start: {exc}", file=sys.stderr)
            return False
        if proc is not None:
            with self._lock:
                self._children.append(proc)
        return warm.is_running(self.runs_dir)

    def _supervisor_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_CODE_ROOT), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _new_run_dir(self, kind: str) -> tuple[str, Path]:
        for _ in range(20):
            run_id = new_run_id(kind)
            path = self.runs_dir / run_id
            try:
                path.mkdir()
            except FileExistsError:
                continue
            (path / OUTPUTS_DIR).mkdir()
            return run_id, path
        raise LearngeneError(f"could not create a unique run folder in {self.runs_dir}")

    def _fork_supervisor(self, run_dir: Path, config: dict[str, Any]) -> bool:
        """The run's supervisor forked by a ready fork server (no interpreter start-up); False when none is
        ready or it refuses (then the supervisor starts cold)."""
        env = self._supervisor_env()
        env[procs.TOKEN_ENV] = config["token"]
        with open(run_dir / SUPERVISOR_LOG, "ab") as log:
            pid, _ = warm.spawn_supervisor(self.runs_dir, run_dir, env, config["cwd"], log.fileno())
        return pid is not None

    def _launch_supervisor(self, run_dir: Path, config: dict[str, Any]) -> None:
        env = self._supervisor_env()
        env[procs.TOKEN_ENV] = config["token"]
        try:
            with open(run_dir / SUPERVISOR_LOG, "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "learngene.jobs.supervisor", str(run_dir)],
                    cwd=config["cwd"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            reason = f"could not launch the supervisor: {exc}"
            atomic_write_json(
                run_dir / STATUS_FILE, {"state": "failed", "reason": reason, "ended_at": time.time()}
            )
            slots.dequeue(self.runs_dir, config["spec"]["device"], config["ticket"], run_dir.name)
            raise LearngeneError(reason) from exc
        with self._lock:
            self._children.append(proc)

    def _reap(self) -> None:
        """Collect exited supervisors we launched, so they do not linger as zombies."""
        with self._lock:
            self._children = [p for p in self._children if p.poll() is None]

    # -- reading ----------------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        """The folder of an existing run; raises ConfigError for a bad or unknown id."""
        path = resolve_run_dir(self.runs_dir, run_id)
        if not (path / CONFIG_FILE).is_file():
            raise ConfigError(f"no run {run_id!r} in {self.runs_dir}; list runs with `python -m learngene jobs list`")
        return path

    def get(self, run_id: str) -> RunInfo:
        """The current state of one run (a dead supervisor is detected and recorded here, never signalled)."""
        self._reap()
        path = self.run_dir(run_id)
        info = self._info(path)
        if info is None:
            raise LearngeneError(f"run {run_id!r} has an unreadable config.json")
        return info

    def _info(self, path: Path) -> RunInfo | None:
        config = read_config(path)
        if config is None:
            return None
        try:
            status = reconcile(path, config, read_status(path), self.stale_after_s)
        except FileNotFoundError:  # the folder was deleted or moved while we read it
            return None
        leftover = leftover_worker(config, status)
        if leftover is not None:  # said, not acted on: only a cancel stops it
            note = leftover_note(path.name, leftover)
            status = {**status, "reason": f"{status['reason']}; {note}" if status.get("reason") else note}
        return build_info(path.name, path, config, status, leftover)

    def list(self, kind: str | None = None, state: State | None = None, group: str | None = None) -> list[RunInfo]:
        """Runs matching every given filter, newest first."""
        self._reap()
        out: list[RunInfo] = []
        try:
            names = os.listdir(self.runs_dir)
        except FileNotFoundError:
            return out
        for name in names:
            if not is_run_id(name):
                continue
            info = self._info(self.runs_dir / name)
            if info is None:
                continue
            if kind is not None and info.spec.kind != kind:
                continue
            if state is not None and info.state != state:
                continue
            if group is not None and info.spec.group != group:
                continue
            out.append(info)
        out.sort(key=lambda i: (i.created_at, i.run_id), reverse=True)
        return out

    def comparison(self, group: str) -> dict[str, RunInfo]:
        """The runs of one comparison by role (e.g. "learngene", "baseline"); the newest run per role."""
        pairs: dict[str, RunInfo] = {}
        for info in self.list(group=group):  # newest first, so the first seen per role wins
            if info.spec.role is not None:
                pairs.setdefault(info.spec.role, info)
        return pairs

    def read_metrics(self, run_id: str, offset: int = 0) -> tuple[list[dict], int]:
        """Metric records appended since byte `offset`, and the offset to pass next time."""
        if offset < 0:
            raise ConfigError(f"offset must be >= 0, got {offset}")
        return read_jsonl(self.run_dir(run_id) / METRICS_FILE, offset)

    def log_tail(self, run_id: str, n_lines: int = 50) -> str:
        """The last `n_lines` lines of the worker's log."""
        return tail_lines(self.run_dir(run_id) / LOG_FILE, n_lines)

    def wait(self, run_id: str, timeout: float | None = None, poll_s: float = 0.2) -> RunInfo:
        """Block until the run is finished (or `timeout` passes) and return its state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.get(run_id)
            going = info.live or _supervised_unreadable(info)  # its supervisor rewrites the file
            if not going or (deadline is not None and time.monotonic() >= deadline):
                return info
            time.sleep(poll_s)

    # -- changing ---------------------------------------------------------------------------------
    def cancel(self, run_id: str) -> RunInfo:
        """Ask a run to stop: queued runs leave the queue, running ones get SIGTERM, then SIGKILL.

        Returns at once; the state becomes "cancelled" when the supervisor has stopped the worker
        (use `wait`). Cancelling a finished run changes nothing, except for a worker left running after
        its supervisor was lost (`RunInfo.leftover_worker`): with no supervisor to do it, the cancel
        stops that worker itself (SIGTERM, then SIGKILL after the grace period; this call waits) and
        records "cancelled". Processes are signalled here only when proven to be the run's own (see
        `procs.kill_group`); a run whose status.json is "unreadable" gets the request file only, which
        its supervisor, if alive, acts on.
        """
        info = self.get(run_id)
        if info.leftover_worker is not None:
            return self._stop_leftover(info)
        if not info.live and info.state != UNREADABLE:
            return info
        if not cancel_requested(info.path):
            atomic_write_json(info.path / CANCEL_FILE, {"requested_at": time.time(), "by": "JobManager.cancel"})
        status = info.status
        if info.live and status.get("worker_pgid"):  # the supervisor escalates; this only saves it a poll
            token = (read_config(info.path) or {}).get("token")
            procs.kill_group(status["worker_pgid"], status.get("worker_start"), signal.SIGTERM, token=token)
        return self.get(run_id)

    def _stop_leftover(self, info: RunInfo) -> RunInfo:
        """Stop the worker (and a frozen supervisor) of a run whose supervisor was lost; each proven the run's."""
        config = read_config(info.path) or {}
        token, status = config.get("token"), info.status
        grace_s = float(config.get("grace_s", self.grace_s))
        if not cancel_requested(info.path):
            atomic_write_json(info.path / CANCEL_FILE, {"requested_at": time.time(), "by": "JobManager.cancel"})
        # A supervisor judged lost may still exist (frozen): it is the run's, so it is stopped too.
        procs.kill_process(status.get("supervisor_pid"), status.get("supervisor_start"), signal.SIGKILL, token=token)
        pgid, start = status.get("worker_pgid"), status.get("worker_start")
        stopped = killed = False
        if procs.kill_group(pgid, start, signal.SIGTERM, token=token):
            stopped = True
            deadline = time.monotonic() + grace_s

            def going() -> bool:  # an exiting leader's environment reads empty before it is a zombie
                return procs.is_alive(pgid, start) or procs.owns_group(pgid, start, token)

            while going() and time.monotonic() < deadline:
                time.sleep(0.05)
            killed = procs.kill_group(pgid, start, signal.SIGKILL, token=token)
        if stopped:
            how = f"SIGKILL after a {grace_s:g} s grace period" if killed else "SIGTERM"

            def record(current: dict[str, Any]) -> dict[str, Any]:
                lost = str(current.get("reason") or "its supervisor was lost").removeprefix("cancelled; ")
                return {**current, "state": "cancelled",
                        "reason": f"cancelled; {lost}; its leftover worker (pid {info.leftover_worker}) "
                                  f"was stopped by the cancel ({how})"}

            update_status(info.path, record)
        return self.get(info.run_id)

    def delete(self, run_id: str) -> None:
        """Remove a finished run's folder; refuses a queued or running run (cancel it first)."""
        info = self.get(run_id)
        supervised = _supervised_unreadable(info)
        if info.live or supervised or info.leftover_worker is not None:
            what = ("still has a live supervisor" if supervised else f"is {info.state}" if info.live
                    else f"still has its worker (pid {info.leftover_worker}) running")
            raise LearngeneError(f"run {run_id} {what}; cancel it first (`python -m learngene jobs cancel {run_id}`)")
        shutil.rmtree(info.path)

    def cancel_all(self) -> list[str]:
        """Cancel every live run, and stop every worker left running by a lost supervisor; returns their ids."""
        ids = [info.run_id for info in self.list() if info.live or info.leftover_worker is not None]
        for run_id in ids:
            self.cancel(run_id)
        return ids


def _supervised_unreadable(info: RunInfo) -> bool:
    """True for a run whose status.json is unreadable while its supervisor still holds its lock."""
    return info.state == UNREADABLE and slots.is_locked(info.path / SUPERVISOR_LOCK)
