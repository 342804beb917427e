"""The four advantages: learngene descendants against their random-init baseline.

For each ancestry (default: both shipped ones, `lg_vit_tiny` and `lg_resnet_mini`) and each model
row: the random-init **baseline**, **heur** (Heur-LG's last 3 layers), **auto-paper** (the seed
paper's published choice), **auto** and **cka** (the layers `condense` selects with that method, top
half of the layers) and **finetune** (every layer and the stem inherited: the upper reference that
transfers everything). Every row is the same architecture at full depth, built with the same seed,
trained with the same recipe on the same tasks in the same data order; only the inherited weights
differ. Runs are shared between the studies where they coincide:

* main cell, K = `k_shot` (10) at the default lr / wd: **performance** (final accuracy, mean ± 95%
  t-interval over the tasks, and the paired gain over the baseline) and **convergence** (first
  evaluated epoch reaching the target accuracy and its wall time; the target defaults, as in
  `learngene train`, to the baseline's final accuracy on the same task). Evaluated every epoch and
  trained one after another, so the wall times are a single model's;
* the lr x wd grid at K = `k_shot`: **sensitivity** (mean, max - min and std over the grid cells of
  the per-cell mean final accuracy; a diverged run counts as chance);
* K in `shots` at the default lr / wd: **sample efficiency** (mean accuracy per K, and the smallest
  K whose accuracy matches the baseline's at the largest K).
Grid and K runs are evaluated at the last epoch only; on a GPU, those of one K train as vmap-batched
groups (`learngene.descend.batched`) where the models allow it (`--batched`).

Every finished run is appended to a journal (`<out>/journal/<arch>-<sha8>.jsonl`): a study that is
stopped or killed restarts where it stopped, and runs whose recipe changed are trained again.

    python -m learngene advantages --quick --ancestry /tmp/anc.safetensors   # minutes, development
    python -m learngene advantages --threads 1                               # the full study (a job)
    python -m bench.advantages --threads 1 --write-docs                      # the same, into docs/results.md
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from learngene.descend import advantages_report as report
from learngene.descend.journal import RunJournal
from learngene.tables import write_csv
from learngene.train.settings import TaskTraining, batched_wanted, renamed


def _say(text: str) -> None:
    print(text, flush=True)


MODELS = ("baseline", "heur", "auto-paper", "auto", "cka", "finetune")


@dataclass(kw_only=True)
class Study(TaskTraining):
    """Settings of the study (`TaskTraining`: 10 novel 5-way tasks, the main cell at K = `k_shot` (10), lr,
    weight decay; and a 4 lr x 2 wd grid, K = 1, 5, 10, 20)."""

    shots: tuple[int, ...] = (1, 5, 10, 20)
    lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3)
    wds: tuple[float, ...] = (0.05, 0.5)
    eval_every: int = 1
    target_acc: float | str = "baseline"
    images_per_class: int | None = None
    models: tuple[str, ...] = MODELS
    grid_models: tuple[str, ...] | None = None  # rows also trained in the grid and K cells (None: every row)
    batched: str = "auto"
    max_batch: int = 32
    condense: dict[str, Any] = field(default_factory=dict)
    # the data: None = each ancestry card's data set, seed and split (which bind: see learngene.data.binding)
    dataset: str | None = None
    data_seed: int | None = None
    split_file: str | None = None
    flip: str = "auto"
    data_root: str | None = None
    download: bool = False
    image_size: int | None = None  # None: the ancestry's input size
    # the descendants' size: width x the ancestry's, depth in layers (None: the ancestry's)
    width: float = 1.0
    depth: int | None = None


QUICK = Study(tasks=2, shots=(1, 5, 10), lrs=(1e-3, 3e-3), wds=(0.05,), epochs=6, test_per_class=20,
              images_per_class=60, max_batch=16,
              condense={"pd_epochs": 1, "images": 64, "probe_batch": 32, "train_per_class": 20, "holdout_per_class": 16})


@dataclass
class Run:
    """One model trained on one task with one setting."""

    model: str
    task: int
    k: int
    lr: float
    wd: float
    eval_every: int
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = float("nan")
    timing: str = ""
    main: bool = False  # in the main cell: trained one after another and evaluated every `eval_every` epochs


# ------------------------------------------------------------------ choosing the layers


def _similarity(method: str, ancestry, card, ds, study: Study, out: Path, given: dict[str, str]):
    """The condense result of `method` for this ancestry: given, cached in `out`, or computed now."""
    from learngene.condense import CondenseConfig, SimilarityResult, condense

    if method in given:
        return SimilarityResult.load(given[method]), f"from {given[method]}"
    cfg = CondenseConfig().replace(**{"flip": bool(ds.meta.get("flip", True)), **study.condense})
    path = out / f"{card.spec.arch}-{card.sha256[:8]}-{method}.json"
    if path.exists():
        old = SimilarityResult.load(path)
        same_data = (old.settings.get("dataset") == ds.name
                     and old.settings.get("open_world") == list(ds.split.open_world))
        if old.ancestry.get("sha256") == card.sha256 and same_data and all(
                old.settings.get(k, True if k == "flip" else None) == v for k, v in cfg.to_dict().items()
                if k != "device"):
            return old, f"cached {path}"
    t0 = time.perf_counter()
    res = condense(ancestry, ds, method, config=cfg, ancestry_sha256=card.sha256)
    res.save(path)
    return res, f"computed in {time.perf_counter() - t0:.0f} s, saved {path}"


def model_layers(ancestry, card, ds, study: Study, out: Path, given: dict[str, str],
                 log: Callable[[str], None] = _say) -> dict[str, list[int]]:
    """Ancestry layers each model row inherits (baseline: none)."""
    from learngene.condense.select import select_preset
    from learngene.models import family_of, layer_view

    view = layer_view(ancestry)
    n, family = len(view), family_of(ancestry)
    layers: dict[str, list[int]] = {}
    for name in study.models:
        if name == "baseline":
            layers[name] = []
        elif name == "finetune":
            layers[name] = list(range(n))
        elif name in ("auto", "cka"):
            res, how = _similarity(name, ancestry, card, ds, study, out, given)
            layers[name] = list(res.selected)
            log(f"  {name}: layers {layers[name]} ({how})")
        else:
            layers[name] = select_preset(name, n, family, names=view.names)
    return layers


# ------------------------------------------------------------------ the plan and its execution


def plan(study: Study) -> list[Run]:
    """Every run: the main cell (sequential, evaluated every `eval_every` epochs), then grid and K cells."""
    n = len(study.models)
    runs = [Run(study.models[(t + i) % n], t, study.k_shot, study.lr, study.weight_decay, study.eval_every, main=True)
            for t in range(study.tasks) for i in range(n)]  # order rotates per task: drift hits no model alone
    cells = [(study.k_shot, lr, wd) for lr in study.lrs for wd in study.wds if (lr, wd) != (study.lr, study.weight_decay)]
    cells += [(k, study.lr, study.weight_decay) for k in study.shots if k != study.k_shot]
    rows = report.grid_rows(study)
    runs += [Run(m, t, k, lr, wd, study.epochs) for k, lr, wd in cells for t in range(study.tasks)
             for m in study.models if m in rows]
    return runs


def _cost(run: Run, study: Study) -> float:
    """Sequential-equivalent work units: training images seen + a third of the images evaluated."""
    evals = study.epochs // run.eval_every + (study.epochs % run.eval_every != 0)
    return study.epochs * study.n_way * run.k + evals * study.n_way * study.test_per_class / 3


class RunContext:
    """What training one run of a study needs, and nothing else (picklable): the ancestry, the rows'
    recipes, the tasks, the study and the device. The `Engine` trains with it here; the Ray backend
    (`learngene.descend.ray_units`) ships it once to the cluster and trains with it in Ray tasks."""

    def __init__(self, ancestry, layers: dict[str, list[int]], ds, study: Study, device):
        import uuid

        from learngene.data import sample_tasks
        from learngene.models import layer_view

        self.ancestry, self.study, self.device = ancestry, study, device
        view = layer_view(ancestry)
        n = len(view)
        self.recipes = {}
        for name, lay in layers.items():
            full = sized_recipe(ancestry, view, lay or list(range(n)), study)
            self.recipes[name] = full.baseline() if name == "baseline" else full
        self.tasks = {k: sample_tasks(ds, study.tasks, "novel", study.n_way, k, study.task_seed, study.test_per_class)
                      for k in sorted({study.k_shot, *study.shots})}
        self.flip = bool(ds.meta.get("flip", True))
        self.key = uuid.uuid4().hex  # names this context in the processes it is shipped to

    def config(self, run: Run):
        from learngene.train.config import TrainConfig

        s = self.study
        return TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=run.lr, weight_decay=run.wd, warmup_epochs=0,
                           eval_every=run.eval_every, device=self.device.type, seed=s.seed, flip=self.flip)

    def model(self, run: Run):
        from learngene.inherit.build import build_descendant

        return build_descendant(self.recipes[run.model], self.ancestry, seed=self.study.seed)

    def warm_up(self) -> None:
        """One untimed epoch of one model, so that no timed run pays for first-call costs."""
        from learngene.descend.compare import train_one

        run = Run(self.study.models[0], 0, self.study.k_shot, self.study.lr, self.study.weight_decay, 1)
        train_one(self.model(run), replace(self.config(run), epochs=1), self.tasks[run.k][0])

    def train_one(self, run: Run) -> tuple[list[dict[str, Any]], float]:
        """(history, wall seconds) of `run` trained alone."""
        from learngene.descend.compare import train_one

        res = train_one(self.model(run), self.config(run), self.tasks[run.k][run.task])
        return res.history, res.wall_time

    def train_batched(self, runs: list[Run]) -> tuple[list[list[dict[str, Any]]], float] | str:
        """(histories, wall seconds) of `runs` trained as one batched model, or why they cannot be."""
        from learngene.descend.batched import can_batch, train_batched

        models = [self.model(r) for r in runs]
        cfgs = [self.config(r) for r in runs]
        data = []
        for r in runs:
            t = self.tasks[r.k][r.task]
            data.append((t.train_x, t.train_y, t.test_x, t.test_y))
        ok, why = can_batch(models, cfgs, data)
        if not ok:
            return why
        t0 = time.perf_counter()
        histories = train_batched(models, cfgs, data)
        return histories, time.perf_counter() - t0


class Engine:
    """Builds and trains the runs of one ancestry; keeps the rates that feed the ETA."""

    def __init__(self, ancestry, layers: dict[str, list[int]], ds, study: Study, device,
                 log: Callable[[str], None] = _say, on_runs: Callable[[list[Run]], None] | None = None,
                 data_id: dict[str, Any] | None = None):
        self.context = RunContext(ancestry, layers, ds, study, device)
        self.ancestry, self.study, self.device = ancestry, study, device
        self.recipes, self.tasks, self.flip = self.context.recipes, self.context.tasks, self.context.flip
        self.rate = {"sequential": None, "batched": None}  # work units per second
        self.parallel = 1  # runs training at once (the Ray backend's slots), for the ETA
        self.layers = layers
        self.data_id = data_id  # None: the embedded default data, as in the journals of round 1
        self.journal: RunJournal | None = None
        self.log, self.on_runs = log, on_runs

    # -------------------------------------------------------------- the journal (resuming a study)

    def fingerprint(self, run: Run) -> str:
        """What decides a run's result besides its identity: the study recipe and the model's layers."""
        s = self.study
        what = {"epochs": s.epochs, "batch_size": s.batch_size, "n_way": s.n_way, "test_per_class": s.test_per_class,
                "task_seed": s.task_seed, "seed": s.seed, "images_per_class": s.images_per_class,
                "layers": self.layers[run.model], "baseline": run.model == "baseline"}
        if s.width != 1.0 or s.depth is not None:  # only then, so the journals of full-size studies stay valid
            what["size"] = {"width": s.width, "depth": s.depth}
        if self.data_id is not None:
            what["data"] = self.data_id
        return json.dumps(what, sort_keys=True)

    @staticmethod
    def identity(run: Run) -> tuple:
        return (run.model, run.task, run.k, float(run.lr), float(run.wd), run.eval_every)

    def open_journal(self, path: Path, runs: list[Run]) -> int:
        """Append finished runs to the journal at `path` from now on; fill `runs` from what it already
        holds. Returns how many runs were restored; `on_runs` hears of them."""
        self.journal = RunJournal(path)
        done = self.journal.load()
        restored = []
        for r in runs:
            rec = done.get((self.identity(r), self.fingerprint(r)))
            if rec is not None:
                r.history, r.wall_s, r.timing = rec["history"], float(rec["wall_s"]), rec["timing"]
                restored.append(r)
        if restored and self.on_runs is not None:
            self.on_runs(restored)
        return len(restored)

    def record(self, runs: list[Run]) -> None:
        """Append finished runs to the journal and tell `on_runs`."""
        if self.on_runs is not None:
            self.on_runs(runs)
        if self.journal is not None:
            self.journal.append([{"identity": self.identity(r), "fingerprint": self.fingerprint(r),
                                  "history": r.history, "wall_s": r.wall_s, "timing": r.timing} for r in runs])

    def config(self, run: Run):
        return self.context.config(run)

    def model(self, run: Run):
        return self.context.model(run)

    def warm_up(self) -> None:
        self.context.warm_up()

    def finished(self, runs: list[Run], histories: list[list[dict[str, Any]]], wall: float, timing: str,
                 mode: str) -> None:
        """Take the results of `runs` (trained together in `wall` seconds), learn the rate, record them."""
        for r, h in zip(runs, histories, strict=True):
            r.history, r.wall_s, r.timing = h, wall / len(runs), timing
        self._learn(mode, sum(_cost(r, self.study) for r in runs), wall)
        self.record(runs)

    def train_sequential(self, run: Run) -> None:
        history, wall = self.context.train_one(run)
        self.finished([run], [history], wall, "sequential", "sequential")

    def train_batched(self, runs: list[Run]) -> bool:
        """Train `runs` as one batched model; False (nothing trained) when they cannot be batched."""
        out = self.context.train_batched(runs)
        if isinstance(out, str):
            self.log(f"  cannot batch these runs ({out}); training them one after another")
            return False
        histories, wall = out
        self.finished(runs, histories, wall, f"batched x{len(runs)} (amortised)", "batched")
        return True

    def _learn(self, mode: str, units: float, seconds: float) -> None:
        rate = units / max(seconds, 1e-9)
        old = self.rate[mode]
        self.rate[mode] = rate if old is None else 0.7 * old + 0.3 * rate

    def eta(self, todo: list[Run], batched: bool) -> float:
        seq = self.rate["sequential"] or 1.0
        bat = self.rate["batched"] or seq
        work = sum(_cost(r, self.study) / (bat if (batched and not r.main) else seq) for r in todo)
        return work / max(1, self.parallel)


def use_batched(engine: Engine) -> bool:
    """Whether the grid and K runs train as batched groups (`--batched`; auto: on a GPU)."""
    study = engine.study
    return batched_wanted(study.batched, engine.device.type)


def work_units(engine: Engine, runs: list[Run]) -> tuple[list[Run], list[list[Run]]]:
    """The runs still to train: the main cell's (one after another) and the others in chunks of up to
    `max_batch` runs of one K (a batched group each, when batching)."""
    study = engine.study
    main = [r for r in runs if r.main and not r.history]
    rest = [r for r in runs if not r.main and not r.history]
    groups: dict[int, list[Run]] = {}
    for r in rest:
        groups.setdefault(r.k, []).append(r)
    chunks = [g[i:i + study.max_batch] for g in groups.values() for i in range(0, len(g), study.max_batch)]
    return main, chunks


def execute(engine: Engine, runs: list[Run], label: str, backend=None) -> None:
    """Train every run of one ancestry, printing progress and an ETA measured from the first runs.

    `backend`: None trains here, one run after another; a `learngene.cluster.backend.RayBackend`
    trains each run (or batched group) as a Ray task, recorded here as it finishes."""
    study = engine.study
    batched = use_batched(engine)
    main, chunks = work_units(engine, runs)
    if backend is not None:
        from learngene.descend.ray_units import execute_study

        execute_study(engine, runs, main, chunks, batched, label, backend)
        return
    t0 = time.perf_counter()
    done = len(runs) - len(main) - sum(map(len, chunks))
    if done:
        engine.log(f"  [{label}] {done}/{len(runs)} runs restored from the journal {engine.journal.path}")
    if not main and not chunks:
        return

    def progress(what: str) -> None:
        todo = [r for r in runs if not r.history]
        engine.log(f"  [{label}] {done}/{len(runs)} runs, {time.perf_counter() - t0:.0f} s, ETA for this ancestry "
                   f"{engine.eta(todo, batched):.0f} s ({what})")

    engine.warm_up()
    if main:
        engine.train_sequential(main[0])
        done += 1
        progress("ETA from the first measured run")
    if chunks and batched:  # measure the batched rate early, so the ETA covers both kinds of work
        if engine.train_batched(chunks[0]):
            done += len(chunks[0])
            progress("ETA from the first measured run and batched group")
    for r in main[1:]:
        engine.train_sequential(r)
        done += 1
        if done % max(1, len(study.models)) == 0:
            progress("main cell, one after another")
    for chunk in chunks:
        if chunk[0].history:
            continue
        if not (batched and engine.train_batched(chunk)):
            for r in chunk:
                engine.train_sequential(r)
        done += len(chunk)
        progress(f"K={chunk[0].k}, {len(chunk)} runs")


def study_ledger(engine: Engine, runs: list[Run], card, img_size: int) -> dict[str, Any]:
    """The cost ledger of one ancestry's runs (`learngene.descend.ledger`): per model row, every run it
    trained (main cell, grid, K) with its task's training and test images; FLOPs per image of the rows'
    architecture (one for every row: same size, only the inherited weights differ); the ancestry's own
    cost amortised over one descendant = a main-cell run of an inheriting row (every row but the baseline)."""
    from learngene.descend.ledger import ancestry_account, runs_ledger
    from learngene.train.flops import flops_per_image

    fpi = flops_per_image(engine.model(runs[0]), img_size)
    per_run = [(r.model, r.history, len(engine.tasks[r.k][r.task].train_y), len(engine.tasks[r.k][r.task].test_y),
                r.wall_s, r.main and r.model != "baseline") for r in runs]
    return runs_ledger(per_run, fpi, ancestry_account(card, engine.ancestry, img_size), arms=engine.study.models,
                       descendant_label=f"an inheriting row's descendant (main cell, K={engine.study.k_shot})")


def write_study_json(path: Path, study: Study, machine: dict[str, Any] | None,
                     results: list[report.AncestryResult]) -> None:
    """`advantages-study.json`: the settings, the machine and each ancestry's cost ledger."""
    ledgers = [{"ancestry": r.path, "arch": r.arch, "ledger": r.ledger} for r in results]
    path.write_text(json.dumps({"study": asdict(study), "machine": machine or {}, "ledgers": ledgers}, indent=1))


def sized_recipe(ancestry, view, layers: list[int], study: Study):
    """The recipe of one model row at the study's descendant size (`width`, `depth`).

    At the ancestry's size: the layers in place. Another depth: a ResNet shares the blocks out over its
    stages (layers stay in their stage); a ViT keeps the layers in place when the depth allows it, else
    stacks them from the bottom.
    """
    from learngene.errors import ConfigError
    from learngene.inherit.options import recipe_for_spec
    from learngene.inherit.resize import stages_of

    common = dict(num_classes=study.n_way, width=study.width, depth=study.depth)
    try:
        return recipe_for_spec(ancestry.lg_spec, len(view), layers, view.io_shapes(), **common)
    except ConfigError:
        if stages_of(ancestry.lg_spec) is not None or study.depth is None:
            raise
        return recipe_for_spec(ancestry.lg_spec, len(view), layers[:study.depth], view.io_shapes(),
                               placement="bottom", **common)


def _data_id(ds) -> dict[str, Any] | None:
    """What identifies the study's data in the journal; None for the embedded default (seed 0, flip on)."""
    spec = str(ds.meta.get("spec", ds.name))
    if spec == "shapes" and ds.meta.get("data_seed", 0) == 0 and ds.meta.get("flip", True):
        return None
    return {"spec": spec, "data_seed": ds.meta.get("data_seed"), "split": ds.split.to_dict(),
            "flip": ds.meta.get("flip")}


def default_ancestries() -> list[Path]:
    from learngene.errors import CheckpointError
    from learngene.models import shipped_checkpoints

    found = {p.name: p for p in shipped_checkpoints()}
    want = [found[n] for n in ("lg_vit_tiny.safetensors", "lg_resnet_mini.safetensors") if n in found]
    if not want:
        raise CheckpointError("no shipped ancestry in assets/ (lg_vit_tiny / lg_resnet_mini); pass --ancestry PATH")
    return want


# ------------------------------------------------------------------ the whole study


def study_from_options(quick: bool = False, **changes: Any) -> Study:
    """The default (or `quick`) study with `changes` (None values ignored), made consistent: the main
    lr / wd is a grid cell, K = `k_shot` is one of the shots and the baseline row is present."""
    from learngene.errors import ConfigError

    s = QUICK if quick else Study()
    changes = renamed(changes)
    unknown = set(changes) - set(Study.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown study settings: {sorted(unknown)}")
    s = replace(s, **{k: v for k, v in changes.items() if v is not None})
    s.check_training()
    if s.tasks < 1 or s.epochs < 1 or not s.shots or not s.lrs or not s.wds or min(s.shots) < 1:
        raise ConfigError("a study needs at least 1 task, 1 epoch, and non-empty shots (each >= 1), lrs and wds")
    bad = set(s.models) - set(MODELS)
    if bad:
        raise ConfigError(f"unknown model rows {sorted(bad)}; choose from {', '.join(MODELS)}")
    if (s.lr, s.weight_decay) not in [(a, b) for a in s.lrs for b in s.wds]:
        s = replace(s, lr=s.lrs[len(s.lrs) // 2], weight_decay=s.wds[0])
    if s.k_shot not in s.shots:
        s = replace(s, k_shot=sorted(s.shots)[len(s.shots) // 2])
    if "baseline" not in s.models:
        s = replace(s, models=("baseline", *s.models))
    if s.grid_models is not None:
        outside = set(s.grid_models) - set(s.models)
        if outside:
            raise ConfigError(f"grid rows {sorted(outside)} are not among the model rows {list(s.models)}")
        s = replace(s, grid_models=tuple(m for m in s.models if m in {"baseline", *s.grid_models}))
    return s


@dataclass
class StudyOutput:
    """What `run_study` produced: per-ancestry results, the raw CSV rows and the markdown report."""

    results: list[report.AncestryResult]
    rows: list[dict[str, Any]]
    markdown: str
    figures: list[Path]
    csv_path: Path
    seconds: float


def run_study(
    paths: list[Path], study: Study, out: Path, device, *, given: dict[str, str] | None = None,
    figures_dir: Path | None = None, docs_dir: Path | None = None, machine: dict[str, Any] | None = None,
    log: Callable[[str], None] = _say, on_runs: Callable[[list[Run]], None] | None = None,
    journal_dir: Path | None = None, backend=None,
) -> StudyOutput:
    """Train every run of `study` for each ancestry in `paths` and write the report into `out`.

    Writes `advantages.csv` (one row per run), `advantages-study.json` (settings, `machine`, cost ledgers),
    `advantages.md` (the tables) and three SVG figures per ancestry (in `figures_dir`, default
    `<out>/figures`); finished runs go to `journal_dir` (default `<out>/journal`) as they finish, and
    runs found there (same ancestry, settings and layers) are not trained again: studies that share
    a journal folder share their runs. `given` maps "auto" / "cka" to saved condense results to use
    instead of computing them (one ancestry only). `backend`: None trains here; a
    `learngene.cluster.backend.RayBackend` trains every run as a Ray task (the journal, CSV and
    report are written here either way).
    """
    from learngene.data.binding import bound_of_card, load_bound
    from learngene.errors import ConfigError
    from learngene.inherit.choose import load_ancestry

    given = dict(given or {})
    if given and len(paths) > 1:
        raise ConfigError("a saved similarity result belongs to one ancestry; pass exactly one ancestry with it")
    if set(given) - {"auto", "cka"}:
        raise ConfigError(f"saved similarity results are given as auto=PATH or cka=PATH, got {sorted(given)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log(f"study: {study.tasks} tasks x {len(study.models)} models; grid {len(study.lrs)} lr x {len(study.wds)} wd "
        f"at K={study.k_shot}; K in {list(study.shots)}; {study.epochs} epochs, batch {study.batch_size}; "
        f"{len(plan(study))} runs per ancestry; device {device}")
    results, specs = [], []
    t_all = time.perf_counter()
    for path in paths:
        ancestry, card, path = load_ancestry(path)
        log(f"\n== {path} ({card.spec.arch})")
        ds, line = load_bound(study.dataset, bound_of_card(card, path), root=study.data_root, download=study.download,
                             data_seed=study.data_seed, split_file=study.split_file,
                             images_per_class=study.images_per_class, flip=study.flip, image_size=study.image_size)
        log(f"  data: {ds.meta.get('spec', ds.name)} ({ds.num_classes} classes, {len(ds)} images); {line}")
        layers = model_layers(ancestry, card, ds, study, out, given, log=log)
        runs = plan(study)
        engine = Engine(ancestry, layers, ds, study, device, log=log, on_runs=on_runs, data_id=_data_id(ds))
        restored = engine.open_journal(Path(journal_dir or out / "journal") / f"{card.spec.arch}-{card.sha256[:8]}.jsonl",
                                       runs)
        execute(engine, runs, card.spec.arch, backend)
        trained = sum(r.wall_s for r in runs if math.isfinite(r.wall_s))
        ledger = study_ledger(engine, runs, card, ds.image_size)
        results.append(report.AncestryResult(str(path), card.spec.arch, layers, runs, trained, restored, ledger))
        specs.append(str(ds.meta.get("spec", ds.name)))
    total = sum(r.seconds for r in results)
    log(f"\nstudy finished in {(time.perf_counter() - t_all) / 60:.1f} min ({total / 60:.1f} min of training)")
    rows = report.csv_rows(results, study)
    csv_path = write_csv(out / "advantages.csv", [{**r, "device": str(device)} for r in rows])
    write_study_json(out / "advantages-study.json", study, machine, results)
    figures = report.write_figures(results, study, Path(figures_dir) if figures_dir else out / "figures")
    shown = study if set(specs) <= {"shapes"} else replace(study, dataset=", ".join(dict.fromkeys(specs)))
    body = report.markdown(results, shown, figures, Path(docs_dir) if docs_dir else out, total)
    (out / "advantages.md").write_text(body + "\n")
    return StudyOutput(results, rows, body, figures, csv_path, total)
