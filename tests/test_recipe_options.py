"""One owner of the recipe defaults: options given now, over a learngene file's stored recipe, over the defaults."""

from __future__ import annotations

import argparse

import pytest

from learngene.errors import ConfigError
from learngene.inherit.options import RECIPE_DEFAULTS, recipe_for, recipe_options


def test_defaults_when_nothing_is_given():
    assert recipe_options() == RECIPE_DEFAULTS
    assert recipe_options({"placement": None, "depth": None}) == RECIPE_DEFAULTS


def test_given_beats_stored_beats_default():
    stored = {"placement": "top", "slots": [{}, {}, {}], "stem": "random", "width": 0.5, "fill": "repeat"}
    got = recipe_options({"stem": "inherit"}, stored)
    assert got == {"placement": "top", "depth": 3, "stem": "inherit", "num_classes": 5, "width": 0.5,
                   "fill": "repeat"}
    assert recipe_options({}, {"placement": "custom"})["placement"] == "original"  # a custom order is not a placement


def test_bad_options_are_refused_before_anything_is_built():
    with pytest.raises(ConfigError, match="depth must be from 1"):
        recipe_options({"depth": 0})
    with pytest.raises(ConfigError, match="unknown recipe option"):
        recipe_options({"placment": "top"})


def test_the_cli_and_the_studio_use_the_library_defaults():
    from app.person import descendant
    from learngene.cli.inherit import recipe_kwargs

    assert descendant.RECIPE_DEFAULTS is RECIPE_DEFAULTS
    args = argparse.Namespace(placement=None, depth=None, stem=None, width=None, fill=None)
    assert recipe_kwargs(args) == {k: v for k, v in RECIPE_DEFAULTS.items() if k != "num_classes"}
    assert recipe_kwargs(args, {"placement": "bottom"})["placement"] == "bottom"


def test_recipe_for_a_built_ancestry():
    from learngene.models import create_model

    anc = create_model("lg_vit_tiny", num_classes=10, img_size=32)
    recipe = recipe_for(anc, [0, 2], num_classes=3, depth=4)
    assert recipe.num_classes == 3 and len(recipe.slots) == 4
    assert [s.source for s in recipe.slots][:3] == ["inherit", "random", "inherit"]
