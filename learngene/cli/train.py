"""`python -m learngene train`: train learngene descendants and their random-init baselines on few-shot tasks."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from learngene.cli._common import (
    MAX_EPOCHS,
    add_data,
    add_run_dir,
    add_train,
    command_line,
    load_data,
    output_dir,
    source_constant,
    train_config,
)
from learngene.cli.inherit import add_layer_choice, add_recipe_options, recipe_kwargs
from learngene.reporting import Reporter
from learngene.runlog import EXIT_DIVERGED, atomic_write_json

NAME = "train"
HELP = "train a learngene descendant and its random-init baseline on N-way K-shot tasks and compare them"

# Few-shot defaults, tried on the shapes data (3 tasks, 5-way 10-shot, lr 3e-4..3e-3, batch 10/25, 40/60
# epochs): from scratch the baseline plateaus at ~28-31% in every setting; batch 10, lr 1e-3 suits both
# models (with the shipped lg_resnet_mini the learngene reaches 48% against 28%). Forty epochs of 50
# images plus a 500-image evaluation every epoch cost ~50 s of CPU for the pair (about 20 s per model).
TRAIN_DEFAULTS: dict[str, Any] = dict(epochs=40, batch_size=10, lr=1e-3, weight_decay=0.05, warmup_epochs=0,
                                      eval_every=1)
MAX_THREADS = 1_024
MAX_STRONG_FACTOR: int = source_constant("descend.compare", "MAX_STRONG_FACTOR")
# read from the data modules' sources: importing them would load torch just to build the parser
MAX_TASKS: int = source_constant("data.tasks", "MAX_TASKS")
MAX_IMAGES_PER_CLASS: int = source_constant("data.sources", "MAX_IMAGES_PER_CLASS")


def add_task_options(p: argparse.ArgumentParser, shots: bool = True) -> None:
    g = p.add_argument_group("tasks")
    g.add_argument("--n-way", type=int, default=5, help="classes per task (default: 5, at least 2)")
    if shots:
        g.add_argument("--k-shot", type=int, default=10, help="training images per class (default: 10)")
    g.add_argument("--tasks", type=int, default=1,
                   help=f"number of tasks, each built when training reaches it (default: 1, at most {MAX_TASKS})")
    g.add_argument("--task-seed", type=int, default=0, help="task i is fixed by (task seed, i) (default: 0)")
    g.add_argument("--test-per-class", type=int, default=100,
                   help="test images per class, to keep evaluation cheap; 0 = all held-back images (default: 100)")
    g.add_argument("--images-per-class", type=int, default=None,
                   help="use only this many images per class (generated for shapes, the first N of each class "
                        f"otherwise; quick tries; at most {MAX_IMAGES_PER_CLASS})")


def target_acc(text: str) -> float | str:
    """argparse type of --target-acc: 'baseline' or an accuracy in (0, 1]."""
    if text == "baseline":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'baseline' or an accuracy like 0.6, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"a target accuracy is a fraction in (0, 1], got {value}")
    return value


def add_threads_option(p: argparse.ArgumentParser, default: int | None = 1) -> None:
    why = ("1: batches of a few images gain little from more, and extra threads stall badly when the machine "
           "is busy" if default == 1 else "all cores, as torch chooses")
    p.add_argument("--threads", type=int, default=default,
                   help=f"CPU threads for training on a CPU (default: {why}; at most {MAX_THREADS})")


def add_force_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="use an ancestry whose held-out base-class accuracy is at chance (refused without it: it has "
                        "learned nothing to pass on)")


def gate(card, where, args: argparse.Namespace, model=None, ds=None) -> dict[str, Any]:
    """The ancestry's quality gate (`learngene.descend.quality`): says its verdict, refuses one at chance
    unless --force."""
    from learngene.descend.quality import gate_ancestry

    return gate_ancestry(card, where, force=bool(getattr(args, "force", False)), model=model, ds=ds)


def gate_source(args: argparse.Namespace, source, ds) -> dict[str, Any]:
    """The quality gate of --ancestry (its card, or measured on `ds`) or of --learngene (the verdict
    `inherit` recorded in the file; unknown in a file made before it did)."""
    from learngene.descend.quality import check_ancestry, quality_of_record
    from learngene.train.budget import judge

    if args.learngene:
        verdict = quality_of_record(source.extra.get("ancestry_quality"))
        if verdict is None:
            verdict = {**judge(None, 0, 0.0), "source": "unknown",
                       "line": "unknown: the learngene file records no verdict on its ancestry"}
        return check_ancestry(verdict, args.learngene, bool(getattr(args, "force", False)))
    card, path = args.ancestry_card
    return gate(card, path, args, source, ds)


def set_cpu_threads(args: argparse.Namespace, device: str) -> None:
    """Apply --threads when the training runs on the CPU."""
    import torch

    from learngene.errors import ConfigError
    from learngene.train.trainer import resolve_device

    if args.threads is None:
        return
    if not 1 <= args.threads <= MAX_THREADS:
        raise ConfigError(f"--threads must be from 1 to {MAX_THREADS}, got {args.threads}")
    if resolve_device(device).type == "cpu":
        torch.set_num_threads(args.threads)


def check_task_counts(args: argparse.Namespace) -> None:
    """Refuse task counts outside their documented bounds before anything is loaded or trained."""
    from learngene.errors import ConfigError

    bounds = [("--tasks", args.tasks, 1, MAX_TASKS), ("--n-way", args.n_way, 2, None),
              ("--test-per-class", args.test_per_class, 0, MAX_IMAGES_PER_CLASS),
              ("--k-shot", getattr(args, "k_shot", None), 1, MAX_IMAGES_PER_CLASS),
              ("--images-per-class", args.images_per_class, 1, MAX_IMAGES_PER_CLASS)]
    strong = getattr(args, "strong_baseline", 0)
    if strong and not 2 <= strong <= MAX_STRONG_FACTOR:
        raise ConfigError(f"--strong-baseline must be from 2 to {MAX_STRONG_FACTOR} (times --epochs), or 0 for "
                          f"none, got {strong}")
    if strong and strong * args.epochs > MAX_EPOCHS:
        raise ConfigError(f"--strong-baseline {strong} x --epochs {args.epochs} is more than {MAX_EPOCHS} epochs")
    for flag, value, low, high in bounds:
        if value is not None and not (low <= value and (high is None or value <= high)):
            raise ConfigError(f"{flag} must be {'from' if high else 'at least'} {low}"
                              f"{f' to {high}' if high else ''}, got {value}")


def check_output_paths(args: argparse.Namespace) -> None:
    """Check the folders this run writes into (--run-dir, --save-models) before any work."""
    if args.run_dir:
        output_dir(args.run_dir, "--run-dir")
    if getattr(args, "save_models", None):
        output_dir(args.save_models, "--save-models")


def add_target_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target-acc", type=target_acc, default="baseline",
                   help="convergence speed = first epoch with at least this test accuracy; 'baseline' = the "
                        "baseline's final accuracy on the same task (default: baseline)")


def add_source_options(p: argparse.ArgumentParser) -> None:
    add_layer_choice(p)
    p.add_argument("--learngene", default=None,
                   help="learngene file from `inherit` (no ancestry checkpoint needed); excludes --ancestry")
    add_recipe_options(p, from_file=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_source_options(p)
    add_task_options(p)
    add_target_option(p)
    add_data(p)
    add_train(p, **TRAIN_DEFAULTS)
    add_threads_option(p)
    add_force_option(p)
    p.add_argument("--strong-baseline", type=int, default=0, metavar="FACTOR",
                   help="also train a stronger random-init reference on each task: the baseline given FACTOR times "
                        f"the epochs (2 to {MAX_STRONG_FACTOR}), so the learngene is compared with a baseline that "
                        "had time to converge, not only with an equal budget (default: 0 = off)")
    p.add_argument("--batched", choices=("auto", "on", "off"), default="auto",
                   help="train each descendant and its baseline as one vmap-batched model (auto: on a GPU, where "
                        "it is faster; on a CPU the two train in lockstep, one epoch of each in turn)")
    p.add_argument("--save-models", default=None, metavar="DIR",
                   help="save every trained model (learngene descendant and baseline of each task) as "
                        "DIR/task<i>-<role>.safetensors with a model card (default: not saved)")
    add_run_dir(p)


def model_saver(folder: str | None, recipe, cfg, dataset: str, command: str):
    """`train_pair`'s on_trained callback that saves each trained model with its card (None: no saving)."""
    if not folder:
        return None
    from pathlib import Path

    from learngene.models import ModelCard, save_checkpoint

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)

    def save(task: int, role: str, model, result) -> None:
        card = ModelCard(spec=model.lg_spec, dataset=dataset, epochs=cfg.epochs, seed=cfg.seed, command=command,
                         extra={"role": role, "task": task, "final_test_acc": result.final_acc(),
                                "diverged": result.diverged, "train_config": cfg.to_dict(),
                                "recipe": (recipe if role == "learngene" else recipe.baseline()).to_dict()})
        path = save_checkpoint(model.cpu(), out / f"task{task}-{role}.safetensors", card)
        print(f"saved {path}")

    return save


PREDICTIONS_FILE = "predictions.json"
SAMPLES_PER_CLASS = 6  # test images per class kept as pictures beside the predictions


class PredictionLog:
    """`outputs/predictions.json`: per task, its classes, the test labels and every trained model's predicted
    labels (a confusion matrix needs nothing more), plus two PNG strips beside it: the task's support images
    (`support-task<i>.png`) and the first few test images of each class (`test-task<i>.png`, positions in
    `samples`), so the run folder alone can show what the models saw and said. Cheap: one forward pass over
    the test set per model, a few kilobytes of images per task."""

    def __init__(self, folder, class_names: list[str]):
        self.folder, self.class_names = folder, list(class_names)
        self.tasks: list[dict[str, Any]] = []

    def trained(self, task, role: str, model, result) -> None:
        from learngene.descend.compare import predict

        if not self.tasks or self.tasks[-1]["task"] != task.index:
            self.tasks.append(self._task(task))
        entry = self.tasks[-1]
        entry["predictions"][role] = predict(model, task.test_x).tolist()
        entry["diverged"][role] = bool(result.diverged)

    def _task(self, task) -> dict[str, Any]:
        import torch

        labels = task.test_y.tolist()
        samples = [i for c in range(task.n_way) for i in [j for j, y in enumerate(labels) if y == c][:SAMPLES_PER_CLASS]]
        for name, images in ((f"support-task{task.index}.png", task.train_x),
                             (f"test-task{task.index}.png", task.test_x[torch.tensor(samples, dtype=torch.long)])):
            save_strip(images, self.folder / name)
        return {"task": task.index, "classes": list(task.classes),
                "class_names": [self.class_names[c] for c in task.classes], "n_way": task.n_way,
                "k_shot": task.k_shot, "labels": labels, "predictions": {}, "diverged": {},
                "support_image": f"support-task{task.index}.png", "support_labels": task.train_y.tolist(),
                "test_image": f"test-task{task.index}.png", "samples": samples,
                "image_size": int(task.test_x.shape[-1])}

    def write(self) -> None:
        atomic_write_json(self.folder / PREDICTIONS_FILE, {"tasks": self.tasks})


def save_strip(images, path) -> None:
    """uint8 images (N, 3, H, W) side by side in one PNG (N * W pixels wide); nothing for N = 0."""
    import torch
    from PIL import Image

    if len(images) == 0:
        return
    strip = torch.cat(list(images.cpu()), dim=2)  # (3, H, N * W)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(strip.permute(1, 2, 0).contiguous().numpy()).save(tmp, format="PNG")
    tmp.replace(path)


def resolve_source(args: argparse.Namespace, n_way: int) -> tuple[Any, Any, list[str] | None, str, Any]:
    """(source, recipe, layer names, description, bound split) from --learngene or --ancestry + layer choice.

    The bound split (`learngene.data.binding.Bound`) is the one the ancestry's card (or the learngene
    file, which carries it) records; `load_data` applies or checks it.
    """
    from learngene.data.binding import bound_of, bound_of_card
    from learngene.errors import ConfigError
    from learngene.inherit.choose import layer_choice, load_ancestry
    from learngene.inherit.learngene_file import load_learngene
    from learngene.inherit.options import recipe_for, recipe_for_spec
    from learngene.models import layer_view

    if args.learngene:
        if args.ancestry or args.layers or args.preset or args.similarity:
            raise ConfigError("--learngene already fixes the ancestry and its layers; drop --ancestry/--layers/"
                              "--preset/--similarity (or drop --learngene)")
        lg = load_learngene(args.learngene)
        stored = lg.extra.get("recipe") if isinstance(lg.extra.get("recipe"), dict) else None
        recipe = recipe_for_spec(lg.spec, lg.n_layers, lg.layers, [tuple(s) for s in lg.io_shapes],
                                 num_classes=n_way, **recipe_kwargs(args, stored))
        names = [f"layer {i}" for i in range(lg.n_layers)]
        for i, name in zip(lg.layers, lg.layer_names, strict=True):
            names[i] = name
        split = lg.extra.get("split") if isinstance(lg.extra.get("split"), dict) else None
        bound = bound_of(split, str(lg.extra.get("dataset") or ""), f"learngene {args.learngene}")
        return lg, recipe, names, f"learngene {args.learngene} (layers {list(lg.layers)}, {lg.method})", bound
    ancestry, card, path = load_ancestry(args.ancestry)
    args.ancestry_card = (card, path)  # for its quality gate (`gate_source`), once the data are loaded
    choice = layer_choice(ancestry, layers=args.layers, preset=args.preset, similarity=args.similarity,
                           ancestry_sha256=card.sha256)
    view = layer_view(ancestry)
    recipe = recipe_for(ancestry, choice.layers, view, num_classes=n_way, **recipe_kwargs(args))
    return (ancestry, recipe, view.names, f"ancestry {path} (layers {choice.layers}, {choice.method})",
            bound_of_card(card, path))


def data_config(args: argparse.Namespace, ds) -> dict[str, Any]:
    """What a run config records about its data: spec, seed, split (and where it came from), flip."""
    return {"dataset": ds.meta.get("spec", args.dataset), "data_seed": ds.meta.get("data_seed"),
            "split_file": args.split_file, "split_from": ds.meta.get("split_from", "data options"),
            "split": ds.split.to_dict(), "flip": ds.meta.get("flip")}


def diverged_record(rep: Reporter, pairs: list, what: str) -> str:
    """Write one clear 'diverged' record for the runs that diverged; returns its message."""
    bad = [{"task": p.task, "model": r.role, "settings": p.settings, "epoch": len(r.history)}
           for p in pairs for r in (p.learngene, p.baseline) if r.diverged]
    msg = (f"{what}: {len(bad)} run(s) diverged (loss or weights became NaN or infinite), e.g. the "
           f"{bad[0]['model']} of task {bad[0]['task']} at epoch {bad[0]['epoch']}; lower --lr")
    rep.metric({"kind": "diverged", "diverged": True, "runs": bad, "message": msg})
    return msg


def ledger_of(pairs: list, sizes: dict[int, tuple[int, int]], recipe, source, args: argparse.Namespace,
              ds) -> dict[str, Any]:
    """The cost ledger of a train run (`learngene.descend.ledger`): per arm, and the ancestry's own cost."""
    from learngene.descend.ledger import ancestry_cost, pair_ledger
    from learngene.inherit.build import build_descendant
    from learngene.train.flops import flops_per_image

    fpi = flops_per_image(build_descendant(recipe.with_classes(args.n_way), source, 0), ds.image_size)
    card = getattr(args, "ancestry_card", (None, None))[0]
    cost = None
    if card is not None:
        cost = ancestry_cost(card) or ancestry_cost(card, flops_per_image(source, ds.image_size))
    elif isinstance(getattr(source, "extra", None), dict):
        cost = source.extra.get("ancestry_cost")
    test = (args.test_per_class or 0) * args.n_way  # 0 = all held-back images: counted per task where known
    return pair_ledger(pairs, sizes, fpi, cost, test_images=test)


def pair_batching(args: argparse.Namespace, recipe, source, cfg) -> bool:
    """Whether each pair trains as one batched model (`--batched`); "on" refuses a pair that cannot be."""
    from learngene.descend.compare import pair_batching as decide

    return decide(args.batched, recipe, source, args.n_way, cfg)[0]


def run(args: argparse.Namespace) -> int:
    from learngene.data import sample_tasks
    from learngene.descend.compare import format_strong_baseline, summarize_strong_baseline, train_pair
    from learngene.descend.ledger import format_ledger_dict
    from learngene.descend.summary import format_pair_summary, summarize_pairs

    cfg = train_config(args)
    check_task_counts(args)
    check_output_paths(args)
    set_cpu_threads(args, cfg.device)
    source, recipe, names, what, bound = resolve_source(args, args.n_way)
    ds = load_data(args, bound)
    quality = gate_source(args, source, ds)
    cfg = train_config(args, ds)
    tasks = sample_tasks(ds, args.tasks, "novel", args.n_way, args.k_shot, args.task_seed,
                         args.test_per_class or None)
    print(what)
    print(recipe.describe(names))
    config = {"command": command_line(), "source": what, "recipe": recipe.to_dict(), "train": cfg.to_dict(),
              "tasks": {"n_way": args.n_way, "k_shot": args.k_shot, "tasks": args.tasks, "task_seed": args.task_seed,
                        "test_per_class": args.test_per_class, "dataset": ds.meta.get("spec", args.dataset)},
              "data": data_config(args, ds), "target_acc": args.target_acc, "ancestry_quality": quality,
              "batched": pair_batching(args, recipe, source, cfg)}
    with Reporter(args.run_dir, total=(2 + args.strong_baseline) * cfg.epochs * len(tasks), desc="train") as rep:
        rep.metric({"kind": "config", **config})
        save = model_saver(args.save_models, recipe, cfg, ds.name, config["command"])
        preds = None if rep.outputs_dir is None else PredictionLog(rep.outputs_dir, ds.class_names)

        def on_trained(task, role, model, result) -> None:
            if preds is not None:
                preds.trained(task, role, model, result)
            if save is not None:  # moves the model to the CPU: after the predictions
                save(task.index, role, model, result)

        pairs, sizes = [], {}
        for t in tasks:  # tasks are built one at a time
            sizes[t.index] = (len(t.train_y), len(t.test_y))
            pairs.append(train_pair(recipe, source, t, cfg, rep, seed=cfg.seed, strong_factor=args.strong_baseline,
                                    on_trained=lambda role, m, res, t=t: on_trained(t, role, m, res),
                                    batched=config["batched"]))
            if preds is not None:
                preds.write()
        summary = summarize_pairs(pairs, args.target_acc)
        summary["ledger"] = ledger_of(pairs, sizes, recipe, source, args, ds)
        strong = summarize_strong_baseline(pairs)
        if strong is not None:
            summary["strong_baseline"] = strong
        rep.metric({"kind": "summary", **summary})
        if rep.outputs_dir is not None:
            atomic_write_json(rep.outputs_dir / "summary.json",
                              {**config, "summary": summary, "pairs": [p.to_dict() for p in pairs]})
        diverged = diverged_record(rep, pairs, "train") if any(p.diverged for p in pairs) else ""
    print(format_pair_summary(summary))
    if strong is not None:
        print(format_strong_baseline(strong, summary["ledger"]["flops_per_image"]["train"]))
    print(format_ledger_dict(summary["ledger"]))
    if diverged:
        print(f"error: {diverged}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0
