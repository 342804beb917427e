"""Learngene Studio's Streamlit app: router, UI helpers, plotly figures, persistent UI state.

Pages live in `pages/` (one script each) and stay thin: they read state, call `learngene/`, and
draw with the builders here. Nothing in this package trains or touches CUDA; slow work is started
through `learngene.jobs`.
"""
