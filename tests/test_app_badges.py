"""AppTest of the quality badges: the ancestry on the Ancestry and Similarity pages (at chance: condensing
waits for "use anyway", which adds --force), the pseudo-descendant of a similarity result, and a finished
train run's ancestry and baseline on the Runs page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import cancel_runs, require_module

require_module("streamlit")

from tests.test_app import make_runs, open_page, similarity_json, tiny_ancestry  # noqa: E402,F401 - fixture
from tests.test_app_dashboard import train_output  # noqa: E402


def badges(at) -> list[str]:
    return [m.value for m in at.markdown if "-badge[" in m.value]


@pytest.fixture
def flat_ancestry(tmp_path, tiny_ancestry, monkeypatch):  # noqa: F811
    """The tiny ancestry with a card that records training and a held-out accuracy at chance, and a
    shipped CKA result whose pseudo-descendant did not learn."""
    assets = tmp_path / "assets"
    assets.mkdir()
    ckpt = Path(shutil.copy(tiny_ancestry, assets / "tiny_vit.safetensors"))
    card = json.loads(tiny_ancestry.with_suffix(".json").read_text())
    card.update(epochs=4, base_accuracy=0.016)
    card["extra"] = {**card.get("extra", {}), "heldout_images": 3200}
    (assets / "tiny_vit.json").write_text(json.dumps(card))
    sim = similarity_json(ckpt, selected=(1, 3))
    sim["extras"] = {"pd_test_acc": 0.07, "pd_chance": 0.0625, "pd_learned": "no"}
    (assets / "similarity").mkdir()
    (assets / "similarity" / "tiny_vit-cka.json").write_text(json.dumps(sim))
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("LEARNGENE_ANCESTRY", str(ckpt))
    monkeypatch.setenv("LEARNGENE_ASSETS_DIR", str(assets))
    yield tmp_path / "runs"
    cancel_runs(tmp_path / "runs")


def test_an_ancestry_at_chance_is_badged_and_condensing_waits_for_use_anyway(flat_ancestry):
    at = open_page("ancestry")
    assert any("ancestry: at chance" in b and b.startswith(":red-badge[") for b in badges(at)), badges(at)
    assert any("at chance: 1.6%, interval" in c.value for c in at.caption)
    at = open_page("similarity")
    shown = badges(at)
    assert any("ancestry: at chance" in b for b in shown), shown
    assert any("pseudo-descendant: at chance" in b for b in shown), shown
    assert at.button(key="cond-go").disabled, "refused until 'use anyway'"
    at.checkbox(key="cond-force").check().run()
    assert not at.button(key="cond-go").disabled
    at.button(key="cond-go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (run,) = [p for p in flat_ancestry.iterdir() if p.is_dir() and not p.name.startswith(".")]
    argv = json.loads((run / "config.json").read_text())["spec"]["argv"]
    assert argv[0] == "condense" and "--force" in argv


def test_an_ancestry_whose_card_records_no_training_says_unknown(tmp_path, tiny_ancestry, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("LEARNGENE_ANCESTRY", str(tiny_ancestry))
    monkeypatch.setenv("LEARNGENE_ASSETS_DIR", str(tiny_ancestry.parent))
    at = open_page("ancestry")
    assert any(b.startswith(":gray-badge[") and "ancestry: accuracy unknown" in b for b in badges(at)), badges(at)
    assert not open_page("similarity").button(key="cond-go").disabled


def test_a_finished_train_run_badges_its_ancestry_and_baseline(flat_ancestry):
    from learngene.jobs import JobManager

    output = train_output(1e-3, 0.2)
    output["ancestry_quality"] = {"state": "learned", "line": "learned: 63.7%, interval 62.0% to 65.3%, chance 1.6%",
                                  "source": "card"}
    output["summary"].update(chance=0.2, baseline_state="not clearly above chance",
                             baseline_line="not clearly above chance: 32.3%, interval down to 19.8%, chance 20.0%",
                             learngene_state="learned", learngene_line="learned: 52.0%, interval 45.0% to 59.0%")
    (run_id,) = make_runs(flat_ancestry, {"kind": "train", "name": "badged", "outputs": {"summary.json": output}})
    out = JobManager(flat_ancestry).run_dir(run_id) / "outputs"
    (out / "predictions.json").write_text(json.dumps({"tasks": []}))
    at = open_page("runs", runs=run_id)  # a shared link that selects the run
    shown = badges(at)
    assert not at.error, [e.value for e in at.error]
    assert any(b.startswith(":green-badge[") and "ancestry: learned" in b for b in shown), shown
    assert any(b.startswith(":orange-badge[") and "baseline: not clearly above chance" in b for b in shown), shown
    assert any("interval down to 19.8%" in c.value for c in at.caption)
