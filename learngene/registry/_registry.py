"""The registry: every node found on disk, linked to its parents by content hash or path."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from learngene.errors import ConfigError
from learngene.registry import _imports, _scan
from learngene.registry._node import Node

_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ANCESTRY = "lg_vit_tiny.safetensors"
MIN_PREFIX = 6  # hex digits of a hash that may name a node


def default_assets() -> Path:
    """`$LEARNGENE_ASSETS_DIR`, else the repository's `assets/`."""
    return Path(os.environ.get("LEARNGENE_ASSETS_DIR") or _ROOT / "assets")


def default_runs() -> Path:
    """`$LEARNGENE_RUNS_DIR`, else `runs` (as `learngene jobs`)."""
    return Path(os.environ.get("LEARNGENE_RUNS_DIR") or "runs")


@dataclass
class Registry:
    """Nodes by id, with parent and child links."""

    nodes: dict[str, Node] = field(default_factory=dict)
    children_of: dict[str, list[str]] = field(default_factory=dict)
    _index: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    @classmethod
    def scan(cls, assets: Path | None = None, runs: Path | None = None, imports: Path | None = None,
             default_ancestry: Path | None = None) -> Registry:
        """Read every node from the assets, the runs folder (runs and uploads) and the imports."""
        assets = Path(assets) if assets is not None else default_assets()
        runs = Path(runs) if runs is not None else default_runs()
        if default_ancestry is None:
            env = os.environ.get("LEARNGENE_ANCESTRY")
            default_ancestry = Path(env) if env else assets / DEFAULT_ANCESTRY
        found = [*_scan.shipped(assets), *_scan.uploads(runs), *_scan.run_nodes(runs, default_ancestry)]
        imported, lineage = _imports.import_nodes(imports)
        reg = cls()
        reg._link([*found, *imported], lineage)
        return reg

    def _link(self, nodes: list[Node], lineage: list[dict]) -> None:
        index: dict[tuple[str, str], str] = {}
        for node in nodes:  # the first node with a hash or path keeps it: shipped, uploads, runs, imports
            self.nodes.setdefault(node.id, node)
            for key in self._keys(node):
                index.setdefault(key, node.id)
        for record in lineage:  # an import's ancestors that are not on this machine
            sha = str(record.get("sha256", ""))
            if sha and ("sha", sha) not in index:
                node = _imports.remote_node(record)
                self.nodes.setdefault(node.id, node)
                index[("sha", sha)] = node.id
        self._index = index
        for node in self.nodes.values():
            self._resolve(node)

    def _resolve(self, node: Node) -> None:
        parents = []
        for alternatives in node.refs:
            hit = next((self._index[a] for a in alternatives if a in self._index), None)
            if hit and hit != node.id and hit not in parents:
                parents.append(hit)
        node.parents = parents
        for p in parents:
            self.children_of.setdefault(p, []).append(node.id)

    def add(self, node: Node) -> Node:
        """Add a node found elsewhere (a file named on the command line), linked to its parents."""
        if node.id not in self.nodes:
            self.nodes[node.id] = node
            self._resolve(node)
        return self.nodes[node.id]

    @staticmethod
    def _keys(node: Node) -> Iterable[tuple[str, str]]:
        if node.sha256:
            yield "sha", node.sha256
        if node.path:
            yield "path", str(Path(node.path).resolve())
        if node.info.get("output"):
            yield "path", str(Path(node.info["output"]).resolve())
        if node.origin == "import" and node.info.get("source"):
            yield "source", str(node.info["source"])
        yield "id", node.id

    # -- finding ---------------------------------------------------------------------------------------
    def get(self, key: str) -> Node:
        """A node by id, by a unique prefix of its hash (6+ hex digits), or by a unique name."""
        if key in self.nodes:
            return self.nodes[key]
        low = key.lower()
        hits = [n for n in self.nodes.values() if len(low) >= MIN_PREFIX and n.sha256.startswith(low)]
        hits = hits or [n for n in self.nodes.values() if n.name == key or n.run_id == key]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise ConfigError(f"{key!r} names {len(hits)} registry nodes ({', '.join(n.id for n in hits[:5])}); "
                              "give the node id")
        raise ConfigError(f"no registry node {key!r}; list them with `python -m learngene registry list`")

    def parents(self, node_id: str) -> list[Node]:
        return [self.nodes[p] for p in self.nodes[node_id].parents]

    def children(self, node_id: str) -> list[Node]:
        return [self.nodes[c] for c in self.children_of.get(node_id, [])]

    def lineage(self, node_id: str) -> list[tuple[int, Node]]:
        """The node and its ancestors, each with its distance, nearest first (each node once)."""
        out, seen, frontier, depth = [], {node_id}, [node_id], 0
        while frontier:
            out += [(depth, self.nodes[n]) for n in frontier]
            nxt = []
            for n in frontier:
                nxt += [p for p in self.nodes[n].parents if p not in seen and not seen.add(p)]
            frontier, depth = nxt, depth + 1
        return out

    def tree(self, node_id: str, depth: int = 0, seen: set[str] | None = None) -> list[tuple[int, Node]]:
        """The node and everything made from it, depth-first (a node reached twice is listed once)."""
        seen = set() if seen is None else seen
        if node_id in seen:
            return []
        seen.add(node_id)
        out = [(depth, self.nodes[node_id])]
        for child in self.children_of.get(node_id, []):
            out += self.tree(child, depth + 1, seen)
        return out

    def roots(self) -> list[Node]:
        """Nodes without parents (ancestries, mostly)."""
        return [n for n in self.nodes.values() if not n.parents]
