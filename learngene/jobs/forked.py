"""What runs in the processes the fork server forks: a job's keeper and worker, and a run's supervisor.

Each becomes what its cold twin is at start (`reset_process`): its own session (process group), default
signal handlers, /dev/null as stdin, its log as stdout/stderr, the request's working directory and
exactly the request's environment, with the run's token written over the server's placeholder in its
environment block (`mark_environ`), so `/proc/<pid>/environ` proves it the run's as it proves a cold
one (`learngene.jobs.procs`). A worker also gets fresh numpy and torch random states, as a new
interpreter would. Each ends with `os._exit` after the exit handlers: it must never return into the
server's code.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from learngene.jobs import procs

EXIT_LOST = -1000  # (also `warm.EXIT_LOST`) the worker's end was seen but not its code


def send(conn: socket.socket, message: dict[str, Any]) -> bool:
    try:
        conn.send(json.dumps(message).encode())
    except OSError:
        return False
    return True


def _environ_block() -> tuple[int, int]:
    """(start, end) addresses of this process's environment block (fields 50, 51 of /proc/self/stat)."""
    data = Path("/proc/self/stat").read_bytes()
    rest = data[data.rfind(b")") + 2:].split()
    return int(rest[47]), int(rest[48])


def mark_environ(token: str) -> None:
    """Overwrite the token placeholder in this process's environment block with `token`, so that
    `/proc/<pid>/environ` (what `procs.carries_token` reads) names the run; raises RuntimeError if the
    block holds no placeholder."""
    start, end = _environ_block()
    block = Path("/proc/self/environ").read_bytes()
    needle = f"{procs.TOKEN_ENV}={procs.TOKEN_PLACEHOLDER}".encode()
    at = (b"\0" + block).find(b"\0" + needle + b"\0")
    if at < 0 or len(token) != len(procs.TOKEN_PLACEHOLDER) or start + len(block) > end:
        raise RuntimeError("the environment block holds no token placeholder")
    offset = at + len(needle) - len(procs.TOKEN_PLACEHOLDER)
    ctypes.memmove(start + offset, token.encode(), len(token))
    if f"{procs.TOKEN_ENV}={token}".encode() not in Path("/proc/self/environ").read_bytes().split(b"\0"):
        raise RuntimeError("the token did not reach /proc/self/environ")


def reset_process(req: dict[str, Any], log_fd: int, extra_env: dict[str, str]) -> None:
    """Make this forked process what a cold one is at start (see the module doc)."""
    os.setsid()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update({**extra_env, **req["env"]})
    mark_environ(req["env"][procs.TOKEN_ENV])


def run_and_exit(body: Callable[[], Any]) -> None:
    """Run `body` as a program's main; exit the process with its code (never returns)."""
    import atexit

    code: Any = 1
    try:
        code = body()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:  # as the interpreter would: the traceback to stderr, exit code 1
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(int(code or 0) & 0xFF)


def _ready(ready_w: int) -> None:
    os.write(ready_w, b"1")
    os.close(ready_w)


def worker(req: dict[str, Any], log_fd: int, slot_fd: int, ready_w: int, entry: Any) -> None:
    """Become the run's worker and run `python -m learngene <argv>` (`entry`: that module, loaded by the
    fork server, with its `main(argv)`); exits with its code."""

    def body() -> int:
        reset_process(req, log_fd, req["derived"])
        import numpy
        import torch

        numpy.random.seed()  # a cold process draws a fresh state; forked ones would share the server's
        torch.manual_seed(torch.initial_seed())  # the state a cold process starts from
        os.set_inheritable(slot_fd, True)  # as `pass_fds`: processes the worker starts keep the slot
        _ready(ready_w)
        sys.argv = [entry.__file__, *req["argv"]]
        return entry.main(list(req["argv"]))

    run_and_exit(body)


def supervisor(req: dict[str, Any], log_fd: int, ready_w: int) -> None:
    """Become the run's supervisor (`python -m learngene.jobs.supervisor <run folder>`); exits with its code."""

    def body() -> int:
        reset_process(req, log_fd, {})
        _ready(ready_w)
        from learngene.jobs import supervisor as sup

        sys.argv = [sup.__file__, req["supervise"]]
        return sup.main([req["supervise"]])

    run_and_exit(body)


def _exit_code(pid: int) -> int:
    """Wait for `pid` to end without reaping it; its code in Popen's convention."""
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            return EXIT_LOST
        except InterruptedError:
            continue
        if info is not None:
            return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _fork(child: Callable[[int], None]) -> tuple[int, int]:
    """Fork a process that runs `child(ready_w)`; returns (pid, read end of its readiness pipe)."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        child(ready_w)  # never returns
    os.close(ready_w)
    return pid, ready_r


def _wait_ready(pid: int, ready_r: int) -> dict[str, Any]:
    os.read(ready_r, 1)  # b"1": marked and in its own session; b"": it died first (its code follows)
    os.close(ready_r)
    return {"ok": True, "pid": pid, "start": procs.start_ticks(pid)}


def keeper(conn: socket.socket, req: dict[str, Any], log_fd: int, slot_fd: int, entry: Any) -> int:
    """Fork the worker (running `entry.main`), report it, wait for it, report its exit code; reap it
    after the client's ack."""
    os.setsid()

    def child(ready_w: int) -> None:
        conn.close()
        worker(req, log_fd, slot_fd, ready_w, entry)

    pid, ready_r = _fork(child)
    os.close(log_fd)
    os.close(slot_fd)
    if not send(conn, _wait_ready(pid, ready_r)):
        os.killpg(pid, signal.SIGKILL)  # the client gave up and starts it cold: no second worker
    send(conn, {"exit": _exit_code(pid)})
    with contextlib.suppress(OSError):
        conn.settimeout(None)
        conn.recv(16)  # "ack", or b"" when the client is gone
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    return 0


def launcher(conn: socket.socket, req: dict[str, Any], log_fd: int) -> int:
    """Fork the run's supervisor, report it and exit: the supervisor, like a cold one, has no parent
    that waits for it (the job manager never does)."""
    os.setsid()

    def child(ready_w: int) -> None:
        conn.close()
        supervisor(req, log_fd, ready_w)

    pid, ready_r = _fork(child)
    os.close(log_fd)
    if not send(conn, _wait_ready(pid, ready_r)):
        os.kill(pid, signal.SIGKILL)  # the manager gave up and starts one cold: no second supervisor
    return 0
