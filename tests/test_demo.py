"""The Home page's one-click demo: shipped layers, a numeric headline, the reference run, the bench.

The app runs on a tiny untrained ancestry (lg_vit_tiny, depth 4) saved by the tests, in a temporary
assets folder that holds (for the "shipped" ancestry) a CKA result at `similarity_path(ckpt, "cka")`
and a reference run at `assets/demo/<stem>/`, as the real assets do. Finished train runs are made
with the job manager's `selftest` worker plus the files `learngene train` writes, with summaries
computed by the library (`summarize_pairs`) from made-up accuracy curves, so no test trains a network
except the bench's smoke test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cancel_runs, require_module

require_module("streamlit")  # skipped without streamlit on a developer machine; fails under CI
from streamlit.testing.v1 import AppTest  # noqa: E402

from app.logic import demo  # noqa: E402
from app.person.people import public_id  # noqa: E402
from tests.test_app import PERSON, new_session, person_file, save_state, saved_state  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "app" / "main.py"
SHIPPED_LAYERS = [0, 2]


# ------------------------------------------------------------------ made-up results


def pairs(n_tasks: int) -> list:
    """PairResults whose baseline reaches its own final accuracy at epoch 5 and the learngene at epoch 1."""
    from learngene.descend.compare import PairResult, RunResult

    def history(accs):
        return [{"epoch": e, "train_loss": 2.0 / e, "test_acc": a, "time": 0.3 * e} for e, a in enumerate(accs, 1)]

    out = []
    for i in range(n_tasks):
        bl = [0.20, 0.22, 0.24, 0.23, 0.26 + 0.01 * i]
        lg = [0.30 + 0.01 * i, 0.45, 0.50, 0.55, 0.56 + 0.02 * i]
        out.append(PairResult(task=i, classes=(0, 1, 2, 3, 4), n_way=5, k_shot=10,
                              settings={"lr": 1e-3, "weight_decay": 0.05, "seed": 0},
                              learngene=RunResult("learngene", history(lg), wall_time=3.0),
                              baseline=RunResult("baseline", history(bl), wall_time=3.0)))
    return out


def train_outputs(n_tasks: int) -> tuple[list[dict], dict]:
    """(metric records, summary.json) as `learngene train` with the default target writes them."""
    from learngene.descend.summary import summarize_pairs

    ps = pairs(n_tasks)
    summary = summarize_pairs(ps, "baseline")
    records = [{"kind": "config", "target_acc": "baseline"}]
    records += [{"kind": "epoch", "model": role, "task": p.task, **rec}
                for p in ps for role in ("learngene", "baseline") for rec in p.run(role).history]
    records.append({"kind": "summary", **summary})
    return records, {"target_acc": "baseline", "summary": summary, "pairs": [p.to_dict() for p in ps]}


def mean_target(n_tasks: int) -> float:
    """The mean of the baselines' final accuracies in `pairs`, from their curves' last points 0.26 + 0.01 i."""
    return 0.26 + 0.01 * (n_tasks - 1) / 2


def fake_run_dir(folder: Path, n_tasks: int) -> Path:
    records, summary = train_outputs(n_tasks)
    (folder / "outputs").mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "outputs" / "summary.json").write_text(json.dumps(summary))
    return folder


def tiny_checkpoint(folder: Path) -> Path:
    from learngene.data.shapes import default_split
    from learngene.models import ModelCard, create_model, save_checkpoint

    model = create_model("lg_vit_tiny", num_classes=64, depth=4)
    card = ModelCard(spec=model.lg_spec, dataset="shapes", split=default_split().to_dict(), epochs=0,
                     base_accuracy=0.25, command="tests/test_demo.py")
    return Path(save_checkpoint(model, folder / "tiny_vit.safetensors", card))


def ship_cka(ckpt: Path, selected=SHIPPED_LAYERS) -> Path:
    """A shipped linear-CKA result of `ckpt` where `assets/reproduce.sh` puts them."""
    import numpy as np

    from learngene.condense import SimilarityResult
    from learngene.condense.shipped import similarity_path
    from learngene.models import read_card

    m = np.random.default_rng(0).random((4, 2))
    sim = SimilarityResult(
        method="cka", matrix=m.tolist(), row_names=[f"blocks.{i}" for i in range(4)], col_names=["blocks.0", "blocks.1"],
        scores=m.max(1).tolist(), selected=list(selected), selection={"rule": "row_max", "how": "top-k", "k": 2},
        settings={}, ancestry={"arch": "lg_vit_tiny", "path": str(ckpt), "sha256": read_card(ckpt).sha256},
        elapsed_s=1.0)
    return sim.save(similarity_path(ckpt, "cka"))


@pytest.fixture(scope="session")
def shipped_ancestry(tmp_path_factory) -> Path:
    """A tiny ancestry with a shipped CKA result and a reference demo run beside it."""
    from learngene.models import read_card

    ckpt = tiny_checkpoint(tmp_path_factory.mktemp("shipped-assets"))
    ship_cka(ckpt)
    run = fake_run_dir(tmp_path_factory.mktemp("reference-run") / "run", 5)
    demo.save_reference(run, ckpt, {"recorded": "2026-11-30", "machine": "a 2-core test CPU",
                                    "ancestry_sha256": read_card(ckpt).sha256, "seconds_to_summary": 31.0})
    return ckpt


@pytest.fixture(scope="session")
def bare_ancestry(tmp_path_factory) -> Path:
    """A tiny ancestry as an upload: no shipped result, no reference run."""
    return tiny_checkpoint(tmp_path_factory.mktemp("bare-assets"))


def _env(tmp_path, monkeypatch, tmp_path_factory, ckpt: Path) -> Path:
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(runs))
    monkeypatch.setenv("LEARNGENE_ANCESTRY", str(ckpt))
    monkeypatch.setenv("LEARNGENE_ASSETS_DIR", str(ckpt.parent))
    monkeypatch.setenv("LEARNGENE_CACHE", str(tmp_path_factory.getbasetemp() / "data-cache"))
    return runs


def _cancel_all(runs: Path) -> None:
    cancel_runs(runs)


@pytest.fixture
def shipped_env(tmp_path, monkeypatch, tmp_path_factory, shipped_ancestry):
    runs = _env(tmp_path, monkeypatch, tmp_path_factory, shipped_ancestry)
    yield runs
    _cancel_all(runs)


@pytest.fixture
def bare_env(tmp_path, monkeypatch, tmp_path_factory, bare_ancestry):
    runs = _env(tmp_path, monkeypatch, tmp_path_factory, bare_ancestry)
    yield runs
    _cancel_all(runs)


def make_run(runs: Path, kind: str, outputs: dict[str, dict], records: list[dict] = (), name: str = "") -> str:
    """A finished run made by the selftest worker, with the output files and metric records of `kind`."""
    from learngene.jobs import JobManager, JobSpec

    mgr = JobManager(runs)
    run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1"], kind=kind, name=name or f"test {kind}",
                               owner=public_id(PERSON)))
    assert mgr.wait(run_id, timeout=60).state == "done"
    folder = mgr.run_dir(run_id)
    for fname, data in outputs.items():
        (folder / "outputs" / fname).write_text(json.dumps(data))
    with open(folder / "metrics.jsonl", "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return run_id


def open_home() -> AppTest:
    at = new_session()
    at.run()
    at.switch_page("../pages/home.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart(at: AppTest, key: str) -> dict:
    for el in at.get("plotly_chart"):
        if key in el.proto.id:
            return json.loads(el.proto.spec)
    raise AssertionError(f"no plotly chart with key {key!r}")


def metric_values(at: AppTest) -> list[tuple[str, str]]:
    return [(m.label, m.value) for m in at.metric]


def hlines(fig: dict) -> list[float]:
    return [s["y0"] for s in fig["layout"].get("shapes", []) if s.get("y0") == s.get("y1")]


# ------------------------------------------------------------------ the library side


def test_demo_train_job_parses_with_three_or_more_tasks_and_the_baseline_target(tmp_path):
    from learngene.cli import build_parser

    spec = demo.train_spec(tmp_path / "a.safetensors", [0, 3], "shipped:cka")
    args = build_parser().parse_args(spec.argv)
    assert args.command == "train" and args.layers == "0,3"
    assert args.tasks >= demo.MIN_TASKS_FOR_CI and args.target_acc == "baseline"
    assert args.test_per_class == demo.DEMO_TRAIN["test_per_class"] and args.threads == 1
    assert spec.kind == "train" and spec.tags["similarity"] == "shipped:cka"


def test_headline_numbers_and_the_interval_rule():
    from learngene.descend.summary import summarize_pairs

    h = demo.headline(summarize_pairs(pairs(5), "baseline"))
    assert h["epochs"] == {"learngene": 1.0, "baseline": 5.0} and h["speedup"] == pytest.approx(5.0)
    assert h["show_ci"] and h["gain_ci"] is not None and h["tasks"] == 5
    assert h["target"] == pytest.approx(mean_target(5)) and h["target_words"].startswith("the baseline's final accuracy")
    h2 = demo.headline(summarize_pairs(pairs(2), "baseline"))
    assert not h2["show_ci"] and h2["gain_ci"] is None and h2["gain"] is not None
    assert "1.0, baseline 5.0 (speed-up 5.0x)" in demo.headline_text(summarize_pairs(pairs(3), "baseline"))


def test_a_reference_of_other_weights_is_not_used(shipped_ancestry):
    assert demo.load_reference(shipped_ancestry) is not None
    assert demo.load_reference(shipped_ancestry, sha256="0" * 64) is None


# ------------------------------------------------------------------ the Home page


def test_home_shows_the_reference_run_with_no_job(shipped_env):
    at = open_home()
    assert not person_file(shipped_env).exists() or not saved_state(shipped_env).get("demo")
    assert any("Reference run, recorded 2026-11-30 on a 2-core test CPU" in c.value for c in at.caption)
    fig = chart(at, "demo-ref-curves")
    assert hlines(fig) == [pytest.approx(mean_target(5))]  # the target line: the baseline's final accuracy
    metrics = dict(metric_values(at))
    assert metrics["speed-up to target"] == "5.0×"
    assert metrics["epochs to target (learngene)"] == "1.0" and metrics["epochs to target (baseline)"] == "5.0"
    assert "±" in metrics["accuracy gain (points)"]
    assert any("the baseline's final accuracy" in c.value for c in at.caption)


def test_home_diagram_shows_the_layers_the_demo_will_inherit(shipped_env):
    """Before the demo, with no learngene chosen, the picture shows the demo's layers (not another preset)."""
    at = open_home()
    fig = chart(at, "idea")
    learngene_row = [t for t in fig["data"] if t.get("name") == "learngene"]
    assert learngene_row, [t.get("name") for t in fig["data"]]
    names = learngene_row[0]["text"]
    assert len(names) == len(SHIPPED_LAYERS), names
    assert any("the layers the demo inherits (0, 2" in c.value for c in at.caption), [c.value for c in at.caption]


def test_with_a_shipped_result_the_demo_starts_a_train_job_only(shipped_env):
    from learngene.jobs import JobManager, default_max_cpu_jobs

    at = open_home()
    at.button(key="demo").click().run()
    assert not at.exception, [e.value for e in at.exception]
    state = saved_state(shipped_env)
    d = state["demo"]
    assert not d.get("condense") and d["train"] and d["similarity"] == "shipped:cka"
    mgr = JobManager(shipped_env)
    runs = mgr.list()
    assert [r.spec.kind for r in runs] == ["train"]
    info = mgr.get(d["train"])
    mgr.cancel(info.run_id)  # nothing more to see: spare the CPU
    argv = info.spec.argv
    assert argv[argv.index("--layers") + 1] == ",".join(map(str, SHIPPED_LAYERS)) and "--target-acc" not in argv
    assert state["layers"] == SHIPPED_LAYERS and state["similarity_run"] == "shipped:cka"
    assert json.loads((Path(info.path) / "config.json").read_text())["max_cpu_jobs"] == default_max_cpu_jobs() + 1
    assert at.button(key="demo").disabled  # while the demo runs


def test_without_a_shipped_result_the_demo_condenses_then_trains(bare_env, bare_ancestry):
    from learngene.jobs import JobManager
    from learngene.models import read_card

    sim = {"format": "learngene.similarity/1", "method": "cka", "matrix": [[0.9, 0.1]] * 4,
           "row_names": [f"blocks.{i}" for i in range(4)], "col_names": ["blocks.0", "blocks.1"],
           "scores": [0.9] * 4, "selected": [1, 3], "selection": {"rule": "row_max", "how": "top-k", "k": 2},
           "settings": {}, "ancestry": {"arch": "lg_vit_tiny", "path": str(bare_ancestry),
                                        "sha256": read_card(bare_ancestry).sha256}, "elapsed_s": 1.0}
    at = open_home()
    assert not any("reference run" in c.value for c in at.caption)  # no reference for an upload
    at.button(key="demo").click().run()
    d = saved_state(bare_env)["demo"]
    mgr = JobManager(bare_env)
    assert mgr.get(d["condense"]).spec.kind == "condense" and not d.get("train")
    mgr.cancel(d["condense"])
    condensed = make_run(bare_env, "condense", {"similarity.json": sim})
    save_state(bare_env, demo={"condense": condensed, "train": None, "ancestry": str(bare_ancestry)})
    open_home()  # a new session: the demo advances from the finished condense run
    state = saved_state(bare_env)
    train = mgr.get(state["demo"]["train"])
    mgr.cancel(train.run_id)
    assert train.spec.kind == "train" and state["layers"] == [1, 3] and state["similarity_run"] == condensed
    assert "--target-acc" not in train.spec.argv


def test_a_finished_demo_shows_numbers_and_the_target_line(shipped_env):
    records, summary = train_outputs(5)
    run_id = make_run(shipped_env, "train", {"summary.json": summary}, records, name="demo · learngene vs baseline")
    save_state(shipped_env, demo={"train": run_id, "condense": None})
    at = open_home()
    fig = chart(at, "demo-curves")
    assert hlines(fig) == [pytest.approx(mean_target(5))]
    assert chart(at, "demo-ref-curves")  # the reference stays beside the finished live run
    values = [v for label, v in metric_values(at) if label == "speed-up to target"]
    assert values == ["5.0×", "5.0×"]  # reference and live run


def test_a_baseline_at_chance_is_said_beside_the_speed_up(bare_env):
    from learngene.descend.summary import summarize_pairs

    ps = pairs(5)
    for p in ps:  # the baseline ends at chance (20% on 5-way tasks)
        p.baseline.history[-1]["test_acc"] = 0.2
    summary = {"target_acc": "baseline", "summary": summarize_pairs(ps, "baseline")}
    run_id = make_run(bare_env, "train", {"summary.json": summary}, [], name="demo · learngene vs baseline")
    save_state(bare_env, demo={"train": run_id, "condense": None})
    at = open_home()
    assert any("baseline stayed at chance (20.0% final accuracy" in w.value for w in at.warning)
    speed = next(m for m in at.metric if m.label == "speed-up to target")
    assert speed.delta == "baseline at chance"


def test_under_three_tasks_no_interval_is_shown(bare_env):
    records, summary = train_outputs(2)
    run_id = make_run(bare_env, "train", {"summary.json": summary}, records, name="demo · learngene vs baseline")
    save_state(bare_env, demo={"train": run_id, "condense": None})
    at = open_home()
    metrics = dict(metric_values(at))
    assert "±" not in metrics["accuracy gain (points)"] and metrics["speed-up to target"] == "5.0×"
    assert any("interval needs ≥ 3 tasks" in c.value for c in at.caption)
    assert all("± 95% CI" not in df.value.columns for df in at.dataframe)


# ------------------------------------------------------------------ the benchmark


def test_demo_speed_bench_smallest_saves_a_reference(tmp_path, shipped_ancestry):
    import shutil

    from bench import demo_speed

    ckpt = tmp_path / "assets" / shipped_ancestry.name
    ckpt.parent.mkdir()
    for src in (shipped_ancestry, shipped_ancestry.with_suffix(".json")):
        shutil.copy(src, ckpt.parent / src.name)
    ship_cka(ckpt)
    docs = tmp_path / "results.md"
    assert demo_speed.main(["--quick", "--ancestry", str(ckpt), "--out", str(tmp_path / "out"), "--write-docs",
                            "--docs", str(docs), "--save-reference"]) == 0
    assert f"<!-- bench:demo-cpu-{ckpt.stem} -->" in docs.read_text()
    ref = demo.load_reference(ckpt)
    assert ref is not None and ref.meta["layers"] == SHIPPED_LAYERS and ref.meta["similarity"] == "shipped:cka"
    assert demo.headline(ref.summary["summary"])["epochs"]["baseline"] is not None


def test_every_shipped_ancestry_has_a_reference_run_of_its_shipped_layers():
    """assets/demo/<stem>/ matches the shipped checkpoint and its shipped CKA choice (else: assets/reproduce.sh)."""
    from learngene.models import read_card, shipped_checkpoints

    checked = 0
    for ckpt in shipped_checkpoints(ROOT / "assets"):
        sha = read_card(ckpt).sha256
        shipped = demo.shipped_result(ckpt, sha)
        if shipped is None:
            continue
        ref = demo.load_reference(ckpt, sha)
        assert ref is not None, f"no reference demo run for {ckpt.name}: python -m bench.demo_speed --ancestry {ckpt} --save-reference"
        assert ref.meta["layers"] == list(shipped.selected) and ref.meta["similarity"] == "shipped:cka"
        argv = ref.meta["argv"]  # the app's demo job today, up to how the checkpoint's path was written
        assert argv == demo.train_spec(argv[argv.index("--ancestry") + 1], list(shipped.selected)).argv
        h = demo.headline(ref.summary["summary"])
        assert h["speedup"] is not None and h["gain"] > 0
        checked += 1
    assert checked, "no shipped ancestry with a shipped CKA result"


def test_the_headline_names_the_baselines_state_as_the_rule_does():
    from learngene.descend.summary import summarize_pairs

    summary = summarize_pairs(pairs(5), "baseline")
    summary["chance"] = 0.2
    summary["baseline"]["final_acc"]["mean"] = 0.223
    for state, words in (("not clearly above chance", "; the baseline is not clearly above chance"),
                         ("at chance", "; the baseline stayed at chance")):
        summary.update(baseline_state=state, baseline_line=f"{state}: 22.3%")
        text = demo.headline_text(summary)
        assert text.endswith(words), text
    summary.update(baseline_state="learned")
    assert "baseline stayed" not in demo.headline_text(summary) and "chance" not in demo.headline_text(summary)
