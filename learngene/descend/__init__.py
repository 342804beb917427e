"""Descendants against their random-init baselines: training pairs, sweeps and their summaries.

Public API:

* `train_pair`, `PairResult`, `RunResult`, `build_pair`: one task, learngene descendant + baseline.
* `run_sweep`, `SweepConfig`: every lr x wd x K x seed combination (batched on a GPU).
* `summarize_pairs`, `summarize_sweep`, `format_pair_summary`, `format_sweep_summary`: the four claims.
* `mean_ci`, `t_quantile`, `epochs_to_target`, `final_accuracy`: the statistics underneath.
* `learngene.descend.batched.train_batched`: vmap-batched training of same-architecture models.
"""

from learngene.descend.compare import (
    ROLES,
    PairResult,
    RunResult,
    build_pair,
    epochs_to_target,
    final_accuracy,
    train_pair,
)
from learngene.descend.stats import mean_ci, t_quantile
from learngene.descend.summary import (
    format_pair_summary,
    format_sweep_summary,
    summarize_pairs,
    summarize_sweep,
)
from learngene.descend.sweep import SweepConfig, run_sweep

__all__ = [
    "ROLES",
    "PairResult",
    "RunResult",
    "SweepConfig",
    "build_pair",
    "epochs_to_target",
    "final_accuracy",
    "format_pair_summary",
    "format_sweep_summary",
    "mean_ci",
    "run_sweep",
    "summarize_pairs",
    "summarize_sweep",
    "t_quantile",
    "train_pair",
]
