"""The family tree of the current ancestry: what was condensed from it, the learngenes cut from it, the
runs that used each (with their gains), each node linking to the page or run that shows it.

The tree is `learngene.registry`'s (CLI twin: `python -m learngene registry lineage ID --descendants`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import streamlit as st

from app.person import state
from app.shared import config
from learngene.registry import Node, Registry

# where a node of each kind is shown; a run opens on the Runs page
PAGE_OF = {"ancestry": "ancestry", "pseudo": "similarity", "condense": "similarity", "probe": "similarity",
           "learngene": "learngene", "descendant": "runs", "lineage": ""}
ICON = {"ancestry": ":material/account_tree:", "pseudo": ":material/child_care:", "condense": ":material/grid_on:",
        "probe": ":material/science:", "learngene": ":material/genetics:", "descendant": ":material/monitoring:",
        "lineage": ":material/cloud:"}


def current_ancestry() -> Path:
    """The ancestry the person chose (the embedded default when none)."""
    chosen = state.get().ancestry
    return Path(chosen) if chosen else config.default_ancestry()


def scan() -> Registry:
    """The registry of this server's assets, runs folder and imports."""
    return Registry.scan(assets=config.assets_dir(), runs=config.runs_dir(), default_ancestry=config.default_ancestry())


def ancestry_node(reg: Registry, path: Path) -> Node | None:
    """The registry node of the ancestry checkpoint at `path` (by path, else by its card's hash)."""
    target = path.resolve()
    for node in reg.nodes.values():
        if node.kind == "ancestry" and node.path and Path(node.path).resolve() == target:
            return node
    from learngene.registry import safe_json

    card = safe_json(path.with_suffix(".json")) or {}
    sha = card.get("sha256")
    return next((n for n in reg.nodes.values() if n.kind == "ancestry" and sha and n.sha256 == sha), None)


def link_of(node: Node) -> str:
    """The app URL that shows `node`: its run on the Runs page, else its kind's page ("" for none)."""
    if node.run_id:
        return f"/runs?runs={quote(node.run_id)}"
    if node.id.startswith("demo:"):  # the Home page's reference demo run
        return "/"
    page = PAGE_OF.get(node.kind, "")
    return f"/{page}" if page and page != "runs" else ""


def gain_text(node: Node) -> str:
    gain = node.results.get("gain")
    if not isinstance(gain, dict) or not isinstance(gain.get("mean"), (int, float)):
        return ""
    ci = gain.get("ci95")
    ci_text = f" ± {100 * ci:.1f}" if isinstance(ci, (int, float)) else ""
    n = gain.get("n")
    return f"gain {100 * gain['mean']:+.1f}{ci_text} points over " + (_count(n, "task") if isinstance(n, int) else "? tasks")


def tree_rows(reg: Registry, root: str) -> list[dict[str, Any]]:
    """One row per node of the tree below `root`: depth, id, kind, label, hash, gain, link."""
    rows, hidden = [], None
    for depth, node in reg.tree(root):
        if hidden is not None and depth > hidden:
            continue
        hidden = None
        if node.origin == "upload" and depth:  # a person's uploads (and what came of them) stay theirs
            hidden = depth
            continue
        details = [v for v in (node.info.get("method"), _layers(node), node.info.get("state")) if v]
        rows.append({"depth": depth, "id": node.id, "kind": node.kind, "name": node.name or node.id,
                     "sha256": node.sha256[:12], "gain": gain_text(node), "details": ", ".join(map(str, details)),
                     "link": link_of(node), "origin": node.origin})
    return rows


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _layers(node: Node) -> str:
    layers = node.info.get("layers") or node.info.get("selected")
    return f"layers {layers}" if isinstance(layers, list) and layers else ""


def _row_markdown(row: dict[str, Any]) -> str:
    name = row["name"].replace("[", "(").replace("]", ")")
    label = f"[{name}]({row['link']})" if row["link"] else name
    extra = " · ".join(x for x in (row["details"], f"**{row['gain']}**" if row["gain"] else "") if x)
    return (f"{'&nbsp;' * 6 * row['depth']}{ICON.get(row['kind'], '')} {row['kind']} {label} "
            f"`{row['sha256'] or '-'}`" + (f" · {extra}" if extra else ""))


def lineage_ui() -> None:
    """Draw the family tree of the current ancestry."""
    path = current_ancestry()
    reg = scan()
    node = ancestry_node(reg, path)
    if node is None:
        st.info(f"{path.name} is not in the registry (no readable checkpoint with its card); choose another "
                "ancestry on the **Ancestry** page.")
        return
    rows = tree_rows(reg, node.id)
    kinds = [r["kind"] for r in rows[1:]]
    counts = ", ".join(_count(kinds.count(k), word) for k, word in (
        ("condense", "condense result"), ("learngene", "learngene"), ("descendant", "descendant run"), ("probe", "probe")))
    st.caption(f"{node.name}: {counts}. Each name opens its page or run.")
    st.markdown("  \n".join(_row_markdown(r) for r in rows))
    runs = [r for r in rows if r["kind"] == "descendant"]
    if runs:
        st.subheader("Descendant runs")
        st.dataframe([{k: r[k] for k in ("name", "gain", "details", "sha256", "id")} for r in runs],
                     hide_index=True, width="stretch")
    st.caption(f"CLI twin: `python -m learngene registry lineage {node.id} --descendants`; share one with "
               f"`python -m learngene hub export ID DIR`.")
