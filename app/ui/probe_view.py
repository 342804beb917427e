"""Ground truth beside the similarity: the measured gain of inheriting each single layer.

`learngene probe` trains, on several novel tasks, a descendant that inherits the stem and one
ancestry layer, and one that inherits the stem alone; the paired difference is the layer's gain.
A similarity method deserves trust to the degree that its layer scores rank layers as the gains do:
Spearman's rho between score and gain, per method.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app.logic import figures
from app.logic.results import output_path
from app.person import resources
from app.ui import widgets

GAIN, LOO = "#3d5a80", "#81b29a"


@st.cache_data(max_entries=16, show_spinner=False)
def _read(path: str, stamp: tuple[float, int]) -> dict | None:
    from learngene.runlog import read_json

    try:
        data = read_json(Path(path))
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and data.get("format") == "learngene.probe/1" and isinstance(data.get("single"), list)
    return data if ok else None


def find_probe(anc: resources.Ancestry) -> tuple[str, dict] | None:
    """(where from, probe JSON) for this ancestry: the newest finished probe run, else the shipped one."""
    from learngene.condense.shipped import probe_path

    sha = (anc.card_dict or {}).get("sha256")
    candidates: list[tuple[str, Path]] = []
    for info in resources.jobs().list(kind="probe", state="done"):
        candidates.append((f"probe run {info.run_id}", output_path(info, "probe.json")))
    candidates.append(("shipped with the ancestry", probe_path(anc.path)))
    for label, path in candidates:
        if not path.is_file():
            continue
        data = _read(str(path), resources.file_stamp(path))
        if data is None or len(data["single"]) != anc.n_layers:
            continue
        if sha and (data.get("ancestry") or {}).get("sha256") not in (None, "", sha):
            continue
        return label, data
    return None


def correlation(scores: list[float | None], probe: dict) -> float | None:
    from learngene.descend.probe_report import spearman

    return spearman(list(scores), [s["gain"]["mean"] for s in probe["single"]])


def interval(scores: list[float | None], probe: dict) -> tuple[float, float] | None:
    """The 95% bootstrap interval of score-vs-gain rho: one bootstrap (the library's default resamples) wherever
    it is shown, computed once per server for the same scores and probe (it is the same for everyone)."""
    key = json.dumps([[None if v is None else float(v) for v in scores],
                      [s["gain"].get("per_task") for s in probe.get("single", [])]])
    return _interval(key, _probe=probe)


@st.cache_data(max_entries=256, show_spinner=False)
def _interval(key: str, _probe: dict) -> tuple[float, float] | None:
    from learngene.descend.probe_report import correlation_interval

    scores = json.loads(key)[0]
    return correlation_interval(scores, _probe)


def gain_figure(probe: dict, scores: list[float | None], score_label: str, selected: list[int]) -> go.Figure:
    """Measured single-layer gains (bars, ± 95% interval) with the method's layer scores (markers)."""
    names = [s["name"] for s in probe["single"]]
    gain = [100 * s["gain"]["mean"] for s in probe["single"]]
    ci = [100 * (s["gain"].get("ci95") or 0) for s in probe["single"]]
    sel = set(selected)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=names, y=gain, error_y=dict(type="data", array=ci, visible=True), name="measured gain",
                         marker_color=[figures.SELECTED if i in sel else GAIN for i in range(len(names))],
                         hovertemplate="%{x}<br>gain %{y:+.1f} ± %{error_y.array:.1f} points<extra></extra>"),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=names, y=list(scores), mode="lines+markers", name=score_label,
                             line=dict(color=figures.OVERLAY), marker=dict(size=8),
                             hovertemplate="%{x}<br>" + score_label + ": %{y:.4g}<extra></extra>"),
                  secondary_y=True)
    fig.add_hline(y=0, line_color="#888", line_width=1)
    fig.update_yaxes(title_text="gain over stem-only (points)", secondary_y=False)
    fig.update_yaxes(title_text=score_label, secondary_y=True, showgrid=False)
    fig.update_xaxes(title_text="ancestry layer (inherited alone, with the stem)")
    return figures._layout(fig, height=340)


def loo_layers(probe: dict) -> list[int]:
    """The layer set a probe's leave-one-out was measured for (its `chosen`, else the layers of its rows)."""
    chosen = probe.get("chosen") or [r.get("layer") for r in probe.get("leave_one_out") or []]
    return sorted({int(i) for i in chosen if isinstance(i, int) and not isinstance(i, bool)})


def loo_figure(probe: dict) -> go.Figure | None:
    """Accuracy lost when each layer of the measured set is left out; the title names that set."""
    rows = probe.get("leave_one_out") or []
    if not rows:
        return None
    fig = go.Figure(go.Bar(x=[r["name"] for r in rows], y=[100 * r["share"]["mean"] for r in rows],
                           error_y=dict(type="data", array=[100 * (r["share"].get("ci95") or 0) for r in rows]),
                           marker_color=LOO, name="share",
                           hovertemplate="%{x}<br>lost when left out: %{y:+.1f} points<extra></extra>"))
    fig.add_hline(y=0, line_color="#888", line_width=1)
    fig.update_yaxes(title_text="accuracy lost when left out (points)")
    fig.update_xaxes(title_text="layer left out")
    words = ", ".join(map(str, loo_layers(probe)))
    return figures._layout(fig, f"Leave-one-out on layers {words} (the set this probe measured)", height=300)


def loo_ui(probe: dict, selected: list[int]) -> None:
    """The leave-one-out chart, named by the set it was measured for, and a note when that set is not the
    current learngene (whose own leave-one-out the probe launcher below measures)."""
    fig = loo_figure(probe)
    if fig is None:
        return
    measured, mine = loo_layers(probe), sorted(set(selected))
    st.markdown("**Leave-one-out:** accuracy lost when each layer of the measured set is left out.")
    st.plotly_chart(fig, key="probe-loo", config={"displayModeBar": False})
    widgets.download_figure_ui(fig, "leave-one-out", "probe-loo")
    if measured != mine:
        yours = f"layers {', '.join(map(str, mine))}" if mine else "no layers chosen yet"
        st.info(f"This differs from your current learngene ({yours}): the chart was measured for layers "
                f"{', '.join(map(str, measured))}. **Measure the gains** below measures the leave-one-out of your "
                "current learngene.", icon=":material/info:")


def correlation_table(probe: dict, results: list[tuple[str, Any]]) -> pd.DataFrame:
    """Spearman rho of each result's layer scores (its own rule) with the measured gains."""
    from learngene.condense.select import layer_scores

    rows = []
    for label, sim in results:
        if len(sim.row_names) != len(probe["single"]):
            continue
        rule = sim.selection.get("rule", "row_max")
        scores = layer_scores(sim.array, rule)
        rho = correlation(scores, probe)
        band = interval(scores, probe) if rho is not None else None
        rows.append({"similarity": label, "rule": rule, "Spearman rho": rho,
                     "95% interval": "" if band is None else f"{band[0]:+.2f} to {band[1]:+.2f}",
                     "chose": ", ".join(map(str, sim.selected))})
    return pd.DataFrame(rows)


def probe_argv(anc: resources.Ancestry, chosen: list[int], tasks: int, epochs: int | None = None) -> list[str]:
    """`probe`: single-layer gains on `tasks` novel tasks, leave-one-out on `chosen` (the CLI twin)."""
    argv = ["probe", "--ancestry", str(anc.path), "--tasks", str(tasks), "--device", "cpu"]
    if chosen:
        argv += ["--chosen", ",".join(map(str, chosen))]
    return argv + (["--epochs", str(epochs)] if epochs else [])


def start_probe_ui(anc: resources.Ancestry, chosen: list[int]) -> None:
    """Settings and a button that measure the gains of this ancestry's layers in a background job."""
    from app.logic import inputs
    from app.person import state
    from app.ui import forms

    with st.expander("Measure the gains of this ancestry's layers (a background job)", expanded=False):
        c = st.columns([1, 3])
        tasks, problem = forms.number_ui(inputs.Field("novel tasks", 2, 100, integer=True), 10, "probe-tasks",
                                         where=c[0], help="2 to 100: more tasks, narrower intervals; each task trains "
                                                          f"one model per layer plus {3 + len(chosen)} more")
        tasks = tasks or 10
        models = tasks * (anc.n_layers + 2 + (len(chosen) + 1 if chosen else 0))
        c[1].caption(f"Trains {models} small models ({anc.n_layers} single layers, stem alone and the baseline"
                     + (f", and the chosen set {chosen} with each layer left out" if chosen else "")
                     + " per task): minutes on a CPU. The chart above updates when it is done.")
        from app.ui import badges

        allowed, force = badges.use_anyway_ui(badges.ancestry_verdict(anc), "probe-force")
        argv = probe_argv(anc, chosen, tasks) + force
        st.code("python -m learngene " + " ".join(argv), language="bash")
        started = widgets.start_job_ui("Measure the gains", argv, kind="probe", name=f"probe · {anc.path.name}",
                                       key="probe-go", tags={"ancestry": str(anc.path)},
                                       disabled=problem is not None or not allowed, help=problem)
        if started:
            state.remember("probe-run", started)
    from app.ui import live

    if state.recalled("probe-run") and live.run_infos([state.recalled("probe-run")]):
        live.watch_ui([state.recalled("probe-run")], key="probe-watch", curves=False, summary=False)


def ground_truth_ui(anc: resources.Ancestry, scores: list[float | None], rule: str,
                    selected: list[int], others: list[tuple[str, Any]]) -> None:
    """The measured-gain chart beside `scores`, its rank correlation, and every result's correlation."""
    st.subheader("Do the similar layers help? Measured gains")
    found = find_probe(anc)
    if found is None:
        st.info("No measured gains for this ancestry yet: measure them below (or with the command shown).")
        start_probe_ui(anc, selected)
        return
    where, probe = found
    s = probe.get("settings", {})
    rho = correlation(scores, probe)
    band = interval(scores, probe) if rho is not None else None
    c = st.columns(3)
    c[0].container(key="probe-rho").metric(
        "Spearman rho (score vs gain)", "n/a" if rho is None else f"{rho:+.2f}",
        None if band is None else f"95%: {band[0]:+.2f} to {band[1]:+.2f}", delta_color="off", delta_arrow="off",
        help="rank correlation over the layers; +1: the score orders layers exactly as their measured gains. The "
             "interval resamples the tasks (bootstrap): one that spans 0 says the ranking is not yet told apart "
             "from chance")
    acc = probe.get("accuracy", {})
    stem_gain = (probe.get("stem_gain") or {}).get("mean")
    c[1].metric("stem alone vs baseline", "n/a" if stem_gain is None else f"{100 * stem_gain:+.1f} points",
                help="what inheriting the stem alone gives; each layer's gain is measured on top of it")
    base = (acc.get("baseline") or {}).get("mean")
    chance = probe.get("chance")
    c[2].metric("baseline accuracy", "n/a" if base is None else f"{base:.1%}",
                None if chance is None else f"chance {chance:.0%}", delta_color="off", delta_arrow="off")
    with st.container(key="probe-gains-box"):
        gains = gain_figure(probe, scores, f"score ({rule})", selected)
        st.plotly_chart(gains, key="probe-gains", config={"displayModeBar": False})
    widgets.download_figure_ui(gains, "measured-gains", "probe-gains")
    st.caption(f"Gain of a descendant that inherits the stem and one layer over one that inherits the stem alone, "
               f"mean ± 95% interval over {s.get('tasks', '?')} novel {s.get('n_way', '?')}-way {s.get('k_shot', '?')}-shot "
               f"tasks, {s.get('epochs', '?')} epochs ({where}). Layers chosen now are in teal.")
    from learngene.descend.summary import above_chance

    if chance is not None and not above_chance((acc.get("stem") or {}).get("per_task") or [], chance):
        st.caption(f"The stem-only reference ends near chance ({(acc.get('stem') or {}).get('mean', 0):.0%}, chance "
                   f"{chance:.0%}) after {s.get('epochs', '?')} epochs: each gain says how far one inherited layer lifts "
                   "a model that otherwise learns little on so few images.")
    loo_ui(probe, selected)
    table = correlation_table(probe, others)
    if not table.empty:
        st.markdown("**Which similarity to trust:** rank correlation of each result's layer scores with the gains.")
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"Spearman rho": st.column_config.NumberColumn(format="%+.2f")})
    start_probe_ui(anc, selected)
