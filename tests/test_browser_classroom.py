"""A class in real browsers: separate Chromium contexts are separate people on one live server.

Each context keeps its own choices across reloads and a new one starts from the defaults; one person cannot
cancel or rename another's run, the host can; a start beyond a person's limit is refused with the reason; an
export outside the export root is refused; a server bound beyond loopback shows only its join page until the
join code is given.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import (
    ROOT,
    _stop,
    _wait_healthy,
    free_port,
    launch_streamlit,
    make_tiny_ancestry,
    studio_env,
)
from tests.test_browser import VIEWPORT, Journey

pytestmark = pytest.mark.browser


def person_of(context) -> str:
    """The public id of the person a browser context is (from its cookie)."""
    from app.person.identity import COOKIE
    from app.person.people import public_id

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the page's script sets it once the first run is drawn
        token = next((c["value"] for c in context.cookies() if c["name"] == COOKIE), None)
        if token:
            return public_id(token)
        time.sleep(0.2)
    raise AssertionError("the app set no person cookie")


@pytest.fixture
def two(browser, studio_server):  # noqa: F811 - the browser fixture
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(2)]
    journeys = []
    for ctx in contexts:
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        journeys.append(Journey(page, studio_server))
    try:
        yield journeys
    finally:
        for ctx in contexts:
            ctx.close()


def open_home(j: Journey, query: str = "") -> None:
    j.page.goto(f"{j.server.url}/{query}")
    j.page.locator("h1").first.wait_for(timeout=120_000)
    j.idle()


def sidebar_text(j: Journey) -> str:
    return j.page.locator('[data-testid="stSidebar"]').inner_text()


def open_details(j: Journey, run_id: str) -> None:
    """The Runs page's Details tab, with the run's expander open."""
    j.page.get_by_role("tab", name="Details").click()
    j.page.get_by_text(run_id).filter(visible=True).first.click()
    j.idle()


def live_run(runs: Path, owner: str, name: str) -> str:
    from learngene.jobs import JobManager, JobSpec

    mgr = JobManager(runs, max_cpu_jobs=2)
    return mgr.start(JobSpec(argv=["selftest", "--records", "1", "--sleep", "120"], kind="train", name=name,
                             owner=owner))


def test_each_browser_keeps_its_own_choices_across_reloads(two):
    from playwright.sync_api import expect

    a, b = two
    open_home(a, "?layers=1,2")
    assert "layers 1, 2" in sidebar_text(a)
    open_home(b)  # a new person: the defaults, not what A chose
    assert "no layers chosen" in sidebar_text(b)
    a.nav("Train")
    a.set_number("task-epochs", 13)
    open_home(a)  # F5 on a bare address: A's own choices come back from A's record
    assert "layers 1, 2" in sidebar_text(a)
    a.nav("Train")
    # the number field is first drawn empty (0) and then given its value: wait for the value, not a moment
    expect(a.widget("task-epochs").locator("input")).to_have_value("13")
    open_home(b, "?layers=0")
    b.nav("Train")
    expect(b.widget("task-epochs").locator("input")).to_have_value(re.compile(r"^[1-9][0-9]*$"))  # B's default
    assert b.widget("task-epochs").locator("input").input_value() != "13"
    open_home(a)
    assert "layers 1, 2" in sidebar_text(a), "B's link changed A's choices"
    assert a.errors == [] and b.errors == [], a.errors + b.errors


def test_only_the_owner_or_the_host_may_cancel_and_a_start_beyond_the_limit_is_refused(two):
    from app.shared import server
    from learngene.jobs import JobManager

    a, b = two
    runs = a.server.runs_dir
    open_home(a)
    open_home(b)
    run_id = live_run(runs, person_of(a.page.context), "A's run")
    try:
        b.page.goto(f"{b.server.url}/runs?runs={run_id}")
        b.page.locator("h1", has_text="Runs").wait_for()
        b.idle()
        open_details(b, run_id)
        b.page.get_by_text("started by", exact=False).filter(visible=True).first.wait_for()
        assert b.page.get_by_role("button", name="Cancel").count() == 0
        b.page.get_by_role("tab", name="Name, tags, note").click()
        b.page.get_by_text("someone else's", exact=False).filter(visible=True).first.wait_for()

        # A has one live run; with a limit of one, A's next start is refused, saying why
        data = server.read(runs)
        data["limits"] = {"running": 1, "queued": 0, "server": 12}
        server.write(runs, data)
        a.page.goto(f"{a.server.url}/train?layers=0,1")
        a.page.locator("h1", has_text="Train").wait_for()
        a.idle()
        a.page.get_by_role("button", name="Train learngene vs baseline").click()
        a.idle()
        a.page.get_by_text("you already have 1 run(s) queued or running", exact=False).filter(visible=True).first.wait_for()

        key = server.new_secrets(runs, join=False)["host_key"]  # B opens the host link
        open_home(b, f"?host={key}")
        assert "host=" not in b.page.url
        b.page.goto(f"{b.server.url}/runs?runs={run_id}")
        b.page.locator("h1", has_text="Runs").wait_for()
        b.idle()
        open_details(b, run_id)
        b.page.get_by_role("button", name="Cancel").first.click()
        assert JobManager(runs).wait(run_id, timeout=60).state == "cancelled"
    finally:
        data = server.read(runs)
        data.pop("limits", None)
        server.write(runs, data)
        mgr = JobManager(runs)
        for rid in mgr.cancel_all():
            mgr.wait(rid, timeout=30)


def test_an_export_outside_the_export_root_is_refused(two):
    from learngene.jobs import JobManager, JobSpec

    a, _ = two
    open_home(a)
    mgr = JobManager(a.server.runs_dir, max_cpu_jobs=2)
    run_id = mgr.start(JobSpec(argv=["selftest", "--records", "2"], kind="train", name="to export",
                               owner=person_of(a.page.context)))
    assert mgr.wait(run_id, timeout=60).state == "done"
    outside = Path(a.server.runs_dir).parent / "outside-export"
    a.page.goto(f"{a.server.url}/runs?runs={run_id}")
    a.page.locator("h1", has_text="Runs").wait_for()
    a.idle()
    a.page.get_by_role("tab", name="Export").click()
    box = a.widget("export-tb-dir").locator("input")
    box.fill(str(outside))
    box.press("Enter")
    a.idle()
    a.page.get_by_role("button", name="Export into these folders").click()
    a.idle()
    a.page.get_by_text("is outside it", exact=False).filter(visible=True).first.wait_for()
    assert not outside.exists()


@pytest.fixture
def open_server(chromium, tmp_path):
    """A studio bound to every interface (0.0.0.0): a join code is required."""
    runs, assets = tmp_path / "runs", tmp_path / "assets"
    runs.mkdir()
    assets.mkdir()
    port = free_port()
    log_path = tmp_path / "server.log"
    env = studio_env(runs, assets)
    launcher = subprocess.run([sys.executable, "-m", "app.shared.serve", "--host", "0.0.0.0", "--port", str(port),
                               "--print-only"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    code = launcher.stdout.split("?join=")[1].split()[0]
    proc = launch_streamlit("app/main.py", env, log_path, port, address="0.0.0.0")
    try:
        make_tiny_ancestry(assets / "lg_vit_tiny.safetensors")
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, log_path, timeout=240)
        yield url, code
    finally:
        _stop(proc, runs)


def test_a_server_beyond_loopback_shows_only_its_join_page_without_the_code(browser, open_server):  # noqa: F811
    url, code = open_server
    ctx = browser.new_context(viewport=VIEWPORT)
    try:
        page = ctx.new_page()
        page.set_default_timeout(120_000)
        for path in ("/", "/runs", "/board"):
            page.goto(url + path)
            page.get_by_text("Ask the person who runs it for the join code", exact=False).wait_for()
            assert page.locator('[data-testid="stSidebarNav"]').count() == 0, "no pages before joining"
            assert page.locator("h1", has_text="Runs").count() == 0
        box = page.get_by_label("join code")
        box.fill("wrong")
        page.get_by_role("button", name="Join").click()
        page.get_by_text("That is not the join code.").wait_for()
        page.goto(f"{url}/?join={code}")
        page.locator('[data-testid="stSidebarNav"]').wait_for()
        assert "join=" not in page.url
        page.goto(url + "/runs")  # joined: stays joined on the next visit (the cookie)
        page.locator("h1", has_text="Runs").wait_for()
        other = browser.new_context(viewport=VIEWPORT).new_page()  # another browser still has to join
        other.goto(url + "/")
        other.get_by_text("Ask the person who runs it for the join code", exact=False).wait_for(timeout=120_000)
        other.context.close()
    finally:
        ctx.close()
