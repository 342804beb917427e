"""Budgets that adapt (pseudo-descendant, converged baseline) and the fair ledger (FLOPs, amortised cost)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from learngene.condense import CondenseConfig
from learngene.condense.pseudo import open_world_data, pd_quality, train_pseudo_descendant
from learngene.data import Task, load_dataset
from learngene.data.base import ClassSplit
from learngene.descend.ledger import ArmCost, amortised, ancestry_cost
from learngene.models import ModelCard, create_model
from learngene.train.budget import Budget, train_in_rounds
from learngene.train.flops import flops_per_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as the commands train


def test_the_adaptive_budget_gets_a_pseudo_descendant_past_chance_where_the_fixed_default_does_not():
    """A generated data set with few open-world images: the old fixed 2 epochs of a CNN pseudo-descendant
    leave it short of learned; the adaptive default trains on until it has clearly learned."""
    ds = load_dataset("shapes", seed=0, images_per_class=50)
    s = ds.split
    ds.split = ClassSplit(base=s.base, open_world=s.open_world[:4], novel=s.novel)
    torch.manual_seed(0)
    ancestry = create_model("lg_resnet_mini", len(s.base), channels=(8, 16, 32, 64))
    common = dict(holdout_per_class=20, train_per_class=30, device="cpu")
    states = {}
    for name, cfg in (("fixed", CondenseConfig(pd_epochs=2, **common)), ("adaptive", CondenseConfig(**common))):
        cfg = cfg.for_family("resnet")
        data = open_world_data(ds, cfg)
        _, history = train_pseudo_descendant(ancestry, data, cfg)
        states[name] = pd_quality(history[-1]["test_acc"], 4, len(data.test_y), history)
    assert states["fixed"]["pd_state"] != "learned" and len(states["fixed"]["pd_budget"]["budget"]) > 0
    adaptive = states["adaptive"]
    assert adaptive["pd_state"] == "learned", adaptive
    assert adaptive["pd_budget"]["stopped"] == "learned" and adaptive["pd_budget"]["epochs"] > 2
    assert adaptive["pd_budget"]["line"].startswith("learned clearly after ")


class _FakeTrainer:
    """A trainer whose held-out accuracy follows a list: rises, then stays flat."""

    def __init__(self, accs: list[float], start: int, epochs: int):
        self.accs, self.start, self.epochs, self.callbacks = accs, start, epochs, []

    def add_callback(self, event, fn):
        self.callbacks.append(fn)

    def request_stop(self):
        pass

    def run(self):
        for e in range(self.epochs):
            acc = self.accs[min(self.start + e, len(self.accs) - 1)]
            for fn in self.callbacks:
                fn(self, {"epoch": e + 1, "time": 0.0, "test_acc": acc})


def test_a_budget_to_plateau_stops_on_the_plateau_before_its_cap():
    curve = [0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.6, 0.6]  # flat from epoch 6 on
    done = []

    def make(r, epochs):
        t = _FakeTrainer(curve, sum(done), epochs)
        done.append(epochs)
        return t

    history, out = train_in_rounds(make, Budget(round_epochs=2, max_epochs=100, until="plateau"), lambda a: "unknown")
    assert out["stopped"] == "plateau" and out["epochs"] == 14 < 100  # rounds of 2, 4, 8: the third adds nothing
    assert [r["epoch"] for r in history] == list(range(1, 15)) and history[-1]["round"] == 2


def test_the_converged_baseline_stops_on_its_plateau_and_reports_the_epochs_to_the_learngene():
    from learngene.descend.compare import (
        RunResult,
        format_strong_baseline,
        summarize_strong_baseline,
        train_strong_baseline,
    )
    from learngene.inherit.recipe import Recipe
    from learngene.train.trainer import TrainConfig

    torch.manual_seed(0)
    vit = create_model("lg_vit_tiny", 8, depth=2)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(4)
    task = Task(classes=(0, 1, 2), train_x=torch.randint(0, 256, (12, 3, 32, 32), generator=g, dtype=torch.uint8),
                train_y=y, test_x=torch.randint(0, 256, (12, 3, 32, 32), generator=g, dtype=torch.uint8), test_y=y,
                n_way=3, k_shot=4, seed=0, index=0)
    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-3, device="cpu", eval_every=1)
    lg = RunResult("learngene", [{"epoch": 1, "test_acc": 0.99}])  # out of reach: random images
    out = train_strong_baseline(Recipe.from_layers(vit.lg_spec, 2, [0]), vit, task, cfg, 20, lg)
    assert out["stopped"] == "plateau" and out["epochs"] < out["max_epochs"] == 40
    assert out["epoch_reaching_learngene"] is None
    from learngene.descend.compare import PairResult

    pair = PairResult(0, (0, 1, 2), 3, 4, {}, lg, lg, extra={"strong_baseline": out})
    text = format_strong_baseline(summarize_strong_baseline([pair]), flops_per_image=1000)
    assert "stopped on its plateau" in text and f"not within {out['epochs']} epochs" in text


def test_flops_of_a_tiny_model_match_a_hand_count():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.fc = nn.Linear(4 * 8 * 8, 5)

        def forward(self, x):
            return self.fc(self.conv(x).flatten(1))

    f = flops_per_image(Tiny(), img_size=8)
    conv = 2 * (8 * 8) * 4 * (3 * 3 * 3)  # a multiply-add per output pixel, channel and kernel entry
    fc = 2 * (4 * 8 * 8) * 5
    assert f["forward"] == conv + fc
    # backward: the linear layer's input and weight gradients, the conv's weight gradient (the input
    # images need none)
    assert f["train"] == (conv + fc) + (2 * fc + conv)


def test_the_ancestry_cost_comes_from_its_card_and_is_amortised():
    torch.manual_seed(0)
    model = create_model("lg_resnet_mini", 4, channels=(8, 16, 32, 64))
    card = ModelCard(spec=model.lg_spec, epochs=3, extra={"train_images": 100, "heldout_images": 20,
                                                          "train_seconds": 50.0})
    fpi = flops_per_image(model, 32)
    cost = ancestry_cost(card, fpi)
    assert cost["images_seen"] == 300 and cost["flops"] == 300 * fpi["train"] + 3 * 20 * fpi["forward"]
    assert ancestry_cost(ModelCard(spec=model.lg_spec), fpi) is None  # no training recorded
    recorded = ModelCard(spec=model.lg_spec, epochs=3, extra={"train_cost": {**cost, "flops": 1e12}})
    assert ancestry_cost(recorded)["flops"] == 1e12
    arm = ArmCost("learngene")
    arm.add(10, 50, 10, 100, {"train": 3, "forward": 1}, 2.0)
    arm.add(10, 50, 10, 100, {"train": 3, "forward": 1}, 4.0)
    rows = amortised({"flops": 1e6, "seconds": 100.0}, arm)
    assert [r["descendants"] for r in rows] == [1, 10, 100]
    own = (10 * 50 * 3 + 10 * 100) * 1.0
    assert rows[0]["flops"] == own + 1e6 and rows[2]["flops"] == own + 1e4
    assert rows[1]["seconds"] == pytest.approx(3.0 + 10.0)


def test_several_pseudo_descendant_seeds_give_per_layer_intervals_and_selection_counts():
    from learngene.condense import condense

    ds = load_dataset("shapes", seed=0, images_per_class=30)
    torch.manual_seed(0)
    vit = create_model("lg_vit_tiny", len(ds.split.base), depth=4)
    tiny = dict(images=48, probe_batch=24, holdout_per_class=6, train_per_class=12, pd_epochs=1, pd_batch_size=32,
                device="cpu")
    result = condense(vit, ds, "cka", k=2, pd_seeds=3, **tiny)
    ss = result.extras["seed_scores"]
    assert ss["n"] == 3 and len(ss["values"]) == 3 and len(ss["mean"]) == len(result.row_names) == 4
    assert all(h >= 0 for h in ss["ci95"]) and any(h > 0 for h in ss["ci95"])  # the seeds disagree somewhat
    assert sum(ss["selected_count"]) == 3 * 2 and max(ss["selected_count"]) <= 3
    assert ss["mean"] == pytest.approx(result.scores, abs=0.02)  # the mean matrix's scores are near the mean score
    assert result.extras["pd_seeds"]["seeds"] == [0, 1, 2] and "seed_matrices" not in result.extras
    one = condense(vit, ds, "cka", k=2, **tiny)
    assert "seed_scores" not in one.extras
    assert ss["values"][0] == pytest.approx(one.scores)  # the first seed is the one-seed result


def test_the_shipped_pseudo_descendants_keep_their_keys_and_the_adaptive_default_gets_its_own():
    """The shipped pseudo-descendants (a fixed --pd-epochs budget) stay cache hits; the adaptive default
    does not reuse a pseudo-descendant trained on the old fixed default."""
    from learngene.condense.pdcache import PDCache, pd_key
    from learngene.condense.pseudo import pseudo_descendant_spec
    from learngene.data.binding import bound_of_card, load_bound
    from learngene.inherit.choose import load_ancestry
    from learngene.models import read_card
    from tests.conftest import ROOT

    ancestry, card, path = load_ancestry(ROOT / "assets" / "lg_resnet_mini.safetensors")
    ds, _ = load_bound(None, bound_of_card(card, path))
    shipped = read_card(ROOT / "assets" / "pseudo" / "lg_resnet_mini.safetensors").extra["pd_key"]
    spec = pseudo_descendant_spec(ancestry, 16).to_dict()
    fixed = CondenseConfig(pd_epochs=10, flip=bool(ds.meta["flip"])).for_family("resnet")
    assert pd_key(card.sha256, ds, fixed, spec) == shipped
    assert PDCache.for_ancestry(path, card.sha256).load(shipped) is not None
    old_default = CondenseConfig(pd_epochs=2).for_family("resnet")
    adaptive = CondenseConfig().for_family("resnet")
    assert adaptive.pd_epochs == 2 and adaptive.pd_max_epochs > 2
    assert pd_key(card.sha256, ds, adaptive, spec) != pd_key(card.sha256, ds, old_default, spec)


def test_the_time_cap_stops_mid_round_and_the_model_is_judged_as_it_is():
    from learngene.train.trainer import TrainConfig, Trainer

    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    x, y = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8), torch.arange(2).repeat(10)

    def make(r, epochs):
        cfg = TrainConfig(epochs=epochs, batch_size=5, device="cpu", eval_every=epochs, augment=False, seed=r)
        return Trainer(model, cfg, x, y, x, y)

    history, out = train_in_rounds(make, Budget(round_epochs=50, max_epochs=200, max_seconds=0.01), lambda a: "x")
    assert out["stopped"] == "seconds" and out["epochs"] < 50  # the round was cut short ...
    assert history[-1]["test_acc"] is not None  # ... and evaluated where it stopped
