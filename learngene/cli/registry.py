"""`python -m learngene registry ...`: the studio's ancestries, condense results, learngenes and runs.

    registry list [--kind K] [--json]
    registry show ID [--json]
    registry lineage ID [--descendants] [--json]

ID is a node id (`ancestry:lg_vit_tiny`, `learngene:lg_vit_tiny-cka`, `run:<run id>`, ...), a unique
prefix of its SHA-256 (6+ hex digits) or a unique name. The nodes are read from the assets folder, the
runs folder (`--runs-dir`, else `$LEARNGENE_RUNS_DIR`, else `runs`) and the imports
(`$LEARNGENE_CACHE/imports`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "registry"
HELP = "list, show and trace the lineage of ancestries, condense results, learngenes and descendant runs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--runs-dir", default=None, help="runs folder (default $LEARNGENE_RUNS_DIR or ./runs)")
    common.add_argument("--assets-dir", default=None, help="shipped assets (default $LEARNGENE_ASSETS_DIR or assets/)")
    common.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("list", parents=[common], help="every node: id, kind, hash, parents, gain")
    p.add_argument("--kind", default=None, help="only nodes of this kind (ancestry, pseudo, condense, learngene, "
                                                "probe, descendant)")
    p = sub.add_parser("show", parents=[common], help="one node: hash, parents, children, settings and results")
    p.add_argument("id")
    p = sub.add_parser("lineage", parents=[common], help="a node and its ancestors (or, with --descendants, "
                                                         "everything made from it)")
    p.add_argument("id")
    p.add_argument("--descendants", action="store_true", help="the tree below the node instead of its ancestors")


def _gain(node) -> str:
    gain = node.results.get("gain")
    if not isinstance(gain, dict) or not isinstance(gain.get("mean"), (int, float)):
        return ""
    ci = gain.get("ci95")
    return f"gain {100 * gain['mean']:+.1f}" + (f" ± {100 * ci:.1f}" if isinstance(ci, (int, float)) else "") + " pts"


def _line(node, indent: int = 0) -> str:
    parents = ", ".join(node.parents) or "-"
    return f"{'  ' * indent}{node.id:<44} {node.kind:<10} {node.sha256[:12] or '-':<12} {_gain(node):<22} <- {parents}"


def _show(reg, node) -> str:
    lines = [f"{node.id}  ({node.kind}, {node.origin})", f"  name:     {node.name}",
             f"  sha256:   {node.sha256 or '-'}", f"  path:     {node.path or '-'}",
             f"  parents:  {', '.join(node.parents) or '-'}",
             f"  children: {', '.join(c.id for c in reg.children(node.id)) or '-'}"]
    for key, value in {**node.info, **node.results}.items():
        if value in (None, "", [], {}):
            continue
        text = json.dumps(value, default=str) if not isinstance(value, str) else value
        lines.append(f"  {key + ':':<9} {text[:300]}")
    if node.run_id:
        lines.append(f"  run:      {node.run_id} (`python -m learngene jobs show {node.run_id}`)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from learngene.registry import Registry

    reg = Registry.scan(assets=Path(args.assets_dir) if args.assets_dir else None,
                        runs=Path(args.runs_dir) if args.runs_dir else None)
    if args.action == "list":
        nodes = [n for n in reg.nodes.values() if args.kind in (None, n.kind)]
        if args.json:
            print(json.dumps([n.to_dict() for n in nodes], indent=1, default=str))
        else:
            print(f"{'id':<44} {'kind':<10} {'sha256':<12} {'results':<22} <- parents")
            print("\n".join(_line(n) for n in nodes) or "(no nodes)")
        return 0
    node = reg.get(args.id)
    if args.action == "show":
        out = {**node.to_dict(), "children": [c.id for c in reg.children(node.id)]}
        print(json.dumps(out, indent=1, default=str) if args.json else _show(reg, node))
        return 0
    chain = reg.tree(node.id) if args.descendants else reg.lineage(node.id)
    if args.json:
        print(json.dumps([{"depth": d, **n.to_dict()} for d, n in chain], indent=1, default=str))
    else:
        print("\n".join(_line(n, d) for d, n in chain))
    return 0
