"""The app's folders, and which way their imports run.

`app/logic` (plain Python) < `app/shared` (the server's) < `app/person` (one person's) < `app/ui` (Streamlit
views) < `app/main.py` and `pages/`: a folder imports only the folders before it, counting imports inside
functions, and `app/logic` never imports Streamlit.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["logic", "shared", "person", "ui"]


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "app" and parts[1] in ORDER else None


def test_every_app_module_lives_in_a_folder_that_says_what_it_is():
    loose = sorted(p.name for p in (ROOT / "app").glob("*.py") if p.name not in ("__init__.py", "main.py"))
    assert loose == [], f"put these in one of app/{{{','.join(ORDER)}}}: {loose}"
    for folder in ORDER:
        assert (ROOT / "app" / folder / "__init__.py").read_text().strip(), f"app/{folder} says what it holds"


def test_imports_run_one_way_between_the_app_folders():
    wrong = []
    for folder in ORDER:
        for path in sorted((ROOT / "app" / folder).glob("*.py")):
            for module in _imports(path):
                target = _folder(module)
                if target is not None and ORDER.index(target) > ORDER.index(folder):
                    wrong.append(f"app/{folder}/{path.name} imports {module}")
    assert wrong == []


def test_the_logic_folder_does_not_import_streamlit():
    found = [f"{p.name}: {m}" for p in sorted((ROOT / "app" / "logic").glob("*.py")) for m in _imports(p)
             if m.split(".")[0] == "streamlit"]
    assert found == []
