"""Reading what is on disk into nodes: checkpoints with cards, learngene files, results, run folders.

Nothing here loads weights: a card is JSON, and a learngene file's metadata is read from the
safetensors header alone (8 bytes of length, then JSON), so listing the registry stays fast.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from learngene.registry._node import Node, file_sha256, gain_of
from learngene.runlog import read_json

MAX_HEADER = 16 << 20  # a safetensors header larger than this is not one the studio wrote
MAX_JSON = 64 << 20  # result files read while scanning


def safe_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when it is missing, too big, unreadable or not an object."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_JSON:
            return None
        data = read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def safetensors_metadata(path: Path) -> dict[str, str] | None:
    """The `__metadata__` of a safetensors file's header (None when it is not a readable safetensors file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                return None
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER:
                return None
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def learngene_meta(path: Path) -> dict[str, Any] | None:
    """The learngene metadata of a learngene file (None for any other file)."""
    meta = safetensors_metadata(path)
    if not meta or "learngene" not in meta:
        return None
    try:
        data = json.loads(meta["learngene"])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _split_summary(split: Any, dataset: str) -> dict[str, Any]:
    if not isinstance(split, dict):
        return {"dataset": dataset}
    counts = {p: len(split[p]) for p in ("base", "open_world", "novel") if isinstance(split.get(p), list)}
    return {"dataset": str(split.get("dataset") or dataset), "classes": counts,
            "data_seed": split.get("data_seed")}


def checkpoint_node(path: Path, node_id: str, origin: str, kind: str = "ancestry") -> Node | None:
    """A node for a `.safetensors` checkpoint with its `.json` card (None without a readable card)."""
    card = safe_json(path.with_suffix(".json"))
    if card is None or not isinstance(card.get("spec"), dict):
        return None
    extra = card.get("extra") if isinstance(card.get("extra"), dict) else {}
    if kind == "ancestry" and extra.get("role") in ("learngene", "baseline"):
        kind = "descendant"  # a model saved by `train --save-models`
    node = Node(id=node_id, kind=kind, name=path.stem, sha256=str(card.get("sha256") or ""), origin=origin,
                path=str(path), info={"arch": card["spec"].get("arch"), "spec": card["spec"],
                                      "epochs": card.get("epochs"), "command": card.get("command", ""),
                                      "split": _split_summary(card.get("split"), str(card.get("dataset", "")))})
    if isinstance(card.get("base_accuracy"), (int, float)):
        node.results["base_accuracy"] = card["base_accuracy"]
    if kind == "pseudo":
        node.results["test_accuracy"] = card.get("base_accuracy")
    if extra.get("ancestry_sha256"):
        node.refs.append([("sha", str(extra["ancestry_sha256"]))])
    return node


def learngene_node(path: Path, node_id: str, origin: str, base: Path) -> Node | None:
    """A node for a learngene file; its parents: the ancestry (by hash) and the condense result it chose by."""
    meta = learngene_meta(path)
    if meta is None:
        return None
    extra = meta.get("extra") if isinstance(meta.get("extra"), dict) else {}
    spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    node = Node(id=node_id, kind="learngene", name=path.stem, sha256=file_sha256(path), origin=origin,
                path=str(path), info={"arch": spec.get("arch"), "layers": meta.get("layers"),
                                      "layer_names": meta.get("layer_names"), "method": meta.get("method"),
                                      "recipe": (extra.get("recipe") or {}).get("placement"),
                                      "command": extra.get("command", ""),
                                      "split": _split_summary(extra.get("split"), str(extra.get("dataset", "")))})
    if meta.get("ancestry_sha256"):
        node.refs.append([("sha", str(meta["ancestry_sha256"]))])
    choice = extra.get("choice")
    if isinstance(choice, str) and choice.endswith(".json"):
        node.refs.append([("path", str((base / choice).resolve()))])
    return node


def similarity_node(path: Path, node_id: str, origin: str) -> Node | None:
    """A node for a condense result (`SimilarityResult` JSON)."""
    data = safe_json(path)
    if data is None or "matrix" not in data:
        return None
    anc = data.get("ancestry") if isinstance(data.get("ancestry"), dict) else {}
    extras = data.get("extras") if isinstance(data.get("extras"), dict) else {}
    node = Node(id=node_id, kind="condense", name=path.stem, sha256=file_sha256(path), origin=origin,
                path=str(path), info={"method": data.get("method"), "selected": data.get("selected"),
                                      "selection": data.get("selection"), "arch": anc.get("arch")})
    if isinstance(extras.get("pd_test_acc"), (int, float)):
        node.results["pseudo_descendant_acc"] = extras["pd_test_acc"]
        node.results["chance"] = extras.get("pd_chance")
    if anc.get("sha256"):
        node.refs.append([("sha", str(anc["sha256"]))])
    return node


def probe_node(path: Path, node_id: str, origin: str) -> Node | None:
    """A node for a probe result: the measured gain of inheriting each single layer."""
    data = safe_json(path)
    if data is None or "single" not in data:
        return None
    anc = data.get("ancestry") if isinstance(data.get("ancestry"), dict) else {}
    gains = [s.get("gain", {}).get("mean") for s in data.get("single") or [] if isinstance(s, dict)]
    node = Node(id=node_id, kind="probe", name=path.stem, sha256=file_sha256(path), origin=origin, path=str(path),
                info={"layers": data.get("chosen"), "settings": data.get("settings")},
                results={"single_layer_gain": gains})
    chosen = (data.get("accuracy") or {}).get("chosen") if isinstance(data.get("accuracy"), dict) else None
    base = (data.get("accuracy") or {}).get("baseline") if isinstance(data.get("accuracy"), dict) else None
    if isinstance(chosen, dict) and isinstance(base, dict):
        node.results["gain"] = {"mean": chosen.get("mean", 0) - base.get("mean", 0), "n": len(chosen.get("per_task", []))}
    if anc.get("sha256"):
        node.refs.append([("sha", str(anc["sha256"]))])
    return node


def descendant_summary(node: Node, summary: dict[str, Any] | None) -> None:
    """Fill a descendant node's settings and results from a train `summary.json`."""
    if not summary:
        return
    node.info.update({k: summary[k] for k in ("source", "tasks", "train") if k in summary})
    recipe = summary.get("recipe") if isinstance(summary.get("recipe"), dict) else {}
    if recipe:
        node.info["layers"] = [s.get("layer") for s in recipe.get("slots", [])
                               if isinstance(s, dict) and s.get("source") == "inherit"]
        node.info["placement"] = recipe.get("placement")
    node.results.update(gain_of(summary.get("summary")))


def file_node(path: Path) -> Node | None:
    """A node for a learngene file or a checkpoint with its card named by path (None for anything else)."""
    return (learngene_node(path, f"file:{path.stem}", "file", Path.cwd())
            or checkpoint_node(path, f"file:{path.stem}", "file"))
