"""A finished train run's result, seen: the task's support set, both models' confusion matrices, and test
images with what each model predicted (from the files `learngene train` writes; `app.logic.results`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from app.logic import results
from app.ui import badges, widgets


def has_predictions(info: Any) -> bool:
    return (Path(info.path) / "outputs" / "predictions.json").is_file()


def predictions_ui(info: Any, key: str) -> None:
    """Task picker, support set, confusion matrices and the predictions grid of one finished train run."""
    badges.run_badges_ui(info.path)
    tasks = results.read_predictions(info.path)
    if not tasks:
        st.caption("This run wrote no predictions (runs made before predictions were recorded, or still running).")
        return
    by_task = {int(t.get("task", i)): t for i, t in enumerate(tasks)}
    pick = st.selectbox("task", list(by_task), key=f"{key}-task", format_func=lambda i: f"task {i}: "
                        + ", ".join(by_task[i].get("class_names") or []))
    task = by_task[pick]
    out = Path(info.path) / "outputs"
    support = results.load_strip(out / str(task.get("support_image", "")))
    if support is not None:
        tiles = results.strip_tiles(support, int(task.get("image_size") or support.shape[0]))
        grid, kept = results.labelled_rows(tiles, list(task.get("support_labels") or []), len(task["class_names"]))
        st.caption(f"Its support set ({task.get('k_shot', '?')} training images per class), one row per class: "
                   + ", ".join(task["class_names"][c] for c in kept))
        st.image(grid, width=min(900, grid.shape[1] * 2), output_format="PNG")
    fig = results.confusion_figure(task)
    st.plotly_chart(fig, key=f"{key}-confusion")
    widgets.download_figure_ui(fig, f"confusion-task{pick}", f"{key}-confusion")
    strip = results.load_strip(out / str(task.get("test_image", "")))
    if strip is not None:
        fig = results.predictions_figure(task, strip)
        st.plotly_chart(fig, key=f"{key}-predictions", config={"displayModeBar": False})
        widgets.download_figure_ui(fig, f"predictions-task{pick}", f"{key}-predictions")
