"""`create_model`: one entry point for project presets and timm architectures."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import timm
import torch
import torch.nn as nn
from timm.models import get_arch_name, is_model, is_model_in_modules

from learngene.errors import CheckpointError, ConfigError
from learngene.models._bounds import MAX_TOKENS, check_parameter_count
from learngene.models._builders import group_vgg_units
from learngene.models._families import family_of
from learngene.models._presets import PRESETS, preset_fn
from learngene.models._spec import ModelSpec

# timm modules whose models are plain VisionTransformer / ResNet / VGG classes.
_TIMM_MODULES = {"vision_transformer": "vit", "deit": "vit", "resnet": "resnet", "vgg": "vgg"}
_HUB_HOST = "huggingface.co"


def _unknown_arch(arch: str, why: str) -> ConfigError:
    presets = ", ".join(sorted(PRESETS))
    return ConfigError(
        f"unknown architecture {arch!r} ({why}). Use a project preset ({presets}) or any timm "
        f"vit_*, deit_*, resnet* or vgg* name (e.g. vit_tiny_patch16_224, resnet18, vgg11_bn)"
    )


def _timm_family(arch: str) -> str:
    """The family of a timm model name (a pretrained tag like ``.augreg_in21k`` is allowed)."""
    if not is_model(arch):
        raise _unknown_arch(arch, "not a preset and not a timm model")
    base = get_arch_name(arch)
    for module, family in _TIMM_MODULES.items():
        if is_model_in_modules(base, [module]):
            return family
    raise _unknown_arch(arch, "a timm model, but not a plain ViT, ResNet or VGG")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face Hub opens within ``timeout`` seconds.

    Runs in a thread because name resolution ignores socket timeouts. With a proxy configured the
    probe cannot tell, so it answers True and leaves the decision to huggingface_hub. With
    huggingface_hub's offline switch set (HF_HUB_OFFLINE=1) it answers False without trying.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((_HUB_HOST, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


@contextlib.contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """Put huggingface_hub in offline mode (cache only, no retries) for the duration, if asked."""
    try:
        from huggingface_hub import constants
    except ImportError:  # timm then falls back to plain URL downloads
        yield
        return
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = before or offline
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _create_timm(arch: str, num_classes: int, img_size: int, pretrained: bool, overrides: dict) -> nn.Module:
    family = _timm_family(arch)
    kwargs: dict[str, Any] = {"num_classes": num_classes, **overrides}
    if family == "vit":
        kwargs.setdefault("img_size", img_size)
    _check_timm_size(arch, kwargs)
    if not pretrained:
        model = timm.create_model(arch, pretrained=False, **kwargs)
    else:
        model = _create_timm_pretrained(arch, kwargs)
    return group_vgg_units(model) if family == "vgg" else model


def _check_timm_size(arch: str, kwargs: dict[str, Any]) -> None:
    """Build `arch` on the meta device (no memory) and refuse it when it is too large to build for real."""
    try:
        with torch.device("meta"):
            model = timm.create_model(arch, pretrained=False, **kwargs)
    except (TypeError, ValueError, AssertionError, RuntimeError):
        return  # the real build reports the problem in its own words
    patches = getattr(getattr(model, "patch_embed", None), "num_patches", None)
    if isinstance(patches, int) and patches > MAX_TOKENS:
        raise ConfigError(f"{arch} at this image size makes {patches} patches, more than {MAX_TOKENS}; "
                          "use a smaller image size or a larger patch size")
    check_parameter_count(sum(p.numel() for p in model.parameters()), {"arch": arch, **kwargs})


def _create_timm_pretrained(arch: str, kwargs: dict[str, Any]) -> nn.Module:
    online = _hub_reachable()
    try:
        # Offline, the real download path still runs but reads only the local cache, so it fails in
        # a second instead of retrying for ~45 s (and still works when the weights are cached).
        with _hub_offline(not online):
            return timm.create_model(arch, pretrained=True, **kwargs)
    except (TypeError, AssertionError) as exc:  # raised while constructing, before any download
        raise ConfigError(f"cannot build {arch} with {kwargs}: {exc}") from exc
    except Exception as exc:  # hub, HTTP and file errors vary across versions
        reason = "no network" if not online else f"{type(exc).__name__}: {str(exc)[:300]}"
        raise CheckpointError(
            f"could not download pretrained weights for {arch}: {reason}; copy the weights file "
            f"(.safetensors/.pth) here and load it (`python -m learngene models layers FILE --arch {arch}`, "
            f"or upload it in the app), or train one without them (`python -m learngene accumulate --arch {arch}`)"
        ) from exc


def _check_model(model: nn.Module, spec: ModelSpec) -> None:
    """Refuse models the rest of the project cannot handle, with the reason."""
    family_of(model)
    if getattr(model, "head_dist", None) is not None:
        raise ConfigError(f"{spec.arch} is a distilled DeiT with two heads; use a deit_*_patch16_224 model")
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if patch is not None and (spec.img_size % patch[0] or spec.img_size % patch[1]):
        raise ConfigError(
            f"img_size {spec.img_size} is not a multiple of patch_size {tuple(patch)}; pick a patch "
            f"size that divides it (e.g. patch_size=4 or 8 for 32x32 images)"
        )


def create_model(
    arch: str,
    num_classes: int,
    *,
    img_size: int = 32,
    pretrained: bool = False,
    **overrides: Any,
) -> nn.Module:
    """Build an ancestry/descendant architecture; the result carries ``model.lg_spec``.

    Args:
        arch: A preset from `PRESETS` (e.g. "lg_vit_tiny") or a timm vit_/deit_/resnet/vgg name.
        num_classes: Classifier outputs.
        img_size: Input resolution (ViTs size the position embedding by it).
        pretrained: Load timm's published weights (downloads; timm names only).
        **overrides: Builder arguments, e.g. ``depth=4`` or ``patch_size=8, embed_dim=96`` for ViTs.

    Raises:
        ConfigError: unknown arch or bad override. CheckpointError: pretrained weights unavailable.
    """
    spec = ModelSpec(arch=arch, num_classes=num_classes, img_size=img_size, overrides=dict(overrides))
    fn = preset_fn(arch)
    if fn is not None and pretrained:
        raise ConfigError(
            f"preset {arch} has no published pretrained weights; train one "
            f"(`python -m learngene accumulate --arch {arch}`) or load a checkpoint of it "
            f"(`python -m learngene models layers FILE.safetensors`)"
        )
    try:
        if fn is not None:
            model = fn(num_classes, img_size=img_size, **overrides)
        else:
            model = _create_timm(arch, num_classes, img_size, pretrained, overrides)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        if isinstance(exc, (ConfigError, CheckpointError)):
            raise
        raise ConfigError(f"cannot build {arch} with {overrides or 'default settings'}: {exc}") from exc
    _check_model(model, spec)
    model.lg_spec = spec
    return model


def create_from_spec(spec: ModelSpec, pretrained: bool = False) -> nn.Module:
    """`create_model` from a `ModelSpec` (e.g. the one in a model card)."""
    return create_model(
        spec.arch, spec.num_classes, img_size=spec.img_size, pretrained=pretrained, **spec.overrides
    )
