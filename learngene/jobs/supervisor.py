"""The per-run supervisor: `python -m learngene.jobs.supervisor <run folder>`.

The job manager launches one detached supervisor per run (its own session, so it outlives the web
server). The supervisor:

1. holds `<run>/.supervisor.lock` for its whole life (readers probe it to see that it lives);
2. waits, status "queued", until its run's turn has come for its device (the oldest live waiter whose
   owner has the fewest runs going, see `learngene.jobs.fairqueue`) and a device slot is free (see
   `learngene.jobs.slots`);
3. starts the worker `python -m learngene <argv>` in a new process group, output to `<run>/log.txt`,
   passing it the slot lock so the slot stays taken while any process of the run lives: forked by the
   runs folder's fork server when the run asks for a warm start (`config["warm"]`) and the server is
   ready or loading (waited for at most `warm.READY_WAIT_S`), else cold; status.json says which
   (`start`: "warm" or "cold", with `warm_refused`: why not);
4. refreshes a heartbeat in status.json about every second, and on a cancel request sends SIGTERM to
   the worker's group, then SIGKILL after the grace period;
5. records done (exit 0), diverged (exit 3), failed (anything else, with the log tail) or cancelled.

The run folder and the slot lock are known by identity, not by path: a `flock` follows its file and
the supervisor keeps its run folder open. If the run folder is moved or deleted (e.g. the whole runs
folder is renamed or removed) or the slot's lock file is no longer the one it holds, the run cannot
go on: its results would land in a recreated folder no listing shows, and the runs folder's slot
limit would no longer hold. The supervisor checks both about every 0.1 s while the worker runs (and
while it waits in the queue); when either fails it stops the worker (SIGTERM, grace, SIGKILL) and
records "failed" with the reason in the folder where the run now is (found through its open
descriptor), or only in its own log when the folder is gone.

It signals only its own worker: directly while the worker is its unreaped child (the pid cannot be
reused before it is reaped), and what is left of the group afterwards only when proven to be the
run's (`procs.kill_group`: the run's token in the environment). It never takes pids from status.json;
a status.json found "unreadable" is rewritten from what the supervisor itself last recorded.

It never imports torch or the command modules; all of its state lives in the run folder.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from learngene.jobs import fairqueue, procs, slots, warm
from learngene.jobs.health import DEFAULT_STALE_AFTER_S, dequeue_run, reconcile
from learngene.jobs.runs import (
    CANCEL_FILE,
    LOG_FILE,
    OUTPUTS_DIR,
    SUPERVISOR_LOCK,
    TERMINAL_STATES,
    UNREADABLE,
    cancel_requested,
    exit_reason,
    failure_tail,
    is_run_id,
    read_config,
    read_status,
    update_status,
)
from learngene.runlog import EXIT_DIVERGED, METRICS_FILE, PROGRESS_FILE, RUN_DIR_ENV, atomic_write_json

HEARTBEAT_S = 1.0
WORKER_POLL_S = 0.1
QUEUE_POLL_S = 0.2
HOLDER_CHECK_S = 2.0  # how often a blocked waiter checks that the runs holding its device still live


class _Abort(Exception):
    """Someone else already recorded a final state for this run (e.g. a reader's verdict)."""


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class Supervisor:
    """Runs one job from its folder; see the module docstring."""

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        self.run_dir = run_dir
        self.runs_dir = run_dir.parent
        self.config = config
        self.device = config["spec"]["device"]
        self.ticket = int(config["ticket"])
        self.grace_s = float(config.get("grace_s", 5.0))
        self.stale_after_s = float(config.get("stale_after_s", DEFAULT_STALE_AFTER_S))
        # A config written before runs had a token: an in-memory one still marks the worker for us.
        self.token: str = config.get("token") or secrets.token_hex(16)
        self.worker: subprocess.Popen | None = None
        self.worker_start: int | None = None
        self.record: dict[str, Any] = {}  # the status as this supervisor last wrote it
        self._stop_signal: int | None = None
        self._last_beat = 0.0
        # The run folder stays open: its identity tells a move from staying put, and it finds the folder after one.
        self.dir_fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
        self.dir_id = _identity(os.fstat(self.dir_fd))
        self.slot: tuple[int, Path] | None = None  # (descriptor, lock path) of the device slot once held
        self.lost: str | None = None  # why the run can no longer work where it started, once found
        self.running = fairqueue.RunningCounts(self.runs_dir, self.device)

    # -- where the run lives ----------------------------------------------------------------------
    def check_place(self) -> str | None:
        """Why the run folder or the slot lock is no longer where the run started, or None (remembered)."""
        if self.lost is None:
            self.lost = self._place_problem()
            if self.lost is not None:
                print(f"supervisor: {self.lost}; stopping the run", file=sys.stderr, flush=True)
        return self.lost

    def _place_problem(self) -> str | None:
        try:
            here = _identity(os.stat(self.run_dir))
        except OSError:
            here = None
        if here != self.dir_id:
            return f"the run folder {self.run_dir} was moved or deleted while the run was live"
        if self.slot is not None and not slots.same_file(*self.slot):
            return (f"the device slot's lock file {self.slot[1]} was deleted or replaced while the run was live "
                    "(was the runs folder deleted?)")
        return None

    def moved_to(self) -> Path | None:
        """Where the run folder is now (through its open descriptor), or None once it is deleted."""
        try:
            where = Path(os.readlink(f"/proc/self/fd/{self.dir_fd}"))
            same = _identity(os.stat(where)) == self.dir_id
        except OSError:
            return None
        return where if same else None

    def remove_stray(self) -> None:
        """Remove what the stopped worker wrote at the run's old path after the folder went (it recreates its
        folder there to write progress): only a folder without config.json holding nothing but worker files."""
        stray = self.run_dir
        try:
            if _identity(os.stat(stray)) == self.dir_id:
                return
            names = os.listdir(stray)
        except OSError:
            return
        worker_files = {METRICS_FILE, PROGRESS_FILE, OUTPUTS_DIR}
        if all(n in worker_files or (n.startswith(".") and n.endswith(".tmp")) for n in names):
            shutil.rmtree(stray, ignore_errors=True)

    def finish_lost(self, exit_code: int | None, done: bool = False) -> None:
        """Record the stop caused by `self.lost` in the folder where the run now is (if it still exists);
        `done`: the worker finished on its own before it was stopped."""
        slots.dequeue(self.runs_dir, self.device, self.ticket, self.run_dir.name)  # removes, never creates
        self.remove_stray()
        where = self.moved_to()
        reason = f"stopped: {self.lost}"
        if where is not None and where != self.run_dir:
            reason += f"; the run folder is now {where}"
        print(f"supervisor: {reason}" + ("" if where else "; the run folder is gone"), file=sys.stderr, flush=True)
        if where is not None:
            self.run_dir = where
            try:
                if done:
                    self.finish("done", None, exit_code)
                else:
                    self.finish("failed", reason, exit_code, tail=True)
            except FileNotFoundError:  # moved again meanwhile: the log line above is all that is left
                pass

    # -- status -----------------------------------------------------------------------------------
    def beat(self, force: bool = False, **fields: Any) -> None:
        """Refresh the heartbeat (at most every HEARTBEAT_S unless forced) and merge `fields`."""
        now = time.monotonic()
        if not force and now - self._last_beat < HEARTBEAT_S:
            return

        def change(status: dict[str, Any]) -> dict[str, Any]:
            if status.get("state") in TERMINAL_STATES:
                raise _Abort(status["state"])
            base = self.record if status.get("state") == UNREADABLE else status  # repair a spoiled file
            return {**base, **fields, "heartbeat_mono": now, "heartbeat_at": time.time()}

        try:
            self.record = update_status(self.run_dir, change)
        except FileNotFoundError:
            if self.check_place():  # the folder went away: the caller stops the run
                return
            raise
        self._last_beat = now

    def finish(self, state: str, reason: str | None, exit_code: int | None = None, tail: bool = False) -> None:
        """Record the final state (unless one was already recorded) and leave the queue."""

        def change(status: dict[str, Any]) -> dict[str, Any] | None:
            if status.get("state") in TERMINAL_STATES:
                return None
            return {
                **(self.record if status.get("state") == UNREADABLE else status),
                "state": state,
                "reason": reason,
                "exit_code": exit_code,
                "ended_at": time.time(),
                "log_tail": failure_tail(self.run_dir) if tail else None,
            }

        update_status(self.run_dir, change)
        dequeue_run(self.run_dir, self.config)

    def cancelling(self) -> bool:
        """True once a cancel was requested (by file, or by a signal to this supervisor)."""
        if self._stop_signal is not None and not cancel_requested(self.run_dir):
            who = f"supervisor received {procs.signal_name(self._stop_signal)}"
            atomic_write_json(self.run_dir / CANCEL_FILE, {"requested_at": time.time(), "by": who})
        return cancel_requested(self.run_dir)

    # -- queue ------------------------------------------------------------------------------------
    def first_in_line(self) -> bool:
        """True when this run's turn has come (`learngene.jobs.fairqueue`: the owner with the fewest runs going
        first, then the oldest ticket); stale queue files are cleared on the way."""
        me = (self.ticket, self.run_dir.name)
        others = []
        for entry in slots.waiting(self.runs_dir, self.device):
            if entry == me:
                continue
            cfg = read_config(self.runs_dir / entry[1])
            if self._waits(entry[1], cfg):
                others.append((entry[0], fairqueue.owner_of(cfg)))
            else:
                slots.dequeue(self.runs_dir, self.device, *entry)
        if not others:
            return True
        return fairqueue.my_turn(me, fairqueue.owner_of(self.config), others, self.running.get())

    def _waits(self, name: str, cfg: dict[str, Any] | None) -> bool:
        """Whether another run's queue file stands for a run still waiting (its supervisor lives)."""
        if cfg is None:
            return False
        other = self.runs_dir / name
        status = reconcile(other, cfg, read_status(other), self.stale_after_s)
        if status.get("state") == UNREADABLE:  # nothing to judge by but its supervisor's lock
            return slots.is_locked(other / SUPERVISOR_LOCK)
        return status.get("state") not in TERMINAL_STATES

    def check_holders(self) -> None:
        """Judge the running runs of this device, so that one whose supervisor died is recorded as failed
        even when no dashboard is looking. Like every reader it signals nothing: a worker left running
        keeps its slot (it is still working) until it ends or is cancelled, and the verdict says so."""
        try:
            names = os.listdir(self.runs_dir)
        except FileNotFoundError:  # the runs folder went away: check_place ends this run
            return
        for name in names:
            other = self.runs_dir / name
            if name == self.run_dir.name or not is_run_id(name):
                continue
            status = read_status(other)
            cfg = read_config(other) if status.get("state") == "running" else None
            if cfg is not None and cfg["spec"].get("device") == self.device:
                reconcile(other, cfg, status, self.stale_after_s)

    def wait_for_slot(self) -> tuple[int, Path] | None:
        """Block until this run holds a device slot; None if it was cancelled while queued."""
        paths = slots.slot_paths(self.runs_dir, self.device, int(self.config.get("max_cpu_jobs", 1)))
        last_check = time.monotonic()
        while True:
            if self.check_place() or self.cancelling():
                return None
            if self.first_in_line():
                slot = slots.try_acquire(paths)
                if slot is not None:
                    self.slot = slot
                    return slot
                if time.monotonic() - last_check > HOLDER_CHECK_S:
                    self.check_holders()
                    last_check = time.monotonic()
            self.beat()
            time.sleep(QUEUE_POLL_S)

    # -- worker -----------------------------------------------------------------------------------
    def worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[RUN_DIR_ENV] = str(self.run_dir)
        env["LEARNGENE_RUN_ID"] = self.run_dir.name
        env["LEARNGENE_DEVICE"] = self.device
        env[procs.TOKEN_ENV] = self.token  # children inherit it: proof that they are this run's
        env["PYTHONUNBUFFERED"] = "1"
        if self.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""  # a cpu run must not take GPU memory behind the lock
        return env

    def launch(self, slot_fd: int) -> bool:
        """Start the worker in its own process group, forked by the fork server when the run asks for a
        warm start and one is ready, else cold; False (and a failed status) if it cannot start."""
        how: dict[str, Any] = {"start": "cold"}
        with open(self.run_dir / LOG_FILE, "ab") as log:
            if self.config.get("warm"):
                self.worker, refused = self.warm_worker(log.fileno(), slot_fd)
                how = {"start": "warm"} if self.worker is not None else {"start": "cold", "warm_refused": refused}
            try:
                if self.worker is None:
                    self.worker = subprocess.Popen(
                        self.config["command"],
                        cwd=self.config.get("cwd") or None,
                        env=self.worker_env(),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        pass_fds=(slot_fd,),
                        close_fds=True,
                    )
            except OSError as exc:
                self.finish("failed", f"could not start the worker: {exc}", tail=True)
                return False
        pid = self.worker.pid
        self.worker_start = getattr(self.worker, "start", None) or procs.start_ticks(pid)
        self.beat(
            force=True,
            state="running",
            worker_pid=pid,
            worker_pgid=pid,
            worker_start=self.worker_start,
            started_at=time.time(),
            **how,
        )
        return True

    def warm_worker(self, log_fd: int, slot_fd: int) -> tuple[warm.WarmWorker | None, str]:
        """The worker forked by the runs folder's fork server (waiting, with heartbeats, while one loads),
        or (None, why not): the caller then starts it cold."""
        def keep_going() -> bool:
            self.beat()
            return not (self.check_place() or self.cancelling())

        warm.wait_until_ready(self.runs_dir, warm.READY_WAIT_S, keep_going)
        return warm.launch(self.runs_dir, self.config["command"], self.worker_env(), self.config.get("cwd"),
                           log_fd, slot_fd)

    def watch(self) -> tuple[int, bool, bool]:
        """Wait for the worker, escalating a cancel; returns (return code, SIGTERMed, SIGKILLed)."""
        assert self.worker is not None
        term_at: float | None = None
        killed = False
        while True:
            try:
                return self.worker.wait(timeout=WORKER_POLL_S), term_at is not None, killed
            except subprocess.TimeoutExpired:
                pass
            if term_at is None and (self.check_place() or self.cancelling()):
                term_at = time.monotonic()
                self.signal_worker(signal.SIGTERM)
            elif term_at is not None and not killed and time.monotonic() - term_at > self.grace_s:
                self.signal_worker(signal.SIGKILL)
                killed = True
            if self.lost is None:  # no status writes to a folder that is gone
                self.beat()

    def signal_worker(self, sig: int) -> bool:
        """Signal the worker's process group; True if sent.

        While the worker is our unreaped child its pid (the group id) cannot be reused, so the group is
        ours (a forked worker: while its keeper has not reaped it, `WarmWorker.holds_pid`); once reaped,
        what is left of it is signalled only when `procs.kill_group` proves it ours.
        """
        if self.worker is None:
            return False
        if self.worker.returncode is None and getattr(self.worker, "holds_pid", True):
            try:
                os.killpg(self.worker.pid, sig)
            except (ProcessLookupError, PermissionError):
                return False
            return True
        return procs.kill_group(self.worker.pid, self.worker_start, sig, token=self.token)

    def kill_worker_group(self) -> None:
        """SIGKILL whatever is left of the worker's process group (children it left behind)."""
        self.signal_worker(signal.SIGKILL)

    def record_exit(self, rc: int, signalled: bool, killed: bool) -> None:
        """Map the worker's end to a final state; a lost folder or slot, or a cancel, wins unless the worker
        finished first."""
        if self.lost is not None:
            self.finish_lost(rc, done=rc == 0 and not signalled)
        elif self.cancelling() and (signalled or rc != 0):
            extra = f" (SIGKILL after a {self.grace_s:g} s grace period)" if killed else ""
            self.finish("cancelled", f"cancelled on request{extra}", rc)
        elif rc == 0:
            self.finish("done", None, rc)
        elif rc == warm.EXIT_LOST:
            self.finish("failed", "the worker ended but its exit code was lost with the fork server's keeper", None,
                        tail=True)
        elif rc == EXIT_DIVERGED:
            self.finish("diverged", "the worker reported a diverged run (exit code 3)", rc, tail=True)
        elif rc < 0:
            self.finish("failed", f"killed by signal {-rc} ({procs.signal_name(-rc)})", rc, tail=True)
        else:
            self.finish("failed", exit_reason(self.run_dir, rc), rc, tail=True)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        me = os.getpid()
        self.beat(
            force=True,
            state="queued",
            supervisor_pid=me,
            supervisor_start=procs.start_ticks(me),
            boot_id=procs.boot_id(),
        )
        slot = self.wait_for_slot()
        if slot is None and self.lost is not None:
            self.finish_lost(None)
            return 0
        if slot is None:
            self.finish("cancelled", "cancelled while queued")
            return 0
        slot_fd, _ = slot
        try:
            dequeue_run(self.run_dir, self.config)
            if not self.launch(slot_fd):
                return 0
            rc, signalled, killed = self.watch()
            self.kill_worker_group()  # children it left behind must not keep the slot
            self.record_exit(rc, signalled, killed)
        finally:
            self.kill_worker_group()
            os.close(slot_fd)
        return 0

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stop_signal = signum


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m learngene.jobs.supervisor RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0]).resolve()
    config = read_config(run_dir)
    if config is None:
        print(f"error: {run_dir} has no readable config.json", file=sys.stderr)
        return 2
    lock_fd = os.open(run_dir / SUPERVISOR_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)  # held until this process exits
    sup = Supervisor(run_dir, config)
    try:
        return sup.run()
    except _Abort:
        sup.kill_worker_group()
        return 0
    except Exception as exc:
        traceback.print_exc()
        sup.kill_worker_group()
        sup.finish("failed", f"supervisor error: {exc!r}", tail=True)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
