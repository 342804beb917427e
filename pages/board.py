"""Class board: everyone's train runs on one ancestry, live, and (once the host reveals it) the answer key."""

import time
from pathlib import Path

import streamlit as st

from app.logic import board, figures, messages
from app.person import identity, resources
from app.shared import config, server
from app.ui import runs_ui, widgets

POLL_S = 5.0  # while a run on the board is queued or running
IDLE_POLL_S = 30.0  # otherwise: new runs still appear

st.title("Class board")
widgets.explain_ui("The exercise: which layers would you inherit?", """
Everyone picks learngene layers (Similarity or Learngene page) and trains a descendant against its random-init
baseline (Train page, or the Home page's demo). Every train run of the chosen ancestry appears here with who
started it, the layers, the **gain** over the baseline (95% interval over the tasks) and the **speed-up**. The
host can reveal the **answer key**: the measured gain of inheriting each single layer (`learngene probe`) beside
how often the class chose it.
""")



@st.cache_data(max_entries=8, show_spinner=False)
def shared_rows(ancestry: str, runs_dir: str, tick: int) -> list[dict]:
    """Everyone's train runs on `ancestry`, read once per server per poll interval (`tick`), not once per person."""
    infos = [i for i in resources.jobs().list(kind="train") if board.same_ancestry(i, Path(ancestry))]
    names = identity.all_names()
    rows = []
    for info in infos:
        owner = info.spec.owner
        who = identity.name_of(owner, info.spec.owner_name, names) if owner else "command line"
        rows.append({**board.board_row(info, who, runs_ui.row(info)), "_owner": owner})
    return rows


person = identity.me()
runs_dir = config.runs_dir()
with widgets.error_box("class board"):
    shipped = [p for p in config.shipped_ancestries() if p.is_file()]
    current = resources.current_ancestry_path()
    options = list(dict.fromkeys([str(current.resolve())] + [str(p.resolve()) for p in shipped]))
    chosen = Path(st.selectbox("ancestry", options, format_func=lambda a: Path(a).name,
                               **widgets.kept("board-anc", options[0], lambda v: v in options)))

    def _live(rows: list[dict]) -> bool:
        return any(r["state"] in ("queued", "running") for r in rows)

    def _board(was_live: bool) -> None:
        rows = shared_rows(str(chosen), str(runs_dir), int(time.time() // POLL_S))
        if _live(rows) != was_live:
            st.rerun()  # poll fast while a run on the board is live, slowly otherwise: register again
        me = identity.pub()
        df = board.board_frame([{**r, "who": "you" if r.pop("_owner") == me else r["who"]} for r in rows])
        people = df["who"].nunique() if not df.empty else 0
        st.caption(f"{len(df)} train run(s) of {people} person(s) on **{chosen.name}**; refreshed every "
                   f"{POLL_S if was_live else IDLE_POLL_S:.0f} s.")
        if df.empty:
            st.info("No train runs on this ancestry yet: train one on the **Train** page.")
            return
        st.dataframe(df, hide_index=True, width="stretch", key="board-table", column_config={
            "gain": st.column_config.NumberColumn("gain", format="percent"),
            "gain low": st.column_config.NumberColumn("gain low", format="percent", help="95% interval, low end"),
            "gain high": st.column_config.NumberColumn("gain high", format="percent", help="95% interval, high end"),
            "speed-up": st.column_config.NumberColumn("speed-up", format="%.1f×"),
            "learngene acc": st.column_config.NumberColumn("learngene acc", format="percent"),
            "baseline acc": st.column_config.NumberColumn("baseline acc", format="percent"),
        })
        if df["gain"].notna().any():
            palette = figures.PALETTE
            colors = {w: palette[i % len(palette)] for i, w in enumerate(sorted(df["who"].unique()))}
            st.plotly_chart(board.gain_figure(df, colors), key="board-gain")
        _answer_ui(df)

    def _answer_ui(df) -> None:
        revealed = bool(server.flag(runs_dir, "reveal_answer", False))
        if not revealed:
            st.caption("The answer key (the measured gain of each single layer) is hidden until the host reveals it.")
            return
        probe = board.read_probe(chosen)
        if probe is None:
            st.caption(f"No measured per-layer gains ship with {chosen.name}: `python -m learngene probe` makes them.")
            return
        st.subheader("Answer key: the measured gain of inheriting each layer")
        st.dataframe(board.answer_key(probe, df), hide_index=True, width="stretch", key="board-answer",
                     column_config={"measured gain": st.column_config.NumberColumn(format="percent"),
                                    "± 95%": st.column_config.NumberColumn(format="percent")})

    live_now = _live(shared_rows(str(chosen), str(runs_dir), int(time.time() // POLL_S)))
    st.fragment(run_every=POLL_S if live_now else IDLE_POLL_S)(_board)(live_now)

if person.host:
    with st.expander("Host", icon=":material/admin_panel_settings:", expanded=False):
        revealed = bool(server.flag(runs_dir, "reveal_answer", False))
        if st.button("Hide the answer key" if revealed else "Reveal the answer key", key="board-reveal"):
            server.set_flag(runs_dir, "reveal_answer", not revealed)
            st.rerun()
        names = identity.all_names()
        for info in resources.jobs().list():  # everyone who started a run, with or without a saved record
            if info.spec.owner and info.spec.owner not in names:
                names[info.spec.owner] = identity.name_of(info.spec.owner, info.spec.owner_name, names)
        if names:
            pub = st.selectbox("person", sorted(names, key=lambda p: names[p]), key="board-person",
                               format_func=lambda p: f"{names[p]} · {p[:6]}")
            now = server.person_limits(runs_dir, pub)
            c = st.columns(2)
            running = c[0].number_input("running", 0, server.MAX_LIMIT, now.running, key=f"lim-run-{pub}")
            queued = c[1].number_input("queued", 0, server.MAX_LIMIT, now.queued, key=f"lim-q-{pub}")
            if st.button("Set this person's limit", key="board-limit"):
                done = server.set_person_limits(runs_dir, pub, int(running), int(queued))
                st.toast(f"{messages.md(names[pub])} may now have {done.running} running + {done.queued} queued")
        st.caption(f"Server limit: {server.limits(runs_dir).server} runs queued or running in all.")
        st.caption("People: " + ", ".join(messages.md(n) for n in sorted(names.values())))
