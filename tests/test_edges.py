"""The walk's rough edges, as AppTest and figure tests: score bars scaled to the scores with their ranks, the
leave-one-out chart named by the layer set it measured, one spelling of "open-world" on the pages, and the
runs table ticking the runs a shared link names.

The Home page at 1400 px (no cut label, no hidden columns) is a browser test: tests/test_browser_edges.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import require_module

require_module("streamlit")
from tests.test_app import (  # noqa: E402,F401 - env, tiny_ancestry: fixtures
    PAGES,
    PERSON,
    TRAIN_SUMMARY,
    chart,
    env,
    epoch_records,
    make_runs,
    new_session,
    open_page,
    save_state,
    tiny_ancestry,
)

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
VIT = ASSETS / "lg_vit_tiny.safetensors"


@pytest.fixture
def shipped_vit(tmp_path, monkeypatch, tmp_path_factory) -> Path:
    """The app on the shipped lg_vit_tiny and its shipped results (similarity, probe); runs folder in tmp."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(runs))
    monkeypatch.setenv("LEARNGENE_ANCESTRY", str(VIT))
    monkeypatch.setenv("LEARNGENE_ASSETS_DIR", str(ASSETS))
    monkeypatch.setenv("LEARNGENE_CACHE", str(tmp_path_factory.getbasetemp() / "data-cache"))
    return runs


def _scores(stem: str, rule: str = "row_max") -> tuple[list[str], list[float]]:
    from learngene.condense import SimilarityResult, layer_scores

    sim = SimilarityResult.load(ASSETS / "similarity" / f"lg_vit_tiny-{stem}.json")
    return list(sim.row_names), list(layer_scores(sim.array, rule))


# ------------------------------------------------------------------ score bars scaled to the scores


@pytest.mark.parametrize("stem", ["cka", "weights"])
def test_score_bars_of_high_scores_do_not_start_at_zero(stem):
    """CKA 0.79-0.99 and weight cosines 0.978-0.996: from 0 every bar looks the same height. The axis starts just
    below the lowest score, so the highest bar stands at least twice as tall as the lowest; ranks are written."""
    from app.logic import figures

    names, scores = _scores(stem)
    fig = figures.score_bars(names, scores)
    lo, hi = fig.layout.yaxis.range
    assert 0 < lo < min(scores) and hi >= max(scores)
    assert (max(scores) - lo) >= 2 * (min(scores) - lo), "the ranking is visible in the bars' heights"
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    assert [fig.data[0].text[i] for i in order] == [f"#{r}" for r in range(1, len(scores) + 1)]
    assert "axis from" in fig.layout.yaxis.title.text, "the axis title says the bars do not start at 0"


def test_score_bars_of_spread_scores_keep_zero():
    """Scores from near 0 to high (the shipped ResNet gradient view: 0.10-0.90) keep an axis from 0."""
    from app.logic import figures

    fig = figures.score_bars(["a", "b", "c"], [0.1, 0.5, 0.9])
    assert fig.layout.yaxis.range is None
    assert figures.score_axis_range([0.2, None, float("nan")]) is not None  # one finite score: scaled around it
    assert figures.score_ranks([0.5, None, 0.9]) == [2, 0, 1]


def test_similarity_page_scales_the_score_bars(shipped_vit):
    at = open_page("similarity")
    assert not at.error, [e.value for e in at.error]
    bars = chart(at, "sim-bars")
    lo, _ = bars["layout"]["yaxis"]["range"]
    _, scores = _scores("cka")
    assert 0 < lo < min(scores)
    assert sorted(bars["data"][0]["text"]) == sorted(f"#{r}" for r in range(1, 9))


# ------------------------------------------------------------------ the leave-one-out chart names its set


def _loo_info(at) -> list[str]:
    return [i.value for i in at.info if "leave-one-out" in i.value]


def test_leave_one_out_is_named_by_its_set_and_says_when_it_differs(shipped_vit):
    shipped = json.loads((ASSETS / "lg_vit_tiny.probe.json").read_text())
    measured = ", ".join(map(str, sorted(shipped["chosen"])))
    save_state(shipped_vit, layers=[0, 1, 2, 3])  # the demo's layers: not the set the shipped probe measured
    at = open_page("similarity")
    assert not at.error, [e.value for e in at.error]
    assert f"Leave-one-out on layers {measured}" in chart(at, "probe-loo")["layout"]["title"]["text"]
    (note,) = _loo_info(at)
    assert "differs from your current learngene (layers 0, 1, 2, 3)" in note and f"layers {measured}" in note
    save_state(shipped_vit, layers=sorted(shipped["chosen"]))
    at = open_page("similarity")
    assert not _loo_info(at), "no note when the chart is of the current learngene"
    save_state(shipped_vit, layers=[])
    (note,) = _loo_info(open_page("similarity"))
    assert "no layers chosen yet" in note


# ------------------------------------------------------------------ one spelling: open-world


def _texts(node) -> list[str]:
    """The text of every element under an AppTest node (its protobuf message printed)."""
    out, proto = [], getattr(node, "proto", None)
    if proto is not None:
        out.append(str(proto))
    for child in getattr(node, "children", {}).values():
        out += _texts(child)
    return out


def test_every_page_spells_open_world_one_way(env):  # noqa: F811 - the imported fixture
    at = None
    seen = []
    for page in PAGES:
        at = open_page(page, at)
        texts = _texts(at.main) + _texts(at.sidebar)
        assert not [t for t in texts if "open_world" in t], f"{page}: " + next(t for t in texts if "open_world" in t)[:300]
        text = "\n".join(texts)
        seen.append("open-world" in text)
    assert any(seen), "the pages name the open-world classes"


# ------------------------------------------------------------------ the runs table ticks a link's runs


def _runs_table(at) -> tuple[list[str], list[int], str]:
    """(run ids in table order, the rows the table shows ticked, the table's element id)."""
    el = next(d for d in at.dataframe if "run" in d.value.columns and "gain" in d.value.columns)
    ticked = json.loads(el.proto.selection_default or "{}").get("selection", {}).get("rows", [])
    return list(el.value["run"]), ticked, el.proto.id


def test_a_links_runs_are_ticked_in_the_runs_table(env):  # noqa: F811 - the imported fixture
    summary = {**TRAIN_SUMMARY, "train": {"lr": 1e-3, "epochs": 4}, "tasks": {"n_way": 5, "k_shot": 10}}
    ids = make_runs(env, *[{"kind": "train", "name": f"run {i}", "outputs": {"summary.json": summary},
                            "metrics": epoch_records()} for i in range(3)])
    linked = [ids[2], ids[0]]
    at = open_page("runs", person="someone-else-0000000000000000000000000000", runs=",".join(linked))
    assert not at.exception and not at.error, [e.value for e in at.error]
    runs, ticked, first_id = _runs_table(at)
    assert sorted(runs[r] for r in ticked) == sorted(linked), "the link's runs are ticked in the table"
    assert sorted(at.multiselect(key="runs-pick").value) == sorted(linked)
    at.multiselect(key="runs-pick").set_value([ids[1]]).run()  # the list beside it changes the choice
    runs, ticked, table_id = _runs_table(at)
    assert [runs[r] for r in ticked] == [ids[1]] and table_id != first_id, "the table is drawn with the new ticks"
    again = new_session(PERSON)  # the same choice comes back ticked for its owner on a reload (saved choices)
    save_state(env, ui={"runs-pick": [ids[1]]})
    again.run()
    runs, ticked, _ = _runs_table(open_page("runs", again))
    assert [runs[r] for r in ticked] == [ids[1]]


def test_the_runs_table_leaves_missing_numbers_blank(env):  # noqa: F811 - the imported fixture
    """A run without results (a condense run has no accuracies) shows blank cells, not "None" (Streamlit's
    default text for a missing number)."""
    make_runs(env, {"kind": "condense", "name": "no accuracies"})
    at = open_page("runs")
    el = next(d for d in at.dataframe if "run" in d.value.columns and "gain" in d.value.columns)
    assert el.value["gain"].isna().all()
    assert el.proto.HasField("placeholder") and el.proto.placeholder == "", "a missing number is a blank cell"


# ------------------------------------------------------------------ the speed-up's note says what the warning says


def test_the_speed_ups_note_names_a_baseline_not_clearly_above_chance(env):  # noqa: F811 - the imported fixture
    """A baseline whose interval reaches chance but whose mean is above it is "not clearly above chance" in the
    warning; the note under the speed-up says the same (it said "baseline at chance")."""
    import copy

    summary = copy.deepcopy(TRAIN_SUMMARY)
    summary["summary"].update(chance=0.2, baseline_state="not clearly above chance", learngene_state="learned",
                              baseline_line="not clearly above chance: 32.3%, interval down to 19.8%, chance 20.0%")
    (run_id,) = make_runs(env, {"kind": "train", "name": "a train run", "outputs": {"summary.json": summary},
                                "metrics": epoch_records()})
    at = open_page("train", watch=run_id)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("not clearly above chance: 32.3%" in w.value for w in at.warning)
    speed = next(m for m in at.metric if m.label == "speed-up to target")
    assert speed.delta == "baseline not clearly above chance"
