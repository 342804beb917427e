"""Ancestry page."""

import streamlit as st

st.title("Ancestry")
