"""Learngene Studio's Streamlit app. `app/main.py` is the router; the pages live in `pages/` (one script each)
and stay thin: they read state, call `learngene/`, and draw with the pieces here.

Four folders, each importing only the ones before it (`tests/test_app_layout.py` checks it):

- `app/logic`: plain Python without Streamlit or per-person state (commands, figures, the demo, runs
  tables, verdicts);
- `app/shared`: what belongs to the server (where things live, its settings, keys and limits, the launcher);
- `app/person`: one person's studio (identity, their record and choices, and what acts on them);
- `app/ui`: Streamlit widgets and views.

Nothing here trains or touches CUDA; slow work is started through `learngene.jobs`.
"""
