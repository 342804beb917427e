"""Put benchmark sections from markdown files into docs/results.md (e.g. the GPU box's results-gpu.md).

    python -m bench.docs OUT/results-gpu.md bench/out/throughput/throughput-cpu.md

Every ``<!-- bench:KEY -->`` ... ``<!-- /bench:KEY -->`` section found in the files replaces the
section of the same key in the results file (or is inserted in the usual order).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bench._common import DOCS, insert_section


def sections(text: str) -> list[tuple[str, str]]:
    """(key, section text) of every marked section in `text`."""
    found = re.finditer(r"<!-- bench:([\w.-]+) -->\n.*?<!-- /bench:\1 -->\n?", text, re.S)
    return [(m.group(1), m.group(0) if m.group(0).endswith("\n") else m.group(0) + "\n") for m in found]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.docs", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="markdown files holding benchmark sections")
    p.add_argument("--docs", default=str(DOCS), help="the results file to edit (default: docs/results.md)")
    args = p.parse_args(argv)
    n = 0
    for f in args.files:
        for key, text in sections(Path(f).read_text()):
            insert_section(args.docs, key, text)
            print(f"{args.docs}: section '{key}' from {f}")
            n += 1
    if not n:
        print("no benchmark sections found")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
