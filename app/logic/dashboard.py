"""The Runs page's dashboard data: one row per run with its settings and results, and the gain scatter.

A row's settings come from what the run recorded (its `config` metric record, or its summary when it
is done), else from its command line read with the CLI's own parser, so a queued run has them too.
Its results come from `outputs/summary.json` (train runs). A person's name, tags and note come from
`annotations.json` (`learngene.jobs.annotations`). No Streamlit here.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from app.logic import demo
from learngene.jobs.annotations import read_annotations
from learngene.runlog import read_json
from learngene.text import printable

CONFIG_COLUMNS = ["ancestry", "layers", "placement", "lr", "wd", "N-way", "K", "seed", "epochs", "tasks", "device"]
RESULT_COLUMNS = ["learngene acc", "baseline acc", "gain", "speed-up", "wall s", "state"]
# What a person reads first leads: the name, the state and the results; then the settings; the id last.
COLUMNS = ["name", "state", *RESULT_COLUMNS[:-1], *CONFIG_COLUMNS, "kind", "tags", "grid", "reason", "note", "created",
           "run"]
# Settings that can go on the scatter's x axis (numbers; "layers" as the count of inherited layers).
SCATTER_X = {"lr": "learning rate", "wd": "weight decay", "K": "K (shots per class)", "epochs": "epochs",
             "tasks": "tasks", "n layers": "inherited layers", "speed-up": "speed-up to target"}


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    from learngene.cli import build_parser

    return build_parser()


def parse_argv(argv: list[str]) -> dict[str, Any]:
    """The options of `python -m learngene <argv>` as the CLI reads them (defaults filled in); {} if they
    do not parse."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
            args = _parser().parse_args(list(argv))
    except (SystemExit, Exception):  # noqa: BLE001 - a run started by an older version: no settings shown
        return {}
    return {k: v for k, v in vars(args).items() if not k.startswith("_")}


def _first_record(path: Path) -> dict[str, Any]:
    """The first JSON line of a metrics file (the run's `config` record), without reading the rest."""
    try:
        with open(path, encoding="utf-8") as f:
            rec = json.loads(f.readline() or "{}")
    except (OSError, ValueError):
        return {}
    return rec if isinstance(rec, dict) else {}


def _summary(info: Any) -> dict[str, Any]:
    try:
        data = read_json(Path(info.path) / "outputs" / "summary.json", default={})
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _stems(value: Any) -> str:
    values = value if isinstance(value, list) else [value]
    return ", ".join(Path(str(v)).stem for v in values if v)


def _layers(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value or "")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def settings(info: Any, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config columns of a run (ancestry, layers, placement, lr, wd, K, epochs, tasks, device) and,
    for a sweep, its grid in words."""
    args = parse_argv(list(info.spec.argv))
    tags = dict(getattr(info.spec, "tags", None) or {})  # what the page that started it recorded
    rec = summary if summary and "train" in summary else _first_record(Path(info.path) / "metrics.jsonl")
    rec = rec if rec.get("kind", "config") == "config" else {}
    train, tasks = rec.get("train") or {}, rec.get("tasks") or {}
    recipe = rec.get("recipe") or {}

    def pick(*values: Any) -> Any:
        return next((v for v in values if v is not None and v != ""), None)

    source = args.get("learngene") and f"learngene {Path(str(args['learngene'])).stem}"
    layers = pick(args.get("layers"), args.get("preset"), tags.get("layers"))
    row = {
        "ancestry": source or _stems(pick(args.get("ancestry"), tags.get("ancestry"))),
        "layers": _layers(layers),
        "placement": pick(recipe.get("placement"), args.get("placement"), tags.get("placement"),
                          "original" if layers is not None else "") or "",
        "lr": _number(pick(train.get("lr"), args.get("lr"), tags.get("lr"))),
        "wd": _number(pick(train.get("weight_decay"), args.get("weight_decay"), tags.get("weight_decay"))),
        "N-way": _number(pick(tasks.get("n_way"), args.get("n_way"), tags.get("n_way"))),
        "K": _number(pick(tasks.get("k_shot"), args.get("k_shot"), tags.get("k_shot"))),
        "seed": _number(pick(train.get("seed"), args.get("seed"), tags.get("seed"))),
        "epochs": _number(pick(train.get("epochs"), args.get("epochs"), tags.get("epochs"))),
        "tasks": _number(pick(tasks.get("tasks"), args.get("tasks"), tags.get("tasks"))),
        "device": info.spec.device,
        "grid": "",
    }
    grid = [(word, args.get(key)) for word, key in (("lr", "lrs"), ("wd", "wds"), ("K", "shots"), ("seed", "seeds"))
            if args.get(key)]
    if grid:  # a sweep: its settings are grids, not one value
        row["grid"] = " × ".join(f"{word} {value}" for word, value in grid)
        keys = {"lr": "lrs", "wd": "wds", "K": "shots"}
        for col, key in keys.items():
            if args.get(key):
                row[col] = None
    return row


def results(info: Any, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """The result columns of a run: final accuracy of both models, gain, speed-up, wall time, state."""
    data = (summary or {}).get("summary")
    row: dict[str, Any] = {"learngene acc": None, "baseline acc": None, "gain": None, "speed-up": None,
                           "wall s": round(info.duration_s, 1) if info.duration_s is not None else None,
                           "state": info.state, "reason": printable(info.reason or "", 300)}
    if isinstance(data, dict) and "learngene" in data:
        for role in ("learngene", "baseline"):
            row[f"{role} acc"] = _number(((data.get(role) or {}).get("final_acc") or {}).get("mean"))
        h = demo.headline(data)
        row["gain"], row["speed-up"] = h["gain"], h["speedup"]
    return row


def run_row(info: Any) -> dict[str, Any]:
    """One row of the runs table (see `COLUMNS`)."""
    from datetime import datetime

    summary = _summary(info) if info.state == "done" else {}
    notes = read_annotations(info.path)
    return {"run": info.run_id, "name": notes["name"] or info.label, "kind": info.spec.kind,
            "tags": list(notes["tags"]), **settings(info, summary), **results(info, summary),
            "note": notes["note"], "created": datetime.fromtimestamp(info.created_at) if info.created_at else None}


def runs_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The runs table from `run_row` rows, in `COLUMNS` order."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("lr", "wd", "N-way", "K", "seed", "epochs", "tasks", "learngene acc", "baseline acc", "gain",
                "speed-up", "wall s"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in ("ancestry", "layers", "placement", "device", "grid", "reason", "note", "kind"):
        df[col] = df[col].map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else v)
    return df


def differing_first(df: pd.DataFrame) -> list[str]:
    """The table's columns with the settings that differ between its runs moved to the front (after the name,
    the owner and the state), so runs that differ only by seed, N-way or K do not look the same."""
    lead = [c for c in ("name", "by", "state", "progress") if c in df.columns]
    differ = [c for c in CONFIG_COLUMNS if c in df.columns and df[c].replace("", None).dropna().nunique() > 1]
    return lead + differ + [c for c in df.columns if c not in lead and c not in differ]


def filter_frame(df: pd.DataFrame, tags: list[str]) -> pd.DataFrame:
    """Rows that carry every tag in `tags` (all rows when none)."""
    if not tags or df.empty:
        return df
    return df[df["tags"].map(lambda have: set(tags) <= set(have or []))]


def all_tags(df: pd.DataFrame) -> list[str]:
    return sorted({t for tags in df.get("tags", []) for t in (tags or [])})


def scatter_frame(df: pd.DataFrame, x: str) -> pd.DataFrame:
    """Runs that have both a gain and a value of the setting `x` (see `SCATTER_X`)."""
    out = df.copy()
    if x == "n layers":
        out["n layers"] = out["layers"].map(lambda s: len([p for p in str(s).split(",") if p.strip().isdigit()])
                                            if str(s) and str(s)[0].isdigit() else None)
    out[x] = pd.to_numeric(out[x], errors="coerce")
    return out[out["gain"].notna() & out[x].notna()]


def gain_scatter(df: pd.DataFrame, x: str, colors: dict[str, str] | None = None) -> go.Figure:
    """Accuracy gain (points) of each run against one of its settings (`SCATTER_X`), one marker per run."""
    from app.logic import figures

    data = scatter_frame(df, x)
    log_x = x in ("lr", "wd") and bool(len(data)) and (data[x] > 0).all()
    fig = go.Figure()
    fig.add_hline(y=0, line={"color": "#999", "dash": "dot", "width": 1})
    fig.add_trace(go.Scatter(
        x=data[x], y=data["gain"] * 100, mode="markers", name="runs",
        marker={"size": 12, "color": [(colors or {}).get(r, figures.PALETTE[0]) for r in data["run"]],
                "line": {"color": "white", "width": 1}},
        text=[f"{n}<br>{r}" for n, r in zip(data["name"], data["run"], strict=True)], customdata=data["run"],
        hovertemplate="%{text}<br>" + SCATTER_X[x] + " %{x}<br>gain %{y:+.1f} points<extra></extra>"))
    fig.update_layout(title=f"accuracy gain against {SCATTER_X[x]}", height=380, showlegend=False,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50})
    fig.update_xaxes(title=SCATTER_X[x], type="log" if log_x else None)
    fig.update_yaxes(title="gain (points, learngene − baseline)", zeroline=False)
    return fig
