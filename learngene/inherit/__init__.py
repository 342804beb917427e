"""Inheriting: descendant recipes, the learngene file, and building descendants (docs/design.md).

Public API:

* `Recipe`, `Slot`, `PLACEMENTS`: which ancestry layers a descendant inherits and where.
* `build_descendant`: a descendant from a recipe and an ancestry model or a `LearngeneFile`.
* `save_learngene`, `load_learngene`, `LearngeneFile`, `size_report`, `SizeReport`: the learngene file.
* `load_ancestry`, `default_ancestry_path`, `layer_choice`, `LayerChoice`: where a learngene comes from.
"""

from learngene.inherit.build import build_descendant, check_shapes, descendant_spec
from learngene.inherit.choose import LayerChoice, default_ancestry_path, layer_choice, load_ancestry
from learngene.inherit.learngene_file import (
    LearngeneFile,
    SizeReport,
    learngene_from_model,
    load_learngene,
    save_learngene,
    size_report,
    write_learngene,
)
from learngene.inherit.recipe import PLACEMENTS, Recipe, Slot, normalize_layers

__all__ = [
    "PLACEMENTS",
    "LayerChoice",
    "LearngeneFile",
    "Recipe",
    "SizeReport",
    "Slot",
    "build_descendant",
    "check_shapes",
    "default_ancestry_path",
    "descendant_spec",
    "layer_choice",
    "learngene_from_model",
    "load_ancestry",
    "load_learngene",
    "normalize_layers",
    "save_learngene",
    "size_report",
    "write_learngene",
]
