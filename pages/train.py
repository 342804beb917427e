"""Train: launch the learngene descendant and its random-init baseline, and watch them converge live."""

import streamlit as st

from app import descendant, forms, live, pipeline, resources, state, widgets

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
layers = [i for i in s.layers if i < anc.n_layers]
cfg = descendant.settings(s.recipe, anc)

with st.container(border=True):
    if layers:
        st.markdown(f"**Learngene:** {', '.join(anc.names[i] for i in layers)} · placement **{cfg['placement']}** · "
                    f"depth **{max(cfg['depth'], descendant.min_depth(layers, cfg['placement']))}** · "
                    f"stem **{cfg['stem']}**")
    else:
        st.warning("No learngene layers chosen yet: pick them on the **Learngene** page.")
    novel = len((anc.card_dict.get("split") or {}).get("novel") or []) or 20
    task = None
    with widgets.error_box("impossible settings"):
        task = forms.task_settings_ui(novel_classes=novel)
    argv = None
    if task is not None and layers:
        recipe = {**cfg, "depth": max(cfg["depth"], descendant.min_depth(layers, cfg["placement"]))}
        with widgets.error_box("recipe"):
            descendant.build(anc, layers, {**recipe, "num_classes": task["n_way"]})  # refuse impossible recipes here
            lg_file = resources.learngene_file_for(layers)
            argv = pipeline.train_argv(anc.path, layers, recipe, task, learngene_file=lg_file)
            if lg_file:
                st.caption(f"The learngene comes from the uploaded file `{lg_file}`.")
    run_id = widgets.start_job_ui(
        "Train learngene vs baseline", argv or ["train"], kind="train", device=task["device"] if task else "cpu",
        name=f"{task['n_way'] if task else '?'}-way {task['k_shot'] if task else '?'}-shot · layers "
             f"{','.join(map(str, layers))}", key="train-go", disabled=argv is None,
        tags={"layers": layers, "ancestry": str(anc.path), **(task or {})})
    if run_id:
        state.update(watched=[run_id, *[w for w in s.watched if w != run_id]][:4])
        st.rerun()

with st.expander("Sweep: sensitivity to the learning rate, sample efficiency against K"):
    st.caption("Every combination of the grids runs for both models with the settings above; the **Runs** page "
               "draws accuracy against the learning rate and against K.")
    c = st.columns(3)
    lrs = c[0].text_input("learning rates", "3e-4, 1e-3, 3e-3", key="sweep-lrs")
    wds = c[1].text_input("weight decays", "0.05", key="sweep-wds")
    shots = c[2].text_input("K shots", "5, 10, 20", key="sweep-shots")
    sweep_argv = None
    if task is not None and layers:
        with widgets.error_box("grid"):
            sweep_argv = pipeline.sweep_argv(anc.path, layers, recipe, task, forms.parse_grid(lrs),
                                             forms.parse_grid(wds), forms.parse_grid(shots, int))
    widgets.start_job_ui("Start the sweep", sweep_argv or ["sweep"], kind="sweep", key="sweep-go",
                         device=task["device"] if task else "cpu", disabled=sweep_argv is None,
                         name=f"sweep lr [{lrs}] × K [{shots}]", tags={"layers": layers, "ancestry": str(anc.path)})

st.subheader("Watching")
with widgets.error_box("runs"):
    runs = {i.run_id: i for i in resources.jobs().list(kind="train")}
    watched = [w for w in state.get().watched if w in runs]
    widgets.sync_widget("train-watch", watched)
    pick = st.multiselect("runs on the chart", list(runs), key="train-watch",
                          # no state icon in the chip: a chip keeps its first label while the run moves on;
                          # the progress rows below show the state
                          format_func=lambda r: f"{runs[r].spec.name} · {r}",
                          on_change=lambda: state.update(watched=st.session_state["train-watch"]))
    if not pick:
        st.caption("Launch a run above, or pick earlier runs to compare.")
    live.watch_ui(pick, key="train")
