"""The size study: descendants narrower, shallower or as large as the ancestry, initialised three
ways, on the same novel tasks.

For every size (a width multiple and a depth) and every task, three descendants of that size are
trained with one recipe (same seed, data order and epochs), differing only in where their weights
start:

* **learngene**: the chosen learngene layers (e.g. the CKA selection), mapped into the size by
  consistent weight selection, the other layers random (or repeated / interpolated with `fill`);
* **random**: random init (the baseline);
* **weight selection**: every ancestry layer and the stem, mapped the same way (Xu et al., 2023: a
  smaller model initialised from a larger one). At the ancestry's own size this is plain fine-tuning.

Reported per size: parameters, the learngene's share of them, mean final accuracy ± 95% t-interval of
each initialisation, paired gains over random init (with the paired t-test's p-value), training time,
and the cost ledger (`learngene.descend.ledger`): per initialisation the epochs, images seen, FLOPs
(counted by `learngene.train.flops`) and wall time, and the ancestry's own cost amortised over the
learngene descendants it serves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from learngene.train.settings import TaskTraining

INITS = ("learngene", "random", "weight-selection")
EQUAL = "ws-equal"
"""Weight selection at the learngene's budget: the first ancestry layers (and the stem) whose inherited
parameters come closest to the learngene's, mapped into the size the same way (`SizeStudy.equal_budget`)."""
INTERP = "learngene-interpolate"
"""The learngene with its other slots TLEG-interpolated between inherited layers (`SizeStudy.interpolate_row`)."""


@dataclass(frozen=True)
class Size:
    """A descendant size: `width` times the ancestry's width, `depth` layers (None: the ancestry's)."""

    width: float = 1.0
    depth: int | None = None

    def label(self, n_layers: int) -> str:
        return f"width {self.width:g}x, depth {self.depth or n_layers}"


@dataclass(kw_only=True)
class SizeStudy(TaskTraining):
    """The size study: `TaskTraining` (its tasks, epochs, lr...) at each of `sizes`, with `layers` inherited."""

    sizes: tuple[Size, ...]
    layers: tuple[int, ...]  # the learngene (ancestry layer indices)
    fill: str = "random"
    placement: str = "original"
    equal_budget: bool = False  # also train EQUAL: weight selection with the learngene's inherited parameters
    interpolate_row: bool = False  # also train INTERP: the learngene with fill "interpolate"

    @property
    def inits(self) -> tuple[str, ...]:
        return INITS + ((EQUAL,) if self.equal_budget else ()) + ((INTERP,) if self.interpolate_row else ())


@dataclass
class SizeRow:
    size: Size
    params: int
    learngene_params: int  # parameters of the learngene descendant initialised from the learngene
    accs: dict[str, list[float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    equal_params: int | None = None  # inherited parameters of EQUAL (when trained)
    flops_per_image: dict[str, int] | None = None  # of this size's architecture (every init shares it)
    costs: list[tuple] = field(default_factory=list)  # per run: `ledger.runs_ledger`'s entry


def _recipes(ancestry, size: Size, study: SizeStudy) -> dict[str, Any]:
    from learngene.inherit.options import recipe_for
    from learngene.inherit.resize import stages_of
    from learngene.models import layer_view

    view = layer_view(ancestry)
    n = len(view)
    depth = size.depth or n
    restaged = stages_of(ancestry.lg_spec) is not None
    common = dict(num_classes=study.n_way, width=size.width, depth=depth, view=view)
    placement = study.placement
    if placement == "original" and depth < max(study.layers) + 1 and not restaged:
        placement = "bottom"  # a shallower ViT: the learngene layers stacked from the bottom
    lg = recipe_for(ancestry, study.layers, placement=placement, fill=study.fill, **common)
    # weight selection: every ancestry layer, in order, as many as the descendant has (a shallower ViT
    # takes the first `depth`; a restaged ResNet keeps each stage's first blocks), and the stem
    if restaged:
        everything = recipe_for(ancestry, range(n), **common)
    else:
        everything = recipe_for(ancestry, range(min(depth, n)), placement="bottom", **common)
    return {"learngene": lg, "random": lg.baseline(), "weight-selection": everything}


def equal_budget_recipe(ancestry, size: Size, study: SizeStudy, target: int) -> tuple[Any, int]:
    """(recipe, inherited parameters) of weight selection from the first m ancestry layers, the m whose
    inherited parameters come closest to `target` (the learngene's)."""
    from learngene.inherit.build import build_descendant, inherited_parameters
    from learngene.inherit.options import recipe_for
    from learngene.inherit.resize import stages_of
    from learngene.models import layer_view

    view = layer_view(ancestry)
    n = len(view)
    depth = size.depth or n
    placement = {} if stages_of(ancestry.lg_spec) is not None else {"placement": "bottom"}
    best = None
    for m in range(1, min(depth, n) + 1):
        recipe = recipe_for(ancestry, range(m), view, num_classes=study.n_way, width=size.width, depth=depth,
                            **placement)
        _, taken = inherited_parameters(build_descendant(recipe, ancestry, seed=study.seed))
        if best is None or abs(taken - target) < abs(best[1] - target):
            best = (recipe, taken)
    assert best is not None
    return best


def run_size_study(ancestry, ds, study: SizeStudy, device: str = "cpu",
                   log: Callable[[str], None] = print) -> list[SizeRow]:
    """Train every (size, task, initialisation); returns one row per size."""
    from learngene.data import sample_tasks
    from learngene.descend.compare import final_accuracy, train_one
    from learngene.inherit.build import build_descendant, inherited_parameters
    from learngene.models import layer_view
    from learngene.train.config import TrainConfig
    from learngene.train.flops import flops_per_image

    n = len(layer_view(ancestry))
    cfg = TrainConfig(epochs=study.epochs, batch_size=study.batch_size, lr=study.lr,
                      weight_decay=study.weight_decay, warmup_epochs=0, eval_every=study.epochs,
                      device=device, seed=study.seed, flip=bool(ds.meta.get("flip", True))).validated()
    tasks = sample_tasks(ds, study.tasks, "novel", study.n_way, study.k_shot, study.task_seed,
                         study.test_per_class or None)
    rows = []
    for size in study.sizes:
        recipes = _recipes(ancestry, size, study)
        probe = build_descendant(recipes["learngene"], ancestry, seed=study.seed)
        total, taken = inherited_parameters(probe)
        row = SizeRow(size, total, taken, {k: [] for k in study.inits}, {k: 0.0 for k in study.inits})
        row.flops_per_image = flops_per_image(probe, ds.image_size)
        if study.equal_budget:
            recipes[EQUAL], row.equal_params = equal_budget_recipe(ancestry, size, study, taken)
        if study.interpolate_row:
            recipes[INTERP] = _recipes(ancestry, size, replace(study, fill="interpolate"))["learngene"]
        log(f"{size.label(n)}: {total:,} parameters, {taken:,} from the learngene")
        for task in tasks:
            for init in study.inits:
                model = build_descendant(recipes[init], ancestry, seed=study.seed)
                t0 = time.perf_counter()
                res = train_one(model, cfg, task)
                seconds = time.perf_counter() - t0
                row.seconds[init] += seconds
                row.costs.append((init, res.history, len(task.train_y), len(task.test_y), seconds, init == "learngene"))
                row.accs[init].append(final_accuracy(res.history, study.n_way))
            log(f"  task {task.index}: " + ", ".join(f"{k} {row.accs[k][-1]:.1%}" for k in study.inits))
        rows.append(row)
    return rows


def summarize(rows: list[SizeRow], n_layers: int, ancestry_params: int,
              ancestry_cost: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """JSON-ready per-size summaries: mean ± 95% interval per init, paired gains over random with p, and
    the size's cost ledger (`ledger`; `ancestry_cost`: the ancestry's, `ledger.ancestry_account`)."""
    from learngene.descend.ledger import runs_ledger
    from learngene.descend.stats import mean_ci, paired_tests

    out = []
    for row in rows:
        rec: dict[str, Any] = {"size": row.size.label(n_layers), "width": row.size.width,
                               "depth": row.size.depth or n_layers, "params": row.params,
                               "params_vs_ancestry": row.params / ancestry_params,
                               "learngene_params": row.learngene_params, "tasks": len(row.accs["random"])}
        for init in row.accs:
            mean, half = mean_ci(row.accs[init])
            rec[init] = {"mean": mean, "ci95": half, "seconds": row.seconds[init]}
        if row.equal_params is not None:
            rec["ws-equal_params"] = row.equal_params
        for init in [i for i in row.accs if i != "random"]:
            gains = [a - b for a, b in zip(row.accs[init], row.accs["random"], strict=True)]
            mean, half = mean_ci(gains)
            tests = paired_tests(gains)
            rec[f"{init}_gain"] = {"mean": mean, "ci95": half, "p": tests["t_p"], "wilcoxon_p": tests["wilcoxon_p"]}
        if EQUAL in row.accs:  # the learngene against weight selection at its own budget, paired
            diffs = [a - b for a, b in zip(row.accs["learngene"], row.accs[EQUAL], strict=True)]
            mean, half = mean_ci(diffs)
            rec["learngene_vs_equal"] = {"mean": mean, "ci95": half, "p": paired_tests(diffs)["t_p"]}
        if row.flops_per_image is not None:
            rec["ledger"] = runs_ledger(row.costs, row.flops_per_image, ancestry_cost, arms=list(row.accs),
                                        descendant_label="learngene descendant (this size)")
        out.append(rec)
    return out


def markdown(summary: list[dict[str, Any]], arch: str) -> str:
    """The size table of one ancestry."""
    from learngene.descend.stats import fmt_ci

    lines = [f"| {arch} size | params (of ancestry) | from learngene | learngene % | random init % | "
             "weight selection % | learngene − random | weight sel. − random | train s (lg / rand / ws) |",
             "|---|---|---|---|---|---|---|---|---|"]
    def gain(g: dict[str, Any]) -> str:
        p = "" if g["p"] is None else f" (p={g['p']:.2g})"
        return f"{fmt_ci(g['mean'], g['ci95'])}{p}"

    for r in summary:
        lines.append(
            f"| {r['size']} | {r['params']:,} ({r['params_vs_ancestry']:.0%}) | {r['learngene_params']:,} | "
            f"{fmt_ci(r['learngene']['mean'], r['learngene']['ci95'])} | {fmt_ci(r['random']['mean'], r['random']['ci95'])} | "
            f"{fmt_ci(r['weight-selection']['mean'], r['weight-selection']['ci95'])} | {gain(r['learngene_gain'])} | "
            f"{gain(r['weight-selection_gain'])} | {r['learngene']['seconds']:.0f} / {r['random']['seconds']:.0f} / "
            f"{r['weight-selection']['seconds']:.0f} |")
    if any(INTERP in r for r in summary):
        lines += ["", f"| {arch} size | learngene, other slots random | learngene, other slots interpolated | "
                  "interpolated − random init |", "|---|---|---|---|"]
        for r in summary:
            if INTERP in r:
                lines.append(f"| {r['size']} | {fmt_ci(r['learngene']['mean'], r['learngene']['ci95'])} | "
                             f"{fmt_ci(r[INTERP]['mean'], r[INTERP]['ci95'])} | {gain(r[INTERP + '_gain'])} |")
    if any(EQUAL in r for r in summary):
        lines += ["", f"| {arch} size | learngene (its inherited params) | weight selection at that budget (params) | "
                  "learngene − it |", "|---|---|---|---|"]
        for r in summary:
            if EQUAL not in r:
                continue
            diff = r.get("learngene_vs_equal")
            lines.append(f"| {r['size']} | {fmt_ci(r['learngene']['mean'], r['learngene']['ci95'])} "
                         f"({r['learngene_params']:,}) | {fmt_ci(r[EQUAL]['mean'], r[EQUAL]['ci95'])} "
                         f"({r.get('ws-equal_params', 0):,}) | {gain(diff) if diff else 'n/a'} |")
    return "\n".join(lines)


def ledger_markdown(summary: list[dict[str, Any]], arch: str) -> str:
    """The cost ledger of each size that has one (`summarize`), as fenced text; "" when none has."""
    from learngene.descend.ledger import format_ledger_dict

    blocks = [f"{arch}, {r['size']}:\n\n```text\n{format_ledger_dict(r['ledger'])}\n```" for r in summary
              if r.get("ledger")]
    return "\n\n".join(blocks)


def figure(summaries: dict[str, list[dict[str, Any]]], path) -> None:
    """Final accuracy against descendant parameters, one line per initialisation and ancestry (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summaries), figsize=(5.2 * len(summaries), 3.8), squeeze=False)
    for ax, (arch, rows) in zip(axes[0], summaries.items(), strict=True):
        rows = sorted(rows, key=lambda r: r["params"])
        for init, style in zip(INITS, ("o-", "s--", "^:"), strict=True):
            ys = [r[init]["mean"] * 100 for r in rows]
            err = [r[init]["ci95"] * 100 if math.isfinite(r[init]["ci95"]) else 0 for r in rows]
            ax.errorbar([r["params"] / 1e6 for r in rows], ys, yerr=err, fmt=style, capsize=3,
                        label="weight selection (all layers)" if init == "weight-selection" else init)
        ax.set_xscale("log")
        ax.set_xlabel("descendant parameters (millions, log scale)")
        ax.set_ylabel("final test accuracy (%)")
        ax.set_title(arch)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def to_json(study: SizeStudy) -> dict[str, Any]:
    d = asdict(study)
    d["sizes"] = [asdict(s) for s in study.sizes]
    return d
