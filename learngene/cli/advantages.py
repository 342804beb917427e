"""`python -m learngene advantages`: the four-advantage study (convergence, sensitivity, performance, samples)."""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path

from learngene.cli._common import add_data, add_run_dir, output_dir
from learngene.cli.train import add_force_option, add_threads_option, set_cpu_threads, target_acc
from learngene.cluster.options import add_backend_options, check_backend_options, ray_backend
from learngene.reporting import Reporter

NAME = "advantages"
HELP = ("the four-advantage study: learngene descendants (heur, auto-paper, auto, cka, finetune) against the "
        "random-init baseline over novel tasks of each ancestry's data (or --dataset), an lr x wd grid and "
        "K = 1/5/10/20; "
        "writes a CSV, a markdown "
        "table and figures; resumes where it stopped")


def add_study_arguments(p: argparse.ArgumentParser, quick: bool = True) -> None:
    """The study's settings (shared with `python -m bench.advantages`, whose own --quick is common to
    every benchmark: `quick=False` leaves it out here)."""
    p.add_argument("--ancestry", action="append", default=None,
                   help="ancestry checkpoint (repeatable; default: the shipped lg_vit_tiny and lg_resnet_mini)")
    p.add_argument("--similarity", action="append", default=[], metavar="METHOD=PATH",
                   help="use a saved `condense` result for the auto/cka row instead of computing it "
                        "(repeatable; one ancestry only)")
    if quick:
        p.add_argument("--quick", action="store_true",
                       help="tiny settings (2 tasks, 6 epochs, small grid) for a try-out in minutes")
    p.add_argument("--models", default=None,
                   help="model rows, comma-separated (default: baseline,heur,auto-paper,auto,cka,finetune)")
    p.add_argument("--grid-models", default=None,
                   help="rows also trained in the lr x wd grid and the K cells (the baseline always is; default: "
                        "every row); the other rows are trained in the main cell only, to save time")
    p.add_argument("--tasks", type=int, default=None, help="novel 5-way tasks (default: 10)")
    p.add_argument("--shots", default=None, help="K values of the sample-efficiency study (default: 1,5,10,20)")
    p.add_argument("--lrs", default=None, help="learning rates of the grid (default: 1e-4,3e-4,1e-3,3e-3)")
    p.add_argument("--wds", default=None, help="weight decays of the grid (default: 0.05,0.5)")
    p.add_argument("--epochs", type=int, default=None, help="(default: 40)")
    p.add_argument("--target-acc", type=target_acc, default=None,
                   help="convergence target: an accuracy such as 0.5, or 'baseline' = the baseline's final accuracy "
                        "on the same task, as `learngene train` (default: baseline)")
    p.add_argument("--test-per-class", type=int, default=None, help="(default: 100)")
    p.add_argument("--batched", choices=["auto", "on", "off"], default="auto",
                   help="train the grid and K runs as vmap-batched groups where the models allow it: auto = on "
                        "a GPU only (on 2 CPU cores batching measured no faster than one after another); "
                        "default: auto")
    p.add_argument("--max-batch", type=int, default=None, help="models per batched group (default: 32)")
    p.add_argument("--figures-dir", default=None, help="where the SVG figures go (default: <out>/figures)")
    p.add_argument("--width", type=float, default=None,
                   help="descendant width as a multiple of the ancestry's (0.125 to 4; default: 1); every row is "
                        "that size, its inherited layers mapped by consistent weight selection")
    p.add_argument("--depth", type=int, default=None,
                   help="descendant depth in layers (default: the ancestry's; ViT and ResNet)")
    p.add_argument("--images-per-class", type=int, default=None,
                   help="use only this many images per class (generated for shapes, the first N of each class "
                        "otherwise; default: all, 60 with --quick)")
    add_data(p)


def study_from_args(args: argparse.Namespace):
    from learngene.descend.advantages import study_from_options
    from learngene.errors import ConfigError

    def nums(text: str | None, cast, what: str):
        if text is None:
            return None
        try:
            values = tuple(cast(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise ConfigError(f"{what} must be a comma-separated list, got {text!r}") from None
        if not values:
            raise ConfigError(f"{what} is empty")
        return values

    return study_from_options(
        args.quick, tasks=args.tasks, shots=nums(args.shots, int, "--shots"), lrs=nums(args.lrs, float, "--lrs"),
        wds=nums(args.wds, float, "--wds"), epochs=args.epochs,
        target_acc=None if args.target_acc in (None, "baseline") else args.target_acc,
        test_per_class=args.test_per_class, max_batch=args.max_batch, models=nums(args.models, str, "--models"),
        grid_models=nums(args.grid_models, str, "--grid-models"),
        batched=args.batched, images_per_class=args.images_per_class, width=args.width, depth=args.depth,
        dataset=args.dataset, data_seed=args.data_seed,
        split_file=args.split_file, flip=args.flip_mode, data_root=args.data_root, download=args.download or None,
        image_size=args.img_size)


def given_similarities(items: list[str]) -> dict[str, str]:
    from learngene.errors import ConfigError

    bad = [s for s in items if "=" not in s]
    if bad:
        raise ConfigError(f"--similarity takes METHOD=PATH (auto=... or cka=...), got {bad}")
    return dict(item.split("=", 1) for item in items)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_study_arguments(p)
    p.add_argument("--out", default=None,
                   help="folder for the CSV, tables, figures and the journal of finished runs (default: "
                        "<run>/outputs in a job, else ./advantages-study); run again with the same folder to resume")
    p.add_argument("--journal-dir", default=None,
                   help="folder of the journals of finished runs (default: <out>/journal); runs found there with "
                        "the same ancestry, settings and layers are not trained again, so studies can share one")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto = CUDA when present (default: auto)")
    add_threads_option(p)
    add_force_option(p)
    add_backend_options(p)
    add_run_dir(p)


def gate_cards(paths: list[Path], args: argparse.Namespace) -> None:
    """Each ancestry's quality gate, from its card (refuses one at chance unless --force)."""
    from learngene.cli.train import gate
    from learngene.models import read_card

    for path in paths:
        gate(read_card(path), path, args)


def run(args: argparse.Namespace) -> int:
    from learngene.data.sources import option_names
    from learngene.descend.advantages import default_ancestries, plan, run_study
    from learngene.descend.compare import final_accuracy
    from learngene.train.trainer import resolve_device

    if args.out is not None:  # checked before any work; the default lands in the run folder or here
        output_dir(args.out, "--out")
    if args.journal_dir is not None:
        output_dir(args.journal_dir, "--journal-dir")
    if args.run_dir:
        output_dir(args.run_dir, "--run-dir")
    check_backend_options(args)
    set_cpu_threads(args, args.device)
    device = resolve_device(args.device)
    study = study_from_args(args)
    given = given_similarities(args.similarity)
    paths = [Path(p) for p in args.ancestry] if args.ancestry else default_ancestries()
    gate_cards(paths, args)
    total = len(plan(study)) * len(paths)
    with Reporter(args.run_dir, total=total, desc="advantages") as rep:
        out = Path(args.out) if args.out else (rep.outputs_dir or Path("advantages-study"))
        rep.metric({"kind": "config", "study": study.__dict__ | {"models": list(study.models)},
                    "ancestries": [str(p) for p in paths], "out": str(out), "device": str(device),
                    "backend": args.backend, "ray_address": args.ray_address})

        def on_runs(runs) -> None:
            for r in runs:
                rep.metric({"kind": "study_run", "model": r.model, "task": r.task, "k_shot": r.k, "lr": r.lr,
                            "weight_decay": r.wd, "final_acc": final_accuracy(r.history, study.n_way),
                            "wall_s": r.wall_s})
            rep.advance(len(runs), message=f"advantages: {runs[-1].model} K={runs[-1].k}")

        backend = ray_backend(args, device.type, log=rep.write)
        with option_names(images_per_class="--images-per-class", image_size="--img-size"), backend or nullcontext():
            result = run_study(paths, study, out, device, given=given, figures_dir=args.figures_dir,
                               log=rep.write, on_runs=on_runs, journal_dir=args.journal_dir, backend=backend)
        rep.metric({"kind": "result", "csv": str(result.csv_path), "markdown": str(out / "advantages.md"),
                    "figures": [str(f) for f in result.figures], "seconds": round(result.seconds, 1),
                    "ledgers": [{"ancestry": r.path, "arch": r.arch, "ledger": r.ledger} for r in result.results]})
    print("\n" + result.markdown)
    print(f"\nraw rows: {result.csv_path}; tables: {out / 'advantages.md'}; figures in {result.figures[0].parent}"
          if result.figures else f"\nraw rows: {result.csv_path}")
    return 0
