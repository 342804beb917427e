"""A sweep (`learngene.descend.sweep.run_sweep`) on Ray: each pair, or batched group, is a Ray task.

Tasks are submitted a few at a time while the sweep walks its grid (each task's images are built when
it is reached, as locally), trained with the same seeds as the local path, and returned whole; the
driver then writes their per-epoch records and the pair record to the run folder, so the metrics
file holds what a local sweep writes (a pair's records arrive when the pair is done, in the order
pairs finish). The results come back in run order.
"""

from __future__ import annotations

from collections.abc import Iterable

from learngene.cluster.backend import RayBackend
from learngene.cluster.work import sweep_unit
from learngene.descend.compare import ROLES, PairResult, make_logger
from learngene.reporting import Reporter


def report_pair(reporter: Reporter | None, pair: PairResult) -> None:
    """Write a pair trained elsewhere as a local sweep writes it: each model's epoch records, then the pair."""
    if reporter is None:
        return
    tags = {k: v for k, v in pair.extra.items() if k != "batched"}
    for role in ROLES:
        log = make_logger(reporter, role, pair.task, tags)
        for rec in pair.run(role).history:
            log(rec)
    reporter.metric({"kind": "pair", **tags, **pair.to_dict(with_history=False)})


def run_units(recipe, source, units: Iterable[list], batched: bool, reporter: Reporter | None,
              backend: RayBackend) -> list[PairResult]:
    """Train each unit (a list of `_Job`) as one Ray task; record results here as they finish."""
    source_ref = backend.put(source)
    found: dict[int, list[PairResult]] = {}
    calls = ((i, (recipe, source_ref, group, batched)) for i, group in enumerate(units))
    for i, pairs in backend.map_unordered(sweep_unit, calls):
        for pair in pairs:
            report_pair(reporter, pair)
        found[i] = pairs
    return [p for i in sorted(found) for p in found[i]]
