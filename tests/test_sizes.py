"""Descendants of any size: narrower / wider by consistent weight selection, deeper by repeat
and by TLEG interpolation, for a ViT and a CNN; inherited weights are the selected slices."""

from __future__ import annotations

import pytest
import torch

from learngene.errors import ConfigError
from learngene.inherit.build import build_descendant
from learngene.inherit.learngene_file import learngene_from_model
from learngene.inherit.recipe import Recipe, Slot
from learngene.models import create_model, layer_view
from learngene.train.config import TrainConfig
from learngene.train.trainer import Trainer


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return create_model("lg_vit_tiny", num_classes=64, depth=4)  # width 96, 3 heads of 32


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return create_model("lg_resnet_mini", num_classes=64)  # channels 32, 64, 128, 256


def _recipe(model, layers, **kw) -> Recipe:
    view = layer_view(model)
    return Recipe.from_layers(model.lg_spec, len(view), layers, io_shapes=view.io_shapes(), **kw)


def _one_step(model) -> None:
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(8) % 5
    before = [p.detach().clone() for p in model.parameters()]
    hist = Trainer(model, TrainConfig(epochs=1, batch_size=8, device="cpu", warmup_epochs=0), x, y, x, y).run()
    assert torch.isfinite(torch.tensor(hist[-1]["train_loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def trained(monkeypatch) -> list[tuple[int, int]]:
    """(parameters, classes) of every model the commands train: `train_one` (which the size study and the
    advantages study call for each run, at call time) is wrapped to note its model and then train it."""
    from learngene.descend import compare

    seen: list[tuple[int, int]] = []
    train_one = compare.train_one

    def noting(model, *args, **kwargs):
        seen.append((n_params(model), model.get_classifier().out_features))
        return train_one(model, *args, **kwargs)

    monkeypatch.setattr(compare, "train_one", noting)
    return seen


def test_a_narrower_vit_keeps_whole_heads_and_the_leading_embedding_channels(vit) -> None:
    d = build_descendant(_recipe(vit, [1, 2], width=2 / 3), vit, seed=0)
    assert d.embed_dim == 64 and d.blocks[0].attn.num_heads == 2  # 2 of 3 heads of 32
    a, b = vit.blocks[1], d.blocks[1]
    qkv_a = a.attn.qkv.weight.view(3, 96, 96)
    assert torch.equal(b.attn.qkv.weight.view(3, 64, 64), qkv_a[:, :64, :64])  # q, k, v of heads 0 and 1
    assert torch.equal(b.attn.proj.weight, a.attn.proj.weight[:64, :64])
    assert torch.equal(b.mlp.fc1.weight, a.mlp.fc1.weight[:256, :64])  # mlp hidden 4 x 64
    assert torch.equal(b.norm1.weight, a.norm1.weight[:64])
    assert torch.equal(d.pos_embed, vit.pos_embed[..., :64])  # the stem takes the same channels
    assert torch.equal(d.patch_embed.proj.weight, vit.patch_embed.proj.weight[:64])
    assert not torch.equal(d.blocks[0].attn.qkv.weight.view(3, 64, 64), vit.blocks[0].attn.qkv.weight.view(3, 96, 96)[:, :64, :64])
    _one_step(d)


def test_a_wider_vit_holds_the_ancestry_in_the_leading_block(vit) -> None:
    d = build_descendant(_recipe(vit, [0, 3], width=2.0), vit, seed=0)
    assert d.embed_dim == 192 and d.blocks[0].attn.num_heads == 6
    a, b = vit.blocks[3], d.blocks[3]
    assert torch.equal(b.attn.qkv.weight.view(3, 192, 192)[:, :96, :96], a.attn.qkv.weight.view(3, 96, 96))
    assert torch.equal(b.mlp.fc2.weight[:96, :384], a.mlp.fc2.weight)
    assert b.mlp.fc2.weight[96:].abs().sum() > 0  # the rest is timm's initialisation, not zeros
    _one_step(d)


def test_a_deeper_vit_by_repeat_and_by_interpolation(vit) -> None:
    rep = _recipe(vit, [0, 3], depth=7, fill="repeat", placement="bottom")
    assert [s.source for s in rep.slots] == ["inherit", "inherit"] + ["repeat"] * 5
    d = build_descendant(rep, vit, seed=0)
    assert len(d.blocks) == 7 and torch.equal(d.blocks[6].mlp.fc1.weight, vit.blocks[3].mlp.fc1.weight)
    _one_step(d)
    inter = _recipe(vit, [0, 3], depth=6, fill="interpolate")  # original: 0 at slot 0, 3 at slot 3
    s1 = inter.slots[1]
    assert (s1.source, s1.layer, s1.layer_b, s1.t) == ("interpolate", 0, 3, pytest.approx(1 / 3))
    assert inter.slots[4].source == "repeat" and inter.slots[4].layer == 3  # above the last: repeated
    d = build_descendant(inter, vit, seed=0)
    wa, wb = vit.blocks[0].attn.proj.weight, vit.blocks[3].attn.proj.weight
    assert torch.allclose(d.blocks[2].attn.proj.weight, wa + (2 / 3) * (wb - wa), atol=1e-6)
    _one_step(d)
    # narrower and deeper at once, from a learngene file that holds only the two layers
    lg = learngene_from_model(vit, [0, 3])
    d2 = build_descendant(_recipe(vit, [0, 3], depth=6, fill="interpolate", width=1 / 3), lg, seed=0)
    mix = wa + (2 / 3) * (wb - wa)
    assert torch.allclose(d2.blocks[2].attn.proj.weight, mix[:32, :32], atol=1e-6)


def test_resnet_narrower_and_wider_select_the_leading_channels(resnet) -> None:
    narrow = build_descendant(_recipe(resnet, [0, 1, 6, 7], width=0.5), resnet, seed=0)
    assert narrow.layer1[0].conv1.out_channels == 16 and narrow.layer4[1].conv2.out_channels == 128
    a, b = resnet.layer4[0], narrow.layer4[0]  # ancestry layer 6 = layer4.0 (with its downsample)
    assert torch.equal(b.conv1.weight, a.conv1.weight[:128, :64])
    assert torch.equal(b.downsample[0].weight, a.downsample[0].weight[:128, :64])
    assert torch.equal(b.bn1.running_var, a.bn1.running_var[:128])
    assert torch.equal(narrow.conv1.weight, resnet.conv1.weight[:16])  # the stem keeps the same channels
    _one_step(narrow)
    wide = build_descendant(_recipe(resnet, [0, 1], width=1.5), resnet, seed=0)
    assert wide.layer1[0].conv1.weight.shape[:2] == (48, 48)
    assert torch.equal(wide.layer1[0].conv1.weight[:32, :32], resnet.layer1[0].conv1.weight)
    _one_step(wide)


def test_resnet_fill_uses_only_inherited_layers_of_the_same_shape(resnet) -> None:
    """A CNN keeps its depth; repeat / interpolate fill the slots whose shape an inherited layer has."""
    rec = _recipe(resnet, [0, 5], fill="interpolate")  # layer1.0 and layer3.1
    sources = [s.source for s in rec.slots]
    assert sources[1] == "repeat" and rec.slots[1].layer == 0  # layer1.1 has layer1.0's shape
    # layer3.0 (64 -> 128, with a downsample) has not the shape of the inherited layer3.1 (128 -> 128),
    # nor has any other slot: they stay random
    assert sources == ["inherit", "repeat", "random", "random", "random", "inherit", "random", "random"]
    d = build_descendant(rec, resnet, seed=0)
    assert torch.equal(d.layer1[1].conv1.weight, resnet.layer1[0].conv1.weight)
    _one_step(d)


def test_vgg_narrower_builds_and_trains() -> None:
    torch.manual_seed(0)
    vgg = create_model("lg_vgg_mini", num_classes=64)
    d = build_descendant(_recipe(vgg, [0, 1], width=0.25), vgg, seed=0)
    assert torch.equal(d.features.conv1.conv.weight, vgg.features.conv1.conv.weight[:16, :8])
    _one_step(d)


def test_the_baseline_of_a_resized_recipe_is_the_same_size_and_all_random(vit) -> None:
    """All random, by its weights: built from another ancestry (same architecture, other weights) the baseline
    comes out bit for bit the same, so no weight of it comes from an ancestry; the learngene descendant,
    built the same two ways, differs (the check sees inherited weights)."""
    rec = _recipe(vit, [0, 3], depth=6, width=0.5, fill="interpolate")
    base = rec.baseline()
    assert base.width == 0.5 and base.fill == "random" and base.is_baseline
    d, b = build_descendant(rec, vit, seed=3), build_descendant(base, vit, seed=3)
    assert n_params(d) == n_params(b)
    assert torch.equal(d.head.weight, b.head.weight)  # fairness: shared random parts are equal
    torch.manual_seed(1)
    other = create_model("lg_vit_tiny", num_classes=64, depth=4)
    b2, d2 = build_descendant(base, other, seed=3), build_descendant(rec, other, seed=3)
    state, state2 = b.state_dict(), b2.state_dict()
    assert state.keys() == state2.keys() and all(torch.equal(state[k], state2[k]) for k in state)
    lg, lg2 = d.state_dict(), d2.state_dict()
    differ = {k for k in lg if not torch.equal(lg[k], lg2[k])}
    assert {"blocks.0.attn.qkv.weight", "blocks.3.mlp.fc1.weight", "pos_embed"} <= differ  # inherited, stem too


def test_recipes_round_trip_and_bad_sizes_say_why(vit) -> None:
    rec = _recipe(vit, [0, 3], depth=6, width=0.5, fill="interpolate")
    assert Recipe.from_dict(rec.to_dict()) == rec
    with pytest.raises(ConfigError, match="width must be"):
        _recipe(vit, [0], width=8)
    with pytest.raises(ConfigError, match="does not inherit"):
        Recipe(vit.lg_spec, 4, (Slot("inherit", 0), Slot("repeat", 2)))
    with pytest.raises(ConfigError, match="fill must be"):
        _recipe(vit, [0], fill="stretch")


def test_the_sizes_command_trains_every_initialisation_at_every_size(tmp_path, ancestry_file, capsys,
                                                                    trained) -> None:
    """Every model trained has the size of its row: 0.34x of the 2-block lg_vit_tiny (width 96, 3 heads of 32)
    keeps one whole head (width 32), counted here on a model built at that size directly."""
    from learngene.cli import main

    out = tmp_path / "sizes"
    assert main(["sizes", "--ancestry", str(ancestry_file), "--layers", "0,1", "--sizes", "0.34x2,1", "--tasks", "2",
                 "--epochs", "1", "--images-per-class", "24", "--test-per-class", "4", "--out", str(out)]) == 0
    import json

    summary = json.loads((out / "sizes.json").read_text())["sizes"]
    assert [s["depth"] for s in summary] == [2, 2] and [s["width"] for s in summary] == [0.34, 1.0]
    assert summary[0]["params"] < summary[1]["params"]
    small = n_params(create_model("lg_vit_tiny", num_classes=5, depth=2, embed_dim=32, num_heads=1))
    full = n_params(create_model("lg_vit_tiny", num_classes=5, depth=2))
    assert [s["params"] for s in summary] == [small, full]
    # 2 sizes x 2 tasks x 3 initialisations, in that order
    assert trained == [(small, 5)] * 6 + [(full, 5)] * 6
    for s in summary:
        assert s["tasks"] == 2 and {"learngene", "random", "weight-selection"} <= set(s)
    assert (out / "sizes.svg").read_text().lstrip().startswith("<?xml")
    assert "weight selection" in capsys.readouterr().out


def _staged(model, layers, **kw) -> Recipe:
    from learngene.inherit.resize import stages_of

    view = layer_view(model)
    return Recipe.from_layers(model.lg_spec, len(view), layers, io_shapes=view.io_shapes(),
                              stages=stages_of(model.lg_spec), **kw)


def test_a_deeper_resnet_by_repeat_and_by_interpolation(resnet) -> None:
    rec = _staged(resnet, [0, 1, 2, 3], depth=12, fill="interpolate")
    assert rec.layout == (3, 3, 3, 3)
    d = build_descendant(rec, resnet, seed=0)
    assert [len(getattr(d, f"layer{i}")) for i in range(1, 5)] == [3, 3, 3, 3]
    # stage 1: ancestry blocks 0 and 1 at the ends, the new middle block interpolated between them
    assert torch.equal(d.layer1[0].conv1.weight, resnet.layer1[0].conv1.weight)
    assert torch.equal(d.layer1[2].conv2.weight, resnet.layer1[1].conv2.weight)
    w0, w1 = resnet.layer1[0].conv1.weight, resnet.layer1[1].conv1.weight
    assert torch.allclose(d.layer1[1].conv1.weight, w0 + 0.5 * (w1 - w0), atol=1e-6)
    # stage 2: its first block changes the shape, so the new middle block repeats the last one
    assert rec.slots[4] == Slot("repeat", 3)
    assert torch.equal(d.layer2[1].conv1.weight, resnet.layer2[1].conv1.weight)
    _one_step(d)
    rep = build_descendant(_staged(resnet, [0, 1, 2, 3], depth=12, fill="repeat", width=0.5), resnet, seed=0)
    # the new middle block repeats the nearest same-shaped inherited block (a tie: the lower one), narrower
    assert torch.equal(rep.layer1[1].conv1.weight, resnet.layer1[0].conv1.weight[:16, :16])
    _one_step(rep)


def test_a_shallower_resnet_keeps_each_stages_first_and_last_blocks(resnet) -> None:
    rec = _staged(resnet, [0, 1, 2, 3], depth=4)
    assert rec.layout == (1, 1, 1, 1) and [s.layer for s in rec.slots] == [0, 2, 4, 6]
    d = build_descendant(rec, resnet, seed=0)
    assert torch.equal(d.layer2[0].downsample[0].weight, resnet.layer2[0].downsample[0].weight)
    base = build_descendant(rec.baseline(), resnet, seed=0)
    assert sum(p.numel() for p in d.parameters()) == sum(p.numel() for p in base.parameters())
    _one_step(d)
    with pytest.raises(ConfigError, match="placement 'original'"):
        _staged(resnet, [0], depth=6, placement="top")


def test_the_advantages_study_trains_every_row_at_the_chosen_size(tmp_path, capsys, trained) -> None:
    """`advantages --width/--depth`: every row, the baseline included, is that size (the study
    carries the size): every model trained has the parameters of lg_resnet_mini built at half width, one block
    per stage; the journal fingerprint names the size, so a full-size journal is not reused."""
    import json

    from learngene.cli import main

    out = tmp_path / "study"
    assert main(["advantages", "--quick", "--ancestry", "assets/lg_resnet_mini.safetensors", "--models",
                 "baseline,heur,finetune", "--tasks", "2", "--shots", "1", "--epochs", "1", "--test-per-class", "4",
                 "--lrs", "1e-3", "--wds", "0.05", "--width", "0.5", "--depth", "4", "--out", str(out)]) == 0
    study = json.loads((out / "advantages-study.json").read_text())["study"]
    assert study["width"] == 0.5 and study["depth"] == 4
    half = create_model("lg_resnet_mini", num_classes=study["n_way"], channels=(16, 32, 64, 128), layers=(1, 1, 1, 1))
    assert len(trained) == 7 and set(trained) == {(n_params(half), study["n_way"])}  # warm-up, 3 rows x 2 tasks
    entries = [json.loads(line) for f in (out / "journal").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert entries and all(json.loads(e["fingerprint"])["size"] == {"width": 0.5, "depth": 4} for e in entries)
