"""The Streamlit-free parts of the runs dashboard: run annotations and their CLI
twin, the settings and results of a run's table row, and the predictions `train` writes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from learngene.errors import ConfigError
from learngene.jobs.annotations import ANNOTATIONS_FILE, annotate, read_annotations


def fake_run(tmp_path: Path, argv: list[str], tags: dict | None = None, state: str = "done") -> SimpleNamespace:
    folder = tmp_path / "20261201-120000-train-abcdef"
    (folder / "outputs").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    spec = SimpleNamespace(argv=argv, tags=tags or {}, device="cpu", kind=argv[0], name="a run")
    return SimpleNamespace(run_id=folder.name, path=folder, spec=spec, state=state, label="a run", reason=None,
                           duration_s=12.0, created_at=0, live=False)


def test_annotations_round_trip_atomically_and_refuse_bad_values(tmp_path):
    info = fake_run(tmp_path, ["train"])
    assert read_annotations(info.path) == {"name": "", "tags": [], "note": ""}
    annotate(info.path, name="  best \x1b[31mrun ", tags=["keep", "keep", "paper"], note="line 1\nline 2")
    got = read_annotations(info.path)
    assert got == {"name": "best run", "tags": ["keep", "paper"], "note": "line 1\nline 2"}, "escapes dropped"
    annotate(info.path, add_tags=["new"], remove_tags=["paper"])
    assert read_annotations(info.path)["tags"] == ["keep", "new"] and read_annotations(info.path)["name"] == "best run"
    assert not [p for p in info.path.iterdir() if p.name.endswith(".tmp")], "written through a temporary file"
    with pytest.raises(ConfigError, match="at most 200"):
        annotate(info.path, name="x" * 201)
    with pytest.raises(ConfigError, match="not a run folder"):
        annotate(tmp_path, name="x")
    (info.path / ANNOTATIONS_FILE).write_text("{not json")
    assert read_annotations(info.path)["tags"] == [], "a spoiled file reads as no annotations"


def test_jobs_annotate_cli_twin(tmp_path, capsys):
    from learngene.cli import main
    from learngene.jobs import JobManager, JobSpec

    mgr = JobManager(tmp_path)
    run_id = mgr.start(JobSpec(argv=["selftest", "--records", "1"], name="first name"))
    mgr.wait(run_id, timeout=60)
    assert main(["jobs", "--runs-dir", str(tmp_path), "annotate", run_id, "--name", "renamed", "--tag", "a",
                 "--tag", "b", "--note", "hello"]) == 0
    assert json.loads(capsys.readouterr().out) == {"name": "renamed", "tags": ["a", "b"], "note": "hello"}
    assert main(["jobs", "--runs-dir", str(tmp_path), "annotate", run_id, "--untag", "a"]) == 0
    assert json.loads(capsys.readouterr().out)["tags"] == ["b"]
    assert main(["jobs", "--runs-dir", str(tmp_path), "list"]) == 0
    assert "renamed" in capsys.readouterr().out, "jobs list shows the annotated name"
    assert mgr.get(run_id).spec.name == "first name", "the run's own config.json is never rewritten"


def test_row_settings_from_the_command_line_and_the_recorded_config(tmp_path):
    from app.logic import dashboard

    info = fake_run(tmp_path, ["train", "--ancestry", "a/anc.safetensors", "--layers", "0,3", "--placement", "top",
                               "--k-shot", "5", "--epochs", "7", "--lr", "0.003"])
    row = dashboard.settings(info)
    assert row | {"grid": ""} == {"ancestry": "anc", "layers": "0,3", "placement": "top", "lr": 0.003, "wd": 0.05,
                                  "N-way": 5.0, "K": 5.0, "seed": 0.0, "epochs": 7.0, "tasks": 1.0, "device": "cpu",
                                  "grid": ""}
    recorded = {"train": {"lr": 0.01, "weight_decay": 0.1, "epochs": 9}, "tasks": {"k_shot": 20, "tasks": 3},
                "recipe": {"placement": "bottom"}}
    row = dashboard.settings(info, recorded)
    assert (row["lr"], row["wd"], row["epochs"], row["K"], row["tasks"], row["placement"]) == (0.01, 0.1, 9, 20, 3,
                                                                                              "bottom")
    sweep = fake_run(tmp_path / "s", ["sweep", "--ancestry", "a.safetensors", "--layers", "1", "--lrs", "0.001,0.01",
                                      "--shots", "5,10"])
    row = dashboard.settings(sweep)
    assert row["lr"] is None and row["K"] is None and "lr 0.001,0.01" in row["grid"] and "K 5,10" in row["grid"]
    assert dashboard.parse_argv(["no-such-command", "--x"]) == {}
    odd = fake_run(tmp_path / "o", ["selftest"], tags={"layers": [1, 2], "ancestry": "/x/y.safetensors", "lr": 0.02})
    row = dashboard.settings(odd)
    assert (row["layers"], row["ancestry"], row["lr"]) == ("1,2", "y", 0.02), "the starting page's tags fill in"


# ------------------------------------------------------------------ 9. what the models predicted


@pytest.fixture(scope="module")
def small_ancestry(tmp_path_factory) -> Path:
    from learngene.data.shapes import default_split
    from learngene.models import ModelCard, create_model, save_checkpoint

    model = create_model("lg_vit_tiny", num_classes=64, depth=2)
    card = ModelCard(spec=model.lg_spec, dataset="shapes", split=default_split().to_dict(), epochs=0)
    return Path(save_checkpoint(model, tmp_path_factory.mktemp("anc") / "small.safetensors", card))


def test_train_writes_each_models_test_predictions_and_the_task_images(tmp_path, small_ancestry):
    import numpy as np
    from PIL import Image

    from learngene.cli import main

    run = tmp_path / "run"
    assert main(["train", "--ancestry", str(small_ancestry), "--layers", "0", "--n-way", "3", "--k-shot", "4",
                 "--tasks", "2", "--images-per-class", "30", "--test-per-class", "7", "--epochs", "2",
                 "--batch-size", "6", "--device", "cpu", "--run-dir", str(run)]) == 0
    out = run / "outputs"
    preds = json.loads((out / "predictions.json").read_text())["tasks"]
    pairs = json.loads((out / "summary.json").read_text())["pairs"]
    assert [t["task"] for t in preds] == [0, 1]
    for task, pair in zip(preds, pairs, strict=True):
        assert task["classes"] == pair["classes"] and len(task["class_names"]) == 3
        assert len(task["labels"]) == 21 and sorted(set(task["labels"])) == [0, 1, 2]
        for role in ("learngene", "baseline"):
            said = task["predictions"][role]
            assert len(said) == 21 and set(said) <= {0, 1, 2}
            acc = float(np.mean(np.array(said) == np.array(task["labels"])))
            assert acc == pytest.approx(pair[role]["final_acc"]), "the predictions are those the final accuracy scored"
        support = Image.open(out / task["support_image"])
        assert support.size == (12 * 32, 32) and task["support_labels"] == [0] * 4 + [1] * 4 + [2] * 4
        test = Image.open(out / task["test_image"])
        assert test.size == (len(task["samples"]) * 32, 32) and len(task["samples"]) == 18  # 6 of each class
