"""The Hub folder: `model.safetensors`, `config.json` (what the studio reads back) and `README.md`.

`config.json` (format `learngene.hub/1`):

| key | meaning |
| --- | --- |
| `format`, `kind` | `learngene.hub/1`; `ancestry` or `learngene` |
| `weights`, `sha256` | the weights file's name (always `.safetensors`) and its SHA-256 |
| `name` | a short name (the stem the files get on import) |
| `card` | an ancestry's model card (`learngene.models.ModelCard` as JSON) |
| `learngene` | a learngene's architecture, layers, layer names, method and ancestry hash |
| `split` | the class split the weights are bound to (checked on import) |
| `parents`, `lineage` | the parents' hashes; every ancestor as {id, kind, name, sha256, parents, info, results} |
| `results` | what was measured (accuracy, gains of descendant runs) |

The README's YAML metadata repeats the hash (`learngene_sha256`), so a card edited apart from the
weights is refused as well.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from learngene.errors import CheckpointError

FORMAT = "learngene.hub/1"
CONFIG = "config.json"
README = "README.md"
WEIGHTS = "model.safetensors"
KINDS = ("ancestry", "learngene")
MAX_CONFIG = 4 << 20  # bytes of config.json / README.md read at most
MAX_CLASSES = 1 << 20  # class ids a split record may list
_SHA = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def slug(name: str) -> str:
    """`name` as a file stem: letters, digits, `_.-`, at most 80 characters."""
    out = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))[:80].strip("._-")
    return out if out and out != "config" else "model"


def read_small_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object of at most MAX_CONFIG bytes; `CheckpointError` naming `what` otherwise."""
    if not path.is_file():
        raise CheckpointError(f"{what}: {path.name} is missing in {path.parent}")
    if path.stat().st_size > MAX_CONFIG:
        raise CheckpointError(f"{what}: {path.name} is larger than {MAX_CONFIG >> 20} MiB; not a studio config")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{what}: {path.name} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{what}: {path.name} must hold a JSON object")
    return data


def check_config(config: dict[str, Any], what: str) -> None:
    """Refuse a config.json the studio did not write: format, kind, weights name, hash."""
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{what}: config.json has format {str(config.get('format'))[:40]!r}, expected "
                              f"{FORMAT!r} (a folder written by `python -m learngene hub export`)")
    if config.get("kind") not in KINDS:
        raise CheckpointError(f"{what}: config.json kind must be one of {', '.join(KINDS)}")
    weights = str(config.get("weights") or "")
    if Path(weights).suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(f"{what}: refused: the weights {weights[:80]!r} are a pickle; Learngene Studio reads "
                              "weights only from .safetensors files, which cannot carry code")
    if not _NAME.fullmatch(weights) or not weights.endswith(".safetensors"):
        raise CheckpointError(f"{what}: config.json must name a .safetensors weights file in the folder itself")
    sha = config.get("sha256")
    if not isinstance(sha, str) or not sha:
        raise CheckpointError(f"{what}: config.json records no sha256 of the weights; refused (an unhashed "
                              "file cannot be checked)")
    if not _SHA.fullmatch(sha):
        raise CheckpointError(f"{what}: config.json's sha256 is not 64 hex digits")


def check_split(record: Any, what: str) -> None:
    """A split record must be empty (unknown) or three disjoint, non-empty lists of class ids (with names
    of the same lengths when it has names)."""
    from learngene.data.base import ClassSplit
    from learngene.errors import DataError

    if record in (None, {}):
        return
    parts = ("base", "open_world", "novel")
    if not isinstance(record, dict) or not all(isinstance(record.get(p), list) for p in parts):
        raise CheckpointError(f"{what}: its split record needs base, open_world and novel class lists")
    ids = [c for p in parts for c in record[p]]
    if len(ids) > MAX_CLASSES or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in ids):
        raise CheckpointError(f"{what}: its split record's class ids must be non-negative integers")
    try:
        ClassSplit.from_dict({p: record[p] for p in parts}).validate(max(ids) + 1)
    except DataError as exc:
        raise CheckpointError(f"{what}: its split record is invalid: {exc}") from None
    names = record.get("names")
    if names is None:
        return
    ok = isinstance(names, dict) and all(
        isinstance(names.get(p), list) and len(names[p]) == len(record[p])
        and all(isinstance(n, str) for n in names[p]) for p in parts)
    if not ok or len({n for p in parts for n in names[p]}) != len(ids):
        raise CheckpointError(f"{what}: its split record's class names must be three disjoint lists of strings "
                              "as long as the id lists")
