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
import contextlib
import json
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
from dataclasses import dataclass, field
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
    p.add_argument("--folder-images", type=int, default=None, metavar="N",
                   help="also measure `data info`, a train worker and an accumulate worker on a folder of N images "
                        "made from the shapes images (default: 100,000 on the CPU, --quick 5,000; 0 on a GPU box, "
                        "where host memory is the same; 0 = skip)")
    p.add_argument("--before", default=None, metavar="CHECKOUT",
                   help="also run the comparable commands in this checkout (e.g. `git worktree add /tmp/old "
                        "COMMIT`): the before column")
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


@dataclass
class Worker:
    """One measured process: its command, extra environment, the most memory it may use (MiB), and whether
    `--before` runs it in the older checkout too."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    limit_mib: float | None = None
    compare: bool = False


def worker_commands(args: argparse.Namespace, ancestry: Path, device: str) -> list[Worker]:
    tiny = ["--test-per-class", "20", "--images-per-class", "40"] if args.quick else []
    common = ["--ancestry", str(ancestry), "--preset", "auto-paper", "--epochs", str(args.epochs),
              "--device", device, *tiny]
    data = f"images_per_class={40 if args.quick else None}"
    return [
        Worker("for reference: import torch, timm and learngene only",
               ["-c", "import torch, timm, learngene.models, learngene.train.trainer"]),
        Worker("for reference: load the shapes data set only",
               ["-c", f'from learngene.data import load_dataset; load_dataset("shapes", {data})'], compare=True),
        Worker("worker: train, 1 task, 5-way K=10 (descendant + baseline)",
               ["-m", "learngene", "train", *common, "--tasks", "1", "--k-shot", "10"], limit_mib=1024, compare=True),
        Worker("worker: sweep --batched on, 4 lr x 2 wd x 2 tasks (32 models in one batch)",
               ["-m", "learngene", "sweep", *common, "--tasks", "2", "--shots", "10", "--lrs", "1e-4,3e-4,1e-3,3e-3",
                "--wds", "0.05,0.5", "--batched", "on", "--eval-every", str(args.epochs)]),
    ]


def folder_commands(args: argparse.Namespace, ancestry: Path, device: str, folder: Path, split: Path,
                    tmp: Path) -> list[Worker]:
    """The commands on the generated folder, each with its own fresh cache (first: index and decode)."""
    n = f"{args.folder_images:,}"
    spec = f"folder:{folder}"
    cache = {"LEARNGENE_CACHE": str(tmp / "cache")}
    return [
        Worker(f"data info, {n}-image folder, first time (indexes it)",
               ["-m", "learngene", "data", "info", "--dataset", spec], cache, 1536, compare=True),
        Worker(f"data info, {n}-image folder, again (index from the cache)",
               ["-m", "learngene", "data", "info", "--dataset", spec], cache, 1536, compare=True),
        Worker(f"worker: train, 1 task, 5-way K=10, on the {n}-image folder (its split file: the ancestry's)",
               ["-m", "learngene", "train", "--ancestry", str(ancestry), "--preset", "auto-paper", "--epochs",
                str(args.epochs), "--device", device, "--tasks", "1", "--k-shot", "10", "--dataset", spec,
                "--split-file", str(split)], cache, 1536, compare=True),
        Worker(f"worker: accumulate, 1 epoch on the {n}-image folder's base classes (a 1-block ViT, batch 256)",
               ["-m", "learngene", "accumulate", "--arch", "lg_vit_tiny", "--set", "depth=1", "--set", "embed_dim=64",
                "--set", "num_heads=2", "--set", "patch_size=8", "--dataset", spec, "--epochs", "1",
                "--batch-size", "256", "--holdout-per-class", str(min(100, args.folder_images // 500)),
                "--device", device, "--out", str(tmp / "anc.safetensors")],
               cache, 1536, compare=True),
        Worker(f"data info, {n}-image folder at --image-size 64 (decoded: {_gib(args.folder_images, 64)} GiB)",
               ["-m", "learngene", "data", "info", "--dataset", spec, "--image-size", "64"], cache, 1536,
               compare=True),
        Worker(f"data info, {n}-image folder at --img-size 224 (decoded: {_gib(args.folder_images, 224)} GiB)",
               ["-m", "learngene", "data", "info", "--dataset", spec, "--img-size", "224"], cache, 1536),
        Worker(f"worker: accumulate, 1 epoch on the {n}-image folder's base classes at --img-size 64 (as above)",
               ["-m", "learngene", "accumulate", "--arch", "lg_vit_tiny", "--set", "depth=1", "--set", "embed_dim=64",
                "--set", "num_heads=2", "--set", "patch_size=8", "--dataset", spec, "--img-size", "64", "--epochs",
                "1", "--batch-size", "256", "--holdout-per-class", str(min(100, args.folder_images // 500)),
                "--device", device, "--out", str(tmp / "anc64.safetensors")],
               cache, 1536),
    ]


def _gib(n: int, size: int) -> str:
    return f"{n * 3 * size * size / 2**30:.1f}"


def _write_class(job: tuple[Path, int, list[int]]) -> int:
    """Write the PNG files of one class of the folder (runs in a pool process)."""
    import torch
    from PIL import Image

    from learngene.data import load_dataset

    sub, c, picks = job
    ds = load_dataset("shapes")
    idx = (ds.labels == c).nonzero().flatten()[torch.tensor(picks, dtype=torch.long)]
    sub.mkdir(parents=True, exist_ok=True)
    for j, img in enumerate(ds.take(idx).permute(0, 2, 3, 1).numpy()):
        Image.fromarray(img).save(sub / f"{j:05d}.png", compress_level=1)
    return len(idx)


def make_folder(root: Path, n_images: int) -> tuple[Path, Path]:
    """An image folder of `n_images` PNG files made from the embedded shapes set (100 classes named as its
    classes; image j of a class is shapes image j mod 600 of that class), and a split file holding the
    shapes split by class name (so that the shipped ancestries' split binds it)."""
    from concurrent.futures import ProcessPoolExecutor

    from learngene.data import load_dataset

    ds = load_dataset("shapes")  # makes the cache the pool processes read
    per = n_images // ds.num_classes
    jobs = [(root / ds.class_names[c], c, [j % 600 for j in range(per)]) for c in range(ds.num_classes)]
    with ProcessPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        written = sum(pool.map(_write_class, jobs))
    split = root.parent / "split.json"
    names = {p: [ds.class_names[c] for c in ds.split.classes(p)] for p in ("base", "open", "novel")}
    split.write_text(json.dumps({"base": names["base"], "open_world": names["open"], "novel": names["novel"]}))
    print(f"wrote {written} images into {root}")
    return root, split


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree_pss_mib(pid: int) -> float:
    """Proportional set size of `pid` and all its descendants (DataLoader workers), MiB: shared pages are
    shared out, so the sum is the memory the tree really holds."""
    kids, todo, total = _children(), [pid], 0
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total / 1024


def measure_worker(worker: Worker, args: argparse.Namespace, tmp: Path, cwd: Path = ROOT) -> dict[str, Any]:
    """Run one command; peak RSS from wait4 and the peak PSS of it and its workers, sampled every 0.1 s."""
    env = dict(os.environ)
    env.pop("LEARNGENE_RUN_DIR", None)
    env.update(worker.env)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    t0 = time.perf_counter()
    pss = 0.0
    with open(tmp / "worker.log", "a") as log:
        log.write(f"\n=== {worker.name} (in {cwd})\n")
        log.flush()
        proc = subprocess.Popen([sys.executable, *worker.argv], cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            pss = max(pss, tree_pss_mib(proc.pid))
            time.sleep(0.1)
    code = proc.returncode = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = (tmp / "worker.log").read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"{worker.name} failed with exit code {code}: {' / '.join(tail)}")
    return {"process": worker.name, "peak_mib": usage.ru_maxrss / 1024, "pss_mib": pss,
            "seconds": round(time.perf_counter() - t0, 1), "limit_mib": worker.limit_mib,
            "command": shlex.join(["python", *worker.argv])}


def _fmt(v: Any) -> str:
    return "" if v is None else f"{v:.0f}"


def _table(rows: list[dict[str, Any]], has_before: bool) -> str:
    head = ["process", "RSS now MiB", "peak RSS MiB", "peak PSS with its workers MiB", "limit MiB", "met"]
    if has_before:
        head.insert(2, "before: peak RSS MiB")
    body_rows = []
    for r in rows:
        limit = r.get("limit_mib")
        row = [r["process"], _fmt(r.get("rss_mib")), _fmt(r["peak_mib"]), _fmt(r.get("pss_mib")), _fmt(limit),
               "" if limit is None else ("yes" if r["peak_mib"] <= limit else "NO")]
        if has_before:
            row.insert(2, _fmt(r.get("before_mib")) if "before_mib" in r else "")
        body_rows.append(row)
    return md_table(head, body_rows)


def _body(args: argparse.Namespace, ancestry: Path, before: Path | None, rows: list[dict[str, Any]],
          table: str) -> str:
    cmds = "\n".join(f"- {r['process']}: `{r['command']}`" for r in rows if "command" in r)
    folder_note = (f"The {args.folder_images:,}-image folder is made for the run from the embedded shapes images "
                   "(100 classes, PNG files of 32 px) in a temporary folder, with a fresh cache (`LEARNGENE_CACHE`) "
                   "shared by its rows in order: the first `data info` indexes it (checks every file's header), "
                   "later commands read the index; a streamed folder decodes only the images a command uses, "
                   "into its decoded-image cache on disk. " if args.folder_images else "")
    before_note = (f"*before*: the same command run from the checkout `{args.before}` (commit "
                   f"{_commit(before)}), with its own fresh cache. " if before is not None else "")
    return (f"Ancestry `{ancestry}`; peak resident set size of each process from `wait4` (MiB = 2^20 bytes), and "
            "the peak proportional set size of the process and its DataLoader workers together, sampled every "
            "0.1 s (shared pages shared out). *limit*: the most the process may use: 1,024 MiB for a `train` "
            "worker on the shapes set, 1,536 MiB (1.5 GiB) for a command on the folder (memory grows with the "
            "batch, not with the data set). With torch's CUDA wheel, a process's last moments (the CUDA "
            "libraries' static destructors) map about 125 MiB of library pages: the `wait4` peak of a short "
            "command is often its exit. " + folder_note + before_note +
            f"\n\n{table}\n\nCommands:\n{cmds}")


def main(argv: list[str] | None = None) -> int:
    from learngene.inherit.choose import default_ancestry_path

    args = parse_args(argv)
    device = setup(args)
    if args.folder_images is None:
        args.folder_images = (5_000 if args.quick else 100_000) if device.type == "cpu" else 0
    ancestry = Path(args.ancestry) if args.ancestry else default_ancestry_path()
    if ancestry.resolve().is_relative_to(ROOT):
        ancestry = ancestry.resolve().relative_to(ROOT)  # commands in the report read as typed in the repo
    before = Path(args.before).resolve() if args.before else None
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as d:
        tmp = Path(d)
        if not args.workers_only:
            rows += measure_server(args, ancestry, tmp)
            print(f"server: {rows}")
        workers = worker_commands(args, ancestry, device.type)
        if args.folder_images:
            folder, split = make_folder(tmp / "imgs", args.folder_images)
            workers += folder_commands(args, ancestry.resolve(), device.type, folder, split, tmp / "now")
        for w in workers:
            rows.append(measure_worker(w, args, tmp))
            print(f"{w.name}: peak {rows[-1]['peak_mib']:.0f} MiB (tree PSS {rows[-1]['pss_mib']:.0f}) "
                  f"in {rows[-1]['seconds']} s")
            if before is not None and w.compare:
                old = Worker(w.name, w.argv, {k: v.replace(str(tmp / "now"), str(tmp / "before"))
                                              for k, v in w.env.items()}, w.limit_mib)
                if "--out" in old.argv:
                    old.argv = [a.replace(str(tmp / "now"), str(tmp / "before")) for a in old.argv]
                try:
                    rows[-1]["before_mib"] = measure_worker(old, args, tmp, cwd=before)["peak_mib"]
                except RuntimeError as exc:
                    rows[-1]["before_mib"] = None
                    print(f"  before: {exc}")
                else:
                    print(f"  before ({before}): peak {rows[-1]['before_mib']:.0f} MiB")
    table = _table(rows, before is not None)
    print("\n" + table)
    info = machine_info(device)
    write_csv(f"{args.out}/memory-{device.type}.csv", [{**r, "ancestry": str(ancestry), **info} for r in rows])
    body = _body(args, ancestry, before, rows, table)
    key = f"memory-{device.type}"
    if args.workers_only:
        body += kept_server_rows(Path(args.docs), key)
    finish(args, key, section(key, f"Peak memory ({device.type})", body, command_line("bench.memory", argv), info))
    return 0


def kept_server_rows(docs: Path, key: str) -> str:
    """With --workers-only: the web-server rows of the section already in the docs, with the line saying when
    and where they were measured (they are not re-measured here); empty when there are none."""
    try:
        text = docs.read_text()
    except OSError:
        return ""
    m = re.search(rf"<!-- bench:{re.escape(key)} -->\n(.*?)<!-- /bench:{re.escape(key)} -->", text, re.S)
    if not m:
        return ""
    old = m.group(1)
    if "not re-measured in this run" in old:  # kept once already: keep that part as it is
        return "\n\n" + old[old.index("Web server"):].rstrip() if "Web server" in old else ""
    rows = [line for line in old.splitlines() if line.startswith("| web server")]
    machine = next((line for line in old.splitlines() if line.startswith("Machine:")), "")
    if not rows:
        return ""
    return ("\n\nWeb server (not re-measured in this run, `--workers-only`; from the section's previous run. "
            f"{machine})\n\n| process | RSS now MiB | peak RSS MiB |\n|---|---|---|\n" + "\n".join(rows))


def _commit(path: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
