"""`python -m learngene probe`: the ground truth of which ancestry layers really help a descendant.

    python -m learngene probe --chosen auto-paper --threads 1                 # the shipped ViT, 10 tasks
    python -m learngene jobs start -- probe --ancestry assets/lg_resnet_mini.safetensors --chosen 0,1,6,7
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from learngene.cli._common import add_data, add_run_dir, command_line, output_dir, output_file
from learngene.reporting import Reporter

NAME = "probe"
HELP = ("measure which ancestry layers really help a descendant: the accuracy gain of inheriting each single "
        "layer, and each chosen layer's leave-one-out share, over N-way K-shot tasks")

# Defaults: 5-way 10-shot tasks with `learngene train`'s lr / wd / batch. Measured on one CPU thread: a model of
# the shipped lg_vit_tiny trains 20 epochs of 50 images (+ one 500-image evaluation) in ~2.9 s, so the 15 models
# of a task with a chosen set of 4 take ~45 s and the default 10 tasks ~7.5 min (lg_resnet_mini: ~4.6 s a model,
# ~12 min). With 20 epochs every single-layer gain of the shipped ViT clears zero over 15 tasks (the baseline
# stays near 25%); on a CPU models train one after another (the vmap-batched model is 2-3x slower there).
DEFAULT_TASKS = 10


def add_arguments(p: argparse.ArgumentParser) -> None:
    from learngene.cli.condense import DEFAULT_ANCESTRY
    from learngene.descend.probe import DEFAULT_EPOCHS

    p.add_argument("--ancestry", default=None,
                   help=f"ancestry checkpoint (.safetensors with its .json card); default: the shipped "
                        f"assets/{DEFAULT_ANCESTRY}")
    p.add_argument("--chosen", default=None,
                   help="a chosen layer set for the leave-one-out shares: indices like 0,5,6,7 (negative = from "
                        "the end) or a preset (auto-paper, heur, last-3, ...); default: none")
    g = p.add_argument_group("tasks and training")
    g.add_argument("--tasks", type=int, default=DEFAULT_TASKS, help=f"novel tasks (at least 2; default: {DEFAULT_TASKS})")
    g.add_argument("--n-way", type=int, default=5, help="classes per task (default: 5)")
    g.add_argument("--k-shot", type=int, default=10, help="training images per class (default: 10)")
    g.add_argument("--test-per-class", type=int, default=100,
                   help="test images per class; 0 = all held-back images (default: 100)")
    g.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                   help=f"training epochs of every model, evaluated after the last (default: {DEFAULT_EPOCHS})")
    g.add_argument("--lr", type=float, default=1e-3, help="(default: 0.001)")
    g.add_argument("--weight-decay", type=float, default=0.05, help="(default: 0.05)")
    g.add_argument("--batch-size", type=int, default=10, help="(default: 10)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the models' initialisation, the data order and the task draw (default: 0)")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto = CUDA when present")
    g.add_argument("--batched", choices=["auto", "on", "off"], default="auto",
                   help="train the models as vmap-batched groups: auto = on CUDA only (on a CPU the batched "
                        "model is 2-3x slower than one model after another) (default: auto)")
    g.add_argument("--images-per-class", type=int, default=None,
                   help="use only this many images per class (generated for shapes, the first N of each class "
                        "otherwise; quick tries)")
    p.add_argument("--out", default=None,
                   help="result JSON; default: <run>/outputs/probe.json in a job, else ./probe.json")
    from learngene.cli.train import add_force_option, add_threads_option

    add_threads_option(p)
    add_force_option(p)
    add_data(p)
    add_run_dir(p)


def resolve_chosen(text: str | None, ancestry) -> list[int]:
    """--chosen as sorted ancestry layer indices: a comma list or a `select_preset` name."""
    from learngene.condense.select import select_preset
    from learngene.inherit.choose import parse_int_list
    from learngene.inherit.recipe import normalize_layers
    from learngene.models import family_of, layer_view

    if not text:
        return []
    view = layer_view(ancestry)
    if text.replace(",", "").replace("-", "").replace(" ", "").isdigit():
        return sorted(normalize_layers(parse_int_list(text, "--chosen"), len(view)))
    return sorted(select_preset(text, len(view), family_of(ancestry), names=view.names))


def _shown(path: Path) -> str:
    """The ancestry path as recorded: relative to the working folder when inside it (assets/...)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def run(args: argparse.Namespace) -> int:
    from learngene.cli._common import load_data
    from learngene.cli.condense import _ancestry_path
    from learngene.cli.train import gate, set_cpu_threads
    from learngene.data.binding import bound_of_card
    from learngene.descend.probe import ProbeConfig, probe_units, run_probe
    from learngene.descend.probe_report import format_table
    from learngene.inherit.choose import load_ancestry
    from learngene.models import layer_view

    cfg = ProbeConfig(n_way=args.n_way, k_shot=args.k_shot, tasks=args.tasks, epochs=args.epochs, lr=args.lr,
                      weight_decay=args.weight_decay, batch_size=args.batch_size, test_per_class=args.test_per_class,
                      seed=args.seed, device=args.device, batched=args.batched).validated()
    if args.out is not None:  # checked before any work; the default lands in the run folder or here
        output_file(args.out, "--out")
    if args.run_dir:
        output_dir(args.run_dir, "--run-dir")
    set_cpu_threads(args, cfg.device)
    ancestry, card, path = load_ancestry(_ancestry_path(args.ancestry))
    chosen = resolve_chosen(args.chosen, ancestry)
    n = len(layer_view(ancestry))
    ds = load_data(args, bound_of_card(card, path))
    gate(card, path, args, ancestry, ds)
    cfg = dataclasses.replace(cfg, flip=bool(ds.meta["flip"]))
    print(f"probe of {path} ({card.spec.arch}, {n} layers); chosen {chosen or 'none'}; {cfg.tasks} tasks, "
          f"{cfg.n_way}-way {cfg.k_shot}-shot, {cfg.epochs} epochs", flush=True)
    with Reporter(args.run_dir, total=probe_units(n, chosen, cfg), desc="probe") as rep:
        rep.metric({"kind": "config", "command": command_line(), "ancestry": str(path), "chosen": chosen,
                    "probe": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}})
        result = run_probe(ancestry, ds, cfg, chosen, reporter=rep, log=rep.write,
                           ancestry_info={"arch": card.spec.arch, "path": _shown(path), "sha256": card.sha256},
                           data={"dataset": ds.meta.get("spec", args.dataset), "data_seed": ds.meta.get("data_seed"),
                                 "split_file": args.split_file, "images_per_class": args.images_per_class})
        out = args.out or (rep.outputs_dir / "probe.json" if rep.outputs_dir else "probe.json")
        result.save(out)
        rep.metric({"kind": "result", "probe": str(out), "gains": result.gains, "elapsed_s": result.elapsed_s})
    print(format_table(result))
    print(f"saved {out}")
    return 0
