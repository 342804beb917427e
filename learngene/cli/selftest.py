"""`python -m learngene selftest`: a tiny worker that exercises the job contract without torch.

It writes `--records` metric records to `$LEARNGENE_RUN_DIR/metrics.jsonl` (or `--run-dir`), one
every `--interval` seconds, keeps progress.json current, and can spawn a child process (its pid
goes to `outputs/child.pid`), ignore SIGTERM, or end with any exit code (3 = diverged). With
`--torch-threads` it also imports torch and runs parallel operations (what a forked worker must still
be able to do), writing the thread counts it saw to `outputs/torch.json`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from learngene.errors import ConfigError
from learngene.runlog import (
    EXIT_DIVERGED,
    METRICS_FILE,
    PROGRESS_FILE,
    JsonlWriter,
    atomic_write_json,
    run_dir_from_env,
)

NAME = "selftest"
HELP = (
    "diagnostic worker used by the job tests: writes N metric records, optionally spawns a child, "
    "sleeps, or diverges"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--records", type=int, default=5, help="metric records to write (default 5)")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between records")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to sleep after the records")
    parser.add_argument("--spawn-child", action="store_true", help="start a long-sleeping child process")
    parser.add_argument("--ignore-sigterm", action="store_true", help="ignore SIGTERM (tests SIGKILL escalation)")
    parser.add_argument("--diverge", action="store_true", help="write a NaN loss and exit 3 (diverged)")
    parser.add_argument("--exit-code", type=int, default=0, help="exit code to end with (default 0)")
    parser.add_argument("--run-dir", type=Path, default=None, help="run folder (default: $LEARNGENE_RUN_DIR)")
    parser.add_argument("--torch-threads", type=int, default=None, metavar="N",
                        help="import torch, set N threads (0: torch's default), run parallel operations and write "
                             "the thread counts to outputs/torch.json")


def _spawn_child(run_dir: Path) -> int:
    """A child in this process group that sleeps long; its pid is written to outputs/child.pid."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    out = run_dir / "outputs"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "child.pid", child.pid)
    print(f"selftest: child pid {child.pid}", flush=True)
    return child.pid


def _torch_check(run_dir: Path, threads: int) -> None:
    """Parallel torch operations with `threads` threads (0: the default); the counts go to outputs/torch.json."""
    import torch

    default = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    a = torch.randn(512, 512)
    total = float((a @ a).sum()) + float(torch.nn.functional.conv2d(torch.randn(8, 3, 64, 64), torch.randn(16, 3, 3, 3)).sum())
    out = run_dir / "outputs"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "torch.json", {"default_threads": default, "threads": torch.get_num_threads(),
                                           "finite": total == total, "os_threads": len(os.listdir("/proc/self/task"))})
    print(f"selftest: torch ran with {torch.get_num_threads()} threads (default {default})", flush=True)


def run(args: argparse.Namespace) -> int:
    run_dir = args.run_dir or run_dir_from_env()
    if run_dir is None:
        raise ConfigError("selftest needs a run folder: start it with `jobs start` or pass --run-dir")
    if args.records < 0 or args.interval < 0 or args.sleep < 0:
        raise ConfigError("--records, --interval and --sleep must be >= 0")
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(f"selftest: pid {os.getpid()} writing {args.records} records to {run_dir}", flush=True)
    if args.torch_threads is not None:
        _torch_check(Path(run_dir), args.torch_threads)
    child_pid = _spawn_child(run_dir) if args.spawn_child else None
    with JsonlWriter(Path(run_dir) / METRICS_FILE) as metrics:
        for i in range(args.records):
            loss = 1.0 / (i + 1)
            metrics.write({"step": i, "loss": loss, "time": time.time(), "child_pid": child_pid})
            atomic_write_json(
                Path(run_dir) / PROGRESS_FILE,
                {"done": i + 1, "total": args.records, "message": f"record {i + 1}/{args.records}"},
            )
            print(f"selftest: record {i + 1}/{args.records} loss={loss:.4f}", flush=True)
            time.sleep(args.interval)
        if args.diverge:
            metrics.write({"step": args.records, "loss": float("nan"), "time": time.time()})
            print("selftest: loss is NaN, giving up", flush=True)
            return EXIT_DIVERGED
    time.sleep(args.sleep)
    atomic_write_json(Path(run_dir) / "outputs" / "selftest.json", {"records": args.records})
    print(f"selftest: finished, exit code {args.exit_code}", flush=True)
    return args.exit_code
