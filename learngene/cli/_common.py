"""Argument groups shared by the commands, so every command spells an option the same way."""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

from learngene.errors import ConfigError
from learngene.train.config import MAX_BATCH_SIZE, MAX_EPOCHS, TrainConfig

_PACKAGE = Path(__file__).resolve().parents[1]


def source_constant(module: str, name: str) -> int:
    """The module-level number `name` of learngene module `module` (e.g. "data.tasks"), read from its
    source without importing it: importing `learngene.data` would load torch just to build a parser."""
    path = _PACKAGE.joinpath(*module.split(".")).with_suffix(".py")
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"learngene.{module} defines no constant {name}")


def resolve_sources(args: argparse.Namespace, say=print) -> None:
    """Turn --ancestry / --learngene values that are Hub sources (a folder written by `learngene hub export`,
    or `hf-hub:OWNER/NAME`) into the checked local files they import as (see `learngene.hub`); other values
    are left as typed."""
    from learngene.hub import is_hub_source

    for option in ("ancestry", "learngene"):
        value = getattr(args, option, None)
        values = value if isinstance(value, list) else [value]
        if not any(is_hub_source(v) for v in values):
            continue
        from learngene.hub import resolve

        local = []
        for v in values:
            if is_hub_source(v):
                path, entry = resolve(v, kind=option)
                say(f"--{option} {v}: checked, sha256 {entry['sha256'][:12]}... ({entry['id']})")
                v = str(path)
            local.append(v)
        setattr(args, option, local if isinstance(value, list) else local[0])


def add_run_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", default=None,
                   help="run folder to write metrics/progress/outputs into (set by the job manager; "
                        "default: $LEARNGENE_RUN_DIR, else none)")


def add_data(p: argparse.ArgumentParser, images_per_class: bool = False, ancestry: bool = True) -> None:
    """The data options; `ancestry`: the command uses an ancestry, whose card supplies the defaults."""
    g = p.add_argument_group("data")
    card = " (default: the ancestry card's, else shapes)" if ancestry else " (default: shapes)"
    g.add_argument("--dataset", default=None if ancestry else "shapes",
                   help="'shapes' (embedded default), 'cifar100', or 'folder:PATH'" + card)
    g.add_argument("--data-root", default=None, help="where a downloadable data set lives (cifar100)")
    g.add_argument("--download", action="store_true", help="download the data set if missing (needs network)")
    g.add_argument("--data-seed", type=int, default=None,
                   help="generation seed of the embedded data set and class-split shuffle of a folder"
                        + (" (default: the ancestry card's, else 0)" if ancestry else " (default: 0)"))
    g.add_argument("--split-file", default=None, metavar="JSON",
                   help='class split {"base": [names], "open_world": [names], "novel": [names]}'
                        + (" (default: the ancestry card's split)" if ancestry else ""))
    g.add_argument("--flip", dest="flip_mode", choices=["auto", "on", "off"], default="auto",
                   help="horizontal-flip augmentation; off for data where a mirror image is another class "
                        "(letters, digits). auto: on for shapes and cifar100, off for folders"
                        + (", or the ancestry card's setting" if ancestry else "") + " (default: auto)")
    g.add_argument("--img-size", dest="img_size", type=int, default=None, metavar="PX",
                   help="image side length in pixels, made from each image's native resolution (cifar100 and "
                        "folder: data; 224 for timm's *_224 models; from "
                        f"{source_constant('data.sources', 'MIN_IMAGE_SIZE')} to "
                        f"{source_constant('data.sources', 'MAX_IMAGE_SIZE')}, shapes: 8 to 256)"
                        + (" (default: the ancestry's input size, else 32)" if ancestry else " (default: 32)"))
    if images_per_class:
        g.add_argument("--images-per-class", type=int, default=None,
                       help="use only this many images per class (generated for shapes, the first N of "
                            f"each class otherwise; quick tries; at most {source_constant('data.sources', 'MAX_IMAGES_PER_CLASS')})")


def load_data(args: argparse.Namespace, bound=None, say=print):
    """Load the data set the options name, under the split the ancestry binds (see `learngene.data.binding`).

    `bound`: the ancestry's (or learngene file's) `Bound` split record, or None; it also fixes the image
    size (--img-size: default the ancestry's). Sets ``ds.meta["flip"]`` from --flip and prints one line
    saying which split is used.
    """
    from learngene.data.binding import load_bound
    from learngene.data.sources import option_names

    typed = {"images_per_class": "--images-per-class"} if hasattr(args, "images_per_class") else {}
    if hasattr(args, "img_size"):
        typed["image_size"] = "--img-size"
    with option_names(**typed):  # a bound's message names the option this command has
        ds, line = load_bound(args.dataset, bound, root=args.data_root, download=args.download,
                              data_seed=args.data_seed, split_file=args.split_file,
                              images_per_class=getattr(args, "images_per_class", None), flip=args.flip_mode,
                              image_size=getattr(args, "img_size", None))
    say(line)
    return ds


def add_train(p: argparse.ArgumentParser, **defaults) -> None:
    """Training hyperparameters, mapped 1:1 onto `TrainConfig` fields."""
    d = {**TrainConfig().to_dict(), **defaults}
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=d["epochs"],
                   help=f"(default: {d['epochs']}, at most {MAX_EPOCHS})")
    g.add_argument("--batch-size", type=int, default=d["batch_size"],
                   help=f"(default: {d['batch_size']}, at most {MAX_BATCH_SIZE})")
    g.add_argument("--lr", type=float, default=d["lr"], help=f"learning rate (default: {d['lr']})")
    g.add_argument("--weight-decay", type=float, default=d["weight_decay"],
                   help=f"(default: {d['weight_decay']})")
    g.add_argument("--optimizer", choices=["adamw", "sgd"], default=d["optimizer"])
    g.add_argument("--schedule", choices=["cosine", "constant"], default=d["schedule"])
    g.add_argument("--warmup-epochs", type=int, default=d["warmup_epochs"])
    g.add_argument("--label-smoothing", type=float, default=d["label_smoothing"],
                   help=f"a fraction in [0, 1) (default: {d['label_smoothing']})")
    g.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no augmentation at all (neither flip nor shift)")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default=d["device"],
                   help="auto = CUDA when present (default: auto)")
    g.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on CUDA")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA only)")
    g.add_argument("--seed", type=int, default=d["seed"], help=f"(default: {d['seed']})")
    g.add_argument("--eval-every", type=int, default=d["eval_every"])


def train_config(args: argparse.Namespace, ds=None) -> TrainConfig:
    """The TrainConfig of the options; with the loaded data set `ds`, its flip setting too."""
    keys = TrainConfig().to_dict().keys()
    values = {k: getattr(args, k) for k in keys if hasattr(args, k) and k != "flip"}
    if ds is not None and "flip" in ds.meta:
        values["flip"] = bool(ds.meta["flip"])
    try:
        return TrainConfig.from_dict(values)
    except ConfigError as exc:  # TrainConfig names its fields; the user typed options: `--label-smoothing`
        typed = [k for k in values if k != "flip"]
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, typed)) + r")\b") if typed else None
        msg = pattern.sub(lambda m: "--" + m.group(1).replace("_", "-"), str(exc)) if pattern else str(exc)
        raise ConfigError(msg) from None


def command_line() -> str:
    """The command as typed, for model cards and run configs."""
    return shlex.join([sys.executable.rsplit("/", 1)[-1], "-m", "learngene", *sys.argv[1:]])


def parse_overrides(items: list[str]) -> dict:
    """KEY=VALUE strings (from repeated --set) to a dict; values are parsed as JSON where they can be."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad --set {item!r}: expected KEY=VALUE, e.g. --set depth=6")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# ------------------------------------------------------------------ paths a user types


def _blocking_file(p: Path) -> Path | None:
    """The nearest existing ancestor of `p` (or `p` itself) when it is not a folder, else None."""
    for q in (p, *p.parents):
        if q.exists():
            return None if q.is_dir() else q
    return None


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def existing_dir_or_missing(path: str | os.PathLike, option: str) -> Path:
    """A folder to read from: refuse a path that is a file or an unreadable folder; a missing one is fine."""
    p = Path(path).expanduser()
    blocker = _blocking_file(p)
    if blocker is not None:
        what = "is a file" if blocker == p else f"lies under {blocker}, which is a file"
        raise ConfigError(f"{option} {p} {what}; a folder is needed")
    if p.is_dir():
        try:
            with os.scandir(p):
                pass
        except OSError as exc:
            raise ConfigError(f"{option} {p} cannot be read ({_reason(exc)})") from None
    return p


def output_dir(path: str | os.PathLike, option: str) -> Path:
    """A folder to write into: created when missing, then checked by writing a probe file in it.

    Raises a one-line ConfigError naming `option`, the path and the problem (a file where a folder is
    needed, a folder that cannot be created, one that is not writable).
    """
    p = existing_dir_or_missing(path, option)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {p} cannot be created ({_reason(exc)})") from None
    try:
        fd, probe = tempfile.mkstemp(dir=p, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{option} {p} is not writable ({_reason(exc)})") from None
    return p


def output_file(path: str | os.PathLike, option: str) -> Path:
    """A file to write: refuse a folder, and a file whose folder cannot be created or written into."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise ConfigError(f"{option} {p} is a folder; a file path is needed")
    output_dir(p.parent, f"{option} {p}: its folder")
    if p.exists():
        try:
            with open(p, "ab"):
                pass
        except OSError as exc:
            raise ConfigError(f"{option} {p} exists and cannot be overwritten ({_reason(exc)})") from None
    return p
