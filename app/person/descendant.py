"""The descendant recipe as the studio holds it: settings in the state, a `Recipe` from the library.

Turns the chosen layers and recipe settings into a `learngene.inherit.Recipe`, into the slots
drawn by `figures.descendant_stack`, and into the sizes shown against the ancestry.
"""

from __future__ import annotations

from typing import Any

from app.person.resources import Ancestry
from learngene.inherit.options import RECIPE_DEFAULTS

WIDTHS = (0.25, 0.33, 0.5, 0.67, 0.75, 1.0, 1.5, 2.0)  # offered on the Learngene page (x the ancestry's width)
FILL_HELP = {
    "random": "new random layers",
    "repeat": "a copy of the nearest inherited layer of the same shape",
    "interpolate": "between the inherited layers around them, linearly (TLEG); outside them the nearest is repeated",
}
PLACEMENT_HELP = {
    "original": "each learngene layer keeps its depth; the gaps are random layers (Auto-LG)",
    "top": "random layers at the bottom, the learngene stacked on top (Heur-LG)",
    "bottom": "the learngene first, random layers above it",
}


def settings(raw: dict[str, Any] | None, anc: Ancestry) -> dict[str, Any]:
    """Recipe settings with defaults filled in and the depth clamped to something buildable."""
    out = {**RECIPE_DEFAULTS, **{k: v for k, v in (raw or {}).items() if k in RECIPE_DEFAULTS}}
    if out["placement"] not in PLACEMENT_HELP:
        out["placement"] = "original"
    if out["stem"] not in ("inherit", "random"):
        out["stem"] = "inherit"
    depth = out["depth"]
    out["depth"] = anc.n_layers if not isinstance(depth, int) or depth < 1 else depth
    out["num_classes"] = max(2, int(out["num_classes"] or 5))
    width = out["width"]
    out["width"] = float(width) if isinstance(width, (int, float)) and not isinstance(width, bool) and \
        0.125 <= width <= 4 else 1.0
    if out["fill"] not in FILL_HELP:
        out["fill"] = "random"
    return out


def default_layers(anc: Ancestry) -> list[int]:
    """The published Auto-LG choice for this family (`auto-paper`), else the last 3 layers."""
    from learngene.condense.select import select_preset

    try:
        return select_preset("auto-paper", anc.n_layers, anc.family, names=anc.names)
    except Exception:  # noqa: BLE001 - an unknown family or a 1-layer model: fall back
        return list(range(max(0, anc.n_layers - 3), anc.n_layers))


def min_depth(layers: list[int], placement: str) -> int:
    """The smallest depth a placement of `layers` allows."""
    if not layers:
        return 1
    return max(layers) + 1 if placement == "original" else len(layers)


def build(anc: Ancestry, layers: list[int], cfg: dict[str, Any]) -> Any:
    """The `Recipe` for these layers and settings (raises `ConfigError` when impossible)."""
    from learngene.inherit.options import recipe_for_spec
    from learngene.models import ModelSpec, layer_view

    spec = ModelSpec.from_dict(anc.card_dict.get("spec") or {})
    return recipe_for_spec(spec, anc.n_layers, layers, layer_view(anc.model).io_shapes(),
                           **{k: cfg[k] for k in RECIPE_DEFAULTS if k in cfg})


def stack_slots(recipe: Any, anc: Ancestry) -> list[dict[str, Any]]:
    """Bottom → top boxes for `figures.descendant_stack`: stem, every slot, the new head."""
    head = anc.head_in * recipe.num_classes + recipe.num_classes
    layer_params, stem_params, scale = list(anc.layer_params), anc.stem_params, 1.0
    if recipe.width != 1.0:  # another width: count the descendant's own layers
        from learngene.inherit.build import build_descendant
        from learngene.models import layer_view

        model = build_descendant(recipe, anc.model, seed=0)
        view = layer_view(model)
        per_slot = [sum(p.numel() for p in view.get(i).parameters()) for i in range(len(view))]
        head = sum(p.numel() for p in model.get_classifier().parameters())
        stem_params = sum(p.numel() for part in view.stem().values()
                          for p in (part.parameters() if hasattr(part, "parameters") else [part]))
        # the realised width (a ViT keeps whole heads: 0.5x of 3 heads is 2 heads, 0.67x)
        scale = view.io_shapes()[0][0] / max(1, layer_view(anc.model).io_shapes()[0][0])
    stem_kind = "stem" if recipe.stem == "inherit" else "random"
    out = [{"label": f"stem ({'inherited' if recipe.stem == 'inherit' else 'random'})", "kind": stem_kind,
            "params": stem_params, "scale": scale}]
    for p, slot in enumerate(recipe.slots):
        name = anc.names[slot.layer]
        label = {"inherit": f"{p}: {name}", "random": f"{p}: random (like {name})",
                 "repeat": f"{p}: repeat of {name}",
                 "interpolate": f"{p}: {anc.names[slot.layer]} → {anc.names[slot.layer_b or 0]}, t={slot.t or 0:.2f}"
                 }[slot.source]
        kind = "random" if slot.source == "random" else "inherit"
        params = per_slot[p] if recipe.width != 1.0 else layer_params[slot.layer]
        out.append({"label": label, "kind": kind, "params": params, "scale": scale})
    out.append({"label": f"new head · {recipe.num_classes} classes", "kind": "head", "params": head,
                "scale": scale})
    return out


def sizes(recipe: Any, anc: Ancestry, layers: list[int], slots: list[dict[str, Any]] | None = None) -> dict[str, int]:
    """Parameters of the learngene (its layers + stem), the ancestry, and the descendant (`slots`: the
    recipe's `stack_slots` when the caller has them already; at another width they build the model)."""
    lg = sum(anc.layer_params[i] for i in layers if 0 <= i < anc.n_layers)
    desc = sum(s["params"] or 0 for s in (slots if slots is not None else stack_slots(recipe, anc)))
    return {"learngene layers": lg, "learngene + stem": lg + anc.stem_params,
            "descendant": desc, "ancestry": anc.total_params}


def learngene_bytes(anc: Ancestry, layers: list[int], method: str = "manual", scores: list[float] | None = None) -> bytes:
    """The learngene file (chosen layers + stem of the ancestry) as bytes, for a download."""
    import tempfile
    from pathlib import Path

    from learngene.inherit.learngene_file import save_learngene

    if not layers:
        raise ValueError("choose at least one layer first")
    with tempfile.TemporaryDirectory() as tmp:
        path = save_learngene(anc.model, list(layers), Path(tmp) / "learngene.safetensors", method=method,
                              scores=scores, ancestry_sha256=str(anc.card_dict.get("sha256") or ""))
        return Path(path).read_bytes()


def import_learngene(name: str, data: bytes, anc: Ancestry) -> tuple[Any, Any]:
    """Save an uploaded learngene file and check it fits the ancestry; returns (path, LearngeneFile)."""
    import secrets
    import time

    from app.person import identity
    from app.shared import config
    from learngene.errors import CheckpointError, ConfigError
    from learngene.inherit.learngene_file import load_learngene

    if len(data) > config.max_upload_bytes():
        raise ConfigError(f"the learngene file is {len(data) / 2**20:.1f} MiB; uploads are at most "
                          f"{config.max_upload_bytes() / 2**20:.0f} MiB on this server")
    folder = identity.uploads_dir() / "learngenes"
    folder.mkdir(parents=True, exist_ok=True)
    # A name of its own (time + random), created exclusively: a failing upload removes only its own file.
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}-{_safe_name(name)}"
    with open(path, "xb") as f:
        f.write(data)
    try:
        lg = load_learngene(path)
        spec = anc.card_dict.get("spec") or {}
        if lg.spec.to_dict().get("arch") != spec.get("arch") or lg.n_layers != anc.n_layers:
            raise CheckpointError(f"this learngene comes from a {lg.spec.arch} with {lg.n_layers} layers, but the "
                                  f"current ancestry is a {spec.get('arch')} with {anc.n_layers} layers; choose "
                                  "the matching ancestry first")
        if list(lg.layer_names) != [anc.names[i] for i in lg.layers]:
            raise CheckpointError("the learngene's layer names do not match the current ancestry's layers")
    except Exception:
        path.unlink(missing_ok=True)
        raise
    return path, lg


def _safe_name(name: str) -> str:
    """An uploaded file name made safe and short enough to store (at most 80 characters before the suffix)."""
    import re

    stem = name[: -len(".safetensors")] if name.endswith(".safetensors") else name
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)[:80].strip("._") or "learngene"
    return stem + ".safetensors"
