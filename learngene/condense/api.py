"""`condense`: one entry point from an ancestry model to a `SimilarityResult`."""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from learngene.condense.auto import auto_similarity
from learngene.condense.config import CondenseConfig
from learngene.condense.methods import MethodOutput, cka_similarity, gradient_similarity, weights_similarity
from learngene.condense.pdcache import PDCache
from learngene.condense.pseudo import open_world_data
from learngene.condense.result import METHODS, Method, SimilarityResult
from learngene.condense.select import ScoreRule, layer_scores, select_layers, select_preset
from learngene.data import ImageSet
from learngene.errors import ConfigError
from learngene.models import family_of, layer_view
from learngene.reporting import Reporter
from learngene.train.trainer import resolve_device

DEFAULT_RULE: dict[str, ScoreRule] = {"cka": "row_max", "auto": "row_mean", "gradient": "row_mean",
                                      "weights": "row_max"}
"""Score rule per method: a layer's best CKA match; its total matching weight; its mean stability."""


def plan_units(method: Method, cfg: CondenseConfig, family: str = "vit") -> int:
    """Number of progress units `condense` will report (for the Reporter's total)."""
    cfg = cfg.for_family(family)
    if method == "cka":
        return cfg.pd_seeds * (cfg.pd_epochs + -(-cfg.images // cfg.probe_batch))
    if method == "auto":
        return cfg.pd_epochs + 1
    if method == "gradient":
        return cfg.tasks * cfg.task_epochs
    return cfg.ft_epochs


def score_and_select(matrix: Any, row_names: list[str], family: str, *, select: str = "top-k",
                  k: int | None = None, contiguous: bool = False,
                  rule: ScoreRule = "row_max") -> tuple[list[float], list[int], dict[str, Any]]:
    """Scores, selected indices and the selection record for a matrix.

    Args:
        select: `top-k` (best k by score; `top-3` sets k), or a preset of `select_preset`.
        k: layers for `top-k` (default: half the layers, at least 1).
        contiguous: `top-k` as one contiguous run.
        rule: how rows become scores (`layer_scores`).
    """
    n = len(row_names)
    scores = layer_scores(matrix, rule)
    match = re.fullmatch(r"top-(\d+)", select)
    if match is not None:
        if k is not None and k != int(match.group(1)):
            raise ConfigError(f"--select {select} and --k {k} disagree; give one of them")
        select, k = "top-k", int(match.group(1))
    if select == "top-k":
        k = max(1, n // 2) if k is None else k
        selected = select_layers(scores, k, contiguous)
        return scores, selected, {"how": "top-k", "rule": rule, "k": k, "contiguous": contiguous}
    selected = select_preset(select, n, family, row_names)
    return scores, selected, {"how": select, "rule": rule, "k": len(selected), "contiguous": False}


def seed_scores(matrices: list[Any], row_names: list[str], family: str, **choice: Any) -> dict[str, Any]:
    """Per-layer score over pseudo-descendant seeds: mean, 95% t-interval half-width, each seed's scores,
    and how many seeds' matrices selected the layer (with the same selection as the result)."""
    from scipy import stats

    per_seed, counts = [], [0] * len(row_names)
    for m in matrices:
        scores, selected, _ = score_and_select(np.asarray(m), row_names, family, **choice)
        per_seed.append(scores)
        for i in selected:
            counts[i] += 1
    arr = np.asarray(per_seed)  # (seeds, layers)
    n = arr.shape[0]
    half = stats.t.ppf(0.975, n - 1) * arr.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(arr.shape[1], np.nan)
    return {"n": n, "mean": arr.mean(axis=0).tolist(), "ci95": [float(h) for h in half],
            "values": arr.tolist(), "selected_count": counts}


def reselect(result: SimilarityResult, select: str = "top-k", k: int | None = None, contiguous: bool = False,
             rule: ScoreRule | None = None) -> SimilarityResult:
    """A copy of `result` with new scores/selection (the matrix is not recomputed)."""
    rule = rule or result.selection.get("rule") or DEFAULT_RULE[result.method]
    family = result.ancestry.get("family", "vit")
    scores, selected, selection = score_and_select(result.array, result.row_names, family, select=select, k=k,
                                                contiguous=contiguous, rule=rule)
    out = copy.deepcopy(result)
    out.scores, out.selected, out.selection = scores, selected, selection
    out.validate()
    return out


def _run_method(method: str, ancestry: nn.Module, ds: ImageSet, cfg: CondenseConfig,
                reporter: Reporter | None, pd_cache: PDCache | None) -> MethodOutput:
    if method == "gradient":
        return gradient_similarity(ancestry, ds, cfg, reporter)
    data = open_world_data(ds, cfg)
    if method == "cka":
        return cka_similarity(ancestry, data, cfg, reporter, pd_cache, ds)
    fn = {"auto": auto_similarity, "weights": weights_similarity}[method]
    return fn(ancestry, data, cfg, reporter)


def _checked(ancestry: nn.Module, method: str, config: CondenseConfig | None,
             settings: dict[str, Any]) -> tuple[Any, str, list[str], CondenseConfig]:
    """The ancestry's spec, family and layer names and the settings, or a `ConfigError` before any work."""
    if method not in METHODS:
        raise ConfigError(f"unknown condensing method {method!r}; choose one of {', '.join(METHODS)}")
    spec = getattr(ancestry, "lg_spec", None)
    if spec is None:
        raise ConfigError("the ancestry has no lg_spec; build it with learngene.models.create_model or load it "
                          "with load_checkpoint")
    family, names = family_of(ancestry), list(layer_view(ancestry).names)
    cfg = (config or CondenseConfig()).replace(**settings).for_family(family)
    if cfg.pd_seeds > 1 and method != "cka":
        raise ConfigError(f"--pd-seeds (several pseudo-descendants) is for the cka method; {method} trains none "
                          "or its own; leave it at 1")
    return spec, family, names, cfg


def condense(
    ancestry: nn.Module, ds: ImageSet, method: Method = "cka", *, config: CondenseConfig | None = None,
    select: str = "top-k", k: int | None = None, contiguous: bool = False, rule: ScoreRule | None = None,
    reporter: Reporter | None = None, ancestry_path: str | Path | None = None, ancestry_sha256: str = "",
    pd_cache: PDCache | None = None, **settings: Any,
) -> SimilarityResult:
    """Compute a similarity matrix for `ancestry` and choose its learngene layers.

    Args:
        ancestry: the trained ancestry (not modified: the methods work on copies).
        ds: the data set; its open-world classes are the pseudo-descendant task.
        method: `auto` (Auto-LG), `cka`, `gradient` (Heur-LG) or `weights` (weight drift).
        config: settings; keyword `settings` override single fields (e.g. `pd_epochs=1`).
        select / k / contiguous / rule: the selection (see `score_and_select`); `rule` defaults per
            method (`DEFAULT_RULE`).
        reporter: progress and metrics sink.
        ancestry_path / ancestry_sha256: recorded in the result.
        pd_cache: where a trained pseudo-descendant is reused from and stored (cka); None = always
            train it (see `learngene.condense.pdcache`).
    """
    spec, family, names, cfg = _checked(ancestry, method, config, settings)
    rule = rule or DEFAULT_RULE[method]
    score_and_select(np.zeros((len(names), 1)), names, family, select=select, k=k, contiguous=contiguous,
                  rule=rule)  # refuse a bad selection before the expensive part
    t0 = time.perf_counter()
    anc = copy.deepcopy(ancestry).to(resolve_device(cfg.device)).eval()
    if reporter is not None:
        reporter.metric({"kind": "condense", "phase": "start", "method": method, "settings": cfg.to_dict()})
    out = _run_method(method, anc, ds, cfg, reporter, pd_cache)
    assert out.matrix.shape[0] == len(names), "a method returned a matrix whose rows are not the layers"
    scores, selected, selection = score_and_select(out.matrix, names, family, select=select, k=k,
                                                contiguous=contiguous, rule=rule)
    if "seed_matrices" in out.extras:
        out.extras["seed_scores"] = seed_scores(out.extras.pop("seed_matrices"), names, family, select=select, k=k,
                                                contiguous=contiguous, rule=rule)
    data_meta = {k: v for k, v in ds.meta.items() if isinstance(v, (int, float, str, bool))}
    result = SimilarityResult(
        method=method, matrix=out.matrix, row_names=names, col_names=out.col_names, scores=scores,
        selected=selected, selection=selection,
        settings={**cfg.to_dict(), **out.settings, "dataset": ds.name, "data_meta": data_meta,
                  "open_world": list(ds.split.open_world),
                  "device": str(resolve_device(cfg.device)), "torch": torch.__version__},
        ancestry={"arch": spec.arch, "family": family, "num_classes": spec.num_classes, "overrides": spec.overrides,
                  "img_size": spec.img_size, "path": None if ancestry_path is None else str(ancestry_path),
                  "sha256": ancestry_sha256},
        elapsed_s=round(time.perf_counter() - t0, 2), extras=out.extras,
    )
    if reporter is not None:
        reporter.metric({"kind": "condense", "phase": "done", "method": method, "elapsed_s": result.elapsed_s,
                         "scores": scores, "selected": selected})
    return result
