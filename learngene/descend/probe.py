"""The ground truth of condensing: which ancestry layers really help a descendant (similarity is only a
proxy; here each layer's gain over a baseline is measured, see docs/design.md).

On T novel N-way K-shot tasks, every model below is trained with the ancestry's depth, placement
"original", the same initialisation seed and the same `TrainConfig` (so the same data order); only
the inherited weights differ. The head is always new.

* ``baseline``: every slot and the stem random;
* ``stem``: the stem inherited, every layer random (the reference of the single-layer gains, so
  that the stem's share is not counted in every layer);
* ``single i``: the stem and ancestry layer i inherited, for every layer i;
* ``chosen`` (stem + every layer of a chosen set C) and ``chosen - i`` for each i in C.

Gains are paired per task: single gain g_i = acc(single i) - acc(stem); stem gain = acc(stem) -
acc(baseline); leave-one-out share of i = acc(chosen) - acc(chosen - i). Each is reported as the
mean and 95% t-interval half-width over the tasks (`stats.mean_ci`) with the per-task values. Models
are evaluated once, after the last epoch; a diverged model counts as chance (1 / N). Models whose
recipes coincide (e.g. ``chosen - i`` and ``stem`` when C = {i}) are trained once.

A condensing method is trustworthy to the degree that its layer scores rank the layers as g does:
`learngene.descend.probe_report.score_gain_correlation` gives Spearman's rho between the two.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from learngene.errors import CheckpointError, ConfigError
from learngene.train.settings import TaskTraining, batched_wanted, check_batched

FORMAT = "learngene.probe/1"
SETTINGS_KEYS = ("n_way", "k_shot", "tasks", "epochs", "lr", "weight_decay", "batch_size", "test_per_class", "seed",
                 "data_seed", "dataset", "device", "batched")
OPTIONAL_SETTINGS = ("images_per_class",)  # written only when set (quick tries on a smaller data set)
RESULT_KEYS = ("format", "ancestry", "settings", "layers", "chance", "accuracy", "stem_gain", "single", "chosen",
               "leave_one_out", "elapsed_s", "created")
DEFAULT_EPOCHS = 20


# ------------------------------------------------------------------ settings and the models to train


@dataclass(kw_only=True)
class ProbeConfig(TaskTraining):
    """Settings of one probe: the tasks and training (`TaskTraining`; its tasks are drawn with `seed`, the
    seed of the models too) and how the models run."""

    tasks: int = 10
    epochs: int = DEFAULT_EPOCHS
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batched: Literal["auto", "on", "off"] = "auto"  # auto: vmap-batched on CUDA, one by one on a CPU
    max_batch: int = 64  # models per batched group
    flip: bool = True  # horizontal-flip augmentation (off for data whose mirror images are other classes)

    def validated(self) -> ProbeConfig:
        if isinstance(self.tasks, int) and self.tasks < 2:
            raise ConfigError(f"a probe needs at least 2 tasks for its intervals, got --tasks {self.tasks}")
        self.check_training()
        check_batched(self.batched)
        if self.max_batch < 1:
            raise ConfigError(f"max_batch must be at least 1, got {self.max_batch}")
        self.train_config()
        return self

    def train_config(self):
        from learngene.train.config import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                           warmup_epochs=0, eval_every=self.epochs, device=self.device, seed=self.seed,
                           flip=self.flip).validated()


@dataclass(frozen=True)
class ProbeModel:
    """One model of a task: the ancestry layers it inherits (and whether the stem too)."""

    name: str
    layers: tuple[int, ...]
    stem: Literal["inherit", "random"] = "inherit"

    @property
    def key(self) -> tuple:
        return self.stem, tuple(sorted(self.layers))


def plan_models(n_layers: int, chosen: Sequence[int] = ()) -> list[ProbeModel]:
    """The models trained on every task, in order (see the module docstring)."""
    from learngene.inherit.recipe import normalize_layers

    chosen = sorted(normalize_layers(list(chosen), n_layers))
    models = [ProbeModel("baseline", (), "random"), ProbeModel("stem", ())]
    models += [ProbeModel(f"single {i}", (i,)) for i in range(n_layers)]
    if chosen:
        models.append(ProbeModel("chosen", tuple(chosen)))
        models += [ProbeModel(f"chosen - {i}", tuple(j for j in chosen if j != i)) for i in chosen]
    return models


def unique_models(models: Sequence[ProbeModel]) -> list[list[ProbeModel]]:
    """Models grouped by what they inherit: each group is trained once (the first name is its name)."""
    groups: dict[tuple, list[ProbeModel]] = {}
    for m in models:
        groups.setdefault(m.key, []).append(m)
    return list(groups.values())


def probe_units(n_layers: int, chosen: Sequence[int], config: ProbeConfig) -> int:
    """Progress units of a probe: epochs of every model trained."""
    return len(unique_models(plan_models(n_layers, chosen))) * config.tasks * config.epochs


# ------------------------------------------------------------------ the result file


def _block(values: Sequence[float]) -> dict[str, Any]:
    from learngene.descend.stats import mean_ci

    mean, half = mean_ci(values)
    return {"mean": mean, "ci95": half, "per_task": [float(v) for v in values]}


def _diff(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def _need(ok: bool, msg: str) -> None:
    if not ok:
        raise CheckpointError(msg)


def _is_num(v: Any) -> bool:
    if isinstance(v, int):  # always finite; math.isfinite overflows on one past float range
        return not isinstance(v, bool)
    return isinstance(v, float) and math.isfinite(v)


def _check_block(b: Any, where: str, tasks: int) -> None:
    _need(isinstance(b, dict) and set(b) == {"mean", "ci95", "per_task"},
          f"{where} must be an object with exactly mean, ci95, per_task")
    _need(_is_num(b["mean"]) and _is_num(b["ci95"]), f"{where}: mean and ci95 must be finite numbers")
    _need(isinstance(b["per_task"], list) and len(b["per_task"]) == tasks and all(map(_is_num, b["per_task"])),
          f"{where}.per_task must be {tasks} finite numbers (one per task)")


def _check_layer_rows(rows: Any, key: str, blocks: tuple[str, ...], layers: list[str], want: list[int],
                      tasks: int) -> None:
    _need(isinstance(rows, list) and len(rows) == len(want), f"{key} must list {len(want)} layers")
    for j, (row, i) in enumerate(zip(rows, want, strict=True)):
        _need(isinstance(row, dict) and set(row) == {"layer", "name", *blocks},
              f"{key}[{j}] must have exactly the keys layer, name, {', '.join(blocks)}")
        _need(row["layer"] == i and row["name"] == layers[i], f"{key}[{j}] must be layer {i} ({layers[i]})")
        for b in blocks:
            _check_block(row[b], f"{key}[{j}].{b}", tasks)


@dataclass
class ProbeResult:
    """A finished probe, in the `learngene.probe/1` JSON shape (`to_dict` / `from_dict`, `save` / `load`)."""

    ancestry: dict[str, Any]
    settings: dict[str, Any]
    layers: list[str]
    chance: float
    accuracy: dict[str, Any]
    stem_gain: dict[str, Any]
    single: list[dict[str, Any]]
    chosen: list[int]
    leave_one_out: list[dict[str, Any]]
    elapsed_s: float
    created: str

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, d: Any) -> ProbeResult:
        """Check the whole shape; `CheckpointError` saying what is wrong."""
        _need(isinstance(d, dict), "a probe result must be a JSON object")
        _need(d.get("format") == FORMAT, f"format must be {FORMAT!r}, got {d.get('format')!r}")
        _need(set(d) == set(RESULT_KEYS), f"keys must be exactly {sorted(RESULT_KEYS)}; missing "
              f"{sorted(set(RESULT_KEYS) - set(d))}, unknown {sorted(set(d) - set(RESULT_KEYS))}")
        anc, s = d["ancestry"], d["settings"]
        _need(isinstance(anc, dict) and set(anc) == {"arch", "path", "sha256"},
              "ancestry must have exactly arch, path, sha256")
        _need(isinstance(s, dict) and set(SETTINGS_KEYS) <= set(s) <= {*SETTINGS_KEYS, *OPTIONAL_SETTINGS},
              f"settings must have the keys {list(SETTINGS_KEYS)} (and optionally {list(OPTIONAL_SETTINGS)})")
        tasks = s["tasks"]
        _need(isinstance(tasks, int) and tasks >= 2, "settings.tasks must be an integer >= 2")
        layers = d["layers"]
        _need(isinstance(layers, list) and layers and all(isinstance(n, str) for n in layers),
              "layers must be a non-empty list of layer names")
        _need(_is_num(d["chance"]) and 0 < d["chance"] < 1, "chance must be a number in (0, 1)")
        chosen = d["chosen"]
        _need(isinstance(chosen, list) and all(isinstance(i, int) and 0 <= i < len(layers) for i in chosen)
              and len(set(chosen)) == len(chosen), f"chosen must be distinct layer indices in 0..{len(layers) - 1}")
        acc = d["accuracy"]
        _need(isinstance(acc, dict) and set(acc) == {"baseline", "stem", "chosen"},
              "accuracy must have exactly baseline, stem, chosen")
        for name in ("baseline", "stem"):
            _check_block(acc[name], f"accuracy.{name}", tasks)
        if chosen:
            _check_block(acc["chosen"], "accuracy.chosen", tasks)
        else:
            _need(acc["chosen"] is None, "accuracy.chosen must be null when no layers are chosen")
        _check_block(d["stem_gain"], "stem_gain", tasks)
        _check_layer_rows(d["single"], "single", ("acc", "gain"), layers, list(range(len(layers))), tasks)
        _check_layer_rows(d["leave_one_out"], "leave_one_out", ("share",), layers, chosen, tasks)
        _need(_is_num(d["elapsed_s"]) and isinstance(d["created"], str), "elapsed_s must be a number, created a string")
        return cls(**{f.name: d[f.name] for f in fields(cls)})

    def save(self, path: str | Path) -> Path:
        from learngene.runlog import atomic_write_json

        path = Path(path)
        ProbeResult.from_dict(self.to_dict())  # never write a file `load` would refuse
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> ProbeResult:
        import json

        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such probe result; run `python -m learngene probe --out {path}`") \
                from None
        except (OSError, ValueError, RecursionError) as exc:
            raise CheckpointError(f"{path}: not a readable JSON probe result ({exc})") from None
        try:
            return cls.from_dict(data)
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: not a {FORMAT} probe result: {exc}") from None

    @property
    def gains(self) -> list[float]:
        """Mean single-layer gain of every ancestry layer."""
        return [row["gain"]["mean"] for row in self.single]


def assemble(accs: dict[str, list[float]], n_layers: int, chosen: Sequence[int]) -> dict[str, Any]:
    """The accuracy, gain and share blocks from per-task accuracies {model name: [acc per task]}."""
    base, stem = accs["baseline"], accs["stem"]
    single = [{"layer": i, "acc": _block(accs[f"single {i}"]), "gain": _block(_diff(accs[f"single {i}"], stem))}
              for i in range(n_layers)]
    loo = [{"layer": i, "share": _block(_diff(accs["chosen"], accs[f"chosen - {i}"]))} for i in chosen]
    return {"accuracy": {"baseline": _block(base), "stem": _block(stem),
                         "chosen": _block(accs["chosen"]) if chosen else None},
            "stem_gain": _block(_diff(stem, base)), "single": single, "leave_one_out": loo}


# ------------------------------------------------------------------ training


@dataclass
class _Job:
    task: int
    group: list[ProbeModel]
    acc: float | None = None
    diverged: bool = False
    epochs_done: int = 0


def _chunks(jobs: list[_Job], size: int) -> list[list[_Job]]:
    return [jobs[i:i + size] for i in range(0, len(jobs), size)]


class _Runner:
    """Builds and trains the probe's models, reporting per epoch and per finished model."""

    def __init__(self, ancestry, tasks, config: ProbeConfig, reporter, log: Callable[[str], None]):
        from learngene.inherit.options import recipe_for
        from learngene.models import layer_view

        self.ancestry, self.tasks, self.config, self.rep, self.log = ancestry, tasks, config, reporter, log
        view = layer_view(ancestry)
        self.n = len(view)
        self.cfg = config.train_config()
        self.recipe = lambda m: recipe_for(ancestry, m.layers, view, stem=m.stem, num_classes=config.n_way)

    def model(self, job: _Job):
        from learngene.inherit.build import build_descendant

        return build_descendant(self.recipe(job.group[0]), self.ancestry, seed=self.config.seed)

    def tick(self, job: _Job, rec: dict[str, Any]) -> None:
        job.epochs_done += 1
        if self.rep is not None:
            self.rep.advance(1, message=f"task {job.task} {job.group[0].name}")

    def finish(self, job: _Job, history: list[dict[str, Any]], wall_s: float) -> None:
        from learngene.descend.compare import final_accuracy

        job.acc = final_accuracy(history, self.config.n_way)
        job.diverged = bool(history and history[-1].get("diverged"))
        if job.acc is None:
            raise ConfigError("a probe model was never evaluated: the task has no test images")
        if self.rep is not None:
            self.rep.advance(self.config.epochs - job.epochs_done)  # epochs a diverged model did not train
            for m in job.group:
                self.rep.metric({"kind": "probe_model", "task": job.task, "model": m.name, "acc": job.acc,
                                 "diverged": job.diverged, "layers": list(m.layers), "stem": m.stem,
                                 "trained_as": job.group[0].name, "wall_s": wall_s})
            if job.diverged:
                self.rep.metric({"kind": "diverged", "task": job.task, "model": job.group[0].name,
                                 "message": f"{job.group[0].name} diverged on task {job.task}; counted as chance"})

    def sequential(self, job: _Job) -> None:
        from learngene.descend.compare import train_one

        res = train_one(self.model(job), self.cfg, self.tasks[job.task], log=lambda rec: self.tick(job, rec))
        self.finish(job, res.history, res.wall_time)

    def batched(self, jobs: list[_Job]) -> bool:
        """Train `jobs` as one vmap-batched model; False (nothing trained) when they cannot be batched."""
        from learngene.descend.batched import can_batch, train_batched

        models = [self.model(j) for j in jobs]
        data = [(t.train_x, t.train_y, t.test_x, t.test_y) for t in (self.tasks[j.task] for j in jobs)]
        ok, why = can_batch(models, [self.cfg] * len(jobs), data)
        if not ok:
            self.log(f"cannot batch these models ({why}); training them one after another")
            return False
        t0 = time.perf_counter()
        histories = train_batched(models, [self.cfg] * len(jobs), data, callback=lambda k, rec: self.tick(jobs[k], rec))
        wall = (time.perf_counter() - t0) / len(jobs)
        for job, history in zip(jobs, histories, strict=True):
            self.finish(job, history, wall)
        return True


def run_probe(ancestry, ds, config: ProbeConfig, chosen: Sequence[int] = (), *, reporter=None,
              ancestry_info: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
              log: Callable[[str], None] = print) -> ProbeResult:
    """Train every probe model on `config.tasks` novel tasks of `ds` and measure gains and shares.

    Args:
        ancestry: the ancestry model (with `lg_spec`, e.g. from `load_ancestry`).
        ds: the data set; tasks come from its novel classes, drawn with `config.seed`.
        config: the probe's settings.
        chosen: ancestry layers of the chosen set (empty: no leave-one-out).
        reporter: a `Reporter` (progress: epochs of every trained model; a `probe_model` metric per model).
        ancestry_info: {"arch", "path", "sha256"} for the result (default: arch only).
        data: {"dataset", "data_seed"[, "images_per_class"]} of `ds`, for the settings.
        log: where notes go (batching fallback).
    """
    from learngene.data import sample_tasks
    from learngene.inherit.recipe import normalize_layers
    from learngene.models import layer_view
    from learngene.train.trainer import resolve_device

    config = config.validated()
    t0 = time.perf_counter()
    view = layer_view(ancestry)
    n = len(view)
    chosen = sorted(normalize_layers(list(chosen), n))
    groups = unique_models(plan_models(n, chosen))
    tasks = sample_tasks(ds, config.tasks, "novel", config.n_way, config.k_shot, config.seed,
                         config.test_per_class or None)
    device = resolve_device(config.device)
    use_batch = batched_wanted(config.batched, device.type)
    runner = _Runner(ancestry, tasks, config, reporter, log)
    jobs = [_Job(t, g) for t in range(config.tasks) for g in groups]
    all_batched = use_batch
    for chunk in _chunks(jobs, config.max_batch if use_batch else 1):
        if not (use_batch and runner.batched(chunk)):
            all_batched = False
            for job in chunk:
                runner.sequential(job)
    bad = [f"{j.group[0].name} on task {j.task}" for j in jobs if j.diverged]
    if bad:
        log(f"warning: {len(bad)} model(s) diverged and count as chance ({', '.join(bad[:3])}); consider a lower lr")
    accs: dict[str, list[float]] = {m.name: [0.0] * config.tasks for g in groups for m in g}
    for job in jobs:
        for m in job.group:
            accs[m.name][job.task] = float(job.acc)
    info = dict(ancestry_info or {"arch": ancestry.lg_spec.arch, "path": "", "sha256": ""})
    data = dict(data or {"dataset": "shapes", "data_seed": 0})
    settings = {k: getattr(config, k) for k in SETTINGS_KEYS if hasattr(config, k) and k not in ("device", "batched")}
    settings.update(dataset=data["dataset"], data_seed=data["data_seed"], device=device.type, batched=all_batched)
    if data.get("images_per_class") is not None:
        settings["images_per_class"] = data["images_per_class"]
    parts = assemble(accs, n, chosen)
    for row in parts["single"] + parts["leave_one_out"]:
        row["name"] = view.names[row["layer"]]
    return ProbeResult(ancestry=info, settings=settings, layers=list(view.names), chance=1.0 / config.n_way,
                       chosen=list(chosen), elapsed_s=time.perf_counter() - t0,
                       created=datetime.now(timezone.utc).isoformat(timespec="seconds"), **parts)
