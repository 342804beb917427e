"""Argument groups shared by the commands, so every command spells an option the same way."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from learngene.errors import ConfigError
from learngene.train.config import TrainConfig


def add_run_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", default=None,
                   help="run folder to write metrics/progress/outputs into (set by the job manager; "
                        "default: $LEARNGENE_RUN_DIR, else none)")


def add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="shapes",
                   help="'shapes' (embedded default), 'cifar100', or 'folder:PATH' (default: shapes)")
    p.add_argument("--data-root", default=None, help="where a downloadable data set lives (cifar100)")
    p.add_argument("--download", action="store_true", help="download the data set if missing (needs network)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the embedded data set (default: 0)")


def add_train(p: argparse.ArgumentParser, **defaults) -> None:
    """Training hyperparameters, mapped 1:1 onto `TrainConfig` fields."""
    d = {**TrainConfig().to_dict(), **defaults}
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=d["epochs"], help=f"(default: {d['epochs']})")
    g.add_argument("--batch-size", type=int, default=d["batch_size"], help=f"(default: {d['batch_size']})")
    g.add_argument("--lr", type=float, default=d["lr"], help=f"learning rate (default: {d['lr']})")
    g.add_argument("--weight-decay", type=float, default=d["weight_decay"],
                   help=f"(default: {d['weight_decay']})")
    g.add_argument("--optimizer", choices=["adamw", "sgd"], default=d["optimizer"])
    g.add_argument("--schedule", choices=["cosine", "constant"], default=d["schedule"])
    g.add_argument("--warmup-epochs", type=int, default=d["warmup_epochs"])
    g.add_argument("--label-smoothing", type=float, default=d["label_smoothing"])
    g.add_argument("--no-augment", dest="augment", action="store_false", help="no flip/shift augmentation")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default=d["device"],
                   help="auto = CUDA when present (default: auto)")
    g.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on CUDA")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA only)")
    g.add_argument("--seed", type=int, default=d["seed"], help=f"(default: {d['seed']})")
    g.add_argument("--eval-every", type=int, default=d["eval_every"])


def train_config(args: argparse.Namespace) -> TrainConfig:
    keys = TrainConfig().to_dict().keys()
    return TrainConfig.from_dict({k: getattr(args, k) for k in keys if hasattr(args, k)})


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
