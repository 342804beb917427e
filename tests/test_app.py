"""Streamlit AppTest tests of every page, plus unit tests of the figure builders and UI state.

The app runs on a tiny untrained ancestry (lg_vit_tiny, depth 4) that the tests save, with the runs
folder in `tmp_path`; jobs started by a test are cancelled when it ends. Finished condense / train /
sweep runs are made with the job manager's `selftest` worker plus the output files those commands
write, so no test trains a network.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import cancel_runs, require_module

require_module("streamlit")  # skipped without streamlit on a developer machine; fails under CI
from streamlit.testing.v1 import AppTest  # noqa: E402

from app.logic import figures  # noqa: E402
from app.person.state import StudioState, parse_layers  # noqa: E402
from app.ui import selection  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "app" / "main.py"
PAGES = ["home", "ancestry", "data", "similarity", "learngene", "train", "runs", "lineage", "board"]


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def tiny_ancestry(tmp_path_factory) -> Path:
    from learngene.data.shapes import default_split
    from learngene.models import ModelCard, create_model, save_checkpoint

    folder = tmp_path_factory.mktemp("assets")
    model = create_model("lg_vit_tiny", num_classes=64, depth=4)
    card = ModelCard(spec=model.lg_spec, dataset="shapes", split=default_split().to_dict(), epochs=0,
                     base_accuracy=0.25, command="tests/test_app.py")
    return Path(save_checkpoint(model, folder / "tiny_vit.safetensors", card))


@pytest.fixture
def env(tmp_path, tiny_ancestry, monkeypatch, tmp_path_factory):
    runs = tmp_path / "runs"
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(runs))
    monkeypatch.setenv("LEARNGENE_ANCESTRY", str(tiny_ancestry))
    monkeypatch.setenv("LEARNGENE_ASSETS_DIR", str(tiny_ancestry.parent))
    monkeypatch.setenv("LEARNGENE_CACHE", str(tmp_path_factory.getbasetemp() / "data-cache"))
    yield runs
    cancel_runs(runs)


@pytest.fixture(scope="session")
def finished(tmp_path_factory, tiny_ancestry) -> dict[str, tuple[Path, str]]:
    """Finished runs made once (their workers start together), copied into a test's runs folder on demand."""
    runs = tmp_path_factory.mktemp("template-runs")
    specs = {
        "condense": {"kind": "condense", "outputs": {"similarity.json": similarity_json(tiny_ancestry)}},
        "train": {"kind": "train", "outputs": {"summary.json": TRAIN_SUMMARY}, "metrics": epoch_records(),
                  "name": "a train run"},
        "sweep": {"kind": "sweep", "outputs": {"summary.json": SWEEP_SUMMARY}, "name": "a sweep"},
    }
    ids = make_runs(runs, *specs.values())
    return {name: (runs, run_id) for name, run_id in zip(specs, ids, strict=True)}


# The browser a test plays: the same token is the same person (a new AppTest with it is a reload of
# that person's browser); another token is another person.
PERSON = "test-person-0000000000000000000000000000000"


def copy_runs(env: Path, finished: dict, *names: str) -> list[str]:
    """Copy finished template runs into this test's runs folder (a run folder is self-contained)."""
    import shutil

    out = []
    for name in names:
        src, run_id = finished[name]
        shutil.copytree(src / run_id, env / run_id)
        own(env / run_id)
        out.append(run_id)
    return out


def own(run_dir: Path, person: str = PERSON) -> None:
    """Make `person` the owner of a run (as if they had started it in the app)."""
    from app.person.people import public_id

    path = run_dir / "config.json"
    cfg = json.loads(path.read_text())
    cfg["spec"]["owner"] = public_id(person)
    path.write_text(json.dumps(cfg))


def person_file(runs: Path, person: str = PERSON) -> Path:
    from app.person.people import public_id

    return runs / ".studio" / "people" / f"{public_id(person)}.json"


def new_session(person: str = PERSON, **query) -> AppTest:
    """A new browser session of `person` (a reload), opened on the URL's query."""
    from app.person.identity import SESSION_TOKEN

    at = AppTest.from_file(MAIN, default_timeout=90)
    at.session_state[SESSION_TOKEN] = person
    at.query_params.update(query)
    return at


def open_page(name: str, at: AppTest | None = None, person: str = PERSON, **query) -> AppTest:
    if at is None:
        at = new_session(person, **query)
        at.run()
    at.switch_page(f"../pages/{name}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def saved_state(runs: Path, person: str = PERSON) -> dict:
    """The choices saved for `person` (their record in the runs folder's person store)."""
    return json.loads(person_file(runs, person).read_text())["state"]


def save_state(runs: Path, person: str = PERSON, **fields) -> None:
    """Give `person` these saved choices (as if they had made them earlier)."""
    path = person_file(runs, person)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"state": fields}))


def chart(at: AppTest, key: str) -> dict:
    """The plotly figure (as JSON) of the chart with this widget key."""
    for el in at.get("plotly_chart"):
        if key in el.proto.id:
            return json.loads(el.proto.spec)
    raise AssertionError(f"no plotly chart with key {key!r}")


def make_runs(runs: Path, *specs: dict) -> list[str]:
    """Runs made by the selftest worker (started together), with output files and metric records added.

    Each spec: kind, and optionally outputs {file name: JSON}, metrics [records], name, sleep, wait, tags.
    """
    from app.person.people import public_id
    from learngene.jobs import JobManager, JobSpec

    mgr = JobManager(runs, max_cpu_jobs=4)  # several at once: each worker takes seconds to import torch
    ids = [mgr.start(JobSpec(argv=["selftest", "--records", "2", "--sleep", str(sp.get("sleep", 0))],
                             kind=sp["kind"], name=sp.get("name") or f"test {sp['kind']}", tags=sp.get("tags") or {},
                             owner=public_id(sp.get("person", PERSON))))
           for sp in specs]
    for run_id, sp in zip(ids, specs, strict=True):
        if not sp.get("wait", True):
            continue
        assert mgr.wait(run_id, timeout=60).state == "done"
        folder = mgr.run_dir(run_id)
        for fname, data in (sp.get("outputs") or {}).items():
            (folder / "outputs" / fname).write_text(json.dumps(data))
        with open(folder / "metrics.jsonl", "a") as f:
            for rec in sp.get("metrics") or []:
                f.write(json.dumps(rec) + "\n")
    return ids


def similarity_json(ckpt: Path, selected=(2, 3)) -> dict:
    from learngene.condense import SimilarityResult
    from learngene.models import read_card

    rng = np.random.default_rng(0)
    matrix = rng.random((4, 2))
    sim = SimilarityResult(
        method="cka", matrix=matrix.tolist(), row_names=[f"blocks.{i}" for i in range(4)],
        col_names=["blocks.0", "blocks.1"], scores=matrix.max(1).tolist(), selected=list(selected),
        selection={"rule": "row_max", "how": "top-k", "k": len(selected)}, settings={},
        ancestry={"arch": "lg_vit_tiny", "path": str(ckpt), "sha256": read_card(ckpt).sha256}, elapsed_s=1.0)
    return sim.to_dict()


def epoch_records(epochs: int = 4) -> list[dict]:
    return [{"kind": "epoch", "model": m, "task": 0, "epoch": e, "train_loss": 2.0 / e, "time": 0.5 * e,
             "test_acc": (0.3 if m == "baseline" else 0.5) + 0.05 * e}
            for e in range(1, epochs + 1) for m in ("learngene", "baseline")]


TRAIN_SUMMARY = {"summary": {
    "learngene": {"final_acc": {"mean": 0.7, "ci95": 0.05}, "target": {"acc": 0.6, "reached": 1, "of": 1,
                                                                         "epochs": {"mean": 2.0}}},
    "baseline": {"final_acc": {"mean": 0.5, "ci95": 0.04}, "target": {"acc": 0.6, "reached": 1, "of": 1,
                                                                        "epochs": {"mean": 4.0}}},
    "gain": {"mean": 0.2, "ci95": 0.02}, "pairs": 1}}
SWEEP_SUMMARY = {"summary": {
    "settings": [{"lr": lr, "weight_decay": 0.05, "k_shot": 5, "learngene": {"final_acc": {"mean": 0.6, "ci95": 0.1}},
                  "baseline": {"final_acc": {"mean": 0.4 + lr, "ci95": 0.1}}} for lr in (1e-3, 1e-2)],
    "by_k": {"5": {r: {"grid_mean": {"mean": 0.5, "ci95": 0.1}} for r in ("learngene", "baseline")}},
    "spread": {"5": {r: {"cells": 2, "min": 0.4, "max": 0.6, "range": 0.2, "std": 0.1}
                     for r in ("learngene", "baseline")}}}}


# ------------------------------------------------------------------ every page


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_the_default_ancestry(env, page):
    at = open_page(page)
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value


def test_missing_default_ancestry_shows_how_to_create_it(env, monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNGENE_ANCESTRY", str(tmp_path / "nope" / "lg_vit_tiny.safetensors"))
    for page in ("home", "learngene"):
        at = open_page(page)
        assert not at.error
        assert any("accumulate" in c.value for c in at.code), "the command that creates the default is shown"


# ------------------------------------------------------------------ home


def test_home_shows_the_idea_and_the_demo_starts_a_condense_job(env):
    at = open_page("home")
    fig = chart(at, "idea")
    texts = [t for tr in fig["data"] for t in (tr.get("text") or [])]
    assert "blocks.0" in texts and any("new head" in t for t in texts)
    at.button(key="demo").click().run()
    assert not at.exception
    demo = saved_state(env)["demo"]
    from learngene.jobs import JobManager

    assert JobManager(env).get(demo["condense"]).spec.kind == "condense"


# ------------------------------------------------------------------ ancestry


def test_ancestry_lists_layers_and_card(env):
    at = open_page("ancestry")
    df = at.dataframe[0].value
    assert list(df["name"]) == [f"blocks.{i}" for i in range(4)]
    assert any(m.label == "base-class accuracy" and m.value == "25.0%" for m in at.metric)


def test_ancestry_timm_import_of_an_unknown_model_explains(env):
    at = open_page("ancestry")
    at.text_input(key="timm-arch").set_value("no_such_model_xyz")
    at.toggle(key="timm-pre").set_value(False)
    at.button(key="timm-go").click().run()
    assert not at.exception and at.error and "no_such_model_xyz" in at.error[0].value


def test_ancestry_upload_refuses_a_corrupt_checkpoint(env):
    at = open_page("ancestry")
    at.file_uploader(key="anc-upload").upload("broken.safetensors", b"not a safetensors file").run()
    at.button(key="anc-upload-go").click().run()
    assert not at.exception
    assert at.error and "cannot be used" in at.error[0].value
    assert not person_file(env).exists() or saved_state(env)["ancestry"] == ""


def test_ancestry_upload_of_checkpoint_and_card_becomes_current(env, tiny_ancestry):
    at = open_page("ancestry")
    up = at.file_uploader(key="anc-upload")
    up.upload("mine.safetensors", tiny_ancestry.read_bytes())
    up.upload("mine.json", tiny_ancestry.with_suffix(".json").read_bytes()).run()
    at.button(key="anc-upload-go").click().run()
    assert not at.error, [e.value for e in at.error]
    assert saved_state(env)["ancestry"].endswith("mine.safetensors")


def test_ancestry_train_new_starts_a_background_job(env):
    at = open_page("ancestry")
    at.number_input(key="acc-epochs").set_value(1)
    at.number_input(key="acc-images_per_class").set_value(20)
    at.button(key="acc-go").click().run()
    assert not at.exception and not at.error
    from learngene.jobs import JobManager

    runs = JobManager(env).list(kind="accumulate")
    assert len(runs) == 1 and runs[0].spec.argv[:3] == ["accumulate", "--arch", "lg_vit_tiny"]
    assert "--flip" not in runs[0].spec.argv  # auto: the data set's default
    at.text_input(key="acc-data").set_value("folder:/data/letters").run()
    assert any("no horizontal flips by default" in c.value for c in at.caption), "the UI says what auto means"
    at.segmented_control(key="acc-flip").set_value("on").run()
    at.button(key="acc-go").click().run()
    argvs = [r.spec.argv for r in JobManager(env).list(kind="accumulate")]
    assert any(a[a.index("--flip") + 1] == "on" for a in argvs if "--flip" in a)
    for r in JobManager(env).list(kind="accumulate"):
        JobManager(env).cancel(r.run_id)


# ------------------------------------------------------------------ similarity


def test_similarity_heatmap_clicks_and_significance(env, finished):
    (run_id,) = copy_runs(env, finished, "condense")
    at = open_page("similarity")
    assert not at.error, [e.value for e in at.error]
    heat = chart(at, "sim-heatmap")
    hover = [t for tr in heat["data"] for t in (tr.get("text") or [])]
    assert any("blocks.3" in t and "pseudo-descendant: blocks.1" in t for t in hover)
    at.button(key="sim-adopt").click().run()
    assert saved_state(env)["layers"] == [2, 3]
    assert at.selectbox(key="sim-pick").value == run_id
    assert at.query_params["layers"] == ["2,3"] or at.query_params["layers"] == "2,3"
    at.selectbox(key="sim-rule").set_value("row_mean").run()
    at.toggle(key="sim-bars-sig").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    bars = chart(at, "sim-bars")
    assert len(bars["data"]) == 2, "score bars + significance overlay"


# ------------------------------------------------------------------ learngene


def test_learngene_preset_recipe_and_sizes(env):
    at = open_page("learngene")
    at.selectbox(key="lg-preset").set_value("heur").run()
    at.button(key="lg-apply-preset").click().run()
    assert saved_state(env)["layers"] == [1, 2, 3]
    assert at.multiselect(key="lg-multi").value == [1, 2, 3]
    stack = chart(at, "lg-stack")
    kinds = {tr["name"]: len(tr["y"]) for tr in stack["data"]}
    assert kinds["inherited (learngene)"] == 3 and kinds["random init"] == 1
    at.selectbox(key="lg-placement").set_value("top").run()
    at.number_input(key="lg-depth").set_value(6).run()
    assert saved_state(env)["recipe"]["placement"] == "top" and saved_state(env)["recipe"]["depth"] == 6
    kinds = {tr["name"]: len(tr["y"]) for tr in chart(at, "lg-stack")["data"]}
    assert kinds["random init"] == 3
    at.multiselect(key="lg-multi").set_value([0]).run()
    assert saved_state(env)["layers"] == [0]
    assert not at.error


def test_learngene_page_sizes_the_descendant_and_train_uses_it(env):
    """Descendant size: width and fill on the Learngene page; narrower boxes, fewer parameters, same on Train."""
    at = open_page("learngene")
    at.multiselect(key="lg-multi").set_value([0, 3]).run()
    full = chart(at, "lg-stack")
    at.select_slider(key="lg-width").set_value(0.5).run()
    at.selectbox(key="lg-fill").set_value("interpolate").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert saved_state(env)["recipe"]["width"] == 0.5 and saved_state(env)["recipe"]["fill"] == "interpolate"
    half = chart(at, "lg-stack")
    widths = {x for tr in half["data"] for x in tr["x"]}
    assert len(widths) == 1 and widths.pop() < 1, "narrower boxes, at the realised width (whole heads)"
    labels = [t for tr in half["data"] for t in tr["text"]]
    assert any("t=0.33" in t for t in labels) and any("t=0.67" in t for t in labels), "layers 1, 2 interpolated"
    params = {tr["name"]: sum(int(c.split()[0].replace(",", "")) for c in tr["customdata"]) for tr in half["data"]}
    params_full = {tr["name"]: sum(int(c.split()[0].replace(",", "")) for c in tr["customdata"]) for tr in full["data"]}
    assert sum(params.values()) < sum(params_full.values()) / 2, "half the width: under half the parameters"
    open_page("train", at)
    at.button(key="train-go").click().run()
    from learngene.jobs import JobManager

    argv = JobManager(env).get(saved_state(env)["watched"][0]).spec.argv
    assert argv[argv.index("--width") + 1] == "0.5" and argv[argv.index("--fill") + 1] == "interpolate"
    from learngene.cli import build_parser

    build_parser().parse_args(argv)


def test_train_page_trains_a_list_of_sizes_in_one_job_and_draws_accuracy_against_size(env):
    """Descendant size: several widths in one `learngene sizes` job; its result drawn per initialisation."""
    from learngene.cli import build_parser
    from learngene.jobs import JobManager

    at = open_page("learngene")
    at.multiselect(key="lg-multi").set_value([0, 1]).run()
    open_page("train", at)
    at.multiselect(key="sizes-widths").set_value([0.5, 1.0]).run()
    at.button(key="sizes-go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (started,) = JobManager(env).list(kind="sizes")
    argv = started.spec.argv
    assert argv[argv.index("--sizes") + 1].startswith("0.5x") and argv[argv.index("--layers") + 1] == "0,1"
    build_parser().parse_args(argv)
    JobManager(env).cancel(started.run_id)
    JobManager(env).wait(started.run_id, timeout=20)
    row = {"size": "width 0.5x", "params": 1000, "learngene": {"mean": 0.5, "ci95": 0.1},
           "random": {"mean": 0.3, "ci95": 0.1}, "weight-selection": {"mean": 0.6, "ci95": 0.1}}
    make_runs(env, {"kind": "sizes", "outputs": {"sizes.json": {"sizes": [row, {**row, "params": 4000}]}}})
    open_page("train", at)
    fig = chart(at, "sizes-chart")
    assert [tr["name"] for tr in fig["data"]] == ["learngene", "random init", "weight selection (all layers)"]
    assert list(fig["data"][0]["x"]) == [1000, 4000] and fig["layout"]["xaxis"]["type"] == "log"
    (sizes_id,) = [i.run_id for i in JobManager(env).list(kind="sizes", state="done")]
    open_page("runs", at)
    at.multiselect(key="runs-pick").set_value([sizes_id]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    fig = chart(at, f"sizes-{sizes_id}")
    assert len(fig["data"]) == 3, "the Runs page draws a sizes run's accuracy against parameters too"


def test_learngene_file_upload_restores_layers(env, tiny_ancestry, tmp_path):
    from learngene.inherit.learngene_file import save_learngene
    from learngene.models import load_checkpoint

    model, _ = load_checkpoint(tiny_ancestry)
    data = save_learngene(model, [0, 3], tmp_path / "lg.safetensors").read_bytes()
    at = open_page("learngene")
    at.file_uploader(key="lg-upload").upload("lg.safetensors", data).run()
    at.button(key="lg-upload-go").click().run()
    assert not at.error, [e.value for e in at.error]
    assert saved_state(env)["layers"] == [0, 3]
    open_page("train", at)
    at.button(key="train-go").click().run()
    from learngene.jobs import JobManager

    argv = JobManager(env).get(saved_state(env)["watched"][0]).spec.argv
    assert argv[:2] == ["train", "--learngene"] and "--ancestry" not in argv
    open_page("learngene", at)
    at.file_uploader(key="lg-upload").upload("bad.safetensors", b"\x00garbage").run()
    at.button(key="lg-upload-go").click().run()
    assert not at.exception and at.error


def test_state_survives_a_reload_and_the_url_wins(env):
    at = open_page("learngene", layers="1,2")
    assert at.multiselect(key="lg-multi").value == [1, 2]
    at2 = open_page("learngene")  # a new session: from the file
    assert at2.multiselect(key="lg-multi").value == [1, 2]


# ------------------------------------------------------------------ train


def test_train_launches_a_comparison_and_watches_it(env):
    at = open_page("train", layers="2,3")
    assert at.button(key="train-go").disabled is False
    at.number_input(key="task-epochs").set_value(1)
    at.button(key="train-go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    watched = saved_state(env)["watched"]
    from learngene.jobs import JobManager

    info = JobManager(env).get(watched[0])
    assert info.spec.kind == "train" and "--layers" in info.spec.argv and "2,3" in info.spec.argv
    assert at.multiselect(key="train-watch").value == watched
    assert at.get("progress"), "the run's progress bar is shown"


def test_train_shows_curves_and_summary_of_a_finished_run(env, finished):
    (run_id,) = copy_runs(env, finished, "train")
    at = open_page("train", watch=run_id)
    curves = chart(at, "train-curves")
    assert curves["layout"]["yaxis"]["type"] == "log"
    assert any(m.label == "speed-up to target" and m.value == "2.0×" for m in at.metric)
    at.segmented_control(key="train-x").set_value("wall-clock").run()
    assert chart(at, "train-curves")["layout"]["xaxis"]["title"]["text"] == "wall-clock seconds"


def test_cancel_a_live_run_from_its_progress_row(env):
    (run_id,) = make_runs(env, {"kind": "train", "sleep": 30, "wait": False})
    at = open_page("train", watch=run_id)
    at.button(key=f"cancel-train{run_id}").click().run()
    from learngene.jobs import JobManager

    assert JobManager(env).wait(run_id, timeout=20).state == "cancelled"


# ------------------------------------------------------------------ runs


def test_runs_filters_overlay_sweeps_and_delete(env, finished):
    train_id, sweep_id = copy_runs(env, finished, "train", "sweep")
    at = open_page("runs")
    assert len(at.dataframe[0].value) == 2
    at.multiselect(key="runs-kinds").set_value(["sweep"]).run()
    assert list(at.dataframe[0].value["run"]) == [sweep_id]
    at.multiselect(key="runs-kinds").set_value([]).run()
    at.multiselect(key="runs-pick").set_value([train_id, sweep_id]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert chart(at, "runs-overlay")["data"]
    lr_fig = chart(at, f"sw-lr-{sweep_id}")
    assert lr_fig["layout"]["xaxis"]["type"] == "log" and len(lr_fig["data"]) == 2
    assert any(b.label == "Metrics as CSV" for b in at.get("download_button"))
    at.button(key="runs-watch").click().run()
    assert at.title[0].value == "Train" and saved_state(env)["watched"] == [train_id]
    open_page("runs", at)
    at.multiselect(key="runs-pick").set_value([train_id, sweep_id]).run()
    at.checkbox(key="runs-sure").check().run()
    at.button(key="runs-delete").click().run()
    from learngene.jobs import JobManager

    assert JobManager(env).list() == []


def test_runs_page_starts_the_study_and_shows_its_report(env, tiny_ancestry):
    from learngene.descend.advantages_report import line_chart
    from learngene.jobs import JobManager

    at = open_page("runs")
    at.segmented_control(key="adv-size").set_value("try-out").run()
    at.multiselect(key="adv-models").set_value(["heur", "finetune"]).run()
    shown = [c.value for c in at.code if c.value.startswith("python -m learngene advantages ")]
    assert shown and "--quick" in shown[0], "the page shows the exact command it starts"
    at.button(key="adv-go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (started,) = JobManager(env).list(kind="advantages")
    argv = started.spec.argv
    assert argv[:1] == ["advantages"] and "--quick" in argv and argv[argv.index("--models") + 1] == "heur,finetune"
    assert argv[argv.index("--ancestry") + 1] == str(tiny_ancestry.resolve())
    assert argv[argv.index("--journal-dir") + 1] == str(env / ".study-journal")  # a restarted study resumes
    assert "--dataset" not in argv  # by default each ancestry is studied on its card's data and split
    JobManager(env).cancel(started.run_id)
    JobManager(env).wait(started.run_id, timeout=20)
    at.text_input(key="adv-dataset").set_value("folder:/data/letters").run()
    shown = [c.value for c in at.code if c.value.startswith("python -m learngene advantages ")]
    assert "--dataset folder:/data/letters" in shown[0], "the study can run on another data set"
    at.segmented_control(key="adv-backend").set_value("ray").run()
    shown = [c.value for c in at.code if c.value.startswith("python -m learngene advantages ")]
    assert "--backend ray" in shown[0] and "--ray-address" not in shown[0], "ray: a local Ray by default"
    assert any("CPU(s)" in c.value for c in at.caption), "the page says what Ray would get"
    at.text_input(key="adv-ray-address").set_value("10.0.0.5:6379").run()
    shown = [c.value for c in at.code if c.value.startswith("python -m learngene advantages ")]
    assert "--ray-address 10.0.0.5:6379" in shown[0]

    (run_id,) = make_runs(env, {"kind": "advantages", "name": "a study"})
    out = JobManager(env).run_dir(run_id) / "outputs"
    (out / "advantages.md").write_text("| model | acc |\n|---|---|\n| baseline | 30 |\n\nFigures: ![x](figures/x.svg)\n")
    (out / "advantages.csv").write_text("model,final_acc\nbaseline,0.3\n")
    (out / "figures").mkdir()
    (out / "figures" / "advantages-tiny-lr.svg").write_text(line_chart([("baseline", [1.0, 2.0], [30.0, 40.0])],
                                                                       title="t", x_label="x", y_label="y"))
    open_page("runs", at)
    at.multiselect(key="runs-pick").set_value([run_id]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    tables = [d.value for d in at.dataframe if list(d.value.columns) == ["model", "acc"]]
    assert tables and tables[0].iloc[0].tolist() == ["baseline", "30"], "the study's table is a table, not markdown"
    assert not any("| baseline |" in m.value for m in at.markdown), "a wide markdown table runs off the page"
    assert not any("Figures: " in m.value for m in at.markdown)
    assert any(b.label == "Raw runs as CSV" for b in at.get("download_button"))


# ------------------------------------------------------------------ pure helpers


def test_heatmap_hover_names_both_layers_and_cells_are_clickable():
    fig = figures.similarity_heatmap(np.arange(6).reshape(3, 2), ["a0", "a1", "a2"], ["p0", "p1"], selected=[1])
    heat, cells = fig.data
    assert heat.type == "heatmap" and np.asarray(heat.z).shape == (3, 2)
    assert len(cells.x) == 6 and list(cells.customdata[5]) == [2, 1]
    assert "ancestry: a2" in cells.text[5] and "pseudo-descendant: p1" in cells.text[5] and "5" in cells.text[5]
    assert len(fig.layout.shapes) == 1
    assert selection.rows_from_points([{"customdata": [2, 1], "y": 2}], "heatmap", 3) == [2]
    assert selection.rows_from_points([{"customdata": {"0": 1, "1": 0}, "y": 1}], "heatmap", 3) == [1]
    assert selection.rows_from_points([{"point_index": 1, "curve_number": 0}, {"point_index": 0, "curve_number": 1}],
                                      "bars", 3) == [1]


def test_curves_figure_ema_and_raw_lines():
    frame = figures.curves_frame(epoch_records(5))
    assert set(frame["series"]) == {"learngene", "baseline"} and len(frame) == 10
    fig = figures.training_curves(frame, smoothing=0.5, log_loss=True, target=0.6)
    assert len(fig.data) == 8  # 2 series x 2 panels x (raw + smoothed)
    raw = [t for t in fig.data if t.name.endswith("(raw)")]
    assert all(t.opacity < 1 for t in raw)
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.title.text == "epoch"
    style = figures.series_style(["r1 · learngene", "r1 · baseline", "r2 · learngene"])
    assert style["r1 · learngene"][0] == style["r1 · baseline"][0] != style["r2 · learngene"][0]
    assert style["r1 · baseline"][1] == "dash"
    assert np.allclose(figures.ema([1.0, 1.0, 1.0], 0.9), 1.0)  # debiased: a constant stays constant
    assert math.isclose(figures.ema([0.0, 1.0], 0.0)[1], 1.0)


def test_stack_sizes_and_sweep_figures():
    slots = [{"label": "stem", "kind": "stem", "params": 10}, {"label": "0", "kind": "inherit", "params": 5},
             {"label": "1", "kind": "random", "params": 5}, {"label": "head", "kind": "head", "params": 2}]
    fig = figures.descendant_stack(slots)
    assert all(list(t.width) == [0.9] * len(t.y) for t in fig.data), "every box is as tall as the others"
    assert [t.name for t in fig.data] == ["stem", "inherited (learngene)", "random init", "new head"]
    assert len(figures.size_bars({"a": 1, "b": 2}).data[0].y) == 2
    import pandas as pd

    df = pd.DataFrame({"model": ["learngene", "baseline"] * 2, "k_shot": [5, 5, 10, 10], "mean": [.5, .4, .6, .5],
                       "ci": [.1] * 4})
    fig = figures.sweep_figure(df, x="k_shot")
    assert len(fig.data) == 2 and list(fig.data[0].x) == [5, 10]


def test_every_job_command_line_parses_with_the_cli():
    from app.person import pipeline
    from app.ui.forms import TASK_DEFAULTS
    from learngene.cli import build_parser

    parser = build_parser()
    anc, recipe = Path("a.safetensors"), {"placement": "top", "depth": 6, "stem": "inherit"}
    argvs = [
        pipeline.accumulate_argv("lg_vit_tiny", "shapes", images_per_class=50, epochs=3, lr=1e-3, device="cpu",
                                 holdout_per_class=10, warmup_epochs=1),
        pipeline.condense_argv(anc, "auto", 3, {"images": 64, "lam": 1.0, "pd_depth": None, "device": "cpu"}, rule="row_mean"),
        pipeline.train_argv(anc, [0, 3], recipe, TASK_DEFAULTS),
        pipeline.train_argv(anc, [0, 3], recipe, pipeline.DEMO_TRAIN, learngene_file="lg.safetensors"),
        pipeline.sweep_argv(anc, [0, 3], recipe, TASK_DEFAULTS, [1e-3, 3e-3], [0.05], [5, 10]),
    ]
    for argv in argvs:
        args = parser.parse_args(argv)
        assert args.command == argv[0]
    args = parser.parse_args(argvs[1])
    assert args.settings == ["lam=1.0"] and args.images == 64 and args.rule == "row_mean"


def test_state_parsing_is_lenient():
    assert parse_layers("3, 1,x,-2,1") == [1, 3]
    s = StudioState.from_dict({"layers": [3, 1, "x"], "watched": "nope", "unknown": 1})
    assert s.layers == [1, 3] and s.watched == []
