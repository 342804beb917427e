"""Learngene Studio: the router (`streamlit run app/main.py`).

One script per page in `pages/`; every page is thin and all logic lives in `learngene/` and `app/`.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts only app/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app.person import identity  # noqa: E402
from app.ui import widgets  # noqa: E402

PAGES = [  # (file, title, icon)
    ("home.py", "Home", ":material/home:"),
    ("ancestry.py", "Ancestry", ":material/account_tree:"),
    ("data.py", "Data", ":material/photo_library:"),
    ("similarity.py", "Similarity", ":material/grid_on:"),
    ("learngene.py", "Learngene", ":material/genetics:"),
    ("train.py", "Train", ":material/monitoring:"),
    ("runs.py", "Runs", ":material/history:"),
    ("lineage.py", "Lineage", ":material/family_history:"),
    ("board.py", "Class board", ":material/groups:"),
]

st.set_page_config(page_title="Learngene Studio", page_icon=str(ROOT / "assets" / "icon.png"), layout="wide")
identity.gate()  # who is at this browser; a server beyond loopback shows only its join page until joined
page = st.navigation([
    st.Page(ROOT / "pages" / file, title=title, icon=icon, url_path=Path(file).stem, default=i == 0)
    for i, (file, title, icon) in enumerate(PAGES)
])
widgets.sidebar_ui()
widgets.flash_ui()
page.run()
