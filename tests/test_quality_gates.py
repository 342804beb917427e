"""Answers to trust on unseen data: the one three-state rule, and the gates built on it (ancestry,
pseudo-descendant, baseline), in the library and the CLI."""

from __future__ import annotations

import argparse

import pytest
import torch

from learngene.descend.compare import PairResult, RunResult
from learngene.descend.quality import ancestry_quality, gate_ancestry
from learngene.descend.summary import (
    chance_warning,
    describe_learning,
    format_pair_summary,
    learning_state,
    summarize_pairs,
)
from learngene.errors import CheckpointError
from learngene.models import ModelCard, create_model, save_checkpoint
from learngene.train.budget import binomial_interval, judge

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as the commands train


# -- the rule -------------------------------------------------------------------------------------------

def test_the_three_states_and_what_they_say():
    # the live-race example: a mean well above chance whose interval reaches down to chance
    assert learning_state(0.323, 0.198, 0.448, 0.2) == "not clearly above chance"
    assert describe_learning(0.323, 0.198, 0.448, 0.2) == \
        "not clearly above chance: 32.3%, interval down to 19.8%, chance 20.0%"
    assert learning_state(0.193, 0.181, 0.205, 0.2) == "at chance"  # the random-init baseline of the trust issue
    assert learning_state(0.48, 0.41, 0.55, 0.2) == "learned"
    assert learning_state(None, None, None, 0.2) == "unknown"
    assert learning_state(0.7, None, None, 0.5) == "learned"  # no interval: the accuracy itself
    # one accuracy on n held-out images: the Wilson interval
    lo, hi = binomial_interval(0.5, 100)
    assert 0.40 < lo < 0.41 and 0.59 < hi < 0.60
    assert judge(0.025, 4800, 1 / 48)["state"] == "at chance"  # 4 epochs on 48 classes: useless
    assert judge(0.082, 192, 1 / 12)["state"] == "at chance"  # the fast pseudo-descendant of the trust issue
    assert judge(0.14, 1024, 1 / 16)["state"] == "learned"
    assert judge(0.0012, 50_000, 1 / 1000)["state"] == "at chance"  # judged on its own scale (margin: chance) ...
    assert judge(0.004, 50_000, 1 / 1000)["state"] == "learned"  # ... 4x chance has learned


def _pair(base: float, lg: float, task: int) -> PairResult:
    def run(role, acc):
        return RunResult(role, [{"epoch": 1, "time": 0.5, "test_acc": acc}])
    return PairResult(task, tuple(range(5)), 5, 5, {"lr": 1e-3, "weight_decay": 0.0, "seed": 0}, run("learngene", lg),
                      run("baseline", base))


def test_a_baseline_whose_interval_reaches_chance_is_not_called_at_chance():
    """Regression: 'the baseline stayed at chance' was said of a baseline at 32.3% (chance 20%)."""
    s = summarize_pairs([_pair(0.25, 0.6, 0), _pair(0.30, 0.7, 1), _pair(0.42, 0.65, 2)])
    assert s["baseline_state"] == "not clearly above chance" and s["learngene_state"] == "learned"
    warning = chance_warning(s)
    assert "stayed at chance" not in warning
    assert "the baseline is not clearly above chance: 32.3%, interval down to 10.6%, chance 20.0%" in warning
    assert "WARNING: the baseline is not clearly above chance" in format_pair_summary(s)
    flat = summarize_pairs([_pair(0.19, 0.6, 0), _pair(0.21, 0.7, 1), _pair(0.20, 0.65, 2)])
    assert flat["baseline_state"] == "at chance" and "the baseline stayed at chance (20.0%" in chance_warning(flat)
    learned = summarize_pairs([_pair(0.6, 0.7, 0), _pair(0.62, 0.7, 1), _pair(0.61, 0.7, 2)])
    assert learned["baseline_state"] == "learned" and chance_warning(learned) is None


# -- the ancestry gate ------------------------------------------------------------------------------

def _card(model, **kw) -> ModelCard:
    return ModelCard(spec=model.lg_spec, dataset="shapes", **kw)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("lg_vit_tiny", 64, depth=2)


def test_an_ancestry_recorded_at_chance_is_refused_unless_forced(tiny):
    card = _card(tiny, epochs=4, base_accuracy=0.02, extra={"heldout_images": 3200})
    with pytest.raises(CheckpointError, match=r"at chance on its held-out base classes .*--force"):
        gate_ancestry(card, "anc.safetensors")
    said = []
    verdict = gate_ancestry(card, "anc.safetensors", force=True, say=said.append)
    assert verdict["forced"] and "used anyway" in said[0]
    # not clearly above chance: a warning, and on
    said.clear()
    near = _card(tiny, epochs=4, base_accuracy=0.04, extra={"heldout_images": 320})
    assert gate_ancestry(near, "anc", say=said.append)["state"] == "not clearly above chance"
    assert said[0].startswith("WARNING: the ancestry is not clearly above chance")
    good = _card(tiny, epochs=10, base_accuracy=0.6, extra={"heldout_images": 3200})
    assert gate_ancestry(good, "anc", say=said.append)["state"] == "learned"


def test_unknown_accuracy_goes_on_and_a_trained_card_without_it_is_measured(tiny):
    from learngene.data import load_dataset

    said = []
    # a card that records no training (an import, an upload, a random-weights fixture), no data: unknown
    verdict = gate_ancestry(_card(tiny), "anc", say=said.append)
    assert verdict["state"] == "unknown" and verdict["source"] == "unknown" and "unknown" in said[0]
    # a trained card that lacks the accuracy is measured on the held-out base images: random weights
    ds = load_dataset("shapes", seed=0, images_per_class=20)
    measured = ancestry_quality(_card(tiny, epochs=3, extra={"holdout_per_class": 10}), tiny, ds)
    assert measured["source"] == "measured" and measured["n"] == 640 and measured["state"] == "at chance"


def _parser(module) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p


def test_the_commands_refuse_an_ancestry_at_chance_and_force_goes_on(tiny, tmp_path, capsys):
    from learngene.cli import inherit, train

    path = save_checkpoint(tiny, tmp_path / "flat.safetensors",
                           _card(tiny, epochs=4, base_accuracy=0.015, extra={"heldout_images": 3200}))
    out = tmp_path / "lg.safetensors"
    args = ["--ancestry", str(path), "--layers", "0", "--out", str(out)]
    with pytest.raises(CheckpointError, match="at chance"):
        inherit.run(_parser(inherit).parse_args(args))
    assert not out.exists()
    assert inherit.run(_parser(inherit).parse_args([*args, "--force"])) == 0 and out.is_file()
    assert "used anyway (--force)" in capsys.readouterr().out
    # the learngene file carries the verdict: train --learngene refuses it too, before training
    with pytest.raises(CheckpointError, match="at chance"):
        train.run(_parser(train).parse_args(["--learngene", str(out), "--images-per-class", "20", "--epochs", "1",
                                            "--device", "cpu"]))
    with pytest.raises(CheckpointError, match="at chance"):
        train.run(_parser(train).parse_args(["--ancestry", str(path), "--layers", "0", "--images-per-class", "20",
                                            "--epochs", "1", "--device", "cpu"]))


def test_pseudo_descendant_states_come_from_the_same_rule():
    from learngene.condense.pseudo import pd_quality, pd_warning

    flat = pd_quality(0.082, 12, 192)
    assert flat["pd_state"] == "at chance" and flat["pd_learned"] == "no"
    assert pd_warning(flat).startswith("the pseudo-descendant is at chance: 8.2%")
    assert pd_quality(0.40, 16, 1024)["pd_state"] == "learned" and pd_warning(pd_quality(0.4, 16, 1024)) is None
    # a result written before the rule: its old label is read
    assert pd_warning({"pd_test_acc": 0.07, "pd_chance": 0.0625, "pd_learned": "no"}) is not None
