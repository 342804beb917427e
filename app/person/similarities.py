"""Similarity results a page can show for an ancestry: finished condense runs and shipped results.

A shipped result (`learngene.condense.shipped`) is there the moment the page opens, so the heatmap
never waits for a job; its id is `shipped:<view>` (e.g. `shipped:cka`) wherever a run id would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.logic.results import output_path
from app.person import resources, state

SHIPPED = "shipped:"


@dataclass(frozen=True)
class Source:
    """Where a similarity result came from: a condense run, or a file shipped with the ancestry."""

    run_id: str  # a run id, or "shipped:<view>"
    label: str
    path: Path

    @property
    def shipped(self) -> bool:
        return self.run_id.startswith(SHIPPED)


def shipped(anc: resources.Ancestry) -> list[tuple[Source, Any]]:
    """The shipped results of this ancestry (those made from its exact weights), in `VIEWS` order."""
    from learngene.condense.shipped import VIEWS, shipped_similarity, similarity_path

    sha = (anc.card_dict or {}).get("sha256")
    out = []
    for view, sim in shipped_similarity(anc.path, sha).items():
        path = similarity_path(anc.path, view)
        out.append((Source(SHIPPED + view, f"{view} · shipped ({VIEWS[view]})", path), sim))
    return out


def _same_ancestry(sim: Any, anc: resources.Ancestry) -> bool:
    a = sim.ancestry or {}
    sha = (anc.card_dict or {}).get("sha256")
    if sha and a.get("sha256"):
        return a["sha256"] == sha
    try:
        return Path(a.get("path", "")).resolve() == anc.path.resolve()
    except OSError:
        return False


def runs(anc: resources.Ancestry) -> list[tuple[Source, Any]]:
    """Finished condense runs of this ancestry, newest first (a damaged result is skipped)."""
    out = []
    for info in resources.jobs().list(kind="condense", state="done"):
        path = output_path(info, "similarity.json")
        if not path.is_file():
            continue
        try:
            sim = resources.load_similarity(path)
        except Exception:  # noqa: BLE001 - a damaged result is skipped, not fatal
            continue
        if _same_ancestry(sim, anc):
            out.append((Source(info.run_id, f"{describe(sim)} · {info.spec.name} · {info.run_id}", path), sim))
    return out


def entries(anc: resources.Ancestry) -> list[tuple[Source, Any]]:
    """Finished condense runs of this ancestry (newest first), then its shipped results."""
    return runs(anc) + shipped(anc)


def describe(sim: Any) -> str:
    """The method with what it compared, e.g. `cka (layer updates)`, and a warning mark when its
    pseudo-descendant did not clearly learn (`app.logic.verdicts`), e.g. `cka · pseudo-descendant at chance`."""
    from app.logic import verdicts

    text = sim.method + (" (layer updates)" if sim.settings.get("cka_of") == "update" else "")
    state = verdicts.pd_verdict(sim.extras)["state"] if sim.extras.get("pd_test_acc") is not None else "unknown"
    return text + (f" · pseudo-descendant {state}" if state in ("at chance", "not clearly above chance") else "")


def current(anc: resources.Ancestry, found: list[tuple[Source, Any]] | None = None) -> tuple[Source, Any] | None:
    """The result in use: the one named in the state, else the newest run, else the shipped CKA."""
    found = entries(anc) if found is None else found
    chosen = state.get().similarity_run
    for source, sim in found:
        if source.run_id == chosen:
            return source, sim
    return found[0] if found else None
