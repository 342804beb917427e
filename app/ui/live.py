"""Live views of background runs: fragments that poll the run folders while a run is live.

Each view is a `st.fragment` whose `run_every` is set only while one of its runs is queued or
running, so finished runs are not polled. When the last run ends, the fragment triggers one full
rerun, which re-registers it without `run_every` (the way Streamlit's docs start and stop a
streaming fragment). Metrics are read incrementally: the byte offset per run is kept in
`st.session_state`, so each poll reads only the new lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.logic import demo, figures, messages, runnames
from app.logic.results import read_output_json
from app.person import pipeline, resources, state
from app.ui import widgets
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


def curves_frame(infos: list[Any], names: dict[str, str] | None = None) -> pd.DataFrame:
    """Epoch curves of several runs. One run: a series per model role. Several runs: a series per
    (run id, role), `"<run id> · <role>"`, so two runs of the same name never share a curve; the column
    `name` holds the legend text (`runnames.labels`) and `color` the run's own colour (`runnames.colors`)."""
    frames = [(info, figures.curves_frame(metrics(info.run_id))) for info in infos]
    frames = [(info, df) for info, df in frames if not df.empty]
    if len(frames) > 1:  # several runs with curves: one series per run and role, named and coloured per run
        names = names or runnames.labels([info for info, _ in frames])
        colors = runnames.colors([info for info, _ in frames], figures.PALETTE)
        for info, df in frames:
            df["name"] = f"{names.get(info.run_id, info.label)} · " + df["series"]
            df["color"] = colors[info.run_id]
            df["series"] = f"{info.run_id} · " + df["series"]
    frames = [df for _, df in frames]
    return pd.concat(frames, ignore_index=True) if frames else figures.curves_frame([])


CURVE_DEFAULTS = {"x": "epoch", "smooth": 0.6, "log": True}


def curve_controls_ui(key: str) -> dict[str, Any]:
    """x-axis, smoothing and log-scale choices for the training curves (kept across pages and reloads)."""
    # One row that wraps where it does not fit (half the page on Home): columns of fixed shares cut the labels.
    row = st.container(horizontal=True, vertical_alignment="bottom", gap="medium")
    x = row.segmented_control("x-axis", ["epoch", "wall-clock"], **widgets.kept(
        f"{key}-x", CURVE_DEFAULTS["x"], lambda v: v in ("epoch", "wall-clock", None))) or "epoch"
    smoothing = row.slider("smoothing (EMA)", 0.0, 0.95, step=0.05, width=220,
                           help="bold line: exponential moving average; faint line: the raw values",
                           **widgets.kept(f"{key}-smooth", CURVE_DEFAULTS["smooth"], lambda v: 0 <= float(v) <= 0.95))
    log = row.toggle("log-scale loss", **widgets.kept(f"{key}-log", CURVE_DEFAULTS["log"],
                                                      lambda v: isinstance(v, bool)))
    return {"x": "time" if x == "wall-clock" else "epoch", "smoothing": smoothing, "log_loss": log}


# Kinds of runs that write epoch curves (a condense run writes none: "waiting for the first epoch" never fits it).
CURVE_KINDS = ("train", "sweep", "accumulate")


def watch_ui(run_ids: list[str], *, key: str, curves: bool = True, summary: bool = True) -> None:
    """Progress, cancel, live curves and (when done) the summary of `run_ids`; polls while live."""
    if not run_ids:
        return
    live_now = any(i.live for i in run_infos(run_ids))
    st.fragment(run_every=POLL_S if live_now else None)(_watch)(run_ids, key, live_now, curves, summary)


@st.cache_resource(max_entries=256, show_spinner=False)
def shared_curves(read: tuple, names: tuple, target: float | None, opts: tuple, _infos: list[Any],
                  _names: dict[str, str]) -> Any:
    """The curves of runs whose metrics were read up to the same record counts, with the same names and options:
    built once per server (everyone watching the same demo run sees the same figure, never changed after it is
    built). None when the runs have no epoch curves yet."""
    frame = curves_frame(_infos, _names)
    if frame.empty:
        return None
    return figures.training_curves(frame, target=target, **dict(opts))


def _watch(run_ids: list[str], key: str, was_live: bool, curves: bool, summary: bool) -> None:
    infos = run_infos(run_ids)
    if not infos:
        st.info("The watched runs no longer exist.")
        return
    names = runnames.labels(infos)
    for info in infos:
        widgets.run_progress_ui(info, key=key, name=names[info.run_id])
        if info.live and info.spec.kind == "train":
            where = task_now(metrics(info.run_id))
            if where:
                st.caption(f"{messages.md(names[info.run_id])}: {where}")
    if curves:
        read = tuple((i.run_id, len(metrics(i.run_id))) for i in infos)  # what this session has read of each run
        if any(n for _, n in read):
            opts = curve_controls_ui(key)
            fig = shared_curves(read, tuple(names.items()), common_target(infos), tuple(sorted(opts.items())),
                                _infos=infos, _names=names)
        else:
            fig = None
        if fig is not None:
            st.plotly_chart(fig, key=f"{key}-curves")
            widgets.download_figure_ui(fig, "curves", f"{key}-curves")
        elif any(i.live and i.spec.kind in CURVE_KINDS for i in infos):
            st.caption("Waiting for the first epoch…")
    if summary:
        for info in infos:
            if info.state == "done":
                summary_ui(info, names[info.run_id])
    if was_live and not any(i.live for i in infos):
        st.rerun()  # a full rerun re-registers this fragment without run_every: polling stops


def task_now(records: list[dict]) -> str:
    """'task 2 of 3 is training: both models side by side, epoch 4; the curves are means over the tasks so far'
    from a live train run's records ('' before its first epoch)."""
    total = next((r.get("tasks", {}).get("tasks") for r in records if r.get("kind") == "config"
                  and isinstance(r.get("tasks"), dict)), None)
    last = next((r for r in reversed(records) if r.get("kind") == "epoch" and isinstance(r.get("task"), int)), None)
    if last is None:
        return ""
    of = f" of {total}" if isinstance(total, int) else ""
    return (f"task {last['task'] + 1}{of} is training: both models side by side, epoch {last.get('epoch', '?')}; "
            "the curves are means over the tasks so far")


def run_target(info: Any) -> float | None:
    """The accuracy target of a train run, once known: a fixed target from its config record, or (for the
    baseline's final accuracy) the mean per-task target from its summary when it is done."""
    if info.state == "done":
        data = (read_output_json(info, "summary.json") or {}).get("summary")
        if isinstance(data, dict):
            return demo.target_value(data)
    for rec in metrics(info.run_id):
        if rec.get("kind") == "config":
            acc = rec.get("target_acc")
            return float(acc) if isinstance(acc, (int, float)) else None
    return None


def common_target(infos: list[Any]) -> float | None:
    """The target line of a chart: drawn when every train run on it has the same known target."""
    targets = {run_target(i) for i in infos if i.spec.kind in ("train", "sweep")}
    return targets.pop() if len(targets) == 1 else None


def summary_ui(info: Any, name: str | None = None) -> None:
    """Final accuracies, epochs to target and the speed-up of a finished train run (headed by `name`, the
    run's label on the chart)."""
    data = (read_output_json(info, "summary.json") or {}).get("summary")
    if isinstance(data, dict) and "learngene" in data:
        summary_view_ui(data, f"Summary of {messages.md(name or info.label)}")


def _pct(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "n/a"


def _num_text(value: Any, fmt: str, missing: str = "n/a") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and value == value else missing


def summary_table(data: dict[str, Any], h: dict[str, Any]) -> pd.DataFrame:
    """A train run's summary as a table with one column per model and one row per measure (two narrow columns
    fit half the page: a row per model with a column per measure hid some behind a scroll bar)."""
    ci_words = " ± 95% CI" if h["show_ci"] else ""
    cols = {}
    for role in ("learngene", "baseline"):
        s = data.get(role) or {}
        acc = s.get("final_acc") or {}
        final = _num_text(acc.get("mean"), ".1%")
        if h["show_ci"] and isinstance(acc.get("ci95"), (int, float)):
            final += f" ± {acc['ci95']:.1%}"
        cols[role] = [final, _num_text(h["epochs"][role], ".1f", "not reached"), h["reached"][role] or "n/a",
                      _num_text((s.get("train_seconds") or {}).get("mean"), ".1f"), _num_text(s.get("diverged"), ".0f")]
    index = [f"final accuracy (mean{ci_words})", "epochs to target (mean)", "tasks that reached the target",
             "train seconds (mean)", "diverged tasks"]
    return pd.DataFrame(cols, index=pd.Index(index, name="over the tasks"))


def baseline_badge(data: dict[str, Any]) -> str:
    """The speed-up's note for a baseline that did not clearly learn, in the words of its warning (the three
    states of `learngene.descend.summary.learning_state`)."""
    if data.get("baseline_state") == "not clearly above chance":
        return "baseline not clearly above chance"
    return "baseline at chance"


def summary_view_ui(data: dict[str, Any], title: str) -> None:
    """A train run's `summary` (learngene.descend.summary): a table per model, then the headline numbers.

    The ± 95% interval is shown only over `demo.MIN_TASKS_FOR_CI` tasks or more.
    """
    h = demo.headline(data)
    st.markdown(f"**{title}**")
    st.dataframe(summary_table(data, h), width="stretch")
    gain, ci = h["gain"], h["gain_ci"]
    gain_text = "n/a" if gain is None else f"{gain * 100:+.1f}" + (f" ± {ci * 100:.1f}" if ci is not None else "")
    c = st.columns(2)
    c[0].metric("accuracy gain (points)", gain_text,
                help="learngene − baseline final accuracy in percentage points, paired per task, mean"
                     + (" ± 95% t-interval" if h["show_ci"] else ""))
    speed = "n/a" if h["speedup"] is None else f"{h['speedup']:.1f}×"
    c[1].metric("speed-up to target", speed, baseline_badge(data) if h["chance_warning"] else None,
                delta_color="off", delta_arrow="off",
                help="baseline epochs to target ÷ learngene epochs to target")
    c = st.columns(2)
    for col, role in zip(c, ("learngene", "baseline"), strict=True):
        ep = h["epochs"][role]
        col.metric(f"epochs to target ({role})", "not reached" if ep is None else f"{ep:.1f}",
                   help=f"first epoch at or above the target, mean over the tasks that reached it ({h['reached'][role]})")
    if h["chance_warning"]:
        st.warning(h["chance_warning"][0].upper() + h["chance_warning"][1:] + ".", icon=":material/warning:")
    notes = [f"Target: {h['target_words']}." if h["target_words"] else "No convergence target."]
    notes.append(f"Mean over {h['tasks']} task{'s' if h['tasks'] != 1 else ''}"
                 + ("; ± is the 95% t-interval." if h["show_ci"]
                    else f" (no ± shown: the interval needs ≥ {demo.MIN_TASKS_FOR_CI} tasks)."))
    st.caption(" ".join(notes))


@st.cache_resource(max_entries=16, show_spinner=False)
def _reference_figure(path: str, stamp: tuple, _ref: demo.Reference) -> Any:
    """The curves of a shipped reference run, built once per server (the same for everyone, never changed)."""
    frame = figures.curves_frame(_ref.records)
    if frame.empty:
        return None
    return figures.training_curves(frame, target=demo.target_value(_ref.summary["summary"]))


def reference_ui(ref: demo.Reference, key: str = "demo-ref") -> None:
    """A shipped finished demo run: its curves with the target line, and its summary."""
    label, m = ref.label[:1].upper() + ref.label[1:], ref.meta
    if isinstance(m.get("load_avg_before"), (int, float)) and m["load_avg_before"] >= 0.5:
        label += f" (other processes busy: load average {m['load_avg_before']})"
    if isinstance(m.get("seconds_to_summary"), (int, float)):
        label += f" · {m['seconds_to_summary']:.0f} s from the click to the summary"
    if m.get("layers"):
        label += f" · layers {', '.join(map(str, m['layers']))} ({m.get('similarity') or '?'})"
    st.caption(label)
    data = ref.summary["summary"]
    try:
        stamp = tuple(f.stat().st_mtime for f in sorted(Path(ref.path).iterdir()))
    except OSError:
        stamp = ()
    fig = _reference_figure(str(ref.path), stamp, _ref=ref)
    if fig is not None:
        st.plotly_chart(fig, key=f"{key}-curves")
        widgets.download_figure_ui(fig, "reference-curves", f"{key}-curves")
    summary_view_ui(data, "Summary of the reference run")


def demo_ui() -> None:
    """The Home page's demo: the (condense run, then the) train run, advanced as each ends."""
    d = state.get().demo
    ids = [d[k] for k in ("condense", "train") if d.get(k)]
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
    d = state.get().demo
    ids = [d[k] for k in ("condense", "train") if d.get(k)]
    _watch(ids, "demo", False, curves=True, summary=True)
    if d.get("error"):
        widgets.error_ui(d["error"])
    still = any(i.live for i in run_infos(ids)) or pipeline.demo_waiting()
    if was_live and not still:
        st.rerun()
