"""FLOPs of training and evaluating a model, counted by `torch.utils.flop_counter.FlopCounterMode`.

The counter adds up the FLOPs of the matrix products, convolutions and attention that torch dispatches
(a multiply-add is 2 FLOPs); element-wise work (activations, norms, the optimizer's update) is not
counted, as in the usual accounting of papers. A training step is counted as run: forward, loss and
backward; an evaluation as a forward pass under `no_grad`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs torch dispatches while `fn()` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _input(model: nn.Module, img_size: int, batch: int) -> torch.Tensor:
    p = next(model.parameters())
    return torch.zeros(batch, 3, img_size, img_size, device=p.device, dtype=p.dtype)


def flops_per_image(model: nn.Module, img_size: int, batch: int = 2) -> dict[str, int]:
    """{"train": forward + backward FLOPs of one image, "forward": forward FLOPs of one image}, counted
    on a copy of `model` (so neither its weights, its gradients nor its norm statistics change) with a
    batch of `batch` images (at least 2: a batch norm trains on more than one)."""
    work = copy.deepcopy(model)
    work.train()
    x = _input(work, img_size, batch)
    n_classes = None

    def step() -> None:
        nonlocal n_classes
        logits = work(x)
        n_classes = logits.shape[-1]
        F.cross_entropy(logits.float(), torch.zeros(batch, dtype=torch.long, device=x.device)).backward()

    train = count_flops(step)
    work.eval()
    with torch.no_grad():
        forward = count_flops(lambda: work(x))
    return {"train": -(-train // batch), "forward": -(-forward // batch)}


def training_cost(epochs: int, n_train: int, n_test: int, evals: int, fpi: dict[str, int],
                  seconds: float | None, derived: bool = False) -> dict[str, Any]:
    """A training's cost record (an ancestry card's `extra["train_cost"]`): epochs, images seen, FLOPs of
    the training steps and the evaluations on `n_test` images, FLOPs per image, seconds."""
    return {"epochs": epochs, "images_seen": epochs * n_train,
            "flops": float(epochs * n_train * fpi["train"] + evals * n_test * fpi["forward"]),
            "flops_per_image": fpi, "seconds": seconds, "derived_from_card": derived}
