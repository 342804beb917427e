"""Probes of the shared server: links that name paths or impossible layers, run names with markdown, one person's
choices never reaching another, exports outside the export root, and a plain `streamlit run` on loopback.

The app's pages run in this process through Streamlit's AppTest, as one or two people (a person is the token
their browser's cookie carries; here it is put into the session directly).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.reliability.runner import ROOT, Ctx, Outcome, _judged

ANNA = "probe-anna-000000000000000000000000000000000"
BOB = "probe-bob-0000000000000000000000000000000000"


def _session(runs: Path, ckpt: Path, person: str, page: str | None = None, **query):
    from streamlit.testing.v1 import AppTest

    from app.person.identity import SESSION_TOKEN

    os.environ["LEARNGENE_ANCESTRY"] = str(ckpt)
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.session_state[SESSION_TOKEN] = person
    at.query_params.update(query)
    at.run()
    if page:
        at.switch_page(f"../pages/{page}.py").run()
    return at


def _with_ancestry(ctx: Ctx, runs: Path):
    saved = os.environ.get("LEARNGENE_ANCESTRY"), os.environ.get("LEARNGENE_ASSETS_DIR")
    os.environ["LEARNGENE_ASSETS_DIR"] = str(ctx.checkpoint().parent)
    return saved


def _restore(saved) -> None:
    for key, value in zip(("LEARNGENE_ANCESTRY", "LEARNGENE_ASSETS_DIR"), saved, strict=True):
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def probe_link_paths(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("link-paths") / "runs"
    with ctx.in_process(runs):
        saved = _with_ancestry(ctx, runs)
        try:
            said = []
            for path in ("/etc/passwd", "/root/.ssh/id_rsa", "/no/such/file.safetensors"):
                at = _session(runs, ctx.checkpoint(), BOB, ancestry=path)
                said.append(tuple(i.value for i in at.info))
            from app.person import state  # noqa: F401 - the app's modules are loaded by the sessions above
        finally:
            _restore(saved)
    same = len(set(said)) == 1 and bool(said[0])
    return _judged([(same, f"one message for all three paths: {said[0][0][:70] if said[0] else 'none'}"),
                    (not any("passwd" in m or "id_rsa" in m for s in said for m in s), "the path is never echoed")])


def probe_link_layers(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("link-layers") / "runs"
    with ctx.in_process(runs):
        saved = _with_ancestry(ctx, runs)
        try:
            at = _session(runs, ctx.checkpoint(), BOB, layers="999,-1,abc,1")
            said = [i.value for i in at.info]
            at.switch_page("../pages/learngene.py").run()
            kept = at.multiselect(key="lg-multi").value
        finally:
            _restore(saved)
    return _judged([(kept == [1], f"layers kept: {kept}"),
                    (any("ignored" in s for s in said), f"said: {said[0][:80] if said else 'nothing'}")])


def probe_run_name_markdown(ctx: Ctx) -> Outcome:
    from learngene.jobs import JobManager, JobSpec

    runs = ctx.scratch("name-markdown") / "runs"
    with ctx.in_process(runs):
        saved = _with_ancestry(ctx, runs)
        try:
            from app.person.people import public_id

            mgr = JobManager(runs, max_cpu_jobs=2)
            run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1"], kind="train", owner=public_id(BOB),
                                       name="![px](http://127.0.0.1:8799/track.png)"))
            mgr.wait(run_id, timeout=60)
            at = _session(runs, ctx.checkpoint(), BOB, page="runs")
            at.multiselect(key="runs-pick").set_value([run_id]).run()
            shown = [m.value for m in at.markdown] + [e.label for e in at.expander]
        finally:
            _restore(saved)
    raw = [s for s in shown if "![px](" in s]
    return Outcome(not raw and any(r"\!\[px\]" in s for s in shown),
                   f"{len(raw)} markdown element(s) would fetch the image; the name shows escaped")


def probe_choices_isolated(ctx: Ctx) -> Outcome:
    runs = ctx.scratch("isolated") / "runs"
    with ctx.in_process(runs):
        saved = _with_ancestry(ctx, runs)
        try:
            a = _session(runs, ctx.checkpoint(), ANNA, page="train")
            a.number_input(key="task-epochs").set_value(17).run()
            b = _session(runs, ctx.checkpoint(), BOB, page="train")
            again = _session(runs, ctx.checkpoint(), ANNA, page="train")
            seen_b, seen_a = b.number_input(key="task-epochs").value, again.number_input(key="task-epochs").value
        finally:
            _restore(saved)
    return _judged([(seen_a == 17, f"A's reload shows A's {seen_a}"), (seen_b != 17, f"B sees {seen_b}, not A's 17")])


def probe_export_outside(ctx: Ctx) -> Outcome:
    from app.ui.export_ui import export_targets
    from learngene.errors import ConfigError

    root = ctx.scratch("export-root") / "exports" / "person"
    tried = {}
    for bad in ("../../escape", "/etc", str(ctx.scratch("export-root"))):
        try:
            export_targets(root, bad, "", host=False)
            tried[bad] = "ACCEPTED"
        except ConfigError:
            tried[bad] = "refused"
    try:
        export_targets(root, "", "http://127.0.0.1:5000", host=False)
        tried["remote"] = "ACCEPTED"
    except ConfigError:
        tried["remote"] = "refused"
    return Outcome(set(tried.values()) == {"refused"}, ", ".join(f"{k}: {v}" for k, v in tried.items()))


def probe_plain_streamlit_run(ctx: Ctx) -> Outcome:
    """`streamlit run app/main.py` with no address option: the project's config keeps it on loopback."""
    from bench.reliability.probes_runs import _listening

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**ctx.env(), "LEARNGENE_RUNS_DIR": str(ctx.scratch("plain-run") / "runs")}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        addresses = _listening(port)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)
    ok = bool(addresses) and all(a.startswith("127.") or a == "::1" for a in addresses)
    return Outcome(ok, f"listens on {', '.join(addresses) or 'nothing'}")
