"""Lineage: the family tree of the current ancestry (condense results, learngenes, runs and their gains)."""

import streamlit as st

from app.ui import lineage_view, widgets

st.title("Lineage")
widgets.explain_ui("Reading the family tree", """
Everything the studio made from the current ancestry, with where it came from: the **condense** results
(similarity matrices; the CKA ones share a pseudo-descendant), the **learngenes** cut from them, the
**probes** (measured per-layer gains) and the **descendant runs** that inherited from them, with their
accuracy gain over the random-init baseline. Each entry carries the SHA-256 of its weights, result file
or run settings, so a copy elsewhere is recognised as the same. A run whose weights were not saved is still
here with its settings and results. Names open the page or run that shows them.

`python -m learngene hub export ID DIR` writes an ancestry or learngene as a Hugging Face Hub folder with this
lineage in its model card; `python -m learngene hub import` (or `--learngene hf-hub:OWNER/NAME`) reads one back.
""")
lineage_view.lineage_ui()
