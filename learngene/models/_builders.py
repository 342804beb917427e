"""The one private builder behind every preset, plus the small surgery timm models need here.

Presets are timm classes built directly (timm's ``VisionTransformer``, ``ResNet`` and ``VGG``), so
every model in the project has timm's interface (``forward_features``, ``reset_classifier``, ...).
Two adjustments make them fit 32x32 inputs and the integral-layer view:

* ResNet stem: timm's 7x7 stride-2 conv + max-pool would shrink 32x32 to 8x8 before the first
  stage; ``_small_stem`` swaps in one 3x3 conv (stride 2 by default, 1 as in CIFAR ResNets) and no
  pool. Stride 2 is ~7x faster on a 2-core CPU (630 vs 93 img/s training) for the same weights.
* VGG units: timm keeps conv, BN and ReLU as flat siblings in ``features``; ``group_vgg_units``
  regroups each conv(+BN)+act into one ``ConvUnit`` so that an integral layer is one module that
  can be copied, replaced and re-initialised whole (Auto-LG's VGG learngene is made of such units).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Literal

import torch.nn as nn
from timm.layers import ClassifierHead
from timm.models.resnet import BasicBlock, ResNet
from timm.models.vgg import VGG
from timm.models.vision_transformer import VisionTransformer

from learngene.errors import ConfigError
from learngene.models._bounds import check_preset_size

Family = Literal["vit", "resnet", "vgg"]


class ConvUnit(nn.Module):
    """One VGG integral layer: conv -> BN (or identity) -> activation."""

    def __init__(self, conv: nn.Conv2d, norm: nn.Module | None, act: nn.Module):
        super().__init__()
        self.conv = conv
        self.bn = norm if norm is not None else nn.Identity()
        self.act = act

    def forward(self, x):  # (B, C_in, H, W) -> (B, C_out, H, W)
        return self.act(self.bn(self.conv(x)))


def group_vgg_units(model: VGG) -> VGG:
    """Regroup a timm VGG's flat ``features`` into ``conv{k}`` units and ``pool{k}`` layers, in place.

    Weights are moved, not copied, so a pretrained model keeps its values. Idempotent.
    """
    children = list(model.features.children())
    if any(isinstance(c, ConvUnit) for c in children):
        return model
    groups: OrderedDict[str, nn.Module] = OrderedDict()
    old_to_new: dict[int, str] = {}
    n_conv = n_pool = 0
    i = 0
    while i < len(children):
        layer = children[i]
        if isinstance(layer, nn.Conv2d):
            norm = children[i + 1] if isinstance(children[i + 1], nn.BatchNorm2d) else None
            j = i + (2 if norm is not None else 1)
            name = f"conv{n_conv}"
            groups[name] = ConvUnit(layer, norm, children[j])
            old_to_new.update({k: name for k in range(i, j + 1)})
            n_conv, i = n_conv + 1, j + 1
        else:
            name = f"pool{n_pool}" if isinstance(layer, nn.MaxPool2d) else f"extra{i}"
            n_pool += isinstance(layer, nn.MaxPool2d)
            groups[name] = layer
            old_to_new[i] = name
            i += 1
    model.features = nn.Sequential(groups)
    for info in getattr(model, "feature_info", []):  # keep timm's metadata pointing at real modules
        old = info.get("module", "")
        if old.startswith("features.") and old.split(".")[1].isdigit():
            info["module"] = f"features.{old_to_new[int(old.split('.')[1])]}"
    return model


def _small_stem(model: ResNet, width: int, stride: int) -> None:
    """Replace the stem by one 3x3 conv (+ timm's BN and ReLU) and drop the max-pool."""
    model.conv1 = nn.Conv2d(model.in_chans, width, kernel_size=3, stride=stride, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.bn1 = nn.BatchNorm2d(width)
    model.maxpool = nn.Identity()
    for k, info in enumerate(model.feature_info):  # the stem now downsamples by `stride`, not 4
        info["reduction"] = stride if k == 0 else info["reduction"] * stride // 4


def _build_vit(num_classes: int, img_size: int, kwargs: dict[str, Any]) -> nn.Module:
    return VisionTransformer(img_size=img_size, num_classes=num_classes, **kwargs)


def _build_resnet(num_classes: int, img_size: int, kwargs: dict[str, Any]) -> nn.Module:
    kwargs = dict(kwargs)
    channels = tuple(kwargs.pop("channels", (64, 128, 256, 512)))
    layers = tuple(kwargs.pop("layers", (2, 2, 2, 2)))
    stem_stride = kwargs.pop("stem_stride", 2)
    if stem_stride not in (1, 2):
        raise ConfigError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
    if len(channels) != 4 or len(layers) != 4:
        raise ConfigError(f"ResNet presets need 4 stages: got channels={channels}, layers={layers}")
    if channels[0] % 2:
        raise ConfigError(f"ResNet presets need an even first-stage width, got {channels[0]}")
    # A 'deep' stem of width c0/2 makes timm size the first stage for c0 input channels; the
    # stem itself is then replaced by the 32x32-friendly one.
    model = ResNet(
        block=BasicBlock, layers=layers, channels=channels, num_classes=num_classes,
        stem_type="deep", stem_width=max(1, channels[0] // 2), **kwargs,
    )
    _small_stem(model, channels[0], stem_stride)
    return model


def _build_vgg(num_classes: int, img_size: int, kwargs: dict[str, Any]) -> nn.Module:
    kwargs = dict(kwargs)
    cfg = list(kwargs.pop("cfg"))
    drop_rate = float(kwargs.pop("drop_rate", 0.0))
    # timm's VGG head is a 4096-wide 7x7 ConvMlp (~50-100M params); here: global pool + linear.
    # mlp_ratio shrinks the ConvMlp to 1 hidden channel so building it (then dropping it) is cheap.
    model = VGG(
        cfg=cfg, num_classes=num_classes, norm_layer=nn.BatchNorm2d, drop_rate=drop_rate,
        mlp_ratio=1 / 4096, **kwargs,
    )
    model.pre_logits = nn.Identity()
    model.head_hidden_size = model.num_features
    model.head = ClassifierHead(model.num_features, num_classes, pool_type="avg", drop_rate=drop_rate)
    return group_vgg_units(model)


_BUILDERS = {"vit": _build_vit, "resnet": _build_resnet, "vgg": _build_vgg}


def build(family: Family, num_classes: int, img_size: int, defaults: dict, overrides: dict) -> nn.Module:
    """Build a preset: ``defaults`` updated by the caller's ``overrides``.

    Raises:
        ConfigError: an override the architecture does not accept, or an inconsistent setting.
    """
    kwargs = {**defaults, **overrides}
    check_preset_size(family, num_classes, img_size, kwargs)  # before anything is allocated
    try:
        return _BUILDERS[family](num_classes, img_size, kwargs)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(
            f"cannot build a {family} preset with {overrides or 'the default settings'}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
