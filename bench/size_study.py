"""Descendants of several sizes per shipped ancestry: learngene vs random init vs weight selection.

The CLI twin is `python -m learngene sizes` (one ancestry); this runs it for both shipped ancestries
with the published settings and writes the tables and the figure (accuracy against parameters) into
docs/results.md and docs/figures/sizes.svg.

    python -m bench.size_study --threads 1 --write-docs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench._common import ROOT, add_common_args, command_line, finish, machine_info, run_cli, section, setup

SIZES = {"lg_vit_tiny": "0.67x4,0.67,1", "lg_resnet_mini": "0.5,0.75,1"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.size_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=10)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--figure", default=str(ROOT / "docs" / "figures" / "sizes.svg"),
                   help="where the figure goes with --write-docs (default: docs/figures/sizes.svg)")
    add_common_args(p, "size_study")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from learngene.cli.sizes import default_layers, parse_sizes
    from learngene.data.binding import bound_of_card, load_bound
    from learngene.descend.sizes import SizeStudy, figure, markdown, run_size_study, summarize, to_json
    from learngene.inherit.choose import load_ancestry
    from learngene.inherit.learngene_file import learngene_from_model, size_report
    from learngene.models import layer_view

    args = parse_args(argv)
    device = setup(args)
    tasks, epochs = (2, 2) if args.quick else (args.tasks, args.epochs)
    summaries, tables, notes = {}, [], []
    for stem, sizes in SIZES.items():
        ancestry, card, path = load_ancestry(ROOT / "assets" / f"{stem}.safetensors")
        layers = default_layers(path, card.sha256)
        ds, _ = load_bound(None, bound_of_card(card, path), images_per_class=60 if args.quick else None)
        study = SizeStudy(sizes=parse_sizes(sizes), layers=tuple(layers), tasks=tasks, epochs=epochs,
                          test_per_class=20 if args.quick else 100)
        rows = run_size_study(ancestry, ds, study, device.type)
        anc_params = sum(p.numel() for p in ancestry.parameters())
        summary = summarize(rows, len(layer_view(ancestry)), anc_params)
        summaries[stem] = summary
        (Path(args.out) / f"{stem}-sizes.json").write_text(json.dumps({"study": to_json(study), "sizes": summary},
                                                                       indent=1))
        size = size_report(learngene_from_model(ancestry, layers))
        notes.append(f"- {stem}: ancestry {size.ancestry_params:,} parameters ({size.ancestry_bytes / 2**20:.2f} MiB); "
                     f"its learngene (CKA layers {layers} and the stem) {size.learngene_params:,} parameters "
                     f"({size.param_fraction:.0%}), {size.learngene_bytes / 2**20:.2f} MiB.")
        tables.append(markdown(summary, stem))
    fig = Path(args.figure) if args.write_docs else Path(args.out) / "sizes.svg"
    figure(summaries, fig)
    rel = fig.relative_to(ROOT / "docs") if fig.is_relative_to(ROOT / "docs") else fig
    body = (f"{tasks} novel 5-way 10-shot tasks per size, {epochs} epochs (lr 1e-3, wd 0.05, batch 10), final "
            "accuracy mean ± 95% t-interval; gains are paired over the same tasks (paired t-test p). Width is a "
            "multiple of the ancestry's (ViT: whole heads of 32, so 0.67 = 2 of 3 heads); depth in layers. "
            "*learngene*: the shipped CKA layers mapped into the size by consistent weight selection, the rest "
            "random; *weight selection*: every ancestry layer (a shallower descendant: the first ones) and the "
            "stem mapped the same way, which at the ancestry's own size is fine-tuning.\n\n"
            + "\n\n".join(tables) + "\n\n" + "\n".join(notes) + f"\n\n![accuracy against parameters]({rel})\n")
    info = machine_info(device)
    finish(args, "sizes", section("sizes", "Descendants of any size", body, command_line("bench.size_study"), info))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
