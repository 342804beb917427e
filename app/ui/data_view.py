"""The data view: sample images of the base / open-world / novel classes of the current ancestry's data
(its card's data and split, which bind), and the support set of one few-shot task as `train` draws it."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from app.logic import inputs
from app.person import resources
from app.ui import widgets

PARTS = {"base": "base classes (the ancestry learned them)",
         "open_world": "open-world classes (the pseudo-descendant's, for condensing)",
         "novel": "novel classes (the descendants' tasks)"}


@st.cache_resource(max_entries=2, show_spinner="Loading the ancestry's data…")
def _dataset(path: str, stamp: tuple[float, int]) -> tuple[Any, str]:
    from learngene.data.binding import bound_of_card, load_bound
    from learngene.models import read_card

    return load_bound(None, bound_of_card(read_card(path), path))


def dataset(anc: resources.Ancestry) -> tuple[Any, str]:
    """The ancestry's data under its card's split, as `train` loads it (every image), and the split line (the
    part named as the pages spell it: "open-world"; the command line's key `open_world` stays in files and flags)."""
    ds, line = _dataset(str(anc.path.resolve()), resources.file_stamp(anc.path))
    line = line.replace(str(anc.path.resolve()), anc.path.name).replace(str(anc.path), anc.path.name)
    return ds, line.replace("open_world", "open-world")


def as_hwc(grid: Any) -> np.ndarray:
    """uint8 (3, H, W) tensor -> (H, W, 3) array for st.image."""
    return grid.permute(1, 2, 0).contiguous().numpy()


def parts_ui(ds: Any) -> None:
    """A grid per split part: one row per class (its first images), the class names beside it."""
    from learngene.data import preview_grid

    c = st.columns(2)
    n_classes = c[0].slider("classes shown per part", 2, 20, **widgets.kept("data-classes", 6,
                                                                           lambda v: 2 <= int(v) <= 20))
    per_class = c[1].slider("images per class", 2, 16, **widgets.kept("data-per-class", 8,
                                                                      lambda v: 2 <= int(v) <= 16))
    tabs = st.tabs([f"{part.replace('_', '-')} ({len(ds.split.classes(part))})" for part in PARTS])
    for tab, (part, words) in zip(tabs, PARTS.items(), strict=True):
        with tab:
            classes = list(ds.split.classes(part))[:n_classes]
            st.caption(f"{len(ds.split.classes(part))} {words}; rows from the top: "
                       + ", ".join(ds.class_names[k] for k in classes))
            st.image(as_hwc(preview_grid(ds, classes, per_class)), width=min(900, 40 * per_class * 2),
                     output_format="PNG")


def support_ui(ds: Any) -> None:
    """The support set of one N-way K-shot novel task, exactly as `train` draws task i under a task seed."""
    from app.ui.forms import number_ui
    from learngene.data import sample_task

    fields = inputs.task_fields(len(ds.split.classes("novel")))
    c = st.columns(4)
    n_way, p1 = number_ui(fields["n_way"], 5, "data-nway", label="N-way", where=c[0])
    k_shot, p2 = number_ui(fields["k_shot"], 10, "data-kshot", label="K-shot", where=c[1])
    seed, p3 = number_ui(inputs.Field("task seed", 0, 1_000_000, integer=True), 0, "data-seed", where=c[2])
    index, p4 = number_ui(inputs.Field("task number", 0, 999, integer=True), 0, "data-task", where=c[3],
                          help="task i of a run with several tasks (the first is 0)")
    if p1 or p2 or p3 or p4:
        return
    with widgets.error_box("task"):
        task = sample_task(ds, "novel", n_way, k_shot, seed, index=index)
        st.caption(f"Task {index} under task seed {seed}: {n_way} classes × {k_shot} training images, one row per "
                   "class: " + ", ".join(ds.class_names[k] for k in task.classes)
                   + f". Its test set holds other images of the same classes ({len(task.test_y)} in all).")
        st.image(as_hwc(_support_grid(task)), width=min(900, 40 * k_shot * 2), output_format="PNG")


def _support_grid(task: Any) -> Any:
    import torch

    s = task.train_x.shape[-1]
    pad = 2
    grid = torch.full((3, task.n_way * (s + pad) + pad, task.k_shot * (s + pad) + pad), 255, dtype=torch.uint8)
    for i in range(len(task.train_y)):
        row, col = int(task.train_y[i]), i % task.k_shot
        y, x = pad + row * (s + pad), pad + col * (s + pad)
        grid[:, y:y + s, x:x + s] = task.train_x[i]
    return grid
