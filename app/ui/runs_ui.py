"""The Runs page's dashboard widgets: the runs table, annotating runs, and the gain scatter.

Data comes from `app.logic.dashboard` (no Streamlit there); each `*_ui` draws and returns the choices.
"""

from __future__ import annotations

import shlex
import zlib
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.logic import dashboard, figures, runnames
from app.person import identity, state
from app.ui import widgets


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@st.cache_data(max_entries=4000, show_spinner=False)
def _finished_row(run_id: str, stamp: tuple, _info: Any) -> dict[str, Any]:
    return dashboard.run_row(_info)


def row(info: Any) -> dict[str, Any]:
    """The table row of a run; a finished run's row is cached until its summary or annotations change."""
    if info.live:
        return dashboard.run_row(info)
    folder = Path(info.path)
    stamp = (info.state, info.ended_at, _mtime(folder / "annotations.json"), _mtime(folder / "outputs" / "summary.json"))
    return _finished_row(info.run_id, stamp, info)


def frame(infos: list[Any]) -> pd.DataFrame:
    df = dashboard.runs_frame([row(i) for i in infos])
    df.insert(df.columns.get_loc("state") + 1, "progress", [_progress(i) for i in infos])
    names = identity.all_names()
    df.insert(df.columns.get_loc("name") + 1, "by", [identity.owner_label(i, names) for i in infos])
    return df


def _progress(info: Any) -> float:
    prog = info.progress or {}
    total = prog.get("total") or 0
    return min(1.0, (prog.get("done") or 0) / total) if total else (1.0 if info.state == "done" else 0.0)


COLUMN_CONFIG = {
    "run": st.column_config.TextColumn("run", help="the run's id (its folder under runs/)"),
    "by": st.column_config.TextColumn("by", help="who started the run (only they and the host may change it)"),
    "tags": st.column_config.ListColumn("tags"),
    "layers": st.column_config.TextColumn("layers", help="the inherited ancestry layers"),
    "lr": st.column_config.NumberColumn("lr", format="%g", help="learning rate"),
    "wd": st.column_config.NumberColumn("wd", format="%g", help="weight decay"),
    "K": st.column_config.NumberColumn("K", format="%d", help="training images per class"),
    "N-way": st.column_config.NumberColumn("N-way", format="%d", help="classes per task"),
    "seed": st.column_config.NumberColumn("seed", format="%d", help="the run's seed"),
    "epochs": st.column_config.NumberColumn("epochs", format="%d"),
    "tasks": st.column_config.NumberColumn("tasks", format="%d"),
    "learngene acc": st.column_config.NumberColumn("learngene acc", format="percent",
                                                   help="final test accuracy of the learngene descendant (mean over tasks)"),
    "baseline acc": st.column_config.NumberColumn("baseline acc", format="percent",
                                                  help="final test accuracy of the random-init baseline"),
    "gain": st.column_config.NumberColumn("gain", format="percent", help="learngene − baseline, paired per task"),
    "speed-up": st.column_config.NumberColumn("speed-up", format="%.1f×",
                                              help="baseline epochs to target ÷ learngene epochs to target"),
    "wall s": st.column_config.NumberColumn("wall s", format="%.0f", help="seconds the run took"),
    "progress": st.column_config.ProgressColumn("progress", format="percent", min_value=0.0, max_value=1.0),
    "grid": st.column_config.TextColumn("grid", help="a sweep's grid"),
    "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss"),
}


def runs_table_ui(shown: list[Any], key: str = "runs") -> tuple[list[Any], pd.DataFrame]:
    """The runs table (sortable by its headers; select rows with its checkboxes) plus a multiselect of the
    same choice; returns the picked runs and the table. The choice is kept across page changes, reloads
    and in the URL (`runs=`): the table opens with the chosen runs ticked (a shared link's runs too)."""
    ids = [i.run_id for i in shown]
    pick_key, table_key = f"{key}-pick", table_widget_key(key, ids)
    st.session_state[f"{key}-shown"] = ids

    def from_table() -> None:
        rows = ((st.session_state.get(table_key) or {}).get("selection") or {}).get("rows") or []
        shown_then = st.session_state.get(f"{key}-shown", [])
        st.session_state[pick_key] = [shown_then[r] for r in rows if r < len(shown_then)]

    if pick_key not in st.session_state:  # a page change or a reload: the choice comes back
        saved = state.recalled(pick_key, [])
        st.session_state[pick_key] = saved if isinstance(saved, list) else []
    st.session_state[pick_key] = [r for r in st.session_state.get(pick_key, []) if r in ids]  # filters changed
    df = frame(shown)
    ticked = [ids.index(r) for r in st.session_state[pick_key]]
    st.dataframe(df, hide_index=True, width="stretch", key=table_key, on_select=from_table,
                 selection_mode="multi-row", column_config=COLUMN_CONFIG,
                 column_order=[c for c in dashboard.differing_first(df) if c != "note"],
                 selection_default={"selection": {"rows": ticked}}, placeholder="")  # no result yet: a blank cell
    names = labels(shown)
    picked = st.multiselect("selected runs", ids, key=pick_key, format_func=lambda r: with_id(names[r], r),
                            on_change=lambda: st.session_state.update({f"{key}-gen": _generation(key) + 1}))
    # Saved (and put in the URL) here, in the script run, not in a widget callback: an address changed by a
    # callback did not always reach the browser.
    state.remember(pick_key, list(picked))
    by_id = {i.run_id: i for i in shown}
    return [by_id[r] for r in picked], df


def _generation(key: str) -> int:
    return int(st.session_state.get(f"{key}-gen", 0))


def table_widget_key(key: str, ids: list[str]) -> str:
    """The runs table's widget key: new when its rows change (other runs shown) or the list beside it changed the
    choice, so the table is drawn afresh with the chosen runs ticked (Streamlit applies a table's ticks given by
    the script only when it first draws it; rows are ticked by position)."""
    rows = zlib.crc32("\n".join(ids).encode("utf-8"))
    return f"{key}-table-{rows:08x}-{_generation(key)}"


def with_id(label: str, run_id: str) -> str:
    """A run's label ending with its short id (once)."""
    short = runnames.short_id(run_id)
    return label if label.endswith(short) else f"{label} · {short}"


def labels(infos: list[Any]) -> dict[str, str]:
    """Distinct labels of runs (their annotated names where given)."""
    return runnames.labels(infos)


def annotate_ui(picked: list[Any], known_tags: list[str]) -> None:
    """Rename, tag and note one of the picked runs (CLI twin: `learngene jobs annotate`)."""
    from learngene.jobs.annotations import annotate, read_annotations

    names = labels(picked)
    run_id = st.selectbox("run", [i.run_id for i in picked], key="ann-run",
                          format_func=lambda r: with_id(names[r], r))
    info = next(i for i in picked if i.run_id == run_id)
    now = read_annotations(info.path)
    with st.form(f"ann-form-{run_id}", border=False):
        name = st.text_input("name", now["name"], placeholder=info.label, key=f"ann-name-{run_id}",
                             help="the name shown in tables and legends; empty: the name it was started with")
        tags = st.multiselect("tags", sorted(set(now["tags"]) | set(known_tags)),
                              default=now["tags"], accept_new_options=True, key=f"ann-tags-{run_id}",
                              help="type a new tag and press Enter; filter the table by tags above")
        note = st.text_area("note", now["note"], key=f"ann-note-{run_id}", height=90)
        saved = st.form_submit_button("Save", type="primary", icon=":material/save:")
    if saved:
        with widgets.error_box("annotate"):
            annotate(info.path, name=name, tags=tags, note=note)
            st.toast(f"saved the name, tags and note of {run_id}")
            st.rerun()
    cmd = ["jobs", "annotate", run_id, "--name", name]
    for tag in tags:
        cmd += ["--tag", tag]
    st.caption("The same from a terminal:")
    st.code("python -m learngene " + shlex.join(cmd + ["--note", note]), language="bash")


def scatter_ui(df: pd.DataFrame, infos: list[Any]) -> None:
    """Each run's accuracy gain against one of its settings."""
    x = st.segmented_control("setting on the x axis", list(dashboard.SCATTER_X),
                             format_func=lambda k: dashboard.SCATTER_X[k],
                             **widgets.kept("runs-scatter-x", "lr", lambda v: v in dashboard.SCATTER_X)) or "lr"
    if dashboard.scatter_frame(df, x).empty:
        st.caption("No run here has both a gain (a finished **train** run) and this setting.")
        return
    colors = runnames.colors(infos, figures.PALETTE)
    fig = dashboard.gain_scatter(df, x, colors)
    st.plotly_chart(fig, key="runs-scatter")
    widgets.download_figure_ui(fig, "gain-scatter", "runs-scatter")
