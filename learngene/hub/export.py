"""`learngene hub export`: a registry node as a folder a person can push to the Hugging Face Hub as is."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from learngene.errors import ConfigError
from learngene.hub import _card
from learngene.hub._format import CONFIG, FORMAT, README, WEIGHTS, slug
from learngene.registry import Node, Registry, file_node, learngene_meta, safe_json
from learngene.runlog import FILE_MODE, atomic_write_json

MAX_RUNS = 20  # descendant runs whose results a card lists


def find_exportable(reg: Registry, key: str) -> Node:
    """The node `key` names (an id, hash prefix or name; or the path of a checkpoint or learngene file)."""
    path = Path(key)
    if path.suffix == ".safetensors" and path.is_file():
        node = file_node(path)
        known = next((n for n in reg.nodes.values() if node and n.sha256 == node.sha256), None)
        if known is None and node is None:
            raise ConfigError(f"{path} is neither a learngene file nor a checkpoint with its .json card")
        return known or reg.add(node)
    node = reg.get(key)
    if weights_of(node) is None:
        raise ConfigError(f"{node.id} is a {node.kind} without weights; export an ancestry or a learngene "
                          "(`python -m learngene registry list --kind learngene`)")
    return node


def weights_of(node: Node) -> Path | None:
    """The weights file of an ancestry or learngene node (a run's output, or the node's own file)."""
    if node.kind not in ("ancestry", "learngene"):
        return None
    for candidate in (node.info.get("output"), node.path):
        if candidate and str(candidate).endswith(".safetensors") and Path(candidate).is_file():
            return Path(candidate)
    return None


def _record(reg: Registry, node: Node) -> dict[str, Any]:
    keep = ("arch", "method", "layers", "layer_names", "selected", "selection", "split", "source", "state")
    return {"id": node.id, "kind": node.kind, "name": node.name, "sha256": node.sha256,
            "parents": [reg.nodes[p].sha256 for p in node.parents if reg.nodes[p].sha256],
            "info": {k: node.info[k] for k in keep if node.info.get(k) not in (None, "", [], {})},
            "results": node.results}


def _runs(reg: Registry, node: Node) -> list[dict[str, Any]]:
    """The measured results of the descendant runs and probes made from `node` (at any depth); for a
    learngene also the runs that inherited the same layers from the condense result it was cut by."""
    found = [n for _, n in reg.tree(node.id)[1:]]
    if node.kind == "learngene":
        for parent in reg.parents(node.id):
            found += [n for n in reg.children(parent.id) if n.kind == "descendant" and n not in found
                      and n.info.get("layers") == node.info.get("layers")]
    out = []
    for n in found:
        if n.kind in ("descendant", "probe") and n.results.get("gain"):
            out.append({"id": n.id, "kind": n.kind, "name": n.name, **n.results,
                        "settings": {k: n.info[k] for k in ("tasks", "layers") if k in n.info}})
    return out[:MAX_RUNS]


def build_config(reg: Registry, node: Node, weights: Path) -> dict[str, Any]:
    """The config.json of `node`: what it is, its hash, split, lineage and measured results."""
    config: dict[str, Any] = {"format": FORMAT, "kind": node.kind, "weights": WEIGHTS, "sha256": node.sha256,
                              "name": slug(node.name), "parents": _record(reg, node)["parents"],
                              "lineage": [_record(reg, n) for d, n in reg.lineage(node.id) if d > 0],
                              "results": {**node.results, "descendant_runs": _runs(reg, node)},
                              "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if node.kind == "ancestry":
        card = safe_json(weights.with_suffix(".json")) or {}
        config.update(card=card, split={**(card.get("split") or {}), "dataset": card.get("dataset", "")})
    else:
        meta = learngene_meta(weights) or {}
        extra = meta.get("extra") or {}
        config["learngene"] = {k: meta.get(k) for k in ("spec", "n_layers", "layers", "layer_names", "method",
                                                         "ancestry_sha256", "family")}
        config["split"] = {**(extra.get("split") or {}), "dataset": extra.get("dataset", "")}
    if not config["split"].get("base"):
        config["split"] = {}
    return config


def export(reg: Registry, key: str, out_dir: str | os.PathLike, base_model: str | None = None) -> Path:
    """Write `model.safetensors`, `config.json` and `README.md` of the node `key` into `out_dir`."""
    from learngene.registry import file_sha256

    node = find_exportable(reg, key)
    weights = weights_of(node) or Path(node.path)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    sha = file_sha256(weights)
    if node.sha256 and sha != node.sha256:
        raise ConfigError(f"{weights} does not match the SHA-256 its card records; it was changed after saving "
                          "and is not exported")
    node.sha256 = sha
    config = build_config(reg, node, weights)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{WEIGHTS}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(weights, tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, folder / WEIGHTS)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    atomic_write_json(folder / CONFIG, config)
    _card.write(_card.build(config, base_model or _card.hub_base_model(reg, node)), folder / README)
    return folder
