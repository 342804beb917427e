"""Training hyperparameters (torch-free, so the CLI can build its parser without importing torch)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from learngene._config import refuse_unknown
from learngene.errors import ConfigError


@dataclass
class TrainConfig:
    """Hyperparameters of one training run."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    optimizer: Literal["adamw", "sgd"] = "adamw"
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    augment: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # bf16 autocast, CUDA only
    compile: bool = False  # torch.compile, CUDA only
    seed: int = 0
    eval_every: int = 1
    eval_batch_size: int = 500

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        refuse_unknown(cls, d, "training")
        return cls(**d).validated()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validated(self) -> TrainConfig:
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.lr > 0 and math.isfinite(self.lr), "lr must be a positive number"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.optimizer in ("adamw", "sgd"), "optimizer must be 'adamw' or 'sgd'"),
            (self.schedule in ("cosine", "constant"), "schedule must be 'cosine' or 'constant'"),
            (self.device in ("auto", "cpu", "cuda"), "device must be 'auto', 'cpu' or 'cuda'"),
            (0 <= self.warmup_epochs < self.epochs or self.warmup_epochs == 0,
             "warmup_epochs must be smaller than epochs"),
            (self.eval_every >= 1, "eval_every must be at least 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        return self
