"""`python -m learngene cluster`: the CPUs and GPUs a `--backend ray` run would get."""

from __future__ import annotations

import argparse
import json

NAME = "cluster"
HELP = "show the CPUs and GPUs of this machine's local Ray or of a running Ray cluster (--ray-address)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray-address", default=None,
                   help="HOST:PORT of a running Ray cluster's head, or 'auto' (default: the local Ray a job starts)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from learngene.cluster.info import describe, resources
    from learngene.cluster.options import check_ray_address

    check_ray_address(args.ray_address)
    info = resources(args.ray_address)
    print(json.dumps(info) if args.json else describe(info))
    return 0
