"""Fault probes: hostile inputs and faults, each reproduced with the real CLI or library, and judged.

    python -m bench.reliability            # run every probe, print the table
    python -m bench.reliability --write    # ... and rewrite docs/reliability.md
    python -m bench.reliability --only tasks-billion,run-id-dotdot

Each probe is a small function that builds its hostile input in a temporary folder, runs
`python -m learngene ...` there (with `LEARNGENE_RUNS_DIR` / `LEARNGENE_CACHE` pointed at temporary
folders, tiny settings, one thread) and returns what it observed and whether that is *good*: a clear
one-line `error: ...` with the documented exit code, or the documented safe behaviour. Anything else
(a traceback, a wrong exit code, a process killed, data lost) is *bad*, and the script exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench._common import ROOT, machine_info, machine_text, md_table

DOC = ROOT / "docs" / "reliability.md"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGED = 0, 1, 2, 3  # as learngene.runlog documents them
TINY = ["--images-per-class", "30", "--k-shot", "2", "--test-per-class", "5", "--threads", "1", "--epochs", "1",
        "--device", "cpu"]
HOSTILE_NAME = "\x1b[2J\x1b]0;pwned\x07evil\x9b31m\tname\x7f\u202e"
FAKE_RUN_ID = "20260101-000000-train-abcdef"


@dataclass
class Outcome:
    good: bool
    observed: str


@dataclass
class Probe:
    key: str
    does: str
    expected: str
    fn: Callable[[Ctx], Outcome]


class Ctx:
    """A temporary world for the probes: runs folder, cache, scratch space, one tiny checkpoint."""

    def __init__(self, root: Path):
        self.root = root
        self.runs = root / "runs"
        self.cache = root / "cache"
        self._ckpt: Path | None = None

    def scratch(self, name: str) -> Path:
        p = self.root / "scratch" / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "LEARNGENE_RUNS_DIR": str(self.runs), "LEARNGENE_CACHE": str(self.cache),
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

    def cli(self, *argv: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "learngene", *argv], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

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

    def manager(self):
        from learngene.jobs import JobManager

        return JobManager(self.runs, max_cpu_jobs=2)

    def finished_run(self, name: str = "") -> str:
        from learngene.jobs import JobSpec

        mgr = self.manager()
        run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1", "--interval", "0"], name=name))
        info = mgr.wait(run_id, timeout=60)
        if info.state != "done":
            raise RuntimeError(f"the selftest run ended {info.state}: {info.reason}")
        return run_id


# ------------------------------------------------------------------ judging


def _short(text: str, n: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"


def _rc_text(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}"


def one_line_error(proc: subprocess.CompletedProcess, code: int | tuple[int, ...], *needles: str) -> Outcome:
    """Good when the command exits `code` with exactly one `error: ...` line holding every needle, no traceback."""
    codes = (code,) if isinstance(code, int) else code
    err = proc.stderr.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    shown = errors[0] if errors else (err[-1] if err else "(no error output)")
    good = (proc.returncode in codes and len(errors) == 1 and "Traceback" not in proc.stderr
            and all(n in errors[0] for n in needles))
    return Outcome(good, f"{_rc_text(proc)}: {shown}")


# ------------------------------------------------------------------ the probes


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


def probe_diverge_last_step(ctx: Ctx) -> Outcome:
    proc = ctx.cli("train", "--ancestry", str(ctx.checkpoint()), "--layers", "0", *TINY, "--lr", "1e30",
                   "--run-dir", str(ctx.scratch("diverge") / "run"))
    good = proc.returncode == EXIT_DIVERGED and "diverged" in proc.stderr and "Traceback" not in proc.stderr
    last = [line for line in proc.stderr.splitlines() if "diverged" in line]
    return Outcome(good, f"{_rc_text(proc)}: {_short(last[-1] if last else proc.stderr[-200:])}")


def _missing(ctx: Ctx) -> str:
    return str(ctx.scratch("missing") / "missing.safetensors")


def probe_tasks_billion(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("train", "--ancestry", _missing(ctx), *TINY, "--tasks", "1000000000"),
                          EXIT_USAGE, "--tasks")


def probe_images_billion(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("data", "info", "--images-per-class", "1000000000"), EXIT_USAGE,
                          "images", "1000000000")


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


def _label_smoothing(value: str) -> Callable[[Ctx], Outcome]:
    def probe(ctx: Ctx) -> Outcome:
        return one_line_error(ctx.cli("train", "--ancestry", _missing(ctx), *TINY, "--label-smoothing", value),
                              EXIT_USAGE, "label_smoothing")
    return probe


def probe_runs_dir_file(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("jobs", "--runs-dir", "/etc/passwd", "list"), EXIT_USAGE,
                          "--runs-dir /etc/passwd is a file")


def probe_save_models_file(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("train", "--ancestry", _missing(ctx), *TINY, "--save-models", "/etc/passwd"),
                          EXIT_USAGE, "--save-models /etc/passwd is a file")


def probe_out_under_proc(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("inherit", "--ancestry", _missing(ctx), "--out", "/proc/nope/x.safetensors"),
                          EXIT_USAGE, "/proc/nope cannot be created")


class _CallsCode:
    """Pickles as a call of os.getcwd: harmless, but code all the same."""

    def __reduce__(self):
        return (os.getcwd, ())


def probe_pickle_pth(ctx: Ctx) -> Outcome:
    import torch

    path = ctx.scratch("pickle") / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": _CallsCode()}, path)
    return one_line_error(ctx.cli("models", "layers", str(path), "--arch", "lg_resnet_mini", "--num-classes", "8"),
                          (EXIT_USAGE, EXIT_FAILED), "pickled code")


def probe_folder_named_safetensors(ctx: Ctx) -> Outcome:
    folder = ctx.scratch("folder") / "x.safetensors"
    folder.mkdir(exist_ok=True)
    return one_line_error(ctx.cli("models", "layers", str(folder)), (EXIT_USAGE, EXIT_FAILED), "is a directory")


def probe_n_way_one(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("train", "--n-way", "1", "--epochs", "1", "--device", "cpu",
                                  "--images-per-class", "30"), EXIT_USAGE, "--n-way must be at least 2")


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


def probe_run_id_newline(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("jobs", "show", FAKE_RUN_ID + "\n"), EXIT_USAGE)


def probe_ansi_name(ctx: Ctx) -> Outcome:
    start = ctx.cli("jobs", "start", "--name", HOSTILE_NAME, "--", "selftest", "--records", "1", "--interval", "0")
    if start.returncode != 0:
        return one_line_error(start, EXIT_OK)
    run_id = start.stdout.strip()
    state = ctx.manager().wait(run_id, timeout=60).state
    listing = ctx.cli("jobs", "list")
    row = next((line for line in listing.stdout.splitlines() if run_id in line), "")
    controls = [c for c in start.stdout + listing.stdout if c != "\n" and (ord(c) < 32 or 0x7f <= ord(c) <= 0x9f)]
    good = state == "done" and listing.returncode == 0 and row.endswith(" evil name") and not controls
    return Outcome(good, f"run {state}; listed as {row.split()[-2:] if row else 'MISSING'}; "
                         f"{len(controls)} control characters printed")


def _models_layers_error(make: Callable[[Path], None], name: str, *extra: str) -> Callable[[Ctx], Outcome]:
    def probe(ctx: Ctx) -> Outcome:
        path = ctx.scratch(name) / f"{name}.safetensors"
        make(path)
        return one_line_error(ctx.cli("models", "layers", str(path), *extra), (EXIT_USAGE, EXIT_FAILED), path.name)
    return probe


def probe_truncated(ctx: Ctx) -> Outcome:
    src = ctx.checkpoint()

    def make(path: Path) -> None:
        data = src.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        shutil.copy(src.with_suffix(".json"), path.with_suffix(".json"))
    return _models_layers_error(make, "truncated")(ctx)


def probe_empty(ctx: Ctx) -> Outcome:
    # no card: loaded strictly as --arch, so the safetensors reader itself meets the empty file
    return _models_layers_error(lambda path: path.write_bytes(b""), "empty", "--arch", "lg_vit_tiny",
                                "--num-classes", "64", "--set", "depth=2")(ctx)


def probe_wrong_arch(ctx: Ctx) -> Outcome:
    proc = ctx.cli("models", "layers", str(ctx.checkpoint()), "--arch", "lg_resnet_mini", "--num-classes", "64")
    return one_line_error(proc, (EXIT_USAGE, EXIT_FAILED))


def probe_run_id_dotdot(ctx: Ctx) -> Outcome:
    return one_line_error(ctx.cli("jobs", "show", "../x"), EXIT_USAGE)


PROBES: list[Probe] = [
    Probe("forged-status", "status.json of a finished run names a foreign process group; `jobs list`",
          "exit 0, the foreign process survives", probe_forged_status),
    Probe("mistyped-status", "status.json with `supervisor_pid: \"abc\"` beside a good run; `jobs list`",
          "exit 0, the run shown unreadable, the other listed", probe_mistyped_status),
    Probe("diverge-last-step", "`train --lr 1e30 --epochs 1` (diverges on the only step)",
          "exit 3, says diverged", probe_diverge_last_step),
    Probe("tasks-billion", "`train --tasks 1000000000`", "exit 2, one-line error naming --tasks",
          probe_tasks_billion),
    Probe("images-billion", "`data info --images-per-class 1000000000`",
          "exit 2, one-line error naming the bound", probe_images_billion),
    Probe("png-bomb", "a 20000×20000 PNG (a few bytes) in a `folder:` data set; `data info`",
          "exit 0, the file skipped and counted", probe_png_bomb),
    Probe("label-smoothing-5", "`train --label-smoothing 5`", "exit 2, one-line error", _label_smoothing("5")),
    Probe("label-smoothing-nan", "`train --label-smoothing nan`", "exit 2, one-line error",
          _label_smoothing("nan")),
    Probe("runs-dir-file", "`jobs --runs-dir /etc/passwd list`", "exit 2, one-line error naming the path",
          probe_runs_dir_file),
    Probe("save-models-file", "`train --save-models /etc/passwd`", "exit 2, one-line error before any work",
          probe_save_models_file),
    Probe("out-under-proc", "`inherit --out /proc/nope/x.safetensors`", "exit 2, one-line error before any work",
          probe_out_under_proc),
    Probe("pickle-pth", "a `.pth` whose pickle calls a function; `models layers`",
          "one-line refusal (pickled code), nothing run", probe_pickle_pth),
    Probe("folder-safetensors", "a directory named `x.safetensors`; `models layers`",
          "one-line error: is a directory", probe_folder_named_safetensors),
    Probe("n-way-1", "`train --n-way 1`", "exit 2, one-line error naming --n-way", probe_n_way_one),
    Probe("accumulate-1-epoch", "`accumulate --epochs 1` (default warmup 2 epochs)",
          "exit 0, warmup clamped to 0", probe_accumulate_one_epoch),
    Probe("run-id-newline", "`jobs show` of a run id with a trailing newline", "exit 2, one-line error",
          probe_run_id_newline),
    Probe("ansi-name", "`jobs start --name` with ANSI/OSC escapes and controls; `jobs list`",
          "run done, listed as `evil name`, no control characters printed", probe_ansi_name),
    Probe("truncated-safetensors", "a checkpoint cut in half (its card kept); `models layers`", "one-line error",
          probe_truncated),
    Probe("empty-safetensors", "an empty `.safetensors` without a card; `models layers FILE --arch ...`", "one-line error", probe_empty),
    Probe("wrong-architecture", "a lg_vit_tiny checkpoint loaded as `--arch lg_resnet_mini`",
          "one-line error", probe_wrong_arch),
    Probe("run-id-dotdot", "`jobs show ../x`", "exit 2, one-line error", probe_run_id_dotdot),
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
        for probe in probes:
            outcome, secs = run_probe(probe, ctx)
            log(f"{'good' if outcome.good else 'BAD '}  {probe.key:24s} {secs:5.1f}s  {outcome.observed}")
            results.append((probe, outcome, secs))
        return results


def _cell(text: str) -> str:
    return text.replace("\n", " ")


def report(results: list[tuple[Probe, Outcome, float]], machine: str, wall_s: float) -> str:
    n_good = sum(o.good for _, o, _ in results)
    rows = [[f"`{p.key}`", _cell(p.does), _cell(p.expected), _cell(o.observed), "good" if o.good else "**bad**"]
            for p, o, _ in results]
    return "\n".join([
        "# Reliability",
        "",
        "Hostile inputs and faults, each reproduced with the real CLI or library in a temporary folder by",
        "`python -m bench.reliability` (regenerate this page with `python -m bench.reliability --write`).",
        "A probe is *good* when it ends in a clear one-line `error: ...` with the documented exit code",
        "(2 = usage, 1 = failed, 3 = diverged), or in the documented safe behaviour; it is *bad* on a",
        "traceback, a wrong exit code, a process killed or data lost. The script exits 1 when any probe is bad.",
        "",
        f"Machine: {machine}; {wall_s:.0f} s in all.",
        "",
        f"**{n_good} good, {len(results) - n_good} bad, {len(results)} probes.**",
        "",
        md_table(["probe", "what it does", "expected", "observed", "verdict"], rows),
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
    bad = [p.key for p, o, _ in results if not o.good]
    print(f"{len(results) - len(bad)} good, {len(bad)} bad" + (f": {', '.join(bad)}" if bad else ""))
    if args.write:
        DOC.write_text(text)
        print(f"wrote {DOC}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
