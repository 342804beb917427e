"""Streamlit widgets and views: what a page draws and the controls it offers (built on the folders below)."""
