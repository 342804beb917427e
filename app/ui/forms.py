"""Settings forms: condensing settings per method, descendant task/training settings, sweep grids.

Defaults come from the library's config dataclasses (`CondenseConfig`, `TrainConfig`), so the forms
never drift from what the workers accept; impossible values are refused with a message.
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from app.logic import inputs
from learngene.errors import LearngeneError

METHODS = {
    "cka": "Linear CKA between every ancestry layer and every layer of a pseudo-descendant trained on the "
           "open-world classes (fast, easy to read)",
    "auto": "Auto-LG: learned meta-weights w_mn that match ancestry layers to pseudo-descendant layers (the seed "
            "paper; slower)",
    "gradient": "Heur-LG: keep training the ancestry on small open-world tasks; layers whose gradients stay small "
                "are stable (layer × epoch matrix)",
    "weights": "Weight drift: fine-tune a copy on the open-world classes; per-layer cosine similarity of weights "
               "(a diagonal only)",
}
# Which CondenseConfig fields each method uses (device and seed are always shown).
METHOD_FIELDS = {
    "cka": ("images", "probe_batch", "cka_of", "tokens", "maps", "pd_epochs", "pd_lr", "pd_depth", "train_per_class"),
    "auto": ("images", "pd_epochs", "pd_lr", "pd_depth", "lam", "meta_lr", "inner_lr", "train_per_class"),
    "gradient": ("tasks", "n_way", "k_shot", "task_epochs", "task_lr", "grad_quantile"),
    "weights": ("ft_epochs", "ft_lr", "batch_size", "train_per_class"),
}
CHOICES = {"tokens": ["mean", "cls", "flatten"], "maps": ["flatten", "gap"], "cka_of": ["output", "update"]}


def number_ui(f: inputs.Field, default: float, key: str, *, label: str | None = None, help: str | None = None,
              where: Any = None) -> tuple[int | float | None, str | None]:
    """A number field checked on the server (`inputs.Field`): (value, None), or (None, the problem) shown
    in red under the field. The field sends whatever is typed (no bounds in the browser, a float field so
    that "1e9" stays 1e9), and keeps its value across page changes and reloads."""
    from app.ui import widgets

    where = where or st
    kw = widgets.kept(key, float(default), valid=lambda v: v is None or isinstance(v, (int, float)))
    value = where.number_input(label or f.label, step=f.increment, format="%g", help=help, **kw)
    problem = f.problem(value)
    if problem:
        where.caption(f":red[:material/error: {problem}]")
        return None, problem
    return f.cast(value), None


def _field_ui(name: str, default: Any, key: str) -> tuple[Any, str | None]:
    from app.ui import widgets

    label = name.replace("_", " ")
    if name in CHOICES:
        kw = widgets.kept(key, default, valid=lambda v: v in CHOICES[name])
        return st.selectbox(label, CHOICES[name], **kw), None
    if isinstance(default, float):
        return number_ui(inputs.Field(label, 0, 1e6), default, key)
    if default is None and name.endswith("_lr"):  # optional rate: 0 means "the family's default"
        v, problem = number_ui(inputs.Field(label, 0, 10, above=True, auto_zero=True, step=1e-4), 0.0, key,
                               label=f"{label} (0 = auto)")
        return (float(v) or None) if v is not None else None, problem
    if default is None:  # optional positive int: 0 means "automatic"
        v, problem = number_ui(inputs.Field(label, 1, 1e6, integer=True, auto_zero=True), 0, key,
                               label=f"{label} (0 = auto)")
        return (int(v) or None) if v is not None else None, problem
    return number_ui(inputs.Field(label, 1, 1e6, integer=True), int(default), key)


def condense_settings_ui(method: str, key: str = "cond") -> tuple[dict[str, Any], list[str]]:
    """The settings of one condensing method (only those that differ from the defaults), and the problems
    of the fields (each also shown under its field); the library's own checks run when there are none."""
    from learngene.condense.config import CondenseConfig

    defaults = CondenseConfig().to_dict()
    out: dict[str, Any] = {}
    problems: list[str] = []
    fields = METHOD_FIELDS.get(method, ())
    cols = st.columns(4)
    for i, name in enumerate(fields):
        with cols[i % 4]:
            value, problem = _field_ui(name, defaults[name], f"{key}-{method}-{name}")
        if problem:
            problems.append(problem)
        elif value != defaults[name]:
            out[name] = value
    seed, problem = number_ui(inputs.Field("seed", 0, 2**31 - 1, integer=True), 0, f"{key}-seed")
    if problem:
        problems.append(problem)
    elif seed:
        out["seed"] = int(seed)
    if not problems:
        try:
            CondenseConfig.from_dict({**defaults, **out})  # the library's checks of the whole, with its message
        except (ValueError, LearngeneError) as exc:
            problems.append(str(exc))
    return out, problems


# The `train` command's defaults (chosen for the shipped lg_vit_tiny on shapes), fewer tasks to stay quick.
TASK_DEFAULTS = {"n_way": 5, "k_shot": 10, "tasks": 2, "epochs": 40, "optimizer": "adamw", "lr": 1e-3,
                 "weight_decay": 0.05, "batch_size": 10, "seed": 0, "device": "cpu", "target_acc": 0.6}


def task_settings_ui(key: str = "task", novel_classes: int = 20) -> tuple[dict[str, Any], dict[str, str]]:
    """Few-shot task and training settings of a learngene-vs-baseline comparison.

    Returns (settings, problems by setting); a setting with a problem is left out of the settings and its
    problem is shown under its field. Every value is kept across page changes and reloads.
    """
    from app.ui import widgets

    d, f = TASK_DEFAULTS, inputs.task_fields(novel_classes)
    out: dict[str, Any] = {}
    problems: dict[str, str] = {}

    def number(col: Any, name: str, suffix: str, label: str, help: str | None = None) -> None:
        value, problem = number_ui(f[name], min(d[name], f[name].high), f"{key}-{suffix}", label=label, help=help,
                                   where=col)
        if problem:
            problems[name] = problem
        else:
            out[name] = value

    c = st.columns(4)
    number(c[0], "n_way", "nway", "N-way (novel classes per task)", f"2 to {novel_classes}: the data set has "
           f"{novel_classes} novel classes")
    number(c[1], "k_shot", "kshot", "K-shot (training images per class)", "1 to 500")
    number(c[2], "tasks", "tasks", "tasks", "1 to 100; accuracy is reported as mean ± 95% CI over tasks")
    number(c[3], "epochs", "epochs", "epochs", "1 to 1000")
    c = st.columns(4)
    out["optimizer"] = c[0].selectbox("optimiser", ["adamw", "sgd"],
                                      **widgets.kept(f"{key}-opt", d["optimizer"], lambda v: v in ("adamw", "sgd")))
    number(c[1], "lr", "lr", "learning rate", "more than 0, at most 10")
    number(c[2], "weight_decay", "wd", "weight decay", "0 to 10")
    number(c[3], "batch_size", "batch", "batch size", "1 to 4096")
    c = st.columns(4)
    number(c[0], "seed", "seed", "seed")
    out["device"] = c[1].selectbox("device", ["cpu", "cuda"], help="cuda runs wait for the machine's single GPU slot",
                                   **widgets.kept(f"{key}-device", d["device"], lambda v: v in ("cpu", "cuda")))
    out["target_acc"] = float(c[2].slider(
        "target accuracy", 0.05, 1.0, step=0.05, help="'epochs to target' counts the epochs each model needs to reach it",
        **widgets.kept(f"{key}-target", d["target_acc"], lambda v: 0.05 <= float(v) <= 1.0)))
    order = ["n_way", "k_shot", "tasks", "epochs", "optimizer", "lr", "weight_decay", "batch_size", "seed", "device",
             "target_acc"]
    return {k: out[k] for k in order if k in out}, problems


GRID_FIELDS = {"lrs": ("lr", "learning rates"), "wds": ("weight_decay", "weight decays"), "shots": ("k_shot", "K shots")}


def grid_ui(name: str, default: str, key: str, novel_classes: int = 20, where: Any = None) -> tuple[list | None, str | None]:
    """A comma-separated grid of one setting (`GRID_FIELDS`), every value checked like the setting's field:
    (values, None), or (None, the problem) shown in red under the field."""
    from app.ui import widgets

    where = where or st
    setting, label = GRID_FIELDS[name]
    f = inputs.task_fields(novel_classes)[setting]
    text = where.text_input(label, **widgets.kept(key, default, lambda v: isinstance(v, str)))
    try:
        return inputs.parse_grid(text, f), None
    except ValueError as exc:
        where.caption(f":red[:material/error: {exc}]")
        return None, str(exc)


def parse_grid(text: str, cast: type = float) -> list:
    """'1e-4, 3e-4,1e-3' -> [0.0001, 0.0003, 0.001]; raises ValueError naming the bad entry (positive numbers;
    whole numbers when `cast` is int). The pages use `grid_ui`, which also checks each setting's bounds."""
    f = inputs.Field("grid", 0, math.inf, integer=cast is int, above=True)
    return inputs.parse_grid(text, f)
