"""The `--backend`, `--ray-address`, `--ray-gpus` and `--workers` options of sweep, advantages and
accumulate (importing this imports neither torch nor ray)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from learngene.cluster import INSTALL_HINT
from learngene.errors import ConfigError

MAX_WORKERS = 1024
DEFAULT_WORKERS = 2


def add_backend_options(p: argparse.ArgumentParser, *, workers: bool = False) -> None:
    """Add the backend options; `workers`: data-parallel training (accumulate) instead of one task per run."""
    g = p.add_argument_group(f"distributed training on Ray (the 'cluster' extra: {INSTALL_HINT})")
    what = ("data-parallel training with Ray Train (DDP over --workers processes)" if workers else
            "every planned run as a Ray task (one CPU each, --threads CPUs when set), recorded by this process")
    g.add_argument("--backend", choices=["local", "ray"], default="local",
                   help=f"local = in this process (default); ray = {what}")
    g.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                   help="the head of a running Ray cluster to use (or 'auto'); default: start a local Ray with "
                        "this machine's CPUs for this command, stopped when it ends")
    if workers:
        g.add_argument("--workers", type=int, default=None,
                       help=f"training processes with --backend ray, each with its share of every batch "
                            f"(default: {DEFAULT_WORKERS})")
    else:
        g.add_argument("--ray-gpus", type=float, default=None, metavar="FRACTION",
                       help="GPUs each run asks for on Ray; a fraction lets small models share a GPU "
                            "(default: 0.25 when training on CUDA, else 0)")


_HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")


def check_ray_address(address: str | None, option: str = "--ray-address") -> None:
    """Refuse a Ray address that cannot be one, saying what is wrong with it (scheme, port, host)."""
    if address is None or address == "auto":
        return
    text = address.strip()
    shown = repr(address[:100])
    if not text:
        raise ConfigError(f"{option} is empty; give the Ray head as HOST:PORT (e.g. 127.0.0.1:6379) or 'auto'")
    scheme, sep, rest = text.partition("://")
    if sep:
        what = ("Ray Client addresses (ray://) are not supported" if scheme.lower() == "ray"
                else f"the scheme {scheme}:// is not supported (it is not a web address)")
        raise ConfigError(f"{option} {shown}: {what}; give the Ray head's GCS address as HOST:PORT "
                          "(port 6379 unless the head was started with another), e.g. 127.0.0.1:6379")
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{option} {shown} is not HOST:PORT (e.g. 127.0.0.1:6379) or 'auto'")
    if not port.isdigit():
        raise ConfigError(f"{option} {shown}: the port {port[:20]!r} is not a number")
    if not 1 <= int(port) <= 65535:
        raise ConfigError(f"{option} {shown}: the port {int(port)} is out of range (1 to 65535)")
    if not _HOST.fullmatch(host):
        raise ConfigError(f"{option} {shown}: {host[:60]!r} is not a host name or IP address")


def check_backend_options(args: argparse.Namespace) -> None:
    """Refuse inconsistent backend options, a malformed --ray-address, and --backend ray without Ray
    installed, before any work."""
    ray = args.backend == "ray"
    check_ray_address(getattr(args, "ray_address", None))
    if not ray:
        given = [name for name, value in (("--ray-address", args.ray_address), ("--workers", getattr(args, "workers", None)),
                                          ("--ray-gpus", getattr(args, "ray_gpus", None))) if value is not None]
        if given:
            raise ConfigError(f"{' and '.join(given)} only apply with --backend ray")
    workers = getattr(args, "workers", None)
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers must be from 1 to {MAX_WORKERS}, got {workers}")
    if ray and "workers" in args and workers is None:
        args.workers = DEFAULT_WORKERS
    gpus = getattr(args, "ray_gpus", None)
    if gpus is not None and not 0 <= gpus <= 64:
        raise ConfigError(f"--ray-gpus must be from 0 to 64 (GPUs per run), got {gpus}")
    if ray:
        from learngene.cluster.backend import require_ray

        require_ray(local=not args.ray_address)


def ray_backend(args: argparse.Namespace, device: str, log: Callable[[str], None] = print):
    """The `RayBackend` the options ask for (None for --backend local); open it with `with`."""
    if args.backend != "ray":
        return None
    from learngene.cluster.backend import RayBackend
    from learngene.train.trainer import resolve_device

    gpus = args.ray_gpus if args.ray_gpus is not None else (0.25 if resolve_device(device).type == "cuda" else 0.0)
    return RayBackend(args.ray_address, num_cpus=max(1, args.threads or 1), num_gpus=gpus, log=log)


def backend_argv(backend: str, ray_address: str | None = None, workers: int | None = None) -> list[str]:
    """The command-line words for a backend choice (what the app puts into a command it starts)."""
    if backend == "local":
        return []
    words = ["--backend", backend]
    if ray_address:
        words += ["--ray-address", ray_address]
    if workers is not None:
        words += ["--workers", str(workers)]
    return words
