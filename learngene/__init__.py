"""Learngene Studio library: condense an ancestry model into a learngene and inherit it.

Pure Python + PyTorch + timm; no Streamlit or plotly here, so a worker runs on a machine that has only
torch and timm (docs/design.md, "The house").
"""

__version__ = "0.1.0"
