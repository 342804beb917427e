"""Live views of background runs: fragments that poll the run folders while a run is live.

Each view is a `st.fragment` whose `run_every` is set only while one of its runs is queued or
running, so finished runs are not polled. When the last run ends, the fragment triggers one full
rerun, which re-registers it without `run_every` (the way Streamlit's docs start and stop a
streaming fragment). Metrics are read incrementally: the byte offset per run is kept in
`st.session_state`, so each poll reads only the new lines.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app import figures, pipeline, resources, state, widgets
from learngene.errors import LearngeneError

POLL_S = 1.5


def run_infos(run_ids: list[str]) -> list[Any]:
    """RunInfo of each existing run (unknown or deleted ids are skipped)."""
    out = []
    for run_id in run_ids:
        try:
            out.append(resources.jobs().get(run_id))
        except (LearngeneError, ValueError):
            continue
    return out


def metrics(run_id: str) -> list[dict]:
    """Every metric record of a run so far, read incrementally (offset kept in session state)."""
    key = f"_metrics::{run_id}"
    cache = st.session_state.setdefault(key, {"offset": 0, "records": []})
    try:
        new, offset = resources.jobs().read_metrics(run_id, cache["offset"])
    except (LearngeneError, ValueError):
        return cache["records"]
    cache["records"].extend(new)
    cache["offset"] = offset
    return cache["records"]


def curves_frame(infos: list[Any]) -> pd.DataFrame:
    """Epoch curves of several runs; series = model role, prefixed by the run name when several runs."""
    frames = [(info, figures.curves_frame(metrics(info.run_id))) for info in infos]
    frames = [(info, df) for info, df in frames if not df.empty]
    if len(frames) > 1:  # several runs with curves: name each series after its run too
        for info, df in frames:
            df["series"] = f"{info.spec.name} · " + df["series"]
    frames = [df for _, df in frames]
    return pd.concat(frames, ignore_index=True) if frames else figures.curves_frame([])


def curve_controls_ui(key: str) -> dict[str, Any]:
    """x-axis, smoothing and log-scale choices for the training curves."""
    c = st.columns([2, 3, 2])
    x = c[0].segmented_control("x-axis", ["epoch", "wall-clock"], default="epoch", key=f"{key}-x") or "epoch"
    smoothing = c[1].slider("smoothing (EMA)", 0.0, 0.95, 0.6, 0.05, key=f"{key}-smooth",
                            help="bold line: exponential moving average; faint line: the raw values")
    log = c[2].toggle("log-scale loss", value=True, key=f"{key}-log")
    return {"x": "time" if x == "wall-clock" else "epoch", "smoothing": smoothing, "log_loss": log}


def watch_ui(run_ids: list[str], *, key: str, curves: bool = True, summary: bool = True) -> None:
    """Progress, cancel, live curves and (when done) the summary of `run_ids`; polls while live."""
    if not run_ids:
        return
    live_now = any(i.live for i in run_infos(run_ids))
    st.fragment(run_every=POLL_S if live_now else None)(_watch)(run_ids, key, live_now, curves, summary)


def _watch(run_ids: list[str], key: str, was_live: bool, curves: bool, summary: bool) -> None:
    infos = run_infos(run_ids)
    if not infos:
        st.info("The watched runs no longer exist.")
        return
    for info in infos:
        widgets.run_progress_ui(info, key=key)
    if curves:
        frame = curves_frame(infos)
        if frame.empty:
            st.caption("Waiting for the first epoch…")
        else:
            opts = curve_controls_ui(key)
            st.plotly_chart(figures.training_curves(frame, **opts), key=f"{key}-curves")
    if summary:
        for info in infos:
            if info.state == "done":
                summary_ui(info)
    if was_live and not any(i.live for i in infos):
        st.rerun()  # a full rerun re-registers this fragment without run_every: polling stops


def summary_ui(info: Any) -> None:
    """Final accuracies (mean ± 95% CI), epochs to target and the speed-up of a finished train run."""
    data = (pipeline.read_output_json(info, "summary.json") or {}).get("summary")
    if not isinstance(data, dict) or "learngene" not in data:
        return
    st.markdown(f"**Summary of {info.spec.name}**")
    rows = []
    for role in ("learngene", "baseline"):
        s = data.get(role) or {}
        acc, tgt = s.get("final_acc") or {}, s.get("target") or {}
        ep = (tgt.get("epochs") or {}).get("mean") if tgt.get("reached") else None
        rows.append({"model": role, "final accuracy": acc.get("mean"), "± 95% CI": acc.get("ci95"),
                     "epochs to target": ep, "reached": f"{tgt.get('reached', 0)}/{tgt.get('of', 0)}" if tgt else "",
                     "train seconds": (s.get("train_seconds") or {}).get("mean"), "diverged": s.get("diverged")})
    df = pd.DataFrame(rows)
    st.dataframe(df, hide_index=True, width="stretch", column_config={
        "final accuracy": st.column_config.NumberColumn(format="percent"),
        "± 95% CI": st.column_config.NumberColumn(format="percent"),
        "epochs to target": st.column_config.NumberColumn(format="%.1f", help="mean over the tasks that reached it"),
        "train seconds": st.column_config.NumberColumn(format="%.1f")})
    c = st.columns(3)
    gain = (data.get("gain") or {}).get("mean")
    c[0].metric("accuracy gain", f"{gain * 100:+.1f} points" if isinstance(gain, (int, float)) else "n/a")
    lg_ep, bl_ep = rows[0]["epochs to target"], rows[1]["epochs to target"]
    speed = f"{bl_ep / lg_ep:.1f}×" if lg_ep and bl_ep else ("learngene only" if lg_ep else "n/a")
    c[1].metric("speed-up to target", speed, help="baseline epochs to target ÷ learngene epochs to target")
    target = (data["learngene"].get("target") or {}).get("acc")
    c[2].metric("target accuracy", f"{target:.0%}" if isinstance(target, (int, float)) else "n/a")


def demo_ui() -> None:
    """The Home page's demo: the condense run, then the train run, advanced as each ends."""
    demo = state.get().demo
    ids = [demo[k] for k in ("condense", "train") if demo.get(k)]
    if not ids:
        return
    live_now = any(i.live for i in run_infos(ids)) or pipeline.demo_waiting()
    st.fragment(run_every=POLL_S if live_now else None)(_demo)(live_now)


def _demo(was_live: bool) -> None:
    changed = False
    with widgets.error_box("demo"):
        changed = pipeline.advance_demo()
    if changed:
        st.rerun()  # the learngene changed: redraw the whole page (and keep polling the new train run)
    demo = state.get().demo
    ids = [demo[k] for k in ("condense", "train") if demo.get(k)]
    _watch(ids, "demo", False, curves=True, summary=True)
    if demo.get("error"):
        st.error(demo["error"])
    still = any(i.live for i in run_infos(ids)) or pipeline.demo_waiting()
    if was_live and not still:
        st.rerun()
