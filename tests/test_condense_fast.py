"""Fast condensing: layer updates, the pseudo-descendant cache, its accuracy against chance, shipped results."""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn.functional as F

from learngene.cli import condense as cli
from learngene.condense import CondenseConfig, SimilarityResult, condense
from learngene.condense.config import PD_DEFAULTS
from learngene.condense.pdcache import PDCache, pd_key
from learngene.condense.pseudo import pd_quality, pd_warning, pseudo_descendant_spec
from learngene.condense.shipped import shipped_similarity, similarity_path, view_of
from learngene.data import load_dataset
from learngene.models import ModelCard, create_model, layer_view, save_checkpoint

TINY = dict(images=48, probe_batch=24, holdout_per_class=6, train_per_class=12, pd_epochs=1, pd_batch_size=32,
            device="cpu")


@pytest.fixture(scope="module")
def ds():
    return load_dataset("shapes", seed=0, images_per_class=30)


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return create_model("lg_vit_tiny", num_classes=64, depth=4).eval()


def _x(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))


# -- what a layer adds ----------------------------------------------------------------------------
def test_vit_update_is_block_output_minus_input(vit):
    view = layer_view(vit)
    with torch.no_grad():
        out = view.features(_x())
        upd = view.features(_x(), what="update")
    for i in range(1, len(view)):
        torch.testing.assert_close(upd[i], out[i] - out[i - 1])
    assert upd[0].shape == out[0].shape and not torch.allclose(upd[0], out[0])


def test_resnet_update_is_the_residual_branch():
    torch.manual_seed(0)
    model = create_model("lg_resnet_mini", num_classes=10).eval()
    with torch.no_grad():  # give the zero-initialised last BNs weight, so branches are not all zero
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
        view = layer_view(model)
        out = view.features(_x())
        upd = view.features(_x(), what="update")
    # layer1.1 has no downsample: its output is relu(branch + its input, the output of layer1.0)
    torch.testing.assert_close(out[1], F.relu(upd[1] + out[0]))
    assert upd[2].shape == out[2].shape  # a downsampling block's branch has the block's output shape


def test_vgg_update_is_its_output():
    torch.manual_seed(0)
    model = create_model("lg_vgg_mini", num_classes=10).eval()
    view = layer_view(model)
    with torch.no_grad():
        for a, b in zip(view.features(_x()), view.features(_x(), what="update"), strict=True):
            torch.testing.assert_close(a, b)


def test_features_refuses_an_unknown_kind(vit):
    with pytest.raises(Exception, match="'output' or 'update'"):
        layer_view(vit).features(_x(), what="delta")


def test_update_cka_spreads_layers_more_than_output_cka(ds, vit):
    """On the same pseudo-descendant, CKA of updates separates the rows more than CKA of the stream."""
    outs = [condense(vit, ds, "cka", cka_of=kind, **TINY) for kind in ("output", "update")]
    spread = [max(r.scores) - min(r.scores) for r in outs]
    assert spread[1] > spread[0]
    assert outs[1].settings["cka_of"] == "update" and view_of(outs[1]) == "cka-update"
    assert view_of(outs[0]) == "cka"


# -- the pseudo-descendant: defaults, quality, cache ------------------------------------------------
def test_family_defaults_fill_only_what_is_unset():
    cfg = CondenseConfig()
    assert cfg.for_family("vit").pd_lr == PD_DEFAULTS["vit"]["pd_lr"]
    assert cfg.for_family("resnet").pd_batch_size == PD_DEFAULTS["cnn"]["pd_batch_size"]
    assert CondenseConfig(pd_epochs=7).for_family("vgg").pd_epochs == 7
    with pytest.raises(Exception, match="pd_lr"):
        CondenseConfig(pd_lr=-1.0).validated()


def test_pd_quality_against_chance():
    assert pd_quality(0.40, 16, 1024)["pd_learned"] == "clearly"
    assert pd_quality(0.10, 16, 1024)["pd_learned"] == "barely"  # 6 binomial sd above 6.25%, under twice chance
    assert pd_quality(0.065, 16, 1024)["pd_learned"] == "no"
    assert pd_quality(None, 16, 1024)["pd_learned"] == "unknown"
    assert pd_warning(pd_quality(0.40, 16, 1024)) is None
    warning = pd_warning(pd_quality(0.065, 16, 1024))
    assert "at chance" in warning and "6.5%" in warning and "6.2%" in warning


def test_the_pseudo_descendant_is_reused_when_its_settings_match(tmp_path, ds, vit):
    cache = PDCache("a" * 64, [tmp_path], tmp_path)
    first = condense(vit, ds, "cka", pd_cache=cache, **TINY)
    assert first.extras["pd_source"] == "trained" and len(list(tmp_path.glob("*.safetensors"))) == 1
    again = condense(vit, ds, "cka", pd_cache=cache, tokens="cls", **TINY)  # a CKA-only setting
    assert again.extras["pd_source"].startswith(str(tmp_path))
    assert again.extras["pd_test_acc"] == first.extras["pd_test_acc"]
    same = condense(vit, ds, "cka", pd_cache=cache, **TINY)
    assert same.matrix == first.matrix  # the cached model is the trained one, to the bit
    other = condense(vit, ds, "cka", pd_cache=cache, **{**TINY, "pd_lr": 1e-3})  # a training setting
    assert other.extras["pd_source"] == "trained" and len(list(tmp_path.glob("*.safetensors"))) == 2
    no_cache = condense(vit, ds, "cka", **TINY)
    assert no_cache.extras["pd_source"] == "trained" and no_cache.matrix == first.matrix


def test_the_key_changes_with_ancestry_data_and_training(ds, vit):
    cfg = CondenseConfig(**TINY).for_family("vit")
    spec = pseudo_descendant_spec(vit, 16).to_dict()
    key = pd_key("a" * 64, ds, cfg, spec)
    assert key == pd_key("a" * 64, ds, cfg, spec)
    assert key != pd_key("b" * 64, ds, cfg, spec)
    assert key != pd_key("a" * 64, ds, cfg.replace(pd_epochs=2), spec)
    assert key == pd_key("a" * 64, ds, cfg.replace(tokens="cls", images=96), spec)
    assert key != pd_key("a" * 64, load_dataset("shapes", seed=1, images_per_class=30), cfg, spec)


def test_a_damaged_cached_file_is_trained_again(tmp_path, ds, vit):
    cache = PDCache("c" * 64, [tmp_path], tmp_path)
    condense(vit, ds, "cka", pd_cache=cache, **TINY)
    (path,) = tmp_path.glob("*.safetensors")
    path.write_bytes(path.read_bytes()[:-8] + b"\0" * 8)  # fails its sha256 check
    assert condense(vit, ds, "cka", pd_cache=cache, **TINY).extras["pd_source"] == "trained"


# -- the CLI and shipped results --------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    return p


def test_cli_reports_the_pseudo_descendant_and_ships_its_results(tmp_path, vit, capsys, monkeypatch):
    monkeypatch.setenv("LEARNGENE_CACHE", str(tmp_path / "cache"))
    assets = tmp_path / "assets"
    path = save_checkpoint(vit, assets / "anc.safetensors", ModelCard(spec=vit.lg_spec, dataset="shapes"))
    sets = [f"--set={k}={v}" for k, v in TINY.items() if k not in ("images", "device")]
    common = ["--ancestry", str(path), "--device", "cpu", "--images-per-class", "30", "--images", "24", *sets]
    out = similarity_path(path, "cka")
    pd_file = assets / "pseudo" / "anc.safetensors"
    assert cli.run(_parser().parse_args([*common, "--out", str(out), "--save-pd", str(pd_file)])) == 0
    text = capsys.readouterr().out
    assert "pseudo-descendant: " in text and "chance 6.2%" in text and "trained now" in text
    assert pd_file.is_file()
    # the untrained tiny ancestry's one-epoch pseudo-descendant learned little: the CLI says so
    result = SimilarityResult.load(out)
    if result.extras["pd_learned"] != "clearly":
        assert "WARNING: the pseudo-descendant" in text
    # the shipped pseudo-descendant is found beside the ancestry, with no user cache at all
    monkeypatch.setenv("LEARNGENE_CACHE", str(tmp_path / "empty"))
    update = similarity_path(path, "cka-update")
    assert cli.run(_parser().parse_args([*common, "--out", str(update), "--cka-of", "update"])) == 0
    assert f"reused from {pd_file}" in capsys.readouterr().out
    found = shipped_similarity(path, SimilarityResult.load(out).ancestry["sha256"])
    assert list(found) == ["cka", "cka-update"]
    assert shipped_similarity(path, "0" * 64) == {}  # made from other weights: not offered
