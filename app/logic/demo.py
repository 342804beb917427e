"""The Home page's one-click demo without Streamlit: its settings, its jobs, its reference run, its headline.

The demo trains a learngene descendant against its random-init baseline on a few novel 5-way tasks.
Its layers are the `.selected` layers of the ancestry's shipped linear-CKA result
(`learngene.condense.shipped`); an ancestry without one (an uploaded checkpoint) gets a quick
`condense` job first, and the training starts when it is done (`app.person.pipeline.advance_demo`). The
pages and the benchmark `bench.demo_speed` build the very same jobs from here.

The convergence target is the train command's default, the baseline's own final accuracy on each task,
so "epochs to target" and the speed-up are numbers for every run.

A finished reference run per shipped ancestry lives in `assets/demo/<stem>/` (`metrics.jsonl` and
`summary.json` of the run, `meta.json` saying when, where and how fast it ran), written by
`python -m bench.demo_speed --save-reference` (see `assets/reproduce.sh`), so the Home page shows a
result before anyone clicks.
"""

from __future__ import annotations

import functools
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.logic.commands import condense_argv, train_argv
from learngene.runlog import METRICS_FILE, atomic_write_json, read_json, read_jsonl

DEMO_CONDENSE = {"method": "cka", "settings": {"images": 256, "pd_epochs": 2, "train_per_class": 120}}
"""The quick condense job that runs first when the ancestry ships no CKA result."""

# 5 tasks x 2 models x 10 epochs of 50 images at batch 10, evaluated every epoch on 40 images per class:
# measured by `python -m bench.demo_speed` (docs/results.md, sections demo-cpu-<stem>[-beside]).
DEMO_TRAIN: dict[str, Any] = {"n_way": 5, "k_shot": 10, "tasks": 5, "test_per_class": 40, "epochs": 10, "lr": 1e-3,
                              "weight_decay": 0.05, "batch_size": 10, "optimizer": "adamw", "seed": 0,
                              "device": "cpu"}
"""The demo's train settings; no `target_acc`: the default target is the baseline's final accuracy."""

DEMO_RECIPE = {"placement": "original", "stem": "inherit"}
SHIPPED_VIEW = "cka"
MIN_TASKS_FOR_CI = 3
DURATION_TEXT = "30–45 s on a 2-core CPU (up to about a minute beside another training job)"
"""How long the demo takes, from `bench.demo_speed` on the development machine (docs/results.md)."""

TARGET_WORDS = "the baseline's final accuracy"


def shipped_run_id(view: str = SHIPPED_VIEW) -> str:
    """The similarity "run id" the studio state records for a shipped result, e.g. `shipped:cka`."""
    return f"shipped:{view}"


# ------------------------------------------------------------------ jobs


@functools.lru_cache(maxsize=8)
def interactive_manager(runs_dir: str) -> Any:
    """The job manager of interactive jobs (the demo, the Similarity page's condense): one CPU slot more
    than the default.

    They are small and a person waits for them; with the extra slot they run beside one training job
    already started, instead of waiting in the queue behind it (each pins one torch thread, and the
    slot limit is recorded per run, so other runs keep theirs).
    """
    from learngene.jobs import JobManager, default_max_cpu_jobs

    return JobManager(runs_dir, max_cpu_jobs=default_max_cpu_jobs() + 1)


def shipped_result(checkpoint: str | Path, sha256: str | None) -> Any:
    """The shipped linear-CKA `SimilarityResult` of this checkpoint, or None."""
    from learngene.condense.shipped import shipped_similarity

    return shipped_similarity(checkpoint, sha256).get(SHIPPED_VIEW)


def condense_spec(checkpoint: str | Path, n_layers: int, extra: dict[str, Any] | None = None) -> Any:
    """The JobSpec of the demo's condense job (only for an ancestry without a shipped result).

    Args:
        extra: more condense settings (the benchmark's `--quick` only; the app passes none).
    """
    from learngene.jobs import JobSpec

    c = DEMO_CONDENSE
    settings = {**c["settings"], **(extra or {})}
    return JobSpec(argv=condense_argv(Path(checkpoint), c["method"], max(1, n_layers // 2), settings),
                   kind="condense", name="demo · condense (cka)", tags={"demo": True, "ancestry": str(checkpoint)})


def train_spec(checkpoint: str | Path, layers: list[int], similarity: str = "",
               extra: dict[str, Any] | None = None) -> Any:
    """The JobSpec of the demo's train job: learngene `layers` of `checkpoint` against the baseline.

    Args:
        similarity: where the layers come from (`shipped:cka` or the condense run id), kept as a tag.
        extra: more `train` options (the benchmark's `--quick`/`--threads` only; the app passes none).
    """
    from learngene.jobs import JobSpec

    argv = train_argv(Path(checkpoint), list(layers), DEMO_RECIPE, {**DEMO_TRAIN, **(extra or {})})
    return JobSpec(argv=argv, kind="train", name="demo · learngene vs baseline",
                   tags={"demo": True, "layers": list(layers), "similarity": similarity, "ancestry": str(checkpoint)})


# ------------------------------------------------------------------ the headline of a train run


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def target_value(summary: dict[str, Any]) -> float | None:
    """The accuracy the target line sits at: the fixed target, or the mean of the per-task targets."""
    t = (summary.get("learngene") or {}).get("target") or {}
    if _num(t.get("acc")) is not None:
        return float(t["acc"])
    values = [v for v in (t.get("values") or []) if _num(v) is not None]
    return sum(values) / len(values) if values else None


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """The numbers a person reads first, from a train run's `summary` (learngene.descend.summary).

    Returns {tasks, gain, gain_ci, show_ci, epochs: {role: mean or None}, reached: {role: "r/n"},
    speedup, target, target_words}; `gain_ci` is None (and `show_ci` False) under `MIN_TASKS_FOR_CI` tasks.
    """
    gain = summary.get("gain") or {}
    tasks = int(summary.get("pairs") or gain.get("n") or 0)
    show_ci = tasks >= MIN_TASKS_FOR_CI
    epochs, reached = {}, {}
    for role in ("learngene", "baseline"):
        t = (summary.get(role) or {}).get("target") or {}
        epochs[role] = _num((t.get("epochs") or {}).get("mean")) if t.get("reached") else None
        reached[role] = f"{t.get('reached', 0)}/{t.get('of', 0)}" if t else ""
    lg, bl = epochs["learngene"], epochs["baseline"]
    acc = ((summary.get("learngene") or {}).get("target") or {}).get("acc")
    value = target_value(summary)
    if acc == "baseline":
        words = TARGET_WORDS + (f" on each task (mean {value:.0%})" if value is not None else " on each task")
    elif value is not None:
        words = f"{value:.0%} test accuracy"
    else:
        words = ""
    from learngene.descend.summary import chance_warning

    return {"tasks": tasks, "gain": _num(gain.get("mean")), "gain_ci": _num(gain.get("ci95")) if show_ci else None,
            "show_ci": show_ci, "epochs": epochs, "reached": reached,
            "speedup": bl / lg if lg and bl else None, "target": value, "target_words": words,
            "chance_warning": chance_warning(summary)}


def headline_text(summary: dict[str, Any]) -> str:
    """One line, e.g. 'gain +34.0 ± 13.6 points over 5 tasks; epochs to target 1.2 vs 5.6 (4.7x)'."""
    h = headline(summary)
    gain = "n/a" if h["gain"] is None else f"{100 * h['gain']:+.1f}"
    if h["gain_ci"] is not None:
        gain += f" ± {100 * h['gain_ci']:.1f}"
    ep = {r: "not reached" if v is None else f"{v:.1f}" for r, v in h["epochs"].items()}
    speed = "n/a" if h["speedup"] is None else f"{h['speedup']:.1f}x"
    text = (f"gain {gain} points over {h['tasks']} tasks; epochs to {h['target_words'] or 'target'}: learngene "
            f"{ep['learngene']}, baseline {ep['baseline']} (speed-up {speed})")
    if not h["chance_warning"]:
        return text
    state = summary.get("baseline_state") or "at chance"  # a summary written before the rule: at chance
    return text + ("; the baseline stayed at chance" if state == "at chance" else f"; the baseline is {state}")


# ------------------------------------------------------------------ the shipped reference run

REFERENCE_FILES = (METRICS_FILE, "summary.json", "meta.json")


def reference_dir(checkpoint: str | Path) -> Path:
    """Where the reference run of a shipped checkpoint lives: `<assets>/demo/<stem>/`."""
    return Path(checkpoint).parent / "demo" / Path(checkpoint).stem


@dataclass
class Reference:
    """A finished demo run shipped with an ancestry: its metric records, summary.json and meta.json."""

    path: Path
    records: list[dict[str, Any]]
    summary: dict[str, Any]  # the run's outputs/summary.json (config + "summary" + "pairs")
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        m = self.meta
        return f"reference run, recorded {m.get('recorded', '?')} on {m.get('machine', 'an unknown machine')}"


def load_reference(checkpoint: str | Path, sha256: str | None = None) -> Reference | None:
    """The shipped reference run of `checkpoint`; None when missing, damaged or made from other weights."""
    folder = reference_dir(checkpoint)
    try:
        meta = read_json(folder / "meta.json")
        summary = read_json(folder / "summary.json")
        records, _ = read_jsonl(folder / METRICS_FILE)
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not isinstance(summary, dict) or not isinstance(summary.get("summary"), dict):
        return None
    recorded_sha = meta.get("ancestry_sha256")
    if sha256 and recorded_sha and recorded_sha != sha256:
        return None
    return Reference(folder, records, summary, meta)


def save_reference(run_dir: str | Path, checkpoint: str | Path, meta: dict[str, Any]) -> Path:
    """Copy a finished demo run's metrics and summary next to `checkpoint`, with `meta`; returns the folder."""
    run_dir, out = Path(run_dir), reference_dir(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    for src, name in ((run_dir / METRICS_FILE, METRICS_FILE), (run_dir / "outputs" / "summary.json", "summary.json")):
        tmp = out / f".{name}.tmp"
        shutil.copyfile(src, tmp)
        tmp.chmod(0o644)
        tmp.replace(out / name)
    atomic_write_json(out / "meta.json", meta)
    return out
