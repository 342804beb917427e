"""Three of the condensing methods: linear CKA, Heur-LG's gradient criterion, weight drift.

Each returns a `MethodOutput` whose matrix follows the project's convention: rows are ancestry
layers and higher means "more learngene". Auto-LG's meta-learned weights live in `auto.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from learngene.condense.cka import MinibatchCKA
from learngene.condense.config import CondenseConfig
from learngene.condense.pdcache import PDCache
from learngene.condense.pseudo import (
    OpenWorld,
    ancestry_copy,
    feature_label,
    obtain_pseudo_descendant,
    pd_quality,
    pool_features,
    train_config,
)
from learngene.data import ImageSet, normalize, sample_task
from learngene.models import family_of, layer_view
from learngene.reporting import Reporter
from learngene.train.trainer import TrainConfig, Trainer, resolve_device


@dataclass
class MethodOutput:
    """A method's matrix (rows = ancestry layers) with its column names and diagnostics."""

    matrix: np.ndarray
    col_names: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


def _advance(reporter: Reporter | None, record: dict[str, Any], message: str) -> None:
    if reporter is not None:
        reporter.metric({"kind": "condense", **record})
        reporter.advance(1, message=message)


@torch.no_grad()
def cka_between(model_a: nn.Module, model_b: nn.Module, images: torch.Tensor, *, batch: int = 256,
                tokens: str = "mean", maps: str = "flatten", device: torch.device | None = None,
                on_batch: Callable[[int, int], None] | None = None, what: str = "output") -> torch.Tensor:
    """Linear CKA (unbiased minibatch HSIC, float64) between every layer of two models.

    Args:
        model_a: rows (the ancestry); model_b: columns (the pseudo-descendant). Same family.
        images: uint8 (N, 3, H, W) shown to both models.
        batch: minibatch size of the HSIC estimate.
        tokens / maps: ViT token / CNN map treatment (see `pool_features`).
        what: compare each layer's `output` or its `update` (`LayerView.features`).
        device: where to run (default: model_a's device).
        on_batch: called with (batch index, number of batches) after each minibatch.
    Returns:
        (layers of a, layers of b) float64 CKA matrix on the CPU.
    """
    device = device or next(model_a.parameters()).device
    views = [layer_view(m) for m in (model_a, model_b)]
    fams = [family_of(m) for m in (model_a, model_b)]
    prefix = [int(getattr(m, "num_prefix_tokens", 0)) for m in (model_a, model_b)]
    modes = [m.training for m in (model_a, model_b)]
    for m in (model_a, model_b):
        m.eval().to(device)
    acc, n_batches = MinibatchCKA(), -(-len(images) // batch)
    try:
        for b in range(n_batches):
            x = normalize(images[b * batch:(b + 1) * batch].to(device))  # (B, 3, H, W)
            feats = [[pool_features(f, fam, tokens, maps, pre) for f in view.features(x, what=what)]
                     for view, fam, pre in zip(views, fams, prefix, strict=True)]
            acc.update(feats[0], feats[1])
            if on_batch is not None:
                on_batch(b, n_batches)
    finally:
        for m, mode in zip((model_a, model_b), modes, strict=True):
            m.train(mode)
    return acc.value()


def cka_similarity(ancestry: nn.Module, data: OpenWorld, cfg: CondenseConfig,
                   reporter: Reporter | None = None, pd_cache: PDCache | None = None,
                   ds: ImageSet | None = None) -> MethodOutput:
    """Train a pseudo-descendant with cross-entropy (or take it from `pd_cache`), then CKA of every
    layer pair on held-out images. With `cfg.pd_seeds` = N > 1, N pseudo-descendants (seeds seed ..
    seed + N - 1) on the same probe images: the matrix is their mean, each one's is kept in
    `extras["seed_matrices"]` (the caller turns them into score intervals and selection counts)."""
    probes = data.probes(cfg.images, cfg.seed)
    matrices, runs = [], []
    for i in range(cfg.pd_seeds):
        seeded = cfg if i == 0 else cfg.replace(seed=cfg.seed + i)
        pd, history, source = obtain_pseudo_descendant(ancestry, data, seeded, reporter, pd_cache, ds)
        matrices.append(_cka_matrix(ancestry, pd, probes, cfg, reporter))
        runs.append((history, source))
    history, source = runs[0]
    extras = {"pd_history": history, "pd_source": source,
              **pd_quality(history[-1].get("test_acc"), len(data.classes), len(data.test_y), history)}
    if cfg.pd_seeds > 1:
        accs = [h[-1].get("test_acc") for h, _ in runs]
        extras["pd_seeds"] = {"seeds": [cfg.seed + i for i in range(cfg.pd_seeds)], "sources": [s for _, s in runs],
                              "per_seed": [pd_quality(a, len(data.classes), len(data.test_y), h)
                                           for a, (h, _) in zip(accs, runs, strict=True)]}
        extras["seed_matrices"] = [m.tolist() for m in matrices]
        worst = min(extras["pd_seeds"]["per_seed"], key=lambda q: _RANK[q["pd_state"]])
        extras.update({k: v for k, v in worst.items() if k != "pd_budget"})  # the gate judges the weakest
    return MethodOutput(
        np.mean(matrices, axis=0), list(layer_view(pd).names),
        settings={"features": feature_label(family_of(ancestry), cfg), "images_used": len(probes),
                  "pd_spec": pd.lg_spec.to_dict()},
        extras=extras,
    )


_RANK = {"at chance": 0, "not clearly above chance": 1, "unknown": 2, "learned": 3}


def _cka_matrix(ancestry: nn.Module, pd: nn.Module, probes: torch.Tensor, cfg: CondenseConfig,
                reporter: Reporter | None) -> np.ndarray:
    def on_batch(b: int, n: int) -> None:
        _advance(reporter, {"phase": "cka", "batch": b + 1, "batches": n}, "CKA")

    matrix = cka_between(ancestry, pd, probes, batch=cfg.probe_batch, tokens=cfg.tokens, maps=cfg.maps,
                         device=resolve_device(cfg.device), on_batch=on_batch, what=cfg.cka_of)
    return matrix.numpy()


def _weight_params(module: nn.Module) -> list[nn.Parameter]:
    """The weight matrices/kernels of a layer (ndim >= 2): biases and norm scales are left out."""
    return [p for p in module.parameters() if p.ndim >= 2]


def _gradient_threshold(layers: list[list[nn.Parameter]], quantile: float, seed: int) -> float:
    """`quantile` of |grad| pooled over all layers' weights (subsampled to <= 1M entries)."""
    g = torch.cat([p.grad.detach().abs().flatten() for ps in layers for p in ps if p.grad is not None])
    if g.numel() > 1_000_000:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        g = g[torch.randint(g.numel(), (1_000_000,), generator=gen).to(g.device)]
    return float(torch.quantile(g.float(), quantile))


def gradient_similarity(ancestry: nn.Module, ds: ImageSet, cfg: CondenseConfig,
                        reporter: Reporter | None = None) -> MethodOutput:
    """Heur-LG (Wang et al., AAAI 2022): gradient activity of each layer over a task sequence.

    A copy of the ancestry keeps training (new random head per task) on `cfg.tasks` open-world
    `n_way`-way `k_shot`-shot tasks for `task_epochs` epochs each. After every step, each layer's
    activity is the fraction of its weight-gradient entries (ndim >= 2 parameters) with |g| above a
    threshold: the `grad_quantile` quantile of |g| over all layers at the first step, fixed after.
    The matrix is layer × epoch of 1 − mean activity ("stability"): higher = more learngene.
    """
    model = ancestry_copy(ancestry, cfg.n_way, cfg.seed)
    view = layer_view(model)
    layers = [_weight_params(view.get(i)) for i in range(len(view))]
    state: dict[str, Any] = {"threshold": None, "step_fracs": []}
    columns: list[list[float]] = []
    task_of_epoch, task_acc = [], []

    def on_batch(tr: Trainer, step: int, steps: int) -> None:
        if state["threshold"] is None:
            state["threshold"] = _gradient_threshold(layers, cfg.grad_quantile, cfg.seed)
        thr = state["threshold"]
        with torch.no_grad():
            fr = [sum(int((p.grad.abs() > thr).sum()) for p in ps if p.grad is not None)
                  / max(1, sum(p.numel() for p in ps)) for ps in layers]
        state["step_fracs"].append(fr)

    for t in range(cfg.tasks):
        task = sample_task(ds, "open", cfg.n_way, cfg.k_shot, seed=cfg.seed, test_per_class=20, index=t)
        torch.manual_seed(cfg.seed + t)
        view.reset_head(cfg.n_way)
        tc = TrainConfig(epochs=cfg.task_epochs, batch_size=cfg.batch_size, lr=cfg.task_lr, weight_decay=0.05,
                         schedule="constant", device=cfg.device, seed=cfg.seed + t, eval_every=cfg.task_epochs,
                         flip=cfg.flip)
        trainer = Trainer(model, tc, task.train_x, task.train_y, task.test_x, task.test_y)
        trainer.add_callback("on_batch_end", on_batch)

        def on_epoch(tr: Trainer, rec: dict, t: int = t) -> None:
            frac = np.mean(state["step_fracs"], axis=0)
            state["step_fracs"] = []
            columns.append(frac.tolist())
            task_of_epoch.append(t)
            _advance(reporter, {"phase": "gradient", "task": t + 1, "epoch": len(columns),
                                "active_fraction": frac.tolist(), "train_loss": rec["train_loss"]},
                     f"gradient task {t + 1}/{cfg.tasks}")
        trainer.add_callback("on_epoch_end", on_epoch)
        task_acc.append(trainer.run()[-1].get("test_acc"))
    active = np.array(columns).T  # (layers, epochs)
    return MethodOutput(
        1.0 - active, [f"epoch {e + 1}" for e in range(active.shape[1])],
        settings={"threshold_rule": f"quantile {cfg.grad_quantile} of |grad| over all layer weights at step 1",
                  "threshold": state["threshold"], "images_used": cfg.tasks * cfg.n_way * cfg.k_shot},
        extras={"active_fraction": active.tolist(), "task_of_epoch": task_of_epoch, "task_test_acc": task_acc},
    )


def weights_similarity(ancestry: nn.Module, data: OpenWorld, cfg: CondenseConfig,
                       reporter: Reporter | None = None) -> MethodOutput:
    """Weight drift: fine-tune an ancestry copy (new head) on the open-world classes.

    The matrix is one column: per layer, the cosine similarity of its flattened parameters before
    and after fine-tuning (higher = changed less = more learngene). The relative change
    ‖θ_after − θ_before‖ / ‖θ_before‖ is kept in `extras["relative_change"]`.
    """
    model = ancestry_copy(ancestry, len(data.classes), cfg.seed)
    view = layer_view(model)

    def flat(i: int) -> torch.Tensor:
        return torch.cat([p.detach().flatten().double().cpu() for p in view.get(i).parameters()])

    before = [flat(i) for i in range(len(view))]
    trainer = Trainer(model, train_config(cfg, cfg.ft_epochs, cfg.ft_lr, cfg.batch_size),
                      data.train_x, data.train_y, data.test_x, data.test_y)
    trainer.add_callback("on_epoch_end", lambda tr, rec: _advance(
        reporter, {"phase": "weights", **rec}, "fine-tuning ancestry copy"))
    history = trainer.run()
    after = [flat(i) for i in range(len(view))]
    cos = [float(F.cosine_similarity(b, a, dim=0)) for b, a in zip(before, after, strict=True)]
    rel = [float((a - b).norm() / b.norm().clamp_min(1e-12)) for b, a in zip(before, after, strict=True)]
    return MethodOutput(
        np.array(cos)[:, None], ["cosine"],
        settings={"images_used": len(data.train_x)},
        extras={"relative_change": rel, "ft_history": history, "ft_test_acc": history[-1].get("test_acc")},
    )
