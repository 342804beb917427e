"""The four advantages, as a benchmark: `learngene.descend.advantages` run from `bench/` with
`--write-docs` putting its table into docs/results.md (issue 6). The study itself — rows, plan,
journal, statistics and figures — lives in the library and is also `python -m learngene advantages`
(and the Runs page), so the figures here are what a user gets.

    python -m bench.advantages --quick --ancestry /tmp/anc.safetensors   # minutes, development
    python -m bench.advantages --threads 1 --write-docs                  # the full study
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench._common import add_common_args, command_line, finish, machine_info, run_cli, section, setup
from learngene.cli.advantages import add_study_arguments, given_similarities, study_from_args
from learngene.descend.advantages import run_study


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.advantages", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_arguments(p, quick=False)
    add_common_args(p, "advantages")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from learngene.descend.advantages import default_ancestries

    args = parse_args(argv)
    device = setup(args)
    study = study_from_args(args)
    out = Path(args.out)
    paths = [Path(p) for p in args.ancestry] if args.ancestry else default_ancestries()
    info = machine_info(device)
    result = run_study(paths, study, out, device, given=given_similarities(args.similarity),
                       figures_dir=Path(args.figures_dir) if args.figures_dir else None,
                       docs_dir=Path(args.docs).parent, machine=info)
    print("\n" + result.markdown)
    print(f"\nraw rows: {result.csv_path}; figures: {', '.join(str(f) for f in result.figures)}")
    finish(args, "advantages", section("advantages", "The four advantages: learngene vs random init",
                                       result.markdown, command_line("bench.advantages", argv), info))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
