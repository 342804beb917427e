"""Summaries of descendant-vs-baseline runs: the four claims of the method (docs/design.md), as numbers.

1. faster convergence: epochs (and seconds) to reach a target test accuracy;
2. less sensitive to hyperparameters: spread (max - min, std) of final accuracy over an lr x wd grid;
3. better accuracy: mean ± 95% t-interval of final accuracy over tasks (and the paired gain);
4. fewer samples: accuracy against K shots.

A diverged run counts as chance accuracy (1 / n_way) and is counted in `diverged`.

The convergence target is a fixed accuracy, or "baseline": per pair, the baseline's final accuracy
(so the numbers read "the learngene descendant reached the baseline's final accuracy at epoch e",
and the target is always reachable by the baseline, whatever the ancestry and the task). A baseline
that ends at chance makes that target meaningless (`baseline_learned`, `chance_warning`), so every
summary also has the epochs of both models to two fixed targets (`fixed_targets`): 50% accuracy, and
the midpoint between chance and the learngene descendant's final accuracy on the task.

Whether each model learned is `learning_state`, the one three-state rule of the project (learned /
not clearly above chance / at chance; defined in `learngene.train.budget`, where condensing can reach it,
and re-exported here): `summarize_pairs` records `<role>_state` and a line saying what was measured.

The paired gain comes with its paired t-test and Wilcoxon signed-rank p-values (`stats.paired_tests`);
a final accuracy that is missing or not finite is left out of the means and counted as `dropped`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

from learngene.descend.accuracy import (  # noqa: F401 - the rule over tasks, re-exported with the summaries
    above_chance,
    accuracy_interval,
    accuracy_line,
    accuracy_state,
)
from learngene.descend.compare import ROLES, PairResult, epochs_to_target
from learngene.descend.stats import finite, fmt_ci, fmt_p, mean_ci, paired_tests, std
from learngene.train.budget import (  # noqa: F401 - the one three-state rule, re-exported for the comparisons
    CHANCE_MARGIN,
    STATES,
    LearningState,
    binomial_interval,
    chance_margin,
    describe_learning,
    judge,
    learning_state,
)

Target = float | Literal["baseline"] | None

FIXED_TARGET = 0.5
"""The fixed accuracy every comparison's convergence is also measured to (with the midpoint target)."""


def pair_target(pair: PairResult, target_acc: Target) -> float | None:
    """The accuracy a pair's runs must reach: fixed, or the baseline's final accuracy."""
    if target_acc == "baseline":
        return pair.baseline.final_acc(pair.n_way)
    return target_acc


def _ci(values: Sequence[float]) -> dict[str, Any]:
    mean, half = mean_ci(values)
    return {"mean": mean, "ci95": half, "n": len(values), "values": list(values)}


def summarize_role(pairs: Sequence[PairResult], role: str, target_acc: Target = None) -> dict[str, Any]:
    """Accuracy, convergence and timing of one model role over a set of pairs."""
    runs = [(p, p.run(role)) for p in pairs]
    finals = finite([r.final_acc(p.n_way) for p, r in runs])
    out: dict[str, Any] = {
        "final_acc": _ci(finals),
        "best_acc": _ci(finite([r.best_acc for _, r in runs])),
        "diverged": sum(r.diverged for _, r in runs),
        "dropped": len(runs) - len(finals),  # no (finite) final accuracy: left out of the means
        "train_seconds": _ci([r.wall_time for _, r in runs]),
    }
    if target_acc is not None:
        targets = [pair_target(p, target_acc) for p, _ in runs]
        hits = [None if t is None else epochs_to_target(r.history, t) for (_, r), t in zip(runs, targets, strict=True)]
        reached = [h for h in hits if h is not None]
        out["target"] = {
            "acc": target_acc, "values": targets, "reached": len(reached), "of": len(hits),
            "epochs": _ci([h[0] for h in reached]), "seconds": _ci([h[1] for h in reached]),
        }
    return out


def _midpoint(p: PairResult) -> float | None:
    acc = p.learngene.final_acc(p.n_way)
    return None if acc is None or not math.isfinite(acc) else (1.0 / p.n_way + acc) / 2


def fixed_targets(pairs: Sequence[PairResult]) -> dict[str, Any]:
    """Epochs (and seconds) of both models to two targets that do not depend on the baseline having
    learned: "50%" (`FIXED_TARGET`) and "midpoint", per pair (chance + the learngene's final accuracy) / 2.

    Returns {name: {"values": per-pair targets (None: undefined), role: {"reached", "of", "epochs",
    "seconds", "per_pair"}}}: "of" counts the pairs with a target, "epochs"/"seconds" are mean ± 95% CI
    over the pairs that reached it, "per_pair" the epoch per pair (None: not reached).
    """
    out: dict[str, Any] = {}
    for name, targets in (("50%", [FIXED_TARGET for _ in pairs]), ("midpoint", [_midpoint(p) for p in pairs])):
        block: dict[str, Any] = {"values": targets}
        for role in ROLES:
            hits = [None if t is None else epochs_to_target(p.run(role).history, t)
                    for p, t in zip(pairs, targets, strict=True)]
            reached = [h for h in hits if h is not None]
            block[role] = {"reached": len(reached), "of": sum(t is not None for t in targets),
                           "epochs": _ci([h[0] for h in reached]), "seconds": _ci([h[1] for h in reached]),
                           "per_pair": [None if h is None else h[0] for h in hits]}
        out[name] = block
    return out


def summarize_pairs(pairs: Sequence[PairResult], target_acc: Target = None) -> dict[str, Any]:
    """Per-model summaries plus the paired gain (learngene - baseline final accuracy) over pairs, and
    whether the baseline learned at all (`baseline_learned`): a baseline at chance makes "epochs to
    the baseline's final accuracy" and the speed-up measure only how fast chance is reached."""
    out: dict[str, Any] = {role: summarize_role(pairs, role, target_acc) for role in ROLES}
    gains = finite([p.learngene.final_acc(p.n_way) - p.baseline.final_acc(p.n_way) for p in pairs
                    if p.learngene.final_acc(p.n_way) is not None and p.baseline.final_acc(p.n_way) is not None])
    tests = paired_tests(gains)
    out["gain"] = {**_ci(gains), "t_p": tests["t_p"], "wilcoxon_p": tests["wilcoxon_p"],
                   "dropped": len(pairs) - len(gains)}
    out["fixed_targets"] = fixed_targets(pairs)
    out["pairs"] = len(pairs)
    if pairs:
        chance = sum(1.0 / p.n_way for p in pairs) / len(pairs)
        out["chance"] = chance
        for role in ROLES:
            finals = out[role]["final_acc"]["values"]
            out[f"{role}_state"] = accuracy_state(finals, chance)
            out[f"{role}_learned"] = out[f"{role}_state"] == "learned"
            out[f"{role}_line"] = accuracy_line(finals, chance)
    return out


def chance_warning(summary: dict[str, Any]) -> str | None:
    """One line when a summary's baseline did not clearly learn (the three-state rule,
    `learning_state`): "stayed at chance" only when its interval reaches chance, else "not clearly above
    chance" with what was measured. None when the baseline learned or it is unknown."""
    state = summary.get("baseline_state")
    if state is None and summary.get("baseline_learned") is False:  # a summary written before the rule
        state = "at chance"
    if state in (None, "learned", "unknown") or summary.get("chance") is None:
        return None
    acc, chance = summary["baseline"]["final_acc"]["mean"], summary["chance"]
    if state == "at chance" and summary.get("learngene_state", "at chance") == "at chance" \
            and summary.get("learngene_learned") is False:
        return (f"both models stayed at chance (baseline {acc:.1%}, learngene "
                f"{summary['learngene']['final_acc']['mean']:.1%}, chance {chance:.1%}): no comparison "
                "can be read from this run; train longer or check the data")
    what = (f"the baseline stayed at chance ({acc:.1%} final accuracy, chance {chance:.1%})" if state == "at chance"
            else f"the baseline is {summary.get('baseline_line') or accuracy_line(summary['baseline']['final_acc'].get('values') or [acc], chance)}")
    return (f"{what}: epochs to its final accuracy and the speed-up only measure how fast it got there; the "
            "accuracy gain and the epochs to the fixed targets are the comparisons that count (train longer, or "
            "--strong-baseline, for a baseline that learns)")


def _target_cell(s: dict[str, Any]) -> str:
    t = s.get("target")
    if not t:
        return ""
    if not t["reached"]:
        return f"not reached (0/{t['of']})"
    e = t["epochs"]
    return f"{fmt_ci(e['mean'], e['ci95'], scale=1)} ep, {t['seconds']['mean']:.1f}s ({t['reached']}/{t['of']})"


def _reach_text(r: dict[str, Any]) -> str:
    if not r["of"]:
        return "n/a"
    if not r["reached"]:
        return f"not reached (0/{r['of']})"
    return f"{r['epochs']['mean']:.1f} ({r['reached']}/{r['of']})"


def fixed_targets_text(summary: dict[str, Any]) -> str | None:
    """'epochs to 50% acc: learngene 3.0 (3/3), baseline not reached (0/3); to the midpoint ...' (None when
    the summary has no fixed targets)."""
    ft = summary.get("fixed_targets")
    if not ft:
        return None
    parts = []
    for name, block in ft.items():
        roles = ", ".join(f"{role} {_reach_text(block[role])}" for role in ROLES)
        if name == "midpoint":
            mids = finite(block["values"])
            mean = f" ({100 * sum(mids) / len(mids):.1f}% mean)" if mids else ""
            parts.append(f"to the midpoint of chance and the learngene's final acc{mean}: {roles}")
        else:
            parts.append(f"to {name} acc: {roles}")
    return "epochs " + "; ".join(parts)


def format_pair_summary(summary: dict[str, Any]) -> str:
    """A small table: final/best accuracy (%, mean ± 95% CI), epochs to target, time, divergence."""
    has_target = any(summary[r].get("target") for r in ROLES)
    tgt = summary["learngene"].get("target", {}).get("acc")
    head = f"{'model':<10} {'final acc %':>15} {'best acc %':>15}"
    if has_target:
        label = "to baseline's final acc" if tgt == "baseline" else f"to {tgt * 100:.0f}% acc"
        head += f"  {label:<28}"
    head += f" {'train s':>8} {'diverged':>8}"
    lines = [head]
    for role in ROLES:
        s = summary[role]
        row = (f"{role:<10} {fmt_ci(s['final_acc']['mean'], s['final_acc']['ci95']):>15} "
               f"{fmt_ci(s['best_acc']['mean'], s['best_acc']['ci95']):>15}")
        if has_target:
            row += f"  {_target_cell(s):<28}"
        row += f" {s['train_seconds']['mean']:>8.1f} {s['diverged']:>8}"
        lines.append(row)
    g = summary["gain"]
    tests = (f" (paired t p={fmt_p(g.get('t_p'))}, Wilcoxon p={fmt_p(g.get('wilcoxon_p'))}, n={g['n']})"
             if g["n"] > 1 else " (one task: no confidence interval, no p-value)")
    lines.append(f"gain (learngene - baseline): {fmt_ci(g['mean'], g['ci95'])} points over {g['n']} task(s){tests}")
    fixed = fixed_targets_text(summary)
    if fixed:
        lines.append(fixed)
    dropped = {role: summary[role].get("dropped", 0) for role in ROLES}
    if any(dropped.values()):
        lines.append("left out of the means (no final accuracy): "
                     + ", ".join(f"{role} {n} run(s)" for role, n in dropped.items()))
    warning = chance_warning(summary)
    if warning:
        lines.append(f"WARNING: {warning}")
    return "\n".join(lines)


def _key(p: PairResult) -> tuple[float, float, int]:
    return (p.settings["lr"], p.settings["weight_decay"], p.k_shot)


def summarize_sweep(pairs: Sequence[PairResult], target_acc: Target = None) -> dict[str, Any]:
    """Per-setting summaries, the spread over the lr x wd grid per K, and accuracy against K.

    Returns:
        {"settings": [{lr, weight_decay, k_shot, learngene: {...}, baseline: {...}, gain}],
         "spread": {K: {role: {cells, min, max, range, std, mean}}},
         "by_k": {K: {role: {"grid_mean": ci-dict, "best_cell": {lr, weight_decay, final_acc}}}}}
        where a cell's accuracy is the mean final accuracy over tasks and seeds.
    """
    groups: dict[tuple[float, float, int], list[PairResult]] = defaultdict(list)
    for p in pairs:
        groups[_key(p)].append(p)
    settings = []
    for (lr, wd, k), ps in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
        s = summarize_pairs(ps, target_acc)
        settings.append({"lr": lr, "weight_decay": wd, "k_shot": k, **s})
    spread: dict[int, dict[str, Any]] = {}
    by_k: dict[int, dict[str, Any]] = {}
    for k in sorted({s["k_shot"] for s in settings}):
        cells = [s for s in settings if s["k_shot"] == k]
        spread[k], by_k[k] = {}, {}
        for role in ROLES:
            accs = [c[role]["final_acc"]["mean"] for c in cells]
            accs_ok = [a for a in accs if math.isfinite(a)]
            spread[k][role] = {"cells": len(accs), "min": min(accs_ok, default=float("nan")),
                               "max": max(accs_ok, default=float("nan")),
                               "range": (max(accs_ok) - min(accs_ok)) if accs_ok else float("nan"),
                               "std": std(accs_ok), "mean": sum(accs_ok) / len(accs_ok) if accs_ok else float("nan")}
            best = max(cells, key=lambda c, r=role: c[r]["final_acc"]["mean"]
                       if math.isfinite(c[r]["final_acc"]["mean"]) else -1.0)
            every = [v for c in cells for v in c[role]["final_acc"]["values"]]
            by_k[k][role] = {"grid_mean": _ci(every), "best_cell": {
                "lr": best["lr"], "weight_decay": best["weight_decay"], "final_acc": best[role]["final_acc"]}}
    return {"settings": settings, "spread": spread, "by_k": by_k, "pairs": len(pairs)}


def format_sweep_summary(summary: dict[str, Any]) -> str:
    """Three plain-text tables: per setting, spread over the lr x wd grid, accuracy against K."""
    lines = ["final test accuracy % (mean ± 95% CI over tasks x seeds); p: paired t / Wilcoxon of the gain; "
             "baseline: learned, not clear (not clearly above chance), or at chance",
             f"{'K':>3} {'lr':>9} {'wd':>8} {'learngene':>15} {'baseline':>15} {'gain':>15} {'p t / W':>15} "
             f"{'diverged':>9} {'baseline':>10}"]
    for s in summary["settings"]:
        lg, bl, g = s["learngene"]["final_acc"], s["baseline"]["final_acc"], s["gain"]
        div = f"{s['learngene']['diverged']}/{s['baseline']['diverged']}"
        p = f"{fmt_p(g.get('t_p'))} / {fmt_p(g.get('wilcoxon_p'))}"
        learned = {"learned": "learned", "at chance": "at chance", "not clearly above chance": "not clear"}.get(
            s.get("baseline_state") or {True: "learned", False: "at chance"}.get(s.get("baseline_learned"), ""), "n/a")
        lines.append(f"{s['k_shot']:>3} {s['lr']:>9.2g} {s['weight_decay']:>8.2g} {fmt_ci(lg['mean'], lg['ci95']):>15} "
                     f"{fmt_ci(bl['mean'], bl['ci95']):>15} {fmt_ci(g['mean'], g['ci95']):>15} {p:>15} {div:>9} "
                     f"{learned:>10}")
    lines += ["", "sensitivity: spread of final accuracy % over the lr x wd grid (cell = mean over tasks x seeds)",
              f"{'K':>3} {'cells':>5} {'model':<10} {'min':>6} {'max':>6} {'range':>6} {'std':>6}"]
    for k, roles in summary["spread"].items():
        for role in ROLES:
            r = roles[role]
            lines.append(f"{k:>3} {r['cells']:>5} {role:<10} {100 * r['min']:>6.1f} {100 * r['max']:>6.1f} "
                         f"{100 * r['range']:>6.1f} {100 * r['std'] if math.isfinite(r['std']) else float('nan'):>6.1f}")
    lines += ["", "accuracy % against K shots (all grid cells pooled; best cell per model)",
              f"{'K':>3} {'learngene':>15} {'baseline':>15} {'learngene best':>16} {'baseline best':>16}"]
    for k, roles in summary["by_k"].items():
        lg, bl = roles["learngene"], roles["baseline"]
        lines.append(f"{k:>3} {fmt_ci(lg['grid_mean']['mean'], lg['grid_mean']['ci95']):>15} "
                     f"{fmt_ci(bl['grid_mean']['mean'], bl['grid_mean']['ci95']):>15} "
                     f"{fmt_ci(lg['best_cell']['final_acc']['mean'], lg['best_cell']['final_acc']['ci95']):>16} "
                     f"{fmt_ci(bl['best_cell']['final_acc']['mean'], bl['best_cell']['final_acc']['ci95']):>16}")
    return "\n".join(lines)
