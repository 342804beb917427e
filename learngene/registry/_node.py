"""One node of the lineage: what it is, its content hash, and the nodes it came from."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Kind = Literal["ancestry", "pseudo", "condense", "learngene", "probe", "descendant", "lineage"]
KINDS: tuple[str, ...] = ("ancestry", "pseudo", "condense", "learngene", "probe", "descendant", "lineage")
# How a node came to be known: shipped in assets/, a run in the runs folder, an upload in the app,
# an import (a Hub folder or repo), or a record in an imported node's lineage that is not on this machine.
Origin = Literal["shipped", "run", "upload", "import", "remote"]


@dataclass
class Node:
    """A registry entry.

    Attributes:
        id: stable name typed on the command line, e.g. `ancestry:lg_vit_tiny` or `run:<run id>`.
        kind: what it is (see `KINDS`).
        name: a short human label.
        sha256: content hash: of the weights, of the result file, or of a run's config.
        origin: where it was found (see `Origin`).
        path: the file (or run folder) it was read from; "" for remote lineage records.
        parents: ids of the nodes it was made from, resolved by content hash (or path).
        info: what it says about itself: architecture, method, layers, split, settings.
        results: what was measured: accuracy, gain (mean, ci95, n), pseudo-descendant accuracy.
        run_id: the run folder's id for runs (opens it on the Runs page).
    """

    id: str
    kind: str
    name: str
    sha256: str
    origin: str
    path: str = ""
    parents: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    # parents before resolution: per parent, alternatives tried in order, each ("sha", hex), ("path", an
    # absolute path), ("source", what an import was imported from) or ("id", a node id)
    refs: list[list[tuple[str, str]]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (without the unresolved references)."""
        out = asdict(self)
        out.pop("refs")
        return out


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) so a scan does not re-read unchanged files."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def gain_of(summary: Any) -> dict[str, Any]:
    """The paired gain and both arms' mean final accuracy of a descendant summary (empty when absent)."""
    out: dict[str, Any] = {}
    if not isinstance(summary, dict):
        return out
    gain = summary.get("gain")
    if isinstance(gain, dict) and isinstance(gain.get("mean"), (int, float)):
        out["gain"] = {k: gain.get(k) for k in ("mean", "ci95", "n")}
    for role in ("learngene", "baseline"):
        acc = (summary.get(role) or {}).get("final_acc") if isinstance(summary.get(role), dict) else None
        if isinstance(acc, dict) and isinstance(acc.get("mean"), (int, float)):
            out[f"{role}_acc"] = acc["mean"]
    return out
