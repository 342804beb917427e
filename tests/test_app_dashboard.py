"""What users of run dashboards expect, as AppTest tests on the tiny ancestry of
tests/test_app.py: the runs table with settings and results, names/tags/notes, the gain scatter; the data
view and a finished run's confusion matrix and predictions; links that reopen the same view; export."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import require_module

require_module("streamlit")
from tests.test_app import (  # noqa: E402,F401 - env, tiny_ancestry: fixtures
    TRAIN_SUMMARY,
    chart,
    env,
    epoch_records,
    make_runs,
    open_page,
    saved_state,
    tiny_ancestry,
)


def train_output(lr: float, gain: float, placement: str = "top") -> dict:
    """A train run's summary.json as `learngene train` writes it (config beside the summary)."""
    summary = copy.deepcopy(TRAIN_SUMMARY["summary"])
    summary["gain"]["mean"] = gain
    summary["learngene"]["final_acc"]["mean"] = 0.5 + gain
    return {"command": "python -m learngene train ...", "recipe": {"placement": placement},
            "train": {"lr": lr, "weight_decay": 0.05, "epochs": 4},
            "tasks": {"n_way": 5, "k_shot": 10, "tasks": 1}, "summary": summary}


@pytest.fixture(scope="module")
def two_trains(tmp_path_factory, request) -> tuple[Path, list[str]]:
    """Two finished train runs (lr 1e-3, gain 20 points; lr 1e-2, gain 5 points), made once."""
    ancestry = request.getfixturevalue("tiny_ancestry")
    runs = tmp_path_factory.mktemp("dash-runs")
    tags = {"ancestry": str(ancestry), "layers": [0, 3]}
    ids = make_runs(runs, *[{"kind": "train", "name": "5-way 10-shot · layers 0,3", "tags": tags,
                             "outputs": {"summary.json": train_output(lr, gain)}, "metrics": epoch_records()}
                            for lr, gain in ((1e-3, 0.2), (1e-2, 0.05))])
    return runs, ids


@pytest.fixture
def studio(request) -> Path:
    """The runs folder of an app on the tiny ancestry (tests/test_app.py's `env`)."""
    return request.getfixturevalue("env")


def copy_in(runs: Path, made: tuple[Path, list[str]]) -> list[str]:
    src, ids = made
    for run_id in ids:
        shutil.copytree(src / run_id, runs / run_id)
    return ids


def values(v) -> list[float]:
    """A plotly array from a chart's JSON (plotly.py may send typed arrays as {dtype, bdata})."""
    if isinstance(v, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)


def table(at) -> object:
    return next(d.value for d in at.dataframe if "run" in d.value.columns and "gain" in d.value.columns)


# ------------------------------------------------------------------ 8. the runs table


def test_runs_table_has_settings_and_results_of_every_run(studio, two_trains):
    a, b = copy_in(studio, two_trains)
    at = open_page("runs")
    df = table(at).set_index("run")
    for col in ("ancestry", "layers", "placement", "lr", "wd", "K", "epochs", "tasks", "device",
                "learngene acc", "baseline acc", "gain", "speed-up", "wall s", "state"):
        assert col in df.columns, col
    assert df.loc[a, "lr"] == pytest.approx(1e-3) and df.loc[b, "lr"] == pytest.approx(1e-2)
    assert df.loc[a, "gain"] == pytest.approx(0.2) and df.loc[a, "learngene acc"] == pytest.approx(0.7)
    assert df.loc[a, "baseline acc"] == pytest.approx(0.5) and df.loc[a, "speed-up"] == pytest.approx(2.0)
    assert df.loc[a, "ancestry"] == "tiny_vit" and df.loc[a, "layers"] == "0,3" and df.loc[a, "placement"] == "top"
    assert df.loc[a, "K"] == 10 and df.loc[a, "epochs"] == 4 and df.loc[a, "state"] == "done"


def test_runs_table_leads_with_the_settings_that_differ_and_shows_blank_cells(studio, two_trains):
    from app.logic import dashboard

    a, b = copy_in(studio, two_trains)
    at = open_page("runs")
    df = table(at).set_index("run")
    assert {"N-way", "seed"} <= set(df.columns)
    assert df.loc[a, "N-way"] == 5
    order = dashboard.differing_first(table(at))
    assert order[:4] == ["name", "by", "state", "progress"] and order[4] == "lr", order  # lr is what differs
    assert order.index("lr") < order.index("K") and order.index("lr") < order.index("ancestry")
    blank = dashboard.runs_frame([{"run": "x", "name": "n", "state": "done"}])
    assert blank.loc[0, "placement"] == "" and blank.loc[0, "grid"] == ""  # not "None"


def test_rename_tag_and_note_a_run_then_filter_by_tag(studio, two_trains):
    a, b = copy_in(studio, two_trains)
    at = open_page("runs")
    at.multiselect(key="runs-pick").set_value([a, b]).run()
    at.selectbox(key="ann-run").set_value(a).run()
    at.text_input(key=f"ann-name-{a}").set_value("the good one")
    at.multiselect(key=f"ann-tags-{a}").set_value(["keep"])
    at.text_area(key=f"ann-note-{a}").set_value("lr 1e-3 wins")
    next(btn for btn in at.button if btn.label == "Save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    saved = json.loads((studio / a / "annotations.json").read_text())
    assert saved["name"] == "the good one" and saved["tags"] == ["keep"] and saved["note"] == "lr 1e-3 wins"
    df = table(at).set_index("run")
    assert df.loc[a, "name"] == "the good one" and list(df.loc[a, "tags"]) == ["keep"]
    legend = {t["name"] for t in chart(at, "runs-overlay")["data"]}
    assert any(n.startswith("the good one") for n in legend), "the new name is the legend's"
    at.multiselect(key="runs-tags").set_value(["keep"]).run()
    assert list(table(at)["run"]) == [a], "the tag filter keeps the tagged run only"
    # the CLI twin tags the other run; the page shows it on the next run
    from learngene.cli import main

    assert main(["jobs", "--runs-dir", str(studio), "annotate", b, "--tag", "keep", "--name", "second"]) == 0
    at.run()
    assert sorted(table(at)["run"]) == sorted([a, b])


def test_gain_scatter_against_a_setting(studio, two_trains):
    a, b = copy_in(studio, two_trains)
    at = open_page("runs")
    fig = chart(at, "runs-scatter")
    points = fig["data"][-1]
    assert sorted(values(points["x"])) == pytest.approx([1e-3, 1e-2]) and fig["layout"]["xaxis"]["type"] == "log"
    assert sorted(values(points["y"])) == pytest.approx([5.0, 20.0])
    at.segmented_control(key="runs-scatter-x").set_value("epochs").run()
    assert chart(at, "runs-scatter")["layout"]["xaxis"]["title"]["text"] == "epochs"
    assert saved_state(studio)["ui"]["runs-scatter-x"] == "epochs"


# ------------------------------------------------------------------ 9. the data and the result


def test_data_page_shows_each_part_and_one_tasks_support_set(studio):
    from learngene.data import sample_task
    from learngene.data.binding import bound_of_card, load_bound
    from learngene.models import read_card

    at = open_page("data")
    assert not at.error, [e.value for e in at.error]
    images = at.get("image")
    assert len(images) == 4, "a grid per part (base, open-world, novel) and the support set"
    assert [t.label.split(" (")[0] for t in at.tabs] == ["base", "open-world", "novel"]
    at.number_input(key="data-nway").set_value(3)
    at.number_input(key="data-kshot").set_value(4)
    at.number_input(key="data-task").set_value(1).run()
    ancestry = Path(saved_state(studio)["ancestry"] or __import__("os").environ["LEARNGENE_ANCESTRY"])
    ds, _ = load_bound(None, bound_of_card(read_card(ancestry), ancestry))
    task = sample_task(ds, "novel", 3, 4, 0, index=1)
    words = [c.value for c in at.caption if c.value.startswith("Task 1 ")]
    assert words and "3 classes × 4 training images" in words[0]
    assert all(ds.class_names[k] in words[0] for k in task.classes), "the classes train's task 1 would use"
    at.number_input(key="data-nway").set_value(0).run()
    assert any("N-way must be at least 2" in c.value for c in at.caption), "an invalid N-way says why"


def prediction_outputs(folder: Path) -> dict:
    """predictions.json of a 2-way task with 3 test images per class, and its PNG strips (solid colours)."""
    import numpy as np
    from PIL import Image

    labels = [0, 0, 0, 1, 1, 1]
    task = {"task": 0, "classes": [7, 9], "class_names": ["circle", "star"], "n_way": 2, "k_shot": 2,
            "labels": labels, "predictions": {"learngene": [0, 0, 1, 1, 1, 1], "baseline": [1, 1, 1, 1, 1, 0]},
            "diverged": {"learngene": False, "baseline": False}, "support_image": "support-task0.png",
            "support_labels": [0, 0, 1, 1], "test_image": "test-task0.png", "samples": [0, 1, 2, 3, 4, 5],
            "image_size": 8}
    for name, n in (("support-task0.png", 4), ("test-task0.png", 6)):
        strip = np.concatenate([np.full((8, 8, 3), 40 * i, dtype=np.uint8) for i in range(n)], axis=1)
        Image.fromarray(strip).save(folder / name)
    return {"tasks": [task]}


def test_a_finished_runs_confusion_matrices_and_predicted_test_images(studio):
    from learngene.jobs import JobManager

    (run_id,) = make_runs(studio, {"kind": "train", "name": "predicted", "outputs": {"summary.json": train_output(1e-3, 0.2)}})
    out = JobManager(studio).run_dir(run_id) / "outputs"
    (out / "predictions.json").write_text(json.dumps(prediction_outputs(out)))
    at = open_page("runs")
    at.multiselect(key="runs-pick").set_value([run_id]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    fig = chart(at, f"pred-{run_id}-confusion")
    z = {tr["xaxis"]: values(tr["z"]) for tr in fig["data"]}
    assert z["x"] == [2, 1, 0, 3] and z["x2"] == [0, 3, 1, 2], "rows true, columns predicted"
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert "learngene descendant: 83% right" in titles and "random-init baseline: 33% right" in titles
    grid = chart(at, f"pred-{run_id}-predictions")
    texts = [a["text"] for a in grid["layout"]["annotations"]]
    assert len(texts) == 6 and texts[2].startswith("<b>circle</b>")
    assert "color:#c62828'>LG: star" in texts[2] and "color:#1b7f3b'>LG: circle" in texts[0], "wrong red, right green"
    assert any("support set (2 training images per class)" in c.value for c in at.caption)
    labels = [b.label for b in at.get("download_button")]
    assert labels.count("Figure as PNG") >= 2


# ------------------------------------------------------------------ 10. links that reopen the same view


def test_a_link_names_the_runs_shown_and_reopens_them(studio, two_trains):
    a, b = copy_in(studio, two_trains)
    at = open_page("runs")
    at.multiselect(key="runs-kinds").set_value(["sweep"]).run()  # a filter that hides both runs
    at.multiselect(key="runs-kinds").set_value([]).run()
    at.multiselect(key="runs-pick").set_value([a]).run()
    assert at.query_params["runs"] in ([a], a), "the selection is in the URL"
    at.multiselect(key="runs-kinds").set_value(["sweep"]).run()
    # a link opened in a new session (another browser): the runs it names, even past a remembered filter
    shared = open_page("runs", runs=f"{a},{b},not-a-run")
    assert not shared.exception and not shared.error, [e.value for e in shared.error]
    assert shared.multiselect(key="runs-pick").value == [a, b]
    assert shared.multiselect(key="runs-kinds").value == []
    legend = {t["name"] for t in chart(shared, "runs-overlay")["data"]}
    assert len({n.split(" · ")[-1] for n in legend}) >= 2 and len(legend) >= 4, legend
    # the Train page's link names the runs on its chart
    train = open_page("train", watch=b)
    assert train.multiselect(key="train-watch").value == [b]
    assert train.query_params["watch"] in ([b], b)


# ------------------------------------------------------------------ 11. export


def test_export_tab_writes_tensorboard_and_mlflow_and_shows_the_command(studio, two_trains, tmp_path, monkeypatch):
    require_module("tensorboard")
    require_module("mlflow")
    a, b = copy_in(studio, two_trains)
    monkeypatch.setenv("LEARNGENE_EXPORT_ROOT", str(tmp_path / "exports"))
    from app.person.people import public_id
    from tests.test_app import PERSON

    mine = tmp_path / "exports" / public_id(PERSON)  # every export the app writes goes into the person's folder
    at = open_page("runs", runs=f"{a},{b}")
    labels = [d.label for d in at.get("download_button")]
    assert "TensorBoard event files (.zip)" in labels and "MLflow store (.zip)" in labels
    at.text_input(key="export-tb-dir").set_value("tb")
    at.text_input(key="export-ml-dir").set_value("mlruns").run()
    shown = [c.value for c in at.code if c.value.startswith("python -m learngene jobs export ")]
    assert shown and a in shown[0] and f"--tensorboard {mine / 'tb'}" in shown[0]
    tmp_path = mine  # the folders below are the person's
    at.button(key="export-go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Exported 2 run(s)" in s.value for s in at.success)
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == sorted([a, b])
    assert any(p.name.startswith("events.out.tfevents.") for p in (tmp_path / "tb" / a).iterdir())
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    runs = client.search_runs([client.get_experiment_by_name("learngene-studio").experiment_id])
    assert sorted(r.data.tags["learngene.run_id"] for r in runs) == sorted([a, b])
    import io
    import zipfile

    from app.ui.export_ui import export_zip

    names = zipfile.ZipFile(io.BytesIO(export_zip([studio / a], "tensorboard"))).namelist()
    assert len(names) == 1 and names[0].startswith(f"{a}/events.out.tfevents."), names


def test_every_chart_on_these_pages_has_a_png_download(studio, two_trains, monkeypatch):
    """Home, Train (a finished run) and Runs (overlay, scatter): one "Figure as PNG" per chart, when kaleido
    can render (it is installed by requirements.txt; it drives the system's chromium)."""
    require_module("kaleido")
    a, b = copy_in(studio, two_trains)
    for page, query in (("home", {}), ("train", {"watch": a}), ("runs", {"runs": f"{a},{b}"})):
        at = open_page(page, **query)
        charts = [c.proto.id for c in at.get("plotly_chart")]
        png = [d for d in at.get("download_button") if d.label == "Figure as PNG"]
        assert charts and len(png) == len(charts), (page, charts, [d.label for d in at.get("download_button")])


def test_figure_png_renders_with_kaleido():
    from tests.conftest import require_chromium

    require_module("kaleido")
    require_chromium()  # kaleido drives it; skipped without it on a developer machine, fails under CI
    from app.logic import figures, history

    fig = figures.training_curves(figures.curves_frame(epoch_records(3)))
    png = history.figure_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(io_bytes(png)) as img:
        assert img.size == (2400, 2 * int(fig.layout.height or 500))


def io_bytes(data: bytes):
    import io

    return io.BytesIO(data)
