"""`ModelSpec`: the few values that rebuild an architecture (saved in every model card)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from learngene.errors import ConfigError
from learngene.models._bounds import MAX_IMAGE_SIZE, MAX_NUM_CLASSES, check_count, check_overrides


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
        check_count("num_classes", self.num_classes, 1, MAX_NUM_CLASSES, "classes")
        check_count("img_size", self.img_size, 1, MAX_IMAGE_SIZE, "pixels")
        if not isinstance(self.overrides, dict):
            raise ConfigError(f"model overrides must be a JSON object of settings, got {type(self.overrides).__name__}")
        try:  # canonical JSON form (tuples become lists), so a spec equals its saved-and-loaded copy
            self.overrides = json.loads(json.dumps(dict(self.overrides)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"model overrides must be JSON values (numbers, strings, lists) so the spec can be "
                f"saved in a model card; got {self.overrides!r} ({exc})"
            ) from exc
        check_overrides(self.overrides, self.img_size)

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
        overrides = data.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"model spec overrides must be a JSON object, got {type(overrides).__name__}")
        return cls(**{**data, "overrides": dict(overrides)})
