"""Learngene Studio library: condense an ancestry model into a learngene and inherit it.

Pure Python + PyTorch + timm; no Streamlit or plotly here (DESIGN.md §2).
"""

__version__ = "0.1.0"
