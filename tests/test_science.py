"""Tests that guard the science: each is built so that a plausible bug fails it.

- Training learns: on a small separable task the loss falls and the accuracy clearly beats chance,
  with the project's Trainer, a learngene descendant and its baseline (`train_pair`), and the
  vmap-batched trainer.
- The shipped ancestries are as good as their cards say: their accuracy is re-measured on base
  images they were not trained on (the hold-out of `accumulate`, rebuilt from the card).
- Condensing finds a planted layer: an ancestry layer made identical to a pseudo-descendant layer
  is ranked first by CKA (outputs and updates); a layer the open-world task cannot change is ranked
  first by the stability methods (gradient, weights); Auto-LG, which by design does not measure
  similarity, is checked for what it does guarantee (see its test's docstring).

Everything runs on one CPU thread in a few seconds per test.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from learngene.condense import CondenseConfig, condense
from learngene.condense.pseudo import open_world_data, train_pseudo_descendant
from learngene.data import ClassSplit, ImageSet, Task, holdout_split, load_dataset
from learngene.data.shapes import class_names
from learngene.descend.batched import train_batched
from learngene.descend.compare import build_pair, train_pair
from learngene.inherit.recipe import Recipe
from learngene.models import create_model, family_of, layer_view, load_checkpoint, shipped_checkpoints
from learngene.train.accumulate import remap_labels
from learngene.train.trainer import TrainConfig, Trainer, evaluate


@pytest.fixture(scope="module", autouse=True)
def one_thread_for_the_module():
    """One torch thread for the module-scoped fixtures too (they train and evaluate), restored afterwards.
    (conftest's `one_torch_thread` is per test, so it starts after the module's fixtures have run.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SHIPPED = ("lg_vit_tiny.safetensors", "lg_resnet_mini.safetensors")


# ------------------------------------------------------------------ a small separable task

COLOURS = torch.tensor([[1.0, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.2, 1.0], [0.9, 0.9, 0.1]])
N_WAY = len(COLOURS)


def blobs(n_per_class: int, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images of a disc whose colour is the class (red, green, blue, yellow), at a random place
    and radius on a random grey background with pixel noise: separable, and unchanged in class by the
    Trainer's flips and shifts. Returns (images (N, 3, size, size), labels (N,))."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(N_WAY).repeat(n_per_class)
    n = len(labels)
    pix = torch.arange(size, dtype=torch.float32)
    cy, cx = (torch.rand(n, 2, generator=g) * (size - 12) + 6).unbind(1)
    radius = torch.rand(n, generator=g) * 4 + 4
    disc = ((pix[None, :, None] - cy[:, None, None]) ** 2 + (pix[None, None, :] - cx[:, None, None]) ** 2
            <= radius[:, None, None] ** 2).float()  # (N, S, S)
    grey = torch.rand(n, 1, 1, 1, generator=g) * 0.5 + 0.25
    img = grey + (COLOURS[labels][:, :, None, None] - grey) * disc[:, None]
    img = img + 0.15 * torch.randn(n, 3, size, size, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8), labels


@pytest.fixture(scope="module")
def separable():
    """(train_x, train_y, test_x, test_y): 16 training and 25 test images per class, 4 classes."""
    return (*blobs(16, seed=0), *blobs(25, seed=1))


CHANCE = 1 / N_WAY
LEARNED_ACC = 0.8  # chance is 0.25; on 100 test images a model at chance has sd 0.043, so 0.8 is 12 sd above
CFG = TrainConfig(epochs=10, batch_size=16, lr=1e-3, device="cpu", seed=0)  # augmentation on, as by default


def assert_learned(history: list[dict], what: str) -> None:
    """The loss fell (to under half of the first epoch's) and the final test accuracy is far above chance."""
    first, last = history[0], history[-1]
    assert not last.get("diverged"), f"{what} diverged"
    assert last["train_loss"] < 0.5 * first["train_loss"], f"{what}: train loss {first['train_loss']:.3f} -> " \
                                                           f"{last['train_loss']:.3f} did not fall"
    assert last["test_loss"] < 0.5 * math.log(N_WAY), f"{what}: test loss {last['test_loss']:.3f}"
    assert last["test_acc"] >= LEARNED_ACC, f"{what}: test accuracy {last['test_acc']:.2f} (chance {CHANCE:.2f})"
    assert last["train_acc"] > first["train_acc"], f"{what}: training accuracy did not rise"


def test_the_trainer_learns_a_separable_task(separable):
    """The Trainer on a 4-way task a small ViT solves in a few epochs: loss falls, accuracy >= 0.8
    (chance 0.25), and the recorded test accuracy is what `evaluate` measures on the trained model."""
    torch.manual_seed(0)
    model = create_model("lg_vit_tiny", N_WAY, depth=2)
    trainer = Trainer(model, CFG, *separable)
    history = trainer.run()
    assert len(history) == CFG.epochs
    assert_learned(history, "the Trainer")
    test_loss, test_acc = evaluate(model, separable[2], separable[3])
    assert test_acc == pytest.approx(history[-1]["test_acc"]) and test_loss == pytest.approx(history[-1]["test_loss"])


def test_a_descendant_and_its_baseline_learn_sequentially_and_batched(separable):
    """`train_pair` (learngene descendant inheriting ancestry block 0, and its random-init baseline)
    and the vmap-batched trainer on the same pair both learn the separable task."""
    torch.manual_seed(0)
    ancestry = create_model("lg_vit_tiny", 8, depth=2)
    recipe = Recipe.from_layers(ancestry.lg_spec, 2, [0], num_classes=N_WAY)
    task = Task(classes=tuple(range(N_WAY)), train_x=separable[0], train_y=separable[1], test_x=separable[2],
                test_y=separable[3], n_way=N_WAY, k_shot=16, seed=0)
    pair = train_pair(recipe, ancestry, task, CFG, seed=1)
    for run in (pair.learngene, pair.baseline):
        assert not run.diverged
        assert_learned(run.history, f"train_pair's {run.role}")
        assert run.final_acc(N_WAY) == run.history[-1]["test_acc"]

    models = list(build_pair(recipe, ancestry, N_WAY, seed=1))
    histories = train_batched(models, [CFG, CFG], [separable, separable])
    for history, role in zip(histories, ("learngene", "baseline"), strict=True):
        assert_learned(history, f"the batched {role}")


# ------------------------------------------------------------------ the shipped ancestries' accuracy

HELD_OUT_ROUNDS = 100  # re-measure on the held-out images among the first 100 images of every class


@pytest.fixture(scope="module")
def shipped():
    """{file name: (model, card)} of the shipped ancestries, in eval mode."""
    found = {p.name: p for p in shipped_checkpoints()}
    missing = set(SHIPPED) - set(found)
    assert not missing, f"shipped ancestries missing from assets/: {sorted(missing)}"
    out = {}
    for name in SHIPPED:
        model, card = load_checkpoint(found[name])
        out[name] = (model.eval(), card)
    return out


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_ancestry_is_as_accurate_as_its_card_says(name, shipped):
    """Re-measure the card's held-out base accuracy on base images the ancestry was not trained on.

    `accumulate` held out `holdout_per_class` images of every base class, chosen by
    `holdout_split(ds, base, holdout_per_class, seed=<training seed>)` over the data set of the card's
    `data_meta` (shapes, its seed, `images_per_class`). The same split is rebuilt here from the labels
    alone (so that only the first HELD_OUT_ROUNDS images of each class need generating: shapes images
    are a prefix of a larger set), and the held-out images among them (~1/3 of the 3200) are classified.
    The card's figure is the accuracy on all held-out images, so the subset's accuracy differs from it
    only by sampling without replacement: sd = sqrt(p (1 - p) / n * (N - n) / (N - 1)); allowed: 4 sd
    (about 5 points).
    """
    model, card = shipped[name]
    meta, extra = card.extra["data_meta"], card.extra
    assert card.dataset == "shapes" and meta["source"] == "shapes" and card.base_accuracy is not None
    per_class, holdout = int(meta["images_per_class"]), int(extra["holdout_per_class"])
    base = tuple(card.split["base"])
    assert len(base) == card.spec.num_classes

    # the labels of the whole training data set (image r * 100 + c is the r-th image of class c)
    names = class_names()
    labels = torch.arange(len(names)).repeat(per_class)
    blank = torch.zeros(1, 3, card.spec.img_size, card.spec.img_size, dtype=torch.uint8)
    full = ImageSet("shapes", blank.expand(len(labels), -1, -1, -1), labels, names,
                    ClassSplit(base, card.split["open_world"], card.split["novel"]))
    train_idx, held_idx = holdout_split(full, base, holdout, seed=card.seed)
    assert len(held_idx) == extra["heldout_images"] and len(train_idx) == extra["train_images"]

    ds = load_dataset("shapes", seed=int(meta["seed"]), images_per_class=HELD_OUT_ROUNDS,
                      image_size=card.spec.img_size, cache=False)
    assert torch.equal(ds.labels, labels[:len(ds.labels)])
    subset = held_idx[held_idx < len(ds.labels)]
    assert not set(subset.tolist()) & set(train_idx.tolist())
    _, acc = evaluate(model, ds.images[subset], remap_labels(ds.labels[subset], base), device=torch.device("cpu"))

    p, n, big_n = card.base_accuracy, len(subset), len(held_idx)
    sd = math.sqrt(p * (1 - p) / n * (big_n - n) / (big_n - 1))
    assert abs(acc - p) <= 4 * sd, (f"{name}: {acc:.3f} on {n} held-out base images, the card says {p:.3f} "
                                    f"(allowed +- {4 * sd:.3f})")
    assert acc > 10 * (1 / len(base))  # and that is far above chance


# ------------------------------------------------------------------ condensing finds a planted layer

CONDENSE = dict(images=64, probe_batch=32, holdout_per_class=6, train_per_class=12, pd_epochs=1, pd_batch_size=32,
                tasks=2, n_way=3, k_shot=4, task_epochs=1, ft_epochs=1, batch_size=32, device="cpu")
PLANT_AT = {"lg_vit_tiny.safetensors": 3, "lg_resnet_mini.safetensors": 1}
"""Where the planted layer goes: after identity layers (ViT blocks 0-2; ResNet layer1.0), so that it
is not simply the first layer."""


@pytest.fixture(scope="module")
def shapes():
    return load_dataset("shapes", seed=0, images_per_class=30)


def _stem_keys(model: nn.Module) -> list[str]:
    """The state-dict keys of the stem (everything before the first integral layer)."""
    prefixes = ("patch_embed.", "cls_token", "pos_embed", "reg_token") if family_of(model) == "vit" \
        else ("conv1.", "bn1.")
    return [k for k in model.state_dict() if k.startswith(prefixes)]


def _make_identity(layer: nn.Module) -> None:
    """Zero the last map of each residual branch: a ViT block (x + 0 + 0) or a ResNet block
    (relu(0 + x) = x for the non-negative x every block after the stem's ReLU receives) then passes
    its input through unchanged."""
    with torch.no_grad():
        if hasattr(layer, "attn"):
            for lin in (layer.attn.proj, layer.mlp.fc2):
                lin.weight.zero_()
                lin.bias.zero_()
        else:
            layer.bn2.weight.zero_()
            layer.bn2.bias.zero_()


def plant(ancestry: nn.Module, pd: nn.Module, at: int) -> nn.Module:
    """A copy of `ancestry` whose layer `at` computes exactly what the pseudo-descendant's layer 0 does:
    the pseudo-descendant's stem, identity layers 0..at-1, then the pseudo-descendant's layer 0."""
    out = copy.deepcopy(ancestry).eval()
    view, pd_view = layer_view(out), layer_view(pd)
    pd_state = pd.state_dict()
    out.load_state_dict({k: pd_state[k] for k in _stem_keys(out)}, strict=False)
    for i in range(at):
        _make_identity(view.get(i))
    view.get(at).load_state_dict(pd_view.get(0).state_dict())
    return out


@pytest.fixture(scope="module")
def planted(shipped, shapes):
    """{name: (ancestry with the planted layer, the pseudo-descendant, its history)}, for the CKA test.

    The pseudo-descendant is trained here with the very function and settings the CKA method uses;
    it depends on the ancestry only through its architecture (its initialisation is seeded), so the
    method trains the same network again for the planted ancestry (checked by the test)."""
    out = {}
    for name, (model, _) in shipped.items():
        cfg = CondenseConfig(**CONDENSE).for_family(family_of(model))
        pd, history = train_pseudo_descendant(model, open_world_data(shapes, cfg), cfg)
        out[name] = (plant(model, pd.eval(), PLANT_AT[name]), pd, history)
    return out


@pytest.mark.parametrize("cka_of", ["output", "update"])
@pytest.mark.parametrize("name", SHIPPED)
def test_cka_ranks_a_layer_identical_to_a_pseudo_descendant_layer_first(name, cka_of, planted, shapes):
    """The shipped ancestry with one layer made identical to pseudo-descendant layer 0 (stem copied,
    identity layers in front of it): that row's CKA with column 0 is exactly 1 (CKA of identical
    features), which is the most any pair can have (the unbiased HSIC is an inner product, so
    |CKA| <= 1), and the row is scored and selected first.

    How close the others come is a finding, not a tolerance: with `cka_of="output"` the identity
    rows (whose output is the pseudo-descendant's input to layer 0) reach 0.99995 (ViT) and
    0.999996 (ResNet), because a layer changes the residual stream very little; CKA of the layers'
    updates separates the planted layer by 0.006 to 0.06.
    """
    ancestry, pd, history = planted[name]
    at = PLANT_AT[name]
    probes = shapes.images[:16]
    with torch.no_grad():
        x = probes.float().div(255)  # the premise: same features on any input
        assert torch.equal(layer_view(ancestry).features(x)[at], layer_view(pd).features(x)[0])
    r = condense(ancestry, shapes, "cka", k=1, cka_of=cka_of, **CONDENSE)
    assert [h["train_loss"] for h in r.extras["pd_history"]] == [h["train_loss"] for h in history], \
        "the CKA method did not train the same pseudo-descendant"
    assert r.col_names == list(layer_view(pd).names)
    assert r.array[at, 0] == pytest.approx(1.0, abs=1e-9)
    scores = np.array(r.scores)
    others = np.delete(scores, at)
    assert scores[at] > others.max(), f"planted layer {at} scored {scores[at]:.9f}, another {others.max():.9f}"
    assert r.selected == [at]


def _freeze_by_construction(layer: nn.Module) -> None:
    """Make a layer that training cannot change: a dead residual branch whose weights get exactly zero
    gradient. ViT block: zero value projection, attention output projection and both MLP maps (the
    attention then outputs 0 whatever q and k are, and GELU(0) = 0). ResNet block: zero bn1 (its
    ReLU then outputs 0, so neither conv gets a gradient). Only the branch's output biases still learn."""
    with torch.no_grad():
        if hasattr(layer, "attn"):
            d = layer.attn.proj.in_features
            layer.attn.qkv.weight[2 * d:].zero_()
            layer.attn.qkv.bias[2 * d:].zero_()
            for lin in (layer.attn.proj, layer.mlp.fc1, layer.mlp.fc2):
                lin.weight.zero_()
                lin.bias.zero_()
        else:
            layer.bn1.weight.zero_()
            layer.bn1.bias.zero_()


FROZEN_AT = {"lg_vit_tiny.safetensors": 4, "lg_resnet_mini.safetensors": 3}


@pytest.mark.parametrize("method", ["gradient", "weights"])
@pytest.mark.parametrize("name", SHIPPED)
def test_stability_methods_rank_a_layer_training_cannot_change_first(name, method, shipped, shapes):
    """Heur-LG's gradient criterion and weight drift score ancestry layers by how little training on
    the open-world classes changes them; they never look at a pseudo-descendant, so a layer identical
    to one cannot show in them by design. What they must guarantee instead: a layer that training
    cannot change (`_freeze_by_construction`) is the most stable. Its weight gradients are exactly 0,
    so its gradient stability is exactly 1; weight decay only rescales its weights, which leaves their
    cosine at 1 up to the output biases. It must be scored and selected first."""
    model, _ = shipped[name]
    at = FROZEN_AT[name]
    frozen = copy.deepcopy(model)
    _freeze_by_construction(layer_view(frozen).get(at))
    r = condense(frozen, shapes, method, k=1, **CONDENSE)
    scores = np.array(r.scores)
    if method == "gradient":
        assert (r.array[at] == 1.0).all(), "a layer without weight gradients is not fully stable"
    else:
        assert scores[at] > 1 - 1e-4
    assert scores[at] > np.delete(scores, at).max()
    assert r.selected == [at]


def test_auto_lg_weights_come_from_the_matching_term_only(shapes):
    """Auto-LG cannot be asked to rank a layer identical to a pseudo-descendant layer first: its weight
    w_mn is meta-learned to lower the pseudo-descendant's cross-entropy one step later (L2T-ww), so it
    says whether pulling pseudo-descendant layer n towards ancestry layer m *helps*, not how similar
    they are; and the pseudo-descendant it trains is a fresh one shaped by that matching, so no layer
    of it exists to copy in advance. Tried on both shipped ancestries with the planted layer of the
    CKA test (these settings, seeds 0-2): its weights stayed within 0.04 of their initial 1 while
    others moved by up to 1.2, and it ranked 3rd to 6th of 8.

    What it must guarantee: the matching weights start at exactly 1 and move only through the
    meta-gradient of the matching term. With lam = 0 that term has no effect on the stepped
    pseudo-descendant, so every weight stays exactly 1 (no layer is preferred); with lam = 1 they
    move. The choice is the top k of the row means of the matrix, ties to the shallower layer."""
    torch.manual_seed(0)  # a narrow ResNet: Auto-LG's double backward on the shipped one takes ~10 s
    model = create_model("lg_resnet_mini", num_classes=64, channels=[8, 16, 32, 64])
    still = condense(model, shapes, "auto", k=3, lam=0.0, **{**CONDENSE, "images": 32})
    assert still.array.shape == (8, 4) and (still.array == 1.0).all()
    assert still.selected == [0, 1, 2]
    moved = condense(model, shapes, "auto", k=3, **{**CONDENSE, "images": 32})
    assert np.isfinite(moved.array).all() and np.abs(moved.array - 1.0).max() > 1e-3
    means = moved.array.mean(1)
    assert moved.scores == pytest.approx(means.tolist())
    assert moved.selected == sorted(np.argsort(-means, kind="stable")[:3].tolist())
