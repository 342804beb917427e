"""Plain Python without Streamlit or per-person state: commands, figures, the demo, runs tables, verdicts and the other logic the pages and views use."""
