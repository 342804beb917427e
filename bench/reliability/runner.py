"""Fault probes: hostile inputs and faults, each reproduced with the real CLI, job system, app or library, and judged.

    python -m bench.reliability            # run every probe, print the table
    python -m bench.reliability --write    # ... and rewrite docs/reliability.md
    python -m bench.reliability --only tasks-billion,run-id-dotdot

The probes live apart from this runner: `bench/reliability/table.py` lists them as data (key, the area
they test, what they do, what is expected, the probe function); the functions are in the `probes_*.py`
modules beside it, grouped by what they test.

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
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
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
    area: str  # what it tests (one of table.AREAS)
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
            command = next((line for line in lines if "streamlit run" in line or "-m app.shared.serve" in line), None)
            if command is None:
                raise RuntimeError(f"`make -n app` shows no app command: {dry.stdout[-300:]}{dry.stderr[-300:]}")
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
    rows = [[f"`{p.key}`", p.area, _cell(p.does), _cell(p.expected), _cell(o.observed),
             o.verdict if o.good else f"**{o.verdict}**"] for p, o, _ in results]
    areas = sorted({p.area for p, _, _ in results})
    return "\n".join([
        "# Reliability",
        "",
        f"{len(results)} probes of hostile inputs and faults, each reproduced with the real CLI, job system, app or",
        "library in a temporary folder by `python -m bench.reliability` (regenerate this page with",
        "`python -m bench.reliability --write`). Each is labelled by the area it tests (column *area*): job status,",
        "run folders and ids, the journal and the app server; sizes, cards, weights and checkpoints; images,",
        "folders and split files; paths, uploads and writes (one writer per run folder, full disks, read-only",
        "folders); export and cluster addresses; messages that name the options as typed; and the shared server",
        "(links naming paths or impossible layers, names shown as text, one person's choices kept from another,",
        "exports outside the export root, loopback by default). The probes are data",
        "(`bench/reliability/table.py`), their code in `bench/reliability/probes_*.py`.",
        "",
        "Jobs, training runs, the app server and most commands run as processes of their own. Refusals that",
        "come before any work call the CLI's entry point (`learngene.cli.main`, what `python -m learngene` runs)",
        "inside the probe process, output captured and an escaping exception counted as a traceback (exit 1):",
        "that spares a torch import per probe. The full-disk and read-only probes mount small tmpfs file",
        "systems, so they need root.",
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
        f"(areas: {', '.join(areas)}).",
        "",
        md_table(["probe", "area", "what it does", "expected", "observed", "verdict"], rows),
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"rewrite {DOC.relative_to(ROOT)}")
    ap.add_argument("--only", default=None, help="comma-separated probe keys (default: all)")
    args = ap.parse_args(argv)
    from bench.reliability.table import PROBES

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

