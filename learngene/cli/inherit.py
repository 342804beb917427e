"""`python -m learngene inherit`: cut a learngene out of an ancestry and show the descendant recipe.

Also home of the source/recipe options shared with `train` and `sweep`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from learngene.cli._common import add_run_dir, command_line, output_dir, output_file, source_constant
from learngene.errors import ConfigError
from learngene.reporting import Reporter

MAX_DEPTH = source_constant("models._bounds", "MAX_DEPTH")
MAX_NUM_CLASSES = source_constant("models._bounds", "MAX_NUM_CLASSES")

NAME = "inherit"
HELP = "save the chosen ancestry layers as a learngene file and print the descendant recipe"


def add_layer_choice(p: argparse.ArgumentParser) -> None:
    """--ancestry and one of --layers / --preset / --similarity."""
    g = p.add_argument_group("learngene source")
    g.add_argument("--ancestry", default=None,
                   help="ancestry checkpoint (.safetensors with its .json card); default: the shipped "
                        "assets/lg_vit_tiny.safetensors")
    how = g.add_mutually_exclusive_group()
    how.add_argument("--layers", default=None, help="ancestry layer indices, e.g. 0,1,6,7 (negative = from the end)")
    how.add_argument("--preset", default=None,
                     help="heur (last 3), auto-paper (Auto-LG's published choice), front-K, middle-K, last-K "
                          "(default when nothing is given: auto-paper)")
    how.add_argument("--similarity", default=None, help="similarity.json written by `condense`: use its selected layers")


def add_recipe_options(p: argparse.ArgumentParser, from_file: bool = False) -> None:
    """--placement, --depth, --stem (defaults None so a learngene file's own recipe can fill them)."""
    g = p.add_argument_group("descendant recipe")
    note = " (default: the learngene file's recipe, else %s)" if from_file else " (default: %s)"
    g.add_argument("--placement", choices=["original", "top", "bottom"], default=None,
                   help="original: learngene layers keep their index; top: random layers below the learngene "
                        "(Heur-LG); bottom: learngene first" + note % "original")
    g.add_argument("--depth", type=int, default=None,
                   help="descendant depth in layers (ViT: blocks; ResNet: blocks shared out over its 4 stages; "
                        f"VGG descendants keep the ancestry's depth; from 1 to {MAX_DEPTH})"
                        + note % "the ancestry's depth")
    g.add_argument("--stem", choices=["inherit", "random"], default=None,
                   help="inherit the ancestry stem or start it random" + note % "inherit")
    g.add_argument("--width", type=float, default=None,
                   help="descendant width as a multiple of the ancestry's, 0.125 to 4 (ViT: whole heads; CNN: "
                        "channels of every stage); inherited weights are consistent selections of the ancestry's "
                        "(wider: the ancestry's weights in the leading block, the least tested case)" + note % "1")
    g.add_argument("--fill", choices=["random", "repeat", "interpolate"], default=None,
                   help="what the non-inherited layers become: random, a repeat of the nearest inherited layer of "
                        "their shape, or a linear interpolation between the inherited layers around them (TLEG)"
                        + note % "random")


def recipe_kwargs(args: argparse.Namespace, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """placement/depth/stem/width/fill from the arguments, falling back to a stored recipe, then the defaults
    (`learngene.inherit.options`)."""
    from learngene.inherit.options import recipe_options

    given = {k: getattr(args, k, None) for k in ("placement", "depth", "stem", "width", "fill")}
    out = recipe_options(given, stored)
    out.pop("num_classes")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_layer_choice(p)
    add_recipe_options(p)
    p.add_argument("--n-way", type=int, default=5,
                   help=f"classes of the descendant's head (default: 5, from 2 to {MAX_NUM_CLASSES})")
    p.add_argument("--out", default=None,
                   help="learngene file to write (.safetensors); default: <run>/outputs/learngene.safetensors "
                        "in a job, else ./learngene.safetensors")
    p.add_argument("--force", action="store_true",
                   help="use an ancestry whose held-out base-class accuracy is at chance (refused without it)")
    add_run_dir(p)


def run(args: argparse.Namespace) -> int:
    from learngene.data.binding import card_split_record
    from learngene.descend.quality import gate_ancestry
    from learngene.inherit.build import build_descendant, inherited_parameters
    from learngene.inherit.choose import layer_choice, load_ancestry
    from learngene.inherit.learngene_file import load_learngene, save_learngene, size_report
    from learngene.inherit.options import recipe_for
    from learngene.inherit.resize import describe_width
    from learngene.models import layer_view

    if not 2 <= args.n_way <= MAX_NUM_CLASSES:
        raise ConfigError(f"--n-way must be from 2 to {MAX_NUM_CLASSES}, got {args.n_way}")
    if args.out is not None:  # checked before any work; the default lands in the run folder or here
        if Path(args.out).suffix != ".safetensors":
            raise ConfigError(f"the learngene file must end in .safetensors, got {Path(args.out).name!r}")
        output_file(args.out, "--out")
    if args.run_dir:
        output_dir(args.run_dir, "--run-dir")
    ancestry, card, anc_path = load_ancestry(args.ancestry)
    quality = gate_ancestry(card, anc_path, force=args.force)  # recorded in the file, for `train --learngene`
    choice = layer_choice(ancestry, layers=args.layers, preset=args.preset, similarity=args.similarity,
                           ancestry_sha256=card.sha256)
    view = layer_view(ancestry)
    recipe = recipe_for(ancestry, choice.layers, view, num_classes=args.n_way, **recipe_kwargs(args))
    descendant = build_descendant(recipe, ancestry, seed=0)  # refuses a recipe whose shapes do not line up
    total, taken = inherited_parameters(descendant)
    ancestry_params = sum(p.numel() for p in ancestry.parameters())
    with Reporter(args.run_dir, total=1, desc="inherit", quiet=True) as rep:
        out = Path(args.out or (rep.outputs_dir / "learngene.safetensors" if rep.outputs_dir else "learngene.safetensors"))
        if out.suffix != ".safetensors":
            raise ConfigError(f"the learngene file must end in .safetensors, got {out.name!r}")
        path = save_learngene(ancestry, choice.layers, out, method=choice.method, scores=choice.scores,
                              ancestry_sha256=card.sha256,
                              extra={"ancestry_path": str(anc_path), "recipe": recipe.to_dict(),
                                     "choice": choice.source, "command": command_line(),
                                     "dataset": card.dataset, "split": card_split_record(card),
                                     "ancestry_quality": quality})
        report = size_report(load_learngene(path))
        rep.metric({"kind": "result", "learngene": str(path), "layers": choice.layers, "method": choice.method,
                    "size": report.to_dict(), "recipe": recipe.to_dict()})
        rep.advance(1)
    print(f"ancestry: {anc_path} ({ancestry.lg_spec.arch}, {len(view)} layers)")
    print(f"learngene layers: {choice.layers} ({choice.method})")
    print(recipe.describe(view.names))
    if recipe.width != 1.0:
        print(f"width: {describe_width(ancestry.lg_spec, recipe.width)}")
    print(f"descendant: {total:,} parameters ({total / ancestry_params:.0%} of the ancestry's {ancestry_params:,}); "
          f"{taken:,} of them ({taken / total:.0%}) initialised from the learngene")
    print(report.lines())
    print(f"saved {path}")
    return 0
