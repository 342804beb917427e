"""Runs: every background run in one table (settings and results), filters, overlays, predictions, sweep
views, names/tags/notes, export, downloads and deletion."""

import shlex
from pathlib import Path

import streamlit as st

from app.logic import figures, history, messages
from app.logic.results import read_output_json
from app.person import identity, pipeline, resources, state
from app.shared import config
from app.ui import export_ui, live, results_ui, runs_ui, widgets
from learngene.jobs import STATES

st.title("Runs")
widgets.explain_ui("Reading the runs", """
Every slow step (training an ancestry, condensing, training descendants, sweeps) runs as a background job
with its own folder under `runs/`: the command, its status, its metrics and its outputs. Select runs in the
table (sort by a column's header) to overlay their curves, name, tag and note them, download their metrics,
or delete them; the scatter shows each run's accuracy gain against one of its settings. A finished train run's
**Predictions** show its task's images, both confusion matrices and what each model said; **Export** writes
runs for TensorBoard or MLflow. The page's address names the selected runs: share it to show the same runs.

A **sweep** trains both models over a grid: **accuracy against the learning rate** shows sensitivity to
hyperparameters (a flatter learngene curve = less sensitive), **accuracy against K** shows sample efficiency.

The **four-advantage study** (`python -m learngene advantages`) trains the random-init baseline, Heur-LG's
last 3 layers, the seed paper's choice, the `auto` and `cka` selections and full fine-tuning on the same
novel tasks, over an lr x wd grid and K = 1, 5, 10, 20, and reports convergence, sensitivity, performance
and sample efficiency in one table. A stopped study resumes where it stopped when started again.
""")

with st.expander("Start the four-advantage study", icon=":material/science:"):
    with widgets.error_box("study"):
        anc = resources.current_ancestry()
        shipped = [p for p in config.shipped_ancestries() if p.is_file()]
        c = st.columns([3, 2, 2])
        options = list(dict.fromkeys([str(p.resolve()) for p in shipped] + [str(anc.path.resolve())]))
        chosen = c[0].multiselect("ancestries", options, format_func=lambda a: Path(a).name,
                                  help="every row is trained for each ancestry", **widgets.kept(
                                      "adv-anc", [str(anc.path.resolve())],
                                      lambda v: isinstance(v, list) and set(v) <= set(options)))
        size = c[1].segmented_control("size", ["try-out", "full"],
                                      help="try-out: 2 tasks, 6 epochs, a 2-cell grid (minutes); full: 10 tasks, "
                                           "40 epochs, 4 lr x 2 wd, K = 1/5/10/20 (hours on a CPU, minutes on a GPU)",
                                      **widgets.kept("adv-size", "try-out", lambda v: v in ("try-out", "full", None))
                                      ) or "try-out"
        device = widgets.device_ui("adv-device")
        models = c[2].multiselect("rows", list(pipeline.STUDY_MODELS), help="the baseline is always trained",
                                  **widgets.kept("adv-models", list(pipeline.STUDY_MODELS),
                                                 lambda v: isinstance(v, list) and set(v) <= set(pipeline.STUDY_MODELS)))
        dataset = st.text_input(
            "data set", placeholder="each ancestry's own (from its model card)",
            help="empty: each ancestry is studied on the data and class split it was trained with (the card's "
                 "split binds: novel classes never include its base classes); or shapes, cifar100, folder:PATH",
            **widgets.kept("adv-dataset", "", lambda v: isinstance(v, str)))
        backend = widgets.backend_ui("adv")
        argv = pipeline.advantages_argv([Path(a) for a in dict.fromkeys(chosen)], quick=size != "full",
                                        models=models, device=device, dataset=dataset) + backend
        st.code("python -m learngene " + shlex.join(argv), language="bash")
        widgets.start_job_ui("Start the study", argv, kind="advantages", key="adv-go",
                             disabled=not chosen or not models, device=device,
                             name=f"advantages ({size}) " + ", ".join(Path(a).stem for a in chosen))


with widgets.error_box("runs"):
    infos = resources.jobs().list()
    c = st.columns([2, 2, 2, 3])
    all_kinds = sorted({i.spec.kind for i in infos})
    kinds = c[0].multiselect("kind", all_kinds, **widgets.kept(
        "runs-kinds", [], lambda v: isinstance(v, list) and set(v) <= set(all_kinds)))
    states = c[1].multiselect("state", list(STATES), **widgets.kept(
        "runs-states", [], lambda v: isinstance(v, list) and set(v) <= set(STATES)))
    tags_of = {i.run_id: runs_ui.row(i)["tags"] for i in infos}
    all_tags = sorted({t for tags in tags_of.values() for t in tags})
    tags = c[2].multiselect("tags", all_tags, help="runs that carry every chosen tag (tag runs below)",
                            **widgets.kept("runs-tags", [], lambda v: isinstance(v, list) and set(v) <= set(all_tags)))
    text = c[3].text_input("name or id contains", **widgets.kept("runs-text", "", lambda v: isinstance(v, str)))
    shown = [i for i in history.filter_runs(infos, kinds, states, text) if set(tags) <= set(tags_of[i.run_id])]
    if not shown:
        st.info("No runs yet." if not infos else "No run matches the filters.")
        st.stop()
    picked, table = runs_ui.runs_table_ui(shown)
    with st.expander("Accuracy gain against a setting (the runs in the table)", icon=":material/scatter_plot:"):
        runs_ui.scatter_ui(table, shown)
    if not picked:
        st.caption("Select runs (the boxes left of the table, or the list) to overlay, annotate, export or delete "
                   "them.")
        st.stop()

    overlay, predictions, sweeps, study, annotate, export, details, manage = st.tabs(
        ["Overlay", "Predictions", "Sweeps", "Study", "Name, tags, note", "Export", "Details", "Delete"])
    with overlay:
        if any(i.live for i in picked):
            live.watch_ui([i.run_id for i in picked], key="runs-live", summary=False)
        frame = live.curves_frame(picked)
        if frame.empty:
            st.caption("The selected runs have no epoch metrics.")
        else:
            opts = live.curve_controls_ui("runs")
            fig = figures.training_curves(frame, **opts)
            st.plotly_chart(fig, key="runs-overlay")
            widgets.download_figure_ui(fig, "curves", "runs-curves")
        st.download_button("Metrics as CSV", data=lambda: history.metrics_csv(picked), file_name="metrics.csv",
                           mime="text/csv", key="runs-csv", on_click="ignore", icon=":material/table:")
        if st.button("Watch these on the Train page", key="runs-watch"):
            state.update(watched=[i.run_id for i in picked if i.spec.kind == "train"][:4])
            st.switch_page(config.ROOT / "pages" / "train.py")

    with predictions:
        done = [i for i in picked if i.spec.kind == "train" and results_ui.has_predictions(i)]
        if not done:
            st.caption("Select a finished **train** run to see its support set, confusion matrices and test images "
                       "with both models' predictions.")
        for info in done:
            st.markdown(f"**{messages.md(runs_ui.labels(picked)[info.run_id])}** · {info.run_id}")
            results_ui.predictions_ui(info, key=f"pred-{info.run_id}")

    with sweeps:
        sized = [(i, read_output_json(i, "sizes.json")) for i in picked if i.spec.kind == "sizes"]
        for info, result in [(i, r) for i, r in sized if r and r.get("sizes")]:
            st.markdown(f"**{messages.md(info.label)}** · {info.run_id}: final accuracy against descendant parameters")
            fig = figures.size_figure(result["sizes"])
            st.plotly_chart(fig, key=f"sizes-{info.run_id}")
            widgets.download_figure_ui(fig, "sizes", f"sizes-{info.run_id}")
        found = [(i, history.sweep_summary(i)) for i in picked if i.spec.kind == "sweep"]
        found = [(i, s) for i, s in found if s]
        if not found and not any(r for _, r in sized):
            st.caption("Select a finished **sweep** or **sizes** run (start one on the Train page).")
        for info, summary in found:
            st.markdown(f"**{messages.md(info.label)}** · {info.run_id}")
            sens = history.sensitivity_frame(summary)
            cols = st.columns(2)
            with cols[0]:
                ks = sorted(sens["k_shot"].unique())
                k = st.selectbox("K for the learning-rate view", ks, key=f"sw-k-{info.run_id}")
                wd = st.selectbox("weight decay", sorted(sens["weight_decay"].unique()), key=f"sw-wd-{info.run_id}")
                sub = sens[(sens["k_shot"] == k) & (sens["weight_decay"] == wd)]
                fig = figures.sweep_figure(sub, x="lr", log_x=True, x_title="learning rate",
                                           title=f"sensitivity: accuracy against learning rate (K={k})")
                st.plotly_chart(fig, key=f"sw-lr-{info.run_id}")
                widgets.download_figure_ui(fig, "sensitivity", f"sw-lr-{info.run_id}")
            with cols[1]:
                fig = figures.sweep_figure(history.shots_frame(summary), x="k_shot", x_title="K (shots per class)",
                                           title="sample efficiency: accuracy against K")
                st.plotly_chart(fig, key=f"sw-k-fig-{info.run_id}")
                widgets.download_figure_ui(fig, "sample-efficiency", f"sw-kf-{info.run_id}")
            st.dataframe(history.spread_frame(summary), hide_index=True, width="stretch")

    with study:
        reports = [(i, history.study_report(i)) for i in picked if i.spec.kind == "advantages"]
        reports = [(i, r) for i, r in reports if r]
        if not reports:
            st.caption("Select a finished **advantages** run (start one above).")
        for info, rep in reports:
            st.markdown(f"**{messages.md(info.label)}** · {info.run_id}")
            for block in history.markdown_blocks(rep["markdown"]):  # tables as tables: they fit the page's width
                if isinstance(block, str):
                    st.markdown(block)
                else:
                    st.dataframe(block, hide_index=True, width="stretch")
            cols = st.columns(3)
            for i, fig in enumerate(rep["figures"]):
                cols[i % 3].image(str(fig), caption=fig.stem.removeprefix("advantages-"))
            if rep["csv"].is_file():
                st.download_button("Raw runs as CSV", data=rep["csv"].read_bytes(), file_name=rep["csv"].name,
                                   mime="text/csv", key=f"adv-csv-{info.run_id}", on_click="ignore",
                                   icon=":material/table:")

    with annotate:
        mine = [i for i in picked if identity.may_act(i)]
        if len(mine) < len(picked):
            st.caption("Only a run's owner and the host may rename, tag or note it: "
                       f"{len(picked) - len(mine)} of the selected runs are someone else's.")
        if mine:
            runs_ui.annotate_ui(mine, all_tags)

    with export:
        export_ui.export_ui(picked)

    with details:
        for info in picked:
            with st.expander(f"{messages.md(info.label)} · {info.run_id}", icon=widgets.STATE_ICONS.get(info.state)):
                widgets.run_progress_ui(info, key="details-")
                st.code(" ".join(info.command), language="bash")
                st.code(resources.jobs().log_tail(info.run_id, 40) or "(empty log)", language="text")
                live.summary_ui(info)

    with manage:
        finished = [i for i in picked if not i.live and identity.may_act(i)]
        others = sum(not identity.may_act(i) for i in picked)
        st.write(f"{len(finished)} of the {len(picked)} selected runs are finished and yours to delete"
                 + (" (cancel live runs first)." if any(i.live for i in picked) else ".")
                 + (f" {others} of them are someone else's: only their owner or the host may delete them."
                    if others else ""))
        sure = st.checkbox("yes, delete their folders", key="runs-sure")
        if st.button("Delete", key="runs-delete", disabled=not (sure and finished), type="primary"):
            for info in finished:
                with widgets.error_box(f"delete {info.run_id}"):
                    resources.jobs().delete(info.run_id)
            st.toast(f"deleted {len(finished)} run(s)")
            st.rerun()
