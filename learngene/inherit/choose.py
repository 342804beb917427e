"""Where a learngene comes from: the ancestry checkpoint and the choice of its layers.

Shared by the `inherit`, `train` and `sweep` commands and by the UI: find the (shipped) ancestry,
and turn `--layers`, `--preset` or `--similarity` into ancestry layer indices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from learngene.errors import CheckpointError, ConfigError
from learngene.models import ModelCard, family_of, layer_view, load_checkpoint, shipped_checkpoints

DEFAULT_ANCESTRY = "lg_vit_tiny.safetensors"


def default_ancestry_path() -> Path:
    """The shipped `assets/lg_vit_tiny.safetensors`; `CheckpointError` when it is missing."""
    shipped = shipped_checkpoints()
    for path in shipped:
        if path.name == DEFAULT_ANCESTRY:
            return path
    have = ", ".join(p.name for p in shipped) or "none"
    raise CheckpointError(
        f"the default ancestry assets/{DEFAULT_ANCESTRY} is missing (shipped checkpoints: {have}); pass "
        f"--ancestry PATH, or train one with `python -m learngene accumulate --out assets/{DEFAULT_ANCESTRY}`")


def load_ancestry(path: str | os.PathLike | None = None) -> tuple[nn.Module, ModelCard, Path]:
    """Load the ancestry at `path` (default: the shipped one) with its model card."""
    path = Path(path) if path else default_ancestry_path()
    model, card = load_checkpoint(path)
    model.eval()
    return model, card, path


def parse_int_list(text: str, what: str = "--layers") -> list[int]:
    """'0,1,-1' -> [0, 1, -1]; `ConfigError` naming `what` on anything else."""
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise ConfigError(f"{what} must be a comma-separated list of integers, e.g. 0,1,6,7; got {text!r}") from None
    if not values:
        raise ConfigError(f"{what} is empty; give at least one value, e.g. 0,1,6,7")
    return values


@dataclass
class LayerChoice:
    """Chosen ancestry layers and how they were chosen."""

    layers: list[int]
    method: str
    scores: list[float] | None = None
    source: str = ""


def layer_choice(
    ancestry: nn.Module, *, layers: str | list[int] | None = None, preset: str | None = None,
    similarity: str | os.PathLike | None = None, ancestry_sha256: str = "",
) -> LayerChoice:
    """Resolve exactly one of `layers`, `preset` or `similarity` (a condense result JSON) to indices."""
    from learngene.inherit.recipe import normalize_layers

    given = [n for n, v in (("--layers", layers), ("--preset", preset), ("--similarity", similarity)) if v]
    if len(given) > 1:
        raise ConfigError(f"choose the learngene layers one way only; got {' and '.join(given)}")
    view = layer_view(ancestry)
    n = len(view)
    if similarity:
        from learngene.condense.result import SimilarityResult

        res = SimilarityResult.load(similarity)
        if len(res.row_names) != n:
            raise ConfigError(f"{similarity} scores {len(res.row_names)} ancestry layers, but this ancestry has {n}; "
                              "was it computed for another model?")
        sha = str(res.ancestry.get("sha256") or "")
        if sha and ancestry_sha256 and sha != ancestry_sha256:
            raise ConfigError(f"{similarity} was computed for ancestry sha256 {sha[:12]}..., but this ancestry is "
                              f"{ancestry_sha256[:12]}...; recompute it or pass the matching --ancestry")
        return LayerChoice(normalize_layers(res.selected, n), res.method, list(res.scores), str(similarity))
    if layers:
        values = parse_int_list(layers) if isinstance(layers, str) else list(layers)
        return LayerChoice(normalize_layers(values, n), "manual", None, "--layers")
    from learngene.condense.select import select_preset

    name = preset or "auto-paper"
    chosen = select_preset(name, n, family_of(ancestry), names=view.names)
    return LayerChoice(normalize_layers(chosen, n), f"preset:{name}", None, name)
