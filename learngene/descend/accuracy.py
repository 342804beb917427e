"""Whether final accuracies over tasks learned: the project's three-state rule (`learning_state`,
defined in `learngene.train.budget`) read from the mean and 95% interval of those accuracies.

Shared by the pair summaries (`learngene.descend.summary`, which re-exports it), the converged
baseline's summary (`learngene.descend.compare`) and the study report; it depends on no result type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from learngene.descend.stats import finite, mean_ci
from learngene.train.budget import CHANCE_MARGIN, LearningState, describe_learning, learning_state


def accuracy_interval(accuracies: Sequence[float]) -> tuple[float, float | None, float | None]:
    """(mean, low, high) of final accuracies over tasks: the 95% t-interval from 3 values on; under 3 the
    interval is undefined (None) and the rule reads the mean alone."""
    xs = finite(accuracies)
    if not xs:
        return float("nan"), None, None
    mean, half = mean_ci(xs)
    if len(xs) < 3 or not math.isfinite(half):
        return mean, None, None
    return mean, mean - half, mean + half


def accuracy_state(accuracies: Sequence[float], chance: float) -> LearningState:
    """`learning_state` of final accuracies over tasks ("unknown" when there are none)."""
    mean, lo, hi = accuracy_interval(accuracies)
    return learning_state(mean if accuracies else None, lo, hi, chance)


def accuracy_line(accuracies: Sequence[float], chance: float, what: str = "") -> str:
    """`describe_learning` of final accuracies over tasks."""
    mean, lo, hi = accuracy_interval(accuracies)
    return describe_learning(mean if finite(accuracies) else None, lo, hi, chance, what)


def above_chance(accuracies: Sequence[float], chance: float, margin: float = CHANCE_MARGIN) -> bool:
    """Whether final accuracies clearly learned (`learning_state` is "learned"): the lower end of their
    95% interval (the mean itself under 3 values) is more than the margin above `chance`."""
    if not finite(accuracies):
        return False
    mean, lo, _ = accuracy_interval(accuracies)
    low = mean if lo is None else lo
    return low > chance + min(margin, chance)
