"""Fault probes: hostile inputs and faults, each reproduced with the real CLI, job system, app or library, and judged.

    python -m bench.reliability            # run every probe, print the table
    python -m bench.reliability --write    # ... and rewrite docs/reliability.md
    python -m bench.reliability --only tasks-billion,run-id-dotdot

The probes are the findings of the hardening issue (issue 12): one or more probes for each of its 8 "bad"
and 12 "weak" items, and one for each already-good behaviour it lists (malicious pickles via the CLI and an
upload, truncated / huge-header / empty safetensors, a wrong architecture, corrupt and wrongly typed
status.json, hostile run ids, kill -9 of worker and supervisor, concurrent writers to one journal, torn
journal lines, XSRF on, the server bound to loopback only).

Each probe builds its hostile input in a temporary folder, does the thing (runs `python -m learngene ...`
with `LEARNGENE_RUNS_DIR` / `LEARNGENE_CACHE` pointed at temporary folders, tiny settings, one thread, or,
for a refusal before any work, the same entry point `learngene.cli.main` in this process; starts and kills
real jobs; calls the app's upload code; starts the app server as `make app` does) and judges what it
observed:

- good: a clear one-line `error: ...` with the documented exit code, or the documented safe behaviour;
- weak: no crash and nothing lost, but the message misses what it must say (the option the user typed,
  a hint the user can act on) or keeps what it must not (advice to disable a check, escape codes);
- bad: a traceback, a wrong exit code, a process killed, data lost, or the safe behaviour missing.

The script exits 1 when any probe is bad or weak.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import ROOT, kill_processes_naming, machine_info, machine_text, md_table

DOC = ROOT / "docs" / "reliability.md"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGED = 0, 1, 2, 3  # as learngene.runlog documents them
TINY = ["--images-per-class", "30", "--k-shot", "2", "--test-per-class", "5", "--threads", "1", "--epochs", "1",
        "--device", "cpu"]
LONG = ["selftest", "--records", "100000", "--interval", "0.05"]  # a job that runs until stopped
HOSTILE_NAME = "\x1b[2J\x1b]0;pwned\x07evil\x9b31m\tname\x7f\u202e"
HOSTILE_LOG = "col\tumn \x1b[2J\x1b]0;pwned\x07\x9b31mred\x00\u202egone\x1b[0m\r\nnext line\n"
HOSTILE_LOG_SHOWN = "col\tumn redgone\nnext line"
FAKE_RUN_ID = "20260101-000000-train-abcdef"
REFUSED_PICKLE = "refused: this .pth contains pickled code, not only tensors; Learngene Studio loads weights only"
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass
class Outcome:
    good: bool
    observed: str
    weak: bool = False  # not good, but no crash or loss: an unclear message (see the module docstring)

    @property
    def verdict(self) -> str:
        return "good" if self.good else "weak" if self.weak else "bad"


@dataclass
class Probe:
    key: str
    item: str  # the item: "bad 1" .. "bad 8", "weak 1" .. "weak 12", or "good" (listed as already good)
    does: str
    expected: str
    fn: Callable[[Ctx], Outcome]


class Ctx:
    """A temporary world for the probes: runs folders, cache, scratch space, one tiny checkpoint, the app server."""

    def __init__(self, root: Path):
        self.root = root
        self.runs = root / "runs"
        self.cache = root / "cache"
        self._ckpt: Path | None = None
        self._server: tuple[subprocess.Popen, int] | None = None

    def scratch(self, name: str) -> Path:
        p = self.root / "scratch" / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def env(self, runs: Path | None = None) -> dict[str, str]:
        return {**os.environ, "LEARNGENE_RUNS_DIR": str(runs or self.runs), "LEARNGENE_CACHE": str(self.cache),
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

    def cli(self, *argv: str, timeout: float = 180, runs: Path | None = None) -> subprocess.CompletedProcess:
        """`python -m learngene ARGV...` as a process of its own."""
        return subprocess.run([sys.executable, "-m", "learngene", *argv], cwd=self.root, env=self.env(runs),
                              capture_output=True, text=True, timeout=timeout)

    def quick_cli(self, *argv: str) -> subprocess.CompletedProcess:
        """The same command through the CLI's entry point (`learngene.cli.main`, what `python -m learngene`
        runs) in this process: for refusals that come before any work, it spares the interpreter start and
        torch import. Output is captured; an exception escaping `main` is the traceback a process would print
        (exit 1), a SystemExit (argparse) its exit code."""
        import io
        import traceback

        from learngene.cli import main

        out, err = io.StringIO(), io.StringIO()
        with self.in_process(self.runs), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception:
                traceback.print_exc()
                code = 1
        return subprocess.CompletedProcess(["learngene", *argv], code, out.getvalue(), err.getvalue())

    @contextlib.contextmanager
    def in_process(self, runs: Path) -> Iterator[None]:
        """This process's environment pointed at the probe's folders (for the app's own code), then restored."""
        import streamlit.logger

        streamlit.logger.set_log_level("error")  # its "no runtime found" warnings: the app's code outside a server
        saved = {k: os.environ.get(k) for k in ("LEARNGENE_RUNS_DIR", "LEARNGENE_CACHE")}
        os.environ.update(LEARNGENE_RUNS_DIR=str(runs), LEARNGENE_CACHE=str(self.cache))
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def checkpoint(self) -> Path:
        """One tiny ancestry (lg_vit_tiny, depth 2, 64 classes), made once and reused."""
        if self._ckpt is None:
            import torch

            from learngene.models import ModelCard, create_model, save_checkpoint

            torch.manual_seed(0)
            vit = create_model("lg_vit_tiny", 64, depth=2)
            self._ckpt = Path(save_checkpoint(vit, self.scratch("ckpt") / "anc.safetensors",
                                              ModelCard(spec=vit.lg_spec)))
        return self._ckpt

    def manager(self, runs: Path | None = None, max_cpu_jobs: int = 2):
        from learngene.jobs import JobManager

        return JobManager(runs or self.runs, max_cpu_jobs=max_cpu_jobs, grace_s=2.0)

    def finished_run(self, name: str = "") -> str:
        from learngene.jobs import JobSpec

        mgr = self.manager()
        run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1", "--interval", "0"], name=name))
        info = mgr.wait(run_id, timeout=60)
        if info.state != "done":
            raise RuntimeError(f"the selftest run ended {info.state}: {info.reason}")
        return run_id

    def running_job(self, runs: Path, argv: list[str] = LONG, via_cli: bool = True, max_cpu_jobs: int = 2):
        """Start a job (through `jobs start` unless `via_cli` is false) and wait until its worker wrote a record."""
        from learngene.jobs import JobSpec

        mgr = self.manager(runs, max_cpu_jobs)
        if via_cli:
            start = self.cli("jobs", "start", "--", *argv, runs=runs)
            if start.returncode != 0:
                raise RuntimeError(f"jobs start failed: {start.stderr.strip()[-300:]}")
            run_id = start.stdout.strip()
        else:
            run_id = mgr.start(JobSpec(argv=list(argv)))

        def ready():
            info = mgr.get(run_id)
            if not info.live:
                raise RuntimeError(f"the job ended {info.state} before its first record: {info.reason}")
            return info if info.state == "running" and mgr.read_metrics(run_id)[0] else None

        return mgr, run_id, wait_for(ready, 60, "the job's first record")

    def server(self) -> int:
        """Start the app as `make app` does (on a free port) once; its port."""
        if self._server is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            dry = subprocess.run(["make", "-n", "app", f"PORT={port}"], cwd=ROOT, capture_output=True, text=True,
                                 timeout=60)
            lines = dry.stdout.replace("\\\n", " ").splitlines()
            command = next((line for line in lines if "streamlit run" in line), None)
            if command is None:
                raise RuntimeError(f"`make -n app` shows no streamlit command: {dry.stdout[-300:]}{dry.stderr[-300:]}")
            proc = subprocess.Popen(shlex.split(command), cwd=ROOT, env=self.env(), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            self._server = (proc, port)

            def healthy() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"the app server exited with {proc.returncode}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                        return True
                except OSError:
                    return False

            wait_for(healthy, 60, "the app server")
        return self._server[1]

    def close(self) -> None:
        """Stop the app server and every process the probes started (they name the temporary folder)."""
        if self._server is not None:
            with contextlib.suppress(OSError):
                os.killpg(self._server[0].pid, signal.SIGKILL)
            self._server[0].wait(timeout=10)
        kill_processes_naming(self.root, passes=2)
        time.sleep(0.05)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `predicate` until it returns something truthy; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def eventually(predicate: Callable[[], Any], timeout: float) -> bool:
    """True if `predicate` becomes true within `timeout` seconds."""
    try:
        return bool(wait_for(predicate, timeout, ""))
    except RuntimeError:
        return False


# ------------------------------------------------------------------ judging


def _short(text: str, n: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"


def _rc_text(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}"


def controls(text: str, keep: str = "\n") -> list[str]:
    """Control characters (C0 but `keep`, DEL, C1, bidi) in `text`: what must not reach a terminal."""
    return [c for c in text if (ord(c) < 32 and c not in keep) or 0x7f <= ord(c) <= 0x9f or c in BIDI]


def one_line_error(proc: subprocess.CompletedProcess, code: int | tuple[int, ...], *needles: str,
                   absent: tuple[str, ...] = ()) -> Outcome:
    """Good when the command exits `code` with exactly one `error: ...` line holding every needle and none of
    `absent`, and no traceback; weak when only the wording is off; bad otherwise."""
    codes = (code,) if isinstance(code, int) else code
    err = proc.stderr.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    shown = errors[0] if errors else (err[-1] if err else "(no error output)")
    clean = proc.returncode in codes and len(errors) == 1 and "Traceback" not in proc.stderr
    worded = clean and all(n in errors[0] for n in needles) and not any(a in errors[0] for a in absent)
    return Outcome(worded, f"{_rc_text(proc)}: {shown}", weak=clean and not worded)


def _judged(checks: list[tuple[bool, str]], weak_checks: list[tuple[bool, str]] = ()) -> Outcome:
    """Good when every check and weak check holds; weak when only weak checks fail; observed: what held, what not."""
    failed = [what for ok, what in checks if not ok]
    failed_weak = [what for ok, what in weak_checks if not ok]
    if not failed and not failed_weak:
        return Outcome(True, "; ".join(what for _, what in checks + list(weak_checks)))
    return Outcome(False, "NOT " + "; NOT ".join(failed + failed_weak), weak=not failed)


# ------------------------------------------------------------------ bad 1: no signal without proof; readers never kill


def probe_forged_status(ctx: Ctx) -> Outcome:
    run_id = ctx.finished_run()
    victim = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        time.sleep(0.2)
        status = {"state": "running", "supervisor_pid": 999999, "worker_pgid": victim.pid}
        (ctx.runs / run_id / "status.json").write_text(json.dumps(status))
        proc = ctx.cli("jobs", "list")
        alive = victim.poll() is None
    finally:
        victim.kill()
        victim.wait(timeout=10)
    good = proc.returncode == 0 and alive and "Traceback" not in proc.stderr
    return Outcome(good, f"{_rc_text(proc)}; victim {'alive' if alive else 'KILLED'}")


def probe_kill_supervisor(ctx: Ctx) -> Outcome:
    from learngene.jobs import procs

    runs = ctx.scratch("kill-supervisor") / "runs"
    mgr, run_id, info = ctx.running_job(runs)
    worker, start = info.status["worker_pid"], info.status["worker_start"]
    os.kill(info.status["supervisor_pid"], signal.SIGKILL)
    listing, show = ctx.cli("jobs", "list", runs=runs), ctx.cli("jobs", "show", run_id, runs=runs)
    time.sleep(0.3)
    left_alone = procs.is_alive(worker, start)
    shown = json.loads(show.stdout) if show.returncode == 0 else {}
    said = f"worker (pid {worker}) is still running" in listing.stderr and f"jobs cancel {run_id}" in listing.stderr
    cancel = ctx.cli("jobs", "cancel", run_id, runs=runs)
    stopped = eventually(lambda: not procs.is_alive(worker, start), 15)
    final = mgr.get(run_id).state
    return _judged([(listing.returncode == 0 and show.returncode == 0, "list/show exit 0"),
                    (shown.get("state") == "failed", "shown failed"),
                    (left_alone, "the readers left the worker alone"),
                    (cancel.returncode == 0 and stopped and final == "cancelled", "`jobs cancel` stopped it")],
                   [(said and shown.get("leftover_worker") == worker, "they say it still runs and how to stop it")])


def probe_kill_worker(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("kill-worker") / "runs"
    mgr, run_id, info = ctx.running_job(runs)
    os.kill(info.status["worker_pid"], signal.SIGKILL)
    info = mgr.wait(run_id, timeout=30)
    show = ctx.cli("jobs", "show", run_id, runs=runs)
    return _judged([(info.state == "failed" and info.exit_code == -9, f"state {info.state}, exit code {info.exit_code}"),
                    (show.returncode == 0, "`jobs show` exit 0")],
                   [("killed by signal 9" in (info.reason or ""), f"reason: {info.reason}")])


# ------------------------------------------------------------------ bad 2: divergence on the last step


def probe_diverge_last_step(ctx: Ctx) -> Outcome:
    proc = ctx.cli("train", "--ancestry", str(ctx.checkpoint()), "--layers", "0", *TINY, "--lr", "1e30",
                   "--run-dir", str(ctx.scratch("diverge") / "run"))
    good = proc.returncode == EXIT_DIVERGED and "diverged" in proc.stderr and "Traceback" not in proc.stderr
    last = [line for line in proc.stderr.splitlines() if "diverged" in line]
    return Outcome(good, f"{_rc_text(proc)}: {_short(last[-1] if last else proc.stderr[-200:])}")


def probe_diverge_job(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("diverge-job") / "runs"
    start = ctx.cli("jobs", "start", "--", "train", "--ancestry", str(ctx.checkpoint()), "--layers", "0", *TINY,
                    "--lr", "1e30", runs=runs)
    if start.returncode != 0:
        return one_line_error(start, EXIT_OK)
    info = ctx.manager(runs).wait(start.stdout.strip(), timeout=150)
    return Outcome(info.state == "diverged" and info.exit_code == EXIT_DIVERGED,
                   f"state {info.state}, exit code {info.exit_code}")


def probe_weight_decay_inf(ctx: Ctx) -> Outcome:
    proc = ctx.quick_cli("train", "--ancestry", str(ctx.checkpoint()), "--layers", "0", *TINY, "--weight-decay", "inf")
    if proc.returncode == EXIT_DIVERGED:  # trained and marked diverged: also a documented outcome
        return Outcome("Traceback" not in proc.stderr, f"{_rc_text(proc)}: diverged")
    return one_line_error(proc, EXIT_USAGE, "--weight-decay")


# ------------------------------------------------------------------ bad 3: one bad status.json hides nothing


def probe_mistyped_status(ctx: Ctx) -> Outcome:
    good_id, bad_id = ctx.finished_run("good"), ctx.finished_run("broken")
    (ctx.runs / bad_id / "status.json").write_text(json.dumps({"state": "running", "supervisor_pid": "abc"}))
    proc = ctx.cli("jobs", "list")
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    good = (proc.returncode == 0 and good_id in rows and bad_id in rows and "unreadable" in rows[bad_id]
            and "done" in rows[good_id] and "Traceback" not in proc.stderr)
    seen = f"good run {'listed' if good_id in rows else 'MISSING'}, broken run " \
           f"{'unreadable' if bad_id in rows and 'unreadable' in rows[bad_id] else 'NOT shown unreadable'}"
    return Outcome(good, f"{_rc_text(proc)}; {seen}")


def probe_mistyped_status_show(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("mistyped-show") / "runs"
    mgr = ctx.manager(runs)
    from learngene.jobs import JobSpec

    ids = [mgr.start(JobSpec(argv=["selftest", "--records", "1", "--interval", "0"], name=n)) for n in ("a", "b")]
    for run_id in ids:
        mgr.wait(run_id, timeout=60)
    (runs / ids[1] / "status.json").write_text(json.dumps({"state": "running", "started_at": "yesterday"}))
    show = ctx.cli("jobs", "show", ids[1], runs=runs)
    shown = json.loads(show.stdout) if show.returncode == 0 else {}
    with ctx.in_process(runs):
        from app import history  # the table of the app's Runs page

        table = history.runs_table(mgr.list())
    return _judged([(show.returncode == 0 and shown.get("state") == "unreadable", "`jobs show` exit 0, unreadable"),
                    (sorted(table["run"]) == sorted(ids) and "unreadable" in list(table["state"]),
                     "the app's runs table lists both runs")],
                   [("started_at" in (shown.get("reason") or ""), "the reason names started_at")])


def probe_corrupt_status(ctx: Ctx) -> Outcome:
    run_id = ctx.finished_run("corrupt")
    (ctx.runs / run_id / "status.json").write_bytes(b'{"state": "runn\xff')
    listing, show = ctx.cli("jobs", "list"), ctx.cli("jobs", "show", run_id)
    row = next((line for line in listing.stdout.splitlines() if run_id in line), "")
    reason = json.loads(show.stdout).get("reason", "") if show.returncode == 0 else ""
    return _judged([(listing.returncode == 0 and "unreadable" in row, "listed unreadable"),
                    (show.returncode == 0 and "Traceback" not in show.stderr, "`jobs show` exit 0")],
                   [("not valid JSON" in reason, f"reason: {_short(reason, 60)}")])


# ------------------------------------------------------------------ bad 4, 6: bounded counts; weak 4: epochs


def _missing(ctx: Ctx) -> str:
    return str(ctx.scratch("missing") / "missing.safetensors")


def probe_tasks_billion(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.quick_cli("train", "--ancestry", _missing(ctx), *TINY, "--tasks", "1000000000"),
                          EXIT_USAGE, "--tasks")


def probe_epochs_billion(ctx: Ctx) -> Outcome:
    # the last --epochs wins, as argparse reads options
    return one_line_error(ctx.quick_cli("train", "--ancestry", _missing(ctx), *TINY, "--epochs", "1000000000"),
                          EXIT_USAGE, "--epochs", "1000000000")


def probe_images_billion(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.quick_cli("data", "info", "--images-per-class", "1000000000"), EXIT_USAGE,
                          "--images-per-class", "1000000000")


def probe_image_size_huge(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.quick_cli("data", "info", "--image-size", "100000"), EXIT_USAGE, "--image-size", "100000")


# ------------------------------------------------------------------ bad 5: decompression bomb


def _png_bomb(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def probe_png_bomb(ctx: Ctx) -> Outcome:
    from PIL import Image

    root = ctx.scratch("bomb")
    for c in range(3):
        (root / f"class{c}").mkdir(exist_ok=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (40 * c, 20 * i, 0)).save(root / f"class{c}" / f"{i}.png")
    (root / "class0" / "bomb.png").write_bytes(_png_bomb(20000, 20000))
    proc = ctx.cli("data", "info", "--dataset", f"folder:{root}")
    skipped = [line for line in proc.stdout.splitlines() if "skipped" in line]
    good = proc.returncode == 0 and "skipped: class0/bomb.png" in proc.stdout and "Traceback" not in proc.stderr
    return Outcome(good, f"{_rc_text(proc)}: {_short(skipped[0] if skipped else '(nothing skipped)')}")


# ------------------------------------------------------------------ bad 7: label smoothing


def _label_smoothing(value: str) -> Callable[[Ctx], Outcome]:
    def probe(ctx: Ctx) -> Outcome:
        return one_line_error(ctx.quick_cli("train", "--ancestry", _missing(ctx), *TINY, "--label-smoothing", value),
                              EXIT_USAGE, "--label-smoothing")
    return probe


# ------------------------------------------------------------------ bad 8: unusable paths


def probe_runs_dir_file(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("jobs", "--runs-dir", "/etc/passwd", "list"), EXIT_USAGE,
                          "--runs-dir /etc/passwd is a file")


def probe_runs_dir_file_start(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("jobs", "--runs-dir", "/etc/passwd", "start", "--", "selftest"), EXIT_USAGE,
                          "--runs-dir /etc/passwd is a file")


def probe_save_models_file(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.quick_cli("train", "--ancestry", _missing(ctx), *TINY, "--save-models", "/etc/passwd"),
                          EXIT_USAGE, "--save-models /etc/passwd is a file")


def probe_out_under_proc(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.quick_cli("inherit", "--ancestry", _missing(ctx), "--out", "/proc/nope/x.safetensors"),
                          EXIT_USAGE, "/proc/nope cannot be created")


# ------------------------------------------------------------------ weak 1: the runs folder deleted or renamed


def probe_runs_deleted(ctx: Ctx) -> Outcome:
    from learngene.jobs import JobSpec, procs

    runs = ctx.scratch("runs-deleted") / "runs"
    mgr, first, info = ctx.running_job(runs, via_cli=False, max_cpu_jobs=1)
    worker, start = info.status["worker_pid"], info.status["worker_start"]
    deadline = time.monotonic() + 10
    while runs.exists():  # the worker may write a file while the tree goes
        try:
            shutil.rmtree(runs)
        except OSError:
            if time.monotonic() > deadline:
                raise
    second = mgr.start(JobSpec(argv=LONG))  # recreates the folder and a fresh slot lock
    stopped = eventually(lambda: not procs.is_alive(worker, start), 20)
    alone = eventually(lambda: [i.run_id for i in mgr.list(state="running")] == [second], 30)
    trace = (runs / first).exists()
    mgr.cancel(second)
    return _judged([(stopped, "the first job stopped once its folder was gone"),
                    (alone, "the next job then ran alone (the 1-slot limit held)"),
                    (not trace, "nothing of the first job in the new folder")])


def probe_runs_renamed(ctx: Ctx) -> Outcome:
    from learngene.jobs import procs
    from learngene.jobs.runs import read_status

    runs = ctx.scratch("runs-renamed") / "runs"
    mgr, run_id, info = ctx.running_job(runs, via_cli=False, max_cpu_jobs=1)
    worker, start = info.status["worker_pid"], info.status["worker_start"]
    moved = runs.with_name("moved")
    os.rename(runs, moved)
    stopped = eventually(lambda: not procs.is_alive(worker, start), 20)
    final = eventually(lambda: read_status(moved / run_id).get("state") not in ("queued", "running"), 20)
    status = read_status(moved / run_id)
    stray = eventually(lambda: not (runs / run_id).exists(), 10)
    return _judged([(stopped, "the job stopped"),
                    (final and status.get("state") == "failed", "recorded failed in the moved folder"),
                    (stray, "no run folder recreated at the old place")],
                   [("moved or deleted" in (status.get("reason") or ""), "the reason says the folder moved")])


# ------------------------------------------------------------------ weak 2, 7 and good: uploads through the app's code


class _Upload:
    """What `st.file_uploader` hands over: a name and the bytes."""

    def __init__(self, name: str, data: bytes):
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


def _good_weights() -> bytes:
    import torch
    from safetensors.torch import save

    from learngene.models import create_model

    torch.manual_seed(0)
    model = create_model("lg_resnet_mini", 8, img_size=32)
    return save({k: v.contiguous() for k, v in model.state_dict().items()})


def probe_upload_same_second(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("upload-same") / "runs"
    good = _good_weights()
    with ctx.in_process(runs):
        from app import ancestries

        t0 = time.strftime("%Y%m%d-%H%M%S")
        first = ancestries.import_upload([_Upload("model.safetensors", good)], "lg_resnet_mini", 8, 32)
        try:
            ancestries.import_upload([_Upload("model.safetensors", b"not weights")], "lg_resnet_mini", 8, 32)
            refused = False
        except Exception:  # any refusal; the point is what it leaves behind
            refused = True
        second = ancestries.import_upload([_Upload("model.safetensors", good)], "lg_resnet_mini", 8, 32)
        same = time.strftime("%Y%m%d-%H%M%S") == t0
        kept = sorted(ancestries.uploaded_ancestries())
    outcome = _judged([(refused, "the bad upload refused"),
                       (first.is_file(), "the earlier good import kept"),
                       (first.parent != second.parent and kept == sorted([first, second]),
                        "each import in its own folder")])
    outcome.observed += " (all in one second)" if same else " (across a second boundary)"
    return outcome


def probe_upload_long_name(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("upload-long") / "runs"
    name = "m" * 238 + ".safetensors"  # 250 characters
    with ctx.in_process(runs):
        from app import ancestries

        try:
            path = ancestries.import_upload([_Upload(name, _good_weights())], "lg_resnet_mini", 8, 32)
        except Exception as exc:
            return Outcome(False, f"refused: {type(exc).__name__}: {exc}")
    longest = max(len(p.name) for p in path.parents[:2]) if path else 0
    return Outcome(path.is_file() and path.suffix == ".safetensors" and len(path.name) <= 255,
                   f"stored as a {len(path.name)}-character {path.suffix} name (folder name {longest} characters)")


class _CallsCode:
    """Pickles as a call of os.getcwd: harmless, but code all the same."""

    def __reduce__(self):
        return (os.getcwd, ())


class _LocalClass:
    """Pickles as a reference to a class the loader does not know: torch's own message for it has ANSI codes."""


def _evil_pth(path: Path, payload: object) -> Path:
    import torch

    torch.save({"weight": torch.zeros(2), "payload": payload}, path)
    return path


def probe_pickle_upload(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("upload-pickle") / "runs"
    data = _evil_pth(ctx.scratch("upload-pickle") / "evil.pth", _CallsCode()).read_bytes()
    with ctx.in_process(runs):
        from app import ancestries, config
        from learngene.errors import LearngeneError

        try:
            ancestries.import_upload([_Upload("evil.pth", data)], "lg_resnet_mini", 8, 32)
            return Outcome(False, "ACCEPTED")
        except LearngeneError as exc:
            msg = str(exc)
        left = list(config.uploads_dir().iterdir()) if config.uploads_dir().is_dir() else []
    worded = REFUSED_PICKLE in msg and "weights_only" not in msg and "\x1b" not in msg
    return Outcome(worded and not left, f"{_short(msg, 90)}; {len(left)} folder(s) left",
                   weak=not worded and not left)


# ------------------------------------------------------------------ weak 3, 6 and good: checkpoints the CLI refuses


def _pickle_probe(payload: Callable[[], object]) -> Callable[[Ctx], Outcome]:
    def probe(ctx: Ctx) -> Outcome:
        path = _evil_pth(ctx.scratch("pickle") / f"evil-{payload.__name__}.pth", payload())
        proc = ctx.quick_cli("models", "layers", str(path), "--arch", "lg_resnet_mini", "--num-classes", "8")
        return one_line_error(proc, (EXIT_USAGE, EXIT_FAILED), REFUSED_PICKLE,
                              absent=("weights_only", "\x1b", "corrupt"))
    return probe


def probe_folder_named_safetensors(ctx: Ctx) -> Outcome:
    folder = ctx.scratch("folder") / "x.safetensors"
    folder.mkdir(exist_ok=True)
    return one_line_error(ctx.quick_cli("models", "layers", str(folder)), (EXIT_USAGE, EXIT_FAILED), "is a directory",
                          absent=("does not exist",))


def _models_layers_error(make: Callable[[Path], None], name: str, *extra: str, needles: tuple[str, ...] = (),
                         absent: tuple[str, ...] = ()) -> Callable[[Ctx], Outcome]:
    def probe(ctx: Ctx) -> Outcome:
        path = ctx.scratch(name) / f"{name}.safetensors"
        make(path)
        return one_line_error(ctx.quick_cli("models", "layers", str(path), *extra), (EXIT_USAGE, EXIT_FAILED), path.name,
                              *needles, absent=absent)
    return probe


def _with_card(ctx: Ctx, path: Path) -> None:
    shutil.copy(ctx.checkpoint().with_suffix(".json"), path.with_suffix(".json"))


def probe_truncated(ctx: Ctx) -> Outcome:
    src = ctx.checkpoint()

    def make(path: Path) -> None:
        data = src.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        _with_card(ctx, path)
    return _models_layers_error(make, "truncated")(ctx)


NO_CARD = ("--arch", "lg_vit_tiny", "--num-classes", "64", "--set", "depth=2")  # loaded strictly, without a card


def probe_empty(ctx: Ctx) -> Outcome:
    return _models_layers_error(lambda path: path.write_bytes(b""), "empty", *NO_CARD)(ctx)


def probe_huge_header(ctx: Ctx) -> Outcome:
    # a safetensors file starts with the 8-byte length of its JSON header: here 2**62 bytes
    make = (lambda path: path.write_bytes((1 << 62).to_bytes(8, "little") + b'{"a": 1}'))  # noqa: E731
    return _models_layers_error(make, "huge-header", *NO_CARD)(ctx)


def probe_wrong_arch(ctx: Ctx) -> Outcome:
    proc = ctx.quick_cli("models", "layers", str(ctx.checkpoint()), "--arch", "lg_resnet_mini", "--num-classes", "64")
    return one_line_error(proc, (EXIT_USAGE, EXIT_FAILED), "does not fit lg_resnet_mini")


# ------------------------------------------------------------------ weak 8, 9, 10: messages name what the user can type


def probe_n_way_one(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.quick_cli("train", "--n-way", "1", "--epochs", "1", "--device", "cpu",
                                  "--images-per-class", "30"), EXIT_USAGE, "--n-way must be at least 2",
                          absent=("num_classes",))


def probe_condense_hint(ctx: Ctx) -> Outcome:
    proc = ctx.quick_cli("condense", "--ancestry", str(ctx.checkpoint()), "--images-per-class", "30", "--no-pd-cache",
                   "--device", "cpu", "--out", str(ctx.scratch("condense") / "sim.json"))
    return one_line_error(proc, (EXIT_USAGE, EXIT_FAILED), "--set holdout_per_class=N")


def probe_sha_mismatch_hint(ctx: Ctx) -> Outcome:
    def make(path: Path) -> None:
        from safetensors.torch import load_file, save_file

        save_file({k: v + 1 if v.is_floating_point() else v for k, v in load_file(ctx.checkpoint()).items()},
                  str(path))
        _with_card(ctx, path)
    return _models_layers_error(make, "changed", needles=("Restore the original",),
                                absent=("verify=False",))(ctx)


def probe_missing_card_hint(ctx: Ctx) -> Outcome:
    bare = ctx.scratch("bare") / "bare.safetensors"
    shutil.copy(ctx.checkpoint(), bare)
    proc = ctx.quick_cli("train", "--ancestry", str(bare), "--layers", "0", "--epochs", "1", "--device", "cpu")
    return one_line_error(proc, (EXIT_USAGE, EXIT_FAILED), "bare.json", "python -m learngene accumulate",
                          "models layers PATH --arch ARCH", absent=("(--arch) instead",))


def probe_accumulate_one_epoch(ctx: Ctx) -> Outcome:
    out = ctx.scratch("accumulate") / "a.safetensors"
    proc = ctx.cli("accumulate", "--arch", "lg_resnet_mini", "--images-per-class", "8", "--holdout-per-class", "2",
                   "--epochs", "1", "--batch-size", "256", "--device", "cpu", "--out", str(out))
    if proc.returncode != 0:
        return one_line_error(proc, EXIT_OK)  # judged bad; shows the error
    card = json.loads(out.with_suffix(".json").read_text())
    warmup = card.get("extra", {}).get("train_config", {}).get("warmup_epochs")
    return Outcome(warmup == 0 and "Traceback" not in proc.stderr,
                   f"{_rc_text(proc)}: checkpoint saved, warmup_epochs = {warmup}")


# ------------------------------------------------------------------ weak 5: control characters; weak 11 and good: run ids


def probe_ansi_name(ctx: Ctx) -> Outcome:
    start = ctx.cli("jobs", "start", "--name", HOSTILE_NAME, "--", "selftest", "--records", "1", "--interval", "0")
    if start.returncode != 0:
        return one_line_error(start, EXIT_OK)
    run_id = start.stdout.strip()
    state = ctx.manager().wait(run_id, timeout=60).state
    listing = ctx.cli("jobs", "list")
    row = next((line for line in listing.stdout.splitlines() if run_id in line), "")
    shown = controls(start.stdout + listing.stdout)
    good = state == "done" and listing.returncode == 0 and row.endswith(" evil name") and not shown
    return Outcome(good, f"run {state}; listed as {row.split()[-2:] if row else 'MISSING'}; "
                         f"{len(shown)} control characters printed")


def probe_tail_controls(ctx: Ctx) -> Outcome:
    run_id = ctx.finished_run("tail")
    with open(ctx.runs / run_id / "log.txt", "a", encoding="utf-8") as f:  # what a worker could print
        f.write(HOSTILE_LOG)
    proc = ctx.cli("jobs", "tail", run_id, "-n", "3")
    shown = controls(proc.stdout, keep="\n\t")
    return _judged([(proc.returncode == 0 and "Traceback" not in proc.stderr, "exit 0"),
                    (not shown, f"{len(shown)} control characters printed")],
                   [(HOSTILE_LOG_SHOWN in proc.stdout, "the log's lines and tab kept")])


def probe_run_id_newline(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("jobs", "show", FAKE_RUN_ID + "\n"), EXIT_USAGE, "is not a run id")


def probe_run_id_dotdot(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("jobs", "show", "../x"), EXIT_USAGE, "is not a run id")


def probe_hostile_run_ids(ctx: Ctx) -> Outcome:
    decoy = ctx.root / "decoy"  # beside the runs folder, shaped like a finished run
    decoy.mkdir(exist_ok=True)
    (decoy / "config.json").write_text("{}")
    (decoy / "status.json").write_text('{"state": "done"}')
    ids = ["../decoy", "../../etc", "/etc/passwd", "a/b", "20260101-000000-train-zzzzzz"]
    results = [(run_id, action, ctx.cli("jobs", action, run_id)) for run_id in ids
               for action in ("show", "cancel", "delete", "tail")]
    outcomes = [one_line_error(proc, EXIT_USAGE) for _, _, proc in results]
    wrong = [f"{action} {run_id!r}: {o.observed}" for (run_id, action, _), o in zip(results, outcomes, strict=True)
             if not o.good]
    intact = (decoy / "config.json").is_file() and Path("/etc/passwd").is_file()
    return Outcome(not wrong and intact, f"{len(results) - len(wrong)} of {len(results)} refused in one line; "
                   f"{'nothing outside the runs folder touched' if intact else 'a file outside the runs folder was REMOVED'}"
                   + (f"; {_short(wrong[0], 60)}" if wrong else ""))


# ------------------------------------------------------------------ weak 12 and good: the journal of finished runs


def _entry(i: int, who: str = "a") -> dict[str, Any]:
    return {"identity": [who, i], "fingerprint": f"{who}{i}", "final_acc": 0.5}


def probe_journal_repair_locked(ctx: Ctx) -> Outcome:
    import fcntl

    from learngene.descend.journal import RunJournal

    path = ctx.scratch("journal-lock") / "journal.jsonl"
    journal = RunJournal(path)
    journal.append([_entry(0)])
    loaded: list = []
    with open(path, "a") as f:  # an appender in the middle of its line, holding the journal's lock
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write('{"identity": ["a", 1], ')
        f.flush()
        reader = threading.Thread(target=lambda: loaded.append(journal.load()), daemon=True)
        reader.start()
        reader.join(0.5)
        waited = reader.is_alive()  # an unlocked load() would have "repaired" the line inside the record
        f.write('"fingerprint": "a1"}\n')
        f.flush()
    reader.join(10)
    lines = path.read_text().splitlines()
    intact = [json.loads(line).get("fingerprint") for line in lines] == ["a0", "a1"]
    return _judged([(waited, "load() waited for the appender's lock"),
                    (intact and loaded and len(loaded[0]) == 2, "both records whole, no newline inside one")])


def _append_many(path: str, who: str, n: int) -> None:
    from learngene.descend.journal import RunJournal

    journal = RunJournal(path)
    for i in range(n):
        journal.append([_entry(i, who)])


def probe_journal_concurrent(ctx: Ctx) -> Outcome:
    import multiprocessing

    from learngene.descend.journal import RunJournal

    path = ctx.scratch("journal-many") / "journal.jsonl"
    forked = multiprocessing.get_context("fork")
    writers = [forked.Process(target=_append_many, args=(str(path), f"w{k}", 40)) for k in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    lines = path.read_text().splitlines()
    whole = sum(1 for line in lines if line.startswith("{") and line.endswith("}"))
    found = RunJournal(path).load()
    return _judged([(all(w.exitcode == 0 for w in writers), "4 writer processes x 40 appends"),
                    (len(lines) == whole == 160 and len(found) == 160, f"{len(found)} of 160 records read back whole")])


def probe_journal_torn(ctx: Ctx) -> Outcome:
    from learngene.descend.journal import RunJournal

    path = ctx.scratch("journal-torn") / "journal.jsonl"
    journal = RunJournal(path)
    journal.append([_entry(0)])
    with open(path, "a") as f:  # a study killed in the middle of its append
        f.write('{"identity": ["a", 1], "fingerp')
    first = journal.load()
    journal.append([_entry(2)])
    second = journal.load()
    return _judged([(set(first) == {(("a", 0), "a0")}, "the cut line skipped"),
                    (set(second) == {(("a", 0), "a0"), (("a", 2), "a2")}, "the next append starts its own line")])


# ------------------------------------------------------------------ good: the app server


def probe_xsrf(ctx: Ctx) -> Outcome:
    port = ctx.server()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/_stcore/upload_file/session/file", data=b"x",
                                 method="PUT")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return Outcome(False, f"an upload without an XSRF token got HTTP {r.status}")
    except urllib.error.HTTPError as exc:
        code, body = exc.code, exc.read()[:100].decode(errors="replace")
    return Outcome(code == 403 and "XSRF" in body, f"an upload without an XSRF token got HTTP {code}: {_short(body, 60)}")


def _listening(port: int) -> list[str]:
    """The local addresses with a listening TCP socket on `port` (from /proc/net/tcp and tcp6)."""
    out = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port and len(address) == width:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if width == 8:
                    out.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    out.append(socket.inet_ntop(socket.AF_INET6, words))
    return out


def probe_loopback(ctx: Ctx) -> Outcome:
    port = ctx.server()
    addresses = _listening(port)
    loopback = all(a.startswith("127.") or a == "::1" for a in addresses)
    return Outcome(bool(addresses) and loopback, f"`make app` listens on {', '.join(addresses) or 'nothing'}")


PROBES: list[Probe] = [
    # bad 1: a status file can make a read-only command kill any process group; readers never kill
    Probe("forged-status", "bad 1", "status.json of a finished run names a foreign process group; `jobs list`",
          "exit 0, the foreign process survives", probe_forged_status),
    Probe("kill-supervisor", "bad 1; good", "kill -9 of a job's supervisor; `jobs list`, `jobs show`, then "
          "`jobs cancel`", "failed; the readers leave the (token-proven) worker running and say how to stop it; "
          "`jobs cancel` stops it", probe_kill_supervisor),
    # bad 2: divergence on the last step
    Probe("diverge-last-step", "bad 2", "`train --lr 1e30 --epochs 1` (diverges on the only step)",
          "exit 3, says diverged", probe_diverge_last_step),
    Probe("diverge-job", "bad 2", "the same `train --lr 1e30` as a job (`jobs start`)", "state diverged, exit code 3",
          probe_diverge_job),
    Probe("weight-decay-inf", "bad 2", "`train --weight-decay inf`",
          "exit 2 naming --weight-decay before any work (or exit 3, diverged)", probe_weight_decay_inf),
    # bad 3: one wrongly typed field in one status.json hides every run
    Probe("mistyped-status", "bad 3; good", "status.json with `supervisor_pid: \"abc\"` beside a good run; `jobs list`",
          "exit 0, the run shown unreadable, the other listed", probe_mistyped_status),
    Probe("mistyped-status-show", "bad 3", "status.json with `started_at: \"yesterday\"`; `jobs show` and the app's "
          "runs table", "exit 0, unreadable with the reason; the table lists every run", probe_mistyped_status_show),
    # bad 4, 6: bounded counts
    Probe("tasks-billion", "bad 4", "`train --tasks 1000000000`", "exit 2, one-line error naming --tasks",
          probe_tasks_billion),
    Probe("image-size-huge", "bad 4", "`data info --image-size 100000`", "exit 2, one-line error naming --image-size",
          probe_image_size_huge),
    # bad 5: a decompression bomb
    Probe("png-bomb", "bad 5", "a 20000×20000 PNG (a few bytes) in a `folder:` data set; `data info`",
          "exit 0, the file skipped and counted", probe_png_bomb),
    Probe("images-billion", "bad 6", "`data info --images-per-class 1000000000`",
          "exit 2, one-line error naming --images-per-class and the bound", probe_images_billion),
    # bad 7: label smoothing
    Probe("label-smoothing-5", "bad 7", "`train --label-smoothing 5`", "exit 2, one-line error naming the option",
          _label_smoothing("5")),
    Probe("label-smoothing-nan", "bad 7", "`train --label-smoothing nan`", "exit 2, one-line error naming the option",
          _label_smoothing("nan")),
    # bad 8: unusable paths
    Probe("runs-dir-file", "bad 8", "`jobs --runs-dir /etc/passwd list`", "exit 2, one-line error naming the path",
          probe_runs_dir_file),
    Probe("runs-dir-file-start", "bad 8", "`jobs --runs-dir /etc/passwd start -- selftest`",
          "exit 2, one-line error naming the path", probe_runs_dir_file_start),
    Probe("save-models-file", "bad 8", "`train --save-models /etc/passwd`", "exit 2, one-line error before any work",
          probe_save_models_file),
    Probe("out-under-proc", "bad 8", "`inherit --out /proc/nope/x.safetensors`",
          "exit 2, one-line error before any work", probe_out_under_proc),
    # weak 1: the runs folder deleted or renamed under a running job
    Probe("runs-deleted", "weak 1", "the runs folder deleted under a running job (1 cpu slot); a second job started",
          "the first job stops; the second runs alone", probe_runs_deleted),
    Probe("runs-renamed", "weak 1", "the runs folder renamed under a running job",
          "the job stops; failed, with the reason, in the moved folder; nothing at the old place", probe_runs_renamed),
    # weak 2, 7: uploads
    Probe("upload-same-second", "weak 2", "two good uploads and a failing one, same name, within a second "
          "(the app's import code)", "each in its own folder; the failing one removes nothing else",
          probe_upload_same_second),
    Probe("upload-long-name", "weak 7", "an upload with a 250-character name", "stored under a shortened name",
          probe_upload_long_name),
    # weak 3: the malicious-pickle message (and good: refused at all)
    Probe("pickle-pth", "weak 3; good", "a `.pth` whose pickle calls a function; `models layers`",
          "one-line refusal (pickled code), no weights_only advice, nothing run", _pickle_probe(_CallsCode)),
    Probe("pickle-pth-class", "weak 3", "a `.pth` whose pickle names an unknown class; `models layers`",
          "the same refusal, no ANSI codes", _pickle_probe(_LocalClass)),
    Probe("pickle-upload", "good", "the function-calling `.pth` uploaded through the app's import code",
          "refused with the same message; nothing stored", probe_pickle_upload),
    # weak 4: epochs
    Probe("epochs-billion", "weak 4", "`train --epochs 1000000000`", "exit 2, one-line error naming --epochs",
          probe_epochs_billion),
    # weak 5: control characters in user strings
    Probe("ansi-name", "weak 5", "`jobs start --name` with ANSI/OSC escapes and controls; `jobs list`",
          "run done, listed as `evil name`, no control characters printed", probe_ansi_name),
    Probe("tail-controls", "weak 5", "a run log with ANSI/OSC escapes, C1, NUL and bidi controls; `jobs tail`",
          "no control characters printed; lines and tabs kept", probe_tail_controls),
    # weak 6: a directory named like a checkpoint
    Probe("folder-safetensors", "weak 6", "a directory named `x.safetensors`; `models layers`",
          "one-line error: is a directory", probe_folder_named_safetensors),
    # weak 8, 9: hints name what the user can type
    Probe("n-way-1", "weak 8", "`train --n-way 1`", "exit 2, one-line error naming --n-way", probe_n_way_one),
    Probe("condense-hint", "weak 9", "`condense --images-per-class 30` (too few images to hold some out)",
          "one-line error suggesting `--set holdout_per_class=N`", probe_condense_hint),
    Probe("sha-mismatch-hint", "weak 9", "a checkpoint whose weights changed after saving (card kept); "
          "`models layers`", "one-line error saying to restore the original, no `verify=False`",
          probe_sha_mismatch_hint),
    Probe("missing-card-hint", "weak 9", "`train --ancestry` of a checkpoint without its card",
          "one-line error naming commands `train` users can run", probe_missing_card_hint),
    # weak 10: accumulate's default warmup
    Probe("accumulate-1-epoch", "weak 10", "`accumulate --epochs 1` (default warmup 2 epochs)",
          "exit 0, warmup clamped to 0", probe_accumulate_one_epoch),
    # weak 11 and good: run ids
    Probe("run-id-newline", "weak 11", "`jobs show` of a run id with a trailing newline", "exit 2, one-line error",
          probe_run_id_newline),
    Probe("run-id-dotdot", "good", "`jobs show ../x`", "exit 2, one-line error", probe_run_id_dotdot),
    Probe("hostile-run-ids", "good", "`jobs show/cancel/delete/tail` of `../../etc`, `/etc/passwd`, `a/b` and an "
          "unknown id", "each exit 2, one-line error", probe_hostile_run_ids),
    # weak 12 and good: the journal
    Probe("journal-repair-locked", "weak 12", "the journal's `load()` while another study is mid-append (lock held)",
          "waits for the lock; no record split", probe_journal_repair_locked),
    Probe("journal-concurrent", "good", "4 processes appending to one journal at once",
          "every record whole and read back", probe_journal_concurrent),
    Probe("journal-torn", "good", "a journal whose last line was cut by a kill; load, append, load",
          "the cut line skipped; the next record on its own line", probe_journal_torn),
    # good: checkpoints
    Probe("truncated-safetensors", "good", "a checkpoint cut in half (its card kept); `models layers`",
          "one-line error", probe_truncated),
    Probe("huge-header-safetensors", "good", "a `.safetensors` whose header claims 2^62 bytes; `models layers`",
          "one-line error", probe_huge_header),
    Probe("empty-safetensors", "good", "an empty `.safetensors` without a card; `models layers FILE --arch ...`",
          "one-line error", probe_empty),
    Probe("wrong-architecture", "good", "a lg_vit_tiny checkpoint loaded as `--arch lg_resnet_mini`",
          "one-line error", probe_wrong_arch),
    # good: job faults
    Probe("kill-worker", "good", "kill -9 of a job's worker", "failed, killed by signal 9", probe_kill_worker),
    Probe("corrupt-status", "good", "status.json cut mid-write (invalid UTF-8 and JSON); `jobs list`, `jobs show`",
          "exit 0, the run shown unreadable with the reason", probe_corrupt_status),
    # good: the app server
    Probe("xsrf-on", "good", "the app started as `make app`; an upload request without the XSRF token",
          "HTTP 403 (XSRF protection on)", probe_xsrf),
    Probe("loopback-only", "good", "the app started as `make app`; its listening sockets",
          "bound to 127.0.0.1 only", probe_loopback),
]


def run_probe(probe: Probe, ctx: Ctx) -> tuple[Outcome, float]:
    t0 = time.perf_counter()
    try:
        outcome = probe.fn(ctx)
    except Exception as exc:  # the probe itself broke: that is a bad outcome too, with the reason
        outcome = Outcome(False, f"probe failed: {type(exc).__name__}: {exc}")
    outcome.observed = _short(outcome.observed.replace(str(ctx.root), "$TMP"), 150)
    return outcome, time.perf_counter() - t0


def run_probes(probes: list[Probe], root: Path | None = None, log: Callable[[str], None] = print
               ) -> list[tuple[Probe, Outcome, float]]:
    with tempfile.TemporaryDirectory(prefix="lg-reliability-") as tmp:
        ctx = Ctx(Path(root or tmp))
        results = []
        try:
            for probe in probes:
                outcome, secs = run_probe(probe, ctx)
                log(f"{outcome.verdict.upper() if not outcome.good else 'good':4s}  {probe.key:24s} {secs:5.1f}s  "
                    f"{outcome.observed}")
                results.append((probe, outcome, secs))
        finally:
            ctx.close()
        return results


def _cell(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")


def report(results: list[tuple[Probe, Outcome, float]], machine: str, wall_s: float) -> str:
    counts = {v: sum(o.verdict == v for _, o, _ in results) for v in ("good", "weak", "bad")}
    rows = [[f"`{p.key}`", p.item, _cell(p.does), _cell(p.expected), _cell(o.observed),
             o.verdict if o.good else f"**{o.verdict}**"] for p, o, _ in results]
    order = {"bad": 0, "weak": 1, "good": 2}
    items = sorted({part.strip() for p, _, _ in results for part in p.item.split(";")},
                   key=lambda s: (order.get(s.split()[0], 3), int(s.split()[1]) if len(s.split()) > 1 else 0))
    return "\n".join([
        "# Reliability",
        "",
        f"{len(results)} probes of hostile inputs and faults, each reproduced with the real CLI, job system, app or",
        "library in a temporary folder by `python -m bench.reliability` (regenerate this page with",
        "`python -m bench.reliability --write`). They are the findings named in the hardening issue (issue 12):",
        "one or more probes for each of its 8 *bad* and 12 *weak* items (column *issue*: `bad N`, `weak N`), and",
        "one for each behaviour it lists as already good (`good`): malicious pickles via the CLI and an upload,",
        "truncated, huge-header and empty safetensors, a wrong architecture, corrupt and wrongly typed",
        "status.json, hostile run ids, kill -9 of worker and supervisor, concurrent writers to one journal, torn",
        "journal lines repaired, XSRF on, the server bound to loopback only. The issue's original 73 probes were",
        "not published; this is the set it names.",
        "",
        "Jobs, training runs, the app server and most commands run as processes of their own. Refusals that",
        "come before any work call the CLI's entry point (`learngene.cli.main`, what `python -m learngene` runs)",
        "inside the probe process, output captured and an escaping exception counted as a traceback (exit 1):",
        "that spares a torch import per probe, and the whole set runs in about a minute on 2 cores.",
        "",
        "A probe is *good* when it ends in a clear one-line `error: ...` with the documented exit code",
        "(2 = usage, 1 = failed, 3 = diverged), or in the documented safe behaviour; *weak* when nothing",
        "crashes and nothing is lost but the message misses what it must say (the option the user typed, a",
        "hint they can act on) or keeps what it must not (advice to disable a check, escape codes); *bad* on a",
        "traceback, a wrong exit code, a process killed, data lost or the safe behaviour missing. The script",
        "exits 1 when any probe is bad or weak.",
        "",
        f"Machine: {machine}; {wall_s:.0f} s in all.",
        "",
        f"**{counts['good']} good, {counts['weak']} weak, {counts['bad']} bad, {len(results)} probes** "
        f"(issue items covered: {', '.join(items)}).",
        "",
        md_table(["probe", "issue", "what it does", "expected", "observed", "verdict"], rows),
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"rewrite {DOC.relative_to(ROOT)}")
    ap.add_argument("--only", default=None, help="comma-separated probe keys (default: all)")
    args = ap.parse_args(argv)
    probes = PROBES
    if args.only:
        keys = args.only.split(",")
        unknown = set(keys) - {p.key for p in PROBES}
        if unknown:
            ap.error(f"unknown probe(s): {', '.join(sorted(unknown))}")
        probes = [p for p in PROBES if p.key in keys]
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    results = run_probes(probes)
    text = report(results, machine_text(machine_info("cpu")), time.perf_counter() - t0)
    not_good = [f"{p.key} ({o.verdict})" for p, o, _ in results if not o.good]
    print(f"{len(results) - len(not_good)} good, {len(not_good)} not good" +
          (f": {', '.join(not_good)}" if not_good else ""))
    if args.write:
        DOC.write_text(text)
        print(f"wrote {DOC}")
    return 1 if not_good else 0


if __name__ == "__main__":
    sys.exit(main())
