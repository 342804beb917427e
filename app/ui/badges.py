"""Quality badges: did the ancestry, the pseudo-descendant, the baseline learn? (`st.badge` + one line).

The verdicts themselves are plain Python (`app.logic.verdicts`); every badge reads the one three-state rule of the library (`learngene.descend.summary.learning_state`:
learned / not clearly above chance / at chance, or unknown), so the app says what the CLI says. An
ancestry at chance is refused by the steps that build on it unless the person ticks "use anyway"
(`use_anyway_ui`, the twin of the commands' `--force`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from app.logic.verdicts import ancestry_verdict, needs_force, pd_verdict, run_verdicts

LOOK: dict[str, tuple[str, str, str]] = {
    # state: (badge text, colour, icon)
    "learned": ("learned", "green", ":material/check_circle:"),
    "not clearly above chance": ("not clearly above chance", "orange", ":material/warning:"),
    "at chance": ("at chance", "red", ":material/block:"),
    "unknown": ("accuracy unknown", "gray", ":material/help:"),
}


def badge_ui(what: str, verdict: dict[str, Any], key: str | None = None) -> None:
    """One badge ('ancestry: at chance') and, beside it, the line that says what was measured."""
    label, color, icon = LOOK.get(verdict.get("state", "unknown"), LOOK["unknown"])
    c = st.columns([1, 3], vertical_alignment="center")
    with c[0]:
        st.badge(f"{what}: {label}", color=color, icon=icon)
    c[1].caption(verdict.get("line") or "")


def ancestry_badge_ui(anc: Any) -> dict[str, Any]:
    """The ancestry's badge; returns its verdict."""
    verdict = ancestry_verdict(anc)
    badge_ui("ancestry", verdict)
    return verdict


def use_anyway_ui(verdict: dict[str, Any], key: str) -> tuple[bool, list[str]]:
    """For an ancestry at chance: a "use anyway" tick box. Returns (allowed, extra command arguments):
    (True, []) for any other ancestry, (True, ["--force"]) once ticked, (False, []) before."""
    if not needs_force(verdict):
        return True, []
    st.error("This ancestry is at chance on its held-out base classes: it has learned nothing for a descendant "
             "to inherit. Train it longer, or use it anyway.", icon=":material/block:")
    if st.checkbox("use anyway", key=key, help="the same as --force on the command line"):
        return True, ["--force"]
    return False, []


def pd_badge_ui(extras: dict[str, Any]) -> None:
    if extras.get("pd_test_acc") is not None or extras.get("pd_state"):
        badge_ui("pseudo-descendant", pd_verdict(extras))


def run_badges_ui(run_dir: str | Path) -> None:
    """The badges of a finished train run: its ancestry, its baseline and its learngene descendant."""
    for what, verdict in run_verdicts(run_dir).items():
        badge_ui(what, verdict)
