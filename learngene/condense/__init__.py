"""Condensing: similarity matrices between an ancestry and a pseudo-descendant, and layer selection.

Public API:

* `condense`, `CondenseConfig`, `plan_units`, `reselect`, `score_and_select`, `DEFAULT_RULE`
* `SimilarityResult` (JSON save/load)
* `layer_scores`, `select_layers`, `select_preset` (independent of the methods)
* `linear_cka`, `unbiased_hsic`, `MinibatchCKA`, `cka_between`
* `pseudo_descendant_spec`
"""

from learngene.condense.api import DEFAULT_RULE, condense, plan_units, reselect, score_and_select
from learngene.condense.cka import MinibatchCKA, linear_cka, unbiased_hsic
from learngene.condense.config import CondenseConfig
from learngene.condense.methods import cka_between
from learngene.condense.pseudo import pseudo_descendant_spec
from learngene.condense.result import METHODS, SimilarityResult
from learngene.condense.select import PRESETS, SCORE_RULES, layer_scores, select_layers, select_preset

__all__ = [
    "DEFAULT_RULE",
    "METHODS",
    "PRESETS",
    "SCORE_RULES",
    "CondenseConfig",
    "MinibatchCKA",
    "SimilarityResult",
    "cka_between",
    "condense",
    "layer_scores",
    "linear_cka",
    "plan_units",
    "pseudo_descendant_spec",
    "reselect",
    "score_and_select",
    "select_layers",
    "select_preset",
    "unbiased_hsic",
]
