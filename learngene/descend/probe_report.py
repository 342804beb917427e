"""Reading a probe (`learngene.descend.probe`): rank correlation (Spearman, scipy) of layer scores with the
measured gains, its bootstrap interval over tasks, and the plain table the CLI prints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from learngene.descend.probe import ProbeResult
from learngene.errors import ConfigError


def spearman(x: Sequence[float | None], y: Sequence[float | None]) -> float | None:
    """Spearman's rho (`scipy.stats.spearmanr`: Pearson correlation of average ranks, so ties share their
    average rank); pairs with a None or NaN are left out.

    None when fewer than 3 pairs remain or either side is constant.
    """
    from scipy import stats

    if len(x) != len(y):
        raise ConfigError(f"spearman needs two sequences of one length, got {len(x)} and {len(y)}")
    ok = [(float(a), float(b)) for a, b in zip(x, y, strict=True)
          if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    if len(ok) < 3:
        return None
    xs, ys = [a for a, _ in ok], [b for _, b in ok]
    if len(set(xs)) == 1 or len(set(ys)) == 1:
        return None
    return float(stats.spearmanr(xs, ys).statistic)


def score_gain_correlation(scores: Sequence[float | None], probe: ProbeResult | dict[str, Any]) -> float | None:
    """Spearman's rho between per-layer scores (e.g. a similarity result's layer scores) and the probe's
    mean single-layer gains; None where `spearman` is undefined."""
    probe = probe if isinstance(probe, ProbeResult) else ProbeResult.from_dict(probe)
    if len(scores) != len(probe.layers):
        raise ConfigError(f"{len(scores)} layer scores for an ancestry with {len(probe.layers)} layers in the probe")
    return spearman(list(scores), probe.gains)


def correlation_interval(scores: Sequence[float | None], probe: ProbeResult | dict[str, Any], *,
                         resamples: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """A 95% bootstrap interval of `score_gain_correlation` over the probe's tasks.

    The tasks are resampled with replacement (the same draw for every layer, as the gains are paired
    per task), the gains re-averaged and rho recomputed; the interval is the 2.5 and 97.5 percentiles.
    It says whether a correlation over a handful of layers is more than noise. None when undefined.
    """
    import random

    probe = probe if isinstance(probe, ProbeResult) else ProbeResult.from_dict(probe)
    per_task = [row["gain"]["per_task"] for row in probe.single]
    n = len(per_task[0]) if per_task else 0
    if n < 2 or len(scores) != len(per_task):
        return None
    rng, rhos = random.Random(seed), []
    for _ in range(resamples):
        pick = [rng.randrange(n) for _ in range(n)]
        rho = spearman(list(scores), [sum(g[i] for i in pick) / n for g in per_task])
        if rho is not None:
            rhos.append(rho)
    if len(rhos) < resamples // 2:
        return None
    rhos.sort()
    return rhos[int(0.025 * (len(rhos) - 1))], rhos[int(0.975 * (len(rhos) - 1))]


def _pp(block: dict[str, Any]) -> str:
    """'+3.2 ± 1.1 *' in percentage points; '*' when the interval excludes zero."""
    mean, half = block["mean"], block["ci95"]
    mark = " *" if abs(mean) > half else "  "
    return f"{mean * 100:+6.1f} ± {half * 100:4.1f}{mark}"


def format_table(result: ProbeResult) -> str:
    """The plain table the CLI prints: per layer the single gain and leave-one-out share, then the references."""
    from learngene.descend.stats import fmt_ci

    s, loo = result.settings, {row["layer"]: row for row in result.leave_one_out}
    lines = [f"probe of {result.ancestry['arch']} ({result.ancestry['path']}): {s['tasks']} tasks, {s['n_way']}-way "
             f"{s['k_shot']}-shot, {s['epochs']} epochs, {result.elapsed_s / 60:.1f} min",
             "gains in accuracy points, mean ± 95% CI over tasks; * = the interval excludes 0",
             f"{'layer':<6}{'name':<12}{'single gain (vs stem)':<24}{'leave-one-out share':<22}"]
    for row in result.single:
        share = _pp(loo[row["layer"]]["share"]) if row["layer"] in loo else "-"
        lines.append(f"{row['layer']:<6}{row['name']:<12}{_pp(row['gain']):<24}{share:<22}")
    acc = result.accuracy
    lines.append(f"stem gain (stem vs baseline): {_pp(result.stem_gain).rstrip()}")
    refs = [f"baseline {fmt_ci(acc['baseline']['mean'], acc['baseline']['ci95'])}",
            f"stem {fmt_ci(acc['stem']['mean'], acc['stem']['ci95'])}"]
    if acc["chosen"] is not None:
        refs.append(f"chosen {result.chosen} {fmt_ci(acc['chosen']['mean'], acc['chosen']['ci95'])}")
    lines.append(f"accuracy %: {', '.join(refs)}; chance {result.chance * 100:.1f}")
    return "\n".join(lines)
