"""Building descendants from a recipe and an ancestry model or a learngene file.

The architecture comes from the ancestry's spec: a ViT descendant has `len(recipe.slots)` blocks; a
CNN descendant keeps the ancestry's layout and its slots map 1:1 onto the ancestry's layers (other
depths are refused). Both take `recipe.width` times the ancestry's width (`learngene.inherit.resize`).
Inherited slots receive exact copies of the ancestry layers at the ancestry's width, and consistent
weight selections of them at other widths; repeated and interpolated slots are made the same way
from copies / linear mixtures of inherited layers; the head is new.

Fairness: the whole descendant is first created under `torch.manual_seed(seed)` and inherited
weights are written over it afterwards; a random slot whose shape differs from the layer at its
position is drawn from a generator seeded by (seed, slot). So a learngene descendant and its
baseline built with the same seed have identical weights wherever both are random (the head, and
the random slots). The global random state is left untouched.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from learngene.errors import CheckpointError, ConfigError
from learngene.inherit.learngene_file import LearngeneFile, stem_state
from learngene.inherit.recipe import Recipe, Slot
from learngene.inherit.resize import fit_module, fit_tensor, interpolated, scaled_overrides
from learngene.models import ModelSpec, create_model, family_of, layer_view

Source = nn.Module | LearngeneFile


def _same_arch(a: ModelSpec, b: ModelSpec) -> bool:
    return a.arch == b.arch and a.img_size == b.img_size and dict(a.overrides) == dict(b.overrides)


def _source_info(source: Source) -> tuple[ModelSpec, str, int, list[tuple[int, int]]]:
    """(spec, family, number of layers, io shapes) of the ancestry behind `source`."""
    if isinstance(source, LearngeneFile):
        return source.spec, source.family, source.n_layers, [tuple(s) for s in source.io_shapes]
    spec = getattr(source, "lg_spec", None)
    if spec is None:
        raise ConfigError("the ancestry model has no `lg_spec`; build or load it with learngene.models "
                          "(create_model / load_checkpoint)")
    view = layer_view(source)
    return spec, family_of(source), len(view), view.io_shapes()


def descendant_spec(recipe: Recipe, family: str) -> ModelSpec:
    """The architecture of a recipe's descendant (ViT: depth = slots; CNN: the ancestry's layout)."""
    anc = recipe.ancestry
    overrides = dict(anc.overrides)
    if family == "vit":
        overrides["depth"] = recipe.depth
    elif recipe.layout is not None:
        if family != "resnet":
            raise ConfigError(f"a {family} descendant keeps the ancestry's depth (other depths: ViT and ResNet)")
        overrides["layers"] = tuple(recipe.layout)
    elif recipe.depth != recipe.ancestry_layers:
        raise ConfigError(
            f"a {family} descendant keeps the ancestry's {recipe.ancestry_layers} layers (its slots map 1:1 "
            f"onto the ancestry's layers), but the recipe has {recipe.depth} slots; use depth "
            f"{recipe.ancestry_layers} (other depths: ViT ancestries, and ResNets through their stages)")
    overrides.update(scaled_overrides(anc, recipe.width))
    return ModelSpec(anc.arch, recipe.num_classes, anc.img_size, overrides)


def _fmt_width(w: int, family: str) -> str:
    return f"width {w}" if family == "vit" else f"{w} channels"


def check_shapes(recipe: Recipe, io: list[tuple[int, int]], family: str) -> None:
    """Refuse a recipe whose slots do not chain: name the slot and the widths that clash."""
    if not io:
        return
    prev = io[0][0]  # the stem's output = what ancestry layer 0 takes
    for p, slot in enumerate(recipe.slots):
        need, out = io[slot.layer]
        if slot.source == "interpolate" and tuple(io[slot.layer_b]) != tuple(io[slot.layer]):
            raise ConfigError(f"slot {p} interpolates ancestry layers {slot.layer} and {slot.layer_b}, whose shapes "
                              f"differ ({tuple(io[slot.layer])} vs {tuple(io[slot.layer_b])})")
        what = {"inherit": "takes ancestry layer", "repeat": "repeats ancestry layer",
                "interpolate": "interpolates from ancestry layer"}.get(slot.source,
                                                                       "is a random layer shaped like ancestry layer")
        if need != prev:
            src = f"slot {p - 1} outputs {prev}" if p else f"the stem outputs {prev}"
            raise ConfigError(f"slot {p} {what} {slot.layer} with input {_fmt_width(need, family)}, but {src}; "
                              "change that slot or use placement 'original'")
        prev = out
    if prev != io[-1][1]:
        raise ConfigError(f"the last slot ({recipe.depth - 1}) outputs {_fmt_width(prev, family)}, but the head "
                          f"takes {io[-1][1]} (the output of ancestry layer {len(io) - 1})")


def _layer_state(source: Source, layer: int) -> dict[str, torch.Tensor]:
    if isinstance(source, LearngeneFile):
        return source.layer_state(layer)
    return {k: v.detach() for k, v in layer_view(source).get(layer).state_dict().items()}


def _inherited_module(source: Source, slot: Slot, template: nn.Module, same_width: bool) -> nn.Module:
    """The module of an inherit / repeat / interpolate slot, from the ancestry model or the learngene file.

    At the ancestry's width an inherited or repeated layer is an exact copy; at another width (or for
    an interpolation) `template`, the descendant's own layer, receives the mapped weights.
    """
    if slot.source in ("inherit", "repeat") and same_width and not isinstance(source, LearngeneFile):
        return copy.deepcopy(layer_view(source).get(slot.layer))
    state = _layer_state(source, slot.layer)
    if slot.source == "interpolate":
        state = interpolated(state, _layer_state(source, slot.layer_b), slot.t)
    module = copy.deepcopy(template)
    if same_width:
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"learngene layer {slot.layer} does not fit the descendant's layer: {exc}") from exc
    else:
        fit_module(module, state, f"layer {slot.layer}")
    return module


def _load_stem(model: nn.Module, state: dict[str, Any], same_width: bool = True) -> None:
    parts = layer_view(model).stem()
    missing = sorted(set(parts) - set(state))
    if missing:
        raise CheckpointError(f"the learngene has no stem weights for {missing}")
    with torch.no_grad():
        for name, part in parts.items():
            s = state[name]
            if not same_width:  # consistent weight selection into a narrower / wider stem
                if isinstance(part, nn.Module):
                    fit_module(part, s, f"stem {name}")
                else:
                    fit_tensor(part, s, name)
            elif isinstance(part, nn.Module):
                part.load_state_dict(s, strict=True)
            elif tuple(part.shape) != tuple(s.shape):
                raise CheckpointError(f"stem {name} has shape {tuple(s.shape)} in the learngene, "
                                      f"{tuple(part.shape)} in the descendant")
            else:
                part.copy_(s)


def _slot_seed(seed: int, slot: int) -> int:
    return (seed * 1_000_003 + 7919 * (slot + 1)) % (2**63 - 1)


def build_descendant(recipe: Recipe, source: Source, seed: int = 0) -> nn.Module:
    """Build the descendant described by `recipe`, inheriting from an ancestry model or a learngene.

    Args:
        recipe: which layers to inherit, where, and the stem/head choices.
        source: the ancestry model (with `lg_spec`) or a loaded `LearngeneFile`.
        seed: seeds every random part; a recipe and its `baseline()` built with one seed share them.

    Returns:
        The descendant (CPU, train mode) with `lg_spec` and `lg_recipe` attributes.
    """
    spec, family, n_layers, io = _source_info(source)
    if not _same_arch(spec, recipe.ancestry):
        raise ConfigError(f"the recipe was made for ancestry {recipe.ancestry.arch} {recipe.ancestry.overrides}, "
                          f"but the source is {spec.arch} {spec.overrides}")
    if n_layers != recipe.ancestry_layers:
        raise ConfigError(f"the recipe expects an ancestry with {recipe.ancestry_layers} layers; the source has {n_layers}")
    dspec = descendant_spec(recipe, family)
    check_shapes(recipe, io, family)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model(dspec.arch, dspec.num_classes, img_size=dspec.img_size, **dspec.overrides)
        view = layer_view(model)
        same_width = recipe.width == 1.0
        for p, slot in enumerate(recipe.slots):
            # ViT blocks share one shape; a restaged ResNet's block p is shaped for its slot by construction
            tidx = p if family == "vit" or recipe.layout is not None else slot.layer
            if slot.source != "random":
                view.set(p, _inherited_module(source, slot, view.get(tidx), same_width))
            elif tidx != p:
                torch.manual_seed(_slot_seed(seed, p))
                view.set(p, view.new_layer(tidx))
    if recipe.stem == "inherit":
        _load_stem(model, source.stem if isinstance(source, LearngeneFile) else stem_state(source),
                   same_width=recipe.width == 1.0)
    model.requires_grad_(True)
    model.train()
    model.lg_recipe = recipe
    return model


def inherited_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, parameters that came from the ancestry) of a descendant built by
    `build_descendant`: its inherited, repeated and interpolated layers and an inherited stem (at the
    descendant's width: a narrower descendant inherits a selection, a wider one a leading block, and
    here the whole resized layer counts)."""
    recipe: Recipe = model.lg_recipe
    view = layer_view(model)
    taken = sum(p.numel() for i, s in enumerate(recipe.slots) if s.source != "random" for p in view.get(i).parameters())
    if recipe.stem == "inherit":
        for part in view.stem().values():
            taken += sum(p.numel() for p in part.parameters()) if isinstance(part, nn.Module) else part.numel()
    return sum(p.numel() for p in model.parameters()), taken
