"""The four-advantage study (`learngene.descend.advantages`) on Ray: every planned run is a Ray task.

The driver ships the study's `RunContext` (ancestry, recipes, tasks, settings) to the object store
once, submits one task per run of the main cell and per run (or, when batching, per batched group)
of the grid and K cells, and records each result as it arrives, exactly as the local path does:
`Engine.finished` fills the run, appends it to the journal and tells `on_runs` (the job's metrics
and progress). So a study stopped on Ray resumes locally and the other way round, and its CSV,
tables and figures are made as before. Runs are trained with the same seeds, so their histories are
the local ones up to float rounding; wall times are those of a task on its own CPU(s) beside others.
"""

from __future__ import annotations

import time

from learngene.cluster.backend import RayBackend
from learngene.cluster.work import study_unit
from learngene.descend.advantages import Engine, Run, use_batched, work_units


def execute_ray(engine: Engine, runs: list[Run], label: str, backend: RayBackend) -> None:
    """Train every run of one ancestry as Ray tasks; the journal and metrics are written here."""
    batched = use_batched(engine)
    main, chunks = work_units(engine, runs)
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
