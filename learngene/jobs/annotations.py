"""What a person says about a run: a name of their choosing, tags and a note.

Stored beside the run's own files as `<run>/annotations.json`, replaced atomically, so a run folder
stays the whole truth about a run (copy the folder and its name, tags and note go with it). The job's
own `config.json` is never rewritten: the name given when it started stays there, and `name` here
overrides it where runs are shown. The CLI twin is `python -m learngene jobs annotate`.

    {"name": "lr sweep, the good one", "tags": ["keep", "paper"], "note": "free text", "updated_at": 1.7e9}
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from learngene.errors import ConfigError
from learngene.runlog import atomic_write_json, read_json
from learngene.text import printable

ANNOTATIONS_FILE = "annotations.json"
MAX_NAME = 200
MAX_TAG = 40
MAX_TAGS = 20
MAX_NOTE = 4000
_UNSET: Any = object()


def empty() -> dict[str, Any]:
    return {"name": "", "tags": [], "note": ""}


def _clean_tags(tags: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        text = printable(tag).strip()
        if text and text not in out:
            out.append(text)
    return out


def read_annotations(run_dir: str | Path) -> dict[str, Any]:
    """The run's annotations (name, tags, note); empty ones when the file is missing or spoiled."""
    try:
        data = read_json(Path(run_dir) / ANNOTATIONS_FILE, default={})
    except (OSError, ValueError):
        data = {}
    out = empty()
    if not isinstance(data, dict):
        return out
    if isinstance(data.get("name"), str):
        out["name"] = printable(data["name"], MAX_NAME).strip()
    if isinstance(data.get("tags"), list):
        out["tags"] = [t[:MAX_TAG] for t in _clean_tags(t for t in data["tags"] if isinstance(t, str))][:MAX_TAGS]
    if isinstance(data.get("note"), str):
        out["note"] = printable(data["note"], MAX_NOTE, keep_lines=True)
    return out


def annotate(run_dir: str | Path, *, name: str | None = _UNSET, tags: Iterable[str] | None = _UNSET,
             add_tags: Iterable[str] = (), remove_tags: Iterable[str] = (),
             note: str | None = _UNSET) -> dict[str, Any]:
    """Change the annotations of the run in `run_dir` and write them atomically; returns them.

    Args:
        name: the run's shown name ("" or None: back to the name it was started with).
        tags: the whole tag list (replaces the old one); `add_tags` / `remove_tags` change it instead.
        note: free text ("" or None: no note).

    Raises:
        ConfigError: the folder is not a run, or a value is too long.
    """
    folder = Path(run_dir)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder} is not a run folder (it has no config.json)")
    current = read_annotations(folder)
    if name is not _UNSET:
        text = printable(name or "").strip()
        if len(text) > MAX_NAME:
            raise ConfigError(f"a run name has at most {MAX_NAME} characters, got {len(text)}")
        current["name"] = text
    if tags is not _UNSET:
        current["tags"] = _clean_tags(tags or [])
    current["tags"] = _clean_tags([*current["tags"], *add_tags])
    drop = set(_clean_tags(remove_tags))
    current["tags"] = [t for t in current["tags"] if t not in drop]
    long = [t for t in current["tags"] if len(t) > MAX_TAG]
    if long:
        raise ConfigError(f"a tag has at most {MAX_TAG} characters: {long[0][:MAX_TAG]}…")
    if len(current["tags"]) > MAX_TAGS:
        raise ConfigError(f"a run has at most {MAX_TAGS} tags, got {len(current['tags'])}")
    if note is not _UNSET:
        text = printable(note or "", keep_lines=True).strip()
        if len(text) > MAX_NOTE:
            raise ConfigError(f"a note has at most {MAX_NOTE} characters, got {len(text)}")
        current["note"] = text
    atomic_write_json(folder / ANNOTATIONS_FILE, {**current, "updated_at": time.time()})
    return current


def shown_name(info: Any) -> str:
    """The name a run is shown with: its annotated name, else the name it was started with."""
    return read_annotations(info.path)["name"] or info.label
