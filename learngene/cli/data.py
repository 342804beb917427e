"""`python -m learngene data info|preview`: inspect a data set and its class split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from learngene.cli._common import output_file
from learngene.data import DATASETS, ImageSet, load_dataset, preview_grid
from learngene.data.base import escaped
from learngene.data.sources import MAX_DATASET_BYTES, MAX_IMAGE_SIZE, MAX_IMAGES_PER_CLASS, option_names
from learngene.errors import ConfigError, DataError

NAME = "data"
HELP = "Inspect a data set: classes, base/open-world/novel split, counts, and a preview grid."

MAX_PER_CLASS = 100  # preview images per class
MAX_SCALE = 16  # preview pixel upscaling
MAX_PREVIEW_PIXELS = 50_000_000  # the preview PNG as a whole (about 150 MB of RGB before compression)


def _dataset_args(p: argparse.ArgumentParser) -> None:
    names = ", ".join(DATASETS)
    p.add_argument("--dataset", default="shapes", help=f"data set spec: {names} (default: shapes)")
    p.add_argument("--data-root", default=None, help="folder holding downloaded data sets (cifar-100-python)")
    p.add_argument("--download", action="store_true", help="allow downloading CIFAR-100 (needs internet)")
    p.add_argument("--data-seed", "--seed", dest="seed", type=int, default=0,
                   help="generation seed of the embedded data set and class-split shuffle of a folder, as in every "
                        "other command (--seed is accepted too; default: 0)")
    p.add_argument(
        "--images-per-class", type=int, default=None,
        help=f"use at most this many images per class (at most {MAX_IMAGES_PER_CLASS}; the whole data set "
        f"at most {MAX_DATASET_BYTES // 2**30} GiB of pixels)",
    )
    p.add_argument("--img-size", dest="img_size", type=int, default=None, metavar="PX",
                   help="side length in pixels, made from each image's native resolution (default 32, from 4 to "
                        f"{MAX_IMAGE_SIZE}; shapes: 8 to 256); a large folder is streamed, so `info` reads no pixels")
    p.add_argument("--image-size", dest="image_size", type=int, default=None, help=argparse.SUPPRESS)  # older name
    p.add_argument(
        "--split-file", default=None, help='JSON {"base": [names], "open_world": [...], "novel": [...]}'
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `data info` and `data preview`."""
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    sub.required = True
    epilog = "data sets:\n" + "\n".join(f"  {k:<15} {v}" for k, v in DATASETS.items())
    kw = {"epilog": epilog, "formatter_class": argparse.RawDescriptionHelpFormatter}
    info = sub.add_parser("info", help="print classes, split sizes, per-class counts and skipped files", **kw)
    _dataset_args(info)
    info.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    prev = sub.add_parser("preview", help="write a PNG grid with a few images of each class", **kw)
    _dataset_args(prev)
    prev.add_argument("--out", required=True, help="output PNG path, e.g. grid.png")
    prev.add_argument("--per-class", type=int, default=6,
                      help=f"images per class (default 6, at most {MAX_PER_CLASS})")
    prev.add_argument("--part", choices=["all", "base", "open", "novel"], default="all", help="which classes")
    prev.add_argument("--max-classes", type=int, default=100, help="show at most this many classes")
    prev.add_argument("--scale", type=int, default=2,
                      help=f"pixel upscaling factor (default 2, at most {MAX_SCALE}); the whole grid may "
                      f"have at most {MAX_PREVIEW_PIXELS:,} pixels")


def _load(args: argparse.Namespace) -> ImageSet:
    if args.img_size is not None and args.image_size is not None and args.img_size != args.image_size:
        raise ConfigError(f"--img-size {args.img_size} and --image-size {args.image_size} disagree; give one")
    typed = "--image-size" if args.image_size is not None and args.img_size is None else "--img-size"
    size = args.img_size if args.img_size is not None else args.image_size if args.image_size is not None else 32
    with option_names(images_per_class="--images-per-class", image_size=typed):  # as typed
        return load_dataset(
            args.dataset,
            root=args.data_root,
            seed=args.seed,
            download=args.download,
            images_per_class=args.images_per_class,
            split_file=args.split_file,
            image_size=size,
        )


def _info(ds: ImageSet) -> dict[str, Any]:
    counts = ds.per_class_counts()
    parts = {p: list(ds.split.classes(p)) for p in ("base", "open", "novel")}
    part_of = {c: p for p, ids in parts.items() for c in ids}
    summary = ds.summary()
    summary["classes"] = [
        {"id": c, "name": n, "part": part_of.get(c, "-"), "images": counts[c]}
        for c, n in enumerate(ds.class_names)
    ]
    summary["skipped_files"] = ds.meta.get("skipped_files", [])
    summary["dropped_classes"] = ds.meta.get("dropped_classes", {})
    return summary


def _print_info(info: dict[str, Any]) -> None:
    s = info["split_sizes"]
    print(f"data set     {info['name']}")
    how = ", streamed from disk" if info.get("streamed") else ""
    print(f"images       {info['num_images']}  ({info['image_size']}x{info['image_size']} RGB{how})")
    print(
        f"classes      {info['num_classes']}  (base {s['base']} / open-world {s['open']} / novel {s['novel']})"
    )
    ipc = info["images_per_class"]
    print(f"per class    {ipc['min']}..{ipc['max']} images")
    print(f"skipped      {info['skipped']} undecodable file(s)")
    for f in info["skipped_files"][:10]:
        print(f"  skipped: {escaped(f)}")
    dropped = info.get("dropped_classes") or {}
    if dropped:
        print(f"left out     {len(dropped)} class folder(s) without images")
        for name, why in list(dropped.items())[:10]:
            print(f"  left out: {escaped(name)}/ ({why})")
    print()
    print(f"{'id':>4}  {'part':<6} {'images':>6}  name")
    for c in info["classes"]:
        print(f"{c['id']:>4}  {c['part']:<6} {c['images']:>6}  {escaped(c['name'])}")


def _save_preview(ds: ImageSet, args: argparse.Namespace) -> Path:
    from PIL import Image, ImageDraw

    classes = list(range(ds.num_classes)) if args.part == "all" else list(ds.split.classes(args.part))
    classes = classes[: args.max_classes]
    pixels = ((len(classes) * (ds.image_size + 2) + 2) * args.scale
              * ((args.per_class * (ds.image_size + 2) + 2) * args.scale + 150))
    if pixels > MAX_PREVIEW_PIXELS:
        raise ConfigError(f"the preview would have {pixels:,} pixels, more than {MAX_PREVIEW_PIXELS:,}; "
                          "lower --per-class, --max-classes or --scale")
    grid = preview_grid(ds, classes, args.per_class)  # (3, H, W)
    img = Image.fromarray(grid.permute(1, 2, 0).numpy())
    img = img.resize((img.width * args.scale, img.height * args.scale), Image.NEAREST)
    label_w = 150
    canvas = Image.new("RGB", (img.width + label_w, img.height), "white")
    canvas.paste(img, (label_w, 0))
    draw = ImageDraw.Draw(canvas)
    row_h = (ds.image_size + 2) * args.scale
    for row, c in enumerate(classes):
        draw.text(
            (4, 2 * args.scale + row * row_h + row_h // 3), f"{c}: {ds.class_names[c]}"[:24], fill="black"
        )
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(out, format="PNG")
    except OSError as exc:
        raise DataError(f"could not write the preview to {out}: {exc}") from None
    return out


def _check_preview_args(args: argparse.Namespace) -> None:
    """Refuse preview counts out of bounds and an unusable --out before the data set is loaded."""
    for flag, value, high in (("--per-class", args.per_class, MAX_PER_CLASS), ("--scale", args.scale, MAX_SCALE),
                              ("--max-classes", args.max_classes, None)):
        if value < 1 or (high is not None and value > high):
            raise ConfigError(f"{flag} must be {'at least 1' if high is None else f'from 1 to {high}'}, got {value}")
    output_file(args.out, "--out")


def run(args: argparse.Namespace) -> int:
    """Run `data info` or `data preview`."""
    if args.data_command == "preview":
        _check_preview_args(args)
    ds = _load(args)
    if args.data_command == "info":
        info = _info(ds)
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            _print_info(info)
    else:
        out = _save_preview(ds, args)
        print(f"wrote {out}")
    return 0
