"""Browser test of the Lineage page: the family tree of the shipped ancestries (their CKA learngene, condense
results, probe and demo run) and of a real run made from the shipped learngene, whose node opens the run on the
Runs page.

The live app runs from a router equal to app/main.py's, with the Lineage page in its navigation, on the shipped
assets and a runs folder in tmp holding one real (tiny) train run.
"""

from __future__ import annotations

import ast
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import ARTIFACTS, ROOT, _stop, _wait_healthy, free_port, launch_streamlit, studio_env
from tests.test_browser import DEEP_LINK_PROBE, VIEWPORT

pytestmark = pytest.mark.browser
LINEAGE = ("lineage.py", "Lineage", ":material/family_history:")
SHIPPED_LG = ROOT / "assets" / "learngenes" / "lg_vit_tiny-cka.safetensors"


def _router(path: Path) -> Path:
    """app/main.py itself, written to `path` with its ROOT fixed and the Lineage page added to its PAGES when
    it is not there yet (so the test sees the app as main.py builds it)."""
    source = (ROOT / "app" / "main.py").read_text()
    anchor = "ROOT = Path(__file__).resolve().parents[1]"
    assert anchor in source, "app/main.py no longer sets ROOT as this test expects"
    pages = next(n for n in ast.parse(source).body if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "PAGES" for t in n.targets))
    lines = source.splitlines(keepends=True)
    if not any(p[0] == LINEAGE[0] for p in ast.literal_eval(pages.value)):
        lines.insert(pages.end_lineno - 1, f"    {LINEAGE!r},\n")  # before the closing bracket
    path.write_text("".join(lines).replace(anchor, f"ROOT = Path({str(ROOT)!r})"))
    return path


@pytest.fixture(scope="module")
def lineage_server(chromium, tmp_path_factory):
    from learngene.jobs import JobManager, JobSpec

    base = tmp_path_factory.mktemp("lineage-studio")
    runs = base / "runs"
    mgr = JobManager(runs)
    run_id = mgr.start(JobSpec(argv=["train", "--learngene", str(SHIPPED_LG), "--tasks", "1", "--epochs", "1",
                                     "--k-shot", "2", "--test-per-class", "4", "--images-per-class", "30",
                                     "--threads", "1"], name="lineage descendant"))
    assert mgr.wait(run_id, timeout=300).state == "done", mgr.log_tail(run_id)
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "streamlit-lineage-server.log"
    port = free_port()
    env = studio_env(runs)  # the shipped assets and default ancestry
    proc = launch_streamlit(_router(base / "router.py"), env, log_path, port)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, log_path, timeout=240)
        yield url, run_id
    finally:
        _stop(proc, runs)


def test_a_node_opens_its_run(browser, lineage_server):  # noqa: F811 - the imported fixture
    from playwright.sync_api import expect

    expect.set_options(timeout=120_000)  # a loaded 2-core machine renders slowly
    url, run_id = lineage_server
    context = browser.new_context(viewport=VIEWPORT)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.on("pageerror", lambda exc: errors.append(f"uncaught page error: {exc}"))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" and not DEEP_LINK_PROBE.search(
            f"{m.text} ({(m.location or {}).get('url', '')})") else None)
        page.goto(f"{url}/lineage?ancestry={quote(str(ROOT / 'assets' / 'lg_resnet_mini.safetensors'))}")
        expect(page.locator("h1", has_text="Lineage")).to_be_visible()
        main = page.locator('[data-testid="stMain"]')
        expect(main.locator('a[href="/learngene"]', has_text="lg_resnet_mini-cka")).to_be_visible()
        expect(main).not_to_contain_text("lineage descendant")  # the run came from the other ancestry
        page.goto(f"{url}/lineage?ancestry={quote(str(ROOT / 'assets' / 'lg_vit_tiny.safetensors'))}")
        expect(main.locator('a[href="/learngene"]', has_text="lg_vit_tiny-cka")).to_be_visible()
        expect(main.locator('a[href="/similarity"]', has_text="lg_vit_tiny.probe")).to_be_visible()
        expect(main.locator('a[href="/"]', has_text="demo lg_vit_tiny")).to_be_visible()
        expect(main).to_contain_text("gain +31.4 ± 20.3 points over 5 tasks")
        link = page.locator(f'a[href*="runs?runs={run_id}"]')
        expect(link).to_have_count(1)
        expect(link).to_have_text("lineage descendant")
        page.screenshot(path=str(ARTIFACTS / "lineage.png"), full_page=True)
        if link.get_attribute("target") == "_blank":  # Streamlit may open markdown links in a new tab
            with context.expect_page() as opened:
                link.click()
            page = opened.value
        else:
            link.click()
        page.wait_for_url(f"**/runs?*runs={run_id}*")
        expect(page.locator("h1", has_text="Runs")).to_be_visible()
        expect(page.locator(".st-key-runs-pick")).to_contain_text(run_id.rsplit("-", 1)[-1])
        page.screenshot(path=str(ARTIFACTS / "lineage-opened-run.png"), full_page=True)
    finally:
        context.close()
    assert not errors, errors
