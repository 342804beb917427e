"""The settings every few-shot comparison shares, one name per concept.

`TaskSettings` is what tasks are drawn (N-way, K-shot, how many, test images per class, the draw's
seed); `TaskTraining` adds how each model trains on them (epochs, learning rate, weight decay, batch,
seed). The probe (`ProbeConfig`), the sweep (`SweepConfig`), the size study (`SizeStudy`) and the
advantages study (`Study`) are these plus their own fields, so a setting has one name and one check
wherever it appears. Settings written under older names (`n_tasks`, `wd`, `k_main`) still load:
`renamed` maps them.

`batched_wanted` is the one rule for the "--batched auto/on/off" choice of every study.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from learngene.errors import ConfigError

OLD_NAMES = {"n_tasks": "tasks", "wd": "weight_decay", "k_main": "k_shot"}
"""Older names of settings, as studies, journals and summaries written before the rename hold them."""

BATCHED_CHOICES = ("auto", "on", "off")


def renamed(settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` with older names (`OLD_NAMES`) mapped to today's; refuses both names with two values."""
    out = dict(settings)
    for old, new in OLD_NAMES.items():
        if old not in out:
            continue
        value = out.pop(old)
        if new in out and out[new] != value:
            raise ConfigError(f"{old} (the older name of {new}) is {value!r} but {new} is {out[new]!r}; give one")
        out[new] = value
    return out


def _whole(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


@dataclass(kw_only=True)
class TaskSettings:
    """Which few-shot tasks a comparison is run on.

    Attributes:
        n_way: classes per task.
        k_shot: training images per class (a sweep's default K; a study's main cell).
        tasks: how many tasks.
        test_per_class: test images per class (0 or None: every held-back image).
        task_seed: the seed of the task draw (task i is the same for every model).
    """

    n_way: int = 5
    k_shot: int = 10
    tasks: int = 10
    test_per_class: int | None = 100
    task_seed: int = 0

    def check_tasks(self) -> None:
        """Raise `ConfigError` for a task setting out of range."""
        checks = [(_whole(self.n_way, 2), f"--n-way must be at least 2, got {self.n_way!r}"),
                  (_whole(self.k_shot, 1), f"--k-shot must be at least 1, got {self.k_shot!r}"),
                  (_whole(self.tasks, 1), f"--tasks must be at least 1, got {self.tasks!r}"),
                  (self.test_per_class is None or _whole(self.test_per_class, 0),
                   f"--test-per-class must be >= 0, got {self.test_per_class!r}"),
                  (_whole(self.task_seed, 0), f"--task-seed must be >= 0, got {self.task_seed!r}")]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


@dataclass(kw_only=True)
class TaskTraining(TaskSettings):
    """`TaskSettings` and how each model trains on a task.

    Attributes:
        epochs / lr / weight_decay / batch_size: the training of every model (AdamW, as `TrainConfig`).
        seed: model initialisation and data order.
    """

    epochs: int = 40
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 10
    seed: int = 0

    def check_training(self) -> None:
        """`check_tasks`, and raise `ConfigError` for a training setting out of range."""
        self.check_tasks()
        checks = [(_whole(self.epochs, 1), f"--epochs must be at least 1, got {self.epochs!r}"),
                  (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0,
                   f"--lr must be a positive number, got {self.lr!r}"),
                  (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay)
                   and self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay!r}"),
                  (_whole(self.batch_size, 1), f"--batch-size must be at least 1, got {self.batch_size!r}"),
                  (_whole(self.seed, 0), f"--seed must be >= 0, got {self.seed!r}")]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)


def check_batched(choice: str) -> None:
    if choice not in BATCHED_CHOICES:
        raise ConfigError(f"batched must be auto, on or off, got {choice!r}")


def batched_wanted(choice: str, device_type: str) -> bool:
    """Whether models should train as vmap-batched groups: "on" always, "auto" on a GPU (on a CPU one
    after another is as fast or faster), "off" never. Whether the models allow it is the caller's check
    (`learngene.descend.batched.can_batch`)."""
    check_batched(choice)
    return choice == "on" or (choice == "auto" and device_type == "cuda")
