"""Statistics of few-shot comparisons, on `scipy.stats`: Student-t quantiles, mean ± t-interval, and the
paired t-test and Wilcoxon signed-rank p-values of a gain measured on the same tasks.

scipy is imported inside the functions, so `import learngene` stays light (docs/design.md); the project's
requirements and the GPU box's image both have it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from learngene.errors import ConfigError


def finite(values: Sequence[float | None]) -> list[float]:
    """The values a mean uses: None and non-finite values (NaN, ±inf) are left out."""
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (integer df >= 1), e.g.
    `t_quantile(0.975, 9) = 2.262` (`scipy.stats.t.ppf`)."""
    from scipy import stats

    if not 0 < p < 1:
        raise ConfigError(f"quantile level must be in (0, 1), got {p}")
    if df < 1 or int(df) != df:
        raise ConfigError(f"degrees of freedom must be a positive integer, got {df}")
    return float(stats.t.ppf(p, int(df)))


def mean_ci(values: Sequence[float | None], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the two-sided `confidence` t-interval of the finite values (None, NaN and
    inf are left out: `finite`); NaN half-width for n < 2, (NaN, NaN) for n = 0."""
    from scipy import stats

    xs = finite(values)
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(xs) / n
    if n < 2:
        return mean, float("nan")
    return mean, t_quantile(0.5 + confidence / 2, n - 1) * float(stats.sem(xs))


def std(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); NaN for fewer than two values."""
    import numpy as np

    xs = [float(v) for v in values]
    if len(xs) < 2:
        return float("nan")
    return float(np.std(xs, ddof=1))


def paired_tests(gains: Sequence[float | None]) -> dict[str, Any]:
    """Two-sided p-values that the mean / median paired gain (model - baseline on the same task) is 0.

    Returns ``{"n", "t_p", "wilcoxon_p"}``: n = the finite gains used (None, NaN, inf left out);
    ``t_p`` = the one-sample t-test of the gains (`scipy.stats.ttest_1samp`, i.e. the paired t-test);
    ``wilcoxon_p`` = the Wilcoxon signed-rank test (`scipy.stats.wilcoxon`, its defaults: zero gains
    dropped, the exact distribution for small n, else the normal approximation). Both are None for
    fewer than 2 gains. Gains that are all equal are decided here, not by scipy's float noise: all
    zero -> both p = 1 (no task differs); all equal and non-zero -> t_p = 0 (an infinite t
    statistic), while the Wilcoxon p is scipy's (every sign agrees: 2 / 2^n).
    """
    from scipy import stats

    xs = finite(gains)
    n = len(xs)
    out: dict[str, Any] = {"n": n, "t_p": None, "wilcoxon_p": None}
    if n < 2:
        return out
    if all(x == 0 for x in xs):
        out["t_p"] = out["wilcoxon_p"] = 1.0
        return out
    with warnings.catch_warnings():  # near-equal gains, ties, zeros: scipy warns, the p-values stand
        warnings.simplefilter("ignore")
        out["t_p"] = 0.0 if max(xs) == min(xs) else float(stats.ttest_1samp(xs, 0.0).pvalue)
        out["wilcoxon_p"] = float(stats.wilcoxon(xs).pvalue)
    return out


def fmt_p(p: float | None) -> str:
    """'0.003', '<0.001', 'n/a' (undefined)."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_ci(mean: float, half: float | None, scale: float = 100.0, digits: int = 1) -> str:
    """'71.3 ± 2.4' (accuracies in percent by default); '71.3' when the interval is undefined."""
    if not math.isfinite(mean):
        return "n/a"
    if half is None or not math.isfinite(half):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {half * scale:.{digits}f}"
