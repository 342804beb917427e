"""`python -m learngene accumulate`: train an ancestry on the base classes."""

from __future__ import annotations

import argparse
from pathlib import Path

from learngene.cli._common import (
    add_data,
    add_run_dir,
    add_train,
    command_line,
    load_data,
    output_dir,
    output_file,
    parse_overrides,
    source_constant,
    train_config,
)
from learngene.cli.train import add_threads_option, set_cpu_threads
from learngene.cluster.options import add_backend_options, check_backend_options
from learngene.errors import ConfigError
from learngene.reporting import Reporter

NAME = "accumulate"
HELP = "train an ancestry model on the base classes of a data set and save it with its model card"
MAX_IMAGES_PER_CLASS = source_constant("data.sources", "MAX_IMAGES_PER_CLASS")
DEFAULT_WARMUP = 2  # epochs; clamped to --epochs - 1 when the user does not set it


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="lg_vit_tiny", help="preset or timm architecture (default: lg_vit_tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="architecture override, e.g. --set depth=6 --set embed_dim=128 (repeatable)")
    p.add_argument("--out", default=None,
                   help="checkpoint path (.safetensors); default: <run>/outputs/ancestry.safetensors "
                        "in a job, else ./ancestry.safetensors")
    p.add_argument("--pretrained", action="store_true",
                   help="start from timm's published weights of --arch (e.g. deit_tiny_patch16_224, resnet18; "
                        "downloads them, so it needs the network or timm's cache) with a new head; without it "
                        "the weights are random")
    p.add_argument("--holdout-per-class", type=int, default=100,
                   help="base-class images per class held out to measure accuracy (default: 100, from 1 to "
                        f"{MAX_IMAGES_PER_CLASS - 1})")
    add_data(p, images_per_class=True, ancestry=False)
    add_train(p, epochs=30, batch_size=128, lr=2e-3, weight_decay=0.05, warmup_epochs=DEFAULT_WARMUP)
    for action in p._actions:  # the default is resolved against --epochs in run()
        if action.dest == "warmup_epochs":
            action.help = (f"epochs of learning-rate warmup (default: {DEFAULT_WARMUP}, fewer when --epochs "
                           f"leaves no room: at most --epochs - 1)")
    p.set_defaults(warmup_epochs=None)
    add_threads_option(p, default=None)
    add_backend_options(p, workers=True)
    add_run_dir(p)


def resolve_warmup(args: argparse.Namespace) -> None:
    """Fill in the default --warmup-epochs, clamped below --epochs; refuse a too-long one the user set."""
    if args.warmup_epochs is None:
        args.warmup_epochs = max(0, min(DEFAULT_WARMUP, args.epochs - 1))
    elif 0 < args.epochs <= args.warmup_epochs:
        raise ConfigError(f"--warmup-epochs must be smaller than --epochs ({args.epochs}), got "
                          f"{args.warmup_epochs}; use at most {args.epochs - 1} (0 = no warmup)")


def print_quality(card) -> None:
    """The new ancestry's verdict (the rule the later steps gate on) and its recorded training cost."""
    from learngene.descend.ledger import fmt_flops
    from learngene.descend.quality import ancestry_quality

    verdict = ancestry_quality(card)
    print(f"{'WARNING: ' if verdict['state'] != 'learned' else ''}held-out base classes: {verdict['line']}"
          + (" (condense, train and the rest refuse it without --force)" if verdict["state"] == "at chance" else ""))
    cost = (card.extra or {}).get("train_cost")
    if isinstance(cost, dict):
        print(f"training cost (recorded in the card): {cost['epochs']} epochs, {cost['images_seen']:,} images seen, "
              f"{fmt_flops(cost['flops'])}")


def run(args: argparse.Namespace) -> int:
    from learngene.train.accumulate import accumulate

    if not 1 <= args.holdout_per_class < MAX_IMAGES_PER_CLASS:
        raise ConfigError(f"--holdout-per-class must be from 1 to {MAX_IMAGES_PER_CLASS - 1} (the held-out images "
                          f"measure the ancestry's accuracy), got {args.holdout_per_class}")
    resolve_warmup(args)
    cfg = train_config(args)
    if args.out is not None:  # checked before any work; the default lands in the run folder or here
        output_file(args.out, "--out")
    if args.run_dir:
        output_dir(args.run_dir, "--run-dir")
    check_backend_options(args)
    if args.pretrained and args.backend == "ray":
        raise ConfigError("--pretrained is not available with --backend ray yet; use the local backend")
    set_cpu_threads(args, cfg.device)
    ds = load_data(args)
    cfg = train_config(args, ds)
    with Reporter(args.run_dir, total=cfg.epochs, desc=f"accumulate {args.arch}") as rep:
        out = args.out or (rep.outputs_dir / "ancestry.safetensors" if rep.outputs_dir else "ancestry.safetensors")
        options = {"overrides": parse_overrides(args.overrides), "holdout_per_class": args.holdout_per_class,
                   "command": command_line(), "reporter": rep}
        if args.backend == "ray":
            from learngene.cluster.accumulate import accumulate_ray
            from learngene.cluster.backend import RayBackend

            with RayBackend(args.ray_address, num_cpus=max(1, args.threads or 1), log=rep.write) as backend:
                path, card = accumulate_ray(ds, args.arch, cfg, out, workers=args.workers, backend=backend, **options)
        else:
            path, card = accumulate(ds, args.arch, cfg, out, pretrained=args.pretrained, **options)
        rep.metric({"kind": "result", "checkpoint": str(path), "base_accuracy": card.base_accuracy})
    print(f"saved {path} (held-out base-class accuracy {card.base_accuracy:.3f})")
    print_quality(card)
    print(f"model card: {Path(path).with_suffix('.json')}")
    return 0
