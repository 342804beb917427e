"""The fair cost ledger of `learngene advantages` and `learngene sizes`: per arm the epochs, images seen, FLOPs and
wall time, and the ancestry's own cost amortised. The FLOPs are checked against a count made independently
here: every training run is watched by torch's FlopCounterMode from outside (the whole run, as it trains)."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from learngene.cli import main
from learngene.models import ModelCard, create_model, save_checkpoint
from learngene.train.flops import flops_per_image

ANCESTRY_EPOCHS, ANCESTRY_TRAIN, ANCESTRY_HELDOUT = 3, 100, 20


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained_ancestry(tmp_path_factory):
    """A 2-block lg_vit_tiny whose card records its training (3 epochs on 100 images, 20 held out), as
    `accumulate` would without its cost record: the ledger derives the ancestry's cost from it."""
    torch.manual_seed(0)
    vit = create_model("lg_vit_tiny", 8, depth=2)
    card = ModelCard(spec=vit.lg_spec, epochs=ANCESTRY_EPOCHS,
                     extra={"train_images": ANCESTRY_TRAIN, "heldout_images": ANCESTRY_HELDOUT})
    return vit, save_checkpoint(vit, tmp_path_factory.mktemp("anc") / "anc.safetensors", card)


@pytest.fixture
def counted(monkeypatch) -> list[dict]:
    """Every call of `compare.train_one` (which both studies make for each run), counted whole by
    FlopCounterMode: the run's FLOPs as torch dispatched them, with its settings and task sizes."""
    from learngene.descend import compare

    calls: list[dict] = []
    train_one = compare.train_one

    def counting(model, cfg, task, *args, **kwargs):
        with FlopCounterMode(display=False) as counter:
            res = train_one(model, cfg, task, *args, **kwargs)
        calls.append({"epochs": cfg.epochs, "eval_every": cfg.eval_every, "n_train": len(task.train_y),
                      "n_test": len(task.test_y), "flops": counter.get_total_flops(), "history": res.history})
        return res

    monkeypatch.setattr(compare, "train_one", counting)
    return calls


def _ancestry_flops(vit) -> float:
    fpi = flops_per_image(vit, 32)
    return float(ANCESTRY_EPOCHS * ANCESTRY_TRAIN * fpi["train"] + ANCESTRY_EPOCHS * ANCESTRY_HELDOUT * fpi["forward"])


def test_the_advantages_ledger_counts_what_each_row_trained(tmp_path, trained_ancestry, counted, capsys):
    vit, path = trained_ancestry
    out = tmp_path / "study"
    assert main(["advantages", "--quick", "--ancestry", str(path), "--models", "finetune", "--tasks", "1",
                 "--epochs", "2", "--shots", "1,2", "--lrs", "1e-3", "--wds", "0.05", "--test-per-class", "4",
                 "--device", "cpu", "--threads", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cost ledger" in text and "shared by 100" in text
    (entry,) = json.loads((out / "advantages-study.json").read_text())["ledgers"]
    led = entry["ledger"]
    arms = {a["arm"]: a for a in led["arms"]}
    assert list(arms) == ["baseline", "finetune"]
    runs = counted[1:]  # the first call is the untimed warm-up epoch: no arm's cost
    assert counted[0]["epochs"] == 1 and len(runs) == 4
    # the settings: 5-way, main cell K=2 (evaluated every epoch) and K=1 (evaluated at the end), 2 epochs each
    main_cell = [r for r in runs if r["eval_every"] == 1]
    k1 = [r for r in runs if r["eval_every"] == 2]
    assert [r["n_train"] for r in main_cell] == [10, 10] and [r["n_train"] for r in k1] == [5, 5]
    for arm in arms.values():
        assert (arm["runs"], arm["epochs"], arm["images_seen"]) == (2, 4, 2 * 10 + 2 * 5)
        # FLOPs: what FlopCounterMode saw while the row's two runs trained and evaluated (both rows share
        # the architecture, so each cell's two runs dispatched the same FLOPs)
        assert main_cell[0]["flops"] == main_cell[1]["flops"] and k1[0]["flops"] == k1[1]["flops"]
        assert arm["flops"] == main_cell[0]["flops"] + k1[0]["flops"]
    # the ancestry's cost, derived from its card, amortised over descendants = the inheriting row's main-cell run
    assert led["ancestry"]["flops"] == pytest.approx(_ancestry_flops(vit))
    own = main_cell[0]["flops"]
    assert [r["descendants"] for r in led["amortised"]] == [1, 10, 100]
    assert led["amortised"][1]["flops"] == pytest.approx(own + _ancestry_flops(vit) / 10)
    assert "cost ledger" in (out / "advantages.md").read_text()


def test_the_sizes_ledger_counts_every_initialisation_at_every_size(tmp_path, trained_ancestry, counted, capsys):
    vit, path = trained_ancestry
    out = tmp_path / "sizes"
    assert main(["sizes", "--ancestry", str(path), "--layers", "0,1", "--sizes", "0.34x2,1", "--tasks", "1",
                 "--epochs", "2", "--images-per-class", "24", "--test-per-class", "4", "--threads", "1",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("cost ledger") == 2 and "learngene descendant (this size) + the ancestry shared by" in text
    summary = json.loads((out / "sizes.json").read_text())["sizes"]
    assert len(counted) == 2 * 3  # 2 sizes x 1 task x 3 initialisations, in that order
    for s, calls in zip(summary, (counted[:3], counted[3:]), strict=True):
        led = s["ledger"]
        assert [a["arm"] for a in led["arms"]] == ["learngene", "random", "weight-selection"]
        for arm, call in zip(led["arms"], calls, strict=True):
            assert call["n_train"] == 5 * 10 and call["epochs"] == 2
            assert (arm["runs"], arm["epochs"], arm["images_seen"]) == (1, 2, 2 * 50)
            assert arm["flops"] == call["flops"]  # what FlopCounterMode saw while it trained and evaluated
        assert led["amortised"][0]["flops"] == pytest.approx(calls[0]["flops"] + _ancestry_flops(vit))
    assert summary[0]["ledger"]["arms"][0]["flops"] < summary[1]["ledger"]["arms"][0]["flops"]  # narrower: cheaper
    assert "cost ledger" in (out / "sizes.md").read_text()


# ------------------------------------------------------------------ score noise in the score-vs-gain interval


def _shipped_probe() -> dict:
    from learngene.runlog import read_json
    from tests.conftest import ROOT

    return read_json(ROOT / "assets" / "lg_resnet_mini.probe.json")


def test_the_score_vs_gain_interval_takes_in_the_pseudo_descendant_seeds():
    """Scores that rank the layers as the measured gains do: with seeds that agree (or one seed) the interval
    is the tasks-only one; with seeds that disagree about the order it widens."""
    from learngene.descend.probe_report import correlation_interval, interval_noise, seed_score_values

    probe = _shipped_probe()
    scores = [row["gain"]["mean"] for row in probe["single"]]  # rho = +1 on the mean gains
    tasks_only = correlation_interval(scores, probe, resamples=400)
    assert tasks_only is not None and tasks_only[1] == pytest.approx(1.0)
    same = [list(scores)] * 3
    assert correlation_interval(scores, probe, seed_scores=same, resamples=400) == tasks_only
    assert correlation_interval(scores, probe, seed_scores=[scores], resamples=400) == tasks_only
    g = torch.Generator().manual_seed(0)
    spread = max(scores) - min(scores)
    disagree = [[s + float(e) for s, e in zip(scores, spread * torch.randn(len(scores), generator=g), strict=True)]
                for _ in range(3)]
    low, high = correlation_interval(scores, probe, seed_scores=disagree, resamples=400)
    assert low < tasks_only[0] - 0.2 and high <= 1.0  # wider at its lower end: the seeds reorder the layers
    # what the table says the interval includes, from a similarity result's extras
    extras = {"seed_scores": {"n": 3, "values": disagree}}
    assert seed_score_values(extras, len(scores)) == disagree and seed_score_values({}, len(scores)) is None
    assert seed_score_values(extras, len(scores) + 1) is None  # scores of another ancestry: not used
    assert interval_noise(disagree) == "tasks + 3 pseudo-descendant seeds" and interval_noise(None) == "tasks"


def test_the_score_vs_gain_table_says_which_noise_each_interval_holds(tmp_path, capsys):
    """A saved condense result of a shipped ancestry with several seeds' layer scores gets its own row, whose
    interval resamples the seeds too; the shipped rows (one seed) resample the tasks only."""
    from bench import score_vs_gain
    from learngene.condense import SimilarityResult
    from learngene.condense.select import layer_scores
    from tests.conftest import ROOT

    sim = SimilarityResult.load(ROOT / "assets" / "similarity" / "lg_resnet_mini-cka.json")
    scores = layer_scores(sim.array, sim.selection.get("rule", "row_max"))
    seeded = [list(scores), list(reversed(scores)), list(scores)]  # the second seed orders the layers the other way
    sim.extras["seed_scores"] = {"n": 3, "values": seeded}
    sim.save(tmp_path / "seeded.json")
    assert score_vs_gain.main(["--similarity", str(tmp_path / "seeded.json"), "--out", str(tmp_path / "out")]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| lg_resnet_mini | cka")]
    shipped = next(r for r in rows if r.startswith("| lg_resnet_mini | cka |"))
    mine = next(r for r in rows if "seeded.json" in r)
    assert "| tasks |" in shipped and "| tasks + 3 pseudo-descendant seeds |" in mine
    cells = lambda row: [c.strip() for c in row.strip("|").split("|")]  # noqa: E731
    assert cells(shipped)[5] == cells(mine)[5]  # the same scores: the same rho
    low_shipped, low_mine = (float(cells(r)[6].split(" to ")[0]) for r in (shipped, mine))
    assert low_mine < low_shipped  # the seeds that disagree widen it
