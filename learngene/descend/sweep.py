"""Sweeps: every (K, task, lr, weight decay, seed) combination for a descendant and its baseline.

Runs that share an architecture and a number of training images (all runs of one K) can train as
one vmap-batched model (`learngene.descend.batched.train_batched`); that is the default on a GPU.
On a CPU the runs go one after another unless `batched="on"`. Both paths give the same results up
to float rounding.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from learngene._config import refuse_unknown
from learngene.data import ImageSet, Task, sample_tasks
from learngene.descend.compare import (
    ROLES,
    PairResult,
    RunResult,
    build_pair,
    make_logger,
    pair_batching,
    train_pair,
)
from learngene.errors import ConfigError
from learngene.inherit.build import Source
from learngene.inherit.recipe import Recipe
from learngene.reporting import Reporter
from learngene.train.settings import TaskSettings, batched_wanted, check_batched, renamed
from learngene.train.trainer import TrainConfig, resolve_device


@dataclass(kw_only=True)
class SweepConfig(TaskSettings):
    """The grid of a sweep, each list one axis, on `tasks` tasks (`TaskSettings`; `shots` None: [k_shot])."""

    lrs: list[float] = field(default_factory=lambda: [1e-3])
    wds: list[float] = field(default_factory=lambda: [0.05])
    shots: list[int] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    tasks: int = 1
    part: Literal["base", "open", "novel"] = "novel"
    batched: Literal["auto", "on", "off"] = "auto"
    max_batch: int = 32  # models per batched group

    def __post_init__(self) -> None:
        if self.shots is None:
            self.shots = [self.k_shot]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepConfig:
        d = renamed(d)
        refuse_unknown(cls, d, "sweep")
        return cls(**d).validated()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validated(self) -> SweepConfig:
        self.check_tasks()
        for name in ("lrs", "wds", "shots", "seeds"):
            if not getattr(self, name):
                raise ConfigError(f"the sweep needs at least one value in {name}")
        checks = [
            (all(v > 0 for v in self.lrs), "every learning rate must be positive"),
            (all(v >= 0 for v in self.wds), "every weight decay must be >= 0"),
            (all(v >= 1 for v in self.shots), "every K (shots) must be at least 1"),
            (self.max_batch >= 2, "max_batch must be at least 2"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        check_batched(self.batched)
        return self

    @property
    def runs(self) -> int:
        """Number of pairs the sweep trains."""
        return len(self.lrs) * len(self.wds) * len(self.shots) * len(self.seeds) * self.tasks


@dataclass
class _Job:
    task: Task
    cfg: TrainConfig
    seed: int

    @property
    def tags(self) -> dict[str, Any]:
        """Keys that name the sweep setting in every record ("base_lr": the epoch records' "lr" is the
        scheduled learning rate of that epoch)."""
        return {"base_lr": self.cfg.lr, "weight_decay": self.cfg.weight_decay, "k_shot": self.task.k_shot,
                "seed": self.seed}


def _settings(sweep: SweepConfig, base: TrainConfig) -> list[tuple[TrainConfig, int]]:
    """The (training config, seed) of every grid point, in run order; all checked before any training."""
    return [(replace(base, lr=lr, weight_decay=wd, seed=seed).validated(), seed)
            for lr, wd, seed in itertools.product(sweep.lrs, sweep.wds, sweep.seeds)]


def _jobs(ds: ImageSet, sweep: SweepConfig, settings: list[tuple[TrainConfig, int]], k: int) -> Iterator[_Job]:
    """The runs of one K, task by task: each task is built when the sweep reaches it (a lazy `TaskList`),
    so a sweep holds the images of the tasks it is training, not of all of them."""
    tasks = sample_tasks(ds, sweep.tasks, sweep.part, sweep.n_way, k, sweep.task_seed, sweep.test_per_class or None)
    for task in tasks:
        for cfg, seed in settings:
            yield _Job(task, cfg, seed)


def _train_group_batched(recipe: Recipe, source: Source, jobs: list[_Job],
                         reporter: Reporter | None) -> list[PairResult]:
    """Train the pairs of `jobs` (same K) as one batched model of 2 * len(jobs) members."""
    from learngene.descend.batched import train_batched

    models, cfgs, data, logs = [], [], [], []
    for job in jobs:
        for role, model in zip(ROLES, build_pair(recipe, source, job.task.n_way, job.seed), strict=True):
            models.append(model)
            cfgs.append(job.cfg)
            data.append((job.task.train_x, job.task.train_y, job.task.test_x, job.task.test_y))
            logs.append(make_logger(reporter, role, job.task.index, job.tags))
    t0 = time.perf_counter()
    histories = train_batched(models, cfgs, data, callback=lambda k, rec: logs[k](rec))
    wall = time.perf_counter() - t0
    results = []
    for j, job in enumerate(jobs):
        runs = [RunResult(role, h, bool(h and h[-1].get("diverged")), wall)
                for role, h in zip(ROLES, histories[2 * j:2 * j + 2], strict=True)]
        t = job.task
        settings = {"lr": job.cfg.lr, "weight_decay": job.cfg.weight_decay, "seed": job.seed,
                    "data_seed": job.cfg.seed, "k_shot": t.k_shot, "n_way": t.n_way, "epochs": job.cfg.epochs}
        pair = PairResult(t.index, tuple(t.classes), t.n_way, t.k_shot, settings, runs[0], runs[1],
                          extra={**job.tags, "batched": len(models)})
        if reporter is not None:
            reporter.metric({"kind": "pair", **job.tags, **pair.to_dict(with_history=False)})
        results.append(pair)
    return results


def use_batched(sweep: SweepConfig, recipe: Recipe, source: Source, cfg: TrainConfig, n_jobs: int) -> tuple[bool, str]:
    """Whether to train batched, and why not when not (`compare.pair_batching`)."""
    if n_jobs < 1 and batched_wanted(sweep.batched, resolve_device(cfg.device).type):
        return False, "nothing to batch"
    return pair_batching(sweep.batched, recipe, source, sweep.n_way, cfg, "this sweep")


def _units(ds: ImageSet, sweep: SweepConfig, settings: list[tuple[TrainConfig, int]],
           batched: bool) -> Iterator[list[_Job]]:
    """What trains together, in run order: one pair each, or groups of pairs of one K when batched."""
    size = max(1, sweep.max_batch // 2) if batched else 1
    for k in sweep.shots:
        jobs = _jobs(ds, sweep, settings, k)
        while group := list(itertools.islice(jobs, size)):
            yield group


def sweep_unit(recipe: Recipe, source: Source, jobs: list[_Job], batched: bool,
               reporter: Reporter | None = None) -> list[PairResult]:
    """Train the pairs of `jobs`: one batched group (same K), or pairs one after another. Run here, or
    as a task of a distributed executor (`learngene.descend.ray_units`), which records the results."""
    if batched:
        return _train_group_batched(recipe, source, jobs, reporter)
    return [train_pair(recipe, source, job.task, job.cfg, reporter, seed=job.seed, tags=job.tags) for job in jobs]


def run_sweep(recipe: Recipe, source: Source, ds: ImageSet, sweep: SweepConfig, cfg: TrainConfig,
              reporter: Reporter | None = None, backend=None) -> list[PairResult]:
    """Train every combination of the sweep for the learngene descendant and its baseline.

    Args:
        recipe: the descendant; its baseline is `recipe.baseline()`.
        source: ancestry model or learngene file.
        ds: the data set tasks are drawn from (`sweep.part` classes).
        sweep: the grid.
        cfg: the other training settings (epochs, batch size, ...); lr, weight decay and seed come
            from the grid (the seed fixes both the models' initialisation and the data order).
        reporter: progress and per-epoch records (tagged with lr, weight_decay, k_shot, seed).
        backend: None trains here; a `learngene.cluster.backend.RayBackend` trains each pair (or
            batched group) as a Ray task, and the records reach `reporter` from here as tasks finish.
    """
    sweep.validated()
    batched, _why = use_batched(sweep, recipe, source, cfg, sweep.runs)
    settings = _settings(sweep, cfg)
    units = _units(ds, sweep, settings, batched)
    if backend is not None:
        from learngene.descend.ray_units import run_sweep_units

        return run_sweep_units(sweep_unit, recipe, source, units, batched, reporter, backend)
    results: list[PairResult] = []
    for group in units:
        results += sweep_unit(recipe, source, group, batched, reporter)
    return results
