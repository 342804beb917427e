"""The Runs page's data: the runs table, metrics as CSV, sweep summaries as tidy frames, figure export."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from app.logic.results import read_output_json
from learngene.runlog import read_jsonl
from learngene.text import printable


def runs_table(infos: list[Any]) -> pd.DataFrame:
    """One row per run: id, kind, name, state, progress, created, duration, group/role, reason."""
    rows = []
    for i in infos:
        prog = i.progress or {}
        total = prog.get("total") or 0
        rows.append({
            "run": i.run_id, "kind": i.spec.kind, "name": i.label, "state": i.state,
            "progress": min(1.0, (prog.get("done") or 0) / total) if total else (1.0 if i.state == "done" else 0.0),
            "created": datetime.fromtimestamp(i.created_at) if i.created_at else None,
            "seconds": round(i.duration_s, 1) if i.duration_s is not None else None,
            "device": i.spec.device, "group": printable(i.spec.group or ""), "reason": i.reason or "",
        })
    return pd.DataFrame(rows, columns=["run", "kind", "name", "state", "progress", "created", "seconds", "device",
                                       "group", "reason"])


def filter_runs(infos: list[Any], kinds: list[str], states: list[str], text: str) -> list[Any]:
    """Runs whose kind and state are among the chosen ones (all when none chosen) and whose name (as started or
    as annotated) or id has `text`."""
    from app.logic.runnames import shown_name

    text = text.strip().lower()
    return [i for i in infos if (not kinds or i.spec.kind in kinds) and (not states or i.state in states)
            and (not text or text in i.run_id.lower() or text in i.spec.name.lower()
                 or text in shown_name(i).lower())]


def metrics_frame(infos: list[Any]) -> pd.DataFrame:
    """Every epoch record of the runs, one row each, with the run id in front."""
    frames = []
    for info in infos:
        records, _ = read_jsonl(info.path / "metrics.jsonl")
        rows = [r for r in records if r.get("kind") == "epoch"]
        if rows:
            frames.append(pd.DataFrame(rows).assign(run=info.run_id))
    if not frames:
        return pd.DataFrame(columns=["run"])
    df = pd.concat(frames, ignore_index=True)
    return df[["run", *[c for c in df.columns if c != "run"]]]


def metrics_csv(infos: list[Any]) -> bytes:
    return metrics_frame(infos).to_csv(index=False).encode()


def sweep_summary(info: Any) -> dict | None:
    """The summary of a finished sweep run (None when it has none)."""
    data = read_output_json(info, "summary.json") or {}
    summary = data.get("summary")
    return summary if isinstance(summary, dict) and "settings" in summary else None


def study_report(info: Any) -> dict[str, Any] | None:
    """The tables, raw CSV and SVG figures of a finished `advantages` run (None while it has none)."""
    folder = Path(info.path) / "outputs"
    try:
        text = (folder / "advantages.md").read_text()
    except OSError:
        return None
    body = "\n".join(line for line in text.splitlines() if not line.startswith("Figures: "))
    return {"markdown": body, "csv": folder / "advantages.csv",
            "figures": sorted((folder / "figures").glob("advantages-*.svg"))}


_MARKUP_RE = re.compile(r"\*\*|__|`")


def _cells(line: str) -> list[str]:
    return [_MARKUP_RE.sub("", c).strip() for c in line.strip().strip("|").split("|")]


def markdown_blocks(text: str) -> list[str | pd.DataFrame]:
    """Markdown split into text blocks and its pipe tables as frames (a wide markdown table runs off the
    page; a frame scrolls inside it). Bold and code marks are dropped from table cells."""
    out: list[str | pd.DataFrame] = []
    lines = text.splitlines()
    prose: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        is_rule = i + 1 < len(lines) and re.fullmatch(r"\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*", lines[i + 1])
        if line.lstrip().startswith("|") and is_rule:
            if "\n".join(prose).strip():
                out.append("\n".join(prose))
            prose = []
            header = _cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = _cells(lines[i])
                rows.append((cells + [""] * len(header))[: len(header)])
                i += 1
            names = [h or f"column {k + 1}" for k, h in enumerate(header)]
            names = [n if names.index(n) == k else f"{n} ({k + 1})" for k, n in enumerate(names)]  # unique
            out.append(pd.DataFrame(rows, columns=names))
            continue
        prose.append(line)
        i += 1
    if "\n".join(prose).strip():
        out.append("\n".join(prose))
    return out


def sensitivity_frame(summary: dict) -> pd.DataFrame:
    """Final accuracy against the learning rate: rows (model, lr, weight_decay, k_shot, mean, ci)."""
    rows = []
    for cell in summary.get("settings", []):
        for role in ("learngene", "baseline"):
            acc = (cell.get(role) or {}).get("final_acc") or {}
            rows.append({"model": role, "lr": cell["lr"], "weight_decay": cell["weight_decay"],
                         "k_shot": cell["k_shot"], "mean": acc.get("mean"), "ci": acc.get("ci95")})
    return pd.DataFrame(rows, columns=["model", "lr", "weight_decay", "k_shot", "mean", "ci"])


def shots_frame(summary: dict) -> pd.DataFrame:
    """Accuracy against K (all grid cells pooled): rows (model, k_shot, mean, ci)."""
    rows = []
    for k, roles in (summary.get("by_k") or {}).items():
        for role in ("learngene", "baseline"):
            acc = ((roles or {}).get(role) or {}).get("grid_mean") or {}
            rows.append({"model": role, "k_shot": int(k), "mean": acc.get("mean"), "ci": acc.get("ci95")})
    return pd.DataFrame(rows, columns=["model", "k_shot", "mean", "ci"])


def spread_frame(summary: dict) -> pd.DataFrame:
    """Spread (max − min, std) of final accuracy over the lr × wd grid, per K and model."""
    rows = []
    for k, roles in (summary.get("spread") or {}).items():
        for role, r in (roles or {}).items():
            rows.append({"K": int(k), "model": role, "cells": r.get("cells"), "min": r.get("min"),
                         "max": r.get("max"), "range": r.get("range"), "std": r.get("std")})
    return pd.DataFrame(rows)


def png_available() -> bool:
    """Whether figures can be rendered to PNG on the server (plotly needs the kaleido package)."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return True


def figure_png(fig: go.Figure) -> bytes:
    """The figure as a PNG, rendered on the server by kaleido (which drives the system's chromium), at the
    figure's own height (500 px when it sets none), 1200 px wide, twice the pixels for sharpness."""
    height = fig.layout.height if isinstance(fig.layout.height, (int, float)) else 500
    return fig.to_image(format="png", width=1200, height=int(height), scale=2)


def figure_html(fig: go.Figure) -> bytes:
    """A self-contained HTML file (plotly.js inlined, so it opens offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True).encode()
