"""The pseudo-descendant and the open-world data it learns from (Auto-LG, Wang et al. 2023).

The pseudo-descendant is a smaller network of the ancestry's family, trained on the open-world
classes, that tells which ancestry layers carry knowledge a descendant needs. Its shape here:

- ViT: the ancestry's spec with half the depth (same width, heads, patch size).
- ResNet: the same stages and widths with half the residual blocks per stage (at least one), so
  `lg_resnet_mini` ([2,2,2,2]) → [1,1,1,1], a ResNet-10.
- VGG: `lg_vgg_mini` whose conv units are halved (at least one) within each resolution, with the
  max-pools in the same places, so `lg_vgg_mini`'s 8 units → 5 (one per resolution).
`pd_depth` overrides the depth for ViTs; CNN pseudo-descendants are always derived as above.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from learngene.condense.config import CondenseConfig
from learngene.condense.pdcache import PDCache, pd_key
from learngene.data import ImageSet, holdout_split
from learngene.errors import ConfigError, DataError
from learngene.models import ModelSpec, create_from_spec, family_of, layer_view
from learngene.reporting import Reporter
from learngene.train.accumulate import remap_labels
from learngene.train.budget import Budget, judge, train_in_rounds
from learngene.train.trainer import TrainConfig, Trainer


@dataclass
class OpenWorld:
    """Open-world images (uint8) with labels remapped to 0..len(classes)-1."""

    classes: tuple[int, ...]
    train_x: torch.Tensor  # (N, 3, H, W) uint8
    train_y: torch.Tensor  # (N,)
    test_x: torch.Tensor  # (M, 3, H, W) uint8, held out
    test_y: torch.Tensor  # (M,)

    def probes(self, n: int, seed: int) -> torch.Tensor:
        """`n` images for measuring similarity: held-out first (seeded order), then training images."""
        gen = torch.Generator().manual_seed(seed)
        pool = torch.cat([self.test_x[torch.randperm(len(self.test_x), generator=gen)],
                          self.train_x[torch.randperm(len(self.train_x), generator=gen)]])
        if len(pool) < 4:
            raise DataError(f"only {len(pool)} open-world images; the similarity needs at least 4")
        return pool[:n]


def open_world_data(ds: ImageSet, cfg: CondenseConfig) -> OpenWorld:
    """The open-world classes of `ds`, split into training and held-out images (seeded)."""
    classes = tuple(ds.split.classes("open"))
    if len(classes) < 2:
        raise DataError(f"{ds.name} has {len(classes)} open-world class(es); the pseudo-descendant needs >= 2")
    train_idx, test_idx = holdout_split(ds, classes, cfg.holdout_per_class, seed=cfg.seed,
                                       option="--set holdout_per_class=N")
    if cfg.train_per_class is not None:  # keep the first images of each class (holdout order is seeded)
        labels = ds.labels[train_idx]
        keep = torch.zeros(len(train_idx), dtype=torch.bool)
        for c in classes:
            keep[(labels == c).nonzero().flatten()[: cfg.train_per_class]] = True
        train_idx = train_idx[keep]
    return OpenWorld(classes, ds.images[train_idx], remap_labels(ds.labels[train_idx], classes),
                     ds.images[test_idx], remap_labels(ds.labels[test_idx], classes))


def _vgg_cfg(model: nn.Module, img_size: int) -> list[Any]:
    """A halved VGG layout: per resolution, half the ancestry's conv units (>= 1), pools between."""
    view = layer_view(model)
    was = model.training
    model.eval()
    with torch.no_grad():
        p = next(model.parameters())
        feats = view.features(torch.zeros(1, 3, img_size, img_size, device=p.device, dtype=p.dtype))
    model.train(was)
    groups: list[list[int]] = []
    last_h = None
    for f in feats:  # (1, C, H, W)
        if f.shape[-1] != last_h:
            groups.append([])
            last_h = f.shape[-1]
        groups[-1].append(int(f.shape[1]))
    cfg: list[Any] = []
    for g, widths in enumerate(groups):
        keep = max(1, len(widths) // 2)
        cfg += widths[len(widths) - keep:] + (["M"] if g < len(groups) - 1 else [])
    return cfg


def pseudo_descendant_spec(ancestry: nn.Module, num_classes: int, depth: int | None = None) -> ModelSpec:
    """The spec of a pseudo-descendant for `ancestry` (see the module docstring for the rule)."""
    spec: ModelSpec | None = getattr(ancestry, "lg_spec", None)
    if spec is None:
        raise ConfigError("the ancestry has no lg_spec; build or load it with learngene.models")
    family, view = family_of(ancestry), layer_view(ancestry)
    n = len(view)
    if depth is not None and family != "vit":
        raise ConfigError(f"pd_depth is supported for ViT ancestries only (this one is a {family}); "
                          "leave it unset")
    if family == "vit":
        d = depth if depth is not None else max(1, n // 2)
        if not 1 <= d <= n:
            raise ConfigError(f"pd_depth must be between 1 and the ancestry depth {n}, got {d}")
        return ModelSpec(spec.arch, num_classes, spec.img_size, {**spec.overrides, "depth": d})
    if family == "resnet":
        per_stage: dict[str, int] = {}
        for name in view.names:
            stage = name.rsplit(".", 1)[0]
            per_stage[stage] = per_stage.get(stage, 0) + 1
        layers = [max(1, c // 2) for c in per_stage.values()]
        return ModelSpec(spec.arch, num_classes, spec.img_size, {**spec.overrides, "layers": layers})
    overrides = spec.overrides if spec.arch == "lg_vgg_mini" else {}
    return ModelSpec("lg_vgg_mini", num_classes, spec.img_size,
                     {**overrides, "cfg": _vgg_cfg(ancestry, spec.img_size)})


def build_pseudo_descendant(ancestry: nn.Module, num_classes: int, cfg: CondenseConfig) -> nn.Module:
    """A freshly initialised pseudo-descendant (seeded by `cfg.seed`)."""
    torch.manual_seed(cfg.seed)
    return create_from_spec(pseudo_descendant_spec(ancestry, num_classes, cfg.pd_depth))


def train_config(cfg: CondenseConfig, epochs: int, lr: float, batch_size: int, seed: int | None = None) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=0.05, device=cfg.device,
                       seed=cfg.seed if seed is None else seed, eval_every=epochs, warmup_epochs=0, flip=cfg.flip)


def pd_budget(cfg: CondenseConfig) -> Budget:
    """The pseudo-descendant's adaptive budget: rounds of `pd_epochs` until it has clearly learned."""
    rounds = int(cfg.pd_epochs or 1)
    return Budget(round_epochs=rounds, max_epochs=max(rounds, int(cfg.pd_max_epochs or rounds)),
                  max_seconds=cfg.pd_max_seconds, until="learned")


def train_pseudo_descendant(ancestry: nn.Module, data: OpenWorld, cfg: CondenseConfig,
                            reporter: Reporter | None = None) -> tuple[nn.Module, list[dict]]:
    """Build and train the pseudo-descendant with plain cross-entropy on the open-world classes, under
    its adaptive budget (`pd_budget`): round 0 is exactly the fixed training of `pd_epochs`; later rounds
    restart the schedule with seeds seed + round. What happened is the last record's "budget" entry."""
    pd = build_pseudo_descendant(ancestry, len(data.classes), cfg)
    chance, n_test = 1.0 / len(data.classes), len(data.test_y)

    def make_trainer(r: int, epochs: int) -> Trainer:
        tc = train_config(cfg, epochs, cfg.pd_lr, cfg.pd_batch_size, seed=cfg.seed + r)
        return Trainer(pd, tc, data.train_x, data.train_y, data.test_x, data.test_y)

    def on_epoch(rec: dict) -> None:
        if reporter is not None:
            reporter.metric({"kind": "condense", "phase": "pseudo_descendant", **rec})
            reporter.advance(1, message="pseudo-descendant", train_loss=rec["train_loss"])

    history, outcome = train_in_rounds(make_trainer, pd_budget(cfg), lambda acc: judge(acc, n_test, chance)["state"],
                                       on_epoch)
    if history:
        history[-1] = {**history[-1], "budget": outcome}
    if reporter is not None:
        reporter.metric({"kind": "condense", "phase": "pseudo_descendant_budget", **outcome})
    return pd, history


def budget_outcome(history: list[dict]) -> dict[str, Any] | None:
    """What the adaptive budget did (None for a pseudo-descendant trained before budgets adapted)."""
    out = history[-1].get("budget") if history else None
    return out if isinstance(out, dict) else None


def obtain_pseudo_descendant(ancestry: nn.Module, data: OpenWorld, cfg: CondenseConfig,
                             reporter: Reporter | None = None, cache: PDCache | None = None,
                             ds: ImageSet | None = None) -> tuple[nn.Module, list[dict], str]:
    """The trained pseudo-descendant: from `cache` when one with these settings is stored, else
    trained now (and stored). Returns (model, training history, where it came from: "trained" or the
    file it was loaded from)."""
    key = None
    if cache is not None and cache.ancestry_sha256 and ds is not None:
        spec = pseudo_descendant_spec(ancestry, len(data.classes), cfg.pd_depth)
        key = pd_key(cache.ancestry_sha256, ds, cfg, spec.to_dict())
        found = cache.load(key)
        if found is not None:
            pd, history, path = found
            if reporter is not None:
                reporter.metric({"kind": "condense", "phase": "pseudo_descendant", "cached": str(path),
                                 **(history[-1] if history else {})})
                reporter.advance(int(cfg.pd_epochs or 0), message="pseudo-descendant (cached)")
            if cache.save_to is not None:
                cache.store(key, pd, history, ds, cfg, only_save_to=True)
            return pd.to(next(ancestry.parameters()).device), history, str(path)
    pd, history = train_pseudo_descendant(ancestry, data, cfg, reporter)
    if key is not None:
        cache.store(key, pd, history, ds, cfg)
    return pd, history, "trained"


def pd_quality(test_acc: float | None, n_classes: int, n_test: int, history: list[dict] | None = None) -> dict[str, Any]:
    """How well the pseudo-descendant learned, by the three-state rule (`learngene.train.budget`), for
    results and warnings: `pd_state` ("learned", "not clearly above chance", "at chance", "unknown"),
    `pd_line` (what was measured), `pd_budget` (what its adaptive budget did, when known), and the older
    `pd_learned` ("clearly", "barely", "no", "unknown") read from the state."""
    chance = 1.0 / max(1, n_classes)
    verdict = judge(None if test_acc is None else float(test_acc), n_test, chance)
    out = {"pd_test_acc": None if test_acc is None else float(test_acc), "pd_chance": chance, "pd_test_n": n_test,
           "pd_state": verdict["state"], "pd_line": verdict["line"], "pd_learned": _OLD_NAMES[verdict["state"]]}
    outcome = budget_outcome(history or [])
    if outcome is not None:
        out["pd_budget"] = outcome
    return out


_OLD_NAMES = {"learned": "clearly", "not clearly above chance": "barely", "at chance": "no", "unknown": "unknown"}


def pd_state(extras: dict[str, Any]) -> str:
    """The pseudo-descendant's `LearningState` from a result's extras (results made before the rule
    carry only `pd_learned`)."""
    if extras.get("pd_state"):
        return str(extras["pd_state"])
    return {v: k for k, v in _OLD_NAMES.items()}.get(extras.get("pd_learned"), "unknown")


def pd_warning(extras: dict[str, Any]) -> str | None:
    """A one-line warning when a result's pseudo-descendant did not clearly learn (None when it did or
    it is unknown)."""
    state, acc, chance = pd_state(extras), extras.get("pd_test_acc"), extras.get("pd_chance")
    if state in ("learned", "unknown") or acc is None or chance is None:
        return None
    line = extras.get("pd_line") or f"{state}: {acc:.1%} held-out accuracy, chance {chance:.1%}"
    budget = extras.get("pd_budget")
    did = f"; its budget: {budget['line']}" if isinstance(budget, dict) and budget.get("line") else ""
    return (f"the pseudo-descendant is {line}{did}: the similarity mostly compares the ancestry with a network "
            "that has not learned; give it a larger budget (--set pd_max_seconds=600 --set pd_max_epochs=200) or "
            "more open-world images before trusting the layers")


def ancestry_copy(ancestry: nn.Module, num_classes: int, seed: int) -> nn.Module:
    """A deep copy of the ancestry with a new random head of `num_classes` outputs."""
    model = copy.deepcopy(ancestry)
    torch.manual_seed(seed)
    layer_view(model).reset_head(num_classes)
    return model


def pool_features(f: torch.Tensor, family: str, tokens: str, maps: str, prefix: int) -> torch.Tensor:
    """One layer's output as (B, d): ViT tokens by `tokens`, CNN maps by `maps`.

    Args:
        f: ViT (B, N, D) with `prefix` class/register tokens first, or CNN (B, C, H, W).
        family: `vit`, `resnet` or `vgg`.
        tokens: `cls` (first token), `mean` (mean of the patch tokens), `flatten` (all tokens).
        maps: `flatten` or `gap` (global average pool).
        prefix: number of prefix tokens of the ViT.
    """
    if family == "vit":
        if tokens == "cls":
            if prefix < 1:
                raise ConfigError("token treatment 'cls' needs a ViT with a class token; use 'mean'")
            return f[:, 0]  # (B, D)
        if tokens == "mean":
            return f[:, prefix:].mean(1)  # (B, D)
        return f.flatten(1)  # (B, N * D)
    return f.mean((2, 3)) if maps == "gap" else f.flatten(1)  # (B, C) or (B, C * H * W)


def feature_label(family: str, cfg: CondenseConfig) -> str:
    """How layer outputs were turned into vectors, for the result's settings and the UI."""
    return f"tokens:{cfg.tokens}" if family == "vit" else f"maps:{cfg.maps}"
