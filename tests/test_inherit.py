"""Recipes, building descendants, the learngene file, and the `inherit` command."""

from __future__ import annotations

import json

import pytest
import torch

from learngene.cli import build_parser, main
from learngene.errors import CheckpointError, ConfigError
from learngene.inherit.build import build_descendant
from learngene.inherit.learngene_file import load_learngene, save_learngene, size_report
from learngene.inherit.recipe import Recipe, Slot
from learngene.models import ModelCard, create_model, layer_view, save_checkpoint

ARCHS = [("lg_vit_tiny", {"depth": 4}), ("lg_resnet_mini", {"channels": [8, 16, 32, 64], "layers": [1, 1, 1, 1]}),
         ("lg_vgg_mini", {"cfg": [8, "M", 16, "M", 32, 32]})]



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models train faster on one thread, and do not stall when the machine is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

def _ancestry(arch: str, overrides: dict, seed: int = 1):
    torch.manual_seed(seed)
    return create_model(arch, 8, **overrides)


def _state(module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def vit():
    return _ancestry("lg_vit_tiny", {"depth": 4})


# -- recipes --------------------------------------------------------------------------------------

def test_from_layers_placements(vit):
    spec = vit.lg_spec
    orig = Recipe.from_layers(spec, 4, [0, 3])
    assert [(s.source, s.layer) for s in orig.slots] == [("inherit", 0), ("random", 1), ("random", 2), ("inherit", 3)]
    top = Recipe.from_layers(spec, 4, [2, 3], placement="top", depth=5)
    assert [s.source for s in top.slots] == ["random"] * 3 + ["inherit"] * 2
    assert top.inherited_layers == [2, 3]
    bottom = Recipe.from_layers(spec, 4, [-1], placement="bottom", depth=3)
    assert bottom.slots[0] == Slot("inherit", 3) and bottom.depth == 3
    short = Recipe.from_layers(spec, 4, [0, 1], depth=2)  # "keep the first blocks" descendants
    assert short.inherited_layers == [0, 1] and short.depth == 2
    with pytest.raises(ConfigError, match="depth 2 is too small"):
        Recipe.from_layers(spec, 4, [3], depth=2)
    with pytest.raises(ConfigError, match="out of range"):
        Recipe.from_layers(spec, 4, [4])
    with pytest.raises(ConfigError, match="placement"):
        Recipe.from_layers(spec, 4, [0], placement="middle")


def test_baseline_is_all_random_and_json_round_trip(vit):
    r = Recipe.from_layers(vit.lg_spec, 4, [0, 1], placement="top", stem="inherit", num_classes=3)
    b = r.baseline()
    assert all(s.source == "random" for s in b.slots) and b.stem == "random" and b.is_baseline
    assert [s.layer for s in b.slots] == [s.layer for s in r.slots] and b.num_classes == 3
    again = Recipe.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r
    with pytest.raises(ConfigError, match="unknown recipe keys"):
        Recipe.from_dict({**r.to_dict(), "colour": "red"})
    with pytest.raises(ConfigError, match="source"):
        Recipe.from_dict({**r.to_dict(), "slots": [{"source": "copy", "layer": 0}]})
    text = r.describe(layer_view(vit).names)
    assert len(text.splitlines()) == r.depth + 3 and "blocks.0" in text


# -- building ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch,overrides", ARCHS)
def test_build_copies_inherited_layers_exactly(arch, overrides):
    anc = _ancestry(arch, overrides)
    view = layer_view(anc)
    n = len(view)
    recipe = Recipe.from_layers(anc.lg_spec, n, [0, n - 1], num_classes=5)
    desc = build_descendant(recipe, anc, seed=3)
    dview = layer_view(desc)
    assert _equal(_state(dview.get(0)), _state(view.get(0)))
    assert _equal(_state(dview.get(n - 1)), _state(view.get(n - 1)))
    mid_a, mid_d = _state(view.get(1)), _state(dview.get(1))
    assert any(not torch.equal(mid_a[k], mid_d[k]) for k in mid_a if mid_a[k].is_floating_point()
               and mid_a[k].std() > 0)
    assert desc(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert desc.lg_spec.num_classes == 5 and desc.lg_recipe == recipe
    # a descendant and its baseline built with one seed share every random part
    base = build_descendant(recipe.baseline(), anc, seed=3)
    assert _equal(_state(layer_view(base).get(1)), mid_d)
    assert _equal(_state(layer_view(base).head()), _state(dview.head()))
    assert not _equal(_state(layer_view(base).get(0)), _state(view.get(0)))


def test_stem_inherit_or_random(vit):
    stem = dict(layer_view(vit).stem())
    inherit = build_descendant(Recipe.from_layers(vit.lg_spec, 4, [0], stem="inherit"), vit, seed=0)
    random = build_descendant(Recipe.from_layers(vit.lg_spec, 4, [0], stem="random"), vit, seed=0)
    assert torch.equal(inherit.pos_embed, stem["pos_embed"]) and torch.equal(inherit.cls_token, stem["cls_token"])
    assert _equal(_state(inherit.patch_embed), _state(stem["patch_embed"]))
    assert not torch.equal(random.pos_embed, stem["pos_embed"])
    assert not torch.equal(random.patch_embed.proj.weight, stem["patch_embed"].proj.weight)
    assert "stem     inherited from the ancestry" in Recipe.from_layers(vit.lg_spec, 4, [0]).describe()


def test_vgg_recipe_says_it_has_no_stem():
    vgg = create_model("lg_vgg_mini", num_classes=5)
    text = Recipe.from_layers(vgg.lg_spec, len(layer_view(vgg)), [0, 1]).describe()
    assert "stem     none" in text and "inherited from the ancestry" not in text


def test_vit_descendant_depth_and_seed_determinism(vit):
    r = Recipe.from_layers(vit.lg_spec, 4, [2, 3], placement="top", depth=6)
    d1, d2 = build_descendant(r, vit, seed=5), build_descendant(r, vit, seed=5)
    assert len(layer_view(d1)) == 6 and d1.lg_spec.overrides["depth"] == 6
    assert _equal(d1.state_dict(), d2.state_dict())
    assert _equal(_state(layer_view(d1).get(4)), _state(layer_view(vit).get(2)))
    d3 = build_descendant(r, vit, seed=6)
    assert not torch.equal(layer_view(d3).get(0).attn.qkv.weight, layer_view(d1).get(0).attn.qkv.weight)


def test_cnn_shape_mismatch_names_the_slot():
    arch, overrides = ARCHS[1]
    anc = _ancestry(arch, overrides)
    n = len(layer_view(anc))
    r = Recipe.from_layers(anc.lg_spec, n, [n - 1], placement="bottom")
    with pytest.raises(ConfigError, match=r"slot 0 takes ancestry layer 3 with input 32 channels, but the stem outputs 8"):
        build_descendant(r, anc)
    slots = [Slot("inherit", 0), Slot("inherit", 2), Slot("random", 2), Slot("random", 3)]
    custom = Recipe(anc.lg_spec, n, tuple(slots))
    with pytest.raises(ConfigError, match=r"slot 1 takes ancestry layer 2 with input 16 channels, but slot 0 outputs 8"):
        build_descendant(custom, anc)
    with pytest.raises(ConfigError, match="keeps the ancestry's 4 layers"):
        build_descendant(Recipe.from_layers(anc.lg_spec, n, [0], depth=3), anc)


# -- the learngene file ----------------------------------------------------------------------------

@pytest.mark.parametrize("arch,overrides", ARCHS[:2])
def test_learngene_file_round_trip_builds_the_same_descendant(tmp_path, arch, overrides):
    anc = _ancestry(arch, overrides)
    n = len(layer_view(anc))
    path = save_learngene(anc, [0, n - 1], tmp_path / "lg.safetensors", method="cka", scores=[0.5] * n,
                          ancestry_sha256="abc")
    lg = load_learngene(path)
    assert lg.layers == (0, n - 1) and lg.method == "cka" and lg.ancestry_sha256 == "abc"
    assert lg.spec == anc.lg_spec and lg.n_layers == n and lg.scores == [0.5] * n
    assert _equal(lg.layer_state(n - 1), _state(layer_view(anc).get(n - 1)))
    for stem in ("inherit", "random"):
        recipe = Recipe.from_layers(anc.lg_spec, n, [0, n - 1], stem=stem)
        assert _equal(build_descendant(recipe, lg, seed=2).state_dict(), build_descendant(recipe, anc, seed=2).state_dict())
    with pytest.raises(ConfigError, match="holds ancestry layers"):
        build_descendant(Recipe.from_layers(anc.lg_spec, n, [1]), lg)


def test_size_report(tmp_path, vit):
    lg = load_learngene(save_learngene(vit, [0, 1], tmp_path / "lg.safetensors"))
    rep = size_report(lg)
    view = layer_view(vit)
    assert rep.layer_params == view.num_params(0) + view.num_params(1)
    stem_params = sum(p.numel() for p in vit.patch_embed.parameters()) + vit.pos_embed.numel() \
        + vit.cls_token.numel() + sum(p.numel() for p in vit.norm.parameters())
    assert rep.stem_params == stem_params
    assert rep.ancestry_params == sum(p.numel() for p in vit.parameters())
    assert rep.learngene_bytes == 4 * rep.learngene_params  # float32, no buffers in a ViT
    assert rep.ancestry_bytes == 4 * rep.ancestry_params
    assert 0 < rep.param_fraction < 1 and rep.file_bytes > rep.learngene_bytes
    assert "parameters" in rep.lines()


def test_load_learngene_errors(tmp_path, vit):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_learngene(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_learngene(bad)
    ckpt = save_checkpoint(vit, tmp_path / "anc.safetensors", ModelCard(spec=vit.lg_spec))
    with pytest.raises(CheckpointError, match="not a learngene.*--ancestry"):
        load_learngene(ckpt)
    good = save_learngene(vit, [0], tmp_path / "lg.safetensors")
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_learngene(tmp_path / "cut.safetensors")


# -- CLI ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["inherit", "train", "sweep"])
def test_cli_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, "--help"])
    assert exc.value.code == 0
    assert "--ancestry" in capsys.readouterr().out


def test_cli_inherit(tmp_path, vit, capsys):
    anc = save_checkpoint(vit, tmp_path / "anc.safetensors", ModelCard(spec=vit.lg_spec))
    out = tmp_path / "lg.safetensors"
    rc = main(["inherit", "--ancestry", str(anc), "--layers", "0,-1", "--placement", "top", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "inherit ancestry layer 3" in text and "parameters" in text
    lg = load_learngene(out)
    assert lg.layers == (0, 3) and lg.extra["recipe"]["placement"] == "top"
    assert main(["inherit", "--ancestry", str(anc), "--preset", "last-2", "--out", str(out)]) == 0
    assert load_learngene(out).layers == (2, 3)
    assert main(["inherit", "--ancestry", str(anc), "--layers", "0,9", "--out", str(out)]) == 2
    assert "out of range" in capsys.readouterr().err


def test_cli_inherit_from_similarity(tmp_path, vit, capsys):
    from learngene.condense.result import SimilarityResult

    anc = save_checkpoint(vit, tmp_path / "anc.safetensors", ModelCard(spec=vit.lg_spec))
    sha = json.loads((tmp_path / "anc.json").read_text())["sha256"]
    names = layer_view(vit).names

    def sim(selected, sha256, rows=names):
        return SimilarityResult(method="cka", matrix=[[0.1, 0.2]] * len(rows), row_names=rows, col_names=["a", "b"],
                                scores=[0.2] * len(rows), selected=selected, selection={"rule": "row_max"},
                                settings={}, ancestry={"sha256": sha256}, elapsed_s=0.1)

    good = sim([1, 2], sha).save(tmp_path / "sim.json")
    out = tmp_path / "lg.safetensors"
    assert main(["inherit", "--ancestry", str(anc), "--similarity", str(good), "--out", str(out)]) == 0
    lg = load_learngene(out)
    assert lg.layers == (1, 2) and lg.method == "cka" and lg.scores == [0.2] * 4
    other = sim([1], "f" * 64).save(tmp_path / "other.json")
    assert main(["inherit", "--ancestry", str(anc), "--similarity", str(other), "--out", str(out)]) == 2
    assert "sha256" in capsys.readouterr().err
    short = sim([1], sha, rows=names[:3]).save(tmp_path / "short.json")
    assert main(["inherit", "--ancestry", str(anc), "--similarity", str(short), "--out", str(out)]) == 2
    assert "scores 3 ancestry layers" in capsys.readouterr().err
