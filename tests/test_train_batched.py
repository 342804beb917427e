"""`train --batched`: a descendant and its baseline trained as one vmap-batched model give the lockstep
pair's results (up to float rounding), their epoch records arrive together, and a CPU keeps lockstep unless
asked."""

from __future__ import annotations

import json

import pytest
import torch

from learngene.cli import main
from learngene.descend.compare import can_batch_pair, train_pair
from learngene.inherit.recipe import Recipe
from learngene.models import create_model
from learngene.runlog import read_jsonl
from learngene.train.trainer import TrainConfig
from tests.test_descend import COMMON, _Sink, _task


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return create_model("lg_vit_tiny", 8, depth=2)


def test_a_batched_pair_trains_as_the_lockstep_pair(vit):
    recipe = Recipe.from_layers(vit.lg_spec, 2, [0])
    cfg = TrainConfig(epochs=3, batch_size=6, lr=1e-3, device="cpu", eval_every=1)
    assert can_batch_pair(recipe, vit, 3, cfg)[0]
    step = train_pair(recipe, vit, _task(), cfg, seed=1)
    sink = _Sink()
    both = train_pair(recipe, vit, _task(), cfg, sink, seed=1, batched=True)
    for role in ("learngene", "baseline"):
        a, b = step.run(role).history, both.run(role).history
        assert [r["train_loss"] for r in a] == pytest.approx([r["train_loss"] for r in b], rel=1e-3, abs=1e-4)
        assert [r["test_acc"] for r in a] == pytest.approx([r["test_acc"] for r in b], abs=0.07)
        assert both.run(role).paths == {"batched": 2} and both.run(role).wall_time > 0
    epochs = [r for r in sink.records if r["kind"] == "epoch"]
    assert [(r["model"], r["epoch"]) for r in epochs[:4]] == [("learngene", 1), ("baseline", 1), ("learngene", 2),
                                                              ("baseline", 2)]


def test_the_train_command_batches_when_asked_and_keeps_lockstep_on_a_cpu(tmp_path, ancestry_file, capsys):
    runs = {}
    for choice in ("on", "auto"):
        run = tmp_path / choice
        rc = main(["train", "--ancestry", str(ancestry_file), "--layers", "0", "--k-shot", "5", *COMMON,
                   "--batched", choice, "--run-dir", str(run)])
        assert rc == 0, capsys.readouterr().err
        records, _ = read_jsonl(run / "metrics.jsonl")
        config = next(r for r in records if r["kind"] == "config")
        runs[choice] = (config["batched"], json.loads((run / "outputs" / "summary.json").read_text()))
    assert runs["on"][0] is True and runs["auto"][0] is False  # auto: batched on a GPU only
    on, auto = (runs[c][1]["pairs"][0] for c in ("on", "auto"))
    for role in ("learngene", "baseline"):
        assert [r["train_loss"] for r in on[role]["history"]] == pytest.approx(
            [r["train_loss"] for r in auto[role]["history"]], rel=1e-3, abs=1e-4)
