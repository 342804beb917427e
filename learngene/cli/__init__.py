"""Command-line entry point.

Every module in this package (other than ones starting with `_`) is a command: it defines the
constants `NAME` and `HELP`, `add_arguments(parser)` and `run(args) -> int`. Commands are
discovered, so adding one means adding one file. Only the chosen command's module is imported
(names and help texts are read from the source), so `python -m learngene jobs list` never pays
for importing torch.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from pathlib import Path

from learngene.errors import LearngeneError
from learngene.runlog import EXIT_FAILED, EXIT_USAGE

_HERE = Path(__file__).parent


_SEEN: dict[tuple[str, int, int], dict[str, str]] = {}  # (path, size, mtime) -> constants, kept by a fork server


def _constants(path: Path) -> dict[str, str]:
    """The module-level string constants NAME and HELP of a command file, read without importing it (once
    per version of the file: a job forked from the fork server finds them read)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SEEN:
        _SEEN[key] = _parse_constants(path)
    return dict(_SEEN[key])


def _parse_constants(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            key = node.targets[0].id
            if key in ("NAME", "HELP"):
                found[key] = ast.literal_eval(node.value)
    return found


def commands() -> dict[str, tuple[str, str]]:
    """Command name -> (module name, help), sorted by name."""
    out = {}
    for path in sorted(_HERE.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        c = _constants(path)
        assert "NAME" in c and "HELP" in c, f"{path} must define NAME and HELP string constants"
        out[c["NAME"]] = (path.stem, c["HELP"])
    return dict(sorted(out.items()))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the `only` command's module is imported and gets its arguments (None: all)."""
    parser = argparse.ArgumentParser(
        prog="python -m learngene",
        description="Learngene Studio: condense an ancestry model into a learngene, inherit it into "
        "descendant models, and compare them against random-init baselines.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    parser.set_defaults(_subparsers={})
    for name, (module, help_text) in commands().items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        parser.get_default("_subparsers")[name] = p
        if only is None or name == only:
            mod = importlib.import_module(f"{__name__}.{module}")
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=chosen or "")
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's own parser, whose usage names its options (not the top level's)
        target = args._subparsers.get(args.command, parser)
        nested = getattr(args, "data_command", None) or getattr(args, "action", None)
        for action in target._actions:  # a subcommand's own subcommand (`data info`, `jobs list`)
            if isinstance(action, argparse._SubParsersAction) and nested in action.choices:
                target = action.choices[nested]
        target.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args._run(args) or 0)
    except LearngeneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.usage else EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
