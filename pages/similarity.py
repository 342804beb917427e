"""Similarity: condense the ancestry (a background job) and read the similarity matrix."""

import streamlit as st

from app.logic import figures, messages
from app.person import pipeline, similarities, state
from app.ui import badges, forms, live, probe_view, selection, widgets

st.title("Similarity")
widgets.explain_ui("How condensing finds the learngene", """
A **pseudo-descendant** (a smaller network) is trained on the 16 *open-world* classes, classes the ancestry
never saw. Then every ancestry layer *m* is compared with every pseudo-descendant layer *n*: the
**similarity matrix** S[m, n]. Ancestry layers that match the pseudo-descendant well carry knowledge a
descendant needs; they become the **learngene**.

- **Linear CKA** compares the layers' outputs on the same images (Kornblith et al. 2019).
- **Auto-LG** learns the matching weights by meta-gradients (Wang et al. 2023, the seed paper).
- **Heur-LG gradient** keeps training the ancestry on small tasks: rows are layers, columns epochs; stable layers
  (small gradients) score high.
- **Weight drift** fine-tunes a copy and compares weights per layer (a diagonal only).

A layer's **score** is its row maximum, row mean, or the value on the depth-proportional diagonal.
The optional **captum significance** asks a different question: how much does the ancestry's own prediction
depend on the layer? (Summed conductance cannot rank residual blocks: it is the same for all of them.)
""")

anc = widgets.ancestry_ui()
if anc is None:
    st.stop()
verdict = badges.ancestry_badge_ui(anc)

found = similarities.entries(anc)
with st.expander("Recompute with other settings (a background job)" if found else "Run condensing",
                 expanded=not found):
    method = st.selectbox("method", list(forms.METHODS), format_func=lambda m: f"{m} – {forms.METHODS[m]}",
                          **widgets.kept("cond-method", "cka", lambda m: m in forms.METHODS))
    c = st.columns(3)
    k = c[0].number_input("learngene layers (top-k)", 1, anc.n_layers,
                          **widgets.kept("cond-k", min(4, anc.n_layers), lambda v: 1 <= v <= anc.n_layers))
    contiguous = c[1].toggle("one contiguous run of layers", **widgets.kept("cond-contig", False))
    device = c[2].selectbox("device", ["cpu", "cuda"], **widgets.kept("cond-device", "cpu", lambda v: v in ("cpu", "cuda")))
    settings, problems = forms.condense_settings_ui(method)
    argv = pipeline.condense_argv(anc.path, method, int(k), {**settings, "device": device}, contiguous=contiguous)
    allowed, force = badges.use_anyway_ui(verdict, "cond-force")
    argv = [*argv, *force]
    started = widgets.start_job_ui("Condense in the background", argv, kind="condense", device=device,
                                   name=f"condense {method} · {anc.path.name}", key="cond-go",
                                   disabled=bool(problems) or not allowed,
                                   help="; ".join(problems) or None,
                                   tags={"ancestry": str(anc.path), "method": method}, interactive=True)
    if problems:
        st.caption(f":red[{messages.plain('; '.join(problems))}]")
    if started:
        state.remember("cond-run", started)
        state.update(similarity_run=started)  # shown as soon as it is done
    watching = state.recalled("cond-run")
    if watching and live.run_infos([watching]):
        live.watch_ui([watching], key="cond", curves=False, summary=False)  # condensing has no epoch curves
        st.caption("When the run is done, its result appears below by itself.")

with widgets.error_box("similarity results"):
    if not found:
        st.info("No similarity result for this ancestry yet: run condensing above.")
        st.stop()
    source, sim = similarities.current(anc, found)
    ids = [src.run_id for src, _ in found]
    labels = {src.run_id: src.label for src, _ in found}
    widgets.sync_widget("sim-pick", source.run_id)  # a newly finished run, or one chosen elsewhere
    pick = st.selectbox("similarity result", ids, key="sim-pick", format_func=labels.get,
                        on_change=lambda: state.update(similarity_run=st.session_state["sim-pick"]))
    source, sim = next((src, s_) for src, s_ in found if src.run_id == pick)

    from learngene.condense.pseudo import pd_warning
    from learngene.condense.select import SCORE_RULES, layer_scores

    c = st.columns([2, 2, 4])
    rule = c[0].selectbox("layer score", SCORE_RULES, **widgets.kept(
        "sim-rule", sim.selection.get("rule") if sim.selection.get("rule") in SCORE_RULES else SCORE_RULES[0],
        lambda v: v in SCORE_RULES))
    contrast = c[1].toggle("contrast per column", **widgets.kept("sim-contrast", False),
                           help="colour each column on its own min–max range, so the rows a pseudo-descendant layer "
                                "prefers stand out even when all values are close (hover shows the raw values)")
    where = "shipped with the ancestry" if source.shipped else f"run {source.run_id}"
    c[2].caption(f"method **{similarities.describe(sim)}** · {len(sim.row_names)} × {len(sim.col_names)} · computed in "
                 f"{sim.elapsed_s:.0f} s ({where}) · chose layers {sim.selected}")
    acc, chance = sim.extras.get("pd_test_acc"), sim.extras.get("pd_chance")
    if acc is not None and chance is not None:
        st.caption(f"Pseudo-descendant: **{acc:.1%}** held-out accuracy on {round(1 / chance)} open-world classes "
                   f"(chance {chance:.1%}).")
    badges.pd_badge_ui(sim.extras)
    warning = pd_warning(sim.extras)
    if warning:
        st.warning(warning[0].upper() + warning[1:] + ".", icon=":material/warning:")
    scores = layer_scores(sim.array, rule)
    selection.heatmap_ui(sim, key="sim-heatmap", value_label=sim.method, contrast=contrast)
    selection.score_bars_ui(sim, scores, key="sim-bars", rule=rule, anc=anc)
    if "seed_scores" in sim.extras:
        st.caption("Score noise: the same condensing with several pseudo-descendant seeds (`--pd-seeds`).")
        st.plotly_chart(figures.seed_score_bars(sim.row_names, sim.extras["seed_scores"], selected=sim.selected,
                                                score_label=f"score ({sim.selection.get('rule', rule)})"),
                        key="sim-seed-bars")
    chosen = state.get().layers
    c = st.columns([4, 1, 1])
    c[0].markdown(f"**Learngene layers:** {', '.join(sim.row_names[i] for i in chosen if i < len(sim.row_names)) or '—'}")
    if c[1].button("Use its choice", key="sim-adopt", help="make the layers this result chose the learngene"):
        state.update(layers=list(sim.selected))
        st.rerun()
    if c[2].button("Clear", key="sim-clear"):
        state.update(layers=[])
        st.rerun()

with widgets.error_box("measured gains"):
    probe_view.ground_truth_ui(anc, scores, rule, [i for i in chosen if i < len(sim.row_names)],
                               [(src.label, s_) for src, s_ in found])
