"""The recipe options a person chooses, their defaults, and the step from options to a `Recipe`.

One place owns what a descendant recipe defaults to (placement "original", the ancestry's depth, the
ancestry's stem, width 1, random fill, 5 classes) and how options given now, options stored with a
learngene file and those defaults combine. The command line, the studio and the studies (probe, sizes,
advantages) all build their recipes through `recipe_for` / `recipe_for_spec`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from learngene.errors import ConfigError
from learngene.models._bounds import MAX_DEPTH

RECIPE_DEFAULTS: dict[str, Any] = {"placement": "original", "depth": None, "stem": "inherit", "num_classes": 5,
                                   "width": 1.0, "fill": "random"}
"""What each recipe option is when nobody chose it (`depth` None: the ancestry's depth)."""


def recipe_options(given: Mapping[str, Any] | None = None, stored: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The recipe options: each one `given` (None or absent: not given), else as `stored` with a learngene file
    (its `placement` unless "custom", its depth as the number of its slots), else the default.

    Raises `ConfigError` for a depth outside 1..`MAX_DEPTH`, before anything is built."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    unknown = sorted(set(given) - set(RECIPE_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown recipe option(s) {unknown}; known: {sorted(RECIPE_DEFAULTS)}")
    kept = dict(stored or {})
    from_file = {"placement": kept.get("placement") if kept.get("placement") != "custom" else None,
                 "depth": len(kept["slots"]) if isinstance(kept.get("slots"), list) else None,
                 "stem": kept.get("stem"), "width": kept.get("width"), "fill": kept.get("fill")}
    out = {**RECIPE_DEFAULTS, **{k: v for k, v in from_file.items() if v}, **given}
    depth = out["depth"]
    if depth is not None and not 1 <= depth <= MAX_DEPTH:
        raise ConfigError(f"--depth must be from 1 to {MAX_DEPTH} layers, got {depth}")
    return out


def recipe_for_spec(spec: Any, n_layers: int, layers: Sequence[int], io_shapes: list[tuple[int, int]] | None,
                    **options: Any) -> Any:
    """`Recipe.from_layers` for an ancestry known by its spec and layer count: `options` over the defaults,
    and the stages of a ResNet taken from its spec."""
    from learngene.inherit.recipe import Recipe
    from learngene.inherit.resize import stages_of

    opts = recipe_options(options)
    return Recipe.from_layers(spec, n_layers, list(layers), placement=opts["placement"], depth=opts["depth"],
                              stem=opts["stem"], num_classes=opts["num_classes"], width=opts["width"],
                              fill=opts["fill"], io_shapes=io_shapes, stages=stages_of(spec))


def recipe_for(ancestry: Any, layers: Sequence[int], view: Any = None, **options: Any) -> Any:
    """`recipe_for_spec` for a built ancestry model: its spec, and its layers and their shapes from `view`
    (its `layer_view`, made here when not given; a caller building many recipes passes it once made)."""
    from learngene.models import layer_view

    view = layer_view(ancestry) if view is None else view
    return recipe_for_spec(ancestry.lg_spec, len(view), layers, view.io_shapes(), **options)
