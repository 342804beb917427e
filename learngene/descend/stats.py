"""Small statistics helpers: Student-t quantiles and mean ± confidence intervals.

scipy is not a dependency (and `torch.distributions.StudentT.icdf` is not implemented), so the
t quantile is found by bisection on the exact closed-form CDF for integer degrees of freedom
(Abramowitz & Stegun 26.7.3-4), which is all a mean over n tasks needs (df = n - 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from learngene.errors import ConfigError


def _t_central(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer `df` >= 1 and t >= 0 (closed form)."""
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(2, df - 1, 2):  # terms cos^k, k = 2, 4, ..., df - 2
            term *= c * c * (k - 1) / k
            total += term
        return s * total
    if df == 1:
        return 2 * theta / math.pi
    term, total = c, c
    for k in range(3, df - 1, 2):  # terms cos^k, k = 3, 5, ..., df - 2
        term *= c * c * (k - 1) / k
        total += term
    return 2 / math.pi * (theta + s * total)


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (integer df >= 1), e.g.
    `t_quantile(0.975, 9) = 2.262`."""
    if not 0 < p < 1:
        raise ConfigError(f"quantile level must be in (0, 1), got {p}")
    if df < 1 or int(df) != df:
        raise ConfigError(f"degrees of freedom must be a positive integer, got {df}")
    df = int(df)
    if p == 0.5:
        return 0.0
    central = abs(2 * p - 1)  # P(|T| < t)
    lo, hi = 0.0, 1.0
    while _t_central(hi, df) < central:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_central(mid, df) < central:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    t = 0.5 * (lo + hi)
    return t if p > 0.5 else -t


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the two-sided `confidence` t-interval (NaN half-width for n < 2)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(xs) / n
    if n < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return mean, t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)


def std(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); NaN for fewer than two values."""
    xs = [float(v) for v in values]
    if len(xs) < 2:
        return float("nan")
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def fmt_ci(mean: float, half: float, scale: float = 100.0, digits: int = 1) -> str:
    """'71.3 ± 2.4' (accuracies in percent by default); '71.3' when the interval is undefined."""
    if not math.isfinite(mean):
        return "n/a"
    if not math.isfinite(half):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {half * scale:.{digits}f}"
