"""How fast the Similarity page draws a shipped ancestry's heatmap: seconds from the click to the chart.

The shipped ancestries come with finished similarity results (`assets/similarity/`), so the page must
show their heatmap at once, without a job; the target is 5 s on the 2-core development machine. This
starts the app as `make app` runs it (`streamlit run app/main.py`, its runs folder in a temporary
directory, the real `assets/`), opens it in Debian's headless chromium (Playwright, as the browser tests
do) on each shipped ancestry (`?ancestry=` in the URL), clicks "Similarity" in the sidebar and times
until the heatmap is visible. The first opening of each ancestry is timed apart from the later ones
(which find its result in the server's cache). Prints one row per ancestry; exits 1 when a median
exceeds `--limit`.

    python -m bench.heatmap_speed                  # 3 openings per shipped ancestry
    python -m bench.heatmap_speed --repeats 5 --limit 5
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

from bench._common import OUT_DIR, ROOT, command_line, machine_info, machine_text, md_table, median

SHIPPED = ("lg_vit_tiny", "lg_resnet_mini")
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(runs: Path, log: Path, timeout: float) -> tuple[subprocess.Popen, str]:
    """`streamlit run app/main.py` on a free local port; (process, url) once it answers its health check."""
    port = _free_port()
    env = dict(os.environ, LEARNGENE_RUNS_DIR=str(runs), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true", "--server.port",
           str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
                if r.read().decode().strip() == "ok":
                    return proc, url
        except OSError:
            pass
        time.sleep(0.5)
    stop_app(proc)
    raise RuntimeError(f"streamlit did not answer within {timeout:.0f} s; see {log}")


def stop_app(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def open_similarity(browser, url: str, stem: str, timeout_s: float) -> float:
    """A fresh page on the app with ancestry `stem`; seconds from the click on "Similarity" to the heatmap."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{url}/?ancestry={quote(str(ROOT / 'assets' / f'{stem}.safetensors'))}")
        page.locator("h1", has_text="Learngene Studio").wait_for(timeout=timeout_s * 1000)
        page.wait_for_function("() => { const a = document.querySelector('[data-test-script-state]');"
                               " return a && a.getAttribute('data-test-script-state') !== 'running'; }",
                               timeout=timeout_s * 1000)
        link = page.locator('[data-testid="stSidebarNav"] a').filter(has=page.get_by_text("Similarity", exact=True))
        t0 = time.monotonic()
        link.first.click()
        page.locator(".st-key-sim-heatmap .js-plotly-plot").first.wait_for(state="visible", timeout=timeout_s * 1000)
        return time.monotonic() - t0
    finally:
        page.close()


def measure(args: argparse.Namespace, url: str) -> list[dict]:
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=LAUNCH_ARGS, headless=True)
        try:
            for stem in args.stems:
                seconds = [open_similarity(browser, url, stem, args.timeout) for _ in range(args.repeats)]
                later = seconds[1:]
                rows.append({"stem": stem, "first_s": seconds[0], "median_s": median(seconds),
                             "later_median_s": median(later) if later else float("nan"), "max_s": max(seconds),
                             "n": len(seconds)})
                print(f"{stem}: " + ", ".join(f"{s:.2f}" for s in seconds) + " s", flush=True)
        finally:
            browser.close()
    return rows


def table(rows: list[dict], limit: float) -> str:
    body = [[f"`{r['stem']}`", str(r["n"]), f"{r['first_s']:.2f}", f"{r['later_median_s']:.2f}",
             f"{r['median_s']:.2f}", f"{r['max_s']:.2f}", "yes" if r["median_s"] <= limit else "**no**"] for r in rows]
    return md_table(["ancestry", "openings", "first s", "later s (median)", "median s", "max s",
                     f"median within {limit:g} s"], body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.heatmap_speed", description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="openings per ancestry (default: 3)")
    ap.add_argument("--limit", type=float, default=5.0, help="target seconds for the median (default: 5)")
    ap.add_argument("--stems", type=lambda s: s.split(","), default=list(SHIPPED),
                    help=f"shipped ancestries, comma-separated (default: {','.join(SHIPPED)})")
    ap.add_argument("--chromium", default=CHROMIUM, help=f"the chromium executable (default: {CHROMIUM})")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for the app and each page")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    if not Path(args.chromium).exists():
        ap.error(f"no chromium at {args.chromium} (apt-get install -y chromium)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lg-heatmap-") as tmp:
        runs = Path(tmp) / "runs"
        runs.mkdir()
        proc, url = start_app(runs, OUT_DIR / "heatmap-speed-server.log", args.timeout)
        try:
            rows = measure(args, url)
        finally:
            stop_app(proc)
    print()
    print(command_line("bench.heatmap_speed", argv))
    print(f"Machine: {machine_text(machine_info('cpu'))}")
    print(table(rows, args.limit))
    return 0 if all(r["median_s"] <= args.limit for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
