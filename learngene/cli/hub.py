"""`python -m learngene hub ...`: share ancestries and learngenes in the Hugging Face Hub's format.

    hub export ID DIR [--base-model OWNER/NAME] [--push OWNER/NAME]
    hub import SRC              (SRC: a folder written by `hub export`, or hf-hub:OWNER/NAME[@REVISION])

ID is a registry node (`python -m learngene registry list`) or the path of a checkpoint or learngene
file. Every `--ancestry` / `--learngene` option also takes such a folder or `hf-hub:OWNER/NAME`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "hub"
HELP = "export an ancestry or learngene as a Hugging Face Hub folder (model card, config, safetensors), or import one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("export", help="write model.safetensors, config.json and README.md of a registry node")
    p.add_argument("id", help="registry node id, hash prefix or name; or a checkpoint / learngene file")
    p.add_argument("dir", help="folder to write (created if missing)")
    p.add_argument("--base-model", default=None, metavar="OWNER/NAME",
                   help="the Hub repo of the model this one derives from (default: the nearest ancestor imported "
                        "from the Hub, else none)")
    p.add_argument("--push", default=None, metavar="OWNER/NAME",
                   help="also upload the folder to this Hub repo (needs `hf auth login` and the network)")
    p.add_argument("--runs-dir", default=None, help="runs folder (default $LEARNGENE_RUNS_DIR or ./runs)")
    p = sub.add_parser("import", help="check a Hub folder or hf-hub:OWNER/NAME and add it to the registry")
    p.add_argument("src", help="a folder written by `hub export`, or hf-hub:OWNER/NAME[@REVISION]")


def run(args: argparse.Namespace) -> int:
    from learngene.errors import ConfigError

    if args.action == "import":
        from learngene.hub import is_hub_source, resolve

        if not is_hub_source(args.src):
            raise ConfigError(f"{args.src} is neither hf-hub:OWNER/NAME nor a folder with a config.json")
        path, entry = resolve(args.src)
        print(f"checked {args.src}: {entry['kind']} {entry['name']} (sha256 {entry['sha256'][:12]}...)")
        print(f"registry node {entry['id']}; {len(entry['lineage'])} ancestor(s) recorded")
        print(f"use it with --{entry['kind']} {args.src}  (local copy: {path})")
        return 0
    from learngene.cli._common import output_dir
    from learngene.hub.export import export
    from learngene.registry import Registry

    reg = Registry.scan(runs=Path(args.runs_dir) if args.runs_dir else None)
    folder = export(reg, args.id, output_dir(args.dir, "DIR"), base_model=args.base_model)
    print(f"wrote {folder}/model.safetensors, config.json, README.md")
    if args.push:
        from learngene.hub.remote import push

        print(f"pushed to {push(folder, args.push)}")
    return 0
