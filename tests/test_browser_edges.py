"""Browser test of the Home page at 1400 px wide, as a teacher sees it on a laptop: nothing cut, nothing hidden.

The live app runs on the shipped assets (so Home shows the shipped reference run) with a runs folder in tmp that
holds one finished demo run of the person at the browser (their cookie names them): Home then shows the
reference run and "your run" side by side, each half the page wide, with the curves' controls and a summary
table. Checked: the x-axis choice "epoch | wall-clock" is not cut ("wall-c"), and no summary table hides columns
behind a horizontal scroll bar. And the Runs page opened from a shared link shows the link's runs ticked in its
table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, ROOT, _stop, _wait_healthy, free_port, launch_streamlit, studio_env
from tests.test_browser import VIEWPORT

pytestmark = pytest.mark.browser
REFERENCE = ROOT / "assets" / "demo" / "lg_vit_tiny"
VIT = ROOT / "assets" / "lg_vit_tiny.safetensors"

CLIPPED_JS = """(text) => {
    // Elements showing exactly `text` that are narrower than their text (cut with an ellipsis) or reach past
    // an ancestor that clips its overflow (cut there), as [text, how many px are cut].
    const out = [];
    for (const el of document.querySelectorAll('[data-testid="stMain"] *')) {
        if (el.children.length || el.textContent.trim() !== text) continue;
        if (el.scrollWidth > el.clientWidth + 1) { out.push([text, el.scrollWidth - el.clientWidth]); continue; }
        const box = el.getBoundingClientRect();
        for (let a = el.parentElement; a && a.dataset.testid !== 'stMain'; a = a.parentElement) {
            const style = getComputedStyle(a);
            if (style.overflowX === 'visible' && style.overflow === 'visible') continue;
            const clip = a.getBoundingClientRect();
            const cut = Math.max(box.right - clip.right, clip.left - box.left);
            if (cut > 0.5) { out.push([text, Math.round(cut)]); break; }
        }
    }
    return out;
}"""

HIDDEN_COLUMNS_JS = """() => Array.from(document.querySelectorAll('[data-testid="stMain"] [data-testid="stDataFrame"]'))
    // each table's scrolling box: the width of its columns against the width shown
    .map(t => { const s = t.querySelector('.dvn-scroller') || t; return [s.scrollWidth, s.clientWidth]; })"""


def _demo_run(runs: Path, token: str) -> str:
    """A finished demo train run of the person with browser `token`: the shipped reference run's records and
    summary in a run folder made by the job manager (its `selftest` worker), as if they had clicked the demo."""
    from app.person.people import public_id
    from learngene.jobs import JobManager, JobSpec

    mgr = JobManager(runs)
    run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1"], kind="train", name="demo · learngene vs baseline",
                               tags={"demo": True, "ancestry": str(VIT)}, owner=public_id(token)))
    assert mgr.wait(run_id, timeout=120).state == "done", mgr.log_tail(run_id)
    folder = mgr.run_dir(run_id)
    (folder / "outputs" / "summary.json").write_text((REFERENCE / "summary.json").read_text())
    with open(folder / "metrics.jsonl", "a") as f:
        f.write((REFERENCE / "metrics.jsonl").read_text())
    record = runs / ".studio" / "people" / f"{public_id(token)}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"state": {"ancestry": str(VIT), "demo": {"train": run_id, "ancestry": str(VIT)}}}))
    return run_id


def _other_run(runs: Path) -> str:
    from learngene.jobs import JobManager, JobSpec

    mgr = JobManager(runs)
    run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1"], kind="train", name="another run"))
    assert mgr.wait(run_id, timeout=120).state == "done", mgr.log_tail(run_id)
    return run_id


@pytest.fixture(scope="module")
def home_server(chromium, tmp_path_factory):
    from app.person.people import new_token

    runs = tmp_path_factory.mktemp("edges-studio") / "runs"
    token = new_token()
    ids = [_demo_run(runs, token), _other_run(runs)]
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "streamlit-edges-server.log"
    port = free_port()
    env = studio_env(runs)  # the shipped assets and default ancestry
    proc = launch_streamlit("app/main.py", env, log_path, port)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, log_path, timeout=240)
        yield url, token, ids
    finally:
        _stop(proc, runs)


def _shoot(page) -> None:
    """A screenshot of the whole page, still 1400 px wide: the viewport grows to the page's height first."""
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": int(min(max(height, 600) + 40, 8000))})
    page.wait_for_timeout(1500)  # charts re-layout and tables measure their columns after a resize
    (ARTIFACTS / "screenshots").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "screenshots" / "home-1400px.png"), full_page=True)


def test_home_fits_1400_px(browser, home_server):  # noqa: F811 - the conftest fixture
    from playwright.sync_api import expect

    expect.set_options(timeout=120_000)  # a loaded 2-core machine renders slowly
    url, token, _ = home_server
    context = browser.new_context(viewport=VIEWPORT)
    context.add_cookies([{"name": "lg_person", "value": token, "url": url}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(url)
        expect(page.locator("h1", has_text="Learngene Studio")).to_be_visible()
        expect(page.locator(".st-key-demo-x")).to_contain_text("wall-clock")  # your run's curve controls
        expect(page.locator(".st-key-demo-ref-curves .js-plotly-plot")).to_be_visible()
        tables = page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]')
        expect(tables).to_have_count(2)  # the reference run's summary and your run's
        _shoot(page)  # the whole page at 1400 px (only the height grows)
        for text in ("x-axis", "epoch", "wall-clock", "smoothing (EMA)", "log-scale loss"):  # the curves' controls
            assert page.evaluate(CLIPPED_JS, text) == [], f"{text!r} is cut"
        widths = page.evaluate(HIDDEN_COLUMNS_JS)
        assert len(widths) == 2 and all(full <= shown + 1 for full, shown in widths), \
            f"a summary table hides columns behind a scroll bar (column widths vs shown: {widths})"
        assert not errors, errors
    finally:
        context.close()


TICKED_JS = """() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"] [role="row"][aria-selected]'))
    // the table's rows (its accessible grid beside the canvas): [first cell's text, ticked]
    .map(r => [r.querySelector('[role="gridcell"]')?.innerText || '', r.getAttribute('aria-selected') === 'true'])"""


def test_a_shared_link_ticks_its_runs_in_the_table(browser, home_server):  # noqa: F811 - the conftest fixture
    """Someone else opens a link naming one of the two runs: that run's row is ticked, the other's is not."""
    from playwright.sync_api import expect

    expect.set_options(timeout=120_000)
    url, _, (demo_run, other) = home_server
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        page.goto(f"{url}/runs?runs={other}")
        expect(page.locator(".st-key-runs-pick")).to_contain_text(other.rsplit("-", 1)[-1])
        page.wait_for_function(f"() => ({TICKED_JS})().length === 2")
        assert sorted(page.evaluate(TICKED_JS)) == [["another run", True], ["demo · learngene vs baseline", False]]
    finally:
        context.close()
