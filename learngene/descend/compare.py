"""Training a learngene descendant against its random-init baseline on few-shot tasks.

The comparison is fair by construction: the baseline is `recipe.baseline()` (same
architecture, every slot and the stem random), built with the same seed (so the random parts of the
two models start equal), trained with the same `TrainConfig` (so the same data order and
augmentation: the Trainer draws them from `cfg.seed` alone) on the same task.

A run whose loss or weights become NaN or infinite (the Trainer's checks, the last step included)
is recorded as diverged (its history ends with a record ``{"diverged": True}``) and does not stop
the other model; callers decide how to exit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from learngene.data import Task
from learngene.errors import DivergedError
from learngene.inherit.build import Source, build_descendant
from learngene.inherit.recipe import Recipe
from learngene.reporting import Reporter
from learngene.train.trainer import TrainConfig, Trainer

Role = Literal["learngene", "baseline", "baseline-long"]
ROLES: tuple[Role, ...] = ("learngene", "baseline")
MAX_STRONG_FACTOR = 20  # the longest stronger reference: 20 times the pair's epochs


def final_accuracy(history: list[dict[str, Any]], n_way: int | None = None) -> float | None:
    """The last measured test accuracy; chance (1 / n_way) for a diverged run when `n_way` is given."""
    if history and history[-1].get("diverged") and n_way:
        return 1.0 / n_way
    for rec in reversed(history):
        if rec.get("test_acc") is not None:
            return float(rec["test_acc"])
    return None


def epochs_to_target(history: list[dict[str, Any]], target: float) -> tuple[int, float] | None:
    """(epoch, seconds) of the first evaluation reaching `target` test accuracy, or None."""
    for rec in history:
        acc = rec.get("test_acc")
        if acc is not None and acc >= target:
            return int(rec["epoch"]), float(rec.get("time", float("nan")))
    return None


@dataclass
class RunResult:
    """One trained model of a pair."""

    role: Role
    history: list[dict[str, Any]]
    diverged: bool = False
    wall_time: float = 0.0
    paths: dict[str, Any] | None = None  # the Trainer's code paths (`Trainer.paths`); None where not recorded

    def final_acc(self, n_way: int | None = None) -> float | None:
        return final_accuracy(self.history, n_way)

    @property
    def best_acc(self) -> float | None:
        accs = [r["test_acc"] for r in self.history if r.get("test_acc") is not None]
        return max(accs) if accs else None


@dataclass
class PairResult:
    """A learngene descendant and its baseline trained on one task with one setting."""

    task: int
    classes: tuple[int, ...]
    n_way: int
    k_shot: int
    settings: dict[str, Any]
    learngene: RunResult
    baseline: RunResult
    extra: dict[str, Any] = field(default_factory=dict)

    def run(self, role: Role) -> RunResult:
        return self.learngene if role == "learngene" else self.baseline

    @property
    def diverged(self) -> bool:
        return self.learngene.diverged or self.baseline.diverged

    def to_dict(self, with_history: bool = True) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        for role in ROLES:
            d[role]["final_acc"] = self.run(role).final_acc(self.n_way)
            d[role]["best_acc"] = self.run(role).best_acc
            if not with_history:
                d[role].pop("history")
        return d


def _pair_settings(cfg: TrainConfig, seed: int, task: Task) -> dict[str, Any]:
    return {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "seed": seed, "data_seed": cfg.seed,
            "k_shot": task.k_shot, "n_way": task.n_way, "epochs": cfg.epochs}


def make_logger(reporter: Reporter | None, role: Role, task_index: int,
                tags: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """Per-epoch sink: a `{"kind": "epoch", "model": role, "task": i, ...}` metric and a progress tick."""
    def log(rec: dict[str, Any]) -> None:
        if reporter is None:
            return
        reporter.metric({"kind": "epoch", "model": role, "task": task_index, **tags, **rec})
        if rec.get("diverged"):
            reporter.metric({"kind": "diverged", "model": role, "task": task_index, **tags,
                             "epoch": rec.get("epoch"), "message": f"{role} training diverged at epoch "
                             f"{rec.get('epoch')} (loss or weights became NaN or infinite); try a smaller learning rate"})
        reporter.advance(1, message=f"task {task_index} {role}", acc=rec.get("test_acc", float("nan")))
    return log


def train_one(model: nn.Module, cfg: TrainConfig, task: Task,
              log: Callable[[dict[str, Any]], None] | None = None, role: Role = "learngene") -> RunResult:
    """Train one model on a task's support set, evaluating on its query set."""
    trainer = Trainer(model, cfg, task.train_x, task.train_y, task.test_x, task.test_y)
    if log is not None:
        trainer.add_callback("on_epoch_end", lambda tr, rec: log(rec))
    t0 = time.perf_counter()
    diverged = False
    try:
        trainer.run()
    except DivergedError:
        diverged = True
    return RunResult(role, trainer.history, diverged, time.perf_counter() - t0, dict(trainer.paths))


def train_lockstep(models: list[nn.Module], cfg: TrainConfig, task: Task,
                   logs: list[Callable[[dict[str, Any]], None]], roles: list[Role]) -> list[RunResult]:
    """Train several models on the same task side by side, one epoch of each in turn, so their curves grow
    together (a descendant and its baseline race in time, not one after the other). Each keeps its own data
    order and random-number state, so every model ends as it would trained alone (up to float rounding), and
    its own wall time."""
    trainers = []
    for model, log in zip(models, logs, strict=True):
        trainer = Trainer(model, cfg, task.train_x, task.train_y, task.test_x, task.test_y)
        trainer.add_callback("on_epoch_end", lambda tr, rec, log=log: log(rec))
        trainer.begin()
        trainers.append(trainer)
    going = list(trainers)
    while going:
        going = [t for t in going if t.epoch()]
    out = []
    for trainer, role in zip(trainers, roles, strict=True):
        try:
            trainer.end()
            diverged = False
        except DivergedError:
            diverged = True
        out.append(RunResult(role, trainer.history, diverged, trainer.elapsed, dict(trainer.paths)))
    return out


def train_batched_pair(models: list[nn.Module], cfg: TrainConfig, task: Task,
                       logs: list[Callable[[dict[str, Any]], None]]) -> list[RunResult]:
    """The learngene descendant and its baseline trained as one vmap-batched model
    (`learngene.descend.batched`): the same steps as in lockstep, in one set of kernels, so their epoch
    records arrive together. The two share every kernel, so each run's wall time is the pair's (its
    `paths` say `"batched": 2`)."""
    from learngene.descend.batched import train_batched

    data = (task.train_x, task.train_y, task.test_x, task.test_y)
    t0 = time.perf_counter()
    histories = train_batched(models, [cfg, cfg], [data, data], callback=lambda k, rec: logs[k](rec))
    wall = time.perf_counter() - t0
    return [RunResult(role, h, bool(h and h[-1].get("diverged")), wall, {"batched": len(models)})
            for role, h in zip(ROLES, histories, strict=True)]


def can_batch_pair(recipe: Recipe, source: Source, n_way: int, cfg: TrainConfig) -> tuple[bool, str]:
    """Whether a descendant of `recipe` and its baseline can train as one batched model, and why not."""
    from learngene.descend.batched import can_batch

    models = list(build_pair(recipe, source, n_way, 0))
    probe = (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, dtype=torch.long), None, None)
    return can_batch(models, [cfg, cfg], [probe, probe])


def pair_batching(choice: str, recipe: Recipe, source: Source, n_way: int, cfg: TrainConfig,
                  what: str = "the pairs") -> tuple[bool, str]:
    """Whether pairs of `recipe` train as batched models under `--batched` `choice` (auto: on a GPU), and
    why not when not; "on" refuses pairs that cannot be batched (`ConfigError`, naming `what`)."""
    from learngene.errors import ConfigError
    from learngene.train.settings import batched_wanted
    from learngene.train.trainer import resolve_device

    if not batched_wanted(choice, resolve_device(cfg.device).type):
        return False, ("batched training is off" if choice == "off" else
                       "on a CPU runs go one after another (use --batched on to batch anyway)")
    ok, why = can_batch_pair(recipe, source, n_way, cfg)
    if not ok and choice == "on":
        raise ConfigError(f"cannot train {what} batched: {why}")
    return ok, why


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """int64 (N,) predicted task labels of uint8 images `x` (N, 3, H, W), as `evaluate` scores them."""
    from learngene.data import normalize

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model(normalize(x[i:i + batch_size].to(device))).float().argmax(1).cpu()
           for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def build_pair(recipe: Recipe, source: Source, n_way: int, seed: int) -> tuple[nn.Module, nn.Module]:
    """(learngene descendant, baseline) for an `n_way` task, both built with `seed`."""
    recipe = recipe.with_classes(n_way)
    return build_descendant(recipe, source, seed), build_descendant(recipe.baseline(), source, seed)


def train_pair(
    recipe: Recipe, source: Source, task: Task, cfg: TrainConfig, reporter: Reporter | None = None,
    seed: int = 0, task_index: int | None = None, tags: dict[str, Any] | None = None,
    on_trained: Callable[[str, nn.Module, RunResult], None] | None = None, strong_factor: int = 0,
    batched: bool = False,
) -> PairResult:
    """Train the learngene descendant of `recipe` and its random-init baseline on `task`.

    Args:
        recipe: the descendant (its head is resized to `task.n_way`).
        source: the ancestry model or a loaded learngene file.
        task: an N-way K-shot task (`learngene.data.sample_task`).
        cfg: training settings, shared by both models (`cfg.seed` fixes the data order).
        reporter: receives `{"kind": "epoch", "model": ..., "task": ...}` records and progress.
        seed: seed of the models' random initialisation (shared by both).
        task_index: the task number in records (default: `task.index`).
        tags: extra keys for every record (e.g. the sweep setting).
        on_trained: called with (role, trained model, its result) after each model, e.g. to save it.
        strong_factor: when at least 2, also train a stronger random-init reference ("baseline-long"):
            the baseline given `strong_factor` times the epochs (same lr schedule stretched, same data
            order draw), summarised in ``extra["strong_baseline"]`` (its history goes to the reporter).
        batched: train the two as one vmap-batched model (`train_batched_pair`) instead of in lockstep;
            see `can_batch_pair` for when they can be.
    """
    index = task.index if task_index is None else task_index
    tags = dict(tags or {})
    models = build_pair(recipe, source, task.n_way, seed)
    logs = [make_logger(reporter, role, index, tags) for role in ROLES]
    if batched:
        runs = train_batched_pair(list(models), cfg, task, logs)
    else:
        runs = train_lockstep(list(models), cfg, task, logs, list(ROLES))
    if on_trained is not None:
        for model, run in zip(models, runs, strict=True):
            on_trained(run.role, model, run)
    result = PairResult(index, tuple(task.classes), task.n_way, task.k_shot, _pair_settings(cfg, seed, task),
                        runs[0], runs[1], extra=tags)
    if strong_factor >= 2:
        result.extra = {**tags, "strong_baseline": train_strong_baseline(
            recipe, source, task, cfg, strong_factor, runs[0], reporter, seed, index, tags, on_trained)}
    if reporter is not None:
        reporter.metric({"kind": "pair", **tags, **result.to_dict(with_history=False)})
    return result


def train_strong_baseline(
    recipe: Recipe, source: Source, task: Task, cfg: TrainConfig, factor: int, learngene: RunResult,
    reporter: Reporter | None = None, seed: int = 0, task_index: int = 0, tags: dict[str, Any] | None = None,
    on_trained: Callable[[str, nn.Module, RunResult], None] | None = None,
) -> dict[str, Any]:
    """Train the random-init baseline to its plateau (at most `factor` times `cfg.epochs`) and compare it
    with `learngene`.

    An equal budget is fair to the baseline only if it has converged. This one trains in rounds of
    `cfg.epochs` (`learngene.train.budget.train_in_rounds`: round 0 is exactly the pair's baseline, later
    rounds restart the schedule with seeds seed + round) until a round no longer improves its best
    held-out accuracy by a point, or the cap. Returns its final and best accuracy, why it stopped, the
    epochs it trained, and the first epoch at which it reached the learngene descendant's final
    accuracy (None: not within the epochs it trained).
    """
    from learngene.errors import ConfigError
    from learngene.train.budget import Budget, train_in_rounds

    if not 2 <= factor <= MAX_STRONG_FACTOR:
        raise ConfigError(f"--strong-baseline must be from 2 to {MAX_STRONG_FACTOR} (times the epochs), got {factor}")
    model = build_descendant(recipe.with_classes(task.n_way).baseline(), source, seed)
    log = make_logger(reporter, "baseline-long", task_index, dict(tags or {}))

    def make_trainer(r: int, epochs: int) -> Trainer:
        return Trainer(model, replace(cfg, epochs=epochs, seed=cfg.seed + r).validated(), task.train_x, task.train_y,
                       task.test_x, task.test_y)

    budget = Budget(round_epochs=cfg.epochs, max_epochs=cfg.epochs * factor, until="plateau")
    t0 = time.perf_counter()
    history, outcome = train_in_rounds(make_trainer, budget, lambda acc: "unknown", log)
    run = RunResult("baseline-long", history, outcome["stopped"] == "diverged", time.perf_counter() - t0)
    if on_trained is not None:
        on_trained("baseline-long", model, run)
    lg_final = learngene.final_acc(task.n_way)
    reached = epochs_to_target(run.history, lg_final) if lg_final is not None and not learngene.diverged else None
    return {"factor": factor, "epochs": len(history), "max_epochs": budget.max_epochs, "stopped": outcome["stopped"],
            "final_acc": run.final_acc(task.n_way), "best_acc": run.best_acc, "diverged": run.diverged,
            "wall_time": run.wall_time, "n_train": len(task.train_y), "n_test": len(task.test_y),
            "evals": sum(1 for r in history if r.get("test_acc") is not None), "learngene_final_acc": lg_final,
            "epoch_reaching_learngene": reached[0] if reached else None}


def summarize_strong_baseline(pairs: list[PairResult]) -> dict[str, Any] | None:
    """Over the pairs that trained a stronger reference: its mean final accuracy next to the learngene
    descendant's, the paired gain over it, on how many tasks it reached the learngene's final accuracy
    (and the median epoch), and whether it learned (None: no pair trained one)."""
    from statistics import median

    from learngene.descend.accuracy import above_chance, accuracy_line

    refs = [(p, p.extra["strong_baseline"]) for p in pairs if isinstance(p.extra.get("strong_baseline"), dict)]
    if not refs:
        return None
    both = [(s["learngene_final_acc"], s["final_acc"]) for _, s in refs
            if s["learngene_final_acc"] is not None and s["final_acc"] is not None]
    reached = [s["epoch_reaching_learngene"] for _, s in refs if s["epoch_reaching_learngene"] is not None]
    chance = sum(1.0 / p.n_way for p, _ in refs) / len(refs)

    def mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    return {"factor": refs[0][1]["factor"], "epochs": refs[0][1]["epochs"], "tasks": len(refs),
            "max_epochs": refs[0][1].get("max_epochs", refs[0][1]["epochs"]),
            "epochs_trained": [s.get("epochs") for _, s in refs], "stopped": [s.get("stopped") for _, s in refs],
            "reached_epochs": reached, "n_train": refs[0][1].get("n_train"),
            "final_acc": mean([b for _, b in both]), "learngene_final_acc": mean([a for a, _ in both]),
            "gain": mean([a - b for a, b in both]), "learngene_wins": sum(a > b for a, b in both),
            "reached": len(reached), "median_epoch_reaching_learngene": median(reached) if reached else None,
            "diverged": sum(bool(s["diverged"]) for _, s in refs), "chance": chance,
            "learned": above_chance([b for _, b in both], chance),
            "state": accuracy_line([b for _, b in both], chance)}


STOPS = {"plateau": "stopped on its plateau", "epochs": "reached the cap", "seconds": "ran out of time",
          "diverged": "diverged"}


def format_strong_baseline(s: dict[str, Any], flops_per_image: int | None = None) -> str:
    """The converged-baseline block of `learngene train`'s printed summary (with the FLOPs it needed to
    reach the learngene's accuracy when `flops_per_image`, the training FLOPs of one image, is given)."""
    trained = [e for e in s.get("epochs_trained") or [] if e is not None]
    stops = [x for x in s.get("stopped") or [] if x]
    how = (f"{min(trained)}-{max(trained)} epochs" if trained and min(trained) != max(trained)
           else f"{trained[0] if trained else s['epochs']} epochs")
    lines = [f"converged baseline: random init trained to its plateau, at most {s['factor']}x the epochs "
             f"({s.get('max_epochs', s['epochs'])}); it trained {how} "
             f"({', '.join(f'{stops.count(x)} {STOPS.get(x, x)}' for x in sorted(set(stops))) or 'n/a'}) on "
             f"{s['tasks']} task(s)",
             f"  final accuracy {s['final_acc']:.1%} vs the learngene's {s['learngene_final_acc']:.1%} "
             f"(gain {s['gain']:+.1%}; the learngene is better on {s['learngene_wins']}/{s['tasks']})"
             if s["final_acc"] is not None and s["learngene_final_acc"] is not None else "  no finished run to compare"]
    if s["reached"]:
        cost = ""
        if flops_per_image and s.get("n_train"):
            from learngene.descend.ledger import fmt_flops

            cost = f", {fmt_flops(s['median_epoch_reaching_learngene'] * s['n_train'] * flops_per_image)} of training"
        lines.append(f"  it reached the learngene's final accuracy on {s['reached']}/{s['tasks']} task(s), after "
                     f"{s['median_epoch_reaching_learngene']:g} epochs (median){cost}")
    if s["reached"] < s["tasks"]:
        lines.append(f"  on {s['tasks'] - s['reached']} task(s) it did not reach it: not within "
                     f"{max(trained) if trained else s['epochs']} epochs")
    lines.append(f"  the converged baseline is {s.get('state') or ('learned' if s['learned'] else 'at chance')}")
    if s["diverged"]:
        lines.append(f"  {s['diverged']} of its runs diverged")
    return "\n".join(lines)
