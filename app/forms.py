"""Settings forms: condensing settings per method, descendant task/training settings, sweep grids.

Defaults come from the library's config dataclasses (`CondenseConfig`, `TrainConfig`), so the forms
never drift from what the workers accept; impossible values are refused with a message.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

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


def _field_ui(name: str, default: Any, key: str) -> Any:
    label = name.replace("_", " ")
    if name in CHOICES:
        return st.selectbox(label, CHOICES[name], index=CHOICES[name].index(default), key=key)
    if isinstance(default, float):
        return st.number_input(label, min_value=0.0, value=default, format="%.4g", key=key)
    if default is None and name.endswith("_lr"):  # optional rate: 0 means "the family's default"
        v = st.number_input(f"{label} (0 = auto)", min_value=0.0, value=0.0, format="%.4g", key=key)
        return float(v) or None
    if default is None:  # optional positive int: 0 means "automatic"
        v = st.number_input(f"{label} (0 = auto)", min_value=0, value=0, step=1, key=key)
        return int(v) or None
    return int(st.number_input(label, min_value=1, value=int(default), step=1, key=key))


def condense_settings_ui(method: str, key: str = "cond") -> dict[str, Any]:
    """The settings of one condensing method (only those that differ from the defaults are returned)."""
    from learngene.condense.config import CondenseConfig

    defaults = CondenseConfig().to_dict()
    out: dict[str, Any] = {}
    fields = METHOD_FIELDS.get(method, ())
    cols = st.columns(4)
    for i, name in enumerate(fields):
        with cols[i % 4]:
            value = _field_ui(name, defaults[name], f"{key}-{method}-{name}")
        if value != defaults[name]:
            out[name] = value
    seed = st.number_input("seed", 0, 2**31 - 1, 0, key=f"{key}-seed")
    if seed:
        out["seed"] = int(seed)
    CondenseConfig.from_dict({**defaults, **out})  # refuse impossible settings here, with the library's message
    return out


# The `train` command's defaults (chosen for the shipped lg_vit_tiny on shapes), fewer tasks to stay quick.
TASK_DEFAULTS = {"n_way": 5, "k_shot": 10, "tasks": 2, "epochs": 40, "optimizer": "adamw", "lr": 1e-3,
                 "weight_decay": 0.05, "batch_size": 10, "seed": 0, "device": "cpu", "target_acc": 0.6}


def task_settings_ui(key: str = "task", novel_classes: int = 20) -> dict[str, Any]:
    """Few-shot task and training settings of a learngene-vs-baseline comparison."""
    d = TASK_DEFAULTS
    c = st.columns(4)
    n_way = c[0].number_input("N-way (novel classes per task)", 2, max(2, novel_classes), min(d["n_way"], novel_classes),
                              key=f"{key}-nway", help=f"the data set has {novel_classes} novel classes")
    k_shot = c[1].number_input("K-shot (training images per class)", 1, 500, d["k_shot"], key=f"{key}-kshot")
    tasks = c[2].number_input("tasks", 1, 100, d["tasks"], key=f"{key}-tasks",
                              help="accuracy is reported as mean ± 95% CI over tasks")
    epochs = c[3].number_input("epochs", 1, 1000, d["epochs"], key=f"{key}-epochs")
    c = st.columns(4)
    optimizer = c[0].selectbox("optimiser", ["adamw", "sgd"], key=f"{key}-opt")
    lr = c[1].number_input("learning rate", 1e-6, 10.0, d["lr"], format="%.5f", key=f"{key}-lr")
    wd = c[2].number_input("weight decay", 0.0, 10.0, d["weight_decay"], format="%.4f", key=f"{key}-wd")
    batch = c[3].number_input("batch size", 1, 4096, d["batch_size"], key=f"{key}-batch")
    c = st.columns(4)
    seed = c[0].number_input("seed", 0, 2**31 - 1, d["seed"], key=f"{key}-seed")
    device = c[1].selectbox("device", ["cpu", "cuda"], key=f"{key}-device",
                            help="cuda runs wait for the machine's single GPU slot")
    target = c[2].slider("target accuracy", 0.05, 1.0, d["target_acc"], 0.05, key=f"{key}-target",
                         help="'epochs to target' counts the epochs each model needs to reach it")
    return {"n_way": int(n_way), "k_shot": int(k_shot), "tasks": int(tasks), "epochs": int(epochs),
            "optimizer": optimizer, "lr": float(lr), "weight_decay": float(wd), "batch_size": int(batch),
            "seed": int(seed), "device": device, "target_acc": float(target)}


def parse_grid(text: str, cast: type = float) -> list:
    """'1e-4, 3e-4,1e-3' -> [0.0001, 0.0003, 0.001]; raises ValueError naming the bad entry."""
    out = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = cast(float(part)) if cast is int else cast(part)
        except ValueError:
            raise ValueError(f"{part!r} is not a number") from None
        if value <= 0:
            raise ValueError(f"{part!r} must be positive")
        out.append(value)
    if not out:
        raise ValueError("the grid is empty")
    return sorted(set(out))
