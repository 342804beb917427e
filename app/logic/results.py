"""What a finished train run's models said: confusion matrices and test images with both predictions.

Reads what `learngene train` writes into the run folder (`outputs/predictions.json` and the PNG strips
beside it, see `learngene.cli.train.PredictionLog`) and the data view's image grids. No Streamlit here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from learngene.runlog import read_json

ROLES = {"learngene": "learngene descendant", "baseline": "random-init baseline"}
RIGHT, WRONG = "#1b7f3b", "#c62828"


def read_predictions(run_dir: str | Path) -> list[dict[str, Any]]:
    """The tasks of a run's `outputs/predictions.json` ([] when it has none)."""
    try:
        data = read_json(Path(run_dir) / "outputs" / "predictions.json", default={})
    except (OSError, ValueError):
        return []
    tasks = data.get("tasks") if isinstance(data, dict) else None
    return [t for t in tasks or [] if isinstance(t, dict) and isinstance(t.get("labels"), list)]


def confusion(labels: list[int], predicted: list[int], n: int) -> np.ndarray:
    """int (n, n): rows the true class, columns the predicted one."""
    m = np.zeros((n, n), dtype=int)
    for y, p in zip(labels, predicted, strict=True):
        if 0 <= y < n and 0 <= p < n:
            m[y, p] += 1
    return m


def accuracy(task: dict[str, Any], role: str) -> float | None:
    said = (task.get("predictions") or {}).get(role)
    if not said:
        return None
    return float(np.mean(np.asarray(said) == np.asarray(task["labels"])))


def confusion_figure(task: dict[str, Any]) -> go.Figure:
    """Both models' confusion matrices on one task, side by side (counts in the cells)."""
    names = list(task.get("class_names") or [str(c) for c in task.get("classes", [])])
    roles = [r for r in ROLES if r in (task.get("predictions") or {})]
    titles = [f"{ROLES[r]}: {accuracy(task, r):.0%} right" for r in roles]
    fig = make_subplots(rows=1, cols=max(len(roles), 1), subplot_titles=titles, horizontal_spacing=0.06)
    for i, role in enumerate(roles, start=1):
        m = confusion(task["labels"], task["predictions"][role], len(names))
        fig.add_trace(go.Heatmap(z=m, x=names, y=names, colorscale="Blues", showscale=False, texttemplate="%{z}",
                                 hovertemplate="true %{y}<br>predicted %{x}<br>%{z} images<extra>" + role + "</extra>"),
                      row=1, col=i)
        fig.update_xaxes(title_text="predicted class", row=1, col=i)
        fig.update_yaxes(autorange="reversed", showticklabels=i == 1, automargin=True, row=1, col=i)
    fig.update_layout(height=440, margin={"l": 90, "r": 20, "t": 84, "b": 70},
                      title=f"task {task.get('task', 0)}: confusion matrices on its {len(task['labels'])} test images "
                            "(rows: the true class)")
    return fig


def strip_tiles(strip: np.ndarray, size: int) -> list[np.ndarray]:
    """uint8 (H, N * W, 3) strip -> N tiles (H, W, 3)."""
    n = strip.shape[1] // size if size else 0
    return [strip[:, i * size:(i + 1) * size] for i in range(n)]


def load_strip(path: str | Path) -> np.ndarray | None:
    try:
        from PIL import Image

        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError):
        return None


def tile_grid(tiles: list[np.ndarray], cols: int, pad: int = 2, below: int = 0) -> np.ndarray:
    """Tiles in a grid on white, row by row, with `below` blank pixels under each row (room for text)."""
    if not tiles:
        return np.full((1, 1, 3), 255, dtype=np.uint8)
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // cols)
    out = np.full((rows * (h + pad + below) + pad, cols * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        y, x = pad + r * (h + pad + below), pad + c * (w + pad)
        out[y:y + h, x:x + w] = tile
    return out


def predictions_figure(task: dict[str, Any], strip: np.ndarray, scale: int = 3) -> go.Figure:
    """The task's sample test images, one row per class, each with its true class and what the
    learngene descendant (LG) and the baseline (BL) predicted, green where right, red where wrong."""
    size = int(task.get("image_size") or strip.shape[0])
    tiles = strip_tiles(strip, size)
    samples = list(task.get("samples") or [])[:len(tiles)]
    names = list(task.get("class_names") or [])
    per_row = max(1, max((sum(1 for s in samples if task["labels"][s] == c) for c in range(len(names))), default=1))
    big = [np.kron(t, np.ones((scale, scale, 1), dtype=np.uint8)) for t in tiles[:len(samples)]]
    pad, below = 4, 44
    grid = tile_grid(big, per_row, pad, below)
    fig = go.Figure(go.Image(z=grid, hoverinfo="skip"))
    s = size * scale
    for k, pos in enumerate(samples):
        r, c = divmod(k, per_row)
        y = pad + r * (s + pad + below) + s
        x = pad + c * (s + pad) + s / 2
        truth = task["labels"][pos]
        lines = [f"<b>{_name(names, truth)}</b>"]
        for role, short in (("learngene", "LG"), ("baseline", "BL")):
            said = (task.get("predictions") or {}).get(role)
            if said:
                colour = RIGHT if said[pos] == truth else WRONG
                lines.append(f"<span style='color:{colour}'>{short}: {_name(names, said[pos])}</span>")
        fig.add_annotation(x=x, y=y + 2, text="<br>".join(lines), showarrow=False, yanchor="top",
                           font={"size": 10}, align="center")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=int(grid.shape[0] * 1.05) + 60, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      title="test images: true class, learngene (LG) and baseline (BL) predictions")
    return fig


def _name(names: list[str], i: int) -> str:
    return names[i] if 0 <= i < len(names) else str(i)


def labelled_rows(tiles: list[np.ndarray], labels: list[int], n_classes: int) -> tuple[np.ndarray, list[int]]:
    """Tiles regrouped one row per class (the classes that have tiles, in order), as one image grid."""
    rows = [[t for t, y in zip(tiles, labels, strict=False) if y == c] for c in range(n_classes)]
    kept = [c for c, r in enumerate(rows) if r]
    cols = max((len(r) for r in rows), default=1)
    blank = np.full_like(tiles[0], 255) if tiles else None
    ordered = [t for c in kept for t in rows[c] + [blank] * (cols - len(rows[c]))]
    return tile_grid(ordered, cols), kept


def output_path(info: Any, name: str) -> Path:
    return Path(info.path) / "outputs" / name


def read_output_json(info: Any, name: str) -> dict | None:
    """A JSON output of a run (None when missing or unreadable)."""
    try:
        data = read_json(output_path(info, name))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
