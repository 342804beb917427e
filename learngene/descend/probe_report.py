"""Reading a probe (`learngene.descend.probe`): rank correlation (Spearman, scipy) of layer scores with the
measured gains, its bootstrap interval over tasks (and over the pseudo-descendant's seeds where the scores
come from several), and the plain table the CLI prints."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
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
                         seed_scores: Sequence[Sequence[float | None]] | None = None,
                         resamples: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """A 95% bootstrap interval of `score_gain_correlation` over the probe's tasks (and the pseudo-
    descendant's seeds, when given).

    The tasks are resampled with replacement (the same draw for every layer, as the gains are paired
    per task), the gains re-averaged and rho recomputed; the interval is the 2.5 and 97.5 percentiles.
    It says whether a correlation over a handful of layers is more than noise. None when undefined.

    `seed_scores`: each pseudo-descendant seed's layer scores (`condense --pd-seeds N`, see
    `seed_score_values`). With two or more, each draw also resamples the seeds with replacement and
    moves `scores` by how far the drawn seeds' mean lies from the mean of all seeds, so the interval
    holds the noise of the scores as well as that of the gains. One seed, or seeds that agree, give the
    tasks-only interval (the task draws do not depend on the seeds).
    """
    import random

    probe = probe if isinstance(probe, ProbeResult) else ProbeResult.from_dict(probe)
    per_task = [row["gain"]["per_task"] for row in probe.single]
    n = len(per_task[0]) if per_task else 0
    if n < 2 or len(scores) != len(per_task):
        return None
    seeds = _seed_draws(scores, seed_scores, random.Random(seed + 1_000_003))
    rng, rhos = random.Random(seed), []
    for _ in range(resamples):
        pick = [rng.randrange(n) for _ in range(n)]
        rho = spearman(next(seeds), [sum(g[i] for i in pick) / n for g in per_task])
        if rho is not None:
            rhos.append(rho)
    if len(rhos) < resamples // 2:
        return None
    rhos.sort()
    return rhos[int(0.025 * (len(rhos) - 1))], rhos[int(0.975 * (len(rhos) - 1))]


def _num(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _seed_draws(scores: Sequence[float | None], seed_scores: Sequence[Sequence[float | None]] | None,
                rng: Any) -> Iterator[list[float | None]]:
    """Endless score vectors for the bootstrap: `scores` itself without two or more seeds, else `scores`
    plus (mean of len(seeds) seeds drawn with replacement - mean of all seeds), per layer."""
    base = list(scores)
    values = [[_num(v) for v in row] for row in seed_scores or []]
    if len(values) < 2:
        while True:
            yield base
    if any(len(row) != len(base) for row in values):
        raise ConfigError(f"seed scores of {sorted({len(r) for r in values})} layers for {len(base)} layer scores")
    k = len(values)
    centre = [sum(col) / k for col in zip(*values, strict=True)]
    while True:
        drawn = [values[rng.randrange(k)] for _ in range(k)]
        yield [None if s is None else float(s) + sum(col) / k - c
               for s, col, c in zip(base, zip(*drawn, strict=True), centre, strict=True)]


def seed_score_values(extras: dict[str, Any] | None, n_layers: int) -> list[list[float]] | None:
    """Each pseudo-descendant seed's layer scores from a similarity result's extras (`condense --pd-seeds
    N` records them in `seed_scores`), or None when it holds fewer than two seeds of `n_layers` scores."""
    block = (extras or {}).get("seed_scores")
    values = block.get("values") if isinstance(block, dict) else None
    if not isinstance(values, list) or len(values) < 2 or any(len(row) != n_layers for row in values):
        return None
    return values


def interval_noise(seed_values: Sequence[Sequence[float]] | None) -> str:
    """What a `correlation_interval` resamples, in words: 'tasks' or 'tasks + 3 pseudo-descendant seeds'."""
    return "tasks" if not seed_values or len(seed_values) < 2 else f"tasks + {len(seed_values)} pseudo-descendant seeds"


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
