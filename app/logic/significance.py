"""Layer significance with captum: how much the ancestry's prediction depends on each integral layer.

Two measures, both on a small batch of base-class images (CPU, seconds):

- **ablation** (`captum.attr.LayerFeatureAblation`, the whole layer as one feature): the drop in the
  log-probability of the true class when the layer's output is replaced. For a residual block whose
  input and output have the same shape (every ViT block, most ResNet blocks) the replacement is the
  block's *input*, i.e. the block is skipped; otherwise it is the batch mean of its output.
- **conductance** (`captum.attr.LayerConductance`): the mean over images of the summed *magnitude*
  of every output unit's conductance. The signed sum is useless for ranking residual blocks: by
  completeness it equals F(x) − F(baseline) for any layer that every path crosses, i.e. the same
  number for every block; it is returned too so the page can show this.

No Streamlit here; `app.person.resources` caches the results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Measure = Literal["ablation", "conductance"]
MEASURES: dict[str, str] = {
    "ablation": "ablation: drop in log p(true class) when the layer is skipped",
    "conductance": "conductance magnitude: mean Σ|conductance| of the layer's outputs",
}


@dataclass
class Significance:
    """Per-layer significance scores (one per integral layer)."""

    measure: str
    values: list[float]
    signed_sum: list[float] | None = None  # conductance only: Σ conductance (≈ constant over blocks)
    n_images: int = 0


class _LogProb(nn.Module):
    """Model → log-softmax, so attributions are in log-probability of the target class."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.model(x), dim=-1)


def _io(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Input and output of `layer` for the batch `x` (one forward pass with a hook)."""
    seen: dict[str, torch.Tensor] = {}

    def hook(_m, inputs, output):
        seen["in"], seen["out"] = inputs[0].detach(), output.detach()

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen["in"], seen["out"]


def layer_ablation(model: nn.Module, layers: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Mean drop of log p(y|x) when each layer is skipped (or mean-ablated where shapes differ)."""
    from captum.attr import LayerFeatureAblation

    f = _LogProb(model).eval()
    out = []
    for layer in layers:
        inp, act = _io(model, layer, x)
        baseline = inp if inp.shape == act.shape else act.mean(dim=0, keepdim=True).expand_as(act)
        mask = torch.zeros((1, *act.shape[1:]), dtype=torch.long)  # the whole layer is one feature
        attr = LayerFeatureAblation(f, layer).attribute(x, layer_baselines=baseline, target=y, layer_mask=mask)
        out.append(float(attr.reshape(len(x), -1)[:, 0].mean()))  # every unit holds the group's value
    return out


def layer_conductance(model: nn.Module, layers: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
                      n_steps: int = 8) -> tuple[list[float], list[float]]:
    """(mean Σ|conductance|, mean Σ conductance) of each layer's output, zero-image baseline."""
    from captum.attr import LayerConductance

    f = _LogProb(model).eval()
    mags, sums = [], []
    for layer in layers:
        cond = LayerConductance(f, layer).attribute(x, baselines=torch.zeros_like(x), target=y, n_steps=n_steps)
        if isinstance(cond, tuple):
            cond = cond[0]
        flat = cond.detach().reshape(len(x), -1)
        mags.append(float(flat.abs().sum(dim=1).mean()))
        sums.append(float(flat.sum(dim=1).mean()))
    return mags, sums


def layer_significance(model: nn.Module, layers: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor,
                       measure: Measure = "ablation") -> Significance:
    """Significance of every layer in `layers` for the float input batch `x` with labels `y`."""
    was_training = model.training
    model.eval()
    try:
        if measure == "ablation":
            return Significance(measure, layer_ablation(model, layers, x, y), n_images=len(x))
        if measure == "conductance":
            mags, sums = layer_conductance(model, layers, x, y)
            return Significance(measure, mags, signed_sum=sums, n_images=len(x))
        raise ValueError(f"unknown significance measure {measure!r}; choose one of {', '.join(MEASURES)}")
    finally:
        model.train(was_training)


def layer_modules(model: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    """The integral-layer modules of `model`, found by their (dotted) names."""
    return [model.get_submodule(name) for name in names]
