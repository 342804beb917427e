"""Runs page."""

import streamlit as st

st.title("Runs")
