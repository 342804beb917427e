"""Training hyperparameters (torch-free, so the CLI can build its parser without importing torch)."""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import asdict, dataclass
from typing import Any, Literal

from learngene._config import refuse_unknown
from learngene.errors import ConfigError

# Upper bounds of the counts a user types (CLI `--help` names them). They catch typos such as an extra
# few zeros with a one-line message, before any memory is allocated or hours are spent.
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536  # training and evaluation batches
MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds; derive_seed mixes non-negative ones


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
    augment: bool = True  # random shift, and horizontal flip when `flip`
    flip: bool = True  # off for data where a mirror image is another class (letters, digits)
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
        """Return self, or raise a one-line ConfigError naming the first bad setting."""
        for name, low, high in (("epochs", 1, MAX_EPOCHS), ("batch_size", 1, MAX_BATCH_SIZE),
                                ("eval_batch_size", 1, MAX_BATCH_SIZE), ("eval_every", 1, MAX_EPOCHS),
                                ("warmup_epochs", 0, MAX_EPOCHS), ("seed", 0, MAX_SEED)):
            _check_int(name, getattr(self, name), low, high)
        for name in ("lr", "weight_decay", "label_smoothing"):
            _check_number(name, getattr(self, name))
        checks = [
            (self.lr > 0, f"lr must be a positive finite number, got {self.lr!r}"),
            (self.weight_decay >= 0, f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}"),
            (0 <= self.label_smoothing < 1,
             f"label_smoothing must be a finite number in [0, 1), e.g. 0.1; got {self.label_smoothing!r}"),
            (self.optimizer in ("adamw", "sgd"), "optimizer must be 'adamw' or 'sgd'"),
            (self.schedule in ("cosine", "constant"), "schedule must be 'cosine' or 'constant'"),
            (self.device in ("auto", "cpu", "cuda"), "device must be 'auto', 'cpu' or 'cuda'"),
            (self.warmup_epochs < self.epochs or self.warmup_epochs == 0,
             "warmup_epochs must be smaller than epochs"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        return self


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")


def _check_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
