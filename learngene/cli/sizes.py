"""`python -m learngene sizes`: descendants of several sizes, initialised from the learngene, at random, or
by weight selection from the whole ancestry, on the same novel tasks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from learngene.cli._common import add_data, add_run_dir, output_dir
from learngene.cli.train import add_force_option, add_threads_option, set_cpu_threads

NAME = "sizes"
HELP = ("the size study: descendants narrower, shallower or as large as the ancestry, initialised from the "
        "learngene, at random and by weight selection from the whole ancestry, on the same novel tasks")


def parse_sizes(text: str):
    """'0.5x4,0.75,1' -> Size(0.5, 4), Size(0.75), Size(1.0): WIDTH[xDEPTH], comma-separated."""
    from learngene.descend.sizes import Size
    from learngene.errors import ConfigError

    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        width, _, depth = item.partition("x")
        try:
            out.append(Size(float(width), int(depth) if depth else None))
        except ValueError:
            raise ConfigError(f"--sizes takes WIDTH[xDEPTH] items such as 0.5x4 or 1, got {item!r}") from None
    if not out:
        raise ConfigError("--sizes is empty")
    return tuple(out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ancestry", default=None, help="ancestry checkpoint (default: the shipped lg_vit_tiny)")
    p.add_argument("--layers", default=None,
                   help="learngene layers, e.g. 0,1,2,6 (default: the shipped CKA selection of the ancestry)")
    p.add_argument("--sizes", default="0.67x4,0.67,1",
                   help="descendant sizes WIDTH[xDEPTH] (width: multiple of the ancestry's; depth: layers, ViT "
                        "only; default: 0.67x4,0.67,1)")
    p.add_argument("--fill", choices=["random", "repeat", "interpolate"], default="random",
                   help="what the learngene descendant's other layers become (default: random)")
    p.add_argument("--tasks", type=int, default=10, help="novel tasks (default: 10)")
    p.add_argument("--n-way", type=int, default=5)
    p.add_argument("--k-shot", type=int, default=10)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--images-per-class", type=int, default=None, help="use only this many images per class")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--out", default=None, help="folder for sizes.json, sizes.md and sizes.svg "
                                               "(default: <run>/outputs in a job, else ./size-study)")
    p.add_argument("--equal-budget", action="store_true",
                   help="also train weight selection from the first ancestry layers with as many inherited parameters "
                        "as the learngene (an equal budget), and the learngene with its other slots interpolated")
    add_threads_option(p)
    add_force_option(p)
    add_data(p)
    add_run_dir(p)


def default_layers(path: Path, sha256: str) -> list[int]:
    from learngene.condense.shipped import shipped_similarity
    from learngene.errors import ConfigError

    found = shipped_similarity(path, sha256)
    if "cka" not in found:
        raise ConfigError(f"{path} has no shipped CKA result to take the learngene from; pass --layers")
    return list(found["cka"].selected)


def run(args: argparse.Namespace) -> int:
    from learngene.cli._common import load_data
    from learngene.cli.condense import _ancestry_path
    from learngene.cli.train import gate
    from learngene.data.binding import bound_of_card
    from learngene.descend.ledger import ancestry_account
    from learngene.descend.sizes import (
        SizeStudy,
        figure,
        ledger_markdown,
        markdown,
        run_size_study,
        summarize,
        to_json,
    )
    from learngene.inherit.choose import load_ancestry, parse_int_list
    from learngene.models import layer_view
    from learngene.reporting import Reporter
    from learngene.train.trainer import resolve_device

    sizes = parse_sizes(args.sizes)
    if args.out is not None:
        output_dir(args.out, "--out")
    if args.run_dir:
        output_dir(args.run_dir, "--run-dir")
    device = resolve_device(args.device)
    set_cpu_threads(args, device.type)
    ancestry, card, path = load_ancestry(_ancestry_path(args.ancestry))
    layers = parse_int_list(args.layers, "--layers") if args.layers else default_layers(path, card.sha256)
    ds = load_data(args, bound_of_card(card, path))
    gate(card, path, args, ancestry, ds)
    study = SizeStudy(sizes=sizes, layers=tuple(layers), tasks=args.tasks, n_way=args.n_way, k_shot=args.k_shot,
                      epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
                      test_per_class=args.test_per_class, fill=args.fill, equal_budget=args.equal_budget,
                      interpolate_row=args.equal_budget and args.fill != "interpolate")
    n = len(layer_view(ancestry))
    with Reporter(args.run_dir, total=len(sizes) * args.tasks, desc="sizes") as rep:
        out = Path(args.out) if args.out else (rep.outputs_dir or Path("size-study"))
        out.mkdir(parents=True, exist_ok=True)
        rows = run_size_study(ancestry, ds, study, device.type, log=rep.write)
        summary = summarize(rows, n, sum(p.numel() for p in ancestry.parameters()),
                            ancestry_account(card, ancestry, ds.image_size))
        (out / "sizes.json").write_text(json.dumps({"ancestry": str(path), "arch": card.spec.arch,
                                                    "study": to_json(study), "sizes": summary}, indent=1))
        table = markdown(summary, card.spec.arch) + "\n\nCost ledger per size:\n\n" + ledger_markdown(summary, card.spec.arch)
        (out / "sizes.md").write_text(table + "\n")
        figure({card.spec.arch: summary}, out / "sizes.svg")
        rep.metric({"kind": "result", "sizes": summary})
    print(table)
    print(f"\nsaved {out / 'sizes.json'}, {out / 'sizes.md'}, {out / 'sizes.svg'}")
    return 0
