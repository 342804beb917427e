"""Verdicts of quality: did the ancestry, the pseudo-descendant, the baseline learn? Plain Python: the
badges (`app.ui.badges`) draw them.

Each verdict is {"state", "line"}: the one three-state rule of the library
(`learngene.descend.summary.learning_state`: learned / not clearly above chance / at chance, or unknown)
and the line that says what was measured, so the app says what the CLI says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from learngene.runlog import read_json


def ancestry_verdict(anc: Any) -> dict[str, Any]:
    """The ancestry's verdict from its card (`learngene.descend.quality.ancestry_quality`; the web server
    measures nothing: a card without an accuracy is "unknown" here, the commands measure it)."""
    from learngene.descend.quality import ancestry_quality

    return ancestry_quality(anc.card)


def needs_force(verdict: dict[str, Any]) -> bool:
    """Whether the steps that build on this ancestry refuse it without "use anyway" (`--force`)."""
    return verdict.get("state") == "at chance"


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
