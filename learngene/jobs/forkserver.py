"""The fork server: `python -m learngene.jobs.forkserver RUNS_DIR [--entry MODULE] [--idle-exit S]`.

One process per runs folder, started on demand by the job manager (or `learngene jobs forkserver
start`), never inside the web server. It loads torch, timm, every learngene module and the shipped data
once, then forks one process per request (protocol and files: `learngene.jobs.warm`; what the forked
processes do: `learngene.jobs.forked`), so a job starts without paying for imports and data loading:
a run's worker (asked for by its supervisor) and a run's supervisor (asked for by the job manager, which
saves an interpreter's start-up on each click).

Forking a loaded interpreter is safe only under conditions it keeps:

- **No CUDA, no thread pools.** Loading runs no torch operation: GNU OpenMP's pool does not survive a
  fork (a child that uses it hangs), so the server checks after loading that it has no more threads than
  after `import torch` (numpy's OpenBLAS threads are fork-aware), and that CUDA is not initialised.
  Each worker then sets its own thread counts, as a cold worker does (`--threads`).
- **One request, one keeper.** For each worker the server forks a *keeper* (its own session), which
  forks the *worker* and waits for it (a supervisor's *launcher* forks it and exits). The server itself
  only accepts and forks; if it dies, running jobs and their exit codes are unaffected.
- **A worker is a cold worker.** It gets its own session (process group), the run's log as
  stdout/stderr, /dev/null as stdin, the slot lock, the request's working directory and exactly the
  request's environment; default signal handlers; fresh numpy and torch random states; then the
  entry point's `main(argv)` (that of `python -m learngene`, whose module the server is told by its
  starter: `--entry`, `warm.ENTRY`) and `os._exit` with its code after the exit handlers.
- **Proof of identity.** `/proc/<pid>/environ` shows the environment a process was *started* with, which
  for a forked worker is the server's. The server starts with `LEARNGENE_RUN_TOKEN` set to a placeholder
  of a token's length, and each worker overwrites the placeholder in its own copy of that memory with
  its run's token before it reports its pid. So `procs.is_ours` proves a forked worker (and the
  processes it forks or starts) exactly as a cold one, and refuses the server, its keepers and every
  other run's worker.
- **Only learngene commands.** A request names a learngene argv (checked like `JobSpec`, command known)
  or a run folder of its runs folder to supervise, the server's own interpreter, an existing folder and an environment equal to the server's but for the
  run's own variables; the peer must be the server's user (`SO_PEERCRED`, on top of the 0700 folder).
  A request after the package's source changed on disk is refused and the server exits, so no job runs
  stale code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Container
from pathlib import Path
from typing import Any

from learngene.jobs import forked, procs, warm

DEFAULT_IDLE_EXIT_S = 6 * 3600.0
POLL_S = 0.5
REQUEST_TIMEOUT_S = 5.0


class Refused(Exception):
    """A request the server will not serve; the message goes back to the client."""


# ------------------------------------------------------------------ loading


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def load_entry(name: str) -> Any:
    """The module `python -m NAME` runs (a package's `__main__`); it must offer `main(argv)` (a job's
    command line, its exit code) and `commands()` (the command names a request may ask for)."""
    import importlib

    module = importlib.import_module(name)
    if hasattr(module, "__path__"):
        module = importlib.import_module(f"{name}.__main__")
    missing = [f for f in ("main", "commands") if not callable(getattr(module, f, None))]
    if missing:
        raise RuntimeError(f"the entry point {module.__name__} has no {' and no '.join(missing)}()")
    return module


def preload(entry_name: str) -> tuple[dict[str, Any], Any]:
    """Import what jobs use, with the entry point `entry_name` (see `load_entry`), and read the shipped
    data; returns (what loading took, the entry module). Raises RuntimeError if loading left state a
    fork cannot carry (extra threads, CUDA)."""
    t0 = time.perf_counter()
    import numpy  # noqa: F401
    import timm  # noqa: F401
    import torch

    baseline = _threads()
    skipped = _import_library()
    entry = load_entry(entry_name)
    entry.commands()  # read once here, found read by every job
    data = _read_shipped_data()
    if _threads() > baseline:
        raise RuntimeError(f"loading started threads ({_threads()} against {baseline} after importing torch)")
    if torch.cuda.is_initialized() or _gpu_driver_open():
        raise RuntimeError("loading initialised CUDA (or opened the GPU driver), which a fork cannot carry")
    loaded = {"seconds": round(time.perf_counter() - t0, 2), "threads": baseline, "skipped": skipped, "data": data}
    return loaded, entry


def _gpu_driver_open() -> bool:
    """True if this process holds a GPU device open (`torch.cuda.is_available()` alone opens the driver)."""
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith(("/dev/nvidia", "/dev/dri", "/dev/kfd")):
                return True
    return False


def _import_library() -> list[str]:
    """Import every learngene module but the Ray glue and this one; returns those that failed."""
    import importlib
    import pkgutil

    import learngene

    skipped = []
    for mod in pkgutil.walk_packages(learngene.__path__, "learngene."):
        name = mod.name
        if name.startswith(("learngene.cluster", "learngene.jobs.forkserver")):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional dependency missing: that command loads it itself
            skipped.append(f"{name}: {exc}")
    return skipped


def _read_shipped_data() -> str:
    """Read the generated data set from its cache (pages stay in memory); never generate it here:
    generating runs torch operations, which would start OpenMP's pool in the server."""
    from learngene.data import shapes

    if not shapes.is_cached():
        return "not cached yet"
    return str(shapes.load_shapes().meta["cache_path"])


# ------------------------------------------------------------------ requests


def check_argv(argv: Any, commands: Container[str]) -> None:
    """Refuse anything but a learngene command line (checked like `JobSpec`, the command one of `commands`)."""
    from learngene.errors import ConfigError
    from learngene.jobs.runs import JobSpec

    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise Refused("argv must be a list of strings")
    try:
        JobSpec(argv=argv).validated()
    except ConfigError as exc:
        raise Refused(str(exc)) from None
    if argv[0] not in commands:
        raise Refused(f"{argv[0]!r} is not a learngene command")


def check_run_folder(path: Any, runs_dir: Path) -> None:
    """Refuse anything but a run folder of this server's runs folder."""
    from learngene.jobs.runs import is_run_id, read_config

    folder = Path(path) if isinstance(path, str) and os.path.isabs(path) else None
    if folder is None or folder.parent != runs_dir or not is_run_id(folder.name) or read_config(folder) is None:
        raise Refused(f"{path!r} is not a run folder of {runs_dir}")


def check_request(raw: bytes, fds: list[int], runs_dir: Path, base_env: dict[str, str],
                  derived: dict[str, str], commands: Container[str]) -> dict[str, Any]:
    """The validated request; raises Refused. `commands`: the command names a worker may run;
    `base_env`: the server's environment when it started;
    `derived`: the variables loading set (e.g. torch's compile cache folder), which a cold worker sets the
    same way when it imports the same modules, so a request may carry them or not."""
    try:
        req = json.loads(raw)
    except ValueError:
        raise Refused("the request is not JSON") from None
    if not isinstance(req, dict) or set(req) not in ({"argv", "env", "cwd", "python"}, {"supervise", "env", "cwd", "python"}):
        raise Refused("the request must have exactly argv (or supervise), env, cwd and python")
    env, cwd = req["env"], req["cwd"]
    if "supervise" in req:
        check_run_folder(req["supervise"], runs_dir)
    else:
        check_argv(req["argv"], commands)
    wanted = 1 if "supervise" in req else 2
    if len(fds) != wanted:
        raise Refused(f"expected {wanted} descriptor(s) (log{', slot lock' if wanted == 2 else ''}), got {len(fds)}")
    if req["python"] != sys.executable:
        raise Refused(f"the job wants {req['python']}, this server runs {sys.executable}")
    if not isinstance(cwd, str) or not os.path.isabs(cwd) or not os.path.isdir(cwd):
        raise Refused("cwd must be an existing absolute folder")
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise Refused("env must map strings to strings")
    differ = sorted(k for k in set(env) | set(base_env) | set(derived) if k not in warm.RUN_ENV_KEYS | warm.NOISE_ENV_KEYS
                    and (env.get(k) not in (None, derived[k]) if k in derived else env.get(k) != base_env.get(k)))
    if differ:
        raise Refused(f"the environment differs from the fork server's in {', '.join(differ[:5])}")
    if len(env.get(procs.TOKEN_ENV, "")) != len(warm.TOKEN_PLACEHOLDER):
        raise Refused(f"{procs.TOKEN_ENV} must be a run token of {len(warm.TOKEN_PLACEHOLDER)} characters")
    return req


def peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]




# ------------------------------------------------------------------ the server


class Server:
    """Accepts requests on the runs folder's socket and forks a keeper for each."""

    def __init__(self, runs_dir: Path, idle_exit_s: float):
        self.runs_dir = runs_dir
        self.folder = warm.ensure_private_dir(runs_dir)
        self.folder_id = _identity(self.folder)
        self.idle_exit_s = idle_exit_s
        self.lock_fd = os.open(self.folder / warm.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        self.listener: socket.socket | None = None
        self.base_env = dict(os.environ)
        self.derived: dict[str, str] = {}  # variables that loading set (see `check_request`)
        self.code = ""
        self.stop = False
        self.entry: Any = None  # the loaded entry point (`load_entry`)
        self.commands: frozenset[str] = frozenset()

    def lock(self) -> bool:
        import fcntl

        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def state(self, state: str, **extra: Any) -> None:
        me = os.getpid()
        warm.write_state(self.folder, pid=me, start=procs.start_ticks(me), state=state, code=self.code,
                         python=sys.executable, updated_at=time.time(), **extra)

    def bind(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            address = warm.socket_address(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address)  # a dead server's; we hold the lock
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            old = os.umask(0o177)
            try:
                sock.bind(address)
            finally:
                os.umask(old)
        finally:
            os.close(fd)
        sock.listen(16)
        self.listener = sock

    def serve(self) -> None:
        assert self.listener is not None
        idle_since = time.monotonic()
        while not self.stop:
            _reap_keepers()
            if _identity(self.folder) != self.folder_id:
                print("forkserver: its folder was moved or deleted; exiting", flush=True)
                return
            if time.monotonic() - idle_since > self.idle_exit_s:
                print(f"forkserver: idle for {self.idle_exit_s:g} s; exiting", flush=True)
                return
            with contextlib.suppress(InterruptedError):
                ready, _, _ = select.select([self.listener], [], [], POLL_S)
                if ready:
                    conn, _ = self.listener.accept()
                    idle_since = time.monotonic()
                    with conn:
                        if not self.handle(conn):
                            return

    def handle(self, conn: socket.socket) -> bool:
        """Serve one request; False when the server must exit (its code changed on disk)."""
        fds: list[int] = []
        try:
            conn.settimeout(REQUEST_TIMEOUT_S)
            if peer_uid(conn) != os.getuid():
                raise Refused("the client is another user")
            raw, fds, flags, _ = socket.recv_fds(conn, warm.MAX_MESSAGE, 2)
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise Refused("the request is too large or has too many descriptors")
            req = check_request(raw, fds, self.runs_dir, self.base_env, self.derived, self.commands)
            if warm.code_fingerprint() != self.code:
                forked.send(conn, {"ok": False, "reason": "the fork server's code changed on disk; it exits"})
                return False
        except (Refused, OSError) as exc:
            forked.send(conn, {"ok": False, "reason": str(exc)})
            for fd in fds:
                os.close(fd)
            return True
        self.fork(conn, {**req, "derived": self.derived}, fds)
        return True

    def fork(self, conn: socket.socket, req: dict[str, Any], fds: list[int]) -> None:
        """Fork the request's keeper (a job's worker) or launcher (a run's supervisor)."""
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                assert self.listener is not None
                self.listener.close()
                os.close(self.lock_fd)
                if "supervise" in req:
                    code = forked.launcher(conn, req, fds[0])
                else:
                    code = forked.keeper(conn, req, fds[0], fds[1], self.entry)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)

    def close(self) -> None:
        if self.listener is not None:
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
            with contextlib.suppress(OSError):
                os.unlink(warm.socket_address(fd))
            os.close(fd)
            self.listener.close()
        with contextlib.suppress(OSError):
            os.unlink(self.folder / warm.STATE_NAME)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _reap_keepers() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m learngene.jobs.forkserver", description=__doc__.split("\n\n")[0])
    p.add_argument("runs_dir", type=Path)
    p.add_argument("--entry", default=warm.ENTRY,
                   help=f"the module a job's command runs, as `python -m MODULE` (default {warm.ENTRY})")
    p.add_argument("--idle-exit", type=float, default=DEFAULT_IDLE_EXIT_S,
                   help=f"exit after this many seconds without a request (default {DEFAULT_IDLE_EXIT_S:g})")
    args = p.parse_args(argv)
    if os.environ.get(procs.TOKEN_ENV) != warm.TOKEN_PLACEHOLDER:
        print(f"forkserver: start it through learngene.jobs.warm.start_server ({procs.TOKEN_ENV} must hold "
              "the placeholder)", file=sys.stderr)
        return 2
    server = Server(args.runs_dir.absolute(), args.idle_exit)
    if not server.lock():
        return 0  # another server serves this runs folder
    server.code = warm.code_fingerprint()
    server.state("starting")

    def on_signal(signum: int, _frame: Any) -> None:
        server.stop = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        loaded, server.entry = preload(args.entry)
        server.commands = frozenset(server.entry.commands())
        server.derived = {k: v for k, v in os.environ.items() if server.base_env.get(k) != v}
        server.bind()
        server.state("ready", loaded=loaded)
        print(f"forkserver: ready in {loaded['seconds']} s (pid {os.getpid()})", flush=True)
        server.serve()
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
