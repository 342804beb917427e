"""Where the app finds things: assets, runs and the default ancestry (each overridable by env var).

- `LEARNGENE_RUNS_DIR`: the job folders and the studio state file (default `<repo>/runs`).
- `LEARNGENE_ASSETS_DIR`: the shipped ancestry checkpoints (default `<repo>/assets`).
- `LEARNGENE_ANCESTRY`: the checkpoint the app opens on (default `<assets>/lg_vit_tiny.safetensors`).
- `LEARNGENE_EXPORT_ROOT`: where exports are written (default `exports/` beside the runs folder).
- `LEARNGENE_MAX_UPLOAD_MB`: the largest upload (default 200).

Tests point these at `tmp_path` so that nothing they do touches the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT = "lg_vit_tiny.safetensors"
RUNS_ENV, ASSETS_ENV, ANCESTRY_ENV = "LEARNGENE_RUNS_DIR", "LEARNGENE_ASSETS_DIR", "LEARNGENE_ANCESTRY"
UPLOAD_ENV, EXPORT_ENV = "LEARNGENE_MAX_UPLOAD_MB", "LEARNGENE_EXPORT_ROOT"


def runs_dir() -> Path:
    """The folder that holds one sub-folder per job."""
    return Path(os.environ.get(RUNS_ENV) or ROOT / "runs")


def assets_dir() -> Path:
    """The folder of the shipped ancestry checkpoints and their model cards."""
    return Path(os.environ.get(ASSETS_ENV) or ROOT / "assets")


def uploads_dir() -> Path:
    """Where uploaded checkpoints and learngene files are kept (inside the runs folder)."""
    return runs_dir() / ".uploads"


def max_upload_bytes() -> int:
    """The largest file a person may upload (`LEARNGENE_MAX_UPLOAD_MB`, default 200 MiB)."""
    try:
        mb = float(os.environ.get(UPLOAD_ENV) or 200)
    except ValueError:
        mb = 200.0
    return int(max(mb, 0.0) * 2**20)


def export_root() -> Path:
    """The only folder the app writes exports into (`LEARNGENE_EXPORT_ROOT`, default `exports/` beside the runs
    folder); each person has a folder of their own in it."""
    env = os.environ.get(EXPORT_ENV)
    return Path(env) if env else runs_dir().resolve().parent / "exports"


def default_ancestry() -> Path:
    """The embedded default ancestry checkpoint the app opens on."""
    env = os.environ.get(ANCESTRY_ENV)
    return Path(env) if env else assets_dir() / DEFAULT_CHECKPOINT


def shipped_ancestries() -> list[Path]:
    """Every checkpoint in the assets folder plus the configured default, default first."""
    from learngene.models import shipped_checkpoints

    found = shipped_checkpoints(assets_dir())
    default = default_ancestry()
    return [default] + [p for p in found if p.resolve() != default.resolve()]


CREATE_DEFAULT_HINT = (
    "make assets   # or: .venv/bin/python -m learngene accumulate --arch lg_vit_tiny --images-per-class 300 "
    f"--holdout-per-class 50 --epochs 16 --out assets/{DEFAULT_CHECKPOINT}"
)
