"""The app as a teacher uses it live: state that stays across page changes and
reloads, runs that never share a curve, inputs that never lie, one run per double click, readable
charts and plain error text. AppTest tests on the tiny ancestry of tests/test_app.py, plus unit tests of
the Streamlit-free helpers (`app.logic.inputs`, `app.shared.launch`, `app.logic.runnames`, `app.logic.messages`)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_module

require_module("streamlit")  # skipped without streamlit on a developer machine; fails under CI

from app.logic import figures, inputs, messages, runnames  # noqa: E402
from app.shared import launch  # noqa: E402
from tests.test_app import (  # noqa: E402,F401 - env, finished, tiny_ancestry: fixtures, used through `request`
    PERSON,  # noqa: E402
    ROOT,
    TRAIN_SUMMARY,
    chart,
    copy_runs,
    env,
    epoch_records,
    finished,
    open_page,
    save_state,
    saved_state,
    tiny_ancestry,
)

OWNER = __import__("app.person.people", fromlist=["public_id"]).public_id(PERSON)


@pytest.fixture
def studio(request) -> Path:
    """The runs folder of an app on the tiny ancestry (tests/test_app.py's `env`)."""
    return request.getfixturevalue("env")


@pytest.fixture
def done_runs(request) -> dict:
    """Finished condense / train / sweep runs to copy in (tests/test_app.py's `finished`)."""
    return request.getfixturevalue("finished")


def reload(at=None, page: str = "train", **query):
    """A new browser session (what a reload is to the server): state from the file and the URL only."""
    return open_page(page, **query)


def captions(at) -> list[str]:
    return [c.value for c in at.caption]


def progress_texts(at) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def bold_traces(fig: dict) -> list[dict]:
    return [t for t in fig["data"] if t.get("showlegend") is not False and not str(t.get("name", "")).endswith("(raw)")
            and t.get("xaxis", "x") == "x"]


def two_train_runs(runs_dir: Path, name: str = "5-way 10-shot · layers 2,3", tags: list[dict] | None = None) -> list[str]:
    """Two finished train runs with the same name (each with its curves and summary)."""
    from learngene.jobs import JobManager, JobSpec

    mgr = JobManager(runs_dir, max_cpu_jobs=2)
    tags = tags or [{}, {}]
    ids = [mgr.start(JobSpec(argv=["selftest", "--records", "1"], kind="train", name=name, tags=t, owner=OWNER))
           for t in tags]
    for run_id, acc in zip(ids, (0.0, 0.1), strict=True):
        assert mgr.wait(run_id, timeout=60).state == "done"
        folder = mgr.run_dir(run_id)
        (folder / "outputs" / "summary.json").write_text(json.dumps(TRAIN_SUMMARY))
        with open(folder / "metrics.jsonl", "a") as f:
            for rec in epoch_records(4):
                f.write(json.dumps({**rec, "test_acc": rec["test_acc"] + acc}) + "\n")
    return ids


# ------------------------------------------------------------------ 1. state that survives page changes


def test_train_settings_survive_a_page_change_and_a_reload(studio):
    at = open_page("train", layers="2,3")
    at.number_input(key="task-epochs").set_value(7).run()
    at.number_input(key="task-lr").set_value(0.003).run()
    at.selectbox(key="task-opt").set_value("sgd").run()
    at.text_input(key="sweep-lrs").set_value("1e-3, 1e-2").run()
    open_page("runs", at)
    open_page("train", at)
    assert at.number_input(key="task-epochs").value == 7, "epochs came back as the default after a page change"
    assert at.number_input(key="task-lr").value == pytest.approx(0.003)
    assert at.selectbox(key="task-opt").value == "sgd"
    assert at.text_input(key="sweep-lrs").value == "1e-3, 1e-2"
    at2 = reload()
    assert at2.number_input(key="task-epochs").value == 7, "and after a reload"
    assert at2.selectbox(key="task-opt").value == "sgd"


def test_learngene_layer_box_comes_back_and_adding_one_adds(studio):
    at = open_page("learngene")
    at.multiselect(key="lg-multi").set_value([0, 1, 2]).run()
    open_page("train", at)
    open_page("learngene", at)
    assert at.multiselect(key="lg-multi").value == [0, 1, 2], "the layer box came back empty"
    at.multiselect(key="lg-multi").set_value([*at.multiselect(key="lg-multi").value, 3]).run()
    assert saved_state(studio)["layers"] == [0, 1, 2, 3], "adding a layer replaced the learngene"


def test_watched_runs_and_chart_controls_come_back(studio, done_runs):
    (run_id,) = copy_runs(studio, done_runs, "train")
    at = open_page("train", watch=run_id)
    at.slider(key="train-smooth").set_value(0.2).run()
    at.segmented_control(key="train-x").set_value("wall-clock").run()
    at.toggle(key="train-log").set_value(False).run()
    open_page("runs", at)
    open_page("train", at)
    assert at.multiselect(key="train-watch").value == [run_id], "runs on the chart came back empty"
    assert at.get("progress"), "the watched run's progress row is back"
    assert chart(at, "train-curves")["layout"]["xaxis"]["title"]["text"] == "wall-clock seconds"
    assert at.slider(key="train-smooth").value == pytest.approx(0.2)
    assert at.toggle(key="train-log").value is False
    at2 = reload()  # the URL has no `watch`: the watched run and the controls come from the file
    assert at2.multiselect(key="train-watch").value == [run_id]
    assert at2.slider(key="train-smooth").value == pytest.approx(0.2)


def test_runs_page_choices_come_back(studio, done_runs):
    train_id, sweep_id = copy_runs(studio, done_runs, "train", "sweep")
    at = open_page("runs")
    at.multiselect(key="runs-kinds").set_value(["train"]).run()
    at.multiselect(key="runs-pick").set_value([train_id]).run()
    open_page("train", at)
    open_page("runs", at)
    assert at.multiselect(key="runs-kinds").value == ["train"]
    assert at.multiselect(key="runs-pick").value == [train_id]
    assert reload(page="runs").multiselect(key="runs-pick").value == [train_id]


# ------------------------------------------------------------------ 2. one series per run


def test_two_runs_with_the_same_name_are_two_series(studio):
    ids = two_train_runs(studio)
    at = open_page("train", watch=",".join(ids))
    fig = chart(at, "train-curves")
    bold = bold_traces(fig)
    names = [t["name"] for t in bold]
    assert len(bold) == 4 and len(set(names)) == 4, f"two runs x two models, each its own series: {names}"
    for t in bold:
        xs = figures_xs(t)
        assert xs == sorted(xs), f"{t['name']} jumps back: {xs}"
    colours = {t["line"]["color"] for t in bold}
    assert len(colours) == 2, "one colour per run"
    headings = [m.value for m in at.markdown if m.value.startswith("**Summary of ")]
    assert len(headings) == 2 and len(set(headings)) == 2, headings
    # the same run keeps its colour on the Runs page
    open_page("runs", at)
    at.multiselect(key="runs-pick").set_value(ids).run()
    runs_colours = {t["name"]: t["line"]["color"] for t in bold_traces(chart(at, "runs-overlay"))}
    assert {t["name"]: t["line"]["color"] for t in bold} == runs_colours


def figures_xs(trace: dict) -> list[float]:
    x = trace["x"]
    if isinstance(x, dict):  # plotly's typed-array JSON
        import base64

        return np.frombuffer(base64.b64decode(x["bdata"]), dtype=np.dtype(x["dtype"])).tolist()
    return list(x)


def test_run_labels_carry_what_differs_and_colours_are_stable(studio):
    a, b = two_train_runs(studio, tags=[{"lr": 0.001, "epochs": 40}, {"lr": 0.003, "epochs": 40}])
    from learngene.jobs import JobManager

    mgr = JobManager(studio)
    ia, ib = mgr.get(a), mgr.get(b)
    names = runnames.labels([ia, ib])
    assert names[a].endswith("lr 0.001") and names[b].endswith("lr 0.003")
    twin = dataclasses.replace(ia, run_id=ia.run_id[:-6] + "ffffff")
    same = runnames.labels([ia, twin])
    assert same[ia.run_id] == f"{ia.label} · {runnames._started(ia)} · {runnames.short_id(ia.run_id)}"
    assert same[twin.run_id].endswith(" · ffffff"), "runs alike in every tag (and started together): the short id"
    later = dataclasses.replace(ia, run_id=twin.run_id, created_at=ia.created_at + 61)
    assert len({v.split(" · ")[-1] for v in runnames.labels([ia, later]).values()}) == 2, "told apart by start time"
    assert runnames.colors([ia, ib], figures.PALETTE)[b] == runnames.colors([ib], figures.PALETTE)[b]
    assert runnames.train_name({"n_way": 5, "k_shot": 10, "lr": 0.001, "epochs": 40}, [0, 2]) == \
        "5-way 10-shot · layers 0,2 · lr 0.001 · 40 epochs"


# ------------------------------------------------------------------ 3. switching ancestry


@pytest.fixture
def two_ancestries(tmp_path, request, monkeypatch):
    source = request.getfixturevalue("tiny_ancestry")
    assets = tmp_path / "assets2"
    assets.mkdir()
    for stem in ("first", "second"):
        shutil.copy(source, assets / f"{stem}.safetensors")
        shutil.copy(source.with_suffix(".json"), assets / f"{stem}.json")
    monkeypatch.setenv("LEARNGENE_ASSETS_DIR", str(assets))
    monkeypatch.setenv("LEARNGENE_ANCESTRY", str(assets / "first.safetensors"))
    return assets


def test_switching_ancestry_says_it_cleared_the_learngene_and_restores_it(studio, two_ancestries):
    at = open_page("learngene")
    at.multiselect(key="lg-multi").set_value([1, 2]).run()
    open_page("ancestry", at)
    at.selectbox(key="anc-pick").set_value("second.safetensors (shipped)").run()
    at.button(key="anc-use").click().run()
    said = " ".join(i.value for i in at.info)
    assert "cleared" in said and "layers 1, 2" in said and "first.safetensors" in said, said
    assert saved_state(studio)["layers"] == []
    open_page("learngene", at)  # the second ancestry gets a learngene of its own
    at.multiselect(key="lg-multi").set_value([3]).run()
    open_page("ancestry", at)
    at.selectbox(key="anc-pick").set_value("first.safetensors (shipped)").run()
    at.button(key="anc-use").click().run()
    said = " ".join(i.value for i in at.info)
    assert "Restored" in said and "layers 1, 2" in said, said
    assert saved_state(studio)["layers"] == [1, 2]
    open_page("learngene", at)
    assert at.multiselect(key="lg-multi").value == [1, 2]


# ------------------------------------------------------------------ 4. inputs that never lie


@pytest.mark.parametrize(("key", "value", "says"), [
    ("task-nway", 0, "N-way must be at least 2"),
    ("task-lr", -5, "learning rate must be more than 0"),
    ("task-epochs", 1e9, "epochs must be at most 1000"),
    ("task-kshot", 2.5, "K-shot must be a whole number"),
])
def test_an_invalid_setting_disables_train_and_says_why(studio, key, value, says):
    at = open_page("train", layers="2,3")
    assert at.button(key="train-go").disabled is False
    at.number_input(key=key).set_value(value).run()
    assert at.number_input(key=key).value == value, "the field shows what was typed (no silent replacement)"
    assert at.button(key="train-go").disabled is True, "the run would have used another value"
    assert any(says in c for c in captions(at)), captions(at)
    assert says in (at.button(key="train-go").proto.help or "")


def test_an_invalid_sweep_grid_disables_the_sweep(studio):
    at = open_page("train", layers="2,3")
    assert at.button(key="sweep-go").disabled is False
    at.text_input(key="sweep-lrs").set_value("1e-3, 1e9").run()
    assert at.button(key="sweep-go").disabled is True
    assert any("learning rate must be at most 10" in c for c in captions(at)), captions(at)
    at.text_input(key="sweep-lrs").set_value("1e-3").run()
    at.text_input(key="sweep-shots").set_value("5, 2.5").run()
    assert at.button(key="sweep-go").disabled is True
    assert any("K-shot must be a whole number" in c for c in captions(at)), captions(at)


def test_number_fields_check_bounds_and_whole_numbers():
    f = inputs.Field("epochs", 1, 1000, integer=True)
    assert f.problem(7.0) is None and f.cast(7.0) == 7
    assert f.problem(1e9) == "epochs must be at most 1000, not 1,000,000,000"
    assert f.problem(0) == "epochs must be at least 1, not 0"
    assert f.problem(2.5) == "epochs must be a whole number, not 2.5"
    assert f.problem(None) == "epochs: type a number"
    assert f.problem(math.nan) == "epochs: nan is not a finite number"
    lr = inputs.Field("learning rate", 0, 10, above=True)
    assert lr.problem(0) == "learning rate must be more than 0, not 0" and lr.problem(1e-6) is None
    assert inputs.parse_grid("3e-4, 1e-3,1e-3", lr) == [3e-4, 1e-3]
    for bad, says in (("1e9", "at most 10"), ("x", "'x' is not a number"), ("", "the grid is empty")):
        with pytest.raises(ValueError, match=says):
            inputs.parse_grid(bad, lr)
    assert inputs.check(inputs.task_fields(20), {"n_way": 21, "k_shot": 5})["n_way"] == "N-way must be at most 20, not 21"


# ------------------------------------------------------------------ 5. one run per double click; queue places


def test_a_second_click_with_the_same_settings_returns_the_same_run(studio):
    from learngene.jobs import JobManager

    at = open_page("train", layers="2,3")
    at.button(key="train-go").click().run()
    at.button(key="train-go").click().run()
    runs = JobManager(studio).list(kind="train")
    assert len(runs) == 1, [r.run_id for r in runs]
    assert saved_state(studio)["watched"] == [runs[0].run_id]
    at.number_input(key="task-epochs").set_value(3).run()  # other settings: another run
    at.button(key="train-go").click().run()
    assert len(JobManager(studio).list(kind="train")) == 2


def test_start_once_returns_the_live_twin(tmp_path):
    from learngene.jobs import JobManager, JobSpec

    mgr = JobManager(tmp_path / "runs", max_cpu_jobs=1)
    spec = JobSpec(argv=["selftest", "--records", "1", "--sleep", "30"], kind="test", name="a")
    first, started = launch.start_once(mgr, spec)
    again, started_again = launch.start_once(mgr, JobSpec(argv=list(spec.argv), kind="test", name="another name"))
    assert started and not started_again and again == first
    other, started_other = launch.start_once(mgr, JobSpec(argv=["selftest", "--records", "2"], kind="test"))
    assert started_other and other != first
    try:
        mgr.cancel(first)
        assert mgr.wait(first, timeout=30).state == "cancelled"
        third, started_third = launch.start_once(mgr, spec)  # the first is over: the same settings start anew
        assert started_third and third != first
    finally:
        for run_id in mgr.cancel_all():
            mgr.wait(run_id, timeout=30)
    assert len(mgr.list(kind="test")) == 3


def test_queued_runs_show_their_place_in_the_queue(studio):
    from learngene.jobs import JobManager, JobSpec

    mgr = JobManager(studio, max_cpu_jobs=1)
    blocker = mgr.start(JobSpec(argv=["selftest", "--records", "1", "--sleep", "60"], kind="train", name="blocker"))
    deadline = time.monotonic() + 60
    while mgr.get(blocker).state != "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    waiting = [mgr.start(JobSpec(argv=["selftest", "--records", "1"], kind="train", name=f"waiting {i}"))
               for i in (1, 2)]
    assert launch.queue_place(mgr.get(waiting[1])) == (2, 2)
    at = open_page("train", watch=",".join(waiting))
    texts = progress_texts(at)
    assert any("waiting 1" in t and "next in the cpu queue" in t for t in texts), texts
    assert any("waiting 2" in t and "2nd in the cpu queue (1 run ahead)" in t for t in texts), texts


# ------------------------------------------------------------------ 6. charts and text


def test_curves_titles_have_room_and_log_ticks_read_as_numbers():
    frame = figures.curves_frame([{"kind": "epoch", "model": m, "epoch": e, "train_loss": 0.9 - 0.1 * e,
                                   "test_acc": 0.5, "time": e} for e in range(8) for m in ("learngene", "baseline")])
    fig = figures.training_curves(frame, log_loss=True)
    titles = [a.text for a in fig.layout.annotations]
    assert "training loss" in titles and fig.layout.margin.t >= 30, "subplot titles clipped"
    y = fig.layout.yaxis
    assert y.type == "log" and list(y.ticktext) == ["0.2", "0.3", "0.5"], "plotly's own ticks read 9, 8, 7…"
    assert figures.log_ticks(0.02, 3.0) == [0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
    assert figures.log_ticks(0.5, 400.0) == [1.0, 10.0, 100.0]
    assert figures.log_ticks(0.62, 0.71) == [0.65, 0.7]


def test_sweep_title_and_legend_do_not_overlap():
    import pandas as pd

    df = pd.DataFrame({"model": ["learngene", "baseline"], "lr": [1e-3, 1e-3], "mean": [.5, .4], "ci": [.1, .1]})
    fig = figures.sweep_figure(df, x="lr", title="sensitivity: accuracy against learning rate (K=5)")
    assert fig.layout.title.yanchor == "top" and fig.layout.title.yref == "container"
    assert fig.layout.legend.yanchor == "bottom" and fig.layout.margin.t >= 80, "a row for the title, one for the legend"


def test_similarity_heatmap_cells_are_clicked_and_boxes_flip(studio, done_runs):
    from app.ui import selection

    copy_runs(studio, done_runs, "condense")
    at = open_page("similarity")
    # a drag mode of "select" makes Streamlit turn click selection off: none is set
    assert chart(at, "sim-heatmap")["layout"].get("dragmode") in (None, "zoom", "pan")
    assert any("Click a cell" in c for c in captions(at))
    assert selection.rows_from_points([{"customdata": [2, 0]}], "heatmap", 4) == [2]


def _flip_script() -> None:
    import streamlit as st

    from app.person import state
    from app.ui import selection

    state.update(layers=[0, 1])
    selection.apply_rows([1, 2])  # a box over rows 1 and 2
    st.write(",".join(map(str, state.get().layers)))
    selection.apply_rows([2])  # a click on a cell of row 2
    st.write(",".join(map(str, state.get().layers)))


def test_a_box_flips_each_layer_it_covers_and_a_click_toggles_one(studio):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_flip_script, default_timeout=60)
    at.session_state["_lg_person_token"] = "flip-person-" + "0" * 32
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.value for m in at.markdown] == ["0,2", "0"]


def test_a_finished_condense_run_is_not_waiting_for_an_epoch(studio, done_runs):
    (cond_id,) = copy_runs(studio, done_runs, "condense")
    save_state(studio, demo={"condense": cond_id, "train": None, "error": "the demo stopped"})
    at = open_page("home")
    assert not any("Waiting for the first epoch" in c for c in captions(at)), captions(at)
    assert any(":material/check_circle:" in t for t in progress_texts(at)), progress_texts(at)


def test_state_icons_are_material_icons(studio, done_runs):
    from app.ui import widgets

    assert all(icon.startswith(":material/") for icon in widgets.STATE_ICONS.values())
    (run_id,) = copy_runs(studio, done_runs, "train")
    at = open_page("train", watch=run_id)
    (text,) = progress_texts(at)
    assert text.startswith(":material/check_circle: ") and not any(ord(ch) > 0x2500 for ch in text.split("·")[0])


def test_the_deploy_button_is_hidden():
    """`make app` (and the browser tests) run `streamlit run app/main.py` from the repository root, where
    Streamlit reads `.streamlit/config.toml`."""
    assert "streamlit run app/main.py" in (ROOT / "Makefile").read_text()
    text = (ROOT / ".streamlit" / "config.toml").read_text()
    client = text.split("[client]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^toolbarMode\s*=\s*"(viewer|minimal)"', client, re.M), client


# ------------------------------------------------------------------ 7. plain error text


def test_error_messages_are_plain_with_the_detail_in_an_expander(studio):
    at = open_page("learngene")
    at.file_uploader(key="lg-upload").upload("bad.safetensors", b"\x00garbage").run()
    at.button(key="lg-upload-go").click().run()
    assert at.error
    shown = at.error[0].value
    assert str(studio) not in shown and "/" not in shown.split(":", 1)[1], f"a server path in the message: {shown}"
    details = [e for e in at.expander if e.label == "details"]
    assert details and any(str(studio) in c.value for c in details[0].code), "the full text is in the details"


def test_a_failed_run_says_why_in_plain_words(studio, tmp_path):
    from learngene.jobs import JobManager, JobSpec

    mgr = JobManager(studio, max_cpu_jobs=2)
    missing = tmp_path / "nowhere" / "ancestry.safetensors"
    run_id = mgr.start(JobSpec(argv=["train", "--ancestry", str(missing), "--layers", "0", "--epochs", "1"],
                               kind="train", name="a failing run"))
    assert mgr.wait(run_id, timeout=120).state == "failed"
    at = open_page("train", watch=run_id)
    said = [c for c in captions(at) if "ancestry.safetensors" in c]
    assert said, captions(at)
    assert str(tmp_path) not in said[0] and "--" not in said[0] and "\x1b" not in said[0], said[0]
    assert any(str(missing) in c.value for c in at.code), "the full log is in the details"


def test_plain_messages():
    raw = ("\x1b[31merror: --n-way must be at least 2 for /home/x/runs/20261201-train-abc/config.json "
           "(see `python -m learngene jobs show 20261201`)\x1b[0m")
    assert messages.plain(raw) == "error: N-way must be at least 2 for config.json"
    long = "word " * 100
    cut = messages.plain(long, 50)
    assert cut.endswith("…") and len(cut) <= 50 and cut[:-1].rstrip().endswith("word")
    assert messages.worker_error("loading\n\x1b[1merror: checkpoint /a/b.safetensors does not exist\x1b[0m\n") == \
        "checkpoint /a/b.safetensors does not exist"
    assert messages.lines_from_end("line one\nline two\nline three", 14) == "line three"


def test_heatmap_axis_names_what_its_columns_are():
    import numpy as np

    from app.ui import selection

    for method, words in (("gradient", "epoch"), ("weights", "cosine"), ("cka", "pseudo-descendant layer")):
        fig = figures.similarity_heatmap(np.ones((2, 3)), ["a", "b"], ["1", "2", "3"],
                                         x_title=selection.column_title(method))
        assert words in fig.layout.xaxis.title.text, (method, fig.layout.xaxis.title.text)


def test_a_live_train_run_says_which_task_is_training():
    from app.ui import live

    records = [{"kind": "config", "tasks": {"tasks": 3}},
               {"kind": "epoch", "task": 0, "epoch": 1, "model": "learngene"},
               {"kind": "epoch", "task": 1, "epoch": 2, "model": "baseline"}]
    assert live.task_now(records).startswith("task 2 of 3 is training: both models side by side, epoch 2")
    assert live.task_now(records[:1]) == ""


def test_the_runs_selection_reaches_the_address(studio, done_runs):
    (train_id,) = copy_runs(studio, done_runs, "train")
    at = open_page("runs")
    at.multiselect(key="runs-pick").set_value([train_id]).run()
    assert train_id in str(at.query_params.get("runs", "")), dict(at.query_params)
