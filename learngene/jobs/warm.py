"""Warm start, the client side: find, start, stop and ask a runs folder's fork server (no torch here).

A fork server (`python -m learngene.jobs.forkserver RUNS_DIR`, see that module) is a process of its own,
one per runs folder, that has torch, timm, the library and the shipped data loaded (and no CUDA). A
run's supervisor asks it to fork the run's worker instead of starting `python -m learngene ...`; the
worker keeps everything a cold one has (its own process group, the run's log as stdout/stderr, the
run's environment and working directory, the device slot's lock, its exit code reaching the
supervisor). Whenever the server is absent, busy starting for too long, refuses or dies, the
supervisor starts the worker cold, as before.

Its files live in `<runs>/.locks/forkserver/`, a folder of mode 0700, so only the server's user can reach
the socket:

- `server.lock`: held (`flock`) by the server for its whole life;
- `server.json`: its pid, start time and state ("starting", then "ready");
- `fork.sock`: the Unix socket (SOCK_SEQPACKET), present once the server is ready;
- `server.log`: the server's own output.

One request per connection: a JSON object `{"argv", "env", "cwd", "python"}` (argv: a learngene command
line, checked like `JobSpec`; env: the worker's full environment, which may differ from the server's
only in the run's own variables, `RUN_ENV_KEYS`) with two descriptors attached (SCM_RIGHTS): the run's
log, open for appending, and its slot lock. Answers: `{"ok": false, "reason"}`, or `{"ok": true, "pid",
"start"}` once the worker runs in its own session and carries the run's token; later `{"exit": code}`
(Popen's convention, -N for a signal), which the client acknowledges with `ack`. The worker is reaped
only after that acknowledgement (or when the client is gone), so while the supervisor has not read the
exit code the worker's pid cannot name another process, just as for a child it started itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from learngene.jobs import forked, procs, slots
from learngene.runlog import RUN_DIR_ENV, atomic_write_json, read_json

ENTRY = "learngene"
"""The module a job's command runs: `python -m learngene ARGV` cold. The fork server is told it when it
starts (`--entry`) and loads its `__main__`, whose `main(argv)` a forked worker runs and whose
`commands()` names the commands a request may ask for; the job runner itself imports no command."""
WARM_ENV = "LEARNGENE_WARM_START"  # "0": every job of a manager that is not told otherwise starts cold
PRIVATE_DIR = "forkserver"  # under the runs folder's `.locks`
SOCKET_NAME = "fork.sock"
LOCK_NAME = "server.lock"
STATE_NAME = "server.json"
LOG_NAME = "server.log"
# The server starts with this in place of a run token; a worker overwrites it in its own copy of the
# environment block (same length as `secrets.token_hex(16)`; `procs.carries_token` never accepts it).
TOKEN_PLACEHOLDER = procs.TOKEN_PLACEHOLDER
RUN_ENV_KEYS = frozenset({RUN_DIR_ENV, "LEARNGENE_RUN_ID", "LEARNGENE_DEVICE", procs.TOKEN_ENV,
                          "CUDA_VISIBLE_DEVICES", "PYTHONUNBUFFERED"})
"""The variables a request may set to values other than the server's: the run's own."""
NOISE_ENV_KEYS = frozenset({"_", "PWD", "OLDPWD", "SHLVL", "PYTEST_CURRENT_TEST"})
"""Bookkeeping of shells (and of pytest: the test running) that says nothing about how a program runs."""
ANSWER_TIMEOUT_S = 10.0  # a server that takes longer to fork is not used (the click does not hang on it)
READY_WAIT_S = 60.0  # a supervisor waits this long for a server that is still loading, then starts cold
MAX_MESSAGE = 1 << 16
EXIT_LOST = forked.EXIT_LOST  # the worker's end was seen but its exit code was lost with the server's keeper
CODE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the `learngene` package


def enabled(flag: bool | None = None) -> bool:
    """Warm start on or off: `flag` when given, else `$LEARNGENE_WARM_START` (on unless "0")."""
    return bool(flag) if flag is not None else os.environ.get(WARM_ENV, "1").strip() != "0"


def private_dir(runs_dir: str | os.PathLike) -> Path:
    return Path(runs_dir) / slots.LOCKS_DIR / PRIVATE_DIR


def ensure_private_dir(runs_dir: str | os.PathLike) -> Path:
    """The server's folder, created with mode 0700; raises OSError when it is another user's or open to others."""
    path = private_dir(runs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path):
        raise OSError(f"{path} is not a folder")
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise OSError(f"{path} must belong to this user and have mode 0700 (it has {st.st_mode & 0o777:o})")
    return path


def code_fingerprint(root: Path = CODE_ROOT) -> str:
    """A digest of the package's source files (names, sizes, modification times): a server whose code
    changed on disk after it loaded it must not start jobs with the old code."""
    h = hashlib.sha256()
    for path in sorted((root / "learngene").rglob("*.py")):
        with contextlib.suppress(OSError):
            st = path.stat()
            h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def is_running(runs_dir: str | os.PathLike) -> bool:
    """True while a fork server holds the runs folder's server lock (loading or ready)."""
    return slots.is_locked(private_dir(runs_dir) / LOCK_NAME)


def server_state(runs_dir: str | os.PathLike) -> dict[str, Any] | None:
    """server.json of a running server ({"pid", "start", "state", ...}), or None when none runs."""
    if not is_running(runs_dir):
        return None
    try:
        state = read_json(private_dir(runs_dir) / STATE_NAME)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def is_ready(runs_dir: str | os.PathLike) -> bool:
    state = server_state(runs_dir)
    return bool(state) and state.get("state") == "ready"


def server_env(base: dict[str, str]) -> dict[str, str]:
    """The server's environment: `base` (the one the manager gives a supervisor) with the token placeholder."""
    return {**base, procs.TOKEN_ENV: TOKEN_PLACEHOLDER}


def start_server(runs_dir: str | os.PathLike, env: dict[str, str], cwd: str | None = None,
                 idle_exit_s: float | None = None, wait_s: float = 5.0) -> subprocess.Popen | None:
    """Launch the runs folder's fork server with the environment `env` (a supervisor's, see
    `JobManager.warm_up`) unless one runs; returns the launched process (to be reaped by the caller) or None. Waits (at most `wait_s`) until it holds its lock, so a supervisor started
    right after sees it loading and waits for it instead of starting cold."""
    if is_running(runs_dir):
        return None
    folder = ensure_private_dir(runs_dir)
    command = [sys.executable, "-m", "learngene.jobs.forkserver", str(Path(runs_dir).absolute()), "--entry", ENTRY]
    if idle_exit_s is not None:
        command += ["--idle-exit", f"{idle_exit_s:g}"]
    with open(folder / LOG_NAME, "ab") as log:
        proc = subprocess.Popen(command, cwd=cwd, env=server_env(env), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    deadline = time.monotonic() + wait_s
    while proc.poll() is None and not is_running(runs_dir) and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def stop_server(runs_dir: str | os.PathLike, timeout: float = 10.0) -> bool:
    """SIGTERM the runs folder's fork server (SIGKILL after `timeout`); True if one was stopped. Jobs it
    forked run on: each has its own session and its own keeper process."""
    state = server_state(runs_dir)
    if not state:
        return False
    pid, start = state.get("pid"), state.get("start")
    if not procs.is_alive(pid, start) or not _is_server(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while procs.is_alive(pid, start) and time.monotonic() < deadline:
        time.sleep(0.05)
    if procs.is_alive(pid, start):
        os.kill(pid, signal.SIGKILL)
    return True


def _is_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"learngene.jobs.forkserver" in cmdline


@contextlib.contextmanager
def _folder_fd(runs_dir: str | os.PathLike):
    """The server's folder open as a descriptor: `/proc/self/fd/N/fork.sock` names the socket in under
    the 108 bytes a socket address may have, however deep the runs folder is."""
    fd = os.open(private_dir(runs_dir), os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def socket_address(folder_fd: int) -> str:
    return f"/proc/self/fd/{folder_fd}/{SOCKET_NAME}"


def worker_argv(command: list[str]) -> list[str] | None:
    """The learngene argv of a run's command `[python, -m, learngene, ...]` started by this interpreter."""
    if len(command) > 3 and command[0] == sys.executable and command[1:3] == ["-m", ENTRY]:
        return list(command[3:])
    return None


def wait_until_ready(runs_dir: str | os.PathLike, wait_s: float, keep_going: Any = None) -> bool:
    """Wait (at most `wait_s`) while a server is loading; `keep_going()` is called every 0.1 s and stops
    the wait when it returns False. True when a ready server is there."""
    deadline = time.monotonic() + wait_s
    while True:
        state = server_state(runs_dir)
        if state and state.get("state") == "ready":
            return True
        if not is_running(runs_dir):
            return False
        if time.monotonic() >= deadline or (keep_going is not None and not keep_going()):
            return False
        time.sleep(0.1)


def _ask(runs_dir: str | os.PathLike, request: dict[str, Any], fds: list[int]
         ) -> tuple[socket.socket | None, dict[str, Any] | str]:
    """Send one request; (the open connection, the server's answer {"ok", "pid", "start"}) or (None, why not)."""
    if not is_ready(runs_dir):
        return None, "no fork server is ready for this runs folder"
    data = json.dumps(request).encode()
    if len(data) > MAX_MESSAGE:
        return None, "the request is too large"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.settimeout(ANSWER_TIMEOUT_S)
        with _folder_fd(runs_dir) as fd:
            sock.connect(socket_address(fd))
        socket.send_fds(sock, [data], fds)
        answer = json.loads(sock.recv(MAX_MESSAGE) or b"null")
    except (OSError, ValueError) as exc:
        sock.close()
        return None, f"the fork server did not answer: {exc}"
    if not isinstance(answer, dict) or not answer.get("ok") or not isinstance(answer.get("pid"), int):
        sock.close()
        reason = answer.get("reason") if isinstance(answer, dict) else None
        return None, f"the fork server refused: {reason or 'no answer'}"
    sock.settimeout(None)
    return sock, answer


def launch(runs_dir: str | os.PathLike, command: list[str], env: dict[str, str], cwd: str | None,
           log_fd: int, slot_fd: int) -> tuple[WarmWorker | None, str]:
    """Ask the runs folder's fork server for the worker of `command`; (the worker, "") or (None, why not)."""
    argv = worker_argv(command)
    if argv is None:
        return None, "the command is not `python -m learngene ...` of this interpreter"
    request = {"argv": argv, "env": env, "cwd": os.path.abspath(cwd or os.getcwd()), "python": sys.executable}
    sock, answer = _ask(runs_dir, request, [log_fd, slot_fd])
    if sock is None or isinstance(answer, str):
        return None, str(answer)
    return WarmWorker(sock, answer["pid"], answer.get("start")), ""


def spawn_supervisor(runs_dir: str | os.PathLike, run_dir: str | os.PathLike, env: dict[str, str], cwd: str | None,
                     log_fd: int) -> tuple[int | None, str]:
    """Ask the runs folder's fork server for the supervisor of `run_dir` (the twin of `python -m
    learngene.jobs.supervisor RUN_DIR`, without its start-up); (its pid, "") or (None, why not)."""
    request = {"supervise": str(Path(run_dir).absolute()), "env": env, "cwd": os.path.abspath(cwd or os.getcwd()),
               "python": sys.executable}
    sock, answer = _ask(runs_dir, request, [log_fd])
    if sock is None or isinstance(answer, str):
        return None, str(answer)
    sock.close()
    return answer["pid"], ""


class WarmWorker:
    """A worker forked by the fork server, watched through its keeper's connection; quacks like the
    `subprocess.Popen` the supervisor would otherwise hold (`pid`, `returncode`, `wait`, `poll`)."""

    def __init__(self, sock: socket.socket, pid: int, start: int | None):
        self.sock: socket.socket | None = sock
        self.pid = pid
        self.start = start
        self.returncode: int | None = None

    @property
    def holds_pid(self) -> bool:
        """True while the pid is certainly the worker's: its keeper has not reaped it (no ack sent yet)."""
        return self.sock is not None

    def poll(self) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.wait(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit code once the worker has ended; raises `subprocess.TimeoutExpired` after `timeout`."""
        if self.returncode is not None:
            return self.returncode
        if self.sock is None:  # the keeper was lost: watch the worker itself
            return self._wait_orphan(timeout)
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            raise subprocess.TimeoutExpired(["forked worker"], timeout)
        try:
            message = json.loads(self.sock.recv(MAX_MESSAGE) or b"null")
        except (OSError, ValueError):
            message = None
        code = message.get("exit") if isinstance(message, dict) else None
        if isinstance(code, int) and not isinstance(code, bool):
            with contextlib.suppress(OSError):
                self.sock.send(b"ack")
            self.returncode = code
        self._close()
        return self.returncode if self.returncode is not None else self._wait_orphan(0)

    def _wait_orphan(self, timeout: float | None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while procs.is_alive(self.pid, self.start):
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(["forked worker"], timeout)
            time.sleep(0.05)
        self.returncode = EXIT_LOST
        return self.returncode

    def _close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def write_state(folder: Path, **fields: Any) -> None:
    atomic_write_json(folder / STATE_NAME, fields)
