"""`learngene probe`: single-layer gains, leave-one-out shares, the result file, the command, and Spearman's rho."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from learngene.cli import main
from learngene.data import load_dataset
from learngene.descend.probe import (
    FORMAT,
    ProbeConfig,
    ProbeResult,
    plan_models,
    probe_units,
    run_probe,
    unique_models,
)
from learngene.descend.probe_report import score_gain_correlation, spearman
from learngene.errors import CheckpointError, ConfigError
from learngene.models import ModelCard, create_model, save_checkpoint
from learngene.runlog import read_jsonl

TINY = ProbeConfig(n_way=3, k_shot=5, tasks=2, epochs=2, batch_size=5, test_per_class=20, device="cpu", batched="off")
CHOSEN = [0, 2]  # on 3 layers: "chosen - 0" is "single 2" and "chosen - 2" is "single 0" (trained once)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ancestry():
    torch.manual_seed(0)
    return create_model("lg_vit_tiny", 8, depth=3)


@pytest.fixture(scope="module")
def ancestry_file(tmp_path_factory, ancestry):
    return save_checkpoint(ancestry, tmp_path_factory.mktemp("anc") / "anc.safetensors", ModelCard(spec=ancestry.lg_spec))


@pytest.fixture(scope="module")
def data():
    return load_dataset("shapes", images_per_class=40)  # 20 test images per class remain


@pytest.fixture(scope="module")
def result(ancestry, data) -> ProbeResult:
    return run_probe(ancestry, data, TINY, CHOSEN, ancestry_info={"arch": "lg_vit_tiny", "path": "anc", "sha256": "x"},
                     data={"dataset": "shapes", "data_seed": 0, "images_per_class": 40}, log=lambda s: None)


# -- the plan -------------------------------------------------------------------------------------------


def test_plan_names_the_models_and_trains_coinciding_ones_once():
    names = [m.name for m in plan_models(3, [2, 0])]
    assert names == ["baseline", "stem", "single 0", "single 1", "single 2", "chosen", "chosen - 0", "chosen - 2"]
    groups = {tuple(m.name for m in g) for g in unique_models(plan_models(3, CHOSEN))}
    assert ("single 0", "chosen - 2") in groups and ("single 2", "chosen - 0") in groups and len(groups) == 6
    assert probe_units(3, CHOSEN, TINY) == 6 * TINY.tasks * TINY.epochs
    assert len(unique_models(plan_models(8, [0, 5, 6, 7]))) == 2 + 8 + 1 + 4
    with pytest.raises(ConfigError, match="out of range"):
        plan_models(3, [3])
    with pytest.raises(ConfigError, match="at least 2 tasks"):
        ProbeConfig(tasks=1).validated()


# -- the measurement ------------------------------------------------------------------------------------


def test_result_has_the_documented_shape_and_round_trips(result, tmp_path):
    d = result.to_dict()
    assert d["format"] == FORMAT and sorted(d) == sorted(
        ["format", "ancestry", "settings", "layers", "chance", "accuracy", "stem_gain", "single", "chosen",
         "leave_one_out", "elapsed_s", "created"])
    assert d["layers"] == ["blocks.0", "blocks.1", "blocks.2"] and d["chosen"] == CHOSEN
    assert d["chance"] == pytest.approx(1 / 3)
    assert d["settings"] == {"n_way": 3, "k_shot": 5, "tasks": 2, "epochs": 2, "lr": 1e-3, "weight_decay": 0.05,
                             "batch_size": 5, "test_per_class": 20, "seed": 0, "data_seed": 0, "dataset": "shapes",
                             "device": "cpu", "batched": False, "images_per_class": 40}
    assert [r["layer"] for r in d["single"]] == [0, 1, 2] and [r["name"] for r in d["leave_one_out"]] == [
        "blocks.0", "blocks.2"]
    for block in [d["stem_gain"], *d["accuracy"].values(), *(r[k] for r in d["single"] for k in ("acc", "gain"))]:
        assert set(block) == {"mean", "ci95", "per_task"} and len(block["per_task"]) == 2
        assert block["mean"] == pytest.approx(sum(block["per_task"]) / 2) and block["ci95"] >= 0
    path = result.save(tmp_path / "p.json")
    back = ProbeResult.load(path)
    assert back.to_dict() == json.loads(path.read_text()) and back.single == result.single


def test_gains_and_shares_are_paired_differences_of_the_accuracies(result):
    acc = {k: v["per_task"] for k, v in result.accuracy.items()}
    single = {r["layer"]: r["acc"]["per_task"] for r in result.single}
    for v in [*acc.values(), *single.values()]:
        assert all(0 <= a <= 1 and (a * 60) == pytest.approx(round(a * 60)) for a in v)  # 60 test images
    assert result.stem_gain["per_task"] == pytest.approx([s - b for s, b in zip(acc["stem"], acc["baseline"], strict=True)])
    for r in result.single:
        assert r["gain"]["per_task"] == pytest.approx([a - s for a, s in zip(single[r["layer"]], acc["stem"], strict=True)])
    # chosen = {0, 2}: without 0 it is single 2, without 2 it is single 0
    without = {0: single[2], 2: single[0]}
    for r in result.leave_one_out:
        assert r["share"]["per_task"] == pytest.approx([c - w for c, w in zip(acc["chosen"], without[r["layer"]], strict=True)])
    assert result.gains == [r["gain"]["mean"] for r in result.single]


def test_batched_and_sequential_give_the_same_accuracies(ancestry, data, result):
    from dataclasses import replace

    batched = run_probe(ancestry, data, replace(TINY, batched="on", max_batch=7), CHOSEN, log=lambda s: None)
    assert batched.settings["batched"] is True and result.settings["batched"] is False
    for a, b in [(batched.accuracy[k], result.accuracy[k]) for k in ("baseline", "stem", "chosen")] + [
            (x["acc"], y["acc"]) for x, y in zip(batched.single, result.single, strict=True)]:
        assert a["per_task"] == pytest.approx(b["per_task"], abs=1 / 60 + 1e-9)  # one test image of 60 at most


class _Sink:
    """A stand-in Reporter that keeps the records and counts progress."""

    def __init__(self):
        self.records, self.done = [], 0

    def metric(self, record):
        self.records.append(record)

    def advance(self, n=1, message=None, **_):
        self.done += n


def test_a_diverged_model_counts_as_chance(ancestry, data):
    from dataclasses import replace

    sink, notes = _Sink(), []
    cfg = replace(TINY, lr=1e6, epochs=2)
    res = run_probe(ancestry, data, cfg, [], reporter=sink, log=notes.append)
    models = [r for r in sink.records if r["kind"] == "probe_model"]
    bad = [r for r in models if r["diverged"]]
    assert bad and all(r["acc"] == pytest.approx(1 / 3) for r in bad) and any("diverged" in n for n in notes)
    assert sink.done == probe_units(3, [], cfg)  # a diverged model's missing epochs still count as done
    assert res.accuracy["chosen"] is None and res.leave_one_out == [] and res.chosen == []


def test_load_refuses_damaged_files_with_their_path(result, tmp_path):
    good = result.to_dict()

    def broken(change) -> dict:
        d = copy.deepcopy(good)
        change(d)
        return d

    cases = {
        "format": lambda d: d.update(format="learngene.probe/0"),
        "missing": lambda d: d.pop("stem_gain"),
        "unknown": lambda d: d.update(colour="red"),
        "per_task": lambda d: d["single"][1]["gain"]["per_task"].pop(),
        "layer": lambda d: d["single"][1].update(layer=2),
        "loo": lambda d: d["leave_one_out"].pop(),
        "chosen": lambda d: d["accuracy"].update(chosen=None),
        "settings": lambda d: d["settings"].pop("seed"),
        "nan": lambda d: d["accuracy"]["stem"].update(mean=None),
    }
    for name, change in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(broken(change)))
        with pytest.raises(CheckpointError, match=str(path)):
            ProbeResult.load(path)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="junk.json"):
        ProbeResult.load(tmp_path / "junk.json")
    with pytest.raises(CheckpointError, match="missing.json"):
        ProbeResult.load(tmp_path / "nowhere" / "missing.json")


# -- the command ----------------------------------------------------------------------------------------


CLI = ["--images-per-class", "30", "--n-way", "3", "--k-shot", "5", "--test-per-class", "5", "--epochs", "1",
       "--batch-size", "5", "--tasks", "2", "--device", "cpu"]


def test_cli_probe_runs_as_a_job_and_prints_the_table(tmp_path, ancestry_file, capsys):
    run = tmp_path / "run"
    rc = main(["probe", "--ancestry", str(ancestry_file), "--chosen", "0,-1", *CLI, "--run-dir", str(run)])
    out = capsys.readouterr().out
    assert rc == 0 and "single gain" in out and "leave-one-out share" in out and "stem gain" in out
    assert "chance 33.3" in out and "blocks.2" in out
    res = ProbeResult.load(run / "outputs" / "probe.json")
    assert res.chosen == [0, 2] and res.ancestry["path"].endswith("anc.safetensors") and len(res.ancestry["sha256"]) == 64
    records, _ = read_jsonl(run / "metrics.jsonl")
    models = [(r["task"], r["model"]) for r in records if r["kind"] == "probe_model"]
    names = [m.name for m in plan_models(3, [0, 2])]
    assert sorted(models) == sorted((t, n) for t in range(2) for n in names)
    accs = {(r["task"], r["model"]): r["acc"] for r in records if r["kind"] == "probe_model"}
    assert [accs[(t, "stem")] for t in range(2)] == pytest.approx(res.accuracy["stem"]["per_task"])
    progress = json.loads((run / "progress.json").read_text())
    assert progress["done"] == progress["total"] == 6 * 2 * 1


@pytest.mark.parametrize("bad, message", [
    (["--chosen", "0,3"], "out of range"),
    (["--chosen", "0,0"], "twice"),
    (["--chosen", "best"], "unknown selection preset"),
    (["--tasks", "1"], "at least 2 tasks"),
    (["--epochs", "0"], "epochs"),
])
def test_cli_probe_refuses_bad_input_in_one_line(ancestry_file, capsys, bad, message):
    rc = main(["probe", "--ancestry", str(ancestry_file), *CLI, *bad, "--out", "/nonexistent/never.json"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and err.startswith("error:") and "\n" not in err


# -- reading a probe ------------------------------------------------------------------------------------


def test_spearman_known_values():
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)  # 1 - 6 * 4 / (5 * 24)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3.5, 2, -1]) == pytest.approx(-1.0)
    # ties take average ranks: y ranks 1, 2, 3.5, 5, 3.5 -> rho = 8 / sqrt(10 * 9.5)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    # pairs with None / NaN are left out: (1,2) (2,1) (3,4) (4,3) -> 1 - 6 * 4 / (4 * 15)
    assert spearman([1, None, 2, 3, float("nan"), 4], [2, 9, 1, 4, 0, 3]) == pytest.approx(0.6)
    assert spearman([1, 2], [1, 2]) is None
    assert spearman([1, 2, None], [1, 2, 3]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1, 2, 3], [4, 4, 4]) is None
    with pytest.raises(ConfigError, match="one length"):
        spearman([1, 2, 3], [1, 2])


def test_score_gain_correlation_ranks_scores_against_the_gains(result):
    d = result.to_dict()
    for row, gain in zip(d["single"], [0.05, -0.01, 0.02], strict=True):
        row["gain"]["mean"] = gain
    assert score_gain_correlation([0.9, 0.1, 0.5], d) == pytest.approx(1.0)
    assert score_gain_correlation([0.1, 0.9, 0.5], ProbeResult.from_dict(d)) == pytest.approx(-1.0)
    assert score_gain_correlation([0.3, None, 0.2], d) is None
    with pytest.raises(ConfigError, match="3 layers"):
        score_gain_correlation([0.1, 0.2], d)


def test_correlation_interval_resamples_tasks(result):
    """Gains that agree on every task give a tight interval at rho; reversed per-task gains widen it."""
    import copy

    from learngene.descend.probe_report import correlation_interval

    steady = copy.deepcopy(result.to_dict())
    for i, row in enumerate(steady["single"]):  # gains i/10 on both tasks: scores 0, 1, 2 rank them exactly
        row["gain"] = {"mean": i / 10, "ci95": 0.0, "per_task": [i / 10, i / 10]}
    assert correlation_interval([0.0, 1.0, 2.0], steady) == (1.0, 1.0)
    split = copy.deepcopy(steady)
    for i, row in enumerate(split["single"]):  # task 0 ranks the layers one way, task 1 the other
        row["gain"] = {"mean": i / 40, "ci95": 0.1, "per_task": [i / 10, -i / 20]}
    low, high = correlation_interval([0.0, 1.0, 2.0], split, resamples=400)
    assert low == -1.0 and high == 1.0
    assert correlation_interval([0.0, 1.0], steady) is None  # one score per layer, or no interval
