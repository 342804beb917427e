"""Numbers, tables and figures of the four-advantage study (`learngene.descend.advantages`) from its runs.

Statistics come from the library (`learngene.descend.stats`, `learngene.descend.compare`), so the
benchmark reports exactly what the sweep summaries and the UI report: a diverged run counts as chance
accuracy (1 / n_way); mean ± 95% t-interval over tasks; spread = max - min of the per-cell means.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learngene.descend._svg import line_chart
from learngene.descend.compare import epochs_to_target, final_accuracy
from learngene.descend.stats import fmt_ci, mean_ci, std
from learngene.tables import fmt, md_table


@dataclass
class AncestryResult:
    path: str
    arch: str
    layers: dict[str, list[int]]
    runs: list[Any]  # learngene.descend.advantages.Run
    seconds: float  # training time: the sum of the runs' wall times (runs restored from a journal included)
    restored: int = 0  # runs taken from the journal (trained by an earlier invocation), not trained now


def grid_rows(study) -> tuple[str, ...]:
    """The model rows trained in the grid and K cells too (the others only in the main cell)."""
    return study.models if study.grid_models is None else study.grid_models


def _final(run, n_way: int) -> float:
    acc = final_accuracy(run.history, n_way)
    return float("nan") if acc is None else acc


def _cell(res: AncestryResult, model: str, k: int, lr: float, wd: float) -> list[Any]:
    """Runs of one model in one (K, lr, wd) cell, ordered by task."""
    return sorted((r for r in res.runs if r.model == model and r.k == k and r.lr == lr and r.wd == wd),
                  key=lambda r: r.task)


def targets_of(res: AncestryResult, study) -> dict[int, float]:
    """Convergence target per task: fixed, or ("baseline", as `learngene train`/`sweep`) the baseline's final
    accuracy on that task, which the baseline always reaches."""
    base = _cell(res, "baseline", study.k_main, study.lr, study.wd)
    if study.target_acc == "baseline":
        return {r.task: _final(r, study.n_way) for r in base}
    return {r.task: float(study.target_acc) for r in base}


def target_label(study) -> str:
    return "baseline's final acc" if study.target_acc == "baseline" else f"{100 * float(study.target_acc):.0f}%"


def _convergence(runs: list[Any], base: list[Any], targets: dict[int, float]) -> dict[str, Any]:
    hits = [epochs_to_target(r.history, targets[r.task]) for r in runs]
    base_hits = [epochs_to_target(r.history, targets[r.task]) for r in base]
    reached = [h for h in hits if h is not None]
    both = [(h, b) for h, b in zip(hits, base_hits, strict=True) if h is not None and b is not None]
    return {
        "reached": len(reached), "of": len(hits),
        "epochs": mean_ci([h[0] for h in reached])[0], "seconds": mean_ci([h[1] for h in reached])[0],
        "speedup_epochs": sum(b[0] for _, b in both) / sum(h[0] for h, _ in both) if both else float("nan"),
        "speedup_seconds": sum(b[1] for _, b in both) / sum(h[1] for h, _ in both) if both else float("nan"),
    }


def summarize(res: AncestryResult, study) -> dict[str, dict[str, Any]]:
    """Per model row: performance, gain, convergence, sensitivity and sample efficiency."""
    n_way, targets = study.n_way, targets_of(res, study)
    base_main = _cell(res, "baseline", study.k_main, study.lr, study.wd)
    k_ref = max(study.shots)
    out: dict[str, dict[str, Any]] = {}
    for model in study.models:
        main = _cell(res, model, study.k_main, study.lr, study.wd)
        finals = [_final(r, n_way) for r in main]
        gains = [a - _final(b, n_way) for a, b in zip(finals, base_main, strict=True)]
        by_k = {k: mean_ci([_final(r, n_way) for r in _cell(res, model, k, study.lr, study.wd)]) for k in study.shots}
        nan = float("nan")
        if model in grid_rows(study):
            cells = [mean_ci([_final(r, n_way) for r in _cell(res, model, study.k_main, lr, wd)])[0]
                     for lr in study.lrs for wd in study.wds]
            grid_runs = [r for lr in study.lrs for wd in study.wds for r in _cell(res, model, study.k_main, lr, wd)]
            grid = {"cells": cells, "mean": sum(cells) / len(cells), "spread": max(cells) - min(cells),
                    "std": std(cells), "diverged": sum(bool(r.history and r.history[-1].get("diverged"))
                                                       for r in grid_runs)}
        else:  # trained in the main cell only
            grid = {"cells": [], "mean": nan, "spread": nan, "std": nan, "diverged": 0}
        out[model] = {"acc": mean_ci(finals), "gain": mean_ci(gains), "conv": _convergence(main, base_main, targets),
                      "grid": grid, "by_k": by_k}
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
            main = (r.k, r.lr, r.wd) == (study.k_main, study.lr, study.wd)
            hit = epochs_to_target(r.history, targets[r.task]) if main else None
            rows.append({
                "ancestry": res.path, "arch": res.arch, "model": r.model,
                "layers": " ".join(map(str, res.layers[r.model])), "k_shot": r.k, "lr": r.lr, "weight_decay": r.wd,
                "task": r.task, "seed": study.seed, "epochs": study.epochs, "eval_every": r.eval_every,
                "final_acc": _final(r, study.n_way), "diverged": bool(r.history and r.history[-1].get("diverged")),
                "wall_s": round(r.wall_s, 3), "timing": r.timing,
                "target_acc": round(targets[r.task], 5) if main else "",
                "epochs_to_target": hit[0] if hit else "",
                "seconds_to_target": round(hit[1], 3) if hit else "",
                "studies": "performance convergence sensitivity samples" if main else
                ("sensitivity" if r.k == study.k_main else "samples"),
                "test_acc_curve": json.dumps(_curve(r)),
            })
    return rows


def _pct(ci: tuple[float, float]) -> str:
    return fmt_ci(ci[0], ci[1])


def table(res: AncestryResult, study) -> str:
    s = summarize(res, study)
    k_ref = max(study.shots)
    t = target_label(study)
    headers = ["model", "layers", f"acc % K={study.k_main}", "gain (points)", f"epochs to {t}", f"s to {t}",
               "speed-up (epochs)", "grid mean %", "grid worst %", "grid spread", "grid std"]
    headers += [f"K={k} %" for k in study.shots if k != study.k_main] + [f"K matching baseline K={k_ref}"]
    rows = []
    for model in study.models:
        m = s[model]
        c, g = m["conv"], m["grid"]
        row = [model, ",".join(map(str, res.layers[model])) or "-", _pct(m["acc"]),
               "-" if model == "baseline" else _pct(m["gain"]),
               f"{fmt(c['epochs'])} ({c['reached']}/{c['of']})", fmt(c["seconds"]),
               "1.00" if model == "baseline" else fmt(c["speedup_epochs"], 2),
               fmt(g["mean"], 1, 100), fmt(min(g["cells"], default=float("nan")), 1, 100),
               fmt(g["spread"], 1, 100), fmt(g["std"], 1, 100)]
        row += [fmt(m["by_k"][k][0], 1, 100) for k in study.shots if k != study.k_main]
        row.append("-" if m["match_k"] is None else str(m["match_k"]))
        rows.append(row)
    return md_table(headers, rows)


def grid_table(res: AncestryResult, study) -> str:
    """Mean final accuracy % of each grid row in every lr x wd cell (K = k_main): where sensitivity comes from."""
    headers = ["model"] + [f"lr {lr:g} wd {wd:g}" for wd in study.wds for lr in study.lrs]
    rows = [[m] + [fmt(mean_ci([_final(r, study.n_way) for r in _cell(res, m, study.k_main, lr, wd)])[0], 1, 100)
                   for wd in study.wds for lr in study.lrs] for m in grid_rows(study)]
    return md_table(headers, rows)


def markdown(results: list[AncestryResult], study, figures: list[Path], docs_dir: Path, seconds: float) -> str:
    grid = f"{len(study.lrs)} lr ({', '.join(f'{v:g}' for v in study.lrs)}) x {len(study.wds)} wd " \
           f"({', '.join(f'{v:g}' for v in study.wds)})"
    parts = [f"{study.n_tasks} novel {study.n_way}-way tasks of the embedded `shapes` data, test sets capped at "
             f"{study.test_per_class} images per class; every model {study.epochs} epochs, batch {study.batch_size}, "
             f"AdamW with cosine schedule, seed {study.seed} (same initialisation of the random parts, same data "
             f"order). Main cell K={study.k_main}, lr {study.lr:g}, wd {study.wd:g}; sensitivity grid {grid} at "
             f"K={study.k_main}; sample efficiency K in {list(study.shots)} at the main lr/wd. Training time, summed "
             f"over the runs: {seconds / 60:.1f} min.", ""]
    for res in results:
        shown = os.path.relpath(res.path) if not os.path.relpath(res.path).startswith("..") else res.path
        again = (f" ({res.restored} restored from the journal: trained by an earlier run of the command, whose "
                 "machine line may differ from the one above)") if res.restored else ""
        parts += [f"### {res.arch} (`{shown}`): {len(res.runs)} runs, {res.seconds / 60:.1f} min of training{again}", "",
                  table(res, study), "", f"Accuracy % per grid cell (K={study.k_main}, mean over the tasks):", "",
                  grid_table(res, study), ""]
    parts += [
        "Columns: *acc* final test accuracy, mean ± 95% t-interval over tasks; *gain* paired difference to the "
        "baseline on the same tasks; *epochs / s to X%* first evaluated epoch (every "
        f"{study.eval_every} epoch(s)) reaching the target, mean over the tasks that reached it (reached/all), wall "
        "seconds of one model trained alone incl. its evaluations; target = "
        + ("the baseline's final accuracy on the same task (as `learngene train`)" if study.target_acc == "baseline"
           else f"{float(study.target_acc):g}") + "; *speed-up* baseline epochs / model "
        "epochs summed over tasks both reached; *grid* mean, worst cell, max - min and std over the lr x wd cells of the "
        "per-cell mean accuracy (a diverged run counts as chance); *K=k* mean accuracy; *K matching* the smallest "
        f"K whose mean accuracy is at least the baseline's at K={max(study.shots)}. Rows: heur = Heur-LG's last 3 "
        "layers; auto-paper = the seed paper's published choice; auto / cka = the layers `condense` selects with "
        "that method; finetune = every layer and the stem inherited (the upper reference).", ""]
    outside = [m for m in study.models if m not in grid_rows(study)]
    if outside:
        parts += [f"Rows {', '.join(outside)} were trained in the main cell only (`--grid-models "
                  f"{','.join(grid_rows(study))}`): n/a in the grid and K columns.", ""]
    if figures:
        links = []
        for f in figures:
            try:
                rel = os.path.relpath(f.resolve(), docs_dir.resolve())
            except ValueError:
                rel = str(f)
            links.append(f"![{f.stem}]({rel})" if not rel.startswith("..") else f"`{f}`")
        parts += ["Figures: " + " ".join(links), ""]
    return "\n".join(parts)


def _mean_curve(runs: list[Any]) -> tuple[list[float], list[float]]:
    by_epoch: dict[int, list[float]] = {}
    for r in runs:
        for e, acc in _curve(r):
            by_epoch.setdefault(int(e), []).append(acc)
    xs = sorted(e for e, v in by_epoch.items() if len(v) == len(runs))
    return [float(x) for x in xs], [100 * sum(by_epoch[x]) / len(by_epoch[x]) for x in xs]


def write_figures(results: list[AncestryResult], study, folder: Path) -> list[Path]:
    """Three SVGs per ancestry: convergence curves, accuracy against K, accuracy against lr."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for res in results:
        s = summarize(res, study)
        conv = [(m, *_mean_curve(_cell(res, m, study.k_main, study.lr, study.wd))) for m in study.models]
        shots = [(m, [float(k) for k in study.shots], [100 * s[m]["by_k"][k][0] for k in study.shots])
                 for m in grid_rows(study)]
        lrs = [(m, list(study.lrs), [100 * mean_ci([_final(r, study.n_way)
                                                      for r in _cell(res, m, study.k_main, lr, study.wd)])[0]
                                     for lr in study.lrs]) for m in grid_rows(study)]
        charts = {
            "convergence": line_chart(conv, title=f"{res.arch}: test accuracy while training (K={study.k_main})",
                                      x_label="epoch", y_label="test accuracy % (mean over tasks)", dashed=["baseline"]),
            "shots": line_chart(shots, title=f"{res.arch}: accuracy against K", x_label="K (images per class)",
                                y_label="final test accuracy %", log_x=True, dashed=["baseline"]),
            "lr": line_chart(lrs, title=f"{res.arch}: accuracy against lr (wd {study.wd:g}, K={study.k_main})",
                             x_label="learning rate", y_label="final test accuracy %", log_x=True, dashed=["baseline"]),
        }
        for name, svg in charts.items():
            path = folder / f"advantages-{res.arch}-{name}.svg"
            path.write_text(svg)
            paths.append(path)
    return paths


__all__ = ["AncestryResult", "csv_rows", "markdown", "summarize", "table", "target_label", "targets_of",
           "write_figures"]
