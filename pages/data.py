"""Data: sample images of the ancestry's base / open-world / novel classes, and one task's support set."""

import streamlit as st

from app.ui import data_view, widgets

st.title("Data")
widgets.explain_ui("Which images go where?", """
The ancestry's **model card** records its data and how the classes were split, and that split binds
everything made from it: the ancestry learned the **base** classes; condensing trains a pseudo-descendant on
the **open-world** classes; descendants are trained and tested on N-way K-shot tasks drawn from the **novel**
classes, which the ancestry never saw. A task's **support set** is its K training images per class; the rest
of those classes' images are its test set. `python -m learngene data info` prints the same split.
""")

anc = widgets.ancestry_ui()
if anc is not None:
    with widgets.error_box("data"):
        ds, line = data_view.dataset(anc)
        st.caption(f"Data **{ds.name}** · {ds.num_classes} classes · {len(ds.labels)} images of "
                   f"{ds.image_size}×{ds.image_size} px · {line}")
        st.subheader("The classes of each part")
        data_view.parts_ui(ds)
        st.subheader("One task's support set")
        st.caption("The same task `train` trains as task *i* with these settings (the Train page's tasks are "
                   "numbered from 0 under its task seed, 0 unless changed).")
        data_view.support_ui(ds)
