"""The Class board's data: every person's train runs on one ancestry, and the measured answer key.

A class runs the exercise "which layers would you inherit?": each person trains a learngene descendant
with the layers they chose; the board puts everyone's runs side by side (who, layers, gain over the
baseline with its 95% interval, speed-up, state) and, once the host reveals it, the measured per-layer
gains of `learngene probe` beside the class's choices. No Streamlit here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from app.logic import dashboard, demo

COLUMNS = ["who", "layers", "gain", "gain low", "gain high", "speed-up", "learngene acc", "baseline acc", "state",
           "K", "epochs", "tasks", "run"]


def same_ancestry(info: Any, ancestry: Path) -> bool:
    """True when a train run starts from `ancestry` (its `--ancestry` as the CLI reads it)."""
    args = dashboard.parse_argv(list(info.spec.argv))
    value = args.get("ancestry")
    if not value:
        return False
    try:
        return Path(str(value)).resolve() == Path(ancestry).resolve()
    except (OSError, RuntimeError):
        return False


def board_row(info: Any, who: str, row: dict[str, Any]) -> dict[str, Any]:
    """A board row from a runs-table row (`dashboard.run_row`) and the gain interval of the run's summary."""
    gain, ci = row.get("gain"), None
    if info.state == "done":
        summary = (dashboard._summary(info) or {}).get("summary") or {}
        ci = demo.headline(summary)["gain_ci"] if summary else None
    return {"who": who, "layers": row.get("layers") or "", "gain": gain,
            "gain low": gain - ci if gain is not None and ci is not None else None,
            "gain high": gain + ci if gain is not None and ci is not None else None,
            "speed-up": row.get("speed-up"), "learngene acc": row.get("learngene acc"),
            "baseline acc": row.get("baseline acc"), "state": info.state, "K": row.get("K"),
            "epochs": row.get("epochs"), "tasks": row.get("tasks"), "run": info.run_id}


def board_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("gain", "gain low", "gain high", "speed-up", "learngene acc", "baseline acc", "K", "epochs", "tasks"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def _layer_key(text: str) -> tuple:
    return tuple(int(p) for p in str(text).split(",") if p.strip().isdigit())


def gain_figure(df: pd.DataFrame, colors: dict[str, str]) -> go.Figure:
    """Each finished run's gain (with its interval) against the layers its person chose, one colour a person."""
    done = df[df["gain"].notna()]
    order = sorted(done["layers"].unique(), key=_layer_key)
    fig = go.Figure()
    for who, part in done.groupby("who", sort=True):
        err = (part["gain high"] - part["gain"]).fillna(0) * 100
        fig.add_trace(go.Scatter(
            x=part["layers"], y=part["gain"] * 100, mode="markers", name=str(who),
            marker={"size": 12, "color": colors.get(str(who))},
            error_y={"type": "data", "array": err.tolist(), "visible": True},
            customdata=part[["run", "speed-up"]].values,
            hovertemplate="%{x}: gain %{y:+.1f} points<br>speed-up %{customdata[1]:.1f}x<br>%{customdata[0]}",
        ))
    fig.add_hline(y=0, line={"color": "#888", "dash": "dot"})
    fig.update_layout(title="gain over the random-init baseline against the layers chosen",
                      xaxis={"title": "inherited layers", "type": "category", "categoryorder": "array",
                             "categoryarray": order},
                      yaxis={"title": "gain (accuracy points, 95% interval)"}, height=420,
                      legend={"title": {"text": "who"}}, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig


def choice_counts(df: pd.DataFrame, n_layers: int) -> list[int]:
    """How many of the board's runs inherit each layer."""
    counts = [0] * n_layers
    for text in df["layers"]:
        for i in _layer_key(text):
            if 0 <= i < n_layers:
                counts[i] += 1
    return counts


def answer_key(probe: dict[str, Any], df: pd.DataFrame) -> pd.DataFrame:
    """The measured gain of inheriting each single layer (probe) beside how many runs chose it."""
    single = probe.get("single") or []
    names = probe.get("layers") or [s.get("name", "") for s in single]
    counts = choice_counts(df, len(single))
    rows = []
    for i, item in enumerate(single):
        gain = item.get("gain") or {}
        rows.append({"layer": i, "name": names[i] if i < len(names) else "", "measured gain": gain.get("mean"),
                     "± 95%": gain.get("ci95"), "chosen by runs": counts[i],
                     "in the probe's chosen set": i in set(probe.get("chosen") or [])})
    return pd.DataFrame(rows)


def read_probe(ancestry: Path) -> dict[str, Any] | None:
    """The measured per-layer gains shipped beside a checkpoint (`<stem>.probe.json`), if any."""
    from learngene.runlog import read_json

    path = Path(ancestry).with_suffix(".probe.json")
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and data.get("format") == "learngene.probe/1" and isinstance(data.get("single"), list)
    return data if ok else None
