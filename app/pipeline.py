"""Command lines of the background jobs the pages start, and the Home page's one-click demo.

Every slow step is a `python -m learngene <command> ...` job started through `learngene.jobs`; this
module only builds the argv lists (mirroring each command's `add_arguments`) and reads the runs'
output files. The demo chains two jobs: condense, then (when it is done) train with its layers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app import config, resources, state
from learngene.runlog import read_json

# Quick settings of the one-click demo: a couple of minutes on a 2-core CPU.
DEMO_CONDENSE = {"method": "cka", "settings": {"images": 256, "pd_epochs": 2, "train_per_class": 120}}
DEMO_TRAIN = {"n_way": 5, "k_shot": 10, "tasks": 2, "epochs": 30, "lr": 1e-3, "weight_decay": 0.05,
              "batch_size": 10, "optimizer": "adamw", "seed": 0, "device": "cpu", "target_acc": 0.6}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _options(values: dict[str, Any]) -> list[str]:
    """{"pd_epochs": 2, "augment": False} -> ["--pd-epochs", "2"]; None values are left out."""
    out: list[str] = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            if value:
                out.append(_flag(key))
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        out += [_flag(key), str(value)]
    return out


def accumulate_argv(arch: str, dataset: str, out: str | None = None, overrides: dict | None = None,
                    images_per_class: int | None = None, **train: Any) -> list[str]:
    """`accumulate`: train a new ancestry on the base classes of `dataset`."""
    argv = ["accumulate", "--arch", arch, "--dataset", dataset]
    for key, value in (overrides or {}).items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    if out:
        argv += ["--out", out]
    return argv + _options({"images_per_class": images_per_class, **train})


_CONDENSE_FLAGS = ("tokens", "maps", "images", "device", "seed")  # the others go through --set KEY=VALUE


def condense_argv(ancestry: Path, method: str, k: int, settings: dict[str, Any], dataset: str = "shapes",
                  contiguous: bool = False, rule: str | None = None) -> list[str]:
    """`condense`: the similarity matrix of `method` and the top-k learngene layers.

    Args:
        settings: `CondenseConfig` fields (e.g. {"images": 256, "pd_epochs": 2, "device": "cpu"}).
    """
    argv = ["condense", "--ancestry", str(ancestry), "--method", method, "--dataset", dataset,
            "--select", "top-k", "--k", str(k)]
    if contiguous:
        argv.append("--contiguous")
    if rule:
        argv += ["--rule", rule]
    argv += _options({key: settings[key] for key in _CONDENSE_FLAGS if key in settings})
    for key, value in settings.items():
        if key not in _CONDENSE_FLAGS and value is not None:
            argv += ["--set", f"{key}={json.dumps(value)}"]
    return argv


def train_argv(ancestry: Path, layers: list[int], recipe: dict[str, Any], task: dict[str, Any],
               learngene_file: str | None = None, dataset: str = "shapes") -> list[str]:
    """`train`: the learngene descendant and its random-init baseline on N-way K-shot novel tasks.

    The learngene comes from `learngene_file` when given (the ancestry is then not needed), else from
    the ancestry checkpoint and the chosen layer indices.
    """
    if learngene_file:
        argv = ["train", "--learngene", str(learngene_file)]
    else:
        argv = ["train", "--ancestry", str(ancestry), "--layers", ",".join(map(str, layers))]
    argv += ["--dataset", dataset]
    argv += _options({"placement": recipe.get("placement"), "depth": recipe.get("depth"), "stem": recipe.get("stem")})
    return argv + _options(task)


def sweep_argv(ancestry: Path, layers: list[int], recipe: dict[str, Any], task: dict[str, Any],
               lrs: list[float], wds: list[float], shots: list[int], seeds: list[int] | None = None,
               dataset: str = "shapes") -> list[str]:
    """`sweep`: the train comparison over a grid of learning rates × weight decays × K shots (× seeds)."""
    fixed = {k: v for k, v in task.items() if k not in ("lr", "weight_decay", "k_shot", "seed")}
    argv = ["sweep", *train_argv(ancestry, layers, recipe, fixed, dataset=dataset)[1:]]
    grid = {"lrs": lrs, "wds": wds, "shots": shots, "seeds": seeds}
    return argv + _options(grid)


STUDY_MODELS = ("heur", "auto-paper", "auto", "cka", "finetune")  # rows of the study besides the baseline


def study_journal_dir() -> Path:
    """Where studies started from the app keep their finished runs: a study started again with the same
    settings (after a cancel or a crash) trains only what is missing."""
    return config.runs_dir() / ".study-journal"


def advantages_argv(ancestries: list[Path], *, quick: bool, tasks: int | None = None, epochs: int | None = None,
                    models: list[str] | None = None, device: str = "cpu") -> list[str]:
    """`advantages`: the four-advantage study over the given ancestries (quick = the try-out size)."""
    argv = ["advantages"]
    for path in ancestries:
        argv += ["--ancestry", str(path)]
    return argv + _options({"quick": quick, "tasks": tasks, "epochs": epochs, "models": models or None,
                            "device": device, "journal_dir": str(study_journal_dir())})


def output_path(info: Any, name: str) -> Path:
    return Path(info.path) / "outputs" / name


def read_output_json(info: Any, name: str) -> dict | None:
    """A JSON output of a run (None when missing or unreadable)."""
    try:
        data = read_json(output_path(info, name))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------ the one-click demo


def start_demo(anc: resources.Ancestry) -> str:
    """Start the demo's condense job; `advance_demo` starts training when it is done."""
    from learngene.jobs import JobSpec

    c = DEMO_CONDENSE
    run_id = resources.jobs().start(JobSpec(
        argv=condense_argv(anc.path, c["method"], max(1, anc.n_layers // 2), c["settings"]),
        kind="condense", name="demo · condense (cka)", group=None, tags={"demo": True, "ancestry": str(anc.path)}))
    state.update(demo={"condense": run_id, "train": None, "ancestry": str(anc.path)})
    return run_id


def demo_waiting() -> bool:
    """True while the demo's condense run has ended well but training has not been started yet."""
    demo = state.get().demo
    if not demo.get("condense") or demo.get("train") or demo.get("error"):
        return False
    try:
        return resources.jobs().get(demo["condense"]).state == "done"
    except (ValueError, OSError):
        return False


def advance_demo() -> bool:
    """If the demo's condense run is done, adopt its layers and start the train run (once).

    Returns True when it changed the state (the layers, or the demo's error), so the page can redraw.
    """
    from learngene.jobs import JobSpec

    demo = dict(state.get().demo)
    if not demo.get("condense") or demo.get("train") or demo.get("error"):
        return False
    info = resources.jobs().get(demo["condense"])
    if info.live:
        return False
    if info.state != "done":
        state.update(demo={**demo, "error": f"the demo's condense run {info.state}: {info.reason or ''}"})
        return True
    sim = resources.load_similarity(output_path(info, "similarity.json"))
    layers = list(sim.selected)
    recipe = {"placement": "original", "stem": "inherit"}
    run_id = resources.jobs().start(JobSpec(
        argv=train_argv(Path(demo["ancestry"]), layers, recipe, DEMO_TRAIN),
        kind="train", name="demo · learngene vs baseline", tags={"demo": True, "layers": layers}))
    s = state.get()
    state.update(demo={**demo, "train": run_id}, layers=layers, similarity_run=info.run_id,
                 watched=[run_id, *[w for w in s.watched if w != run_id]][:4])
    return True


# ------------------------------------------------------------------ similarity results


def _same_ancestry(sim: Any, anc: resources.Ancestry) -> bool:
    a = sim.ancestry or {}
    sha = (anc.card_dict or {}).get("sha256")
    if sha and a.get("sha256"):
        return a["sha256"] == sha
    try:
        return Path(a.get("path", "")).resolve() == anc.path.resolve()
    except OSError:
        return False


def similarity_runs(anc: resources.Ancestry) -> list[tuple[Any, Any]]:
    """(RunInfo, SimilarityResult) of every finished condense run of this ancestry, newest first."""
    out = []
    for info in resources.jobs().list(kind="condense", state="done"):
        path = output_path(info, "similarity.json")
        if not path.is_file():
            continue
        try:
            sim = resources.load_similarity(path)
        except Exception:  # noqa: BLE001 - a damaged result is skipped, not fatal
            continue
        if _same_ancestry(sim, anc):
            out.append((info, sim))
    return out


def current_similarity(anc: resources.Ancestry) -> tuple[Any, Any] | None:
    """The similarity result in use: the one named in the state, else the newest for this ancestry."""
    runs = similarity_runs(anc)
    chosen = state.get().similarity_run
    for info, sim in runs:
        if info.run_id == chosen:
            return info, sim
    return runs[0] if runs else None  # the chosen run is unfinished, failed or of another ancestry
