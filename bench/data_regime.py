"""The data-regime curve: learngene vs random init vs fine-tuning the whole ancestry, from K = 1 image per
class up to most of each class, per shipped ancestry; where random init starts to learn, and where the
learngene's advantage shrinks or vanishes (the crossover K).

Every K trains the three arms on the same novel 5-way tasks (same seed, data order and epochs), each
arm judged by the one three-state rule (learned / not clearly above chance / at chance). The batch
grows with the data (a tenth of the training images, 10 to 64), so that K = 250 is not 125 steps of
10 images per epoch. Rows are written as they finish (`<out>/data_regime.csv`), so a stopped run keeps
what it measured; `--from-csv` makes the table and figure again from them.

    python -m bench.data_regime --threads 1 --write-docs            # K = 1..250, 3 tasks, 30 epochs
    python -m bench.data_regime --shots 1,5,10,20,50 --tasks 2      # fewer points
    python -m bench.data_regime --from-csv bench/out/data_regime/data_regime.csv --write-docs
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any

from bench._common import ROOT, add_common_args, command_line, finish, machine_info, run_cli, section, setup

ARMS = ("learngene", "baseline", "finetune")
STEMS = ("lg_vit_tiny", "lg_resnet_mini")
FIELDS = ["ancestry", "k_shot", "task", "arm", "final_acc", "epochs", "images_seen", "flops", "seconds"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.data_regime", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shots", default="1,5,10,20,50,100,250", help="K values (default: 1,5,10,20,50,100,250)")
    p.add_argument("--tasks", type=int, default=3, help="novel 5-way tasks per K (default: 3)")
    p.add_argument("--epochs", type=int, default=30, help="(default: 30)")
    p.add_argument("--test-per-class", type=int, default=40, help="(default: 40)")
    p.add_argument("--ancestry", action="append", default=None, help="stem(s) of shipped ancestries (default: both)")
    p.add_argument("--from-csv", default=None, help="train nothing: the table and figure from a CSV of rows")
    p.add_argument("--figure", default=str(ROOT / "docs" / "figures" / "data_regime.svg"),
                   help="where the figure goes with --write-docs (default: docs/figures/data_regime.svg)")
    add_common_args(p, "data_regime")
    return p.parse_args(argv)


def recipes(ancestry, layers: list[int]) -> dict[str, Any]:
    """The three arms: the learngene (shipped CKA layers), random init, every ancestry layer (fine-tuning)."""
    from learngene.inherit.recipe import Recipe
    from learngene.inherit.resize import stages_of
    from learngene.models import layer_view

    view = layer_view(ancestry)
    common = dict(num_classes=5, io_shapes=view.io_shapes(), stages=stages_of(ancestry.lg_spec))
    lg = Recipe.from_layers(ancestry.lg_spec, len(view), layers, **common)
    return {"learngene": lg, "baseline": lg.baseline(),
            "finetune": Recipe.from_layers(ancestry.lg_spec, len(view), list(range(len(view))), **common)}


def run_ancestry(stem: str, args: argparse.Namespace, writer, say=print) -> None:
    from learngene.cli.sizes import default_layers
    from learngene.data import sample_tasks
    from learngene.data.binding import bound_of_card, load_bound
    from learngene.descend.compare import train_one
    from learngene.inherit.build import build_descendant
    from learngene.inherit.choose import load_ancestry
    from learngene.train.config import TrainConfig
    from learngene.train.flops import flops_per_image

    ancestry, card, path = load_ancestry(ROOT / "assets" / f"{stem}.safetensors")
    layers = default_layers(path, card.sha256)
    ds, _ = load_bound(None, bound_of_card(card, path), images_per_class=60 if args.quick else None)
    arms = recipes(ancestry, layers)
    fpi = flops_per_image(build_descendant(arms["baseline"], ancestry, 0), ds.image_size)
    for k in [int(v) for v in args.shots.split(",")]:
        tasks = sample_tasks(ds, args.tasks, "novel", 5, k, 0, args.test_per_class)
        batch = min(64, max(10, 5 * k // 10))
        cfg = TrainConfig(epochs=args.epochs, batch_size=batch, lr=1e-3, weight_decay=0.05, device=args.device,
                          eval_every=args.epochs, flip=bool(ds.meta.get("flip", True)))
        for task in tasks:
            for arm, recipe in arms.items():
                run = train_one(build_descendant(recipe, ancestry, 0), cfg, task, role="learngene")
                n = len(task.train_y)
                writer({"ancestry": stem, "k_shot": k, "task": task.index, "arm": arm,
                        "final_acc": run.final_acc(5), "epochs": len(run.history), "images_seen": len(run.history) * n,
                        "flops": len(run.history) * n * fpi["train"] + len(task.test_y) * fpi["forward"],
                        "seconds": round(run.wall_time, 2)})
            say(f"{stem} K={k} task {task.index} done")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["k_shot"], r["task"] = int(r["k_shot"]), int(r["task"])
        r["final_acc"] = float(r["final_acc"]) if r["final_acc"] not in ("", "None") else None
        r["flops"], r["seconds"] = float(r["flops"]), float(r["seconds"])
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """{ancestry: {K: {arm: {"mean", "lo", "hi", "n", "state", "flops", "seconds"}, "gain": ...}}}."""
    from learngene.descend.summary import accuracy_interval, accuracy_state

    out: dict[str, dict[int, dict[str, Any]]] = {}
    for stem in dict.fromkeys(r["ancestry"] for r in rows):
        out[stem] = {}
        for k in sorted({r["k_shot"] for r in rows if r["ancestry"] == stem}):
            cell = {}
            for arm in ARMS:
                got = [r for r in rows if r["ancestry"] == stem and r["k_shot"] == k and r["arm"] == arm]
                accs = [r["final_acc"] for r in got if r["final_acc"] is not None]
                if not accs:
                    continue
                mean, lo, hi = accuracy_interval(accs)
                cell[arm] = {"mean": mean, "lo": lo, "hi": hi, "n": len(accs), "state": accuracy_state(accs, 0.2),
                             "flops": sum(r["flops"] for r in got) / len(got),
                             "seconds": sum(r["seconds"] for r in got) / len(got)}
            by_task = {(r["task"], r["arm"]): r["final_acc"] for r in rows if r["ancestry"] == stem and r["k_shot"] == k}
            gains = [by_task[(t, "learngene")] - by_task[(t, "baseline")] for t, a in by_task
                     if a == "learngene" and by_task.get((t, "baseline")) is not None and by_task[(t, a)] is not None]
            if gains:
                mean, lo, hi = accuracy_interval(gains)
                cell["gain"] = {"mean": mean, "lo": lo, "hi": hi, "n": len(gains)}
            out[stem][k] = cell
    return out


def crossover(cells: dict[int, dict[str, Any]]) -> str:
    """Where the learngene's advantage vanishes: the first K, after one with a positive gain, from which the
    paired gain over random init reaches 0 at every larger K measured too (its interval's lower end; the
    mean with fewer than 3 tasks). A K in between whose interval reaches 0 while a larger K's gain is
    clearly positive again is named as unclear, not as the crossover: a few tasks make wide intervals."""
    lows = []
    for k, cell in cells.items():
        g = cell.get("gain")
        if g is not None:
            lows.append((k, g["lo"] if g["lo"] is not None else g["mean"]))
    first = next((i for i, (_, low) in enumerate(lows) if low > 0), None)
    if first is None:
        return "no gain at any K measured"
    after = lows[first + 1:]
    vanish = next((k for i, (k, _) in enumerate(after) if all(low <= 0 for _, low in after[i:])), None)
    unclear = [k for k, low in after if low <= 0 and (vanish is None or k < vanish)]
    text = f"K = {vanish}" if vanish is not None else f"none up to K = {max(cells)}: the gain is clearly positive there"
    if unclear:
        text += f"; not clear at K = {', '.join(map(str, unclear))}, where the gain's interval reaches 0"
    return text


def markdown(summary: dict[str, dict[int, dict[str, Any]]]) -> str:
    from learngene.descend.stats import fmt_ci

    short = {"learned": "learned", "not clearly above chance": "not clear", "at chance": "at chance"}
    parts = []
    for stem, cells in summary.items():
        lines = [f"**{stem}** (crossover, where the advantage vanishes: {crossover(cells)})", "",
                 "| K | learngene % | baseline % | fine-tune % | gain (points) | baseline | GFLOPs per run (all arms) |",
                 "|---:|---|---|---|---|---|---:|"]
        for k, cell in cells.items():
            def acc(arm: str, cell=cell) -> str:
                a = cell.get(arm)
                if not a:
                    return "n/a"
                half = (a["hi"] - a["mean"]) if a["hi"] is not None else float("nan")
                return fmt_ci(a["mean"], half)
            g = cell.get("gain")
            gain = fmt_ci(g["mean"], (g["hi"] - g["mean"]) if g and g["hi"] is not None else float("nan")) if g else "n/a"
            flops = cell.get("baseline", {}).get("flops")
            lines.append(f"| {k} | {acc('learngene')} | {acc('baseline')} | {acc('finetune')} | {gain} | "
                         f"{short.get(cell.get('baseline', {}).get('state'), 'n/a')} | "
                         f"{'n/a' if flops is None else f'{flops / 1e9:.1f}'} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def coverage(rows: list[dict[str, Any]], shots: str) -> str:
    """What was measured (tasks per K) and which of the asked Ks were not, per ancestry."""
    asked = [int(v) for v in shots.split(",")]
    lines = []
    for stem in dict.fromkeys(r["ancestry"] for r in rows):
        mine = [r for r in rows if r["ancestry"] == stem]
        done = sorted({r["k_shot"] for r in mine})
        tasks = len({r["task"] for r in mine})
        missing = [k for k in asked if k not in done]
        lines.append(f"- {stem}: {tasks} task(s) per K; K = {', '.join(map(str, done))} measured"
                     + (f"; K = {', '.join(map(str, missing))} not measured here (`python -m bench.data_regime --threads 1 "
                        "--write-docs` measures them all)" if missing else ""))
    return "\n".join(lines)


def figure(summary: dict[str, dict[int, dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summary), figsize=(5.5 * len(summary), 4), squeeze=False)
    for ax, (stem, cells) in zip(axes[0], summary.items(), strict=True):
        ks = list(cells)
        for arm, style in zip(ARMS, ("o-", "s--", "^:"), strict=True):
            pts = [(k, cells[k][arm]) for k in ks if arm in cells[k]]
            means = [100 * a["mean"] for _, a in pts]
            errs = [100 * (a["hi"] - a["mean"]) if a["hi"] is not None else 0 for _, a in pts]
            ax.errorbar([k for k, _ in pts], means, yerr=errs, fmt=style, capsize=3, label=arm)
        ax.axhline(20, color="grey", lw=0.8, ls=":", label="chance (5-way)")
        ax.set_xscale("log")
        ax.set_xlabel("K (training images per class)")
        ax.set_ylabel("final test accuracy %")
        ax.set_title(stem)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = setup(args)
    args.device = device.type
    out = Path(args.out)
    csv_path = Path(args.from_csv) if args.from_csv else out / "data_regime.csv"
    if not args.from_csv:
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, FIELDS)
            w.writeheader()

            def write(row: dict[str, Any]) -> None:
                w.writerow(row)
                f.flush()

            t0 = time.perf_counter()
            for stem in args.ancestry or STEMS:
                run_ancestry(stem, args, write)
            print(f"trained in {time.perf_counter() - t0:.0f} s")
    rows = read_rows(csv_path)
    summary = summarize(rows)
    table = markdown(summary) + "\n\n" + coverage(rows, args.shots)
    print(table)
    fig = Path(args.figure) if args.write_docs else out / "data_regime.svg"
    figure(summary, fig)
    rel = fig.relative_to(ROOT / "docs") if fig.is_relative_to(ROOT / "docs") else fig
    body = (f"Novel 5-way tasks, final test accuracy mean ± 95% t-interval over tasks; {args.epochs} epochs, "
            "lr 1e-3, wd 0.05, batch a tenth of the training images (10 to 64); *learngene*: the shipped CKA "
            "layers, the rest random; *fine-tune*: every ancestry layer and the stem; *baseline*: random init. "
            "Gain: learngene minus baseline, paired over tasks. The baseline column is the three-state rule "
            "(learned / not clearly above chance / at chance). GFLOPs: one run's training and its evaluation "
            "(the three arms share the architecture, so the same). With fewer than 3 tasks per K there is no "
            "interval: the rule then reads the mean alone.\n\n" + table + f"\n\n![data-regime curve]({rel})\n")
    finish(args, "data_regime", section("data_regime", "The data-regime curve: where random init catches up",
                                        body, command_line("bench.data_regime", argv), machine_info(device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
