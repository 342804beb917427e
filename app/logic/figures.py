"""Plotly figure builders: pure functions from plain data to `go.Figure` (no Streamlit here).

Colours are fixed per role so every page tells the same story: the learngene descendant is teal,
the random-init baseline grey-orange, inherited layers teal, random layers light grey.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

INHERIT, RANDOM, STEM, HEAD = "#0f8b8d", "#c9ccd1", "#7a6fb0", "#e0a458"
SELECTED, UNSELECTED, OVERLAY = "#0f8b8d", "#9aa5b1", "#d1495b"
MODEL_COLORS = {"learngene": "#0f8b8d", "baseline": "#e07a5f", "ancestry": "#3d5a80"}
PALETTE = ["#0f8b8d", "#e07a5f", "#3d5a80", "#81b29a", "#f2cc8f", "#9c6644", "#6d597a", "#52796f"]
KIND_COLORS = {"inherit": INHERIT, "random": RANDOM, "stem": STEM, "head": HEAD}
KIND_LABELS = {"inherit": "inherited (learngene)", "random": "random init", "stem": "stem", "head": "new head"}


def _layout(fig: go.Figure, title: str = "", height: int | None = None) -> go.Figure:
    """Common layout: the legend in a row above the plot; a title above that row, at the top of the figure
    (a title in the middle of a short top margin, plotly's default, sits on the legend)."""
    legend = sum(t.showlegend is not False for t in fig.data) > 1 or any(t.showlegend for t in fig.data)
    top = (TITLE_TOP if legend else TITLE_ONLY_TOP) if title else 10
    fig.update_layout(margin=dict(l=10, r=10, t=top, b=10), height=height,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    if title:
        fig.update_layout(title=dict(text=title, x=0, xanchor="left", xref="paper", y=1, yref="container",
                                     yanchor="top", pad=dict(t=8)))
    return fig


TITLE_TOP = 84  # top margin (px) of a titled figure with a legend: the title row, then the legend row
TITLE_ONLY_TOP = 44  # ... of a titled figure without a legend
SUBPLOT_TITLES_TOP = 40  # top margin (px) that holds subplot titles (annotations do not push margins)


def color_of(series: str, i: int = 0) -> str:
    """The fixed colour of a model role ("learngene", "baseline", "ancestry"), else a palette colour."""
    return MODEL_COLORS.get(series, PALETTE[i % len(PALETTE)])


def series_style(names: Sequence[str], colors: Mapping[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """(colour, dash) per series. A plain role keeps its colour; "<run> · <role>" series get one colour
    per run (`colors[series]` when given: the run's own colour), and the baseline of every run is dashed,
    so many overlaid runs stay readable."""
    runs: dict[str, int] = {}
    out = {}
    for name in names:
        run, sep, role = str(name).rpartition(" · ")
        if not sep:
            out[name] = (color_of(str(name), len(out)), "dash" if name == "baseline" else "solid")
            continue
        idx = runs.setdefault(run, len(runs))
        color = (colors or {}).get(name) or PALETTE[idx % len(PALETTE)]
        out[name] = (color, "dash" if role == "baseline" else "solid")
    return out


# ---------------------------------------------------------------- similarity


def similarity_heatmap(matrix, row_names: Sequence[str], col_names: Sequence[str], *,
                       selected: Sequence[int] = (), value_label: str = "similarity",
                       title: str = "", contrast: bool = False,
                       x_title: str = "pseudo-descendant layer") -> go.Figure:
    """Ancestry (rows) × pseudo-descendant (columns) heatmap (`x_title` names the columns of other views).

    With `contrast`, each column is coloured on its own min-max range (0 = the column's lowest
    value, 1 = its highest), so the rows a column prefers stand out; hovering still shows raw values.

    Hovering shows both layer names and the value. A transparent marker sits on every cell so
    that a click (or a box selection) reports the cell as a selectable point: Streamlit does not
    report selections on heatmap traces. Each marker's `customdata` is `[row, col]`. Selected
    ancestry rows are outlined. No drag mode is set: Streamlit then lets a click select the cell it
    hits (with `dragmode="select"` it turns click selection off), and the modebar's Box Select tool
    drags boxes.
    """
    z = np.asarray(matrix, dtype=float)  # (M, N)
    m, n = z.shape
    rows, cols = [str(r) for r in row_names], [str(c) for c in col_names]
    assert len(rows) == m and len(cols) == n, "names must match the matrix shape"
    colour, bar = z, value_label
    if contrast:
        lo, hi = np.nanmin(z, axis=0, keepdims=True), np.nanmax(z, axis=0, keepdims=True)
        colour, bar = (z - lo) / np.where(hi > lo, hi - lo, 1.0), f"{value_label}<br>(per column)"
    fig = go.Figure(go.Heatmap(z=colour, x=list(range(n)), y=list(range(m)), colorscale="Viridis",
                               colorbar=dict(title=bar), hoverinfo="skip", name=value_label))
    ii, jj = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    text = [f"ancestry: {rows[i]}<br>pseudo-descendant: {cols[j]}<br>{value_label}: {_fmt(z[i, j])}"
            for i, j in zip(ii, jj, strict=True)]
    fig.add_trace(go.Scatter(
        x=jj, y=ii, mode="markers", customdata=np.stack([ii, jj], axis=1), text=text,
        hovertemplate="%{text}<extra></extra>", showlegend=False, name="cells",
        marker=dict(symbol="square", size=max(6, min(40, 420 // max(m, n))), color="rgba(0,0,0,0)"),
    ))
    for i in selected:
        if 0 <= i < m:
            fig.add_shape(type="rect", x0=-0.5, x1=n - 0.5, y0=i - 0.5, y1=i + 0.5,
                          line=dict(color=OVERLAY, width=2))
    fig.update_xaxes(tickvals=list(range(n)), ticktext=cols, title=x_title)
    fig.update_yaxes(tickvals=list(range(m)), ticktext=rows, title="ancestry layer", autorange="reversed")
    _layout(fig, title, height=max(320, 28 * m + 120))
    fig.update_layout(margin=dict(t=max(fig.layout.margin.t, 30)))  # room for the colour bar's title
    return fig


def _fmt(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.4g}"


def score_bars(names: Sequence[str], scores: Sequence[float], *, selected: Sequence[int] = (),
               significance: Sequence[float] | None = None, significance_label: str = "significance",
               score_label: str = "score", title: str = "") -> go.Figure:
    """Per-ancestry-layer score bars, selected layers highlighted, optional significance overlay.

    The overlay is drawn on a second y-axis (its own scale), as markers joined by a line.
    Each bar's `customdata` is its layer index, so a click on a bar can select the layer. Each bar is labelled
    with its rank (#1: the highest score), and the score axis is scaled to the scores where an axis from 0 would
    draw bars of one height (`score_axis_range`; the axis title says where it starts).
    """
    names, scores = [str(x) for x in names], [_finite(v) for v in scores]
    sel = set(selected)
    colors = [SELECTED if i in sel else UNSELECTED for i in range(len(names))]
    ranks = score_ranks(scores)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=names, y=scores, marker_color=colors, name=score_label,
                         customdata=list(range(len(names))), text=[f"#{r}" if r else "" for r in ranks],
                         textposition="outside", cliponaxis=False,
                         hovertemplate="%{x}<br>" + score_label + ": %{y:.4g}<br>rank %{text} of "
                                       + str(sum(r > 0 for r in ranks)) + "<extra></extra>"),
                  secondary_y=False)
    axis = score_axis_range(scores)
    if axis is not None:  # all scores high and close: an axis from 0 would draw bars of one height
        fig.update_yaxes(range=list(axis), secondary_y=False)
        score_label += f" (axis from {axis[0]:.3g})"
    if significance is not None:
        fig.add_trace(go.Scatter(x=names, y=list(significance), mode="lines+markers", name=significance_label,
                                 line=dict(color=OVERLAY), marker=dict(size=8),
                                 hovertemplate="%{x}<br>" + significance_label + ": %{y:.4g}<extra></extra>"),
                      secondary_y=True)
        fig.update_yaxes(title_text=significance_label, secondary_y=True, showgrid=False)
    fig.update_yaxes(title_text=score_label, secondary_y=False)
    fig.update_xaxes(title_text="ancestry layer")
    return _layout(fig, title, height=320)


def _finite(v: float | None) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def score_ranks(scores: Sequence[float | None]) -> list[int]:
    """1 for the highest score, 2 for the next, ...; 0 for a missing score (ties keep the layers' order)."""
    order = sorted((i for i, v in enumerate(scores) if v is not None), key=lambda i: -scores[i])
    ranks = [0] * len(scores)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return ranks


def score_axis_range(scores: Sequence[float | None]) -> tuple[float, float] | None:
    """A value axis scaled to the scores, from a quarter of their spread below the lowest to as much above the
    highest, when they are all positive and lie far from 0 (the lowest above their spread: CKA 0.79-0.99, weight
    cosines 0.978-0.996); None (an axis from 0) otherwise, where bars from 0 still tell the layers apart."""
    values = [v for v in scores if v is not None]
    if not values:
        return None
    lo, hi = min(values), max(values)
    spread = hi - lo
    if lo <= 0 or lo <= spread:
        return None
    pad = max(spread * 0.25, abs(hi) * 1e-4)
    return lo - pad, hi + pad


def seed_score_bars(names: Sequence[str], seed_scores: Mapping, *, selected: Sequence[int] = (),
                    score_label: str = "score") -> go.Figure:
    """Per-layer score over pseudo-descendant seeds: mean with its 95% interval as error bars, the axis
    scaled to the scores (not from 0), and how many seeds selected each layer written on its bar."""
    names = [str(x) for x in names]
    n, mean, half = int(seed_scores["n"]), list(seed_scores["mean"]), list(seed_scores["ci95"])
    counts = list(seed_scores["selected_count"])
    sel = set(selected)
    fig = go.Figure(go.Bar(
        x=names, y=mean, marker_color=[SELECTED if i in sel else UNSELECTED for i in range(len(names))],
        error_y=dict(type="data", array=[h if math.isfinite(h) else 0.0 for h in half], visible=True),
        text=[f"{c}/{n}" for c in counts], textposition="outside", customdata=list(range(len(names))),
        hovertemplate="%{x}<br>" + score_label + " %{y:.4g}<br>selected by %{text} seeds<extra></extra>"))
    lows = [m - (h if math.isfinite(h) else 0.0) for m, h in zip(mean, half, strict=True)]
    highs = [m + (h if math.isfinite(h) else 0.0) for m, h in zip(mean, half, strict=True)]
    if lows:
        pad = max(1e-6, (max(highs) - min(lows)) * 0.25)
        fig.update_yaxes(range=[min(lows) - pad, max(highs) + pad])
    fig.update_yaxes(title_text=f"{score_label}, mean ± 95% CI over {n} seeds")
    fig.update_xaxes(title_text="ancestry layer (label: seeds that selected it)")
    return _layout(fig, "", height=320)


# ---------------------------------------------------------------- descendants


def descendant_stack(slots: Sequence[Mapping], *, title: str = "") -> go.Figure:
    """The descendant as a stack of boxes, input at the bottom, head on top.

    Args:
        slots: ordered bottom→top; each has `label`, `kind` ("stem", "inherit", "random", "head")
            and optionally `params` (number of parameters, shown in the hover) and `scale` (the box's
            width against the ancestry's: a narrower descendant draws narrower boxes).
    """
    fig = go.Figure()
    labels = [str(s.get("label", "")) for s in slots]
    scale = [float(s.get("scale", 1.0)) for s in slots]
    widest = max([1.0, *scale])
    for kind in ("stem", "inherit", "random", "head"):
        idx = [i for i, s in enumerate(slots) if s.get("kind") == kind]
        if not idx:
            continue
        fig.add_trace(go.Bar(
            y=[i for i in idx], x=[scale[i] for i in idx], base=[(widest - scale[i]) / 2 for i in idx],
            orientation="h", name=KIND_LABELS[kind],
            width=[0.9] * len(idx),  # explicit: plotly sizes each trace's bars by its own gaps (slivers)
            marker=dict(color=KIND_COLORS[kind], line=dict(color="white", width=2)),
            text=[labels[i] for i in idx], textposition="inside", insidetextanchor="middle",
            customdata=[_params(slots[i]) for i in idx],
            hovertemplate="%{text}<br>%{customdata}<extra>" + KIND_LABELS[kind] + "</extra>",
        ))
    fig.update_xaxes(visible=False, range=[0, widest])
    fig.update_yaxes(visible=False, range=[-0.6, max(len(slots), 1) - 0.4])
    fig.update_layout(barmode="overlay", bargap=0.08)
    return _layout(fig, title, height=max(220, 34 * len(slots) + 80))


def _params(slot: Mapping) -> str:
    p = slot.get("params")
    return f"{int(p):,} parameters" if p is not None else ""


def idea_figure(ancestry: Sequence[str], chosen: Sequence[int], descendant: Sequence[Mapping]) -> go.Figure:
    """Ancestry → learngene → descendant in one picture (three columns of boxes).

    Args:
        ancestry: names of the ancestry's integral layers, bottom → top.
        chosen: indices of the learngene layers.
        descendant: slots as for `descendant_stack`.
    """
    chosen = list(chosen)
    cols = [
        ("ancestry", [(n, "inherit" if i in chosen else "random") for i, n in enumerate(ancestry)]),
        ("learngene", [(ancestry[i], "inherit") for i in chosen if 0 <= i < len(ancestry)]),
        ("descendant", [(str(s.get("label", "")), str(s.get("kind", "random"))) for s in descendant]),
    ]
    fig = go.Figure()
    height = max(len(c[1]) for c in cols) or 1
    for x, (title, boxes) in enumerate(cols):
        y0 = (height - len(boxes)) / 2
        for j, (_label, kind) in enumerate(boxes):
            color = KIND_COLORS.get(kind, RANDOM) if title != "ancestry" or kind == "inherit" else "#e9ecef"
            fig.add_shape(type="rect", x0=x * 3, x1=x * 3 + 2, y0=y0 + j, y1=y0 + j + 0.85, layer="below",
                          fillcolor=color, line=dict(color="white"))
        dark = [kind in ("inherit", "stem", "head") and (title != "ancestry" or kind == "inherit") for _, kind in boxes]
        fig.add_trace(go.Scatter(
            x=[x * 3 + 1] * len(boxes), y=[y0 + j + 0.42 for j in range(len(boxes))], mode="text",
            text=[b[0] for b in boxes], showlegend=False, hoverinfo="text", name=title,
            textfont=dict(color=["white" if d else "#1f2933" for d in dark])))
        fig.add_annotation(x=x * 3 + 1, y=height + 0.4, text=f"<b>{title}</b>", showarrow=False)
    for x in (2.1, 5.1):
        fig.add_annotation(x=x + 0.8, y=height / 2, ax=x, ay=height / 2, xref="x", yref="y", axref="x",
                           ayref="y", showarrow=True, arrowhead=3, arrowsize=1.5, text="")
    fig.update_xaxes(visible=False, range=[-0.3, 8.3])
    fig.update_yaxes(visible=False, range=[-0.3, height + 0.9])
    return _layout(fig, "", height=max(240, 26 * height + 80))


def size_bars(sizes: Mapping[str, float], *, unit: str = "parameters", title: str = "") -> go.Figure:
    """Horizontal bars comparing sizes (e.g. learngene vs ancestry vs descendant)."""
    names = list(sizes)
    fig = go.Figure(go.Bar(y=names, x=[sizes[k] for k in names], orientation="h",
                           marker_color=[PALETTE[i % len(PALETTE)] for i in range(len(names))],
                           text=[_human(sizes[k]) for k in names], textposition="auto",
                           hovertemplate="%{y}: %{x:,}<extra>" + unit + "</extra>"))
    fig.update_xaxes(title_text=unit)
    return _layout(fig, title, height=60 + 40 * len(names))


def _human(v: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.2f}{suffix}"
    return f"{v:g}"


# ---------------------------------------------------------------- training curves


def ema(values: Sequence[float], alpha: float) -> np.ndarray:
    """Debiased exponential moving average (as TensorBoard's smoothing); alpha=0 returns the input."""
    v = np.asarray(values, dtype=float)
    if alpha <= 0 or v.size == 0:
        return v
    out, acc, weight = np.empty_like(v), 0.0, 0.0
    for i, x in enumerate(v):
        if not math.isfinite(x):
            out[i] = np.nan
            continue
        acc = alpha * acc + (1 - alpha) * x
        weight = alpha * weight + (1 - alpha)
        out[i] = acc / weight
    return out


def curves_frame(records: Sequence[Mapping], series_key: str = "model") -> pd.DataFrame:
    """Epoch records → one row per (series, epoch), mean over tasks.

    `time` is the trainer's seconds since the start of each model's training (so runs started at
    different moments share the x-axis).
    """
    df = pd.DataFrame([r for r in records if r.get("kind", "epoch") == "epoch"])
    if df.empty or "epoch" not in df:
        return pd.DataFrame(columns=["series", "epoch", "time", "train_loss", "test_acc"])
    df["series"] = df[series_key].astype(str) if series_key in df else "run"
    for col in ("train_loss", "test_acc", "time"):
        if col not in df:
            df[col] = np.nan
        df[col] = pd.to_numeric(df[col], errors="coerce")
    out = df.groupby(["series", "epoch"], as_index=False)[["train_loss", "test_acc", "time"]].mean()
    return out.sort_values(["series", "epoch"]).reset_index(drop=True)


def training_curves(frame: pd.DataFrame, *, x: str = "epoch", smoothing: float = 0.6,
                    log_loss: bool = True, target: float | None = None, title: str = "") -> go.Figure:
    """Loss and accuracy of every series on shared x-axes: EMA line bold, raw line faint.

    Args:
        frame: from `curves_frame` (columns series, epoch, time, train_loss, test_acc).
        x: "epoch" or "time" (wall-clock seconds).
        smoothing: EMA factor in [0, 1).
        log_loss: log-scale loss axis.
        target: accuracy target drawn as a dashed line.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "test accuracy"),
                        horizontal_spacing=0.08)
    xcol = "time" if x == "time" else "epoch"
    run_colors = (dict(zip(frame["series"], frame["color"], strict=True)) if "color" in frame else {})
    styles = series_style(list(dict.fromkeys(frame["series"])), run_colors)
    for series, g in frame.groupby("series", sort=False):
        color, dash = styles[series]
        name = str(g["name"].iloc[0]) if "name" in g else str(series)
        for col, metric in ((1, "train_loss"), (2, "test_acc")):
            gx, gy = g[xcol].to_numpy(), g[metric].to_numpy(dtype=float)
            ok = np.isfinite(gy)  # accuracy is measured every `eval_every` epochs only
            gx, gy = gx[ok], gy[ok]
            fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", line=dict(color=color, width=1), opacity=0.3,
                                     name=f"{name} (raw)", legendgroup=str(series), showlegend=False,
                                     hovertemplate=f"{name} raw: %{{y:.4g}}<extra></extra>"), row=1, col=col)
            fig.add_trace(go.Scatter(x=gx, y=ema(gy, smoothing), mode="lines", line=dict(color=color, width=2.5, dash=dash),
                                     name=str(name), legendgroup=str(series), showlegend=col == 1,
                                     hovertemplate=f"{name}: %{{y:.4g}}<extra></extra>"), row=1, col=col)
    xtitle = "wall-clock seconds" if xcol == "time" else "epoch"
    fig.update_xaxes(title_text=xtitle)
    fig.update_yaxes(type="log" if log_loss else "linear", row=1, col=1)
    if log_loss:  # plotly labels a log axis spanning less than a decade with bare digits ("9, 8, 7"): name every tick
        loss = frame["train_loss"].to_numpy(dtype=float)
        loss = loss[np.isfinite(loss) & (loss > 0)]
        ticks = log_ticks(float(loss.min()), float(loss.max())) if loss.size else []
        if ticks:
            fig.update_yaxes(tickmode="array", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks], row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    if target is not None:
        fig.add_hline(y=target, line_dash="dash", line_color="#888", row=1, col=2)
    fig.update_layout(hovermode="x unified")
    _layout(fig, title, height=400)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.18, x=0),
                      margin=dict(b=40, t=max(SUBPLOT_TITLES_TOP, fig.layout.margin.t or 0)))
    return fig


def log_ticks(lo: float, hi: float, at_least: int = 3) -> list[float]:
    """Tick values for a log axis over [lo, hi] that each read as a whole number: 1-2-5 per decade, denser
    when the range is short (1..9 per decade, then evenly spaced values)."""
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        return []
    lo, hi = lo * (1 - 1e-9), hi * (1 + 1e-9)  # a value printed as 0.2 may be 0.19999999999999996
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks: list[float] = []
    for mults in ((1,), (1, 2, 5), (1, 2, 3, 5), tuple(range(1, 10))):
        ticks = [float(f"{m * 10.0 ** e:.12g}") for e in range(first, last + 1) for m in mults]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= at_least:
            return ticks
    step = _nice_step((hi - lo) / 4) if hi > lo else 0.0
    if step <= 0:
        return [float(f"{lo:.3g}")]
    start = math.ceil(lo / step) * step
    return [float(f"{start + i * step:.12g}") for i in range(int((hi - start) / step + 1e-9) + 1)]


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    if raw <= 0 or not math.isfinite(raw):
        return 0.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


# ---------------------------------------------------------------- sweeps


def sweep_figure(frame: pd.DataFrame, *, x: str, log_x: bool = False, title: str = "",
                 x_title: str | None = None) -> go.Figure:
    """Final accuracy against a swept setting, one line per model, error bars = 95% CI.

    Args:
        frame: columns `model`, `x` (the setting), `mean`, and optionally `ci` (half-width).
    """
    fig = go.Figure()
    for i, (model, g) in enumerate(frame.sort_values(x).groupby("model", sort=False)):
        err = g["ci"].to_numpy(dtype=float) if "ci" in g else None
        fig.add_trace(go.Scatter(
            x=g[x], y=g["mean"], mode="lines+markers", name=str(model), line=dict(color=color_of(str(model), i)),
            error_y=dict(type="data", array=err, visible=True) if err is not None else None,
            hovertemplate=f"{model}<br>{x}=%{{x}}<br>accuracy %{{y:.3f}}<extra></extra>"))
    fig.update_xaxes(title_text=x_title or x, type="log" if log_x else "linear")
    fig.update_yaxes(title_text="final test accuracy", range=[0, 1.02])
    return _layout(fig, title, height=360)


def size_figure(summary: Sequence[Mapping], title: str = "") -> go.Figure:
    """Final accuracy against the descendant's parameters (log x), one line per initialisation, from a
    `learngene sizes` result (`sizes.json` "sizes"), with 95% intervals as error bars."""
    fig = go.Figure()
    rows = sorted(summary, key=lambda r: r["params"])
    names = {"learngene": "learngene", "random": "random init", "weight-selection": "weight selection (all layers)"}
    for init, dash in (("learngene", "solid"), ("random", "dash"), ("weight-selection", "dot")):
        ci = [r[init]["ci95"] * 100 if r[init].get("ci95") is not None and r[init]["ci95"] == r[init]["ci95"] else 0
              for r in rows]
        fig.add_trace(go.Scatter(
            x=[r["params"] for r in rows], y=[r[init]["mean"] * 100 for r in rows], name=names[init],
            mode="lines+markers", line=dict(dash=dash), error_y=dict(type="data", array=ci, visible=True),
            text=[r["size"] for r in rows], hovertemplate="%{text}<br>%{x:,} parameters<br>%{y:.1f}%<extra></extra>"))
    fig.update_xaxes(type="log", title="descendant parameters")
    fig.update_yaxes(title="final test accuracy (%)")
    return _layout(fig, title, height=360)
