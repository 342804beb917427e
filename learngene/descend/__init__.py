"""Descendants against their random-init baselines: training pairs, sweeps and their summaries.

Public API:

* `train_pair`, `PairResult`, `RunResult`, `build_pair`: one task, learngene descendant + baseline.
* `run_sweep`, `SweepConfig`: every lr x wd x K x seed combination (batched on a GPU).
* `summarize_pairs`, `summarize_sweep`, `format_pair_summary`, `format_sweep_summary`: the four claims.
* `mean_ci`, `t_quantile`, `paired_tests`, `epochs_to_target`, `final_accuracy`: the statistics underneath
  (`scipy.stats`, imported when first used).
* `learngene.descend.batched.train_batched`: vmap-batched training of same-architecture models.
* `run_probe`, `ProbeConfig`, `ProbeResult`, `spearman`, `score_gain_correlation`: the ground truth of
  which ancestry layers help a descendant (single-layer gains, leave-one-out shares).
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
from learngene.descend.probe import ProbeConfig, ProbeResult, run_probe
from learngene.descend.probe_report import score_gain_correlation, spearman
from learngene.descend.stats import mean_ci, paired_tests, t_quantile
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
    "ProbeConfig",
    "ProbeResult",
    "RunResult",
    "SweepConfig",
    "build_pair",
    "epochs_to_target",
    "final_accuracy",
    "format_pair_summary",
    "format_sweep_summary",
    "mean_ci",
    "paired_tests",
    "run_probe",
    "run_sweep",
    "score_gain_correlation",
    "spearman",
    "summarize_pairs",
    "summarize_sweep",
    "t_quantile",
    "train_pair",
]
