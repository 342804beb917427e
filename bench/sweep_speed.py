"""Sweep speed: K few-shot descendants trained as one vmap-batched model against one after another.

Both ways go through the project's sweep (`learngene.descend.sweep.run_sweep`) on the same grid:
K/2 seeds x (learngene descendant + its baseline) = K models, one 5-way task with `--shots`
images per class (20 -> 100 training images), `--epochs` epochs at batch 10, evaluated every 2
epochs on 100 test images per class, as `python -m learngene sweep` trains them. "one after another"
is `--batched off` (the `Trainer`), "batched" is `--batched on` with all K models in one group
(`learngene.descend.batched.train_batched`). Before timing, a one-epoch warm-up of both paths.

Agreement: the two paths must give the same runs up to float rounding. The first epoch's training
loss is compared (it has seen few steps, so rounding has not been amplified); the final accuracies
are compared too, as mean and largest difference (few-shot training is chaotic, so rounding can
move single runs by a test image or two).

The descendant: by default a random-init `lg_vit_tiny` ancestry (8 blocks; weights do not change
the speed) and 6-block descendants that inherit its last 3 blocks on top (Heur-LG), as in the batched
few-shot anchor of docs/design.md (eight 6-block ViTs, 100 images, 50 epochs: 13.4 s one after another,
3.4 s batched on an H100). `--ancestry` uses a real checkpoint instead.

    python -m bench.sweep_speed --threads 1 --models 8
    python -m bench.sweep_speed --device cuda --models 8,32
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

from bench._common import (
    add_common_args,
    command_line,
    finish,
    machine_info,
    md_table,
    run_cli,
    section,
    setup,
    timed,
    write_csv,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.sweep_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--ancestry", default=None, help="ancestry checkpoint (default: random-init lg_vit_tiny, 8 blocks)")
    p.add_argument("--models", default=None, help="comma-separated K values, each even (default: 8)")
    p.add_argument("--depth", type=int, default=None, help="descendant depth (ViT; default 6)")
    p.add_argument("--preset", default="heur", help="learngene layers (default: heur = the last 3)")
    p.add_argument("--placement", default="top", choices=["original", "top", "bottom"])
    p.add_argument("--shots", type=int, default=20, help="training images per class (default: 20 -> 100 images)")
    p.add_argument("--epochs", type=int, default=None, help="(default: 50)")
    p.add_argument("--batch-size", type=int, default=10, help="(default: 10, as `learngene sweep`)")
    p.add_argument("--eval-every", type=int, default=2, help="(default: 2, as `learngene sweep`)")
    p.add_argument("--test-per-class", type=int, default=None, help="(default: 100; --quick: 20)")
    add_common_args(p, "sweep_speed")
    args = p.parse_args(argv)
    args.models = [int(v) for v in (args.models or ("4" if args.quick else "8")).split(",")]
    if any(k < 2 or k % 2 for k in args.models):
        p.error("--models must be even numbers >= 2 (pairs of learngene descendant + baseline)")
    args.epochs = args.epochs or (3 if args.quick else 50)
    args.test_per_class = args.test_per_class or (20 if args.quick else 100)
    return args


def source_and_recipe(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(ancestry model, recipe, description)."""
    from learngene.condense.select import select_preset
    from learngene.inherit.choose import load_ancestry
    from learngene.inherit.recipe import Recipe
    from learngene.models import create_model, family_of, layer_view

    if args.ancestry:
        ancestry, _card, path = load_ancestry(args.ancestry)
        what = str(path)
    else:
        torch.manual_seed(0)
        ancestry = create_model("lg_vit_tiny", 64, **({"depth": 3} if args.quick else {}))
        what = "random-init lg_vit_tiny" + (" (3 blocks)" if args.quick else "")
    view = layer_view(ancestry)
    n = len(view)
    family = family_of(ancestry)
    preset = "last-1" if args.quick and args.preset == "heur" else args.preset
    layers = select_preset(preset, n, family, names=view.names)
    depth = None if family != "vit" else (args.depth or (2 if args.quick else 6))
    recipe = Recipe.from_layers(ancestry.lg_spec, n, layers, placement=args.placement, depth=depth)
    return ancestry, recipe, f"{what}; descendant: {recipe.depth} layers, inherits {layers} ({preset}, {args.placement})"


def train_config(args: argparse.Namespace, device: torch.device, epochs: int):
    from learngene.train.config import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=1e-3, weight_decay=0.05, warmup_epochs=0,
                       eval_every=args.eval_every, device=device.type)


def run_both(args, ancestry, recipe, ds, k: int, cfg, reps: int = 1) -> dict[str, Any]:
    """Time the sweep of k models sequentially and batched; returns timings and agreement."""
    from learngene.descend.sweep import SweepConfig, run_sweep

    out: dict[str, Any] = {}
    for mode in ("off", "on"):
        sweep = SweepConfig(seeds=list(range(k // 2)), shots=[args.shots], tasks=1,
                            test_per_class=args.test_per_class, batched=mode, max_batch=max(k, 2))
        with timed(cfg.device) as t:
            pairs = run_sweep(recipe, ancestry, ds, sweep, cfg)
        out[mode] = {"seconds": t["s"], "pairs": pairs}
    return out


def agreement(seq: list, bat: list) -> dict[str, float]:
    """First-epoch train loss and final accuracy differences, run by run (same seed and role)."""
    d_loss, d_acc, acc_seq, acc_bat = [], [], [], []
    key = {(p.settings["seed"]): p for p in bat}
    for p in seq:
        q = key[p.settings["seed"]]
        for role in ("learngene", "baseline"):
            a, b = p.run(role), q.run(role)
            la, lb = a.history[0]["train_loss"], b.history[0]["train_loss"]
            d_loss.append(abs(la - lb) / max(abs(la), 1e-12))
            fa, fb = a.final_acc(p.n_way), b.final_acc(q.n_way)
            d_acc.append(abs(fa - fb))
            acc_seq.append(fa)
            acc_bat.append(fb)
    return {"first_epoch_loss_rel_diff_max": max(d_loss), "final_acc_diff_max": max(d_acc),
            "final_acc_mean_seq": sum(acc_seq) / len(acc_seq), "final_acc_mean_batched": sum(acc_bat) / len(acc_bat)}


def main(argv: list[str] | None = None) -> int:
    from learngene.data import load_dataset

    args = parse_args(argv)
    device = setup(args)
    ancestry, recipe, what = source_and_recipe(args)
    ds = load_dataset("shapes", images_per_class=max(max(args.shots, 20) + args.test_per_class, 40 if args.quick else 128))
    print(f"{what}\n{args.shots}-shot 5-way task ({5 * args.shots} images), {args.epochs} epochs, batch "
          f"{args.batch_size}, device {device}")
    warm = run_both(args, ancestry, recipe, ds, 2, train_config(args, device, 1))
    print(f"warm-up: {warm['off']['seconds']:.1f} s one after another, {warm['on']['seconds']:.1f} s batched")
    rows, csv_rows = [], []
    for k in args.models:
        res = run_both(args, ancestry, recipe, ds, k, train_config(args, device, args.epochs))
        agree = agreement(res["off"]["pairs"], res["on"]["pairs"])
        s_seq, s_bat = res["off"]["seconds"], res["on"]["seconds"]
        ok = agree["first_epoch_loss_rel_diff_max"] < 1e-3
        rows.append([k, f"{s_seq:.1f}", f"{s_bat:.1f}", f"{s_seq / s_bat:.2f}x",
                     f"{agree['first_epoch_loss_rel_diff_max']:.1e}",
                     f"{100 * agree['final_acc_mean_seq']:.1f} / {100 * agree['final_acc_mean_batched']:.1f}",
                     f"{100 * agree['final_acc_diff_max']:.1f}", "yes" if ok else "NO"])
        csv_rows.append({"models": k, "seconds_sequential": s_seq, "seconds_batched": s_bat,
                         "speedup": s_seq / s_bat, **agree, "agree": ok, "epochs": args.epochs,
                         "shots": args.shots, "device": str(device), "descendant": what})
        print(f"  K={k}: {s_seq:.1f} s one after another, {s_bat:.1f} s batched, {s_seq / s_bat:.2f}x; "
              f"agreement {agree}")
    headers = ["models", "one after another s", "batched s", "speed-up", "1st-epoch loss rel. diff (max)",
               "final acc % seq / batched (mean)", "final acc diff (max, points)", "agree"]
    table = md_table(headers, rows)
    print("\n" + table)
    info = machine_info(device)
    write_csv(f"{args.out}/sweep-{device.type}.csv", [{**r, **info} for r in csv_rows])
    body = (f"{what}. One {args.shots}-shot 5-way task ({5 * args.shots} training images), {args.epochs} epochs at "
            f"batch {args.batch_size}, evaluation every {args.eval_every} epochs on {args.test_per_class} images per "
            f"class; K/2 seeds x (descendant + baseline) through `run_sweep` with `batched` off and on.\n\n{table}\n\n"
            "*agree*: the first epoch's training losses match to 1e-3 (relative); final accuracies are compared "
            "as means, since few-shot training amplifies float rounding over many epochs.")
    key = f"sweep-{device.type}"
    finish(args, key, section(key, f"Sweep speed: batched vs one after another ({device.type})", body,
                              command_line("bench.sweep_speed", argv), info))
    return 0 if all(math.isfinite(r["speedup"]) for r in csv_rows) else 1


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
