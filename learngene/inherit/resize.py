"""Descendants of another width: the scaled architecture, and ancestry weights mapped into it.

Width is a multiple of the ancestry's: a ViT keeps its head size and gets `round(D * width / d_head)`
heads (so the embedding width stays a whole number of heads); a ResNet or VGG multiplies the channels
of every stage (ResNet stages stay even). Inherited weights are mapped by *consistent weight
selection* (Xu et al., "Initializing models with larger ones", 2023): every tensor takes the leading
indices of each of its dimensions, the same indices everywhere (embedding channels in the stem, the
residual stream, every norm; CNN channels in and out), so a narrower descendant is a consistent
sub-network of the ancestry. Attention keeps whole heads: q, k and v of the first heads (the fused
qkv matrix is mapped per q/k/v part). A wider descendant holds the ancestry's weights in the leading
block of each tensor and keeps timm's initialisation elsewhere (the least tested case: the new
channels start random, so the inherited function is not preserved exactly).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import torch
from torch import nn

from learngene.errors import ConfigError
from learngene.models import ModelSpec, create_model

_FUSED_QKV = ("attn.qkv.weight", "attn.qkv.bias")  # (3 * D, D) / (3 * D,): q, k and v stacked


@functools.lru_cache(maxsize=16)
def _reference(spec_json: str) -> dict[str, Any]:
    """The ancestry architecture's widths, read off a small instance of it (depth 1 for a ViT)."""
    d = json.loads(spec_json)
    spec = ModelSpec.from_dict(d)
    overrides = dict(spec.overrides)
    from learngene.models import family_of

    probe_overrides = {**overrides, "depth": 1} if "vit" in spec.arch or "deit" in spec.arch else overrides
    try:
        model = create_model(spec.arch, spec.num_classes, img_size=spec.img_size, **probe_overrides)
    except ConfigError:
        model = create_model(spec.arch, spec.num_classes, img_size=spec.img_size, **overrides)
    family = family_of(model)
    if family == "vit":
        attn = model.blocks[0].attn
        return {"family": family, "embed_dim": int(model.embed_dim), "num_heads": int(attn.num_heads)}
    if family == "resnet":
        return {"family": family, "channels": [int(getattr(model, f"layer{i}")[0].conv1.out_channels)
                                               for i in range(1, 5)],
                "stages": [len(getattr(model, f"layer{i}")) for i in range(1, 5)]}
    cfg: list[Any] = []
    for child in model.features.children():
        conv = getattr(child, "conv", None)
        if isinstance(conv, nn.Conv2d):
            cfg.append(int(conv.out_channels))
        elif isinstance(child, nn.MaxPool2d):
            cfg.append("M")
    return {"family": family, "cfg": cfg}


def stages_of(spec: ModelSpec) -> list[int] | None:
    """A ResNet ancestry's blocks per stage (what lets its descendants take another depth), else None."""
    if "vit" in spec.arch or "deit" in spec.arch or "vgg" in spec.arch:
        return None
    ref = _reference(json.dumps(spec.to_dict(), sort_keys=True))
    return list(ref["stages"]) if ref["family"] == "resnet" else None


def scaled_overrides(spec: ModelSpec, width: float) -> dict[str, Any]:
    """The architecture overrides of a descendant `width` times as wide as the ancestry `spec`."""
    if width == 1.0:
        return {}
    ref = _reference(json.dumps(spec.to_dict(), sort_keys=True))
    if ref["family"] == "vit":
        d_head = ref["embed_dim"] // ref["num_heads"]
        heads = max(1, round(ref["num_heads"] * width))
        return {"embed_dim": heads * d_head, "num_heads": heads}
    if ref["family"] == "resnet":
        return {"channels": tuple(max(2, 2 * round(c * width / 2)) for c in ref["channels"])}
    return {"cfg": [c if c == "M" else max(1, round(c * width)) for c in ref["cfg"]]}


def describe_width(spec: ModelSpec, width: float) -> str:
    """e.g. "embedding 48 (2 heads) instead of 96 (3 heads)" or "channels (16, 32, 64, 128) instead of ..."."""
    ref = _reference(json.dumps(spec.to_dict(), sort_keys=True))
    new = scaled_overrides(spec, width)
    if not new:
        return "the ancestry's width"
    if ref["family"] == "vit":
        return (f"embedding {new['embed_dim']} ({new['num_heads']} heads) instead of {ref['embed_dim']} "
                f"({ref['num_heads']} heads)")
    key = "channels" if ref["family"] == "resnet" else "cfg"
    old = tuple(ref[key]) if key == "channels" else [c for c in ref[key] if c != "M"]
    now = tuple(new[key]) if key == "channels" else [c for c in new[key] if c != "M"]
    return f"channels {list(now)} instead of {list(old)}"


def fit_tensor(dst: torch.Tensor, src: torch.Tensor, key: str = "") -> None:
    """Copy `src` into `dst` in place over their common leading block (consistent weight selection).

    Narrower: `dst` takes the leading indices of every dimension of `src`. Wider: `src` fills the
    leading block of `dst`, the rest is left as it is. The fused qkv tensor of timm's attention is
    mapped per q/k/v part, so whole heads are kept.
    """
    if dst.ndim != src.ndim:
        raise ConfigError(f"{key or 'a tensor'} has {src.ndim} dimensions in the ancestry and {dst.ndim} in the "
                          "descendant; it cannot be mapped")
    if dst.ndim == 0:
        dst.copy_(src)
        return
    if key.endswith(_FUSED_QKV):
        if dst.shape[0] % 3 or src.shape[0] % 3:
            raise ConfigError(f"{key}: a fused qkv tensor needs a first dimension divisible by 3")
        fit_tensor(dst.view(3, dst.shape[0] // 3, *dst.shape[1:]), src.reshape(3, src.shape[0] // 3, *src.shape[1:]))
        return
    common = tuple(slice(0, min(a, b)) for a, b in zip(dst.shape, src.shape, strict=True))
    dst[common].copy_(src[common])


@torch.no_grad()
def fit_module(module: nn.Module, state: dict[str, torch.Tensor], what: str = "layer") -> None:
    """Write an ancestry layer's `state` into `module` (a descendant layer of any width), in place."""
    own = module.state_dict(keep_vars=True)
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise ConfigError(f"the ancestry {what} and the descendant's differ in structure (missing {missing[:4]}, "
                          f"unexpected {extra[:4]}); only the width can differ")
    for key, value in own.items():
        fit_tensor(value.data if isinstance(value, nn.Parameter) else value, state[key].to(value.dtype), key)


def interpolated(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], t: float) -> dict[str, torch.Tensor]:
    """TLEG's linear expansion: ``a + t (b - a)`` for every floating tensor of two layers of one shape
    (integer buffers such as BatchNorm's step count are taken from `a`)."""
    if set(a) != set(b) or any(a[k].shape != b[k].shape for k in a):
        raise ConfigError("layers can be interpolated only when they have the same structure and shapes")
    return {k: a[k] + t * (b[k] - a[k]) if a[k].is_floating_point() else a[k].clone() for k in a}
