"""Where nodes are found: the shipped assets, the runs folder, the app's uploads and the imports.

Everything is derived from files that exist anyway (cards, learngene headers, results, run folders);
the only file the registry itself keeps is the imports index (`learngene.registry._imports`).
"""

from __future__ import annotations

from pathlib import Path

from learngene.registry._files import (
    checkpoint_node,
    descendant_summary,
    learngene_meta,
    learngene_node,
    probe_node,
    safe_json,
    similarity_node,
)
from learngene.registry._node import Node, file_sha256

# command -> (node kind, default output under outputs/); commands not listed make no node
RUN_KINDS: dict[str, tuple[str, str]] = {
    "accumulate": ("ancestry", "ancestry.safetensors"), "condense": ("condense", "similarity.json"),
    "inherit": ("learngene", "learngene.safetensors"), "probe": ("probe", "probe.json"),
    "train": ("descendant", "summary.json"), "sweep": ("descendant", "summary.json"),
    "advantages": ("descendant", "summary.json"), "sizes": ("descendant", "summary.json"),
}
SOURCE_OPTIONS = ("--ancestry", "--learngene", "--similarity")


def shipped(assets: Path) -> list[Node]:
    """Ancestries, pseudo-descendants, condense results, probes, learngenes and demo runs in `assets/`."""
    out: list[Node] = []
    root = assets.parent
    for path in sorted(assets.glob("*.safetensors")):
        if node := checkpoint_node(path, f"ancestry:{path.stem}", "shipped"):
            out.append(node)
    for path in sorted((assets / "pseudo").glob("*.safetensors")):
        if node := checkpoint_node(path, f"pseudo:{path.stem}", "shipped", kind="pseudo"):
            out.append(node)
    for path in sorted((assets / "similarity").glob("*.json")):
        if node := similarity_node(path, f"condense:{path.stem}", "shipped"):
            stem = path.stem.rsplit("-", 1)[0].removesuffix("-cka")
            pd = assets / "pseudo" / f"{stem}.safetensors"
            if node.info.get("method") == "cka" and pd.is_file():  # assets/similarity.sh: one pseudo-descendant
                node.refs.append([("path", str(pd.resolve()))])
            out.append(node)
    for path in sorted(assets.glob("*.probe.json")):
        if node := probe_node(path, f"probe:{path.name.removesuffix('.probe.json')}", "shipped"):
            out.append(node)
    for path in sorted((assets / "learngenes").glob("*.safetensors")):
        if node := learngene_node(path, f"learngene:{path.stem}", "shipped", root):
            out.append(node)
    for folder in sorted(p for p in (assets / "demo").glob("*") if p.is_dir()):
        if node := _demo_node(folder, assets):
            out.append(node)
    return out


def _demo_node(folder: Path, assets: Path) -> Node | None:
    """The Home page's reference demo run of an ancestry (`assets/demo/<stem>/`)."""
    meta, summary = safe_json(folder / "meta.json"), folder / "summary.json"
    if meta is None or not summary.is_file():
        return None
    node = Node(id=f"demo:{folder.name}", kind="descendant", name=f"demo {folder.name}",
                sha256=file_sha256(summary), origin="shipped", path=str(folder),
                info={"command": meta.get("command", ""), "similarity": meta.get("similarity")})
    descendant_summary(node, safe_json(summary))
    if meta.get("ancestry_sha256"):
        node.refs.append([("sha", str(meta["ancestry_sha256"]))])
    view = str(meta.get("similarity") or "")
    if view.startswith("shipped:"):  # the layers of a shipped condense result
        sim = assets / "similarity" / f"{folder.name}-{view.split(':', 1)[1]}.json"
        node.refs.append([("path", str(sim.resolve()))])
    return node


def uploads(runs: Path) -> list[Node]:
    """Ancestries and learngene files uploaded or imported by name in the app (`<runs>/.uploads/`, in a folder
    per person or not): `<folder>/<stem>.safetensors` with its card, `learngenes/<file>.safetensors`."""
    out: list[Node] = []
    up = runs / ".uploads"
    found = [*up.glob("*/*.safetensors"), *up.glob("*/*/*.safetensors")]
    for path in sorted(found):
        rel = path.relative_to(up).with_suffix("").as_posix()
        if path.parent.name == "learngenes":
            node = learngene_node(path, f"upload:{rel}", "upload", runs)
        else:
            node = checkpoint_node(path, f"upload:{path.parent.relative_to(up).as_posix()}", "upload")
        if node is not None:
            out.append(node)
    return out


def _options(argv: list[str]) -> dict[str, list[str]]:
    """The values of the source and output options in a command's argv (`--opt v` and `--opt=v`)."""
    found: dict[str, list[str]] = {}
    wanted = (*SOURCE_OPTIONS, "--out", "--save-models")
    for i, arg in enumerate(argv):
        key, eq, value = arg.partition("=")
        if key in wanted:
            if eq:
                found.setdefault(key, []).append(value)
            elif i + 1 < len(argv):
                found.setdefault(key, []).append(argv[i + 1])
    return found


def source_ref(value: str, cwd: Path) -> list[tuple[str, str]]:
    """How a typed --ancestry/--learngene/--similarity value names its node: by import source, path, hash."""
    if value.startswith("hf-hub:"):
        return [("source", value)]
    path = (cwd / value).resolve()
    refs = [("source", str(path)), ("path", str(path))]
    if path.is_file() and path.suffix == ".safetensors":
        card = safe_json(path.with_suffix(".json"))
        sha = str(card.get("sha256") or "") if card else ""
        refs.append(("sha", sha or file_sha256(path)))
    elif path.is_file():
        refs.append(("sha", file_sha256(path)))
    return refs


def run_nodes(runs: Path, default_ancestry: Path | None) -> list[Node]:
    """One node per run of a command that makes or uses a learngene (newest first), and one per model a
    `train --save-models DIR` run saved."""
    from learngene.jobs.runs import is_run_id

    out = []
    try:
        names = sorted((n for n in runs.iterdir() if is_run_id(n.name)), reverse=True)
    except OSError:
        return out
    for folder in names:
        if node := _run_node(folder, default_ancestry):
            out += [node, *_saved_models(node)]
    return out


def _saved_models(run: Node) -> list[Node]:
    """The descendants (and baselines) a run saved with their cards, each a child of the run."""
    out = []
    saved = run.info.pop("save_models", "")
    for path in sorted(Path(saved).glob("task*-*.safetensors")) if saved else []:
        node = checkpoint_node(path, f"model:{run.run_id}/{path.stem}", "run")
        if node is not None and node.kind == "descendant":
            node.refs = [[("id", run.id)]]
            out.append(node)
    return out


def _run_node(folder: Path, default_ancestry: Path | None) -> Node | None:
    config = safe_json(folder / "config.json")
    spec = config.get("spec") if config else None
    argv = spec.get("argv") if isinstance(spec, dict) else None
    if not isinstance(argv, list) or not argv or argv[0] not in RUN_KINDS:
        return None
    argv = [str(a) for a in argv]
    kind, default_out = RUN_KINDS[argv[0]]
    opts = _options(argv[1:])
    cwd = Path(str(config.get("cwd") or folder))
    typed = opts.get("--out") if kind != "descendant" else None  # a descendant's results: its summary.json
    out = (cwd / typed[0]) if typed else folder / "outputs" / default_out
    node = _output_node(kind, out, folder.name) if out.is_file() and kind != "descendant" else None
    if node is None:  # a descendant run, or a run whose output is not (yet) there: its config is its content
        node = Node(id=f"run:{folder.name}", kind=kind, name="", sha256=file_sha256(folder / "config.json"),
                    origin="run", path=str(folder))
    if kind == "descendant":
        descendant_summary(node, safe_json(out))
    node.path, node.run_id = str(folder), folder.name
    node.name = str(spec.get("name") or argv[0]) if isinstance(spec, dict) else argv[0]
    status = safe_json(folder / "status.json") or {}
    node.info.update({"command": " ".join(["learngene", *argv]), "state": status.get("state", "unknown"),
                      "output": str(out) if out.is_file() else ""})
    _run_parents(node, opts, argv[0], cwd, default_ancestry)
    return node


def _output_node(kind: str, out: Path, run_id: str) -> Node | None:
    node_id = f"run:{run_id}"
    if kind == "ancestry":
        return checkpoint_node(out, node_id, "run")
    if kind == "condense":
        return similarity_node(out, node_id, "run")
    if kind == "learngene":
        return learngene_node(out, node_id, "run", out.parent) if learngene_meta(out) is not None else None
    return probe_node(out, node_id, "run")


def _run_parents(node: Node, opts: dict[str, list[str]], command: str, cwd: Path,
                 default_ancestry: Path | None) -> None:
    """The parents a run names on its command line (the default ancestry when it names none)."""
    if command == "accumulate":
        return
    refs: list[list[tuple[str, str]]] = []
    for option in SOURCE_OPTIONS:
        refs += [source_ref(v, cwd) for v in opts.get(option, [])]
    if not opts.get("--ancestry") and not opts.get("--learngene") and default_ancestry is not None:
        refs.append([("path", str(default_ancestry.resolve()))])
    node.refs = refs + node.refs  # the output's own references after: the same parents, deduplicated later
    if opts.get("--save-models"):
        node.info["save_models"] = str(cwd / opts["--save-models"][0])
