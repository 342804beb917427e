"""Numbers, tables and figures of the four-advantage study (`learngene.descend.advantages`) from its runs.

Statistics come from the library (`learngene.descend.stats` on scipy, `learngene.descend.compare`,
`learngene.descend.summary.above_chance`), so the benchmark reports exactly what the sweep summaries
and the UI report: a diverged run counts as chance accuracy (1 / n_way) and is counted; a missing or
non-finite accuracy is left out of every mean and counted as *dropped*; mean ± 95% t-interval over
tasks; every gain is paired per task, with its paired t-test and Wilcoxon signed-rank p-values and
the number of tasks n; spread = max - min of the per-cell means.

Convergence is measured three ways: to the baseline's final accuracy on the same task (as `learngene
train`), and to two fixed targets that do not depend on the baseline having learned: 50% accuracy,
and the midpoint between chance and the row's own final accuracy on the task. Wherever the baseline
ends at chance (`above_chance`), the speed-up to its final accuracy only measures reaching chance,
and the report says so.

`load_csv` rebuilds the results from a study's `advantages.csv`, so the tables and figures can be
made again without training (`python -m bench.advantages --from-csv docs/advantages.csv`).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learngene.descend.compare import epochs_to_target, final_accuracy
from learngene.descend.stats import finite, fmt_ci, fmt_p, mean_ci, paired_tests, std
from learngene.descend.summary import CHANCE_MARGIN, FIXED_TARGET, above_chance
from learngene.tables import fmt, md_table


@dataclass
class AncestryResult:
    path: str
    arch: str
    layers: dict[str, list[int]]
    runs: list[Any]  # learngene.descend.advantages.Run
    seconds: float  # training time: the sum of the runs' wall times (runs restored from a journal included)
    restored: int = 0  # runs taken from the journal (trained by an earlier invocation), not trained now
    ledger: dict[str, Any] | None = None  # the cost ledger (`advantages.study_ledger`); None from a CSV


def grid_rows(study) -> tuple[str, ...]:
    """The model rows trained in the grid and K cells too (the others only in the main cell)."""
    return study.models if study.grid_models is None else study.grid_models


def chance(study) -> float:
    return 1.0 / study.n_way


def _final(run, n_way: int) -> float:
    acc = final_accuracy(run.history, n_way)
    return float("nan") if acc is None else acc


def _diverged(run) -> bool:
    return bool(run.history and run.history[-1].get("diverged"))


def _cell(res: AncestryResult, model: str, k: int, lr: float, wd: float) -> list[Any]:
    """Runs of one model in one (K, lr, wd) cell, ordered by task."""
    return sorted((r for r in res.runs if r.model == model and r.k == k and r.lr == lr and r.wd == wd),
                  key=lambda r: r.task)


def _main(res: AncestryResult, model: str, study) -> dict[int, Any]:
    """The main cell's runs of `model`, by task."""
    return {r.task: r for r in _cell(res, model, study.k_shot, study.lr, study.weight_decay)}


def targets_of(res: AncestryResult, study) -> dict[int, float]:
    """Convergence target per task: fixed, or ("baseline", as `learngene train`/`sweep`) the baseline's final
    accuracy on that task, which the baseline always reaches."""
    base = _cell(res, "baseline", study.k_shot, study.lr, study.weight_decay)
    if study.target_acc == "baseline":
        return {r.task: _final(r, study.n_way) for r in base}
    return {r.task: float(study.target_acc) for r in base}


def target_label(study) -> str:
    return "baseline's final acc" if study.target_acc == "baseline" else f"{100 * float(study.target_acc):.0f}%"


def _convergence(runs: dict[int, Any], base: dict[int, Any], targets: dict[int, float]) -> dict[str, Any]:
    """Epochs and seconds to the per-task `targets` (the baseline's final accuracy by default), and the
    speed-up: baseline epochs (seconds) / model epochs (seconds), summed over the tasks both reached."""
    tasks = [t for t in runs if t in targets]
    hits = {t: epochs_to_target(runs[t].history, targets[t]) for t in tasks}
    base_hits = {t: epochs_to_target(base[t].history, targets[t]) if t in base else None for t in tasks}
    reached = [h for h in hits.values() if h is not None]
    both = [(hits[t], base_hits[t]) for t in tasks if hits[t] is not None and base_hits[t] is not None]
    return {
        "reached": len(reached), "of": len(tasks),
        "epochs": mean_ci([h[0] for h in reached])[0], "seconds": mean_ci([h[1] for h in reached])[0],
        "speedup_epochs": sum(b[0] for _, b in both) / sum(h[0] for h, _ in both) if both else float("nan"),
        "speedup_seconds": sum(b[1] for _, b in both) / sum(h[1] for h, _ in both) if both else float("nan"),
    }


def _reach(runs: dict[int, Any], targets: dict[int, float]) -> dict[str, Any]:
    """First evaluated epoch reaching each task's target: per task (None = not reached), how many reached
    it out of the tasks with a target, and the mean epoch over those that did."""
    by_task = {t: (lambda h: None if h is None else h[0])(epochs_to_target(runs[t].history, targets[t]))
               for t in sorted(targets) if t in runs}
    hit = [e for e in by_task.values() if e is not None]
    return {"reached": len(hit), "of": len(by_task), "epochs": mean_ci(hit)[0], "by_task": by_task}


def fixed_targets(res: AncestryResult, study, model: str) -> dict[str, dict[str, Any]]:
    """Epochs of `model` and of the baseline (main cell, same tasks) to two targets that do not depend on
    the baseline having learned: "50%" (`FIXED_TARGET`) and "midpoint", per task (chance + the model's
    final accuracy on that task) / 2. Each: {"targets": {task: acc}, "model": _reach, "baseline": _reach,
    "speedup": baseline epochs / model epochs summed over the tasks both reached (NaN: none)}."""
    runs, base, c = _main(res, model, study), _main(res, "baseline", study), chance(study)
    finals = {t: _final(r, study.n_way) for t, r in runs.items()}
    out = {}
    for name, targets in (("50%", {t: FIXED_TARGET for t in runs}),
                          ("midpoint", {t: (c + f) / 2 for t, f in finals.items() if math.isfinite(f)})):
        m, b = _reach(runs, targets), _reach(base, targets)
        both = [t for t in m["by_task"] if m["by_task"][t] is not None and b["by_task"].get(t) is not None]
        speedup = (sum(b["by_task"][t] for t in both) / sum(m["by_task"][t] for t in both)) if both else float("nan")
        out[name] = {"targets": targets, "model": m, "baseline": b, "speedup": speedup}
    return out


def cell_status(res: AncestryResult, study, model: str, k: int, lr: float, wd: float) -> dict[str, Any]:
    """Final accuracy of one model in one cell against chance: mean, half-width, n (finite values) and
    `learned` (`summary.above_chance`: the interval's lower end more than `CHANCE_MARGIN` above chance)."""
    accs = finite([_final(r, study.n_way) for r in _cell(res, model, k, lr, wd)])
    mean, half = mean_ci(accs)
    return {"k": k, "lr": lr, "wd": wd, "mean": mean, "ci": half, "n": len(accs),
            "learned": above_chance(accs, chance(study))}


def baseline_status(res: AncestryResult, study) -> dict[str, Any]:
    """Whether the random-init baseline learned, in every setting the study trained it in: the main cell,
    each lr x wd grid cell (K = k_shot) and each K (main lr / wd)."""
    st = {"main": cell_status(res, study, "baseline", study.k_shot, study.lr, study.weight_decay)}
    st["grid"] = {(lr, wd): cell_status(res, study, "baseline", study.k_shot, lr, wd)
                  for lr in study.lrs for wd in study.wds}
    st["by_k"] = {k: cell_status(res, study, "baseline", k, study.lr, study.weight_decay) for k in study.shots}
    return st


def summarize(res: AncestryResult, study) -> dict[str, dict[str, Any]]:
    """Per model row: performance, gain (with p-values), convergence (to the baseline's final accuracy and
    to the fixed targets), sensitivity, sample efficiency, whether it learned, and its diverged / dropped
    run counts. Gains are paired by task; a task missing either final accuracy drops out of the gain."""
    n_way, targets = study.n_way, targets_of(res, study)
    base_main = _main(res, "baseline", study)
    base_finals = {t: _final(r, n_way) for t, r in base_main.items()}
    k_ref = max(study.shots)
    nan = float("nan")
    out: dict[str, dict[str, Any]] = {}
    for model in study.models:
        main = _main(res, model, study)
        finals = [_final(r, n_way) for r in main.values()]
        gains = [_final(r, n_way) - base_finals.get(t, nan) for t, r in main.items()]
        by_k = {k: mean_ci([_final(r, n_way) for r in _cell(res, model, k, study.lr, study.weight_decay)]) for k in study.shots}
        if model in grid_rows(study):
            cells = [mean_ci([_final(r, n_way) for r in _cell(res, model, study.k_shot, lr, wd)])[0]
                     for lr in study.lrs for wd in study.wds]
            ok = finite(cells)
            grid_runs = [r for lr in study.lrs for wd in study.wds for r in _cell(res, model, study.k_shot, lr, wd)]
            grid = {"cells": cells, "mean": sum(ok) / len(ok) if ok else nan,
                    "worst": min(ok, default=nan), "spread": max(ok) - min(ok) if ok else nan,
                    "std": std(ok), "diverged": sum(_diverged(r) for r in grid_runs)}
        else:  # trained in the main cell only
            grid = {"cells": [], "mean": nan, "worst": nan, "spread": nan, "std": nan, "diverged": 0}
        every = [r for r in res.runs if r.model == model]
        out[model] = {"n_tasks": len(main), "acc": mean_ci(finals), "learned": above_chance(finite(finals), chance(study)),
                      "gain": mean_ci(gains), "tests": paired_tests(gains),
                      "conv": _convergence(main, base_main, targets), "fixed": fixed_targets(res, study, model),
                      "grid": grid, "by_k": by_k, "runs": len(every), "diverged": sum(_diverged(r) for r in every),
                      "dropped": sum(not math.isfinite(_final(r, n_way)) for r in every)}
    ref = out["baseline"]["by_k"][k_ref][0]
    for model, s in out.items():
        s["match_k"] = (next((k for k in sorted(study.shots) if s["by_k"][k][0] >= ref), None)
                        if model in grid_rows(study) else None)
    return out


def _curve(run) -> list[list[float]]:
    return [[rec["epoch"], round(rec["test_acc"], 5)] for rec in run.history if rec.get("test_acc") is not None]


def csv_rows(results: list[AncestryResult], study) -> list[dict[str, Any]]:
    """One row per trained run (raw numbers; the tables are computed from these)."""
    rows = []
    for res in results:
        targets = targets_of(res, study)
        for r in sorted(res.runs, key=lambda r: (r.k, r.lr, r.wd, r.task, study.models.index(r.model))):
            main = (r.k, r.lr, r.wd) == (study.k_shot, study.lr, study.weight_decay)
            hit = epochs_to_target(r.history, targets[r.task]) if main else None
            rows.append({
                "ancestry": res.path, "arch": res.arch, "model": r.model,
                "layers": " ".join(map(str, res.layers[r.model])), "k_shot": r.k, "lr": r.lr, "weight_decay": r.wd,
                "task": r.task, "seed": study.seed, "epochs": study.epochs, "eval_every": r.eval_every,
                "n_way": study.n_way, "batch_size": study.batch_size, "test_per_class": study.test_per_class,
                "task_seed": study.task_seed,
                "final_acc": _final(r, study.n_way), "diverged": bool(r.history and r.history[-1].get("diverged")),
                "wall_s": round(r.wall_s, 3), "timing": r.timing,
                "target_acc": round(targets[r.task], 5) if main else "",
                "epochs_to_target": hit[0] if hit else "",
                "seconds_to_target": round(hit[1], 3) if hit else "",
                "studies": "performance convergence sensitivity samples" if main else
                ("sensitivity" if r.k == study.k_shot else "samples"),
                "test_acc_curve": json.dumps(_curve(r)),
            })
    return rows


def _pct(ci: tuple[float, float]) -> str:
    return fmt_ci(ci[0], ci[1])


def _reached(r: dict[str, Any]) -> str:
    """'3.2 (10/10)'; 'not reached (0/10)'; 'n/a' without a target."""
    if not r["of"]:
        return "n/a"
    return f"{fmt(r['epochs'])} ({r['reached']}/{r['of']})" if r["reached"] else f"not reached (0/{r['of']})"


def _tests(t: dict[str, Any]) -> str:
    return f"{fmt_p(t['t_p'])} / {fmt_p(t['wilcoxon_p'])} (n={t['n']})"


def _learned(st: dict[str, Any]) -> str:
    return "n/a" if not st["n"] else ("yes" if st["learned"] else "at chance")


def baseline_line(res: AncestryResult, study) -> str:
    """One sentence: did the baseline learn in the main cell (final accuracy vs chance)?"""
    st, c = baseline_status(res, study)["main"], chance(study)
    where = f"K={study.k_shot}, lr {study.lr:g}, wd {study.weight_decay:g}"
    if not st["n"]:
        return f"Baseline (random init, {where}): no final accuracy."
    acc = f"{fmt_ci(st['mean'], st['ci'])}% final accuracy against chance {100 * c:.1f}%"
    if st["learned"]:
        return (f"Baseline (random init, {where}): {acc}: **learned** (the 95% interval's lower end is more than "
                f"{100 * CHANCE_MARGIN:.0f} points above chance).")
    return (f"Baseline (random init, {where}): {acc}: **at chance** (the 95% interval's lower end is not "
            f"{100 * CHANCE_MARGIN:.0f} points above chance), so the epochs to its final accuracy and the speed-up "
            "only measure how fast chance is reached: read the gain and the fixed targets (50%, midpoint).")


def table(res: AncestryResult, study) -> str:
    """Performance and convergence in the main cell, one row per model (and its run counts)."""
    s = summarize(res, study)
    t = target_label(study)
    at_chance = not baseline_status(res, study)["main"]["learned"]
    headers = ["model", "layers", f"acc % K={study.k_shot}", "gain (points)", "p: paired t / Wilcoxon (n tasks)",
               f"epochs to {t}", f"s to {t}", "speed-up (epochs)", f"epochs to {100 * FIXED_TARGET:.0f}%",
               "epochs to midpoint: model / baseline", "runs", "diverged", "dropped"]
    rows = []
    for model in study.models:
        m = s[model]
        c, f = m["conv"], m["fixed"]
        base = model == "baseline"
        speed = "1.00" if base else fmt(c["speedup_epochs"], 2) + (" (baseline at chance)" if at_chance else "")
        rows.append([model, ",".join(map(str, res.layers[model])) or "-", _pct(m["acc"]),
                     "-" if base else _pct(m["gain"]), "-" if base else _tests(m["tests"]),
                     f"{fmt(c['epochs'])} ({c['reached']}/{c['of']})", fmt(c["seconds"]), speed,
                     _reached(f["50%"]["model"]),
                     "-" if base else f"{_reached(f['midpoint']['model'])} / {_reached(f['midpoint']['baseline'])}",
                     m["runs"], m["diverged"], m["dropped"]])
    return md_table(headers, rows)


def grid_k_table(res: AncestryResult, study) -> str:
    """Sensitivity (over the lr x wd grid) and sample efficiency (accuracy against K), one row per model."""
    s = summarize(res, study)
    k_ref = max(study.shots)
    headers = ["model", "grid mean %", "grid worst %", "grid spread", "grid std"]
    headers += [f"K={k} %" for k in study.shots if k != study.k_shot] + [f"K matching baseline K={k_ref}"]
    rows = []
    for model in study.models:
        m, g = s[model], s[model]["grid"]
        row = [model, fmt(g["mean"], 1, 100), fmt(g["worst"], 1, 100), fmt(g["spread"], 1, 100), fmt(g["std"], 1, 100)]
        row += [fmt(m["by_k"][k][0], 1, 100) for k in study.shots if k != study.k_shot]
        row.append("-" if m["match_k"] is None else str(m["match_k"]))
        rows.append(row)
    return md_table(headers, rows)


def grid_table(res: AncestryResult, study) -> str:
    """Mean final accuracy % of each grid row in every lr x wd cell (K = k_shot): where sensitivity comes from;
    the last row says whether the baseline learned in the cell."""
    cells = [(lr, wd) for wd in study.wds for lr in study.lrs]
    headers = ["model"] + [f"lr {lr:g} wd {wd:g}" for lr, wd in cells]
    rows = [[m] + [fmt(mean_ci([_final(r, study.n_way) for r in _cell(res, m, study.k_shot, lr, wd)])[0], 1, 100)
                   for lr, wd in cells] for m in grid_rows(study)]
    status = baseline_status(res, study)["grid"]
    rows.append(["baseline learned?"] + [_learned(status[c]) for c in cells])
    return md_table(headers, rows)


def k_line(res: AncestryResult, study) -> str:
    """Whether the baseline learned at each K (main lr / wd), and what that means for K matching."""
    st = baseline_status(res, study)["by_k"]
    parts = [f"K={k} {_learned(v)} ({fmt_ci(v['mean'], v['ci'])}%)" for k, v in st.items()]
    line = f"Baseline learned per K (final accuracy vs chance {100 * chance(study):.1f}%): {'; '.join(parts)}."
    if not st[max(study.shots)]["learned"]:
        line += f" The baseline at K={max(study.shots)} is at chance: *K matching* only says which K reaches chance."
    return line


def _settings_line(study, seconds: float) -> str:
    """The study's settings in one paragraph."""
    grid = f"{len(study.lrs)} lr ({', '.join(f'{v:g}' for v in study.lrs)}) x {len(study.wds)} wd " \
           f"({', '.join(f'{v:g}' for v in study.wds)})"
    data = getattr(study, "dataset", None)
    data = f"the data set `{data}`" if data else "the embedded `shapes` data"
    return (f"{study.tasks} novel {study.n_way}-way tasks of {data}, test sets capped at "
            f"{study.test_per_class} images per class; every model {study.epochs} epochs, batch {study.batch_size}, "
            f"AdamW with cosine schedule, seed {study.seed} (same initialisation of the random parts, same data "
            f"order). Main cell K={study.k_shot}, lr {study.lr:g}, wd {study.weight_decay:g}; sensitivity grid {grid} at "
            f"K={study.k_shot}; sample efficiency K in {list(study.shots)} at the main lr/wd. Training time, summed "
            f"over the runs: {seconds / 60:.1f} min.")


def ledger_block(res: AncestryResult) -> list[str]:
    """The ancestry's cost ledger (`learngene.descend.ledger`) as markdown lines; none without a ledger (a
    report rebuilt from the CSV, which holds no FLOPs)."""
    from learngene.descend.ledger import format_ledger_dict

    if res.ledger is None:
        return []
    return ["Cost ledger (every run of each row: main cell, grid and K):", "", "```text",
            format_ledger_dict(res.ledger), "```", ""]


def _ancestry_parts(res: AncestryResult, study, source: str | None) -> list[str]:
    """One ancestry's section: heading, the baseline's status, the three tables and the cost ledger."""
    shown = os.path.relpath(res.path) if not os.path.relpath(res.path).startswith("..") else res.path
    again = (f" ({res.restored} restored from the journal: trained by an earlier run of the command, whose "
             "machine line may differ from the one above)") if res.restored and not source else ""
    return [f"### {res.arch} (`{shown}`): {len(res.runs)} runs, {res.seconds / 60:.1f} min of training{again}", "",
            baseline_line(res, study), "",
            f"Performance and convergence (K={study.k_shot}, lr {study.lr:g}, wd {study.weight_decay:g}):", "",
            table(res, study), "",
            "Sensitivity and sample efficiency:", "", grid_k_table(res, study), "", k_line(res, study), "",
            f"Accuracy % per grid cell (K={study.k_shot}, mean over the tasks):", "",
            grid_table(res, study), "", *ledger_block(res)]


def _columns_note(study) -> str:
    """What every column of the tables means."""
    c = 100 * chance(study)
    return (
        "Columns: *acc* final test accuracy, mean ± 95% t-interval over tasks; *gain* paired difference to the "
        "baseline on the same tasks; *p* two-sided p-values that the gain is 0: paired t-test / Wilcoxon "
        "signed-rank test (scipy), over n tasks; *epochs / s to X* first evaluated epoch (every "
        f"{study.eval_every} epoch(s)) reaching the target, mean over the tasks that reached it (reached/all), wall "
        "seconds of one model trained alone incl. its evaluations; target = "
        + ("the baseline's final accuracy on the same task (as `learngene train`)" if study.target_acc == "baseline"
           else f"{float(study.target_acc):g}") + "; *speed-up* baseline epochs / model "
        f"epochs summed over tasks both reached, flagged where the baseline ended at chance; *epochs to "
        f"{100 * FIXED_TARGET:.0f}%* the same for a fixed {100 * FIXED_TARGET:.0f}% target; *epochs to midpoint* "
        f"the row's and the baseline's epochs to the midpoint between chance ({c:.0f}%) and the row's own final "
        "accuracy on each task (not reached: never within the epochs); *runs / diverged / dropped* all the row's runs "
        "(main cell, grid, K), those that diverged (counted as chance accuracy) and those whose accuracy is missing or "
        "not finite (left out of every mean); *grid* mean, worst cell, max - min and std over the lr x wd cells of the "
        "per-cell mean accuracy; *K=k* mean accuracy; *K matching* the smallest "
        f"K whose mean accuracy is at least the baseline's at K={max(study.shots)}; *learned* the 95% interval of "
        f"the final accuracy lies more than {100 * CHANCE_MARGIN:.0f} points above chance (else *at chance*). "
        "Rows: heur = Heur-LG's last 3 "
        "layers; auto-paper = the seed paper's published choice; auto / cka = the layers `condense` selects with "
        "that method; finetune = every layer and the stem inherited (the upper reference).")


def _figure_links(figures: list[Path], docs_dir: Path) -> str:
    """'Figures: ![..](..) ...', relative to `docs_dir` where the figure lies below it."""
    links = []
    for f in figures:
        try:
            rel = os.path.relpath(f.resolve(), docs_dir.resolve())
        except ValueError:
            rel = str(f)
        links.append(f"![{f.stem}]({rel})" if not rel.startswith("..") else f"`{f}`")
    return "Figures: " + " ".join(links)


def markdown(results: list[AncestryResult], study, figures: list[Path], docs_dir: Path, seconds: float,
             source: str | None = None) -> str:
    """The study's report: settings, then per ancestry the baseline's status, three tables and the cost
    ledger, then the column notes and the figures. `source` (e.g. "regenerated from docs/advantages.csv")
    replaces the per-ancestry note on runs restored from the journal."""
    parts = [_settings_line(study, seconds), ""]
    if source:
        parts += [source, ""]
    for res in results:
        parts += _ancestry_parts(res, study, source)
    parts += [_columns_note(study), ""]
    outside = [m for m in study.models if m not in grid_rows(study)]
    if outside:
        parts += [f"Rows {', '.join(outside)} were trained in the main cell only (`--grid-models "
                  f"{','.join(grid_rows(study))}`): n/a in the grid and K columns.", ""]
    if figures:
        parts += [_figure_links(figures, docs_dir), ""]
    return "\n".join(parts)


# ------------------------------------------------------------------ figures (matplotlib, static files)

PALETTE = ("#444444", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def line_chart(series, *, title: str, x_label: str, y_label: str, log_x: bool = False, dashed=(),
               hlines=()) -> str:
    """SVG text of a matplotlib line chart; `series` = [(name, xs, ys)], NaN points left out; `dashed` names
    series drawn dashed; `hlines` = [(label, y)] dotted reference lines (e.g. chance). matplotlib is
    imported here (not by `import learngene`), without pyplot: a `Figure` rendered to SVG, reproducibly
    (no date, fixed ids, text kept as text)."""
    import io

    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"svg.hashsalt": "learngene", "svg.fonttype": "none", "font.size": 10}):
        fig = Figure(figsize=(7.2, 4.2), layout="constrained")
        ax = fig.add_subplot()
        for i, (name, xs, ys) in enumerate(series):
            pts = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, linewidth=1.8,
                        color=PALETTE[i % len(PALETTE)], linestyle="--" if name in dashed else "-", label=name)
        for j, (label, y) in enumerate(hlines):
            ax.axhline(y, color="#999999", linestyle=(":", "-.", "--")[j % 3], linewidth=1.2, label=label)
        if log_x:
            ax.set_xscale("log")
            xs_all = sorted({x for _, xs, _ in series for x in xs})
            if xs_all:
                ax.set_xticks(xs_all, [f"{x:g}" for x in xs_all])
                ax.minorticks_off()
        ax.set_title(title, loc="left", fontweight="bold")
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.grid(True, color="#eeeeee")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def _mean_curve(runs: list[Any]) -> tuple[list[float], list[float]]:
    by_epoch: dict[int, list[float]] = {}
    for r in runs:
        for e, acc in _curve(r):
            by_epoch.setdefault(int(e), []).append(acc)
    xs = sorted(e for e, v in by_epoch.items() if len(v) == len(runs))
    return [float(x) for x in xs], [100 * sum(by_epoch[x]) / len(by_epoch[x]) for x in xs]


def write_figures(results: list[AncestryResult], study, folder: Path) -> list[Path]:
    """Three SVGs per ancestry (matplotlib): convergence curves, accuracy against K, accuracy against lr;
    chance (and, on the curves, the 50% target) drawn as dotted lines."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    c = ("chance", 100 * chance(study))
    for res in results:
        s = summarize(res, study)
        conv = [(m, *_mean_curve(_cell(res, m, study.k_shot, study.lr, study.weight_decay))) for m in study.models]
        shots = [(m, [float(k) for k in study.shots], [100 * s[m]["by_k"][k][0] for k in study.shots])
                 for m in grid_rows(study)]
        lrs = [(m, list(study.lrs), [100 * mean_ci([_final(r, study.n_way)
                                                      for r in _cell(res, m, study.k_shot, lr, study.weight_decay)])[0]
                                     for lr in study.lrs]) for m in grid_rows(study)]
        charts = {
            "convergence": line_chart(conv, title=f"{res.arch}: test accuracy while training (K={study.k_shot})",
                                      x_label="epoch", y_label="test accuracy % (mean over tasks)", dashed=["baseline"],
                                      hlines=[c, (f"{100 * FIXED_TARGET:.0f}% target", 100 * FIXED_TARGET)]),
            "shots": line_chart(shots, title=f"{res.arch}: accuracy against K", x_label="K (images per class)",
                                y_label="final test accuracy %", log_x=True, dashed=["baseline"], hlines=[c]),
            "lr": line_chart(lrs, title=f"{res.arch}: accuracy against lr (wd {study.weight_decay:g}, K={study.k_shot})",
                             x_label="learning rate", y_label="final test accuracy %", log_x=True, dashed=["baseline"],
                             hlines=[c]),
        }
        for name, svg in charts.items():
            path = folder / f"advantages-{res.arch}-{name}.svg"
            path.write_text(svg)
            paths.append(path)
    return paths


# ------------------------------------------------------------------ the report again, from the CSV


def _history(row: dict[str, str]) -> list[dict[str, Any]]:
    """A run's history from its CSV row: the test-accuracy curve, the wall time of the epoch that reached the
    target where the row has it, and a final divergence record for a diverged run."""
    hist = [{"epoch": int(e), "test_acc": float(a)} for e, a in json.loads(row.get("test_acc_curve") or "[]")]
    if row.get("epochs_to_target") and row.get("seconds_to_target"):
        for rec in hist:
            if rec["epoch"] == int(row["epochs_to_target"]):
                rec["time"] = float(row["seconds_to_target"])
    diverged = row.get("diverged") == "True"
    final = row.get("final_acc", "")
    if hist and not diverged and final not in ("", "nan") and hist[-1]["epoch"] == int(row["epochs"]):
        hist[-1]["test_acc"] = float(final)  # unrounded
    if diverged:
        hist.append({"epoch": hist[-1]["epoch"] + 1 if hist else 1, "diverged": True})
    return hist


def load_csv(path: str | os.PathLike, study=None) -> tuple[list[AncestryResult], Any]:
    """The results of a study and its settings, rebuilt from its `advantages.csv` (one row per run).

    The plan (models, main cell, K values, lr x wd grid, grid rows, tasks, epochs, seed, target) is read
    from the rows; what older CSVs do not hold (n_way, batch size, test set size, task seed) comes from
    their own columns where present, else from `study` (default: `Study()`, the study's defaults)."""
    from dataclasses import replace

    from learngene.descend.advantages import Run, Study
    from learngene.errors import ConfigError

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ConfigError(f"{path}: no runs")
    base = study or Study()
    main = [r for r in rows if "performance" in r["studies"].split()]
    if not main:
        raise ConfigError(f"{path}: no run of the main cell (studies 'performance ...')")
    m0 = main[0]
    k_main, lr, wd = int(m0["k_shot"]), float(m0["lr"]), float(m0["weight_decay"])
    first = [r for r in main if r["ancestry"] == m0["ancestry"] and r["task"] == m0["task"]]
    models = tuple(r["model"] for r in first)
    grid = [r for r in rows if "sensitivity" in r["studies"].split()]
    shots = tuple(sorted({int(r["k_shot"]) for r in rows if "samples" in r["studies"].split()}))
    in_grid = {r["model"] for r in rows if r["studies"] != main[0]["studies"]}
    extra = {k: type(getattr(base, k))(m0[k]) for k in ("n_way", "batch_size", "test_per_class", "task_seed")
             if m0.get(k) not in (None, "")}
    fixed = {r["target_acc"] for r in main}
    bases = {(r["ancestry"], r["task"]): r["final_acc"] for r in main if r["model"] == "baseline"}
    follows_baseline = all(abs(float(r["target_acc"]) - float(bases[(r["ancestry"], r["task"])])) < 1e-5
                           for r in main if r["target_acc"] and (r["ancestry"], r["task"]) in bases)
    target: float | str = "baseline" if follows_baseline or len(fixed) != 1 else float(fixed.pop())
    study = replace(base, tasks=len({r["task"] for r in main}), k_shot=k_main, shots=shots, lr=lr, weight_decay=wd,
                    lrs=tuple(sorted({float(r["lr"]) for r in grid})), wds=tuple(sorted({float(r["weight_decay"])
                                                                                         for r in grid})),
                    epochs=int(m0["epochs"]), eval_every=int(m0["eval_every"]), seed=int(m0["seed"]),
                    target_acc=target, models=models,
                    grid_models=None if in_grid >= set(models) else tuple(m for m in models if m in in_grid),
                    **extra)
    results: list[AncestryResult] = []
    for anc in dict.fromkeys(r["ancestry"] for r in rows):
        mine = [r for r in rows if r["ancestry"] == anc]
        layers = {r["model"]: [int(v) for v in r["layers"].split()] for r in mine}
        runs = [Run(r["model"], int(r["task"]), int(r["k_shot"]), float(r["lr"]), float(r["weight_decay"]),
                    int(r["eval_every"]), history=_history(r), wall_s=float(r["wall_s"] or "nan"), timing=r["timing"],
                    main="performance" in r["studies"].split()) for r in mine]
        results.append(AncestryResult(anc, mine[0]["arch"], layers, runs,
                                      sum(r.wall_s for r in runs if math.isfinite(r.wall_s))))
    return results, study


__all__ = ["FIXED_TARGET", "AncestryResult", "baseline_status", "csv_rows", "fixed_targets", "line_chart", "load_csv",
           "markdown", "summarize", "table", "target_label", "targets_of", "write_figures"]
