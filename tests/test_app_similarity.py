"""AppTest of the Similarity page with shipped results: heatmap without a job, pseudo-descendant vs
chance, measured gains with their rank correlation, and the probe launcher's command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import cancel_runs, require_module

require_module("streamlit")  # skipped without streamlit on a developer machine; fails under CI

from tests.test_app import chart, open_page, similarity_json, tiny_ancestry  # noqa: E402,F401 - fixture

LAYERS = [f"blocks.{i}" for i in range(4)]


def _gain(mean: float) -> dict:
    return {"mean": mean, "ci95": 0.02, "per_task": [mean - 0.01, mean + 0.01]}


def probe_json(ckpt: Path, gains: list[float]) -> dict:
    from learngene.models import read_card

    return {"format": "learngene.probe/1",
            "ancestry": {"arch": "lg_vit_tiny", "path": str(ckpt), "sha256": read_card(ckpt).sha256},
            "settings": {"n_way": 5, "k_shot": 10, "tasks": 2, "epochs": 3, "lr": 1e-3, "weight_decay": 0.05,
                         "batch_size": 10, "test_per_class": 100, "seed": 0, "data_seed": 0, "dataset": "shapes",
                         "device": "cpu", "batched": True},
            "layers": LAYERS, "chance": 0.2,
            "accuracy": {"baseline": _gain(0.25), "stem": _gain(0.3), "chosen": None}, "stem_gain": _gain(0.05),
            "single": [{"layer": i, "name": n, "acc": _gain(0.3 + g), "gain": _gain(g)}
                       for i, (n, g) in enumerate(zip(LAYERS, gains, strict=True))],
            "chosen": [], "leave_one_out": [], "elapsed_s": 1.0, "created": "2026-12-01T00:00:00+0000"}


@pytest.fixture
def shipped(tmp_path, tiny_ancestry, monkeypatch):  # noqa: F811
    """A copy of the tiny ancestry with a shipped CKA result (pseudo-descendant at chance) and gains."""
    assets = tmp_path / "assets"
    assets.mkdir()
    ckpt = Path(shutil.copy(tiny_ancestry, assets / "tiny_vit.safetensors"))
    shutil.copy(tiny_ancestry.with_suffix(".json"), assets / "tiny_vit.json")
    sim = similarity_json(ckpt, selected=(1, 3))
    sim["extras"] = {"pd_test_acc": 0.07, "pd_chance": 0.0625, "pd_learned": "no"}
    (assets / "similarity").mkdir()
    (assets / "similarity" / "tiny_vit-cka.json").write_text(json.dumps(sim))
    scores = sim["scores"]
    order = sorted(range(4), key=scores.__getitem__)  # gains ranked exactly as the scores: rho = +1
    gains = [0.0] * 4
    for rank, i in enumerate(order):
        gains[i] = 0.01 * (rank + 1)
    (assets / "tiny_vit.probe.json").write_text(json.dumps(probe_json(ckpt, gains)))
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("LEARNGENE_ANCESTRY", str(ckpt))
    monkeypatch.setenv("LEARNGENE_ASSETS_DIR", str(assets))
    yield tmp_path / "runs"
    cancel_runs(tmp_path / "runs")


def test_the_shipped_result_shows_without_a_job(shipped):
    at = open_page("similarity")
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="sim-pick").value == "shipped:cka"
    assert chart(at, "sim-heatmap")["data"][0]["type"] == "heatmap"
    captions = " ".join(c.value for c in at.caption)
    assert "shipped with the ancestry" in captions and "7.0%" in captions and "chance 6.2%" in captions
    assert any("at chance" in w.value for w in at.warning), "a pseudo-descendant at chance is called out"
    runs = [p for p in shipped.iterdir() if p.is_dir() and not p.name.startswith(".")] if shipped.exists() else []
    assert not runs, "a job was started"


def test_measured_gains_and_their_rank_correlation(shipped):
    at = open_page("similarity")
    bars = chart(at, "probe-gains")["data"][0]
    assert sorted(round(v, 6) for v in bars["y"]) == [1.0, 2.0, 3.0, 4.0]  # points, one bar per layer
    rho = next(m for m in at.metric if m.label.startswith("Spearman"))
    assert rho.value == "+1.00" and rho.delta.startswith("95%: ")
    from learngene.condense import SimilarityResult, layer_scores
    from learngene.descend.probe_report import spearman

    sim = SimilarityResult.load(shipped.parent / "assets" / "similarity" / "tiny_vit-cka.json")
    probe = json.loads((shipped.parent / "assets" / "tiny_vit.probe.json").read_text())
    expected = spearman(layer_scores(sim.array, "diagonal"), [s["gain"]["mean"] for s in probe["single"]])
    at.selectbox(key="sim-rule").set_value("diagonal").run()  # the correlation follows the chosen score
    rho = next(m for m in at.metric if m.label.startswith("Spearman"))
    assert rho.value == f"{expected:+.2f}"
    code = " ".join(c.value for c in at.code)
    assert "python -m learngene probe --ancestry" in code and "--tasks 10" in code


def test_condensing_from_the_page_runs_beside_a_training_job(shipped):
    """The page's condense job gets one CPU slot more than the default, so it does not queue behind a
    training job a person already started (on 2 cores the default is one slot)."""
    from learngene.jobs import default_max_cpu_jobs

    at = open_page("similarity")
    at.button(key="cond-go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (run,) = [p for p in shipped.iterdir() if p.is_dir() and not p.name.startswith(".")]
    config = json.loads((run / "config.json").read_text())
    assert config["spec"]["argv"][0] == "condense" and config["max_cpu_jobs"] == default_max_cpu_jobs() + 1
