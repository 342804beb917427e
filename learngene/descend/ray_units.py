"""A sweep's and a study's runs as tasks of a distributed executor (`--backend ray`).

The executor (`learngene.cluster.backend.RayBackend`, or anything with its `put`, `slots` and
`map_unordered`) knows nothing of sweeps or studies: it runs a picklable function of the library in
a worker process, with torch pinned to the task's CPUs, and hands back what the function returns.
The functions shipped are module-level functions of `learngene.descend` (pickled by reference, so
every worker must have this package installed; on one machine it has: the workers use the driver's
Python). They write no file and no metric; the driver records their results here, as the local
paths do, so the run folder, its metrics and a study's journal have one writer.

* A sweep (`learngene.descend.sweep.run_sweep`): each pair, or batched group of pairs, is a task.
  Tasks are submitted a few at a time while the sweep walks its grid (each task's images are built
  when it is reached, as locally), trained with the same seeds as the local path and returned whole;
  the driver then writes their per-epoch records and the pair record, so the metrics file holds what
  a local sweep writes (a pair's records arrive when the pair is done, in the order pairs finish).
  The results come back in run order.
* A study (`learngene.descend.advantages.execute`): the study's `RunContext` (ancestry, recipes,
  tasks, settings) goes to the object store once; each run of the main cell, and each run (or, when
  batching, each batched group) of the grid and K cells, is a task. `Engine.finished` records each
  result as it arrives, as the local path does, so a study stopped on Ray resumes locally and the
  other way round. Runs are trained with the same seeds, so their histories are the local ones up to
  float rounding; wall times are those of a task on its own CPU(s) beside others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

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


def run_sweep_units(train_unit: Callable, recipe, source, units: Iterable[list], batched: bool,
                    reporter: Reporter | None, backend) -> list[PairResult]:
    """Train each unit of a sweep (a list of its jobs) as one task running `train_unit(recipe, source,
    jobs, batched)`; record the pairs here as they finish; return them in run order."""
    source_ref = backend.put(source)
    found: dict[int, list[PairResult]] = {}
    calls = ((i, (recipe, source_ref, group, batched)) for i, group in enumerate(units))
    for i, pairs in backend.map_unordered(train_unit, calls):
        for pair in pairs:
            report_pair(reporter, pair)
        found[i] = pairs
    return [p for i in sorted(found) for p in found[i]]


_WARM: set[str] = set()  # keys of the study contexts this worker process has warmed up


def study_unit(context, runs: list, batched: bool) -> list[tuple[list[int], list, float, str, str]]:
    """Train runs of a study (`learngene.descend.advantages.Run`) with `context` (its `RunContext`):
    one run, or a group to train as one batched model. Returns, per part trained together,
    (positions in `runs`, histories, wall seconds, timing label, rate kind); a group that cannot be
    batched is trained one run after another, as the local study does.

    A worker's first run of a study is preceded by one untimed epoch, as the local study does once,
    so that no timed run pays for first-call costs."""
    if context.key not in _WARM:
        context.warm_up()
        _WARM.add(context.key)
    if batched and len(runs) > 1:
        out = context.train_batched(runs)
        if not isinstance(out, str):
            histories, wall = out
            return [(list(range(len(runs))), histories, wall, f"batched x{len(runs)} (amortised, ray)", "batched")]
    parts = []
    for i, run in enumerate(runs):
        history, wall = context.train_one(run)
        parts.append(([i], [history], wall, "sequential (ray)", "sequential"))
    return parts


def execute_study(engine, runs: list, main: list, chunks: list[list], batched: bool, label: str,
                  backend: Any) -> None:
    """Train the runs of one ancestry left to train (`main`: the main cell's, `chunks`: the others, as
    `learngene.descend.advantages.work_units` shares them out) as tasks; `engine` (its `Engine`)
    records each result, so the journal and metrics are written here."""
    units = [[r] for r in main] + (chunks if batched else [[r] for c in chunks for r in c])
    done = len(runs) - sum(map(len, units))
    if done:
        engine.log(f"  [{label}] {done}/{len(runs)} runs restored from the journal {engine.journal.path}")
    if not units:
        return
    engine.parallel = backend.slots
    engine.log(f"  [{label}] {len(units)} Ray task(s) for {len(runs) - done} runs, {engine.parallel} at a time")
    context = backend.put(engine.context)
    t0 = time.perf_counter()
    calls = ((i, (context, unit, batched and len(unit) > 1)) for i, unit in enumerate(units))
    for n, (i, parts) in enumerate(backend.map_unordered(study_unit, calls), 1):
        unit = units[i]
        for positions, histories, wall, timing, mode in parts:
            engine.finished([unit[p] for p in positions], histories, wall, timing, mode)
        done += len(unit)
        if n % engine.parallel == 0 or n == len(units):
            todo = [r for r in runs if not r.history]
            engine.log(f"  [{label}] {done}/{len(runs)} runs, {time.perf_counter() - t0:.0f} s, ETA for this "
                       f"ancestry {engine.eta(todo, batched):.0f} s (on Ray, {engine.parallel} at a time)")
