"""The imports index: what `learngene hub import` (or an `--ancestry`/`--learngene` Hub source) brought in.

Imported files live in `$LEARNGENE_CACHE/imports/<id>/` (default `~/.cache/learngene`), each folder
holding the checked weights, their card and the Hub folder's `config.json` (with the lineage the
exporter recorded). `index.json` beside them lists the imports, replaced atomically under a lock, so
two imports at once never lose an entry.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from learngene.registry._node import Node
from learngene.runlog import atomic_write_json, read_json

INDEX_FILE = "index.json"
FORMAT = "learngene.imports/1"


def imports_dir() -> Path:
    """`$LEARNGENE_CACHE/imports` (default `~/.cache/learngene/imports`)."""
    root = os.environ.get("LEARNGENE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "learngene")
    return Path(root) / "imports"


def read_imports(folder: Path | None = None) -> list[dict[str, Any]]:
    """The index's entries (an unreadable index reads as empty: the imports stay on disk)."""
    folder = folder or imports_dir()
    try:
        data = read_json(folder / INDEX_FILE, {})
    except (OSError, ValueError):
        return []
    entries = data.get("imports") if isinstance(data, dict) else None
    return [e for e in entries or [] if isinstance(e, dict) and isinstance(e.get("id"), str)]


def record_import(entry: dict[str, Any], folder: Path | None = None) -> None:
    """Add (or replace, by id) one entry of the index."""
    from learngene.jobs.slots import flocked

    folder = folder or imports_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with flocked(folder / ".index.lock"):
        entries = [e for e in read_imports(folder) if e["id"] != entry["id"]]
        entries.append({**entry, "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        atomic_write_json(folder / INDEX_FILE, {"format": FORMAT, "imports": entries})


def import_nodes(folder: Path | None = None) -> tuple[list[Node], list[dict[str, Any]]]:
    """Nodes of the imports whose weights are still there, and the lineage records they carry."""
    nodes, lineage = [], []
    for e in read_imports(folder):
        path = Path(str(e.get("path", "")))
        if not path.is_file():
            continue
        node = Node(id=e["id"], kind=str(e.get("kind", "")), name=str(e.get("name", path.stem)),
                    sha256=str(e.get("sha256", "")), origin="import", path=str(path),
                    info={"source": e.get("source"), "imported": e.get("recorded"), **(e.get("info") or {})},
                    results=dict(e.get("results") or {}))
        node.refs = [[("sha", str(s))] for s in e.get("parents") or []]
        nodes.append(node)
        lineage += [r for r in e.get("lineage") or [] if isinstance(r, dict)]
    return nodes, lineage


def remote_node(record: dict[str, Any]) -> Node:
    """A lineage record of an import whose node is not on this machine."""
    sha = str(record.get("sha256", ""))
    node = Node(id=f"lineage:{sha[:12]}", kind=str(record.get("kind", "lineage")),
                name=str(record.get("name", "")), sha256=sha, origin="remote",
                info={"recorded_as": record.get("id"), **(record.get("info") or {})},
                results=dict(record.get("results") or {}))
    node.refs = [[("sha", str(s))] for s in record.get("parents") or []]
    return node
