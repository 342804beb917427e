"""The stronger random-init reference of `train --strong-baseline`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from learngene.cli import main
from learngene.descend.compare import PairResult, RunResult, summarize_strong_baseline


def _pair(task: int, lg: float, strong: float, reached: int | None) -> PairResult:
    run = RunResult("learngene", [{"epoch": 1, "test_acc": lg}])
    base = RunResult("baseline", [{"epoch": 1, "test_acc": 0.2}])
    ref = {"factor": 3, "epochs": 30, "final_acc": strong, "best_acc": strong, "diverged": False, "wall_time": 1.0,
           "learngene_final_acc": lg, "epoch_reaching_learngene": reached}
    return PairResult(task, (0, 1, 2, 3, 4), 5, 10, {}, run, base, extra={"strong_baseline": ref})


def test_summary_of_the_stronger_reference_is_computed_from_the_pairs() -> None:
    pairs = [_pair(0, 0.60, 0.50, None), _pair(1, 0.40, 0.45, 12), _pair(2, 0.70, 0.62, 25)]
    s = summarize_strong_baseline(pairs)
    assert s["tasks"] == 3 and s["factor"] == 3 and s["epochs"] == 30
    assert s["final_acc"] == pytest.approx((0.50 + 0.45 + 0.62) / 3)
    assert s["learngene_final_acc"] == pytest.approx((0.60 + 0.40 + 0.70) / 3)
    assert s["gain"] == pytest.approx((0.10 - 0.05 + 0.08) / 3)
    assert s["learngene_wins"] == 2 and s["reached"] == 2
    assert s["median_epoch_reaching_learngene"] == pytest.approx(18.5)
    assert s["learned"] is True  # 0.45..0.62 is far above chance 0.2
    at_chance = summarize_strong_baseline([_pair(i, 0.5, 0.2, None) for i in range(3)])
    assert at_chance["learned"] is False and at_chance["reached"] == 0
    assert summarize_strong_baseline([_pair(0, 0.5, 0.5, 1)][:0]) is None


def test_train_strong_baseline_trains_a_longer_reference_and_reports_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--ancestry", "assets/lg_resnet_mini.safetensors", "--preset", "heur",
                 "--images-per-class", "24", "--k-shot", "4", "--test-per-class", "8", "--epochs", "2",
                 "--strong-baseline", "3", "--run-dir", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "converged baseline: random init trained to its plateau, at most 3x the epochs (6)" in printed
    summary = json.loads((run / "outputs" / "summary.json").read_text())
    strong = summary["summary"]["strong_baseline"]
    assert strong.get("max_epochs", strong["epochs"]) == 6 and strong["tasks"] == 1
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    long_epochs = [r["epoch"] for r in epochs if r.get("kind") == "epoch" and r.get("model") == "baseline-long"]
    assert 1 <= len(long_epochs) <= 6 and long_epochs == list(range(1, len(long_epochs) + 1))  # to its plateau
    ref = summary["pairs"][0]["extra"]["strong_baseline"]
    assert ref["final_acc"] == pytest.approx(strong["final_acc"])


@pytest.mark.parametrize("factor", ["1", "21"])
def test_a_strong_baseline_factor_out_of_range_is_refused_before_any_work(
        factor: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--strong-baseline", factor, "--ancestry", "/nonexistent.safetensors"]) != 0
    assert "--strong-baseline must be from 2 to 20" in capsys.readouterr().err
