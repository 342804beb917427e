"""Contract tests for learngene.models: every supported architecture gets the same checks (timm style)."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn as nn

from learngene.cli import main as cli_main
from learngene.errors import CheckpointError, ConfigError
from learngene.models import (
    PRESETS,
    LayerView,
    ModelCard,
    ModelSpec,
    create_model,
    family_of,
    file_sha256,
    layer_view,
    load_checkpoint,
    load_weights,
    normalize_indices,
    save_checkpoint,
    shipped_checkpoints,
)

NUM_CLASSES = 10
# (arch, overrides, minimum share of all parameters that sit in integral layers)
TIMM_ARCHS = [
    ("vit_tiny_patch16_224", {"patch_size": 8, "depth": 2}, 0.9),
    ("resnet10t", {}, 0.9),
]
ARCHS = [(name, {}, 0.9) for name in PRESETS] + TIMM_ARCHS
IDS = [a for a, _, _ in ARCHS]


def _build(arch: str, overrides: dict, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(arch, NUM_CLASSES, **overrides).eval()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _manual_last(model: nn.Module, view: LayerView, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(what the last layer's output becomes, forward_features) computed without the view's hooks."""
    feats = view.features(x)
    if view.family == "vit":
        return model.norm(feats[-1]), model.forward_features(x)
    if view.family == "resnet":
        return feats[-1], model.forward_features(x)
    y = feats[-1]  # VGG: only pools may follow the last conv unit
    after = list(model.features.children())[list(dict(model.features.named_children())).index(
        view.names[-1].split(".")[-1]) + 1:]
    for layer in after:
        y = layer(y)
    return y, model.forward_features(x)


# -- building ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch,overrides,_frac", ARCHS, ids=IDS)
def test_builds_and_classifies(arch, overrides, _frac, x):
    model = _build(arch, overrides)
    assert model(x).shape == (2, NUM_CLASSES)
    assert model.lg_spec == ModelSpec(arch, NUM_CLASSES, 32, overrides)
    assert family_of(model) in ("vit", "resnet", "vgg")


def test_presets_are_small_and_described():
    assert {"lg_vit_tiny", "lg_vit_small", "lg_resnet_mini", "lg_vgg_mini"} <= set(PRESETS)
    for name, desc in PRESETS.items():
        n = sum(p.numel() for p in create_model(name, NUM_CLASSES).parameters())
        assert desc and n < 3_000_000, (name, n)
    vit = create_model("lg_vit_tiny", NUM_CLASSES)
    assert (vit.patch_embed.patch_size, vit.embed_dim, len(vit.blocks), vit.blocks[0].attn.num_heads) == ((8, 8), 96, 8, 3)
    assert vit.cls_token is not None
    assert len(layer_view(create_model("lg_vgg_mini", NUM_CLASSES))) == 8


def test_vit_overrides_pass_through():
    model = create_model("lg_vit_tiny", 5, depth=3, embed_dim=48, num_heads=3, patch_size=4)
    assert (len(model.blocks), model.embed_dim, model.patch_embed.patch_size) == (3, 48, (4, 4))
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 5)
    assert create_model("lg_vit_tiny", 5, img_size=16).patch_embed.num_patches == 4


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        (("no_such_net", 10), {}, r"lg_vit_tiny.*timm vit_\*"),
        (("convnext_atto", 10), {}, "not a plain ViT, ResNet or VGG"),
        (("lg_vit_tiny", 10), {"no_such_arg": 1}, "no_such_arg"),
        (("lg_vit_tiny", 10), {"patch_size": 5}, "not a multiple of patch_size"),
        (("lg_vit_tiny", 10), {"depth": object()}, "JSON values"),
        (("lg_vit_tiny", 0), {}, "num_classes"),
        (("lg_vit_tiny", 10), {"pretrained": True}, "no published pretrained weights"),
        (("lg_resnet_mini", 10), {"stem_stride": 3}, "stem_stride"),
    ],
)
def test_create_model_errors(args, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        create_model(*args, **kwargs)


def test_pretrained_offline_fails_fast_and_clearly(monkeypatch, tmp_path):
    """Offline by huggingface_hub's own switch (HF_HUB_OFFLINE=1), whether or not the Hub is reachable here."""
    from huggingface_hub import constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))  # no cached weights to fall back on
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=r"could not download pretrained weights for resnet10t: no network.*"
                                             r"models layers FILE --arch resnet10t.*accumulate --arch resnet10t"):
        create_model("resnet10t", NUM_CLASSES, pretrained=True)
    assert time.monotonic() - start < 20


def test_model_spec_round_trip():
    spec = ModelSpec("lg_vit_tiny", 7, 32, {"depth": 4})
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError, match="unknown model spec keys"):
        ModelSpec.from_dict({**spec.to_dict(), "colour": "red"})


# -- indices ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "indices,expected",
    [(None, [0, 1, 2, 3, 4]), (2, [3, 4]), (5, [0, 1, 2, 3, 4]), ([0, -1], [0, 4]), ((3, 1, 3, -2), [1, 3]), ([], [])],
)
def test_normalize_indices(indices, expected):
    assert normalize_indices(indices, 5) == expected


@pytest.mark.parametrize(
    "indices,match",
    [([5], r"0\.\.4 \(or -5\.\.-1"), ([-6], "out of range"), (0, "1 <= k <= 5"), (6, "1 <= k <= 5"),
     (True, "must be ints"), ([1.0], "must be ints"), (2.0, "must be ints")],
)
def test_normalize_indices_errors(indices, match):
    with pytest.raises(ConfigError, match=match):
        normalize_indices(indices, 5)


# -- the integral-layer view ------------------------------------------------------------------------
@pytest.mark.parametrize("arch,overrides,frac", ARCHS, ids=IDS)
def test_layer_view_contract(arch, overrides, frac):
    model = _build(arch, overrides)
    view = layer_view(model)
    total = sum(p.numel() for p in model.parameters())
    assert len(view) == len(view.names) == len(set(view.names)) >= 2
    assert view.family == family_of(model)
    for i, name in enumerate(view.names):
        assert view.get(i) is model.get_submodule(name)
        assert view.num_params(i) == sum(p.numel() for p in model.get_submodule(name).parameters()) > 0
    assert frac * total <= sum(view.layer_params()) < total
    shapes = view.io_shapes()
    assert all(a[1] == b[0] for a, b in zip(shapes, shapes[1:], strict=False)), shapes  # layers chain
    assert isinstance(view.head(), nn.Linear) and view.head().out_features == NUM_CLASSES
    stem = view.stem()
    expected = {"vit": {"patch_embed", "pos_embed", "cls_token", "norm"}, "resnet": {"conv1", "bn1"}, "vgg": set()}
    assert expected[view.family] <= set(stem)


@pytest.mark.parametrize("arch,overrides,_frac", ARCHS, ids=IDS)
def test_features_match_forward(arch, overrides, _frac, x):
    model = _build(arch, overrides)
    view = layer_view(model)
    with torch.no_grad():
        feats = view.features(x)
        assert len(feats) == len(view) and all(f.shape[0] == 2 for f in feats)
        if view.family == "vit":
            n_tokens = 1 + model.patch_embed.num_patches
            assert all(f.shape == (2, n_tokens, model.embed_dim) for f in feats)
        else:
            assert all(f.ndim == 4 and f.shape[1] == c for f, (_, c) in zip(feats, view.io_shapes(), strict=True))
        got, want = _manual_last(model, view, x)
        torch.testing.assert_close(got, want)
        some = view.features(x, [0, -1])
        torch.testing.assert_close(some[0], feats[0])
        torch.testing.assert_close(some[1], feats[-1])
        assert len(view.features(x, 1)) == 1
    first = view.features(x, [0])[0]  # with grad: early stop still gives a differentiable output
    first.square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in view.get(0).parameters())
    assert not any(m._forward_hooks for m in model.modules()), "hooks must be removed"


@pytest.mark.parametrize("arch,overrides,_frac", ARCHS, ids=IDS)
def test_get_set_and_new_layer(arch, overrides, _frac, x):
    model = _build(arch, overrides)
    view = layer_view(model)
    i = len(view) // 2
    old = view.get(i)
    with torch.no_grad():
        before = model(x)
    new = view.new_layer(i)
    assert type(new) is type(old) and new is not old
    old_state, new_state = old.state_dict(), new.state_dict()
    assert {k: v.shape for k, v in old_state.items()} == {k: v.shape for k, v in new_state.items()}
    assert any(not torch.equal(old_state[k], new_state[k]) for k in old_state if old_state[k].is_floating_point())
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(old.parameters(), new.parameters(), strict=True))
    view.set(i, new)
    assert view.get(i) is new and model.get_submodule(view.names[i]) is new
    with torch.no_grad():
        assert model(x).shape == before.shape
        assert not torch.allclose(model(x), before)
        view.set(i, old)
        torch.testing.assert_close(model(x), before)


def test_granularity_and_unsupported():
    resnet = create_model("lg_resnet_mini", NUM_CLASSES)
    assert layer_view(resnet, "stage").names == ["layer1", "layer2", "layer3", "layer4"]
    assert layer_view(resnet).names[:2] == ["layer1.0", "layer1.1"]
    with pytest.raises(ConfigError, match="ResNets only"):
        layer_view(create_model("lg_vit_tiny", NUM_CLASSES), "stage")
    with pytest.raises(ConfigError, match="granularity must be one of"):
        layer_view(resnet, "layer")
    with pytest.raises(ConfigError, match="unsupported model class"):
        family_of(nn.Linear(2, 2))


def test_reset_head_updates_spec(x):
    model = create_model("lg_vit_tiny", NUM_CLASSES)
    layer_view(model).reset_head(5)
    assert model(x).shape == (2, 5) and model.lg_spec.num_classes == 5


def test_timm_vgg_is_grouped_into_units(x):
    model = create_model("vgg11", NUM_CLASSES)  # flat timm features regrouped into conv units
    view = layer_view(model)
    assert len(view) == 8 and view.names[0] == "features.conv0"
    with torch.no_grad():
        got, want = _manual_last(model.eval(), view, x)
    torch.testing.assert_close(got, want)


# -- checkpoints ------------------------------------------------------------------------------------
def _card(model: nn.Module, **kw) -> ModelCard:
    return ModelCard(spec=model.lg_spec, dataset="shapes", split={"base": [0, 1]}, epochs=2, seed=3,
                     base_accuracy=0.5, command="python -m learngene test", **kw)


@pytest.mark.parametrize("arch,overrides,_frac", ARCHS, ids=IDS)
def test_checkpoint_round_trip(arch, overrides, _frac, tmp_path, x):
    model = _build(arch, overrides, seed=4)
    for m in model.modules():  # non-default BN statistics must survive too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_()
    path = save_checkpoint(model, tmp_path / "anc.safetensors", _card(model, extra={"note": "hi"}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anc.json", "anc.safetensors"]  # no temp files
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in tmp_path.iterdir())  # readable by other users
    loaded, card = load_checkpoint(path)
    assert card.sha256 == file_sha256(path) and card.spec == model.lg_spec and card.extra == {"note": "hi"}
    assert (card.dataset, card.epochs, card.seed, card.base_accuracy) == ("shapes", 2, 3, 0.5)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.eval()(x))


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module_prefix"])
def test_load_pth_weights_only(tmp_path, wrap):
    src = _build("lg_vit_tiny", {}, seed=1)
    sd = src.state_dict()
    obj = {
        "plain": sd, "state_dict": {"state_dict": sd, "epoch": 3}, "model": {"model": sd},
        "module_prefix": {f"module.{k}": v for k, v in sd.items()},
    }[wrap]
    torch.save(obj, tmp_path / "w.pth")
    dst = _build("lg_vit_tiny", {}, seed=2)
    report = load_weights(dst, tmp_path / "w.pth")
    assert not (report.missing or report.unexpected or report.mismatched)
    assert all(torch.equal(sd[k], v) for k, v in dst.state_dict().items())


def test_mismatched_checkpoint_names_keys(tmp_path):
    src = create_model("lg_vit_tiny", NUM_CLASSES)
    path = save_checkpoint(src, tmp_path / "a.safetensors", _card(src))
    with pytest.raises(CheckpointError, match=r"unexpected keys: blocks\.6\..*\(\d+ more\)") as deeper:
        load_weights(create_model("lg_vit_tiny", NUM_CLASSES, depth=6), path)
    assert "missing keys" not in str(deeper.value)
    with pytest.raises(CheckpointError, match=r"missing keys: blocks\.10\.") as exc:
        load_weights(create_model("lg_vit_tiny", NUM_CLASSES, depth=12), path)
    assert "does not fit lg_vit_tiny" in str(exc.value)
    with pytest.raises(CheckpointError, match=r"shape mismatches: blocks\.0\..*proj\.weight: checkpoint \(96, 96\) vs model \(48, 48\).*\(98 more\)"):
        load_weights(create_model("lg_vit_tiny", NUM_CLASSES, embed_dim=48), path)
    other = create_model("lg_vit_tiny", 5)  # non-strict: everything but the head loads
    report = load_weights(other, path, strict=False)
    assert sorted(m.split(":")[0] for m in report.mismatched) == ["head.bias", "head.weight"]
    assert torch.equal(other.blocks[0].attn.qkv.weight, src.blocks[0].attn.qkv.weight)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_checkpoint(tmp_path, suffix, damage):
    model = create_model("lg_vit_tiny", NUM_CLASSES)
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save(model.state_dict(), path)
    else:
        save_checkpoint(model, path, _card(model))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00garbage" * 64)
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_weights(model, path)


def test_missing_file_card_and_changed_weights(tmp_path):
    model = create_model("lg_vit_tiny", NUM_CLASSES)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights(model, tmp_path / "nope.safetensors")
    path = save_checkpoint(model, tmp_path / "a.safetensors", _card(model))
    (tmp_path / "a.json").rename(tmp_path / "elsewhere.json")
    with pytest.raises(CheckpointError, match=r"no model card a\.json.*load_weights.*--arch"):
        load_checkpoint(path)
    save_checkpoint(model, path, _card(model))
    save_checkpoint(create_model("lg_vit_tiny", NUM_CLASSES), tmp_path / "b.safetensors", _card(model))
    (tmp_path / "b.safetensors").replace(path)  # weights swapped under the card
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(path)
    assert load_checkpoint(path, verify=False)[1].spec == model.lg_spec


def test_save_checkpoint_refuses_bad_input(tmp_path):
    model = create_model("lg_vit_tiny", NUM_CLASSES)
    with pytest.raises(ConfigError, match=".safetensors"):
        save_checkpoint(model, tmp_path / "a.pt", _card(model))
    with pytest.raises(ConfigError, match="differs from the model"):
        save_checkpoint(model, tmp_path / "a.safetensors", ModelCard(spec=ModelSpec("lg_vgg_mini", 10)))


def test_shipped_checkpoints(tmp_path):
    model = create_model("lg_vit_tiny", NUM_CLASSES)
    save_checkpoint(model, tmp_path / "with_card.safetensors", _card(model))
    (tmp_path / "no_card.safetensors").write_bytes(b"x")
    assert [p.name for p in shipped_checkpoints(tmp_path)] == ["with_card.safetensors"]
    assert isinstance(shipped_checkpoints(), list)
    assert shipped_checkpoints(tmp_path / "missing") == []


def test_the_shipped_ancestries_load_and_say_how_good_they_are():
    """The shipped ancestries: a ViT and a CNN in assets/, each <= 25 MB, trained on shapes, with held-out base accuracy.

    The card's accuracy is not taken on trust: tests/test_science.py re-measures it on held-out base
    images (`test_a_shipped_ancestry_is_as_accurate_as_its_card_says`)."""
    from learngene.models import family_of, load_checkpoint

    found = {p.name: p for p in shipped_checkpoints()}
    assert {"lg_vit_tiny.safetensors", "lg_resnet_mini.safetensors"} <= set(found)
    for name in ("lg_vit_tiny.safetensors", "lg_resnet_mini.safetensors"):
        path = found[name]
        assert path.stat().st_size <= 25 * 2**20
        model, card = load_checkpoint(path)  # verifies the sha256 in the card
        assert card.dataset == "shapes" and card.spec.num_classes == 64 and card.epochs > 0
        assert card.base_accuracy is not None and card.base_accuracy >= 0.4  # "trained well": 25x chance (1/64)
        assert "learngene accumulate" in card.command
        assert family_of(model) == ("vit" if "vit" in name else "resnet")


# -- CLI --------------------------------------------------------------------------------------------
def test_cli_list_and_layers(tmp_path, capsys):
    assert cli_main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PRESETS)
    assert cli_main(["models", "layers", "lg_vit_tiny", "--set", "depth=3"]) == 0
    out = capsys.readouterr().out
    assert "blocks.2" in out and "17x96" in out and "blocks.3" not in out
    model = create_model("lg_resnet_mini", NUM_CLASSES)
    path = save_checkpoint(model, tmp_path / "r.safetensors", _card(model))
    assert cli_main(["models", "layers", str(path), "--granularity", "stage"]) == 0
    assert "layer4" in capsys.readouterr().out
    torch.save(model.state_dict(), tmp_path / "plain.pth")  # no card: the architecture comes from --arch
    assert cli_main(["models", "layers", str(tmp_path / "plain.pth")]) == 1
    assert "--arch" in capsys.readouterr().err
    assert cli_main(["models", "layers", str(tmp_path / "plain.pth"), "--arch", "lg_resnet_mini", "--num-classes", "10"]) == 0
    assert "layer4.1" in capsys.readouterr().out
    assert cli_main(["models", "layers", "no_such_net"]) == 2
    assert "lg_vit_tiny" in capsys.readouterr().err
