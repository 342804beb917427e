"""Widget helpers shared by the pages: each `*_ui` function draws widgets and returns the choices."""

from __future__ import annotations

import streamlit as st


def sidebar_ui() -> None:
    """The sidebar: the current ancestry and learngene at a glance."""
    with st.sidebar:
        st.caption("Learngene Studio")
