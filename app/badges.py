"""Quality badges: did the ancestry, the pseudo-descendant, the baseline learn? (`st.badge` + one line).

Every badge reads the one three-state rule of the library (`learngene.descend.summary.learning_state`:
learned / not clearly above chance / at chance, or unknown), so the app says what the CLI says. An
ancestry at chance is refused by the steps that build on it unless the person ticks "use anyway"
(`use_anyway_ui`, the twin of the commands' `--force`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from learngene.runlog import read_json

LOOK: dict[str, tuple[str, str, str]] = {
    # state: (badge text, colour, icon)
    "learned": ("learned", "green", ":material/check_circle:"),
    "not clearly above chance": ("not clearly above chance", "orange", ":material/warning:"),
    "at chance": ("at chance", "red", ":material/block:"),
    "unknown": ("accuracy unknown", "gray", ":material/help:"),
}


def ancestry_verdict(anc: Any) -> dict[str, Any]:
    """The ancestry's verdict from its card (`learngene.descend.quality.ancestry_quality`; the web server
    measures nothing: a card without an accuracy is "unknown" here, the commands measure it)."""
    from learngene.descend.quality import ancestry_quality

    return ancestry_quality(anc.card)


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


def needs_force(verdict: dict[str, Any]) -> bool:
    """Whether the steps that build on this ancestry refuse it without "use anyway" (`--force`)."""
    return verdict.get("state") == "at chance"


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


def pd_verdict(extras: dict[str, Any]) -> dict[str, Any]:
    """The pseudo-descendant's verdict from a similarity result's extras (results made before the rule
    carry only the older label)."""
    from learngene.condense.pseudo import pd_state

    state = pd_state(extras)
    line = extras.get("pd_line")
    if not line and extras.get("pd_test_acc") is not None and extras.get("pd_chance") is not None:
        line = f"{state}: {extras['pd_test_acc']:.1%} held-out accuracy, chance {extras['pd_chance']:.1%}"
    budget = extras.get("pd_budget")
    if isinstance(budget, dict) and budget.get("line"):
        line = f"{line or state}; {budget['line']}"
    return {"state": state, "line": line or "no held-out accuracy recorded"}


def pd_badge_ui(extras: dict[str, Any]) -> None:
    if extras.get("pd_test_acc") is not None or extras.get("pd_state"):
        badge_ui("pseudo-descendant", pd_verdict(extras))


def run_verdicts(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """What a finished train run's `outputs/summary.json` says of its ancestry and baseline (empty for a
    run written before the verdicts were recorded)."""
    try:
        data = read_json(Path(run_dir) / "outputs" / "summary.json", default={})
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, dict[str, Any]] = {}
    if isinstance(data.get("ancestry_quality"), dict):
        out["ancestry"] = data["ancestry_quality"]
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else {}
    for role in ("baseline", "learngene"):
        if summary.get(f"{role}_state"):
            out[role] = {"state": summary[f"{role}_state"], "line": summary.get(f"{role}_line", "")}
    return out


def run_badges_ui(run_dir: str | Path) -> None:
    """The badges of a finished train run: its ancestry, its baseline and its learngene descendant."""
    for what, verdict in run_verdicts(run_dir).items():
        badge_ui(what, verdict)
