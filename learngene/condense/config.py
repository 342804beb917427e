"""`CondenseConfig`: every setting of a condensing run, typed and validated in one place.

The CLI maps its options onto these fields; unknown keys are refused; the resolved config is stored
in `SimilarityResult.settings` so every matrix can be reproduced.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from learngene._config import refuse_unknown
from learngene.errors import ConfigError

TokenTreatment = Literal["cls", "mean", "flatten"]
MapTreatment = Literal["flatten", "gap"]


PD_DEFAULTS: dict[str, dict[str, Any]] = {
    # Measured on `shapes`, one CPU thread beside another job (docs/results.md, "Condensing speed"):
    # a half-depth ViT learns slowly from scratch and needs small steps (at lr 2e-3, batch 64 it stayed
    # near chance: 11% on 16 classes after 10 epochs; lr 5e-4, batch 32: 16% after 4 epochs); the
    # ResNet-10 pseudo-descendant learns quickly at lr 2e-3, batch 64 (14% after 2 epochs, 21% after 3,
    # 38% after 4); 2 epochs keep the page's condense within 30 s in the browser beside a training job.
    # The epochs above are the first round of an adaptive budget: a pseudo-descendant that has not clearly
    # learned by then trains on, round after round, until it has or its cap runs out (a few minutes, not
    # tuned to any data set: on shapes the first round suffices and nothing changes).
    "vit": {"pd_epochs": 4, "pd_lr": 5e-4, "pd_batch_size": 32, "pd_max_epochs": 80, "pd_max_seconds": 240.0},
    "cnn": {"pd_epochs": 2, "pd_lr": 2e-3, "pd_batch_size": 64, "pd_max_epochs": 60, "pd_max_seconds": 240.0},
}
"""The pseudo-descendant's training defaults by family (ViT, or a CNN)."""


@dataclass
class CondenseConfig:
    """Settings of `condense` (defaults run every method in about a minute or two on 2 CPU cores).

    Attributes:
        images: held-out open-world images the similarity is measured on (CKA probes, Auto-LG's
            mean weights).
        probe_batch: CKA minibatch size (Nguyen et al. 2021 use 256...1024; >= 4).
        cka_of: what CKA compares: each layer's `output` (for a ViT the residual stream, which
            changes little from block to block) or its `update`, what the layer adds to its input
            (ViT block: output - input; ResNet block: its residual branch before the sum; a VGG unit
            has no residual path, so its update is its output).
        tokens: ViT token treatment for CKA: the class token, the mean of the patch tokens, or all
            tokens flattened.
        maps: CNN feature-map treatment for CKA: flattened, or global average pooled.
        holdout_per_class: open-world images per class kept out of training (probes come from them).
        train_per_class: cap on open-world training images per class (None = all the rest).
        pd_epochs / pd_lr / pd_batch_size: training of the pseudo-descendant (cka, auto); None = the
            family's default (`PD_DEFAULTS`, measured to learn clearly within ~20 s of one CPU thread).
        pd_max_epochs / pd_max_seconds: the adaptive budget of the pseudo-descendant: `pd_epochs` is one
            round (one learning-rate schedule); after a round that leaves it short of clearly learned
            (`learngene.train.budget.learning_state` of its held-out accuracy) it trains another, with a
            restarted schedule, until it has learned, stops improving for 3 rounds, or reaches these
            caps (None = the family's default). A `pd_epochs` given without either cap is a fixed budget.
        pd_seeds: pseudo-descendants trained with seeds seed, seed+1, ... (cka): the matrix is their
            mean, and each layer's score gets an interval and a count of how often it was selected.
        pd_depth: pseudo-descendant depth in integral layers (None = half the ancestry; see
            `learngene.condense.pseudo`).
        lam: λ of Auto-LG's matching loss (applied to the mean over the M·P layer pairs, so that
            it means the same for any depth; the plain sum drowned the cross-entropy).
        match_norm: `relative` divides each pair's squared distance by the mean square of the
            ancestry layer's output (scale-free across layers); `none` is the plain distance.
        meta_optimizer / meta_lr: optimizer and learning rate of the matching-weight networks w_mn
            (L2T-ww's meta step). With Adam, 1e-2 drives most w_mn to the same ceiling within the
            default budget; 1e-3 keeps them graded.
        inner_lr: step size of the functional SGD look-ahead step of the pseudo-descendant (0.1
            overshot on the ResNet pseudo-descendant and drove most w_mn to 0).
        tasks / n_way / k_shot / task_epochs / task_lr: Heur-LG's sequence of open-world tasks.
        grad_quantile: gradient threshold = this quantile of |grad| over all integral-layer weights
            in the first epoch (fixed afterwards).
        ft_epochs / ft_lr: fine-tuning of the ancestry copy for weight drift.
        batch_size: batch size of the ancestry copies (gradient, weights).
        device: `auto` = CUDA when present.
        flip: horizontal-flip augmentation when training (off for data whose mirror images are other
            classes; the CLI sets it from the data set, see --flip).
        seed: one seed for data sampling, initialisation and batch order.
    """

    images: int = 512
    probe_batch: int = 256
    tokens: TokenTreatment = "mean"
    maps: MapTreatment = "flatten"
    holdout_per_class: int = 64
    train_per_class: int | None = 300
    cka_of: Literal["output", "update"] = "output"
    pd_epochs: int | None = None
    pd_lr: float | None = None
    pd_batch_size: int | None = None
    pd_max_epochs: int | None = None
    pd_max_seconds: float | None = None
    pd_seeds: int = 1
    pd_depth: int | None = None
    lam: float = 1.0
    match_norm: Literal["relative", "none"] = "relative"
    meta_optimizer: Literal["adam", "sgd"] = "adam"
    meta_lr: float = 1e-3
    inner_lr: float = 0.01
    tasks: int = 8
    n_way: int = 5
    k_shot: int = 20
    task_epochs: int = 4
    task_lr: float = 1e-3
    grad_quantile: float = 0.5
    ft_epochs: int = 3
    ft_lr: float = 1e-3
    batch_size: int = 64
    device: Literal["auto", "cpu", "cuda"] = "auto"
    flip: bool = True
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CondenseConfig:
        refuse_unknown(cls, d, "condensing")
        return cls(**d).validated()

    def replace(self, **changes: Any) -> CondenseConfig:
        return CondenseConfig.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_family(self, family: str) -> CondenseConfig:
        """This config with the pseudo-descendant settings left at None filled in for `family`."""
        defaults = PD_DEFAULTS["vit" if family == "vit" else "cnn"]
        filled = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        if self.pd_epochs is not None and self.pd_max_epochs is None and self.pd_max_seconds is None:
            filled.update(pd_max_epochs=self.pd_epochs, pd_max_seconds=None)  # epochs given alone: fixed
        return self.replace(**filled)

    def validated(self) -> CondenseConfig:
        pos_int = ("images", "probe_batch", "holdout_per_class", "tasks", "n_way", "k_shot", "task_epochs",
                   "ft_epochs", "batch_size")
        for name in pos_int:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        for name in ("train_per_class", "pd_depth", "pd_epochs", "pd_batch_size", "pd_max_epochs"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name} must be a positive integer or None, got {v!r}")
        for name in ("pd_lr", "meta_lr", "inner_lr", "task_lr", "ft_lr"):
            v = getattr(self, name)
            if v is None and name == "pd_lr":
                continue
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{name} must be a positive number, got {v!r}")
        if self.pd_max_seconds is not None and (isinstance(self.pd_max_seconds, bool) or not isinstance(
                self.pd_max_seconds, (int, float)) or not math.isfinite(self.pd_max_seconds) or self.pd_max_seconds <= 0):
            raise ConfigError(f"pd_max_seconds must be a positive number of seconds or None, got {self.pd_max_seconds!r}")
        checks = [
            (isinstance(self.pd_seeds, int) and not isinstance(self.pd_seeds, bool) and 1 <= self.pd_seeds <= 20,
             f"pd_seeds must be from 1 to 20, got {self.pd_seeds!r}"),
            (self.probe_batch >= 4, "probe_batch must be at least 4 (the unbiased HSIC needs 4 samples)"),
            (self.images >= 4, "images must be at least 4"),
            (self.cka_of in ("output", "update"), "cka_of must be 'output' or 'update'"),
            (self.tokens in ("cls", "mean", "flatten"), "tokens must be 'cls', 'mean' or 'flatten'"),
            (self.maps in ("flatten", "gap"), "maps must be 'flatten' or 'gap'"),
            (isinstance(self.lam, (int, float)) and self.lam >= 0, "lam must be >= 0"),
            (self.match_norm in ("relative", "none"), "match_norm must be 'relative' or 'none'"),
            (self.meta_optimizer in ("adam", "sgd"), "meta_optimizer must be 'adam' or 'sgd'"),
            (0.0 < self.grad_quantile < 1.0, "grad_quantile must be between 0 and 1 (exclusive)"),
            (self.device in ("auto", "cpu", "cuda"), "device must be 'auto', 'cpu' or 'cuda'"),
            (isinstance(self.seed, int) and self.seed >= 0, "seed must be a non-negative integer"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        return self
