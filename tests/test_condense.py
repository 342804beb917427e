"""Condensing: CKA estimator properties, the four methods on a tiny model, selection, results, CLI."""

from __future__ import annotations

import argparse
import copy
import json

import numpy as np
import pytest
import torch

from learngene.cli import condense as cli
from learngene.condense import (
    CondenseConfig,
    MinibatchCKA,
    SimilarityResult,
    condense,
    layer_scores,
    linear_cka,
    pseudo_descendant_spec,
    reselect,
    select_layers,
    select_preset,
    unbiased_hsic,
)
from learngene.data import load_dataset
from learngene.errors import CheckpointError, ConfigError
from learngene.models import ModelCard, create_model, layer_view, save_checkpoint

TINY = dict(images=48, probe_batch=24, holdout_per_class=6, train_per_class=12, pd_epochs=1, pd_batch_size=32,
            tasks=2, n_way=3, k_shot=4, task_epochs=1, ft_epochs=1, batch_size=32, device="cpu")


@pytest.fixture(scope="module")
def ds():
    return load_dataset("shapes", seed=0, images_per_class=30)


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return create_model("lg_vit_tiny", num_classes=64, depth=4).eval()


def _correlated(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g, dtype=torch.float64)
    y = torch.tanh(x @ torch.randn(16, 24, generator=g, dtype=torch.float64)) + 0.5 * torch.randn(n, 24, generator=g,
                                                                                                   dtype=torch.float64)
    return x, y


# -- CKA ------------------------------------------------------------------------------------------
def test_cka_is_one_for_identical_inputs():
    x, _ = _correlated(64)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x, unbiased=False) == pytest.approx(1.0, abs=1e-12)


def test_cka_invariant_to_orthogonal_transform_and_isotropic_scaling():
    x, y = _correlated(128)
    q, _ = torch.linalg.qr(torch.randn(24, 24, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    ref = linear_cka(x, y)
    assert 0.2 < ref < 1.0
    assert linear_cka(x, y @ q) == pytest.approx(ref, abs=1e-10)
    assert linear_cka(3.7 * x, 0.01 * y) == pytest.approx(ref, abs=1e-10)


def test_cka_near_zero_for_independent_inputs():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(1000, 32, generator=g), torch.randn(1000, 32, generator=g)
    # unbiased estimator: E[HSIC_1] = 0 for independent inputs; spread ~ 1/n. Tolerance 0.02.
    assert abs(linear_cka(x, y)) < 0.02
    assert linear_cka(x, y, unbiased=False) > abs(linear_cka(x, y))  # the biased one is pulled upwards


def test_unbiased_hsic_matches_song_et_al_formula():
    x, y = _correlated(30)
    k, l = x @ x.T, y @ y.T  # noqa: E741
    n = len(k)
    kt, lt = k - torch.diag(torch.diag(k)), l - torch.diag(torch.diag(l))
    one = torch.ones(n, 1, dtype=torch.float64)
    ref = ((kt * lt).sum() + (one.T @ kt @ one) * (one.T @ lt @ one) / ((n - 1) * (n - 2))
           - 2 / (n - 2) * (one.T @ kt @ lt @ one)) / (n * (n - 3))
    assert float(unbiased_hsic(k, l)) == pytest.approx(float(ref), rel=1e-10)
    with pytest.raises(ConfigError):
        unbiased_hsic(k[:3, :3], l[:3, :3])


def test_minibatch_cka_matches_full_batch():
    x, y = _correlated(2048)
    z = torch.randn(2048, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    acc = MinibatchCKA()
    for i in range(0, 2048, 256):
        acc.update([x[i:i + 256], z[i:i + 256]], [y[i:i + 256], x[i:i + 256]])
    m = acc.value()
    assert m.shape == (2, 2) and m.dtype == torch.float64
    assert float(m[0, 0]) == pytest.approx(linear_cka(x, y), abs=0.02)
    assert float(m[0, 1]) == pytest.approx(1.0, abs=1e-10)
    assert abs(float(m[1, 0])) < 0.05
    single = MinibatchCKA()
    single.update([x[:256]], [y[:256]])
    assert float(single.value()[0, 0]) == pytest.approx(linear_cka(x[:256], y[:256]), abs=1e-10)


# -- methods --------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["cka", "auto", "gradient", "weights"])
def test_methods_return_finite_matrix_of_right_shape(method, ds, vit):
    before = {k: v.clone() for k, v in vit.state_dict().items()}
    r = condense(vit, ds, method, k=2, **TINY)
    rows = layer_view(vit).names
    cols = {"cka": 2, "auto": 2, "gradient": TINY["tasks"] * TINY["task_epochs"], "weights": 1}[method]
    assert r.row_names == rows
    assert r.array.shape == (len(rows), cols)
    assert np.isfinite(r.array).all() and np.isfinite(r.scores).all()
    assert len(r.selected) == 2 and r.method == method
    assert r.ancestry["arch"] == "lg_vit_tiny" and r.settings["seed"] == 0
    assert all(torch.equal(v, vit.state_dict()[k]) for k, v in before.items()), "the ancestry was modified"
    if method == "cka":
        assert r.settings["features"] == "tokens:mean" and r.col_names == ["blocks.0", "blocks.1"]
        assert ((r.array > -0.2) & (r.array < 1.0 + 1e-6)).all()
    if method == "auto":
        assert (r.array >= 0).all() and (r.array <= 6).all()  # ReLU6 weights


def test_cka_on_a_cnn_ancestry(ds):
    torch.manual_seed(0)
    anc = create_model("lg_vgg_mini", num_classes=64, cfg=[8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64])
    assert pseudo_descendant_spec(anc, 16).overrides["cfg"] == [8, "M", 16, "M", 32, "M", 64, "M", 64]
    r = condense(anc, ds, "cka", maps="gap", **{**TINY, "images": 24})
    assert r.array.shape == (8, 5) and np.isfinite(r.array).all()
    assert r.settings["features"] == "maps:gap"


def test_auto_on_a_resnet_ancestry(ds):
    """The layers Auto-LG chooses are its own: the top k of the row means of its learned matrix (ties to
    the shallower layer), not a preset. (That a planted layer comes first is not Auto-LG's promise:
    see tests/test_science.py.) The paper's preset stays one reselection away."""
    torch.manual_seed(0)
    anc = create_model("lg_resnet_mini", num_classes=64, channels=[8, 16, 32, 64])
    r = condense(anc, ds, "auto", k=3, **{**TINY, "images": 24})
    assert r.array.shape == (8, 4) and np.isfinite(r.array).all()
    assert r.settings["pd_spec"]["overrides"]["layers"] == [1, 1, 1, 1]
    assert not np.allclose(r.array, 1.0)  # the weights start at exactly 1: these were learned
    means = r.array.mean(1)
    assert r.selection == {"how": "top-k", "rule": "row_mean", "k": 3, "contiguous": False}
    assert r.scores == pytest.approx(means.tolist())
    assert r.selected == sorted(np.argsort(-means, kind="stable")[:3].tolist())
    assert reselect(r, "auto-paper").selected == [0, 1, 6, 7]  # the blocks of the first and last stage


def test_pseudo_descendant_specs():
    vgg = create_model("lg_vgg_mini", num_classes=8)
    assert pseudo_descendant_spec(vgg, 16).overrides["cfg"] == [32, "M", 64, "M", 128, "M", 256, "M", 256]
    vit = create_model("lg_vit_tiny", num_classes=8)
    assert pseudo_descendant_spec(vit, 16).overrides["depth"] == 4
    assert pseudo_descendant_spec(vit, 16, depth=3).overrides["depth"] == 3
    res = create_model("lg_resnet_mini", num_classes=8)
    assert pseudo_descendant_spec(res, 16).overrides["layers"] == [1, 1, 1, 1]
    with pytest.raises(ConfigError):
        pseudo_descendant_spec(res, 16, depth=2)


def test_condense_refuses_bad_settings(ds, vit):
    with pytest.raises(ConfigError, match="unknown condensing method"):
        condense(vit, ds, "magic")
    with pytest.raises(ConfigError, match="unknown condensing settings"):
        condense(vit, ds, "cka", epochz=3)
    with pytest.raises(ConfigError, match="probe_batch"):
        CondenseConfig(probe_batch=2).validated()
    with pytest.raises(ConfigError, match="between 1 and"):  # refused before any training
        condense(vit, ds, "auto", k=5)
    bare = copy.deepcopy(vit)
    del bare.lg_spec
    with pytest.raises(ConfigError, match="lg_spec"):
        condense(bare, ds, "weights")


# -- selection ------------------------------------------------------------------------------------
def test_layer_scores_rules():
    m = [[0.1, 0.9], [0.5, 0.5], [0.8, 0.2], [0.3, 0.7]]
    assert layer_scores(m, "row_max") == [0.9, 0.5, 0.8, 0.7]
    assert layer_scores(m, "row_mean") == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert layer_scores(m, "diagonal") == [0.1, 0.5, 0.2, 0.7]  # row m ↔ column m * 2 // 4
    assert np.isnan(layer_scores([[np.nan, np.nan]], "row_max")[0])
    with pytest.raises(ConfigError):
        layer_scores(m, "row_median")
    with pytest.raises(ConfigError):
        layer_scores([1.0, 2.0])


def test_select_layers_top_k_and_contiguous():
    s = [0.9, 0.1, 0.8, 0.7, 0.2, 0.95]
    assert select_layers(s, 3) == [0, 2, 5]
    assert select_layers(s, 3, contiguous=True) == [3, 4, 5]  # window sums 1.8, 1.6, 1.7, 1.85
    assert select_layers([0.5, 0.9, 0.8, 0.1], 2, contiguous=True) == [1, 2]
    assert select_layers([1.0, 1.0, 1.0], 2) == [0, 1]  # ties go to the shallower layer
    assert select_layers([np.nan, 0.1, 0.2], 1) == [2]
    for bad in (0, 7):
        with pytest.raises(ConfigError):
            select_layers(s, bad)


def test_select_presets():
    assert select_preset("heur", 8) == [5, 6, 7]
    assert select_preset("auto-paper", 12, "vit") == [0, 1, 8, 9, 10, 11]
    assert select_preset("auto-paper", 8, "vit") == [0, 5, 6, 7]
    assert select_preset("auto-paper", 13, "vgg") == [0, 1, 2, 10, 11, 12]
    assert select_preset("auto-paper", 8, "vgg") == [0, 1, 6, 7]
    names = ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    assert select_preset("auto-paper", 8, "resnet", names) == [0, 1, 6, 7]
    assert select_preset("auto-paper", 4, "resnet", ["layer1", "layer2", "layer3", "layer4"]) == [0, 3]
    assert select_preset("front-2", 8) == [0, 1]
    assert select_preset("middle-2", 8) == [3, 4]
    assert select_preset("last-3", 8) == [5, 6, 7]
    for name, n in (("last-9", 8), ("front-0", 8), ("heur", 2), ("best-3", 8), ("auto-paper", 1)):
        with pytest.raises(ConfigError):
            select_preset(name, n)
    with pytest.raises(ConfigError):
        select_preset("auto-paper", 8, "mlp")


# -- results --------------------------------------------------------------------------------------
def _result(**kw) -> SimilarityResult:
    base = dict(method="cka", matrix=[[0.9, 0.2], [0.4, float("nan")], [0.1, 0.3]],
                row_names=["blocks.0", "blocks.1", "blocks.2"], col_names=["blocks.0", "blocks.1"],
                scores=[0.9, 0.4, 0.3], selected=[0, 1], selection={"how": "top-k", "rule": "row_max", "k": 2},
                settings={"tokens": "mean"}, ancestry={"arch": "lg_vit_tiny", "sha256": "abc", "family": "vit"},
                elapsed_s=1.5)
    return SimilarityResult(**{**base, **kw})


def test_result_save_load_round_trip(tmp_path):
    r = _result()
    path = r.save(tmp_path / "sub" / "similarity.json")
    back = SimilarityResult.load(path)
    assert back.to_dict() == r.to_dict()
    assert back.matrix[1][1] is None and np.isnan(back.array[1, 1])
    assert back.selected_names == ["blocks.0", "blocks.1"]
    assert "*" in back.summary()
    again = reselect(back, "last-2")
    assert again.selected == [1, 2] and again.selection["how"] == "last-2"
    assert reselect(back, "top-1").selected == [0]


def test_result_load_is_strict(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        SimilarityResult.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read"):
        SimilarityResult.load(bad)
    data = _result().to_dict()
    for change, match in (({"format": "other"}, "format"), ({"surprise": 1}, "unknown keys"),
                          ({"scores": [1.0]}, "scores for 3"), ({"selected": [5]}, "selected layers"),
                          ({"matrix": "x"}, "matrix")):
        bad.write_text(json.dumps({**data, **change}))
        with pytest.raises(CheckpointError, match=match):
            SimilarityResult.load(bad)
    del data["row_names"]
    bad.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="lacks keys"):
        SimilarityResult.load(bad)


# -- CLI ------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    """The command's own parser (independent of the other commands' modules)."""
    p = argparse.ArgumentParser(prog="python -m learngene condense")
    cli.add_arguments(p)
    return p


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--ancestry", "--method", "--select", "--tokens", "--images", "--pd-epochs", "--out"):
        assert option in out
    assert cli.NAME == "condense" and cli.HELP


def test_cli_runs_on_a_tiny_checkpoint(tmp_path, vit, capsys):
    path = save_checkpoint(vit, tmp_path / "anc.safetensors", ModelCard(spec=vit.lg_spec, dataset="shapes"))
    out = tmp_path / "sim.json"
    sets = [f"--set={k}={v}" for k, v in TINY.items() if k not in ("images", "device")]
    common = ["--ancestry", str(path), "--device", "cpu", "--images-per-class", "30", "--images", "24",
              "--out", str(out), *sets]
    assert cli.run(_parser().parse_args(["--method", "weights", "--select", "heur", *common])) == 0
    r = SimilarityResult.load(out)
    assert r.selected == [1, 2, 3] and r.ancestry["sha256"] and r.ancestry["path"] == str(path)
    assert "selected (heur" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="between 1 and"):
        cli.run(_parser().parse_args(["--method", "weights", "--select", "top-9", *common]))
    with pytest.raises(ConfigError, match="unknown condensing settings"):
        cli.run(_parser().parse_args(["--set", "nope=1", *common]))
