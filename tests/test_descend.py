"""Training descendants against their baselines: pairs, summaries, sweeps, and the train/sweep commands."""

from __future__ import annotations

import json
import math

import pytest
import torch

from learngene.cli import main
from learngene.data import Task
from learngene.descend.compare import PairResult, RunResult, epochs_to_target, final_accuracy, train_pair
from learngene.descend.stats import mean_ci, t_quantile
from learngene.descend.summary import (
    format_pair_summary,
    format_sweep_summary,
    summarize_pairs,
    summarize_sweep,
)
from learngene.descend.sweep import SweepConfig, run_sweep
from learngene.errors import ConfigError
from learngene.inherit.recipe import Recipe
from learngene.models import ModelCard, create_model, save_checkpoint
from learngene.runlog import EXIT_DIVERGED, read_jsonl
from learngene.train.trainer import TrainConfig

CFG = TrainConfig(epochs=3, batch_size=10, lr=1e-3, device="cpu", eval_every=1)



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models train faster on one thread, and do not stall when the machine is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return create_model("lg_vit_tiny", 8, depth=2)


def _task(n_way: int = 3, k: int = 4, seed: int = 0, index: int = 0) -> Task:
    g = torch.Generator().manual_seed(seed)
    train_y = torch.arange(n_way).repeat_interleave(k)
    test_y = torch.arange(n_way).repeat_interleave(5)
    return Task(classes=tuple(range(n_way)), train_x=torch.randint(0, 256, (len(train_y), 3, 32, 32), generator=g,
                dtype=torch.uint8), train_y=train_y, test_x=torch.randint(0, 256, (len(test_y), 3, 32, 32),
                generator=g, dtype=torch.uint8), test_y=test_y, n_way=n_way, k_shot=k, seed=seed, index=index)


class _Sink:
    """A stand-in Reporter that keeps the records."""

    def __init__(self):
        self.records, self.ticks = [], 0

    def metric(self, rec):
        self.records.append(rec)

    def advance(self, n=1, message=None, **kw):
        self.ticks += n


# -- statistics ------------------------------------------------------------------------------------

@pytest.mark.parametrize("df,q975", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (19, 2.0930),
                                     (30, 2.0423), (120, 1.9799)])
def test_t_quantile_matches_tables(df, q975):
    assert t_quantile(0.975, df) == pytest.approx(q975, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-q975, abs=1e-4)
    assert t_quantile(0.995, 4) == pytest.approx(4.6041, abs=1e-4)


def test_mean_ci_known_values():
    mean, half = mean_ci([1, 2, 3, 4, 5])  # sd = sqrt(2.5), t(0.975, 4) = 2.7764
    assert mean == 3 and half == pytest.approx(2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert math.isnan(mean_ci([0.7])[1]) and mean_ci([0.7])[0] == 0.7
    with pytest.raises(ConfigError):
        t_quantile(1.5, 3)


def test_epochs_to_target_and_final_accuracy():
    h = [{"epoch": 1, "time": 1.0, "test_acc": 0.3}, {"epoch": 2, "time": 2.0}, {"epoch": 3, "time": 3.0, "test_acc": 0.7}]
    assert epochs_to_target(h, 0.6) == (3, 3.0) and epochs_to_target(h, 0.9) is None
    assert final_accuracy(h) == 0.7
    assert final_accuracy([*h, {"epoch": 4, "diverged": True}], n_way=5) == 0.2


def _pair(lg_acc: float, base_acc: float, lr: float = 1e-3, wd: float = 0.0, k: int = 5, task: int = 0) -> PairResult:
    def run(role, acc):
        return RunResult(role, [{"epoch": 1, "time": 0.5, "test_acc": acc / 2}, {"epoch": 2, "time": 1.0, "test_acc": acc}])
    return PairResult(task, (0, 1), 2, k, {"lr": lr, "weight_decay": wd, "seed": 0}, run("learngene", lg_acc),
                      run("baseline", base_acc))


def test_summaries():
    pairs = [_pair(0.8, 0.6, task=0), _pair(0.9, 0.5, task=1), _pair(0.7, 0.7, task=2)]
    s = summarize_pairs(pairs, target_acc=0.6)
    assert s["learngene"]["final_acc"]["mean"] == pytest.approx(0.8)
    assert s["gain"]["mean"] == pytest.approx(0.2)
    assert s["learngene"]["target"]["reached"] == 3 and s["baseline"]["target"]["reached"] == 2
    assert "gain" in format_pair_summary(s)
    rel = summarize_pairs(pairs, target_acc="baseline")  # the baseline's own final accuracy per task
    assert rel["baseline"]["target"]["reached"] == 3 and rel["learngene"]["target"]["reached"] == 3
    assert rel["learngene"]["target"]["values"] == [0.6, 0.5, 0.7]
    assert rel["learngene"]["target"]["epochs"]["mean"] == 2
    assert "baseline's final acc" in format_pair_summary(rel)
    grid = [_pair(a, b, lr=lr, wd=wd, k=k) for (lr, wd, a, b) in
            [(1e-3, 0.0, 0.8, 0.7), (1e-2, 0.0, 0.7, 0.3), (1e-3, 0.1, 0.8, 0.6), (1e-2, 0.1, 0.6, 0.4)]
            for k in (5, 10)]
    sw = summarize_sweep(grid)
    assert len(sw["settings"]) == 8
    assert sw["spread"][5]["learngene"]["range"] == pytest.approx(0.2)
    assert sw["spread"][5]["baseline"]["range"] == pytest.approx(0.4)
    assert sw["by_k"][10]["baseline"]["best_cell"]["lr"] == 1e-3
    text = format_sweep_summary(sw)
    assert "spread" in text and "against K" in text
    rows = {tuple(line.split()[:3]): line for line in text.splitlines()[2:10]}
    assert rows[("5", "0.001", "0")].endswith(" learned") and rows[("5", "0.01", "0")].endswith("at chance")
    assert rows[("5", "0.01", "0.1")].endswith("at chance")  # 0.4 against chance 0.5


def test_pair_summaries_report_fixed_targets_p_values_and_dropped_runs():
    def run(role, accs):
        return RunResult(role, [{"epoch": i + 1, "time": 0.5 * (i + 1), "test_acc": a} for i, a in enumerate(accs)])

    def pair(task, lg, base):
        return PairResult(task, (0, 1, 2, 3), 4, 5, {"lr": 1e-3, "weight_decay": 0.0, "seed": 0}, run("learngene", lg),
                          base if isinstance(base, RunResult) else run("baseline", base))

    no_acc = RunResult("baseline", [{"epoch": 1, "loss": 1.2}])  # trained, never evaluated: no final accuracy
    pairs = [pair(0, [0.3, 0.55, 0.7], [0.2, 0.3, 0.45]), pair(1, [0.5, 0.6, 0.6], [0.25, 0.5, 0.55]),
             pair(2, [0.2, 0.4, 0.9], [0.25, 0.25, 0.3]), pair(3, [0.3, 0.4, 0.5], no_acc)]
    s = summarize_pairs(pairs, "baseline")
    ft = s["fixed_targets"]
    # 50%: first evaluated epoch at or above 0.5
    assert ft["50%"]["learngene"]["per_pair"] == [2, 1, 3, 3]
    assert ft["50%"]["baseline"]["per_pair"] == [None, 2, None, None]
    assert (ft["50%"]["baseline"]["reached"], ft["50%"]["baseline"]["of"]) == (1, 4)
    # midpoint between chance (0.25) and the learngene's final accuracy, per pair
    assert ft["midpoint"]["values"] == pytest.approx([0.475, 0.425, 0.575, 0.375])
    assert ft["midpoint"]["learngene"]["per_pair"] == [2, 1, 3, 2]
    assert ft["midpoint"]["learngene"]["epochs"]["mean"] == pytest.approx(2.0)
    assert ft["midpoint"]["baseline"]["per_pair"] == [None, 2, None, None]
    # the gain pairs only the three tasks with both accuracies: .25 .05 .6; df 2 closed form for the t-test
    g = s["gain"]
    assert g["n"] == 3 and g["dropped"] == 1 and g["mean"] == pytest.approx(0.3)
    sd = math.sqrt(((0.25 - 0.3) ** 2 + (0.05 - 0.3) ** 2 + (0.6 - 0.3) ** 2) / 2)
    t = 0.3 / (sd / math.sqrt(3))
    assert g["t_p"] == pytest.approx(1 - math.sin(math.atan(t / math.sqrt(2))), rel=1e-9)
    assert g["wilcoxon_p"] == pytest.approx(0.25)  # 3 positive gains: 2 / 2^3
    assert s["baseline"]["dropped"] == 1 and s["learngene"]["dropped"] == 0
    assert s["baseline"]["final_acc"]["n"] == 3
    text = format_pair_summary(s)
    assert f"over 3 task(s) (paired t p={g['t_p']:.3f}, Wilcoxon p=0.250, n=3)" in text
    assert "to 50% acc: learngene 2.2 (4/4), baseline 2.0 (1/4)" in text
    assert "learngene's final acc (46.2% mean): learngene 2.0 (4/4), baseline 2.0 (1/4)" in text
    assert "left out of the means (no final accuracy): learngene 0 run(s), baseline 1 run(s)" in text


def test_a_baseline_at_chance_is_called_out():
    from learngene.descend.summary import above_chance, chance_warning

    assert above_chance([0.9, 0.8, 0.85], 0.5) and not above_chance([0.55, 0.52, 0.6], 0.5)
    assert not above_chance([0.7, 0.2, 0.9], 0.5)  # a wide interval reaches down to chance
    assert above_chance([0.7], 0.5) and not above_chance([], 0.5)
    learned = summarize_pairs([_pair(0.8, 0.7, task=0), _pair(0.9, 0.75, task=1), _pair(0.7, 0.72, task=2)],
                              target_acc="baseline")
    assert learned["chance"] == 0.5 and learned["baseline_learned"] is True
    assert chance_warning(learned) is None and "WARNING" not in format_pair_summary(learned)
    flat = summarize_pairs([_pair(0.8, 0.5, task=0), _pair(0.9, 0.52, task=1), _pair(0.7, 0.5, task=2)],
                           target_acc="baseline")
    assert flat["baseline_learned"] is False
    text = format_pair_summary(flat)
    assert "WARNING: the baseline stayed at chance (50.7% final accuracy, chance 50.0%)" in text
    both = summarize_pairs([_pair(0.5, 0.5, task=0), _pair(0.52, 0.5, task=1), _pair(0.5, 0.51, task=2)])
    assert both["learngene_learned"] is False and "both models stayed at chance" in chance_warning(both)


# -- training pairs ---------------------------------------------------------------------------------

def test_train_pair_same_data_order_when_both_random(vit):
    recipe = Recipe.from_layers(vit.lg_spec, 2, [0], stem="random").baseline()  # all random in both
    sink = _Sink()
    pair = train_pair(recipe, vit, _task(), CFG, reporter=sink, seed=1)
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "step", "lr")
    assert [[r[k] for k in keys] for r in pair.learngene.history] == [[r[k] for k in keys] for r in pair.baseline.history]
    epochs = [r for r in sink.records if r["kind"] == "epoch"]
    # lockstep: the two models' epochs alternate, so both curves grow from the first seconds
    assert [r["model"] for r in epochs] == ["learngene", "baseline"] * 3 and sink.ticks == 6
    assert all(r["task"] == 0 for r in epochs)
    assert sink.records[-1]["kind"] == "pair" and "history" not in sink.records[-1]["learngene"]


def _dropout_net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 16), torch.nn.ReLU(),
                               torch.nn.Dropout(0.5), torch.nn.Linear(16, 3))


def test_lockstep_gives_each_model_what_it_gets_trained_alone():
    """Two models trained epoch by epoch in turn end with the weights and curves each gets trained on its own:
    each keeps its own random-number state (dropout draws from the global one, which the trainer seeds)."""
    from learngene.descend.compare import train_lockstep, train_one

    cfg = TrainConfig(epochs=4, batch_size=4, lr=1e-2, device="cpu", eval_every=1, seed=3)
    task = _task()
    alone = [_dropout_net(s) for s in (1, 2)]
    alone_runs = [train_one(m, cfg, task, role=r) for m, r in zip(alone, ("learngene", "baseline"), strict=True)]
    side = [_dropout_net(s) for s in (1, 2)]
    order = []
    logs = [lambda rec, r=r: order.append((r, rec["epoch"])) for r in ("learngene", "baseline")]
    side_runs = train_lockstep(side, cfg, task, logs, ["learngene", "baseline"])
    for a, b in zip(alone, side, strict=True):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.allclose(x, y, atol=1e-6), name
    for a, b in zip(alone_runs, side_runs, strict=True):
        assert [r["test_acc"] for r in a.history] == pytest.approx([r["test_acc"] for r in b.history])
        assert b.wall_time > 0 and b.history[-1]["time"] == pytest.approx(b.wall_time)
    assert order[:4] == [("learngene", 1), ("baseline", 1), ("learngene", 2), ("baseline", 2)]


def test_train_pair_learngene_differs_and_detects_divergence(vit):
    recipe = Recipe.from_layers(vit.lg_spec, 2, [0, 1])
    pair = train_pair(recipe, vit, _task(), CFG, seed=1)
    assert pair.learngene.history[0]["train_loss"] != pair.baseline.history[0]["train_loss"]
    assert not pair.diverged and pair.settings["k_shot"] == 4
    json.dumps(pair.to_dict())
    sink = _Sink()
    bad = train_pair(recipe, vit, _task(), TrainConfig(epochs=3, batch_size=4, lr=1e6, device="cpu"), sink, seed=1)
    assert bad.learngene.diverged and bad.baseline.diverged and bad.diverged
    assert bad.learngene.history[-1]["diverged"] and bad.learngene.final_acc(3) == pytest.approx(1 / 3)
    assert any(r["kind"] == "diverged" and r["model"] == "baseline" for r in sink.records)


def test_sweep_sequential_and_batched_agree(vit):
    from learngene.data import ImageSet

    recipe = Recipe.from_layers(vit.lg_spec, 2, [1])
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(100).repeat_interleave(12)
    ds = ImageSet("tiny", torch.randint(0, 256, (1200, 3, 32, 32), generator=g, dtype=torch.uint8), labels,
                  [f"c{i}" for i in range(100)], _split())
    cfg = TrainConfig(epochs=2, batch_size=6, device="cpu")
    sweep = SweepConfig(lrs=[1e-3, 3e-3], wds=[0.0], shots=[2, 4], seeds=[0], tasks=1, n_way=3,
                        test_per_class=4, batched="off")
    sink = _Sink()
    seq = run_sweep(recipe, vit, ds, sweep, cfg, sink)
    assert len(seq) == 4 and {p.k_shot for p in seq} == {2, 4}
    epochs = [r for r in sink.records if r["kind"] == "epoch"]
    assert len(epochs) == 16 and {(r["base_lr"], r["k_shot"]) for r in epochs} == {(1e-3, 2), (3e-3, 2), (1e-3, 4), (3e-3, 4)}
    bat = run_sweep(recipe, vit, ds, SweepConfig(**{**sweep.to_dict(), "batched": "on"}), cfg)
    for a, b in zip(seq, bat, strict=True):
        assert a.settings == b.settings
        for role in ("learngene", "baseline"):
            ha, hb = a.run(role).history, b.run(role).history
            assert [r["train_loss"] for r in ha] == pytest.approx([r["train_loss"] for r in hb], rel=1e-3, abs=1e-4)
    with pytest.raises(ConfigError, match="unknown sweep settings"):
        SweepConfig.from_dict({"lrs": [1e-3], "colour": 1})


def _split():
    from learngene.data import ClassSplit

    return ClassSplit(base=tuple(range(64)), open_world=tuple(range(64, 80)), novel=tuple(range(80, 100)))


# -- commands -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ancestry_file(tmp_path_factory, vit):
    return save_checkpoint(vit, tmp_path_factory.mktemp("anc") / "anc.safetensors", ModelCard(spec=vit.lg_spec))


COMMON = ["--images-per-class", "30", "--n-way", "3", "--test-per-class", "5", "--epochs", "2", "--batch-size", "5",
          "--device", "cpu"]


def test_cli_train_writes_summary(tmp_path, ancestry_file, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--ancestry", str(ancestry_file), "--layers", "0", "--k-shot", "5", *COMMON,
               "--run-dir", str(run)])
    out = capsys.readouterr().out
    assert rc == 0 and "learngene" in out and "baseline" in out
    summary = json.loads((run / "outputs" / "summary.json").read_text())
    assert summary["summary"]["pairs"] == 1 and len(summary["pairs"][0]["learngene"]["history"]) == 2
    records, _ = read_jsonl(run / "metrics.jsonl")
    assert {r["model"] for r in records if r["kind"] == "epoch"} == {"learngene", "baseline"}


def test_cli_train_diverged_exits_3(tmp_path, ancestry_file, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--ancestry", str(ancestry_file), "--layers", "0", "--k-shot", "5", *COMMON,
               "--lr", "1e6", "--run-dir", str(run)])
    assert rc == EXIT_DIVERGED and "diverged" in capsys.readouterr().err
    records, _ = read_jsonl(run / "metrics.jsonl")
    assert any(r["kind"] == "diverged" and r.get("diverged") for r in records)


def test_cli_train_from_learngene_file_and_sweep(tmp_path, ancestry_file, capsys):
    lg = tmp_path / "lg.safetensors"
    assert main(["inherit", "--ancestry", str(ancestry_file), "--layers", "1", "--placement", "top", "--out", str(lg)]) == 0
    assert main(["train", "--learngene", str(lg), "--k-shot", "5", *COMMON]) == 0
    out = capsys.readouterr().out
    assert "slot 1   inherit ancestry layer 1" in out
    assert main(["train", "--learngene", str(lg), "--layers", "0", *COMMON]) == 2
    rc = main(["sweep", "--ancestry", str(ancestry_file), "--layers", "0", "--lrs", "1e-3,3e-3", "--shots", "2,5",
               *COMMON])
    out = capsys.readouterr().out
    assert rc == 0 and "spread" in out and "against K" in out


def test_cli_advantages_reports_every_run_and_resumes(tmp_path, ancestry_file, capsys):
    run = tmp_path / "run"
    argv = ["advantages", "--quick", "--ancestry", str(ancestry_file), "--models", "finetune", "--tasks", "1",
            "--epochs", "2", "--shots", "1,2", "--lrs", "1e-3", "--wds", "0.05", "--test-per-class", "4",
            "--device", "cpu", "--run-dir", str(run)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| finetune | 0,1 |" in out and "| baseline | - |" in out
    folder = run / "outputs"
    assert "| finetune | 0,1 |" in (folder / "advantages.md").read_text()
    assert len((folder / "advantages.csv").read_text().splitlines()) == 1 + 4  # 2 models x (main K=2, K=1)
    records, _ = read_jsonl(run / "metrics.jsonl")
    runs = [r for r in records if r["kind"] == "study_run"]
    assert sorted((r["model"], r["k_shot"]) for r in runs) == [("baseline", 1), ("baseline", 2), ("finetune", 1),
                                                              ("finetune", 2)]
    assert all(0 <= r["final_acc"] <= 1 for r in runs)
    progress = json.loads((run / "progress.json").read_text())
    assert progress["done"] == progress["total"] == 4
    # the same command again trains nothing: every run comes back from the journal
    assert main(argv) == 0
    assert "4/4 runs restored from the journal" in capsys.readouterr().out
    assert json.loads((run / "progress.json").read_text())["done"] == 4
    # another run folder sharing a journal folder: the second study trains nothing
    shared = ["--journal-dir", str(tmp_path / "journal")]
    assert main([*argv[:-2], "--run-dir", str(tmp_path / "a"), *shared]) == 0
    capsys.readouterr()
    assert main([*argv[:-2], "--run-dir", str(tmp_path / "b"), *shared]) == 0
    assert "4/4 runs restored from the journal" in capsys.readouterr().out
    import csv

    def finals(run_dir):
        with open(run_dir / "outputs" / "advantages.csv", newline="") as f:
            return sorted((r["model"], r["k_shot"], r["final_acc"]) for r in csv.DictReader(f))

    assert finals(tmp_path / "b") == finals(tmp_path / "a") == finals(run)
    assert main([*argv[:-2], "--shots", "0,2"]) == 2  # bad input: one line, exit 2
    assert "shots" in capsys.readouterr().err


def test_cli_train_saves_the_trained_models(tmp_path, ancestry_file, capsys):
    from learngene.models import load_checkpoint

    folder = tmp_path / "models"
    assert main(["train", "--ancestry", str(ancestry_file), "--layers", "0", "--k-shot", "5", *COMMON,
                 "--save-models", str(folder)]) == 0
    saved = sorted(p.name for p in folder.glob("*.safetensors"))
    assert saved == ["task0-baseline.safetensors", "task0-learngene.safetensors"]
    model, card = load_checkpoint(folder / "task0-learngene.safetensors")
    assert card.spec.num_classes == 3 and card.extra["role"] == "learngene" and card.epochs == 2
    assert card.extra["recipe"]["slots"][0]["source"] == "inherit"
    base_card = load_checkpoint(folder / "task0-baseline.safetensors")[1]
    assert all(s["source"] == "random" for s in base_card.extra["recipe"]["slots"])
    assert 0 <= card.extra["final_test_acc"] <= 1
    assert "saved " in capsys.readouterr().out
