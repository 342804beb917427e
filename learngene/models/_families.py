"""The three supported families behind `LayerView`: ViT blocks, ResNet blocks/stages, VGG units."""

from __future__ import annotations

from typing import Literal

import torch.nn as nn
from timm.models.resnet import ResNet
from timm.models.vgg import VGG
from timm.models.vision_transformer import VisionTransformer, init_weights_vit_timm

from learngene.errors import ConfigError
from learngene.models._builders import ConvUnit, Family
from learngene.models._view import LayerView

Granularity = Literal["auto", "block", "stage"]
GRANULARITIES: tuple[str, ...] = ("auto", "block", "stage")


def family_of(model: nn.Module) -> Family:
    """The architecture family of a model built by `create_model` (or a plain timm model).

    Raises:
        ConfigError: the model is not a timm VisionTransformer, ResNet or VGG.
    """
    if isinstance(model, VisionTransformer):
        return "vit"
    if isinstance(model, ResNet):
        return "resnet"
    if isinstance(model, VGG):
        return "vgg"
    raise ConfigError(
        f"unsupported model class {type(model).__name__}: integral layers are defined for timm "
        f"VisionTransformer (vit_*, deit_*), ResNet (resnet*) and VGG (vgg*) models"
    )


def _first(layer: nn.Module, kind: type) -> nn.Module:
    found = [m for m in layer.modules() if isinstance(m, kind)]
    if not found:
        raise ConfigError(f"layer {type(layer).__name__} has no {kind.__name__}; cannot read its shape")
    return found[0]


def _last(layer: nn.Module, kind: type) -> nn.Module:
    found = [m for m in layer.modules() if isinstance(m, kind)]
    if not found:
        raise ConfigError(f"layer {type(layer).__name__} has no {kind.__name__}; cannot read its shape")
    return found[-1]


class ViTView(LayerView):
    """Transformer blocks ``blocks.{i}``; outputs are tokens (B, 1 + N_patches, D)."""

    family = "vit"

    def __init__(self, model: VisionTransformer):
        super().__init__(model, [f"blocks.{i}" for i in range(len(model.blocks))])

    def stem(self) -> dict[str, nn.Module | nn.Parameter]:
        """patch_embed, pos_embed, cls_token (and reg_token / norm_pre where used) and the final norm."""
        m = self.model
        parts = {
            "patch_embed": m.patch_embed,
            "pos_embed": m.pos_embed,
            "cls_token": m.cls_token,
            "reg_token": getattr(m, "reg_token", None),
            "norm_pre": None if isinstance(m.norm_pre, nn.Identity) else m.norm_pre,
            "norm": m.norm,
        }
        return {k: v for k, v in parts.items() if v is not None}

    def _io_shape(self, layer: nn.Module) -> tuple[int, int]:
        # A block maps (B, N, D) -> (B, N, D); qkv reads D first, mlp.fc2 writes D last.
        return _first(layer, nn.Linear).in_features, _last(layer, nn.Linear).out_features

    def _reinit(self, layer: nn.Module) -> None:
        # timm's default ('') ViT init: trunc-normal(0.02) Linear weights, zero biases, fresh norms.
        for name, module in layer.named_modules():
            init_weights_vit_timm(module, name)


def _reinit_cnn(layer: nn.Module) -> None:
    """timm's CNN init: Kaiming-normal (fan_out) convs, BN weight 1 / bias 0 with fresh statistics."""
    for module in layer.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.Linear)):
            module.reset_parameters()
    for module in layer.modules():
        if hasattr(module, "zero_init_last"):  # ResNet blocks start as identity, as timm builds them
            module.zero_init_last()


class ResNetView(LayerView):
    """Residual blocks ``layer{s}.{b}`` (granularity block) or stages ``layer{s}`` (stage)."""

    family = "resnet"

    def __init__(self, model: ResNet, granularity: Literal["block", "stage"]):
        stages = [n for n, _ in model.named_children() if n.startswith("layer") and n[5:].isdigit()]
        if granularity == "stage":
            names = stages
        else:
            names = [f"{s}.{b}" for s in stages for b, _ in model.get_submodule(s).named_children()]
        super().__init__(model, names)
        self.granularity = granularity

    def stem(self) -> dict[str, nn.Module | nn.Parameter]:
        """conv1, bn1, act1 and maxpool (an identity in the presets)."""
        return {k: getattr(self.model, k) for k in ("conv1", "bn1", "act1", "maxpool")}

    def _io_shape(self, layer: nn.Module) -> tuple[int, int]:
        # The last conv is conv2/conv3 or the shortcut's projection: both write the block's width.
        return _first(layer, nn.Conv2d).in_channels, _last(layer, nn.Conv2d).out_channels

    def _reinit(self, layer: nn.Module) -> None:
        _reinit_cnn(layer)

    def _branch_end(self, layer: nn.Module) -> nn.Module | None:
        # timm's BasicBlock / Bottleneck end their residual branch with bn2 / bn3 (before the sum).
        end = getattr(layer, "bn3", None) or getattr(layer, "bn2", None)
        if end is None:
            raise ConfigError(f"{type(layer).__name__} has no bn2/bn3 ending its residual branch; its update is "
                              "defined for residual blocks only (use granularity 'block', or compare outputs)")
        return end


class VGGView(LayerView):
    """Conv units ``features.conv{k}`` (conv + BN + ReLU as one module); max-pools are not layers."""

    family = "vgg"

    def __init__(self, model: VGG):
        names = [f"features.{n}" for n, m in model.features.named_children() if isinstance(m, ConvUnit)]
        if not names:
            raise ConfigError(
                "this VGG has flat conv/BN/ReLU layers; build it with learngene.models.create_model, "
                "which groups each conv+BN+ReLU into one unit"
            )
        super().__init__(model, names)

    def stem(self) -> dict[str, nn.Module | nn.Parameter]:
        """Empty: VGG has no stem apart from its first conv unit (layer 0)."""
        return {}

    def _io_shape(self, layer: nn.Module) -> tuple[int, int]:
        return _first(layer, nn.Conv2d).in_channels, _last(layer, nn.Conv2d).out_channels

    def _branch_end(self, layer: nn.Module) -> nn.Module | None:
        return layer  # conv + BN + ReLU has no residual path

    def _reinit(self, layer: nn.Module) -> None:
        _reinit_cnn(layer)


def layer_view(model: nn.Module, granularity: Granularity = "auto") -> LayerView:
    """The integral-layer view of ``model``.

    Args:
        model: A model from `create_model` (or a timm ViT/ResNet; VGGs must come from `create_model`).
        granularity: "block" (ViT blocks, ResNet residual blocks, VGG conv units), "stage" (ResNet
            stages only) or "auto" (= "block").

    Raises:
        ConfigError: unsupported model, or a granularity the family does not have.
    """
    if granularity not in GRANULARITIES:
        raise ConfigError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    family = family_of(model)
    if granularity == "stage" and family != "resnet":
        raise ConfigError(f"granularity 'stage' exists for ResNets only; a {family} has blocks ('block')")
    if family == "vit":
        return ViTView(model)
    if family == "resnet":
        return ResNetView(model, "stage" if granularity == "stage" else "block")
    return VGGView(model)
