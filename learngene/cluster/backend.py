"""A driver's connection to Ray: start or join a cluster, run tasks, cancel them on SIGTERM.

The driver (a job's process, e.g. a `sweep` or an `advantages` study) submits its units of work as
Ray tasks and reads the results as they finish; only the driver writes the run folder, its metrics
and the journal.
Tasks run `learngene.cluster.work.pinned`, which sets torch's thread count to the task's CPUs first,
so a task on one CPU trains exactly as a local run with `--threads 1` does.

Stopping: the job supervisor stops a worker with SIGTERM to its process group, then SIGKILL after a
grace period (`learngene.jobs.manager`, 5 s by default). While a `RayBackend` is open, SIGTERM raises
`Cancelled` in the driver's main thread (inside `ray.wait` too: Ray lets a KeyboardInterrupt through);
leaving the backend then cancels every task it still has (`ray.cancel(force=True)` kills the worker
processes running them), shuts down the Ray it started or disconnects from the cluster it joined (which
keeps running; a job's tasks end with its driver), and exits with status 143 (128 + SIGTERM). A Ray
started by the driver is in the driver's process group, so the same SIGTERM stops its head processes at
once; Ray calls may then block, so the driver exits after `CLEANUP_S` whatever happens, and each task's
worker process exits by itself when its raylet is gone (`learngene.cluster.work.pinned`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from learngene.cluster import INSTALL_HINT
from learngene.errors import ConfigError

EXIT_CANCELLED = 128 + signal.SIGTERM
CLEANUP_S = 3.5  # longest cleanup after SIGTERM; the job supervisor's SIGKILL follows after 5 s


LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def require_ray(local: bool = False):
    """The `ray` module, or a ConfigError saying how to install it.

    `local`: this process may start a local Ray; it then listens on 127.0.0.1 only, not on the machine's
    network address (Ray's own switch for single-machine Ray, read when `ray` is first imported:
    `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, unless the environment already sets it)."""
    if local and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--backend ray needs Ray, which is not installed here: {INSTALL_HINT} "
                          "(the 'cluster' extra, a pinned ray[train])") from None
    return ray


def local_cpus() -> int:
    """CPUs this process may run on (its affinity), the CPUs a local Ray is started with."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def reachable(address: str, timeout: float = 3.0) -> None:
    """Refuse at once an address nothing answers at (joining would wait for minutes)."""
    import socket

    if address == "auto":
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"a Ray address is HOST:PORT (or 'auto'), got {address!r}")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"nothing answers at {address} ({exc.strerror or type(exc).__name__}); is the Ray head "
                          "running there?") from None


class Cancelled(KeyboardInterrupt):
    """SIGTERM reached the driver while its Ray tasks ran.

    A KeyboardInterrupt, because that is what Ray lets through when a signal handler raises inside
    one of its blocking calls (`ray.wait`, `ray.get` check for signals; any other exception comes out
    as a SystemError), and what no `except Exception` eats."""


class RayBackend:
    """Ray for one driver, as a context manager.

    Args:
        address: a running cluster to join ("HOST:PORT" of its head, or "auto"); None starts a local
            Ray with this machine's CPUs (`local_cpus()`), unless this process is already connected
            to a Ray (then that one is used and left running).
        num_cpus: CPUs each task asks for; torch in the task uses that many threads (at least 1).
        num_gpus: GPUs (a fraction is fine, e.g. 0.25) each task asks for; 0 on a CPU.
        log: where one-line notes go (the cluster's size, cancellations).
        local_cpus: CPUs of a local Ray started here (default: all of `local_cpus()`).
    """

    def __init__(self, address: str | None = None, *, num_cpus: float = 1, num_gpus: float = 0,
                 log: Callable[[str], None] = print, local_cpus: int | None = None):
        if num_cpus <= 0 or num_gpus < 0:
            raise ConfigError(f"a Ray task needs num_cpus > 0 and num_gpus >= 0, got {num_cpus} and {num_gpus}")
        self.address, self.num_cpus, self.num_gpus, self.log = address, num_cpus, num_gpus, log
        self.local_cpus = local_cpus
        self.ray = None
        self.owned = False  # whether this backend called ray.init (and so calls ray.shutdown)
        self.started = False  # whether that ray.init started a local Ray (stopped by ray.shutdown)
        self.pending: dict[Any, Any] = {}  # ObjectRef -> key, of tasks not yet read
        self._old_handler: Any = None
        self.cancelled = False  # SIGTERM arrived
        self._remote = None  # the Ray remote function every task runs

    # -------------------------------------------------------------- the connection

    def __enter__(self) -> RayBackend:
        ray = require_ray(local=not self.address)
        try:
            if ray.is_initialized():
                pass
            elif self.address:
                reachable(self.address)  # an address nothing answers at: at once, not after Ray's long retries
                ray.init(address=self.address, logging_level="warning", log_to_driver=True)
                self.owned = True
            else:
                ray.init(num_cpus=self.local_cpus or local_cpus(), include_dashboard=False, logging_level="warning",
                         log_to_driver=True)
                self.owned = self.started = True
            self.ray = ray
            self._catch_sigterm()  # after ray.init, whose own handler (a stack dump) it replaces
            res = ray.cluster_resources()
            self.log(f"Ray: {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs "
                     f"({'a local Ray started for this job' if self.started else 'joined ' + (self.address or 'the connected cluster')}); "
                     f"each run is a task with {self.num_cpus:g} CPU(s)"
                     + (f" and {self.num_gpus:g} GPU(s)" if self.num_gpus else ""))
        except BaseException:
            self._close()
            self._restore_sigterm()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        deadline = None
        if self.cancelled:
            # The job's SIGTERM went to its whole process group, so a Ray started here is stopping too and
            # Ray calls may block: whatever happens, this process is gone before the supervisor's SIGKILL.
            deadline = threading.Timer(CLEANUP_S, os._exit, (EXIT_CANCELLED,))
            deadline.daemon = True
            deadline.start()
        try:
            if exc_type is not None and self.pending:
                self.log(f"cancelling {len(self.pending)} Ray task(s)")
            self._close()
        finally:
            self._restore_sigterm()
            if deadline is not None:
                deadline.cancel()
        if self.cancelled and exc_type is not None:
            self.log("cancelled (SIGTERM)")
            raise SystemExit(EXIT_CANCELLED) from None
        return False

    def _close(self) -> None:
        ray = self.ray
        if ray is None or not ray.is_initialized():
            return
        if self.pending:
            self.cancel(list(self.pending))
        if self.owned:  # a joined cluster keeps running; the tasks of this driver's job end with it
            ray.shutdown()
            self.owned = False

    def cancel(self, refs: list) -> None:
        """Cancel tasks and wait (a few seconds at most) until Ray reports them ended."""
        ray = self.ray
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished, or the cluster is going away
                pass
            self.pending.pop(ref, None)
        deadline = time.monotonic() + 3
        left = list(refs)
        try:
            while left and time.monotonic() < deadline:
                _, left = ray.wait(left, num_returns=len(left), timeout=0.2)
        except Exception:  # noqa: BLE001 - the local Ray got the job's SIGTERM too and is gone
            pass

    def _catch_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_sigterm(signum, frame):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one cancellation; the cleanup must not be cut
            self.cancelled = True
            raise Cancelled()

        self._old_handler = signal.signal(signal.SIGTERM, on_sigterm)

    def _restore_sigterm(self) -> None:
        if self._old_handler is not None:
            signal.signal(signal.SIGTERM, self._old_handler)
            self._old_handler = None

    # -------------------------------------------------------------- running tasks

    @property
    def slots(self) -> int:
        """How many tasks the cluster runs at once with this backend's resources (at least 1)."""
        res = self.ray.cluster_resources()
        n = int(res.get("CPU", 1) // self.num_cpus)
        if self.num_gpus:
            n = min(n, int(res.get("GPU", 0) // self.num_gpus))
        return max(1, n)

    def submit(self, fn: Callable, *args: Any, key: Any = None, name: str | None = None):
        """Run `fn(*args)` as a Ray task (torch pinned to the task's CPUs); returns its ObjectRef."""
        if self._remote is None:  # defined (and shipped to the cluster) once, not per task
            from learngene.cluster.work import pinned

            self._remote = self.ray.remote(pinned)
        remote = self._remote.options(num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                                      name=name or getattr(fn, "__name__", "learngene"), max_retries=0)
        ref = remote.remote(max(1, int(self.num_cpus)), fn, *args)
        self.pending[ref] = key
        return ref

    def put(self, value: Any):
        """Store `value` once in the object store; pass the ref to many tasks."""
        return self.ray.put(value)

    def map_unordered(self, fn: Callable, calls: Iterable[tuple[Any, tuple]], *,
                      in_flight: int | None = None) -> Iterator[tuple[Any, Any]]:
        """Run `fn(*args)` for each `(key, args)` of `calls`; yield `(key, result)` as tasks finish.

        At most `in_flight` tasks (default: twice the slots) are submitted at once, so `calls` may be
        a lazy iterator (a sweep builds each task's images when it is reached). An exception raised
        in a task is raised here (Ray's error is also an instance of the original exception's class).
        """
        ray = self.ray
        limit = in_flight or 2 * self.slots
        calls = iter(calls)
        exhausted = False
        while True:
            while not exhausted and len(self.pending) < limit:
                try:
                    key, args = next(calls)
                except StopIteration:
                    exhausted = True
                    break
                self.submit(fn, *args, key=key)
            if not self.pending:
                return
            ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=1.0)
            for ref in ready:
                value = ray.get(ref)
                yield self.pending.pop(ref), value
