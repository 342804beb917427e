"""Export to TensorBoard and MLflow: what `jobs export` writes reads back with the tools'
own readers (TensorBoard's EventAccumulator, MLflow's client): config as hyper-parameters / params, every
curve as a metric series by epoch, the summary's numbers as metrics, the run's name, tags and note."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from tests.conftest import require_module


def epoch(model: str, task: int, e: int, **extra) -> dict:
    return {"kind": "epoch", "model": model, "task": task, "epoch": e, "t": 1.8e9 + e, "time": 0.5 * e,
            "train_loss": 2.0 / e, "test_acc": (0.3 if model == "baseline" else 0.5) + 0.01 * e + 0.1 * task,
            "lr": 1e-3, **extra}


CONFIG = {"kind": "config", "t": 1.8e9, "command": "python -m learngene train ...",
          "recipe": {"placement": "top", "slots": [{"kind": "inherit", "layer": 0}]},
          "train": {"lr": 0.001, "weight_decay": 0.05, "epochs": 3, "augment": True},
          "tasks": {"n_way": 5, "k_shot": 10, "tasks": 2}, "data": {"dataset": "shapes", "split": {"base": list(range(64))}}}
SUMMARY = {"kind": "summary", "t": 1.8e9 + 9, "learngene": {"final_acc": {"mean": 0.58, "ci95": 0.1, "values": [0.53, 0.63]}},
           "baseline": {"final_acc": {"mean": 0.38, "ci95": 0.1}}, "gain": {"mean": 0.2, "ci95": 0.05}, "pairs": 2}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, str, str]:
    """A finished train run (2 tasks x 2 models x 3 epochs, a summary, annotations) and a sweep run."""
    from learngene.jobs import JobManager, JobSpec
    from learngene.jobs.annotations import annotate

    folder = tmp_path_factory.mktemp("export-runs")
    mgr = JobManager(folder, max_cpu_jobs=2)
    train = mgr.start(JobSpec(argv=["selftest", "--records", "0"], kind="train", name="started as"))
    sweep = mgr.start(JobSpec(argv=["selftest", "--records", "0"], kind="sweep", name="a sweep"))
    records = {train: [CONFIG, *[epoch(m, t, e) for t in (0, 1) for m in ("learngene", "baseline") for e in (1, 2, 3)],
                       SUMMARY],
               sweep: [epoch(m, 0, e, base_lr=lr, weight_decay=0.05, k_shot=5, seed=0)
                       for lr in (1e-3, 1e-2) for m in ("learngene", "baseline") for e in (1, 2)]}
    for run_id, recs in records.items():
        assert mgr.wait(run_id, timeout=60).state == "done"
        with open(mgr.run_dir(run_id) / "metrics.jsonl", "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in recs)
    annotate(mgr.run_dir(train), name="the good one", tags=["keep"], note="lr 1e-3")
    return folder, train, sweep


def export(folder: Path, *args: str) -> int:
    from learngene.cli import main

    return main(["jobs", "--runs-dir", str(folder), "export", *args])


def test_tensorboard_event_files_read_back(runs, tmp_path, capsys):
    require_module("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    folder, train, sweep = runs
    out = tmp_path / "tb"
    assert export(folder, train, sweep, "--tensorboard", str(out)) == 0
    assert "tensorboard --logdir" in capsys.readouterr().out
    acc = EventAccumulator(str(out / train))
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    assert {f"{m}/{r}/task{t}" for m in ("test_acc", "train_loss") for r in ("learngene", "baseline") for t in (0, 1)} \
        <= set(scalars)
    points = acc.Scalars("test_acc/learngene/task1")
    assert [p.step for p in points] == [1, 2, 3]
    assert [p.value for p in points] == pytest.approx([0.61, 0.62, 0.63])
    assert points[0].wall_time == pytest.approx(1.8e9 + 1)
    assert acc.Scalars("summary/gain")[-1].value == pytest.approx(0.2)
    assert acc.Scalars("summary/learngene/final_acc")[-1].value == pytest.approx(0.58)
    start = plugin_data_pb2.HParamsPluginData.FromString(acc.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["train.lr"].number_value == pytest.approx(1e-3) and hp["recipe.placement"].string_value == "top"
    assert hp["run.name"].string_value == "the good one" and "data.split.base" not in hp, "a 64-id list is left out"
    sweep_acc = EventAccumulator(str(out / sweep))
    sweep_acc.Reload()
    assert "test_acc/learngene/task0/base_lr_0.01/k_shot_5/seed_0/weight_decay_0.05" in sweep_acc.Tags()["scalars"]
    assert export(folder, train, "--tensorboard", str(out)) == 0  # again: replaced, not doubled
    again = EventAccumulator(str(out / train))
    again.Reload()
    assert len(again.Scalars("test_acc/learngene/task1")) == 3


def test_mlflow_store_lists_the_run_with_params_and_metrics(runs, tmp_path, monkeypatch, capsys):
    require_module("mlflow")
    from mlflow.tracking import MlflowClient

    folder, train, sweep = runs
    store = tmp_path / "mlruns"
    assert export(folder, train, sweep, "--mlflow", str(store)) == 0
    assert "mlflow ui --backend-store-uri file://" in capsys.readouterr().out
    assert export(folder, train, "--mlflow", str(store)) == 0  # again: the old MLflow run is replaced
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    exp = client.get_experiment_by_name("learngene-studio")
    found = {r.data.tags["learngene.run_id"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(found) == {train, sweep}, "one MLflow run per run, also after exporting one again"
    run = found[train]
    assert run.info.run_name == "the good one" and run.info.status == "FINISHED"
    assert run.data.tags["learngene.tags"] == "keep" and run.data.tags["learngene.note"] == "lr 1e-3"
    params = run.data.params
    assert params["train.lr"] == "0.001" and params["tasks.k_shot"] == "10" and params["job.kind"] == "train"
    assert run.data.metrics["summary/gain"] == pytest.approx(0.2)
    history = client.get_metric_history(run.info.run_id, "test_acc/baseline/task0")
    assert [(m.step, round(m.value, 6)) for m in sorted(history, key=lambda m: m.step)] == \
        [(1, 0.31), (2, 0.32), (3, 0.33)]


@pytest.mark.parametrize("what", ["mlflow", "mlflow-sqlite"])
def test_the_mlflow_download_reads_back_after_unzipping(runs, tmp_path, monkeypatch, what):
    """As a person would: the Runs page's zip, unzipped in a folder of their own (the export's temporary
    folder is gone), read by MLflow's own client: the run, its params and a metric's history."""
    require_module("mlflow")
    if what == "mlflow-sqlite":
        require_module("sqlalchemy")
        require_module("alembic")
    from mlflow.tracking import MlflowClient

    from learngene.jobs.export import export_zip

    folder, train, sweep = runs
    data = export_zip([folder / train, folder / sweep], what)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert what == "mlflow-sqlite" or sum(n.endswith("/artifacts/") for n in names) == 2  # kept though empty
    where = tmp_path / "download"
    zipfile.ZipFile(io.BytesIO(data)).extractall(where)
    monkeypatch.chdir(tmp_path)
    if what == "mlflow":
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = where.as_uri()
    else:
        assert sorted(p.name for p in where.iterdir()) == ["mlflow.db"]
        uri = f"sqlite:///{where / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("learngene-studio")
    listed = {r.data.tags["learngene.run_id"]: r.info.run_id for r in client.search_runs([exp.experiment_id])}
    assert set(listed) == {train, sweep}
    run = client.get_run(listed[train])
    assert run.info.run_name == "the good one" and run.data.params["train.lr"] == "0.001"
    history = client.get_metric_history(listed[train], "test_acc/learngene/task1")
    assert [(m.step, round(m.value, 6)) for m in sorted(history, key=lambda m: m.step)] == \
        [(1, 0.61), (2, 0.62), (3, 0.63)]
    for location in (exp.artifact_location, run.info.artifact_uri):  # nothing points into the server's tmp
        assert location.startswith("./") and "lg-export-" not in location, location
    tensorboard = zipfile.ZipFile(io.BytesIO(export_zip([folder / train], "tensorboard"))).namelist()
    assert len(tensorboard) == 1 and tensorboard[0].startswith(f"{train}/events.out.tfevents.")  # files only


def test_export_says_what_is_missing(runs, tmp_path, capsys):
    folder, train, _ = runs
    assert export(folder, train) == 2
    assert "--tensorboard DIR and/or --mlflow DIR" in capsys.readouterr().err
    assert export(folder, "--tensorboard", str(tmp_path / "tb")) == 2
    assert "name the runs to export" in capsys.readouterr().err
