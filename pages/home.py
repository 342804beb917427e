"""Home: the idea in one picture, the current ancestry and learngene, and the one-click demo."""

import streamlit as st

from app.logic import demo, figures
from app.person import descendant, pipeline, state
from app.ui import live, widgets

st.title("Learngene Studio")
st.markdown(
    "A trained network — the **ancestry** — is condensed into a few of its layers, the **learngene**. "
    "New **descendant** models for new tasks inherit those layers, add fresh random ones and a new head, "
    "and learn faster than the same network started from scratch."
)
widgets.explain_ui("The idea in three steps", """
1. **Accumulate** – train the ancestry on the *base* classes (here: 64 classes of the embedded *shapes* data).
2. **Condense** – train a small *pseudo-descendant* on 16 *open-world* classes and measure how similar each
   ancestry layer is to it (a similarity matrix); the most similar layers are the learngene.
3. **Inherit** – build descendants for tasks on 20 *novel* classes (N-way, K-shot): learngene layers + random
   layers + a new head. Train them next to the same architecture with *every* layer random (the baseline).

The claims to check: descendants converge faster, are less sensitive to hyperparameters, end more accurate,
and need fewer samples (Wang et al., 2023, *Learngene: Inheriting Condensed Knowledge from the Ancestry Model
to Descendant Models*).
""")



@st.cache_resource(max_entries=64, show_spinner=False)
def shared_idea_figure(names: tuple, layers: tuple, slots: list) -> object:
    """The idea picture, built once per server for the same layers and recipe (it is the same for everyone; the
    figure is never changed after it is built)."""
    return figures.idea_figure(list(names), list(layers), slots)


anc = widgets.ancestry_ui()
if anc is None:
    st.stop()

s = state.get()
shipped_sim = demo.shipped_result(anc.path, anc.card_dict.get("sha256"))
demo_layers = [i for i in (shipped_sim.selected if shipped_sim is not None else []) if i < anc.n_layers]
layers = [i for i in s.layers if i < anc.n_layers] or demo_layers or descendant.default_layers(anc)
cfg = descendant.settings(s.recipe, anc)
with widgets.error_box("recipe"):
    recipe = descendant.build(anc, layers, {**cfg, "depth": max(cfg["depth"], descendant.min_depth(layers, cfg["placement"]))})
    idea = shared_idea_figure(tuple(anc.names), tuple(layers), descendant.stack_slots(recipe, anc))
    st.plotly_chart(idea, key="idea", config={"displayModeBar": False})
    widgets.download_figure_ui(idea, "learngene-idea", "idea")
    if not s.layers and demo_layers:
        st.caption(f"No learngene chosen yet: the picture shows the layers the demo inherits "
                   f"({', '.join(map(str, demo_layers))}, chosen by the shipped linear-CKA result).")
    elif not s.layers:
        st.caption("No learngene chosen yet: the picture shows the published Auto-LG choice (`auto-paper`).")

left, right = st.columns(2)
with left:
    st.subheader("Ancestry")
    widgets.card_ui(anc)
with right:
    st.subheader("Learngene")
    lg = sum(anc.layer_params[i] for i in layers)
    st.metric("layers", f"{len(layers)} of {anc.n_layers}", help=", ".join(anc.names[i] for i in layers))
    st.metric("size", f"{lg / 1e6:.3f} M params", f"{lg / max(anc.total_params, 1):.0%} of the ancestry",
              delta_color="off", delta_arrow="off")
    st.caption("Choose other layers on the **Similarity** and **Learngene** pages.")

st.divider()
st.subheader("See it work")
shipped = shipped_sim is not None
first = ("**inherit** the layers the shipped linear-CKA result of this ancestry chose" if shipped else
         "**condense** the ancestry (linear CKA; it ships no result of its own), **inherit** the best layers")
st.markdown(f"One click runs the default demo in the background: {first}, and **train** the descendant against its "
            f"random-init baseline on {demo.DEMO_TRAIN['tasks']} novel {demo.DEMO_TRAIN['n_way']}-way "
            f"{demo.DEMO_TRAIN['k_shot']}-shot tasks for {demo.DEMO_TRAIN['epochs']} epochs. The target is "
            f"{demo.TARGET_WORDS}: how many epochs each model needs to get there. It takes "
            f"{demo.DURATION_TEXT}{'' if shipped else ', plus the condensing'}.")
running = pipeline.demo_live()
if st.button("Run the whole demo", type="primary", icon=":material/rocket_launch:", key="demo", disabled=running,
             help="the demo is running" if running else None):
    with widgets.error_box("could not start the demo"):
        pipeline.start_demo(anc)
        st.rerun()
ref = demo.load_reference(anc.path, anc.card_dict.get("sha256"))
started = bool(state.get().demo.get("condense") or state.get().demo.get("train"))
if ref is not None:
    left, right = st.columns(2)
    with left:
        st.markdown("##### Reference run")
        live.reference_ui(ref)
    with right:
        st.markdown("##### Your run")
        if not started:
            st.caption("Click **Run the whole demo** to train it here, live, next to the reference.")
        live.demo_ui()
else:
    live.demo_ui()
