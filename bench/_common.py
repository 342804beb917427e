"""What every benchmark shares: options, machine description, timing, tables, CSV and docs sections.

A benchmark's report is one markdown *section* of ``docs/results.md`` between two markers
(``<!-- bench:KEY -->`` and ``<!-- /bench:KEY -->``), holding the command that made it, the machine
and the date. `--write-docs` replaces that section in place (or inserts it in `SECTION_ORDER`), so
re-running a benchmark never touches the other sections.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fcntl
import math
import os
import platform
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from learngene.tables import fmt, md_table, write_csv  # noqa: F401  (re-exported for the benchmarks)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "results.md"
OUT_DIR = ROOT / "bench" / "out"

SECTION_ORDER = ("advantages", "condense-cpu", "probe", "throughput-cpu", "throughput-cuda", "sweep-cpu", "sweep-cuda", "cka-cpu",
                 "cka-cuda", "memory-cpu", "memory-cuda")
DOCS_HEADER = """# Results

Numbers measured by the benchmarks in `bench/` (see `python -m bench.<name> --help`). Each section
says the command that made it, the machine it ran on and the date; a benchmark re-run with
`--write-docs` replaces its own section only. On a 2-core machine that other processes load, pass
`--threads 1`: two torch threads competing with other processes ran many times slower than one.

| what | CPU command | GPU |
| --- | --- | --- |
| the four advantages (also `python -m learngene advantages`, or the Runs page) | `python -m bench.advantages --threads 1 --write-docs` | `ADVANTAGES=1 bash bench/gpu_check.sh` |
| training throughput | `python -m bench.throughput --threads 1 --write-docs` | `bash bench/gpu_check.sh` |
| sweep speed | `python -m bench.sweep_speed --threads 1 --write-docs` | (same script) |
| similarity speed | `python -m bench.cka_speed --threads 1 --write-docs` | (same script) |
| peak memory | `python -m bench.memory --threads 1 --write-docs` | (same script) |

`bash bench/gpu_check.sh` writes `results-gpu.md` under `$OUT`; `python -m bench.docs
$OUT/results-gpu.md` puts its sections here.
"""


def placeholder(key: str, title: str, how: str) -> str:
    """A section that says it has not been measured yet and how to measure it."""
    return f"<!-- bench:{key} -->\n## {title}\n\n*Not measured yet.* {how}\n<!-- /bench:{key} -->\n"


# ------------------------------------------------------------------ options


def add_common_args(p: argparse.ArgumentParser, out_name: str) -> None:
    """--quick, --out, --write-docs, --docs, --threads, --device (every benchmark has them)."""
    g = p.add_argument_group("benchmark")
    g.add_argument("--quick", action="store_true", help="tiny settings for development (seconds, not minutes)")
    g.add_argument("--out", default=str(OUT_DIR / out_name),
                   help=f"folder for the raw CSV/JSON and the markdown section (default: bench/out/{out_name})")
    g.add_argument("--write-docs", action="store_true",
                   help="put the markdown section into docs/results.md (replacing the old one)")
    g.add_argument("--docs", default=str(DOCS), help="the results file --write-docs edits (default: docs/results.md)")
    g.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice). On a machine loaded by other processes, "
                        "1 thread can be many times faster than 2")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto = CUDA when present (default: auto)")


def setup(args: argparse.Namespace) -> Any:
    """Apply --threads, create --out; returns the resolved torch.device."""
    import torch

    from learngene.train.trainer import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return resolve_device(args.device)


def run_cli(main: Any) -> int:
    """Run a benchmark's `main()`; a `LearngeneError` (bad input) prints one line instead of a traceback."""
    from learngene.errors import LearngeneError

    try:
        return int(main() or 0)
    except LearngeneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """The benchmark's command as typed, e.g. ``python -m bench.throughput --quick``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", "-m", module, *argv])


# ------------------------------------------------------------------ machine and timing


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(device: Any = None) -> dict[str, Any]:
    """Facts to print beside every figure: CPU, cores, load, threads, torch, GPU, date."""
    import torch

    info: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": _cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(),
    }
    with contextlib.suppress(OSError, AttributeError):
        info["load_avg_1m"] = round(os.getloadavg()[0], 1)
    with contextlib.suppress(ImportError):
        import timm

        info["timm"] = timm.__version__
    if torch.cuda.is_available() and (device is None or str(device).startswith("cuda")):
        info["gpu"] = torch.cuda.get_device_name(0)
    info["device"] = str(device) if device is not None else ("cuda" if "gpu" in info else "cpu")
    return info


def machine_text(info: dict[str, Any]) -> str:
    """One line, e.g. 'cpu: 2 x Intel ... (load 11.9), 1 torch thread; torch 2.14.1; 2025-...'."""
    parts = [f"{info['device']}"]
    if "gpu" in info:
        parts.append(f"GPU {info['gpu']}")
    load = f", load average {info['load_avg_1m']}" if "load_avg_1m" in info else ""
    parts.append(f"{info['cores']} cores {info['cpu']}{load}, {info['threads']} torch thread(s)")
    parts.append(f"torch {info['torch']}" + (f", timm {info['timm']}" if "timm" in info else ""))
    parts.append(info["date"])
    return "; ".join(parts)


def sync(device: Any) -> None:
    """Wait for queued GPU work (no-op on the CPU)."""
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


@contextlib.contextmanager
def timed(device: Any = None) -> Iterator[dict[str, float]]:
    """``with timed(dev) as t: ...`` then ``t["s"]`` holds the seconds (GPU work included)."""
    sync(device)
    out = {"s": float("nan")}
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        sync(device)
        out["s"] = time.perf_counter() - t0


def median(values: Sequence[float]) -> float:
    xs = sorted(v for v in values if v is not None and math.isfinite(v))
    if not xs:
        return float("nan")
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else 0.5 * (xs[mid - 1] + xs[mid])


# ------------------------------------------------------------------ tables and files


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def section(key: str, title: str, body: str, command: str, info: dict[str, Any]) -> str:
    """The markdown section of one benchmark, between its markers."""
    return (f"<!-- bench:{key} -->\n## {title}\n\n```\n{command}\n```\n\n"
            f"Machine: {machine_text(info)}.\n\n{body.strip()}\n<!-- /bench:{key} -->\n")


_SECTION_RE = r"<!-- bench:{key} -->\n.*?<!-- /bench:{key} -->\n?"


def _sections_in(text: str) -> list[str]:
    return re.findall(r"<!-- bench:([\w.-]+) -->", text)


def insert_section(docs: str | os.PathLike, key: str, text: str) -> Path:
    """Replace section `key` of the results file, or insert it in `SECTION_ORDER`; atomic and locked."""
    docs = Path(docs)
    lock = Path(tempfile.gettempdir()) / f"learngene-bench-{abs(hash(str(docs.resolve())))}.lock"
    with open(lock, "w") as lf:
        fcntl.flock(lf, fcntl.LOCK_EX)
        old = docs.read_text() if docs.exists() else DOCS_HEADER
        pattern = re.compile(_SECTION_RE.format(key=re.escape(key)), re.S)
        if pattern.search(old):
            new = pattern.sub(lambda _m: text, old, count=1)
        else:
            rank = {k: i for i, k in enumerate(SECTION_ORDER)}
            later = [k for k in _sections_in(old) if rank.get(k, len(rank)) > rank.get(key, len(rank))]
            if later:
                at = old.index(f"<!-- bench:{later[0]} -->")
                new = old[:at] + text + "\n" + old[at:]
            else:
                new = old.rstrip("\n") + "\n\n" + text
        _atomic_write_text(docs, new)
    return docs


def finish(args: argparse.Namespace, key: str, text: str) -> None:
    """Write the section next to the raw files (``<out>/<key>.md``); with --write-docs also into the docs."""
    path = Path(args.out) / f"{key}.md"
    _atomic_write_text(path, text)
    print(f"\nmarkdown section: {path}")
    if args.write_docs:
        print(f"updated {insert_section(args.docs, key, text)} (section '{key}')")


def kill_processes_naming(text: str | os.PathLike, passes: int = 1) -> None:
    """SIGKILL every process (but this one) whose command line or environment contains `text`, e.g. the
    temporary folder a benchmark's or test's jobs were started in; `passes` > 1 also catches a process
    forked during an earlier pass."""
    import signal

    needle = str(text).encode()
    for p in range(passes):
        if p:
            time.sleep(0.05)
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                data = Path(f"/proc/{name}/cmdline").read_bytes() + Path(f"/proc/{name}/environ").read_bytes()
            except OSError:
                continue
            if needle in data:
                with contextlib.suppress(OSError):
                    os.kill(int(name), signal.SIGKILL)
