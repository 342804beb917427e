"""The four advantages, as a benchmark: `learngene.descend.advantages` run from `bench/` with
`--write-docs` putting its table into docs/results.md. The study itself — rows, plan,
journal, statistics and figures — lives in the library and is also `python -m learngene advantages`
(and the Runs page), so the figures here are what a user gets.

    python -m bench.advantages --quick --ancestry /tmp/anc.safetensors   # minutes, development
    python -m bench.advantages --threads 1 --write-docs                  # the full study
    python -m bench.advantages --from-csv docs/advantages.csv --figures-dir docs/figures --write-docs
                                      # tables, figures and section again from a study's CSV, nothing trained
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from bench._common import add_common_args, command_line, finish, machine_info, run_cli, section, setup
from learngene.cli.advantages import add_study_arguments, given_similarities, study_from_args
from learngene.descend.advantages import run_study


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.advantages", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_arguments(p, quick=False)
    p.add_argument("--from-csv", metavar="CSV", default=None,
                   help="train nothing: make the tables, figures and docs section again from the runs of a study's "
                        "advantages.csv (e.g. docs/advantages.csv); the plan is read from its rows, settings it does "
                        "not record (n-way, batch, test set size, task seed) are the study's defaults")
    add_common_args(p, "advantages")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from learngene.descend.advantages import default_ancestries

    args = parse_args(argv)
    device = setup(args)
    if args.from_csv:
        return from_csv(args, argv, device)
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


def from_csv(args: argparse.Namespace, argv: list[str] | None, device) -> int:
    """The report of a finished study from its CSV (`advantages_report.load_csv`): nothing is trained."""
    from learngene.descend import advantages_report as report

    results, study = report.load_csv(args.from_csv)
    with open(args.from_csv, newline="") as f:
        devices = sorted({row.get("device") or "unknown" for row in csv.DictReader(f)})
    out = Path(args.out)
    figures = report.write_figures(results, study, Path(args.figures_dir) if args.figures_dir else out / "figures")
    n = sum(len(r.runs) for r in results)
    source = (f"Made from the {n:,} runs recorded in `{args.from_csv}` (trained on: {', '.join(devices)}; nothing "
              "was trained by this command, and the machine line above is the one that made the tables). Settings "
              "the CSV does not record are the study's defaults, as stated above.")
    body = report.markdown(results, study, figures, Path(args.docs).parent, sum(r.seconds for r in results),
                           source=source)
    (out / "advantages.md").write_text(body + "\n")
    print(body)
    print(f"\nfigures: {', '.join(str(f) for f in figures)}")
    finish(args, "advantages", section("advantages", "The four advantages: learngene vs random init", body,
                                       command_line("bench.advantages", argv), machine_info(device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
