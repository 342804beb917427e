"""Choosing learngene layers on the similarity heatmap and score bars (clicks toggle layers).

A click on a heatmap cell toggles that ancestry layer in the learngene; a box (the modebar's Box Select
tool) flips every layer it covers; a click on a score bar toggles that layer. Selections are handled in
`on_select` callbacks, so a selection acts once instead of on every rerun.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import streamlit as st

from app.logic import figures
from app.person import resources, state
from app.ui import widgets


def rows_from_points(points: Iterable[Mapping[str, Any]], kind: str, n_rows: int) -> list[int]:
    """Ancestry rows named by selected points of a heatmap ("cells" trace) or of the score bars."""
    rows = set()
    for p in points:
        if kind == "heatmap":
            cd = p.get("customdata")  # [row, col]; the browser sends it as {"0": row, "1": col}
            if isinstance(cd, dict):
                cd = [cd.get("0", cd.get(0))]
            row = cd[0] if isinstance(cd, (list, tuple)) and cd and cd[0] is not None else p.get("y")
        else:
            if p.get("curve_number", 0) != 0:  # the significance overlay is not a layer
                continue
            row = p.get("point_index", p.get("point_number"))
        if isinstance(row, (int, float)) and 0 <= int(round(row)) < n_rows:
            rows.add(int(round(row)))
    return sorted(rows)


def apply_rows(rows: list[int]) -> None:
    """Flip each named row: a click names one (toggles it), a box names every row it covers."""
    if rows:
        state.update(layers=sorted(set(state.get().layers) ^ set(rows)))


def _chart_key(key: str) -> str:
    """The chart's widget key: it changes after every handled selection, so the chart comes back with
    nothing selected. Otherwise plotly keeps the clicked point selected, and clicking it again (to
    remove the layer) would only clear plotly's selection: an empty event that names no layer."""
    return f"{key}-chart-{st.session_state.get(f'{key}::round', 0)}"


def _on_select(key: str, kind: str, n_rows: int) -> None:
    event = st.session_state.get(_chart_key(key)) or {}
    points = (event.get("selection") or {}).get("points") or []
    rows = rows_from_points(points, kind, n_rows)
    if rows:
        apply_rows(rows)
        st.session_state[f"{key}::round"] = st.session_state.get(f"{key}::round", 0) + 1


def _selectable_chart(fig: Any, key: str, kind: str, n_rows: int, mode: Any) -> None:
    """A plotly chart in a container keyed `key` (the page's CSS hook), whose clicks toggle layers."""
    with st.container(key=key):
        st.plotly_chart(fig, key=_chart_key(key), on_select=lambda: _on_select(key, kind, n_rows),
                        selection_mode=mode)
    widgets.download_figure_ui(fig, key, f"{key}-fig")


COLUMN_TITLES = {"gradient": "epoch of the open-world tasks", "weights": "weights (cosine to the fine-tuned copy)"}


def column_title(method: str) -> str:
    """What a similarity result's columns are: pseudo-descendant layers, or epochs (gradient), or one column of
    weight cosines (weights)."""
    return COLUMN_TITLES.get(str(method), "pseudo-descendant layer")


def heatmap_ui(sim: Any, *, key: str, value_label: str = "similarity", contrast: bool = False) -> None:
    """The ancestry × pseudo-descendant heatmap; clicking a cell toggles its ancestry layer."""
    selected = [i for i in state.get().layers if i < len(sim.row_names)]
    fig = figures.similarity_heatmap(sim.array, sim.row_names, sim.col_names, selected=selected,
                                     value_label=value_label, contrast=contrast, x_title=column_title(sim.method))
    _selectable_chart(fig, key, "heatmap", len(sim.row_names), ("points", "box"))
    st.caption("Hover a cell for both layer names and the value. Click a cell to add or remove its ancestry layer "
               "(or click a layer's score bar); with the Box Select tool (top right of the chart), a box flips every "
               "layer it covers.")


def score_bars_ui(sim: Any, scores: list[float], *, key: str, rule: str,
                  anc: resources.Ancestry | None = None) -> None:
    """Per-layer score bars with an optional captum significance overlay; clicking a bar toggles it."""
    overlay, label, note = None, "significance", ""
    c = st.columns([2, 3])
    show = c[0].toggle("overlay captum significance", disabled=anc is None,
                       help="computed on demand on a small batch of base-class images (CPU, cached)",
                       **widgets.kept(f"{key}-sig", False))
    if show and anc is not None:
        from app.logic.significance import MEASURES

        measure = c[1].selectbox("measure", list(MEASURES), format_func=MEASURES.get,
                                 **widgets.kept(f"{key}-measure", next(iter(MEASURES)), lambda v: v in MEASURES))
        with widgets.error_box("significance"):
            if list(anc.names) != list(sim.row_names):
                raise ValueError("this similarity result was computed on another ancestry's layers")
            sig = resources.significance(str(anc.path), resources.file_stamp(anc.path), measure)
            overlay, label = sig.values, measure
            if sig.signed_sum is not None:
                note = ("Signed sums of conductance per layer (≈ equal for every residual block, by completeness, "
                        "hence useless for ranking): " + ", ".join(f"{v:.3g}" for v in sig.signed_sum))
    selected = [i for i in state.get().layers if i < len(sim.row_names)]
    fig = figures.score_bars(sim.row_names, scores, selected=selected, significance=overlay,
                             significance_label=label, score_label=f"score ({rule})")
    _selectable_chart(fig, key, "bars", len(sim.row_names), "points")
    if note:
        st.caption(note)
