"""The run folder: what a job is on disk, and how its files are read and written.

One folder per run, `<runs>/<run_id>/`:

| file | written by | content |
| --- | --- | --- |
| `config.json` | manager, once | the `JobSpec`, the full command line, created time, python, cwd, ticket |
| `status.json` | supervisor (and a reader that finds the supervisor gone), atomically | state, pids, times |
| `cancel_requested.json` | manager | present once a cancel was asked for |
| `log.txt` | worker (stdout + stderr) | plain text |
| `supervisor.log` | supervisor (stdout + stderr) | empty unless the supervisor itself failed |
| `metrics.jsonl`, `progress.json`, `outputs/` | worker | see `learngene.runlog` |

Status writes go through `update_status`, which holds `.status.lock` for a read-modify-write, so
the supervisor and a reader that records a verdict never overwrite each other.

Everything read back is validated (`status_problem`, `config_problem`): the files are plain JSON that a
person or a crash can spoil. A status.json that fails the check reads as the state "unreadable" with
the reason, so one spoiled run shows as such and every other run is listed normally.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from learngene.errors import ConfigError
from learngene.jobs.slots import DEVICES, Device, flocked
from learngene.runlog import PROGRESS_FILE, atomic_write_json, read_json
from learngene.text import printable

State = Literal["queued", "running", "done", "failed", "cancelled", "diverged", "unreadable"]
STATES: tuple[State, ...] = ("queued", "running", "done", "failed", "cancelled", "diverged", "unreadable")
LIVE_STATES: frozenset[str] = frozenset({"queued", "running"})
TERMINAL_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled", "diverged"})
# "unreadable" is neither: a reader's word for a status.json that fails validation; never written to it.
UNREADABLE: State = "unreadable"
RECORDED_STATES: tuple[str, ...] = tuple(s for s in STATES if s != UNREADABLE)
PID_MAX = 1 << 22  # Linux's PID_MAX_LIMIT on 64-bit: no pid is larger

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
CANCEL_FILE = "cancel_requested.json"
LOG_FILE = "log.txt"
SUPERVISOR_LOG = "supervisor.log"
OUTPUTS_DIR = "outputs"
SUPERVISOR_LOCK = ".supervisor.lock"
STATUS_LOCK = ".status.lock"

# Always used with `fullmatch`: `$` in `match` also accepts a trailing newline.
RUN_ID_RE = re.compile(r"[0-9]{8}-[0-9]{6}-[a-z][a-z0-9_]{0,31}-[0-9a-f]{6}")
_KIND_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_COMMAND_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")


@dataclass
class JobSpec:
    """What to run: `python -m learngene <argv...>` on a device, with labels for the UI.

    Attributes:
        argv: the arguments after `python -m learngene`, command name first.
        kind: a short label such as "train"; defaults to the command name.
        device: the device the run holds while it works ("cuda" is one slot, "cpu" a pool).
        name: a human label; defaults to `kind`.
        group: ties runs into one comparison, e.g. a learngene run and its baseline.
        role: the part a run plays in its group, e.g. "learngene" or "baseline".
        tags: free JSON-able labels.
        pass_run_dir: also append `--run-dir <run folder>` to argv (the env var is always set).
        owner: the public id of the person who started it in the app (None: the command line, which is
            the host's). Only the owner and the host may cancel, delete or annotate a run there.
        owner_name: that person's display name when the run started.
    """

    argv: list[str]
    kind: str = ""
    device: Device = "cpu"
    name: str = ""
    group: str | None = None
    role: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    pass_run_dir: bool = True
    owner: str | None = None
    owner_name: str | None = None

    def validated(self) -> JobSpec:
        """A checked copy with defaults filled in; raises ConfigError on bad input."""
        if not isinstance(self.argv, (list, tuple)) or not self.argv:
            raise ConfigError("JobSpec.argv must be a non-empty list: the command and its arguments")
        argv = [str(a) for a in self.argv]
        if any("\0" in a for a in argv):
            raise ConfigError("JobSpec.argv must not contain NUL characters")
        if not _COMMAND_RE.fullmatch(argv[0]):
            raise ConfigError(f"JobSpec.argv[0] must be a learngene command name, got {argv[0]!r}")
        kind = self.kind or argv[0]
        if not _KIND_RE.fullmatch(kind):
            raise ConfigError(f"JobSpec.kind must be lower-case letters, digits, '_' or '-', got {kind!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"JobSpec.device must be one of {DEVICES}, got {self.device!r}")
        for label in ("name", "group", "role", "owner", "owner_name"):
            value = getattr(self, label)
            if value is not None and (not isinstance(value, str) or len(value) > 200):
                raise ConfigError(f"JobSpec.{label} must be a string of at most 200 characters")
        try:
            tags = json.loads(json.dumps(dict(self.tags)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"JobSpec.tags must be a JSON-able dict: {exc}") from None
        return dataclasses.replace(
            self, argv=argv, kind=kind, name=self.name or kind, tags=tags, pass_run_dir=bool(self.pass_run_dir)
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        """Build from a `config.json` entry, ignoring keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class RunInfo:
    """A snapshot of one run, derived from its folder."""

    run_id: str
    path: Path
    state: State
    spec: JobSpec
    command: list[str]
    created_at: float
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    reason: str | None
    log_tail: str | None
    progress: dict[str, Any] | None
    status: dict[str, Any]
    # pid of the worker still running after its supervisor was lost (the run is finished: failed or
    # cancelled); stop it with `JobManager.cancel`. Readers never signal it.
    leftover_worker: int | None = None

    @property
    def live(self) -> bool:
        """Queued or running."""
        return self.state in LIVE_STATES

    @property
    def label(self) -> str:
        """The run's name safe to print or render (escape sequences and control characters removed)."""
        return printable(self.spec.name, 200) or self.run_id

    @property
    def duration_s(self) -> float | None:
        """Seconds the worker ran (so far, if it still runs)."""
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["path"] = str(self.path)
        out["duration_s"] = self.duration_s
        return out


def new_run_id(kind: str) -> str:
    """`YYYYmmdd-HHMMSS-<kind>-<6 hex>`: sortable, readable and unique enough with a mkdir check."""
    slug = kind.lower().replace("-", "_")[:32]
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(3)}"


def is_run_id(name: object) -> bool:
    """True if `name` is a whole run id (no trailing newline or anything else)."""
    return isinstance(name, str) and RUN_ID_RE.fullmatch(name) is not None


def resolve_run_dir(runs_dir: Path, run_id: str) -> Path:
    """The folder of `run_id` inside `runs_dir`; raises ConfigError for anything that is not a run id."""
    if not is_run_id(run_id):
        raise ConfigError(
            f"{run_id!r} is not a run id (expected e.g. 20250101-120000-train-a1b2c3); "
            "list runs with `python -m learngene jobs list`"
        )
    root = runs_dir.resolve()
    path = (root / run_id).resolve()
    if path.parent != root:
        raise ConfigError(f"run id {run_id!r} points outside the runs folder {root}")
    return path


# -- validation of what is read back ------------------------------------------------------------------
_MISSING = object()
_STATUS_FIELDS: dict[str, Literal["pid", "ticks", "exit_code", "time", "text", "flag"]] = {
    "supervisor_pid": "pid",
    "worker_pid": "pid",
    "worker_pgid": "pid",
    "supervisor_start": "ticks",
    "worker_start": "ticks",
    "exit_code": "exit_code",
    "started_at": "time",
    "ended_at": "time",
    "updated_at": "time",
    "heartbeat_at": "time",
    "heartbeat_mono": "time",
    "reason": "text",
    "log_tail": "text",
    "boot_id": "text",
    "supervisor_lost": "flag",
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    # an int is always finite (math.isfinite would overflow on one past float range)
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _field_problem(key: str, value: Any, kind: str) -> str | None:
    """What is wrong with one status field (None is always allowed: the field is not known yet)."""
    if value is None:
        return None
    if kind == "text":
        return None if isinstance(value, str) else f"{key} must be a string or null, got {_short(value)}"
    if kind == "flag":
        return None if isinstance(value, bool) else f"{key} must be true, false or null, got {_short(value)}"
    if kind == "time":
        if not _is_number(value) or value < 0:
            return f"{key} must be a time in seconds (a number >= 0), got {_short(value)}"
        return None
    if not _is_int(value):
        return f"{key} must be an integer, got {_short(value)}"
    if kind == "pid" and not 1 <= value <= PID_MAX:
        return f"{key} must be a pid from 1 to {PID_MAX}, got {value}"
    if kind == "ticks" and value < 0:
        return f"{key} must be >= 0, got {value}"
    if kind == "exit_code" and not -255 <= value <= 255:
        return f"{key} must be from -255 to 255, got {value}"
    return None


def status_problem(status: Any) -> str | None:
    """What makes a status record untrustworthy (types, ranges, known state), or None if it is valid.

    Keys this version does not know are allowed (a newer version may add some).
    """
    if not isinstance(status, dict):
        return f"must be a JSON object, got {type(status).__name__}"
    if status.get("state") not in RECORDED_STATES:
        return f"state must be one of {', '.join(RECORDED_STATES)}, got {_short(status.get('state'))}"
    for key, kind in _STATUS_FIELDS.items():
        problem = _field_problem(key, status.get(key), kind)
        if problem:
            return problem
    return None


def config_problem(config: Any) -> str | None:
    """What makes a config.json unusable (its spec, times, ticket, command), or None if it is valid."""
    if not isinstance(config, dict) or not isinstance(config.get("spec"), dict):
        return "must be a JSON object with a spec object"
    try:
        JobSpec.from_dict(config["spec"]).validated()
    except (ConfigError, TypeError, ValueError) as exc:
        return f"spec: {exc}"
    if not _is_number(config.get("created_at")):
        return f"created_at must be a time in seconds, got {_short(config.get('created_at'))}"
    if not _is_int(config.get("ticket")) or config["ticket"] < 0:
        return f"ticket must be an integer >= 0, got {_short(config.get('ticket'))}"
    command = config.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        return "command must be a non-empty list of strings"
    for key in ("grace_s", "stale_after_s"):
        if key in config and (not _is_number(config[key]) or config[key] < 0):
            return f"{key} must be a number >= 0, got {_short(config[key])}"
    if "max_cpu_jobs" in config and (not _is_int(config["max_cpu_jobs"]) or config["max_cpu_jobs"] < 1):
        return f"max_cpu_jobs must be an integer >= 1, got {_short(config['max_cpu_jobs'])}"
    for key in ("token", "cwd"):
        if config.get(key) is not None and not isinstance(config[key], str):
            return f"{key} must be a string, got {_short(config[key])}"
    return None


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's config.json, or None if the folder is not a complete, valid run."""
    try:
        cfg = read_json(run_dir / CONFIG_FILE)
    except (OSError, ValueError):
        return None
    return None if config_problem(cfg) else cfg


def unreadable(problem: str) -> dict[str, Any]:
    """The status a reader shows for a status.json it cannot trust."""
    return {"state": UNREADABLE, "reason": f"{STATUS_FILE}: {problem}"}


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's validated status.json; missing reads as queued, invalid as "unreadable" with the reason."""
    try:
        status = read_json(run_dir / STATUS_FILE, default=_MISSING)
    except ValueError as exc:  # also UnicodeDecodeError
        return unreadable(f"not valid JSON ({exc})")
    except OSError as exc:
        return unreadable(f"could not be read ({exc})")
    if status is _MISSING:  # the manager writes it right after config.json
        return {"state": "queued"}
    problem = status_problem(status)
    return unreadable(problem) if problem else status


def update_status(run_dir: Path, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
    """Read-modify-write status.json under the run's status lock; `change` returns None to keep it.

    Raises FileNotFoundError when the run folder is gone (deleted or moved).
    """
    with flocked(run_dir / STATUS_LOCK, create_parent=False):  # a vanished run folder is not recreated
        current = read_status(run_dir)
        new = change(dict(current))
        if new is None or new == current:
            return current
        new["updated_at"] = time.time()
        atomic_write_json(run_dir / STATUS_FILE, new)
        return new


def read_progress(run_dir: Path) -> dict[str, Any] | None:
    """The worker's progress.json ({"done", "total", "message"}), or None if absent or unreadable."""
    try:
        progress = read_json(run_dir / PROGRESS_FILE)
    except (OSError, ValueError):
        return None
    if not isinstance(progress, dict):
        return None
    counts = [progress.get(k) for k in ("done", "total") if progress.get(k) is not None]
    if not all(_is_number(c) and c >= 0 for c in counts):
        return None
    if not isinstance(progress.get("message", ""), (str, type(None))):
        return None
    return progress


def cancel_requested(run_dir: Path) -> bool:
    return (run_dir / CANCEL_FILE).exists()


def exit_reason(run_dir: Path, rc: int) -> str:
    """The failure reason of a worker that exited with code `rc`: the code, and the one-line `error: ...` the
    worker printed last (a full disk, a refused input), so the run's reason says what went wrong."""
    from learngene.text import printable

    errors = [line for line in tail_lines(run_dir / LOG_FILE, 40).splitlines() if line.startswith("error: ")]
    said = printable(errors[-1][len("error: "):], 300) if errors else ""
    return f"exited with code {rc}: {said}" if said else f"exited with code {rc}"


def tail_lines(path: Path, n_lines: int, max_bytes: int = 1 << 20) -> str:
    """The last `n_lines` lines of a text file (reads at most `max_bytes` from its end)."""
    if n_lines <= 0:
        return ""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            block = 8192
            while True:
                start = max(0, size - block)
                f.seek(start)
                data = f.read(size - start)
                if start == 0 or data.count(b"\n") > n_lines or block >= max_bytes:
                    break
                block *= 4
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if start > 0 and lines:
        lines = lines[1:]  # the first line read is probably cut
    return "\n".join(lines[-n_lines:])


def failure_tail(run_dir: Path, n_lines: int = 40) -> str:
    """The end of the worker log, plus the supervisor's own log when it wrote anything."""
    text = tail_lines(run_dir / LOG_FILE, n_lines)
    sup = tail_lines(run_dir / SUPERVISOR_LOG, n_lines // 2)
    if sup.strip():
        text = f"{text}\n--- supervisor.log ---\n{sup}" if text else f"--- supervisor.log ---\n{sup}"
    return text


def build_info(
    run_id: str, run_dir: Path, config: dict[str, Any], status: dict[str, Any], leftover_worker: int | None = None
) -> RunInfo:
    """Assemble a RunInfo from the files already read."""
    return RunInfo(
        run_id=run_id,
        path=run_dir,
        state=status["state"],
        spec=JobSpec.from_dict(config["spec"]),
        command=list(config.get("command", [])),
        created_at=float(config.get("created_at", 0.0)),
        started_at=status.get("started_at"),
        ended_at=status.get("ended_at"),
        exit_code=status.get("exit_code"),
        reason=status.get("reason"),
        log_tail=status.get("log_tail"),
        progress=read_progress(run_dir),
        status=status,
        leftover_worker=leftover_worker,
    )
