"""Shared behaviour of the project's config dataclasses (torch-free)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from learngene.errors import ConfigError


def refuse_unknown(cls: type, d: dict[str, Any], what: str) -> None:
    """Raise ConfigError naming the keys of `d` that are not fields of dataclass `cls`."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown {what} settings {unknown}; known: {sorted(known)}")
