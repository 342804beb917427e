"""Learngene: pick the layers, edit the descendant recipe, see the descendant, download/upload the file."""

import streamlit as st

from app.logic import figures
from app.person import descendant, resources, similarities, state
from app.ui import badges, selection, widgets

st.title("Learngene")
widgets.explain_ui("From layers to a descendant", """
The **learngene** is a handful of the ancestry's integral layers (plus its stem: patch embedding, position
embedding and class token of a ViT, the first conv of a CNN). Pick them by hand, click them on the heatmap,
take the top-k of a similarity result, or use a published preset:

- `auto-paper`: Auto-LG's choice (ViT: first 2 + last 4 blocks of 12, scaled to the depth; ResNet: first and last
  stage; VGG: units from both ends), `heur`: the last 3 layers (Heur-LG), `front-k` / `middle-k` / `last-k`.

A **descendant** stacks the learngene with new random layers and a new head for its task. *Where* the random
layers go is the recipe's placement. The **baseline** is the same architecture with every layer random.
""")

anc = widgets.ancestry_ui()
if anc is None:
    st.stop()
badges.ancestry_badge_ui(anc)
s = state.get()
found = similarities.current(anc)
sim = found[1] if found else None

st.subheader("Layers")
names = {i: f"{i}: {n}" for i, n in enumerate(anc.names)}
widgets.sync_widget("lg-multi", [i for i in s.layers if i < anc.n_layers])  # changed by presets, clicks, uploads
st.multiselect("learngene layers", list(names), format_func=names.get, key="lg-multi",
               on_change=lambda: state.update(layers=st.session_state["lg-multi"]))

from learngene.condense.select import PRESETS, SCORE_RULES, layer_scores, select_layers, select_preset  # noqa: E402

c = st.columns(2)
with c[0].container(border=True):
    st.markdown("**Preset**")
    presets = [p for p in PRESETS if not p.endswith("-k")] + ["front-k", "middle-k", "last-k"]
    preset = st.selectbox("preset", presets, label_visibility="collapsed",
                          **widgets.kept("lg-preset", presets[0], lambda v: v in presets))
    pk = st.number_input("k", 1, anc.n_layers, disabled="-k" not in preset,
                         **widgets.kept("lg-preset-k", min(3, anc.n_layers), lambda v: 1 <= v <= anc.n_layers))
    if st.button("Apply preset", key="lg-apply-preset"):
        with widgets.error_box("preset"):
            state.update(layers=select_preset(preset.replace("-k", f"-{pk}"), anc.n_layers, anc.family, names=anc.names))
            st.rerun()
with c[1].container(border=True):
    st.markdown("**Top-k of the similarity**" + (f" ({sim.method}, {found[0].run_id})" if sim else ""))
    k = st.slider("k", 1, anc.n_layers, disabled=sim is None,
                  **widgets.kept("lg-k", min(4, anc.n_layers), lambda v: 1 <= v <= anc.n_layers))
    cc = st.columns(2)
    rule = cc[0].selectbox("score", SCORE_RULES, disabled=sim is None,
                           **widgets.kept("lg-rule", list(SCORE_RULES)[0], lambda v: v in SCORE_RULES))
    contiguous = cc[1].toggle("contiguous", disabled=sim is None, **widgets.kept("lg-contig", False))
    if st.button("Apply top-k", key="lg-apply-topk", disabled=sim is None,
                 help=None if sim else "run condensing on the Similarity page first"):
        with widgets.error_box("top-k"):
            state.update(layers=select_layers(layer_scores(sim.array, rule), int(k), contiguous))
            st.rerun()
if sim is not None and list(sim.row_names) == anc.names:
    with st.expander("Pick on the heatmap"):
        selection.heatmap_ui(sim, key="lg-heatmap", value_label=sim.method)

layers = [i for i in state.get().layers if i < anc.n_layers]
st.subheader("Descendant recipe")
cfg = descendant.settings(s.recipe, anc)
c = st.columns(4)
placement = c[0].selectbox("random layers go", list(descendant.PLACEMENT_HELP), key="lg-placement",
                           index=list(descendant.PLACEMENT_HELP).index(cfg["placement"]),
                           format_func=lambda p: {"original": "in the gaps", "top": "below", "bottom": "above"}[p],
                           help="\n".join(f"- **{k}**: {v}" for k, v in descendant.PLACEMENT_HELP.items()))
low = descendant.min_depth(layers, placement)
if st.session_state.get("lg-depth", low) < low:  # a new placement or layers need more depth
    st.session_state["lg-depth"] = low
depth = c[1].number_input("depth (integral layers)", low, max(2 * anc.n_layers, low),
                          max(low, cfg["depth"]), key="lg-depth")
stem = c[2].selectbox("stem", ["inherit", "random"], index=["inherit", "random"].index(cfg["stem"]), key="lg-stem")
classes = c[3].number_input("head classes (N-way)", 2, 1000, cfg["num_classes"], key="lg-classes")
c = st.columns(2)
width = c[0].select_slider("width (x the ancestry's)", descendant.WIDTHS,
                           value=min(descendant.WIDTHS, key=lambda w: abs(w - cfg["width"])), key="lg-width",
                           help="narrower: the same leading channels of every inherited layer and the stem (whole "
                                "attention heads), i.e. consistent weight selection; wider: the inherited weights "
                                "fill the leading block, the rest starts random (the least-tested case)")
fill = c[1].selectbox("other layers", list(descendant.FILL_HELP), index=list(descendant.FILL_HELP).index(cfg["fill"]),
                      key="lg-fill", help="\n".join(f"- **{k}**: {v}" for k, v in descendant.FILL_HELP.items()))
if width > 1:
    st.caption("A wider descendant is the least-tested case: its extra channels start random, so the inherited "
               "layers no longer compute exactly what they did in the ancestry.")
new_cfg = {"placement": placement, "depth": int(depth), "stem": stem, "num_classes": int(classes),
           "width": float(width), "fill": fill}
if new_cfg != {k: cfg[k] for k in new_cfg}:
    state.update(recipe=new_cfg)

if not layers:
    st.info("Choose at least one layer to see the descendant.")
else:
    with widgets.error_box("recipe"):
        recipe = descendant.build(anc, layers, new_cfg)
        left, right = st.columns([3, 2])
        with left:
            slots = descendant.stack_slots(recipe, anc)
            stack = figures.descendant_stack(slots)
            st.plotly_chart(stack, key="lg-stack", config={"displayModeBar": False})
            widgets.download_figure_ui(stack, "descendant", "lg-stack")
        with right:
            sizes = descendant.sizes(recipe, anc, layers, slots)
            bars = figures.size_bars(sizes, title="size against the ancestry")
            st.plotly_chart(bars, key="lg-sizes", config={"displayModeBar": False})
            widgets.download_figure_ui(bars, "sizes", "lg-sizes")
            share = sizes["learngene + stem"] / max(anc.total_params, 1)
            st.metric("learngene (layers + stem)", f"{sizes['learngene + stem']:,} params", f"{share:.1%} of the ancestry",
                      delta_color="off", delta_arrow="off")
        with st.expander("recipe as text"):
            st.code(recipe.describe(anc.names), language="text")

st.subheader("Learngene file")
c = st.columns(2)
with c[0]:
    st.download_button("Download learngene (.safetensors)", disabled=not layers, key="lg-download", on_click="ignore",
                       data=lambda: descendant.learngene_bytes(anc, layers, sim.method if sim else "manual"),
                       file_name=f"learngene-{anc.path.stem}-{'-'.join(map(str, layers))}.safetensors",
                       mime="application/octet-stream", icon=":material/download:")
    st.caption("The chosen layers and the stem, with their names and sizes, in one file.")
with c[1]:
    up = st.file_uploader("reuse a learngene file", type=["safetensors"], key="lg-upload")
    if up is not None and st.button("Use this learngene", key="lg-upload-go"):
        with widgets.error_box("the learngene file cannot be used"):
            path, lg = descendant.import_learngene(up.name, up.getvalue(), anc)
            state.update(layers=list(lg.layers), learngene_file=str(path))
            st.rerun()
    if resources.learngene_file_for(layers):
        st.caption(f"in use for training: `{s.learngene_file}`")
