"""Project presets: small ancestry architectures for 32x32 inputs that train fast on a 2-core CPU.

Each preset is a registered function (as timm's ``@register_model``) that only sets arguments and
calls the one private builder. Descriptions quote training img/s at batch 64, 32x32, on a 2-core CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn as nn

from learngene.models._builders import build

PresetFn = Callable[..., nn.Module]

PRESETS: dict[str, str] = {}
"""Preset name -> one-line description (the public, read-only view of the registry)."""

_PRESET_FNS: dict[str, PresetFn] = {}


def register_preset(description: str) -> Callable[[PresetFn], PresetFn]:
    """Register ``fn(num_classes, img_size=32, **overrides) -> nn.Module`` under its own name."""

    def wrap(fn: PresetFn) -> PresetFn:
        if fn.__name__ in _PRESET_FNS:
            raise ValueError(f"preset {fn.__name__!r} registered twice")
        _PRESET_FNS[fn.__name__] = fn
        PRESETS[fn.__name__] = description
        return fn

    return wrap


def preset_fn(name: str) -> PresetFn | None:
    """The registered builder function of preset ``name``, or None."""
    return _PRESET_FNS.get(name)


_VIT = dict(mlp_ratio=4.0, class_token=True, global_pool="token")


@register_preset("ViT, patch 8, dim 96, depth 8, 3 heads (~900 img/s); the default ancestry")
def lg_vit_tiny(num_classes: int, img_size: int = 32, **overrides: Any) -> nn.Module:
    """The default ancestry: a ViT whose 32x32 input is 4x4 = 16 patches + a class token."""
    args = dict(_VIT, patch_size=8, embed_dim=96, depth=8, num_heads=3)
    return build("vit", num_classes, img_size, args, overrides)


@register_preset("ViT, patch 4, dim 96, depth 8, 3 heads (~210 img/s)")
def lg_vit_small(num_classes: int, img_size: int = 32, **overrides: Any) -> nn.Module:
    """Finer patches (64 + 1 tokens): slower, usually more accurate than `lg_vit_tiny`."""
    args = dict(_VIT, patch_size=4, embed_dim=96, depth=8, num_heads=3)
    return build("vit", num_classes, img_size, args, overrides)


@register_preset("ResNet-18 layout at widths 32-256, one 3x3 stride-2 stem conv, no max-pool (~630 img/s)")
def lg_resnet_mini(num_classes: int, img_size: int = 32, **overrides: Any) -> nn.Module:
    """A quarter-width ResNet-18 with a light stem: stages at 16, 8, 4, 2 pixels (``stem_stride=1``: 32..4)."""
    args = dict(layers=(2, 2, 2, 2), channels=(32, 64, 128, 256), stem_stride=2)
    return build("resnet", num_classes, img_size, args, overrides)


@register_preset("VGG-11 layout, 8 conv+BN+ReLU units at widths 32-256, global-pool head (~660 img/s)")
def lg_vgg_mini(num_classes: int, img_size: int = 32, **overrides: Any) -> nn.Module:
    """VGG-11's 8 conv units at quarter/half width with 4 max-pools (32 -> 2 pixels)."""
    args = dict(cfg=[32, "M", 64, "M", 128, 128, "M", 256, 256, "M", 256, 256])
    return build("vgg", num_classes, img_size, args, overrides)
