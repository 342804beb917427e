"""Train: launch the learngene descendant and its random-init baseline, and watch them converge live."""

import shlex

import streamlit as st

from app.logic import figures, runnames
from app.logic.results import read_output_json
from app.person import descendant, pipeline, resources, state
from app.ui import badges, forms, live, widgets

st.title("Train")
widgets.explain_ui("A fair race", """
Each **task** draws N *novel* classes (never seen by the ancestry or the pseudo-descendant) and K training images
per class; the rest of those classes' images are the test set. On every task two models are trained:

- the **learngene descendant**: inherited layers + random layers + a new head (the recipe of the Learngene page);
- the **baseline**: the *same architecture* with every layer random,

with the same seed, data order, augmentation and settings. The curves show the training loss (log scale) and
the test accuracy, averaged over tasks; the bold line is smoothed, the faint line is raw. The summary reports
the final accuracy (mean ± 95% t-interval over tasks), the epochs each model needs to reach the target
accuracy, and the speed-up.
""")

anc = widgets.ancestry_ui()
if anc is None:
    st.stop()
s = state.get()
allowed, force = badges.use_anyway_ui(badges.ancestry_verdict(anc), "train-use-anyway")  # an ancestry at chance
layers = [i for i in s.layers if i < anc.n_layers]
cfg = descendant.settings(s.recipe, anc)
recipe = {**cfg, "depth": max(cfg["depth"], descendant.min_depth(layers, cfg["placement"]))}

with st.container(border=True):
    if layers:
        st.markdown(f"**Learngene:** {', '.join(anc.names[i] for i in layers)} · placement **{cfg['placement']}** · "
                    f"depth **{recipe['depth']}** · stem **{cfg['stem']}**")
    else:
        st.warning("No learngene layers chosen yet: pick them on the **Learngene** page.")
    novel = len((anc.card_dict.get("split") or {}).get("novel") or []) or 20
    task, problems = forms.task_settings_ui(novel_classes=novel)
    argv = None
    if not problems and layers and allowed:
        with widgets.error_box("recipe"):
            descendant.build(anc, layers, {**recipe, "num_classes": task["n_way"]})  # refuse impossible recipes here
            lg_file = resources.learngene_file_for(layers)
            argv = pipeline.train_argv(anc.path, layers, recipe, task, learngene_file=lg_file) + force
            if lg_file:
                st.caption(f"The learngene comes from the uploaded file `{lg_file}`.")
    why = "; ".join(problems.values()) or (None if layers else "choose the learngene layers first")
    run_id = widgets.start_job_ui(
        "Train learngene vs baseline", argv or ["train"], kind="train", device=task.get("device", "cpu"),
        name=runnames.train_name(task, layers), key="train-go", disabled=argv is None, help=why,
        tags={"layers": layers, "ancestry": str(anc.path), **task})
    if problems:
        st.caption(f":red[Fix the settings marked in red to start ({len(problems)} to fix).]")
    if run_id:
        state.update(watched=[run_id, *[w for w in s.watched if w != run_id]][:4])
        st.rerun()

with st.expander("Sweep: sensitivity to the learning rate, sample efficiency against K"):
    st.caption("Every combination of the grids runs for both models with the settings above; the **Runs** page "
               "draws accuracy against the learning rate and against K.")
    c = st.columns(3)
    grids, grid_problems = {}, []
    for col, (name, default) in zip(c, (("lrs", "3e-4, 1e-3, 3e-3"), ("wds", "0.05"), ("shots", "5, 10, 20")),
                                    strict=True):
        grids[name], problem = forms.grid_ui(name, default, f"sweep-{name}", novel_classes=novel, where=col)
        grid_problems += [problem] if problem else []
    backend = widgets.backend_ui("sweep")
    sweep_argv = None
    if not problems and not grid_problems and layers and allowed:
        with widgets.error_box("grid"):
            sweep_argv = pipeline.sweep_argv(anc.path, layers, recipe, task, grids["lrs"], grids["wds"],
                                             grids["shots"]) + backend + force
            st.code("python -m learngene " + shlex.join(sweep_argv), language="bash")
    grid_text = {k: ", ".join(f"{v:g}" for v in vals) for k, vals in grids.items() if vals}
    widgets.start_job_ui("Start the sweep", sweep_argv or ["sweep"], kind="sweep", key="sweep-go",
                         device=task.get("device", "cpu"), disabled=sweep_argv is None,
                         help="; ".join(grid_problems + list(problems.values())) or None,
                         name=f"sweep lr [{grid_text.get('lrs', '?')}] × K [{grid_text.get('shots', '?')}]",
                         tags={"layers": layers, "ancestry": str(anc.path)})

with st.expander("Sizes: the learngene in narrower and wider descendants"):
    st.caption("One job trains, at each width, the learngene descendant, the random-init baseline and a descendant "
               "initialised by weight selection from the whole ancestry, on the tasks above (`learngene sizes`). "
               "Widths are multiples of the ancestry's; a wider descendant is the least-tested case.")
    widths = st.multiselect("widths", list(descendant.WIDTHS), **widgets.kept(
        "sizes-widths", [0.5, 1.0], lambda v: isinstance(v, list) and set(v) <= set(descendant.WIDTHS)))
    sizes_argv = None
    if widths and layers and not problems and allowed:
        sizes_argv = pipeline.sizes_argv(anc.path, layers, sorted(widths), task, depth=recipe["depth"],
                                         fill=cfg["fill"]) + force
    widgets.start_job_ui("Train the sizes", sizes_argv or ["sizes"], kind="sizes", key="sizes-go",
                         device=task.get("device", "cpu"), disabled=sizes_argv is None,
                         help=None if sizes_argv else "choose layers, valid settings and at least one width",
                         name=f"sizes x[{', '.join(f'{w:g}' for w in sorted(widths))}]",
                         tags={"layers": layers, "ancestry": str(anc.path)})
    with widgets.error_box("sizes"):
        done = resources.jobs().list(kind="sizes", state="done")
        result = read_output_json(done[0], "sizes.json") if done else None
        if result and result.get("sizes"):
            fig = figures.size_figure(result["sizes"], title=f"{done[0].label}: accuracy against size")
            st.plotly_chart(fig, key="sizes-chart")
            widgets.download_figure_ui(fig, "sizes", "sizes-chart")

st.subheader("Watching")
with widgets.error_box("runs"):
    runs = {i.run_id: i for i in resources.jobs().list(kind="train")}
    watched = [w for w in state.get().watched if w in runs]
    widgets.sync_widget("train-watch", watched)
    names = runnames.labels([runs[r] for r in runs])
    pick = st.multiselect("runs on the chart", list(runs), key="train-watch",
                          # no state icon in the chip: a chip keeps its first label while the run moves on;
                          # the progress rows below show the state
                          format_func=lambda r: f"{names[r]} · {runnames.short_id(r)}",
                          on_change=lambda: state.update(watched=st.session_state["train-watch"]))
    if not pick:
        st.caption("Launch a run above, or pick earlier runs to compare.")
    live.watch_ui(pick, key="train")
