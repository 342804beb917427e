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
import re
import sys
from pathlib import Path

from learngene.errors import CheckpointError, LearngeneError, is_storage_failure, storage_error
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


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the command that was run (a subcommand's own, for `data info`, `jobs list`...)."""
    target = args._subparsers.get(args.command, parser)
    nested = [v for k, v in vars(args).items() if k.endswith(("_command", "action")) and isinstance(v, str)]
    for action in target._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name in nested:
                if name in action.choices:
                    return action.choices[name]
    return target


def typed_options(message: str, parser: argparse.ArgumentParser) -> str:
    """`message` with the settings it names (`n_way`, `k_shot`, `img_size`...) written as the options the
    user typed (`--n-way`, `--k-shot`, `--img-size`). Only names with an underscore are replaced, never
    inside a path or a `KEY=VALUE`, so prose and file names stay as they are."""
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or "_" not in action.dest:
            continue
        pattern = rf"(?<![\w\-./=]){re.escape(action.dest)}(?![\w=/])"
        message = re.sub(pattern, longs[0], message)
    return message


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=chosen or "")
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's own parser, whose usage names its options (not the top level's)
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if getattr(args, "ancestry", None) or getattr(args, "learngene", None):  # a Hub folder or hf-hub: repo
            from learngene.cli._common import resolve_sources

            resolve_sources(args)
        return int(args._run(args) or 0)
    except LearngeneError as exc:  # a file's content (a card, weights) keeps its own field names
        text = str(exc) if isinstance(exc, CheckpointError) else typed_options(str(exc), _command_parser(parser, args))
        print(f"error: {text}", file=sys.stderr)
        return EXIT_USAGE if exc.usage else EXIT_FAILED
    except OSError as exc:  # a write the command did not wrap: still one line, naming the file
        if not is_storage_failure(exc):
            raise
        print(f"error: {storage_error(exc, exc.filename)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
