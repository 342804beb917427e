"""The layers of `learngene/`, read from its imports (every import, also those inside functions).

A folder is a subpackage of `learngene/` (`cli`, `cluster`, `descend`, ...); the top-level modules
(`errors`, `runlog`, `text`, `reporting`, ...) are the base folder, which imports no subpackage.
`learngene/__main__.py` is the entry point and may import anything, as may `cli/`, which only the
entry point imports. Between folders there is no circle, and no circle of modules crosses a folder:
each folder can be read, tested and moved knowing only the folders below it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "learngene"
BASE = "(base)"
ENTRY = "(entry)"


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package at `root` (a package is its __init__)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The names an import statement (or `importlib.import_module("literal")`) may load."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            here = module.split(".") if is_package else module.split(".")[:-1]
            here = here[:len(here) - node.level + 1]
            base = ".".join(here + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        return [base] + [f"{base}.{a.name}" for a in node.names]
    if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return [node.args[0].value]
    return []


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in its file)."""
    mods = modules(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            graph[name] |= {t for t in _targets(node, name, path.name == "__init__.py") if t in mods and t != name}
    return graph


def folder(module: str, packages: set[str] | None = None) -> str:
    """The folder a module belongs to: its subpackage, the base (top-level modules) or the entry point."""
    parts = module.split(".")
    if parts[1:] == ["__main__"]:
        return ENTRY
    if len(parts) > 2 or (len(parts) == 2 and packages is not None and module in packages):
        return parts[1]
    return BASE


def folder_graph(graph: dict[str, set[str]], packages: set[str]) -> dict[tuple[str, str], list[str]]:
    """(folder, folder) -> the module imports that make that edge."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for a, targets in graph.items():
        for b in targets:
            fa, fb = folder(a, packages=packages), folder(b, packages=packages)
            if fa != fb:
                edges[fa, fb].append(f"{a} -> {b}")
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def _packages(root: Path) -> set[str]:
    return {m for m, p in modules(root).items() if p.name == "__init__.py"}


def _explain(edges: dict[tuple[str, str], list[str]], comp: list[str]) -> str:
    """The edges of a circle of folders, those running both ways first (with up to 3 imports each)."""
    inside = sorted((k for k in edges if k[0] in comp and k[1] in comp), key=lambda k: (k[::-1] not in edges, k))
    return "; ".join(f"{a} -> {b} ({', '.join(sorted(edges[a, b])[:3])})" for a, b in inside)


def test_no_cycle_between_folders():
    packages = _packages(PACKAGE)
    edges = folder_graph(import_graph(PACKAGE), packages)
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    found = cycles(dict(graph))
    assert not found, "folders that import each other: " + " | ".join(_explain(edges, c) for c in found)


def test_base_modules_import_no_subpackage():
    packages = _packages(PACKAGE)
    edges = folder_graph(import_graph(PACKAGE), packages)
    up = {k: v for k, v in edges.items() if k[0] == BASE}
    assert not up, f"top-level modules import subpackages: {dict(up)}"


def test_only_the_entry_point_imports_cli():
    packages = _packages(PACKAGE)
    edges = folder_graph(import_graph(PACKAGE), packages)
    bad = {k: v for k, v in edges.items() if k[1] == "cli" and k[0] != ENTRY}
    assert not bad, f"the command line is imported from below it: {dict(bad)}"


def test_cluster_never_imports_descend():
    packages = _packages(PACKAGE)
    edges = folder_graph(import_graph(PACKAGE), packages)
    reaching = edges.get(("cluster", "descend"), [])
    assert not reaching, f"the Ray executor reaches into the method: {reaching}"


def test_no_module_cycle_across_folders():
    packages = _packages(PACKAGE)
    graph = import_graph(PACKAGE)
    crossing = [c for c in cycles(graph) if len({folder(m, packages=packages) for m in c}) > 1]
    assert not crossing, f"module circles that cross folders: {crossing}"


def test_the_checker_sees_imports_in_functions_and_relative_ones(tmp_path):
    """The rules above hold only if the reader finds every import: a circle closed by a relative
    import inside a function, and one by `importlib.import_module`, are found."""
    pkg = tmp_path / "learngene"
    for sub in ("low", "high"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text("def f():\n    import importlib\n    importlib.import_module('learngene.high.b')\n")
    (pkg / "low" / "a.py").write_text("def f():\n    from ..high import b\n")
    (pkg / "high" / "b.py").write_text("from learngene.low.a import f\n")
    graph = import_graph(pkg)
    assert graph["learngene.low.a"] == {"learngene.high", "learngene.high.b"}
    assert graph["learngene.base"] == {"learngene.high.b"}
    packages = _packages(pkg)
    assert sorted(cycles(graph)) == [["learngene.high.b", "learngene.low.a"]]
    edges = folder_graph(graph, packages)
    assert {("low", "high"), ("high", "low"), (BASE, "high")} <= set(edges)
