"""Command-line entry point.

Every module in this package (other than ones starting with `_`) is a command: it defines
`NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`. Commands are discovered, so adding
one means adding one file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from learngene.errors import LearngeneError
from learngene.runlog import EXIT_FAILED, EXIT_USAGE


def _commands() -> list:
    mods = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mods.append(importlib.import_module(f"{__name__}.{info.name}"))
    return sorted(mods, key=lambda m: m.NAME)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m learngene",
        description="Learngene Studio: condense an ancestry model into a learngene, inherit it into "
        "descendant models, and compare them against random-init baselines.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in _commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except LearngeneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.usage else EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
