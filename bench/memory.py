"""Peak memory: the web server with the default model loaded, and training workers.

* Web server: `streamlit run app/main.py` as the Studio runs it (its own runs folder in a temporary
  directory, `LEARNGENE_ANCESTRY` = the ancestry measured). Its resident memory is read once it
  answers `/_stcore/health` (nothing loaded yet), then a headless chromium (Playwright, as the
  browser tests use) opens the home page, which loads the ancestry and draws the idea picture; once
  the page shows the learngene metric ("k of n" layers) the memory is read again. The peak is the
  kernel's high-water mark of the process (`ru_maxrss` from `wait4` after it is stopped).
* Workers: `python -m learngene train` (one task, descendant + baseline) and `python -m learngene
  sweep --batched on` (every run of the grid in one vmap-batched model), each in its own process;
  peak resident memory from `wait4`. Two reference processes show where a worker's memory goes: one
  that only imports torch, timm and learngene, one that only loads the embedded data set.

On a GPU box there is no Streamlit: run with `--workers-only` (peak host memory of the workers; the
CUDA context alone takes several hundred MiB of it).

    python -m bench.memory --threads 1                      # shipped default ancestry
    python -m bench.memory --workers-only --device cuda
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench._common import (
    ROOT,
    add_common_args,
    command_line,
    finish,
    machine_info,
    md_table,
    run_cli,
    section,
    setup,
    write_csv,
)

MiB = 2**20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--ancestry", default=None, help="ancestry checkpoint (default: assets/lg_vit_tiny.safetensors)")
    p.add_argument("--workers-only", action="store_true", help="skip the web server (no Streamlit on this machine)")
    p.add_argument("--chromium", default="/usr/bin/chromium", help="browser that opens the page (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None,
                   help="worker epochs (default: 2: memory peaks in the first epoch and its evaluation; --quick: 1)")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for the page / a worker")
    add_common_args(p, "memory")
    args = p.parse_args(argv)
    args.epochs = args.epochs or (1 if args.quick else 2)
    return args


def _status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mib(pid: int) -> tuple[float, float]:
    """(current RSS, high-water RSS) of a live process in MiB."""
    return (_status_kib(pid, "VmRSS") or 0) / 1024, (_status_kib(pid, "VmHWM") or 0) / 1024


def reap(proc: subprocess.Popen) -> tuple[int, float]:
    """Wait for `proc` with wait4: (exit status, peak RSS in MiB of it and its waited-for children)."""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_health(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer within {timeout:.0f} s")


def settled_rss(pid: int, quiet_s: float = 3.0, limit_s: float = 60.0) -> tuple[float, float]:
    """(RSS, high-water RSS) in MiB once the RSS has not grown by more than 1 MiB for `quiet_s` seconds."""
    last, since, t_end = rss_mib(pid)[0], time.monotonic(), time.monotonic() + limit_s
    while time.monotonic() < t_end and time.monotonic() - since < quiet_s:
        time.sleep(0.5)
        now = rss_mib(pid)[0]
        if now > last + 1.0:
            last, since = now, time.monotonic()
    return rss_mib(pid)


def open_home_page(url: str, chromium: str, timeout: float, server_pid: int) -> tuple[float, float, float]:
    """Open the home page in headless chromium, wait until it shows 'k of n' layers and the server's memory
    settles; returns (seconds until the page showed the model, RSS, high-water RSS in MiB)."""
    from playwright.sync_api import sync_playwright

    t0 = time.perf_counter()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.goto(url, timeout=timeout * 1000)
            page.get_by_text(re.compile(r"^\d+ of \d+$")).first.wait_for(timeout=timeout * 1000)
            seconds = time.perf_counter() - t0
            now, hwm = settled_rss(server_pid)  # the page stays open: the session is alive while measured
        finally:
            browser.close()
    return seconds, now, hwm


def measure_server(args: argparse.Namespace, ancestry: Path, tmp: Path) -> list[dict[str, Any]]:
    port = _free_port()
    env = dict(os.environ, LEARNGENE_RUNS_DIR=str(tmp / "runs"), LEARNGENE_ANCESTRY=str(ancestry),
               PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true", "--server.port",
           str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    rows = []
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_health(url, proc, args.timeout)
        time.sleep(1.0)
        now, hwm = rss_mib(proc.pid)
        rows.append({"process": "web server, started (no page open)", "rss_mib": now, "peak_mib": hwm})
        try:
            seconds, now, hwm = open_home_page(url, args.chromium, args.timeout, proc.pid)
        except Exception as exc:  # noqa: BLE001 - report and go on: the idle figure still stands
            print(f"could not open the page in chromium ({exc}); the loaded-model figure is missing")
        else:
            rows.append({"process": "web server, home page open (default model loaded)", "rss_mib": now,
                         "peak_mib": hwm, "seconds": round(seconds, 1)})
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        _code, peak = reap(proc)
        log.close()
    rows.append({"process": "web server, peak over the whole session (wait4)", "peak_mib": peak})
    return rows


def worker_commands(args: argparse.Namespace, ancestry: Path, device: str) -> list[tuple[str, list[str]]]:
    tiny = ["--test-per-class", "20", "--images-per-class", "40"] if args.quick else []
    common = ["--ancestry", str(ancestry), "--preset", "auto-paper", "--epochs", str(args.epochs),
              "--device", device, *tiny]
    data = f"images_per_class={40 if args.quick else None}"
    return [
        ("for reference: import torch, timm and learngene only",
         ["-c", "import torch, timm, learngene.models, learngene.train.trainer"]),
        ("for reference: load the shapes data set only",
         ["-c", f'from learngene.data import load_dataset; load_dataset("shapes", {data})']),
        ("worker: train, 1 task, K=10 (descendant + baseline)",
         ["-m", "learngene", "train", *common, "--tasks", "1", "--k-shot", "10"]),
        ("worker: sweep --batched on, 4 lr x 2 wd x 2 tasks (32 models in one batch)",
         ["-m", "learngene", "sweep", *common, "--tasks", "2", "--shots", "10", "--lrs", "1e-4,3e-4,1e-3,3e-3",
          "--wds", "0.05,0.5", "--batched", "on", "--eval-every", str(args.epochs)]),
    ]


def measure_worker(name: str, argv: list[str], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("LEARNGENE_RUN_DIR", None)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    t0 = time.perf_counter()
    with open(tmp / "worker.log", "a") as log:
        proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        code, peak = reap(proc)
    if code != 0:
        raise RuntimeError(f"{name} failed with exit code {code}; see {tmp / 'worker.log'}")
    return {"process": name, "peak_mib": peak, "seconds": round(time.perf_counter() - t0, 1),
            "command": shlex.join(["python", *argv])}


def main(argv: list[str] | None = None) -> int:
    from learngene.inherit.choose import default_ancestry_path

    args = parse_args(argv)
    device = setup(args)
    ancestry = Path(args.ancestry) if args.ancestry else default_ancestry_path()
    if ancestry.resolve().is_relative_to(ROOT):
        ancestry = ancestry.resolve().relative_to(ROOT)  # commands in the report read as typed in the repo
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as d:
        tmp = Path(d)
        if not args.workers_only:
            rows += measure_server(args, ancestry, tmp)
            print(f"server: {rows}")
        for name, cmd in worker_commands(args, ancestry, device.type):
            rows.append(measure_worker(name, cmd, args, tmp))
            print(f"{name}: peak {rows[-1]['peak_mib']:.0f} MiB in {rows[-1]['seconds']} s")
    table = md_table(["process", "RSS now MiB", "peak RSS MiB"],
                     [[r["process"], f"{r['rss_mib']:.0f}" if "rss_mib" in r else "",
                       f"{r['peak_mib']:.0f}"] for r in rows])
    print("\n" + table)
    info = machine_info(device)
    write_csv(f"{args.out}/memory-{device.type}.csv", [{**r, "ancestry": str(ancestry), **info} for r in rows])
    cmds = "\n".join(f"- {r['process']}: `{r['command']}`" for r in rows if "command" in r)
    body = (f"Ancestry `{ancestry}`; resident set size of each process (MiB = 2^20 bytes).\n\n{table}\n\n"
            f"Commands:\n{cmds}")
    key = f"memory-{device.type}"
    finish(args, key, section(key, f"Peak memory ({device.type})", body, command_line("bench.memory", argv), info))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
