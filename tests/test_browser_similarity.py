"""Browser tests of the Similarity page on the shipped ancestries: instant heatmap, measured gains.

The shipped ancestries (`assets/*.safetensors`) come with finished similarity results and measured
per-layer gains, so the page shows them the moment it opens, without any job. The app is the live
`studio_server` (conftest.py); the ancestry is chosen by the URL (`?ancestry=<path>`), and the studio
state the tests change is put back afterwards for the other browser tests.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.test_browser import Journey, browser, journey  # noqa: F401 - fixtures used here

pytestmark = pytest.mark.browser

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED = ["lg_vit_tiny", "lg_resnet_mini"]


@pytest.fixture
def restore_state(studio_server):
    path = studio_server.runs_dir / ".studio_state.json"
    before = path.read_bytes() if path.exists() else None
    yield
    if before is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(before)


def _runs(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}


def _open_similarity(j: Journey, stem: str) -> float:
    """Open the app on a shipped ancestry (named in the URL), then the Similarity page from the sidebar;
    returns the seconds from the click to the drawn heatmap."""
    from playwright.sync_api import expect

    j.page.goto(f"{j.server.url}/?ancestry={quote(str(ASSETS / f'{stem}.safetensors'))}")
    expect(j.page.locator("h1", has_text="Learngene Studio")).to_be_visible(timeout=120_000)
    j.idle()
    links = j.page.locator('[data-testid="stSidebarNav"] a')
    t0 = time.monotonic()
    links.filter(has=j.page.get_by_text("Similarity", exact=True)).first.click()
    expect(j.plot("sim-heatmap")).to_be_visible(timeout=60_000)
    return time.monotonic() - t0


@pytest.mark.parametrize("stem", SHIPPED)
def test_shipped_heatmap_shows_within_5_s_without_a_job(journey: Journey, restore_state, stem):  # noqa: F811
    from playwright.sync_api import expect

    j = journey
    before = _runs(j.server.runs_dir)
    seconds = _open_similarity(j, stem)
    j.timings[f"{stem} heatmap"] = round(seconds, 2)
    j.idle()
    j.shoot(f"similarity-shipped-{stem}")
    assert seconds <= 5.0, f"the shipped heatmap of {stem} took {seconds:.1f} s to appear"
    expect(j.page.get_by_text(re.compile(r"shipped with the ancestry")).first).to_be_visible()
    expect(j.page.get_by_text(re.compile(r"Pseudo-descendant: .*held-out accuracy")).first).to_be_visible()
    assert _runs(j.server.runs_dir) == before, "opening the page started a job"
    assert not j.errors, j.errors


def test_measured_gains_and_their_rank_correlation(journey: Journey, restore_state):  # noqa: F811
    from playwright.sync_api import expect

    j = journey
    _open_similarity(j, "lg_vit_tiny")
    gains = j.widget("probe-gains-box").locator(".js-plotly-plot").first
    gains.scroll_into_view_if_needed()
    expect(gains).to_be_visible(timeout=30_000)
    expect(gains.locator(".bars path").first).to_be_attached()  # the gain bars are drawn
    rho = j.widget("probe-rho")
    expect(rho).to_contain_text("Spearman rho")
    assert re.search(r"[+-]\d\.\d\d", rho.inner_text()), rho.inner_text()
    j.idle()
    j.shoot("similarity-measured-gains")
    assert not j.errors, j.errors
