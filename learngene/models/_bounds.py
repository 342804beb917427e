"""Bounds on every size a model spec names, checked before anything is built.

A model card, an uploaded card, a `--set KEY=VALUE` or a learngene file's metadata names sizes (classes,
image size, depth, width, heads, patch size, MLP ratio, channels). Each is checked against a sane bound,
and the parameters the whole model would have are estimated from them, all before a single tensor is
allocated: a card saying `num_classes: 20000000` or `depth: 5000` gets a one-line `ConfigError` instead of
gigabytes of memory and a long wait. Loading weights then checks the spec against the weights' own shapes
(see `learngene.models.checkpoint`).
"""

from __future__ import annotations

import math
import operator
from typing import Any

from learngene.errors import ConfigError

MAX_NUM_CLASSES = 100_000  # ImageNet-21k has 21,841 classes
MAX_IMAGE_SIZE = 1_024  # side length in pixels; the data options have the same bound
MAX_DEPTH = 64  # transformer blocks, ResNet blocks per stage, VGG units
MAX_WIDTH = 4_096  # embedding dimension, channels of a stage or unit
MAX_HEADS = 128
MAX_MLP_RATIO = 16.0
MAX_TOKENS = 4_096  # patches of a ViT input: (img_size / patch_size)^2
MAX_PARAMETERS = 400_000_000  # about 1.6 GB of float32 weights; ViT-L/16 has 304M
MAX_LIST = 64  # entries of a list-valued setting (channels, layers, cfg)

# setting -> (lowest, highest, what it counts); integers only
_INT_BOUNDS: dict[str, tuple[int, int, str]] = {
    "depth": (1, MAX_DEPTH, "blocks"),
    "embed_dim": (1, MAX_WIDTH, "channels"),
    "num_heads": (1, MAX_HEADS, "heads"),
    "patch_size": (1, MAX_IMAGE_SIZE, "pixels"),
    "in_chans": (1, 16, "channels"),
    "reg_tokens": (0, 64, "tokens"),
    "num_reg_tokens": (0, 64, "tokens"),
    "stem_width": (1, MAX_WIDTH, "channels"),
    "base_width": (1, MAX_WIDTH, "channels"),
    "cardinality": (1, MAX_WIDTH, "groups"),
}
_FRACTIONS = ("drop_rate", "drop_path_rate", "attn_drop_rate", "proj_drop_rate", "pos_drop_rate",
              "patch_drop_rate")


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_count(name: str, value: Any, low: int, high: int, what: str = "") -> int:
    """`value` as an int when it is a whole number from `low` to `high`, else a ConfigError naming `name`."""
    n = _whole(value)
    if n is None or not low <= n <= high:
        unit = f" {what}" if what else ""
        raise ConfigError(f"{name} must be a whole number from {low} to {high}{unit}, got {value!r}")
    return n


def _check_list(name: str, value: Any, high: int, allow: tuple = ()) -> list:
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_LIST:
        raise ConfigError(f"{name} must be a list of 1 to {MAX_LIST} whole numbers, got {value!r}"[:300])
    for v in value:
        if v not in allow:
            check_count(f"each entry of {name}", v, 1, high)
    return list(value)


def check_overrides(overrides: dict[str, Any], img_size: int) -> None:
    """Refuse an architecture setting outside its bound (see the module doc), naming it and the bound."""
    for key, value in overrides.items():
        if key in _INT_BOUNDS:
            low, high, what = _INT_BOUNDS[key]
            check_count(key, value, low, min(high, img_size) if key == "patch_size" else high, what)
        elif key == "mlp_ratio":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_MLP_RATIO:
                raise ConfigError(f"mlp_ratio must be a number above 0 and at most {MAX_MLP_RATIO:g}, got {value!r}")
        elif key in _FRACTIONS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(f"{key} must be a fraction from 0 to below 1, got {value!r}")
        elif key == "channels":
            _check_list(key, value, MAX_WIDTH)
        elif key == "layers":
            _check_list(key, value, MAX_DEPTH)
        elif key == "cfg":
            _check_list(key, value, MAX_WIDTH, allow=("M",))
        else:
            _check_any(key, value)


def _check_any(key: str, value: Any) -> None:
    """Settings without a bound of their own: finite numbers, short lists."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    n = _whole(value)
    if n is not None and abs(n) > 1_000_000:
        raise ConfigError(f"{key} = {n} is out of any sensible range for an architecture setting")
    if isinstance(value, (list, tuple, dict)) and len(value) > MAX_LIST:
        raise ConfigError(f"{key} has {len(value)} entries, more than {MAX_LIST}")


def _vit_parameters(num_classes: int, img_size: int, kw: dict[str, Any]) -> int:
    dim, depth, ratio, patch = kw["embed_dim"], kw["depth"], float(kw.get("mlp_ratio", 4.0)), kw["patch_size"]
    tokens = (img_size // patch) ** 2
    if tokens > MAX_TOKENS:
        raise ConfigError(f"img_size {img_size} with patch_size {patch} makes {tokens} patches, more than "
                          f"{MAX_TOKENS}; use a larger patch_size or a smaller image size")
    if tokens < 1:
        raise ConfigError(f"patch_size {patch} is larger than img_size {img_size}")
    block = 4 * dim * dim + int(2 * ratio * dim * dim) + 13 * dim
    return depth * block + 3 * patch * patch * dim + (tokens + 1) * dim + num_classes * dim


def _resnet_parameters(num_classes: int, kw: dict[str, Any]) -> int:
    channels, layers = list(kw.get("channels", (64, 128, 256, 512))), list(kw.get("layers", (2, 2, 2, 2)))
    total, c_in = 27 * channels[0], channels[0]
    for c, n in zip(channels, layers, strict=False):
        total += 9 * c_in * c + 9 * c * c + c_in * c + (n - 1) * 18 * c * c
        c_in = c
    return total + num_classes * c_in


def _vgg_parameters(num_classes: int, kw: dict[str, Any]) -> int:
    total, c_in = 0, 3
    for c in kw.get("cfg", []):
        if c != "M":
            total, c_in = total + 9 * c_in * c, c
    return total + num_classes * c_in


def check_preset_size(family: str, num_classes: int, img_size: int, kwargs: dict[str, Any]) -> None:
    """Refuse a preset whose estimated parameter count passes `MAX_PARAMETERS` (before building it)."""
    if family == "vit":
        n = _vit_parameters(num_classes, img_size, kwargs)
    elif family == "resnet":
        n = _resnet_parameters(num_classes, kwargs)
    else:
        n = _vgg_parameters(num_classes, kwargs)
    check_parameter_count(n, kwargs)


def check_parameter_count(n: int, settings: Any) -> None:
    if n > MAX_PARAMETERS:
        raise ConfigError(f"this architecture would have about {n / 1e6:,.0f}M parameters, more than the "
                          f"{MAX_PARAMETERS / 1e6:,.0f}M limit ({_short(settings)}); choose smaller sizes")


def _short(settings: Any) -> str:
    text = str(settings)
    return text if len(text) <= 160 else text[:159] + "…"
