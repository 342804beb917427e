"""The Hugging Face Hub format, both ways.

`export` writes a registry node (an ancestry or a learngene) as a folder a person can push to the Hub
as is: `model.safetensors`, a `config.json` the studio reads back, and a `README.md` model card whose
metadata is built by `huggingface_hub`. `import_folder` and `resolve` read such a folder or an
`hf-hub:owner/name` repo back with the checks an upload gets, keeping its lineage. Only the studio
reads these folders: its architectures are its own presets, not timm's.
"""

from __future__ import annotations

from pathlib import Path

from learngene.hub.remote import PREFIX


def is_hub_source(value: object) -> bool:
    """True for `hf-hub:owner/name` and for a folder holding a `config.json`."""
    if not isinstance(value, str) or not value:
        return False
    return value.startswith(PREFIX) or (Path(value).is_dir() and (Path(value) / "config.json").is_file())


def resolve(value: str, kind: str | None = None) -> tuple[Path, dict]:
    """The checked local weights of a Hub source (`hf-hub:...` or an exported folder) and its index entry.

    Args:
        value: what was typed.
        kind: "ancestry" or "learngene": refuse a source holding the other kind.
    """
    from learngene.hub.importer import import_folder
    from learngene.hub.remote import fetch

    folder = fetch(value) if value.startswith(PREFIX) else Path(value)
    source = value if value.startswith(PREFIX) else str(Path(value).resolve())
    entry = import_folder(folder, source=source, expect=kind)
    return Path(entry["path"]), entry


__all__ = ["PREFIX", "is_hub_source", "resolve"]
