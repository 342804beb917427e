"""Command lines of the background jobs the pages start, and the Home page's one-click demo.

Every slow step is a `python -m learngene <command> ...` job started through `learngene.jobs`; the
argv lists are built in `app.logic.commands` (re-exported here), and this module reads the runs' output
files. The demo (`app.logic.demo`) trains at once with the ancestry's shipped CKA layers; without a shipped
result it chains two jobs: condense, then (when it is done) train with its layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.logic import demo
from app.logic.commands import (  # noqa: F401  (re-exported: the pages build their jobs from here)
    _options,
    accumulate_argv,
    condense_argv,
    sizes_argv,
    sweep_argv,
    train_argv,
)
from app.logic.demo import DEMO_CONDENSE, DEMO_TRAIN  # noqa: F401  (re-exported)
from app.logic.results import output_path
from app.person import identity, resources, state
from app.shared import config
from learngene.errors import LearngeneError

STUDY_MODELS = ("heur", "auto-paper", "auto", "cka", "finetune")  # rows of the study besides the baseline


def study_journal_dir() -> Path:
    """Where studies started from the app keep their finished runs: a study started again with the same
    settings (after a cancel or a crash) trains only what is missing."""
    return config.runs_dir() / ".study-journal"


def advantages_argv(ancestries: list[Path], *, quick: bool, tasks: int | None = None, epochs: int | None = None,
                    models: list[str] | None = None, device: str = "cpu", dataset: str | None = None) -> list[str]:
    """`advantages`: the four-advantage study over the given ancestries (quick = the try-out size).

    `dataset`: None = each ancestry's own data and class split (from its card, which binds)."""
    argv = ["advantages"]
    for path in ancestries:
        argv += ["--ancestry", str(path)]
    return argv + _options({"quick": quick, "tasks": tasks, "epochs": epochs, "models": models or None,
                            "device": device, "journal_dir": str(study_journal_dir()),
                            "dataset": (dataset or "").strip() or None})


# ------------------------------------------------------------------ the one-click demo


def interactive_jobs() -> Any:
    """The manager of interactive jobs: the app's runs folder, one CPU slot more (`app.logic.demo.interactive_manager`)."""
    return demo.interactive_manager(str(config.runs_dir().resolve()))


def demo_live() -> bool:
    """True while a run of the demo is queued or running, or its training is about to start."""
    d = state.get().demo
    for key in ("condense", "train"):
        if d.get(key):
            try:
                if resources.jobs().get(d[key]).live:
                    return True
            except (ValueError, OSError, LearngeneError):
                continue
    return demo_waiting()


def _start_train(anc_path: Path, layers: list[int], similarity: str, demo_state: dict[str, Any]) -> str:
    """Start the demo's train run and make its layers and similarity result the studio's current ones."""
    run_id, _ = identity.start_as_me(interactive_jobs(), demo.train_spec(anc_path, layers, similarity))
    s = state.get()
    state.update(demo={**demo_state, "train": run_id, "similarity": similarity}, layers=list(layers),
                 similarity_run=similarity, watched=[run_id, *[w for w in s.watched if w != run_id]][:4])
    return run_id


def start_demo(anc: resources.Ancestry) -> str:
    """Start the demo: the train run at once with the shipped CKA layers, else the condense run first
    (`advance_demo` starts training when it is done). Returns the started run's id."""
    shipped = demo.shipped_result(anc.path, (anc.card_dict or {}).get("sha256"))
    if shipped is not None:
        fresh = {"condense": None, "train": None, "ancestry": str(anc.path)}
        return _start_train(anc.path, list(shipped.selected), demo.shipped_run_id(), fresh)
    run_id, _ = identity.start_as_me(interactive_jobs(), demo.condense_spec(anc.path, anc.n_layers))
    state.update(demo={"condense": run_id, "train": None, "ancestry": str(anc.path)})
    return run_id


def demo_waiting() -> bool:
    """True while the demo's condense run has ended well but training has not been started yet."""
    d = state.get().demo
    if not d.get("condense") or d.get("train") or d.get("error"):
        return False
    try:
        return resources.jobs().get(d["condense"]).state == "done"
    except (ValueError, OSError, LearngeneError):
        return False


def advance_demo() -> bool:
    """If the demo's condense run is done, adopt its layers and start the train run (once).

    Returns True when it changed the state (the layers, or the demo's error), so the page can redraw.
    """
    d = dict(state.get().demo)
    if not d.get("condense") or d.get("train") or d.get("error"):
        return False
    info = resources.jobs().get(d["condense"])
    if info.live:
        return False
    if info.state != "done":
        state.update(demo={**d, "error": f"the demo's condense run {info.state}: {info.reason or ''}"})
        return True
    sim = resources.load_similarity(output_path(info, "similarity.json"))
    _start_train(Path(d["ancestry"]), list(sim.selected), info.run_id, d)
    return True
