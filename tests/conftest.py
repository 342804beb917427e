"""Shared fixtures. The browser-test fixtures live here: Debian's chromium and a live `streamlit run` server.

`studio_server` starts the real app (`streamlit run app/main.py`) on a free local port, with the runs
folder in a temporary directory and a temporary assets folder whose embedded default ancestry
(`lg_vit_tiny.safetensors`) is a tiny untrained checkpoint made here, so nothing touches the
repository's `runs/` or `assets/`. The server's stdout/stderr go to `test-artifacts/streamlit-server.log`.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Jobs start cold in tests (a fork server per temporary runs folder would load torch each time);
# tests/test_forkserver.py tests the warm path with its own managers.
os.environ.setdefault("LEARNGENE_WARM_START", "0")
ARTIFACTS = ROOT / "test-artifacts"
DEFAULT_CHROMIUM = Path("/usr/bin/chromium")


# ------------------------------------------------------------------ chromium


def find_chromium() -> Path | None:
    """Debian's chromium (`/usr/bin/chromium`), else a `chromium` on the PATH, else None."""
    if DEFAULT_CHROMIUM.is_file() and os.access(DEFAULT_CHROMIUM, os.X_OK):
        return DEFAULT_CHROMIUM
    found = shutil.which("chromium")
    return Path(found) if found else None


def _missing(reason: str) -> None:
    """Skip on a developer machine; fail under CI, so that CI cannot pass by skipping the browser tests."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser tests must run; .ci/run installs chromium)",
                    pytrace=False)
    pytest.skip(f"{reason}; install it with `apt-get install -y chromium` (CI fails instead of skipping)")


def require_chromium() -> Path:
    """Path of the chromium executable; skips (fails when $CI is set) if it is missing."""
    path = find_chromium()
    if path is None:
        _missing(f"Debian's chromium is not installed ({DEFAULT_CHROMIUM} is missing)")
    return path


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Path of the chromium executable; skips (fails when $CI is set) if chromium or playwright is missing."""
    path = require_chromium()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright Python package is not installed (pip install -r requirements-dev.txt)")
    return path


def require_module(name: str, install: str = "pip install -r requirements.txt"):
    """Import and return module `name`. Where it cannot be imported: skip (at module level too) on a
    developer machine, and fail when $CI is set, so that CI cannot pass by skipping the tests that
    need it (as with chromium above). Use instead of `pytest.importorskip` for the app's packages."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        why = str(exc)
    if os.environ.get("CI"):
        pytest.fail(f"{name} cannot be imported ({why}); CI is set, so the tests that need it must run "
                    f"({install})", pytrace=False)
    pytest.skip(f"{name} cannot be imported ({why}; {install}); CI fails instead of skipping",
                allow_module_level=True)


# ------------------------------------------------------------------ hypothesis


def _hypothesis_profiles() -> None:
    """Under CI the property tests are derandomised (the same examples every run, no example database), so
    that a CI failure can be reproduced and a green run stays green; elsewhere hypothesis explores freely.
    Recent hypothesis loads a "ci" profile like this one by itself when CI is set; this makes it hold for
    every version requirements-dev.txt allows."""
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # the fuzz tests then fail on their own import
        return
    settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    if os.environ.get("CI"):
        settings.load_profile("ci")


_hypothesis_profiles()  # here, before any test module builds its settings on the loaded profile


# ------------------------------------------------------------------ the live app


@dataclass
class StudioServer:
    url: str
    runs_dir: Path
    assets_dir: Path
    ancestry: Path
    log_path: Path
    proc: subprocess.Popen


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no server log)"


def _wait_healthy(url: str, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode} before answering:\n{_log_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
                if r.status == 200 and r.read().decode().strip() == "ok":
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer {url}/_stcore/health within {timeout:.0f} s:\n{_log_tail(log_path)}")


def make_tiny_ancestry(path: Path, depth: int = 4) -> Path:
    """An untrained lg_vit_tiny with `depth` blocks and a model card: loads in a blink, trains in seconds."""
    from learngene.data.shapes import default_split
    from learngene.models import ModelCard, create_model, save_checkpoint

    model = create_model("lg_vit_tiny", num_classes=64, depth=depth)
    card = ModelCard(spec=model.lg_spec, dataset="shapes", split=default_split().to_dict(), epochs=0,
                     base_accuracy=0.25, command="tests/conftest.py (untrained, for the browser tests)")
    return Path(save_checkpoint(model, path, card))


def _stop(proc: subprocess.Popen, runs_dir: Path) -> None:
    try:  # background runs started through the app: cancel them (they run in their own sessions)
        from learngene.jobs import JobManager

        mgr = JobManager(runs_dir)
        for run_id in mgr.cancel_all():
            mgr.wait(run_id, timeout=20)
    except Exception as exc:  # noqa: BLE001 - teardown must go on to stop the server
        print(f"could not cancel the app's runs in {runs_dir}: {exc}", file=sys.stderr)
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser(chromium):
    """One headless chromium for every browser test (one Playwright per process: a second one in the same
    session would refuse to start inside the first's event loop)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium), args=LAUNCH_ARGS, headless=True)
        yield b
        b.close()


def studio_env(runs: Path, assets: Path | None = None) -> dict[str, str]:
    """This process's environment for a studio on `runs`: with `assets` its own shipped-assets folder, else the
    repository's (and its default ancestry either way)."""
    env = dict(os.environ, LEARNGENE_RUNS_DIR=str(runs), PYTHONUNBUFFERED="1")
    env.pop("LEARNGENE_ANCESTRY", None)
    if assets is None:
        env.pop("LEARNGENE_ASSETS_DIR", None)
    else:
        env["LEARNGENE_ASSETS_DIR"] = str(assets)
    return env


def launch_streamlit(script: str | Path, env: dict[str, str], log_path: Path, port: int,
                     address: str = "127.0.0.1") -> subprocess.Popen:
    """`streamlit run SCRIPT` headless on `port` in its own session, its output in `log_path`; no file
    watcher: other people edit this checkout while the tests run, and their saves must not rerun the app."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
           "--server.port", str(port), "--server.address", address, "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    with open(log_path, "w") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


@pytest.fixture(scope="session")
def studio_server(chromium, tmp_path_factory) -> StudioServer:
    """`streamlit run app/main.py` on a free port (runs folder and default ancestry in tmp), stopped at the end."""
    base = tmp_path_factory.mktemp("studio")
    runs, assets = base / "runs", base / "assets"
    runs.mkdir()
    assets.mkdir()
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "streamlit-server.log"
    port = free_port()
    env = studio_env(runs, assets)  # the default ancestry is <assets>/lg_vit_tiny.safetensors, as shipped
    proc = launch_streamlit("app/main.py", env, log_path, port)
    try:
        ancestry = make_tiny_ancestry(assets / "lg_vit_tiny.safetensors")  # while streamlit starts
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, log_path, timeout=240)
        yield StudioServer(url=url, runs_dir=runs, assets_dir=assets, ancestry=ancestry, log_path=log_path,
                           proc=proc)
    finally:
        _stop(proc, runs)


# ------------------------------------------------------------------ small shared fixtures


def cancel_runs(runs_dir: Path) -> None:
    """Cancel every live run of a runs folder and wait for each to stop (a fixture's teardown)."""
    from learngene.jobs import JobManager

    mgr = JobManager(runs_dir)
    for run_id in mgr.cancel_all():
        mgr.wait(run_id, timeout=15)


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch thread (as the CLI commands do by default), restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ancestry_file(tmp_path_factory) -> Path:
    """A random-init 2-block lg_vit_tiny checkpoint with 8 classes and its card (loads and trains in a blink)."""
    import torch

    from learngene.models import ModelCard, create_model, save_checkpoint

    torch.manual_seed(0)
    vit = create_model("lg_vit_tiny", 8, depth=2)
    return save_checkpoint(vit, tmp_path_factory.mktemp("anc") / "anc.safetensors", ModelCard(spec=vit.lg_spec))
