"""`ModelSpec`: the few values that rebuild an architecture (saved in every model card)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from learngene.errors import ConfigError


@dataclass
class ModelSpec:
    """Everything `create_model` needs to rebuild an architecture (not its weights).

    Attributes:
        arch: A project preset name (see `PRESETS`) or a timm model name.
        num_classes: Size of the classifier output.
        img_size: Input resolution the model is built for (ViTs size their position embedding by it).
        overrides: Extra keyword arguments passed to the builder (e.g. ``{"depth": 4}``); JSON values.
    """

    arch: str
    num_classes: int
    img_size: int = 32
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.arch, str) or not self.arch:
            raise ConfigError(f"ModelSpec.arch must be a non-empty string, got {self.arch!r}")
        for name in ("num_classes", "img_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ModelSpec.{name} must be a positive integer, got {value!r}")
        try:  # canonical JSON form (tuples become lists), so a spec equals its saved-and-loaded copy
            self.overrides = json.loads(json.dumps(dict(self.overrides)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"model overrides must be JSON values (numbers, strings, lists) so the spec can be "
                f"saved in a model card; got {self.overrides!r} ({exc})"
            ) from exc

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Inverse of `to_dict`; unknown or missing keys raise `ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"a model spec must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model spec keys {unknown}; expected some of {sorted(known)}")
        missing = [k for k in ("arch", "num_classes") if k not in data]
        if missing:
            raise ConfigError(f"model spec is missing {missing}")
        return cls(**{**data, "overrides": dict(data.get("overrides") or {})})
