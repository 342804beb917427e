"""The size study's equal-budget rows, per shipped ancestry: the learngene against weight selection from the
first ancestry layers with as many inherited parameters as the learngene, and the learngene with its other
slots TLEG-interpolated (`--fill interpolate`) instead of random.

The CLI twin is `python -m learngene sizes --equal-budget` (one ancestry).

    python -m bench.size_equal --threads 1 --write-docs
    python -m bench.size_equal --tasks 3 --epochs 20            # fewer tasks and epochs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench._common import ROOT, add_common_args, command_line, finish, machine_info, run_cli, section, setup

SIZES = {"lg_vit_tiny": "0.67,1", "lg_resnet_mini": "0.5,1"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.size_equal", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=5, help="(default: 5)")
    p.add_argument("--epochs", type=int, default=40, help="(default: 40)")
    p.add_argument("--ancestry", action="append", default=None, help="stem(s) of shipped ancestries (default: both)")
    p.add_argument("--learngenes", default="cka,auto-paper",
                   help="which learngenes: the shipped CKA choice (cka) and/or Auto-LG's published one (auto-paper: "
                        "layers from both ends, so not what weight selection takes first) (default: both)")
    p.add_argument("--from-json", nargs="+", default=None, metavar="JSON",
                   help="train nothing: the tables from <stem>-<learngene>-sizes-equal.json files a run wrote")
    add_common_args(p, "size_equal")
    return p.parse_args(argv)


def _with_ledger(table: str, ledgers: str) -> str:
    """The size table, then the cost ledger of each size (`learngene.descend.ledger`) where the run recorded it."""
    return table + (f"\n\nCost ledger per size (FLOPs counted by torch's FlopCounterMode):\n\n{ledgers}" if ledgers else "")


def main(argv: list[str] | None = None) -> int:
    from learngene.cli.sizes import default_layers, parse_sizes
    from learngene.condense.select import select_preset
    from learngene.data.binding import bound_of_card, load_bound
    from learngene.descend.ledger import ancestry_account
    from learngene.descend.sizes import (
        SizeStudy,
        ledger_markdown,
        markdown,
        run_size_study,
        summarize,
        to_json,
    )
    from learngene.inherit.choose import load_ancestry
    from learngene.models import family_of, layer_view

    args = parse_args(argv)
    device = setup(args)
    tasks, epochs = (2, 2) if args.quick else (args.tasks, args.epochs)
    tables = []
    for file in args.from_json or []:
        stem, which = Path(file).name.removesuffix("-sizes-equal.json").split("-", 1)
        data = json.loads(Path(file).read_text())
        tasks, epochs = data["study"]["tasks"], data["study"]["epochs"]
        tables.append(f"**{stem}**, learngene {which} (layers {data['study']['layers']})\n\n"
                      + _with_ledger(markdown(data["sizes"], stem), ledger_markdown(data["sizes"], stem)))
    for stem, which in [] if args.from_json else [(s, w) for s in args.ancestry or SIZES
                                               for w in args.learngenes.split(",")]:
        ancestry, card, path = load_ancestry(ROOT / "assets" / f"{stem}.safetensors")
        view = layer_view(ancestry)
        layers = (default_layers(path, card.sha256) if which == "cka"
                  else select_preset(which, len(view), family_of(ancestry), view.names))
        ds, _ = load_bound(None, bound_of_card(card, path), images_per_class=60 if args.quick else None)
        study = SizeStudy(sizes=parse_sizes(SIZES[stem]), layers=tuple(layers), tasks=tasks, epochs=epochs,
                          test_per_class=20 if args.quick else 100, equal_budget=True, interpolate_row=True)
        rows = run_size_study(ancestry, ds, study, device.type)
        summary = summarize(rows, len(layer_view(ancestry)), sum(p.numel() for p in ancestry.parameters()),
                            ancestry_account(card, ancestry, ds.image_size))
        (Path(args.out) / f"{stem}-{which}-sizes-equal.json").write_text(json.dumps({"study": to_json(study),
                                                                                     "sizes": summary}, indent=1))
        tables.append(f"**{stem}**, learngene {which} (layers {layers})\n\n"
                      + _with_ledger(markdown(summary, stem), ledger_markdown(summary, stem)))
    body = (f"{tasks} novel 5-way 10-shot tasks per size, {epochs} epochs (lr 1e-3, wd 0.05, batch 10), final "
            "accuracy mean ± 95% t-interval, differences paired over the same tasks (paired t-test p). *Weight "
            "selection at that budget*: the first m ancestry layers and the stem, m chosen so that the inherited "
            "parameters come closest to the learngene's; *interpolated*: the learngene's other slots made "
            "TLEG-style from the inherited layers around them (`--fill interpolate`) instead of random (in a ResNet "
            "only within a stage, between two inherited blocks of it: a stage with none or one stays random, so the "
            "row can equal the random one).\n\n"
            + "\n\n".join(tables))
    if args.from_json:
        body += ("\n\nThe files were made by the same command without `--from-json` (`--ancestry`/`--learngenes` pick "
                 "which ones it trains). Cut for time: the ResNet's shipped CKA learngene (layers 0-3, which are also "
                 "the first layers weight selection takes, so the two are the same descendant at equal budget).")
    print(body)
    finish(args, "size_equal", section("size_equal", "Descendants of any size: the equal-budget rows", body,
                                       command_line("bench.size_equal", argv), machine_info(device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
