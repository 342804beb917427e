"""Command lines of the background jobs: argv lists for `python -m learngene <command> ...`.

Pure functions (no Streamlit), so the pages, the Home page's demo and the benchmarks (`bench/`) build
the very same command lines. Each mirrors its command's `add_arguments`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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


def _data(dataset: str | None) -> list[str]:
    """--dataset when one is chosen; none: the command takes the ancestry card's data and class split,
    which bind (a card's split is never silently replaced by another data set's)."""
    return ["--dataset", dataset] if dataset else []


def condense_argv(ancestry: Path, method: str, k: int, settings: dict[str, Any], dataset: str | None = None,
                  contiguous: bool = False, rule: str | None = None) -> list[str]:
    """`condense`: the similarity matrix of `method` and the top-k learngene layers.

    Args:
        settings: `CondenseConfig` fields (e.g. {"images": 256, "pd_epochs": 2, "device": "cpu"}).
    """
    argv = ["condense", "--ancestry", str(ancestry), "--method", method, *_data(dataset),
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
               learngene_file: str | None = None, dataset: str | None = None) -> list[str]:
    """`train`: the learngene descendant and its random-init baseline on N-way K-shot novel tasks.

    The learngene comes from `learngene_file` when given (the ancestry is then not needed), else from
    the ancestry checkpoint and the chosen layer indices.
    """
    if learngene_file:
        argv = ["train", "--learngene", str(learngene_file)]
    else:
        argv = ["train", "--ancestry", str(ancestry), "--layers", ",".join(map(str, layers))]
    argv += _data(dataset)
    argv += _options({"placement": recipe.get("placement"), "depth": recipe.get("depth"), "stem": recipe.get("stem"),
                      "width": recipe.get("width") if recipe.get("width", 1.0) != 1.0 else None,
                      "fill": recipe.get("fill") if recipe.get("fill", "random") != "random" else None})
    return argv + _options(task)


def sweep_argv(ancestry: Path, layers: list[int], recipe: dict[str, Any], task: dict[str, Any],
               lrs: list[float], wds: list[float], shots: list[int], seeds: list[int] | None = None,
               dataset: str | None = None) -> list[str]:
    """`sweep`: the train comparison over a grid of learning rates × weight decays × K shots (× seeds)."""
    fixed = {k: v for k, v in task.items() if k not in ("lr", "weight_decay", "k_shot", "seed")}
    argv = ["sweep", *train_argv(ancestry, layers, recipe, fixed, dataset=dataset)[1:]]
    grid = {"lrs": lrs, "wds": wds, "shots": shots, "seeds": seeds}
    return argv + _options(grid)


def sizes_argv(ancestry: Path, layers: list[int], widths: list[float], task: dict[str, Any],
               depth: int | None = None, fill: str = "random", dataset: str | None = None) -> list[str]:
    """`sizes`: the learngene, random init and weight selection at each width (one job)."""
    sizes = ",".join(f"{w:g}" + (f"x{depth}" if depth else "") for w in widths)
    argv = ["sizes", "--ancestry", str(ancestry), "--layers", ",".join(map(str, layers)), "--sizes", sizes,
            "--fill", fill, *_data(dataset)]
    keep = ("n_way", "k_shot", "tasks", "epochs", "lr", "weight_decay", "test_per_class", "images_per_class", "device")
    return argv + _options({k: task[k] for k in keep if k in task})
