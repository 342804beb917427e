"""Learngene page."""

import streamlit as st

st.title("Learngene")
