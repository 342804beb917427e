"""`python -m learngene sweep`: descendant vs baseline over a grid of lr, weight decay, K and seeds."""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext

from learngene.cli._common import add_data, add_run_dir, add_train, command_line, load_data, train_config
from learngene.cli.train import (
    TRAIN_DEFAULTS,
    add_force_option,
    add_source_options,
    add_target_option,
    add_task_options,
    add_threads_option,
    check_output_paths,
    check_task_counts,
    data_config,
    diverged_record,
    gate_source,
    ledger_of,
    resolve_source,
    set_cpu_threads,
)
from learngene.cluster.options import add_backend_options, check_backend_options, ray_backend
from learngene.reporting import Reporter
from learngene.runlog import EXIT_DIVERGED, atomic_write_json

NAME = "sweep"
HELP = ("train a learngene descendant and its baseline for every combination of learning rates, weight decays, "
        "shots and seeds; print accuracy, sensitivity (spread over lr x wd) and accuracy against K")


def _floats(text: str, what: str) -> list[float]:
    from learngene.errors import ConfigError

    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"{what} must be a comma-separated list of numbers, e.g. 3e-4,1e-3; got {text!r}") from None
    if not values:
        raise ConfigError(f"{what} is empty")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_source_options(p)
    add_task_options(p, shots=False)
    g = p.add_argument_group("grid (comma-separated lists; every combination runs for both models)")
    g.add_argument("--lrs", default=None, help="learning rates (default: --lr)")
    g.add_argument("--wds", default=None, help="weight decays (default: --weight-decay)")
    g.add_argument("--shots", default="10", help="K values (default: 10)")
    g.add_argument("--seeds", default=None, help="seeds of initialisation and data order (default: --seed)")
    g.add_argument("--batched", choices=["auto", "on", "off"], default="auto",
                   help="train runs of one K as one vmap-batched model: auto = on a GPU only (default: auto)")
    g.add_argument("--max-batch", type=int, default=32, help="models per batched group (default: 32)")
    add_target_option(p)
    add_data(p)
    add_train(p, **TRAIN_DEFAULTS)
    add_threads_option(p)
    add_force_option(p)
    add_backend_options(p)
    add_run_dir(p)


def sweep_config(args: argparse.Namespace):
    from learngene.descend.sweep import SweepConfig
    from learngene.inherit.choose import parse_int_list

    return SweepConfig.from_dict({
        "lrs": _floats(args.lrs, "--lrs") if args.lrs else [args.lr],
        "wds": _floats(args.wds, "--wds") if args.wds else [args.weight_decay],
        "shots": parse_int_list(args.shots, "--shots"),
        "seeds": parse_int_list(args.seeds, "--seeds") if args.seeds else [args.seed],
        "tasks": args.tasks, "n_way": args.n_way, "task_seed": args.task_seed,
        "test_per_class": args.test_per_class or None, "batched": args.batched, "max_batch": args.max_batch,
    })


def run(args: argparse.Namespace) -> int:
    from learngene.descend.ledger import format_ledger_dict
    from learngene.descend.summary import format_sweep_summary, summarize_sweep
    from learngene.descend.sweep import run_sweep, use_batched

    cfg = train_config(args)
    check_task_counts(args)
    check_output_paths(args)
    check_backend_options(args)
    set_cpu_threads(args, cfg.device)
    sweep = sweep_config(args)
    source, recipe, names, what, bound = resolve_source(args, args.n_way)
    ds = load_data(args, bound)
    quality = gate_source(args, source, ds)
    cfg = train_config(args, ds)
    batched, why = use_batched(sweep, recipe, source, cfg, sweep.runs)
    print(what)
    print(recipe.describe(names))
    print(f"{sweep.runs} pairs ({2 * sweep.runs} trainings): {len(sweep.shots)} K x {sweep.tasks} task(s) x "
          f"{len(sweep.lrs)} lr x {len(sweep.wds)} wd x {len(sweep.seeds)} seed(s); "
          f"{'batched' if batched else 'one after another: ' + why}")
    config = {"command": command_line(), "source": what, "recipe": recipe.to_dict(), "train": cfg.to_dict(),
              "sweep": sweep.to_dict(), "dataset": ds.meta.get("spec", args.dataset),
              "data": data_config(args, ds), "target_acc": args.target_acc,
              "backend": args.backend, "ray_address": args.ray_address, "ancestry_quality": quality}
    with Reporter(args.run_dir, total=2 * cfg.epochs * sweep.runs, desc="sweep") as rep:
        rep.metric({"kind": "config", **config})
        backend = ray_backend(args, cfg.device, log=rep.write)
        with backend or nullcontext():
            pairs = run_sweep(recipe, source, ds, sweep, cfg, rep, backend=backend)
        summary = summarize_sweep(pairs, args.target_acc)
        summary["ledger"] = ledger_of(pairs, {}, recipe, source, args, ds)
        rep.metric({"kind": "summary", **summary})
        if rep.outputs_dir is not None:
            atomic_write_json(rep.outputs_dir / "summary.json",
                              {**config, "summary": summary, "pairs": [p.to_dict() for p in pairs]})
        n_bad = sum(p.learngene.diverged + p.baseline.diverged for p in pairs)
        every = bool(pairs) and n_bad == 2 * len(pairs)
        diverged = diverged_record(rep, pairs, "sweep") if n_bad else ""
    print(format_sweep_summary(summary))
    print(format_ledger_dict(summary["ledger"]))
    if every:
        print(f"error: {diverged}", file=sys.stderr)
        return EXIT_DIVERGED
    if n_bad:
        print(f"note: {n_bad} run(s) diverged; they count as chance accuracy in the tables above")
    return 0
